"""Worst-case sharpness in a ball of weight perturbations: SAM's and the adaptive (scale-aware) kind.

    S_ρ(w) = max_{‖T_w⁻¹ ε‖_p ≤ ρ} L(w + ε) − L(w)

with T_w = I for SAM sharpness (Foret, Kleiner, Mobahi, Neyshabur 2021, "Sharpness-aware minimization
for efficiently improving generalization"; p = 2), and T_w = diag(|w| + η) for adaptive sharpness (Kwon,
Kim, Park, Choi 2021, "ASAM"; Andriushchenko, Croce, Müller, Hein, Flammarion 2023, "A modern look at
the relationship between sharpness and generalization", who use T_w = |w|, i.e. η = 0, with p = 2 and
p = ∞). L is the mean loss over all given samples (``flatness.objective``).

The maximum is approximated by ascent steps that each maximise the loss's linearisation over the
ball: with δ = T⁻¹ ε and g the gradient at the current point,

    δ ← ρ T g / ‖T g‖₂  (p = 2),      δ ← ρ sign(g)  (p = ∞),

so the first step from ε = 0 is SAM's ε̂ = ρ g/‖g‖ (ASAM's ρ T² g/‖T g‖ when adaptive). This is
projected gradient ascent with an unbounded step (the conditional-gradient step of size 1): when L is
convex on the ball every step raises L(w + ε), and at w = 0 of a quadratic the p = 2 steps are
power iteration on the Hessian. Every iterate is a feasible point, so the best one seen (ε = 0
included) is a LOWER BOUND of S_ρ: the true maximum may be larger, the more so for a few steps on a
non-convex loss. A zero gradient at w (an exact minimum or saddle) gives no direction: the first
point is then a seeded random one on the ball's boundary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from localentropy.entropic.params import Selection
from localentropy.flatness.errors import FlatnessError
from localentropy.flatness.objective import LossFn, Objective, check_int, check_positive, check_seed, eval_mode

NORMS = ("l2", "linf")


@dataclass(frozen=True)
class Sharpness:
    """A lower bound of max_{‖T⁻¹ε‖_p ≤ ρ} L(w + ε) − L(w) from ``steps`` ascent steps.

    ``estimate`` is the largest L(w + ε) − L(w) over the iterates (≥ 0: ε = 0 counts), ``history``
    the value after each step. ``uncertainty`` is the last step's gain in the estimate (None for one
    step): a convergence indicator only; the gap to the true maximum is unknown, the estimate being
    a lower bound. ``eps_norm`` is ‖ε‖₂ in weight space of the best iterate, ``radius`` its
    ‖T⁻¹ε‖_p (ρ on the boundary). Cost: ``gradients`` full-data gradient evaluations and
    ``forward_passes`` full-data loss evaluations.
    """

    estimate: float
    uncertainty: float | None
    loss0: float
    loss_perturbed: float
    rho: float
    norm: str
    adaptive: bool
    eta: float
    steps: int
    best_step: int
    eps_norm: float
    radius: float
    history: tuple[float, ...]
    random_start: bool
    gradients: int
    forward_passes: int
    params: tuple[str, ...]


def _norm(xs, p: str) -> float:
    if p == "l2":
        return math.sqrt(sum(float((x.to(torch.float64) ** 2).sum()) for x in xs))
    return max(float(x.abs().max()) if x.numel() else 0.0 for x in xs)


def _ascent(obj: Objective, rho: float, steps: int, p: str, scale, seed: int):
    """The best iterate of the linearised ascent (module docstring): (value, δ, ε, history, ...)."""
    loss0, g = obj.loss_and_grad()
    if not math.isfinite(loss0):
        raise FlatnessError(f"the loss at the model's weights is not finite ({loss0})")

    def best_delta(grad):
        tg = [s * gi for s, gi in zip(scale, grad)] if scale is not None else grad
        if p == "l2":
            n = _norm(tg, "l2")
            return None if n == 0.0 else [rho * t / n for t in tg]
        if all(not bool((t != 0).any()) for t in tg):
            return None
        # a vertex of the box; where g_i = 0 the linearisation is indifferent and +ρ is taken (a vertex is
        # never worse than the centre for a loss convex along that coordinate)
        return [torch.where(t >= 0, torch.full_like(t, rho), torch.full_like(t, -rho)) for t in tg]

    def random_delta():
        gen = torch.Generator().manual_seed(seed)
        if p == "l2":
            z = [torch.randn(w.shape, generator=gen, dtype=torch.float64) for w in obj.weights]
            n = _norm(z, "l2")
            return [(rho * zi / n).to(dtype=w.dtype, device=w.device) for zi, w in zip(z, obj.weights)]
        return [(rho * (torch.randint(0, 2, w.shape, generator=gen).to(torch.float64) * 2 - 1)).to(
            dtype=w.dtype, device=w.device) for w in obj.weights]

    history: list[float] = []
    best = (0.0, None, 0)  # (value, δ, step): ε = 0 is feasible, so the maximum is ≥ 0
    random_start = False
    for t in range(steps):
        delta = best_delta(g)
        if delta is None:
            if t > 0:
                break  # a stationary point of the ascent: further steps would repeat it
            delta, random_start = random_delta(), True
        eps = [s * d for s, d in zip(scale, delta)] if scale is not None else delta
        ws = [w + e for w, e in zip(obj.weights, eps)]
        if t + 1 < steps:
            lt, g = obj.loss_and_grad(ws)
        else:
            lt = obj.loss(ws)
        if not math.isfinite(lt):
            raise FlatnessError(f"the loss at a perturbed point of the ball is not finite ({lt}); try a smaller rho")
        history.append(lt - loss0)
        if lt - loss0 > best[0]:
            best = (lt - loss0, delta, t + 1)
    value, delta, step = best
    if delta is None:
        eps_norm = radius = 0.0
    else:
        eps = [s * d for s, d in zip(scale, delta)] if scale is not None else delta
        eps_norm, radius = _norm(eps, "l2"), _norm(delta, p)
    gain = None
    if len(history) >= 2:
        gain = max(0.0, max(history) - max(0.0, max(history[:-1])))
    return loss0, value, step, eps_norm, radius, tuple(history), random_start, gain


def _sharpness(model, loss_fn, X, y, rho, steps, p, adaptive, eta, seed, params, include_biases, batch_size):
    obj = Objective(model, loss_fn, X, y, params=params, include_biases=include_biases, batch_size=batch_size)
    scale = [w.abs() + eta for w in obj.weights] if adaptive else None
    with eval_mode(model):
        loss0, value, step, eps_norm, radius, history, random_start, gain = _ascent(obj, rho, steps, p, scale, seed)
    return Sharpness(estimate=value, uncertainty=gain, loss0=loss0, loss_perturbed=loss0 + value, rho=rho, norm=p,
                     adaptive=adaptive, eta=eta, steps=steps, best_step=step, eps_norm=eps_norm, radius=radius,
                     history=history, random_start=random_start, gradients=obj.gradients,
                     forward_passes=obj.forward_passes, params=obj.names)


def sam_sharpness(model: nn.Module, loss_fn: LossFn, X, y, *, rho: float = 0.05, steps: int = 1, seed: int = 0,
                  params: Selection = None, include_biases: bool = False,
                  batch_size: int | None = None) -> Sharpness:
    """SAM sharpness max_{‖ε‖₂ ≤ ρ} L(w + ε) − L(w), a lower bound from ``steps`` ascent steps.

    Default ρ = 0.05 (Foret et al.'s usual radius) and one step, SAM's own ε̂ = ρ g/‖g‖; more steps
    tighten the bound (module docstring). loss_fn(outputs, targets) returns the batch's mean loss;
    params/include_biases choose the weights as ``entropic.params`` does (default every weight,
    biases excluded); batch_size splits the data (same L); seed serves only a zero gradient's random
    first point. Cost: ``steps`` gradients and one loss evaluation.
    """
    rho = check_positive("rho", rho)
    steps = check_int("steps", steps, 1)
    seed = check_seed(seed)
    return _sharpness(model, loss_fn, X, y, rho, steps, "l2", False, 0.0, seed, params, include_biases, batch_size)


def adaptive_sharpness(model: nn.Module, loss_fn: LossFn, X, y, *, rho: float | None = None, norm: str = "l2",
                       eta: float = 0.0, steps: int = 1, seed: int = 0, params: Selection = None,
                       include_biases: bool = False, batch_size: int | None = None) -> Sharpness:
    """Adaptive sharpness max_{‖ε / (|w| + η)‖_p ≤ ρ} L(w + ε) − L(w), a lower bound from ascent steps.

    norm "l2" (default ρ = 0.5, ASAM's radius for CIFAR-10) or "linf" (default ρ = 0.01, our choice:
    every weight moves by at most 1 % of its magnitude). η = 0 is Andriushchenko et al.'s T_w = |w|;
    ASAM uses η = 0.01. A weight equal to 0 with η = 0 is not perturbed. Other arguments as in
    ``sam_sharpness``.
    """
    if norm not in NORMS:
        raise FlatnessError(f"norm must be one of {NORMS}, got {norm!r}")
    rho = check_positive("rho", (0.5 if norm == "l2" else 0.01) if rho is None else rho)
    eta = check_positive("eta", eta, allow_zero=True)
    steps = check_int("steps", steps, 1)
    seed = check_seed(seed)
    return _sharpness(model, loss_fn, X, y, rho, steps, norm, True, eta, seed, params, include_biases, batch_size)
