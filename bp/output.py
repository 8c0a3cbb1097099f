"""Output channel of one pattern of the committee machine (docs/bp.md §3.3–3.4).

Under the BP cavity measure the K pre-activations of pattern μ are independent Gaussians
λ_kμ ~ N(ω_kμ, V_kμ). The pattern factor ψ_μ = Θ(y_μ Σ_k sign λ_kμ) (soft version
ψ^β = e^{−β} + (1 − e^{−β}) ψ) is summed exactly over the 2^K hidden configurations by a
log-domain dynamic programme on the number of units voting with the label:

    Z_μ  = P(c ≥ h+1),  h = (K−1)/2                 (the pattern is satisfied)
    D_kμ = P(c_{−k} = h)                          (unit k is pivotal)
    R_kμ = P(c_{−k} ≥ h+1)                        (the others already decide)
    𝒵_kμ(ω) = R_kμ + D_kμ Φ(y_μ ω / √V_kμ)

and the derivatives of ln 𝒵_kμ at ω_kμ (§3.4):

    G = φ(t) / (R/D + Φ(t)),   t = y ω/√V,   g = y G/√V,   Γ = G (G + t)/V.

Everything is in logs: at small prior width |t| reaches ~100 and Φ(−100) underflows (§6.1).
`output_channel` is the compiled version (prefix/suffix tables, O(K²) per pattern);
`output_channel_numpy` is the plain numpy/scipy oracle (K separate DPs, O(K³)) used by the tests.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np
from scipy.special import erfcx, log_ndtr

from localentropy.committee_sign import check_odd_K
from localentropy.bp.errors import BPError

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
_SQRT1_2 = 1.0 / math.sqrt(2.0)
_NEG_INF = -np.inf


@nb.njit(cache=True, inline="always")
def logaddexp(a, b):
    """ln(e^a + e^b) without overflow; exact when one side is −∞ (the naive form gives NaN for −∞ − −∞)."""
    if a > b:
        hi = a
        d = b - a
    else:
        hi = b
        d = a - b
    if not d > -745.2:  # e^d underflows to 0, or one side is −∞
        if d == d or a == b:  # d = −∞, or −∞ − −∞ = NaN with a = b = −∞
            return hi
        return d  # a NaN input stays NaN
    e = math.exp(d)
    if d < -37.0:  # log1p(e) rounds to e for e < 1e-16: skip the log
        return hi + e
    return hi + math.log1p(e)


@nb.njit(cache=True)
def log_ndtr_nb(t):
    """ln Φ(t), accurate far into both tails (scipy.special.log_ndtr is not callable from numba).

    ln(½ erfc(−t/√2)) underflows for t < −37 and loses relative precision of 1 − Φ for t ≫ 0, so:
    t > 0 uses log1p(−Φ(−t)); −20 ≤ t ≤ 0 uses erfc directly (relative accuracy of erfc is fine there);
    t < −20 uses the asymptotic series Φ(t) = φ(t)/|t| Σ_k (−1)^k (2k−1)!!/t^{2k}, whose terms are below
    1e-17 after 10 terms at |t| ≥ 20.
    """
    if t > 0.0:
        return math.log1p(-0.5 * math.erfc(t * _SQRT1_2))
    if t >= -20.0:
        return math.log(0.5 * math.erfc(-t * _SQRT1_2))
    t2 = t * t
    term = 1.0
    s = 1.0
    for k in range(1, 14):
        term *= -(2.0 * k - 1.0) / t2
        s += term
    return -0.5 * t2 - math.log(-t) - _HALF_LOG_2PI + math.log(s)


@nb.njit(cache=True)
def channel_row(omega, V, y, beta, lnp, lnq, L, S, Sc, g, Gam):
    """Output channel of one pattern: fills g[k], Gam[k] (k = 0..K−1) and returns ln Z_μ.

    omega, V: (K,) cavity means/variances of the pre-activations; y = ±1; beta > 0 or inf.
    lnp, lnq: (K,) workspaces; L, S, Sc: (K+1, K+1) workspaces for the prefix table L[k, c]
    (count among units < k), suffix table S[k, c] (count among units > k) and its upper tail
    Sc[k, c] = P(count among units > k ≥ c).

    The count DP runs in linear scale (`_channel_linear`: each unit's two probabilities divided by the
    larger one, so the most likely configuration weighs 1) when every quantity it returns is far above
    the underflow range, which then costs nothing in accuracy (sums of positive terms); otherwise, and for
    K = 1, in logs (`_channel_log`: exact at any |t|, slower: a logaddexp per DP step).
    """
    K = omega.shape[0]
    for k in range(K):
        t = y * omega[k] / math.sqrt(V[k])
        lnp[k] = log_ndtr_nb(t)
        lnq[k] = log_ndtr_nb(-t)
    # soft constraint ψ^β = e^{−β} + (1 − e^{−β}) ψ
    if beta == np.inf:
        lneb = -np.inf
        ln1m = 0.0
    else:
        lneb = -beta
        ln1m = math.log(-math.expm1(-beta))
    if K >= 3:
        lnZ = _channel_linear(omega, V, y, lneb, ln1m, lnp, lnq, L, S, Sc, g, Gam)
        if lnZ == lnZ:
            return lnZ
    return _channel_log(omega, V, y, lneb, ln1m, lnp, lnq, L, S, Sc, g, Gam)


_LIN_MIN = 1e-290  # scaled D, R, Z at or above this are exact to ~K·eps in linear scale (the underflowed parts
#                    of the sums are below ~1e-321 absolute); anything smaller goes to the log-domain DP


@nb.njit(cache=True)
def _channel_linear(omega, V, y, lneb, ln1m, lnp, lnq, L, S, Sc, g, Gam):
    """Count DP of `channel_row` in linear scale; returns NaN (nothing usable) when some D_k, R_k or Z is
    below _LIN_MIN in scaled units. Unit k's probabilities are stored as p'_k = e^{ln p_k − s_k},
    q'_k = e^{ln q_k − s_k}, s_k = max(ln p_k, ln q_k) ∈ [ln ½, 0], in the spare rows S[K], Sc[K]."""
    K = omega.shape[0]
    h = (K - 1) // 2
    pp = S[K]
    qq = Sc[K]
    stot = 0.0
    for k in range(K):
        s = max(lnp[k], lnq[k])
        pp[k] = math.exp(lnp[k] - s)
        qq[k] = math.exp(lnq[k] - s)
        stot += s
    for k in range(K + 1):
        for c in range(K + 1):
            L[k, c] = 0.0
    for k in range(K):
        for c in range(K + 1):
            S[k, c] = 0.0
            Sc[k, c] = 0.0
    # prefix: L[k, c] ∝ P(c of units 0..k-1 vote y)
    L[0, 0] = 1.0
    for k in range(K):
        L[k + 1, 0] = L[k, 0] * qq[k]
        for c in range(1, k + 2):
            L[k + 1, c] = L[k, c] * qq[k] + L[k, c - 1] * pp[k]
    # suffix: S[k, c] ∝ P(c of units k+1..K-1 vote y); Sc its upper tail
    S[K - 1, 0] = 1.0
    for k in range(K - 1, 0, -1):
        nk = K - 1 - k
        S[k - 1, 0] = S[k, 0] * qq[k]
        for c in range(1, nk + 2):
            S[k - 1, c] = S[k, c] * qq[k] + S[k, c - 1] * pp[k]
    for k in range(K):
        acc = 0.0
        for c in range(K - 1 - k, -1, -1):
            acc += S[k, c]
            Sc[k, c] = acc
    Z = 0.0
    F = 0.0  # the failing configurations
    for c in range(K + 1):
        if c > h:
            Z += L[K, c]
        else:
            F += L[K, c]
    if not Z >= _LIN_MIN:
        return np.nan
    lnF = math.log(F) + stot if F > 0.0 else -np.inf
    if lnF < -0.6931471805599453:  # Z > ½: ln Z = ln(1 − F) keeps its relative accuracy when Z → 1
        lnZ = math.log1p(-math.exp(lnF))
    else:
        lnZ = math.log(Z) + stot
    lnZ = logaddexp(lneb, ln1m + lnZ)
    for k in range(K):
        nk = K - 1 - k
        D = 0.0
        R = 0.0
        for j in range(k + 1):  # j = count among units < k
            if 0 <= h - j <= nk:
                D += L[k, j] * S[k, h - j]
            need = h + 1 - j
            if need <= 0:
                R += L[k, j] * Sc[k, 0]
            elif need <= nk:
                R += L[k, j] * Sc[k, need]
        if not (D >= _LIN_MIN and R >= _LIN_MIN):
            return np.nan
        sk = stot - max(lnp[k], lnq[k])  # scale of the distribution of the other units
        lnD = ln1m + math.log(D) + sk
        lnR = logaddexp(lneb, ln1m + math.log(R) + sk)
        _unit_derivatives(k, omega[k], V[k], y, lnR, lnD, lnp[k], g, Gam)
    return lnZ


