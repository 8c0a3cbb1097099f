"""Every flatness measure of this package on one committee-machine solution of paper 000.

The committee machine (``committee.model``, Eq. 7) is ŷ(ξ) = sign(Σ_k sign(λ_k)), λ_k = w_k·ξ/√N:
its loss is a step function of the weights, so a Hessian, a gradient ascent or a loss-based noise
scale of the sign network itself is zero or undefined almost everywhere. The measures therefore see
two functions of the *same* weights w (K, N), the ones whose Φ_LE and δE_train the figures report:

- **the loss** of the loss-based measures (Hessian top eigenvalue and trace, SAM and adaptive
  sharpness): the training loss of paper 000, Eq. 8, of the tanh surrogate of Eq. 7,

      L(w) = (1/P) Σ_μ f(y_μ · (1/√K) Σ_k tanh(β λ_k(ξ_μ)), ω),   f(x, ω) = log(1 + e^{−2ωx}) / (2ω),

  at ONE (β, ω) for every solution, by default β = 1, ω = 0.5 (``BETA``, ``OMEGA``: the start of the
  rSGD and eSGD schedules of App. B.1). The solutions' own final (β, ω) differ by orders of
  magnitude between settings (rSGD slow ends at β ≈ 3·10⁶, ω ≈ 10³²: there tanh(β·) is the sign and
  L is 0 with a zero Hessian), so a measure at each solution's own (β, ω) would compare different
  functions; a common loss is Jiang et al.'s practice (one cross-entropy for every network).
  ``final_beta_omega`` gives the final values for whoever wants them (``beta=``, ``omega=``).
- **the error** of the PAC-Bayes σ′ (``target="error"``, Jiang et al.'s definition): the 0-1
  training error of the exact sign network, Eq. 7, not of the surrogate. With magnitude-aware noise
  u_i ~ N(0, σ² w_i² + ε²) this is the noise of the local energy δE_train(σ) (Eq. 4: w + σ z ⊙ w) up to
  the floor ε = 10⁻³, so σ′_mag is the σ at which δE_train reaches the threshold 0.1.

``CommitteeStandIn`` is the ``nn.Module`` both are computed from: one parameter ``weight`` (K, N), its
forward returns a (P, 2) tensor, column 0 the surrogate output (1/√K) Σ_k tanh(β λ_k), column 1 the
sign network's ±1 output (no gradient); ``committee_loss(omega)`` reads column 0 and
``committee_error`` column 1. The sign network's hidden units each see all N inputs (the solutions'
layout: K = 9, N = 784); the weights are used as given (the solutions are normalised to ‖w_k‖² = N).

``committee_measures(weights, X, y)`` computes every measure with the flatness package's defaults (or
``options``) and returns a dict name → value, uncertainty, cost and details. ``MEASURES`` says for
each measure which direction is flatter, so the sign expected of its correlation with test error is
stated: "sharper" measures (larger = sharper) are expected to correlate positively, "flatter" ones
(larger = flatter: σ′) negatively.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from localentropy.flatness.errors import FlatnessError
from localentropy.flatness.hessian import hessian_top_eigenvalue, hessian_trace
from localentropy.flatness.pacbayes import pacbayes_sigma
from localentropy.flatness.sharpness import adaptive_sharpness, sam_sharpness

#: the common surrogate loss of the loss-based measures: Eq. 8 at β = 1, ω = 0.5 (module docstring)
BETA = 1.0
OMEGA = 0.5


class CommitteeStandIn(nn.Module):
    """A committee machine's surrogate and exact outputs from one parameter ``weight`` (K, N).

    forward(X (P, N)) → (P, 2): column 0 (1/√K) Σ_k tanh(β w_k·ξ/√N), differentiable (the tanh(β·)
    surrogate of Eq. 7); column 1 the sign network's output sign(Σ_k sign(λ_k)) ∈ {−1, +1}
    (sign(0) = +1, ``localentropy.committee_sign``), constant in w (zero gradient).
    """

    def __init__(self, weight, beta: float = BETA):
        super().__init__()
        w = torch.as_tensor(weight)
        if w.ndim != 2:
            raise FlatnessError(f"committee weights must be one solution's (K, N) matrix, got shape {tuple(w.shape)}")
        K = int(w.shape[0])
        if K < 1 or K % 2 == 0:
            raise FlatnessError(f"the number of hidden units K must be a positive odd integer, got K={K}")
        if not w.is_floating_point():
            w = w.to(torch.get_default_dtype())
        beta = float(beta)
        if not (math.isfinite(beta) and beta > 0):
            raise FlatnessError(f"beta must be finite and > 0, got {beta}")
        self.weight = nn.Parameter(w.detach().clone())
        self.beta = beta

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        K, N = self.weight.shape
        lam = torch.matmul(X.to(self.weight.dtype), self.weight.transpose(-1, -2)) / math.sqrt(N)  # (P, K)
        surrogate = torch.tanh(self.beta * lam).sum(-1) / math.sqrt(K)
        with torch.no_grad():
            votes = torch.where(lam >= 0, 1.0, -1.0).sum(-1)
            exact = torch.where(votes >= 0, 1.0, -1.0).to(lam.dtype)
        return torch.stack([surrogate, exact.detach()], dim=-1)


def committee_loss(omega: float = OMEGA) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """loss_fn(outputs (P, 2), y (P,)) = mean_μ f(y_μ · outputs[μ, 0], ω), Eq. 8 (``committee.loss``)."""
    omega = float(omega)
    if not (math.isfinite(omega) and omega > 0):
        raise FlatnessError(f"omega must be finite and > 0, got {omega}")

    def loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x = y.to(out.dtype) * out[..., 0]
        return (torch.logaddexp(-2.0 * omega * x, torch.zeros_like(x)) / (2.0 * omega)).mean()

    return loss


def committee_error(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The exact sign network's training error: the fraction of patterns with outputs[μ, 1] ≠ y_μ."""
    return (out[..., 1] != y.to(out.dtype)).to(out.dtype).mean()


