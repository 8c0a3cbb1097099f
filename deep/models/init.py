"""Weight initialisation: Kaiming normal, as in paper 000, App. C ("the parameter initialization is Kaiming normal").

He et al. (2015), Eq. (10), the forward-propagation case: every convolution and linear weight is drawn
from N(0, 2/fan_in), fan_in = in_channels·k·k (ReLU gain √2); biases start at zero; BatchNorm starts
as the identity (weight 1, bias 0). App. C is silent on the fan mode; fan_in is the paper's own choice
for the forward pass. ``"torch"`` keeps PyTorch's default initialisation (what App. C says of the
SmallConvNet: "default parameter initialization (PyTorch 1.3)", which PyTorch 2 still uses).
"""

from __future__ import annotations

from torch import nn

from localentropy.deep.errors import DeepError

INITS = ("kaiming_normal", "torch")


def initialise(model: nn.Module, scheme: str = "kaiming_normal") -> nn.Module:
    """Re-initialise every conv / linear / norm layer of ``model`` in place by ``scheme``; returns the model."""
    if scheme not in INITS:
        raise DeepError(f"unknown initialisation {scheme!r}; known: {', '.join(INITS)}")
    if scheme == "torch":
        return model
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d, nn.GroupNorm)):
            if m.weight is not None:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
    return model
