"""φ_G(Δ), δ(Δ) and Φ_LE(d) of a committee machine by EP-guided sequential importance sampling (GHK).

Same quantities and conventions as ``bp.local_entropy_curve`` and ``entropic.committee_local_entropy``
(docs/bp.md §1, §5): each hidden unit of the reference w̃ rescaled to ‖w̃_k‖² = N, n = K·N, sign(0) = +1
(``localentropy.committee_sign``),

    Z(Δ) = E_{w′ ~ N(w̃, ΔI)}[Π_μ ψ_μ(w′)],   φ_G = (1/n) ln Z,   δ = E[½‖w′ − w̃‖²]/n under Z's measure,

ψ_μ = 1 when at least (K+1)/2 of the K votes sign(w′_k·x_μ) equal y_μ (hard, β = ∞), or the soft factor
ψ^β_μ = e^{−β} + (1 − e^{−β}) ψ_μ of docs/bp.md §1 and §6.6 (finite ``beta``).

**Method** (docs/committee_estimator.md). Only the fields h_kμ = w′_k·x_μ matter; a priori each unit's P
fields are N(X w̃_k, Δ X Xᵀ), independent over units. Expectation propagation (the model of bp/ep.py,
re-implemented here so that ``entropic`` does not import ``bp``) gives Gaussian sites
t_kμ(h) = exp(−½ a_kμ h² + b_kμ h) and the per-unit Gaussians q_k ∝ prior_k · Π_μ t_kμ, with Z = Z_q E_q[Π_μ ψ_μ/t_μ].
That expectation is estimated without bias by sequential importance sampling over the patterns
(the Geweke–Hajivassiliou–Keane construction, guided by EP): in a fixed order of the patterns, the K
fields of pattern μ are drawn from q_k(h_kμ | earlier fields)/t_kμ (a Gaussian: EP's conditional with
the pattern's own site removed, still carrying the later patterns' sites as a look-ahead), times the
exact committee factor ψ_μ (a Poisson-binomial vote over K independent Gaussians: drawn exactly, by
the vote's dynamic programming and truncated normals). Every draw is feasible; the weight is the
product of the patterns' normalisers. Patterns that EP finds unconstrained (its tilted ln Z_μ above
``-inactive``) come last and are drawn jointly from q, weighted by ψ/t (exact too). The estimator of Z
is unbiased whatever the quality of EP's sites (those set only the variance); φ_G = ln(mean weight)/n,
biased by −Var(Ẑ)/(2Z²)/n (≈ −se²/2/n, negligible against se when se ≪ 1 nat); δ is the self-normalised
weighted mean of ‖w′ − w̃‖²/(2n), the free directions (orthogonal to the inputs) contributing exactly
K(N − P)Δ.

Needs X X ᵀ invertible (P ≤ N, linearly independent patterns: the real P = 500, N = 784 subset);
otherwise raises EntropicError.
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass, field

import numba as nb
import numpy as np
from scipy.linalg import cho_solve, cholesky, solve_triangular
from scipy.linalg.lapack import dpotrf, dtrtri
from scipy.special import log_ndtr, ndtri_exp
from threadpoolctl import threadpool_limits

from localentropy import committee_sign
from localentropy.entropic.errors import EntropicError
from localentropy.entropic.committee_sampling import check_committee_inputs
from localentropy.legendre import ball_entropy, shell_entropy

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


@dataclass(frozen=True)
class CommitteeEstimate:
    """Result of `committee_local_entropy_is`, one entry per requested Δ (``prior_delta``), per weight (n = K·N).

    phi_G ± phi_G_se: (1/n) ln of the mean importance weight and its delta-method standard error (i.i.d.
    draws); delta ± delta_se: the self-normalised weighted mean of ½‖w′ − w̃‖²/n; phi (shell s, docs/bp.md
    §5.2), phi_ball (§5.4), d = n·delta; phi_se from phi_G_se and delta_se. ess: effective sample size of
    the weights (Σw)²/Σw²; ep_phi_G: EP's own (uncorrected) φ_G at its last sites; ep_sweeps: EP sweeps
    spent at each Δ; active: patterns drawn one by one (the others jointly); seconds: wall time per Δ
    (cumulative). beta: inf for the hard constraint.
    """

    prior_delta: np.ndarray
    phi_G: np.ndarray
    phi_G_se: np.ndarray
    delta: np.ndarray
    delta_se: np.ndarray
    phi: np.ndarray
    phi_se: np.ndarray
    phi_ball: np.ndarray
    d: np.ndarray
    ess: np.ndarray
    ep_phi_G: np.ndarray
    ep_sweeps: np.ndarray
    active: np.ndarray
    seconds: np.ndarray
    n: int
    K: int
    N: int
    P: int
    samples: int
    beta: float
    khat: np.ndarray = None
    draws: np.ndarray = None
    reliable: np.ndarray = None
    settings: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-ready dict of every array (lists) and setting (inf β as None)."""
        out = {}
        for k, v in self.__dict__.items():
            if isinstance(v, np.ndarray):
                out[k] = [None if not math.isfinite(x) else float(x) for x in v.astype(float)]
            elif isinstance(v, float) and not math.isfinite(v):
                out[k] = None
            else:
                out[k] = v
        return out


# ------------------------------------------------------------------------- special functions (Numba)

# Wichura's AS241 (PPND16) for Φ⁻¹, relative error ~1e-16, evaluated from ln p so that tails far below
# the smallest double still invert (ndtri_exp of scipy is the oracle in the tests).
_A = (3.3871328727963666080e0, 1.3314166789178437745e+2, 1.9715909503065514427e+3, 1.3731693765509461125e+4,
      4.5921953931549871457e+4, 6.7265770927008700853e+4, 3.3430575583588128105e+4, 2.5090809287301226727e+3)
_B = (1.0, 4.2313330701600911252e+1, 6.8718700749205790830e+2, 5.3941960214247511077e+3,
      2.1213794301586595867e+4, 3.9307895800092710610e+4, 2.8729085735721942674e+4, 5.2264952788528545610e+3)
