"""The training loss over all given samples as a function of a chosen subset of weights.

Every flatness measure of this package looks at one function,

    L(θ) = (1/n) Σ_i ℓ(f(x_i; θ, rest), y_i),

the mean of the user's loss over all n samples, as a function of the selected weights θ (chosen with
``entropic.params.select_parameters``, so a selection means the same weights here as in the local
energy or PLA), every other parameter and buffer held fixed. Splitting the data into batches
(``batch_size``) gives the same L: each batch's mean loss is weighted by its share n_b / n.

The model is never written to: weights are passed through ``torch.func.functional_call``, so after a
measure its parameters are bitwise what they were, and their ``.grad`` untouched. While a measure
runs the model is in eval mode (dropout off, BatchNorm on running statistics, so L is a deterministic
function of θ); every submodule's mode is restored afterwards.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, vmap

from localentropy.entropic.errors import EntropicError
from localentropy.entropic.params import Selection, select_parameters
from localentropy.flatness.errors import FlatnessError

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def check_int(name: str, value, minimum: int) -> int:
    """``value`` as an int ≥ minimum, or FlatnessError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise FlatnessError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_positive(name: str, value, *, allow_zero: bool = False) -> float:
    """``value`` as a finite float > 0 (≥ 0 with allow_zero), or FlatnessError naming ``name``."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise FlatnessError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise FlatnessError(f"{name} must be finite and {'>= 0' if allow_zero else '> 0'}, got {value!r}")
    return v


def check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise FlatnessError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def all_finite(t: torch.Tensor) -> bool:
    """No nan or inf in ``t``: one min/max pass (nan and ±inf reach them), ~15x faster than ``isfinite().all()``."""
    t = t.detach()
    if t.numel() == 0 or not (t.is_floating_point() or t.is_complex()):
        return True
    try:
        lo, hi = torch.aminmax(t)
        return bool(torch.isfinite(lo)) and bool(torch.isfinite(hi))
    except (RuntimeError, NotImplementedError):
        return bool(torch.isfinite(t).all())


@contextmanager
def eval_mode(model: nn.Module):
    """The model in eval mode inside the block; every submodule's own mode restored afterwards."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, training in modes:
            m.training = training


