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

import math
import time
from dataclasses import dataclass, field

import numpy as np
from scipy.linalg import cho_solve, cholesky, solve_triangular
from scipy.linalg.lapack import dpotri
from scipy.special import log_ndtr, ndtri_exp

from localentropy import committee_sign
from localentropy.entropic.errors import EntropicError
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

    def units(self, Delta, a):
        """Per unit: Cholesky L of the precision Λ_k = G⁻¹/Δ + diag(a_k), diag(Λ_k⁻¹), ln|I + ΔG A_k|; None if
        some Λ_k is not positive definite."""
        K, P = self.K, self.P
        Ls, diag, logdet = [], np.empty((K, P)), np.empty(K)
        for k in range(K):
            lam = self.G_inv / Delta
            lam[np.diag_indices(P)] += a[k]
            try:
                L = cholesky(lam, lower=True, check_finite=False)
            except np.linalg.LinAlgError:
                return None
            inv, info = dpotri(L, lower=1)
            if info != 0:
                return None
            Ls.append(L)
            diag[k] = np.diagonal(inv)
            logdet[k] = P * math.log(Delta) + self.logdet_G + 2 * float(np.log(np.diagonal(L)).sum())
        return Ls, diag, logdet

    def mean_shift(self, Ls, r):
        """E_q[g_k] = Λ_k⁻¹ r_k, r = b − a m0: (K, P)."""
        return np.stack([cho_solve((Ls[k], True), r[k], check_finite=False) for k in range(self.K)])


def _proper(U, a):
    return U is not None and bool(np.all(U[1] > 0) and np.all(1.0 / U[1] - a > 0))


def _ep(prob, Delta, a, b, beta, sweeps, tol, damping=0.5):
    """EP sites (a, b) at Δ from a warm start (the previous Δ's sites, or zeros): at most ``sweeps`` damped
    parallel sweeps (the scheme of bp/ep.py). Returns a, b, the unit Gaussians, sweeps spent."""
    K, P = prob.K, prob.P
    U = prob.units(Delta, a)
    if not _proper(U, a):
        a, b = np.zeros((K, P)), np.zeros((K, P))
        U = prob.units(Delta, a)
    change, base, done = math.inf, damping, 0
    for done in range(1, sweeps + 1):
        Ls, Vd, _ = U
        m = prob.m0 + prob.mean_shift(Ls, b - a * prob.m0)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            v_cav = 1.0 / (1.0 / Vd - a)
            m_cav = v_cav * (m / Vd - b)
            _, tm, tv = _tilted(m_cav, v_cav, prob.y, K, beta)
            a_new, b_new = 1.0 / tv - 1.0 / v_cav, tm / tv - m_cav / v_cav
        ok = np.isfinite(a_new) & np.isfinite(b_new)
        eta, found = base, False
        for attempt in range(7):
            lo = np.maximum(a_new, 0.0) if attempt == 6 else a_new
            a_p = np.where(ok, (1 - eta) * a + eta * lo, a)
            b_p = np.where(ok, (1 - eta) * b + eta * b_new, b)
            U_p = prob.units(Delta, a_p)
            if _proper(U_p, a_p):
                found = True
                break
            eta = eta / 2 if attempt < 5 else base
        if not found:
            break
        last = change
        change = float(np.max(np.abs(a_p - a) * Vd) + np.max(np.abs(b_p - b) * np.sqrt(Vd)))
        if change > last:
            base = max(base * 0.7, 0.02)
        a, b, U = a_p, b_p, U_p
        if change < tol:
            break
    return a, b, U, done


def _ep_log_z(prob, a, b, U, beta):
    """EP's (expectation-consistent) ln Z at the sites (a, b) and the pattern-wise tilted ln Z_μ (P,)."""
    Ls, Vd, logdet = U
    m0 = prob.m0
    r = b - a * m0
    Vr = prob.mean_shift(Ls, r)
    glob = float(np.sum(-0.5 * logdet + (m0 * b).sum(1) - 0.5 * (a * m0 * m0).sum(1) + 0.5 * (r * Vr).sum(1)))
    m = m0 + Vr
    with np.errstate(divide="ignore", invalid="ignore"):
        v_cav = 1.0 / (1.0 / Vd - a)
        m_cav = v_cav * (m / Vd - b)
        lz, _, _ = _tilted(m_cav, v_cav, prob.y, prob.K, beta)
        site = -0.5 * np.log1p(a * v_cav) + (2 * m_cav * b + b * b * v_cav - a * m_cav * m_cav) / (2 * (1 + a * v_cav))
    return glob + float(lz.sum()) - float(site.sum()), lz


