"""Benchmark of the BP local-entropy solvers at the paper's size (P = 500, K = 9, N = 784, real Dress/Coat).

1. One per-edge r-BP sweep, compiled (bp.edge.sweep) vs the numpy oracle (bp.reference.sweep_numpy),
   same messages, same blocks: the ratio.
2. Memory-traffic bound of the per-edge sweep: the bytes one sweep must move, counted from the
   kernel's array reads/writes (bp/edge.py, the fused _sweep_kernel; see edge_sweep_bytes), divided
   by the copy bandwidth measured here (np.copyto of a large array); the sweep's time over that bound.
   The node-level AMP sweep (bp.amp), which never touches a (P,K,N) array, is timed alongside.
3. Full curves with the defaults of bp.local_entropy_curve (30 prior widths uniform in √Δ up to 1,
   method="auto"), warm (kernels loaded): wall and CPU seconds per curve (goal ≤ 2 s), against the bound
   for the same work measured in this run: the multiply-adds the sweeps and Bethe terms did (3·P·K·N per
   AMP sweep and per Bethe evaluation, 2·P·K·N per rebuild of the node sums every 10 sweeps) at the rate
   of one large single-threaded float64 GEMM, plus (second bound) the output channel of every pattern
   visited (bp.output.channel_row in a compiled loop, workspaces allocated once, as inside a sweep) at
   the rate measured here on the curve's own fields at its middle Δ (the erfc/exp work no GEMM can do).
4. 250 curves on 2 cores: a batch of curves in 2 worker processes (spawned, as `localentropy phi
   --jobs 2`), extrapolated to 250 (goal ≤ 10 min) from its wall time and from its CPU seconds (the
   wall time on 2 cores of their own; the two differ when other work shares the machine).
5. Compilation: a fresh process with an empty cache folder runs bp.compile_kernels() (the cold compile
   time), then a fresh process with that cache runs its first curve (import + kernel loading + curve).

The reference: restarts of --solutions, else Figure 1's SGD-fast solutions (results/fig1/, the paper's
setting), else out/sgd-fast.npz (`make run`'s quick preview) if present, else a least-action solution of the real training set (docs/bp.md §7.7), which is not an SGD
solution: the script says which. Without the Dress/Coat data it falls back to synthetic correlated
images and says so. Timings on a shared machine are noisy; bounds and ratios are measured in the same run.

Run: .venv/bin/python benchmarks/bench_bp.py [--solutions FILE.npz] [--curves 3] [--batch 4] [--no-compile]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # the GEMM bound of one curve: one core, as each curve runs
os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the checkout: the benchmark runs without an install

import numba  # noqa: E402
import numpy as np  # noqa: E402

from localentropy import bp  # noqa: E402
from localentropy.bp import amp as bpamp  # noqa: E402
from localentropy.bp.edge import EdgeState, make_problem  # noqa: E402
from localentropy.bp.edge import _Workspace  # noqa: E402
from localentropy.bp.edge import sweep as edge_sweep  # noqa: E402
from localentropy.bp.instances import least_action  # noqa: E402
from localentropy.bp.output import channel_row  # noqa: E402
from localentropy.bp.reference import sweep_numpy  # noqa: E402

K = 9


def synthetic_images(P, seed=0, side=28):
    """docs/bp.md §7.7-style correlated ±1 images: smooth random field + central object, thresholded."""
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


FIG1_SGD_FAST = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "results", "fig1",
                             "fig1-solutions-sgd-fast.npz")


def load_references(path, count, X, y):
    """(list of (K,N) references, description)."""
    from localentropy.committee.solutions import load_solutions

    if path is None:  # Figure 1's SGD-fast solutions (the paper's setting), else the quick preview's
        path = next((p for p in (FIG1_SGD_FAST, "out/sgd-fast.npz") if os.path.exists(p)), None)
    if path:
        W = load_solutions(path).weights
        return [bp.normalize_reference(w) for w in W[:count]], f"restarts 0..{min(count, len(W)) - 1} of {path}"
    t = time.perf_counter()
    Wt = least_action(X, y, K, max_epochs=2000)
    return [Wt], (f"least-action committee solution ({time.perf_counter() - t:.1f} s to find) -- NOT an SGD "
                  f"solution: pass --solutions out/sgd-fast.npz for the goal's setting")


def gemm_rate(P, N, cols=4096, repeats=5):
    """Multiply-adds per second of one large float64 GEMM, (P×N) by (N×cols), on one thread."""
    rng = np.random.default_rng(0)
    A, B = rng.random((P, N)), rng.random((N, cols))
    A @ B
    return P * N * cols / timeit(lambda: A @ B, repeats)


def curve_worker(args):
    """One curve in a worker process (spawned): wall seconds, CPU seconds, sweeps, converged points."""
    Wt, X, y = args
    numba.set_num_threads(1)
    t, c0 = time.perf_counter(), time.process_time()
    c = bp.local_entropy_curve(Wt, X, y, method="auto")
    return time.perf_counter() - t, time.process_time() - c0, int(c.sweeps.sum()), int(c.converged.sum())


@numba.njit(cache=False)
def channel_loop(omega, V, y, g, Gam):
    """bp.output.channel_row over every pattern with workspaces allocated once, as inside a sweep."""
    K = omega.shape[1]
    lnp, lnq = np.empty(K), np.empty(K)
    L, S, Sc = np.empty((K + 1, K + 1)), np.empty((K + 1, K + 1)), np.empty((K + 1, K + 1))
    s = 0.0
    for mu in range(omega.shape[0]):
        s += channel_row(omega[mu], V[mu], y[mu], np.inf, lnp, lnq, L, S, Sc, g[mu], Gam[mu])
    return s


FRESH = """
import sys, time
t = time.perf_counter()
from localentropy import bp
import numpy as np
if sys.argv[1] == "compile":
    assert bp.needs_compilation()
    bp.compile_kernels()
    print(time.perf_counter() - t)
