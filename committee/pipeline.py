"""The committee pipeline of paper 000 (Sec. 5, Figure 1) as library functions, one per stage.

- `train_solutions`: train the restarts of a setting and return a `Solutions` object carrying the
  weights, the training patterns' hash, the test errors and the provenance (save it with
  ``sol.save(path)``);
- `evaluate_solutions`: training and test error of every restart;
- `solution_energies`: local energy δE_train(w, σ) (Eq. 4) of every restart, on `sigma_grid`;
- `restart_curves` (and `solution_curves`, the same from a solutions file): local-entropy curves
  Φ_LE(d) by BP for the restarts of a solutions file, in parallel processes, with the checks that belong to the data (patterns hash, restarts that did not
  converge, references that misclassify a pattern) made before any curve is computed.

Each function validates all of its input before it reports any progress, reports progress through
an optional callback, and never prints; bad input raises `CommitteeError` or `BPError` with a
one-line message. The tables go through `committee.tables`, the figures through `committee.plots`.
Figure recipes and the `localentropy` command both call these.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from localentropy import bp
from localentropy.bp.errors import BPError
from localentropy.committee.curve_store import CurveStore, curve_key
from localentropy.committee.curves import METHODS, committee_curve
from localentropy.committee.errors import CommitteeError
from localentropy.committee.solutions import Solutions, load_solutions
from localentropy.committee_sign import check_odd_K
from localentropy.data.dresscoat import patterns_hash
from localentropy.workers import WorkerPool

#: the BP form `restart_curves` uses unless told otherwise (the `localentropy phi` default too):
#: AMP (node-level BP), falling back to per-edge BP at a prior width where AMP does not converge.
DEFAULT_METHOD = "is"  # committee.curves.METHODS[0], as `localentropy phi`


# ---------------------------------------------------------------------------------------------------
# grids


def _exact(x: float) -> Fraction:
    """The decimal a user meant by the float x (its shortest repr), as an exact fraction."""
    return Fraction(repr(float(x)))


def sigma_grid(sigma_max: float, n: int) -> np.ndarray:
    """n equally spaced σ from 0 to sigma_max: σ_i = i·σ_max/(n−1), each the float nearest that value.

    (``np.linspace(0, 0.5, 11)[6]`` is 0.30000000000000004; here it is the float nearest 0.3.)
    """
    if not (isinstance(sigma_max, (int, float)) and math.isfinite(sigma_max) and sigma_max > 0):
        raise CommitteeError(f"sigma_max must be finite and > 0, got {sigma_max}")
    if isinstance(n, bool) or int(n) != n or n < 2:
        raise CommitteeError(f"the number of σ values must be an integer ≥ 2, got {n}")
    top = _exact(sigma_max)
    return np.array([float(top * i / (int(n) - 1)) for i in range(int(n))])


def log_grid(lo: float, hi: float, n: int) -> np.ndarray:
    """n log-spaced values from lo to hi; where a value is an exact power of ten (1e-3), it is that float.

    The exponents are computed exactly from log10(lo) and log10(hi) when both are whole numbers
    (the usual case: 1e-4 to 1), so that the decades of the grid are the floats nearest 10^k.
    """
    if not (lo > 0 and hi > lo and math.isfinite(hi)) or isinstance(n, bool) or int(n) != n or n < 2:
        raise BPError(f"a log grid needs 0 < lo < hi (finite) and n ≥ 2, got {lo}, {hi}, {n}")
    a, b = math.log10(lo), math.log10(hi)
    out = np.logspace(a, b, int(n))
    if a == round(a) and b == round(b):
        for i in range(int(n)):
            e = Fraction(int(a)) + Fraction(int(b) - int(a)) * i / (int(n) - 1)
            if e.denominator == 1:
                out[i] = float(Fraction(10) ** int(e))
    out[0], out[-1] = float(lo), float(hi)
    return out


def parse_deltas(text: str) -> np.ndarray:
    """'lo:hi:n' → `log_grid(lo, hi, n)`; 'a,b,c' → that list. Finite, > 0 and increasing, else BPError."""
    text = (text or "").strip()
    try:
        if ":" in text:
            parts = text.split(":")
            if len(parts) != 3:
                raise ValueError
            lo, hi, n = float(parts[0]), float(parts[1]), int(parts[2])
        else:
            deltas = np.array([float(t) for t in text.split(",")], dtype=np.float64)
    except ValueError:
        raise BPError(f"--deltas {text!r}: expected lo:hi:n (log grid) or a comma list of numbers") from None
    if ":" in text:
        if not (lo > 0 and math.isfinite(hi)):
            raise BPError(f"--deltas {text!r}: need 0 < lo and a finite hi in lo:hi:n")
        if not hi > lo:
            raise BPError(f"--deltas {text!r}: lo ({lo:g}) must be below hi ({hi:g}) in lo:hi:n")
        if n < 2:
            raise BPError(f"--deltas {text!r}: need n ≥ 2 points in lo:hi:n")
        deltas = log_grid(lo, hi, n)
    return bp.check_deltas(deltas, f"--deltas {text!r}")


# ---------------------------------------------------------------------------------------------------
# inputs of the curves: references and patterns


@dataclass(frozen=True)
class References:
    """Reference weights for BP: (R, K, N) float64, with the patterns hash and per-restart status
    of a solutions file (both None for a bare .npy)."""

    weights: np.ndarray
    patterns_hash: Optional[str]
    status: Optional[tuple]
    path: str


def load_references(path) -> References:
    """A solutions ``.npz`` (`committee.solutions`) or a plain ``.npy`` of shape (K, N) or (R, K, N)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such solutions file")
    if path.suffix == ".npz":
        sol = load_solutions(path)
        status = sol.metadata.get("status")
        status = tuple(status) if isinstance(status, list) and len(status) == sol.restarts else None
        return References(sol.weights, sol.patterns_hash, status, str(path))
    try:
        w = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise CommitteeError(f"{path}: cannot read as .npy ({exc})") from None
    if not isinstance(w, np.ndarray) or w.ndim not in (2, 3):
        raise CommitteeError(f"{path}: weights must have shape (K, N) or (R, K, N), got {getattr(w, 'shape', '?')}")
    if not np.issubdtype(w.dtype, np.number):
        raise CommitteeError(f"{path}: weights must be numeric, got dtype {w.dtype}")
    w = np.asarray(w, dtype=np.float64)
    if w.ndim == 2:
        w = w[None]
    if min(w.shape) < 1:
        raise CommitteeError(f"{path}: weights shape {w.shape} has an empty axis")
    try:
        check_odd_K(w.shape[1], CommitteeError)
    except CommitteeError as exc:
        raise CommitteeError(f"{path}: {exc}") from None
    if not np.all(np.isfinite(w)):
        raise CommitteeError(f"{path}: weights contain NaN or infinite values")
    if np.any(np.linalg.norm(w, axis=2) == 0):
        raise CommitteeError(f"{path}: a hidden unit has all-zero weights")
    return References(w, None, None, str(path))


