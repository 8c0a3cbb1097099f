"""`localentropy deep models | download | presets | train | sweep | eval`: architectures, data sets, training
presets, training, sweeps over a grid of settings and seeds, evaluating a trained run."""

from __future__ import annotations

import sys

import click

from localentropy.cli.options import check_device, command_line, device_option, seed_option
from localentropy.cli.progress import LazyBar, note


def model_table() -> list[dict]:
    """One row per registered architecture: our parameter count for its data set, the published count
    and ours at the published number of classes (counted on the meta device: no memory, no forward pass)."""
    import torch

    from localentropy.deep.models import ARCHITECTURES, build, count_parameters

    rows = []
    for name, arch in ARCHITECTURES.items():
        with torch.device("meta"):
            ours = count_parameters(build(name))
            pub = arch.published
            at_pub = count_parameters(build(name, num_classes=pub.num_classes)) if pub else None
        rows.append({"name": name, "input": "x".join(map(str, arch.input_shape)), "classes": arch.num_classes,
                     "params": ours, "published": pub, "params_at_published": at_pub,
                     "description": arch.description})
    return rows


@click.group(short_help="Deep-net architectures, data sets and training.")
def deep():
    """Deep-net architectures, image data sets and training presets (paper 000 Table 1, paper 002 Sec. 4-5)."""


@deep.command()
@click.option("--sources", is_flag=True, help="Also print where each published count comes from.")
def models(sources):
    """List the architectures with their parameter counts beside the published ones."""
    rows = model_table()
    click.echo(f"{'name':16s} {'input':10s} {'classes':>7s} {'params':>12s}   {'published (classes)':>20s} "
               f"{'ours there':>12s} {'diff':>7s}")
    for r in rows:
        pub = r["published"]
        if pub is None:
            tail = f"{'-':>20s} {'':>12s} {'':>7s}"
        else:
            diff = 100 * (r["params_at_published"] / pub.params - 1)
            tail = f"{pub.source.split(',')[0] + f' ({pub.num_classes})':>20s} {r['params_at_published']:>12,d} {diff:>+6.2f}%"
        click.echo(f"{r['name']:16s} {r['input']:10s} {r['classes']:>7d} {r['params']:>12,d}   {tail}")
        if sources:
            click.echo(f"    {r['description']}" + (f"; published: {pub.source}" if pub else "; no published count (layer list in the paper)"))


@deep.command()
@click.argument("name", type=click.Choice(["cifar-10", "cifar-100", "stl-10", "tiny-imagenet", "fast-autoaugment"]))
@click.option("--dest", type=click.Path(file_okay=False), default=None, help="Folder to download into [default: data/raw/].")
@click.pass_obj
def download(obj, name, dest):
    """Download an image data set's official archive, verify its published MD5 and unpack it, or the
    Fast AutoAugment authors' published policies, verified by SHA-256 (needs internet)."""
    quiet = bool(obj and obj.get("quiet"))
    if name == "fast-autoaugment":
        from localentropy.deep.fastautoaugment import download_policies

        target = download_policies(dest, progress=None if quiet else click.echo)
        if not quiet:
            click.echo(f"{name}: policies ready in {target}")
        return
    from localentropy.data.archives import download_archive

    folder = download_archive(name, dest, progress=None if quiet else click.echo)
    if not quiet:
        click.echo(f"{name}: ready in {folder}")


@deep.command("presets")
@click.argument("pattern", required=False, default=None)
@click.option("--long", "long_", is_flag=True, help="Also print each preset's description.")
def presets(pattern, long_):
    """List the training presets with their settings and the paper's reported test error."""
    from localentropy.deep.presets import PRESETS, summary

    rows = [c for name, c in PRESETS.items() if pattern is None or pattern in name]
    if not rows:
        raise click.BadParameter(f"no preset name contains {pattern!r}", param_hint="PATTERN")
    width = max(len(c.name) for c in rows)
    click.echo(f"{'preset':{width}s}  {'paper err %':>11s}  settings")
    for c in rows:
        rep = c.reported if len(c.reported) <= 11 else "see --long"
        click.echo(f"{c.name:{width}s}  {rep:>11s}  {summary(c)}")
        if long_:
            click.echo(f"{'':{width}s}  {'':11s}  {c.description}" + (f"; reported: {c.reported}" if len(c.reported) > 11 else ""))


