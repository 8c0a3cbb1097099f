"""CIFAR-10 and CIFAR-100 from the official python version (pickled batches), read without running code.

The official batches are Python 2 pickles of a dict: ``data`` a uint8 array (N, 3072) (1024 red, then
green, then blue values of a 32×32 image, row-major), ``labels`` (CIFAR-10) or ``fine_labels`` /
``coarse_labels`` (CIFAR-100) lists of ints, ``filenames``, ``batch_label``. Unpickling executes
whatever callables a file names, so :class:`RestrictedUnpickler` admits only the three globals the
official files use to rebuild a numpy array (``numpy.core.multiarray._reconstruct``,
``numpy.ndarray``, ``numpy.dtype``); any other (``os.system``, ``builtins.eval``, ...) is refused
with a one-line :class:`DataError` before anything runs.
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

import numpy as np

from localentropy.data.errors import DataError
from localentropy.data.images import ImageSet, find_folder, read_exact

try:  # numpy ≥ 2 moved the module; the official files name the old path
    from numpy._core.multiarray import _reconstruct as _np_reconstruct
except ImportError:  # pragma: no cover (numpy 1.x)
    from numpy.core.multiarray import _reconstruct as _np_reconstruct

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _np_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _np_reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}

CIFAR10_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST = ("test_batch",)
IMAGE_BYTES = 3 * 32 * 32


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only numpy's array-rebuilding globals; everything else is refused."""

    def __init__(self, file, name: str):
        super().__init__(file, encoding="bytes")
        self.name = name

    def find_class(self, module, name):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise DataError(f"{self.name}: refused to unpickle: the file asks for {module}.{name}, "
                            "which no official CIFAR batch contains") from None

    def persistent_load(self, pid):
        raise DataError(f"{self.name}: refused to unpickle: the file uses persistent ids")


def safe_unpickle(buf: bytes, name: str):
    """Unpickle ``buf`` with :class:`RestrictedUnpickler`; every failure is a one-line DataError naming ``name``."""
    try:
        return RestrictedUnpickler(io.BytesIO(buf), name).load()
    except DataError:
        raise
    except Exception as exc:  # truncated stream, bad opcode, bad numpy state, ...
        raise DataError(f"{name}: not a readable CIFAR pickle ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None


def _key(d: dict, key: str, path: Path):
    for k in (key.encode(), key):
        if k in d:
            return d[k]
    raise DataError(f"{path}: no {key!r} entry (keys: {', '.join(sorted(str(k) for k in d))})")


def read_batch(path: str | os.PathLike, label_key: str = "labels") -> tuple[np.ndarray, np.ndarray]:
    """One official batch file: images (N, 3, 32, 32) uint8 and labels (N,) int64."""
    path = Path(path)
    d = safe_unpickle(read_exact(path), str(path))
    if not isinstance(d, dict):
        raise DataError(f"{path}: a CIFAR batch holds a dict, this file holds a {type(d).__name__}")
    data, labels = _key(d, "data", path), _key(d, label_key, path)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != IMAGE_BYTES:
        shape = getattr(data, "shape", None)
        raise DataError(f"{path}: 'data' must be a uint8 array (N, {IMAGE_BYTES}), got {type(data).__name__} {shape}")
    if not isinstance(labels, (list, np.ndarray)) or len(labels) != data.shape[0]:
        raise DataError(f"{path}: {data.shape[0]} images but {len(labels) if hasattr(labels, '__len__') else '?'} labels")
    try:
        y = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError, OverflowError):
        raise DataError(f"{path}: {label_key!r} is not a list of integers") from None
    if y.ndim != 1:
        raise DataError(f"{path}: {label_key!r} is not a flat list of integers")
    return np.ascontiguousarray(data.reshape(-1, 3, 32, 32)), y


def _names(path: Path, key: str) -> tuple:
    d = safe_unpickle(read_exact(path), str(path))
    if not isinstance(d, dict):
        raise DataError(f"{path}: the meta file holds a dict, this file holds a {type(d).__name__}")
    names = _key(d, key, path)
    if not isinstance(names, list):
        raise DataError(f"{path}: {key!r} is not a list")
    return tuple(n.decode("latin1") if isinstance(n, bytes) else str(n) for n in names)


def _stack(parts, classes, files):
    x = np.concatenate([p[0] for p in parts]) if parts else np.zeros((0, 3, 32, 32), np.uint8)
    y = np.concatenate([p[1] for p in parts]) if parts else np.zeros((0,), np.int64)
    bad = (y < 0) | (y >= len(classes))
    if bad.any():
        raise DataError(f"{files}: label {int(y[bad][0])} outside [0, {len(classes)})")
    return x, y


def read_cifar10(folder: str | os.PathLike | None = None, data_dir: str | os.PathLike | None = None) -> ImageSet:
    """CIFAR-10 (50 000 train, 10 000 test) from the folder ``cifar-10-batches-py`` (``folder``, or found in ``data_dir``)."""
    root = Path(folder) if folder is not None else find_folder("cifar-10", data_dir)
    classes = _names(root / "batches.meta", "label_names")
    train = _stack([read_batch(root / f) for f in CIFAR10_TRAIN], classes, root / "data_batch_*")
    test = _stack([read_batch(root / f) for f in CIFAR10_TEST], classes, root / "test_batch")
    return ImageSet("cifar-10", *train, *test, classes=classes, source=str(root))


def read_cifar100(folder: str | os.PathLike | None = None, data_dir: str | os.PathLike | None = None,
                  labels: str = "fine") -> ImageSet:
    """CIFAR-100 (50 000 train, 10 000 test) from ``cifar-100-python``; ``labels``: "fine" (100) or "coarse" (20)."""
    if labels not in ("fine", "coarse"):
        raise DataError(f"CIFAR-100 labels are 'fine' or 'coarse', not {labels!r}")
    root = Path(folder) if folder is not None else find_folder("cifar-100", data_dir)
    classes = _names(root / "meta", f"{labels}_label_names")
    key = f"{labels}_labels"
    train = _stack([read_batch(root / "train", key)], classes, root / "train")
    test = _stack([read_batch(root / "test", key)], classes, root / "test")
    return ImageSet("cifar-100", *train, *test, classes=classes, source=str(root), extra={"labels": labels})
