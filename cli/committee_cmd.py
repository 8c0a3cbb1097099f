"""`localentropy train | eval | energy`: thin shells around `committee.pipeline`, `committee.tables`
and `committee.plots`. Results go to stdout whatever -q says; progress and notes to stderr."""

from __future__ import annotations

import math
from pathlib import Path

import click

from localentropy.cli.options import check_device, check_output, device_option, out_option, plot_option, seed_option
from localentropy.cli.progress import LazyBar, note

_data_option = click.option(
    "--data", "data_path", type=click.Path(dir_okay=False), default=None,
    help="Dress/Coat subset file [default: the one embedded in the package].",
)


def _load_data(path):
    from localentropy.data import load_dresscoat

    return load_dresscoat(path)


@click.command("train", short_help="Train committee machines with a setting of paper 000.")
@click.option("--setting", required=True, help="One of: sgd-fast, sgd-slow, rsgd-fast, rsgd-slow, esgd (App. B.1).")
@click.option("--restarts", type=click.IntRange(min=1), default=50, show_default=True,
              help="Independent restarts, trained batched.")
@seed_option
@out_option(required=True, help="Solutions file to write (.npz; written to a temporary name, then renamed).")
@device_option
@click.option("--max-epochs", type=click.IntRange(min=1), default=None,
              help="Guard: restarts not stopped by then are 'not converged'.")
@click.option("--set", "overrides", multiple=True, metavar="NAME=VALUE",
              help="Override a hyper-parameter of the setting (repeatable), e.g. --set eta=1e-3.")
@click.option("--dropout", type=float, default=None, help="Dropout probability on the hidden units' inputs (Fig. 6).")
@click.option("--checkpoint", type=click.Path(dir_okay=False), default=None,
              help="Checkpoint file [default: OUT.ckpt]; rerunning the same command resumes from it.")
@click.option("--checkpoint-every", type=click.IntRange(min=1), default=50, show_default=True,
              help="Epochs between checkpoints.")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True,
              help="CPU worker threads sharing the restarts (results agree to rounding for any value).")
@click.option("--shared-batches", is_flag=True,
              help="Restarts share mini-batch sequences (replica a of each reads sequence a): a step is a few "
                   "large matrix products, several times faster.")
@click.option("--dtype", type=click.Choice(["float64", "float32"]), default="float64", show_default=True,
              help="Arithmetic of training; float32 is about twice as fast (keep float64 for rSGD).")
@_data_option
@click.pass_context
def train(ctx, setting, restarts, seed, out, device, max_epochs, overrides, dropout, checkpoint, checkpoint_every,
          threads, shared_batches, dtype, data_path):
    """Train committee machines with one of the five settings, all restarts batched.

    The settings and the committee machine are those of paper 000 (Sec. 5, App. B.1). Prints the
    number of converged restarts and the mean training and test errors; a rerun of an interrupted
    command resumes from its checkpoint.
    """
    import torch

    from localentropy.committee.pipeline import train_solutions
    from localentropy.committee.presets import get_preset, parse_overrides

    obj = ctx.obj
    check_device(device)
    check_output(out)
    check_output(checkpoint, "--checkpoint")
    obj["kept"] = "the last complete epoch is in the checkpoint; rerun the same command to resume from it"
    changes = parse_overrides(overrides)
    if max_epochs is not None:
        changes["max_epochs"] = max_epochs
    if dropout is not None:
        changes["dropout"] = dropout
    preset = get_preset(setting, **changes)
    ds = _load_data(data_path)
    out = Path(out)
    ckpt = Path(checkpoint) if checkpoint else out.with_name(out.name + ".ckpt")
    bar = LazyBar(obj, total=preset.max_epochs, unit="epoch", desc=setting, dynamic_ncols=True, mininterval=0.5)

    def on_resume(epoch):
        note(obj, f"resuming from {ckpt} at epoch {epoch}")
        bar.start(initial=epoch)

    def progress(epoch, converged, finished, R):
        bar.update_to(epoch, postfix=f"converged {converged}/{R}")

    bar.start()
    try:
        sol = train_solutions(ds, preset, restarts=restarts, seed=seed, device=device, checkpoint=ckpt,
                              checkpoint_every=checkpoint_every, num_threads=threads, progress=progress,
                              on_resume=on_resume, shared_batches=shared_batches,
                              dtype=torch.float32 if dtype == "float32" else torch.float64)
    finally:
        bar.close()
    sol.save(out)
    if ckpt.exists():
        ckpt.unlink()
    conv = sum(s == "converged" for s in sol.status)
    epochs = sol.epochs
    click.echo(f"{setting}: {conv}/{sol.restarts} restarts converged (epochs {min(epochs)}–{max(epochs)}); "
               f"mean train error {sum(sol.train_error) / sol.restarts:.4f}, "
               f"mean test error {sum(sol.test_error) / sol.restarts:.4f}")
    note(obj, f"wrote {out}")