@deep.command("train")
@click.option("--preset", default=None, help="A preset name (`localentropy deep presets` lists them).")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
              help="A JSON or TOML file of fields (a run's config.json, or your own; it may name a preset); "
                   "--set applies on top. Default --out for a run's config.json: that run's folder.")
@click.option("--set", "overrides", multiple=True, metavar="NAME=VALUE",
              help="Override a preset field, e.g. --set lr=0.05 --set milestones=30,45 --set val_split=5000 "
                   "(repeatable).")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              help="Where the data set's files are [default: $LOCALENTROPY_DATA, data/raw/, system folders].")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Output folder: metrics, checkpoint, model [default: out/deep/PRESET].")
@click.option("--no-resume", is_flag=True, help="Start afresh even if --out holds a checkpoint of this run.")
@click.option("--distributed", is_flag=True,
              help="One process per replica (rSGD) or data-parallel (SGD, eSGD, SAM); launch with torchrun.")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="CPU threads of torch [default: torch's].")
@click.option("--tensorboard", "tensorboard", is_flag=True,
              help="Require TensorBoard events in OUT/tensorboard (pip install localentropy[tensorboard]); by "
                   "default they are written when TensorBoard is installed.")
@click.option("--no-tensorboard", is_flag=True, help="Do not write TensorBoard events even if it is installed.")
@device_option
@click.pass_obj
def train_cmd(obj, preset, config_file, overrides, data_dir, out, no_resume, distributed, threads, tensorboard,
              no_tensorboard, device):
    """Train a deep net with a preset of paper 000 (Table 1) or paper 002, or a configuration file;
    checkpoints every epoch, resumes; a larger epoch budget extends a finished run."""
    obj["kept"] = "no epoch had finished; nothing was kept"
    from pathlib import Path

    from localentropy.deep.presets import get_preset, with_overrides

    if tensorboard and no_tensorboard:
        raise click.UsageError("--tensorboard and --no-tensorboard exclude each other")
    if config_file is not None:
        from localentropy.deep.config import config_from_file

        config = config_from_file(config_file, preset, overrides)
    elif preset is None:
        raise click.UsageError("Missing option '--preset' (or give --config FILE).")
    else:
        config = with_overrides(get_preset(preset), overrides)
    check_device(device)
    if tensorboard:
        from localentropy.deep.metrics import TENSORBOARD_MISSING, tensorboard_available

        if not tensorboard_available():
            from localentropy.deep.errors import DeepError

            raise DeepError(TENSORBOARD_MISSING)
    if out is None and config_file is not None and Path(config_file).name == "config.json" \
            and (Path(config_file).parent / "checkpoint.pt").is_file():
        out = Path(config_file).parent  # a run's own configuration: go on in that run's folder
    if out is None:  # the default folder is created (with its parents) once the data are read
        out = Path("out") / "deep" / config.name
    else:
        out = Path(out)
        if not out.parent.is_dir():
            raise click.BadParameter(f"{out}: folder {out.parent} does not exist", param_hint="--out")
    if out.exists() and not out.is_dir():
        raise click.BadParameter(f"{out} is a file", param_hint="--out")
    import torch

    if threads:
        torch.set_num_threads(threads)
    rank = 0
    if distributed:
        from localentropy.entropic.distributed import init_from_env

        rank = init_from_env("nccl" if device.startswith("cuda") else "gloo")
    board = True if tensorboard else False if no_tensorboard else None
    try:
        _train(obj, config, data_dir, out, no_resume, distributed, board, device, rank)
    finally:
        if distributed:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()


def line_per_epoch() -> bool:
    """One line per epoch instead of a progress bar: when the output is not a terminal (a log file, a pipe)."""
    return not (sys.stdout.isatty() and sys.stderr.isatty())


def epoch_line(row: dict, epochs: int) -> str:
    """An epoch's line: epoch, training loss and error, validation error (if any), test error, seconds."""
    nan = float("nan")
    text = (f"epoch {row['epoch']}/{epochs}: train loss {row.get('train_loss', nan):.4f} "
            f"error {row.get('train_error', nan):.4f}")
    if "val_error" in row:
        text += f", val error {row['val_error']:.4f}"
    return text + f", test error {row.get('test_error', nan):.4f}, {row.get('epoch_seconds', nan):.1f} s"


