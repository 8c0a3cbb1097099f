"""Expectation propagation (EP) for the committee's Gaussian-prior free entropy φ_G(Δ).

BP's variable nodes are scalars and its messages assume weakly correlated inputs; the real images are
strongly correlated (docs/bp.md §8.3), and there BP's φ_G is too negative by up to 2× (measured: docs/ep.md).
EP keeps, for each hidden unit k, a full-covariance Gaussian over its P pre-activations h_kμ = w_k·x_μ:

    q_k(h_k) ∝ N(h_k; X w̃_k, Δ X Xᵀ) Π_μ exp(−½ a_kμ h_kμ² + b_kμ h_kμ),

so every correlation between patterns is exact in q; the committee factor of pattern μ is matched
exactly on its K cavity fields (the same Poisson-binomial vote as BP's output channel); only the
correlations *between* units are dropped (q factorises over k). Sites are updated in parallel with
damping until they stop moving (damped harder whenever the change grows; a step that would make some
q_k or its cavities improper is shortened); ln Z is the EP (expectation-consistent) free energy,

    ln Z = Σ_k [−½ ln|I + Σ0 A_k| + m0_kᵀb_k − ½ m0_kᵀA_k m0_k + ½ r_kᵀ V_k r_k]
           + Σ_μ [ln Z_μ − Σ_k ln ∫ N(h; m_cav, v_cav) e^{−½ a h² + b h} dh],

Σ0 = Δ X Xᵀ, r_k = b_k − A_k m0_k, V_k = (I + Σ0 A_k)⁻¹ Σ0, and δ(Δ) = E‖w − w̃‖²/(2n) from the same
Gaussian (its trace and its mean shift Δ Xᵀ(b − A m)). Exact for one pattern; on the real subset it
follows plain Monte Carlo within 0–2.8 % for one unit (Δ ≤ 1) and 1.5 % for three (Δ = 0.0039), where
BP is off by up to 34 % and 2×; for the full K = 9 solutions it is off by up to 6–40 % at Δ = 1, where
BP is off by about 80 % (docs/ep.md; `tests/test_bp_ep.py`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.linalg import cho_solve, cholesky, lu_factor, lu_solve, solve_triangular
from scipy.linalg.lapack import dpotri
from scipy.special import log_ndtr

from localentropy.bp.errors import BPError

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


@dataclass
class EPState:
    """Site parameters a, b (K, P) of a converged (or last) EP run: a warm start for the next Δ."""

    a: np.ndarray
    b: np.ndarray


@dataclass(frozen=True)
class EPResult:
    phi_G: float        # ln Z / n, n = K·N
    delta: float        # E[½‖w − w̃‖²] / n
    converged: bool
    sweeps: int
    change: float       # the last sweep's largest site change (in units of the field's scale)
    state: EPState


def _vote(q: np.ndarray, K: int):
    """q (K, P) probabilities that each unit's vote is right. Returns Z (P,): P(majority right), and A, B
    (K, P): P(the other units give ≥ (K−1)/2, resp. ≥ (K+1)/2, right votes)."""
    need = (K + 1) // 2
    P = q.shape[1]

    def dist(ps):
        d = np.zeros((len(ps) + 1, P))
        d[0] = 1.0
        for p in ps:
            d[1:] = d[1:] * (1 - p) + d[:-1] * p
            d[0] *= 1 - p
        return d

    A = np.empty_like(q)
    B = np.empty_like(q)
    for k in range(K):
        d = dist(np.delete(q, k, axis=0))
        A[k] = d[need - 1:].sum(0)
        B[k] = d[need:].sum(0)
    return dist(q)[need:].sum(0), A, B


def tilted_moments(m_cav, v_cav, y, K):
    """The committee factor of each pattern times the K independent cavity Gaussians N(h_k; m, v):
    ln Z_μ (P,) and the mean and variance (K, P) of each h_kμ under it (exact)."""
    s = np.sqrt(v_cav)
    mu = y * m_cav                                      # u = y h: the vote is right when u > 0
    c = mu / s
    lp, lm = log_ndtr(c), log_ndtr(-c)
    Z, A, B = _vote(np.exp(lp), K)
    lphi = -0.5 * c * c - _LOG_SQRT_2PI
    r1, r2 = np.exp(lphi - lp), np.exp(lphi - lm)       # inverse Mills ratios of the two half-lines
    w1, w2 = A * np.exp(lp), B * np.exp(lm)
    m1, v1 = mu + s * r1, v_cav * (1 - r1 * (r1 + c))
    m2, v2 = mu - s * r2, v_cav * (1 - r2 * (r2 - c))
    tot = w1 + w2
    M = (w1 * m1 + w2 * m2) / tot
    E2 = (w1 * (v1 + m1 * m1) + w2 * (v2 + m2 * m2)) / tot
    return np.log(Z), y * M, E2 - M * M


class EPProblem:
    """The reference (rescaled to ‖w̃_k‖² = N), Gram matrix G = X Xᵀ and prior means m0 = X w̃."""

    def __init__(self, center, X, y):
        W = np.asarray(center, dtype=np.float64)
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64).reshape(-1)
        if W.ndim != 2 or X.ndim != 2 or X.shape[1] != W.shape[1] or y.shape[0] != X.shape[0]:
            raise BPError(f"shapes do not match: center {W.shape}, X {X.shape}, y {y.shape}")
        if not (np.all(np.isfinite(W)) and np.all(np.isfinite(X))) or not np.all(np.isin(y, (-1.0, 1.0))):
            raise BPError("center and X must be finite and y must be ±1")
        K, N = W.shape
        if K % 2 == 0:
            raise BPError(f"the committee needs an odd number of hidden units, got K = {K}")
        norms = np.linalg.norm(W, axis=1, keepdims=True)
        if np.any(norms == 0):
            raise BPError("a hidden unit of the reference is all zero")
        W = W * math.sqrt(N) / norms
        self.K, self.N, self.P = K, N, X.shape[0]
        self.G = X @ X.T
        self.m0 = W @ X.T                                 # (K, P)
        self.y = y
        # With G well conditioned (P ≤ N, distinct patterns) each unit's precision G⁻¹/Δ + A_k is
        # factorised directly (a Cholesky and its inverse: P³ flops, against 8/3 P³ for the LU route)
        self.G_inv = self.logdet_G = None
        self.factorisations = 0  # unit_gaussians calls (each K factorisations of P×P): the cost's count
        try:
            LG = cholesky(self.G, lower=True, check_finite=False)
            d = np.diagonal(LG)
            if d.min() > 0 and (d.max() / d.min()) ** 2 < 1e8:
                self.G_inv = cho_solve((LG, True), np.eye(self.P), check_finite=False)
                self.logdet_G = 2 * np.log(d).sum()
        except np.linalg.LinAlgError:
            pass

    def unit_gaussians(self, Delta, a) -> "_Units":
        """Per unit, V_k = (I + Σ0 A_k)⁻¹ Σ0 and ln|I + Σ0 A_k|: from the precision G⁻¹/Δ + A_k where G is
        invertible; else, with a_k ≥ 0, through the Cholesky factor L of B = I + S Σ0 S, S = A_k^{1/2}:
        V = Σ0 − CᵀC, C = L⁻¹ S Σ0, never formed (its diagonal and products with vectors are enough);
        otherwise one LU of I + Σ0 A_k."""
        S0 = float(Delta) * self.G
        I = np.eye(self.P)
        u = _Units(S0, self.K, self.P)
        self.factorisations += 1
        for k in range(self.K):
            if self.G_inv is not None:  # V_k = Λ⁻¹, Λ = G⁻¹/Δ + A_k: positive definite iff q_k is proper
                lam = self.G_inv / float(Delta)
                lam[np.diag_indices(self.P)] += a[k]
                try:
                    L = cholesky(lam, lower=True, check_finite=False)
                except np.linalg.LinAlgError:
                    u.diag[k], u.logdet[k] = -1.0, np.nan  # not a proper Gaussian: `_proper` says no
                    continue
                inv, info = dpotri(L, lower=1)
                u.L[k] = L
                u.diag[k] = np.diagonal(inv)
                u.logdet[k] = self.P * math.log(Delta) + self.logdet_G + 2 * np.log(np.diagonal(L)).sum()
                continue
            if a[k].min() >= 0:
                sq = np.sqrt(a[k])
                SS = sq[:, None] * S0                                   # S Σ0
                try:
                    L = cholesky(I + SS * sq[None, :], lower=True, check_finite=False)
                except np.linalg.LinAlgError:
                    L = None
                if L is not None:
                    C = solve_triangular(L, SS, lower=True, check_finite=False)
                    u.C[k] = C
                    u.diag[k] = np.diagonal(S0) - np.einsum("ij,ij->j", C, C)
                    u.logdet[k] = 2 * np.log(np.diagonal(L)).sum()
                    continue
            lu, piv = lu_factor(I + S0 * a[k][None, :], check_finite=False)
            u.V[k] = lu_solve((lu, piv), S0, check_finite=False)
            u.diag[k] = np.diagonal(u.V[k])
            u.logdet[k] = np.log(np.abs(np.diagonal(lu))).sum()
        return u

    def moments(self, u: "_Units", a, b):
        """Means m (K, P) of the fields under q, the diagonal of V, r = b − a m0 and V r."""
        r = b - a * self.m0
        Vr = u.apply(r)
        return self.m0 + Vr, u.diag.copy(), r, Vr


class _Units:
    """The K units' Gaussians: diag (K, P) of V_k, logdet (K,), and V_k r_k from V_k or from C_k."""

    def __init__(self, S0, K, P):
        self.S0, self.C, self.V, self.L = S0, {}, {}, {}
        self.diag, self.logdet = np.empty((K, P)), np.empty(K)

    def apply(self, r):
        out = np.empty_like(r)
        for k in range(r.shape[0]):
            if k in self.L:
                out[k] = cho_solve((self.L[k], True), r[k], check_finite=False)
            elif k in self.C:
                out[k] = self.S0 @ r[k] - self.C[k].T @ (self.C[k] @ r[k])
            else:
                out[k] = self.V[k] @ r[k]
        return out


