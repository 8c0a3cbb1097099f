"""Local entropy by sampling: φ_G(Δ), δ(Δ) and Φ_LE(d) of a solution without Belief Propagation.

Paper 000, Sec. 5 (and App. B.1): the local entropy of a reference w̃ is measured through the
Gaussian-prior free entropy

    φ_G(Δ) = (1/n) ln P_{w′ ~ N(w̃, Δ I)}[w′ makes no more training errors than w̃]        (docs/bp.md §1)

and the mean squared distance under that constrained Gaussian, δ(Δ) = E[½‖w′ − w̃‖²]/n (docs/bp.md §5.1),
followed by the Legendre transform s(δ) = φ_G − ½ ln(2δ/Δ) + δ/Δ − ½ (docs/bp.md §5.2, shared with BP
through ``localentropy.legendre``). BP computes them for the committee machine only; this module
estimates them by Monte Carlo, with error bars, as a check of BP and as a route to other networks.

**Method: sequential Monte Carlo over Δ (adaptive multilevel splitting) with exact, reflecting
Hamiltonian Monte Carlo.** Write w′ = w̃ + √Δ z, z ~ N(0, I). The constrained measures
π_Δ(z) ∝ N(z; 0, I) 𝟙[w̃ + √Δ z feasible] form a path from π_0 = N(0, I) (w̃ itself is feasible)
to the target. With A_Δ the feasible set of z,

    Z(Δ_{j+1}) / Z(Δ_j) = P(A_{j+1}) / P(A_j) = f_fwd / f_bwd,
    f_fwd = E_{π_{Δ_j}}[𝟙_{A_{j+1}}],   f_bwd = E_{π_{Δ_{j+1}}}[𝟙_{A_j}]:

the fraction of particles of level j that stay feasible when their perturbation is stretched, over
the fraction of level-(j+1) particles (after their moves) that are feasible at level j. For a convex
solution space (the perceptron) the sets are nested and f_bwd = 1; the committee's is not
star-shaped around w̃, and dropping f_bwd biases ln Z low (measured: 7 %, 3σ on a K = 3 toy). The
levels are chosen adaptively so that f_fwd ≈ ``keep`` (default ½; every requested Δ is a level),
the infeasible particles are replaced by copies of feasible ones, and the copies are made
independent again by MCMC moves that leave π_{Δ_{j+1}} invariant. The particles are split into
``groups`` independent populations (resampling only within a group); φ_G is ln of the mean of the
groups' estimates of Z (their logs' mean would be biased by −Var/2), with the jackknife over groups
as error bar (no assumption on the MCMC's autocorrelation), floored by the binomial error of
independent particles.

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

`local_entropy(model, …)` runs the same SMC for any nn.Module and any subset of its weights (paper
002's partial local entropy), with elliptical slice sampling as move and the constraint "no more
training errors than the reference": general, slower, and validated on tiny networks only.
`committee_direct_monte_carlo` is plain i.i.d. sampling, the arbiter where Z is not tiny.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from localentropy import committee_sign
from localentropy.entropic.errors import EntropicError
from localentropy.legendre import ball_entropy, shell_entropy

TWO_PI = 2.0 * math.pi


@dataclass(frozen=True)
class SampledLocalEntropy:
    """Result of `committee_local_entropy`: one entry per requested prior width Δ (``prior_delta``).

    phi_G: (1/n) ln of the mean over the ``groups`` independent populations of their estimates of Z(Δ);
    phi_G_se: its jackknife standard error over the groups, or, if larger, the binomial one of
    independent particles (a floor, for levels where no particle is lost); delta: mean over the groups; phi (shell local entropy s, docs/bp.md §5.2)
    and phi_ball (§5.4) from those; d = n·delta; delta_se, phi_se: std over groups / √groups (for phi,
    of each group's own transform).
    levels: every Δ the sampler visited (requested ones included), level_log_ratio: (levels, groups)
    ln of the surviving fraction at each level, level_two_delta_over_Delta: 2δ/Δ at each level.
    reflections: mean reflections per HMC trajectory at each level (committee; for `local_entropy`, the
    mean number of shrinks per elliptical-slice step). seconds: wall time per requested Δ
    (cumulative). All per weight (n = K·N). stalled_at: where the levels stopped advancing (``_smc``): the
    curve ends at the requested Δ before it; nan when they never stalled.
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
    seconds: np.ndarray
    levels: np.ndarray
    level_log_ratio: np.ndarray
    level_two_delta_over_Delta: np.ndarray
    reflections: np.ndarray
    n: int
    K: int | None
    N: int | None
    P: int
    rank: int | None
    chains: int
    groups: int
    settings: dict = field(default_factory=dict)
    stalled_at: float = math.nan  # the Δ where the levels stalled and the curve was ended (nan: they did not)

    def to_dict(self) -> dict:
        """JSON-ready dict of every array (lists) and setting."""
        out = {}
        for k, v in self.__dict__.items():
            out[k] = v.tolist() if isinstance(v, np.ndarray) else None if isinstance(v, float) and math.isnan(v) else v
        return out


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

    # the interface of _smc
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
    deltas = np.asarray(deltas, dtype=np.float64).reshape(-1)
    if deltas.size == 0 or not np.all(np.isfinite(deltas)) or np.any(deltas <= 0):
        raise EntropicError(f"deltas must be a non-empty list of finite prior widths Δ > 0, got {deltas.tolist()}")
    if np.any(np.diff(deltas) <= 0):
        raise EntropicError(f"deltas must be strictly increasing, got {deltas.tolist()}")
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
    fingerprint = _fingerprint(W, X, y, deltas, chains, groups, keep, moves, normalize, seed, dtype)
    out = _smc(walls, deltas, chains, groups, keep, moves, seed, n, checkpoint, fingerprint, progress)
    return SampledLocalEntropy(**out, n=n, K=K, N=N, P=X.shape[0], rank=walls.r, chains=chains, groups=groups,
                               settings={"keep": keep, "moves": moves, "normalize": normalize, "seed": seed,
                                         "device": str(dev), "dtype": str(dtype), "sampler": "exact HMC"})


# A level sequence has stalled when STALL_LEVELS consecutive levels each advance Δ by less than STALL_STEP
# (relative): the bisection finds no Δ above the current one where `keep` of the particles stay feasible,
# so they sit on the constraint's boundary, and each such level's surviving fraction measures that
# non-equilibrium state, not Z. The curve ends at the previous requested Δ (``stalled_at`` says where).
STALL_LEVELS, STALL_STEP = 8, 1e-4


def _smc(space, deltas, chains, groups, keep, moves, seed, n, checkpoint, fingerprint, progress,
         stop_below=None) -> dict:
    """Sequential Monte Carlo over Δ (module docstring) in a `space` that provides init(M, gen), aux(state)
    (what feasibility is computed from), feasible(aux, Δ) → (M,) bool, move(state, Δ, moves, gen) →
    (state, statistic) leaving π_Δ invariant, and sq(state) → (M,) E‖z‖² given the state (the free
    directions' exact mean included); optionally resampled(aux, pick, state), told that the particles were
    resampled (state = old[pick]), so that it can keep what it derived from them. Returns the per-Δ arrays of SampledLocalEntropy; with `stop_below`,
    only up to the first requested Δ whose ln Z (= n φ_G) is below it."""
    dev = space.device
    gen = torch.Generator(device=dev)
    gen.manual_seed(int(seed))
    M, per = chains, chains // groups
    state = space.init(M, gen)
    logZ = np.zeros(groups)
    t0 = time.perf_counter()
    levels, level_lr, level_tdd, stats = [], [], [], []
    out_phi = np.full((len(deltas), groups), np.nan)
    out_del = np.full((len(deltas), groups), np.nan)
    out_var = np.full(len(deltas), np.nan)
    seconds = np.full(len(deltas), np.nan)
    current, start, var_iid = 0.0, 0, 0.0
    if checkpoint is not None and os.path.exists(checkpoint):
        st = _load_checkpoint(checkpoint, fingerprint)
        state = torch.as_tensor(st["state"], dtype=space.dtype, device=dev)
        gen.set_state(torch.as_tensor(st["rng"], dtype=torch.uint8))
        logZ, out_phi, out_del, seconds = st["logZ"], st["out_phi"], st["out_del"], st["seconds"]
        levels, level_lr, level_tdd, stats = (list(st["levels"]), list(st["level_lr"]), list(st["level_tdd"]),
                                              list(st["stats"]))
        current, start = float(st["current"]), int(st["next"])
        out_var, var_iid = st["out_var"], float(_out_var_last(st["out_var"], start))
        t0 -= float(seconds[start - 1])
    aux = space.aux(state)
    def log_z(j):  # ln Z at requested Δ j from the groups' estimates, and its error
        est, err = _log_mean_exp_jackknife(out_phi[j:j + 1] * n)
        return float(est[0]), float(err[0])

    last = len(deltas)
    if stop_below is not None:  # a resumed run that had already stopped
        last = next((j + 1 for j in range(start) if log_z(j)[0] < stop_below), last)
    stalled_at = math.nan
    for j, target in enumerate(deltas):
        if j < start:
            continue
        if j >= last:
            break
        abandoned, stalls = False, 0
        while current < target:
            if stop_below is not None and j > 0 and _log_mean_exp_jackknife(logZ[None])[0][0] < 2 * stop_below:
                abandoned = True  # this Δ is far past the budget: the curve ends at the previous one
                break
            nxt = _next_level(space, aux, current, float(target), keep)
            stalls = stalls + 1 if nxt <= current * (1 + STALL_STEP) else 0
            if stalls >= STALL_LEVELS:  # the particles sit on the constraint's boundary and the moves do not
                if j == 0:  # free them: past here the levels are not equilibrium
                    raise EntropicError(f"the levels stalled at Δ = {nxt:.4g}, before the first requested Δ: the "
                                        "moves do not equilibrate the particles; use more moves or chains")
                abandoned, stalled_at = True, float(nxt)
                break
            ok = space.feasible(aux, nxt).reshape(groups, per)
            frac = ok.double().mean(1).cpu().numpy()
            if np.any(frac == 0):
                raise EntropicError(f"at Δ = {nxt:.4g} group(s) {np.flatnonzero(frac == 0).tolist()} lost every "
                                    f"particle; use more chains (now {chains}) or a larger keep (now {keep})")
            pick = _resample_index(ok, gen, state.device)
            state = state[pick]
            if hasattr(space, "resampled"):
                space.resampled(aux, pick, state)
            state, stat = space.move(state, nxt, moves, gen)
            aux = space.aux(state)
            back = np.ones(groups)
            if current > 0:  # the sets are not nested (the committee's solution space is not star-shaped)
                back = space.feasible(aux, current).reshape(groups, per).double().mean(1).cpu().numpy()
                if np.any(back == 0):
                    raise EntropicError(f"at Δ = {nxt:.4g} no particle of group(s) {np.flatnonzero(back == 0).tolist()}"
                                        f" is feasible at the previous level Δ = {current:.4g}; use a larger keep")
            logZ += np.log(frac) - np.log(back)
            var_iid += _binomial_log_var(frac.mean(), M) + (_binomial_log_var(back.mean(), M) if current > 0 else 0.0)
            sq = space.sq(state).reshape(groups, per).mean(1).cpu().numpy()
            levels.append(nxt)
            level_lr.append(np.log(frac) - np.log(back))
            level_tdd.append(sq / n)
            stats.append(stat)
            current = nxt
        if abandoned:
            last = j
            break
        out_phi[j] = logZ / n
        out_var[j] = var_iid
        out_del[j] = target * level_tdd[-1] / 2                       # δ = (Δ/2n) E‖z‖²
        seconds[j] = time.perf_counter() - t0
        if checkpoint is not None:
            _save_checkpoint(checkpoint, fingerprint, state=state.cpu().numpy(), rng=gen.get_state().numpy(),
                             logZ=logZ, out_phi=out_phi, out_del=out_del, out_var=out_var, seconds=seconds,
                             levels=np.asarray(levels),
                             level_lr=np.asarray(level_lr), level_tdd=np.asarray(level_tdd),
                             stats=np.asarray(stats), current=current, next=j + 1)
        lz, lz_se = log_z(j)
        if progress is not None:
            progress({"index": j, "total": len(deltas), "prior_delta": float(target), "phi_G": lz / n,
                      "phi_G_se": lz_se / n, "delta": float(out_del[j].mean()), "levels": len(levels),
                      "seconds": float(seconds[j])})
        if stop_below is not None and lz < stop_below:
            last = j + 1
            break
    deltas, out_phi, out_del, out_var, seconds = (deltas[:last], out_phi[:last], out_del[:last], out_var[:last],
                                                  seconds[:last])
    se = lambda x: x.std(1, ddof=1) / math.sqrt(groups)  # noqa: E731
    s_groups = shell_entropy(out_phi, out_del, deltas[:, None])
    # φ_G from the groups' Z estimates averaged (each nearly unbiased for Z), not their logs averaged:
    # E[ln Ẑ_g] = ln Z − Var(ln Ẑ_g)/2, a bias `groups` times larger (measured: −5 % on a sharp SGD
    # solution at small Δ with 32 particles per group); error bar by the jackknife over groups.
    phi_G, phi_G_se = _log_mean_exp_jackknife(out_phi * n)
    # never below the standard error the same fractions would have with independent particles (with a
    # level where no particle was lost counted as one loss): the jackknife is 0 when no group loses any
    phi_G, phi_G_se = phi_G / n, np.maximum(phi_G_se, np.sqrt(out_var)) / n
    # s from the pooled φ_G and δ (s is quadratic in 2δ/Δ − 1, so averaging the groups' s would add
    # their noise variance as a bias); its error bar from the groups' spread
    delta = out_del.mean(1)
    s = shell_entropy(phi_G, delta, deltas)
    return dict(prior_delta=deltas.copy(), phi_G=phi_G, phi_G_se=phi_G_se, delta=delta, delta_se=se(out_del),
                phi=s, phi_se=se(s_groups), phi_ball=ball_entropy(delta, s), d=delta * n, seconds=seconds,
                levels=np.asarray(levels), level_log_ratio=np.asarray(level_lr),
                level_two_delta_over_Delta=np.asarray(level_tdd).mean(1), reflections=np.asarray(stats),
                stalled_at=stalled_at)


def _out_var_last(out_var, start):
    """The accumulated variance at the last requested Δ already done (resuming a checkpoint)."""
    return out_var[start - 1]


def _binomial_log_var(f, M):
    """Var(ln f̂) ≈ (1 − f)/(f M) of a fraction f̂ of M independent particles, f clipped to M/(M+1)."""
    f = min(float(f), M / (M + 1.0))
    return (1.0 - f) / (f * M)


def _log_mean_exp_jackknife(logs):
    """ln of the mean of exp(logs) over axis 1 (groups), and its jackknife standard error."""
    logs = np.asarray(logs, dtype=np.float64)
    G = logs.shape[1]
    m = logs.max(1, keepdims=True)
    w = np.exp(logs - m)
    est = np.log(w.mean(1)) + m[:, 0]
    loo = np.log((w.sum(1, keepdims=True) - w) / (G - 1)) + m                # leave one group out
    se = np.sqrt((G - 1) / G * ((loo - loo.mean(1, keepdims=True)) ** 2).sum(1))
    return est, se


def _fingerprint(W, X, y, deltas, chains, groups, keep, moves, normalize, seed, dtype) -> str:
    """SHA-256 of everything a checkpoint's numbers depend on (the inputs and the sampler's settings)."""
    h = hashlib.sha256()
    for arr in (W, X, y, deltas):
        h.update(arr if isinstance(arr, bytes) else np.ascontiguousarray(arr, dtype=np.float64).tobytes())
        h.update(str(np.shape(arr)).encode())
    h.update(json.dumps([chains, groups, float(keep), moves, bool(normalize), int(seed), str(dtype)]).encode())
    return h.hexdigest()


def _save_checkpoint(path, fingerprint, **arrays):
    """Write atomically (a temporary file renamed over the old one), so an interrupted write keeps the last."""
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        np.savez(f, fingerprint=np.asarray(fingerprint), **{k: np.asarray(v) for k, v in arrays.items()})
    os.replace(tmp, path)


def _load_checkpoint(path, fingerprint) -> dict:
    try:
        with np.load(path, allow_pickle=False) as z:
            st = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError) as exc:
        raise EntropicError(f"{path}: not a readable local-entropy checkpoint ({exc}); delete it to start over") from None
    if str(st.get("fingerprint")) != fingerprint:
        raise EntropicError(f"{path}: checkpoint of a different reference, data, Δ grid or sampler setting; "
                            f"delete it or pass another checkpoint file")
    return st