def _train(obj, config, data_dir, out, no_resume, distributed, tensorboard, device, rank):
    from localentropy.deep.datasets import load_images
    from localentropy.deep.metrics import BEST_TEST_LABEL
    from localentropy.deep.stacks import stack_policy
    from localentropy.deep.presets import reports_best_test
    from localentropy.deep.train import train

    stack_policy(config.augment, data_dir)  # a downloaded augmentation policy, checked before the data load
    data = load_images(config.dataset, data_dir, device)  # missing or corrupt files: one line, exit 2
    quiet = bool(obj and obj.get("quiet")) or rank != 0
    lines = not quiet and line_per_epoch()
    bar = LazyBar({"quiet": quiet or lines}, unit="step", desc=config.name, dynamic_ncols=True)

    kept = f"the last complete epoch is in the run's checkpoint in {out}; rerun the same command to resume from it"

    def progress(event, **info):
        if event == "start":
            bar.start(info["done"], total=info["total"])
            if info["epoch"]:
                obj["kept"] = kept
            if quiet:
                return
            if info.get("extended_from") is not None:
                note(obj, f"extending run from {info['extended_from']:g} to {config.epochs:g} epochs "
                          f"(from epoch {info['epoch']}, {out})")
            elif info["epoch"]:
                note(obj, f"resuming {config.name} from epoch {info['epoch']} of {info['epochs']} ({out})")
        elif event == "step":
            bar.update_to(info["done"])
        elif event == "epoch":
            obj["kept"] = kept
            r = info["row"]
            if lines:
                note(obj, epoch_line(r, info["epochs"]))
                return
            val = f" val err {r['val_error']:.4f}" if "val_error" in r else ""
            bar.update_to(r["steps"], postfix=f"ep {r['epoch']}{val} test err {r.get('test_error', float('nan')):.4f}")

    try:
        result = train(config, data, out_dir=out, device=device, progress=progress, resume=not no_resume,
                       distributed=distributed, tensorboard=tensorboard)
    finally:
        bar.close()
    if rank != 0:
        return
    f = result.final
    if f:
        val = f", val error {f['val_error']:.4f}" if "val_error" in f else ""
        click.echo(f"{config.name}: epoch {f['epoch']}/{result.epochs}, budget {f['budget_epochs']:.4g} epochs, "
                   f"train error {f['train_error']:.4f}{val}, test error {f['test_error']:.4f} "
                   f"(paper: {config.reported or '-'})")
        b = result.best
        if b is not None:
            click.echo(f"{config.name}: best by validation: epoch {b['epoch']}, val error {b['val_error']:.4f}, "
                       f"test error {b['test_error']:.4f} (model-best.pt); last: epoch {f['epoch']}, "
                       f"test error {f['test_error']:.4f} (model.pt)")
        t = result.summary.get("best_test_during_training")
        if t:
            click.echo(f"{config.name}: {BEST_TEST_LABEL}: {100 * t['test_accuracy']:.2f} % at epoch {t['epoch']}; "
                       f"final test accuracy {100 * t['final_test_accuracy']:.2f} %"
                       + ("" if b is not None else "; --set val_split=N selects on held-out images instead"))
    wrote = ["metrics.csv", "metrics.jsonl", "model.pt"] + (["model-best.pt"] if result.best is not None else [])
    wrote += ["summary.json"] if "best_by_validation" in result.summary or reports_best_test(config) else []
    note(obj, f"wrote {out}/" + ", ".join(wrote) + (", tensorboard/" if result.tensorboard else ""))
    if result.diverged:
        click.echo(f"{config.name}: the mini-batch loss became non-finite at epoch {f['epoch']}; training stopped "
                   "(a smaller lr, or for rSGD lr*K*gamma < 2)", err=True)
        raise SystemExit(1)


@deep.command("sweep")
@click.option("--preset", default=None, help="The preset every run starts from (`localentropy deep presets`).")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
              help="A JSON or TOML file of fields (as deep train --config); --set and the grid apply on top.")
@click.option("--set", "overrides", multiple=True, metavar="NAME=VALUE",
              help="Override a field of every run, e.g. --set epochs=10 (repeatable).")
