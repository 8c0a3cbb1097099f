"""Local entropy of a committee machine by sampling: exact reflecting HMC between the committee's walls,
and plain Monte Carlo.

`committee_local_entropy` estimates φ_G(Δ), δ(Δ) and s(d) (docs/bp.md §1, §5: the quantities
``bp.local_entropy_curve`` computes by Belief Propagation) of a committee reference by the SMC over Δ of
``entropic.smc``, with `_CommitteeWalls` (the feasible set and the moves inside it) as its space;
`committee_direct_monte_carlo` is plain i.i.d. sampling, the arbiter where Z is not tiny; and
`check_committee_inputs` validates a committee reference, its patterns and the Δ grid for every
committee estimator of entropic (``entropic.committee_estimator`` as well). They are kept apart from
the driver, which knows nothing of committees, and from the sampler for any nn.Module
(``entropic.module_sampling``), which needs none of the committee's geometry.

The moves are exact HMC for a Gaussian with hard walls (Pakman & Paninski, J. Comput. Graph. Stat.
23, 518 (2014)): under the potential ½‖z‖² a trajectory is the ellipse z cos t + v sin t, which is
followed exactly; where it would make the network misclassify a pattern it is reflected off that
wall. For the committee machine (paper 000, Eq. 7, sign units, second layer +1) the walls are the
hyperplanes λ_kμ = 0 of the hidden fields, so the crossing times are solutions of
c + A cos t + B sin t = 0, and a crossing is a wall only where it leaves pattern μ with h = (K−1)/2
correct votes. Only the projection of each unit's z_k onto the span of the training inputs enters
the fields: the sampler works in that r-dimensional subspace (r = rank X ≤ P, whitened), and the
orthogonal N − r components of each unit are exact standard Gaussians (they add exactly K(N − r) to
E‖z‖²). Elliptical slice sampling (Murray et al. 2010) moves along the same ellipses but shrinks
towards the start instead of reflecting, so in 4500 constrained dimensions its steps are tiny —
docs/bp.md §7.6 records such a sampler failing to equilibrate; reflection keeps the full trajectory length.

Conventions (as ``bp.local_entropy_curve``, docs/bp.md §1): every hidden unit of w̃ is rescaled to
‖w̃_k‖² = N (``normalize=True``); n = K·N; a vote is correct when sign(λ_kμ) = y_μ with sign(0) = +1
(``localentropy.committee_sign``); the constraint is "every training pattern correct" (the
reference must classify all of them, as BP's hard constraint).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from localentropy import committee_sign
from localentropy.entropic.errors import EntropicError
from localentropy.entropic.smc import SampledLocalEntropy, check_prior_widths, checkpoint_fingerprint, run_smc

TWO_PI = 2.0 * math.pi


class _CommitteeWalls:
    """The committee machine's feasible set in whitened field coordinates, and exact HMC inside it.

    Fields of a perturbed unit k: λ_kμ = λ̃_kμ + √Δ (B a_k)_μ with a_k ~ N(0, I_r), B = U S^{1/2} from
    C = X Xᵀ/N = U S Uᵀ (so B a_k has the law of X z_k/√N for z_k ~ N(0, I_N)), and ‖a_k‖² = ‖P z_k‖²
    (P the projector on the span of the inputs).
    """

    def __init__(self, W, X, y, dtype, device):
        K, N = W.shape
        Xt = torch.as_tensor(X, dtype=dtype, device=device)
        C = Xt @ Xt.T / N
        s, U = torch.linalg.eigh(C)
        keep = s > s.max() * 1e-10 * max(C.shape[0], 1)
        self.B = (U[:, keep] * s[keep].sqrt()).contiguous()          # (P, r)
        self.B_pinv_T = (U[:, keep] / s[keep].sqrt()).contiguous()   # (P, r): a = (B a) @ this
        self.C = self.B @ self.B.T                                   # (P, P) = C on the kept span
        self.Cdiag = torch.diagonal(self.C).clone()
        self.r = int(self.B.shape[1])
        Wt = torch.as_tensor(W, dtype=dtype, device=device)
        self.lam = (Wt @ Xt.T) / math.sqrt(N)                        # (K, P) reference fields λ̃
        self.y = torch.as_tensor(y, dtype=dtype, device=device)      # (P,)
        self.K, self.N, self.P = K, N, Xt.shape[0]
        self.h = (K - 1) // 2
        self.dtype, self.device = dtype, device

    def fields(self, a):
        """(M, K, r) → (M, K, P): B a_k."""
        return a @ self.B.T

    # the interface of run_smc
    def init(self, M, gen):
        return torch.randn((M, self.K, self.r), generator=gen, dtype=self.dtype, device=self.device)

    aux = fields

    def move(self, a, Delta, moves, gen):
        return self.hmc(a, Delta, moves, gen)

    def sq(self, a):
        """‖z‖² given a: ‖a‖² + K(N − r), the orthogonal directions' exact mean (they are free)."""
        return (a.double() ** 2).sum((1, 2)) + self.K * (self.N - self.r)

    def correct_counts(self, f):
        """Number of correct votes per pattern (M, P) from fields f (M, K, P); sign(0) = +1."""
        return ((f >= 0) == (self.y > 0)).sum(1)

    def feasible(self, Fa, Delta):
        """(M,) bool: every pattern correct at w̃ + √Δ z."""
        f = self.lam + math.sqrt(Delta) * Fa
        return (self.correct_counts(f) > self.h).all(1)

    @staticmethod
    def _crossings(c, A, V):
        """Zero crossings of the arc c + A cos t + V sin t, t ∈ (0, 2π) (elementwise): (t₁, t₂), inf where
        there is none. R cos(t − φ) = −c with R = |(A, V)|, φ = atan2(V, A): at t₁ = φ − α the field
        becomes positive, at t₂ = φ + α negative, α = arccos(−c/R); only fields with R > |c| cross."""
        R2 = A * A + V * V
        can = R2 > c * c
        phi = torch.atan2(V, A)
        alpha = torch.arccos((-c / R2.sqrt().clamp_min(1e-300)).clamp(-1.0, 1.0))
        inf = torch.full_like(A, math.inf)
        t1 = torch.remainder(phi - alpha, TWO_PI)
        t2 = torch.remainder(phi + alpha, TWO_PI)
        return (torch.where(can & (t1 > 1e-12), t1, inf), torch.where(can & (t2 > 1e-12), t2, inf))

    def _first_wall(self, T1, T2, c, A, V, tau, t_now, t_end):
        """First time in (t_now, t_end) at which a chain would leave a pattern with only h correct votes,
        and that wall (μ, k); inf where the trajectory stays feasible. T1, T2: (m, K, P) absolute times
        of the fields' upward / downward crossings (changing the pattern's correct votes by +y_μ, −y_μ);
        c, A, V, tau: the arcs (see `hmc`), from which the correct votes at t_now are counted for the
        patterns with a losing crossing in the window. Only patterns with at least (count − h) losing
        crossings can fail: their crossings alone are put in time order."""
        m, K, P = T1.shape
        h = self.h
        dev = T1.device
        lo, hi = t_now[:, None, None], t_end[:, None, None]
        v1 = (T1 > lo) & (T1 < hi)
        v2 = (T2 > lo) & (T2 < hi)
        neg = self.y < 0
        losing = torch.where(neg, v1, v2).sum(1)                          # (m, P): −1 crossings in the window
        tstar = torch.full((m,), math.inf, dtype=T1.dtype, device=dev)
        mu = torch.zeros(m, dtype=torch.long, device=dev)
        kk = torch.zeros(m, dtype=torch.long, device=dev)
        ci, pi = torch.nonzero(losing > 0, as_tuple=True)
        if ci.numel() == 0:
            return tstar, mu, kk
        ph = (t_now[ci, None] - tau[ci])                                   # (c, K)
        f = c[:, pi].T + A[ci, :, pi] * torch.cos(ph) + V[ci, :, pi] * torch.sin(ph)
        count0 = ((f >= 0) == (self.y[pi] > 0)[:, None]).sum(1)            # correct votes at t_now
        sel = losing[ci, pi] >= count0 - h
        ci, pi, count0 = ci[sel], pi[sel], count0[sel]
        if ci.numel() == 0:
            return tstar, mu, kk
        T = torch.cat([torch.where(v1, T1, math.inf)[ci, :, pi], torch.where(v2, T2, math.inf)[ci, :, pi]], 1)
        ys = self.y[pi][:, None]
        Dm = torch.cat([ys.expand(-1, K), -ys.expand(-1, K)], 1)
        order = torch.argsort(T, 1)
        st = torch.gather(T, 1, order)
        counts = count0[:, None] + torch.cumsum(torch.where(torch.isfinite(st), torch.gather(Dm, 1, order), 0.0), 1)
        viol = (counts <= h) & torch.isfinite(st)
        first = viol.to(torch.int8).argmax(1)
        tv = torch.where(viol.any(1), torch.gather(st, 1, first[:, None])[:, 0], torch.full_like(st[:, 0], math.inf))
        tstar = tstar.scatter_reduce(0, ci, tv, "amin")
        win = torch.nonzero(torch.isfinite(tv) & (tv == tstar[ci])).flatten()
        if win.numel():
            keep = torch.ones_like(win, dtype=torch.bool)                  # one wall per chain (ties: first)
            keep[1:] = ci[win[1:]] != ci[win[:-1]]
            win = win[keep]
            mu[ci[win]] = pi[win]
            kk[ci[win]] = torch.gather(order[win], 1, first[win][:, None])[:, 0] % K
        return tstar, mu, kk

    def hmc(self, a, Delta, trajectories, gen, t_range=(0.25 * math.pi, 0.5 * math.pi)):
        """`trajectories` exact reflecting HMC trajectories of each chain (a: (M,K,r), feasible at Δ),
        each of a random length in t_range (random, so that no orbit is periodic). Between walls the
        motion is the rotation (a, v) → (a cos t + v sin t, v cos t − a sin t); at a wall (k, μ) the
        velocity of unit k is reflected about the hyperplane (B a_k)_μ = −c_kμ, whose normal is B_μ.

        The motion is followed in field space (F = B a, B v), one arc per unit: unit k's fields are
        A_k cos(t − τ_k) + V_k sin(t − τ_k) since its last reflection at τ_k, and its crossing times are
        computed once per arc (a reflection recomputes one unit's). At the end a = B⁺F.
        Returns (new a, mean reflections per trajectory)."""
        M, K = a.shape[0], self.K
        c = self.lam / math.sqrt(Delta)                               # (K, P): wall offsets
        y = self.y
        reflections = 0
        a = a.clone()
        for _ in range(trajectories):
            v = torch.randn(a.shape, generator=gen, dtype=a.dtype, device=a.device)
            lo, hi = t_range
            t_end = lo + (hi - lo) * torch.rand(M, generator=gen, dtype=a.dtype, device=a.device)
            A, V = self.fields(a), self.fields(v)
            tau = torch.zeros((M, K), dtype=a.dtype, device=a.device)
            T1, T2 = self._crossings(c, A, V)
            t_now = torch.zeros(M, dtype=a.dtype, device=a.device)
            ids = torch.arange(M, device=a.device)
            while ids.numel():
                tstar, mu, kk = self._first_wall(T1, T2, c, A, V, tau, t_now, t_end)
                hit = torch.isfinite(tstar)
                if bool(hit.any()):
                    idx = torch.nonzero(hit).flatten()
                    mus, ks, ts = mu[idx], kk[idx], tstar[idx]
                    p = (ts - tau[idx, ks])[:, None]
                    A_k, V_k = A[idx, ks], V[idx, ks]                  # (h, P)
                    F_k = A_k * torch.cos(p) + V_k * torch.sin(p)
                    W_k = V_k * torch.cos(p) - A_k * torch.sin(p)
                    rows = torch.arange(idx.numel(), device=a.device)
                    coef = 2.0 * W_k[rows, mus] / self.Cdiag[mus]      # field velocity into the wall
                    W_k = W_k - coef[:, None] * self.C[:, mus].T       # v_k −= coef B_μ  ⇒  B v_k −= coef C_:μ
                    # on the wall: put the field exactly on its correct side (it is 0 up to rounding)
                    F_k[rows, mus] = -c[ks, mus] + y[mus] * 1e-12 * (1.0 + c[ks, mus].abs())
                    A[idx, ks], V[idx, ks], tau[idx, ks] = F_k, W_k, ts
                    t1, t2 = self._crossings(c[ks], F_k, W_k)
                    T1[idx, ks], T2[idx, ks] = ts[:, None] + t1, ts[:, None] + t2
                    t_now[idx] = ts
                    reflections += idx.numel()
                done = ~hit
                if bool(done.any()):
                    d = torch.nonzero(done).flatten()
                    ph = (t_end[d, None] - tau[d])[:, :, None]
                    a[ids[d]] = (A[d] * torch.cos(ph) + V[d] * torch.sin(ph)) @ self.B_pinv_T
                    ids, A, V, tau, T1, T2, t_now, t_end = (ids[hit], A[hit], V[hit], tau[hit], T1[hit], T2[hit],
                                                            t_now[hit], t_end[hit])
        return a, reflections / max(1, M * trajectories)


