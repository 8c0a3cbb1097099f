"""The binarised Dress/Coat subset of Fashion-MNIST used for the committee machine (paper 000, App. B.1).

Rules (each stated once, here):
- classes Dress (label 3) → y = +1 and Coat (label 4) → y = −1;
- an image is kept iff its median intensity, scaled to [0, 1] (pixel / 255), lies in [0.25, 0.75],
  in the training and the test file alike;
- each kept image is binarised with its own median m as threshold: x = +1 where pixel > m, x = −1
  where pixel ≤ m (ties go to −1);
- 500 training patterns, 250 per class, drawn from the kept training images by a seeded rule that
  does not depend on any library's random stream: candidates are ranked by SHA-256 of
  ``"{seed}:{index}"`` and the first 250 of each class are taken, then the 500 are ordered by the same key;
- the test set is every kept test image of the two classes, in file order.

The subset ships in the repository as ``data/dresscoat.npz`` (bit-packed) with its provenance, so
nothing needs the raw files; ``localentropy data prepare`` regenerates it byte for byte.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from localentropy.data.errors import DataError
from localentropy.data.idx import atomic_write_bytes, idx_bytes, read_idx
from localentropy.data.locate import find_dataset

EMBEDDED = Path(__file__).resolve().parent / "dresscoat.npz"
DRESS, COAT = 3, 4
SEED = 0
N_TRAIN = 500
MEDIAN_RANGE = (0.25, 0.75)
N_PIXELS = 784
RULE = (
    "Fashion-MNIST classes Dress(3)->+1, Coat(4)->-1; keep images with median(pixel/255) in [0.25, 0.75]; "
    "x=+1 where pixel > the image's median, else -1 (ties -> -1); train: 250 per class ranked by "
    "sha256('{seed}:{index}'), ordered by the same key; test: all kept test images of both classes in file order"
)


@dataclass(frozen=True)
class DressCoat:
    """Binarised patterns (±1, int8, shape (P, 784)) and labels (±1, int8) for training and test."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    train_index: np.ndarray
    test_index: np.ndarray
    provenance: dict = field(default_factory=dict)


def image_medians(images: np.ndarray) -> np.ndarray:
    """Median pixel of each image in raw units (0..255), as float64."""
    return np.median(images.reshape(len(images), -1).astype(np.float64), axis=1)


def binarise(images: np.ndarray) -> np.ndarray:
    """±1 patterns: +1 where a pixel exceeds its image's median, −1 otherwise (ties → −1)."""
    flat = images.reshape(len(images), -1).astype(np.float64)
    return np.where(flat > image_medians(images)[:, None], 1, -1).astype(np.int8)