def _next_level(space, aux, current, target, keep):
    """The next Δ: `target` if at least `keep` of all particles stay feasible there, otherwise the Δ in
    (current, target) where about `keep` of them do (bisection in ln Δ on the pooled fraction)."""
    if space.feasible(aux, target).double().mean().item() >= keep:
        return target
    lo = math.log(current) if current > 0 else math.log(target) - 30.0
    hi = math.log(target)
    tol = getattr(space, "level_tolerance", 1e-3)  # in ln Δ; any level is unbiased, this only sets its cost
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        if space.feasible(aux, math.exp(mid)).double().mean().item() >= keep:
            lo = mid
        else:
            hi = mid
        if hi - lo < tol:
            break
    return max(math.exp(lo), current * (1 + 1e-6) if current > 0 else math.exp(lo))


def _resample_index(ok, gen, device):
    """The particle each new particle copies (M,): itself if feasible, else one of its group's feasible
    ones, drawn uniformly."""
    groups, per = ok.shape
    pick = torch.arange(groups * per, device=device).reshape(groups, per)
    for g in range(groups):
        good = torch.nonzero(ok[g]).flatten()
        badi = torch.nonzero(~ok[g]).flatten()
        if badi.numel():
            pick[g, badi] = pick[g, good[torch.randint(good.numel(), (badi.numel(),), generator=gen, device=device)]]
    return pick.reshape(-1)


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


