"""Time the data pipeline against a training step, per data set and augmentation stack, same run, same device.

    .venv/bin/python benchmarks/bench_deep_data.py [--device cpu] [--batch-size 128] [--repeat 3]
        [--threads N] [--models small-convnet,resnet18] [--cases cifar-10:standard,...] [--data-dir D]

For each case (data set : stack) it times (a) producing a training batch (mean over consecutive batches): shuffle indices, gather
the uint8 images from the in-memory tensor, augment and normalise on the device, and (b) one training
step (forward, cross-entropy, backward, SGD with Nesterov momentum) of each model on a batch of that
shape. It prints the minimum over interleaved repeats (the machine may be shared) and the ratio
pipeline / step; the goal is ≤ 10 %. Data sets whose files are absent are replaced by uniform random
uint8 data of the real shape (marked "synthetic": the pipeline's cost does not depend on the pixel values
except for Equalize/AutoContrast's histograms, which are as costly on random data). A Fast AutoAugment
stack whose published policy is not downloaded runs a stand-in policy of the same operations (each
operation at spread levels, probability 0.5; marked "stand-in policy").
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the checkout: runs without an install

import torch  # noqa: E402

from localentropy.deep.datasets import SHAPES, load_or_synthetic  # noqa: E402
from localentropy.deep.models import build  # noqa: E402
from localentropy.deep.errors import DeepError  # noqa: E402
from localentropy.deep.fastautoaugment import RANGES  # noqa: E402
from localentropy.deep.stacks import NEEDS_POLICY, Batches, make_stack, stack_policy  # noqa: E402


def stand_in_policy():
    """Every Fast AutoAugment operation in 2-operation sub-policies at spread levels, probability 0.5."""
    names = list(RANGES)
    return [[(a, 0.5, lv), (b, 0.5, 1 - lv)] for lv in (0.1, 0.5, 0.9) for a, b in zip(names, names[1:] + names[:1])]

DEFAULT_CASES = ("fashion-mnist:none", "cifar-10:standard", "cifar-10:autoaugment", "cifar-10:pla-cifar",
                 "cifar-100:autoaugment", "stl-10:pla-stl", "tiny-imagenet:standard",
                 "tiny-imagenet:fast-autoaugment")


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


CLOCK = {"now": time.perf_counter}  # time.process_time with --clock cpu: other processes do not inflate it


def timed(fn, device):
    sync(device)
    t = CLOCK["now"]()
    fn()
    sync(device)
    return CLOCK["now"]() - t


def model_for(name, shape, classes, device):
    c, h, _ = shape
    kw = {"in_channels": c}
    if name == "small-convnet":
        kw["image_size"] = h
    return build(name, num_classes=classes, **kw).to(device)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--batches", type=int, default=10, help="consecutive batches per pipeline timing")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--models", default="small-convnet,resnet18")
    ap.add_argument("--cases", default=",".join(DEFAULT_CASES))
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--n-synthetic", type=int, default=10_000, help="images per synthetic train set")
    ap.add_argument("--clock", choices=("wall", "cpu"), default=None,
                    help="wall, or cpu (this process's CPU time) [default: cpu on the CPU with --threads 1]")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.clock is None:
        args.clock = "cpu" if args.device == "cpu" and torch.get_num_threads() == 1 else "wall"
    CLOCK["now"] = time.process_time if args.clock == "cpu" else time.perf_counter
    device = torch.device(args.device)
    models = [m for m in args.models.split(",") if m]
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch_size}, "
          f"min of {args.repeat} repeats (pipeline: mean of {args.batches} batches each), {args.clock} clock")
    header = f"{'data set':14s} {'stack':16s} {'source':10s} {'batch ms':>9s}"
    for m in models:
        header += f" {m + ' step ms':>22s} {'ratio':>7s}"
    print(header)
    worst = 0.0
    for case in args.cases.split(","):
        name, stack_name = case.split(":")
        shape, classes, _, _ = SHAPES[name]
        ds = load_or_synthetic(name, args.data_dir, device, n_train=args.n_synthetic)
        policy, note = None, ""
        if stack_name in NEEDS_POLICY:
            try:
                policy = stack_policy(stack_name, args.data_dir)
            except DeepError:
                policy, note = stand_in_policy(), " (stand-in policy)"
        stack = make_stack(stack_name, ds.mean, ds.std, shape[-1], data_dir=args.data_dir, policy=policy)
        g = torch.Generator(device=device).manual_seed(0)
        batches = Batches(ds.train_images, ds.train_labels, args.batch_size, stack, g)
        n = ds.train_images.shape[0]

        def one_batch():
            idx = torch.randint(0, n, (args.batch_size,), generator=g, device=device)
            return batches.batch(idx)

        x, y = one_batch()
        steps = {}
        for m in models:
            model = model_for(m, tuple(x.shape[1:]), classes, device)
            opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=1e-4)

            def step(model=model, opt=opt):
                opt.zero_grad(set_to_none=True)
                torch.nn.functional.cross_entropy(model(x), y).backward()
                opt.step()

            step()  # warm-up
            steps[m] = step
        one_batch()
        t_batch, t_step = [], {m: [] for m in models}
        for _ in range(args.repeat):  # the pipeline's mean over `--batches` consecutive batches: its ops are
            # drawn per image (AutoAugment's sub-policies), so one batch's cost varies
            t_batch.append(timed(lambda: [one_batch() for _ in range(args.batches)], device) / args.batches)
            for m in models:
                t_step[m].append(timed(steps[m], device))
        tb = min(t_batch)
        line = f"{name:14s} {stack_name:16s} {'synthetic' if ds.synthetic else 'real':10s} {tb * 1e3:9.1f}"
        for m in models:
            ts = min(t_step[m])
            worst = max(worst, tb / ts)
            line += f" {ts * 1e3:22.1f} {100 * tb / ts:6.1f}%"
        print(line + note, flush=True)
    print(f"worst ratio pipeline/step: {100 * worst:.1f}% (goal ≤ 10%): {'met' if worst <= 0.10 else 'NOT met'}")


if __name__ == "__main__":
    main()
