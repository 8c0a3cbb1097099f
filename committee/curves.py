"""One committee reference's local-entropy curve φ_G(Δ), δ(Δ), Φ_LE(d) by any of the estimators.

The estimators compute the same quantities with the same conventions (docs/bp.md §1, §5):

- ``"is"``: EP-guided sequential importance sampling (``entropic.committee_estimator``): unbiased, an
  error bar on every point, hard and soft constraints; docs/committee_estimator.md;
- ``"auto"``, ``"amp"``, ``"edge"``: Belief Propagation (``bp.local_entropy_curve``), fast, but its
  φ_G is tens of percent too negative on real solutions (docs/bp.md §8.3);
- ``"ep"``: expectation propagation (``bp.local_entropy_curve(method="ep")``), hard constraint only;
- ``"hmc"``: sequential Monte Carlo over Δ with reflecting HMC (``entropic.committee_local_entropy``),
  hard constraint only, minutes per curve.

``committee_curve`` returns BP's ``LocalEntropyCurve`` for the BP and EP methods and a ``SampledCurve``
(the same fields the tables and figures read, plus standard errors) for the samplers, so that callers
handle every method alike; it is a module-level function so that worker processes can run it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from localentropy import bp
from localentropy.bp.curve import CURVE_METHODS as BP_METHODS
from localentropy.bp.errors import BPError
from localentropy.committee_sign import misclassified

SAMPLED_METHODS = ("is", "hmc")
#: every method of ``committee_curve``, the default first
METHODS = ("is",) + tuple(BP_METHODS) + ("hmc",)
DEFAULT_SAMPLES = 256  # importance draws per Δ and round of the "is" estimator (rounds added while the ESS is low)
HMC_CHAINS = 256
#: rough seconds per Δ point on one core of a real Figure-1 solution (K = 7, N = 1008, P = 500), from the
#: benchmarks (benchmarks/README.md): for the warning a very long grid gets, not a promise
ROUGH_SECONDS_PER_POINT = {"is": 0.3, "auto": 0.1, "amp": 0.1, "edge": 1.0, "ep": 2.0, "hmc": 10.0}
#: a grid longer than this is unusual (the default has 30 points, the figures' sampled grid 16): warned about
LONG_GRID = 100


@dataclass(frozen=True)
class SampledCurve:
    """A sampled curve, per weight (n = K·N), one entry per prior width Δ (``prior_delta``).

    phi_G ± phi_G_se, delta ± delta_se, phi ± phi_se (shell local entropy), phi_ball, d = n·delta;
    converged: the point has an estimate; methods: the estimator per point ("is" or "hmc"); ess: the
    importance sampler's effective sample size per point (nan for "hmc").
    """

    prior_delta: np.ndarray
    delta: np.ndarray
    d: np.ndarray
    phi: np.ndarray
    phi_ball: np.ndarray
    phi_G: np.ndarray
    phi_G_se: np.ndarray
    delta_se: np.ndarray
    phi_se: np.ndarray
    ess: np.ndarray
    converged: np.ndarray
    methods: tuple
    method: str
    n: int
    K: int
    N: int
    P: int
    beta: float
    n_dropped: int = 0
    gaps: tuple = ()
    settings: dict = field(default_factory=dict)


class CurveError(BPError):
    """An estimator could not compute a curve (bad input, or a reference the constraint excludes)."""


def committee_curve(weights, X, y, deltas, *, method: str = "is", beta: float = math.inf, seed: int = 0,
                    drop_misclassified: bool = False, samples: Optional[int] = None,
                    progress: Optional[Callable[[dict], None]] = None):
    """φ_G(Δ), δ(Δ) and Φ_LE(d) of the committee reference ``weights`` (K, N) on the patterns (X, y),
    by ``method`` (module docstring). beta: inverse temperature of the constraint (inf: hard);
    drop_misclassified: compute on the patterns the reference classifies only (a lower bound);
    seed: the estimator's random stream (BP's block schedule for the BP methods); samples: importance
    draws per Δ for "is". progress(dict) after each Δ. Raises BPError (CurveError for the samplers)."""
    if method not in METHODS:
        raise BPError(f"unknown method {method!r}; available: {', '.join(METHODS)}")
    if method not in SAMPLED_METHODS:
        return bp.local_entropy_curve(weights, X, y, deltas, method=method, beta=beta, seed=seed,
                                      drop_misclassified=drop_misclassified, progress=progress)
    from localentropy.entropic.errors import EntropicError

    W = np.asarray(weights, dtype=np.float64)
    Xf, yf = np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.float64)
    n_dropped = 0
    if drop_misclassified and W.ndim == 2 and Xf.ndim == 2 and Xf.shape[1] == W.shape[1]:
        keep = ~misclassified(Xf @ W.T, yf)
        n_dropped = int((~keep).sum())
        Xf, yf = Xf[keep], yf[keep]
    try:
        if method == "is":
            from localentropy.entropic.committee_estimator import committee_local_entropy_is

            r = committee_local_entropy_is(W, Xf, yf, deltas, samples=samples or DEFAULT_SAMPLES, beta=beta,
                                           seed=seed, progress=progress)
            ess = np.asarray(r.ess, dtype=np.float64)
        else:
            if math.isfinite(beta):
                raise CurveError("method 'hmc' samples the hard constraint only (beta = inf)")
            from localentropy.entropic.committee_sampling import committee_local_entropy

            r = committee_local_entropy(W, Xf, yf, deltas, chains=HMC_CHAINS, seed=seed, progress=progress)
            ess = np.full(len(r.prior_delta), np.nan)
    except EntropicError as exc:
        raise CurveError(str(exc)) from None
    ok = np.isfinite(r.phi_G) & np.isfinite(r.phi)
    return SampledCurve(prior_delta=np.asarray(r.prior_delta), delta=np.asarray(r.delta), d=np.asarray(r.d),
                        phi=np.asarray(r.phi), phi_ball=np.asarray(r.phi_ball), phi_G=np.asarray(r.phi_G),
                        phi_G_se=np.asarray(r.phi_G_se), delta_se=np.asarray(r.delta_se),
                        phi_se=np.asarray(r.phi_se), ess=ess, converged=ok,
                        methods=tuple(method if o else "" for o in ok), method=method, n=int(r.n), K=int(r.K),
                        N=int(r.N), P=int(r.P), beta=float(beta), n_dropped=n_dropped,
                        settings=dict(r.settings))
