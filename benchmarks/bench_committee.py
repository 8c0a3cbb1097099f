"""Benchmark of the committee trainers on the real Dress/Coat subset (P = 500, N = 784, K = 9).

1. Batched restarts against a per-restart loop: the same R restarts trained for E epochs in one
   batched computation and one restart at a time (``restart_ids=[r]``); prints the throughput ratio
   (goal ≥ 10×). Both paths give the same weights (checked).
2. Seconds per epoch for each preset with 50 restarts, measured over a few epochs, and the time
   that implies for ``--extrapolate`` epochs (labelled as an extrapolation, not a measurement).

Run: .venv/bin/python benchmarks/bench_committee.py [--restarts 50] [--epochs 3] [--device cpu]
Timings on a shared machine are noisy; the ratio in (1) is measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from committee.presets import PRESETS  # noqa: E402
from committee.train import train_committee  # noqa: E402
from data import load_dresscoat  # noqa: E402


def _fixed_epochs(name, epochs):
    """The preset with a stop rule that cannot fire, so every restart runs exactly ``epochs`` epochs."""
    p = PRESETS[name]
    if p.algorithm == "sgd":
        return p.override(stop="loss", stop_threshold=0.0, max_epochs=epochs)
    return p.override(stop_threshold=0.0, max_epochs=epochs)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--restarts", type=int, default=50)
    ap.add_argument("--epochs", type=int, default=3, help="epochs timed per preset (eSGD: max(1, epochs // 3))")
    ap.add_argument("--loop-restarts", type=int, default=10, help="restarts in the batched-vs-loop comparison")
    ap.add_argument("--loop-epochs", type=int, default=3)
    ap.add_argument("--extrapolate", type=int, default=1000, help="epochs to extrapolate the per-epoch time to")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--presets", default=",".join(PRESETS))
    args = ap.parse_args()
    ds = load_dresscoat()
    X, y = ds.X_train, ds.y_train
    print(f"device {args.device}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"P={len(y)}, N={X.shape[1]}")

    # 1. batched vs per-restart loop
    for name in ("sgd-fast", "rsgd-fast"):
        p = _fixed_epochs(name, args.loop_epochs)
        R = args.loop_restarts
        t0 = time.perf_counter()
        batched = train_committee(X, y, p, restarts=R, seed=0, device=args.device)
        tb = time.perf_counter() - t0
        t0 = time.perf_counter()
        singles = [train_committee(X, y, p, restart_ids=[r], seed=0, device=args.device) for r in range(R)]
        tl = time.perf_counter() - t0
        same = max(float(np.abs(s.weights[0] - batched.weights[r]).max()) for r, s in enumerate(singles))
        print(f"[batched vs loop] {name}: {R} restarts x {args.loop_epochs} epochs: batched {tb:.2f} s, "
              f"loop {tl:.2f} s, throughput ratio {tl / tb:.1f}x (max |Δw| {same:.1e})")

    # 2. per-preset wall time for 50 restarts
    for name in args.presets.split(","):
        e = max(1, args.epochs // 3) if PRESETS[name].algorithm == "esgd" else args.epochs
        p = _fixed_epochs(name, e)
        t0 = time.perf_counter()
        train_committee(X, y, p, restarts=args.restarts, seed=0, device=args.device)
        dt = time.perf_counter() - t0
        per = dt / e
        print(f"[preset] {name}: {args.restarts} restarts, {e} epochs measured: {per:.3f} s/epoch; "
              f"EXTRAPOLATED to {args.extrapolate} epochs: {per * args.extrapolate / 60:.1f} min "
              f"(max_epochs guard {PRESETS[name].max_epochs}: {per * PRESETS[name].max_epochs / 3600:.1f} h)")


if __name__ == "__main__":
    main()
