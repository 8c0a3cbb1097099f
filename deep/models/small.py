"""The small nets: paper 000's SmallConvNet (App. C), paper 002's MLPs (Sec. 4) and conv nets (Eq. 24, 25)."""

from __future__ import annotations

import torch
from torch import nn

from localentropy.deep.errors import DeepError


class SmallConvNet(nn.Module):
    """Paper 000, App. C: Conv(5×5, 20) − MaxPool(2) − Conv(5×5, 50) − MaxPool(2) − Dense(500) − Softmax.

    "Each convolutional layer and the dense layer before the final output layer are followed by ReLU."
    Choices where App. C is silent (those of LeNet, LeCun et al. 1998, and of the common PyTorch
    port): convolutions unpadded, stride 1, with bias; ReLU before each 2×2/2 max-pool; the dense
    layers with bias. On 32×32 CIFAR images the flattened features are 50·5·5 = 1250, so the net has
    1520 + 25 050 + 625 500 + 5010 = 657 080 parameters at 10 classes. The softmax lives in the
    cross-entropy loss: the module returns logits.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 3, image_size: int = 32):
        super().__init__()
        side = ((image_size - 4) // 2 - 4) // 2
        if side < 1:
            raise DeepError(f"SmallConvNet needs images of at least 16×16 pixels, not {image_size}")
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 20, 5), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(20, 50, 5), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        )
        self.fc1 = nn.Linear(50 * side * side, 500)
        self.fc2 = nn.Linear(500, num_classes)

    def forward(self, x):
        x = torch.flatten(self.features(x), 1)
        return self.fc2(torch.relu(self.fc1(x)))


class MLP(nn.Module):
    """Paper 002, Sec. 4: ``depth`` hidden layers of ``width`` = 784 neurons, then a 10-neuron output layer.

    "All layers except the last have 784 = 28² neurons and are structurally identical": the
    2-layer net (Fashion-MNIST) is 784 → 784 → 784 → 10, the 3-layer net (MNIST) 784 → 784 → 784 →
    784 → 10. The paper shows ReLU and TanH (Sec. 2); ReLU is the default. Hidden layers are named
    ``fc1``, ``fc2``, ... and the output layer ``out``, so PLA/PLEA subsets name them.
    """

    def __init__(self, num_classes: int = 10, depth: int = 2, width: int = 784, in_features: int = 784,
                 activation: str = "relu"):
        super().__init__()
        if depth < 1:
            raise DeepError(f"MLP depth must be ≥ 1, not {depth}")
        acts = {"relu": nn.ReLU, "tanh": nn.Tanh}
        if activation not in acts:
            raise DeepError(f"unknown activation {activation!r}; known: relu, tanh")
        self.depth = depth
        sizes = [in_features] + [width] * depth
        for i in range(depth):
            setattr(self, f"fc{i + 1}", nn.Linear(sizes[i], sizes[i + 1]))
        self.act = acts[activation]()
        self.out = nn.Linear(width, num_classes)

    def forward(self, x):
        x = torch.flatten(x, 1)
        for i in range(self.depth):
            x = self.act(getattr(self, f"fc{i + 1}")(x))
        return self.out(x)


class ConvNet002(nn.Module):
    """Paper 002, Eq. (24) (CIFAR-10, widths 64/128) and Eq. (25) (STL-10, widths 8/16).

    Conv − Conv − MaxPool − Conv − Conv − Conv − MaxPool − Fully − Fully − Fully. The tables give
    channels only; the feature sizes they state fix the rest: 3×3 convolutions without padding and
    2×2 max-pools take 32 → 30 → 28 → 14 → 12 → 10 → 8 → 4 (Eq. 24: 128·4·4) and 96 → 94 → 92 → 46 →
    44 → 42 → 40 → 20 (Eq. 25: 16·20·20). ReLU after every convolution and hidden dense layer
    (choice; the paper cites ReLU nets throughout). The fully-connected head is ``fc1`` (I), ``fc2``
    (II) and ``fc3`` (output, never regularised in the paper).
    """

    def __init__(self, num_classes: int = 10, widths: tuple[int, int] = (64, 128), image_size: int = 32,
                 in_channels: int = 3):
        super().__init__()
        a, b = widths
        side = ((image_size - 4) // 2 - 6) // 2
        if side < 1:
            raise DeepError(f"the conv net of paper 002 needs images of at least 20×20 pixels, not {image_size}")
        r = nn.ReLU
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, a, 3), r(inplace=True), nn.Conv2d(a, a, 3), r(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(a, b, 3), r(inplace=True), nn.Conv2d(b, b, 3), r(inplace=True),
            nn.Conv2d(b, b, 3), r(inplace=True), nn.MaxPool2d(2),
        )
        n = b * side * side
        self.fc1 = nn.Linear(n, n)
        self.fc2 = nn.Linear(n, n)
        self.fc3 = nn.Linear(n, num_classes)

    def forward(self, x):
        x = torch.flatten(self.features(x), 1)
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))