_C = (1.42343711074968357734e0, 4.63033784615654529590e0, 5.76949722146069140550e0, 3.64784832476320460504e0,
      1.27045825245236838258e0, 2.41780725177450611770e-1, 2.27238449892691845833e-2, 7.74545014278341407640e-4)
_D = (1.0, 2.05319162663775882187e0, 1.67638483018380384940e0, 6.89767334985100004550e-1,
      1.48103976427480074590e-1, 1.51986665636164571966e-2, 5.47593808499534494600e-4, 1.05075007164441684324e-9)
_E = (6.65790464350110377720e0, 5.46378491116411436990e0, 1.78482653991729133580e0, 2.96560571828504891230e-1,
      2.65321895265761230930e-2, 1.24266094738807843860e-3, 2.71155556874348757815e-5, 2.01033439929228813265e-7)
_F = (1.0, 5.99832206555887937690e-1, 1.36929880922735805310e-1, 1.48753612908506148525e-2,
      7.86869131145613259100e-4, 1.84631831751005468180e-5, 1.42151175831644588870e-7, 2.04426310338993978564e-15)
_SQRT1_2 = 1.0 / math.sqrt(2.0)


@nb.njit(inline="always", error_model="numpy")
def _poly(c, x):
    return ((((((c[7] * x + c[6]) * x + c[5]) * x + c[4]) * x + c[3]) * x + c[2]) * x + c[1]) * x + c[0]


@nb.njit(cache=True, nogil=True, error_model="numpy")
def _log_ndtr(x):
    """ln Φ(x): erfc where it does not underflow, the asymptotic series (error < 1e-15) below x = −35."""
    if x > 0.0:
        return math.log1p(-0.5 * math.erfc(x * _SQRT1_2))
    if x > -35.0:
        return math.log(0.5 * math.erfc(-x * _SQRT1_2))
    r = 1.0 / (x * x)
    return (-0.5 * x * x - math.log(-x) - _LOG_SQRT_2PI
            + math.log1p(r * (-1.0 + r * (3.0 + r * (-15.0 + r * (105.0 - 945.0 * r))))))


@nb.njit(inline="always", error_model="numpy")
def _ppnd16(p, lp, lq):
    """AS241: Φ⁻¹(p), given also ln p (lp) and ln(1 − p) (lq), used only in the tails."""
    q = p - 0.5
    if abs(q) <= 0.425:
        r = 0.180625 - q * q
        return q * _poly(_A, r) / _poly(_B, r)
    r = math.sqrt(-lp) if q < 0 else math.sqrt(-lq)
    if r <= 5.0:
        r -= 1.6
        x = _poly(_C, r) / _poly(_D, r)
    else:
        r -= 5.0
        x = _poly(_E, r) / _poly(_F, r)
    return -x if q < 0 else x


@nb.njit(cache=True, nogil=True, error_model="numpy")
def _ndtri_exp(lp):
    """Φ⁻¹(e^lp) for lp ≤ 0 (AS241 on ln p; Newton steps on ln Φ below p = 1e-300)."""
    if lp >= 0.0:
        return math.inf
    if lp < -690.0:
        x = -math.sqrt(-2.0 * lp - math.log(-4.0 * math.pi * lp))
        for _ in range(3):
            lf = _log_ndtr(x)
            x -= (lf - lp) / math.exp(-0.5 * x * x - _LOG_SQRT_2PI - lf)
        return x
    p = math.exp(lp)
    return _ppnd16(p, lp, math.log(-math.expm1(lp)) if p > 0.5 else 0.0)


@nb.njit(inline="always", error_model="numpy")
def _ndtri_scaled(v, P, lP):
    """Φ⁻¹(v P) for v ∈ (0, 1], P = e^lP (one logarithm only in the tails; the ln form below 1e-300)."""
    p = v * P
    if p < 1e-300:
        return _ndtri_exp(math.log(v) + lP)
    if abs(p - 0.5) <= 0.425:
        return _ppnd16(p, 0.0, 0.0)
    if p < 0.5:
        return _ppnd16(p, math.log(p), 0.0)
    return _ppnd16(p, 0.0, math.log1p(-p))


@nb.njit(inline="always", error_model="numpy")
def _tails(z):
    """(Φ(−|z|), ln Φ(−|z|), ln Φ(|z|)) from one erfc (the asymptotic series beyond |z| = 35)."""
    az = abs(z)
    if az < 35.0:
        e = 0.5 * math.erfc(az * _SQRT1_2)
        return e, math.log(e), math.log1p(-e)
    le = _log_ndtr(-az)
    return math.exp(le), le, -math.exp(le)


# ------------------------------------------------------ one block of patterns: numpy oracle and kernel
#
# Draws are made in q's order ("position" i = 0 … P−1, most constrained first). For each unit, FT is the
# lower-triangular matrix with FT (g − mg) = ε, ε ~ N(0, I) under q (FT = Lᵀ flipped, L the Cholesky factor
# of q's precision in the reverse order), so the conditional of position i given the earlier ones is
# N(mg_i − Σ_{j<i} FT_ij d_j / FT_ii, 1/FT_ii²), d = g − mg. A block step takes, for the positions
# i0 … i0+B−1: base (K, S, B) = Σ_{j<i0} FT_ij d_j, FTb (K, B, B) = FT[i0:, i0:], the site and reference
# arrays at those positions (K, B), labels yp (B,), uniforms u (2K+1, S, B) (rows 0…K−1 the votes,
# K…2K−1 the truncated normals, 2K the soft branch), and writes d, eps (K, S, B), adding to lw (S,).


