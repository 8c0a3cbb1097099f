"""Downloading and unpacking the archive data sets (CIFAR-10/100, STL-10, Tiny ImageNet), checksum first.

Never called by the tests with the network (they pass a fake ``fetch``). The archive is verified
against its published MD5 before it is kept; it is unpacked into a temporary folder beside the
target, refusing members that would land outside it (absolute paths, ``..``, links), and the
folder is renamed into place only once complete.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath
from typing import Callable

from localentropy.data.atomic import atomic_open
from localentropy.data.errors import DataError
from localentropy.data.images import archive_dataset
from localentropy.data.locate import RAW_DIR
from localentropy.data.sources import ArchiveDataset


def fetch_url(url: str, timeout: float) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (official http/https URLs)
        return response.read()


def md5_of(payload: bytes) -> str:
    return hashlib.md5(payload).hexdigest()  # noqa: S324 (the publishers' checksum, not security)


def _safe_name(name: str, archive: str) -> str:
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or ".." in p.parts or (p.parts and ":" in p.parts[0]):
        raise DataError(f"{archive}: refused member {name!r} (outside the target folder)")
    return name


def extract(archive: Path, into: Path) -> None:
    """Unpack a .tar.gz or .zip into the folder ``into`` (created), regular files and folders only."""
    into.mkdir(parents=True, exist_ok=True)
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                for info in zf.infolist():
                    _safe_name(info.filename, archive.name)
                zf.extractall(into)
        else:
            with tarfile.open(archive, "r:*") as tf:
                members = tf.getmembers()
                for m in members:
                    _safe_name(m.name, archive.name)
                    if not (m.isfile() or m.isdir()):
                        raise DataError(f"{archive.name}: refused member {m.name!r} (not a file or folder)")
                if hasattr(tarfile, "data_filter"):  # Python ≥ 3.10.12 / 3.11.4: belt and braces
                    tf.extractall(into, members=members, filter="data")
                else:  # pragma: no cover
                    tf.extractall(into, members=members)
    except DataError:
        raise
    except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError) as exc:
        raise DataError(f"{archive}: corrupt archive ({exc})") from None


def download_archive(name: str, dest: str | os.PathLike | None = None, timeout: float = 600.0,
                     progress: Callable[[str], None] | None = None,
                     fetch: Callable[[str, float], bytes] = fetch_url,
                     source: ArchiveDataset | None = None) -> Path:
    """Fetch data set ``name`` into ``dest`` (default data/raw/), verify its MD5, unpack it; returns its folder.

    An archive already present and verified is not fetched again; an extracted folder already
    present is kept as it is. ``source`` overrides the registry entry (tests).
    """
    ds = source if source is not None else archive_dataset(name)
    root = Path(dest) if dest is not None else RAW_DIR
    folder = root / ds.folder
    if folder.is_dir():
        if progress:
            progress(f"{folder}: present")
        return folder
    root.mkdir(parents=True, exist_ok=True)
    target = root / ds.archive
    if not (target.is_file() and md5_of(target.read_bytes()) == ds.md5):
        errors = []
        for url in ds.urls:
            try:
                payload = fetch(url, timeout)
            except Exception as exc:  # network errors of every kind: try the next URL
                errors.append(f"{url}: {exc}")
                continue
            digest = md5_of(payload)
            if digest != ds.md5:
                errors.append(f"{url}: MD5 {digest} != published {ds.md5}")
                continue
            with atomic_open(target, "wb") as fh:
                fh.write(payload)
            if progress:
                progress(f"{target}: downloaded from {url}, MD5 verified")
            break
        else:
            raise DataError(f"could not download {ds.name}: " + "; ".join(errors))
    tmp = Path(tempfile.mkdtemp(prefix=f".{ds.folder}.", dir=root))
    try:
        extract(target, tmp)
        if not (tmp / ds.folder).is_dir():
            raise DataError(f"{target}: the archive has no top folder {ds.folder}/")
        os.replace(tmp / ds.folder, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if progress:
        progress(f"{folder}: unpacked")
    return folder