@click.option("--grid", "grids", multiple=True, metavar="NAME=V1,V2,...",
              help="A field's values, parsed as --set parses them (repeatable: the runs are every combination); "
                   "in a list-valued field + joins one value's items: --grid layers=fc1,fc2,fc1+fc2.")
@click.option("--seeds", default=None, metavar="A:B|S1,S2,...",
              help="Seeds of every grid point: 0:3 is 0, 1, 2, or a comma list [default: the configuration's seed].")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              help="Where the data set's files are [default: $LOCALENTROPY_DATA, data/raw/, system folders].")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Folder of the runs (one sub-folder each), sweep.md and sweep.csv [default: out/sweep/PRESET].")
@click.option("--no-resume", is_flag=True,
              help="Train every run afresh, even finished ones and folders of another configuration.")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Runs trained side by side, each in its own process.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="CPU threads of torch per run [default: 1 with --jobs > 1, else torch's].")
@click.option("--no-tensorboard", is_flag=True, help="Do not write TensorBoard events even if it is installed.")
@device_option
@click.pass_context
def sweep_cmd(ctx, preset, config_file, overrides, grids, seeds, data_dir, out, no_resume, jobs, threads,
              no_tensorboard, device):
    """Train a grid of configurations x seeds, each a `deep train` run in its own folder; resumes, reuses
    finished runs; one table of mean ± s.d. over seeds (sweep.md) and one CSV row per run (sweep.csv)."""
    obj = ctx.obj
    obj["kept"] = "finished runs and each run's last complete epoch are kept; rerun the same command to go on"
    import time
    from pathlib import Path

    from localentropy.deep.errors import DeepError
    from localentropy.deep.presets import get_preset, with_overrides
    from localentropy.deep.sweep import parse_grid, parse_seeds, run_sweep

    if config_file is not None:
        from localentropy.deep.config import config_from_file

        base = config_from_file(config_file, preset, overrides)
    elif preset is None:
        raise click.UsageError("Missing option '--preset' (or give --config FILE).")
    else:
        base = with_overrides(get_preset(preset), overrides)
    grid = parse_grid(grids)
    both = sorted({a.split("=", 1)[0].strip().replace("-", "_") for a in overrides} & set(grid))
    if both:
        raise DeepError(f"{', '.join(both)}: given by both --set and --grid; give each field in one of them")
    seed_list = parse_seeds(seeds) if seeds is not None else [base.seed]
    check_device(device)
    out = Path("out") / "sweep" / base.name if out is None else Path(out)
    if not out.parent.is_dir():
        raise click.BadParameter(f"{out}: folder {out.parent} does not exist", param_hint="--out")
    if out.exists() and not out.is_dir():
        raise click.BadParameter(f"{out} is a file", param_hint="--out")
    obj["kept"] = (f"finished runs and each run's last complete epoch are kept in {out}; rerun the same command"
                   + (" without --no-resume" if no_resume else "") + " to go on")
    quiet = bool(obj.get("quiet"))
    lines = not quiet and line_per_epoch()
    bar = LazyBar({"quiet": quiet or lines}, unit="run", desc="sweep", dynamic_ncols=True)
    clock = {}

    def say(message):
        if quiet:
            return
        if bar.bar is not None:
            bar.bar.write(message, file=sys.stderr)
        else:
            click.echo(message, err=True)

    def progress(event, **info):
        if event == "start":
            runs = info["runs"]
            clock.update(t0=time.time(), initial=info["done"], total=info["total"])
            counts = {s: sum(r.status == s for r in runs) for s in ("finished", "resume", "extend", "new", "afresh")}
            points = len(runs) // len(seed_list)
            parts = [f"{counts['finished']} finished (reused; --no-resume retrains them)" if counts["finished"] else "",
                     f"{counts['resume']} resumed from their checkpoints" if counts["resume"] else "",
                     f"{counts['extend']} extended to a larger epochs" if counts["extend"] else "",
                     f"{counts['afresh']} started afresh" if counts["afresh"] else "",
                     f"{counts['new']} new" if counts["new"] else ""]
            say(f"sweep: {len(runs)} runs ({points} grid point{'s' if points != 1 else ''} x {len(seed_list)} "
                f"seed{'s' if len(seed_list) != 1 else ''}) in {out}: " + ", ".join(p for p in parts if p))
            bar.start(info["done"], total=info["total"])
        elif event == "run_start":
            if info.get("extended_from") is not None:
                say(f"{info['name']}: extending from {info['extended_from']:g} to {base.epochs:g} epochs "
                    f"(from epoch {info['epoch']})")
            elif info["epoch"]:
                say(f"{info['name']}: resuming from epoch {info['epoch']} of {info['epochs']}")
        elif event == "epoch":
            if lines:
                say(f"{info['name']}: {epoch_line(info['row'], info['epochs'])}")
            else:
                bar.update_to(bar.bar.n if bar.bar is not None else bar.initial,
                              postfix=f"{info['name']} ep {info['row']['epoch']}/{info['epochs']}")
        elif event == "run":
            r = info["row"]
            text = f"test error {r['final_test_error']:.4f}"
            if r.get("best_val_test_error") is not None:
                text += f", best-by-validation test error {r['best_val_test_error']:.4f}"
            if lines:
                k = info["done"] - clock["initial"]
                spent = time.time() - clock["t0"]
                left = (info["total"] - info["done"]) * spent / max(k, 1)
                say(f"run {info['done']}/{info['total']} {info['name']}: {text}, {r['wall_seconds']:.1f} s; "
                    f"{k} run{'s' if k != 1 else ''} in {spent:.0f} s here ({spent / max(k, 1):.1f} s/run), "
                    f"about {left:.0f} s left")
            else:
                bar.update_to(info["done"], postfix=f"{info['name']} {text}")

    try:
        result = run_sweep(base, grid, seed_list, out, jobs=jobs, threads=threads, data_dir=data_dir, device=device,
                           resume=not no_resume, tensorboard=False if no_tensorboard else None, progress=progress,
                           command=command_line(ctx))
    finally:
        bar.close()
    click.echo(result.markdown, nl=False)
    note(obj, f"wrote {result.md_path}, {result.csv_path} ({len(result.runs)} runs, "
              f"{sum(r.reused for r in result.runs)} reused)")
    diverged = [r.name for r in result.runs if r.row.get("diverged")]
    if diverged:
        click.echo(f"{len(diverged)} run(s) diverged (the mini-batch loss became non-finite; training stopped): "
                   + ", ".join(diverged[:5]) + (", ..." if len(diverged) > 5 else ""), err=True)