def check_committee_inputs(weights, X, y, deltas):
    """A committee reference (K, N), its patterns X (P, N), labels ±1 and increasing Δ > 0, as float64
    arrays; EntropicError naming what is wrong (shared by every committee estimator of entropic)."""
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
    deltas = check_prior_widths(deltas)
    return W, X, y.astype(np.float64), deltas


def committee_local_entropy(weights, X, y, deltas, *, chains=512, groups=8, keep=0.5, moves=2,
                            normalize=True, seed=0, device="cpu", dtype=torch.float64, checkpoint=None,
                            progress=None) -> SampledLocalEntropy:
    """φ_G(Δ), δ(Δ) and the local entropy s(d) of a committee machine around `weights`, by sampling.

    Paper 000, Eqs. (3) and (7), App. B.1; docs/bp.md §1, §5 for the definitions (the same quantities as
    ``bp.local_entropy_curve``, which computes them by Belief Propagation). weights: (K, N) reference
    w̃ (K odd; K = 1 is the perceptron); X: (P, N) inputs; y: (P,) labels ±1; deltas: increasing prior
    widths Δ > 0. chains: particles in all, split into `groups` independent populations (error bars
    from their spread; chains must be a multiple of groups); keep: target surviving fraction per
    level (the levels between requested Δ are chosen so); moves: HMC trajectories per level;
    normalize: rescale each unit to ‖w̃_k‖² = N as BP does (docs/bp.md §1). device: "cpu" or "cuda";
    dtype: float64 by default (crossing times at small Δ, where |λ̃/√Δ| is large, need it).
    checkpoint: a file (.npz) written after each requested Δ (particles, random state, sums so far);
    a call with the same file and the same inputs and settings resumes from it and gives the same
    result as an uninterrupted run; different inputs or settings raise EntropicError.
    progress(dict) is called after each requested Δ with keys index, total, prior_delta, phi_G,
    phi_G_se, delta, levels, seconds.

    Raises EntropicError for bad inputs, a reference that misclassifies a training pattern (the hard
    constraint then has measure zero around it), or a level where a group loses all its particles
    (use more chains or a larger `keep`).
    """
    W, X, y, deltas = check_committee_inputs(weights, X, y, deltas)
    chains, groups, moves = int(chains), int(groups), int(moves)
    if groups < 2 or chains < 2 * groups or chains % groups:
        raise EntropicError(f"need groups ≥ 2 and chains a multiple of groups with ≥ 2 chains each, "
                            f"got chains={chains}, groups={groups}")
    if not 0.05 <= keep < 1:
        raise EntropicError(f"keep must be in [0.05, 1), got {keep}")
    if moves < 1:
        raise EntropicError(f"moves must be ≥ 1, got {moves}")
    K, N = W.shape
    if normalize:
        W = W * (math.sqrt(N) / np.linalg.norm(W, axis=1))[:, None]
    n = K * N
    bad = committee_sign.misclassified(X @ W.T, y)
    if bad.any():
        raise EntropicError(f"the reference misclassifies {int(bad.sum())} of {len(y)} training patterns "
                            f"(first: {np.flatnonzero(bad)[:5].tolist()}); the hard constraint needs a solution")
    dev = torch.device(device)
    walls = _CommitteeWalls(W, X, y, dtype, dev)
    fingerprint = checkpoint_fingerprint(W, X, y, deltas, chains, groups, keep, moves, normalize, seed, dtype)
    out = run_smc(walls, deltas, chains, groups, keep, moves, seed, n, checkpoint, fingerprint, progress)
    return SampledLocalEntropy(**out, n=n, K=K, N=N, P=X.shape[0], rank=walls.r, chains=chains, groups=groups,
                               settings={"keep": keep, "moves": moves, "normalize": normalize, "seed": seed,
                                         "device": str(dev), "dtype": str(dtype), "sampler": "exact HMC"})