def _block_numpy(base, FTb, mg, aa, rr, mp, yp, need, e_beta, u, d, eps, lw):
    """The oracle of `_block_kernel` (vectorised over units and draws, with scipy's special functions)."""
    K, S, B = base.shape
    cols = np.arange(S)
    for j in range(B):
        acc = base[:, :, j] + np.einsum("kl,ksl->ks", FTb[:, j, :j], d[:, :, :j])
        f = FTb[:, j, j][:, None]
        c = mg[:, j][:, None] - acc / f
        f2 = f * f
        prec = f2 - aa[:, j][:, None]                      # q's conditional with the pattern's site divided out
        vp = 1.0 / prec
        uu = c * f2 - rr[:, j][:, None]
        cp = vp * uu
        lw += np.sum(-0.5 * np.log(prec / f2) + 0.5 * (uu * uu * vp - c * c * f2), 0)
        sv = np.sqrt(vp)
        z = yp[j] * (mp[:, j][:, None] + cp) / sv          # standardised distance of each field from its wall
        lp = log_ndtr(z)
        p = np.exp(lp)
        T = _vote_tails(p, need)
        Zm = e_beta + (1 - e_beta) * T[0, need]
        with np.errstate(divide="ignore"):
            lw += np.log(Zm)
        jj = np.full(S, need)
        if e_beta > 0:                                     # soft: the unconstrained branch, weight e^{-β}
            jj = np.where(u[2 * K, :, j] * Zm < e_beta, 0, need)
        right = np.empty((K, S), dtype=bool)
        for k in range(K):                                 # the votes, drawn given ≥ jj more right ones
            with np.errstate(divide="ignore", invalid="ignore"):
                pk = np.where(jj > 0, p[k] * T[k + 1, np.maximum(jj - 1, 0), cols] / T[k, jj, cols], p[k])
            right[k] = u[k, :, j] < pk
            jj = np.where(right[k], np.maximum(jj - 1, 0), jj)
        lu = np.log1p(-u[K:2 * K, :, j])
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(right, -ndtri_exp(lu + lp), ndtri_exp(lu + log_ndtr(-z)))
        g = cp + sv * yp[j] * t
        d[:, :, j] = g - mg[:, j][:, None]
        eps[:, :, j] = (g - c) * f


@nb.njit(cache=True, nogil=True, error_model="numpy")
def _block_kernel(base, FTb, mg, aa, rr, mp, yp, need, e_beta, u, d, eps, lw):
    """One block of patterns for every draw (layout and meaning: the comment above; `_block_numpy` is the
    oracle): per draw and pattern, the K conditional Gaussians with the pattern's site divided out, the
    exact committee factor by the vote-count dynamic programme, the votes and truncated normal fields."""
    K, S, B = base.shape
    T = np.empty((K + 1, need + 1))
    p = np.empty(K)       # P(right vote), P(wrong vote) and their logarithms
    q = np.empty(K)
    lp = np.empty(K)
    lq = np.empty(K)
    cp = np.empty(K)
    c = np.empty(K)
    # per (unit, pattern), independent of the draw: the conditional's precision f², the site-free
    # variance vp and its root, the log-weight's constant
    vp = np.empty((K, B))
    sv = np.empty((K, B))
    lconst = np.empty(B)
    for j in range(B):
        acc = 0.0
        for k in range(K):
            f2 = FTb[k, j, j] * FTb[k, j, j]
            prec = f2 - aa[k, j]
            vp[k, j] = 1.0 / prec
            sv[k, j] = math.sqrt(vp[k, j])
            acc += -0.5 * math.log(prec / f2)
        lconst[j] = acc
    for s in range(S):
        for j in range(B):
            yj = yp[j]
            acc_lw = lconst[j]
            for k in range(K):
                acc = base[k, s, j]
                for l in range(j):
                    acc += FTb[k, j, l] * d[k, s, l]
                f = FTb[k, j, j]
                f2 = f * f
                ck = mg[k, j] - acc / f
                uu = ck * f2 - rr[k, j]
                cpk = vp[k, j] * uu
                acc_lw += 0.5 * (uu * uu * vp[k, j] - ck * ck * f2)
                zk = yj * (mp[k, j] + cpk) / sv[k, j]
                e, le, lo = _tails(zk)
                if zk >= 0.0:
                    p[k], q[k], lp[k], lq[k] = 1.0 - e, e, lo, le
                else:
                    p[k], q[k], lp[k], lq[k] = e, 1.0 - e, le, lo
                c[k] = ck
                cp[k] = cpk
            for k in range(K + 1):
                T[k, 0] = 1.0
            for i in range(1, need + 1):
                T[K, i] = 0.0
            for k in range(K - 1, -1, -1):
                for i in range(1, need + 1):
                    T[k, i] = p[k] * T[k + 1, i - 1] + q[k] * T[k + 1, i]
            Zm = e_beta + (1.0 - e_beta) * T[0, need]
            lw[s] += acc_lw + math.log(Zm)
            jj = need
            if e_beta > 0.0 and u[2 * K, s, j] * Zm < e_beta:
                jj = 0
            for k in range(K):
                if jj > 0:
                    pk = p[k] * T[k + 1, jj - 1] / T[k, jj]
                else:
                    pk = p[k]
                v = 1.0 - u[K + k, s, j]
                if u[k, s, j] < pk:
                    if jj > 0:
                        jj -= 1
                    t = -_ndtri_scaled(v, p[k], lp[k])
                else:
                    t = _ndtri_scaled(v, q[k], lq[k])
                g = cp[k] + sv[k, j] * yj * t
                d[k, s, j] = g - mg[k, j]
                eps[k, s, j] = (g - c[k]) * FTb[k, j, j]


# ---------------------------------------------------------------------------------------------- EP


def _vote_tails(p, need):
    """p (K, S) probabilities that each unit votes right. T (K+1, need+1, S): T[k, j] = P(units k.. give ≥ j
    right votes); T[0, need] is the probability of a right majority."""
    K = p.shape[0]
    T = np.zeros((K + 1, need + 1) + p.shape[1:])
    T[:, 0] = 1.0
    for k in range(K - 1, -1, -1):
        T[k, 1:] = p[k] * T[k + 1, :-1] + (1 - p[k]) * T[k + 1, 1:]
    return T