@nb.njit(cache=True)
def _channel_log(omega, V, y, lneb, ln1m, lnp, lnq, L, S, Sc, g, Gam):
    """Count DP of `channel_row` in logs: L, S, Sc hold log-probabilities (out-of-range counts −∞)."""
    K = omega.shape[0]
    h = (K - 1) // 2
    # prefix: L[k, c] = ln P(c of units 0..k-1 vote y)
    for k in range(K + 1):
        for c in range(K + 1):
            L[k, c] = -np.inf
            S[k, c] = -np.inf
            Sc[k, c] = -np.inf
    L[0, 0] = 0.0
    for k in range(K):
        for c in range(k + 2):
            a = L[k, c] + lnq[k] if c <= k else -np.inf
            b = L[k, c - 1] + lnp[k] if c >= 1 else -np.inf
            L[k + 1, c] = logaddexp(a, b)
    # suffix: S[k, c] = ln P(c of units k+1..K-1 vote y)
    S[K - 1, 0] = 0.0
    for k in range(K - 1, 0, -1):
        nk = K - 1 - k  # units counted in S[k]
        for c in range(nk + 2):
            a = S[k, c] + lnq[k] if c <= nk else -np.inf
            b = S[k, c - 1] + lnp[k] if c >= 1 else -np.inf
            S[k - 1, c] = logaddexp(a, b)
    for k in range(K):
        nk = K - 1 - k
        acc = -np.inf
        for c in range(nk, -1, -1):
            acc = logaddexp(acc, S[k, c])
            Sc[k, c] = acc
        Sc[k, 0] = 0.0  # P(count ≥ 0) = 1 exactly
    lnZ = -np.inf
    for c in range(h + 1, K + 1):
        lnZ = logaddexp(lnZ, L[K, c])
    lnZ = logaddexp(lneb, ln1m + lnZ)
    for k in range(K):
        nk = K - 1 - k
        lnD = -np.inf
        lnR = -np.inf
        for j in range(k + 1):  # j = count among units < k
            if L[k, j] == -np.inf:
                continue
            if 0 <= h - j <= nk:
                lnD = logaddexp(lnD, L[k, j] + S[k, h - j])
            need = h + 1 - j
            if need <= 0:
                lnR = logaddexp(lnR, L[k, j])
            elif need <= nk:
                lnR = logaddexp(lnR, L[k, j] + Sc[k, need])
        lnR = logaddexp(lneb, ln1m + lnR)
        lnD = ln1m + lnD
        _unit_derivatives(k, omega[k], V[k], y, lnR, lnD, lnp[k], g, Gam)
    return lnZ