@deep.command("eval")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--best", is_flag=True, help="Evaluate model-best.pt (lowest validation error; runs with val_split) "
                                           "instead of model.pt (the last epoch's).")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              help="Where the run's data set is; another folder evaluates on that copy [default: as for train].")
@click.option("--sigma", "sigmas", default=None, metavar="S1,S2,...",
              help="Also the local energy δE_train(σ) at these σ (e.g. 0.1,0.2) on the run's first energy_samples "
                   "training images, energy_draws draws each.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of one line.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the δE_train(σ) noise draws.")
@device_option
def eval_cmd(run_dir, best, data_dir, sigmas, as_json, seed, device):
    """Evaluate a trained run's network (a `deep train` folder): test error and loss, validation error and
    loss when the run held out a val_split, and optionally δE_train(σ)."""
    import json
    import math

    from localentropy.deep.evaluate import evaluate_run, one_line, read_run_config

    values = []
    if sigmas is not None:
        try:
            values = [float(t) for t in sigmas.replace(";", ",").split(",") if t.strip()]
        except ValueError:
            raise click.BadParameter(f"{sigmas!r}: expected numbers separated by commas, e.g. 0.1,0.2",
                                     param_hint="--sigma") from None
        if not values or any(not (math.isfinite(v) and v >= 0) for v in values):
            raise click.BadParameter(f"{sigmas!r}: expected numbers >= 0 separated by commas", param_hint="--sigma")
    check_device(device)
    read_run_config(run_dir)  # a folder that is not a run: one line before any data are read
    result = evaluate_run(run_dir, best=best, data_dir=data_dir, sigmas=values, device=device, seed=seed)
    if as_json:
        def clean(v):
            if isinstance(v, float) and not math.isfinite(v):
                return None
            if isinstance(v, dict):
                return {k: clean(x) for k, x in v.items()}
            if isinstance(v, list):
                return [clean(x) for x in v]
            return v

        click.echo(json.dumps(clean(result)))
    else:
        click.echo(one_line(result))


