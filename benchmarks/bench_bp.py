"""Benchmark of the BP local-entropy solvers at the paper's size (P = 500, K = 9, N = 784, real Dress/Coat).

1. One per-edge r-BP sweep, compiled (bp.edge.sweep) vs the numpy oracle (bp.reference.sweep_numpy),
   same messages, same blocks: the ratio (goal ≥ 10×).
2. Memory-traffic bound of the per-edge sweep: the bytes one sweep must move, counted from the
   kernel's array reads/writes (bp/edge.py, the fused _sweep_kernel; see edge_sweep_bytes), divided
   by the copy bandwidth measured here (np.copyto of a large array); the sweep's time over that bound
   (goal within 3×). The node-level AMP sweep (bp.amp), which never touches a (P,K,N) array, is
   timed alongside.
3. One full local-entropy curve (≥ 20 prior widths) of a real solution with the fast path
   (method="auto": AMP, per-edge where AMP fails); wall time (goal ≤ 10 s).

The reference is a solution of the real training set, found by the committee least-action rule (BP.md
§7.7), or restart 0 of --solutions. Without the Dress/Coat data the script falls back to synthetic
correlated images and says so. Timings on a shared machine are noisy; ratios are measured in the same run.

Run: .venv/bin/python benchmarks/bench_bp.py [--solutions FILE.npz] [--deltas 25] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the checkout: the benchmark runs without an install

import numba  # noqa: E402
import numpy as np  # noqa: E402

from localentropy import bp  # noqa: E402
from localentropy.bp import amp as bpamp  # noqa: E402
from localentropy.bp.edge import EdgeState, make_problem  # noqa: E402
from localentropy.bp.edge import _Workspace  # noqa: E402
from localentropy.bp.edge import sweep as edge_sweep  # noqa: E402
from localentropy.bp.instances import least_action  # noqa: E402
from localentropy.bp.reference import sweep_numpy  # noqa: E402

K = 9


def synthetic_images(P, seed=0, side=28):
    """BP.md §7.7-style correlated ±1 images: smooth random field + central object, thresholded."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    f = gaussian_filter(rng.standard_normal((P, side, side)), sigma=(0, 2.0, 2.0))
    f /= f.std()
    yy, xx = np.mgrid[0:side, 0:side] - (side - 1) / 2
    obj = 2.5 * np.exp(-((np.hypot(yy, xx) / side / 0.3) ** 2))
    z = f + rng.uniform(0.5, 1.5, size=(P, 1, 1)) * obj[None] - 1.0
    X = np.where(z > 0, 1.0, -1.0).reshape(P, -1)
    X[:, :20] = -1.0  # constant pixels
    y = rng.choice([-1.0, 1.0], size=P)
    return X, y