# --------------------------------------------------------------------------------- the sequential IS


def _full_inverse(L):
    inv, _ = dpotri(L, lower=1)
    inv = np.tril(inv)
    return inv + np.tril(inv, -1).T


def _sequential_is(prob, Delta, a, b, U, lz, S, rng, beta, inactive, block=32):
    """Log importance weights (S,) of ln Z and ‖P(w′ − w̃)‖² (S,) summed over units (P the projector on
    the inputs' span), by EP-guided sequential importance sampling (module docstring)."""
    K, P, y = prob.K, prob.P, prob.y
    need = (K + 1) // 2
    Ls, _, logdet = U
    r = b - a * prob.m0                                   # sites in g = h − m0: exp(−½ a g² + r g)
    Vr = prob.mean_shift(Ls, r)
    log_zq = float(np.sum(-0.5 * logdet + 0.5 * (r * Vr).sum(1)))
    order = np.argsort(lz, kind="stable")                 # most constrained first
    n_act = int(np.sum(lz <= -inactive))
    # covariance of q_k in that order, and its Cholesky factor: g = mean + Lc ε (row μ: the conditional)
    Lc = np.stack([cholesky(_full_inverse(Ls[k])[np.ix_(order, order)], lower=True, check_finite=False)
                   for k in range(K)])
    mg, rr, aa, mp, yp = Vr[:, order], r[:, order], a[:, order], prob.m0[:, order], y[order]
    eps = np.zeros((K, S, P))
    lw = np.full(S, log_zq)
    e_beta = math.exp(-beta) if math.isfinite(beta) else 0.0
    log_e = -beta if math.isfinite(beta) else -math.inf
    cols = np.arange(S)
    for i0 in range(0, n_act, block):
        i1 = min(n_act, i0 + block)
        Cb = np.matmul(eps[:, :, :i0], Lc[:, i0:i1, :i0].transpose(0, 2, 1)) if i0 else np.zeros((K, S, i1 - i0))
        for mu in range(i0, i1):
            c = mg[:, mu][:, None] + Cb[:, :, mu - i0]
            if mu > i0:
                c = c + np.matmul(eps[:, :, i0:mu], Lc[:, mu, i0:mu][:, :, None])[:, :, 0]
            s2 = (Lc[:, mu, mu] ** 2)[:, None]
            prec = 1.0 / s2 - aa[:, mu][:, None]           # q's conditional with site μ divided out
            vp = 1.0 / prec
            u = c / s2 - rr[:, mu][:, None]
            cp = vp * u
            lw += np.sum(-0.5 * np.log(s2 * prec) + 0.5 * (u * u * vp - c * c / s2), 0)
            sv = np.sqrt(vp)
            z = yp[mu] * (mp[:, mu][:, None] + cp) / sv     # standardised distance of each field from its wall
            lp = log_ndtr(z)
            p = np.exp(lp)
            T = _vote_tails(p, need)
            Zm = e_beta + (1 - e_beta) * T[0, need]
            with np.errstate(divide="ignore"):
                lw += np.log(Zm)
            j = np.full(S, need)
            if e_beta > 0:                                  # soft: the unconstrained branch, weight e^{-β}
                j = np.where(rng.random(S) * Zm < e_beta, 0, need)
            right = np.empty((K, S), dtype=bool)
            for k in range(K):                              # the votes, drawn given ≥ j more right ones
                with np.errstate(divide="ignore", invalid="ignore"):
                    pk = np.where(j > 0, p[k] * T[k + 1, np.maximum(j - 1, 0), cols] / T[k, j, cols], p[k])
                right[k] = rng.random(S) < pk
                j = np.where(right[k], np.maximum(j - 1, 0), j)
            lu = np.log(rng.random((K, S)))
            with np.errstate(divide="ignore", invalid="ignore"):
                t = np.where(right, -ndtri_exp(lu + lp), ndtri_exp(lu + log_ndtr(-z)))
            g = cp + sv * yp[mu] * t
            eps[:, :, mu] = (g - c) / np.sqrt(s2)
    if n_act < P:                                           # the unconstrained rest: jointly from q, weight ψ/t
        rest = slice(n_act, P)
        eps[:, :, rest] = rng.standard_normal((K, S, P - n_act))
        g = mg[:, None, rest] + np.matmul(eps, Lc[:, rest, :].transpose(0, 2, 1))
        lw += np.sum(0.5 * aa[:, None, rest] * g * g - rr[:, None, rest] * g, (0, 2))
        h = mp[:, None, rest] + g
        right = ((h >= 0) == (yp[rest] > 0)).sum(0)        # (S, P − n_act) right votes; sign(0) = +1
        bad = (right < need).sum(1)
        with np.errstate(invalid="ignore"):
            lw += np.where(bad > 0, bad * log_e, 0.0)
    # ‖P(w′ − w̃)‖² = gᵀG⁻¹g = Δ(gᵀΛg − gᵀAg), gᵀΛg = ‖Lc⁻¹ mean + ε‖² (in q's order)
    sq = np.zeros(S)
    for k in range(K):
        t0 = solve_triangular(Lc[k], mg[k], lower=True, check_finite=False)
        g = mg[k][None, :] + eps[k] @ Lc[k].T
        sq += Delta * (((t0[None, :] + eps[k]) ** 2).sum(1) - (aa[k][None, :] * g * g).sum(1))
    return lw, sq, n_act