@deep.command("evidence")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None, help="Where Fashion-MNIST's files are.")
@click.option("--seeds", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--set", "overrides", multiple=True, metavar="NAME=VALUE",
              help="Override a field of every run, e.g. --set epochs=2 --set train_subset=2000.")
@click.option("--out", type=click.Path(dir_okay=False), default="benchmarks/results/deep_evidence.md", show_default=True,
              help="The markdown table (written to a temporary name, then renamed).")
@click.option("--runs", "runs_dir", type=click.Path(file_okay=False), default="out/deep-evidence", show_default=True,
              help="One folder per run (checkpoint, metrics, model.pt); finished runs are read back, not retrained.")
@click.option("--models", default="smallconvnet,mlp2", show_default=True, help="Comma-separated: smallconvnet, mlp2.")
@click.option("--methods", default="sgd,esgd,rsgd,pla,sam", show_default=True,
              help="Comma-separated: sgd, esgd, rsgd, rsgd-xy, pla, plea, sam.")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="CPU threads of torch.")
@device_option
@click.pass_obj
def evidence(obj, data_dir, seeds, overrides, out, runs_dir, models, methods, threads, device):
    """CPU-scale evidence: SmallConvNet and the MLP on Fashion-MNIST, SGD, eSGD, rSGD, PLA, SAM, same budget."""
    obj["kept"] = "finished runs and each run's last epoch are kept; rerun the same command to go on"
    from localentropy.cli.options import check_output
    from localentropy.data.atomic import atomic_open
    from localentropy.deep.datasets import load_images
    from localentropy.deep.evidence import evidence_table, run_evidence
    from localentropy.deep.presets import get_preset, with_overrides

    models = [m.strip() for m in models.split(",") if m.strip()]
    methods = [m.strip() for m in methods.split(",") if m.strip()]
    for m in models:  # an unknown model, method or --set: one line before any work
        for k in methods:
            with_overrides(get_preset(f"cpu-fmnist-{m}-{k}"), overrides)
    check_device(device)
    check_output(out)
    if threads:
        import torch

        torch.set_num_threads(threads)
    data = load_images("fashion-mnist", data_dir, device)
    bar = LazyBar(obj, unit="run", desc="evidence")
    bar.start()
    try:
        rows = run_evidence(data, runs_dir, seeds=seeds, models=models, methods=methods, overrides=overrides, device=device,
                            progress=lambda done, total, row: bar.update_to(done, postfix=f"{row['model']} {row['method']}"
                                                                            f" s{row['seed']} {row['test_error']:.4f}")
                            if bar.kwargs.setdefault("total", total) else None)
    finally:
        bar.close()
    text = evidence_table(rows, command_line(click.get_current_context()))
    with atomic_open(out, "w") as fh:
        fh.write(text)
    click.echo(text, nl=False)


@deep.command("local-entropy")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--layers", default=None, help="Weights to perturb: comma list of layer names or prefixes (e.g. fc1,fc2) [default: all].")
@click.option("--deltas", default="1e-3:0.1:8", show_default=True,
              help="Prior widths Δ (in units of --scale): lo:hi:n (log grid) or a comma list.")
@click.option("--scale", type=click.Choice(["relative", "absolute"]), default="relative", show_default=True,
              help="Units of Δ and d: each layer's mean squared weight (relative) or the weights' own units.")
