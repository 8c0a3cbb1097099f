"""Per-edge relaxed BP for the committee machine under a Gaussian prior N(w̃, Δ) (BP.md §2–3, §6).

One Gaussian message per (pattern μ, weight ki). Messages factor → variable are kept as
A_{μ→ki} = x_μi² a_kμ (so only a is stored, shape (P,K): for ±1 inputs x² = 1 and A does not depend
on i, §2) and B_{μ→ki} (P,K,N). Factor messages are expanded at the *cavity mean* (§3.5), not at w = 0:
the textbook expansion is wrong at the small Δ local entropy needs. The output factor is summed
exactly over the hidden configurations (bp.output, §3.3).

Schedules (§3.6): block-sequential (default; random blocks of patterns, each block's messages damped and
folded into the marginals at once) or parallel (one block holding every pattern). Adaptive damping:
a run that diverges (NaN, a cavity precision ≤ 0, error ×10³ above its best) or stalls restarts from
the warm-start state with the next (n_blocks, η) setting of a ladder.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba as nb
import numpy as np

from bp.errors import BPError
from bp.output import _channel_row, _logaddexp  # noqa: F401  (numba-callable pieces)

_CHUNK = 128  # weights per parallel task in the (k, i) loops
_V_FLOOR = 1e-300  # NaN guard only (§6.2)


# ---------------------------------------------------------------------------------------------------
# numba kernels: arrays and scalars only


@nb.njit(cache=True, parallel=True)
def _message_sums(X2, a, B, SA, SB):
    """SA[k,i] = Σ_μ x_μi² a_kμ,  SB[k,i] = Σ_μ B_{μ→ki}: the incoming precision and field (§3.1)."""
    P, K, N = B.shape
    nch = (N + _CHUNK - 1) // _CHUNK
    for task in nb.prange(K * nch):
        k = task // nch
        i0 = (task % nch) * _CHUNK
        i1 = min(N, i0 + _CHUNK)
        for i in range(i0, i1):
            SA[k, i] = 0.0
            SB[k, i] = 0.0
        for mu in range(P):
            am = a[mu, k]
            for i in range(i0, i1):
                SA[k, i] += X2[mu, i] * am
                SB[k, i] += B[mu, k, i]


@nb.njit(cache=True, parallel=True)
def _fields_channel(X, X2, idx, y, beta, a, B, Lam, Xi, omega, V, lnZ, g, Gam, minlc):
    """For each pattern μ in idx: cavity fields (§3.1–3.2) then the output channel (bp.output, §3.3–3.4).

    ω_kμ = N^{-1/2} Σ_i x m_{ki→μ},  V_kμ = N^{-1} Σ_i x² v_{ki→μ}; fills lnZ[μ], g[μ], Gam[μ].
    minlc[jj] receives the smallest cavity precision Λ_{ki→μ} met for the jj-th pattern of the block.
    """
    K, N = Lam.shape
    sqN = math.sqrt(N)
    for jj in nb.prange(idx.shape[0]):
        mu = idx[jj]
        ml = np.inf
        for k in range(K):
            am = a[mu, k]
            om = 0.0
            vs = 0.0
            for i in range(N):
                lc = Lam[k, i] - X2[mu, i] * am
                if lc < ml:
                    ml = lc
                r = 1.0 / lc
                om += X[mu, i] * (Xi[k, i] - B[mu, k, i]) * r
                vs += X2[mu, i] * r
            omega[mu, k] = om / sqN
            V[mu, k] = max(vs / N, _V_FLOOR)
        minlc[jj] = ml
        lnp = np.empty(K)
        lnq = np.empty(K)
        L = np.empty((K + 1, K + 1))
        S = np.empty((K + 1, K + 1))
        Sc = np.empty((K + 1, K + 1))
        lnZ[mu] = _channel_row(omega[mu], V[mu], y[mu], beta, lnp, lnq, L, S, Sc, g[mu], Gam[mu])


@nb.njit(cache=True, parallel=True)
def _update_block(X, X2, idx, eta, a, B, Lam, Xi, g, Gam):
    """New messages of the patterns idx (§3.5), damped with η, folded into Λ, Ξ (§3.6); a is updated last.

    A_new = x² Γ/N,  B_new = x g/√N + A_new m_{ki→μ}, with the cavity mean taken from the Λ, Ξ
    *before* this block; then Λ += Σ_block (A_d − A_old), Ξ += Σ_block (B_d − B_old).
    """
    K, N = Lam.shape
    nb_ = idx.shape[0]
    sqN = math.sqrt(N)
    nch = (N + _CHUNK - 1) // _CHUNK
    for task in nb.prange(K * nch):
        k = task // nch
        i0 = (task % nch) * _CHUNK
        i1 = min(N, i0 + _CHUNK)
        w = i1 - i0
        L0 = np.empty(w)
        X0 = np.empty(w)
        dL = np.zeros(w)
        dX = np.zeros(w)
        for ii in range(w):
            L0[ii] = Lam[k, i0 + ii]
            X0[ii] = Xi[k, i0 + ii]
        for jj in range(nb_):
            mu = idx[jj]
            aold = a[mu, k]
            anew = Gam[mu, k] / N
            ad = eta * aold + (1.0 - eta) * anew
            gk = g[mu, k] / sqN
            for ii in range(w):
                i = i0 + ii
                x2 = X2[mu, i]
                bold = B[mu, k, i]
                lc = L0[ii] - x2 * aold
                mc = (X0[ii] - bold) / lc
                bnew = X[mu, i] * gk + x2 * anew * mc
                bd = eta * bold + (1.0 - eta) * bnew
                B[mu, k, i] = bd
                dX[ii] += bd - bold
                dL[ii] += x2 * (ad - aold)
        for ii in range(w):
            Lam[k, i0 + ii] = L0[ii] + dL[ii]
            Xi[k, i0 + ii] = X0[ii] + dX[ii]
    for jj in range(nb_):
        mu = idx[jj]
        for k in range(K):
            a[mu, k] = eta * a[mu, k] + (1.0 - eta) * Gam[mu, k] / N


@nb.njit(cache=True, parallel=True)
def _edge_terms(X2, a, B, Lam, Xi, out):
    """out[μ] = Σ_ki F_{μ,ki}, the edge terms of the Bethe free entropy (§4), in the stable closed form

    F_{μ,ki} = −½ ln(1 + A v) + [B m − ½ A m² + ½ v B²]/(1 + A v),  (m, v) the cavity moments.
    """
    P, K, N = B.shape
    for mu in nb.prange(P):
        s = 0.0
        for k in range(K):
            am = a[mu, k]
            for i in range(N):
                A = X2[mu, i] * am
                lc = Lam[k, i] - A
                v = 1.0 / lc
                mc = (Xi[k, i] - B[mu, k, i]) * v
                b = B[mu, k, i]
                av = A * v
                s += -0.5 * math.log1p(av) + (b * mc - 0.5 * A * mc * mc + 0.5 * v * b * b) / (1.0 + av)
        out[mu] = s


# ---------------------------------------------------------------------------------------------------
# Python driver


@dataclass(frozen=True)
class EdgeState:
    """Messages of the per-edge BP, for warm starts (continuation in Δ, §3.6).

    a: (P,K) with A_{μ→ki} = x_μi² a_kμ;  B: (P,K,N);  rung: index of the damping setting that converged.
    """

    a: np.ndarray
    B: np.ndarray
    rung: int = 0

    @staticmethod
    def zeros(P: int, K: int, N: int) -> "EdgeState":
        """A = B = 0: marginals equal to the prior (the start at the smallest Δ, §3.6)."""
        return EdgeState(np.zeros((P, K)), np.zeros((P, K, N)), 0)

    def copy(self) -> "EdgeState":
        return EdgeState(self.a.copy(), self.B.copy(), self.rung)


@dataclass(frozen=True)
class Problem:
    """Validated inputs: X (P,N) float64, X2 = X², y (P,) ±1 float64, center (K,N) float64."""

    X: np.ndarray
    X2: np.ndarray
    y: np.ndarray
    center: np.ndarray

    @property
    def shape(self):
        return self.X.shape[0], self.center.shape[0], self.center.shape[1]


def make_problem(X, y, center) -> Problem:
    """Validate and convert (patterns, labels, reference); raise BPError naming what is wrong."""
    try:
        X = np.array(X, dtype=np.float64, order="C")
        y = np.array(y, dtype=np.float64).reshape(-1) if np.ndim(y) else None
        center = np.array(center, dtype=np.float64, order="C")
    except (TypeError, ValueError) as exc:
        raise BPError(f"inputs must be numeric arrays: {exc}") from None
    if y is None:
        raise BPError("y must be a 1-d array of ±1 labels")
    if center.ndim != 2:
        raise BPError(f"center must have shape (K, N), got {center.shape}")
    K, N = center.shape
    if N < 1 or K < 1:
        raise BPError(f"center must have K ≥ 1 hidden units and N ≥ 1 inputs, got shape {center.shape}")
    if K % 2 != 1:
        raise BPError(f"the number of hidden units K must be odd (majority vote), got K={K}")
    if X.ndim != 2 or X.shape[1] != N:
        raise BPError(f"X must have shape (P, {N}) to match center {center.shape}, got {X.shape}")
    if y.shape != (X.shape[0],):
        raise BPError(f"y must have shape ({X.shape[0]},) to match X, got {y.shape}")
    if not np.all(np.isfinite(X)):
        raise BPError("X contains NaN or inf")
    if not np.all(np.isfinite(center)):
        raise BPError("center contains NaN or inf")
    if not np.all(np.abs(y) == 1):
        bad = int(np.sum(np.abs(y) != 1))
        raise BPError(f"labels y must be ±1 ({bad} entries are not)")
    if X.shape[0] and np.any(np.sum(X * X, axis=1) == 0):
        raise BPError("X has an all-zero pattern: its pre-activations are always 0")
    return Problem(X, X * X, y, center)


def check_delta_beta(Delta, beta):
    Delta = float(Delta)
    beta = float(beta)
    if not (np.isfinite(Delta) and Delta > 0):
        raise BPError(f"the prior width Δ must be finite and > 0, got {Delta}")
    if not beta > 0:
        raise BPError(f"beta must be > 0 (np.inf for the hard constraint), got {beta}")
    return Delta, beta


def damping_ladder(schedule: str, n_blocks: int, damping, P: int):
    """The (n_blocks, η) settings tried in turn (§3.6). damping=None gives the default ladder."""
    if schedule == "block":
        nb0 = max(1, min(int(n_blocks), max(P, 1)))
        nb1 = max(1, min(5 * nb0, max(P, 1)))
        if damping is None:
            return [(nb0, 0.0), (nb0, 0.5), (nb0, 0.8), (nb1, 0.8), (nb1, 0.9), (nb1, 0.95)]
        etas = [damping] if np.ndim(damping) == 0 else list(damping)
        ladder = [(nb0, float(e)) for e in etas]
    elif schedule == "parallel":
        if damping is None:
            return [(1, 0.5), (1, 0.8), (1, 0.9), (1, 0.95), (1, 0.98)]
        etas = [damping] if np.ndim(damping) == 0 else list(damping)
        ladder = [(1, float(e)) for e in etas]
    else:
        raise BPError(f"schedule must be 'block' or 'parallel', got {schedule!r}")
    if not ladder or any(not (0.0 <= e < 1.0) for _, e in ladder):
        raise BPError(f"damping values must lie in [0, 1), got {damping!r}")
    return ladder


@dataclass
class EdgeRun:
    """Outcome of one Δ: final messages, marginal natural parameters and convergence record."""

    state: EdgeState | None
    converged: bool
    sweeps: int
    total_sweeps: int
    n_blocks: int
    eta: float
    error: float
    reason: str


class _Workspace:
    def __init__(self, P, K, N):
        self.Lam = np.empty((K, N))
        self.Xi = np.empty((K, N))
        self.SA = np.empty((K, N))
        self.SB = np.empty((K, N))
        self.omega = np.zeros((P, K))
        self.V = np.ones((P, K))
        self.lnZ = np.zeros(P)
        self.g = np.zeros((P, K))
        self.Gam = np.zeros((P, K))


_PARALLEL_MIN_WORK = 200_000  # edges per kernel call below which one thread is faster than a parallel launch


class _threads:
    """Run small kernel calls on one thread: a parallel launch costs more than it saves on little work
    (and far more on an oversubscribed machine). Restores the caller's numba thread count on exit."""

    def __init__(self):
        self.user = nb.get_num_threads()

    def __call__(self, work):
        nb.set_num_threads(self.user if work >= _PARALLEL_MIN_WORK else 1)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        nb.set_num_threads(self.user)