def load_patterns(path) -> tuple[np.ndarray, np.ndarray]:
    """(X (P, N) ±1, y (P,) ±1) from an ``.npz`` holding arrays X and y (never unpickled)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such patterns file")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in ("X", "y") if k not in z.files]
            if missing:
                raise CommitteeError(f"{path}: patterns file needs arrays X and y, missing {', '.join(missing)}")
            X, y = z["X"], z["y"]
    except CommitteeError:
        raise
    except Exception as exc:  # zipfile.BadZipFile, OSError, ValueError, EOFError
        raise CommitteeError(f"{path}: cannot read as .npz ({type(exc).__name__}: {exc})") from None
    if X.ndim != 2 or y.shape != (X.shape[0],):
        raise CommitteeError(f"{path}: X must be (P, N) and y (P,), got {X.shape} and {y.shape}")
    if not (np.issubdtype(X.dtype, np.number) and np.issubdtype(y.dtype, np.number)):
        raise CommitteeError(f"{path}: X and y must be numeric")
    if not np.all(np.abs(X) == 1):
        raise CommitteeError(f"{path}: X must be ±1 patterns")
    if not np.all(np.abs(y) == 1):
        raise CommitteeError(f"{path}: labels y must be ±1")
    return X, y


def check_patterns(expected_hash: Optional[str], X, y, where: str, source: str = "the patterns") -> None:
    """CommitteeError unless (X, y) hash to ``expected_hash`` (the solutions were trained on them)."""
    if expected_hash is None:
        return
    got = patterns_hash(X, y)
    if got != expected_hash:
        raise CommitteeError(f"{where}: solutions were trained on other patterns (hash {expected_hash[:16]}) than "
                             f"{source} (hash {got[:16]}); pass the matching data")


def select_restarts(R: int, restarts: Optional[Sequence[int]] = None,
                    status: Optional[Sequence[str]] = None) -> tuple[list, list]:
    """(selected, skipped). restarts=None: every restart whose status is "converged" (all if the
    status is unknown), the others skipped; named restarts are used whatever their status."""
    if restarts is None:
        if status is None or len(status) != R:
            return list(range(R)), []
        selected = [r for r in range(R) if status[r] == "converged"]
        skipped = [r for r in range(R) if status[r] != "converged"]
        if not selected:
            raise CommitteeError("no restart converged; name restarts explicitly to use them anyway")
        return selected, skipped
    idx = [int(r) for r in restarts]
    if not idx:
        raise CommitteeError("no restart selected")
    bad = [r for r in idx if not 0 <= r < R]
    if bad:
        raise CommitteeError(f"restart {bad[0]} out of range: the solutions file has {R} restart(s) (0..{R - 1})")
    if len(set(idx)) != len(idx):
        raise CommitteeError(f"restart {[r for r in idx if idx.count(r) > 1][0]} named twice")
    return idx, []


def check_classified(weights, X, y, restarts: Sequence[int]) -> None:
    """BPError naming the first restart whose committee misclassifies a pattern (BP with the hard
    constraint needs every pattern classified correctly)."""
    from localentropy.bp.curve import misclassified

    for r in restarts:
        bad = np.flatnonzero(misclassified(weights[r], X, y))
        if len(bad):
            first = ", ".join(map(str, bad[:5])) + (", …" if len(bad) > 5 else "")
            raise BPError(f"restart {r} misclassifies {len(bad)} of {len(y)} training patterns ({first}); the hard "
                          f"constraint needs them classified: use a finite beta (--beta, the soft constraint) or "
                          f"drop them (--drop-misclassified, a lower bound on the local entropy)")


# ---------------------------------------------------------------------------------------------------
# local-entropy curves for many restarts


@dataclass(frozen=True)
class RestartReport:
    """What happened to one restart's curve: points, converged points, BP forms used, gaps, error."""

    restart: int
    points: int
    converged: int
    methods: tuple
    gaps: tuple
    error: Optional[str]

    def line(self) -> str:
        if self.error:
            return f"restart {self.restart}: error: {self.error}"
        text = (f"restart {self.restart}: {self.converged}/{self.points} prior widths converged "
                f"(method {', '.join(self.methods) or '-'})")
        return text + (f", {len(self.gaps)} gap(s)" if self.gaps else "")


