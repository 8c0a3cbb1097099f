"""Node-level (AMP / TAP) form of the per-edge r-BP of bp.edge, with the Onsager correction (docs/bp.md §3, §4).

Derivation [DERIVED here; checked against bp.edge in tests/test_bp_amp.py]. At a fixed point of the
per-edge equations (§3.1, §3.5), with A_{μ→ki} = x² Γ_kμ/N and B_{μ→ki} = x g_kμ/√N + A_{μ→ki} m_{ki→μ}:

    m_{ki→μ} (Λ_ki − A_{μ→ki}) = Ξ_ki − B_{μ→ki}   ⇒   m_{ki→μ} = m_ki − v_ki x_μi g_kμ/√N      (exact)

so every per-edge quantity is a function of node quantities (K,N) and pattern quantities (P,K):

    a_ki = Σ_μ x² Γ_kμ/N,   b_ki = Σ_μ x g_kμ/√N,   c_ki = Σ_μ x³ Γ_kμ g_kμ/N^{3/2}
    Λ_ki = 1/Δ + a_ki,  v_ki = 1/Λ_ki,  m_ki = w̃_ki + Δ (b_ki − v_ki c_ki)                          (exact)
    ω_kμ = N^{-1/2} Σ_i x m_ki − g_kμ N^{-1} Σ_i x² v_ki            (Onsager reaction term)
    V_kμ = N^{-1} Σ_i x² / (Λ_ki − x² Γ_kμ/N)                      (= 1/(Λ_k − Γ_kμ/N) for ±1 inputs)

and (g, Γ) come from the same output channel (bp.output, §3.3–3.4) at (ω, V). These are the per-edge
fixed-point equations rewritten, not an expansion: the AMP fixed point *is* the per-edge fixed point
(to the convergence tolerance, not just O(1/N)), at O(PK + KN) memory and O(PKN) flops per sweep with
no (P,K,N) array. The iteration dynamics differ from bp.edge (messages here are (g, Γ) only).

Bethe free entropy at node level [DERIVED from §4 by substituting the messages above; u = x g/√N]:

    F_{μ,ki} = ½ ln(1 − A v) + u m − ½ v u² + ½ A m² − A m v u + ½ A v² u²
    Σ F_{μ,ki} = Σ_{μki} ½ ln(1 − A v) + Σ m b − ½ Σ v s + ½ Σ a m² − Σ m v c + ½ Σ v² e,
    s_ki = Σ_μ x² g²/N,  e_ki = Σ_μ x⁴ Γ g²/N²;   Σ_μ B_{μ→ki} = b + a m − v c,   Σ_μ A_{μ→ki} = a,

and F = Σ_μ ln Z_μ + Σ_ki F_ki − Σ F_{μ,ki} with F_ki of §4. At a fixed point this equals
bp.edge.bethe_terms at the corresponding per-edge messages.

Schedule, damping ladder, convergence and positivity checks are those of bp.edge (§3.6, §6.2).
Numba kernels (serial, cache=True) are the default; `sweep_numpy` / `bethe_numpy` are the oracles.
Node-level iterations can fail on correlated images (docs/bp.md §8.3); measured on the real Dress/Coat
training set it does with the block schedule (numbers in the module's tests and benchmarks/bench_bp.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba as nb
import numpy as np

from localentropy.bp.edge import EdgeState, Problem, check_delta_beta, damping_ladder, iterate_setting, random_partition
from localentropy.bp.errors import BPError
from localentropy.bp.output import channel_row, output_channel_numpy
from localentropy.bp.result import FreeEntropy, check_inputs

_V_FLOOR = 1e-300  # NaN guard only (§6.2)
_REBUILD_EVERY = 10  # sweeps between rebuilds of the node sums from the messages (rounding drift)


# ---------------------------------------------------------------------------------------------------
# numba kernels: arrays and scalars only


_FAST_MARG = {"contract"}  # FMAs only: the same expression is evaluated in every order-independent way


@nb.njit(cache=True)
def _marginals(center, Delta, a, b, c, Lam, m, v):
    """Λ = 1/Δ + a, v = Δ/(1 + Δa), m = w̃ + Δ(b − v c): the exact node form of §3.1 (see module doc)."""
    K, N = center.shape
    for k in range(K):
        for i in range(N):
            Lam[k, i] = 1.0 / Delta + a[k, i]
            vi = Delta / (1.0 + Delta * a[k, i])
            v[k, i] = vi
            m[k, i] = center[k, i] + Delta * (b[k, i] - vi * c[k, i])


@nb.njit(cache=True, fastmath=_FAST_MARG)
def _marginals_pm1(center, Delta, a, b, c, Lam, m, v):
    """_marginals for x² = 1, where a_ki = a_k0 for every i (only column 0 is read): v_k and Λ_k once per
    unit, no division per weight; fills column 0 of Λ and v (the sweep fills the rest at its end)."""
    K, N = center.shape
    for k in range(K):
        ak = a[k, 0]
        vk = Delta / (1.0 + Delta * ak)
        Lam[k, 0] = 1.0 / Delta + ak
        v[k, 0] = vk
        dv = Delta * vk
        mk = m[k]
        ck = c[k]
        bk = b[k]
        wk = center[k]
        for i in range(N):
            mk[i] = wk[i] + (Delta * bk[i] - dv * ck[i])


@nb.njit(cache=True)
def _fields_channel(X, X2, pm1, idx, j0, j1, y, beta, m, v, Lam, g, Gam, omega, V, lnZ, gn, Gn):
    """For patterns idx[j0:j1]: Onsager-corrected cavity fields ω, exact cavity variances V, then the
    output channel (bp.output.channel_row) into lnZ[μ], gn[μ], Gn[μ]. Returns min cavity precision."""
    N = X.shape[1]
    K = m.shape[0]
    sqN = math.sqrt(N)
    lnp = np.empty(K)
    lnq = np.empty(K)
    L = np.empty((K + 1, K + 1))
    S = np.empty((K + 1, K + 1))
    Sc = np.empty((K + 1, K + 1))
    minlc = np.inf
    for jj in range(j0, j1):
        mu = idx[jj]
        for k in range(K):
            A = Gam[mu, k] / N
            om = 0.0
            os = 0.0
            if pm1:  # x² = 1: Λ_ki, v_ki do not depend on i (a_ki = Σ_μ Γ/N)
                om = _dot(X[mu], m[k])
                os = N * v[k, 0]
                lc = Lam[k, 0] - A
                Vk = 1.0 / lc
            else:
                vs = 0.0
                lc = np.inf
                for i in range(N):
                    x2 = X2[mu, i]
                    om += X[mu, i] * m[k, i]
                    os += x2 * v[k, i]
                    li = Lam[k, i] - x2 * A
                    lc = min(lc, li)
                    vs += x2 / li
                Vk = vs / N
            minlc = min(minlc, lc)
            omega[mu, k] = om / sqN - g[mu, k] * os / N
            V[mu, k] = max(Vk, _V_FLOOR)
        lnZ[mu] = channel_row(omega[mu], V[mu], y[mu], beta, lnp, lnq, L, S, Sc, gn[mu], Gn[mu])
    return minlc


_FAST = {"reassoc", "contract"}  # lets LLVM vectorise the dot-product reductions; no nnan/ninf (checks need them)


@nb.njit(cache=True, fastmath=_FAST)
def _dot(x, y):
    """Σ_i x_i y_i of two contiguous rows."""
    s = 0.0
    for i in range(x.shape[0]):
        s += x[i] * y[i]
    return s


@nb.njit(cache=True)
def _axpy(alpha, x, y):
    """y += α x, rows of length N."""
    for i in range(x.shape[0]):
        y[i] += alpha * x[i]


@nb.njit(cache=True)
def _axpy2(alpha, beta, x, y, z):
    """y += α x and z += β x in one pass over x (rows of length N)."""
    for i in range(x.shape[0]):
        xi = x[i]
        y[i] += alpha * xi
        z[i] += beta * xi


@nb.njit(cache=True)
def _node_sums(X, X2, X3, pm1, g, Gam, a, b, c):
    """a = Σ_μ x² Γ/N, b = Σ_μ x g/√N, c = Σ_μ x³ Γ g/N^{3/2}, rebuilt from the pattern messages by row
    axpys (for x² = 1 only a_k0, then spread). X3 = x³ (unused if pm1)."""
    P, N = X.shape
    K = g.shape[1]
    sqN = math.sqrt(N)
    a[:, :] = 0.0
    b[:, :] = 0.0
    c[:, :] = 0.0
    for mu in range(P):
        for k in range(K):
            gs = g[mu, k] / sqN
            Ags = Gam[mu, k] / N * gs
            if pm1:
                _axpy2(gs, Ags, X[mu], b[k], c[k])
                a[k, 0] += Gam[mu, k] / N
            else:
                _axpy(gs, X[mu], b[k])
                _axpy(Ags, X3[mu], c[k])
                _axpy(Gam[mu, k] / N, X2[mu], a[k])
    if pm1:
        for k in range(K):
            a[k, 1:] = a[k, 0]


@nb.njit(cache=True)
def _sweep_kernel(X, X2, X3, pm1, y, beta, center, Delta, eta, perm, starts, g, Gam, a, b, c, Lam, m, v, rebuild):
    """One AMP sweep, block by block over perm[starts[j]:starts[j+1]] (§3.6), in place on g, Γ (P,K).

    If rebuild, node sums a, b, c are first rebuilt from (g, Γ) (else they carry over from the previous
    sweep, whose fold-ins kept them current; periodic rebuilds stop rounding drift). Per block: marginals (m, v); Onsager-
    corrected fields ω = x·m/√N − g (x²·v)/N and exact V; the output channel; damping; fold-in of the
    change into a, b, c. Row dot products and axpys only: no (P,K,N) array, no BLAS call (a threaded
    BLAS call on these small products costs more than it saves on a busy machine). X3 = x³ (unused if pm1).
    Ends with the marginals of the new messages in (Lam, m, v); returns the smallest cavity precision.
    """
    P, N = X.shape
    K = g.shape[1]
    sqN = math.sqrt(N)
    if rebuild:  # node sums from scratch
        _node_sums(X, X2, X3, pm1, g, Gam, a, b, c)
    lnp = np.empty(K)
    lnq = np.empty(K)
    L = np.empty((K + 1, K + 1))
    S = np.empty((K + 1, K + 1))
    Sc = np.empty((K + 1, K + 1))
    om = np.empty(K)
    Vb = np.empty(K)
    minlc = np.inf
    nmax = 0
    for j in range(starts.shape[0] - 1):
        nmax = max(nmax, starts[j + 1] - starts[j])
    gn = np.empty((nmax, K))
    Gn = np.empty((nmax, K))
    for j in range(starts.shape[0] - 1):
        j0 = starts[j]
        j1 = starts[j + 1]
        if j1 == j0:
            continue
        if pm1:
            _marginals_pm1(center, Delta, a, b, c, Lam, m, v)
        else:
            _marginals(center, Delta, a, b, c, Lam, m, v)
        for jj in range(j0, j1):
            mu = perm[jj]
            for k in range(K):
                A = Gam[mu, k] / N
                if pm1:
                    om[k] = _dot(X[mu], m[k]) / sqN - g[mu, k] * v[k, 0]
                    lc = Lam[k, 0] - A
                    minlc = min(minlc, lc)
                    Vb[k] = max(1.0 / lc, _V_FLOOR)
                else:
                    om[k] = _dot(X[mu], m[k]) / sqN - g[mu, k] * _dot(X2[mu], v[k]) / N
                    vs = 0.0
                    for i in range(N):
                        x2 = X2[mu, i]
                        li = Lam[k, i] - x2 * A
                        minlc = min(minlc, li)
                        vs += x2 / li
                    Vb[k] = max(vs / N, _V_FLOOR)
            channel_row(om, Vb, y[mu], beta, lnp, lnq, L, S, Sc, gn[jj - j0], Gn[jj - j0])
        for jj in range(j0, j1):
            mu = perm[jj]
            for k in range(K):
                g0 = g[mu, k]
                G0 = Gam[mu, k]
                gd = eta * g0 + (1.0 - eta) * gn[jj - j0, k]
                Gd = eta * G0 + (1.0 - eta) * Gn[jj - j0, k]
                dg = (gd - g0) / sqN
                dAg = (Gd * gd - G0 * g0) / (N * sqN)
                dA = (Gd - G0) / N
                if pm1:  # a_ki = a_k for all i: keep it in a[k, 0], spread before the next marginals
                    _axpy2(dg, dAg, X[mu], b[k], c[k])
                    a[k, 0] += dA
                else:
                    _axpy(dg, X[mu], b[k])
                    _axpy(dAg, X3[mu], c[k])
                    _axpy(dA, X2[mu], a[k])
                g[mu, k] = gd
                Gam[mu, k] = Gd
    if pm1:  # a_ki = a_k0 was kept in column 0 during the sweep
        for k in range(K):
            a[k, 1:] = a[k, 0]
    _marginals(center, Delta, a, b, c, Lam, m, v)
    return minlc


@nb.njit(cache=True)
def _edge_log_sum(X2, Gam, v, pm1):
    """Σ_{μki} ½ ln(1 − A_{μ→ki} v_ki), A = x² Γ/N: the normalisation part of the edge terms (§4)."""
    P, N = X2.shape
    K = Gam.shape[1]
    s = 0.0
    if pm1:  # x² = 1, v_ki = v_k: N identical terms per (μ, k)
        for mu in range(P):
            for k in range(K):
                s += 0.5 * N * math.log1p(-Gam[mu, k] / N * v[k, 0])
        return s
    for mu in range(P):
        for k in range(K):
            A = Gam[mu, k] / N
            for i in range(N):
                s += 0.5 * math.log1p(-X2[mu, i] * A * v[k, i])
    return s


# ---------------------------------------------------------------------------------------------------
# state and numpy oracle


@dataclass(frozen=True)
class AMPState:
    """Pattern messages of the node-level BP, for warm starts (continuation in Δ, §3.6).

    g, Gam: (P,K) output-channel derivatives (the per-edge messages are A = x²Γ/N, B = x g/√N + A m_{ki→μ});
    rung: index of the damping setting that converged last (the ladder of bp.edge.damping_ladder).
    """

    g: np.ndarray
    Gam: np.ndarray
    rung: int = 0

    @staticmethod
    def zeros(P: int, K: int) -> "AMPState":
        """g = Γ = 0: marginals equal to the prior (the start at the smallest Δ, §3.6)."""
        return AMPState(np.zeros((P, K)), np.zeros((P, K)), 0)

    def copy(self) -> "AMPState":
        return AMPState(self.g.copy(), self.Gam.copy(), self.rung)


def node_quantities_numpy(X, Wt, Delta, g, Gam):
    """(a, b, c, Λ, m, v) of the module docstring, in numpy."""
    P, N = X.shape
    X2 = X * X
    A = Gam / N
    a = A.T @ X2
    b = (g.T @ X) / math.sqrt(N)
    c = ((A * g).T @ (X2 * X)) / math.sqrt(N)
    v = Delta / (1.0 + Delta * a)
    return a, b, c, 1.0 / Delta + a, Wt + Delta * (b - v * c), v


def fields_numpy(X, Delta, Wt, idx, g, Gam, a, b, c):
    """Onsager-corrected ω, exact V and smallest cavity precision for the patterns idx (numpy)."""
    N = X.shape[1]
    X2 = X * X
    v = Delta / (1.0 + Delta * a)
    m = Wt + Delta * (b - v * c)
    Lam = 1.0 / Delta + a
    Lc = Lam[None] - X2[idx, None, :] * (Gam[idx] / N)[:, :, None]  # (b,K,N)
    V = np.maximum(np.einsum("bkn,bn->bk", 1.0 / Lc, X2[idx]) / N, _V_FLOOR)
    omega = X[idx] @ m.T / math.sqrt(N) - g[idx] * (X2[idx] @ v.T) / N
    return omega, V, float(Lc.min()) if Lc.size else np.inf


def sweep_numpy(X, y, Wt, Delta, beta, eta, blocks, g, Gam):
    """Plain-numpy oracle of one AMP sweep, in place on (g, Γ) (P,K). Returns (m, v, min cavity precision)."""
    X = np.asarray(X, dtype=np.float64)
    N = X.shape[1]
    X2 = X * X
    a, b, c, _, m, v = node_quantities_numpy(X, Wt, Delta, g, Gam)
    minlc = np.inf
    for idx in blocks:
        omega, V, ml = fields_numpy(X, Delta, Wt, idx, g, Gam, a, b, c)
        minlc = min(minlc, ml)
        _, gn, Gn = output_channel_numpy(omega, V, y[idx], beta)
        gd = eta * g[idx] + (1 - eta) * gn
        Gd = eta * Gam[idx] + (1 - eta) * Gn
        a = a + ((Gd - Gam[idx]) / N).T @ X2[idx]
        b = b + (gd - g[idx]).T @ X[idx] / math.sqrt(N)
        c = c + ((Gd * gd - Gam[idx] * g[idx]) / N).T @ (X2[idx] * X[idx]) / math.sqrt(N)
        g[idx] = gd
        Gam[idx] = Gd
    v = Delta / (1.0 + Delta * a)
    return Wt + Delta * (b - v * c), v, minlc


def bethe_numpy(X, y, Wt, Delta, beta, g, Gam):
    """Node-level Bethe free entropy (module docstring) in numpy: (F, Σ_ki[(m−w̃)² + v], Σ_μ ln Z_μ)."""
    X = np.asarray(X, dtype=np.float64)
    P, N = X.shape
    X2 = X * X
    a, b, c, _, m, v = node_quantities_numpy(X, Wt, Delta, g, Gam)
    if P:
        omega, V, _ = fields_numpy(X, Delta, Wt, np.arange(P), g, Gam, a, b, c)
        lnZ, _, _ = output_channel_numpy(omega, V, y, beta)
    else:
        lnZ = np.zeros(0)
    A = Gam / N
    s = (g**2).T @ X2 / N
    e = (A * g**2).T @ (X2 * X2) / N
    logs = 0.5 * np.sum(np.log1p(-X2[:, None, :] * A[:, :, None] * v[None]))
    edge = logs + np.sum(m * b) - 0.5 * np.sum(v * s) + 0.5 * np.sum(a * m**2) - np.sum(m * v * c) \
        + 0.5 * np.sum(v**2 * e)
    return _assemble(Wt, Delta, float(np.sum(lnZ)), edge, a, b, c, m, v)


def _assemble(Wt, Delta, lnZ_sum, edge_sum, a, b, c, m, v):
    """F = Σ ln Z_μ + Σ F_ki − Σ F_{μ,ki}, with F_ki of §4 at Λ' = a, Ξ' = b + a m − v c (small quantities)."""
    Xp = b + a * m - v * c
    den = 1.0 + Delta * a
    if np.any(den <= 0):
        raise BPError("1 + Δ Σ_μ A ≤ 0: the marginal precision is not positive")
    F_var = -0.5 * np.log1p(Delta * a) + (Xp * Wt - 0.5 * a * Wt**2 + 0.5 * Delta * Xp**2) / den
    F = lnZ_sum + float(np.sum(F_var)) - edge_sum
    dm = Delta * (b - v * c)  # m − w̃ without cancellation at small Δ
    return F, float(np.sum(dm**2 + v)), lnZ_sum


# ---------------------------------------------------------------------------------------------------
# compiled driver


class _Workspace:
    def __init__(self, P, K, N):
        self.a = np.zeros((K, N))
        self.b = np.zeros((K, N))
        self.c = np.zeros((K, N))
        self.Lam = np.empty((K, N))
        self.m = np.empty((K, N))
        self.v = np.empty((K, N))
        self.omega = np.zeros((P, K))
        self.V = np.ones((P, K))
        self.lnZ = np.zeros(P)
        self.gn = np.zeros((P, K))
        self.Gn = np.zeros((P, K))


def sweep(problem: Problem, Delta, beta, eta, blocks, state: AMPState, ws: _Workspace | None = None, pm1=None,
          rebuild=True):
    """One compiled AMP sweep in place on state.g, state.Gam, block by block in the given order (§3.6).

    blocks: list of int arrays partitioning range(P). rebuild=False reuses the node sums left in `ws` by
    the previous sweep on the same state and Δ (they are current after its fold-ins).
    Returns (m (K,N), v (K,N), min cavity precision).
    """
    m, v, minlc = sweep_partition(problem, Delta, beta, eta, *_partition(blocks), state, ws, pm1, rebuild)
    return m.copy(), v.copy(), minlc


def _partition(blocks):
    """(perm, starts) of a list of blocks."""
    blocks = [np.asarray(bk, dtype=np.int64) for bk in blocks if len(bk)]
    perm = np.concatenate(blocks) if blocks else np.zeros(0, dtype=np.int64)
    starts = np.zeros(len(blocks) + 1, dtype=np.int64)
    starts[1:] = np.cumsum([len(bk) for bk in blocks])
    return perm, starts


def sweep_partition(problem: Problem, Delta, beta, eta, perm, starts, state: AMPState, ws: _Workspace | None = None,
                    pm1=None, rebuild=True, X3=None):
    """`sweep` with the blocks given as (perm, starts) (bp.edge.random_partition); X3 = x³ if precomputed.
    Returns the marginals in the workspace's own arrays (m, v: overwritten by the next sweep)."""
    P, K, N = problem.shape
    ws = ws or _Workspace(P, K, N)
    pm1 = problem.pm1 if pm1 is None else pm1
    if X3 is None:
        X3 = problem.X if pm1 else problem.X2 * problem.X
    minlc = _sweep_kernel(problem.X, problem.X2, X3, pm1, problem.y, float(beta), problem.center, float(Delta),
                          float(eta), perm, starts, state.g, state.Gam, ws.a, ws.b, ws.c, ws.Lam, ws.m, ws.v,
                          bool(rebuild))
    return ws.m, ws.v, float(minlc)


