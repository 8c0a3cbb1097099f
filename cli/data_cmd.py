"""`localentropy data prepare | info | download`: the Dress/Coat subset and the raw data sets."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from localentropy.cli.options import out_option


@click.group(short_help="Prepare, inspect and download the data sets.")
def data():
    """Prepare, inspect and download the data sets (the Dress/Coat subset, Fashion-MNIST, MNIST)."""


@data.command(short_help="Regenerate the Dress/Coat subset from the raw files.")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None, help="Folder holding the Fashion-MNIST IDX files.")
@click.option("--seed", type=int, default=None, help="Seed of the training-pattern draw [default: the embedded subset's, 0].")
@out_option(default=None, help="Where to write the subset [default: data/raw/dresscoat.npz].")
@click.pass_obj
def prepare(obj, data_dir, seed, out):
    """Regenerate the binarised Dress/Coat subset from the raw Fashion-MNIST files.

    Says whether the result equals, byte for byte, the subset embedded in the package.
    """
    from localentropy.data.dresscoat import EMBEDDED, SEED, dresscoat_bytes, prepare_dresscoat
    from localentropy.data.idx import atomic_write_bytes
    from localentropy.data.locate import RAW_DIR

    ds = prepare_dresscoat(data_dir, seed=SEED if seed is None else seed)
    payload = dresscoat_bytes(ds)
    target = Path(out) if out else RAW_DIR / "dresscoat.npz"
    atomic_write_bytes(target, payload)
    same = EMBEDDED.is_file() and EMBEDDED.read_bytes() == payload
    click.echo(f"wrote {target}: {len(ds.y_train)} training and {len(ds.y_test)} test patterns")
    click.echo(f"identical to the embedded subset ({EMBEDDED.name}): {'yes' if same else 'no'}")


@data.command(short_help="Summarise a Dress/Coat subset file.")
@click.argument("path", required=False, type=click.Path(dir_okay=False))
@click.pass_obj
def info(obj, path):
    """Summarise a Dress/Coat subset file (default: the embedded one)."""
    from localentropy.data.dresscoat import EMBEDDED, load_dresscoat, patterns_hash

    ds = load_dresscoat(path)
    lines = [f"file: {path or EMBEDDED}"]
    for split in ("train", "test"):
        X, y = getattr(ds, f"X_{split}"), getattr(ds, f"y_{split}")
        lines.append(
            f"{split}: {X.shape[0]} patterns x {X.shape[1]} pixels, Dress(+1) {int(np.sum(y == 1))}, "
            f"Coat(-1) {int(np.sum(y == -1))}, mean pixel {X.mean():+.3f}"
        )
    lines.append(f"train patterns hash: {patterns_hash(ds.X_train, ds.y_train)[:16]}")
    prov = ds.provenance
    lines.append(f"seed: {prov.get('seed')}; rule: {prov.get('rule')}")
    for name, digest in sorted(prov.get("source_sha256", {}).items()):
        lines.append(f"source {name}: sha256 {digest}")
    click.echo("\n".join(lines))


@data.command(short_help="Download the official files of a data set.")
@click.argument("name", type=click.Choice(["fashion-mnist", "mnist"]))
@click.option("--dest", type=click.Path(file_okay=False), default=None, help="Folder to put the files in [default: data/raw/NAME].")
@click.option("--timeout", type=float, default=60.0, show_default=True, help="Seconds per request.")
@click.pass_obj
def download(obj, name, dest, timeout):
    """Download the official IDX files of NAME and verify their checksums."""
    from localentropy.data.download import download as fetch_all

    report = None if obj["quiet"] else (lambda msg: click.echo(msg, err=True))
    folder = fetch_all(name, dest, timeout=timeout, progress=report)
    click.echo(f"{name}: verified files in {folder}")
