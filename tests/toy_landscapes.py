"""Toy landscapes with a wide and a narrow minimum, for the entropic-optimizer tests.

Points x ∈ R^D (D = 1 or 2; a tensor (n, D) holds n independent systems, the loss sums them):

    L(x) = −D_w exp(−‖x‖²/(2 s_w²)) − D_n exp(−‖x − x_n‖²/(2 s_n²)),   x_n = (X_N, 0, ...)

a wide well at the origin (width s_w = 1) and a narrow well (width s_n ≪ s_w) on its flank.
Gradient descent started at the narrow minimum stays there; the wide minimum is the origin.
A "mini-batch" adds gradient noise σ ξ·x, ξ ~ N(0, I), drawn from a torch generator.
"""

from __future__ import annotations

import torch

D_W, S_W = 1.0, 1.0


class Landscape:
    """Wide well (depth D_W, width S_W) at 0 and a narrow one (depth d_n, width s_n) at (x_n, 0, …)."""

    def __init__(self, d_n: float = 0.5, s_n: float = 0.06, x_n: float = 1.6):
        self.d_n, self.s_n, self.x_n = d_n, s_n, x_n

    def center_n(self, x: torch.Tensor) -> torch.Tensor:
        c = torch.zeros(x.shape[-1], dtype=x.dtype)
        c[0] = self.x_n
        return c

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        wide = -D_W * torch.exp(-x.pow(2).sum(-1) / (2 * S_W**2))
        narrow = -self.d_n * torch.exp(-(x - self.center_n(x)).pow(2).sum(-1) / (2 * self.s_n**2))
        return (wide + narrow).sum()

    def narrow_min(self, dim: int = 1) -> torch.Tensor:
        """Position of the narrow local minimum (gradient descent from x_n)."""
        x = torch.zeros(dim, dtype=torch.float64)
        x[0] = self.x_n
        x.requires_grad_(True)
        for _ in range(2000):
            g, = torch.autograd.grad(self.loss(x), x)
            with torch.no_grad():
                x -= 1e-3 * g
        return x.detach()

    def in_wide(self, x: torch.Tensor, tol: float = 0.5) -> torch.Tensor:
        return x.norm(dim=-1) < tol

    def in_narrow(self, x: torch.Tensor, tol: float = 0.15) -> torch.Tensor:
        return (x - self.center_n(x)).norm(dim=-1) < tol

    def closure(self, x: torch.Tensor, sigma: float, gen: torch.Generator):
        """Optimizer-style closure: fresh "mini-batch" noise σ ξ, loss, backward, return loss."""

        def closure():
            xi = torch.randn(x.shape, generator=gen, dtype=x.dtype)
            value = self.loss(x) + sigma * (xi * x).sum()
            value.backward()
            return value.detach()

        return closure


def sgd(land: Landscape, x0: torch.Tensor, lr: float, steps: int, sigma: float, seed: int) -> torch.Tensor:
    """Plain SGD (torch) from x0 (n, D): the baseline that falls into the narrow minimum."""
    x = torch.nn.Parameter(x0.clone())
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD([x], lr=lr)
    closure = land.closure(x, sigma, gen)
    for _ in range(steps):
        opt.zero_grad()
        opt.step(closure)
    return x.detach()