def ep_free_entropy(problem: EPProblem, Delta, *, state: EPState | None = None, damping=0.5, tol=1e-9,
                    max_sweeps=1000) -> EPResult:
    """φ_G(Δ) and δ(Δ) by EP (module docstring), from ``state`` (a previous Δ's sites) or from no sites."""
    if not (math.isfinite(Delta) and Delta > 0):
        raise BPError(f"Delta must be a finite prior width > 0, got {Delta}")
    if not 0 < damping <= 1:
        raise BPError(f"damping must be in (0, 1], got {damping}")
    K, P, y = problem.K, problem.P, problem.y
    a = np.zeros((K, P)) if state is None else state.a.copy()
    b = np.zeros((K, P)) if state is None else state.b.copy()
    V = problem.unit_gaussians(Delta, a)
    if not _proper(V, a):  # a warm start from another Δ that is not a proper Gaussian here: start afresh
        a, b = np.zeros((K, P)), np.zeros((K, P))
        V = problem.unit_gaussians(Delta, a)
    change, converged, sweeps, base = math.inf, False, 0, damping
    for sweeps in range(1, max_sweeps + 1):
        m, Vd, _, _ = problem.moments(V, a, b)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            v_cav = 1.0 / (1.0 / Vd - a)
            m_cav = v_cav * (m / Vd - b)
            _, tm, tv = tilted_moments(m_cav, v_cav, y, K)
            a_new, b_new = 1.0 / tv - 1.0 / v_cav, tm / tv - m_cav / v_cav
        ok = np.isfinite(a_new) & np.isfinite(b_new)  # a site whose tilted moments fail is left as it is
        # A tilted committee marginal can be wider than its cavity (two modes): its site precision is then
        # negative. That is kept as long as every q_k stays a proper Gaussian with proper cavities; where a
        # step would break that, it is halved (up to 6 times), and then such sites get precision 0.
        eta = base
        for attempt in range(7):
            lo = np.maximum(a_new, 0.0) if attempt == 6 else a_new
            a_p = np.where(ok, (1 - eta) * a + eta * lo, a)
            b_p = np.where(ok, (1 - eta) * b + eta * b_new, b)
            V_p = problem.unit_gaussians(Delta, a_p)
            if _proper(V_p, a_p):
                break
            eta = eta / 2 if attempt < 5 else base
        else:
            break  # not even the non-negative step is proper: give up (reported as not converged)
        last, change = change, float(np.max(np.abs(a_p - a) * Vd) + np.max(np.abs(b_p - b) * np.sqrt(Vd)))
        if change > last:  # oscillating: damp harder from now on
            base = max(base * 0.7, 0.02)
        a, b, V = a_p, b_p, V_p
        if change < tol:
            converged = True
            break
    phi_G, delta = _free_entropy(problem, Delta, V, a, b)
    if not (math.isfinite(phi_G) and math.isfinite(delta)):
        converged = False
    return EPResult(phi_G=phi_G, delta=delta, converged=converged, sweeps=sweeps, change=change,
                    state=EPState(a, b))


