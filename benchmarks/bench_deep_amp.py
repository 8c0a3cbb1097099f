"""bf16 mixed precision on the CPU: seconds per training step of `deep train` (amp=bf16) against float32 in the
same run, per model, one thread; also channels-last for the conv nets.

The baseline is the float32 step of the same model, batch and method, timed in the same process (the bound is
what bf16 has to beat: a speed-up needs the CPU's bf16 instructions, which torch reports as its CPU
capability, printed first). Each case: 3 warm-up steps, then the median of --steps timed steps of SGD on random
images of the data set's shape. Goal: none (measure, don't assume); the ratio bf16/float32 is printed.

Run: .venv/bin/python benchmarks/bench_deep_amp.py [--models mlp2:fashion-mnist,small-convnet:cifar-10,resnet18:cifar-10]
     [--batch 128] [--steps 10] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
import torch.nn.functional as F

from localentropy.deep.datasets import SHAPES
from localentropy.deep.models import build


def step_seconds(model_name, dataset, batch, steps, amp, channels_last):
    shape, classes, _, _ = SHAPES[dataset]
    torch.manual_seed(0)
    model = build(model_name, num_classes=classes, **({"in_features": shape[0] * shape[1] * shape[2]}
                                                      if model_name.startswith("mlp") else {}))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, *shape)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    t = torch.randint(0, classes, (batch,))
    times = []
    for i in range(3 + steps):
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp, cache_enabled=False):
            loss = F.cross_entropy(model(x), t)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i >= 3:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="mlp2:fashion-mnist,small-convnet:cifar-10,resnet18:cifar-10")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}, "
          f"{args.threads} thread(s), batch {args.batch}, load average {os.getloadavg()[0]:.1f}")
    print(f"{'model':>14} {'data':>14} {'float32 s/step':>15} {'bf16 s/step':>12} {'bf16/float32':>13} "
          f"{'channels-last f32':>18} {'cl/float32':>11}")
    for spec in args.models.split(","):
        name, dataset = spec.split(":")
        f32 = step_seconds(name, dataset, args.batch, args.steps, False, False)
        b16 = step_seconds(name, dataset, args.batch, args.steps, True, False)
        conv = not name.startswith("mlp")
        cl = step_seconds(name, dataset, args.batch, args.steps, False, True) if conv else float("nan")
        print(f"{name:>14} {dataset:>14} {f32:15.4f} {b16:12.4f} {b16 / f32:13.2f} {cl:18.4f} {cl / f32:11.2f}",
              flush=True)


if __name__ == "__main__":
    main()
