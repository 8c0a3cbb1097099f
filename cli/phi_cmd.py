"""`localentropy phi`: local-entropy curves Φ_LE(d) of saved committee solutions by BP (BP.md §5, paper 000 Fig. 1).

Thin shell: read the solutions and the patterns, check they belong together, run
`bp.local_entropy_curve` once per selected restart (restarts in parallel processes), write one CSV
(and optionally a PNG) with every point, its convergence and the BP method that produced it.
"""

from __future__ import annotations

import csv
import math
import os
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

import click
import numpy as np

from localentropy.committee_sign import check_odd_K
from localentropy.bp.errors import BPError
from localentropy.cli.options import out_option
from localentropy.data.atomic import atomic_open

CSV_COLUMNS = ("restart", "prior_delta", "d", "delta", "phi", "phi_ball", "phi_G", "converged", "method")
METHOD_CHOICES = ("auto", "edge", "amp")


# ---------------------------------------------------------------------------------------------------
# input parsing (each bad input is one BPError line)


def parse_deltas(text: str) -> np.ndarray:
    """'lo:hi:n' → n log-spaced prior widths from lo to hi; 'a,b,c' → that list. Finite, > 0, increasing."""
    text = (text or "").strip()
    try:
        if ":" in text:
            parts = text.split(":")
            if len(parts) != 3:
                raise ValueError
            lo, hi, n = float(parts[0]), float(parts[1]), int(parts[2])
            if not (lo > 0 and hi > lo and n >= 2 and math.isfinite(hi)):
                raise BPError(f"--deltas {text!r}: need 0 < lo < hi (finite) and n ≥ 2 in lo:hi:n")
            deltas = np.logspace(math.log10(lo), math.log10(hi), n)
        else:
            deltas = np.array([float(t) for t in text.split(",")], dtype=np.float64)
    except ValueError:
        raise BPError(f"--deltas {text!r}: expected lo:hi:n (log grid) or a comma list of numbers") from None
    if deltas.size == 0 or not np.all(np.isfinite(deltas)) or np.any(deltas <= 0):
        raise BPError(f"--deltas {text!r}: prior widths must be finite and > 0")
    if np.any(np.diff(deltas) <= 0):
        raise BPError(f"--deltas {text!r}: prior widths must be strictly increasing")
    return deltas


def parse_beta(text: str) -> float:
    try:
        beta = float(text)
    except ValueError:
        raise BPError(f"--beta {text!r}: expected a number > 0 or inf") from None
    if not beta > 0:
        raise BPError(f"--beta {text!r}: must be > 0 (inf for the hard constraint)")
    return beta


def parse_restarts(text: str | None, R: int) -> list[int]:
    """'0,3,7' → [0, 3, 7]; None → all R restarts. Indices must exist and be distinct."""
    if text is None:
        return list(range(R))
    try:
        idx = [int(t) for t in text.split(",") if t.strip() != ""]
    except ValueError:
        raise BPError(f"--restarts {text!r}: expected a comma list of integers") from None
    if not idx:
        raise BPError(f"--restarts {text!r}: no restart selected")
    bad = [r for r in idx if not 0 <= r < R]
    if bad:
        raise BPError(f"--restarts: index {bad[0]} out of range, the solutions file has {R} restart(s) (0..{R - 1})")
    if len(set(idx)) != len(idx):
        raise BPError(f"--restarts {text!r}: repeated index")
    return idx


