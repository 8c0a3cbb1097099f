"""Benchmark of the committee trainers on the real Dress/Coat subset (P = 500, N = 784, K = 9),
against the arithmetic bound measured in the same run.

For each preset, dtype and batches mode asked for, at ``--restarts`` restarts (default 50):

- **measured**: seconds per epoch, taken between the progress callbacks of the first and the last
  epoch (set-up, initial weights and the final evaluation are not counted), after a warm-up call;
- **bound**: the time this CPU takes for the same multiply-adds done as large GEMMs of the same
  dtype and thread count (square ``--gemm-size`` matrices, repeated to the epoch's count), run
  right after every timed epoch (inside the progress callback, outside the epoch's timing), so
  that a busy machine slows both sides of each epoch's ratio alike; the printed ratio is the
  median over the timed epochs, the times are medians too. Multiply-adds per epoch: ceil(P/B) steps of two products
  (fields and gradient) of B·N·K per network (rSGD: y replicas per restart; eSGD: L inner steps
  per outer step), plus the stop rule's product over the training set (P·N·K per restart) for
  the SGD rules (rSGD and eSGD stop on distances, no product);
- **ratio** = measured / bound (goal: ≤ 1.6).

Then an estimate of the full Figure 1 training (5 settings × ``--fig-restarts`` restarts): for
each preset, the measured s/epoch times the epochs to stop read from ``--epochs-csv``
(benchmarks/results/epochs_to_stop.csv, written by benchmarks/epochs_to_stop.py), or, for presets with
only time-limited (partial) or missing rows, the ``--assume`` value, labelled as such (the defaults come
from benchmarks/results/epochs_to_stop.md: rsgd-slow from its γ schedule, eSGD the larger of the two
float64, own-batches runs recorded there). A batch runs until its slowest restart stops, so the
largest epochs-to-stop of each preset is used too. Printed as an estimate, never as a measurement.

Run: .venv/bin/python benchmarks/bench_committee.py [--restarts 50] [--dtypes float32,float64]
     [--batches shared,own] [--threads 1] [--presets sgd-fast,...]
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the checkout: runs without an install
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # bench_committee_late

import numpy as np  # noqa: E402
import torch  # noqa: E402

from localentropy.committee.presets import PRESETS  # noqa: E402
from localentropy.committee.train import train_committee  # noqa: E402
from localentropy.data import load_dresscoat  # noqa: E402

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def _fixed_epochs(name, epochs):
    """The preset with a stop rule that does not fire, so every restart runs exactly ``epochs`` epochs
    (the SGD rules still evaluate their product over the training set every epoch)."""
    p = PRESETS[name]
    if p.stop == "zero_error":  # cannot be met in a few epochs from a random start on the real subset
        return p.override(max_epochs=epochs)
    return p.override(stop_threshold=0.0, max_epochs=epochs)


def macs_per_epoch(p, P, N, R):
    """Multiply-adds of one epoch of preset p with R restarts (see the module docstring)."""
    nb = math.ceil(P / p.batch_size)
    per_network_step = 2 * P / nb * N * p.K  # two products of B·N·K (B = P/nb on average)
    if p.algorithm == "sgd":
        return nb * per_network_step * R + P * N * p.K * R
    if p.algorithm == "rsgd":
        return nb * per_network_step * R * p.replicas
    return nb * p.inner_steps * per_network_step * R


class GemmBound:
    """The time of ``macs`` multiply-adds done as n×n by n×n GEMMs (``dtype``, torch's current threads, on
    ``device``; on a GPU timed between synchronisations, torch's default precision: no TF32)."""

    def __init__(self, dtype, n, macs, device="cpu"):
        g = torch.Generator().manual_seed(0)
        self.device = torch.device(device)
        self.a = torch.randn(n, n, generator=g).to(dtype=dtype, device=self.device)
        self.b = torch.randn(n, n, generator=g).to(dtype=dtype, device=self.device)
        self.c = torch.empty(n, n, dtype=dtype, device=self.device)
        self.reps = max(1, round(macs / n ** 3))
        self.scale = macs / (self.reps * n ** 3)
        torch.mm(self.a, self.b, out=self.c)
        self._sync()

    def _sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def __call__(self):
        self._sync()
        t0 = time.perf_counter()
        for _ in range(self.reps):
            torch.mm(self.a, self.b, out=self.c)
        self._sync()
        return (time.perf_counter() - t0) * self.scale


def timed_epochs(X, y, p, restarts, dtype, shared, threads, device, bound):
    """(median s/epoch, median bound s, median ratio) over the epochs after the first; the bound's
    GEMMs run in the progress callback right after each epoch, outside the epoch's time."""
    marks, bounds = [], []

    def progress(*_):
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize(device)
        end = time.perf_counter()
        before = torch.get_num_threads()
        torch.set_num_threads(threads)  # the trainer's own setting while it runs
        bounds.append(bound())
        torch.set_num_threads(before)
        marks.append((end, time.perf_counter()))

    train_committee(X, y, p, restarts=restarts, seed=0, dtype=dtype, shared_batches=shared, num_threads=threads,
                    device=device, progress=progress)
    per = [marks[i][0] - marks[i - 1][1] for i in range(1, len(marks))]
    ratios = [e / b for e, b in zip(per, bounds[1:])]
    return float(np.median(per)), float(np.median(bounds[1:])), float(np.median(ratios))


def epochs_to_stop(path):
    """{preset: (median, max, n converged, n not converged, their epochs, epochs reached by unfinished
    time-limited restarts)} from epochs_to_stop.csv."""
    out = {}
    if not os.path.exists(path):
        return out
    rows = {}
    with open(path) as fh:
        for r in csv.DictReader(fh):
            if not r.get("overrides"):  # the preset as it is, not a variant
                rows.setdefault(r["preset"], []).append(r)
    for name, rs in rows.items():
        conv = [int(r["epochs"]) for r in rs if r["status"] == "converged"]
        part = [int(r["epochs"]) for r in rs if r["status"] == "not converged"]  # ran to max_epochs
        cut = [int(r["epochs"]) for r in rs if r["status"] == "partial"]  # time-limited: a lower bound
        if not conv and not part:
            continue  # only partial (time-limited) runs: no epochs to stop measured
        out[name] = (float(np.median(conv)) if conv else None, max(conv) if conv else None, len(conv), len(part),
                     max(part) if part else None, max(cut) if cut else None)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--restarts", type=int, default=50)
    ap.add_argument("--epochs", type=int, default=8, help="epochs run per preset (≥ 2); the first is not timed")
    ap.add_argument("--presets", default=",".join(PRESETS))
    ap.add_argument("--dtypes", default="float32,float64")
    ap.add_argument("--batches", default="shared,own", help="shared: restarts share mini-batch sequences")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--gemm-size", type=int, default=768)
    ap.add_argument("--epochs-csv", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                                                          "epochs_to_stop.csv"))
    ap.add_argument("--fig-restarts", type=int, default=50)
    ap.add_argument("--assume", default="rsgd-slow=75800,esgd=9644",
                    help="epochs to stop assumed where none were measured, name=epochs,… (labelled)")
    ap.add_argument("--fig-cache", default=os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                                        "results", "cache", "fig1"),
                    help="a Figure 1 stage cache: the recipe estimate from its solutions' epochs ('' to skip)")
    ap.add_argument("--late-onset", type=int, default=8500,
                    help="rsgd-slow's epoch where every step's gradient is zero (Figure 1 shards: 8 100–8 500)")
    ap.add_argument("--late-epoch", type=int, default=40_000, help="where the late speed is measured")
    args = ap.parse_args()
    ds = load_dresscoat()
    X, y = ds.X_train, ds.y_train
    P, N = X.shape
    print(f"device {args.device}, torch {torch.__version__}, threads {args.threads}, CPUs {os.cpu_count()}, "
          f"P={P}, N={N}, restarts {args.restarts}, load average {os.getloadavg()[0]:.1f}", flush=True)
    print(f"{'preset':10} {'dtype':7} {'batches':7} {'s/epoch':>8} {'bound s':>8} {'ratio':>6} {'GMAC/epoch':>10} "
          f"{'GEMM GMAC/s':>11}", flush=True)
    measured = {}
    for name in args.presets.split(","):
        e = max(2, args.epochs)
        p = _fixed_epochs(name, e)
        for dname in args.dtypes.split(","):
            dtype = DTYPES[dname]
            for mode in args.batches.split(","):
                shared = mode == "shared"
                train_committee(X, y, p.override(max_epochs=2), restarts=2, seed=0, dtype=dtype,
                                shared_batches=shared, device=args.device)  # warm-up
                macs = macs_per_epoch(PRESETS[name], P, N, args.restarts)
                bound = GemmBound(dtype, args.gemm_size, macs, args.device)
                per, bsec, ratio = timed_epochs(X, y, p, args.restarts, dtype, shared, args.threads, args.device,
                                                bound)
                measured[(name, dname, mode)] = per
                print(f"{name:10} {dname:7} {mode:7} {per:8.3f} {bsec:8.3f} {ratio:6.2f} {macs / 1e9:10.2f} "
                      f"{macs / bsec / 1e9:11.1f}", flush=True)

    # estimate of Figure 1's training from the measured epochs to stop
    ets = epochs_to_stop(args.epochs_csv)
    assumed = dict(kv.split("=") for kv in args.assume.split(",") if kv)
    for dname in args.dtypes.split(","):
        for mode in args.batches.split(","):
            total, lines = 0.0, []
            for name in args.presets.split(","):
                per = measured[(name, dname, mode)] * args.fig_restarts / args.restarts
                med, mx, nconv, npart, mpart, cut = ets.get(name, (None, None, 0, 0, None, None))
                if mx is not None and npart == 0 and cut is not None and cut > mx:
                    epochs = cut
                    how = (f"measured: {nconv} stopped (median {med:.0f}, max {mx}); another had not by {cut}: "
                           f"AT LEAST {cut}")
                elif mx is not None and npart == 0:
                    epochs, how = mx, f"measured: median {med:.0f}, max {mx} of {nconv} restarts"
                elif mx is not None:
                    epochs = max(mx, PRESETS[name].max_epochs)
                    how = (f"measured: {nconv} stopped (max {mx}), {npart} did not by {mpart}: "
                           f"the batch runs to max_epochs {PRESETS[name].max_epochs}")
                elif name in assumed:
                    epochs = int(assumed[name])
                    how = f"ASSUMED {epochs} (not measured; see benchmarks/results/epochs_to_stop.md)"
                else:
                    lines.append(f"  {name:10} no epochs-to-stop data: left out")
                    continue
                total += per * epochs
                lines.append(f"  {name:10} {per:7.3f} s/epoch × {epochs:6d} epochs = {per * epochs / 3600:6.2f} h  ({how})")
            print(f"ESTIMATE of Figure 1's training, {dname}, {mode} batches, {args.fig_restarts} restarts per setting, "
                  f"one batch per setting: {total / 3600:.1f} h", flush=True)
            print("\n".join(lines), flush=True)


    if args.fig_cache and os.path.isdir(args.fig_cache):
        recipe_estimate(args, measured, X, y)


