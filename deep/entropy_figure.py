"""The local-entropy figure of the CPU-scale evidence (`deep evidence-local-entropy`): Φ_LE(d) per method for paper
002's MLP on Fashion-MNIST, over all weights and over each layer, beside δE_train(σ) of the same networks.

``evidence_local_entropy(runs_dir, ...)`` estimates φ_G(Δ), δ(Δ) and Φ_LE(d) by sampling
(``entropic.local_entropy`` through ``deep.local_entropy.run_local_entropy``) around the final network of
every (method, seed) run that ``localentropy deep evidence`` left under ``runs_dir``, for each weight
selection (``SELECTIONS``), in relative units (Δ and d per weight, in units of each layer's mean squared
weight, as δE_train's relative σ). Each curve is kept beside its run (``local_entropy-<selection>.csv``
with a ``.json`` of its settings, and a checkpoint while it runs), so an interrupted figure resumes and
a rerun recomputes nothing. ``draw_entropy_figure`` draws the panels and writes the long CSV;
``entropy_summary`` the markdown reading.

The constraint is "no more training errors than the reference" on the run's first ``samples`` training
images: networks that fit the training set less (larger E0) are constrained less, so their Φ_LE is not
comparable with a better-fitting network's on the same footing; the summary prints E0 beside every curve.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from localentropy.data.atomic import atomic_open
from localentropy.deep.errors import DeepError
from localentropy.deep.evidence import METHODS, run_folder
from localentropy.deep.presets import METHOD_NAMES, get_preset

SELECTIONS = {"all": None, "fc1": ["fc1"], "fc2": ["fc2"], "out": ["out"]}
SELECTION_TITLES = {"all": "all weights", "fc1": "first layer (fc1)", "fc2": "second layer (fc2)",
                    "out": "output layer (out)"}
DEFAULT_DELTAS = (1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0)
COLUMNS = ("model", "method", "seed", "layers", "n", "errors_reference", "prior_delta", "phi_G", "phi_G_se", "delta",
           "delta_se", "phi", "phi_se")


def _settings(deltas, samples, chains, groups, moves, seed, stop_below) -> dict:
    return {"deltas": [float(d) for d in deltas], "samples": int(samples), "chains": int(chains),
            "groups": int(groups), "moves": int(moves), "seed": int(seed), "scale": "relative",
            "stop_below": None if stop_below is None else float(stop_below)}


def _curve_paths(folder: Path, selection: str):
    base = folder / f"local_entropy-{selection}"
    return base.with_suffix(".csv"), base.with_suffix(".json"), base.with_suffix(".ckpt.npz")


def evidence_local_entropy(runs_dir, *, model: str = "mlp2", methods=METHODS, seeds: int = 1, selections=None,
                           deltas=DEFAULT_DELTAS, samples: int = 1000, chains: int = 64, groups: int = 8,
                           moves: int = 2, stop_below=None, seed: int = 0, data=None, data_dir=None, device="cpu",
                           jobs: int = 1, threads: int = 1, progress: Optional[Callable] = None) -> list[dict]:
    """Every (method, run seed, selection) curve as long rows (``COLUMNS``); ``progress(done, total, info)``
    after each curve (curves kept from an earlier call first). Runs missing from ``runs_dir`` raise DeepError
    (run `localentropy deep evidence`). ``jobs`` > 1: the curves still to compute run in that many spawned
    processes of ``threads`` torch threads each (on a CPU, the same curves as one process computes)."""
    selections = list(SELECTIONS) if selections is None else list(selections)
    unknown = [s for s in selections if s not in SELECTIONS]
    if unknown:
        raise DeepError(f"unknown weight selection(s) {unknown}; choose from {list(SELECTIONS)}")
    deltas = [float(d) for d in deltas]
    if not deltas or any(not math.isfinite(d) or d <= 0 for d in deltas) or np.any(np.diff(deltas) <= 0):
        raise DeepError(f"deltas must be increasing, finite and > 0, got {deltas}")
    if isinstance(jobs, bool) or int(jobs) != jobs or jobs < 1:
        raise DeepError(f"jobs must be an integer ≥ 1, got {jobs}")
    folders = evidence_folders(runs_dir, model, methods, seeds)
    settings = _settings(deltas, samples, chains, groups, moves, seed, stop_below)
    tasks = [(method, s, folder, sel) for method, s, folder in folders for sel in selections]
    metas = {t: _kept_curve(t[2], t[3], settings) for t in tasks}
    total, done = len(tasks), 0

    def report(task, meta):
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total, {"method": task[0], "seed": task[1], "layers": task[3],
                                   "seconds": meta.get("seconds")})

    todo = [t for t in tasks if metas[t] is None]
    for t in tasks:
        if metas[t] is not None:
            report(t, metas[t])
    args = dict(settings=settings, data_dir=data_dir, device=device)
    if int(jobs) == 1 or len(todo) <= 1:
        for t in todo:
            if data is None:
                from localentropy.deep.datasets import load_images

                data = load_images("fashion-mnist", data_dir, device)
            metas[t] = meta = compute_curve(t[2], t[3], data=data, **args)
            report(t, meta)
    else:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed

        ctx = mp.get_context("spawn")  # fork-unsafe: torch's and the BLAS's thread pools
        with ProcessPoolExecutor(max_workers=min(int(jobs), len(todo)), mp_context=ctx) as pool:
            # the costly selections first (all weights, then the 784 × 784 layers), so the short ones fill the end
            order = sorted(todo, key=lambda t: list(SELECTIONS).index(t[3]))
            futures = {pool.submit(_curve_job, t[2], t[3], int(threads), args): t for t in order}
            for f in as_completed(futures):
                t = futures[f]
                metas[t] = meta = f.result()
                report(t, meta)
    rows = []
    for t in tasks:
        method, s, folder, sel = t
        meta = metas[t]
        with open(_curve_paths(folder, sel)[0], newline="") as fh:
            curve = [{k: float(v) for k, v in r.items()} for r in csv.DictReader(fh)]
        for r in curve:
            rows.append(dict(model=model, method=method, seed=s, layers=sel, n=meta["n"],
                             errors_reference=meta["errors_reference"], **r))
    return rows


def _kept_curve(folder: Path, sel: str, settings: dict) -> Optional[dict]:
    """The metadata of a curve computed earlier with these settings, or None (it must be computed)."""
    csv_path, meta_path, _ = _curve_paths(folder, sel)
    if not (csv_path.is_file() and meta_path.is_file()):
        return None
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        return None
    return meta if meta.get("settings") == settings else None  # other settings: recompute


def _curve_job(folder, sel, threads, args) -> dict:
    """One curve in a worker process (its own torch threads and data)."""
    import torch

    torch.set_num_threads(threads)
    return compute_curve(folder, sel, data=None, **args)


def compute_curve(folder: Path, sel: str, *, settings: dict, data=None, data_dir=None, device="cpu") -> dict:
    """Sample the curve of one run and selection; write its CSV and JSON atomically beside the run (a
    checkpoint while it runs, resumed only when started with the same settings); returns the JSON's dict."""
    from localentropy.deep.datasets import load_images
    from localentropy.deep.local_entropy import run_local_entropy

    csv_path, meta_path, ckpt = _curve_paths(folder, sel)
    if ckpt.exists() and not _checkpoint_matches(ckpt, meta_path, settings):
        ckpt.unlink()
    if data is None:
        data = load_images("fashion-mnist", data_dir, device)
    with atomic_open(meta_path.with_suffix(".pending.json"), "w") as fh:
        json.dump({"settings": settings}, fh)
    res = run_local_entropy(folder, settings["deltas"], layers=SELECTIONS[sel], scale="relative",
                            samples=settings["samples"], chains=settings["chains"], groups=settings["groups"],
                            moves=settings["moves"], seed=settings["seed"], device=device, data=data,
                            stop_below=settings["stop_below"], checkpoint=ckpt)
    curve = [dict(prior_delta=float(res.prior_delta[i]), phi_G=float(res.phi_G[i]), phi_G_se=float(res.phi_G_se[i]),
                  delta=float(res.delta[i]), delta_se=float(res.delta_se[i]), phi=float(res.phi[i]),
                  phi_se=float(res.phi_se[i]))
             for i in range(len(res.prior_delta))]
    meta = {"settings": settings, "n": int(res.n), "errors_reference": int(res.settings["errors_reference"]),
            "seconds": float(res.seconds[-1]), "stalled_at": None if math.isnan(res.stalled_at) else float(res.stalled_at)}
    with atomic_open(csv_path, "w") as fh:
        w = csv.DictWriter(fh, fieldnames=list(curve[0]))
        w.writeheader()
        w.writerows(curve)
    with atomic_open(meta_path, "w") as fh:
        json.dump(meta, fh)
    meta_path.with_suffix(".pending.json").unlink(missing_ok=True)
    ckpt.unlink(missing_ok=True)
    return meta