def load_weights(path) -> tuple[np.ndarray, str | None, list | None]:
    """Weights (R, K, N), the patterns hash and the per-restart status (both None for a bare .npy)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such solutions file")
    if path.suffix == ".npz":
        from localentropy.committee.solutions import load_solutions

        sol = load_solutions(path)
        status = sol.metadata.get("status")
        return sol.weights, sol.patterns_hash, list(status) if isinstance(status, list) else None
    try:
        w = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise BPError(f"{path}: cannot read as .npy ({exc})") from None
    if not isinstance(w, np.ndarray) or w.ndim not in (2, 3):
        raise BPError(f"{path}: weights must have shape (K, N) or (R, K, N), got {getattr(w, 'shape', '?')}")
    if not np.issubdtype(w.dtype, np.number):
        raise BPError(f"{path}: weights must be numeric, got dtype {w.dtype}")
    w = np.asarray(w, dtype=np.float64)
    if w.ndim == 2:
        w = w[None]
    R, K, N = w.shape
    if R < 1 or N < 1 or K < 1:
        raise BPError(f"{path}: weights shape {w.shape} has an empty axis")
    try:
        check_odd_K(K, BPError)
    except BPError as exc:
        raise BPError(f"{path}: {exc}") from None
    if not np.all(np.isfinite(w)):
        raise BPError(f"{path}: weights contain NaN or infinite values")
    if np.any(np.linalg.norm(w, axis=2) == 0):
        raise BPError(f"{path}: a hidden unit has all-zero weights")
    return w, None, None


def load_patterns(path) -> tuple[np.ndarray, np.ndarray, str]:
    """(X (P,N) ±1, y (P,) ±1, description) from --data (.npz with X and y), default the Dress/Coat training set."""
    if path is None:
        from localentropy.data import load_dresscoat

        ds = load_dresscoat()
        return ds.X_train, ds.y_train, "embedded Dress/Coat training set"
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such patterns file")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in ("X", "y") if k not in z.files]
            if missing:
                raise BPError(f"{path}: patterns file needs arrays X and y, missing {', '.join(missing)}")
            X, y = z["X"], z["y"]
    except BPError:
        raise
    except Exception as exc:  # zipfile.BadZipFile, OSError, ValueError, EOFError
        raise BPError(f"{path}: cannot read as .npz ({type(exc).__name__}: {exc})") from None
    if X.ndim != 2 or y.shape != (X.shape[0],):
        raise BPError(f"{path}: X must be (P, N) and y (P,), got {X.shape} and {y.shape}")
    if not (np.issubdtype(X.dtype, np.number) and np.issubdtype(y.dtype, np.number)):
        raise BPError(f"{path}: X and y must be numeric")
    if not np.all(np.abs(X) == 1):
        raise BPError(f"{path}: X must be ±1 patterns")
    if not np.all(np.abs(y) == 1):
        raise BPError(f"{path}: labels y must be ±1")
    return X, y, str(path)


# ---------------------------------------------------------------------------------------------------
# one curve per restart (runs in a worker process)


def _curve_worker(r, W, X, y, deltas, beta, method, drop_misclassified, seed, queue=None):
    """BP curve of restart r; returns (r, rows, gaps, error message or None). Progress goes to `queue`."""
    from localentropy import bp

    def progress(info):
        if queue is not None:
            queue.put(1)

    try:
        curve = bp.local_entropy_curve(W, X, y, deltas, beta=beta, method=method, seed=seed,
                                       drop_misclassified=drop_misclassified, progress=progress)
    except BPError as exc:
        return r, None, None, f"restart {r}: {str(exc).strip().splitlines()[0]}"
    rows = []
    for j in range(len(curve.prior_delta)):
        rows.append({"restart": r, "prior_delta": float(curve.prior_delta[j]), "d": float(curve.d[j]),
                     "delta": float(curve.delta[j]), "phi": float(curve.phi[j]), "phi_ball": float(curve.phi_ball[j]),
                     "phi_G": float(curve.phi_G[j]), "converged": bool(curve.converged[j]), "method": curve.methods[j]})
    return r, rows, [dict(g) for g in curve.gaps], None


def _set_thread_env(n_threads: int) -> dict:
    """Limit BLAS/numba threads of the workers (inherited environment) so jobs × threads ≤ cores."""
    keys = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
    old = {k: os.environ.get(k) for k in keys}
    for k in keys:
        os.environ[k] = str(n_threads)
    return old


def _restore_env(old: dict) -> None:
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def run_curves(weights, X, y, restarts, deltas, beta, method, jobs, drop_misclassified=False, seed=0, bar=None):
    """Curves of the selected restarts, in `jobs` processes (in this process if jobs == 1)."""
    results = {}
    if jobs <= 1 or len(restarts) == 1:
        for r in restarts:
            results[r] = _curve_worker(r, weights[r], X, y, deltas, beta, method, drop_misclassified, seed,
                                       _BarQueue(bar))
        return [results[r] for r in restarts]
    import multiprocessing as mp

    ctx = mp.get_context("spawn")  # numba/BLAS thread pools are not fork-safe
    cpus = os.cpu_count() or 1
    old = _set_thread_env(max(1, cpus // jobs))
    try:
        with ctx.Manager() as manager:
            queue = manager.Queue()
            with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
                futures = [pool.submit(_curve_worker, r, weights[r], X, y, deltas, beta, method, drop_misclassified,
                                       seed, queue) for r in restarts]
                pending = set(futures)
                while pending:
                    done = {f for f in pending if f.done()}
                    _drain(queue, bar)
                    for f in done:
                        r, *rest = f.result()
                        results[r] = (r, *rest)
                    pending -= done
                    if pending:
                        _wait(pending)
                _drain(queue, bar)
    finally:
        _restore_env(old)
    return [results[r] for r in restarts]


def _wait(pending):
    wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)


def _drain(queue, bar):
    import queue as queue_mod

    while True:
        try:
            queue.get_nowait()
        except (queue_mod.Empty, EOFError, OSError):
            return
        if bar is not None:
            bar.update(1)


class _BarQueue:
    """Queue-like adapter updating a tqdm bar directly (single-process path)."""

    def __init__(self, bar):
        self.bar = bar

    def put(self, _):
        if self.bar is not None:
            self.bar.update(1)


# ---------------------------------------------------------------------------------------------------
# outputs (atomic)


def write_csv(rows, path) -> None:
    """One row per (restart, Δ), columns CSV_COLUMNS, written to a temp name then os.replace'd."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise BPError(f"--out {path}: folder {folder} does not exist")
    with atomic_open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(CSV_COLUMNS)
        for row in rows:
            w.writerow([repr(row[c]) if isinstance(row[c], float) else
                        (int(row[c]) if isinstance(row[c], bool) else row[c]) for c in CSV_COLUMNS])