def figure_epochs(cache_dir):
    """{setting: (epochs of each restart trained, whether each converged)} from a Figure 1 stage cache."""
    import glob
    import json

    out = {}
    for f in glob.glob(os.path.join(cache_dir, "train", "*", "*.npz")):
        with np.load(f, allow_pickle=False) as z:
            meta = json.loads(str(z["__meta__"]))
        e, c = out.setdefault(meta["setting"], ([], []))
        e.append(int(meta["epochs"]))
        c.append(bool(meta["converged"]))
    return out


def late_seconds_per_epoch(X, y, cache_dir, restarts, epoch, epochs=20):
    """rsgd-slow's seconds per epoch (float64, shared batches, 1 thread) deep in its zero-gradient regime,
    from the Figure 1 solutions (benchmarks/bench_committee_late.py's state), at ``restarts`` restarts."""
    from bench_committee_late import late_run

    import localentropy.committee.train as T
    from localentropy.data import patterns_hash
    from localentropy.figures import pipeline as FP
    from localentropy.figures.cache import StageCache
    from localentropy.figures.spec import figure_spec

    spec = figure_spec("1")
    setting = next(s for s in spec.settings if s.label == "rsgd-slow")
    cache, h = StageCache(cache_dir), patterns_hash(X, y)
    ids = [r for r in range(200) if cache.has("train", FP._train_key(spec, setting, h, r))][:restarts]
    if len(ids) < restarts:
        return None
    centres = T._unit(torch.stack([torch.as_tensor(FP._load_solution(spec, setting, h, r, cache).weights)
                                   for r in ids]).double())
    Xt, yt = T._as_patterns(X, y, "cpu", torch.float64)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    run = late_run(Xt, yt, centres, setting.preset.replicas, 0.03, epoch)
    run.run_epoch()
    t = time.perf_counter()
    for _ in range(epochs):
        run.run_epoch()
    torch.set_num_threads(before)
    return (time.perf_counter() - t) / epochs, run.certified_steps / max(1, run._shared_steps)