def sweep(problem: Problem, Delta, beta, eta, blocks, state: EdgeState, ws: _Workspace | None = None):
    """One in-place BP sweep of the messages in `state`, block by block in the given order (§3.6).

    blocks: list of int arrays partitioning range(P) (one block = the parallel schedule). Λ, Ξ are
    rebuilt from the messages first (no drift across sweeps), then for each block: cavity fields and
    output channel of its patterns, new damped messages, and Λ, Ξ updated at once.
    Returns (marginal means m (K,N), smallest cavity precision met, which must stay > 0, §6.2).
    """
    P, K, N = problem.shape
    ws = ws or _Workspace(P, K, N)
    X, X2, y = problem.X, problem.X2, problem.y
    with _threads() as threads:
        threads(P * K * N)
        _message_sums(X2, state.a, state.B, ws.SA, ws.SB)
        np.add(1.0 / Delta, ws.SA, out=ws.Lam)
        np.add(problem.center / Delta, ws.SB, out=ws.Xi)
        minlc = np.inf
        for idx in blocks:
            idx = np.ascontiguousarray(idx, dtype=np.int64)
            ml = np.empty(len(idx))
            threads(len(idx) * K * N)
            _fields_channel(X, X2, idx, y, beta, state.a, state.B, ws.Lam, ws.Xi, ws.omega, ws.V, ws.lnZ,
                            ws.g, ws.Gam, ml)
            _update_block(X, X2, idx, eta, state.a, state.B, ws.Lam, ws.Xi, ws.g, ws.Gam)
            if len(ml):
                minlc = min(minlc, float(ml.min()))
    return ws.Xi / ws.Lam, minlc