def _proper(V, a) -> bool:
    """Whether every unit's Gaussian has positive marginal variances and every cavity a positive variance."""
    Vd = V.diag
    return bool(np.all(np.isfinite(Vd)) and np.all(Vd > 0) and np.all(1.0 / Vd - a > 0))


def _free_entropy(problem: EPProblem, Delta, u: "_Units", a, b):
    """(ln Z / n, E[½‖w − w̃‖²] / n) at the sites a, b, whose Gaussians are ``u`` (module docstring)."""
    K, N, y, m0 = problem.K, problem.N, problem.y, problem.m0
    S0, logdet = u.S0, u.logdet
    m, Vd, r, Vr = problem.moments(u, a, b)
    glob = float(np.sum(-0.5 * logdet + (m0 * b).sum(1) - 0.5 * (a * m0 * m0).sum(1) + 0.5 * (r * Vr).sum(1)))
    with np.errstate(divide="ignore", invalid="ignore"):
        v_cav = 1.0 / (1.0 / Vd - a)
        m_cav = v_cav * (m / Vd - b)
        lz, _, _ = tilted_moments(m_cav, v_cav, y, K)
        site = -0.5 * np.log1p(a * v_cav) + (2 * m_cav * b + b * b * v_cav - a * m_cav * m_cav) / (2 * (1 + a * v_cav))
    ln_Z = glob + float(lz.sum()) - float(site.sum())
    rp = b - a * m                                     # E w − w̃ = Δ Xᵀ(b − a m): its square is Δ rpᵀ Σ0 rp
    shift = np.einsum("kp,kp->k", rp @ S0, rp)
    sq = float(np.sum(N * Delta - Delta * (Vd * a).sum(1) + Delta * shift))
    n = K * N
    return ln_Z / n, sq / (2 * n)