class _ModelSpace:
    """The selected parameters of any nn.Module, perturbed as θ̃ + √Δ s ⊙ z (z ~ N(0, I) on them only;
    s = 1, or each tensor's root-mean-square weight with ``scale="relative"``), with the constraint
    "no more training errors than θ̃" (errors as `classification_error`), and elliptical slice sampling
    (Murray, Adams & MacKay 2010) restricted to the constraint as MCMC move.

    The chains are evaluated together: torch.func.vmap over the selected parameters only, so every
    layer before the first selected one (unperturbed weights, shared inputs) is computed once for all
    chains, and the slice steps of all chains run in lockstep (each chain its own bracket, the
    finished ones left out). Models vmap cannot trace are evaluated chain by chain."""

    # the bisection for the next level stops at 5 % in Δ: each of its steps is a forward pass of every
    # chain over the training set, and the estimate is unbiased whatever the levels (they set its variance)
    level_tolerance = 0.05

    # the first layer's outputs of all chains (Lz, Lν, the proposals) must fit in this many bytes, or the
    # general path is taken
    first_layer_bytes = 2 ** 30

    def __init__(self, model, X, y, names, batch_size, dtype, device, scale="absolute", chain_batch=32,
                 first_layer=True):
        from localentropy.entropic.first_layer import FirstLayer
        from localentropy.entropic.local_energy import classification_error

        self.model, self.X, self.y = model, X, y
        self.batch_size, self.chain_batch = batch_size, chain_batch
        self.dtype, self.device = dtype, device
        params = dict(model.named_parameters())
        if scale == "relative":
            zero = [k for k in names if not bool(params[k].detach().ne(0).any())]
            if zero:
                raise EntropicError(f"relative scale: the selected tensor(s) {zero} are all zero")
        self._err = classification_error
        self._vmap = True
        self._bufs = {}  # kept buffers (`_kept`)
        self.first = None  # the first selected layer as a linear map of the perturbation (entropic.first_layer)
        self._cache = None  # (z, L(s ⊙ z)) of the last particles moved
        found = FirstLayer.order_first(model, list(names), X) if first_layer else None
        if found is not None:  # the first module's parameters first: z[:, :size] perturbs it
            self._layout(params, found[1], scale)
            first = FirstLayer.capture(model, found[0], self.names, params, X, batch_size)
            if self._shortcut_holds(first):
                self.first = first
        if self.first is None:
            self._layout(params, list(names), scale)
        self.E0 = int(self.errors_many(self.center[None])[0])

    def _layout(self, params, names, scale):
        """The selected parameters in this order: their shapes, sizes, θ̃ as one vector and s (and its value
        per tensor, ``tensor_scale``, with ``scale="relative"``)."""
        self.names = names
        self.shapes = [params[k].shape for k in names]
        self.sizes = [params[k].numel() for k in names]
        self.center = torch.cat([params[k].detach().reshape(-1).to(self.dtype) for k in names])
        self.n = int(self.center.numel())
        self.scale = self.tensor_scale = None
        if scale == "relative":
            rms = [params[k].detach().to(self.dtype).pow(2).mean().sqrt() for k in names]
            self.tensor_scale = [float(r) for r in rms]
            self.scale = torch.cat([r.expand(m) for r, m in zip(rms, self.sizes)]).to(self.device)

    def _shortcut_holds(self, first, rows=2, Delta=0.25, seed=0):
        """Whether the model's outputs with ``first`` replaced by base + √Δ L(s ⊙ z) equal its outputs at
        θ̃ + √Δ s ⊙ z, for ``rows`` random z on the first 64 samples (to float rounding): a model that uses
        the layer's weights elsewhere, or is not deterministic, fails and keeps the general path."""
        from torch.func import functional_call

        gen = torch.Generator(device=self.center.device).manual_seed(seed)
        z = torch.randn((rows, self.n), generator=gen, dtype=self.dtype, device=self.center.device)
        xb = self.X[:64]
        theta = self.theta(z, Delta)
        full = self._override(theta)
        rest = self._override(theta[:, first.size:], skip=len(first.locals)) if first.size < self.n else {}
        pre = first.base[:xb.shape[0]] + math.sqrt(Delta) * self._first_L(z, first)[:, :xb.shape[0]]
        with torch.no_grad():
            for j in range(rows):
                want = functional_call(self.model, {k: v[j] for k, v in full.items()}, (xb,))
                with first.replaced():
                    first._value = pre[j]
                    got = functional_call(self.model, {k: v[j] for k, v in rest.items()}, (xb,))
                if not isinstance(want, torch.Tensor) or want.shape != got.shape:
                    return False
                tol = 1e-3 * float(want.abs().max()) + 1e-12
                if not bool(torch.isfinite(want).all()) or float((want - got).abs().max()) > tol:
                    return False
        return True

    def theta(self, z, Delta, out=None):
        """The selected parameters (B, n) at perturbations z (B, n) of prior width Δ: θ̃ + √Δ s ⊙ z in one
        pass (into ``out`` if given)."""
        if self.scale is not None:
            return torch.addcmul(self.center, z, self.scale, value=math.sqrt(Delta), out=out)
        return torch.add(self.center, z, alpha=math.sqrt(Delta), out=out)

    def errors_many(self, thetas) -> torch.Tensor:
        """Misclassified training samples (B,) of the model with the selected parameters set to each row."""
        return self._chunked(thetas.shape[0], lambda c, e: (self._override(thetas[c:e]), None))

    def _chunked(self, rows, chunk) -> torch.Tensor:
        """Errors of ``rows`` chains, ``chain_batch`` at a time; chunk(c, e) gives rows c … e − 1 as the
        arguments of `_errors`."""
        out = []
        with torch.no_grad():
            for c in range(0, rows, self.chain_batch):
                out.append(self._errors(*chunk(c, min(c + self.chain_batch, rows))))
        return torch.cat(out)

    def _kept(self, key, shape, dtype):
        """A buffer kept between calls and filled in place, so that the pages of a fresh large tensor are not
        faulted in at every proposal."""
        buf = self._bufs.get(key)
        if buf is None or buf.shape != tuple(shape) or buf.dtype != dtype:
            buf = self._bufs[key] = torch.empty(shape, dtype=dtype, device=self.center.device)
        return buf

    def _override(self, theta, skip=0):
        """Rows of parameters (B, ·) as functional_call's dict of (B, *shape) tensors: the selection's
        tensors from the ``skip``-th on."""
        pieces = torch.split(theta, self.sizes[skip:], dim=-1)
        return {k: p.reshape(theta.shape[0], *s).to(self.X.dtype)
                for k, p, s in zip(self.names[skip:], pieces, self.shapes[skip:])}

    def _errors(self, ps, pre=None):
        """Misclassified training samples per chain, with the selected parameters ``ps`` (each (B, ...)) and,
        with the first-layer shortcut, its outputs ``pre`` (B, P, ...) (its parameters then absent from ps);
        vmapped over the chains (the layers before the first selected one computed once), or chain by chain
        from the first model vmap cannot trace on."""
        if self._vmap:
            try:
                return self._errors_each(ps, pre, vmapped=True)
            except (RuntimeError, NotImplementedError, ValueError, TypeError):
                self._vmap = False
        return self._errors_each(ps, pre, vmapped=False)

    def _errors_each(self, ps, pre, vmapped):
        from contextlib import nullcontext

        from torch.func import functional_call, vmap

        err, first = self._err, self.first

        def call(p, pr, xb, yb):
            if pr is not None:
                first._value = pr
            return err(functional_call(self.model, p, (xb,)), yb)

        B = pre.shape[0] if pre is not None else next(iter(ps.values())).shape[0]
        wrong = torch.zeros(B, dtype=torch.float64, device=self.device)
        with first.replaced() if pre is not None else nullcontext():
            for i in range(0, self.X.shape[0], self.batch_size):
                j = min(i + self.batch_size, self.X.shape[0])
                xb, yb, pb = self.X[i:j], self.y[i:j], None if pre is None else pre[:, i:j]
                if vmapped:
                    f = vmap(call, in_dims=(0, None if pb is None else 0, None, None))
                    wrong += f(ps, pb, xb, yb).to(torch.float64) * (j - i)
                    continue
                for b in range(B):
                    one = call({k: v[b] for k, v in ps.items()}, None if pb is None else pb[b], xb, yb)
                    wrong[b] += round(float(one) * (j - i))
        return wrong.round().long()

    def _errors_one(self, theta) -> int:
        """The errors of one parameter row, without vmap (what the vmapped evaluation is tested against)."""
        return int(self._errors_each(self._override(theta[None]), None, vmapped=False)[0])

    def init(self, M, gen):
        if self.first is not None:
            per_chain = self.first.base.numel() * self.first.base.element_size()
            if 4 * M * per_chain > self.first_layer_bytes:  # Lz, Lν, the proposals and the kept (z, Lz)
                self.first = None
        return torch.randn((M, self.n), generator=gen, dtype=self.dtype, device=self.device)

    def aux(self, z):
        """What feasibility is computed from: z, and with a linear first layer (z, L(s ⊙ z)) as well."""
        if self.first is None:
            return z
        if self._cache is not None and self._cache[0] is z:
            return self._cache
        return z, self._first_L(z)

    def _first_L(self, z, first=None):
        """L(s ⊙ z) of the first layer's block of z, chain_batch rows at a time: (M, P, ...)."""
        first = self.first if first is None else first
        # one scale per tensor ("relative"): applied to L's outputs, not to the rows of z
        scales = None if self.tensor_scale is None else self.tensor_scale[:len(first.locals)]
        return torch.cat([first.L(z[c:c + self.chain_batch, :first.size], scales)
                          for c in range(0, z.shape[0], self.chain_batch)])

    def feasible(self, z, Delta):
        if self.first is not None:
            z, Lz = z
            r = math.sqrt(Delta)

            def chunk(c, e):
                pre = torch.add(self.first.base, Lz[c:e], alpha=r, out=self._pre_buffer(e - c))
                return self._rest(z[c:e, self.first.size:], Delta), pre
            return self._chunked(z.shape[0], chunk) <= self.E0

        def general(c, e):
            theta = self.theta(z[c:e], Delta, out=self._kept("theta", (self.chain_batch, self.n), self.center.dtype)[:e - c])
            return self._override(theta), None
        return self._chunked(z.shape[0], general) <= self.E0

    def _pre_buffer(self, rows):
        """The kept (chain_batch, P, ...) buffer for the first layer's outputs of one chunk of chains."""
        return self._kept("pre", (self.chain_batch, *self.first.base.shape), self.first.base.dtype)[:rows]

    def _rest(self, zr, Delta):
        """The parameters after the first layer's, θ̃ + √Δ s ⊙ z on their block zr, as a functional_call dict
        (in a kept buffer)."""
        k = self.first.size
        if k == self.n:
            return {}
        out = self._kept("rest", (self.chain_batch, self.n - k), self.center.dtype)[:zr.shape[0]]
        if self.scale is not None:
            torch.addcmul(self.center[k:], zr, self.scale[k:], value=math.sqrt(Delta), out=out)
        else:
            torch.add(self.center[k:], zr, alpha=math.sqrt(Delta), out=out)
        return self._override(out, skip=len(self.first.locals))

    def move(self, z, Delta, moves, gen, max_shrinks=100):
        """`moves` elliptical slice steps per chain with the indicator likelihood: propose on the ellipse
        z cos θ + ν sin θ, shrink the bracket towards θ = 0 (z itself, feasible) until feasible; all
        chains at once, each with its own bracket. A chain's accepted angle is applied at the end of the
        move (the chains still shrinking are unchanged until then), in one pass over z (and, with a linear
        first layer, over L(s ⊙ z), whose proposals are combined from L(s ⊙ z) and L(s ⊙ ν): one product
        per chain and move)."""
        first = self.first is not None
        Lz = self.aux(z)[1] if first else None
        M = z.shape[0]
        shrinks = 0
        f64 = dict(dtype=torch.float64, device=z.device)
        for m in range(moves):
            nu = self._normals(z, gen)
            Lnu = self._first_L(nu) if first else None
            theta = torch.rand(M, generator=gen, **f64) * TWO_PI
            lo, hi = theta - TWO_PI, theta.clone()
            active = torch.ones(M, dtype=torch.bool, device=z.device)
            C = torch.ones(M, dtype=z.dtype, device=z.device)  # the accepted cos θ, sin θ of each chain
            S = torch.zeros(M, dtype=z.dtype, device=z.device)
            for _ in range(max_shrinks):
                idx = torch.nonzero(active).flatten()
                t = theta[idx].to(z.dtype)
                cos, sin = torch.cos(t), torch.sin(t)
                if first:
                    ok = self._proposals_first(z, nu, Lz, Lnu, idx, cos, sin, Delta)
                else:
                    ok = self._proposals(z, nu, idx, cos, sin, Delta)
                C[idx[ok]], S[idx[ok]] = cos[ok], sin[ok]
                active[idx[ok]] = False
                bad = idx[~ok]
                shrinks += int(bad.numel())
                if bad.numel() == 0:
                    break
                neg = theta[bad] < 0
                lo[bad] = torch.where(neg, theta[bad], lo[bad])
                hi[bad] = torch.where(neg, hi[bad], theta[bad])
                u = torch.rand(M, generator=gen, **f64)[bad]
                theta[bad] = lo[bad] + (hi[bad] - lo[bad]) * u
            # a chain never accepted keeps C = 1, S = 0; the first move writes new tensors (the caller's z stays)
            z = (torch.mul(z, C[:, None]) if m == 0 else z.mul_(C[:, None])).addcmul_(nu, S[:, None])
            if first:
                lead = (-1,) + (1,) * (Lz.dim() - 1)
                Cl, Sl = C.to(Lz.dtype).reshape(lead), S.to(Lz.dtype).reshape(lead)
                Lz = (torch.mul(Lz, Cl) if m == 0 else Lz.mul_(Cl)).addcmul_(Lnu, Sl)
        if first:
            self._cache = (z, Lz)
        return z, shrinks / max(1, moves * M)

    def _normals(self, z, gen):
        """ν ~ N(0, I) of z's shape, drawn into a kept buffer (torch.randn's stream, without faulting in
        fresh pages at every move)."""
        return torch.randn(z.shape, generator=gen, dtype=z.dtype, device=z.device, out=self._kept("nu", z.shape, z.dtype))

    def _proposals(self, z, nu, idx, cos, sin, Delta):
        """Whether the proposals z cos θ + ν sin θ of chains ``idx`` are feasible (the general path)."""
        every = idx.numel() == z.shape[0]  # the first proposal of a move: no gather of z and ν
        prop = torch.mul(z if every else z[idx], cos[:, None], out=self._kept("proposals", z.shape, z.dtype)[:idx.numel()])
        prop.addcmul_(nu if every else nu[idx], sin[:, None])
        return self.feasible(prop, Delta)

    def _proposals_first(self, z, nu, Lz, Lnu, idx, cos, sin, Delta):
        """`_proposals` with a linear first layer: its outputs base + √Δ (cos θ L(s ⊙ z) + sin θ L(s ⊙ ν)),
        the later selected parameters from the proposals' other columns."""
        every, k, r = idx.numel() == z.shape[0], self.first.size, math.sqrt(Delta)
        lead = (-1,) + (1,) * (Lz.dim() - 1)

        def chunk(c, e):
            rows = slice(c, e) if every else idx[c:e]
            zr = torch.mul(z[rows, k:], cos[c:e, None])
            zr.addcmul_(nu[rows, k:], sin[c:e, None])
            pre = torch.mul(Lz[rows], (r * cos[c:e]).to(Lz.dtype).reshape(lead), out=self._pre_buffer(e - c))
            pre.addcmul_(Lnu[rows], (r * sin[c:e]).to(Lz.dtype).reshape(lead))
            pre.add_(self.first.base)
            return self._rest(zr, Delta), pre
        return self._chunked(idx.numel(), chunk) <= self.E0

    def resampled(self, aux, pick, state):
        """The particles were resampled (state = old[pick]): keep L(s ⊙ z) of the copies instead of
        computing it again."""
        if self.first is not None and isinstance(aux, tuple):
            self._cache = (state, aux[1][pick])

    def sq(self, z):
        return torch.cat([(c.double() ** 2).sum(1) for c in z.split(4)])  # a few rows at a time: in cache


