"""Local-entropy curve of a reference w̃: scan of the prior width Δ and Legendre transform (docs/bp.md §5).

For each Δ on an increasing grid (warm-started from the previous fixed point, §3.6) BP gives φ_G(Δ)
and δ(Δ); the shell local entropy follows parametrically (§5.2),

    s(Δ) = φ_G(Δ) − ½ ln(2δ(Δ)/Δ) + δ(Δ)/Δ − ½,    plotted against d = n δ(Δ),

and the ball version Φ_ball(δ) = max_{δ' ≤ δ} [s(δ') + ½ ln(δ'/δ)] (§5.4) is taken over the sampled
points. Non-converged Δ are excluded (NaN) and reported; jumps of δ (first-order transitions, §5.2)
are reported as gaps, never interpolated.

Reference normalisation [CONVENTION, §1]: each hidden unit of w̃ is rescaled to ‖w̃_k‖² = N, so that
Δ and δ are in units of the mean-square weight. The classifier is invariant under this rescaling.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np

from localentropy import committee_sign
from localentropy.legendre import ball_entropy, shell_entropy  # noqa: F401 (re-exported: bp.shell_entropy)
from localentropy.bp.amp import AMPState
from localentropy.bp.edge import make_problem
from localentropy.bp.errors import BPError
from localentropy.bp.free_entropy import METHODS, free_entropy_of
from localentropy.bp.result import check_inputs, normaliser

CURVE_METHODS = METHODS + ("ep",)  # local_entropy_curve's: BP's forms and expectation propagation (bp/ep.py)
DEFAULT_POINTS = 30
DEFAULT_DELTA_MAX = 1.0


def default_deltas(points: int = DEFAULT_POINTS, delta_max: float = DEFAULT_DELTA_MAX) -> np.ndarray:
    """The default grid of prior widths: Δ_j = Δ_max (j/J)², j = 1..J (J = `points`), uniform in √Δ.

    Why: Figure 1 plots Φ_LE against d on a linear axis, and d ≈ nΔ/2. A logarithmic grid (the former
    default, logspace(−4, 0)) puts half its points below Δ = 10⁻², i.e. in the first 1 % of the d axis,
    where Φ_LE has hardly moved (on a real SGD-fast solution Φ_LE goes from 0 to −5·10⁻⁴ there, out of
    −1.3·10⁻² at Δ = 1): those points are wasted. Uniform in √Δ, the points are evenly spaced in √d:
    three in the first 1 % of the axis (to catch the initial drop of Φ_LE), the rest spread over the
    whole range, denser at small d where the curve bends. Δ_max = 1 (δ ≈ ½ per weight) is where the
    typical perturbation is as large as the reference itself (‖w̃_k‖² = N): beyond it "local" has lost
    its meaning. Neighbouring Δ are within a factor 4 (first step) and then ≤ 1.8, close enough for
    the warm starts of the scan.
    """
    points = int(points)
    if points < 1 or not (math.isfinite(delta_max) and delta_max > 0):
        raise BPError(f"need points ≥ 1 and a finite delta_max > 0, got {points}, {delta_max}")
    return float(delta_max) * (np.arange(1, points + 1) / points) ** 2


DEFAULT_DELTAS = default_deltas()


def check_deltas(deltas, what: str = "deltas") -> np.ndarray:
    """A grid of prior widths Δ as a 1-d float64 array, non-empty, finite, > 0 and strictly increasing (a scan
    continues each fixed point to the next Δ), else BPError "{what}: prior widths must be …". The one check of
    a Δ grid, shared by `local_entropy_curve` and ``committee.pipeline`` (``bp.edge.check_delta_beta`` checks
    the single Δ of one fixed point)."""
    deltas = np.asarray(deltas, dtype=np.float64).reshape(-1)
    if deltas.size == 0 or not np.all(np.isfinite(deltas)) or np.any(deltas <= 0):
        raise BPError(f"{what}: prior widths must be finite and > 0")
    if np.any(np.diff(deltas) <= 0):
        raise BPError(f"{what}: prior widths must be strictly increasing")
    return deltas


def extrapolate_state(state, previous, log_step: float):
    """Warm start at the next Δ from the fixed points at the last two (AMP messages only): linear in ln Δ,
    state + log_step·(state − previous), log_step = ln(Δ_next/Δ_last)/ln(Δ_last/Δ_before). It starts
    the iteration closer to the new fixed point than `state` (fewer sweeps); the fixed point reached is
    the same (it does not depend on the start). Anything else is returned unchanged."""
    if not (isinstance(state, AMPState) and isinstance(previous, AMPState)) or not math.isfinite(log_step):
        return state
    return AMPState(state.g + log_step * (state.g - previous.g), state.Gam + log_step * (state.Gam - previous.Gam),
                    state.rung)


def normalize_reference(center) -> np.ndarray:
    """Rescale each hidden unit to ‖w̃_k‖² = N (docs/bp.md §1): distances need a fixed normalisation."""
    center = np.array(center, dtype=np.float64)
    if center.ndim != 2:
        raise BPError(f"center must have shape (K, N), got {center.shape}")
    if not np.all(np.isfinite(center)):
        raise BPError("center contains NaN or inf")
    norms = np.linalg.norm(center, axis=1)
    if np.any(norms == 0):
        raise BPError(f"hidden unit(s) {np.flatnonzero(norms == 0).tolist()} of the reference are all zero")
    return center * (np.sqrt(center.shape[1]) / norms)[:, None]


def misclassified(center, X, y) -> np.ndarray:
    """Boolean (P,) mask of the patterns the committee w̃ misclassifies (``localentropy.committee_sign``:
    sign(0) = +1, the convention of training and evaluation)."""
    lam = np.asarray(X, dtype=np.float64) @ np.asarray(center, dtype=np.float64).T
    return committee_sign.misclassified(lam, np.asarray(y))


def find_gaps(prior_delta, delta, converged, gap_factor=3.0):
    """Gaps of the parametric curve between consecutive converged points (§5.2): non-converged Δ in
    between, δ decreasing with Δ (impossible at equilibrium: dδ/dΔ ∝ variance), or δ jumping faster than
    (Δ ratio)^gap_factor (a first-order jump; on a smooth branch ln δ grows at most about as fast as ln Δ)."""
    gaps = []
    idx = np.flatnonzero(converged)
    for a, b in zip(idx[:-1], idx[1:]):
        reason = None
        if b > a + 1:
            reason = "not converged in between"
        elif delta[b] < delta[a]:
            reason = "delta decreased"
        elif math.log(delta[b] / delta[a]) > gap_factor * math.log(prior_delta[b] / prior_delta[a]):
            reason = "jump in delta"
        if reason:
            gaps.append({"prior_delta_low": float(prior_delta[a]), "prior_delta_high": float(prior_delta[b]),
                         "delta_low": float(delta[a]), "delta_high": float(delta[b]), "reason": reason})
    return gaps


@dataclass(frozen=True)
class LocalEntropyCurve:
    """Result of `local_entropy_curve`, one entry per grid point Δ (prior_delta, increasing).

    d = ½‖w − w̃‖² (absolute, n_weights·δ); delta = d/n; phi = shell local entropy s(d); phi_ball = ball
    version; phi_G = Gaussian-prior free entropy; all per n (n = K·N, or N if normalize="input").
    Entries of non-converged points are NaN and excluded from the curve; `reasons` says why.
    methods: the solver that produced each point ("amp" or "edge"; "" where skipped); `method` is the one asked for.
    iterations: sweeps of the setting that converged; sweeps: all sweeps spent on the point (failed damping
    settings, a per-edge fallback and a rerun from an unextrapolated start included).
    gaps: list of dicts naming consecutive converged Δ between which the curve is not continuous.
    """

    prior_delta: np.ndarray
    delta: np.ndarray
    d: np.ndarray
    phi: np.ndarray
    phi_ball: np.ndarray
    phi_G: np.ndarray
    converged: np.ndarray
    iterations: np.ndarray
    damping: np.ndarray
    n_blocks: np.ndarray
    error: np.ndarray
    reasons: tuple
    methods: tuple
    gaps: tuple
    method: str
    normalize: str
    n: int
    K: int
    N: int
    P: int
    beta: float
    n_dropped: int
    settings: dict = field(default_factory=dict)
    sweeps: np.ndarray | None = None

    _COLUMNS = ("prior_delta", "delta", "d", "phi", "phi_ball", "phi_G", "converged", "iterations", "damping",
                "n_blocks", "error")

    def to_dict(self) -> dict:
        """JSON-ready dict (NaN → None) with every column, the gaps and the settings."""

        def clean(v):
            v = v.item() if isinstance(v, np.generic) else v
            return None if isinstance(v, float) and not math.isfinite(v) else v

        out = {c: [clean(v) for v in getattr(self, c).tolist()] for c in self._COLUMNS}
        out["reasons"] = list(self.reasons)
        out["methods"] = list(self.methods)
        out["gaps"] = [dict(g) for g in self.gaps]
        for key in ("method", "normalize", "n", "K", "N", "P", "n_dropped"):
            out[key] = getattr(self, key)
        out["beta"] = clean(float(self.beta)) if math.isfinite(self.beta) else "inf"
        out["weight_normalization"] = "each hidden unit of the reference rescaled to |w_k|^2 = N"
        out["settings"] = json.loads(json.dumps(self.settings, default=str))
        return out


def local_entropy_curve(center, X, y, deltas=None, *, beta=np.inf, drop_misclassified=False, method="auto",
                        schedule="block", n_blocks=None, damping=None, tol=1e-6, max_sweeps=1000, patience=200,
                        max_failures=2, gap_factor=3.0, seed=0, normalize="weight",
                        progress=None) -> LocalEntropyCurve:
    """Local entropy s(d) of the committee machine around `center` (docs/bp.md §5; Pittorino et al. App. B.1).

    center: (K,N) reference, rescaled here to ‖w̃_k‖² = N per hidden unit (documented convention);
    X: (P,N) patterns; y: (P,) labels ±1; deltas: increasing prior widths Δ (default `default_deltas()`:
    30 points uniform in √Δ up to Δ = 1, see there; large Δ may not converge, §3.6). n_blocks: blocks
    of the block schedule (default: blocks of ~10 patterns, max(1, P // 10); on the real Dress/Coat data
    this converges with η = 0 up to Δ = 1, where 10 blocks of 50 needed η = 0.5–0.8 and 2–3× the sweeps).
    From the third Δ on, AMP warm starts are extrapolated from the last two fixed points
    (`extrapolate_state`); if such a start does not converge, the Δ is rerun from the last fixed point.
    tol: on max|Δm| between sweeps, 1e-6 by default (free_entropy's is 1e-7): measured on real SGD-fast
    solutions, the curve moves by ≤ 2e-11 in Φ_LE and ≤ 1e-8 relative in d against tol = 1e-7 or 1e-8
    (the Bethe free entropy is stationary at the fixed point, so its error is quadratic in that of the
    messages; BP's own error is O(1/N)), for ~25 %
    fewer sweeps. A reference that misclassifies patterns raises BPError unless
    beta is finite (soft constraint: local free entropy) or drop_misclassified=True (BP on the patterns it
    classifies correctly: a lower bound, §6.6). Each Δ starts from the previous converged fixed point;
    after max_failures consecutive non-converged Δ the rest of the grid is skipped. Other options as in
    `free_entropy`. progress(dict) is called after each Δ with keys index, total, prior_delta, converged,
    phi, phi_G, delta, iterations, damping, reason.
    """
    if method == "ep":
        return _ep_curve(center, X, y, deltas, beta=beta, drop_misclassified=drop_misclassified, damping=damping,
                         tol=tol, max_sweeps=max_sweeps, max_failures=max_failures, gap_factor=gap_factor,
                         normalize=normalize, progress=progress)
    if method not in METHODS:
        raise BPError(f"unknown method {method!r}; available: {', '.join(CURVE_METHODS)}")
    Wt, problem, deltas, bad = _scan_inputs(center, X, y, deltas)
    P, K, N = problem.shape
    n = normaliser(normalize, K, N)
    n_bad = int(bad.sum())
    Xs, ys = problem.X, problem.y
    if n_blocks is None:
        n_blocks = max(1, P // 10)
    if n_bad:
        if drop_misclassified:
            Xs, ys = Xs[~bad], ys[~bad]
        elif not math.isfinite(float(beta)):
            raise BPError(f"the reference misclassifies {n_bad} of {P} patterns; pass a finite beta (soft "
                          f"constraint) or drop_misclassified=True")
    rng = np.random.default_rng(seed)
    G = len(deltas)
    phi_G = np.full(G, np.nan)
    dl = np.full(G, np.nan)
    conv = np.zeros(G, dtype=bool)
    iters = np.zeros(G, dtype=np.int64)
    spent = np.zeros(G, dtype=np.int64)
    damp = np.full(G, np.nan)
    nblk = np.zeros(G, dtype=np.int64)
    err = np.full(G, np.nan)
    reasons = ["skipped"] * G
    methods = [""] * G
    state = previous = None
    last = before = None  # the Δ of `state` and `previous`
    failures = 0
    kw = dict(method=method, schedule=schedule, n_blocks=n_blocks, damping=damping, tol=tol, max_sweeps=max_sweeps,
              patience=patience, seed=rng)
    scan, _, beta, n_w = check_inputs(Xs, ys, K, Wt, deltas[0], beta, "weight")  # validated once for the scan
    for j, D in enumerate(deltas):
        if failures >= max_failures:
            reasons[j] = f"skipped after {max_failures} consecutive non-converged prior widths"
            continue
        start = state
        if previous is not None:
            start = extrapolate_state(state, previous, math.log(D / last) / math.log(last / before))
        r = free_entropy_of(scan, float(D), beta, n_w, state=start, **kw)
        spent[j] = r.total_iterations
        if not r.converged and start is not state:
            r = free_entropy_of(scan, float(D), beta, n_w, state=state, **kw)
            spent[j] += r.total_iterations
        iters[j], damp[j], nblk[j], err[j], reasons[j] = r.iterations, r.damping, r.n_blocks, r.error, r.reason
        methods[j] = r.method
        if r.converged:
            conv[j] = True
            phi_G[j], dl[j] = r.phi, r.delta
            if state is not None and type(r.state) is type(state) and failures == 0:
                previous, before = state, last
            else:
                previous = before = None
            state, last = r.state, D
            failures = 0
        else:
            failures += 1
        if progress is not None:
            progress({"index": j, "total": G, "prior_delta": float(D), "converged": bool(r.converged),
                      "phi_G": float(phi_G[j]), "delta": float(dl[j]),
                      "phi": float(shell_entropy(phi_G[j], dl[j], D)), "iterations": int(r.iterations),
                      "damping": float(r.damping), "reason": r.reason, "method": r.method})
    settings = {"schedule": schedule, "n_blocks": n_blocks, "damping": damping, "tol": tol,
                "max_sweeps": max_sweeps, "patience": patience, "max_failures": max_failures,
                "gap_factor": gap_factor, "seed": seed if isinstance(seed, (int, type(None))) else "generator",
                "drop_misclassified": drop_misclassified, "n_misclassified": n_bad}
    return _assemble(deltas, phi_G, dl, conv, K, N, n, gap_factor, iterations=iters, damping=damp, n_blocks=nblk,
                     error=err, reasons=tuple(reasons), methods=tuple(methods), method=method, normalize=normalize,
                     P=int(len(ys)), beta=float(beta), n_dropped=n_bad if drop_misclassified else 0,
                     settings=settings, sweeps=spent)


def _scan_inputs(center, X, y, deltas):
    """The reference rescaled to ‖w̃_k‖² = N, the checked problem, the Δ grid (checked, increasing) and the
    mask of the patterns the reference misclassifies: what every scan over Δ starts from."""
    Wt = normalize_reference(center)
    problem = make_problem(X, y, Wt)
    deltas = check_deltas(DEFAULT_DELTAS if deltas is None else deltas)
    return Wt, problem, deltas, misclassified(Wt, problem.X, problem.y)


def _assemble(deltas, phi_G, dl, conv, K, N, n, gap_factor, **fields) -> LocalEntropyCurve:
    """The curve from φ_G(Δ) and δ(Δ) per weight: shell and ball local entropy (the shared Legendre
    transform), the gaps, everything per the chosen normaliser n."""
    s = shell_entropy(phi_G, dl, deltas)
    s_ball = ball_entropy(dl, s)
    gaps = find_gaps(deltas, dl, conv, gap_factor)
    scale = K * N / n  # per weight → per the chosen normaliser
    for g in gaps:
        g["delta_low"] *= scale
        g["delta_high"] *= scale
    return LocalEntropyCurve(prior_delta=deltas.copy(), delta=dl * scale, d=dl * K * N, phi=s * scale,
                             phi_ball=s_ball * scale, phi_G=phi_G * scale, converged=conv, gaps=tuple(gaps), n=n,
                             K=K, N=N, **fields)


def _ep_curve(center, X, y, deltas, *, beta, drop_misclassified, damping, tol, max_sweeps, max_failures, gap_factor,
              normalize, progress) -> LocalEntropyCurve:
    """`local_entropy_curve(method="ep")`: the same scan and Legendre transform with EP's φ_G and δ
    (bp/ep.py: full-covariance Gaussians over each unit's fields), each Δ warm-started from the last."""
    from localentropy.bp.ep import EPProblem, ep_free_entropy

    if math.isfinite(float(beta)):
        raise BPError("method 'ep' computes the hard-constraint free entropy only (beta = inf)")
    Wt, problem, deltas, bad = _scan_inputs(center, X, y, deltas)
    P, K, N = problem.shape
    n = normaliser(normalize, K, N)
    damping = 0.5 if damping is None else float(damping)
    n_bad = int(bad.sum())
    Xs, ys = problem.X, problem.y
    if n_bad and not drop_misclassified:
        raise BPError(f"the reference misclassifies {n_bad} of {P} patterns; method 'ep' needs a solution "
                      f"(or drop_misclassified=True)")
    if n_bad:
        Xs, ys = Xs[~bad], ys[~bad]
    ep = EPProblem(Wt, Xs, ys)
    G = len(deltas)
    phi_G, dl, err = np.full(G, np.nan), np.full(G, np.nan), np.full(G, np.nan)
    conv = np.zeros(G, dtype=bool)
    iters = np.zeros(G, dtype=np.int64)
    reasons, methods = ["skipped"] * G, [""] * G
    state, failures = None, 0
    for j, D in enumerate(deltas):
        if failures >= max_failures:
            reasons[j] = f"skipped after {max_failures} consecutive non-converged prior widths"
            continue
        r = ep_free_entropy(ep, float(D), state=state, damping=damping, tol=tol, max_sweeps=max_sweeps)
        iters[j], err[j], methods[j] = r.sweeps, r.change, "ep"
        if r.converged:
            conv[j], phi_G[j], dl[j], state, failures = True, r.phi_G, r.delta, r.state, 0
            reasons[j] = "converged"
        else:
            failures += 1
            reasons[j] = f"EP did not converge in {max_sweeps} sweeps (last change {r.change:.1e})"
        if progress is not None:
            progress({"index": j, "total": G, "prior_delta": float(D), "converged": bool(r.converged),
                      "phi_G": float(phi_G[j]), "delta": float(dl[j]),
                      "phi": float(shell_entropy(phi_G[j], dl[j], D)), "iterations": int(r.sweeps),
                      "damping": damping, "reason": reasons[j], "method": "ep"})
    settings = {"damping": damping, "tol": tol, "max_sweeps": max_sweeps, "max_failures": max_failures,
                "gap_factor": gap_factor, "drop_misclassified": drop_misclassified, "n_misclassified": n_bad,
                "factorisations": ep.factorisations, "precision_route": ep.G_inv is not None}
    return _assemble(deltas, phi_G, dl, conv, K, N, n, gap_factor, iterations=iters, damping=np.full(G, damping),
                     n_blocks=np.zeros(G, dtype=np.int64), error=err, reasons=tuple(reasons), methods=tuple(methods),
                     method="ep", normalize=normalize, P=int(len(ys)), beta=float(beta),
                     n_dropped=n_bad if drop_misclassified else 0, settings=settings, sweeps=iters.copy())