def recipe_estimate(args, measured, X, y):
    """Figure 1 as its recipe runs it (figures.spec.train_options: float32, float64 for rSGD; shared batches),
    from the epochs its solutions took (the Figure 1 cache) and this run's seconds per epoch; rsgd-slow
    split at the epoch where its zero-gradient regime begins (``--late-onset``, read off the progress of
    Figure 1's shards) into early epochs at the measured speed and late ones at the speed measured deep
    in the regime (certified steps)."""
    from localentropy.figures.spec import train_options

    fig = figure_epochs(args.fig_cache)
    late, certified = late_seconds_per_epoch(X, y, args.fig_cache, args.fig_restarts, args.late_epoch) or (None, 0)
    total, lines = 0.0, []
    for name in args.presets.split(","):
        dname = str(train_options(PRESETS[name])["dtype"]).replace("torch.", "")
        if (name, dname, "shared") not in measured or name not in fig:
            lines.append(f"  {name:10} not measured in this run or not in the cache: left out")
            continue
        per = measured[(name, dname, "shared")] * args.fig_restarts / args.restarts
        epochs, conv = fig[name]
        used = sorted(e for e, c in zip(epochs, conv) if c)[:args.fig_restarts]
        E = max(used) if len(used) == len(epochs) else PRESETS[name].max_epochs  # a non-stopper runs to the end
        extra = len(epochs) - len(used)
        if name == "rsgd-slow" and late is not None:
            onset = min(args.late_onset, E)
            secs = per * onset + late * (E - onset)
            how = (f"{onset} epochs at {per:.3f} s, {E - onset} at {late:.4f} s (zero-gradient regime, measured "
                   f"at epoch {args.late_epoch}: {certified:.0%} of its steps certified)")
        else:
            secs = per * E
            how = f"{E} epochs at {per:.3f} s"
        if extra:  # restart ids beyond the first fig_restarts, trained in a later batch to max_epochs
            secs += per * PRESETS[name].max_epochs * extra / args.fig_restarts
            how += (f"; {extra} more restart ids tried ({sum(not c for c in conv)} of all did not stop), "
                    f"a batch run to {PRESETS[name].max_epochs} epochs")
        total += secs
        lines.append(f"  {name:10} {dname:7} {secs / 3600:5.2f} h  ({how})")
    print(f"ESTIMATE of Figure 1's training as its recipe runs it, from the epochs of its {args.fig_restarts} "
          f"solutions per setting ({args.fig_cache}): {total / 3600:.2f} h on one core, {total / 7200:.2f} h with "
          f"the restarts split over 2 cores (local energies and BP curves: bench_local_energy.py, bench_bp.py)",
          flush=True)
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    main()