@nb.njit(cache=True)
def _unit_derivatives(k, omega, V, y, lnR, lnD, lnp, g, Gam):
    """g[k], Gam[k] from ln R_kμ, ln D_kμ (soft-β included) and ln Φ(t) (§3.4); G = 0 if D = 0."""
    if lnD == -np.inf:
        g[k] = 0.0
        Gam[k] = 0.0
        return
    sV = math.sqrt(V)
    t = y * omega / sV
    lnphi = -0.5 * t * t - _HALF_LOG_2PI
    if t > _TAIL:
        G = math.exp(lnphi - logaddexp(lnR - lnD, lnp))
        GpT = G + t
    else:
        G, GpT = _tail_G(-t, lnR - lnD - lnphi)
    g[k] = y * G / sV
    Gam[k] = G * GpT / V


_TAIL = -5.0  # below this t, G and G + t come from the continued fraction (_tail_G)


@nb.njit(cache=True)
def _tail_G(x, lnrho):
    """(G, G + t) at t = −x ≤ −5, with ρ = (R/D)/φ(t) given as ln ρ (may be −∞).

    The direct forms cancel: G = φ/(r + Φ) ≈ x, so G + t ≈ 1/x loses ~2 log10(x) digits, and
    ln φ − ln Φ ~ x²/2 loses more. With the Mills ratio M = Φ(−x)/φ(x) = 1/(x + T),
    T = 1/(x + 2/(x + 3/(x + …))) (Laplace's continued fraction, fast for x ≥ 5):
    G = 1/(ρ + M) and G + t = G (1 − x(ρ + M)) = G T M − x ρG, with no cancellation when ρ = 0.
    """
    # terms for ~1e-17 relative accuracy (measured against 400 terms: 27 at x = 5, 17 at 8, 12 at 12, 10 at 20)
    n = 40 if x < 8.0 else (24 if x < 12.0 else (16 if x < 20.0 else 12))
    f = 0.0
    for j in range(n, 1, -1):
        f = j / (x + f)
    T = 1.0 / (x + f)
    M = 1.0 / (x + T)
    rho = math.exp(min(lnrho, 700.0)) if lnrho > -np.inf else 0.0
    G = 1.0 / (rho + M)
    return G, G * T * M - x * (rho * G)