@click.option("--samples", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Training images the constraint is checked on (the run's first ones).")
@click.option("--chains", type=click.IntRange(min=4), default=64, show_default=True)
@click.option("--groups", type=click.IntRange(min=2), default=8, show_default=True,
              help="Independent groups of chains (error bars: jackknife over the groups).")
@click.option("--moves", type=click.IntRange(min=1), default=2, show_default=True, help="MCMC moves per level.")
@click.option("--stop-below", type=click.FloatRange(max=0, max_open=True), default=None,
              help="End the curve after the first Δ where ln P (= n φ_G) is below this, e.g. -12 (each halving "
                   "of P costs a level).")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None, help="Where the run's data set is.")
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="CSV [default: RUN_DIR/local_entropy[-LAYERS].csv]; a checkpoint beside it resumes an interrupted run.")
@click.option("--no-resume", is_flag=True, help="Start afresh: delete the checkpoint beside --out first.")
@seed_option
@device_option
@click.pass_obj
def local_entropy_cmd(obj, run_dir, layers, deltas, scale, samples, chains, groups, moves, stop_below, data_dir, out,
                      no_resume, seed, device):
    """Local entropy φ_G(Δ), δ(Δ), Φ_LE(d) of a trained network (a `deep train` output folder), by sampling.

    The CSV's d is ½‖θ′ − θ̃‖² over the n selected weights (n·delta; delta per weight), both in the units of
    --scale, as in the committee tables."""
    obj["kept"] = "the curve's checkpoint beside the run holds every finished Δ; rerun the same command to resume"
    from pathlib import Path

    from localentropy.cli.options import check_output
    from localentropy.committee.pipeline import parse_deltas
    from localentropy.data.atomic import atomic_open
    from localentropy.deep.local_entropy import read_config, run_local_entropy

    grid = parse_deltas(deltas)
    check_device(device)
    run = Path(run_dir)
    read_config(run)  # a folder that is not a finished run: one line, before any work
    picked = [t.strip() for t in layers.split(",") if t.strip()] if layers else None
    tag = "-" + "-".join(picked) if picked else ""
    out = Path(out) if out else run / f"local_entropy{tag}.csv"
    check_output(out)
    quiet = bool(obj and obj.get("quiet"))

    def progress(info):
        if not quiet:
            click.echo(f"Δ {info['prior_delta']:.3g} ({info['index'] + 1}/{info['total']}): φ_G = {info['phi_G']:.4g}",
                       err=True)

    from localentropy.entropic.errors import EntropicError

    ckpt = out.with_suffix(".ckpt.npz")
    if ckpt.exists() and no_resume:
        ckpt.unlink()
    resumed = ckpt.exists()
    if resumed:
        note(obj, f"resuming from {ckpt} (its finished prior widths are not recomputed; --no-resume starts afresh)")
    try:
        res = run_local_entropy(run, grid, layers=picked, scale=scale, samples=samples, chains=chains, groups=groups,
                                moves=moves, stop_below=stop_below, seed=seed, device=device, data_dir=data_dir,
                                checkpoint=ckpt, progress=progress)
    except EntropicError as exc:
        if resumed and "different" in str(exc):  # a checkpoint of other settings: say how to start afresh
            raise EntropicError(f"{ckpt}: checkpoint of another reference, Δ grid or sampler setting; rerun with "
                                f"--no-resume to start afresh") from None
        if ckpt.exists():  # a failed curve leaves nothing that would block a rerun with other settings
            ckpt.unlink()
        raise
    cols = ("prior_delta", "phi_G", "phi_G_se", "delta", "delta_se", "d", "phi", "phi_se", "phi_ball")
    with atomic_open(out, "w") as fh:
        fh.write(",".join(cols) + "\n")
        for i in range(len(res.prior_delta)):
            fh.write(",".join(repr(float(getattr(res, c)[i])) for c in cols) + "\n")
    first = res.settings.get("first_layer")
    path = f"first layer {first} as a linear map" if first else "general path"
    click.echo(f"n = {res.n} weights ({', '.join(picked) if picked else 'all'}); {len(res.prior_delta)} Δ; {path}; "
               f"wrote {out}")
    if res.stalled_at == res.stalled_at:  # not nan: the curve ends where the sampler stopped equilibrating
        click.echo(f"the levels stalled at Δ = {res.stalled_at:.4g} (the particles did not leave the constraint's "
                   "boundary): the curve ends at the Δ before")


@deep.command("evidence-local-entropy")
@click.option("--runs", "runs_dir", type=click.Path(file_okay=False), default="out/deep-evidence", show_default=True,
              help="The folders of `localentropy deep evidence` (the networks measured).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="results/deep-mlp", show_default=True,
              help="Folder for the figure (PNG, PDF), its CSV and summary.md.")