def _blocks(rng, P, n_blocks):
    perm = rng.permutation(P).astype(np.int64)
    return [b for b in np.array_split(perm, n_blocks) if len(b)]


def run_edge_bp(problem: Problem, Delta, beta=np.inf, state: EdgeState | None = None, *, schedule="block",
                n_blocks=10, damping=None, tol=1e-8, max_sweeps=1000, patience=200, rng=None,
                progress=None) -> EdgeRun:
    """Iterate the per-edge BP at one Δ to a fixed point (§3.6), restarting with more damping on failure.

    Convergence: max_ki |m_ki − m_ki(previous sweep)| < tol. A setting is abandoned when the marginals
    become non-finite, a cavity precision is ≤ 0, the error grows 10³ above its best, the error has not
    halved in `patience` sweeps, or max_sweeps is reached; the next setting restarts from `state`.
    The ladder starts at state.rung (the setting that worked at the previous Δ of a continuation).
    progress(dict) is called after each sweep if given.
    """
    Delta, beta = check_delta_beta(Delta, beta)
    P, K, N = problem.shape
    if state is None:
        state = EdgeState.zeros(P, K, N)
    if state.a.shape != (P, K) or state.B.shape != (P, K, N):
        raise BPError(f"warm-start state has shapes {state.a.shape}, {state.B.shape}; expected {(P, K)}, {(P, K, N)}")
    if not (np.all(np.isfinite(state.a)) and np.all(np.isfinite(state.B))):
        raise BPError("warm-start state contains NaN or inf")
    if not (tol > 0 and max_sweeps >= 1):
        raise BPError(f"need tol > 0 and max_sweeps ≥ 1, got tol={tol}, max_sweeps={max_sweeps}")
    rng = np.random.default_rng(rng)
    ladder = damping_ladder(schedule, n_blocks, damping, P)
    ws = _Workspace(P, K, N)
    total = 0
    best_fail = None
    start = min(state.rung, len(ladder) - 1)
    for rung in range(start, len(ladder)):
        nbk, eta = ladder[rung]
        cur = state.copy()
        m_prev = None
        best, best_at, err = np.inf, 0, np.inf
        reason = "max_sweeps"
        for it in range(1, max_sweeps + 1):
            blocks = _blocks(rng, P, nbk) if P else []
            m, minlc = sweep(problem, Delta, beta, eta, blocks, cur, ws)
            total += 1
            if not np.all(np.isfinite(m)) or not np.isfinite(minlc) and P:
                reason = "non-finite marginals"
                break
            if P and minlc <= 0:
                reason = f"cavity precision {minlc:.3g} ≤ 0"
                break
            if np.any(ws.Lam <= 0):
                reason = "marginal precision ≤ 0"
                break
            if m_prev is None:
                m_prev = m
                if P == 0:
                    return EdgeRun(cur, True, it, total, nbk, eta, 0.0, "converged")
                continue
            err = float(np.max(np.abs(m - m_prev)))
            m_prev = m
            if progress is not None:
                progress({"sweep": it, "error": err, "eta": eta, "n_blocks": nbk, "Delta": Delta})
            if err < tol:
                return EdgeRun(EdgeState(cur.a, cur.B, rung), True, it, total, nbk, eta, err, "converged")
            if err < 0.5 * best:
                best, best_at = err, it
            elif err > 1e3 * best:
                reason = "error grew 10³× above its best"
                break
            elif it - best_at > patience:
                reason = f"stalled (error {err:.2g} has not halved in {patience} sweeps)"
                break
        ok_state = np.all(np.isfinite(cur.a)) and np.all(np.isfinite(cur.B))
        if ok_state and np.isfinite(err) and (best_fail is None or err < best_fail.error):
            best_fail = EdgeRun(EdgeState(cur.a, cur.B, rung), False, it, total, nbk, eta, err, reason)
        elif best_fail is None:
            best_fail = EdgeRun(None, False, it, total, nbk, eta, err, reason)
    best_fail.total_sweeps = total
    return best_fail