@dataclass(frozen=True)
class DirectEstimate:
    """Result of `committee_direct_monte_carlo`: per Δ, φ_G from the hit fraction of i.i.d. draws
    (NaN where no draw hit), δ from the hits; *_se binomial / sample standard errors; hits per Δ."""

    prior_delta: np.ndarray
    phi_G: np.ndarray
    phi_G_se: np.ndarray
    delta: np.ndarray
    delta_se: np.ndarray
    hits: np.ndarray
    samples: int
    n: int


def committee_direct_monte_carlo(weights, X, y, deltas, *, samples=20000, batch=1000, normalize=True, seed=0,
                                 device="cpu", dtype=torch.float32) -> DirectEstimate:
    """φ_G(Δ) and δ(Δ) by plain Monte Carlo: i.i.d. w′ ~ N(w̃, ΔI), φ_G = ln(hits/samples)/n (docs/bp.md §7.6).

    Unbiased for the probability and free of any MCMC assumption, but only usable while the probability
    is not tiny (ln Z ≳ −ln samples + a few): the ground truth against which the sampler and BP are
    checked at small Δ. Same conventions and arguments as `committee_local_entropy`.
    """
    W, X, y, deltas = check_committee_inputs(weights, X, y, deltas)
    samples, batch = int(samples), int(batch)
    if samples < 1 or batch < 1:
        raise EntropicError(f"samples and batch must be ≥ 1, got {samples}, {batch}")
    K, N = W.shape
    if normalize:
        W = W * (math.sqrt(N) / np.linalg.norm(W, axis=1))[:, None]
    n = K * N
    dev = torch.device(device)
    walls = _CommitteeWalls(W, X, y, dtype, dev)
    free = K * (N - walls.r)
    gen = torch.Generator(device=dev)
    gen.manual_seed(int(seed))
    G = len(deltas)
    hits = np.zeros(G, dtype=np.int64)
    s1, s2 = np.zeros(G), np.zeros(G)
    done = 0
    while done < samples:
        m = min(batch, samples - done)
        a = torch.randn((m, K, walls.r), generator=gen, dtype=dtype, device=dev)
        Fa = walls.fields(a)
        # ‖z‖² = ‖a‖² + ‖z_⊥‖²; z_⊥ is independent of feasibility, so its mean K(N − r) is used exactly
        sq = (a.double() ** 2).sum((1, 2)) + free
        for j, D in enumerate(deltas):
            ok = walls.feasible(Fa, float(D))
            v = sq[ok].cpu().numpy()
            hits[j] += int(ok.sum())
            s1[j] += v.sum()
            s2[j] += (v ** 2).sum()
        done += m
    with np.errstate(divide="ignore", invalid="ignore"):
        p = hits / samples
        phi = np.where(hits > 0, np.log(np.maximum(p, 1e-300)) / n, np.nan)
        phi_se = np.where(hits > 0, np.sqrt((1 - p) / (np.maximum(p, 1e-300) * samples)) / n, np.nan)
        mean = s1 / hits
        var = np.maximum(s2 / hits - mean ** 2, 0) / np.maximum(hits - 1, 1)
        delta = deltas * mean / (2 * n)
        delta_se = deltas * np.sqrt(var) / (2 * n)
    return DirectEstimate(prior_delta=deltas.copy(), phi_G=phi, phi_G_se=phi_se, delta=np.where(hits > 0, delta, np.nan),
                          delta_se=np.where(hits > 1, delta_se, np.nan), hits=hits, samples=samples, n=n)
