"""The result of one free-entropy evaluation at a prior width Δ, and the checks of its inputs.

Shared by the per-edge (``bp.free_entropy``) and node-level (``bp.amp``) solvers, so that neither
imports the other's module to build its result.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from localentropy.bp.edge import EdgeState, check_delta_beta, make_problem
from localentropy.bp.errors import BPError

NORMALIZATIONS = ("weight", "input")


@dataclass(frozen=True)
class FreeEntropy:
    """Result of `free_entropy` at one prior width Δ.

    phi: φ_G = F_Bethe/n (≤ 0); delta: ⟨½‖w−w̃‖²⟩/n; n = K·N ("weight") or N ("input").
    converged: max|Δm| < tol was reached; iterations: sweeps of the setting that converged (or of the
    best failed one); damping, n_blocks: that setting; error: its last max|Δm|; reason: why it stopped.
    F: the total Bethe free entropy; lnZ_patterns: Σ_μ ln Z_μ (≤ 0, a diagnostic, §6.5).
    state: the messages, for a warm start at a nearby Δ (None if they diverged).
    """

    phi: float
    delta: float
    prior_delta: float
    beta: float
    converged: bool
    iterations: int
    total_iterations: int
    damping: float
    n_blocks: int
    error: float
    reason: str
    method: str
    normalize: str
    n: int
    F: float
    lnZ_patterns: float
    state: EdgeState | None = field(default=None, repr=False, compare=False)


def normaliser(normalize, K, N):
    """n, the number the free entropy is divided by: K·N ("weight", default) or N ("input", docs/bp.md §5.5)."""
    if normalize not in NORMALIZATIONS:
        raise BPError(f"normalize must be one of {NORMALIZATIONS}, got {normalize!r}")
    return K * N if normalize == "weight" else N


def check_inputs(X, y, K, center, delta, beta, normalize):
    """Validated (problem, Δ, β, normaliser n) of one free-entropy evaluation; BPError naming what is wrong."""
    problem = make_problem(X, y, center)
    P, Kc, N = problem.shape
    if int(K) != Kc:
        raise BPError(f"K={K} does not match center with {Kc} hidden units (shape {problem.center.shape})")
    Delta, beta = check_delta_beta(delta, beta)
    return problem, Delta, beta, normaliser(normalize, Kc, N)
