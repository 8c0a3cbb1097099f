"""The architectures of paper 000 (Table 1, App. C) and paper 002 (Sec. 4, 5), built by name.

``build("resnet110")`` returns a freshly initialised ``nn.Module`` (Kaiming normal, App. C);
``names()`` lists the registry; ``ARCHITECTURES[name]`` says what the model is, the input it expects,
and the published parameter count with its source (the tests check our counts against it to 1 %).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from torch import nn

from localentropy.deep.errors import DeepError
from localentropy.deep.models.densenet import DenseNet
from localentropy.deep.models.efficientnet import EfficientNetB0
from localentropy.deep.models.init import INITS, initialise
from localentropy.deep.models.pyramidnet import PyramidNet, ShakeDrop
from localentropy.deep.models.resnet import CifarResNet, CifarResNet18, ResNet50
from localentropy.deep.models.small import MLP, ConvNet002, SmallConvNet


@dataclass(frozen=True)
class Published:
    """A published parameter count: ``params`` at ``num_classes`` classes, from ``source``."""

    params: int
    num_classes: int
    source: str


@dataclass(frozen=True)
class Architecture:
    name: str
    factory: Callable[..., nn.Module]
    description: str
    input_shape: tuple  # (C, H, W) of the data set it is trained on in the papers
    num_classes: int  # of that data set
    published: Published | None
    init: str = "kaiming_normal"
    kwargs: dict = field(default_factory=dict)


ARCHITECTURES: dict[str, Architecture] = {a.name: a for a in (
    Architecture("small-convnet", SmallConvNet, "paper 000 SmallConvNet (LeNet-like), CIFAR-10", (3, 32, 32), 10,
                 None, init="torch"),
    Architecture("resnet18", CifarResNet18, "ResNet-18, CIFAR variant (3x3 stem), CIFAR-10", (3, 32, 32), 10,
                 Published(11_170_000, 10, "11.17M, kuangliu/pytorch-cifar ResNet18 as commonly reported")),
    Architecture("resnet110", CifarResNet, "ResNet-110 (He et al. 2016, 6n+2, option A), CIFAR-10", (3, 32, 32), 10,
                 Published(1_700_000, 10, "1.7M, He et al. 2016, Table 6"), kwargs={"depth": 110}),
    Architecture("pyramidnet272", PyramidNet, "PyramidNet-272 alpha=200 bottleneck + ShakeDrop, CIFAR-10/100",
                 (3, 32, 32), 10, Published(26_200_000, 10, "26.2M, Cubuk et al. 2018 (AutoAugment), Table 2; Han et al. 2017 Table 4: 26.0M"),
                 kwargs={"depth": 272, "alpha": 200}),
    Architecture("efficientnet-b0", EfficientNetB0, "EfficientNet-B0, CIFAR-100 resized to 224 px", (3, 224, 224), 100,
                 Published(5_300_000, 1000, "5.3M, Tan and Le 2019, Table 2 (ImageNet, 1000 classes)")),
    Architecture("resnet50", ResNet50, "ResNet-50 (ImageNet stem), Tiny ImageNet 64 px", (3, 64, 64), 200,
                 Published(25_557_032, 1000, "25.56M, torchvision resnet50 (He et al. 2016; 1000 classes)")),
    Architecture("densenet121", DenseNet, "DenseNet-121 (BC, k=32), Tiny ImageNet 64 px", (3, 64, 64), 200,
                 Published(7_978_856, 1000, "7.98M, torchvision densenet121 (Huang et al. 2017; 1000 classes)")),
    Architecture("mlp2", MLP, "paper 002 MLP 784-784-784-10, Fashion-MNIST", (1, 28, 28), 10, None,
                 kwargs={"depth": 2}),
    Architecture("mlp3", MLP, "paper 002 MLP 784-784-784-784-10, MNIST", (1, 28, 28), 10, None,
                 kwargs={"depth": 3}),
    Architecture("convnet24", ConvNet002, "paper 002 Eq. (24) conv net, CIFAR-10", (3, 32, 32), 10, None,
                 kwargs={"widths": (64, 128), "image_size": 32}),
    Architecture("convnet25", ConvNet002, "paper 002 Eq. (25) conv net, STL-10", (3, 96, 96), 10, None,
                 kwargs={"widths": (8, 16), "image_size": 96}),
)}


def names() -> list[str]:
    """The registered architecture names, in the order of the papers."""
    return list(ARCHITECTURES)


def architecture(name: str) -> Architecture:
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise DeepError(f"unknown architecture {name!r}; known: {', '.join(ARCHITECTURES)}") from None


def build(name: str, num_classes: int | None = None, init: str | None = None, **kwargs) -> nn.Module:
    """A freshly initialised model ``name`` with ``num_classes`` outputs (default: its data set's).

    ``init``: ``"kaiming_normal"`` (App. C) or ``"torch"`` (PyTorch's default); default is the
    architecture's (Kaiming normal, except the SmallConvNet: App. C trains it with PyTorch's default).
    Extra keyword arguments go to the model's class (e.g. ``depth=20`` for a small CIFAR ResNet).
    """
    arch = architecture(name)
    if num_classes is None:
        num_classes = arch.num_classes
    if int(num_classes) != num_classes or num_classes < 1:
        raise DeepError(f"num_classes must be a positive integer, not {num_classes!r}")
    scheme = arch.init if init is None else init
    if scheme not in INITS:
        raise DeepError(f"unknown initialisation {scheme!r}; known: {', '.join(INITS)}")
    try:
        model = arch.factory(num_classes=int(num_classes), **{**arch.kwargs, **kwargs})
    except TypeError as exc:
        raise DeepError(f"{name}: bad argument ({exc})") from None
    return initialise(model, scheme)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (what the papers report as the model's size)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


__all__ = ["ARCHITECTURES", "Architecture", "Published", "ShakeDrop", "architecture", "build",
           "count_parameters", "names", "initialise"]
