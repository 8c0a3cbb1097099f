"""PAC-Bayes flatness: the largest weight-noise scale σ′ the training error (or loss) tolerates.

Jiang, Neyshabur, Mobahi, Krishnan, Bengio 2020 ("Fantastic generalization measures and where to find
them", ICLR 2020), measures pacbayes.flatness and pacbayes.mag.flatness, also used by Dziugaite et al.
2020 ("In search of robust measures of generalization"): σ′ is the largest σ with

    E_u[Q(w + u)] − Q(w) ≤ d,

u ~ N(0, σ² I) (``noise="isotropic"``: pacbayes.flatness = 1/σ′²) or u_i ~ N(0, σ² w_i² + ε²)
(``noise="magnitude"``: pacbayes.mag.flatness = 1/σ′², ε = 1e-3; σ² w_i² + ε² is the variance). Jiang
et al. take Q the 0-1 training error and d = 0.1, an absolute rise of 10 percentage points (their
search: bisection in σ with a target deviation of 0.1); these are the defaults here (``target="error"``,
``deviation=0.1``, ``relative=False``). ``target="loss"`` uses the mean loss instead, and
``relative=True`` the bound Q(w) · (1 + d).

The expectation is the mean over M draws (``draws``) and σ′ is found by bisection over log σ inside
``sigma_range``. The same M standard normal vectors z_m are used at every σ (u = σ z_m, or
z_m ⊙ √(σ² w² + ε²)): common random numbers, so the estimated curve is one deterministic function of σ
for a seed and the bisection is consistent. Reported uncertainty: the final bisection bracket
(numerical) and a bootstrap over the M draws (sampling): each resample's crossing is located on the
σ already evaluated, interpolated linearly in log σ, and its spread is the standard error.
The model is never written to: perturbed copies run through ``torch.func.functional_call``, several
draws at once under ``torch.func.vmap`` (a per-draw loop for models vmap cannot handle).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from localentropy.entropic.local_energy import classification_error
from localentropy.entropic.params import Selection
from localentropy.flatness.errors import FlatnessError
from localentropy.flatness.objective import LossFn, Objective, check_int, check_positive, check_seed, eval_mode

NOISES = ("isotropic", "magnitude")
TARGETS = ("error", "loss")
CACHE_ELEMENTS = 2**24  # draws × weights up to which the normals are kept rather than redrawn per σ


@dataclass(frozen=True)
class PacBayesSigma:
    """σ′, the largest noise scale with E[Q(w + u)] − Q(w) ≤ ``threshold`` (module docstring).

    ``estimate`` is the geometric midpoint of the final bisection ``bracket`` (lo satisfies the bound,
    hi does not, on the M-draw estimate); ``uncertainty`` combines in quadrature the bootstrap
    standard deviation of σ′ over the draws (``bootstrap`` resamples) and the bracket's half-width;
    ``interval`` is the bootstrap's 2.5–97.5 % range. ``censored`` is "above" when even the largest
    σ of ``sigma_range`` keeps the bound (σ′ ≥ it; estimate = that σ, uncertainty inf), "below" when the
    smallest σ already breaks it. ``sigmas``/``increases`` list every σ evaluated and its mean rise.
    Cost: ``evaluations`` σ's × ``draws`` perturbed full-data passes (``forward_passes`` in all).
    ``flatness`` is Jiang et al.'s measure 1/σ′².
    """

    estimate: float
    uncertainty: float
    interval: tuple[float, float]
    bracket: tuple[float, float]
    censored: str | None
    noise: str
    target: str
    deviation: float
    relative: bool
    threshold: float
    value0: float
    eps: float
    draws: int
    evaluations: int
    forward_passes: int
    bootstrap: int
    sigmas: tuple[float, ...]
    increases: tuple[float, ...]
    params: tuple[str, ...]

    @property
    def flatness(self) -> float:
        """1/σ′², the value of pacbayes.flatness (isotropic) or pacbayes.mag.flatness (magnitude)."""
        return 1.0 / self.estimate**2


def _draw_seed(seed: int, m: int) -> int:
    return int(np.random.SeedSequence([seed, m]).generate_state(1)[0])


def _normals(obj: Objective, seed: int, m: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(_draw_seed(seed, m))
    return [torch.randn(w.shape, generator=g, dtype=w.dtype).to(w.device) for w in obj.weights]


def pacbayes_sigma(model: nn.Module, loss_fn: LossFn, X, y, *, noise: str = "isotropic", target: str = "error",
                   error_fn: LossFn | None = None, deviation: float = 0.1, relative: bool = False, draws: int = 20,
                   sigma_range: tuple[float, float] = (1e-5, 10.0), rtol: float = 1e-3, max_steps: int = 60,
                   eps: float = 1e-3, bootstrap: int = 200, seed: int = 0, params: Selection = None,
                   include_biases: bool = False, batch_size: int | None = None,
                   batch_draws: int = 10) -> PacBayesSigma:
    """σ′ of Jiang et al.'s pacbayes.flatness (noise="isotropic") or pacbayes.mag.flatness ("magnitude").

    target "error" (default; error_fn(outputs, targets) -> the batch's error rate, default
    ``entropic.classification_error``: argmax, or sign agreement with ±1 targets) or "loss"
    (loss_fn, the batch's mean loss). The bound is Q(w) + deviation (relative: Q(w)·(1 + deviation)).
    draws M ≥ 2 per σ (default 20); bisection over log σ in sigma_range until hi/lo − 1 ≤ rtol (at
    most max_steps halvings); eps the magnitude noise's floor. bootstrap resamples (0: none) give the
    sampling uncertainty. Seeded and deterministic; params/include_biases/batch_size as elsewhere;
    batch_draws draws run together in one vmap (memory grows with it).
    """
    if noise not in NOISES:
        raise FlatnessError(f"noise must be one of {NOISES}, got {noise!r}")
    if target not in TARGETS:
        raise FlatnessError(f"target must be one of {TARGETS}, got {target!r}")
    if error_fn is not None and not callable(error_fn):
        raise FlatnessError(f"error_fn must be callable, got {type(error_fn).__name__}")
    deviation = check_positive("deviation", deviation)
    draws = check_int("draws", draws, 2)
    try:
        lo, hi = (float(s) for s in sigma_range)
    except (TypeError, ValueError):
        raise FlatnessError(f"sigma_range must be two numbers (lo, hi), got {sigma_range!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo < hi):
        raise FlatnessError(f"sigma_range must satisfy 0 < lo < hi (finite), got {sigma_range!r}")
    rtol = check_positive("rtol", rtol)
    max_steps = check_int("max_steps", max_steps, 1)
    eps = check_positive("eps", eps, allow_zero=True)
    bootstrap = check_int("bootstrap", bootstrap, 0)
    seed = check_seed(seed)
    batch_draws = check_int("batch_draws", batch_draws, 1)
    obj = Objective(model, loss_fn, X, y, params=params, include_biases=include_biases, batch_size=batch_size)
    fn = (error_fn or classification_error) if target == "error" else loss_fn

    cache = [_normals(obj, seed, m) for m in range(draws)] if draws * obj.dim <= CACHE_ELEMENTS else None
    use_vmap = [True]
    evaluated: dict[float, np.ndarray] = {}
    order: list[float] = []

    def values(sigma: float) -> np.ndarray:
        """Q(w + u_m(σ)) for m = 0..M−1, as a float64 array."""
        out = np.empty(draws)
        for start in range(0, draws, batch_draws):
            ms = range(start, min(start + batch_draws, draws))
            stacked = []
            zs = [cache[m] if cache is not None else _normals(obj, seed, m) for m in ms]
            for i, w in enumerate(obj.weights):
                z = torch.stack([zm[i] for zm in zs])
                if noise == "isotropic":
                    u = z * sigma
                else:
                    u = z * torch.sqrt(sigma**2 * w * w + eps**2)
                stacked.append(w.unsqueeze(0) + u)
            out[start:start + len(ms)] = obj.evaluate_many(stacked, [fn], use_vmap)[0]
        if not np.all(np.isfinite(out)):
            raise FlatnessError(f"the {target} of a perturbed copy at sigma = {sigma:.3g} is not finite")
        evaluated[sigma] = out
        order.append(sigma)
        return out

    with eval_mode(model):
        obj.checked_loss0()
        value0 = float(obj.evaluate_many([w.unsqueeze(0) for w in obj.weights], [fn], use_vmap)[0, 0])
        if not math.isfinite(value0):
            raise FlatnessError(f"the {target} at the model's weights is not finite ({value0})")
        if relative and value0 <= 0:
            raise FlatnessError(f"relative=True needs a positive unperturbed {target}, got {value0}")
        threshold = deviation * value0 if relative else deviation

        def ok(sigma: float) -> bool:
            return float(values(sigma).mean()) - value0 <= threshold

        censored = None
        if ok(hi):
            censored, bracket = "above", (hi, math.inf)
        elif not ok(lo):
            censored, bracket = "below", (0.0, lo)
        else:
            for _ in range(max_steps):
                if hi / lo - 1 <= rtol:
                    break
                mid = math.sqrt(lo * hi)
                if ok(mid):
                    lo = mid
                else:
                    hi = mid
            bracket = (lo, hi)

    if censored == "above":
        estimate, uncertainty, interval = bracket[0], math.inf, (bracket[0], math.inf)
    elif censored == "below":
        estimate, uncertainty, interval = bracket[1], math.inf, (0.0, bracket[1])
    else:
        estimate = math.sqrt(bracket[0] * bracket[1])
        half = (bracket[1] - bracket[0]) / 2
        if bootstrap > 0:
            boot = _bootstrap(evaluated, value0, threshold, bootstrap, seed)
            sd = float(np.std(boot, ddof=1)) if bootstrap > 1 else 0.0
            interval = (float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5)))
        else:
            sd, interval = 0.0, (math.nan, math.nan)
        uncertainty = math.hypot(sd, half)
    return PacBayesSigma(
        estimate=estimate, uncertainty=uncertainty, interval=interval, bracket=bracket, censored=censored,
        noise=noise, target=target, deviation=deviation, relative=bool(relative), threshold=threshold,
        value0=value0, eps=eps if noise == "magnitude" else 0.0, draws=draws, evaluations=len(order),
        forward_passes=obj.forward_passes, bootstrap=bootstrap, sigmas=tuple(order),
        increases=tuple(float(evaluated[s].mean()) - value0 for s in order), params=obj.names,
    )


def _bootstrap(evaluated: dict[float, np.ndarray], value0: float, threshold: float, B: int, seed: int) -> np.ndarray:
    """σ′ of B resamples (with replacement) of the draws, each crossing interpolated in log σ."""
    s = np.array(sorted(evaluated))
    Q = np.stack([evaluated[v] for v in s])  # (J, M)
    M = Q.shape[1]
    rng = np.random.default_rng([seed, 1])
    idx = rng.integers(0, M, size=(B, M))
    d = Q[:, idx].mean(axis=2) - value0 - threshold  # (J, B): > 0 breaks the bound
    logs = np.log(s)
    out = np.empty(B)
    for b in range(B):
        above = np.nonzero(d[:, b] > 0)[0]
        if above.size == 0:
            out[b] = s[-1]
            continue
        j = above[0]
        if j == 0:
            out[b] = s[0]
            continue
        d0, d1 = d[j - 1, b], d[j, b]
        t = d0 / (d0 - d1)
        out[b] = math.exp(logs[j - 1] + t * (logs[j] - logs[j - 1]))
    return out
