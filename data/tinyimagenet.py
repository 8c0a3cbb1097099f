"""Tiny ImageNet from the official folder layout, decoded once into a cached uint8 array.

Layout of ``tiny-imagenet-200/`` (Stanford CS231n): ``wnids.txt`` (200 WordNet ids, one a line),
``train/<wnid>/images/*.JPEG`` (500 per class), ``val/images/*.JPEG`` with ``val/val_annotations.txt``
(tab-separated: file name, wnid, bounding box), ``test/`` (unlabelled, not read). All images are
64×64, some greyscale (converted to RGB). Class index = position of the wnid in sorted order (as a
torchvision ImageFolder would give). The 110 000 JPEGs are decoded with Pillow on the first call and
saved as ``tiny-imagenet-uint8.npz`` (uncompressed, loaded with ``allow_pickle=False``); the cache
records the list of files it was built from, and is rebuilt if that list changes.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Callable

import numpy as np

from localentropy.data.atomic import atomic_open
from localentropy.data.errors import DataError
from localentropy.data.images import ImageSet, find_folder, read_exact

SIDE = 64
CACHE_NAME = "tiny-imagenet-uint8.npz"
CACHE_VERSION = 1


def _lines(path: Path) -> list[str]:
    return [ln for ln in read_exact(path).decode("utf-8", "replace").splitlines() if ln.strip()]


def list_files(root: Path) -> tuple[tuple, list, list, list, list]:
    """(wnids, train files, train labels, val files, val labels), checking the layout; no decoding."""
    wnids = tuple(sorted(w.strip() for w in _lines(root / "wnids.txt")))
    if len(set(wnids)) != len(wnids) or not wnids:
        raise DataError(f"{root / 'wnids.txt'}: empty or has duplicate ids")
    index = {w: i for i, w in enumerate(wnids)}
    train_files, train_labels = [], []
    for w in wnids:
        folder = root / "train" / w / "images"
        if not folder.is_dir():
            raise DataError(f"{folder}: missing (every id of wnids.txt needs train/<id>/images/)")
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpeg", ".jpg"))
        if not files:
            raise DataError(f"{folder}: no JPEG images")
        train_files += files
        train_labels += [index[w]] * len(files)
    ann = root / "val" / "val_annotations.txt"
    val_files, val_labels = [], []
    for i, line in enumerate(_lines(ann), 1):
        parts = line.split("\t")
        if len(parts) < 2 or parts[1].strip() not in index:
            raise DataError(f"{ann}:{i}: expected 'file<TAB>wnid<TAB>box', with a wnid of wnids.txt; got {line[:60]!r}")
        val_files.append(root / "val" / "images" / parts[0].strip())
        val_labels.append(index[parts[1].strip()])
    return wnids, train_files, train_labels, val_files, val_labels


def decode(files: list, progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Decode 64×64 JPEGs into (N, 3, 64, 64) uint8 with Pillow; a bad file is a one-line DataError naming it."""
    from PIL import Image, UnidentifiedImageError

    out = np.empty((len(files), SIDE, SIDE, 3), dtype=np.uint8)
    for i, path in enumerate(files):
        try:
            with Image.open(path) as im:
                im.load()
                rgb = im.convert("RGB")
        except FileNotFoundError:
            raise DataError(f"{path}: no such file") from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            raise DataError(f"{path}: not a readable image ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
        if rgb.size != (SIDE, SIDE):
            raise DataError(f"{path}: {rgb.size[0]}×{rgb.size[1]} pixels, Tiny ImageNet images are 64×64")
        out[i] = np.asarray(rgb, dtype=np.uint8)
        if progress is not None and (i + 1) % 1000 == 0:
            progress(i + 1, len(files))
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2))


def files_key(root: Path, files: list) -> str:
    """SHA-256 of the relative paths and sizes of ``files``: what the cache was built from."""
    h = hashlib.sha256(f"v{CACHE_VERSION}".encode())
    for p in files:
        try:
            size = p.stat().st_size
        except FileNotFoundError:
            raise DataError(f"{p}: no such file") from None
        h.update(f"{p.relative_to(root)}\0{size}\n".encode())
    return h.hexdigest()


def _load_cache(path: Path, key: str, n_train: int, n_val: int):
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["key"]) != key:
                return None
            arrays = {k: z[k] for k in ("train_images", "train_labels", "val_images", "val_labels")}
    except (OSError, ValueError, KeyError, EOFError):
        return None  # unreadable or stale cache: rebuilt from the JPEGs
    for split, n in (("train", n_train), ("val", n_val)):
        x, y = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if x.dtype != np.uint8 or x.shape != (n, 3, SIDE, SIDE) or y.shape != (n,) or y.dtype != np.int64:
            return None
    return arrays


def read_tinyimagenet(folder: str | os.PathLike | None = None, data_dir: str | os.PathLike | None = None,
                      cache_dir: str | os.PathLike | None = None,
                      progress: Callable[[int, int], None] | None = None) -> ImageSet:
    """Tiny ImageNet's train (100 000) and validation (10 000, used as the test set) images, (N, 3, 64, 64).

    ``cache_dir`` (default: the data set's folder) receives the decoded cache; an unreadable or
    stale cache is rebuilt, a cache never holds half a data set (written whole, then renamed).
    """
    root = Path(folder) if folder is not None else find_folder("tiny-imagenet", data_dir)
    wnids, tf, tl, vf, vl = list_files(root)
    key = files_key(root, tf + vf)
    cache = Path(cache_dir if cache_dir is not None else root) / CACHE_NAME
    arrays = _load_cache(cache, key, len(tf), len(vf)) if cache.is_file() else None
    if arrays is None:
        arrays = {"train_images": decode(tf, progress), "train_labels": np.asarray(tl, np.int64),
                  "val_images": decode(vf, progress), "val_labels": np.asarray(vl, np.int64)}
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            with atomic_open(cache, "wb") as fh:
                np.savez(fh, key=np.array(key), **arrays)
        except OSError:
            pass  # a read-only data folder: decode again next time (pass cache_dir to keep it elsewhere)
    return ImageSet("tiny-imagenet", arrays["train_images"], arrays["train_labels"], arrays["val_images"],
                    arrays["val_labels"], classes=wnids, source=str(root), extra={"cache": str(cache)})