@nb.njit(cache=True, parallel=True)
def _output_channel_kernel(omega, V, y, beta, lnZ, g, Gam):
    """Fill lnZ (P,), g (P,K), Gam (P,K) from omega, V (P,K) and labels y (P,) (§3.3–3.4)."""
    P, K = omega.shape
    for mu in nb.prange(P):
        lnp = np.empty(K)
        lnq = np.empty(K)
        L = np.empty((K + 1, K + 1))
        S = np.empty((K + 1, K + 1))
        Sc = np.empty((K + 1, K + 1))
        lnZ[mu] = channel_row(omega[mu], V[mu], y[mu], beta, lnp, lnq, L, S, Sc, g[mu], Gam[mu])


def _check_channel_inputs(omega, V, y, beta):
    omega = np.asarray(omega, dtype=np.float64)
    V = np.asarray(V, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if omega.ndim != 2:
        raise BPError(f"omega must have shape (P, K), got {omega.shape}")
    if V.shape != omega.shape:
        raise BPError(f"V must have the shape of omega {omega.shape}, got {V.shape}")
    if y.shape != (omega.shape[0],):
        raise BPError(f"y must have shape ({omega.shape[0]},), got {y.shape}")
    check_odd_K(omega.shape[1], BPError)
    if not np.all(np.isfinite(omega)):
        raise BPError("omega contains NaN or inf")
    if not (np.all(np.isfinite(V)) and np.all(V > 0)):
        raise BPError("V must be finite and > 0")
    if not np.all(np.abs(y) == 1):
        raise BPError("labels y must be ±1")
    beta = float(beta)
    if not beta > 0:
        raise BPError(f"beta must be > 0 (np.inf for the hard constraint), got {beta}")
    return np.ascontiguousarray(omega), np.ascontiguousarray(V), np.ascontiguousarray(y), beta


def output_channel(omega, V, y, beta=np.inf):
    """ln Z_μ (P,), g (P,K), Γ (P,K) of the committee output factor (docs/bp.md §3.3–3.4), compiled.

    omega, V: (P,K) cavity means and variances of the pre-activations; y: (P,) labels ±1;
    beta: np.inf for the hard constraint Θ(y Σ_k sign λ_k), finite for the soft one.
    g = ∂_ω ln 𝒵_kμ and Γ = −∂²_ω ln 𝒵_kμ at ω_kμ; Γ may be negative for K > 1 (§3.4).
    """
    omega, V, y, beta = _check_channel_inputs(omega, V, y, beta)
    P, K = omega.shape
    lnZ = np.empty(P)
    g = np.empty((P, K))
    Gam = np.empty((P, K))
    if P:
        _output_channel_kernel(omega, V, y, beta, lnZ, g, Gam)
    return lnZ, g, Gam


def output_channel_numpy(omega, V, y, beta=np.inf, return_terms=False):
    """Plain numpy/scipy oracle of `output_channel`: K separate count DPs (one per left-out unit).

    With return_terms=True also returns ln R (P,K) and ln D (P,K) after the soft-constraint modification.
    """
    omega, V, y, beta = _check_channel_inputs(omega, V, y, beta)
    P, K = omega.shape
    h = (K - 1) // 2
    t = y[:, None] * omega / np.sqrt(V)
    lp = log_ndtr(t)
    lq = log_ndtr(-t)

    def count_dist(units):
        dist = np.full((P, K + 1), -np.inf)
        dist[:, 0] = 0.0
        for k in units:
            new = np.full_like(dist, -np.inf)
            new[:, :] = dist + lq[:, k : k + 1]
            new[:, 1:] = np.logaddexp(new[:, 1:], dist[:, :-1] + lp[:, k : k + 1])
            dist = new
        return dist

    with np.errstate(divide="ignore", invalid="ignore"):
        lneb = -beta if np.isfinite(beta) else -np.inf
        ln1m = np.log(-np.expm1(-beta)) if np.isfinite(beta) else 0.0
        full = count_dist(range(K))
        lnZ = np.logaddexp(lneb, ln1m + np.logaddexp.reduce(full[:, h + 1 :], axis=1))
        lnR = np.empty((P, K))
        lnD = np.empty((P, K))
        for k in range(K):
            others = count_dist([l for l in range(K) if l != k])
            lnD[:, k] = ln1m + others[:, h]
            lnR[:, k] = np.logaddexp(lneb, ln1m + np.logaddexp.reduce(others[:, h + 1 :], axis=1))
        lnphi = -0.5 * t**2 - _HALF_LOG_2PI
        G = np.exp(lnphi - np.logaddexp(lnR - lnD, lp))
        GpT = G + t
        # far tail t < −20: G = 1/(ρ + M), M = √(π/2) erfcx(x/√2) the Mills ratio, ρ = (R/D)/φ(t), and
        # G + t = G (1 − xM − xρ) with 1 − xM = Σ_k (−1)^k (2k+1)!!/x^{2k+2} (asymptotic; cancels otherwise)
        far = t < -20.0
        if np.any(far):
            x = -t[far]
            M = np.sqrt(np.pi / 2) * erfcx(x / np.sqrt(2))
            rho = np.exp(np.minimum((lnR - lnD - lnphi)[far], 700.0))
            one_m_xM = np.zeros_like(x)
            term = 1.0 / x**2
            for j in range(12):
                one_m_xM += term
                term = -term * (2 * j + 3) / x**2
            Gf = 1.0 / (rho + M)
            G[far] = Gf
            GpT[far] = Gf * one_m_xM - x * (rho * Gf)
        dead = lnD == -np.inf
        G = np.where(dead, 0.0, G)
        GpT = np.where(dead, 0.0, GpT)
    g = y[:, None] * G / np.sqrt(V)
    Gam = G * GpT / V
    if return_terms:
        return lnZ, g, Gam, lnR, lnD
    return lnZ, g, Gam
