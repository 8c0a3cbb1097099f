"""Entropy-SGD (eSGD), paper 000 Sec. 4, Algorithm 1; Chaudhari et al. (2019).

eSGD descends the local entropy loss L_LE(w) of Eq. (1) with the gradient of Eq. (5),
∇L_LE(w) = γ (w − ⟨w′⟩). The average ⟨w′⟩ over the measure ∝ exp(−βL(w′) − βγ d(w′, w)) is
estimated by L steps of stochastic gradient Langevin dynamics (SGLD) on w′,

    w′ ← w′ − η′ (∇L(w′; Ξ) + γ (w′ − w)) + √η′ · ε · N(0, I)        (Alg. 1, lines 5–6)
    μ  ← α μ + (1 − α) w′                                              (line 7)

followed by the outer update w ← w − η (w − μ) (line 8; γ is absorbed in η as in the paper,
``scale_by_gamma=True`` uses η·γ instead). Both loops are torch's own SGD (App. C: Nesterov
momentum and weight decay "in both the internal and external loop"): the inner SGD sees the
gradient ∇L(w′) + γ(w′ − w), the outer SGD sees the "gradient" w − μ.

Focusing (Sec. 4): γ follows a :class:`entropic.schedules.Schedule` of a counter that advances
once per outer step (``gamma_unit="step"``) or once per :meth:`EntropySGD.epoch_end` call
(``gamma_unit="epoch"``). With ``auto_gamma0=True`` the first outer step runs its SGLD loop
with γ = 0 and sets γ0 = L(w)/d(w′, w) (App. C); from then on γ(t) = γ0 · gamma(t), so pass a
*relative* schedule such as ``Exponential(1.0, γ1)``. The paper warns this criterion "is not
robust"; it is offered because the paper used it in some runs.

BatchNorm policy (``model=``): the running statistics must describe w, the weights that are
kept and evaluated, not the explorer w′. The first closure call of each outer step runs at
w′ = w exactly, so its forward pass is the one allowed to update the buffers; the buffers are
snapshotted after it and restored after the remaining L − 1 inner evaluations. Each outer step
thus updates the running statistics once, with one fresh mini-batch at w, like one SGD step.
Without ``model`` the optimizer cannot see the buffers and every inner forward pass (at w′)
updates them.
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import torch
from torch import nn

from localentropy.entropic.errors import EntropicError
from localentropy.entropic.gauss import CounterNormal, fusable, outer_handover_, sgld_step_
from localentropy.entropic.schedules import as_schedule, focusing_gamma

__all__ = ["EntropySGD"]


def _check_nonneg(name: str, x) -> float:
    try:
        x = float(x)
    except (TypeError, ValueError):
        raise EntropicError(f"{name} must be a number, got {x!r}") from None
    if not (math.isfinite(x) and x >= 0):
        raise EntropicError(f"{name} must be finite and >= 0, got {x}")
    return x


def _check_momentum(prefix: str, momentum, nesterov) -> None:
    _check_nonneg(f"{prefix}momentum", momentum)
    if nesterov and not momentum > 0:
        raise EntropicError(f"{prefix}nesterov=True needs {prefix}momentum > 0, got {momentum}")


class EntropySGD(torch.optim.Optimizer):
    """Entropy-SGD (paper 000, Algorithm 1) as a torch optimizer; ``step(closure)`` runs one outer step.

    Arguments (paper names in brackets):
      lr [η]: outer learning rate; lives in ``param_groups`` so LR schedulers act on it.
      inner_lr [η′]: SGLD step size. L [L]: SGLD steps per outer step (closure calls).
      gamma [γ]: float or Schedule of the focusing counter; noise [ε]; alpha [α].
      momentum, nesterov, weight_decay: outer torch SGD. inner_momentum, inner_nesterov,
        inner_weight_decay: inner torch SGD (default: the outer values). The inner momentum
        buffer restarts from zero at each outer step (as Chaudhari et al.'s code does).
      scale_by_gamma: outer step η·γ·(w − μ) instead of η·(w − μ).
      gamma_unit: "step" (γ counter +1 per outer step) or "epoch" (+1 per ``epoch_end()``).
      auto_gamma0: choose γ0 = L(w)/d(w′, w) at the first step (module docstring).
      model: module(s) whose buffers (BatchNorm running statistics) must reflect w only.
      noise_fn: callable param → standard-normal tensor of the param's shape (default
        ``torch.randn`` with ``generator``); lets a caller draw noise per restart. With an
        ``entropic.gauss.CounterNormal`` (its counter saved in ``state_dict``) and CPU parameters, each
        inner step is one fused pass per parameter (lines 5–7, the noise drawn in place), the same
        arithmetic and noise as the foreach path up to rounding.
      project: callable applied in place (under no_grad) to each parameter tensor after every
        inner update of w′ and after every outer update of w (e.g. renormalising hidden units).
        μ is an average of projected w′ and is itself not projected; the outer update moves w
        towards μ and is then projected.
      generator: torch.Generator for the default SGLD noise; its state is saved in state_dict.
      fused: both loops use torch's fused SGD step (fewer memory passes; another rounding).

    The closure draws a fresh mini-batch, computes the loss, calls ``backward`` and returns the
    loss; gradients are zeroed before each call. ``step`` returns the closure's first loss,
    the loss at w itself on a fresh batch. ``grad_evals`` counts closure calls (L per step), so
    epochs can be rescaled by L (000, Sec. 6). ``last`` holds diagnostics of the last step:
    ``loss`` (first), ``mean_loss`` (over the L calls), ``d_inner`` = d(w′_L, w),
    ``step_norm`` = ‖w − μ‖ before the outer update (stopping criterion ‖w − μ‖ < 1e-8), ``gamma``
    (0-d tensors, not synchronised, except ``gamma``), ``fused_sgld`` (whether the inner steps were
    fused). Per parameter, ``state[p]`` keeps ``w`` (w before the last outer update), ``mu`` (μ) and
    ``w_prime`` (w′ after the last inner step).
    A non-finite closure loss is not checked here (no device sync); check ``last["loss"]``.
    """

    def __init__(
        self,
        params,
        lr: float = 1.0,
        *,
        inner_lr: float = 0.1,
        L: int = 5,
        gamma=0.03,
        noise: float = 1e-4,
        alpha: float = 0.75,
        momentum: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
        inner_momentum: Optional[float] = None,
        inner_nesterov: Optional[bool] = None,
        inner_weight_decay: Optional[float] = None,
        scale_by_gamma: bool = False,
        gamma_unit: str = "step",
        auto_gamma0: bool = False,
        model: Optional[nn.Module] = None,
        noise_fn: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
        project: Optional[Callable[[torch.Tensor], None]] = None,
        generator: Optional[torch.Generator] = None,
        fused: bool = False,
    ):
        if inner_momentum is None:
            inner_momentum = momentum
        if inner_nesterov is None:
            inner_nesterov = nesterov
        if inner_weight_decay is None:
            inner_weight_decay = weight_decay
        if isinstance(L, bool) or not isinstance(L, int) or L < 1:
            raise EntropicError(f"L (SGLD steps per outer step) must be an int >= 1, got {L!r}")
        if gamma_unit not in ("step", "epoch"):
            raise EntropicError(f"gamma_unit must be 'step' or 'epoch', got {gamma_unit!r}")
        if noise_fn is not None and not callable(noise_fn):
            raise EntropicError(f"noise_fn must be callable, got {noise_fn!r}")
        if project is not None and not callable(project):
            raise EntropicError(f"project must be callable, got {project!r}")
        if generator is not None and not isinstance(generator, torch.Generator):
            raise EntropicError(f"generator must be a torch.Generator, got {generator!r}")
        if model is not None and not isinstance(model, nn.Module):
            raise EntropicError(f"model must be an nn.Module, got {type(model).__name__}")
        defaults = dict(
            lr=lr, inner_lr=inner_lr, noise=noise, alpha=alpha,
            momentum=momentum, nesterov=bool(nesterov), weight_decay=weight_decay,
            inner_momentum=inner_momentum, inner_nesterov=bool(inner_nesterov),
            inner_weight_decay=inner_weight_decay,
        )
        self._check_group(defaults)
        self.L = L
        self.gamma_schedule = as_schedule(gamma)
        self.scale_by_gamma = bool(scale_by_gamma)
        self.gamma_unit = gamma_unit
        self.auto_gamma0 = bool(auto_gamma0)
        self.model = model
        self.noise_fn = noise_fn
        self.project = project
        self.generator = generator
        self.gamma_t = 0
        self.gamma0: Optional[float] = None
        self.grad_evals = 0
        self.outer_steps = 0
        self.last: dict = {}
        self._outer = None
        self._inner = None
        self._scratch: dict = {}  # per parameter: the fused path's buffers (entropic.gauss), never saved
        super().__init__(params, defaults)
        groups = [{"params": g["params"]} for g in self.param_groups]
        fused = {"fused": True} if fused else {}  # torch's fused SGD step for both loops
        self._outer = torch.optim.SGD(groups, lr=1.0, **fused)
        self._inner = torch.optim.SGD([{"params": g["params"]} for g in self.param_groups], lr=1.0, **fused)

    @staticmethod
    def _check_group(g: dict) -> None:
        for key in ("lr", "inner_lr"):
            v = _check_nonneg(key, g[key])
            if v == 0:
                raise EntropicError(f"{key} must be > 0, got {v}")
        _check_nonneg("noise", g["noise"])
        _check_nonneg("weight_decay", g["weight_decay"])
        _check_nonneg("inner_weight_decay", g["inner_weight_decay"])
        a = _check_nonneg("alpha", g["alpha"])
        if not a < 1:
            raise EntropicError(f"alpha must lie in [0, 1), got {a}")
        _check_momentum("", g["momentum"], g["nesterov"])
        _check_momentum("inner_", g["inner_momentum"], g["inner_nesterov"])

    def add_param_group(self, param_group: dict) -> None:
        super().add_param_group(param_group)
        self._check_group(self.param_groups[-1])
        if self._outer is not None:
            self._outer.add_param_group({"params": self.param_groups[-1]["params"]})
            self._inner.add_param_group({"params": self.param_groups[-1]["params"]})

    # ----- focusing -------------------------------------------------------------------------
    @property
    def gamma(self) -> float:
        """Current coupling γ(t) = γ0 · gamma(t) with auto γ0, else gamma(t) (Sec. 4, focusing)."""
        return focusing_gamma(self.gamma_schedule, self.gamma_t, self.auto_gamma0, self.gamma0)

    def epoch_end(self) -> None:
        """Advance the γ counter by one when ``gamma_unit == "epoch"`` (no-op for "step")."""
        if self.gamma_unit == "epoch":
            self.gamma_t += 1

    # ----- helpers --------------------------------------------------------------------------
    def _sync(self, which: str) -> None:
        """Copy the current hyper-parameters of our param_groups into the wrapped torch SGD."""
        opt = self._outer if which == "outer" else self._inner
        pre = "" if which == "outer" else "inner_"
        for g, og in zip(self.param_groups, opt.param_groups):
            if which == "outer":
                og["lr"] = g["lr"] * (self.gamma if self.scale_by_gamma else 1.0)
            else:
                og["lr"] = g["inner_lr"]
            og["momentum"] = g[pre + "momentum"]
            og["nesterov"] = g[pre + "nesterov"]
            og["weight_decay"] = g[pre + "weight_decay"]
            og["dampening"] = 0.0

    def _noise(self, p: torch.Tensor) -> torch.Tensor:
        if self.noise_fn is not None:
            z = self.noise_fn(p)
            if not isinstance(z, torch.Tensor) or z.shape != p.shape:
                raise EntropicError(
                    f"noise_fn must return a tensor of shape {tuple(p.shape)}, got "
                    f"{getattr(z, 'shape', type(z).__name__)}")
            return z
        if self.generator is None:
            return torch.randn(p.shape, device=p.device, dtype=p.dtype)
        z = torch.randn(p.shape, generator=self.generator, device=self.generator.device, dtype=p.dtype)
        return z.to(p.device)

    def _fused_sgld(self) -> bool:
        """Whether the inner steps run as ``entropic.gauss.sgld_step_``: counter-based noise, no projection,
        every parameter and gradient a contiguous CPU tensor of one float dtype (its state allocated here)."""
        if not isinstance(self.noise_fn, CounterNormal) or self.project is not None:
            return False
        for g, p in self._params():
            if p.grad is None or p.grad.is_sparse or not fusable(p, p.grad):
                return False
        for g, p in self._params():  # scratch, not state: overwritten before it is read, so not checkpointed
            scratch = self._scratch.setdefault(p, {"outer_grad": torch.empty_like(p), "inner_buf": None})
            if g["inner_momentum"] and scratch["inner_buf"] is None:
                # the inner momentum buffer, finite: each outer step's first inner step multiplies it by 0
                scratch["inner_buf"] = torch.zeros_like(p)
        return True

    def _params(self):
        for g in self.param_groups:
            for p in g["params"]:
                yield g, p

    def _buffers(self):
        return [] if self.model is None else [b for b in self.model.buffers()]

    # ----- Algorithm 1 ----------------------------------------------------------------------
    @torch.no_grad()
    def step(self, closure=None):
        """One outer step of Algorithm 1: L SGLD steps (L closure calls), then w ← w − η(w − μ)."""
        if closure is None:
            raise EntropicError("EntropySGD.step needs a closure (it evaluates L mini-batches per step)")
        first_auto = self.auto_gamma0 and self.gamma0 is None
        gamma = 0.0 if first_auto else self.gamma
        if not math.isfinite(gamma):
            raise EntropicError(f"gamma became non-finite ({gamma}) at counter {self.gamma_t}")
        # line 2: w′, μ ← w
        for _, p in self._params():
            st = self.state[p]
            if "w" not in st:
                st["w"] = torch.empty_like(p)
                st["mu"] = torch.empty_like(p)
                st["w_prime"] = torch.empty_like(p)
            st["w"].copy_(p)
            st["mu"].copy_(p)
        self._inner.state.clear()
        self._sync("inner")
        if gamma != 0.0:  # line 5's γ(w′ − w) = γw′ (as weight decay) − γw (added to the gradient below)
            for og in self._inner.param_groups:
                og["weight_decay"] += gamma
        snapshot = None
        first_loss, loss_sum = None, 0.0
        for l in range(self.L):
            for _, p in self._params():
                p.grad = None
            with torch.enable_grad():
                loss = closure()
            self.grad_evals += 1
            if loss is None:
                raise EntropicError("the closure must return the mini-batch loss")
            loss = torch.as_tensor(loss).detach()
            loss_sum = loss_sum + loss
            if l == 0:
                first_loss = loss
                snapshot = [b.detach().clone() for b in self._buffers()]
                fused_sgld = self._fused_sgld()
            if fused_sgld:  # lines 5–7 in one pass per parameter, noise drawn in place (entropic.gauss)
                for g in self.param_groups:
                    scale = math.sqrt(g["inner_lr"]) * g["noise"]
                    for p in g["params"]:
                        st = self.state[p]
                        sgld_step_(p, p.grad, st["w"], st["mu"], self._scratch[p]["inner_buf"], gamma=gamma,
                                   weight_decay=g["inner_weight_decay"] + gamma, lr=g["inner_lr"],
                                   momentum=g["inner_momentum"], first=l == 0, nesterov=g["inner_nesterov"],
                                   scale=scale, a=1.0 - g["alpha"], noise=self.noise_fn)
                continue
            # line 5: dw′ = ∇L(w′) + γ(w′ − w)   (foreach: one kernel launch per group and op)
            for g in self.param_groups:
                ps = g["params"]
                for p in ps:
                    if p.grad is None:
                        p.grad = torch.zeros_like(p)
                if gamma != 0.0 and ps:  # the +γw′ half is the inner SGD's weight decay (raised by γ above):
                    # one pass over memory instead of forming w′ − w
                    torch._foreach_add_([p.grad for p in ps], [self.state[p]["w"] for p in ps], alpha=-gamma)
            # line 6: w′ ← w′ − η′ dw′ (torch SGD, momentum/wd) + √η′ ε N(0, I)
            self._inner.step()
            for g in self.param_groups:
                ps = g["params"]
                if not ps:
                    continue
                scale = math.sqrt(g["inner_lr"]) * g["noise"]
                if scale > 0:
                    torch._foreach_add_(ps, [self._noise(p) for p in ps], alpha=scale)
                if self.project is not None:
                    for p in ps:
                        self.project(p)
                # line 7: μ ← αμ + (1 − α)w′
                mus = [self.state[p]["mu"] for p in ps]  # one pass: μ + (1 − α)(w′ − μ)
                torch._foreach_lerp_(mus, ps, 1.0 - g["alpha"])
        if snapshot is not None:
            for b, s in zip(self._buffers(), snapshot):
                b.copy_(s)
        # line 8: w ← w − η (w − μ), via torch SGD with "gradient" w − μ
        d_inner, step_sq = 0.0, 0.0
        for _, p in self._params():
            st = self.state[p]
            if fused_sgld:  # the five lines below in one pass
                grad = self._scratch[p]["outer_grad"]
                d, s = outer_handover_(p, st["w"], st["mu"], st["w_prime"], grad)
                d_inner, step_sq = d_inner + d, step_sq + s
                p.grad = grad
                continue
            st["w_prime"].copy_(p)
            d_inner = d_inner + 0.5 * (p - st["w"]).pow(2).sum()
            p.copy_(st["w"])
            p.grad = st["w"] - st["mu"]
            step_sq = step_sq + p.grad.pow(2).sum()
        if first_auto:
            d_inner = float(d_inner)
            if not d_inner > 0:
                raise EntropicError(
                    f"auto_gamma0: d(w', w) = {d_inner} after the first SGLD loop, cannot set gamma0 = L(w)/d")
            self.gamma0 = float(first_loss) / d_inner
            if not (math.isfinite(self.gamma0) and self.gamma0 >= 0):
                raise EntropicError(f"auto_gamma0 gave gamma0 = {self.gamma0} (loss {float(first_loss)}, d {d_inner})")
        self._sync("outer")
        self._outer.step()
        for _, p in self._params():
            p.grad = None
            if self.project is not None:
                self.project(p)
        self.outer_steps += 1
        f64 = {} if torch.is_tensor(d_inner) else {"dtype": torch.float64}  # the fused path sums in Python floats
        self.last = dict(loss=first_loss, mean_loss=loss_sum / self.L, d_inner=torch.as_tensor(d_inner, **f64),
                         step_norm=torch.as_tensor(step_sq, **f64).sqrt(), gamma=gamma, fused_sgld=fused_sgld)
        if self.gamma_unit == "step":
            self.gamma_t += 1
        return first_loss

    # ----- checkpointing --------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Torch's state (per-param μ, w′, w) plus the outer momentum, γ counter, γ0, counters, RNG."""
        sd = super().state_dict()
        sd["entropic"] = dict(
            gamma_t=self.gamma_t, gamma0=self.gamma0, grad_evals=self.grad_evals,
            outer_steps=self.outer_steps, outer=self._outer.state_dict(),
            generator=None if self.generator is None else self.generator.get_state(),
            noise_state=self.noise_fn.state_dict() if isinstance(self.noise_fn, CounterNormal) else None,
        )
        return sd

    def load_state_dict(self, state_dict: dict) -> None:
        sd = dict(state_dict)
        extra = sd.pop("entropic", None)
        if extra is None:
            raise EntropicError("state_dict has no 'entropic' entry: not saved by EntropySGD")
        super().load_state_dict(sd)
        self._outer.load_state_dict(extra["outer"])
        self.gamma_t = int(extra["gamma_t"])
        self.gamma0 = extra["gamma0"]
        self.grad_evals = int(extra["grad_evals"])
        self.outer_steps = int(extra["outer_steps"])
        if extra.get("generator") is not None and self.generator is not None:
            self.generator.set_state(extra["generator"])
        if extra.get("noise_state") is not None and isinstance(self.noise_fn, CounterNormal):
            self.noise_fn.load_state_dict(extra["noise_state"])
