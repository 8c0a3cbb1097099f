"""Per-edge relaxed BP for the committee machine under a Gaussian prior N(w̃, Δ) (docs/bp.md §2–3, §6).

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
from functools import cached_property

import numba as nb
import numpy as np

from localentropy.committee_sign import check_odd_K
from localentropy.bp.errors import BPError
from localentropy.bp.output import channel_row, logaddexp  # noqa: F401  (numba-callable pieces)

_V_FLOOR = 1e-300  # NaN guard only (§6.2)


# ---------------------------------------------------------------------------------------------------
# numba kernels: arrays and scalars only
#
# Cost model (P=500, K=9, N=784): one sweep touches each of the P·K·N edges a fixed number of times and is
# bounded by moving B (P,K,N) (~28 MB) through memory. The sweep is one compiled call, pattern by
# pattern: the fields of pattern μ read its slab B[μ] (K·N contiguous, stays in L2), the channel runs,
# and the update rewrites the same slab at once; so B is read once and written once per sweep. For ±1
# inputs (pm1) the cavity precision Λ_k − a_kμ does not depend on i, so there is no division per edge;
# for other inputs the cavity means m_{ki→μ} (one division per edge) are kept in a per-chunk (K,N)
# scratch between fields and update. Loops run over the contiguous N axis innermost; `_FAST` lets LLVM vectorise
# the reductions (reassociation) and use FMAs. No nnan/ninf: the finiteness checks rely on NaN/inf.
# error_model="numpy": x/0 gives inf/NaN instead of Python's ZeroDivisionError, whose per-element check
# keeps LLVM from vectorising any loop that divides.

_FAST = {"nsz", "arcp", "contract", "reassoc"}
_TINY = 1e-300  # g, Γ, a below this are set to 0: subnormal numbers cost ~100 cycles per operation, and far-tail
#                 channels (G ∝ e^{−t²/2}) produce them in bulk (a third of B was subnormal on the real data);
#                 the change is below 1e-300 absolute. B = x g/√N + a m then stays normal (or 0).
_CH = 16  # patterns per chunk: the unit of parallel work and of the per-chunk accumulators (fixed, so
#           the summation order, hence the result, does not depend on the number of threads)


@nb.njit(cache=True, fastmath=_FAST, error_model="numpy")
def _fields_pm1(x, xi, b):
    """x² = 1: Σ_i x_i (Ξ_ki − B_{μ→ki}) for one (μ,k). The cavity precision Λ_k − a_kμ does not depend on i
    here, so ω_kμ = N^{-1/2} v Σ_i x (Ξ − B) and V_kμ = v with v = 1/(Λ_k − a_kμ): no division per edge."""
    s = 0.0
    for i in range(x.shape[0]):
        s += x[i] * (xi[i] - b[i])
    return s


@nb.njit(cache=True, fastmath=_FAST, error_model="numpy")
def _fields_gen(x, x2, am, lam, xi, b, mc):
    """Any inputs: Σ_i x m_{ki→μ}, Σ_i x² v_{ki→μ}, and min_i Λ_{ki→μ} for one (μ,k); cavity means into mc."""
    om = 0.0
    vs = 0.0
    for i in range(x.shape[0]):
        r = 1.0 / (lam[i] - x2[i] * am)
        m = (xi[i] - b[i]) * r
        mc[i] = m
        om += x[i] * m
        vs += x2[i] * r
    ml = np.inf
    for i in range(x.shape[0]):
        lc = lam[i] - x2[i] * am
        if lc < ml:
            ml = lc
    return om, vs, ml


@nb.njit(cache=True, fastmath=_FAST, error_model="numpy")
def _update_pm1(x, xi, v, gk, anew, eta, b, dX):
    """B_new = x g/√N + a_new m_{ki→μ} (§3.5, x² = 1), m_{ki→μ} = (Ξ_ki − B_old) v, damped with η into b;
    dX += B_d − B_old."""
    e1 = 1.0 - eta
    for i in range(x.shape[0]):
        bo = b[i]
        bd = eta * bo + e1 * (x[i] * gk + anew * ((xi[i] - bo) * v))
        b[i] = bd
        dX[i] += bd - bo


@nb.njit(cache=True, fastmath=_FAST, error_model="numpy")
def _update_gen(x, x2, gk, anew, da, eta, b, mc, dX, dL):
    """Any inputs: B_new = x g/√N + x² a_new m_{ki→μ}, damped; dX += B_d − B_old, dL += x²(a_d − a_old)."""
    e1 = 1.0 - eta
    for i in range(x.shape[0]):
        bo = b[i]
        bd = eta * bo + e1 * (x[i] * gk + x2[i] * anew * mc[i])
        b[i] = bd
        dX[i] += bd - bo
        dL[i] += x2[i] * da


@nb.njit(cache=True, fastmath=_FAST, error_model="numpy")
def _message_sums(X2, pm1, a, B, SA, SB):
    """SA[k,i] = Σ_μ x_μi² a_kμ,  SB[k,i] = Σ_μ B_{μ→ki}: the incoming precision and field (§3.1).

    Pattern by pattern over contiguous (K,N) slabs of B (one streaming read)."""
    P, K, N = B.shape
    SA[:, :] = 0.0
    SB[:, :] = 0.0
    for mu in range(P):
        for k in range(K):
            am = a[mu, k]
            b = B[mu, k]
            sb = SB[k]
            sa = SA[k]
            for i in range(N):
                sb[i] += b[i]
            if pm1:
                sa[0] += am
            else:
                x2 = X2[mu]
                for i in range(N):
                    sa[i] += x2[i] * am
    if pm1:
        for k in range(K):
            SA[k, 1:] = SA[k, 0]


@nb.njit(cache=True, parallel=True, fastmath=_FAST, error_model="numpy")
def _sweep_kernel(X, X2, pm1, perm, starts, y, beta, eta, invD, WtD, a, B, SA, SB, Lam, Xi, omega, V, lnZ, g, Gam,
                  mlp, mcb, dX, dL, dLk, chv, chm):
    """One sweep (§3.6), block by block over perm[starts[j]:starts[j+1]], in place on (a, B, SA, SB).

    SA, SB on entry: the message sums Σ_μ x² a, Σ_μ B; Λ = 1/Δ + SA, Ξ = w̃/Δ + SB (WtD = w̃/Δ, invD = 1/Δ).
    Per block, chunks of _CH patterns in parallel; per pattern μ: cavity fields ω, V of every unit
    (§3.1–3.2), the output channel (bp.output, §3.3–3.4), then the new damped messages (§3.5) written
    over B[μ]. Each chunk accumulates Σ(B_d − B_old) and Σ x²(a_d − a_old) in its own buffer; at the end
    of the block they are added to SB, SA (chunks in a fixed order) and Λ, Ξ rebuilt (the cavities of a
    block all use the Λ, Ξ from before it). So SA, SB are kept in the small-quantity form (never
    recovered from Λ − 1/Δ) and B is read and written once per sweep. mlp[j]: the smallest cavity
    precision of pattern perm[j]. Workspaces: dX (nchunks,K,N); mcb (cavity means) and dL (nchunks,K,N),
    empty when pm1; dLk (nchunks,K); chv (nchunks,2,K), chm (nchunks,3,K+1,K+1) for the channel.
    """
    P, K, N = B.shape
    sqN = math.sqrt(N)
    e1 = 1.0 - eta
    nbl = starts.shape[0] - 1
    for k in range(K):
        for i in range(N):
            Lam[k, i] = invD + SA[k, i]
            Xi[k, i] = WtD[k, i] + SB[k, i]
    for blk in range(nbl):
        s0 = starts[blk]
        s1 = starts[blk + 1]
        nch = (s1 - s0 + _CH - 1) // _CH  # chunks of ≤ _CH patterns, sizes differing by at most one
        for c in nb.prange(nch):
            j0 = s0 + ((s1 - s0) * c) // nch
            j1 = s0 + ((s1 - s0) * (c + 1)) // nch
            dX[c, :, :] = 0.0
            dLk[c, :] = 0.0
            if not pm1:
                dL[c, :, :] = 0.0
            for jj in range(j0, j1):
                mu = perm[jj]
                ml = np.inf
                for k in range(K):
                    am = a[mu, k]
                    if pm1:  # Λ_ki = Λ_k0 for every i (SA[k] is one value broadcast)
                        lc = Lam[k, 0] - am
                        vk = 1.0 / lc
                        om = vk * _fields_pm1(X[mu], Xi[k], B[mu, k])
                        vs = N * vk
                    else:
                        om, vs, lc = _fields_gen(X[mu], X2[mu], am, Lam[k], Xi[k], B[mu, k], mcb[c, k])
                    ml = min(ml, lc)
                    omega[mu, k] = om / sqN
                    V[mu, k] = max(vs / N, _V_FLOOR)
                mlp[jj] = ml
                lnZ[mu] = channel_row(omega[mu], V[mu], y[mu], beta, chv[c, 0], chv[c, 1], chm[c, 0], chm[c, 1],
                                       chm[c, 2], g[mu], Gam[mu])
                for k in range(K):
                    if abs(g[mu, k]) < _TINY:
                        g[mu, k] = 0.0
                    if abs(Gam[mu, k]) < _TINY:
                        Gam[mu, k] = 0.0
                    aold = a[mu, k]
                    anew = Gam[mu, k] / N
                    ad = eta * aold + e1 * anew
                    if abs(ad) < _TINY:
                        ad = 0.0
                    gk = g[mu, k] / sqN
                    if pm1:
                        _update_pm1(X[mu], Xi[k], 1.0 / (Lam[k, 0] - aold), gk, anew, eta, B[mu, k], dX[c, k])
                    else:
                        _update_gen(X[mu], X2[mu], gk, anew, ad - aold, eta, B[mu, k], mcb[c, k], dX[c, k], dL[c, k])
                    dLk[c, k] += ad - aold
                    a[mu, k] = ad
        # fold the block's changes into the sums (chunks in a fixed order), then Λ, Ξ
        for k in range(K):
            sb = SB[k]
            sa = SA[k]
            for c in range(nch):
                dr = dX[c, k]
                for i in range(N):
                    sb[i] += dr[i]
                if pm1:
                    dk = dLk[c, k]
                    for i in range(N):
                        sa[i] += dk
                else:
                    dl = dL[c, k]
                    for i in range(N):
                        sa[i] += dl[i]
            for i in range(N):
                Lam[k, i] = invD + sa[i]
                Xi[k, i] = WtD[k, i] + sb[i]


@nb.njit(cache=True, fastmath=_FAST, error_model="numpy")
def _edge_row(x2, pm1, am, lam, xi, b):
    """Σ_i F_{μ,ki} for one (μ,k): the edge terms of the Bethe free entropy (§4), in the stable closed form

    F_{μ,ki} = −½ ln(1 + A v) + [B m − ½ A m² + ½ v B²]/(1 + A v),  (m, v) the cavity moments, A = x² a.
    """
    s = 0.0
    for i in range(lam.shape[0]):
        A = am if pm1 else x2[i] * am
        v = 1.0 / (lam[i] - A)
        bi = b[i]
        mc = (xi[i] - bi) * v
        av = A * v
        s += -0.5 * math.log1p(av) + (bi * mc - 0.5 * A * mc * mc + 0.5 * v * bi * bi) / (1.0 + av)
    return s


@nb.njit(cache=True, fastmath=_FAST, error_model="numpy")
def _edge_row_pm1(am, v, xi, b):
    """_edge_row for x² = 1, where A = a and the cavity variance v = 1/(Λ_k − a) do not depend on i:
    Σ_i F = −½ N ln(1 + a v) + Σ_i [B m − ½ a m² + ½ v B²]/(1 + a v), one logarithm per (μ,k)."""
    s = 0.0
    for i in range(xi.shape[0]):
        bi = b[i]
        mc = (xi[i] - bi) * v
        s += bi * mc - 0.5 * am * mc * mc + 0.5 * v * bi * bi
    av = am * v
    return -0.5 * xi.shape[0] * math.log1p(av) + s / (1.0 + av)


@nb.njit(cache=True, parallel=True, fastmath=_FAST, error_model="numpy")
def _bethe_kernel(X, X2, pm1, y, beta, a, B, Lam, Xi, omega, V, lnZ, g, Gam, mlp, edge):
    """For every pattern μ: cavity fields, output channel (lnZ[μ], g, Γ) and edge[μ] = Σ_ki F_{μ,ki} (§4) at
    the messages (a, B), with Λ, Ξ built from them; mlp[μ]: smallest cavity precision of pattern μ."""
    P, K, N = B.shape
    sqN = math.sqrt(N)
    nch = (P + _CH - 1) // _CH
    for c in nb.prange(nch):
        mc = np.empty(N)
        lnp = np.empty(K)
        lnq = np.empty(K)
        L = np.empty((K + 1, K + 1))
        S = np.empty((K + 1, K + 1))
        Sc = np.empty((K + 1, K + 1))
        for mu in range(c * _CH, min(P, (c + 1) * _CH)):
            ml = np.inf
            s = 0.0
            for k in range(K):
                am = a[mu, k]
                if pm1:
                    lc = Lam[k, 0] - am
                    vk = 1.0 / lc
                    om = vk * _fields_pm1(X[mu], Xi[k], B[mu, k])
                    vs = N * vk
                    s += _edge_row_pm1(am, vk, Xi[k], B[mu, k])
                else:
                    om, vs, lc = _fields_gen(X[mu], X2[mu], am, Lam[k], Xi[k], B[mu, k], mc)
                    s += _edge_row(X2[mu], pm1, am, Lam[k], Xi[k], B[mu, k])
                ml = min(ml, lc)
                omega[mu, k] = om / sqN
                V[mu, k] = max(vs / N, _V_FLOOR)
            mlp[mu] = ml
            edge[mu] = s
            lnZ[mu] = channel_row(omega[mu], V[mu], y[mu], beta, lnp, lnq, L, S, Sc, g[mu], Gam[mu])


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

    @cached_property
    def pm1(self) -> bool:
        """x² = 1 everywhere (±1 inputs): A_{μ→ki} = a_kμ does not depend on i and the kernels skip X²."""
        return bool(np.all(self.X2 == 1.0))


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
    check_odd_K(K, BPError)
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
    """Buffers reused across the sweeps of one run, and the message sums carried from one sweep to the next."""

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
        self.mlp = np.empty(P)
        self.sums_of = None  # (problem, B) whose message sums SA, SB hold, if any
        self._nch = -1

    def chunks(self, nch, K, N, pm1):
        """Per-chunk buffers of the sweep kernel for up to nch chunks."""
        if nch != self._nch or pm1 != self._pm1:
            self._nch, self._pm1 = nch, pm1
            self.mcb = np.empty((0 if pm1 else nch, K, N))
            self.dX = np.empty((nch, K, N))
            self.dL = np.empty((0 if pm1 else nch, K, N))
            self.dLk = np.empty((nch, K))
            self.chv = np.empty((nch, 2, K))
            self.chm = np.empty((nch, 3, K + 1, K + 1))


_PARALLEL_MIN_WORK = 200_000  # edges per parallel region below which one thread is faster than a parallel launch


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
    built from the message sums Σ_μ x²a, Σ_μ B, then for each block: cavity fields and output channel of
    its patterns, new damped messages, and the sums (hence Λ, Ξ) updated at once. The sums are summed
    afresh from the messages (one extra read of B) unless `ws` holds the ones the previous sweep on this
    same (problem, state.B) left: within a run they are carried from sweep to sweep, updated by the
    message changes (rounding drift ~1e-16 relative per sweep, on the small quantities, not on Λ, Ξ),
    and B is read and written once per sweep; every run_edge_bp setting starts from fresh sums.
    Returns (marginal means m (K,N), smallest cavity precision met, which must stay > 0, §6.2).
    """
    P, K, N = problem.shape
    ws = ws or _Workspace(P, K, N)
    X, X2, y, pm1 = problem.X, problem.X2, problem.y, problem.pm1
    blocks = [np.asarray(bk, dtype=np.int64) for bk in blocks if len(bk)]
    sizes = [len(bk) for bk in blocks]
    if sum(sizes) != P or (P and not np.array_equal(np.sort(np.concatenate(blocks)), np.arange(P))):
        raise BPError("blocks must partition range(P): every pattern exactly once per sweep")
    if P == 0:
        ws.SA[:] = 0.0
        ws.SB[:] = 0.0
        np.add(1.0 / Delta, ws.SA, out=ws.Lam)
        np.add(problem.center / Delta, ws.SB, out=ws.Xi)
        return ws.Xi / ws.Lam, np.inf
    perm = np.concatenate(blocks)
    starts = np.zeros(len(blocks) + 1, dtype=np.int64)
    starts[1:] = np.cumsum(sizes)
    with _threads() as threads:
        if not (ws.sums_of is not None and ws.sums_of[0] is problem and ws.sums_of[1] is state.B):
            threads(0)
            _message_sums(X2, pm1, state.a, state.B, ws.SA, ws.SB)
        ws.sums_of = None
        ws.chunks((max(sizes) + _CH - 1) // _CH, K, N, pm1)
        threads(max(sizes) * K * N)
        _sweep_kernel(X, X2, pm1, perm, starts, y, float(beta), float(eta), 1.0 / Delta, problem.center / Delta,
                      state.a, state.B, ws.SA, ws.SB, ws.Lam, ws.Xi, ws.omega, ws.V, ws.lnZ, ws.g, ws.Gam, ws.mlp,
                      ws.mcb, ws.dX, ws.dL, ws.dLk, ws.chv, ws.chm)
        ws.sums_of = (problem, state.B)
    return ws.Xi / ws.Lam, float(ws.mlp.min())


def random_partition(rng, P, n_blocks):
    """A fresh random partition of range(P) into n_blocks blocks (the block schedule, §3.6) as (perm, starts):
    block j is perm[starts[j]:starts[j+1]]; sizes as np.array_split (the first P mod n_blocks one longer)."""
    perm = rng.permutation(P).astype(np.int64)
    n = max(1, int(n_blocks))
    q, extra = divmod(P, n)
    starts = np.zeros(n + 1, dtype=np.int64)
    starts[1:] = np.cumsum(np.where(np.arange(n) < extra, q + 1, q))
    return perm, starts


def random_blocks(rng, P, n_blocks):
    """`random_partition` as a list of its non-empty blocks (same random stream)."""
    perm, starts = random_partition(rng, P, n_blocks)
    return [perm[a:b] for a, b in zip(starts[:-1], starts[1:]) if b > a]


def iterate_setting(sweep_once, P, tol, max_sweeps, patience, progress=None, info=None):
    """Sweep at one ladder setting (n_blocks, η) until the marginals converge or a failure rule fires (§3.6).

    The rules shared by bp.edge.run_edge_bp and bp.amp.run_amp. sweep_once(it) runs sweep `it` (1, 2, ...)
    in place and returns (marginal means m, smallest cavity precision met, marginal precisions Λ).
    Converged: max |m − m(previous sweep)| < tol (at once when P = 0). Failed: non-finite marginals, a
    cavity or marginal precision ≤ 0, the error 10³× above its best, no halving in `patience` sweeps,
    or max_sweeps. progress({"sweep", "error", **info}) after each sweep that measures an error.
    Returns (converged, sweeps run, last error (inf if none was measured), reason).
    """
    m_prev = None
    best, best_at, err = np.inf, 0, np.inf
    for it in range(1, max_sweeps + 1):
        m, minlc, Lam = sweep_once(it)
        if not np.all(np.isfinite(m)) or (P and not np.isfinite(minlc)):
            return False, it, err, "non-finite marginals"
        if P and minlc <= 0:
            return False, it, err, f"cavity precision {minlc:.3g} ≤ 0"
        if np.any(Lam <= 0):
            return False, it, err, "marginal precision ≤ 0"
        if m_prev is None:
            m_prev = m
            if P == 0:
                return True, it, 0.0, "converged"
            continue
        err = float(np.max(np.abs(m - m_prev)))
        m_prev = m
        if progress is not None:
            progress({"sweep": it, "error": err, **(info or {})})
        if err < tol:
            return True, it, err, "converged"
        if err < 0.5 * best:
            best, best_at = err, it
        elif err > 1e3 * best:
            return False, it, err, "error grew 10³× above its best"
        elif it - best_at > patience:
            return False, it, err, f"stalled (error {err:.2g} has not halved in {patience} sweeps)"
    return False, max_sweeps, err, "max_sweeps"


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

        def one_sweep(it):
            m, minlc = sweep(problem, Delta, beta, eta, random_blocks(rng, P, nbk) if P else [], cur, ws)
            return m, minlc, ws.Lam

        converged, it, err, reason = iterate_setting(one_sweep, P, tol, max_sweeps, patience, progress,
                                                     {"eta": eta, "n_blocks": nbk, "Delta": Delta})
        total += it
        if converged:  # (with P = 0 the state comes back as given, its rung included)
            return EdgeRun(cur if P == 0 else EdgeState(cur.a, cur.B, rung), True, it, total, nbk, eta, err, reason)
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
            threads(0)
            _message_sums(problem.X2, problem.pm1, state.a, state.B, ws.SA, ws.SB)
            SA, SB = ws.SA, ws.SB
            Lam = 1.0 / Delta + SA
            Xi = Wt / Delta + SB
            out = np.empty(P)
            threads(P * K * N)
            _bethe_kernel(problem.X, problem.X2, problem.pm1, problem.y, beta, state.a, state.B, Lam, Xi, ws.omega,
                          ws.V, ws.lnZ, ws.g, ws.Gam, ws.mlp, out)
        if ws.mlp.min() <= 0:
            raise BPError(f"cavity precision {ws.mlp.min():.3g} ≤ 0 at the messages given: not a BP fixed point")
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