def bethe_terms(problem: Problem, Delta, beta, state: AMPState):
    """Node-level Bethe free entropy at the messages `state` (compiled): (F, Σ_ki[(m−w̃)² + v], Σ_μ ln Z_μ)."""
    Delta, beta = check_delta_beta(Delta, beta)
    P, K, N = problem.shape
    ws = _Workspace(P, K, N)
    g, Gam = state.g, state.Gam
    X3 = problem.X if problem.pm1 else problem.X2 * problem.X
    _node_sums(problem.X, problem.X2, X3, problem.pm1, g, Gam, ws.a, ws.b, ws.c)
    _marginals(problem.center, Delta, ws.a, ws.b, ws.c, ws.Lam, ws.m, ws.v)
    a, b, c, m, v = ws.a, ws.b, ws.c, ws.m, ws.v
    if P:
        idx = np.arange(P, dtype=np.int64)
        ml = _fields_channel(problem.X, problem.X2, problem.pm1, idx, 0, P, problem.y, beta, m, v, ws.Lam,
                             g, Gam, ws.omega, ws.V, ws.lnZ, ws.gn, ws.Gn)
        if ml <= 0:
            raise BPError(f"cavity precision {ml:.3g} ≤ 0 at the messages given: not a BP fixed point")
        lnZ_sum = float(np.sum(ws.lnZ))
        X2 = problem.X2
        A = Gam / N
        if problem.pm1:  # x² = 1: per-unit sums broadcast over i (no threaded BLAS call)
            s = np.broadcast_to((g**2).sum(axis=0)[:, None] / N, (K, N))
            e = np.broadcast_to((A * g**2).sum(axis=0)[:, None] / N, (K, N))
        else:
            s = (g**2).T @ X2 / N
            e = (A * g**2).T @ (X2 * X2) / N
        logs = _edge_log_sum(X2, Gam, v, problem.pm1)
        edge = logs + np.sum(m * b) - 0.5 * np.sum(v * s) + 0.5 * np.sum(a * m**2) - np.sum(m * v * c) \
            + 0.5 * np.sum(v**2 * e)
    else:
        lnZ_sum, edge = 0.0, 0.0
    return _assemble(problem.center, Delta, lnZ_sum, float(edge), a, b, c, m, v)