def timeit(fn, repeats):
    """Best wall time of `repeats` calls (the least disturbed by other processes on a shared machine)."""
    best = np.inf
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def copy_bandwidth(nbytes=256 * 2**20, repeats=5):
    """Bytes/s moved by np.copyto of a large float64 array (read + write counted: 2 × size)."""
    src = np.random.default_rng(0).random(nbytes // 8)
    dst = np.empty_like(src)
    np.copyto(dst, src)
    t = timeit(lambda: np.copyto(dst, src), repeats)
    return 2 * src.nbytes / t


def edge_sweep_bytes(P, K, N):
    """Bytes one bp.edge.sweep moves to/from memory, counted from its fused `_sweep_kernel` (float64 = 8 B).

    Pattern by pattern, the kernel reads μ's message slab B[μ] (K·N values, 56 KB here: it stays in
    cache) for the cavity fields, runs the output channel, and overwrites the same slab with the damped
    new messages: B (P·K·N, 28 MB here) is read once and written once, and X[μ] (N values) is read once.
    Inside a run (`run_edge_bp`, workspace reused) the message sums are carried from sweep to sweep;
    a call without a workspace first sums them afresh: one more read of B.
    Returns (in-run bytes, fresh-call bytes).
    """
    f = 8
    in_run = 2 * P * K * N * f + P * N * f
    return in_run, in_run + P * K * N * f


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--solutions", default=None, help="solutions .npz; restart 0 is the reference")
    ap.add_argument("--deltas", type=int, default=25, help="prior widths in the full curve (logspace 1e-4..1)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--numpy-repeats", type=int, default=2)
    args = ap.parse_args()

    try:
        from localentropy.data import load_dresscoat

        ds = load_dresscoat()
        X, y = ds.X_train.astype(np.float64), ds.y_train.astype(np.float64)
        source = "real Dress/Coat training set"
    except Exception as exc:  # missing data file
        X, y = synthetic_images(500)
        source = f"SYNTHETIC correlated images (Dress/Coat unavailable: {exc})"
    P, N = X.shape
    if args.solutions:
        from localentropy.committee.solutions import load_solutions

        Wt = bp.normalize_reference(load_solutions(args.solutions).weights[0])
        ref = f"restart 0 of {args.solutions}"
    else:
        t = time.perf_counter()
        Wt = least_action(X, y, K, max_epochs=2000)
        ref = f"least-action committee solution ({time.perf_counter() - t:.1f} s to find)"
    print(f"data: {source}, P={P}, N={N}, K={K}; reference: {ref}")
    print(f"numba threads: {numba.get_num_threads()} of {os.cpu_count()} CPUs")

    # ---- 1. per-edge sweep: compiled vs numpy oracle
    Delta, nb_ = 1e-3, 10
    problem = make_problem(X, y, Wt)
    rng = np.random.default_rng(0)
    blocks = [np.sort(b) for b in np.array_split(rng.permutation(P), nb_)]
    state = EdgeState.zeros(P, K, N)
    for _ in range(3):  # non-trivial messages; also compiles the kernels
        edge_sweep(problem, Delta, np.inf, 0.0, blocks, state)
    # repeated sweeps on the same messages (the cost does not depend on their values); no copies timed
    s_nb = state.copy()
    ws = _Workspace(P, K, N)
    edge_sweep(problem, Delta, np.inf, 0.0, blocks, s_nb, ws)  # the workspace now holds the carried sums
    user_threads = numba.get_num_threads()
    t_by_threads, t_fresh = {}, {}
    for th in sorted({1, user_threads}):
        numba.set_num_threads(th)
        t_by_threads[th] = timeit(lambda: edge_sweep(problem, Delta, np.inf, 0.0, blocks, s_nb, ws), args.repeats)
        t_fresh[th] = timeit(lambda: edge_sweep(problem, Delta, np.inf, 0.0, blocks, s_nb), args.repeats)
    numba.set_num_threads(user_threads)
    t_numba = min(t_by_threads.values())
    t_numba_fresh = min(t_fresh.values())
    a_np, B_np = state.a.copy(), state.B.copy()
    t_numpy = timeit(lambda: sweep_numpy(X, y, Wt, Delta, np.inf, 0.0, blocks, a_np, B_np), args.numpy_repeats)
    ratio = t_numpy / t_numba_fresh  # like for like: the numpy sweep also sums the messages afresh
    print("\n[1] per-edge sweep (Δ=1e-3, 10 blocks)")
    for th, t in t_by_threads.items():
        print(f"    numba, {th} thread(s): {t * 1e3:8.1f} ms in a run (workspace reused), "
              f"{t_fresh[th] * 1e3:8.1f} ms as a fresh call")
    print(f"    numpy  : {t_numpy * 1e3:8.1f} ms")
    print(f"    speed-up numba/numpy, fresh call (like for like): {ratio:.1f}×  "
          f"(goal ≥ 10×: {'met' if ratio >= 10 else 'MISSED'}); in a run: {t_numpy / t_numba:.1f}×")

    # ---- 2. memory-traffic bound
    bw = copy_bandwidth()
    b_run, b_fresh = edge_sweep_bytes(P, K, N)
    bound_run, bound_fresh = b_run / bw, b_fresh / bw
    print("\n[2] memory-traffic bound of the per-edge sweep")
    print(f"    bytes per sweep: {b_run / 1e6:.1f} MB in a run (B read + written once, X read once); "
          f"{b_fresh / 1e6:.1f} MB as a fresh call (one more read of B for the message sums)")
    print(f"    copy bandwidth (np.copyto, 256 MiB, read+write): {bw / 1e9:.2f} GB/s")
    print(f"    bound: {bound_run * 1e3:.1f} ms in a run, {bound_fresh * 1e3:.1f} ms fresh")
    r_min = t_numba / bound_run
    print(f"    sweep / bound: {r_min:.2f}× in a run, {t_numba_fresh / bound_fresh:.2f}× fresh"
          f"  (goal ≤ 3×: {'met' if r_min <= 3 else 'MISSED'})")
    ast = bpamp.AMPState.zeros(P, K)
    ws = bpamp._Workspace(P, K, N)
    for _ in range(3):
        bpamp.sweep(problem, Delta, np.inf, 0.0, blocks, ast, ws, True)
    t_amp = timeit(lambda: bpamp.sweep(problem, Delta, np.inf, 0.0, blocks, ast, ws, True), args.repeats)
    from localentropy.bp.output import output_channel

    omega = np.random.default_rng(1).normal(size=(P, K)) * 0.3
    t_chan = timeit(lambda: output_channel(omega, np.full((P, K), Delta), y), args.repeats)
    print(f"    node-level AMP sweep: {t_amp * 1e3:.1f} ms ({t_numba / t_amp:.1f}× faster than the per-edge sweep, "
          f"{t_numpy / t_amp:.1f}× faster than the numpy per-edge oracle); "
          f"of which the output channel of all P patterns ≈ {t_chan * 1e3:.1f} ms")

    # ---- 3. full curve, fast path
    from localentropy.bp.free_entropy import METHODS

    method = "auto" if "auto" in METHODS else None
    deltas = np.logspace(-4, 0, args.deltas)
    print(f"\n[3] full curve, {len(deltas)} prior widths in [1e-4, 1]")
    if method:
        t = time.perf_counter()
        curve = bp.local_entropy_curve(Wt, X, y, deltas, method=method)
        t_curve = time.perf_counter() - t
        conv = int(curve.converged.sum())
        print(f"    method=auto: {t_curve:.1f} s, {conv}/{len(deltas)} converged, "
              f"sweeps per Δ {curve.iterations.tolist()}")
    else:
        # not wired into bp.free_entropy: the same continuation by hand (AMP, per-edge where it fails)
        print("    method='auto' is not available in bp.free_entropy (METHODS="
              f"{METHODS}); timing the same continuation with bp.amp.amp_free_entropy + per-edge fallback")
        t = time.perf_counter()
        state, conv, sweeps, used = None, 0, [], []
        for D in deltas:
            r = bpamp.amp_free_entropy(X, y, K, Wt, D, state=state)
            if not r.converged:
                r = bp.free_entropy(X, y, K, Wt, D)
            conv += r.converged
            sweeps.append(r.total_iterations)
            used.append(r.method)
            if r.converged and r.method == "amp":
                state = r.state
        t_curve = time.perf_counter() - t
        print(f"    amp+fallback: {t_curve:.1f} s, {conv}/{len(deltas)} converged, methods {sorted(set(used))}, "
              f"sweeps per Δ {sweeps}")
    print(f"    goal ≤ 10 s: {'met' if t_curve <= 10 else 'MISSED'}")
    t = time.perf_counter()
    edge_curve = bp.local_entropy_curve(Wt, X, y, deltas[: max(3, len(deltas) // 5)], method="edge")
    t_edge = time.perf_counter() - t
    print(f"    (per-edge only, first {len(edge_curve.prior_delta)} prior widths: {t_edge:.1f} s, "
          f"sweeps {edge_curve.iterations.tolist()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