def final_beta_omega(metadata: dict, restart: int) -> tuple[float, float]:
    """(β, ω) at the end of a solution's training: β0 (1 + β1)^t, ω0 (1 + ω1)^t, t its stop epoch
    (``metadata``: a solutions file's, with ``hyperparameters`` and per-restart ``epochs``)."""
    h = metadata.get("hyperparameters") or {}
    epochs = metadata.get("epochs")
    try:
        t = float(epochs[restart])
        beta = float(h["beta0"]) * (1.0 + float(h["beta1"])) ** t
        omega = float(h["omega0"]) * (1.0 + float(h["omega1"])) ** t
    except (KeyError, TypeError, IndexError, ValueError, OverflowError):
        raise FlatnessError("the metadata lacks the schedule (beta0, beta1, omega0, omega1) or the restart's "
                            "stop epoch") from None
    return beta, omega


@dataclass(frozen=True)
class MeasureSpec:
    """One measure: its name (a CSV column), a label, and which direction is flatter.

    ``sharper_is_larger``: True when a larger value means sharper (expected correlation with test error
    > 0), False when larger means flatter (expected < 0). ``kind``: "loss" (the Eq. 8 surrogate),
    "error" (the sign network's 0-1 error)."""

    name: str
    label: str
    sharper_is_larger: bool
    kind: str

    @property
    def expected_sign(self) -> int:
        return 1 if self.sharper_is_larger else -1


MEASURES: tuple[MeasureSpec, ...] = (
    MeasureSpec("hessian_lambda_max", "Hessian λ_max (Lanczos)", True, "loss"),
    MeasureSpec("hessian_trace", "Hessian trace (Hutchinson)", True, "loss"),
    MeasureSpec("pacbayes_sigma", "PAC-Bayes σ′ (isotropic)", False, "error"),
    MeasureSpec("pacbayes_mag_sigma", "PAC-Bayes σ′ (magnitude-aware)", False, "error"),
    MeasureSpec("sam_sharpness", "SAM sharpness", True, "loss"),
    MeasureSpec("adaptive_sharpness_l2", "adaptive sharpness ℓ2", True, "loss"),
    MeasureSpec("adaptive_sharpness_linf", "adaptive sharpness ℓ∞", True, "loss"),
)
MEASURE_NAMES = tuple(m.name for m in MEASURES)