def _leave_one_out_votes(p, need):
    """For each unit k, P(the other units give ≥ need−1, resp. ≥ need, right votes): (K, P) each."""
    K = p.shape[0]
    A = np.empty_like(p)
    B = np.empty_like(p)
    for k in range(K):
        T = _vote_tails(np.delete(p, k, axis=0), need)
        A[k], B[k] = T[0, need - 1], T[0, need]
    return A, B


def _tilted(m_cav, v_cav, y, K, beta):
    """ln Z_μ (P,) and the mean and variance (K, P) of each field under the committee factor of its pattern
    (hard, or soft with inverse temperature beta) times K independent cavity Gaussians N(m_cav, v_cav)."""
    need = (K + 1) // 2
    s = np.sqrt(v_cav)
    mu = y * m_cav
    c = mu / s
    lp, lm = log_ndtr(c), log_ndtr(-c)
    Z = _vote_tails(np.exp(lp), need)[0, need]
    A, B = _leave_one_out_votes(np.exp(lp), need)
    lphi = -0.5 * c * c - _LOG_SQRT_2PI
    r1, r2 = np.exp(lphi - lp), np.exp(lphi - lm)
    w1, w2 = A * np.exp(lp), B * np.exp(lm)
    m1, v1 = mu + s * r1, v_cav * (1 - r1 * (r1 + c))
    m2, v2 = mu - s * r2, v_cav * (1 - r2 * (r2 - c))
    tot = w1 + w2
    M = (w1 * m1 + w2 * m2) / tot
    E2 = (w1 * (v1 + m1 * m1) + w2 * (v2 + m2 * m2)) / tot
    if math.isfinite(beta):  # a mixture: e^{-β} of the cavity itself, (1 − e^{-β}) Z of the hard tilted
        e = math.exp(-beta)
        Zs = e + (1 - e) * Z
        M = (e * mu + (1 - e) * Z * M) / Zs
        E2 = (e * (v_cav + mu * mu) + (1 - e) * Z * E2) / Zs
        Z = Zs
    return np.log(Z), y * M, E2 - M * M


@dataclass
class _Units:
    """Per unit, the Cholesky factor L[k] (P, P) of q's precision Λ_k = G⁻¹/Δ + diag(a_k) with rows and
    columns in the order ``perm``; diag(Λ_k⁻¹) (K, P) in the patterns' order (None if not asked for);
    ln|I + ΔG A_k| (K,)."""

    L: np.ndarray
    perm: np.ndarray
    diag: np.ndarray | None
    logdet: np.ndarray


class _Problem:
    """Reference fields m0 = X w̃ (K, P), Gram matrix G = X Xᵀ and its inverse; fields h = m0 + g."""

    def __init__(self, W, X, y):
        self.K, self.N = W.shape
        self.P = X.shape[0]
        self.y = y
        self.G = X @ X.T
        self.m0 = W @ X.T
        try:
            LG = cholesky(self.G, lower=True, check_finite=False)
        except np.linalg.LinAlgError:
            LG = None
        d = None if LG is None else np.diagonal(LG)
        if LG is None or d.min() <= 0 or (d.max() / d.min()) ** 2 > 1e10:
            raise EntropicError("X Xᵀ is singular or too ill-conditioned (more patterns than independent inputs, or "
                                "repeated patterns): this estimator needs linearly independent patterns; use "
                                "committee_local_entropy")
        self.G_inv = cho_solve((LG, True), np.eye(self.P), check_finite=False)
        self.logdet_G = 2 * float(np.log(d).sum())
        self._perm, self._G_inv_perm = None, None
        self.factorisations = 0

    def units(self, Delta, a, perm, diag=True):
        """`_Units` at the sites' precisions a (K, P), factored in the order perm; None if some Λ_k is not
        positive definite. Cost per unit: one Cholesky (P³/3) and, with diag, one triangular inverse (P³/3)."""
        K, P = self.K, self.P
        if self._perm is None or not np.array_equal(perm, self._perm):
            self._perm = perm.copy()
            self._G_inv_perm = self.G_inv[np.ix_(perm, perm)] if np.any(perm != np.arange(P)) else self.G_inv
        Ls = np.empty((K, P, P))
        dg = np.empty((K, P)) if diag else None
        logdet = np.empty(K)
        di = np.diag_indices(P)
        for k in range(K):
            lam = self._G_inv_perm / Delta
            lam[di] += a[k, perm]
            L, info = dpotrf(lam, lower=1, clean=1, overwrite_a=1)
            self.factorisations += 1
            if info != 0:
                return None
            ld = np.diagonal(L)
            if not np.all(ld > 0):
                return None
            Ls[k] = L
            if diag:
                Li, info = dtrtri(L, lower=1)
                if info != 0:
                    return None
                dg[k, perm] = np.einsum("ij,ij->j", Li, Li)
            logdet[k] = P * math.log(Delta) + self.logdet_G + 2 * float(np.log(ld).sum())
        return _Units(Ls, perm.copy(), dg, logdet)

    def mean_shift(self, U, r):
        """E_q[g_k] = Λ_k⁻¹ r_k, r = b − a m0: (K, P)."""
        out = np.empty_like(r)
        for k in range(self.K):
            out[k, U.perm] = cho_solve((U.L[k], True), r[k, U.perm], check_finite=False)
        return out


def _proper(U, a):
    return U is not None and bool(np.all(U.diag > 0) and np.all(1.0 / U.diag - a > 0))