def plot_curves(per_restart, path) -> None:
    """Φ_LE vs d, one line per restart; non-converged points and reported gaps break the line (BP.md §5.2)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise BPError(f"--plot {path}: folder {folder} does not exist")
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for r, rows, gaps in per_restart:
        d, phi = [], []
        gap_starts = {g["prior_delta_low"] for g in gaps}
        for row in rows:
            ok = row["converged"] and math.isfinite(row["phi"]) and row["d"] > 0
            d.append(row["d"] if ok else np.nan)
            phi.append(row["phi"] if ok else np.nan)
            if ok and row["prior_delta"] in gap_starts:
                d.append(np.nan)
                phi.append(np.nan)
        ax.plot(d, phi, marker=".", label=f"restart {r}")
    ax.set_xscale("log")
    ax.set_xlabel("d = ½‖w − w̃‖²")
    ax.set_ylabel("Φ_LE(d) (per weight)")
    ax.legend(fontsize="small")
    fig.tight_layout()
    try:
        with atomic_open(path) as fh:
            fig.savefig(fh, format=(path.suffix.lstrip(".") or "png"), dpi=120)
    finally:
        plt.close(fig)


# ---------------------------------------------------------------------------------------------------
# the command


@click.command("phi")
@click.argument("solutions", type=click.Path(dir_okay=False))
@click.option("--data", "data_path", type=click.Path(dir_okay=False), default=None,
              help="Patterns .npz with X (P,N) ±1 and y (P,) [default: the embedded Dress/Coat training set].")
@click.option("--deltas", default="1e-4:1:25", show_default=True,
              help="Prior widths Δ: lo:hi:n (log grid) or a comma list, increasing.")
@click.option("--restarts", default=None, help="Comma list of restart indices [default: all].")
@click.option("--method", type=click.Choice(METHOD_CHOICES), default="auto", show_default=True,
              help="BP form: amp (node level), edge (per-edge r-BP), auto (amp, per-edge where it fails).")
@click.option("--beta", default="inf", show_default=True, help="Inverse temperature of the constraint (inf: hard).")
@click.option("--drop-misclassified", is_flag=True,
              help="Run BP on the patterns the reference classifies correctly (a lower bound, BP.md §6.6).")
@click.option("--jobs", type=int, default=None, help="Parallel processes [default: min(restarts, CPU count)].")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of BP's random block schedule.")
@out_option(help="CSV of every curve point (written to a temporary name, then renamed).")
@click.option("--plot", type=click.Path(dir_okay=False), default=None, help="Also draw Φ_LE vs d (PNG).")
@click.pass_context
def phi(ctx, solutions, data_path, deltas, restarts, method, beta, drop_misclassified, jobs, seed, out, plot):
    """Local-entropy curves Φ_LE(d) of the restarts in SOLUTIONS (.npz solutions file or .npy (K,N)/(R,K,N))."""
    quiet = bool((ctx.obj or {}).get("quiet"))
    if out is None:
        raise click.UsageError("--out is required", ctx=ctx)
    grid = parse_deltas(deltas)
    beta_v = parse_beta(beta)
    weights, sol_hash, status = load_weights(solutions)
    X, y, source = load_patterns(data_path)
    if weights.shape[2] != X.shape[1]:
        raise BPError(f"{solutions}: weights have N={weights.shape[2]} inputs but the patterns ({source}) have "
                      f"N={X.shape[1]}")
    if sol_hash is not None:
        from localentropy.data import patterns_hash

        got = patterns_hash(X, y)
        if got != sol_hash:
            raise BPError(f"{solutions}: patterns hash {sol_hash[:16]} does not match the patterns ({source}) "
                          f"hash {got[:16]}")
    selected = parse_restarts(restarts, weights.shape[0])
    if restarts is None and status is not None and len(status) == len(selected):
        skipped = [r for r in selected if status[r] != "converged"]
        selected = [r for r in selected if status[r] == "converged"]
        if not selected:
            raise BPError(f"{solutions}: no restart converged; name restarts with --restarts to use them anyway")
        if skipped and not quiet:
            click.echo(f"skipping restart(s) {', '.join(map(str, skipped))}: not converged "
                       f"(name them with --restarts to include them)", err=True)
    if not math.isfinite(beta_v) and not drop_misclassified:
        from localentropy.bp.curve import misclassified

        for r in selected:  # fail before any curve is computed, not after
            n_bad = int(misclassified(weights[r], X, y).sum())
            if n_bad:
                raise BPError(f"restart {r} misclassifies {n_bad} of {len(y)} patterns; pass a finite --beta "
                              f"(soft constraint) or --drop-misclassified")
    if jobs is not None and jobs < 1:
        raise BPError(f"--jobs must be ≥ 1, got {jobs}")
    jobs = jobs or max(1, min(len(selected), os.cpu_count() or 1))
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    from tqdm import tqdm

    with tqdm(total=len(selected) * len(grid), desc="phi", unit="Δ", disable=quiet,
              leave=False) as bar:
        results = run_curves(weights, X, y, selected, grid, beta_v, method, jobs, drop_misclassified, seed, bar)
    errors = [e for *_, e in results if e]
    if errors:
        raise BPError(errors[0])
    rows = [row for _, rws, _, _ in results for row in rws]
    write_csv(rows, out)
    if plot:
        plot_curves([(r, rws, gaps) for r, rws, gaps, _ in results], plot)
    if not quiet:
        for r, rws, gaps, _ in results:
            conv = sum(row["converged"] for row in rws)
            used = sorted({row["method"] for row in rws if row["method"]})
            click.echo(f"restart {r}: {conv}/{len(rws)} prior widths converged (method {', '.join(used) or '-'})"
                       + (f", {len(gaps)} gap(s)" if gaps else ""))
        click.echo(f"wrote {out}" + (f" and {plot}" if plot else ""))
