"""Options shared by several commands: --seed, --device, --out."""

from __future__ import annotations

import click

seed_option = click.option("--seed", type=int, default=0, show_default=True, help="Seed of the run's random generator.")
device_option = click.option(
    "--device", default="cpu", show_default=True, help="Torch device for training and sampling: cpu, cuda, cuda:1, ..."
)


def out_option(default=None, help="Where to write the result (written to a temporary name, then renamed)."):
    return click.option("--out", type=click.Path(dir_okay=False), default=default, show_default=default is not None, help=help)


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
