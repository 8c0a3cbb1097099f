"""The image data sets as uint8 tensors in memory (on the training device when they fit).

``load_images("cifar-10", device="cuda")`` reads the official files once (numpy readers of
``localentropy.data``), converts them to tensors and computes the per-channel statistics of the
training set; batches are then drawn by indexing the tensor (:mod:`localentropy.deep.stacks`),
never by loading images one by one. ``synthetic_images`` gives random uint8 data of a data set's
real shape for benchmarks and tests where the data set is absent.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

from localentropy.data.cifar import read_cifar10, read_cifar100
from localentropy.data.errors import DataError
from localentropy.data.idx import read_idx
from localentropy.data.images import ImageSet
from localentropy.data.locate import find_dataset
from localentropy.data.stl10 import read_stl10
from localentropy.data.tinyimagenet import read_tinyimagenet
from localentropy.deep.augment import channel_stats
from localentropy.deep.errors import DeepError

# name: (shape (C, H, W), classes, train size, test size)
SHAPES = {
    "mnist": ((1, 28, 28), 10, 60_000, 10_000),
    "fashion-mnist": ((1, 28, 28), 10, 60_000, 10_000),
    "cifar-10": ((3, 32, 32), 10, 50_000, 10_000),
    "cifar-100": ((3, 32, 32), 100, 50_000, 10_000),
    "stl-10": ((3, 96, 96), 10, 5_000, 8_000),
    "tiny-imagenet": ((3, 64, 64), 200, 100_000, 10_000),
}


@dataclass
class TensorImages:
    """Train and test images, uint8 (N, C, H, W) tensors, labels int64, and the train set's channel statistics."""

    name: str
    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    classes: tuple
    mean: torch.Tensor  # per channel, units of 1/255
    std: torch.Tensor
    synthetic: bool = False
    source: str = ""

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def device(self) -> torch.device:
        return self.train_images.device


def _idx_set(name: str, data_dir) -> ImageSet:
    files = find_dataset(name, data_dir)
    arrays = {role: read_idx(path) for role, path in files.items()}
    classes = tuple(str(i) for i in range(10))
    return ImageSet(name, arrays["train_images"][:, None].astype(np.uint8, copy=False),
                    arrays["train_labels"].astype(np.int64), arrays["test_images"][:, None].astype(np.uint8, copy=False),
                    arrays["test_labels"].astype(np.int64), classes=classes, source=str(files["train_images"].parent))


READERS = {
    "mnist": lambda d: _idx_set("mnist", d),
    "fashion-mnist": lambda d: _idx_set("fashion-mnist", d),
    "cifar-10": lambda d: read_cifar10(data_dir=d),
    "cifar-100": lambda d: read_cifar100(data_dir=d),
    "stl-10": lambda d: read_stl10(data_dir=d),
    "tiny-imagenet": lambda d: read_tinyimagenet(data_dir=d),
}


def to_device(t: torch.Tensor, device) -> torch.Tensor:
    """``t`` on ``device``; on a CUDA device that has no room, pinned host memory instead (batches are copied over)."""
    device = torch.device(device)
    if device.type == "cpu":
        return t
    try:
        return t.to(device)
    except torch.OutOfMemoryError:
        return t.pin_memory()


def from_image_set(ds: ImageSet, device="cpu") -> TensorImages:
    train = torch.from_numpy(np.ascontiguousarray(ds.train_images))
    mean, std = channel_stats(train)
    return TensorImages(ds.name, to_device(train, device), torch.from_numpy(ds.train_labels).to(device),
                        to_device(torch.from_numpy(np.ascontiguousarray(ds.test_images)), device),
                        torch.from_numpy(ds.test_labels).to(device), tuple(ds.classes), mean.to(device),
                        std.to(device), source=ds.source)


def load_images(name: str, data_dir: str | os.PathLike | None = None, device="cpu") -> TensorImages:
    """Read data set ``name`` (one of :data:`SHAPES`) from its official files into tensors on ``device``."""
    if name not in READERS:
        raise DeepError(f"unknown data set {name!r}; known: {', '.join(READERS)}")
    return from_image_set(READERS[name](data_dir), device)


def synthetic_images(name: str, n_train: int | None = None, n_test: int = 1000, device="cpu", seed: int = 0) -> TensorImages:
    """Uniform random uint8 images and labels of data set ``name``'s real shape (``n_train`` default: its size)."""
    if name not in SHAPES:
        raise DeepError(f"unknown data set {name!r}; known: {', '.join(SHAPES)}")
    shape, classes, size, _ = SHAPES[name]
    n_train = size if n_train is None else n_train
    g = torch.Generator(device="cpu").manual_seed(seed)
    x = torch.randint(0, 256, (n_train, *shape), generator=g, dtype=torch.uint8)
    y = torch.randint(0, classes, (n_train,), generator=g)
    xt = torch.randint(0, 256, (n_test, *shape), generator=g, dtype=torch.uint8)
    yt = torch.randint(0, classes, (n_test,), generator=g)
    mean, std = channel_stats(x)
    return TensorImages(name, x.to(device), y.to(device), xt.to(device), yt.to(device),
                        tuple(str(i) for i in range(classes)), mean.to(device), std.to(device), synthetic=True,
                        source="synthetic")


def validation_indices(n: int, val_split: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(training, validation) indices of ``n`` images, each increasing: ``val_split`` of them held out, chosen
    by a CPU generator seeded with ``seed`` (the same subset on every device, run and resume)."""
    val_split = int(val_split)
    if not 0 <= val_split < n:
        raise DeepError(f"val_split {val_split} must lie in [0, {n}): the run has {n} training images")
    g = torch.Generator(device="cpu").manual_seed(int(seed))
    val = torch.randperm(n, generator=g)[:val_split].sort().values
    keep = torch.ones(n, dtype=torch.bool)
    keep[val] = False
    return torch.arange(n)[keep], val


def hold_out(images: torch.Tensor, labels: torch.Tensor, val_split: int, seed: int):
    """(train images, train labels, validation images, validation labels): ``val_split`` images held out
    (:func:`validation_indices`); with ``val_split`` 0 the inputs themselves and empty validation tensors."""
    if not val_split:
        return images, labels, images[:0], labels[:0]
    train, val = validation_indices(images.shape[0], val_split, seed)
    return (images[train.to(images.device)], labels[train.to(labels.device)], images[val.to(images.device)],
            labels[val.to(labels.device)])


def load_or_synthetic(name: str, data_dir=None, device="cpu", n_train: int | None = None) -> TensorImages:
    """The real data set when its files are found, else synthetic data of its shape (``.synthetic`` says which)."""
    try:
        return load_images(name, data_dir, device)
    except DataError:
        return synthetic_images(name, n_train=n_train, device=device)