@dataclass(frozen=True)
class RestartCurves:
    """The result of `restart_curves`.

    restarts: the restarts computed, in order; curves: restart → `bp.LocalEntropyCurve` (those that
    did not fail); errors: restart → one-line BPError message; skipped: restarts left out because
    they did not converge in training; prior_delta: the grid of Δ.
    """

    restarts: tuple
    curves: dict
    errors: dict
    skipped: tuple
    prior_delta: np.ndarray
    method: str
    beta: float
    settings: dict = field(default_factory=dict)
    reused: tuple = ()  # restarts whose curve was read from the checkpoint, not computed

    def report(self) -> list[RestartReport]:
        out = []
        for r in self.restarts:
            c = self.curves.get(r)
            if c is None:
                out.append(RestartReport(r, len(self.prior_delta), 0, (), (), self.errors.get(r, "no curve")))
            else:
                out.append(RestartReport(r, len(c.prior_delta), int(np.sum(c.converged)),
                                         tuple(sorted({m for m in c.methods if m})), tuple(dict(g) for g in c.gaps),
                                         None))
        return out

    def summary(self) -> list[dict]:
        """Per prior width Δ: the mean over restarts (converged points only) of d and Φ_LE, and their count."""
        rows = []
        for j, D in enumerate(self.prior_delta):
            d = [float(c.d[j]) for c in self.curves.values() if c.converged[j]]
            phi = [float(c.phi[j]) for c in self.curves.values() if c.converged[j]]
            rows.append({"prior_delta": float(D), "d_mean": float(np.mean(d)) if d else math.nan,
                         "phi_mean": float(np.mean(phi)) if phi else math.nan, "converged": len(phi),
                         "restarts": len(self.curves)})
        return rows


