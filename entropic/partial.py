"""Partial local entropy losses of paper 002: PLA (Eq. 23) and PLEA (Eq. 22).

Both wrap any criterion L (e.g. ``nn.CrossEntropyLoss()``) and evaluate it at the current weights
W and at y perturbed copies W + ΔW_a, a = 1..y, with ΔW_a uniform in the hyper-cube of half-side
R restricted to a chosen subset of weights (whole layers in the paper; biases never perturbed,
002 footnote 15; all weights is the isotropic case). With L_0 = L(W), L_a = L(W + ΔW_a):

    PLA  (Eq. 23):  L_PLA(W)  = 1/(y+1) · Σ_{a=0..y} L_a
    PLEA (Eq. 22):  L_PLEA(W) = −log[ 1/(y+1) · Σ_{a=0..y} exp(−L_a) ]

The displacements are drawn fresh at every call and do not depend on W, so
∂L_a/∂W = ∇L(W + ΔW_a) and the gradients are

    ∇L_PLA  = 1/(y+1) · Σ_a ∇L(W + ΔW_a)                       (plain average)
    ∇L_PLEA = Σ_a p_a ∇L(W + ΔW_a),  p_a = exp(−L_a) / Σ_b exp(−L_b)   (= softmax(−L)_a)

Both are convex combinations of the y+1 point gradients (weights sum to one), so neither
amplifies the learning rate: the paper's "average over the y+1 points". PLEA weighs each point
by its Boltzmann factor, so low-loss points dominate; for equal losses p_a = 1/(y+1) and PLEA's
gradient equals PLA's. PLEA is evaluated with a log-sum-exp (see ``_neg_log_mean_exp_neg``).

The model is never mutated: each copy is evaluated with ``torch.func.functional_call`` on a
perturbed parameter dict, the y+1 copies batched with ``torch.func.vmap`` when the model allows
(a model that cannot be vmapped, e.g. BatchNorm updating running statistics in train mode, falls
back to a loop over the copies automatically). ``loss.backward()`` deposits the gradient above
in the model's ``.grad``, so any optimizer, scheduler or closure works unchanged.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn
from torch.func import functional_call, vmap

from localentropy.entropic.errors import EntropicError
from localentropy.entropic.params import Selection, select_parameters


def _neg_log_mean_exp_neg(losses: torch.Tensor) -> torch.Tensor:
    """−log mean_a exp(−L_a), stably.

    The naive form underflows: for cross-entropies of a few hundred (early training, large R)
    exp(−L_a) is 0 in float32 and the log gives +inf with a NaN gradient. Factoring out the
    largest exp(−L_a) (torch.logsumexp) keeps every term in range.
    """
    return math.log(losses.shape[0]) - torch.logsumexp(-losses, dim=0)


def _as_args(inputs) -> tuple:
    return tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)


class _PartialLocalLoss:
    """Shared machinery of PLA and PLEA: validation, the perturbations and the y+1 losses."""

    def __init__(
        self,
        model: nn.Module,
        criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        y: int = 4,
        R: float = 0.01,
        params: Selection = None,
        *,
        include_biases: bool = False,
        generator: torch.Generator | None = None,
        seed: int | None = None,
        vectorize: bool = True,
    ):
        if not callable(criterion):
            raise EntropicError(f"criterion must be callable, got {type(criterion).__name__}")
        if isinstance(y, bool) or not isinstance(y, int) or y < 1:
            raise EntropicError(f"y (number of perturbed copies) must be an integer >= 1, got {y!r}")
        try:
            R = float(R)
        except (TypeError, ValueError):
            raise EntropicError(f"R (half-side of the hyper-cube) must be a number, got {R!r}") from None
        if not math.isfinite(R) or R < 0:
            raise EntropicError(f"R (half-side of the hyper-cube) must be finite and >= 0, got {R}")
        if generator is not None and seed is not None:
            raise EntropicError("pass either generator or seed, not both")
        self.model = model
        self.criterion = criterion
        self.y = y
        self.R = R
        self.params = select_parameters(model, params, include_biases=include_biases)
        if generator is None and seed is not None:
            generator = torch.Generator().manual_seed(int(seed))
        self.generator = generator
        self.vectorize = bool(vectorize)
        self._vmap_ok: dict[bool, bool] = {}  # per train/eval mode: does vmap work for this model?
        self.last_perturbations: dict[str, torch.Tensor] | None = None
        self.last_losses: torch.Tensor | None = None

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(y={self.y}, R={self.R}, params={list(self.params)}, "
            f"criterion={self.criterion!r})"
        )

    def sample_perturbations(self) -> dict[str, torch.Tensor]:
        """y displacements per chosen parameter, uniform in [−R, R]: {name: tensor (y, *shape)}."""
        out = {}
        g = self.generator
        for name, p in self.params.items():
            dev = g.device if g is not None else p.device
            u = torch.rand((self.y, *p.shape), generator=g, device=dev, dtype=p.dtype)
            out[name] = ((2.0 * u - 1.0) * self.R).to(p.device)
        return out

    def point_losses(self, inputs, targets, perturbations: dict[str, torch.Tensor] | None = None):
        """L_a for a = 0..y as a differentiable tensor (y+1,), a = 0 being the unperturbed W."""
        if perturbations is None:
            perturbations = self.sample_perturbations()
        else:
            perturbations = self._check_perturbations(perturbations)
        self.last_perturbations = perturbations
        args = _as_args(inputs)
        # copy 0 is W itself (zero displacement), copies 1..y are W + ΔW_a
        stacked = {
            n: torch.cat([p.unsqueeze(0), p.unsqueeze(0) + perturbations[n]], dim=0)
            for n, p in self.params.items()
        }
        losses = None
        mode = self.model.training
        if self.vectorize and self._vmap_ok.get(mode, True):
            # the first attempt may fail half-way (e.g. BatchNorm updating running statistics in
            # place): keep the buffers so a failed attempt leaves no trace before the loop runs
            saved = None
            if mode not in self._vmap_ok:
                saved = [(b, b.detach().clone()) for b in self.model.buffers()]
            try:
                losses = self._vmapped(stacked, args, targets)
                self._vmap_ok[mode] = True
            except (RuntimeError, NotImplementedError, ValueError, TypeError):
                if saved is None:
                    raise
                with torch.no_grad():
                    for b, v in saved:
                        b.copy_(v)
                self._vmap_ok[mode] = False  # remember and loop from now on in this mode
        if losses is None:
            losses = torch.stack([self._one(stacked, a, args, targets) for a in range(self.y + 1)])
        if losses.ndim != 1:
            raise EntropicError(
                f"criterion must return a scalar per call, got shape {tuple(losses.shape[1:])}"
            )
        self.last_losses = losses.detach()
        return losses

    def _vmapped(self, stacked, args, targets):
        def f(ps):
            return self.criterion(functional_call(self.model, ps, args), targets)

        return vmap(f, randomness="different")(stacked)

    def _one(self, stacked, a, args, targets):
        ps = {n: t[a] for n, t in stacked.items()}
        out = self.criterion(functional_call(self.model, ps, args), targets)
        if out.ndim != 0:
            raise EntropicError(f"criterion must return a scalar, got shape {tuple(out.shape)}")
        return out

    def _check_perturbations(self, perturbations):
        if set(perturbations) != set(self.params):
            raise EntropicError(
                f"perturbations must have keys {list(self.params)}, got {list(perturbations)}"
            )
        for n, p in self.params.items():
            d = perturbations[n]
            if tuple(d.shape) != (self.y, *p.shape):
                raise EntropicError(
                    f"perturbation for {n} must have shape {(self.y, *p.shape)}, got {tuple(d.shape)}"
                )
        return {n: perturbations[n].to(device=p.device, dtype=p.dtype) for n, p in self.params.items()}

    def __call__(self, inputs, targets, perturbations: dict[str, torch.Tensor] | None = None):
        return self.reduce(self.point_losses(inputs, targets, perturbations))

    def reduce(self, losses: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


class PLA(_PartialLocalLoss):
    """Partial local average loss, paper 002 Eq. 23: the mean of the criterion at W and y points.

    ``PLA(model, criterion, y=4, R=0.01, params="fc1")``; ``loss = pla(inputs, targets)`` is a
    differentiable scalar whose backward deposits (1/(y+1)) Σ_a ∇L(W + ΔW_a) into ``.grad``.
    Displacements ΔW_a are uniform in [−R, R] on the selected parameters only (biases excluded
    unless ``include_biases``), redrawn at every call from ``generator`` (or a fresh one from
    ``seed``); ``perturbations=`` replays given ones. ``last_perturbations`` and ``last_losses``
    keep the latest draw and the y+1 point losses.
    """

    def reduce(self, losses: torch.Tensor) -> torch.Tensor:
        return losses.mean()


class PLEA(_PartialLocalLoss):
    """Partial local exponential average loss, paper 002 Eq. 22: −log mean_a exp(−L_a), a = 0..y.

    Same arguments as ``PLA``. Its gradient is Σ_a p_a ∇L(W + ΔW_a) with Boltzmann weights
    p_a = softmax(−L)_a summing to one (derived in the module docstring), evaluated stably by a
    log-sum-exp.
    """

    def reduce(self, losses: torch.Tensor) -> torch.Tensor:
        return _neg_log_mean_exp_neg(losses)
