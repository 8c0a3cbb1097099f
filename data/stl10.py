"""STL-10 from the official binary files (``stl10_binary/``): the 5000 labelled training and 8000 test images.

Format (Coates et al. 2011, the data set's README): ``*_X.bin`` are uint8, 3·96·96 bytes per image,
channel by channel, each channel in column-major order (so an image reads as (3, 96, 96) transposed);
``*_y.bin`` are uint8 labels 1..10; ``class_names.txt`` one name a line. The unlabelled split is not
read (paper 002 trains fully supervised).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from localentropy.data.errors import DataError
from localentropy.data.images import ImageSet, find_folder, read_exact

SIDE = 96
IMAGE_BYTES = 3 * SIDE * SIDE


def read_split(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    xp, yp = folder / f"{split}_X.bin", folder / f"{split}_y.bin"
    xb = read_exact(xp)
    if len(xb) == 0 or len(xb) % IMAGE_BYTES:
        raise DataError(f"{xp}: {len(xb)} bytes is not a whole number of 3×96×96 images (truncated or corrupt)")
    n = len(xb) // IMAGE_BYTES
    yb = read_exact(yp, n)
    y = np.frombuffer(yb, dtype=np.uint8).astype(np.int64)
    if y.min() < 1 or y.max() > 10:
        raise DataError(f"{yp}: labels must lie in 1..10, found {int(y.min())}..{int(y.max())}")
    x = np.frombuffer(xb, dtype=np.uint8).reshape(n, 3, SIDE, SIDE).transpose(0, 1, 3, 2)
    return np.ascontiguousarray(x), y - 1


def read_stl10(folder: str | os.PathLike | None = None, data_dir: str | os.PathLike | None = None) -> ImageSet:
    """STL-10's labelled train (5000) and test (8000) images, (N, 3, 96, 96) uint8, labels 0..9."""
    root = Path(folder) if folder is not None else find_folder("stl-10", data_dir)
    names_path = root / "class_names.txt"
    classes = tuple(line.strip() for line in read_exact(names_path).decode("utf-8", "replace").splitlines() if line.strip())
    if len(classes) != 10:
        raise DataError(f"{names_path}: {len(classes)} class names, expected 10")
    train = read_split(root, "train")
    test = read_split(root, "test")
    return ImageSet("stl-10", *train, *test, classes=classes, source=str(root))