def keep_mask(images: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Dress or Coat, with median intensity (scaled to [0, 1]) inside MEDIAN_RANGE."""
    med = image_medians(images) / 255.0
    lo, hi = MEDIAN_RANGE
    return np.isin(labels, (DRESS, COAT)) & (med >= lo) & (med <= hi)


def _rank_key(seed: int, index: int) -> bytes:
    return hashlib.sha256(f"{seed}:{index}".encode()).digest()


def select_training(labels: np.ndarray, candidates: np.ndarray, seed: int, n_train: int) -> np.ndarray:
    """Indices of ``n_train`` training images, half per class, by the seeded hash ranking."""
    if n_train <= 0 or n_train % 2:
        raise DataError(f"n_train must be a positive even number (balanced classes), got {n_train}")
    chosen = []
    for cls in (DRESS, COAT):
        pool = [int(i) for i in candidates if labels[i] == cls]
        if len(pool) < n_train // 2:
            raise DataError(f"only {len(pool)} usable images of class {cls}, need {n_train // 2}")
        chosen += sorted(pool, key=lambda i: _rank_key(seed, i))[: n_train // 2]
    return np.array(sorted(chosen, key=lambda i: _rank_key(seed, i)), dtype=np.int32)


def labels_pm1(labels: np.ndarray) -> np.ndarray:
    return np.where(labels == DRESS, 1, -1).astype(np.int8)


def patterns_hash(X: np.ndarray, y: np.ndarray) -> str:
    """SHA-256 identifying a ±1 pattern set (shape, signs of X, signs of y)."""
    X = np.asarray(X)
    y = np.asarray(y)
    if X.ndim != 2 or y.shape != (X.shape[0],):
        raise DataError(f"patterns_hash needs X (P, N) and y (P,), got {X.shape} and {y.shape}")
    h = hashlib.sha256(f"{X.shape[0]}x{X.shape[1]}".encode())
    h.update(np.packbits(X > 0, axis=1).tobytes())
    h.update(np.packbits(y > 0).tobytes())
    return h.hexdigest()


def prepare_dresscoat(data_dir: str | os.PathLike | None = None, seed: int = SEED, n_train: int = N_TRAIN) -> DressCoat:
    """Build the subset from the raw Fashion-MNIST files (found as `data.locate.find_dataset` says)."""
    paths = find_dataset("fashion-mnist", data_dir)
    # Fashion-MNIST: images are unsigned bytes of rank 3 (M, 28, 28), labels unsigned bytes of rank 1 in 0..9
    arrays = {role: read_idx(p, dtype=np.uint8, ndim=3 if role.endswith("images") else 1)
              for role, p in paths.items()}
    for split in ("train", "test"):
        imgs, labs = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if imgs.shape[1:] != (28, 28):
            raise DataError(f"{paths[split + '_images']}: expected images of 28 x 28 pixels, got {imgs.shape[1:]}")
        if labs.shape != (imgs.shape[0],):
            raise DataError(f"{paths[split + '_labels']}: {labs.shape[0]} labels for {imgs.shape[0]} images")
        if labs.size and labs.max() > 9:
            raise DataError(f"{paths[split + '_labels']}: labels must be classes 0..9, found {int(labs.max())}")
    tr_img, tr_lab = arrays["train_images"], arrays["train_labels"]
    te_img, te_lab = arrays["test_images"], arrays["test_labels"]
    train_index = select_training(tr_lab, np.flatnonzero(keep_mask(tr_img, tr_lab)), seed, n_train)
    test_index = np.flatnonzero(keep_mask(te_img, te_lab)).astype(np.int32)
    provenance = {
        "source": "Fashion-MNIST (Xiao, Rasul, Vollgraf 2017), MIT licence, Copyright (c) 2017 Zalando SE",
        "source_sha256": {p.name.removesuffix(".gz"): hashlib.sha256(idx_bytes(arrays[role])).hexdigest() for role, p in paths.items()},
        "seed": int(seed),
        "n_train": int(n_train),
        "n_test": int(len(test_index)),
        "rule": RULE,
        "labels": {"Dress(3)": 1, "Coat(4)": -1},
    }
    return DressCoat(
        X_train=binarise(tr_img[train_index]),
        y_train=labels_pm1(tr_lab[train_index]),
        X_test=binarise(te_img[test_index]),
        y_test=labels_pm1(te_lab[test_index]),
        train_index=train_index,
        test_index=test_index,
        provenance=provenance,
    )


def dresscoat_bytes(ds: DressCoat) -> bytes:
    """The .npz encoding (uncompressed zip of bit-packed arrays: deterministic, byte for byte)."""
    buf = io.BytesIO()
    np.savez(
        buf,
        X_train_bits=np.packbits(ds.X_train > 0, axis=1),
        y_train=ds.y_train.astype(np.int8),
        X_test_bits=np.packbits(ds.X_test > 0, axis=1),
        y_test=ds.y_test.astype(np.int8),
        train_index=ds.train_index.astype(np.int32),
        test_index=ds.test_index.astype(np.int32),
        n_pixels=np.int32(ds.X_train.shape[1]),
        provenance=np.array(json.dumps(ds.provenance, sort_keys=True)),
    )
    return buf.getvalue()


def save_dresscoat(ds: DressCoat, path: str | os.PathLike) -> Path:
    path = Path(path)
    atomic_write_bytes(path, dresscoat_bytes(ds))
    return path


def _unpack(bits: np.ndarray, n: int) -> np.ndarray:
    return np.where(np.unpackbits(bits, axis=1, count=n) > 0, 1, -1).astype(np.int8)


def load_dresscoat(path: str | os.PathLike | None = None) -> DressCoat:
    """Load the subset (default: the one embedded in the package), validating what it reads."""
    path = Path(path) if path is not None else EMBEDDED
    if not path.is_file():
        raise DataError(f"{path}: no such file (regenerate it with `localentropy data prepare`)")
    try:
        with np.load(path, allow_pickle=False) as z:
            n = int(z["n_pixels"])
            ds = DressCoat(
                X_train=_unpack(z["X_train_bits"], n),
                y_train=z["y_train"].astype(np.int8),
                X_test=_unpack(z["X_test_bits"], n),
                y_test=z["y_test"].astype(np.int8),
                train_index=z["train_index"],
                test_index=z["test_index"],
                provenance=json.loads(str(z["provenance"])),
            )
    except (KeyError, ValueError, OSError) as exc:
        raise DataError(f"{path}: not a Dress/Coat subset file ({exc})") from None
    for split in ("train", "test"):
        X, y = getattr(ds, f"X_{split}"), getattr(ds, f"y_{split}")
        if y.shape != (X.shape[0],) or not np.all(np.abs(y) == 1):
            raise DataError(f"{path}: {split} labels must be ±1 with one per pattern")
    return ds