@dataclass
class AMPRun:
    """Outcome of one Δ, as bp.edge.EdgeRun."""

    state: AMPState | None
    converged: bool
    sweeps: int
    total_sweeps: int
    n_blocks: int
    eta: float
    error: float
    reason: str


def run_amp(problem: Problem, Delta, beta=np.inf, state: AMPState | None = None, *, schedule="block", n_blocks=10,
            damping=None, tol=1e-7, max_sweeps=1000, patience=200, rng=None, progress=None) -> AMPRun:
    """Iterate the node-level BP at one Δ to a fixed point, with the damping ladder and failure rules of
    bp.edge.run_edge_bp (bp.edge.iterate_setting, §3.6): non-finite marginals, a cavity precision ≤ 0, error
    10³× above its best, no halving in `patience` sweeps, or max_sweeps restart from `state` with the next
    setting."""
    Delta, beta = check_delta_beta(Delta, beta)
    P, K, N = problem.shape
    if state is None:
        state = AMPState.zeros(P, K)
    if not isinstance(state, AMPState):
        raise BPError(f"state must be an AMPState (the .state of a method='amp' result), got {type(state).__name__}")
    if state.g.shape != (P, K) or state.Gam.shape != (P, K):
        raise BPError(f"warm-start state has shapes {state.g.shape}, {state.Gam.shape}; expected {(P, K)}")
    if not (np.all(np.isfinite(state.g)) and np.all(np.isfinite(state.Gam))):
        raise BPError("warm-start state contains NaN or inf")
    if not (tol > 0 and max_sweeps >= 1):
        raise BPError(f"need tol > 0 and max_sweeps ≥ 1, got tol={tol}, max_sweeps={max_sweeps}")
    rng = np.random.default_rng(rng)
    ladder = damping_ladder(schedule, n_blocks, damping, P)
    ws = _Workspace(P, K, N)
    pm1 = problem.pm1
    X3 = problem.X if pm1 else problem.X2 * problem.X
    total = 0
    best_fail = None
    for rung in range(min(state.rung, len(ladder) - 1), len(ladder)):
        nbk, eta = ladder[rung]
        cur = state.copy()

        def one_sweep(it):
            perm, starts = random_partition(rng, P, nbk)
            m, _, minlc = sweep_partition(problem, Delta, beta, eta, perm, starts, cur, ws, pm1,
                                          rebuild=(it % _REBUILD_EVERY == 1), X3=X3)
            return m.copy(), minlc, ws.Lam

        converged, it, err, reason = iterate_setting(one_sweep, P, tol, max_sweeps, patience, progress,
                                                     {"eta": eta, "n_blocks": nbk, "Delta": Delta, "method": "amp"})
        total += it
        if converged:  # (with P = 0 the state comes back as given, its rung included)
            return AMPRun(cur if P == 0 else AMPState(cur.g, cur.Gam, rung), True, it, total, nbk, eta, err, reason)
        ok = np.all(np.isfinite(cur.g)) and np.all(np.isfinite(cur.Gam))
        if ok and np.isfinite(err) and (best_fail is None or best_fail.state is None or err < best_fail.error):
            best_fail = AMPRun(AMPState(cur.g, cur.Gam, rung), False, it, total, nbk, eta, err, reason)
        elif best_fail is None:
            best_fail = AMPRun(None, False, it, total, nbk, eta, err, reason)
    best_fail.total_sweeps = total
    return best_fail


