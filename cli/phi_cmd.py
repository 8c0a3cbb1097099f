"""`localentropy phi`: local-entropy curves of saved committee solutions, a thin shell around
`committee.pipeline.solution_curves`, `committee.tables.write_curves_table` and `committee.plots.plot_curves`."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import click

from localentropy.cli.options import check_output, out_option, plot_option
from localentropy.cli.progress import LazyBar, note

METHOD_CHOICES = ("is", "auto", "edge", "amp", "ep", "hmc")  # committee.curves.METHODS (no bp import at start-up)
COMPILING = "compiling BP kernels once for this machine (about a minute)…"


def parse_beta(text: str) -> float:
    try:
        beta = float(text)
    except ValueError:
        raise click.BadParameter(f"{text!r}: expected a number > 0 or inf", param_hint="--beta") from None
    if not beta > 0:
        raise click.BadParameter(f"{text!r}: must be > 0 (inf for the hard constraint)", param_hint="--beta")
    return beta


def parse_restarts(text: str | None):
    """'0,3,7' → [0, 3, 7]; None → None (all converged restarts)."""
    if text is None:
        return None
    try:
        return [int(t) for t in text.split(",") if t.strip() != ""]
    except ValueError:
        raise click.BadParameter(f"{text!r}: expected a comma list of integers", param_hint="--restarts") from None


@click.command("phi", short_help="Local-entropy curves of saved solutions (sampling, BP, EP).")
@click.argument("solutions", type=click.Path(dir_okay=False))
@click.option("--data", "data_path", type=click.Path(dir_okay=False), default=None,
              help="Patterns .npz with X (P,N) ±1 and y (P,) [default: the embedded Dress/Coat training set].")
@click.option("--deltas", default=None,
              help="Prior widths Δ (variance per weight of BP's Gaussian prior around the reference): "
                   "lo:hi:n (log grid) or a comma list, increasing [default: Δ_j = (j/30)², j = 1..30].")
@click.option("--restarts", default=None,
              help="Comma list of restart indices [default: every restart that converged in training].")
@click.option("--method", type=click.Choice(METHOD_CHOICES), default="is", show_default=True,
              help="is: EP-guided importance sampling (unbiased, error bars); BP: auto (amp, per-edge where amp "
                   "fails), amp (node level), edge (per-edge); ep: expectation propagation (hard constraint "
                   "only); hmc: sequential Monte Carlo with reflecting HMC (hard constraint only, minutes per curve).")
@click.option("--samples", type=click.IntRange(min=2), default=None,
              help="Importance draws per prior width and round for --method is (rounds are added while the effective sample size is low) [default: 256].")
@click.option("--beta", default="inf", show_default=True,
              help="Inverse temperature of the constraint (inf: every pattern must stay classified).")
@click.option("--drop-misclassified", is_flag=True,
              help="Run BP on the patterns the reference classifies correctly only: "
                   "a lower bound on the local entropy.")
@click.option("--jobs", type=click.IntRange(min=1), default=None,
              help="Parallel processes [default: min(restarts, CPU count)].")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of BP's random block schedule.")
@out_option(required=True, help="CSV of every curve point (written to a temporary name, then renamed).")
@plot_option("Φ_LE vs d")
@click.pass_context
def phi(ctx, solutions, data_path, deltas, restarts, method, samples, beta, drop_misclassified, jobs, seed, out, plot):
    """Local-entropy curves Φ_LE(d) of the restarts in SOLUTIONS, by importance sampling, BP or EP.

    SOLUTIONS is a solutions file (.npz, from `train`) or a .npy of shape (K, N) or (R, K, N).
    One curve per restart (paper 000, Sec. 4 and Fig. 1), restarts in parallel processes; restarts
    that did not converge in training are skipped unless named with --restarts. Prints, per prior
    width, the mean distance d and the mean Φ_LE over restarts.
    """
    from localentropy.committee.pipeline import load_patterns, load_references, parse_deltas, solution_curves
    from localentropy.committee.curves import LONG_GRID, ROUGH_SECONDS_PER_POINT
    from localentropy.committee.plots import plot_curves
    from localentropy.committee.tables import write_curves_table

    obj = ctx.obj
    check_output(out)
    check_output(plot, "--plot")
    grid = None if deltas is None else parse_deltas(deltas)
    beta_v = parse_beta(beta)
    named = parse_restarts(restarts)
    refs = load_references(solutions)
    X, y = (None, None) if data_path is None else load_patterns(data_path)
    jobs = jobs or max(1, min(len(named) if named else refs.weights.shape[0], os.cpu_count() or 1))
    if grid is not None and len(grid) > LONG_GRID:
        curves = len(named) if named else refs.weights.shape[0]
        minutes = ROUGH_SECONDS_PER_POINT[method] * len(grid) * curves / jobs / 60
        note(obj, f"warning: {len(grid)} prior widths per curve (the default has 30): roughly {minutes:.0f} min for "
                  f"{curves} curve(s) with --method {method} on {jobs} process(es); a shorter --deltas is faster")
    bar = LazyBar(obj, desc="phi", unit="Δ", leave=False, dynamic_ncols=True)
    parts = Path(out).parent / f".{Path(out).name}.curves"  # each finished curve, until the table is written
    obj["kept"] = "no curve had finished; nothing was kept"
    kept_line = f"the finished curves are in {parts}; rerun the same command to go on from them"

    def progress(info):
        if info["event"] == "compiling":
            note(obj, COMPILING)
        elif info["event"] == "start":
            if info["skipped"]:
                note(obj, f"skipping restart(s) {', '.join(map(str, info['skipped']))}: not converged "
                          f"(name them with --restarts to include them)")
            if info["reused"]:
                per_curve = info["total"] // len(info["restarts"])
                note(obj, f"resuming: {info['reused'] // per_curve} of {len(info['restarts'])} curves read from "
                          f"{parts}")
                obj["kept"] = kept_line
            bar.start(info["reused"], total=info["total"])
        else:
            bar.advance()

    def kept(r, result, seconds):
        obj["kept"] = kept_line

    try:
        res = solution_curves(refs, X, y, grid, restarts=named, method=method, beta=beta_v,
                              drop_misclassified=drop_misclassified, jobs=jobs, seed=seed, samples=samples,
                              progress=progress, on_curve=kept, checkpoint=parts)
    finally:
        bar.close()
    if not res.curves:
        raise click.ClickException(f"no curve computed: {next(iter(res.errors.values()))}")
    write_curves_table(out, res)
    if plot:
        plot_curves(res, plot)
    shutil.rmtree(parts, ignore_errors=True)  # the table holds every curve now
    obj["kept"] = f"{out} is written"
    for rep in res.report():
        click.echo(rep.line())
    click.echo(f"{'prior_delta':>11}  {'d (mean)':>11}  {'Φ_LE (mean)':>12}  converged")
    for row in res.summary():
        click.echo(f"{row['prior_delta']:11.4g}  {row['d_mean']:11.4g}  {row['phi_mean']:12.5g}  "
                   f"{row['converged']}/{row['restarts']}")
    note(obj, f"wrote {out}" + (f" and {plot}" if plot else ""))
    if res.errors:
        ctx.exit(1)
