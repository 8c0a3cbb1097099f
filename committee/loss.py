"""The committee machine's training loss, Eq. (8) of paper 000.

f(x, ω) = −x/2 + (1/(2ω)) · log(2 cosh(ω x)) of the margin x = y · ŷ_β(w, ξ) (the tanh(β·)
surrogate of Eq. 7). f is a smoothed hinge: f → |x| for x → −∞ and f → 0 for x → +∞, with ω
setting the smoothing (ω → ∞ gives max(0, −x)). Paper 000 takes it from Baldassi et al. (2020).
"""

from __future__ import annotations

import math

import torch

from localentropy.committee.errors import CommitteeError


def softplus(z: torch.Tensor) -> torch.Tensor:
    """log(1 + e^z), accurate for every z.

    The naive ``log(1 + exp(z))`` overflows for z ≳ 710 (float64) and loses all digits for
    z ≲ −37 (1 + e^z rounds to 1); torch's ``F.softplus`` switches to the identity above a
    threshold (error e^(−20) at the default). ``logaddexp(z, 0)`` = max(z, 0) + log1p(e^(−|z|))
    is exact to rounding everywhere and its autograd derivative is the logistic function.
    """
    return torch.logaddexp(z, torch.zeros_like(z))


def margin_loss(x: torch.Tensor, omega: float) -> torch.Tensor:
    """f(x, ω) = −x/2 + log(2 cosh(ω x)) / (2ω), Eq. (8), elementwise, computed as softplus(−2ωx)/(2ω).

    The identity log(2 cosh z) = z + log(1 + e^(−2z)) turns the difference of two large numbers
    (−x/2 + x/2 + tiny for ω x ≫ 1, where the naive form returns 0 or garbage) into one softplus.
    """
    omega = float(omega)
    if not (math.isfinite(omega) and omega > 0):
        raise CommitteeError(f"loss scale omega must be finite and > 0, got {omega}")
    return softplus(-2.0 * omega * x) / (2.0 * omega)


def margin_loss_grad(x: torch.Tensor, omega: float) -> torch.Tensor:
    """∂f/∂x = −1/2 + tanh(ω x)/2 = −σ(−2ωx), σ the logistic function (closed form, used by tests)."""
    return -torch.sigmoid(-2.0 * float(omega) * x)