else:
    from localentropy.data import load_dresscoat
    d = load_dresscoat()
    W = np.load(sys.argv[2])
    t1 = time.perf_counter()
    bp.local_entropy_curve(W, d.X_train, d.y_train, method="auto")
    print(time.perf_counter() - t, time.perf_counter() - t1, bp.needs_compilation())
"""


def compile_section(Wt):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, PYTHONPATH=root, LOCALENTROPY_NUMBA_CACHE=tmp)
        out = subprocess.run([sys.executable, "-c", FRESH, "compile"], env=env, capture_output=True, text=True)
        if out.returncode:
            print(f"    compile run failed: {out.stderr[-500:]}")
            return
        t_compile = float(out.stdout.split()[-1])
        wfile = os.path.join(tmp, "ref.npy")
        np.save(wfile, Wt)
        out = subprocess.run([sys.executable, "-c", FRESH, "curve", wfile], env=env, capture_output=True, text=True)
        if out.returncode:
            print(f"    first-curve run failed: {out.stderr[-500:]}")
            return
        t_total, t_curve, needs = out.stdout.split()[-3:]
    print(f"    cold compile (fresh process, empty cache, bp.compile_kernels()): {t_compile:.1f} s")
    print(f"    fresh process with that cache, first curve: {float(t_total):.1f} s in all (import, data, kernel "
          f"loading, curve), {float(t_curve):.1f} s for the curve call; needs_compilation() after: {needs}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--solutions", default=None, help="solutions .npz; its first --curves restarts are the references")
    ap.add_argument("--curves", type=int, default=6, help="warm curves timed in section 3")
    ap.add_argument("--batch", type=int, default=4, help="curves of the 2-process batch of section 4")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--numpy-repeats", type=int, default=2)
    ap.add_argument("--no-compile", action="store_true", help="skip section 5 (it compiles everything afresh)")
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
    refs, ref = load_references(args.solutions, args.curves, X, y)
    Wt = refs[0]
    print(f"data: {source}, P={P}, N={N}, K={K}; reference: {ref}")
    print(f"numba threads: {numba.get_num_threads()} of {os.cpu_count()} CPUs; bp kernel cache: {bp.cache_dir()}")
    if bp.needs_compilation():
        t = time.perf_counter()
        bp.compile_kernels()
        print(f"(kernels compiled first: {time.perf_counter() - t:.1f} s)")
    else:
        bp.compile_kernels()  # loads them
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

    # ---- 3. full curves, defaults, warm
    numba.set_num_threads(1)
    print(f"\n[3] full curves, defaults ({len(bp.default_deltas())} prior widths uniform in √Δ up to "
          f"{bp.default_deltas()[-1]:g}, method='auto', tol 1e-6), warm, 1 thread")
    walls, cpus, bounds_mac, bounds_all = [], [], [], []
    rate = gemm_rate(P, N)
    for i, W in enumerate(refs):
        t, c0 = time.perf_counter(), time.process_time()
        curve = bp.local_entropy_curve(W, X, y, method="auto")
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c0)
        sweeps = int(curve.sweeps.sum())
        n_pts = len(curve.prior_delta)
        macs = P * K * N * (3 * sweeps + 3 * n_pts + 2 * (sweeps // 10 + n_pts))
        # the output channel on this reference's own fields at a middle Δ (one call over all P patterns)
        mid = curve.prior_delta[n_pts // 2]
        r = bp.free_entropy(X, y, K, W, mid, method="amp", n_blocks=P // 10)
        a, b, c, _, m, v = bpamp.node_quantities_numpy(X, W, mid, r.state.g, r.state.Gam)
        om, V, _ = bpamp.fields_numpy(X, mid, W, np.arange(P), r.state.g, r.state.Gam, a, b, c)
        gg, GG = np.empty((P, K)), np.empty((P, K))
        channel_loop(om, V, y, gg, GG)
        t_chan = timeit(lambda: channel_loop(om, V, y, gg, GG), args.repeats)
        bounds_mac.append(macs / rate)
        bounds_all.append(macs / rate + (sweeps + n_pts) * t_chan)
        print(f"    curve {i}: {walls[-1]:.2f} s wall, {cpus[-1]:.2f} s CPU; {sweeps} sweeps "
              f"({int(curve.converged.sum())}/{n_pts} converged, methods {sorted(set(curve.methods))}); "
              f"bound {bounds_mac[-1]:.2f} s (multiply-adds at the GEMM rate) / {bounds_all[-1]:.2f} s "
              f"(+ output channel, {t_chan * 1e3:.2f} ms per P patterns)")
    print(f"    GEMM rate (float64, one thread, {P}x{N} by {N}x4096): {rate / 1e9:.2f} G multiply-adds/s")
    w, cpu = float(np.median(walls)), float(np.median(cpus))
    bm, ba = float(np.median(bounds_mac)), float(np.median(bounds_all))
    print(f"    median: {w:.2f} s wall, {cpu:.2f} s CPU per curve (max {max(walls):.2f} s wall, {max(cpus):.2f} s CPU); "
          f"bound {bm:.2f} s / {ba:.2f} s; "
          f"ratio wall/bound {w / bm:.2f}x / {w / ba:.2f}x, CPU/bound {cpu / bm:.2f}x / {cpu / ba:.2f}x")
    print(f"    goal <= 2 s per curve, warm: {'met' if w <= 2 else 'MISSED'} (wall), "
          f"{'met' if cpu <= 2 else 'MISSED'} (CPU; the wall time includes waiting for a shared core)")

    # ---- 4. 250 curves on 2 cores
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    jobs = [(refs[i % len(refs)], X, y) for i in range(args.batch)]
    t = time.perf_counter()
    with ProcessPoolExecutor(max_workers=2, mp_context=mp.get_context("spawn")) as pool:
        res = list(pool.map(curve_worker, jobs))
    t_batch = time.perf_counter() - t
    est = t_batch * 250 / args.batch
    est_cpu = sum(r[1] for r in res) / 2 * 250 / args.batch
    print(f"\n[4] {args.batch} curves in 2 spawned worker processes (1 thread each): {t_batch:.1f} s wall "
          f"(per curve in the workers: {', '.join(f'{r[0]:.1f} s wall / {r[1]:.1f} s CPU' for r in res)})")
    print(f"    250 curves on 2 cores: {est / 60:.1f} min by wall time, EXTRAPOLATED from this measured batch "
          f"(worker start-up and kernel loading included once per worker); goal <= 10 min: "
          f"{'met' if est <= 600 else 'MISSED'}")
    print(f"    250 curves on 2 otherwise idle cores: {est_cpu / 60:.1f} min, EXTRAPOLATED from the batch's CPU "
          f"seconds (what the wall time would be with each worker on a core of its own); goal <= 10 min: "
          f"{'met' if est_cpu <= 600 else 'MISSED'}")

    # ---- 5. compilation
    print("\n[5] compilation")
    if args.no_compile:
        print("    skipped (--no-compile)")
    else:
        compile_section(Wt)
    return 0


if __name__ == "__main__":
    sys.exit(main())
