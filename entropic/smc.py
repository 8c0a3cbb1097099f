"""Sequential Monte Carlo over the prior width Δ: the driver shared by the local-entropy samplers.

Paper 000, Sec. 5 (and App. B.1): the local entropy of a reference w̃ is measured through the
Gaussian-prior free entropy

    φ_G(Δ) = (1/n) ln P_{w′ ~ N(w̃, Δ I)}[w′ makes no more training errors than w̃]        (docs/bp.md §1)

and the mean squared distance under that constrained Gaussian, δ(Δ) = E[½‖w′ − w̃‖²]/n (docs/bp.md §5.1),
followed by the Legendre transform s(δ) = φ_G − ½ ln(2δ/Δ) + δ/Δ − ½ (docs/bp.md §5.2, shared with BP
through ``localentropy.legendre``). BP computes them for the committee machine only; entropic estimates
them by Monte Carlo, with error bars, as a check of BP and as a route to other networks:
``entropic.committee_sampling`` for the committee machine (exact reflecting HMC) and
``entropic.module_sampling`` for any nn.Module (elliptical slice sampling). This module holds what the
two share, so that neither imports the other: the driver `run_smc`, which asks of a sampler only a
"space" (init, aux, feasible, move, sq: see its docstring), its result `SampledLocalEntropy`, the
checkpoints (`checkpoint_fingerprint` names what a checkpoint's numbers depend on) and the check of the
requested Δ grid (`check_prior_widths`).

**Method: sequential Monte Carlo over Δ (adaptive multilevel splitting).** Write w′ = w̃ + √Δ z,
z ~ N(0, I). The constrained measures π_Δ(z) ∝ N(z; 0, I) 𝟙[w̃ + √Δ z feasible] form a path from
π_0 = N(0, I) (w̃ itself is feasible) to the target. With A_Δ the feasible set of z,

    Z(Δ_{j+1}) / Z(Δ_j) = P(A_{j+1}) / P(A_j) = f_fwd / f_bwd,
    f_fwd = E_{π_{Δ_j}}[𝟙_{A_{j+1}}],   f_bwd = E_{π_{Δ_{j+1}}}[𝟙_{A_j}]:

the fraction of particles of level j that stay feasible when their perturbation is stretched, over
the fraction of level-(j+1) particles (after their moves) that are feasible at level j. For a convex
solution space (the perceptron) the sets are nested and f_bwd = 1; the committee's is not
star-shaped around w̃, and dropping f_bwd biases ln Z low (measured: 7 %, 3σ on a K = 3 toy). The
levels are chosen adaptively so that f_fwd ≈ ``keep`` (default ½; every requested Δ is a level),
the infeasible particles are replaced by copies of feasible ones, and the copies are made
independent again by MCMC moves that leave π_{Δ_{j+1}} invariant (the space's ``move``: exact
reflecting HMC for the committee, elliptical slice sampling for a general network). The particles are
split into ``groups`` independent populations (resampling only within a group); φ_G is ln of the mean
of the groups' estimates of Z (their logs' mean would be biased by −Var/2), with the jackknife over
groups as error bar (no assumption on the MCMC's autocorrelation), floored by the binomial error of
independent particles.
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

from localentropy.entropic.errors import EntropicError
from localentropy.legendre import ball_entropy, shell_entropy


@dataclass(frozen=True)
class SampledLocalEntropy:
    """Result of `committee_local_entropy` and `local_entropy`: one entry per requested prior width Δ
    (``prior_delta``).

    phi_G: (1/n) ln of the mean over the ``groups`` independent populations of their estimates of Z(Δ);
    phi_G_se: its jackknife standard error over the groups, or, if larger, the binomial one of
    independent particles (a floor, for levels where no particle is lost); delta: mean over the groups; phi (shell local entropy s, docs/bp.md §5.2)
    and phi_ball (§5.4) from those; d = n·delta; delta_se, phi_se: std over groups / √groups (for phi,
    of each group's own transform).
    levels: every Δ the sampler visited (requested ones included), level_log_ratio: (levels, groups)
    ln of the surviving fraction at each level, level_two_delta_over_Delta: 2δ/Δ at each level.
    reflections: mean reflections per HMC trajectory at each level (committee; for `local_entropy`, the
    mean number of shrinks per elliptical-slice step). seconds: wall time per requested Δ
    (cumulative). All per weight (n = K·N). stalled_at: where the levels stopped advancing (`run_smc`): the
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


def check_prior_widths(deltas) -> np.ndarray:
    """The requested prior widths as a 1-d float64 array: non-empty, finite, > 0 and strictly increasing (the
    levels of `run_smc` only go up), else EntropicError (shared by every sampler of entropic)."""
    deltas = np.asarray(deltas, dtype=np.float64).reshape(-1)
    if deltas.size == 0 or not np.all(np.isfinite(deltas)) or np.any(deltas <= 0):
        raise EntropicError(f"deltas must be a non-empty list of finite prior widths Δ > 0, got {deltas.tolist()}")
    if np.any(np.diff(deltas) <= 0):
        raise EntropicError(f"deltas must be strictly increasing, got {deltas.tolist()}")
    return deltas


# A level sequence has stalled when STALL_LEVELS consecutive levels each advance Δ by less than STALL_STEP
# (relative): the bisection finds no Δ above the current one where `keep` of the particles stay feasible,
# so they sit on the constraint's boundary, and each such level's surviving fraction measures that
# non-equilibrium state, not Z. The curve ends at the previous requested Δ (``stalled_at`` says where).
STALL_LEVELS, STALL_STEP = 8, 1e-4


def run_smc(space, deltas, chains, groups, keep, moves, seed, n, checkpoint, fingerprint, progress,
            stop_below=None) -> dict:
    """Sequential Monte Carlo over Δ (module docstring) in a `space` that provides init(M, gen), aux(state)
    (what feasibility is computed from), feasible(aux, Δ) → (M,) bool, move(state, Δ, moves, gen) →
    (state, statistic) leaving π_Δ invariant, and sq(state) → (M,) E‖z‖² given the state (the free
    directions' exact mean included), and the attributes device and dtype (of the state); optionally
    resampled(aux, pick, state), told that the particles were resampled (state = old[pick]), so that it can
    keep what it derived from them, and level_tolerance (`_next_level`). Returns the per-Δ arrays of
    SampledLocalEntropy; with `stop_below`, only up to the first requested Δ whose ln Z (= n φ_G) is below
    it. `fingerprint` (`checkpoint_fingerprint`) must match the one in an existing `checkpoint` file."""
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
            nxt = _next_level(space, aux, current, float(target), keep, groups)
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


def checkpoint_fingerprint(W, X, y, deltas, chains, groups, keep, moves, normalize, seed, dtype) -> str:
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


def _next_level(space, aux, current, target, keep, groups=1):
    """The next Δ: `target` if at least `keep` of all particles stay feasible there and every one of the
    `groups` keeps at least one, otherwise the Δ in (current, target) where that just holds (bisection in
    ln Δ). The per-group condition matters at real size, where a group's particles can sit close together
    and all leave the feasible set at a Δ the pooled fraction allows (a failure, not a level)."""

    def enough(delta):
        ok = space.feasible(aux, delta)
        return ok.double().mean().item() >= keep and bool(ok.reshape(groups, -1).any(dim=1).all())

    if enough(target):
        return target
    lo = math.log(current) if current > 0 else math.log(target) - 30.0
    hi = math.log(target)
    tol = getattr(space, "level_tolerance", 1e-3)  # in ln Δ; any level is unbiased, this only sets its cost
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        if enough(math.exp(mid)):
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