@click.command("eval", short_help="Training and test error of every restart.")
@click.argument("solutions", type=click.Path(dir_okay=False))
@_data_option
@out_option(help="Also write the errors table (CSV).")
@click.pass_context
def eval_(ctx, solutions, data_path, out):
    """Training and test error of every restart in a solutions file, as a table on stdout."""
    from localentropy.committee.pipeline import evaluate_solutions
    from localentropy.committee.solutions import load_solutions
    from localentropy.committee.tables import write_errors_table

    check_output(out)
    sol = load_solutions(solutions)
    err = evaluate_solutions(sol, _load_data(data_path))
    if out:
        write_errors_table(out, err)
    click.echo(f"{solutions}: setting {err.setting or '?'}, {sol.restarts} restarts, K={sol.K}, N={sol.N}")
    click.echo("restart  converged  epochs  train_error  test_error")
    for i, r in enumerate(err.restarts):
        conv = "?" if err.converged is None else ("yes" if err.converged[i] else "no")
        ep = "?" if err.epochs is None else str(err.epochs[i])
        click.echo(f"{r:7d}  {conv:>9}  {ep:>6}  {err.train_error[i]:11.4f}  {err.test_error[i]:10.4f}")
    n_conv = "?" if err.converged is None else str(sum(err.converged))
    click.echo(f"mean     train {err.train_error.mean():.4f}   test {err.test_error.mean():.4f} ± "
               f"{err.test_error_se:.4f}  (converged {n_conv}/{sol.restarts})")
    if out:
        note(ctx.obj, f"wrote {out}")


@click.command("energy", short_help="Local energy of every restart, by sampling.")
@click.argument("solutions", type=click.Path(dir_okay=False))
@click.option("--sigma-max", type=float, default=0.5, show_default=True, help="Largest relative noise σ (Eq. 4).")
@click.option("--sigmas", "n_sigmas", type=click.IntRange(min=2), default=11, show_default=True,
              help="Number of σ, equally spaced in [0, σ_max].")
@click.option("--draws", type=click.IntRange(min=2), default=1000, show_default=True,
              help="Noise draws per σ and restart.")
@seed_option
@device_option
@out_option(required=True, help="CSV of δE_train(σ) per restart and σ.")
@click.option("--summary", type=click.Path(dir_okay=False), default=None,
              help="Also write the mean over restarts per σ (CSV).")
@plot_option("δE_train vs σ")
@_data_option
@click.pass_context
def energy(ctx, solutions, sigma_max, n_sigmas, draws, seed, device, out, summary, plot, data_path):
    """Local energy δE_train(w, σ) of every restart in a solutions file, by sampling.

    δE_train is the mean increase of the training error when each weight is multiplied by 1 + σz,
    z standard normal (paper 000, Eq. 4). Prints the mean over restarts per σ.
    """
    from localentropy.committee.pipeline import sigma_grid, solution_energies
    from localentropy.committee.plots import plot_energies
    from localentropy.committee.solutions import load_solutions
    from localentropy.committee.tables import energy_summary_rows, write_energy_summary, write_energy_table

    obj = ctx.obj
    if not (math.isfinite(sigma_max) and sigma_max > 0):
        raise click.BadParameter(f"must be finite and > 0, got {sigma_max}", param_hint="--sigma-max")
    check_device(device)
    for path, option in ((out, "--out"), (summary, "--summary"), (plot, "--plot")):
        check_output(path, option)
    sol = load_solutions(solutions)
    ds = _load_data(data_path)
    bar = LazyBar(obj, unit="restart", desc="local energy", dynamic_ncols=True)
    bar.start(total=sol.restarts)
    try:
        prof = solution_energies(sol, ds, sigma_grid(sigma_max, n_sigmas), draws=draws, seed=seed, device=device,
                                 progress=lambda done, R: bar.update_to(done))
    finally:
        bar.close()
    write_energy_table(out, prof)
    if summary:
        write_energy_summary(summary, prof)
    if plot:
        plot_energies(prof, plot)
    click.echo(f"{'sigma':>7}  {'δE_train (mean)':>15}  {'se':>8}")
    for row in energy_summary_rows(prof):
        click.echo(f"{row['sigma']:7.4g}  {row['delta_error_mean']:15.5f}  {row['delta_error_se']:8.5f}")
    note(obj, "wrote " + ", ".join(str(p) for p in (out, summary, plot) if p))