@click.option("--model", default="mlp2", show_default=True, help="The evidence model: mlp2 or smallconvnet.")
@click.option("--methods", default="sgd,esgd,rsgd,pla,sam", show_default=True, help="Comma-separated methods.")
@click.option("--seeds", type=click.IntRange(min=1), default=1, show_default=True, help="Run seeds 0..seeds-1.")
@click.option("--layers", "selections", default="all,fc1,fc2,out", show_default=True,
              help="Weight selections: all, fc1, fc2, out (comma-separated).")
@click.option("--deltas", default="1e-4:10:11", show_default=True,
              help="Relative prior widths Δ: lo:hi:n (log grid) or a comma list.")
@click.option("--stop-below", type=click.FloatRange(max=0, max_open=True), default=-8.0, show_default=True,
              help="End each curve after the first Δ where ln P (= n φ_G) is below this.")
@click.option("--samples", type=click.IntRange(min=1), default=250, show_default=True,
              help="Training images the constraint is checked on (the first ones).")
@click.option("--chains", type=click.IntRange(min=4), default=48, show_default=True)
@click.option("--groups", type=click.IntRange(min=2), default=4, show_default=True)
@click.option("--moves", type=click.IntRange(min=1), default=2, show_default=True)
@click.option("--data-dir", type=click.Path(file_okay=False), default=None, help="Where Fashion-MNIST's files are.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="CPU threads of torch (per process with --jobs > 1: default 1).")
@click.option("--jobs", type=click.IntRange(min=1), default=None,
              help="Processes computing curves side by side [default: the CPU count; 1 on a GPU].")
@seed_option
@device_option
@click.pass_obj
def evidence_local_entropy_cmd(obj, runs_dir, out_dir, model, methods, seeds, selections, deltas, stop_below, samples,
                               chains, groups, moves, data_dir, threads, jobs, seed, device):
    """Φ_LE(d) per method of the evidence networks, for all weights and per layer, beside δE_train(σ)."""
    obj["kept"] = "finished curves are kept beside their runs; rerun the same command to go on"
    import json
    import time
    from pathlib import Path

    from localentropy.committee.pipeline import parse_deltas
    from localentropy.data.atomic import atomic_open
    from localentropy.deep.entropy_figure import (draw_entropy_figure, entropy_summary, evidence_energies,
                                                  evidence_local_entropy)

    grid = parse_deltas(deltas)
    methods = [m.strip() for m in methods.split(",") if m.strip()]
    picked = [t.strip() for t in selections.split(",") if t.strip()]
    check_device(device)
    energy = evidence_energies(runs_dir, model=model, methods=methods, seeds=seeds)  # missing runs: one line
    import os

    if jobs is None:
        jobs = 1 if device != "cpu" else (os.cpu_count() or 1)
    if threads:
        import torch

        torch.set_num_threads(threads)
    t0 = time.perf_counter()
    bar = LazyBar(obj, unit="curve", desc="local entropy")
    bar.start()
    spent = []  # each curve's own sampling time (kept with it, so also for curves read back)

    def progress(done, total, info):
        spent.append(info.get("seconds") or 0.0)
        bar.kwargs.setdefault("total", total)
        bar.update_to(done, postfix=f"{info['method']} s{info['seed']} {info['layers']}")

    try:
        rows = evidence_local_entropy(runs_dir, model=model, methods=methods, seeds=seeds, selections=picked,
                                      deltas=grid, samples=samples, chains=chains, groups=groups, moves=moves,
                                      stop_below=stop_below, seed=seed, data_dir=data_dir, device=device,
                                      jobs=jobs, threads=threads or 1, progress=progress)
    finally:
        bar.close()
    wall = time.perf_counter() - t0
    settings = dict(samples=samples, chains=chains, groups=groups, moves=moves, stop_below=stop_below, seed=seed,
                    jobs=jobs, threads=threads or (1 if jobs > 1 else None))
    paths = draw_entropy_figure(rows, energy, out_dir, note=f"{model}, Fashion-MNIST: local entropy by sampling "
                                f"({samples} training images), relative units")
    command = command_line(click.get_current_context())
    summary = Path(out_dir) / "summary.md"
    with atomic_open(summary, "w") as fh:
        fh.write(entropy_summary(rows, energy, command=command, wall=wall, settings=settings, sampling=sum(spent)))
    click.echo(f"wrote {', '.join(str(p) for p in paths + [summary])} ({wall:.0f} s; {json.dumps(settings)})")
