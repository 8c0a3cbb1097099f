"""Residual nets: CIFAR ResNet-18 and ResNet-110 (paper 000, App. C.1) and ResNet-50 (App. C.2, Tiny ImageNet)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from localentropy.deep.errors import DeepError


def conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """Two 3×3 convolutions with BatchNorm, ReLU, and a shortcut (He et al. 2016, Fig. 2 left).

    ``shortcut="projection"``: a 1×1 convolution + BN where the shape changes (option B, used by
    the ImageNet-style ResNet-18); ``"pad"``: subsample and zero-pad the channels (option A, the
    CIFAR ResNet-110 of He et al. 2016, Sec. 4.2, parameter-free).
    """

    expansion = 1

    def __init__(self, cin: int, cout: int, stride: int = 1, shortcut: str = "projection"):
        super().__init__()
        self.conv1 = conv3x3(cin, cout, stride)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = conv3x3(cout, cout)
        self.bn2 = nn.BatchNorm2d(cout)
        self.pad = 0
        self.stride = stride
        self.shortcut = nn.Identity()
        if stride != 1 or cin != cout:
            if shortcut == "projection":
                self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))
            else:
                self.shortcut = None
                self.pad = cout - cin

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.shortcut is None:
            s = x[:, :, :: self.stride, :: self.stride]
            s = F.pad(s, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))
        else:
            s = self.shortcut(x)
        return F.relu(out + s)


class Bottleneck(nn.Module):
    """1×1 → 3×3 → 1×1 (×4 channels) with a projection shortcut; stride on the 3×3 (torchvision "v1.5")."""

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int = 1):
        super().__init__()
        cout = planes * 4
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet18(nn.Module):
    """ResNet-18 for 32×32 inputs: the ImageNet ResNet-18's four stages of two basic blocks (64, 128, 256,
    512 channels, projection shortcuts), with a 3×3 stride-1 stem and no max-pool, global average pool,
    linear classifier. The widely used CIFAR port (kuangliu/pytorch-cifar) that App. C's "ResNet-18
    on CIFAR-10" refers to: 11 173 962 parameters at 10 classes.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 3):
        super().__init__()
        self.conv1 = conv3x3(in_channels, 64)
        self.bn1 = nn.BatchNorm2d(64)
        layers, cin = [], 64
        for i, cout in enumerate((64, 128, 256, 512)):
            stride = 1 if i == 0 else 2
            layers += [BasicBlock(cin, cout, stride), BasicBlock(cout, cout)]
            cin = cout
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x):
        x = self.layers(F.relu(self.bn1(self.conv1(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class CifarResNet(nn.Module):
    """He et al. (2016), Sec. 4.2: the 6n+2-layer CIFAR ResNet (n = 18: ResNet-110, 1.7M parameters).

    A 3×3 conv with 16 filters, three stages of n basic blocks with 16, 32, 64 filters (stride 2 at the
    start of stages 2 and 3), global average pool, linear classifier; identity shortcuts with zero
    padding where the shape changes (option A), so all parameters are in the convolutions, BN and fc.
    """

    def __init__(self, num_classes: int = 10, depth: int = 110, in_channels: int = 3):
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise DeepError(f"a CIFAR ResNet has depth 6n+2 (20, 32, 44, 56, 110, ...), not {depth}")
        n = (depth - 2) // 6
        self.conv1 = conv3x3(in_channels, 16)
        self.bn1 = nn.BatchNorm2d(16)
        layers, cin = [], 16
        for i, cout in enumerate((16, 32, 64)):
            for j in range(n):
                layers.append(BasicBlock(cin, cout, 2 if (i > 0 and j == 0) else 1, shortcut="pad"))
                cin = cout
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x):
        x = self.layers(F.relu(self.bn1(self.conv1(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class ResNet50(nn.Module):
    """ResNet-50 (He et al. 2016, Table 1; torchvision's layout, 25 557 032 parameters at 1000 classes).

    Stages of 3, 4, 6, 3 bottleneck blocks (64, 128, 256, 512 planes, ×4 out). ``stem="imagenet"``
    (default) keeps the 7×7/2 conv and 3×3/2 max-pool, so a 64×64 Tiny ImageNet image ends as a 2×2 map;
    ``stem="small"`` replaces them with a 3×3/1 conv and no pool (8×8 final map, 16× the compute).
    App. C does not say which the paper used; the parameter counts differ by 7680 (0.03 %).
    """

    def __init__(self, num_classes: int = 1000, stem: str = "imagenet", in_channels: int = 3,
                 blocks: tuple[int, ...] = (3, 4, 6, 3)):
        super().__init__()
        if stem == "imagenet":
            self.stem = nn.Sequential(nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False),
                                      nn.BatchNorm2d(64), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1))
        elif stem == "small":
            self.stem = nn.Sequential(conv3x3(in_channels, 64), nn.BatchNorm2d(64), nn.ReLU(inplace=True))
        else:
            raise DeepError(f"unknown ResNet-50 stem {stem!r}; known: imagenet, small")
        layers, cin = [], 64
        for i, (planes, n) in enumerate(zip((64, 128, 256, 512), blocks)):
            for j in range(n):
                layers.append(Bottleneck(cin, planes, 2 if (i > 0 and j == 0) else 1))
                cin = planes * 4
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        x = self.layers(self.stem(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))