def _emit(progress, info: dict) -> None:
    if progress is not None:
        progress(info)


def _prepare_kernels(progress) -> None:
    """Compile BP's Numba kernels once, first saying so, if this machine has no compiled copy yet."""
    needs = getattr(bp, "needs_compilation", None)
    compile_kernels = getattr(bp, "compile_kernels", None)
    if needs is None or compile_kernels is None:
        return
    if needs():
        _emit(progress, {"event": "compiling"})
        compile_kernels()


def restart_curves(weights, X, y, deltas=None, *, restarts: Optional[Sequence[int]] = None,
                   status: Optional[Sequence[str]] = None, patterns_hash: Optional[str] = None,
                   method: str = DEFAULT_METHOD, beta: float = math.inf, drop_misclassified: bool = False,
                   jobs: int = 1, seed: int = 0, samples: Optional[int] = None,
                   progress: Optional[Callable[[dict], None]] = None,
                   on_curve: Optional[Callable[[int, object, float], None]] = None, checkpoint=None) -> RestartCurves:
    """Local-entropy curves Φ_LE(d) (paper 000, Sec. 4, Fig. 1) of several restarts, by `committee.curves.committee_curve`.

    weights: (R, K, N) or (K, N) references; X (P, N) ±1, y (P,) ±1: the training patterns.
    deltas: increasing prior widths Δ (default `bp.default_deltas()`). restarts: indices to compute;
    None means every restart whose ``status`` (per restart, as a solutions file stores it) is
    "converged", the others listed in ``.skipped``. patterns_hash: if given (a solutions file's),
    (X, y) must hash to it. method: one of `committee.curves.METHODS`: "is" (importance sampling), BP's "auto",
    "amp", "edge", "ep" (bp/ep.py) or "hmc" (the SMC sampler); samples: importance draws per Δ for "is".
    beta: inverse temperature of the constraint (inf: every pattern must stay classified; then a
    reference that misclassifies a pattern is an error, found before any curve is computed, unless
    drop_misclassified, which runs BP on the patterns it classifies correctly: a lower bound).
    jobs: processes (1: this process). seed: BP's block schedule, the same for every restart.

    progress(info) receives dicts: {"event": "compiling"} once, before BP's Numba kernels are compiled
    for this machine (a long pause); {"event": "start", "total": points, "restarts": [...], "skipped": [...]}
    when the computation starts (every check done); {"event": "point", "restart": r, ...} after each Δ of each
    restart, with the keys of `bp.local_entropy_curve`'s progress. A restart whose BP raises BPError
    is reported in ``.errors`` and ``.report()``; the others are still computed. on_curve(r, result) is
    called as soon as restart r's curve is done (result: the curve, or the one-line error message), so a
    caller can keep each curve before the batch ends (an interrupted batch then loses only those in flight);
    it gets a third argument, the seconds computing that curve took.
    checkpoint: a folder where each finished curve is stored as it is done (``committee.curve_store``); a
    rerun with the same inputs reads them back and computes the others only (``.reused`` lists them; the
    "start" event carries ``reused``, the points already done).
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim == 2:
        w = w[None]
    if w.ndim != 3 or min(w.shape) < 1:
        raise CommitteeError(f"weights must be (R, K, N) or (K, N), got shape {np.shape(weights)}")
    Xn, yn = np.asarray(X), np.asarray(y)
    if Xn.ndim != 2 or yn.shape != (Xn.shape[0],):
        raise CommitteeError(f"patterns must be X (P, N) and y (P,), got {Xn.shape} and {yn.shape}")
    if Xn.shape[1] != w.shape[2]:
        raise CommitteeError(f"weights have N={w.shape[2]} inputs but the patterns have N={Xn.shape[1]}")
    check_patterns(patterns_hash, Xn, yn, "weights")
    grid = bp.check_deltas(bp.default_deltas() if deltas is None else deltas)
    if method not in METHODS:
        raise BPError(f"unknown method {method!r}; available: {', '.join(METHODS)}")
    beta = float(beta)
    if not beta > 0:
        raise BPError(f"beta must be > 0 (inf for the hard constraint), got {beta}")
    if method in ("ep", "hmc") and math.isfinite(beta):
        raise BPError(f"method {method!r} computes the hard-constraint free entropy only (beta = inf)")
    if samples is not None and (isinstance(samples, bool) or int(samples) != samples or samples < 2):
        raise CommitteeError(f"samples must be an integer ≥ 2, got {samples}")
    if isinstance(jobs, bool) or int(jobs) != jobs or jobs < 1:
        raise CommitteeError(f"jobs must be an integer ≥ 1, got {jobs}")
    selected, skipped = select_restarts(w.shape[0], restarts, status)
    Xf, yf = Xn.astype(np.float64), yn.astype(np.float64)
    if math.isinf(beta) and not drop_misclassified:
        check_classified(w, Xf, yf, selected)  # before any curve, not after hours of them
    if method not in ("is", "hmc"):
        _prepare_kernels(progress)
    options = dict(beta=beta, method=method, seed=seed, drop_misclassified=drop_misclassified)
    if method == "is":
        options["samples"] = None if samples is None else int(samples)
    done, keep = {}, on_curve
    if checkpoint is not None:
        store = CurveStore(checkpoint)
        key = {r: curve_key(w[r], Xf, yf, grid, options) for r in selected}
        for r in selected:
            found = store.get(key[r])
            if found is not None:
                done[r] = found

        def keep(r, result, seconds):
            store.put(key[r], result)
            if on_curve is not None:
                on_curve(r, result, seconds)

    todo = [r for r in selected if r not in done]
    _emit(progress, {"event": "start", "total": len(selected) * len(grid), "restarts": list(selected),
                     "skipped": list(skipped), "reused": len(done) * len(grid)})
    if not todo:
        pass
    elif int(jobs) == 1 or len(todo) == 1:
        done.update(_curves_here(w, Xf, yf, grid, todo, options, progress, keep))
    else:
        done.update(_curves_in_processes(w, Xf, yf, grid, todo, options, int(jobs), progress, keep))
    curves = {r: c for r, c in done.items() if not isinstance(c, str)}
    errors = {r: c for r, c in done.items() if isinstance(c, str)}
    return RestartCurves(restarts=tuple(selected), curves=curves, errors=errors, skipped=tuple(skipped),
                         prior_delta=grid.copy(), method=method, beta=beta,
                         settings={"seed": seed, "drop_misclassified": bool(drop_misclassified), "jobs": int(jobs)},
                         reused=tuple(r for r in selected if r not in todo))


def solution_curves(solutions, X=None, y=None, deltas=None, **options) -> RestartCurves:
    """`restart_curves` of every restart in a solutions file (a path, `Solutions` or `References`),
    with its status (restarts that did not converge are skipped unless named) and its patterns hash
    (checked against X, y). X, y default to the embedded Dress/Coat training set. Other options as
    in `restart_curves`."""
    if isinstance(solutions, Solutions):
        status = solutions.status
        refs = References(solutions.weights, solutions.patterns_hash, status, "solutions")
    elif isinstance(solutions, References):
        refs = solutions
    else:
        refs = load_references(solutions)
    if X is None or y is None:
        if X is not None or y is not None:
            raise CommitteeError("give both X and y, or neither (the embedded Dress/Coat training set)")
        from localentropy.data import load_dresscoat

        ds = load_dresscoat()
        X, y = ds.X_train, ds.y_train
    return restart_curves(refs.weights, X, y, deltas, status=refs.status, patterns_hash=refs.patterns_hash,
                          **options)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _timed_curve(weights, X, y, grid, **options):
    """`committee_curve` (a worker's task): (the curve or its one-line error message, seconds it took)."""
    t0 = time.perf_counter()
    try:
        result = committee_curve(weights, X, y, grid, **options)
    except BPError as exc:
        result = _first_line(exc)
    return result, time.perf_counter() - t0


def _curves_here(w, X, y, grid, selected, options, progress, on_curve=None) -> dict:
    done = {}
    for r in selected:
        report = None if progress is None else (lambda info, r=r: progress({"event": "point", "restart": r, **info}))
        done[r], seconds = _timed_curve(w[r], X, y, grid, progress=report, **options)
        if on_curve is not None:
            on_curve(r, done[r], seconds)
    return done


_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


def _curves_in_processes(w, X, y, grid, selected, options, jobs, progress, on_curve=None) -> dict:
    """One task per restart in `jobs` spawned processes (`localentropy.workers.WorkerPool`: Ctrl-C stops
    them at once). A worker runs `committee_curve` itself; its progress goes through one managed queue
    per restart."""
    import queue as queue_mod

    old = {k: os.environ.get(k) for k in _THREAD_VARS}
    for k in _THREAD_VARS:  # the workers inherit this environment: jobs × threads ≤ cores
        os.environ[k] = str(max(1, (os.cpu_count() or 1) // jobs))
    done: dict = {}

    def drain(queues):
        for r, q in queues.items():
            while True:
                try:
                    info = q.get_nowait()
                except (queue_mod.Empty, EOFError, OSError):
                    break
                _emit(progress, {"event": "point", "restart": r, **info})

    try:
        with WorkerPool(jobs) as pool:
            queues = {r: pool.queue() for r in selected} if progress is not None else {}
            task = {pool.submit(_timed_curve, w[r], X, y, grid, progress=queues[r].put if queues else None,
                                **options): r for r in selected}
            pending = list(task)
            while pending:
                finished = pool.wait_any(pending)
                drain(queues)
                for f in finished:
                    pending.remove(f)
                    r = task[f]
                    done[r], seconds = f.get()
                    if on_curve is not None:
                        on_curve(r, done[r], seconds)
            drain(queues)
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return done


# ---------------------------------------------------------------------------------------------------
# training, errors and local energy of solutions


def train_solutions(ds, preset, *, restarts: int, seed: int = 0, device="cpu", checkpoint=None,
                    checkpoint_every: int = 50, num_threads: Optional[int] = None,
                    progress: Optional[Callable[[int, int, int, int], None]] = None,
                    on_resume: Optional[Callable[[int], None]] = None, shared_batches: bool = False,
                    dtype=None) -> Solutions:
    """Train ``restarts`` committee machines of ``preset`` (paper 000, Sec. 5, App. B.1) on ds's
    training set and return them as `Solutions` with the test errors and the provenance in the metadata.

    ds: a `data.DressCoat` (or anything with X_train, y_train, X_test, y_test, provenance).
    checkpoint: resume from it if it exists (see `committee.train.train_committee`); it is left in
    place (remove it once the solutions are saved). progress(epoch, converged, finished, R) after
    every epoch; on_resume(epoch) once, before the first progress report, when the run resumes a
    checkpoint from that epoch. shared_batches, dtype: see `committee.train.train_committee` (default:
    each restart its own mini-batches, float64). Everything is validated before the first report.
    """
    from localentropy.committee.evaluate import solution_errors
    from localentropy.committee.train import train_committee

    if isinstance(restarts, bool) or not isinstance(restarts, (int, np.integer)) or restarts < 1:
        raise CommitteeError(f"restarts must be a positive integer, got {restarts}")
    if checkpoint is not None:
        folder = Path(checkpoint).parent if str(Path(checkpoint).parent) else Path(".")
        if not folder.is_dir():
            raise CommitteeError(f"{checkpoint}: folder {folder} does not exist")
    import torch

    kwargs = {"shared_batches": bool(shared_batches), "dtype": torch.float64 if dtype is None else dtype}
    if on_resume is not None:
        kwargs["on_resume"] = lambda epoch: on_resume(int(epoch)) if epoch > 0 else None
    res = train_committee(ds.X_train, ds.y_train, preset, restarts=int(restarts), seed=seed, device=device,
                          checkpoint=checkpoint, checkpoint_every=checkpoint_every, progress=progress,
                          num_threads=num_threads, **kwargs)
    test_error = solution_errors(res.weights, ds.X_test, ds.y_test)
    meta = res.metadata()
    meta.update(test_error=[float(e) for e in test_error], device=str(device),
                data={"n_train": int(len(ds.y_train)), "n_test": int(len(ds.y_test)),
                      "provenance": dict(getattr(ds, "provenance", {}) or {})})
    return Solutions(weights=res.weights, patterns_hash=patterns_hash(ds.X_train, ds.y_train), metadata=meta)


@dataclass(frozen=True)
class SolutionErrors:
    """Training and test error per restart; converged and epochs as the solutions file records them
    (None where it does not)."""

    restarts: tuple
    converged: Optional[tuple]
    epochs: Optional[tuple]
    train_error: np.ndarray
    test_error: np.ndarray
    setting: Optional[str] = None

    @property
    def test_error_se(self) -> float:
        """Standard error of the mean test error across restarts (nan with one restart)."""
        n = len(self.test_error)
        return float(np.std(self.test_error, ddof=1) / math.sqrt(n)) if n > 1 else math.nan


def evaluate_solutions(sol: Solutions, ds) -> SolutionErrors:
    """Errors of the sign network (Eq. 7) of every restart on ds's training and test sets; the
    solutions must have been trained on ds's training patterns (CommitteeError otherwise)."""
    from localentropy.committee.evaluate import solution_errors

    check_patterns(sol.patterns_hash, ds.X_train, ds.y_train, "solutions", "the data's training set")
    tr = solution_errors(sol.weights, ds.X_train, ds.y_train)
    te = solution_errors(sol.weights, ds.X_test, ds.y_test)
    status, epochs = sol.metadata.get("status"), sol.metadata.get("epochs")
    converged = tuple(s == "converged" for s in status) if isinstance(status, list) and len(status) == sol.restarts \
        else None
    epochs = tuple(int(e) for e in epochs) if isinstance(epochs, list) and len(epochs) == sol.restarts else None
    return SolutionErrors(restarts=tuple(range(sol.restarts)), converged=converged, epochs=epochs,
                          train_error=np.asarray(tr, dtype=np.float64), test_error=np.asarray(te, dtype=np.float64),
                          setting=sol.metadata.get("setting"))


def solution_energies(sol: Solutions, ds, sigmas, *, draws: int = 1000, seed: int = 0, device="cpu",
                      progress: Optional[Callable[[int, int], None]] = None):
    """Local energy δE_train(w, σ) (paper 000, Eq. 4) of every restart on ds's training set
    (`committee.evaluate.local_energy_profiles`); the solutions must belong to ds (CommitteeError).
    progress(done, R) after each restart."""
    from localentropy.committee.evaluate import local_energy_profiles

    check_patterns(sol.patterns_hash, ds.X_train, ds.y_train, "solutions", "the data's training set")
    if isinstance(draws, bool) or int(draws) != draws or draws < 2:
        raise CommitteeError(f"draws must be an integer ≥ 2, got {draws}")
    return local_energy_profiles(sol.weights, ds.X_train, ds.y_train, sigmas, draws=int(draws), seed=seed,
                                 device=device, progress=progress)