# ------------------------------------------------------------------------------------------ driver


def _check_inputs(weights, X, y, deltas):
    W = np.asarray(weights, dtype=np.float64)
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y)
    if W.ndim == 1:
        W = W[None]
    if W.ndim != 2:
        raise EntropicError(f"weights must have shape (K, N), got {W.shape}")
    K, N = W.shape
    committee_sign.check_odd_K(K, EntropicError)
    if X.ndim != 2 or X.shape[1] != N:
        raise EntropicError(f"X must have shape (P, {N}) to match weights {W.shape}, got {X.shape}")
    if y.shape != (X.shape[0],) or not np.all(np.abs(y) == 1):
        raise EntropicError(f"y must be {X.shape[0]} labels ±1, got shape {y.shape}")
    if not (np.all(np.isfinite(W)) and np.all(np.isfinite(X))):
        raise EntropicError("weights or X contain NaN or inf")
    norms = np.linalg.norm(W, axis=1)
    if np.any(norms == 0):
        raise EntropicError(f"hidden unit(s) {np.flatnonzero(norms == 0).tolist()} of the reference are all zero")
    deltas = np.asarray(deltas, dtype=np.float64).reshape(-1)
    if deltas.size == 0 or not np.all(np.isfinite(deltas)) or np.any(deltas <= 0):
        raise EntropicError(f"deltas must be a non-empty list of finite prior widths Δ > 0, got {deltas.tolist()}")
    if np.any(np.diff(deltas) <= 0):
        raise EntropicError(f"deltas must be strictly increasing, got {deltas.tolist()}")
    return W, X, y.astype(np.float64), deltas


