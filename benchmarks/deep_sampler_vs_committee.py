"""The general local-entropy sampler for any network (`entropic.local_entropy`, elliptical slice moves) at the
size users measure, against the committee estimators on the same real solutions.

A Figure-1 solution (K = 9 sign units over the N = 784 pixels: 7 056 weights, 500 real training patterns) is
written as an `nn.Module` (a bias-free `nn.Linear` and the sign vote), so the general sampler sees exactly the
constraint the committee estimators see: every training pattern stays classified under the perturbation.
Each hidden unit is rescaled to ‖w_k‖² = N first, the committee estimators' convention, so that Δ means the
same thing to all. Per solution and Δ the script prints φ_G of the general sampler (± its s.e.), of the
importance sampler (the committee default, checked against plain MC in committee_estimator_vs_mc.py), of the
HMC sampler (optional) and of plain MC where it has ≥ --min-hits hits, the general sampler's distance to the
importance sampler in % and in combined s.e., and the wall time of each curve (an accuracy check, not a
speed benchmark: bench_deep_local_entropy.py times the sampler against its bound).

Run: taskset -c 1 .venv/bin/python benchmarks/deep_sampler_vs_committee.py [--solutions sgd-fast:0,esgd:0]
     [--chains 64] [--moves 2] [--hmc] [--json benchmarks/results/deep_sampler_vs_committee.json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from localentropy import bp
from localentropy.committee.curves import committee_curve
from localentropy.data import load_dresscoat
from localentropy.entropic import committee_direct_monte_carlo, committee_local_entropy, local_entropy

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


class SignCommittee(nn.Module):
    """K sign units on the whole input, and their majority vote (sign(0) = +1, as the committee code)."""

    def __init__(self, W: np.ndarray):
        super().__init__()
        K, N = W.shape
        self.hidden = nn.Linear(N, K, bias=False).double()
        with torch.no_grad():
            self.hidden.weight.copy_(torch.as_tensor(W, dtype=torch.float64))

    def forward(self, x):
        h = self.hidden(x)
        return torch.where(h >= 0, 1.0, -1.0).to(h.dtype).sum(dim=1)


def _f(x):
    return None if x is None or not math.isfinite(float(x)) else float(x)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--solutions", default="sgd-fast:0,sgd-slow:0,esgd:0")
    ap.add_argument("--points", type=int, default=16, help="prior widths Δ_j = (j/points)², as the figures")
    ap.add_argument("--chains", type=int, default=64)
    ap.add_argument("--moves", type=int, default=2)
    ap.add_argument("--hmc", action="store_true", help="also the committee's HMC sampler (minutes per curve)")
    ap.add_argument("--direct", type=int, default=40_000, help="plain Monte Carlo draws")
    ap.add_argument("--min-hits", type=int, default=100)
    ap.add_argument("--json", default=str(HERE / "results" / "deep_sampler_vs_committee.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    ds = load_dresscoat()
    X, y = ds.X_train.astype(np.float64), ds.y_train.astype(np.float64)
    deltas = bp.default_deltas(args.points)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; 1 torch thread; {len(deltas)} Δ from "
          f"{deltas[0]:.4g} to {deltas[-1]:.4g}; general sampler: {args.chains} chains, {args.moves} moves", flush=True)
    out = {"deltas": deltas.tolist(), "chains": args.chains, "moves": args.moves, "results": {}}
    for spec in args.solutions.split(","):
        setting, restart = spec.split(":")
        W = np.load(ROOT / "results" / "fig1" / f"fig1-solutions-{setting}.npz", allow_pickle=False)["weights"]
        W = np.asarray(W[int(restart)], dtype=np.float64)
        K, N = W.shape
        W = W * np.sqrt(N / np.sum(W ** 2, axis=1, keepdims=True))  # ‖w_k‖² = N, the committee convention
        model = SignCommittee(W)
        wrong = int((model(torch.as_tensor(X)).numpy() * y <= 0).sum())
        if wrong:
            print(f"\n{setting} #{restart}: misclassifies {wrong} training patterns; skipped (hard constraint)")
            continue
        t = time.perf_counter()
        g = local_entropy(model, torch.as_tensor(X), torch.as_tensor(y), deltas, chains=args.chains, moves=args.moves,
                          seed=0)
        t_g = time.perf_counter() - t
        t = time.perf_counter()
        c = committee_curve(W, X, y, deltas, method="is", seed=0)
        t_c = time.perf_counter() - t
        h, t_h = None, math.nan
        if args.hmc:
            t = time.perf_counter()
            h = committee_local_entropy(W, X, y, deltas, chains=256, seed=0)
            t_h = time.perf_counter() - t
        mc = committee_direct_monte_carlo(W, X, y, deltas, samples=args.direct, batch=2000, seed=0)
        print(f"\n{setting} #{restart}: n = {K * N} weights, {len(X)} patterns; seconds per curve: general sampler "
              f"{t_g:.1f}, importance sampler {t_c:.1f}" + (f", HMC {t_h:.1f}" if h is not None else ""), flush=True)
        print(f"{'Δ':>7} {'general ± se':>22} {'importance ± se':>22} {'HMC ± se':>22} {'plain MC (hits)':>26} "
              f"{'general vs IS':>16}")
        rows = []
        for j, D in enumerate(deltas):
            gv = g.phi_G[j] if j < len(g.phi_G) else math.nan
            gs = g.phi_G_se[j] if j < len(g.phi_G_se) else math.nan
            z = (gv - c.phi_G[j]) / math.hypot(gs, c.phi_G_se[j]) if math.isfinite(gv) else math.nan
            rel = gv / c.phi_G[j] - 1 if math.isfinite(gv) else math.nan
            hs = f"{h.phi_G[j]:.4e}±{h.phi_G_se[j]:.1e}" if h is not None and j < len(h.phi_G) else ""
            ms = f"{mc.phi_G[j]:.4e}±{mc.phi_G_se[j]:.1e} ({mc.hits[j]})" if mc.hits[j] >= args.min_hits else \
                f"— ({mc.hits[j]})"
            print(f"{D:7.4f} {gv:12.4e}±{gs:.1e} {c.phi_G[j]:12.4e}±{c.phi_G_se[j]:.1e} {hs:>22} {ms:>26} "
                  f"{100 * rel:+7.1f}% {z:+5.1f}σ")
            rows.append({"Delta": float(D), "general": _f(gv), "general_se": _f(gs), "is": _f(c.phi_G[j]),
                         "is_se": _f(c.phi_G_se[j]), "hmc": _f(h.phi_G[j]) if h is not None and j < len(h.phi_G)
                         else None, "mc": _f(mc.phi_G[j]) if mc.hits[j] >= args.min_hits else None,
                         "mc_hits": int(mc.hits[j])})
        out["results"][spec] = {"points": rows, "seconds": {"general": t_g, "is": t_c, "hmc": _f(t_h)}}
        Path(args.json).write_text(json.dumps(out, indent=1))
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
