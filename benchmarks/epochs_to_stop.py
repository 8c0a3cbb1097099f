"""Epochs to the App. B.1 stop rule, measured on the real Dress/Coat subset (paper 000, Figure 1).

For each preset asked for, trains ``--restarts`` restarts to their stop rule (or ``max_epochs``, or
until ``--budget-s`` seconds of this run are spent: then the restarts not yet stopped say ``partial``) and appends one
row per restart to ``--out`` (CSV): epochs, whether the stop rule was met, the stop quantity, the
training error and loss, β and ω of the last epoch, and, from the final weights, the number of
training patterns whose gradient is still non-zero in float64 (some hidden unit with
1 − tanh²(βλ) > 0 and f′(m) ≠ 0): 0 means nothing can move the network any more. A trace of the
stop quantity every ``--chunk`` epochs goes to ``--trace`` (for extrapolating partial runs).

Run (from the repository root; each run appends):
  .venv/bin/python benchmarks/epochs_to_stop.py --presets sgd-fast,sgd-slow --restarts 3 --seed 0
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from localentropy.committee.evaluate import solution_errors  # noqa: E402
from localentropy.committee.presets import get_preset  # noqa: E402
from localentropy.committee.train import train_committee  # noqa: E402
from localentropy.data import load_dresscoat  # noqa: E402

FIELDS = ["preset", "seed", "restart", "epochs", "status", "stop_value", "train_error", "train_loss", "test_error",
          "beta", "omega", "moving_patterns", "wall_s", "dtype", "batches", "overrides", "note"]


def moving_patterns(U, X, y, beta, omega):
    """Patterns whose contribution to the gradient is non-zero in float64, per restart (U unit-norm, (R, K, N))."""
    lam = torch.einsum("rkn,pn->rpk", U, X)
    t = torch.tanh(beta * lam)
    tp = 1 - t * t
    m = y * t.sum(-1) / math.sqrt(U.shape[-2])
    fp = torch.exp(2 * omega * m).add(1).reciprocal()
    return ((tp > 0).any(-1) & (fp > 0)).sum(-1).numpy()


def run(name, args, ds, writer, trace):
    over = dict(kv.split("=", 1) for kv in args.set) if args.set else {}
    if args.max_epochs:
        over["max_epochs"] = args.max_epochs
    p = get_preset(name, **over)
    X, y = ds.X_train, ds.y_train
    kw = dict(restarts=args.restarts, seed=args.seed, num_threads=args.threads)
    if args.dtype == "float32":
        kw["dtype"] = torch.float32
    if args.shared_batches:
        kw["shared_batches"] = True
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        ck = Path(tmp) / "run.ckpt"
        res = None
        while res is None:
            res = train_committee(X, y, p, checkpoint=ck, checkpoint_every=args.chunk,
                                  stop_after_epochs=args.chunk, **kw)
            sd = torch.load(ck, map_location="cpu", weights_only=True)
            wall = time.perf_counter() - start
            sv = np.asarray(sd["stop_value"], dtype=float)
            trace.write(f"{name},{args.seed},{int(sd['epoch'])},{wall:.1f}," + ";".join(f"{v:.4g}" for v in sv) + "\n")
            trace.flush()
            if res is None and wall > args.budget_s:
                break
        wall = time.perf_counter() - start
        if res is None:  # partial: report the checkpoint's state
            U = sd["U"].double()
            if p.algorithm == "rsgd":
                U = U.mean(0)
                U = U / U.norm(dim=-1, keepdim=True)
            e = int(sd["epoch"])
            conv = np.asarray(sd["converged"], dtype=bool)
            ep = [int(v) if c else e for v, c in zip(np.asarray(sd["epochs"]), conv)]
            rows = dict(epochs=ep, status=["converged" if c else "partial" for c in conv], stop_value=sv,
                        train_error=[float("nan")] * args.restarts, train_loss=[float("nan")] * args.restarts,
                        last=[v - 1 for v in ep])
        else:
            U = torch.as_tensor(res.weights) / math.sqrt(res.weights.shape[-1])
            rows = dict(epochs=res.epochs, status=res.status, stop_value=res.stop_value, train_error=res.train_error,
                        train_loss=res.train_loss, last=[int(e) - 1 for e in res.epochs])
    Xt, yt = torch.as_tensor(X, dtype=torch.float64), torch.as_tensor(y, dtype=torch.float64)
    test = solution_errors((U * math.sqrt(U.shape[-1])).numpy(), ds.X_test, ds.y_test)
    for r in range(args.restarts):
        t = rows["last"][r]
        beta, omega = p.beta0 * (1 + p.beta1) ** t, p.omega0 * (1 + p.omega1) ** t
        mov = int(moving_patterns(U[r:r + 1], Xt, yt, beta, omega)[0])
        writer.writerow(dict(preset=name, seed=args.seed, restart=r, epochs=int(rows["epochs"][r]),
                             status=rows["status"][r], stop_value=f"{float(rows['stop_value'][r]):.4g}",
                             train_error=f"{float(rows['train_error'][r]):.4g}",
                             train_loss=f"{float(rows['train_loss'][r]):.4g}", test_error=f"{float(test[r]):.4f}",
                             beta=f"{beta:.4g}",
                             omega=f"{omega:.4g}", moving_patterns=mov, wall_s=f"{wall:.0f}", dtype=args.dtype,
                             batches="shared" if args.shared_batches else "own", overrides=";".join(args.set),
                             note=args.note))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--presets", default="sgd-fast,sgd-slow,rsgd-fast,esgd")
    ap.add_argument("--restarts", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-epochs", type=int, default=None)
    ap.add_argument("--budget-s", type=float, default=float("inf"), help="per preset; then report partial")
    ap.add_argument("--chunk", type=int, default=200, help="epochs between trace lines")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    ap.add_argument("--shared-batches", action="store_true")
    ap.add_argument("--set", action="append", default=[], help="NAME=VALUE hyper-parameter override (repeatable)")
    ap.add_argument("--note", default="")
    ap.add_argument("--out", default="benchmarks/results/epochs_to_stop.csv")
    ap.add_argument("--trace", default="benchmarks/results/epochs_to_stop_trace.csv")
    args = ap.parse_args()
    ds = load_dresscoat()
    new = not Path(args.out).exists()
    with open(args.out, "a", newline="") as fh, open(args.trace, "a") as trace:
        writer = csv.DictWriter(fh, FIELDS)
        if new:
            writer.writeheader()
        for name in args.presets.split(","):
            run(name, args, ds, writer, trace)
            fh.flush()


if __name__ == "__main__":
    main()
