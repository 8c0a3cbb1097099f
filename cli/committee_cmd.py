"""`localentropy train | eval | energy`: train committee machines, evaluate and probe saved solutions."""

from __future__ import annotations

import math
from pathlib import Path

import click

from localentropy.cli.options import check_device, device_option, out_option, seed_option

_data_option = click.option(
    "--data", "data_path", type=click.Path(dir_okay=False), default=None,
    help="Dress/Coat subset file [default: the one embedded in the package].",
)


def _quiet(ctx) -> bool:
    return bool((ctx.obj or {}).get("quiet", False))


def _load_data(path):
    from localentropy.data import load_dresscoat

    return load_dresscoat(path)


def _check_hash(sol, ds, path):
    from localentropy.committee.errors import CommitteeError
    from localentropy.data import patterns_hash

    h = patterns_hash(ds.X_train, ds.y_train)
    if sol.patterns_hash != h:
        raise CommitteeError(f"{path}: solutions were trained on other patterns (hash {sol.patterns_hash[:12]}…, "
                             f"data has {h[:12]}…); pass the matching --data")


@click.command("train")
@click.option("--setting", required=True, help="One of: sgd-fast, sgd-slow, rsgd-fast, rsgd-slow, esgd (App. B.1).")
@click.option("--restarts", type=int, default=50, show_default=True, help="Independent restarts, trained batched.")
@seed_option
@out_option(help="Solutions file to write (.npz; written to a temporary name, then renamed).")
@device_option
@click.option("--max-epochs", type=int, default=None, help="Guard: restarts not stopped by then are 'not converged'.")
@click.option("--set", "overrides", multiple=True, metavar="NAME=VALUE",
              help="Override a hyper-parameter of the setting (repeatable), e.g. --set eta=1e-3.")
@click.option("--dropout", type=float, default=None, help="Dropout probability on the hidden units' inputs (Fig. 6).")
@click.option("--checkpoint", type=click.Path(dir_okay=False), default=None,
              help="Checkpoint file [default: OUT.ckpt]; rerunning the same command resumes from it.")
@click.option("--checkpoint-every", type=int, default=50, show_default=True, help="Epochs between checkpoints.")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True,
              help="CPU worker threads sharing the restarts (results are bitwise the same for any value).")
@_data_option
@click.pass_context
def train(ctx, setting, restarts, seed, out, device, max_epochs, overrides, dropout, checkpoint, checkpoint_every,
          threads, data_path):
    """Train a committee machine (paper 000, Sec. 5) with one of the five settings, all restarts batched."""
    from localentropy.committee.errors import CommitteeError
    from localentropy.committee.evaluate import solution_errors
    from localentropy.committee.presets import get_preset, parse_overrides
    from localentropy.committee.solutions import save_solutions
    from localentropy.committee.train import train_committee
    from localentropy.data import patterns_hash

    if out is None:
        raise CommitteeError("train needs --out, the solutions file to write")
    check_device(device)
    changes = parse_overrides(overrides)
    if max_epochs is not None:
        changes["max_epochs"] = max_epochs
    if dropout is not None:
        changes["dropout"] = dropout
    preset = get_preset(setting, **changes)
    ds = _load_data(data_path)
    out = Path(out)
    ckpt = Path(checkpoint) if checkpoint else out.with_name(out.name + ".ckpt")
    for path in (out, ckpt):  # fail before hours of training, not after
        folder = path.parent if str(path.parent) else Path(".")
        if not folder.is_dir():
            raise CommitteeError(f"{path}: folder {folder} does not exist")
    bar = None
    if not _quiet(ctx):
        from tqdm import tqdm

        bar = tqdm(total=preset.max_epochs, unit="epoch", desc=setting, dynamic_ncols=True, mininterval=0.5)

    def progress(epoch, converged, finished, R):
        if bar is not None:  # update() redraws at most every mininterval, also when the output is a log file
            bar.set_postfix_str(f"converged {converged}/{R}", refresh=False)
            bar.update(epoch - bar.n)

    try:
        res = train_committee(ds.X_train, ds.y_train, preset, restarts=restarts, seed=seed, device=device,
                              checkpoint=ckpt, checkpoint_every=checkpoint_every, progress=progress,
                              num_threads=threads)
    finally:
        if bar is not None:
            bar.close()
    test_error = solution_errors(res.weights, ds.X_test, ds.y_test)
    meta = res.metadata()
    meta.update(test_error=[float(e) for e in test_error], device=str(device),
                data={"n_train": int(len(ds.y_train)), "n_test": int(len(ds.y_test)), "provenance": ds.provenance})
    save_solutions(out, res.weights, patterns_hash(ds.X_train, ds.y_train), meta)
    if ckpt.exists():
        ckpt.unlink()
    if not _quiet(ctx):
        n = len(res.epochs)
        click.echo(f"{setting}: {int(res.converged.sum())}/{n} restarts converged "
                   f"(epochs {int(res.epochs.min())}–{int(res.epochs.max())}); "
                   f"mean train error {res.train_error.mean():.4f}, mean test error {test_error.mean():.4f}")
        click.echo(f"wrote {out}")


