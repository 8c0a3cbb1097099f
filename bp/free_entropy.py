"""Bethe free entropy φ_G(Δ) of a committee machine under a Gaussian prior N(w̃, Δ) centred on a reference.

φ_G(Δ) = (1/n) ln Prob_{w ~ N(w̃, ΔI)}[every pattern correct] ≤ 0 (docs/bp.md §1, §4), with n = K·N weights
(per weight, default) or n = N (per input, §5.5), estimated by the Bethe free entropy at the BP fixed
point; δ(Δ) = ⟨½‖w − w̃‖²⟩/n from the BP marginals (§5.1).
"""

from __future__ import annotations

import numpy as np

from localentropy.bp.amp import AMPState, amp_result, edge_state_from_amp
from localentropy.bp.edge import EdgeState, bethe_terms, run_edge_bp
from localentropy.bp.errors import BPError
from localentropy.bp.result import NORMALIZATIONS, FreeEntropy, check_inputs, normaliser  # noqa: F401 (re-exported)

METHODS = ("edge", "amp", "auto")
def free_entropy(X, y, K, center, delta, beta=np.inf, *, method="auto", state=None, schedule="block",
                 n_blocks=10, damping=None, tol=1e-7, max_sweeps=1000, patience=200, seed=0,
                 normalize="weight", progress=None) -> FreeEntropy:
    """Bethe free entropy φ_G(Δ) and distance δ(Δ) of the committee machine around `center` (docs/bp.md §4, §5.1).

    X: (P,N) patterns (±1, or any finite values: A_{μ→ki} = x_μi² Γ_kμ/N); y: (P,) labels ±1;
    K: number of hidden units (odd); center: (K,N) reference w̃, used as given (no normalisation);
    delta: prior variance Δ > 0; beta: np.inf for "all patterns correct", finite for the soft
    constraint e^{−β} + (1 − e^{−β})Θ (§3.3, §6.6). method (default "auto", as `localentropy phi`): "edge" (per-edge r-BP, bp.edge), "amp"
    (node-level form of the same equations, same fixed point, bp.amp) or "auto" (AMP; if it does not
    converge, per-edge BP at this Δ, warm-started from the AMP messages; once a scan has fallen back,
    an EdgeState warm start keeps it on per-edge BP). `.method` says which one produced the result.
    state: warm-start messages (a previous result's .state). schedule "block" (default) or "parallel";
    n_blocks, damping (None = adaptive ladder, a float or a list of η), tol, max_sweeps, patience: see
    bp.edge.run_edge_bp; seed: int or numpy Generator for the random blocks. progress(dict) per sweep.
    """
    problem, Delta, beta, n = check_inputs(X, y, K, center, delta, beta, normalize)
    return free_entropy_of(problem, Delta, beta, n, normalize, method=method, state=state, schedule=schedule,
                           n_blocks=n_blocks, damping=damping, tol=tol, max_sweeps=max_sweeps, patience=patience,
                           seed=seed, progress=progress)


def free_entropy_of(problem, Delta, beta, n, normalize="weight", *, method="auto", state=None, schedule="block",
                    n_blocks=10, damping=None, tol=1e-7, max_sweeps=1000, patience=200, seed=0,
                    progress=None) -> FreeEntropy:
    """`free_entropy` on inputs already validated by bp.result.check_inputs (a bp.edge.Problem, Δ, β and the
    normaliser n), so that a scan over Δ validates and converts its arrays once."""
    if method not in METHODS:
        raise BPError(f"unknown method {method!r}; available: {', '.join(METHODS)}")
    amp_sweeps = 0
    if method in ("amp", "auto") and not isinstance(state, EdgeState):
        r = amp_result(problem, Delta, beta, n, normalize, state=state, schedule=schedule, n_blocks=n_blocks,
                       damping=damping, tol=tol, max_sweeps=max_sweeps, patience=patience, seed=seed,
                       progress=progress)
        if r.converged or method == "amp":
            return r
        amp_sweeps = r.total_iterations
    elif method == "amp":
        raise BPError(f"method='amp' needs the .state of a previous method='amp' result, got {type(state).__name__}")
    if state is not None and not isinstance(state, EdgeState):
        if not isinstance(state, AMPState):
            raise BPError(f"state must be the .state of a previous free_entropy result, got {type(state).__name__}")
        state = edge_state_from_amp(problem, Delta, state)
    run = run_edge_bp(problem, Delta, beta, state, schedule=schedule, n_blocks=n_blocks, damping=damping, tol=tol,
                      max_sweeps=max_sweeps, patience=patience, rng=seed, progress=progress)
    if run.state is None:
        F = sq = lnZ = np.nan
    else:
        F, sq, lnZ = bethe_terms(problem, Delta, beta, run.state)
    return FreeEntropy(phi=F / n, delta=sq / (2 * n), prior_delta=Delta, beta=beta, converged=run.converged,
                       iterations=run.sweeps, total_iterations=run.total_sweeps + amp_sweeps, damping=run.eta,
                       n_blocks=run.n_blocks, error=run.error, reason=run.reason, method="edge",
                       normalize=normalize, n=n, F=F, lnZ_patterns=lnZ, state=run.state)