#: each measure's call and default options (the flatness package's defaults, stated here so a cache key can
#: hold them); ``options`` of ``committee_measures`` overrides them per measure
DEFAULT_OPTIONS: dict[str, dict] = {
    "hessian_lambda_max": {"method": "lanczos", "k": 20, "tol": 1e-3},
    "hessian_trace": {"probes": 100},
    "pacbayes_sigma": {"noise": "isotropic", "deviation": 0.1, "draws": 20, "bootstrap": 200},
    "pacbayes_mag_sigma": {"noise": "magnitude", "deviation": 0.1, "draws": 20, "bootstrap": 200, "eps": 1e-3},
    "sam_sharpness": {"rho": 0.05, "steps": 1},
    "adaptive_sharpness_l2": {"norm": "l2", "rho": 0.5, "steps": 1},
    "adaptive_sharpness_linf": {"norm": "linf", "rho": 0.01, "steps": 1},
}


_FUNCTIONS = {"hessian_lambda_max": hessian_top_eigenvalue, "hessian_trace": hessian_trace,
              "pacbayes_sigma": pacbayes_sigma, "pacbayes_mag_sigma": pacbayes_sigma, "sam_sharpness": sam_sharpness,
              "adaptive_sharpness_l2": adaptive_sharpness, "adaptive_sharpness_linf": adaptive_sharpness}
#: arguments committee_measures sets itself: not options
_FIXED = {"model", "loss_fn", "X", "y", "seed", "target", "error_fn", "params", "include_biases"}


def check_options(options) -> dict:
    """``options`` (measure name → {argument: value}) checked: known measures, and arguments their flatness
    function takes (other than the model, data, loss, seed and selection, which are fixed here); FlatnessError
    otherwise. Returns the options merged over ``DEFAULT_OPTIONS`` for every measure."""
    import inspect

    options = dict(options or {})
    bad = [n for n in options if n not in MEASURE_NAMES]
    if bad:
        raise FlatnessError(f"options for unknown measure(s) {', '.join(map(str, bad))}; known: {', '.join(MEASURE_NAMES)}")
    merged = {}
    for name in MEASURE_NAMES:
        given = options.get(name) or {}
        if not isinstance(given, dict):
            raise FlatnessError(f"options of {name} must be a dict of arguments, got {type(given).__name__}")
        allowed = set(inspect.signature(_FUNCTIONS[name]).parameters) - _FIXED
        unknown = sorted(set(given) - allowed)
        if unknown:
            raise FlatnessError(f"{name} takes no option {', '.join(unknown)}; its options: {', '.join(sorted(allowed))}")
        merged[name] = dict(DEFAULT_OPTIONS[name], **given)
    return merged


def try_options(options) -> dict:
    """``check_options``, then every measure run once with these options on a small random committee (K = 3,
    N = 8, P = 6; a few milliseconds), so that a bad value (probes = 1, rho = 0, an unknown method) is a
    FlatnessError before any real work. Returns the merged options."""
    merged = check_options(options)
    g = torch.Generator().manual_seed(0)
    W = torch.randn(3, 8, generator=g, dtype=torch.float64)
    X = torch.randint(0, 2, (6, 8), generator=g).to(torch.float64) * 2 - 1
    y = torch.where(CommitteeStandIn(W)(X)[:, 1] > 0, 1.0, -1.0).to(torch.float64)
    small = {n: dict(o, **({"bootstrap": min(int(o["bootstrap"]), 2)} if isinstance(o.get("bootstrap"), int)
                          and not isinstance(o.get("bootstrap"), bool) else {})) for n, o in merged.items()}
    committee_measures(W, X, y, options=small)
    return merged


