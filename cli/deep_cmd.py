"""`localentropy deep models | download`: the deep-net architectures and the image data sets."""

from __future__ import annotations

import click


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


@click.group(short_help="Deep-net architectures and image data sets.")
def deep():
    """Deep-net architectures and image data sets (paper 000 Table 1, paper 002 Sec. 4-5)."""


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
@click.argument("name", type=click.Choice(["cifar-10", "cifar-100", "stl-10", "tiny-imagenet"]))
@click.option("--dest", type=click.Path(file_okay=False), default=None, help="Folder to download into [default: data/raw/].")
@click.pass_obj
def download(obj, name, dest):
    """Download an image data set's official archive, verify its published MD5 and unpack it (needs internet)."""
    from localentropy.data.archives import download_archive

    quiet = bool(obj and obj.get("quiet"))
    folder = download_archive(name, dest, progress=None if quiet else click.echo)
    if not quiet:
        click.echo(f"{name}: ready in {folder}")
