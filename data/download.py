"""Downloading the official IDX files for users with internet; every file is verified before it lands.

Never called from the tests (they have no network); `localentropy data download NAME` calls it.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import urllib.request
from pathlib import Path
from typing import Callable

from localentropy.data.errors import DataError
from localentropy.data.idx import atomic_write_bytes
from localentropy.data.locate import RAW_DIR, dataset


def sha256_of_decompressed(payload: bytes) -> str:
    """SHA-256 of the IDX bytes, whether ``payload`` is gzipped or plain."""
    if payload[:2] == b"\x1f\x8b":
        payload = gzip.decompress(payload)
    return hashlib.sha256(payload).hexdigest()


def _fetch(url: str, timeout: float) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (official https/http mirrors)
        return response.read()


def download(
    name: str,
    dest: str | os.PathLike | None = None,
    timeout: float = 60.0,
    progress: Callable[[str], None] | None = None,
    fetch: Callable[[str, float], bytes] = _fetch,
) -> Path:
    """Fetch the four files of data set ``name`` into ``dest`` (default data/raw/NAME) and verify them.

    Each file is tried on every mirror in turn; a file whose decompressed SHA-256 differs from the
    published one is rejected. Files already present and valid are kept.
    """
    ds = dataset(name)
    folder = Path(dest) if dest is not None else RAW_DIR / ds.name
    for fname in ds.files.values():
        target = folder / f"{fname}.gz"
        expected = ds.sha256[fname]
        if target.is_file() and sha256_of_decompressed(target.read_bytes()) == expected:
            if progress:
                progress(f"{target}: present and verified")
            continue
        errors = []
        for base in ds.mirrors:
            url = f"{base}{fname}.gz"
            try:
                payload = fetch(url, timeout)
            except Exception as exc:  # network errors of every kind: try the next mirror
                errors.append(f"{url}: {exc}")
                continue
            try:
                digest = sha256_of_decompressed(payload)
            except (OSError, EOFError) as exc:
                errors.append(f"{url}: corrupt gzip ({exc})")
                continue
            if digest != expected:
                errors.append(f"{url}: checksum {digest[:12]}… != {expected[:12]}…")
                continue
            atomic_write_bytes(target, payload)
            if progress:
                progress(f"{target}: downloaded from {url} and verified")
            break
        else:
            raise DataError(f"could not download {fname} for {name}: " + "; ".join(errors))
    return folder