def committee_local_entropy_is(weights, X, y, deltas, *, samples=512, beta=math.inf, normalize=True, seed=0,
                               ep_sweeps=12, ep_tol=1e-4, inactive=1e-9, progress=None) -> CommitteeEstimate:
    """φ_G(Δ) ± s.e., δ(Δ) ± s.e. and the local entropy of a committee machine around `weights` (module docstring).

    weights: (K, N) reference w̃ (K odd); X: (P, N) inputs with X Xᵀ invertible; y: (P,) labels ±1; deltas:
    increasing prior widths. samples: importance draws per Δ (the error bar shrinks as 1/√samples);
    beta: inf for the hard constraint (the reference must classify every pattern), or a finite inverse
    temperature for the soft one of docs/bp.md §1 (ψ^β = e^{−β} + (1 − e^{−β})ψ). normalize: rescale each
    unit to ‖w̃_k‖² = N. seed: the draws at Δ_j come from SeedSequence(seed).spawn(len(deltas))[j], so a
    result is deterministic given the seed. ep_sweeps, ep_tol: the EP iteration that builds the proposal
    (warm-started along Δ; its accuracy sets the variance, never the bias). inactive: patterns whose EP
    tilted ln Z_μ is above −inactive are drawn jointly at the end. progress(dict) is called after each Δ
    with keys index, total, prior_delta, phi_G, phi_G_se, delta, ess, seconds.

    Raises EntropicError for bad inputs, singular X Xᵀ, or (hard constraint) a reference that
    misclassifies a training pattern.
    """
    W, X, y, deltas = _check_inputs(weights, X, y, deltas)
    samples, ep_sweeps = int(samples), int(ep_sweeps)
    if samples < 2:
        raise EntropicError(f"samples must be ≥ 2, got {samples}")
    if ep_sweeps < 0:
        raise EntropicError(f"ep_sweeps must be ≥ 0, got {ep_sweeps}")
    beta = float(beta)
    if not beta > 0:
        raise EntropicError(f"beta must be > 0 (math.inf for the hard constraint), got {beta}")
    if not (ep_tol > 0 and inactive > 0):
        raise EntropicError(f"ep_tol and inactive must be > 0, got {ep_tol}, {inactive}")
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
    out = {k: np.full(G, np.nan) for k in ("phi_G", "phi_G_se", "delta", "delta_se", "ess", "ep_phi_G", "seconds")}
    sweeps, active = np.zeros(G, dtype=np.int64), np.zeros(G, dtype=np.int64)
    seeds = np.random.SeedSequence(int(seed)).spawn(G)
    a, b = np.zeros((K, P)), np.zeros((K, P))
    t0 = time.perf_counter()
    for j, D in enumerate(deltas):
        D = float(D)
        a, b, U, sweeps[j] = _ep(prob, D, a, b, beta, ep_sweeps, ep_tol)
        if not _proper(U, a):                       # never expected: fall back to the prior as proposal
            a, b = np.zeros((K, P)), np.zeros((K, P))
            U = prob.units(D, a)
        ep_lz, lz = _ep_log_z(prob, a, b, U, beta)
        lw, sq, active[j] = _sequential_is(prob, D, a, b, U, lz, samples, np.random.default_rng(seeds[j]), beta,
                                           inactive)
        sq = sq + K * (N - P) * D                  # the free directions: exactly their mean
        ok = np.isfinite(lw)
        if not ok.any():
            raise EntropicError(f"at Δ = {D:.4g} every importance weight is zero; use more samples")
        mx = lw[ok].max()
        w = np.where(ok, np.exp(lw - mx), 0.0)
        mean = w.mean()
        out["phi_G"][j] = (math.log(mean) + mx) / n
        out["phi_G_se"][j] = w.std(ddof=1) / math.sqrt(samples) / mean / n
        wn = w / w.sum()
        m_sq = float(wn @ sq)
        out["delta"][j] = m_sq / (2 * n)
        out["delta_se"][j] = math.sqrt(float(wn @ ((sq - m_sq) ** 2 * wn))) / (2 * n)
        out["ess"][j] = 1.0 / float(wn @ wn)
        out["ep_phi_G"][j] = ep_lz / n
        out["seconds"][j] = time.perf_counter() - t0
        if progress is not None:
            progress({"index": j, "total": G, "prior_delta": D, "phi_G": float(out["phi_G"][j]),
                      "phi_G_se": float(out["phi_G_se"][j]), "delta": float(out["delta"][j]),
                      "ess": float(out["ess"][j]), "seconds": float(out["seconds"][j])})
    phi = shell_entropy(out["phi_G"], out["delta"], deltas)
    # s = φ_G − ½ log1p(r) + r/2, r = 2δ/Δ − 1: ∂s/∂δ = r/((1 + r)Δ)
    r = 2 * out["delta"] / deltas - 1
    phi_se = np.hypot(out["phi_G_se"], r / ((1 + r) * deltas) * out["delta_se"])
    return CommitteeEstimate(prior_delta=deltas.copy(), phi_G=out["phi_G"], phi_G_se=out["phi_G_se"],
                             delta=out["delta"], delta_se=out["delta_se"], phi=phi, phi_se=phi_se,
                             phi_ball=ball_entropy(out["delta"], phi), d=out["delta"] * n, ess=out["ess"],
                             ep_phi_G=out["ep_phi_G"], ep_sweeps=sweeps, active=active, seconds=out["seconds"],
                             n=n, K=K, N=N, P=P, samples=samples, beta=beta,
                             settings={"normalize": bool(normalize), "seed": int(seed), "ep_sweeps": ep_sweeps,
                                       "ep_tol": float(ep_tol), "inactive": float(inactive),
                                       "method": "EP-guided sequential importance sampling (GHK)"})


committee_local_entropy_ghk = committee_local_entropy_is  # the first name (kept as an alias)