def _check_inputs(weights, X, y, dtype):
    w = torch.as_tensor(np.asarray(weights) if not isinstance(weights, torch.Tensor) else weights)
    if w.ndim != 2:
        raise FlatnessError(f"weights must be one solution's (K, N) matrix, got shape {tuple(w.shape)}")
    Xt = torch.as_tensor(np.asarray(X) if not isinstance(X, torch.Tensor) else X)
    yt = torch.as_tensor(np.asarray(y) if not isinstance(y, torch.Tensor) else y)
    if Xt.ndim != 2 or Xt.shape[1] != w.shape[1]:
        raise FlatnessError(f"patterns must be X (P, N) with N = {w.shape[1]} inputs, got shape {tuple(Xt.shape)}")
    if yt.ndim != 1 or yt.shape[0] != Xt.shape[0]:
        raise FlatnessError(f"labels must be y (P,) with P = {Xt.shape[0]}, got shape {tuple(yt.shape)}")
    yt = yt.to(dtype)
    if not bool(((yt == 1) | (yt == -1)).all()):
        raise FlatnessError("labels must be ±1")
    w = w.to(dtype)
    if not bool(torch.isfinite(w).all()):
        raise FlatnessError("weights contain NaN or infinite values")
    return w, Xt.to(dtype), yt


def committee_measures(weights, X, y, *, beta: float = BETA, omega: float = OMEGA, measures=None,
                       options: dict | None = None, seed: int = 0, dtype=torch.float64,
                       clock: Callable[[], float] = time.process_time) -> dict:
    """Every flatness measure (``MEASURES``) of one committee solution on the patterns (X, y).

    weights (K, N), X (P, N) ±1 patterns, y (P,) ±1 labels (numpy or torch). The loss-based measures
    use Eq. 8 of the tanh(β·) surrogate at (beta, omega), the PAC-Bayes ones the exact sign network's
    error (module docstring). ``measures``: names to compute (default all); ``options``: name → dict
    of keyword arguments overriding ``DEFAULT_OPTIONS``; ``seed`` seeds every random choice.

    Returns {name: {"value", "uncertainty", "seconds" (``clock``: process CPU time by default, the
    work done with one torch thread), "wall", and per-measure details (hvps, converged, censored,
    loss0, ...)}} plus "_loss0" (L(w)) and "_error0" (the sign network's training error).
    """
    names = MEASURE_NAMES if measures is None else tuple(measures)
    unknown = [n for n in names if n not in MEASURE_NAMES]
    if unknown:
        raise FlatnessError(f"unknown measure(s) {', '.join(map(str, unknown))}; known: {', '.join(MEASURE_NAMES)}")
    merged = check_options(options)
    w, Xt, yt = _check_inputs(weights, X, y, dtype)
    model = CommitteeStandIn(w, beta)
    loss = committee_loss(omega)
    out: dict = {}
    with torch.no_grad():
        o = model(Xt)
        out["_loss0"] = float(loss(o, yt))
        out["_error0"] = float(committee_error(o, yt))
    for name in names:
        opts = merged[name]
        t0, w0 = clock(), time.perf_counter()
        if name == "hessian_lambda_max":
            r = hessian_top_eigenvalue(model, loss, Xt, yt, seed=seed, **opts)
            res = {"value": r.estimate, "uncertainty": r.uncertainty, "converged": r.converged, "hvps": r.hvps}
        elif name == "hessian_trace":
            r = hessian_trace(model, loss, Xt, yt, seed=seed, **opts)
            res = {"value": r.estimate, "uncertainty": r.uncertainty, "hvps": r.hvps}
        elif name in ("pacbayes_sigma", "pacbayes_mag_sigma"):
            r = pacbayes_sigma(model, loss, Xt, yt, target="error", error_fn=committee_error, seed=seed, **opts)
            res = {"value": r.estimate, "uncertainty": r.uncertainty, "censored": r.censored or "",
                   "evaluations": r.evaluations, "interval_lo": r.interval[0], "interval_hi": r.interval[1]}
        elif name == "sam_sharpness":
            r = sam_sharpness(model, loss, Xt, yt, seed=seed, **opts)
            res = {"value": r.estimate, "uncertainty": math.nan if r.uncertainty is None else r.uncertainty,
                   "gradients": r.gradients}
        else:
            r = adaptive_sharpness(model, loss, Xt, yt, seed=seed, **opts)
            res = {"value": r.estimate, "uncertainty": math.nan if r.uncertainty is None else r.uncertainty,
                   "gradients": r.gradients}
        res["seconds"] = clock() - t0
        res["wall"] = time.perf_counter() - w0
        out[name] = res
    return out