def evidence_folders(runs_dir, model, methods, seeds) -> list:
    """(method, seed, folder) of every finished evidence run asked for; a missing one raises DeepError."""
    from localentropy.deep.local_entropy import read_config

    out = []
    for method in methods:
        base = get_preset(f"cpu-fmnist-{model}-{method}")
        for s in range(int(seeds)):
            folder = run_folder(runs_dir, dataclasses.replace(base, seed=s))
            if not (folder / "evidence.json").is_file():
                raise DeepError(f"{folder}: no finished evidence run; run `localentropy deep evidence --models "
                                f"{model} --methods {','.join(methods)} --runs {runs_dir}` first")
            read_config(folder)
            out.append((method, s, folder))
    return out


def _checkpoint_matches(ckpt: Path, meta_path: Path, settings: dict) -> bool:
    """A checkpoint left by an interrupted curve is resumed only if it was started with the same settings."""
    pending = meta_path.with_suffix(".pending.json")
    try:
        return json.loads(pending.read_text()).get("settings") == settings
    except (OSError, ValueError):
        return False


def evidence_energies(runs_dir, *, model: str = "mlp2", methods=METHODS, seeds: int = 1) -> list[dict]:
    """δE_train(σ) of the same final networks, as their evidence runs measured it (000, Eq. 4)."""
    rows = []
    for method, s, folder in evidence_folders(runs_dir, model, methods, seeds):
        ev = json.loads((folder / "evidence.json").read_text())
        for sigma, de in sorted(ev["energy"].items(), key=lambda kv: float(kv[0])):
            rows.append(dict(model=model, method=method, seed=s, sigma=float(sigma), delta_error=float(de),
                             train_error=float(ev["train_error"]), test_error=float(ev["test_error"])))
    return rows