def local_entropy(model, X, y, deltas, *, params=None, include_biases=False, scale="absolute", chains=64, groups=8,
                  keep=0.5, moves=2, batch_size=4096, chain_batch=32, stop_below=None, seed=0, device=None,
                  dtype=torch.float64, checkpoint=None, progress=None) -> SampledLocalEntropy:
    """φ_G(Δ), δ(Δ) and s(d) of any classifier around its current weights, restricted to the weights
    chosen by `params` (as `select_parameters`; paper 002's partial local entropy), the others fixed.

    φ_G(Δ) = (1/n) ln P_{θ′ ~ N(θ̃, ΔI)}[errors(θ′) ≤ errors(θ̃)] on (X, y), n = number of selected weights
    (paper 000, Sec. 5; docs/bp.md §1, §5). ``scale="absolute"``: Δ and δ in the units of the weights;
    ``scale="relative"``: each selected tensor's perturbation is measured in units of its own
    root-mean-square weight (prior N(θ̃, Δ s²), δ and d in those units), so that layers and networks of
    different weight scales are compared as δE_train's relative noise compares them (000, Eq. 4).
    Same SMC over Δ as `committee_local_entropy`, with elliptical slice sampling as move, and a forward
    pass over the training set per chain and proposal (``chain_batch`` chains per vmapped pass; the
    layers before the first selected one are computed once per pass). When the first selected module is
    an nn.Linear or nn.ConvNd that sees the unperturbed input, its output is a linear map of the
    perturbation (``entropic.first_layer``): it is formed from one product per chain and slice move
    instead of one per proposal (``settings["first_layer"]`` names it; None: the general path). Each halving of the
    constrained probability costs an SMC level, so ``stop_below`` (a ln-probability, e.g. −12) ends
    the curve after the first Δ where n φ_G falls below it, or before a Δ whose levels go below
    2·stop_below (the result then has fewer Δ than asked). It is checked against brute force on tiny
    networks only; in high dimension, slice steps restricted to a hard constraint are short (docs/bp.md §7.6
    records such a sampler failing to equilibrate), so check a curve's stability in `moves` and `chains`
    before trusting it. For sign-unit committee machines use `committee_local_entropy` (exact HMC,
    validated at the paper's size). ``device``: where the chains live; default (None) the model's device,
    and X, y are moved there.
    """
    from localentropy.entropic.params import select_parameters

    chosen = select_parameters(model, params, include_biases=include_biases)
    deltas = np.asarray(deltas, dtype=np.float64).reshape(-1)
    if deltas.size == 0 or not np.all(np.isfinite(deltas)) or np.any(deltas <= 0):
        raise EntropicError(f"deltas must be a non-empty list of finite prior widths Δ > 0, got {deltas.tolist()}")
    if np.any(np.diff(deltas) <= 0):
        raise EntropicError(f"deltas must be strictly increasing, got {deltas.tolist()}")
    if scale not in ("absolute", "relative"):
        raise EntropicError(f"scale must be 'absolute' or 'relative', got {scale!r}")
    if int(chain_batch) != chain_batch or chain_batch < 1:
        raise EntropicError(f"chain_batch must be a positive integer, got {chain_batch}")
    if stop_below is not None and not (math.isfinite(stop_below) and stop_below < 0):
        raise EntropicError(f"stop_below must be a negative ln-probability, got {stop_below}")
    chains, groups, moves = int(chains), int(groups), int(moves)
    if groups < 2 or chains < 2 * groups or chains % groups:
        raise EntropicError(f"need groups ≥ 2 and chains a multiple of groups with ≥ 2 chains each, "
                            f"got chains={chains}, groups={groups}")
    if not 0.05 <= keep < 1 or moves < 1:
        raise EntropicError(f"need keep in [0.05, 1) and moves ≥ 1, got keep={keep}, moves={moves}")
    X = torch.as_tensor(X)
    y = torch.as_tensor(y)
    if X.shape[0] != y.shape[0] or X.shape[0] == 0:
        raise EntropicError(f"X and y must hold the same number (≥ 1) of samples, got {X.shape[0]} and {y.shape[0]}")
    if X.is_floating_point() and not bool(torch.isfinite(X).all()):
        raise EntropicError("X contains NaN or inf")
    where = {p.device for p in model.parameters()}
    if len(where) > 1:
        raise EntropicError(f"the model's parameters are on several devices ({sorted(map(str, where))})")
    dev = torch.device(device) if device is not None else next(iter(where), torch.device("cpu"))
    if where and dev.type != next(iter(where)).type:
        raise EntropicError(f"device={str(dev)!r} but the model is on {next(iter(where))}: move it with model.to()")
    center = torch.cat([p.detach().reshape(-1) for p in chosen.values()])
    if not bool(torch.isfinite(center).all()):
        raise EntropicError("the selected parameters contain NaN or inf")
    space = _ModelSpace(model, X.to(dev), y.to(dev), list(chosen), int(batch_size), dtype, dev, scale=scale,
                        chain_batch=int(chain_batch))
    h = hashlib.sha256(space.center.double().cpu().numpy().tobytes())
    h.update(X.double().cpu().numpy().tobytes())
    h.update(y.double().cpu().numpy().tobytes())
    h.update(f"{scale} {stop_below}".encode())
    fingerprint = _fingerprint(h.digest()[:8], np.zeros(1), np.zeros(1), deltas, chains, groups, keep, moves,
                               False, seed, dtype)
    out = _smc(space, deltas, chains, groups, keep, moves, seed, space.n, checkpoint, fingerprint, progress,
               stop_below=stop_below)
    return SampledLocalEntropy(**out, n=space.n, K=None, N=None, P=int(X.shape[0]), rank=None, chains=chains,
                               groups=groups, settings={"keep": keep, "moves": moves, "seed": seed,
                                                        "params": list(chosen), "errors_reference": space.E0,
                                                        "scale": scale, "device": str(dev), "dtype": str(dtype),
                                                        "sampler": "elliptical slice",
                                                        "first_layer": None if space.first is None else space.first.name})
