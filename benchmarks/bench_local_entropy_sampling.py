"""The sampling estimator of local entropy (entropic.committee_sampling) against BP and plain Monte Carlo on
real committee solutions (P = 500, K = 9, N = 784, Dress/Coat; the trained Figure-1 solutions cached in
results/cache/fig1: SGD fast, SGD slow, rSGD fast, all with training error 0).

For each solution, on the same grid of prior widths (bp.default_deltas(--points), Δ up to 1, the range
of Figure 1):
1. BP: bp.local_entropy_curve (method "auto"), its wall time;
2. the sampler: entropic.committee_sampling.committee_local_entropy (SMC over Δ with exact reflecting HMC),
   φ_G, δ and s with error bars from --groups independent populations, its wall time, against the
   goal of 10 minutes per curve (≥ 15 Δ points, 2 CPU cores), printed as the bound 600 s and the ratio;
3. plain Monte Carlo (committee_direct_monte_carlo, --direct i.i.d. draws): an unbiased ground truth
   of φ_G wherever enough draws hit (≥ --min-hits), i.e. at the small Δ where Z is not tiny.
It prints, per solution and Δ, the three estimates with their standard errors, the relative differences
and the differences in units of the combined standard error, then whether the three solutions come out
in the same order by BP and by the sampler at each Δ; it writes every number to --json and the overlay
plot (φ_G(Δ) and s(d), BP lines, sampler points with error bars, plain MC open symbols) to --plot.

Timings are wall times on this machine, which may be shared (the script prints the load average).

Run: .venv/bin/python benchmarks/bench_local_entropy_sampling.py [--points 16] [--chains 256]
     [--groups 8] [--moves 2] [--direct 20000] [--solutions sgd-fast:0,sgd-slow:0,rsgd-fast:0]
     (--replot: redraw the plot from the JSON of an earlier run)
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from localentropy import bp  # noqa: E402
from localentropy.data import load_dresscoat  # noqa: E402
from localentropy.entropic import committee_sampling as cs  # noqa: E402
from localentropy.figures.cache import StageCache  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"  # the committed result files


def load_solutions(picks, root=ROOT / "results" / "cache" / "fig1"):
    """{(setting, restart): (weights (K,N), meta)} of the cached Figure-1 training results asked for."""
    cache = StageCache(root)
    out = {}
    for f in sorted(glob.glob(str(root / "train" / "*" / "*.npz"))):
        arrays, meta = cache.load("train", Path(f).stem)
        key = (meta["setting"], int(meta["restart"]))
        if key in picks:
            out[key] = (arrays["weights"], meta)
    missing = [p for p in picks if p not in out]
    if missing:
        sys.exit(f"no cached training result for {missing} under {root}")
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--solutions", default="sgd-fast:0,sgd-slow:0,rsgd-fast:0")
    ap.add_argument("--points", type=int, default=16)
    ap.add_argument("--chains", type=int, default=256)
    ap.add_argument("--groups", type=int, default=8)
    ap.add_argument("--moves", type=int, default=2)
    ap.add_argument("--keep", type=float, default=0.5)
    ap.add_argument("--direct", type=int, default=20000)
    ap.add_argument("--min-hits", type=int, default=100)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu", help="torch device of the sampler and plain MC (BP runs on the CPU)")
    ap.add_argument("--compare", help="the JSON of an earlier run (another device, say): the sampler's φ_G against "
                    "it, per Δ, in combined standard errors")
    ap.add_argument("--json", default=str(RESULTS / "local_entropy_sampling_vs_bp.json"))
    ap.add_argument("--plot", default=str(RESULTS / "local_entropy_sampling_vs_bp.png"))
    ap.add_argument("--replot", action="store_true", help="only redraw --plot from the numbers in --json")
    args = ap.parse_args(argv)
    if args.replot:
        with open(args.json) as f:
            saved = json.load(f)
        plot(saved["results"], np.asarray(saved["deltas"]), args.plot, saved["args"]["min_hits"])
        print(f"wrote {args.plot}")
        return
    torch.set_num_threads(args.threads)
    picks = [(s.split(":")[0], int(s.split(":")[1])) for s in args.solutions.split(",")]
    sols = load_solutions(picks)
    ds = load_dresscoat()
    X, y = ds.X_train, ds.y_train
    deltas = bp.default_deltas(args.points)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; torch threads {args.threads}; "
          f"grid: {args.points} points Δ = {deltas[0]:.4g} … {deltas[-1]:.4g}; chains {args.chains} in "
          f"{args.groups} groups, {args.moves} HMC trajectories per level, keep {args.keep}")
    bp.compile_kernels()
    results = {}
    for key in picks:
        W, meta = sols[key]
        name = f"{key[0]} #{key[1]}"
        assert float(meta["train_error"]) == 0.0, f"{name} is not a solution"
        t = time.perf_counter()
        curve = bp.local_entropy_curve(W, X, y, deltas)
        t_bp = time.perf_counter() - t
        t, c = time.perf_counter(), time.process_time()
        smc = cs.committee_local_entropy(W, X, y, deltas, chains=args.chains, groups=args.groups, moves=args.moves,
                                         keep=args.keep, seed=key[1], device=args.device)
        t_smc, c_smc = time.perf_counter() - t, time.process_time() - c
        t = time.perf_counter()
        direct = cs.committee_direct_monte_carlo(W, X, y, deltas, samples=args.direct, seed=1000 + key[1],
                                                 device=args.device)
        t_direct = time.perf_counter() - t
        results[name] = {"bp": curve.to_dict(), "sampler": smc.to_dict(), "direct": direct.__dict__,
                         "seconds": {"bp": t_bp, "sampler": t_smc, "sampler_cpu": c_smc, "direct": t_direct}}
        print(f"\n== {name}: BP {t_bp:.1f} s, sampler {t_smc:.1f} s wall, {c_smc:.1f} s CPU ({len(smc.levels)} levels, "
              f"{smc.reflections.mean():.1f} reflections per trajectory; bound 600 s: ratio {t_smc / 600:.2f} wall, "
              f"{c_smc / 600:.2f} CPU; load average now {os.getloadavg()[0]:.1f}), "
              f"plain MC {t_direct:.1f} s ({args.direct} draws)")
        print(f"{'Δ':>7} | {'φ_G BP':>10} {'φ_G sampler':>20} {'vs BP':>14} | {'φ_G plain MC':>20} {'vs MC':>14} | "
              f"{'δ BP':>8} {'δ sampler':>18} {'vs BP':>7} | {'s BP':>10} {'s sampler':>20}")
        for i, D in enumerate(deltas):
            pb, ps, pse = curve.phi_G[i], smc.phi_G[i], smc.phi_G_se[i]
            rel = 100 * (ps / pb - 1) if pb else math.nan
            z = (ps - pb) / pse if pse > 0 else math.nan
            ok = direct.hits[i] >= args.min_hits
            pm, pmse = direct.phi_G[i], direct.phi_G_se[i]
            zm = (ps - pm) / math.hypot(pse, pmse) if ok and pm else math.nan
            mc = f"{pm:.4e}±{pmse:.1e}" if ok else f"({direct.hits[i]} hits)"
            mcd = f"{100 * (ps / pm - 1):+5.1f}% {zm:+5.1f}σ" if ok and pm else ""
            print(f"{D:7.4f} | {pb:10.3e} {ps:10.3e}±{pse:.1e} {rel:+6.1f}% {z:+5.1f}σ | {mc:>20} {mcd:>14} | "
                  f"{curve.delta[i]:8.5f} {smc.delta[i]:8.5f}±{smc.delta_se[i]:.1e} "
                  f"{100 * (smc.delta[i] / curve.delta[i] - 1):+6.2f}% | {curve.phi[i]:10.3e} "
                  f"{smc.phi[i]:10.3e}±{smc.phi_se[i]:.1e}")
    names = list(results)
    print("\nOrder of the solutions by φ_G (flattest first) at each Δ, BP vs sampler:")
    same = 0
    for i, D in enumerate(deltas):
        ob = sorted(names, key=lambda k: -results[k]["bp"]["phi_G"][i])
        os_ = sorted(names, key=lambda k: -results[k]["sampler"]["phi_G"][i])
        same += ob == os_
        print(f"  Δ = {D:.4f}: BP {' > '.join(ob)}; sampler {' > '.join(os_)}{'' if ob == os_ else '   DIFFERENT'}")
    print(f"same order at {same} of {len(deltas)} Δ")
    if args.compare:
        compare(results, deltas, args.compare)
    with open(args.json, "w") as f:
        json.dump({"args": vars(args), "deltas": deltas.tolist(), "results": results}, f, default=_json)
    plot(results, deltas, args.plot, args.min_hits)
    print(f"wrote {args.json} and {args.plot}")


def compare(results, deltas, path):
    """This run's sampler φ_G against an earlier run's (same solutions and grid), per Δ, in units of the
    combined standard error: two independent estimates of the same numbers (another seed stream or device)."""
    with open(path) as f:
        other = json.load(f)
    if not np.allclose(other["deltas"], deltas):
        sys.exit(f"{path}: another Δ grid")
    zs = []
    print(f"\nSampler φ_G against {path} ({other['args'].get('device', 'cpu')}):")
    for name, r in results.items():
        if name not in other["results"]:
            continue
        a, b = r["sampler"], other["results"][name]["sampler"]
        both = [i for i in range(len(deltas)) if a["phi_G"][i] and b["phi_G"][i]]  # φ_G = 0: no particle lost yet
        z = [(a["phi_G"][i] - b["phi_G"][i]) / math.hypot(a["phi_G_se"][i], b["phi_G_se"][i]) for i in both]
        rel = [100 * (a["phi_G"][i] / b["phi_G"][i] - 1) for i in both]
        zs += z
        print(f"  {name}: differences {min(rel):+.1f}% … {max(rel):+.1f}%, in s.e. {min(z):+.1f} … {max(z):+.1f}")
    if zs:
        print(f"  all: {sum(abs(z) < 2 for z in zs)} of {len(zs)} within 2 s.e., rms {math.sqrt(np.mean(np.square(zs))):.2f}")


def _json(o):
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.generic):
        return o.item()
    return str(o)


def plot(results, deltas, path, min_hits):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for (name, r), color in zip(results.items(), ("C3", "C1", "C0", "C2", "C4")):
        b, s, d = r["bp"], r["sampler"], r["direct"]
        ax1.plot(deltas, -np.asarray(b["phi_G"], dtype=float), "-", color=color, label=f"{name}: BP")
        ax1.errorbar(deltas, -np.asarray(s["phi_G"]), yerr=2 * np.asarray(s["phi_G_se"]), fmt="o", ms=3,
                     color=color, label=f"{name}: sampler (±2 s.e.)")
        hits = np.asarray(d["hits"])
        ok = hits >= min_hits
        ax1.errorbar(np.asarray(deltas)[ok], -np.asarray(d["phi_G"])[ok], yerr=2 * np.asarray(d["phi_G_se"])[ok],
                     fmt="s", mfc="none", ms=6, color=color, label=f"{name}: plain MC")
        ax2.plot(np.asarray(b["delta"], dtype=float), np.asarray(b["phi"], dtype=float), "-", color=color,
                 label=f"{name}: BP")
        ax2.errorbar(s["delta"], s["phi"], yerr=2 * np.asarray(s["phi_se"]), fmt="o", ms=3, color=color,
                     label=f"{name}: sampler")
    ax1.set_xscale("log")
    ax1.set_yscale("log")
    ax1.set_ylim(bottom=1e-7)
    ax1.set_xlabel("prior width Δ")
    ax1.set_ylabel("−φ_G(Δ) (per weight)")
    ax1.set_title("Gaussian-prior free entropy")
    ax1.legend(fontsize=6)
    ax2.set_xlabel("δ = d / (K N)")
    ax2.set_ylabel("Φ_LE = s(δ) (per weight)")
    ax2.set_title("Local entropy (Figure 1 axes)")
    ax2.legend(fontsize=6)
    fig.suptitle("Committee machine, Dress/Coat (P=500, K=9, N=784): sampling estimator vs BP vs plain Monte Carlo",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=130)


if __name__ == "__main__":
    main()