def _mean_se(values):
    v = np.asarray(values, dtype=np.float64)
    return float(v.mean()), (float(v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else float("nan"))


def curves_by_method(rows, selection):
    """{method: (d, Φ_LE mean, Φ_LE standard error (over seeds, or the sampler's when one seed), E0 list)}."""
    out = {}
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method and r["layers"] == selection]
        if not mine:
            continue
        deltas = sorted({r["prior_delta"] for r in mine})
        d, phi, se = [], [], []
        for D in deltas:
            at = [r for r in mine if r["prior_delta"] == D]
            md, _ = _mean_se([r["delta"] for r in at])
            mp, sp = _mean_se([r["phi"] for r in at])
            if len(at) == 1:
                sp = at[0]["phi_se"]
            d.append(md), phi.append(mp), se.append(sp)
        e0 = sorted({(r["seed"], r["errors_reference"]) for r in mine})
        out[method] = (np.array(d), np.array(phi), np.array(se), [e for _, e in e0])
    return out


def draw_entropy_figure(rows, energy_rows, out_dir, *, stem: str = "mlp-local-entropy", note: str = "") -> list[Path]:
    """The panels (Φ_LE(d) per selection, then δE_train(σ)) as PNG and PDF, and the long CSV of every number."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    selections = [s for s in SELECTIONS if any(r["layers"] == s for r in rows)]
    methods = list(dict.fromkeys(r["method"] for r in rows))
    colors = {m: plt.cm.tab10(i) for i, m in enumerate(METHODS)}
    fig, axes = plt.subplots(1, len(selections) + 1, figsize=(4.0 * (len(selections) + 1), 3.6))
    for ax, sel in zip(axes, selections):
        for method, (d, phi, se, e0) in curves_by_method(rows, sel).items():
            ax.errorbar(d, phi, yerr=np.nan_to_num(se), marker="o", ms=3, capsize=2, color=colors.get(method),
                        label=f"{METHOD_NAMES.get(method, method)} (E0 {','.join(map(str, e0))})")
        ax.set_xscale("log")
        ax.set_xlabel("d per weight (units of the layer's mean squared weight)")
        ax.set_ylabel("Φ_LE(d) per weight")
        ax.set_title(SELECTION_TITLES[sel])
        ax.legend(fontsize=6)
    ax = axes[-1]
    for method in methods:
        mine = [r for r in energy_rows if r["method"] == method]
        sig = sorted({r["sigma"] for r in mine})
        stats = [_mean_se([r["delta_error"] for r in mine if r["sigma"] == s]) for s in sig]
        ax.errorbar(sig, [m for m, _ in stats], yerr=np.nan_to_num([e for _, e in stats]), marker="o", ms=3,
                    capsize=2, color=colors.get(method), label=METHOD_NAMES.get(method, method))
    ax.set_xlabel("σ (relative noise on every weight)")
    ax.set_ylabel("δE_train(σ)")
    ax.set_title("local energy")
    ax.legend(fontsize=6)
    if note:
        fig.suptitle(note, fontsize=8)
    fig.tight_layout()
    paths = [out_dir / f"{stem}.png", out_dir / f"{stem}.pdf", out_dir / f"{stem}.csv"]
    for p in paths[:2]:
        with atomic_open(p, "wb") as fh:
            fig.savefig(fh, format=p.suffix[1:], dpi=150)
    plt.close(fig)
    with atomic_open(paths[2], "w") as fh:
        w = csv.writer(fh)
        w.writerow(("quantity",) + COLUMNS + ("sigma", "delta_error", "train_error", "test_error"))
        for r in rows:
            w.writerow(("local_entropy",) + tuple(r[c] for c in COLUMNS) + ("", "", "", ""))
        for r in energy_rows:
            w.writerow(("local_energy", r["model"], r["method"], r["seed"]) + ("",) * (len(COLUMNS) - 3)
                       + (r["sigma"], r["delta_error"], r["train_error"], r["test_error"]))
    return paths


def _at_d(d, phi, target):
    """Φ_LE interpolated (linearly in ln d) at the distance `target`; NaN outside the curve's range."""
    if target < d.min() or target > d.max():
        return float("nan")
    return float(np.interp(math.log(target), np.log(d), phi))