def _ep(prob, Delta, a, b, perm, beta, sweeps, tol, damping=0.5, fallback=None):
    """EP sites (a, b) at Δ from a warm start (the previous Δ's sites, else ``fallback``'s, else zeros): at
    most ``sweeps`` damped parallel sweeps (the scheme of bp/ep.py). Each factorisation is done in the
    order of the patterns' tilted ln Z_μ of the sweep before (reversed: the most constrained last), the
    order in which the sequential sampler needs it. The last sweep's sites are factored without the
    marginal variances (a Cholesky only: all the sampler needs; their properness is checked there).

    Returns (a, b, U) of the last sweep, (a, b, U) of the last sites whose marginals were computed (proper;
    EP's ln Z is evaluated there), the tilted ln Z_μ (P,) at those, and the sweeps spent."""
    K, P = prob.K, prob.P
    U = prob.units(Delta, a, perm)
    if not _proper(U, a) and fallback is not None:
        a, b = fallback
        U = prob.units(Delta, a, perm)
    if not _proper(U, a):
        a, b = np.zeros((K, P)), np.zeros((K, P))
        U = prob.units(Delta, a, perm)
    base, done, lz = damping, 0, None
    for done in range(1, sweeps + 1):
        m = prob.m0 + prob.mean_shift(U, b - a * prob.m0)
        Vd = U.diag
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            v_cav = 1.0 / (1.0 / Vd - a)
            m_cav = v_cav * (m / Vd - b)
            lz, tm, tv = _tilted(m_cav, v_cav, prob.y, K, beta)
            a_new, b_new = 1.0 / tv - 1.0 / v_cav, tm / tv - m_cav / v_cav
        ok = np.isfinite(a_new) & np.isfinite(b_new)
        perm = np.argsort(-np.where(np.isfinite(lz), lz, -np.inf), kind="stable")   # most constrained last
        last = done == sweeps
        eta, found = base, False
        for attempt in range(7):
            lo = np.maximum(a_new, 0.0) if attempt == 6 else a_new
            a_p = np.where(ok, (1 - eta) * a + eta * lo, a)
            b_p = np.where(ok, (1 - eta) * b + eta * b_new, b)
            U_p = prob.units(Delta, a_p, perm, diag=not last)
            if U_p is not None and (last or _proper(U_p, a_p)):
                found = True
                break
            eta = eta / 2 if attempt < 5 else base
        change = float(np.max(np.abs(a_p - a) * Vd) + np.max(np.abs(b_p - b) * np.sqrt(Vd)))
        if not found:
            break
        if last or change < tol:
            if U_p.diag is None:
                return (a_p, b_p, U_p), (a, b, U), lz, done
            a, b, U = a_p, b_p, U_p
            break
        a, b, U = a_p, b_p, U_p
    if lz is None:
        _, lz = _ep_log_z(prob, a, b, U, beta)
    return (a, b, U), (a, b, U), lz, done


def _ep_log_z(prob, a, b, U, beta):
    """EP's (expectation-consistent) ln Z at the sites (a, b) and the pattern-wise tilted ln Z_μ (P,)."""
    Vd, logdet = U.diag, U.logdet
    m0 = prob.m0
    r = b - a * m0
    Vr = prob.mean_shift(U, r)
    glob = float(np.sum(-0.5 * logdet + (m0 * b).sum(1) - 0.5 * (a * m0 * m0).sum(1) + 0.5 * (r * Vr).sum(1)))
    m = m0 + Vr
    with np.errstate(divide="ignore", invalid="ignore"):
        v_cav = 1.0 / (1.0 / Vd - a)
        m_cav = v_cav * (m / Vd - b)
        lz, _, _ = _tilted(m_cav, v_cav, prob.y, prob.K, beta)
        site = -0.5 * np.log1p(a * v_cav) + (2 * m_cav * b + b * b * v_cav - a * m_cav * m_cav) / (2 * (1 + a * v_cav))
    return glob + float(lz.sum()) - float(site.sum()), lz


# --------------------------------------------------------------------------------- the sequential IS


