"""The general local-entropy sampler (entropic.local_entropy: SMC over Δ, elliptical slice moves) on paper
002's MLP (784-784-784-10, Fashion-MNIST), one curve per weight selection, against the time of its products.

For each selection it runs the curve of the evidence run's SGD network (``--run``, as `localentropy deep
evidence` left it) on ``--deltas``, with the figure's settings (250 training images, 48 chains in 4 groups, 2
moves, relative units, float32), one torch thread, and counts the products the sampler needs: with the
first selected layer as a linear map of the perturbation (entropic.first_layer) those are one product of
that layer per chain and slice move (and per resampled particle when a curve starts), L(s ⊙ ν), and per
chain evaluation (a forward pass over the images) the products of the layers after it; without it (the
general path), every perturbed layer per chain evaluation. Bound: those multiply-adds at the speed of one
(250 × 784) by (784 × 784) float32 product on the same thread, timed in the same run. Printed: process CPU
time, the bound and their ratio. The rest is the elementwise work on the chains (proposals, the first
layer's outputs base + √Δ L), the random normals of the proposals, and the unperturbed layers before the
first selected one, computed once per chunk of chains.

Run: .venv/bin/python benchmarks/bench_deep_local_entropy.py [--run out/deep-evidence/mlp2-sgd-seed0]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from localentropy.deep.local_entropy import run_local_entropy
from localentropy.entropic import module_sampling
from localentropy.entropic.first_layer import FirstLayer

LAYERS = {"fc1": ["fc1"], "fc2": ["fc2"], "out": ["out"], "all": None}
MACS = {"fc1": 784 * 784, "fc2": 784 * 784, "out": 784 * 10}  # per image
AFTER = {"all": ["fc2", "out"], "fc1": ["fc2", "out"], "fc2": ["out"], "out": []}  # after the first selected layer
FIRST = {"all": "fc1", "fc1": "fc1", "fc2": "fc2", "out": "out"}


def gemm_seconds_per_mac(samples):
    a = torch.randn(samples, 784)
    b = torch.randn(784, 784)
    a @ b
    best = float("inf")
    for _ in range(20):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return best / (samples * 784 * 784)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default="out/deep-evidence/mlp2-sgd-seed0")
    ap.add_argument("--deltas", default="1e-3,1e-2,0.1")
    ap.add_argument("--selections", default="fc2,all")
    ap.add_argument("--samples", type=int, default=250)
    ap.add_argument("--general", action="store_true", help="without the first-layer shortcut")
    args = ap.parse_args()
    if not (Path(args.run) / "model.pt").is_file():
        print(f"skipped: no trained run at {args.run} (make one with `localentropy deep evidence --models mlp2`)")
        return
    torch.set_num_threads(1)
    deltas = [float(d) for d in args.deltas.split(",")]
    count = {"evals": 0, "L": 0}
    inner_errors, inner_L = module_sampling._ModelSpace._errors, FirstLayer.L

    def counting_errors(self, ps, pre=None):
        count["evals"] += pre.shape[0] if pre is not None else next(iter(ps.values())).shape[0]
        return inner_errors(self, ps, pre)

    def counting_L(self, u, scales=None):
        count["L"] += u.shape[0]
        return inner_L(self, u, scales)

    module_sampling._ModelSpace._errors = counting_errors
    FirstLayer.L = counting_L
    if args.general:
        init = module_sampling._ModelSpace.__init__

        def general(self, *a, **k):
            init(self, *a, **{**k, "first_layer": False})
        module_sampling._ModelSpace.__init__ = general
    per_mac = gemm_seconds_per_mac(args.samples)
    print(f"{args.run}: Δ = {deltas}, {args.samples} images, 48 chains, 1 thread; "
          f"GEMM {1e-9 / per_mac:.1f} GMAC/s")
    for sel in args.selections.split(","):
        count.update(evals=0, L=0)
        t = time.process_time()
        res = run_local_entropy(args.run, deltas, layers=LAYERS[sel], scale="relative", samples=args.samples,
                                chains=48, groups=4, moves=2, seed=0, stop_below=-8.0)
        cpu = time.process_time() - t
        shortcut = res.settings["first_layer"]
        perturbed = AFTER[sel] if shortcut else [FIRST[sel]] + AFTER[sel]
        macs = (count["evals"] * sum(MACS[k] for k in perturbed) + count["L"] * MACS[FIRST[sel]]) * args.samples
        bound = macs * per_mac
        print(f"{sel:4}: CPU {cpu:6.1f} s, first layer {shortcut or 'general path'}: {count['evals']} chain "
              f"evaluations, {count['L']} first-layer products, bound {bound:6.1f} s, ratio {cpu / bound:.2f}; "
              f"φ_G = {', '.join(f'{v:.3e}' for v in res.phi_G)}", flush=True)


if __name__ == "__main__":
    main()
