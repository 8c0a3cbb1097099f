"""`localentropy figure 1 | 6`: regenerate a figure of paper 000 (train, evaluate, BP, draw), cached and resumable."""

from __future__ import annotations

import time
from pathlib import Path

import click

from localentropy.cli.options import check_device, command_line, device_option, seed_option
from localentropy.cli.progress import LazyBar, note


@click.command("figure", short_help="Regenerate Figure 1 or 6 of paper 000 (cached, resumable).")
@click.argument("number", type=click.Choice(["1", "6"]))
@click.option("--quick", is_flag=True, help="A few-minute preview: 3 restarts, faster schedules (not the paper's settings).")
@click.option("--restarts", type=int, default=None, help="Solutions per setting [default: 50; 3 with --quick].")
@click.option("--restart-ids", default=None, help="Compute only these restart ids (e.g. 0-24): a shard; no drawing.")
@click.option("--shard", default=None, help="Compute shard i of n of the restart ids (e.g. 1/2); no drawing.")
@click.option("--settings", "setting_labels", default=None,
              help="Only these settings (comma list of labels, e.g. sgd-fast,esgd): of a shard, or a figure "
                   "of them alone.")
@click.option("--dropout", default=None, help="Figure 6: comma list of dropout probabilities [default: 0,0.1,0.2,0.3,0.5].")
@click.option("--draws", type=int, default=None, help="Noise draws per σ for the local energy [default: 200; 100 with --quick].")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Output folder [default: out/figN, out/figN-quick with --quick].")
@click.option("--cache", "cache_dir", type=click.Path(file_okay=False), default=None,
              help="Stage cache folder [default: OUT/cache]; copy it between machines to assemble shards.")
@click.option("--jobs", type=click.IntRange(min=1), default=None, help="Processes for training (a whole figure on the CPU) and BP curves [default: CPU count].")
@click.option("--from-solutions", "from_dir", type=click.Path(file_okay=False), default=None,
              help="Redraw from the figN-solutions-*.npz files in this folder (e.g. results/fig1): no training; "
                   "errors, local energies and BP curves computed afresh.")
@click.option("--methods", "methods", default=None,
              help="Panel (a)'s local-entropy estimators, a comma list, the figure's own first: is (importance "
                   "sampling), auto/amp/edge (BP) [default: is,auto].")
@click.option("--curves-per-setting", default=None,
              help="With --from-solutions: panel (a)'s curves for the first N solutions of each setting only; one N, "
                   "or one per method of --methods (e.g. 3,12) [default: all].")