def edge_state_from_amp(problem: Problem, Delta, state: AMPState) -> EdgeState:
    """Per-edge messages implied by node messages: a = Γ/N, B = x g/√N + x²a m_{ki→μ}, m_{ki→μ} = m − v x g/√N.

    Exact at a fixed point (module docstring); used to hand an AMP warm start to bp.edge (method="auto").
    """
    P, K, N = problem.shape
    X, X2 = problem.X, problem.X2
    _, _, _, _, m, v = node_quantities_numpy(X, problem.center, float(Delta), state.g, state.Gam)
    a = state.Gam / N
    u = X[:, None, :] * (state.g / math.sqrt(N))[:, :, None]  # (P,K,N)
    B = u + X2[:, None, :] * a[:, :, None] * (m[None] - v[None] * u)
    return EdgeState(np.ascontiguousarray(a), np.ascontiguousarray(B), 0)


def amp_free_entropy(X, y, K, center, delta, beta=np.inf, *, state=None, schedule="block", n_blocks=10,
                     damping=None, tol=1e-7, max_sweeps=1000, patience=200, seed=0, normalize="weight",
                     progress=None):
    """Bethe free entropy φ_G(Δ) and distance δ(Δ) by the node-level (AMP) BP; same arguments and result
    type (bp.free_entropy.FreeEntropy, method="amp", state an AMPState) as bp.free_entropy."""
    problem, Delta, beta, n = check_inputs(X, y, K, center, delta, beta, normalize)
    return amp_result(problem, Delta, beta, n, normalize, state=state, schedule=schedule, n_blocks=n_blocks,
                      damping=damping, tol=tol, max_sweeps=max_sweeps, patience=patience, seed=seed, progress=progress)


def amp_result(problem: Problem, Delta, beta, n, normalize, *, state=None, schedule="block", n_blocks=10,
               damping=None, tol=1e-7, max_sweeps=1000, patience=200, seed=0, progress=None):
    """`amp_free_entropy` on inputs already validated (bp.result.check_inputs): a scan over Δ validates once."""
    run = run_amp(problem, Delta, beta, state, schedule=schedule, n_blocks=n_blocks, damping=damping, tol=tol,
                  max_sweeps=max_sweeps, patience=patience, rng=seed, progress=progress)
    F = sq = lnZ = np.nan
    if run.state is not None:
        try:
            F, sq, lnZ = bethe_terms(problem, Delta, beta, run.state)
        except BPError:
            if run.converged:
                raise
    return FreeEntropy(phi=F / n, delta=sq / (2 * n), prior_delta=Delta, beta=beta, converged=run.converged,
                       iterations=run.sweeps, total_iterations=run.total_sweeps, damping=run.eta,
                       n_blocks=run.n_blocks, error=run.error, reason=run.reason, method="amp",
                       normalize=normalize, n=n, F=F, lnZ_patterns=lnZ, state=run.state)