@click.command("eval")
@click.argument("solutions", type=click.Path(dir_okay=False))
@_data_option
@out_option(help="Optional CSV of per-restart errors.")
@click.pass_context
def eval_(ctx, solutions, data_path, out):
    """Training and test error of every restart in a solutions file."""
    import csv

    from localentropy.committee.evaluate import solution_errors
    from localentropy.committee.solutions import load_solutions

    sol = load_solutions(solutions)
    ds = _load_data(data_path)
    _check_hash(sol, ds, solutions)
    tr = solution_errors(sol.weights, ds.X_train, ds.y_train)
    te = solution_errors(sol.weights, ds.X_test, ds.y_test)
    status = sol.metadata.get("status", ["?"] * sol.restarts)
    epochs = sol.metadata.get("epochs", ["?"] * sol.restarts)
    rows = [{"restart": r, "status": status[r] if r < len(status) else "?", "epochs": epochs[r] if r < len(epochs) else "?",
             "train_error": float(tr[r]), "test_error": float(te[r])} for r in range(sol.restarts)]
    if out:
        from localentropy.data.atomic import atomic_open

        with atomic_open(out, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    if not _quiet(ctx):
        click.echo(f"{solutions}: setting {sol.metadata.get('setting', '?')}, {sol.restarts} restarts, "
                   f"K={sol.K}, N={sol.N}")
        click.echo("restart  status         epochs  train_error  test_error")
        for row in rows:
            click.echo(f"{row['restart']:7d}  {row['status']:<13}  {str(row['epochs']):>6}  "
                       f"{row['train_error']:11.4f}  {row['test_error']:10.4f}")
        se = te.std(ddof=1) / math.sqrt(len(te)) if len(te) > 1 else float("nan")
        click.echo(f"mean     train {tr.mean():.4f}   test {te.mean():.4f} ± {se:.4f}  "
                   f"(converged {sum(s == 'converged' for s in status)}/{sol.restarts})")
        if out:
            click.echo(f"wrote {out}")


@click.command("energy")
@click.argument("solutions", type=click.Path(dir_okay=False))
@click.option("--sigma-max", type=float, default=0.5, show_default=True, help="Largest relative noise σ (Eq. 4).")
@click.option("--sigmas", "n_sigmas", type=int, default=11, show_default=True, help="Number of σ in [0, σ_max].")
@click.option("--draws", type=int, default=1000, show_default=True, help="Noise draws per σ and restart.")
@seed_option
@device_option
@out_option(help="CSV of δE_train(σ) per restart plus the mean over restarts.")
@_data_option
@click.pass_context
def energy(ctx, solutions, sigma_max, n_sigmas, draws, seed, device, out, data_path):
    """Local energy δE_train(w, σ) (paper 000, Eq. 4) of every restart in a solutions file, by sampling."""
    import numpy as np

    from localentropy.committee.errors import CommitteeError
    from localentropy.committee.evaluate import local_energy_profiles
    from localentropy.committee.solutions import load_solutions

    if out is None:
        raise CommitteeError("energy needs --out, the CSV file to write")
    if not (math.isfinite(sigma_max) and sigma_max > 0):
        raise CommitteeError(f"--sigma-max must be finite and > 0, got {sigma_max}")
    if n_sigmas < 2:
        raise CommitteeError(f"--sigmas must be ≥ 2, got {n_sigmas}")
    check_device(device)
    sol = load_solutions(solutions)
    ds = _load_data(data_path)
    _check_hash(sol, ds, solutions)
    bar = None
    if not _quiet(ctx):
        from tqdm import tqdm

        bar = tqdm(total=sol.restarts, unit="restart", desc="local energy", dynamic_ncols=True)
    try:
        prof = local_energy_profiles(sol.weights, ds.X_train, ds.y_train, np.linspace(0.0, sigma_max, n_sigmas),
                                     draws=draws, seed=seed, device=device,
                                     progress=(lambda d, R: bar.update(1)) if bar is not None else None)
    finally:
        if bar is not None:
            bar.close()
    prof.write_csv(out)
    if not _quiet(ctx):
        mean = prof.delta_error.mean(0)
        click.echo("sigma   mean δE_train")
        for s, m in zip(prof.sigmas, mean):
            click.echo(f"{s:5.3f}   {m:.5f}")
        click.echo(f"wrote {out}")
