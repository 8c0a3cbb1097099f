"""DenseNet-121 (Huang et al. 2017, Table 1, DenseNet-BC): paper 000, App. C.2, on Tiny ImageNet.

Growth rate 32, dense blocks of 6, 12, 24, 16 layers (BN − ReLU − 1×1 conv to 4·32 − BN − ReLU − 3×3
conv to 32, concatenated), transitions halving channels (compression 0.5) and 2×2 average pooling,
the ImageNet stem (7×7/2 conv, 64 channels, 3×3/2 max-pool), final BN − ReLU − pool − linear.
7 978 856 parameters at 1000 classes (torchvision's count). On a 64×64 image the last block sees
2×2 maps; the stem is kept as published (App. C does not mention changing it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class DenseLayer(nn.Module):
    def __init__(self, cin: int, growth: int, bn_size: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.BatchNorm2d(cin), nn.ReLU(inplace=True), nn.Conv2d(cin, bn_size * growth, 1, bias=False),
            nn.BatchNorm2d(bn_size * growth), nn.ReLU(inplace=True),
            nn.Conv2d(bn_size * growth, growth, 3, padding=1, bias=False),
        )

    def forward(self, x):
        return torch.cat([x, self.body(x)], 1)


class DenseNet(nn.Module):
    def __init__(self, num_classes: int = 1000, blocks=(6, 12, 24, 16), growth: int = 32, init_features: int = 64,
                 bn_size: int = 4, in_channels: int = 3):
        super().__init__()
        layers = [nn.Conv2d(in_channels, init_features, 7, stride=2, padding=3, bias=False),
                  nn.BatchNorm2d(init_features), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1)]
        c = init_features
        for i, n in enumerate(blocks):
            for _ in range(n):
                layers.append(DenseLayer(c, growth, bn_size))
                c += growth
            if i != len(blocks) - 1:
                layers += [nn.BatchNorm2d(c), nn.ReLU(inplace=True), nn.Conv2d(c, c // 2, 1, bias=False),
                           nn.AvgPool2d(2, 2)]
                c //= 2
        layers += [nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x):
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1))
