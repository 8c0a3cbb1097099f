"""PyramidNet with bottleneck blocks (Han et al. 2017) and ShakeDrop (Yamada et al. 2018): paper 000, App. C.1.

PyramidNet-272, α = 200: n = (272 − 2)/9 = 30 bottleneck blocks in each of 3 stages; the block width
grows by α/(3n) per block (rounded), from 16 to 16 + α = 216, times 4 at the block output; the
shortcut is average-pooled where the stride is 2 and zero-padded to the new width (parameter free).
Layout as the authors' code (dyhan0920/PyramidNet-PyTorch): BN − 1×1 − BN − ReLU − 3×3 − BN − ReLU −
1×1 − BN inside the block, no ReLU after the addition; 26.0M parameters (Han et al. 2017, Table 4).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from localentropy.deep.errors import DeepError


class _ShakeDropFunction(torch.autograd.Function):
    """Forward: (b + α − bα)·x, backward: (b + β − bβ)·grad, with b ~ Bernoulli(p), α, β ~ U[−1, 1], U[0, 1]."""

    @staticmethod
    def forward(ctx, x, p_keep, alpha_range):
        b = (torch.rand((), device=x.device) < p_keep).to(x.dtype)
        shape = (x.shape[0],) + (1,) * (x.dim() - 1)
        alpha = torch.empty(shape, device=x.device, dtype=x.dtype).uniform_(*alpha_range)
        ctx.save_for_backward(b)
        return x * (b + alpha - b * alpha)

    @staticmethod
    def backward(ctx, grad):
        (b,) = ctx.saved_tensors
        shape = (grad.shape[0],) + (1,) * (grad.dim() - 1)
        beta = torch.rand(shape, device=grad.device, dtype=grad.dtype)
        return grad * (b + beta - b * beta), None, None


class ShakeDrop(nn.Module):
    """ShakeDrop (Yamada et al. 2018, Eq. 7 and 8) on a residual branch, keep probability ``p_keep``.

    Training: one Bernoulli gate b per mini-batch, α per sample in [−1, 1] forward, β per sample in
    [0, 1] backward (the paper's best setting, "batch-level b, image-level α, β"). Evaluation: the
    expected multiplier E[b + α − bα] = p_keep. Randomness comes from torch's generator of the device
    (seed it with ``torch.manual_seed``).
    """

    def __init__(self, p_keep: float = 0.5, alpha_range=(-1.0, 1.0)):
        super().__init__()
        if not 0.0 <= p_keep <= 1.0:
            raise DeepError(f"ShakeDrop keep probability must lie in [0, 1], not {p_keep}")
        self.p_keep = float(p_keep)
        self.alpha_range = tuple(alpha_range)

    def forward(self, x):
        if self.training:
            return _ShakeDropFunction.apply(x, self.p_keep, self.alpha_range)
        return x * self.p_keep

    def extra_repr(self):
        return f"p_keep={self.p_keep:.4f}"


class PyramidBottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int, p_keep: float | None):
        super().__init__()
        cout = planes * 4
        self.branch = nn.Sequential(
            nn.BatchNorm2d(cin), nn.Conv2d(cin, planes, 1, bias=False),
            nn.BatchNorm2d(planes), nn.ReLU(inplace=True),
            nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(planes), nn.ReLU(inplace=True),
            nn.Conv2d(planes, cout, 1, bias=False), nn.BatchNorm2d(cout),
        )
        self.shake = ShakeDrop(p_keep) if p_keep is not None else nn.Identity()
        self.stride, self.pad = stride, cout - cin

    def forward(self, x):
        out = self.shake(self.branch(x))
        s = F.avg_pool2d(x, 2, ceil_mode=True) if self.stride != 1 else x
        if self.pad:
            s = F.pad(s, (0, 0, 0, 0, 0, self.pad))
        return out + s


class PyramidNet(nn.Module):
    """Bottleneck PyramidNet for 32×32 inputs; ``shakedrop_p_last`` = p_L of Yamada et al.'s linear decay rule
    p_l = 1 − (l/L)(1 − p_L) for the keep probability of block l of L (paper: p_L = 0.5); ``None`` turns
    ShakeDrop off."""

    def __init__(self, num_classes: int = 10, depth: int = 272, alpha: float = 200, in_channels: int = 3,
                 shakedrop_p_last: float | None = 0.5):
        super().__init__()
        if depth < 11 or (depth - 2) % 9:
            raise DeepError(f"a bottleneck PyramidNet has depth 9n+2 (110, 164, 272, ...), not {depth}")
        n = (depth - 2) // 9
        total = 3 * n
        add = alpha / total
        self.conv1 = nn.Conv2d(in_channels, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        blocks, cin, width, l = [], 16, 16.0, 0
        for stage in range(3):
            for j in range(n):
                width += add
                l += 1
                p = None if shakedrop_p_last is None else 1.0 - (l / total) * (1.0 - shakedrop_p_last)
                planes = int(round(width))
                blocks.append(PyramidBottleneck(cin, planes, 2 if (stage > 0 and j == 0) else 1, p))
                cin = planes * 4
        self.blocks = nn.Sequential(*blocks)
        self.bn_final = nn.BatchNorm2d(cin)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        x = self.blocks(self.bn1(self.conv1(x)))
        x = F.relu(self.bn_final(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))
