"""rSGD late in its run, where every gradient coefficient is exactly zero: seconds per epoch with and
without the ZeroCertificate (committee/certificate.py), against the memory passes that remain.

The state: the rsgd-slow solutions of a Figure 1 cache (``--cache``, default results/cache/fig1; the
first ``--restarts``), each replica its centre plus a perturbation of norm ``--spread`` per unit (the
replicas of a late rsgd-slow run are that close: replica distance ~3e-3 at epoch 65 300), at the
β, ω, γ of epoch ``--epoch`` (default 65 300, where the Figure 1 runs are deep in the zero regime),
float64, shared batches, one thread, process CPU time.

- **measured**: ms per epoch over ``--epochs`` epochs, certificate off (forward product and gather
  every step, then the zero-gradient skip) and on; the weights are compared bitwise afterwards;
- **bound** for the certified epoch: its memory traffic, counted in reads and writes of arrays of the
  weights' size (per step: decay, barycenter, coupling, norm, division, and the certificate's distance
  check; per epoch: the replica distances), times the time of one such read or write (a third of an
  in-place ``add_`` of two such arrays), measured in the same run;
- **ratio** = measured / bound.

Run: .venv/bin/python benchmarks/bench_committee_late.py [--restarts 10] [--epochs 200]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the checkout: runs without an install

import torch  # noqa: E402

import localentropy.committee.train as T  # noqa: E402
from localentropy.committee.presets import get_preset  # noqa: E402
from localentropy.data import load_dresscoat, patterns_hash  # noqa: E402
from localentropy.figures import pipeline as FP  # noqa: E402
from localentropy.figures.cache import StageCache  # noqa: E402
from localentropy.figures.spec import figure_spec  # noqa: E402


def late_run(X, y, centres, replicas, spread, epoch, seed=0):
    p = get_preset("rsgd-slow")
    R = centres.shape[0]
    run = T._Run(p, X, y, list(range(R)), seed, "cpu", torch.float64, shared=True)
    g = torch.Generator().manual_seed(seed)
    U = centres.unsqueeze(0).expand(replicas, -1, -1, -1).clone()
    noise = torch.randn(U.shape, generator=g, dtype=torch.float64)
    U += spread * noise / torch.linalg.vector_norm(noise, dim=-1, keepdim=True)
    run.U = T._unit(U).contiguous()
    run.epoch = epoch
    run.step_count = epoch * run.nb
    return run


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", default="results/cache/fig1")
    ap.add_argument("--restarts", type=int, default=10)
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--epoch", type=int, default=65_300)
    ap.add_argument("--spread", type=float, default=0.03)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    ds = load_dresscoat()
    spec = figure_spec("1")
    setting = next(s for s in spec.settings if s.label == "rsgd-slow")
    cache = StageCache(args.cache)
    h = patterns_hash(ds.X_train, ds.y_train)
    ids = [r for r in range(200) if cache.has("train", FP._train_key(spec, setting, h, r))][:args.restarts]
    if not ids:
        sys.exit(f"no rsgd-slow solutions in {args.cache}")
    centres = torch.stack([torch.as_tensor(FP._load_solution(spec, setting, h, r, cache).weights) for r in ids])
    centres = T._unit(centres.double())
    X, yv = T._as_patterns(ds.X_train, ds.y_train, "cpu", torch.float64)
    p = get_preset("rsgd-slow")
    print(f"rsgd-slow, {len(ids)} restarts x {p.replicas} replicas, epoch {args.epoch}: beta {p.beta0 * (1 + p.beta1) ** args.epoch:.3g}, "
          f"omega {p.omega0 * (1 + p.omega1) ** args.epoch:.3g}; float64, shared batches, 1 thread, process CPU time")
    out = {}
    for flag in (False, True, False, True):
        T.FORWARD_CERTIFICATE = flag
        run = late_run(X, yv, centres, p.replicas, args.spread, args.epoch)
        run.run_epoch()  # warm-up (and the certificate, when on)
        t = time.process_time()
        for _ in range(args.epochs):
            run.run_epoch()
        ms = (time.process_time() - t) / args.epochs * 1e3
        out.setdefault(flag, []).append((ms, run))
    T.FORWARD_CERTIFICATE = True
    same = torch.equal(out[True][-1][1].U, out[False][-1][1].U)
    on, off = min(m for m, _ in out[True]), min(m for m, _ in out[False])
    run = out[True][-1][1]
    U = run.U
    a, b = torch.empty_like(U), torch.empty_like(U)
    a.normal_(), b.normal_()
    t = time.process_time()
    for _ in range(50):
        a.add_(b)
    one_pass = (time.process_time() - t) / 50
    # arrays of U's size read or written: per step mul_ 2, barycenter 1, add_ 2, norm 1, div_ 2, the
    # certificate's sub 3 and norm 1; per epoch the replica distances (barycenter 1, difference 3, norm 1)
    transfers = run.nb * 12 + 5
    per_array = one_pass / 3  # add_ reads two arrays and writes one
    bound = transfers * per_array * 1e3
    print(f"zero-gradient steps {run.zero_gradient_steps}, certified {run.certified_steps}, certificates {run.certifications}")
    print(f"{'':28s} {'ms/epoch':>9s}")
    print(f"{'certificate off':28s} {off:9.1f}")
    print(f"{'certificate on':28s} {on:9.1f}   ({off / on:.1f}x faster)")
    print(f"{'bound (memory traffic)':28s} {bound:9.1f}   ({transfers} reads/writes of {U.numel() * 8 / 1e6:.1f} MB at "
          f"{per_array * 1e3:.3f} ms each, from an add_ in the same run)")
    print(f"ratio on / bound: {on / bound:.2f}; weights bitwise equal with and without: {same}")


if __name__ == "__main__":
    main()
