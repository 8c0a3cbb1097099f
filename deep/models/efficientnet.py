"""EfficientNet-B0 (Tan and Le 2019, Table 1): paper 000, App. C.1, trained from scratch on CIFAR-100 at 224 px.

Stem 3×3/2 conv (32) − 16 MBConv blocks − 1×1 conv (1280) − pool − dropout 0.2 − linear. An MBConv
block: 1×1 expansion (×t, omitted for t = 1) − k×k depthwise (stride s) − squeeze-and-excitation
(reduction to ¼ of the block's *input* channels) − 1×1 projection; BatchNorm after every conv,
SiLU (swish) activations, identity shortcut with stochastic depth (drop-connect, rate growing
linearly to 0.2) when stride 1 and the widths match. 5 288 548 parameters at 1000 classes (the
reference implementation's count; the paper's Table 2 rounds it to 5.3M).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# (expansion t, kernel k, stride s, output channels, repeats): Tan and Le (2019), Table 1
B0_STAGES = ((1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3),
             (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1))


def conv_bn(cin, cout, k, stride=1, groups=1, act=True):
    layers = [nn.Conv2d(cin, cout, k, stride=stride, padding=(k - 1) // 2, groups=groups, bias=False),
              nn.BatchNorm2d(cout, eps=1e-3, momentum=0.01)]
    if act:
        layers.append(nn.SiLU(inplace=True))
    return nn.Sequential(*layers)


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, squeezed: int):
        super().__init__()
        self.reduce = nn.Conv2d(channels, squeezed, 1)
        self.expand = nn.Conv2d(squeezed, channels, 1)

    def forward(self, x):
        s = F.adaptive_avg_pool2d(x, 1)
        return x * torch.sigmoid(self.expand(F.silu(self.reduce(s))))


class MBConv(nn.Module):
    def __init__(self, cin, cout, expand, k, stride, drop_connect):
        super().__init__()
        mid = cin * expand
        layers = [] if expand == 1 else [conv_bn(cin, mid, 1)]
        layers += [conv_bn(mid, mid, k, stride, groups=mid), SqueezeExcite(mid, max(1, cin // 4)),
                   conv_bn(mid, cout, 1, act=False)]
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout
        self.drop_connect = drop_connect

    def forward(self, x):
        out = self.block(x)
        if not self.residual:
            return out
        if self.training and self.drop_connect > 0:
            keep = 1.0 - self.drop_connect
            mask = torch.empty((x.shape[0], 1, 1, 1), device=x.device, dtype=x.dtype).bernoulli_(keep)
            out = out * mask / keep
        return out + x


class EfficientNetB0(nn.Module):
    def __init__(self, num_classes: int = 1000, in_channels: int = 3, dropout: float = 0.2,
                 drop_connect: float = 0.2):
        super().__init__()
        self.stem = conv_bn(in_channels, 32, 3, 2)
        total = sum(r for *_, r in B0_STAGES)
        blocks, cin, i = [], 32, 0
        for t, k, s, cout, reps in B0_STAGES:
            for j in range(reps):
                blocks.append(MBConv(cin, cout, t, k, s if j == 0 else 1, drop_connect * i / total))
                cin, i = cout, i + 1
        self.blocks = nn.Sequential(*blocks)
        self.head = conv_bn(cin, 1280, 1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(1280, num_classes)

    def forward(self, x):
        x = self.head(self.blocks(self.stem(x)))
        return self.fc(self.dropout(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)))