def bethe_terms(problem: Problem, Delta, beta, state: EdgeState):
    """Bethe free entropy F = Σ_μ ln Z_μ + Σ_ki F_ki − Σ_{μki} F_{μ,ki} at the messages `state` (§4).

    Returns (F, sum_ki [(m−w̃)² + v]), the second giving δ(Δ) (§5.1). Uses the small-quantity forms:
    Λ' = Σ_μ A, Ξ' = Σ_μ B are summed directly, never recovered as Λ − 1/Δ.
    """
    Delta, beta = check_delta_beta(Delta, beta)
    P, K, N = problem.shape
    Wt = problem.center
    ws = _Workspace(P, K, N)
    if P == 0:
        SA = np.zeros((K, N))
        SB = np.zeros((K, N))
        lnZ_sum = 0.0
        edge_sum = 0.0
    else:
        with _threads() as threads:
            threads(P * K * N)
            _message_sums(problem.X2, state.a, state.B, ws.SA, ws.SB)
        SA, SB = ws.SA, ws.SB
        Lam = 1.0 / Delta + SA
        Xi = Wt / Delta + SB
        idx = np.arange(P, dtype=np.int64)
        ml = np.empty(P)
        with _threads() as threads:
            threads(P * K * N)
            _fields_channel(problem.X, problem.X2, idx, problem.y, beta, state.a, state.B, Lam, Xi, ws.omega,
                            ws.V, ws.lnZ, ws.g, ws.Gam, ml)
            out = np.empty(P)
            _edge_terms(problem.X2, state.a, state.B, Lam, Xi, out)
        if ml.min() <= 0:
            raise BPError(f"cavity precision {ml.min():.3g} ≤ 0 at the messages given: not a BP fixed point")
        lnZ_sum = float(np.sum(ws.lnZ))
        edge_sum = float(np.sum(out))
    den = 1.0 + Delta * SA
    if np.any(den <= 0):
        raise BPError("1 + Δ Σ_μ A ≤ 0: the marginal precision is not positive")
    F_var = -0.5 * np.log1p(Delta * SA) + (SB * Wt - 0.5 * SA * Wt**2 + 0.5 * Delta * SB**2) / den
    F = lnZ_sum + float(np.sum(F_var)) - edge_sum
    # m − w̃ = Δ(Ξ' − Λ' w̃)/(1 + ΔΛ'),  v = Δ/(1 + ΔΛ'): no cancellation at small Δ
    dm = Delta * (SB - SA * Wt) / den
    v = Delta / den
    sq = float(np.sum(dm**2 + v))
    return F, sq, lnZ_sum