class Objective:
    """L(θ) of a model, a loss and a data set (see the module docstring), with the inputs checked.

    loss_fn(outputs, targets) must return the batch's mean loss as a scalar. X is a tensor or a
    tuple of tensors (the model's positional inputs), each with the n samples along dimension 0;
    y a tensor of n targets. Counters record the work done: ``forward_passes`` (full-data loss
    evaluations), ``gradients`` (full-data forward + backward) and ``hvps`` (full-data
    Hessian-vector products).
    """

    def __init__(self, model: nn.Module, loss_fn: LossFn, X, y, *, params: Selection = None,
                 include_biases: bool = False, batch_size: int | None = None):
        if not isinstance(model, nn.Module):
            raise FlatnessError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if not callable(loss_fn):
            raise FlatnessError(
                f"loss_fn must be callable (outputs, targets) -> mean loss, got {type(loss_fn).__name__}")
        args = tuple(X) if isinstance(X, (tuple, list)) else (X,)
        if not args or not all(isinstance(a, torch.Tensor) for a in args):
            raise FlatnessError("X must be a tensor or a non-empty tuple of tensors")
        if not isinstance(y, torch.Tensor):
            raise FlatnessError(f"y must be a tensor of targets, got {type(y).__name__}")
        if y.ndim == 0:
            raise FlatnessError("y must have the samples along dimension 0, got a 0-d tensor")
        n = int(y.shape[0])
        if n == 0:
            raise FlatnessError("the data holds no samples (y has length 0)")
        for i, a in enumerate(args):
            if a.ndim == 0 or a.shape[0] != n:
                raise FlatnessError(
                    f"X{'[%d]' % i if len(args) > 1 else ''} has shape {tuple(a.shape)}: its first dimension "
                    f"must be the {n} samples of y")
            if not all_finite(a):
                raise FlatnessError(f"X{'[%d]' % i if len(args) > 1 else ''} holds non-finite values (nan or inf)")
        if not all_finite(y):
            raise FlatnessError("y holds non-finite values (nan or inf)")
        if batch_size is not None:
            batch_size = check_int("batch_size", batch_size, 1)
        try:
            chosen = select_parameters(model, params, include_biases=include_biases)
        except EntropicError as e:
            raise FlatnessError(str(e)) from None
        for name, p in model.named_parameters():
            if not all_finite(p):
                raise FlatnessError(f"parameter {name!r} of the model holds non-finite values (nan or inf)")
        for name, p in chosen.items():
            if not p.is_floating_point():
                raise FlatnessError(f"parameter {name!r} is not floating point ({p.dtype})")

        self.model = model
        self.loss_fn = loss_fn
        self.names: tuple[str, ...] = tuple(chosen)
        self.weights: list[torch.Tensor] = [p.detach() for p in chosen.values()]
        self.shapes = [w.shape for w in self.weights]
        self.numels = [w.numel() for w in self.weights]
        self.dim = int(sum(self.numels))
        self.device = self.weights[0].device
        self.n = n
        step = n if batch_size is None else batch_size
        self.batches = []
        for s in range(0, n, step):
            sl = slice(s, min(s + step, n))
            ins = tuple(a[sl].to(self.device) for a in args)
            t = y[sl].to(self.device)
            self.batches.append((ins, t, (sl.stop - sl.start) / n))
        self.forward_passes = 0
        self.gradients = 0
        self.hvps = 0

    # ---- flat vectors (float64) and per-parameter lists --------------------------------------
    def flatten(self, tensors: Sequence[torch.Tensor]) -> torch.Tensor:
        """One float64 vector of the selected weights' shapes, concatenated in selection order."""
        return torch.cat([t.reshape(-1).to(torch.float64) for t in tensors])

    def unflatten(self, vec: torch.Tensor) -> list[torch.Tensor]:
        """The inverse of ``flatten``, each piece in its parameter's dtype and on its device."""
        out = []
        for piece, w in zip(torch.split(vec, self.numels), self.weights):
            out.append(piece.reshape(w.shape).to(dtype=w.dtype, device=w.device))
        return out

    # ---- evaluations -------------------------------------------------------------------------
    def _batch_loss(self, ws, args, targets):
        out = functional_call(self.model, dict(zip(self.names, ws)), args)
        loss = self.loss_fn(out, targets)
        if not isinstance(loss, torch.Tensor) or loss.ndim != 0:
            shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
            raise FlatnessError(f"loss_fn must return the batch's mean loss as a 0-d tensor, got {shape}")
        return loss

    def loss(self, ws: Sequence[torch.Tensor] | None = None) -> float:
        """L at the weights ``ws`` (default: the model's own), as a Python float."""
        ws = self.weights if ws is None else ws
        total = 0.0
        with torch.no_grad():
            for args, t, share in self.batches:
                total += share * float(self._batch_loss(ws, args, t))
        self.forward_passes += 1
        return total

    def loss_and_grad(self, ws: Sequence[torch.Tensor] | None = None) -> tuple[float, list[torch.Tensor]]:
        """L and ∇_θ L at ``ws`` (default: the model's own weights)."""
        ws = [w.detach().requires_grad_(True) for w in (self.weights if ws is None else ws)]
        total = 0.0
        grads = [torch.zeros_like(w) for w in ws]
        with torch.enable_grad():
            for args, t, share in self.batches:
                loss = self._batch_loss(ws, args, t) * share
                total += float(loss.detach())
                if loss.requires_grad:
                    gs = torch.autograd.grad(loss, ws, allow_unused=True)
                    for acc, g in zip(grads, gs):
                        if g is not None:
                            acc.add_(g)
        self.gradients += 1
        return total, grads

    def hvp(self, vs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """H v at the model's weights by double backpropagation: ∇_θ (∇_θ L · v), summed over batches."""
        ws = [w.detach().requires_grad_(True) for w in self.weights]
        out = [torch.zeros_like(w) for w in ws]
        with torch.enable_grad():
            for args, t, share in self.batches:
                loss = self._batch_loss(ws, args, t) * share
                if not loss.requires_grad:
                    continue
                gs = torch.autograd.grad(loss, ws, create_graph=True, allow_unused=True)
                dot = sum((g * v).sum() for g, v in zip(gs, vs) if g is not None)
                if not isinstance(dot, torch.Tensor) or not dot.requires_grad:
                    continue  # the gradient is constant in θ here: H = 0 for this batch
                hs = torch.autograd.grad(dot, ws, allow_unused=True)
                for acc, h in zip(out, hs):
                    if h is not None:
                        acc.add_(h)
        self.hvps += 1
        return out

    def flat_hvp(self, vec: torch.Tensor) -> torch.Tensor:
        """``hvp`` on flat float64 vectors."""
        return self.flatten(self.hvp(self.unflatten(vec)))

    def evaluate_many(self, stacked: Sequence[torch.Tensor], fns: Sequence[LossFn],
                      use_vmap: list[bool]) -> np.ndarray:
        """Each fn (a batch-mean: loss or error) over the full data for B weight copies at once.

        stacked: per selected weight a (B, *shape) tensor. Returns a float64 array (len(fns), B).
        The copies run in one ``torch.func.vmap`` over ``functional_call``; a model vmap cannot
        handle falls back (for this and later calls: ``use_vmap[0]`` is set False) to a loop.
        """
        B = int(stacked[0].shape[0])
        if use_vmap[0]:
            try:
                return self._many_vmap(stacked, fns, B)
            except FlatnessError:
                raise
            except (RuntimeError, NotImplementedError, ValueError, TypeError):
                use_vmap[0] = False
        return self._many_loop(stacked, fns, B)

    def _many_vmap(self, stacked, fns, B):
        def per_copy(ws, args, targets):
            out = functional_call(self.model, dict(zip(self.names, ws)), args)
            return tuple(torch.as_tensor(fn(out, targets)) for fn in fns)

        f = vmap(per_copy, in_dims=(0, None, None), randomness="different")
        total = np.zeros((len(fns), B))
        with torch.no_grad():
            for args, t, share in self.batches:
                vals = f(tuple(stacked), args, t)
                for i, v in enumerate(vals):
                    if v.shape != (B,):
                        raise FlatnessError("loss_fn and error_fn must return the batch's mean as a scalar")
                    total[i] += share * v.detach().to(torch.float64).cpu().numpy()
        self.forward_passes += B
        return total

    def _many_loop(self, stacked, fns, B):
        total = np.zeros((len(fns), B))
        with torch.no_grad():
            for b in range(B):
                ws = [s[b] for s in stacked]
                for args, t, share in self.batches:
                    out = functional_call(self.model, dict(zip(self.names, ws)), args)
                    for i, fn in enumerate(fns):
                        v = torch.as_tensor(fn(out, t))
                        if v.ndim != 0:
                            raise FlatnessError("loss_fn and error_fn must return the batch's mean as a scalar")
                        total[i, b] += share * float(v)
        self.forward_passes += B
        return total

    def checked_loss0(self) -> float:
        """L at the model's weights, or FlatnessError when it is not finite."""
        loss0 = self.loss()
        if not math.isfinite(loss0):
            raise FlatnessError(f"the loss at the model's weights is not finite ({loss0})")
        return loss0
