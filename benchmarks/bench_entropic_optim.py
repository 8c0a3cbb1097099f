"""Cost of the entropic optimizers against SGD on a small conv net, measured in one run.

Prints ratios (each against a baseline timed in the same run, interleaved, best of R rounds):
  * eSGD / SGD and rSGD (batched) / SGD: seconds per consumed training sample (goal ≤ 1.15×);
  * sequential replica loop / batched (vmap) replicas: speed-up of batching (goal ≥ 1.5×).
Usage: .venv/bin/python benchmarks/bench_entropic_optim.py [--steps 20] [--rounds 3] [--batch 32]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # the checkout: the benchmark runs without an install

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from localentropy.entropic import EntropySGD, Replicated, make_replicas  # noqa: E402


def small_conv_net():
    """LeNet-like SmallConvNet for 32×32×3 inputs (000, App. C.1), with BatchNorm."""
    return nn.Sequential(
        nn.Conv2d(3, 16, 5), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 5), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 5 * 5, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20, help="optimizer steps per timing")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--replicas", type=int, default=3)
    ap.add_argument("--L", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    B, y, L = args.batch, args.replicas, args.L
    X = torch.randn(512, 3, 32, 32)
    T = torch.randint(0, 10, (512,))
    pos = [0]

    def batch():
        i = pos[0]
        pos[0] = (i + B) % (512 - B)
        return X[i:i + B], T[i:i + B]

    sgd_net = small_conv_net()
    sgd = torch.optim.SGD(sgd_net.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=1e-4)
    esgd_net = small_conv_net()
    esgd = EntropySGD(esgd_net.parameters(), lr=0.5, inner_lr=0.02, L=L, gamma=0.5, noise=1e-4, alpha=0.75,
                      momentum=0.9, nesterov=True, weight_decay=1e-4, model=esgd_net)
    reps = {b: Replicated(make_replicas(small_conv_net, y, seed=0), lr=0.05, momentum=0.9, nesterov=True,
                          weight_decay=1e-4, K=10, gamma=1e-3, batched=b) for b in (True, False)}

    def closure_for(net):
        def closure():
            x, t = batch()
            loss = F.cross_entropy(net(x), t)
            loss.backward()
            return loss
        return closure

    def run_sgd(n):
        for _ in range(n):
            sgd.zero_grad()
            x, t = batch()
            F.cross_entropy(sgd_net(x), t).backward()
            sgd.step()
        return n * B

    def run_esgd(n):
        c = closure_for(esgd_net)
        outer = max(1, n // L)  # same number of gradient evaluations as SGD
        for _ in range(outer):
            esgd.step(c)
        return outer * L * B

    def run_rep(batched, n):
        rep = reps[batched]
        steps = max(1, n // y)  # same number of gradient evaluations as SGD
        for _ in range(steps):
            xs, ts = zip(*[batch() for _ in range(y)])
            rep.step(torch.stack(xs), torch.stack(ts))
        return steps * y * B

    runners = {"SGD": run_sgd, "eSGD": run_esgd, "rSGD batched": lambda n: run_rep(True, n),
               "rSGD loop": lambda n: run_rep(False, n)}
    for f in runners.values():  # warm-up
        f(args.L * y)
    best = {k: float("inf") for k in runners}
    order = list(runners)
    for r in range(args.rounds):
        for k in order[r % len(order):] + order[:r % len(order)]:  # rotate: no method always first
            f = runners[k]
            t0 = time.perf_counter()
            samples = f(args.steps * L * y // L)
            best[k] = min(best[k], (time.perf_counter() - t0) / samples)
    print(f"torch {torch.__version__}, threads {args.threads}, batch {B}, y={y}, L={L}, best of {args.rounds} rounds")
    for k, v in best.items():
        print(f"  {k:13s} {v * 1e6:9.1f} us/sample")
    r_e, r_r = best["eSGD"] / best["SGD"], best["rSGD batched"] / best["SGD"]
    r_l = best["rSGD loop"] / best["SGD"]
    r_b = best["rSGD loop"] / best["rSGD batched"]
    print(f"eSGD / SGD per sample:          {r_e:.3f}  (goal <= 1.15)")
    print(f"rSGD batched / SGD per sample:  {r_r:.3f}  (goal <= 1.15)")
    print(f"rSGD loop / SGD per sample:     {r_l:.3f}")
    print(f"replica loop / batched (vmap):  {r_b:.3f}  (goal >= 1.5) at batch {B}")
    # batching pays where per-call overhead dominates: the same comparison at a small batch
    small = max(1, B // 8)
    xs = torch.randn(y, small, 3, 32, 32)
    ts = torch.randint(0, 10, (y, small))
    t_small = {}
    for b, rep in reps.items():
        rep.step(xs, ts)
        t_small[b] = float("inf")
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            for _ in range(args.steps):
                rep.step(xs, ts)
            t_small[b] = min(t_small[b], time.perf_counter() - t0)
    print(f"replica loop / batched (vmap):  {t_small[False] / t_small[True]:.3f}  (goal >= 1.5) at batch {small}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
