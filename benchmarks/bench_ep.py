"""EP's φ_G(Δ) (bp/ep.py, `local_entropy_curve(method="ep")`) on the real Figure-1 solutions, against plain
Monte Carlo, the sampler and BP (their numbers: benchmarks/results/local_entropy_sampling_vs_bp.json, written by
bench_local_entropy_sampling.py on the same solutions and grid), and one and three hidden units of the
SGD-fast solution with their own votes as labels (plain MC with --direct draws computed here).

Prints per solution and Δ the four estimates and their differences from plain MC (where ≥ --min-hits draws
hit) or from the sampler (elsewhere, in its standard errors); EP's wall time against a bound: the same
floating-point operations (per factorisation and unit: a Cholesky of the P×P precision, P³/3, and its
inverse, 2P³/3) done as large GEMMs, timed in the same run. Writes --json and the overlay plot --plot.

Run: .venv/bin/python benchmarks/bench_ep.py [--threads 2] [--direct 200000]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"  # the committed result files
sys.path.insert(0, str(HERE))

from bench_local_entropy_sampling import _json, load_solutions  # noqa: E402
from localentropy import bp  # noqa: E402
from localentropy.data import load_dresscoat  # noqa: E402
from localentropy.entropic import committee_sampling as cs  # noqa: E402


def gemm_seconds(flops, n=1024):
    """Seconds for ``flops`` floating-point operations as n×n float64 GEMMs (best of 3, current threads)."""
    a = torch.randn(n, n, dtype=torch.float64)
    b = torch.randn(n, n, dtype=torch.float64)
    torch.mm(a, b)
    best = math.inf
    for _ in range(3):
        t = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t)
    return flops / (2 * n ** 3 / best)


def ep_curve(W, X, y, deltas):
    t = time.perf_counter()
    c = bp.local_entropy_curve(W, X, y, deltas, method="ep")
    sec = time.perf_counter() - t
    K, P = W.shape[0], X.shape[0]
    # per unit and factorisation: Cholesky of the precision (P³/3) and its inverse (2P³/3); the LU route
    # (G singular): LU (2P³/3) and its solve with P right-hand sides (2P³)
    per = P ** 3 if c.settings["precision_route"] else (2 / 3 + 2) * P ** 3
    flops = c.settings["factorisations"] * K * per
    return c, sec, flops


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reference", default=str(RESULTS / "local_entropy_sampling_vs_bp.json"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--direct", type=int, default=200_000, help="plain MC draws for the 1- and 3-unit checks")
    ap.add_argument("--min-hits", type=int, default=100)
    ap.add_argument("--json", default=str(RESULTS / "ep_vs_sampling.json"))
    ap.add_argument("--plot", default=str(RESULTS / "ep_vs_sampling.png"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    ref = json.load(open(args.reference))
    deltas = np.asarray(ref["deltas"])
    ds = load_dresscoat()
    X, y = ds.X_train, ds.y_train
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; torch threads {args.threads}; "
          f"{len(deltas)} Δ = {deltas[0]:.4g} … {deltas[-1]:.4g}; reference {args.reference}")
    picks = [(k.split(" #")[0], int(k.split(" #")[1])) for k in ref["results"]]
    sols = load_solutions(picks)
    out, rel_mc = {}, []
    for key in picks:
        name = f"{key[0]} #{key[1]}"
        r = ref["results"][name]
        c, sec, flops = ep_curve(sols[key][0], X, y, deltas)
        bound = gemm_seconds(flops)
        out[name] = {"ep": c.to_dict(), "seconds": sec, "bound_seconds": bound}
        print(f"\n== {name}: EP {sec:.1f} s ({int(c.sweeps.sum())} sweeps, {c.settings['factorisations']} "
              f"factorisations of the K units), bound {bound:.1f} s (same flops as 1024² GEMMs), ratio "
              f"{sec / bound:.2f}; all Δ converged: {bool(c.converged.all())}")
        print(f"{'Δ':>7} | {'plain MC':>18} | {'EP':>10} {'vs MC':>7} | {'BP':>10} {'vs MC':>7} | "
              f"{'sampler':>18} {'EP vs sampler':>15} | {'δ EP':>8} {'δ sampler':>9}")
        for i, D in enumerate(deltas):
            d = r["direct"]
            ok = d["hits"][i] >= args.min_hits and d["phi_G"][i]
            e, b = c.phi_G[i], r["bp"]["phi_G"][i]
            s, se = r["sampler"]["phi_G"][i], r["sampler"]["phi_G_se"][i]
            mc = f"{d['phi_G'][i]:.3e}±{d['phi_G_se'][i]:.0e}" if ok else f"({d['hits'][i]} hits)"
            vs = lambda v: f"{100 * (v / d['phi_G'][i] - 1):+6.1f}%" if ok else ""  # noqa: E731
            if ok:
                rel_mc.append(e / d["phi_G"][i] - 1)
            zs = f"{100 * (e / s - 1):+6.1f}% {(e - s) / se:+5.1f}σ" if s and se else ""
            print(f"{D:7.4f} | {mc:>18} | {e:10.3e} {vs(e):>7} | {b:10.3e} {vs(b):>7} | {s:10.3e}±{se:.0e} "
                  f"{zs:>15} | {c.delta[i]:8.5f} {r['sampler']['delta'][i]:9.5f}")
    print("\nOrder by φ_G (flattest first), EP against the sampler:")
    same = 0
    names = list(out)
    for i, D in enumerate(deltas):
        oe = sorted(names, key=lambda k: -out[k]["ep"]["phi_G"][i])
        os_ = sorted(names, key=lambda k: -ref["results"][k]["sampler"]["phi_G"][i])
        same += oe == os_
    print(f"  same order at {same} of {len(deltas)} Δ")
    if rel_mc:
        print(f"EP against plain MC at the {len(rel_mc)} (solution, Δ) with ≥ {args.min_hits} hits: "
              f"{100 * min(rel_mc):+.1f}% … {100 * max(rel_mc):+.1f}%")

    # one and three units of SGD fast, their own committee's votes as labels: where BP's error comes from
    W = sols[("sgd-fast", 0)][0]
    small = [0.0039, 0.0156, 0.0625, 0.25, 1.0]
    units_out = {}
    for units in ([0], [0, 1, 2]):
        Wk = W[units]
        lam = X.astype(np.float64) @ Wk.T
        yk = np.where(np.where(lam >= 0, 1, -1).sum(1) >= 0, 1, -1).astype(np.int8)
        c, sec, _ = ep_curve(Wk, X, yk, small)
        b = bp.local_entropy_curve(Wk, X, yk, small)
        d = cs.committee_direct_monte_carlo(Wk, X, yk, small, samples=args.direct, seed=3)
        units_out[f"K={len(units)}"] = {"deltas": small, "ep": c.phi_G, "bp": b.phi_G, "direct": d.__dict__}
        print(f"\n== units {units} of SGD fast #0 (K = {len(units)}, labels: their own votes), EP {sec:.1f} s")
        for i, D in enumerate(small):
            ok = d.hits[i] >= args.min_hits
            pm = d.phi_G[i]
            print(f"  Δ = {D:6.4f}: plain MC " + (f"{pm:.4e}±{d.phi_G_se[i]:.0e}" if ok else f"({d.hits[i]} hits)")
                  + f" | EP {c.phi_G[i]:.4e}" + (f" ({100 * (c.phi_G[i] / pm - 1):+.1f}%)" if ok else "")
                  + f" | BP {b.phi_G[i]:.4e}" + (f" ({100 * (b.phi_G[i] / pm - 1):+.1f}%)" if ok else ""))
    with open(args.json, "w") as f:
        json.dump({"args": vars(args), "deltas": deltas.tolist(), "results": out, "units": units_out}, f,
                  default=_json)
    plot(ref, out, deltas, args.plot, args.min_hits)
    print(f"wrote {args.json} and {args.plot}")


def plot(ref, out, deltas, path, min_hits):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for (name, r), color in zip(out.items(), ("C3", "C1", "C0")):
        rr = ref["results"][name]
        ax.plot(deltas, -np.asarray(rr["bp"]["phi_G"], dtype=float), ":", color=color, label=f"{name}: BP")
        ax.plot(deltas, -np.asarray(r["ep"]["phi_G"], dtype=float), "-", color=color, label=f"{name}: EP")
        s = rr["sampler"]
        ax.errorbar(deltas, -np.asarray(s["phi_G"]), yerr=2 * np.asarray(s["phi_G_se"]), fmt="o", ms=3,
                    color=color, label=f"{name}: sampler (±2 s.e.)")
        d = rr["direct"]
        ok = np.asarray(d["hits"]) >= min_hits
        ax.plot(deltas[ok], -np.asarray(d["phi_G"])[ok], "s", mfc="none", ms=6, color=color,
                label=f"{name}: plain MC")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylim(bottom=1e-7)
    ax.set_xlabel("prior width Δ")
    ax.set_ylabel("−φ_G(Δ) (per weight)")
    ax.set_title("Dress/Coat committee (K=9): EP and BP against sampling", fontsize=9)
    ax.legend(fontsize=5.5, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=130)


if __name__ == "__main__":
    main()