class _Sampler:
    """Everything the sequential draw at one Δ needs, computed once and reused by every batch of draws:
    q's factor FT in the draw order, its mean, the sites and reference fields in that order."""

    def __init__(self, prob, Delta, a, b, U, lz, beta, inactive):
        K, P = prob.K, prob.P
        self.K, self.P, self.Delta = K, P, Delta
        self.order = order = U.perm[::-1].copy()          # most constrained first
        r = b - a * prob.m0                                # sites in g = h − m0: exp(−½ a g² + r g)
        Vr = prob.mean_shift(U, r)
        self.log_zq = float(np.sum(-0.5 * U.logdet + 0.5 * (r * Vr).sum(1)))
        self.FT = np.ascontiguousarray(U.L[:, ::-1, ::-1].transpose(0, 2, 1))
        self.mg, self.rr, self.aa = Vr[:, order], r[:, order], a[:, order]
        self.mp, self.yp = prob.m0[:, order], prob.y[order]
        act = np.flatnonzero(lz[order] <= -inactive)
        self.n_act = int(act[-1]) + 1 if act.size else 0  # positions ≥ n_act: drawn jointly from q
        self.t0 = np.einsum("kij,kj->ki", self.FT, self.mg)   # FT mg: gᵀΛg = ‖t0 + ε‖²
        self.beta = beta
        self.need = (K + 1) // 2
        fd = np.einsum("kii->ki", self.FT[:, :self.n_act, :self.n_act])
        self.proper = bool(np.all(fd * fd - self.aa[:, :self.n_act] > 0))

    def draw(self, S, rng, backend="numba", block=48, groups=8, resample=0.5):
        """S draws in ``groups`` independent particle systems (S rounded up to a multiple of groups). Returns
        the final log weights (S,) (each system's accumulated log normaliser plus its particles' log weights:
        the mean of their exponentials is an unbiased estimate of Z), ‖Π(w′ − w̃)‖² (S,) summed over units
        (Π the projector on the inputs' span), and the systems' ln Ẑ_g (groups,).

        Within a system, after each block of patterns, the particles are resampled (systematic) when their
        ESS falls below ``resample`` × their number (0: never: plain sequential importance sampling)."""
        K, P, n_act, FT = self.K, self.P, self.n_act, self.FT
        m = -(-S // groups)
        S = m * groups
        beta = self.beta
        e_beta = math.exp(-beta) if math.isfinite(beta) else 0.0
        step = _block_kernel if backend == "numba" else _block_numpy
        d = np.zeros((K, S, P))
        eps = np.zeros((K, S, P))
        lw = np.full(S, self.log_zq)
        lz_acc = np.zeros(groups)
        for i0 in range(0, n_act, block):
            i1 = min(n_act, i0 + block)
            if i0:
                base = np.matmul(d[:, :, :i0], FT[:, i0:i1, :i0].transpose(0, 2, 1))
            else:
                base = np.zeros((K, S, i1 - i0))
            u = rng.random((2 * K + 1, S, i1 - i0))
            db, eb = np.empty((K, S, i1 - i0)), np.empty((K, S, i1 - i0))
            step(base, np.ascontiguousarray(FT[:, i0:i1, i0:i1]), np.ascontiguousarray(self.mg[:, i0:i1]),
                 np.ascontiguousarray(self.aa[:, i0:i1]), np.ascontiguousarray(self.rr[:, i0:i1]),
                 np.ascontiguousarray(self.mp[:, i0:i1]), np.ascontiguousarray(self.yp[i0:i1]), self.need, e_beta,
                 u, db, eb, lw)
            d[:, :, i0:i1], eps[:, :, i0:i1] = db, eb
            if resample > 0 and i1 < n_act:
                idx, lz_acc = _resample(lw.reshape(groups, m), lz_acc, resample, rng)
                if idx is not None:
                    d[:, :, :i1] = d[:, idx, :i1]
                    eps[:, :, :i1] = eps[:, idx, :i1]
                    lw = lw[idx]
                    lw[np.isin(idx // m, np.flatnonzero(_resample.last))] = 0.0
        if n_act < P:                                      # the unconstrained rest: jointly from q, weight ψ/t
            rest = slice(n_act, P)
            e_r = rng.standard_normal((K, S, P - n_act))
            eps[:, :, rest] = e_r
            for k in range(K):
                rhs = e_r[k] - d[k, :, :n_act] @ FT[k, rest, :n_act].T if n_act else e_r[k]
                d[k, :, rest] = solve_triangular(FT[k, rest, rest], rhs.T, lower=True, check_finite=False).T
            g = self.mg[:, None, rest] + d[:, :, rest]
            lw += np.sum(0.5 * self.aa[:, None, rest] * g * g - self.rr[:, None, rest] * g, (0, 2))
            h = self.mp[:, None, rest] + g
            right = ((h >= 0) == (self.yp[rest] > 0)).sum(0)   # (S, P − n_act) right votes; sign(0) = +1
            bad = (right < self.need).sum(1)
            with np.errstate(invalid="ignore"):
                lw += np.where(bad > 0, bad * (-beta), 0.0)
        # ‖Π(w′ − w̃)‖² = gᵀG⁻¹g = Δ(gᵀΛg − gᵀAg), gᵀΛg = ‖t0 + ε‖²
        g = self.mg[:, None, :] + d
        sq = self.Delta * (((self.t0[:, None, :] + eps) ** 2).sum((0, 2)) - np.einsum("kp,ksp->s", self.aa, g * g))
        lw = lw + np.repeat(lz_acc, m)
        lw_g = lw.reshape(groups, m)
        with np.errstate(divide="ignore"):
            mx = np.max(lw_g, 1)
            fin = np.isfinite(mx)
            lzg = np.where(fin, np.log(np.mean(np.exp(lw_g - np.where(fin, mx, 0)[:, None]), 1)) + mx, -np.inf)
        return lw, sq, lzg


def _resample(lw, lz_acc, threshold, rng):
    """Systematic resampling, within each particle system (a row of lw (groups, m)) whose ESS is below
    threshold × m. Returns the new order of all particles (None if no system resampled) and the updated
    accumulated ln normalisers; `_resample.last` marks the systems that resampled (their weights reset)."""
    groups, m = lw.shape
    mx = lw.max(1)
    with np.errstate(invalid="ignore"):
        w = np.exp(lw - mx[:, None])
    w = np.where(np.isfinite(w), w, 0.0)
    sw = w.sum(1)
    ess = sw ** 2 / np.maximum((w * w).sum(1), 1e-300)
    do = (ess < threshold * m) & (sw > 0)
    _resample.last = do
    if not do.any():
        return None, lz_acc
    lz_acc = lz_acc.copy()
    idx = np.arange(groups * m).reshape(groups, m)
    for g in np.flatnonzero(do):
        lz_acc[g] += math.log(sw[g] / m) + mx[g]
        cdf = np.cumsum(w[g] / sw[g])
        cdf[-1] = 1.0
        pos = (rng.random() + np.arange(m)) / m
        idx[g] = g * m + np.searchsorted(cdf, pos, side="right")
    return idx.reshape(-1), lz_acc


_resample.last = None


# ------------------------------------------------------------------------------- weight diagnostics


def pareto_khat(lw):
    """Pareto k̂ of the upper tail of the importance weights exp(lw) (Vehtari et al., PSIS: generalised Pareto
    fitted by Zhang & Stephens' method, weakly regularised towards 0.5, to the largest min(S/5, 3√S)
    weights). k̂ < 0.5: finite variance, the delta-method error bar is sound; 0.5–0.7: finite mean,
    error bar optimistic; > 0.7: the estimate itself is unreliable. nan with fewer than 5 tail weights."""
    lw = np.asarray(lw, dtype=np.float64)
    lw = lw[np.isfinite(lw)]
    S = lw.size
    M = int(min(S / 5, 3 * math.sqrt(S)))
    if M < 5:
        return math.nan
    lw = np.sort(lw)
    cut = lw[-M - 1]
    x = np.exp(lw[-M:] - lw[-1]) - math.exp(cut - lw[-1])     # exceedances, scaled by the largest weight
    x = x[x > 0]
    n = x.size
    if n < 5:
        return math.nan
    m = 30 + int(math.sqrt(n))
    bs = 1 - np.sqrt(m / (np.arange(1, m + 1) - 0.5))
    bs = bs / (3 * x[int(n / 4 + 0.5) - 1]) + 1 / x[-1]
    ks = np.log1p(-bs[:, None] * x).mean(1)
    ll = n * (np.log(-bs / ks) - ks - 1)
    wts = 1 / np.exp(ll - ll[:, None]).sum(1)
    keep = wts >= 10 * np.finfo(float).eps
    wts, bs = wts[keep] / wts[keep].sum(), bs[keep]
    b = float((bs * wts).sum())
    k = float(np.log1p(-b * x).mean())
    return (n * k + 10 * 0.5) / (n + 10)


# ------------------------------------------------------------------------------------------ driver


def _summary(lw, sq, lzg=None):
    """ln of the mean weight, its s.e. (nats), the self-normalised mean of sq and its s.e., ESS. The s.e. of
    ln Ẑ is the delta method over i.i.d. weights, or, given the independent particle systems' ln Ẑ_g (equal
    sizes), over those."""
    ok = np.isfinite(lw)
    if not ok.any():
        return None
    S = lw.size
    mx = lw[ok].max()
    w = np.where(ok, np.exp(lw - mx), 0.0)
    mean = w.mean()
    wn = w / w.sum()
    m_sq = float(wn @ sq)
    if lzg is None:
        se = w.std(ddof=1) / math.sqrt(S) / mean
    else:
        zg = np.exp(lzg - mx)
        se = zg.std(ddof=1) / math.sqrt(zg.size) / zg.mean()
    return (math.log(mean) + mx, se, m_sq, math.sqrt(float(wn @ ((sq - m_sq) ** 2 * wn))), 1.0 / float(wn @ wn))


def _one_blas_thread(fn):
    """Run ``fn`` with the BLAS on one thread: its factorisations are of P×P matrices (P = 500: milliseconds), where a
    second thread gains little on a quiet machine and, when the other core is busy (another worker, another job),
    the BLAS threads' waiting for each other made a curve ten times slower (81 s against 7.6 s, measured)."""

    @functools.wraps(fn)
    def run(*args, **kwargs):
        with threadpool_limits(limits=1, user_api="blas"):
            return fn(*args, **kwargs)

    return run


@_one_blas_thread
def committee_local_entropy_is(weights, X, y, deltas, *, samples=256, beta=math.inf, normalize=True, seed=0,
                               max_samples=2048, ess_target=64.0, khat_max=0.7, rel_se=0.02, ep_sweeps=1,
                               ep_first_sweeps=4,
                               ep_tol=1e-4, temper=1.0, inactive=1e-9, block=32, groups=8, resample=0.5,
                               backend="numba", progress=None) -> CommitteeEstimate:
    """φ_G(Δ) ± s.e., δ(Δ) ± s.e. and the local entropy of a committee machine around `weights` (module docstring).

    weights: (K, N) reference w̃ (K odd); X: (P, N) inputs with X Xᵀ invertible; y: (P,) labels ±1; deltas:
    increasing prior widths. samples: importance draws per Δ in each round; while the ESS is below
    ess_target, the Pareto k̂ of the weights above khat_max, or the s.e. of ln Z above rel_se·|ln Z|,
    another round is added, up to max_samples. groups, resample: the draws form ``groups`` independent
    particle systems, each resampled after a block of patterns when its ESS falls below resample × its
    size (0: plain sequential importance sampling, error bar by the delta method); the error bar is the
    spread of the systems' estimates. beta: inf for the hard constraint (the reference must classify every pattern), or
    a finite inverse temperature for the soft one of docs/bp.md §1 (ψ^β = e^{−β} + (1 − e^{−β})ψ).
    normalize: rescale each unit to ‖w̃_k‖² = N. seed: the draws at Δ_j come from
    SeedSequence(seed).spawn(len(deltas))[j], so a result is deterministic given the seed. ep_sweeps,
    ep_first_sweeps, ep_tol: the EP iteration that builds the proposal (warm-started along Δ, the first Δ
    from zero sites; its accuracy sets the variance, never the bias). temper: the proposal uses the EP
    sites scaled by temper ∈ (0, 1] (a wider proposal, lighter weight tails). inactive: patterns whose EP
    tilted ln Z_μ is above −inactive are drawn jointly at the end. block: patterns per kernel call;
    backend: "numba" (the kernel) or "numpy" (its oracle: same numbers, slower). progress(dict) is called
    after each Δ with keys index, total, prior_delta, phi_G, phi_G_se, delta, ess, khat, draws, seconds.

    Raises EntropicError for bad inputs, singular X Xᵀ, or (hard constraint) a reference that
    misclassifies a training pattern.
    """
    W, X, y, deltas = check_committee_inputs(weights, X, y, deltas)
    samples, max_samples = int(samples), int(max_samples)
    ep_sweeps, ep_first_sweeps = int(ep_sweeps), int(ep_first_sweeps)
    if samples < 2:
        raise EntropicError(f"samples must be ≥ 2, got {samples}")
    max_samples = max(max_samples, samples)
    if ep_sweeps < 0 or ep_first_sweeps < 0:
        raise EntropicError(f"ep_sweeps and ep_first_sweeps must be ≥ 0, got {ep_sweeps}, {ep_first_sweeps}")
    beta = float(beta)
    if not beta > 0:
        raise EntropicError(f"beta must be > 0 (math.inf for the hard constraint), got {beta}")
    if not (ep_tol > 0 and inactive > 0):
        raise EntropicError(f"ep_tol and inactive must be > 0, got {ep_tol}, {inactive}")
    if not 0 < temper <= 1:
        raise EntropicError(f"temper must be in (0, 1], got {temper}")
    if backend not in ("numba", "numpy"):
        raise EntropicError(f"backend must be 'numba' or 'numpy', got {backend!r}")
    block, groups = max(1, int(block)), int(groups)
    if groups < 2 and resample > 0:
        raise EntropicError(f"groups must be ≥ 2 when resampling (the error bar comes from them), got {groups}")
    if not 0 <= resample < 1:
        raise EntropicError(f"resample must be in [0, 1), got {resample}")
    groups = max(groups, 1)
    K, N = W.shape
    if normalize:
        W = W * (math.sqrt(N) / np.linalg.norm(W, axis=1))[:, None]
    n = K * N
    bad = committee_sign.misclassified(X @ W.T, y)
    if bad.any() and not math.isfinite(beta):
        raise EntropicError(f"the reference misclassifies {int(bad.sum())} of {len(y)} training patterns "
                            f"(first: {np.flatnonzero(bad)[:5].tolist()}); the hard constraint needs a solution: "
                            "drop them or pass a finite beta")
    prob = _Problem(W, X, y)
    P = prob.P
    G = len(deltas)
    keys = ("phi_G", "phi_G_se", "delta", "delta_se", "ess", "khat", "ep_phi_G", "seconds")
    out = {k: np.full(G, np.nan) for k in keys}
    sweeps, active, draws = (np.zeros(G, dtype=np.int64) for _ in range(3))
    seeds = np.random.SeedSequence(int(seed)).spawn(G)
    a, b = np.zeros((K, P)), np.zeros((K, P))
    perm = np.arange(P)
    proper_prev = None
    t0 = time.perf_counter()
    for j, D in enumerate(deltas):
        D = float(D)
        (a1, b1, U1), (a, b, U), lz, sweeps[j] = _ep(prob, D, a, b, perm, beta,
                                                      ep_first_sweeps if j == 0 else ep_sweeps, ep_tol,
                                                      fallback=None if proper_prev is None else proper_prev)
        ep_lz, _ = _ep_log_z(prob, a, b, U, beta)
        proper_prev = (a, b)
        perm = U1.perm
        smp = None
        for sa, sb, su in ((a1, b1, U1), (a, b, U)):       # the last sites; if improper, the last proper ones
            if temper < 1:
                su = prob.units(D, temper * sa, su.perm, diag=False)
                sa, sb = temper * sa, temper * sb
            if su is None:
                continue
            smp = _Sampler(prob, D, sa, sb, su, lz, beta, inactive)
            if smp.proper:
                break
        if smp is None or not smp.proper:                  # never expected: the prior as proposal
            z = np.zeros((K, P))
            smp = _Sampler(prob, D, z, z, prob.units(D, z, perm, diag=False), lz, beta, inactive)
        a, b = a1, b1
        rng = np.random.default_rng(seeds[j])
        lw, sq, lzg = smp.draw(samples, rng, backend, block, groups, resample)
        while True:
            s = _summary(lw, sq + K * (N - P) * D, lzg if resample > 0 else None)
            khat = pareto_khat(lw)
            done = (s is not None and s[4] >= ess_target and not khat > khat_max
                    and not s[1] > rel_se * abs(s[0]))
            if done or lw.size + samples > max_samples:
                break
            lw2, sq2, lzg2 = smp.draw(samples, rng, backend, block, groups, resample)
            lw, sq, lzg = np.concatenate([lw, lw2]), np.concatenate([sq, sq2]), np.concatenate([lzg, lzg2])
        if s is None:
            raise EntropicError(f"at Δ = {D:.4g} every importance weight is zero; use more samples")
        lz_hat, lz_se, m_sq, m_sq_se, ess = s
        out["phi_G"][j] = lz_hat / n
        out["phi_G_se"][j] = lz_se / n
        out["delta"][j] = m_sq / (2 * n)                # the free directions: exactly their mean K(N − P)Δ
        out["delta_se"][j] = m_sq_se / (2 * n)
        out["ess"][j] = ess
        out["khat"][j] = khat
        out["ep_phi_G"][j] = ep_lz / n
        draws[j], active[j] = lw.size, smp.n_act
        out["seconds"][j] = time.perf_counter() - t0
        if progress is not None:
            progress({"index": j, "total": G, "prior_delta": D, "phi_G": float(out["phi_G"][j]),
                      "phi_G_se": float(out["phi_G_se"][j]), "delta": float(out["delta"][j]),
                      "ess": float(ess), "khat": float(khat), "draws": int(lw.size),
                      "seconds": float(out["seconds"][j])})
    phi = shell_entropy(out["phi_G"], out["delta"], deltas)
    # s = φ_G − ½ log1p(r) + r/2, r = 2δ/Δ − 1: ∂s/∂δ = r/((1 + r)Δ)
    r = 2 * out["delta"] / deltas - 1
    phi_se = np.hypot(out["phi_G_se"], r / ((1 + r) * deltas) * out["delta_se"])
    reliable = (out["ess"] >= ess_target) & ~(out["khat"] > khat_max)
    return CommitteeEstimate(prior_delta=deltas.copy(), phi_G=out["phi_G"], phi_G_se=out["phi_G_se"],
                             delta=out["delta"], delta_se=out["delta_se"], phi=phi, phi_se=phi_se,
                             phi_ball=ball_entropy(out["delta"], phi), d=out["delta"] * n, ess=out["ess"],
                             ep_phi_G=out["ep_phi_G"], ep_sweeps=sweeps, active=active, seconds=out["seconds"],
                             n=n, K=K, N=N, P=P, samples=samples, beta=beta, khat=out["khat"], draws=draws,
                             reliable=reliable,
                             settings={"normalize": bool(normalize), "seed": int(seed), "max_samples": max_samples,
                                       "ess_target": float(ess_target), "khat_max": float(khat_max),
                                       "rel_se": float(rel_se),
                                       "ep_sweeps": ep_sweeps, "ep_first_sweeps": ep_first_sweeps,
                                       "ep_tol": float(ep_tol), "temper": float(temper), "inactive": float(inactive),
                                       "block": block, "groups": groups, "resample": float(resample),
                                       "backend": backend,
                                       "factorisations": int(prob.factorisations),
                                       "method": "EP-guided sequential importance sampling (GHK)"})




def compile_kernels() -> None:
    """Compile (or load from Numba's cache) the sampler's kernels by running a tiny instance, hard and
    soft, so that a user's first curve does not wait for the compiler (``make setup`` calls it)."""
    rng = np.random.default_rng(0)
    X = np.sign(rng.standard_normal((6, 12)))
    W = rng.standard_normal((3, 12))
    y = np.asarray(committee_sign.committee_output(X @ W.T), dtype=np.float64)  # labels the reference classifies
    for beta in (math.inf, 5.0):
        committee_local_entropy_is(W, X, y, [0.01], samples=16, max_samples=16, beta=beta)