def entropy_summary(rows, energy_rows, *, command: str, wall: float, settings: dict, compare_d=(0.01, 0.1),
                    sampling: float | None = None) -> str:
    """The markdown reading: per selection and method, E0 and Φ_LE at the compared distances, and the
    ranking by Φ_LE (higher: wider minimum), each method against SGD, beside δE_train (lower: flatter).
    With one seed per method the error bars are the sampler's only, not the spread between trainings."""
    lines = ["# Local entropy of paper 002's MLP on Fashion-MNIST, per method and layer", "",
             f"Command: `{command}`", "",
             f"Wall time of this command: {wall:.0f} s"
             + (f"; the curves' own sampling time, summed: {sampling:.0f} s (jobs and threads in the settings "
                f"below)" if sampling else "") + ". Sampler: SMC over Δ with "
             f"elliptical slice moves (`entropic.local_entropy`), relative units, settings {json.dumps(settings)}.",
             "", "Φ_LE(d) per weight: the log-fraction of the Gaussian shell at squared distance d (per weight, in "
             "units of each layer's mean squared weight) around the final network that makes no more training "
             "errors, on the first `samples` training images, than the network itself (E0 errors). Higher Φ_LE: "
             "a wider minimum. E0 differs between methods, and a larger E0 is a looser constraint, so compare "
             "curves of similar E0.", ""]
    methods = list(dict.fromkeys(r["method"] for r in rows))
    for sel in [s for s in SELECTIONS if any(r["layers"] == s for r in rows)]:
        curves = curves_by_method(rows, sel)
        n = next(r["n"] for r in rows if r["layers"] == sel)
        lines += [f"## {SELECTION_TITLES[sel]} (n = {n:,} weights)", "",
                  "| method | E0 (per seed) | " + " | ".join(f"Φ_LE(d = {t:g})" for t in compare_d) + " |",
                  "|---|---|" + "---|" * len(compare_d)]
        for m in methods:
            if m not in curves:
                continue
            d, phi, se, e0 = curves[m]
            cells = []
            for t in compare_d:
                v = _at_d(d, phi, t)
                s = _at_d(d, se, t)
                cells.append("out of range" if math.isnan(v) else f"{v:.3g} ± {s:.2g}")
            lines.append(f"| {METHOD_NAMES.get(m, m)} | {', '.join(map(str, e0))} | " + " | ".join(cells) + " |")
        for t in compare_d:
            vals = {m: _at_d(curves[m][0], curves[m][1], t) for m in curves}
            ranked = sorted((v, m) for m, v in vals.items() if not math.isnan(v))
            if ranked:
                lines.append("")
                lines.append(f"Widest to narrowest at d = {t:g}: " + " > ".join(
                    METHOD_NAMES.get(m, m) for _, m in reversed(ranked)) + ".")
        if "sgd" in curves:
            lines += ["", "Against SGD (difference of Φ_LE, its standard error from the two curves' error bars; "
                      "'wider'/'narrower' when the difference exceeds twice it):", ""]
            for m in curves:
                if m == "sgd":
                    continue
                parts = []
                for t in compare_d:
                    a, b = _at_d(curves[m][0], curves[m][1], t), _at_d(curves["sgd"][0], curves["sgd"][1], t)
                    if math.isnan(a) or math.isnan(b):
                        continue
                    se = math.hypot(_at_d(curves[m][0], curves[m][2], t),
                                    _at_d(curves["sgd"][0], curves["sgd"][2], t))
                    word = "wider" if a - b > 2 * se else "narrower" if b - a > 2 * se else "not resolved"
                    parts.append(f"d = {t:g}: {a - b:+.3g} ± {se:.2g} ({word})")
                if parts:
                    lines.append(f"- {METHOD_NAMES.get(m, m)}: " + "; ".join(parts))
        lines.append("")
    lines += ["## Local energy of the same networks", "",
              "| method | " + " | ".join(f"δE_train(σ={s:g})" for s in sorted({r['sigma'] for r in energy_rows}))
              + " | train error | test error |",
              "|---|" + "---|" * (len({r['sigma'] for r in energy_rows}) + 2)]
    for m in methods:
        mine = [r for r in energy_rows if r["method"] == m]
        if not mine:
            continue
        cells = []
        for s in sorted({r["sigma"] for r in energy_rows}):
            mu, se = _mean_se([r["delta_error"] for r in mine if r["sigma"] == s])
            cells.append(f"{mu:.4f}" + ("" if math.isnan(se) else f" ± {se:.4f}"))
        tr = _mean_se([r["train_error"] for r in mine if r["sigma"] == mine[0]["sigma"]])[0]
        te = _mean_se([r["test_error"] for r in mine if r["sigma"] == mine[0]["sigma"]])[0]
        lines.append(f"| {METHOD_NAMES.get(m, m)} | " + " | ".join(cells) + f" | {tr:.4f} | {te:.4f} |")
    return "\n".join(lines) + "\n"


__all__ = ["SELECTIONS", "DEFAULT_DELTAS", "evidence_local_entropy", "evidence_energies", "curves_by_method",
           "draw_entropy_figure", "entropy_summary"]
