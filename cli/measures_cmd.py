"""`localentropy measures`: every flatness measure on the committed solutions of Figures 1 and 6, against test error."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from localentropy.cli.options import command_line
from localentropy.cli.progress import LazyBar, note


@click.command("measures", short_help="Flatness measures against test error (Figures 1, 6; cached).")
@click.option("--figures", "figures", default="1,6", show_default=True,
              help="Comma list of the figures whose solutions are measured (1, 6).")
@click.option("--results", "results_dir", type=click.Path(file_okay=False), default="results", show_default=True,
              help="Folder holding fig1/ and fig6/: each figure's solutions files and CSV.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="out/measures", show_default=True,
              help="Output folder: measures-summary.md, measures-solutions.csv, measures-stats.csv, figures.")
@click.option("--cache", "cache_dir", type=click.Path(file_okay=False), default=None,
              help="Cache of the measures, one file per solution [default: OUT/cache].")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Processes (one torch thread each).")
@click.option("--limit-per-setting", "limit", type=int, default=None,
              help="Only the first N solutions of each setting (N >= 2) [default: all].")
@click.option("--bootstrap", type=int, default=1000, show_default=True,
              help="Bootstrap resamples for the 95 % intervals (>= 10).")
@click.option("--beta", type=float, default=None, help="β of the surrogate loss of Eq. 8 [default: 1].")
@click.option("--omega", type=float, default=None, help="ω of the surrogate loss of Eq. 8 [default: 0.5].")
@click.option("--set", "overrides", multiple=True, metavar="MEASURE.OPTION=VALUE",
              help="Override a measure's option, e.g. hessian_trace.probes=20 or sam_sharpness.rho=0.1 (repeatable; "
                   "the value is read as JSON, else as text).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the measures and the bootstrap.")
@click.pass_context
def measures(ctx, figures, results_dir, out_dir, cache_dir, jobs, limit, bootstrap, beta, omega, overrides, seed):
    """Which flatness measure predicts generalisation? Every measure of localentropy.flatness (Hessian
    λ_max and trace, PAC-Bayes σ′ plain and magnitude-aware, SAM and adaptive sharpness) on every
    solution of the committed Figures 1 and 6, beside the figures' own Φ_LE and δE_train of the same
    weights; Pearson r, Kendall τ and Jiang et al.'s granulated τ with test error, bootstrap intervals.
    Each solution's measures are cached as soon as they are done: a rerun recomputes nothing, an
    interrupted run resumes.
    """
    import torch

    from localentropy.figures.errors import FigureError
    from localentropy.figures.measures import compute_measures, statistics, write_outputs

    chosen = [t.strip() for t in figures.split(",") if t.strip()]
    if not chosen or any(t not in ("1", "6") for t in chosen) or len(set(chosen)) != len(chosen):
        raise FigureError(f"--figures {figures!r}: expected a comma list of distinct figures among 1, 6")
    if limit is not None and limit < 2:
        raise FigureError(f"--limit-per-setting {limit}: need at least 2 solutions per setting")
    if bootstrap < 10:
        raise FigureError(f"--bootstrap {bootstrap}: need at least 10 resamples")
    if seed < 0:
        raise FigureError(f"--seed {seed}: must be >= 0")
    for name, v in (("--beta", beta), ("--omega", omega)):
        if v is not None and not (v > 0 and v < float("inf")):
            raise FigureError(f"{name} {v}: must be finite and > 0")
    options: dict = {}
    for item in overrides:
        target, sep, text = item.partition("=")
        name, dot, key = target.strip().partition(".")
        if not sep or not dot or not name or not key.strip() or not text.strip():
            raise FigureError(f"--set {item!r}: expected MEASURE.OPTION=VALUE, e.g. hessian_trace.probes=20")
        try:
            value = json.loads(text)
        except ValueError:
            value = text.strip()
        options.setdefault(name, {})[key.strip()] = value
    from localentropy.flatness.committee import try_options
    from localentropy.flatness.errors import FlatnessError

    try:
        try_options(options)
    except FlatnessError as exc:
        raise FigureError(f"--set: {exc}") from None
    results = Path(results_dir)
    for f in chosen:
        folder = results / f"fig{f}"
        if not folder.is_dir():
            raise FigureError(f"{folder}: no such folder (--results must hold fig{f}/ with its solutions and CSV)")
    out = Path(out_dir)
    cache = Path(cache_dir) if cache_dir else out / "cache"
    for folder in (out, cache):
        if folder.exists() and not folder.is_dir():
            raise FigureError(f"{folder}: exists and is not a folder")
    command = command_line(click.get_current_context())
    ctx.obj["kept"] = (f"every finished solution's measures are in the cache {cache}; rerun the same command to go "
                       f"on from there")
    torch.set_num_threads(1)
    bars = {"stage": None, "bar": None}

    def progress(done, total, detail, stage="measures"):
        if stage != bars["stage"]:
            if bars["bar"] is not None:
                bars["bar"].close()
            bars["stage"] = stage
            bars["bar"] = LazyBar(ctx.obj, desc=stage, total=total, unit="", dynamic_ncols=True, mininterval=0.5,
                                  leave=False)
            bars["bar"].start(0, total)
        bars["bar"].update_to(done, detail)

    def tell(text):
        if bars["bar"] is not None and bars["bar"].bar is not None:
            bars["bar"].bar.clear()
        note(ctx.obj, text)

    t0 = time.perf_counter()
    try:
        data = compute_measures(chosen, results, cache, jobs=jobs, limit=limit, beta=beta, omega=omega, seed=seed,
                                options=options, progress=progress, notify=tell)
        t1 = time.perf_counter()
        stats = statistics(data.records, bootstrap=bootstrap, seed=seed,
                           scopes=tuple(chosen) + (("all",) if len(chosen) > 1 else ()),
                           progress=lambda d, n, detail: progress(d, n, detail, stage=detail))
    finally:
        if bars["bar"] is not None:
            bars["bar"].close()
    wall = dict(data.wall, statistics=time.perf_counter() - t1)
    wall["total"] = time.perf_counter() - t0
    files = write_outputs(data, stats, out, command, wall, bootstrap)
    n_unique = len({r.source for r in data.records})
    click.echo(f"measures: {len(data.records)} solutions ({n_unique} distinct) of figure(s) {', '.join(chosen)}; "
               f"{wall['total']:.0f} s")
    click.echo(f"files in {out}/: " + ", ".join(f.name for f in files))
    top = stats.get("all") or stats[chosen[0]]
    by = {c.name: c for c in top["columns"]}
    best = top["ranking"][0]
    s = top["stats"][best]["psi"]
    e = by[best].expected_sign
    lo, hi = sorted((e * s.lo, e * s.hi))
    click.echo(f"best predictor of test error by granulated τ: {by[best].label}, Ψ = {e * s.estimate:+.3f} "
               f"[{lo:+.3f}, {hi:+.3f}] (oriented; n = {top['n']})")
