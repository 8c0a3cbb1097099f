"""An image data set held in memory as uint8 arrays, and where the archive data sets are looked for."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from localentropy.data.errors import DataError
from localentropy.data.locate import search_roots
from localentropy.data.sources import ARCHIVES, ArchiveDataset


@dataclass(frozen=True)
class ImageSet:
    """Train and test images as uint8 arrays of shape (N, C, H, W), labels as int64 in [0, classes).

    Built only once every file has been read and checked, so a reader never returns half a data set.
    """

    name: str
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    classes: tuple
    source: str = ""
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        for split in ("train", "test"):
            x, y = getattr(self, f"{split}_images"), getattr(self, f"{split}_labels")
            if x.dtype != np.uint8 or x.ndim != 4:
                raise DataError(f"{self.name}: {split} images must be uint8 (N, C, H, W), got {x.dtype} {x.shape}")
            if y.shape != (x.shape[0],):
                raise DataError(f"{self.name}: {x.shape[0]} {split} images but {y.shape} labels")
            if y.size and (y.min() < 0 or y.max() >= len(self.classes)):
                raise DataError(f"{self.name}: {split} labels outside [0, {len(self.classes)})")

    @property
    def shape(self) -> tuple:
        return tuple(self.train_images.shape[1:])


def archive_dataset(name: str) -> ArchiveDataset:
    try:
        return ARCHIVES[name]
    except KeyError:
        raise DataError(f"unknown data set {name!r}; known: {', '.join(sorted(ARCHIVES))}") from None


def find_folder(name: str, data_dir: str | os.PathLike | None = None) -> Path:
    """The extracted folder of archive data set ``name``: in ``data_dir`` (searched alone when given),
    else $LOCALENTROPY_DATA, else data/raw/. A folder given that is itself the data set's folder is used as is."""
    ds = archive_dataset(name)
    searched = []
    for root in search_roots(data_dir):
        for cand in (root if root.name == ds.folder else None, root / ds.folder, root / ds.name / ds.folder):
            if cand is not None:
                searched.append(cand)
                if cand.is_dir():
                    return cand
    raise DataError(f"{name} not found (looked in {', '.join(map(str, searched))}); to get it: {ds.how_to_get}")


def read_exact(path: Path, size: int | None = None) -> bytes:
    """The bytes of ``path``; DataError (one line, naming the file) if it is missing or, given ``size``, not that long."""
    try:
        buf = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if size is not None and len(buf) != size:
        raise DataError(f"{path}: {len(buf)} bytes, expected {size} (truncated or corrupt)")
    return buf
