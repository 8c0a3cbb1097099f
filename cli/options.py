"""Options shared by several commands: --seed, --device, --out."""

from __future__ import annotations

import click

seed_option = click.option("--seed", type=int, default=0, show_default=True, help="Seed of the run's random generator.")
device_option = click.option(
    "--device", default="cpu", show_default=True, help="Torch device for training and sampling: cpu, cuda, cuda:1, ..."
)


def out_option(default=None, help="Where to write the result (written to a temporary name, then renamed).",
               required=False):
    kwargs = {"required": True} if required else {"default": default, "show_default": default is not None}
    return click.option("--out", type=click.Path(dir_okay=False), help=help, **kwargs)


def plot_option(what: str):
    return click.option("--plot", type=click.Path(dir_okay=False), default=None,
                        help=f"Also draw {what} (.png, .pdf or .svg).")


def check_device(device: str) -> str:
    """Fail early, with one line, on a device torch does not have here."""
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise click.BadParameter(f"unknown device {device!r}", param_hint="--device") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise click.BadParameter(f"{device!r} asked for but CUDA is not available here", param_hint="--device")
    return device


def check_output(path, option: str = "--out") -> None:
    """The folder of an output file must exist (checked before any work, so none is wasted)."""
    from pathlib import Path

    if path is None:
        return
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise click.BadParameter(f"{path}: folder {folder} does not exist", param_hint=option)


def command_line(ctx: click.Context) -> str:
    """The command as a user would retype it: `localentropy <group> <command>` and every argument and
    option given on the command line (not sys.argv, which under a test runner is the runner's)."""
    import shlex

    path = ctx.command_path.split()
    parts = ["localentropy"] + path[1:]
    for p in ctx.command.params:
        if ctx.get_parameter_source(p.name) != click.core.ParameterSource.COMMANDLINE:
            continue
        v = ctx.params[p.name]
        if isinstance(p, click.Argument):
            parts += [shlex.quote(str(x)) for x in (v if p.multiple or p.nargs != 1 else [v])]
            continue
        opt = max(p.opts, key=len)
        if getattr(p, "is_flag", False) and not p.secondary_opts:
            if v:
                parts.append(opt)
        elif getattr(p, "is_flag", False):
            parts.append(opt if v else max(p.secondary_opts, key=len))
        else:
            for x in (v if p.multiple else [v]):
                parts += [opt, shlex.quote(str(x))]
    return " ".join(parts)