@seed_option
@device_option
@click.pass_context
def figure(ctx, number, quick, restarts, restart_ids, shard, setting_labels, dropout, draws, out_dir, cache_dir, jobs,
           from_dir, methods, curves_per_setting, seed, device):
    """Regenerate Figure 1 (five committee settings) or Figure 6 (SGD fast with dropout) of paper 000.

    Every stage (training, test error, local energy, BP curves) is cached per solution under --cache,
    keyed by its inputs: a rerun recomputes nothing, an interrupted run resumes, and shards computed
    with --restart-ids or --shard (possibly on other machines) are assembled by a run without them.
    With --from-solutions, the figure is redrawn from solutions trained elsewhere (a figure's output
    folder), every stage after training computed afresh.
    """
    from localentropy.figures import (FigureError, compute_figure, figure_from_solutions, figure_spec,
                                      parse_restart_ids, shard_ids, write_outputs)
    from localentropy.figures.report import claim_verdicts, verdict_line

    check_device(device)
    if from_dir is not None:
        given = [opt for opt, value in (("--quick", quick), ("--restarts", restarts), ("--restart-ids", restart_ids),
                                        ("--shard", shard), ("--settings", setting_labels), ("--dropout", dropout))
                 if value]
        if given:
            raise FigureError(f"--from-solutions draws the solutions it finds: {', '.join(given)} does not apply")
        if ctx.get_parameter_source("seed") != click.core.ParameterSource.DEFAULT:
            raise FigureError("--from-solutions uses the seed the solutions were drawn with: --seed does not apply")
    elif curves_per_setting is not None:
        raise FigureError("--curves-per-setting applies with --from-solutions")
    if restart_ids is not None and shard is not None:
        raise FigureError("give --restart-ids or --shard, not both")
    drops = None
    if dropout is not None:
        try:
            drops = [float(t) for t in dropout.split(",") if t.strip()]
        except ValueError:
            raise FigureError(f"--dropout {dropout!r}: expected a comma list of numbers") from None
    chosen = None if methods is None else [t.strip() for t in methods.split(",") if t.strip()]
    spec = figure_spec(number, quick=quick, restarts=restarts, seed=seed, dropouts=drops, draws=draws,
                       curve_methods=chosen)
    subset = None
    if curves_per_setting is not None:
        try:
            counts = [int(t) for t in curves_per_setting.split(",")]
        except ValueError:
            raise FigureError(f"--curves-per-setting {curves_per_setting!r}: expected N or a comma list N,M") from None
        if len(counts) not in (1, len(spec.curve_methods)) or min(counts) < 2:
            raise FigureError(f"--curves-per-setting {curves_per_setting!r}: need one number ≥ 2, or one per method "
                              f"({', '.join(spec.curve_methods)})")
        subset = dict(zip(spec.curve_methods, counts * len(spec.curve_methods) if len(counts) == 1 else counts))
    ids = parse_restart_ids(restart_ids) if restart_ids is not None else (
        shard_ids(shard, spec.restarts) if shard is not None else None)
    labels = None
    if setting_labels is not None:
        labels = [t.strip() for t in setting_labels.split(",") if t.strip()]  # compute_figure checks them
    out = Path(out_dir) if out_dir else Path("out") / (f"fig{number}" + ("-quick" if quick else ""))
    if from_dir is not None:
        from localentropy.figures.pipeline import solution_files

        solution_files(from_dir, number)  # the folder holds the figure's solutions: checked before any work
    cache = Path(cache_dir) if cache_dir else out / "cache"
    for folder in (out, cache):
        if folder.exists() and not folder.is_dir():
            raise FigureError(f"{folder}: exists and is not a folder")
    command = command_line(click.get_current_context())
    ctx.obj["kept"] = (f"every finished training, local energy and curve is in the cache {cache}; rerun the same "
                       f"command to go on from there")
    bars = {"stage": None, "bar": None}

    def progress(stage, done, total, detail):
        """One bar per stage (its own count, rate and time left), replaced when the next stage starts."""
        if stage != bars["stage"]:
            if bars["bar"] is not None:
                bars["bar"].close()
            bars["stage"] = stage
            bars["bar"] = LazyBar(ctx.obj, desc=stage, total=total, unit="", dynamic_ncols=True, mininterval=0.5,
                                  leave=False)
            bars["bar"].start(done, total)  # a resumed stage starts above 0: its rate counts from there
        bars["bar"].kwargs["total"] = total
        if bars["bar"].bar is not None:
            bars["bar"].bar.total = total
        bars["bar"].update_to(done, detail)

    def tell(text):
        """A note between the bars: what a stage found in the cache, an unreadable entry set aside."""
        if bars["bar"] is not None and bars["bar"].bar is not None:
            bars["bar"].bar.clear()
        note(ctx.obj, text)

    t0 = time.perf_counter()
    try:
        if from_dir is not None:
            fd = figure_from_solutions(spec, from_dir, cache, curve_subset=subset, device=device,
                                       jobs=jobs, progress=progress, notify=tell)
        else:
            fd = compute_figure(spec, cache, restart_ids=ids, settings=labels, device=device, jobs=jobs,
                                progress=progress, notify=tell)
    finally:
        if bars["bar"] is not None:
            bars["bar"].close()
    wall = dict(fd.wall, total=time.perf_counter() - t0)
    counts = ", ".join(f"{lab}: {len(s)}" for lab, s in fd.solutions.items())
    if ids is not None:
        click.echo(f"shard done (restart ids {ids[0]}–{ids[-1]}), solutions {counts}; cached in {cache}")
        note(ctx.obj, "run without --restart-ids/--shard to assemble the figure")
        return
    files = write_outputs(fd, out, command, wall)
    click.echo(f"figure {number}: solutions {counts}; {wall['total']:.0f} s")
    click.echo(f"files in {out}/: " + ", ".join(f.name for f in files))
    by = {"is": "importance sampling", "auto": "BP"}
    line = f"verdict: {verdict_line(claim_verdicts(fd))} (Φ_LE by {by.get(spec.curve_methods[0], spec.curve_methods[0])})"
    for method in spec.curve_methods[1:]:
        line += f"; with {by.get(method, method)}'s Φ_LE: {verdict_line(claim_verdicts(fd, method=method))}"
    click.echo(line)
    click.echo(f"claims table: {out / f'fig{number}-summary.md'}")
