"""Data sets as uint8 tensors: IDX data sets through data/'s lookup, the archive readers, synthetic stand-ins."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from localentropy.data.idx import write_idx
from localentropy.data.locate import find_dataset
from localentropy.data.images import ImageSet
from localentropy.deep.datasets import SHAPES, from_image_set, load_images, load_or_synthetic, synthetic_images
from localentropy.deep.errors import DeepError


@pytest.fixture
def fashion_dir(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "fashion-mnist"
    root.mkdir()
    arrays = {"train-images-idx3-ubyte": rng.integers(0, 256, (12, 28, 28), dtype=np.uint8),
              "train-labels-idx1-ubyte": rng.integers(0, 10, 12).astype(np.uint8),
              "t10k-images-idx3-ubyte": rng.integers(0, 256, (5, 28, 28), dtype=np.uint8),
              "t10k-labels-idx1-ubyte": rng.integers(0, 10, 5).astype(np.uint8)}
    for name, a in arrays.items():
        write_idx(root / name, a)
    return tmp_path, arrays


def test_fashion_mnist_loads_as_uint8_tensors_with_train_statistics(fashion_dir):
    data_dir, arrays = fashion_dir
    ds = load_images("fashion-mnist", data_dir=data_dir)
    assert ds.train_images.dtype == torch.uint8 and ds.train_images.shape == (12, 1, 28, 28)
    assert np.array_equal(ds.train_images[:, 0].numpy(), arrays["train-images-idx3-ubyte"])
    assert ds.train_labels.dtype == torch.int64 and ds.test_images.shape == (5, 1, 28, 28)
    assert ds.mean.item() == pytest.approx(arrays["train-images-idx3-ubyte"].mean() / 255, abs=1e-6)
    assert not ds.synthetic and ds.num_classes == 10


def test_real_fashion_mnist_when_installed():
    try:
        find_dataset("fashion-mnist")
    except Exception:
        pytest.skip("Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
    ds = load_images("fashion-mnist")
    assert ds.train_images.shape == (60000, 1, 28, 28) and ds.test_images.shape == (10000, 1, 28, 28)
    assert 0.25 < ds.mean.item() < 0.32  # Fashion-MNIST's mean pixel, 0.286


def test_an_image_set_becomes_tensors_without_copying_per_sample():
    x = np.random.default_rng(1).integers(0, 256, (7, 3, 32, 32), dtype=np.uint8)
    s = ImageSet("t", x, np.arange(7) % 3, x[:2], np.array([0, 2]), classes=("a", "b", "c"))
    ds = from_image_set(s)
    assert torch.equal(ds.train_images, torch.from_numpy(x)) and ds.train_images.dtype == torch.uint8
    assert ds.mean.shape == (3,) and ds.std.shape == (3,)


def test_synthetic_data_has_the_real_shapes_and_says_so(tmp_path):
    for name, (shape, classes, _, _) in SHAPES.items():
        ds = synthetic_images(name, n_train=4, n_test=2)
        assert ds.train_images.shape == (4, *shape) and ds.synthetic and ds.num_classes == classes
    ds = load_or_synthetic("cifar-10", data_dir=tmp_path, n_train=3)
    assert ds.synthetic and ds.train_images.shape == (3, 3, 32, 32)
    with pytest.raises(DeepError, match="unknown data set"):
        load_images("imagenet-22k")
