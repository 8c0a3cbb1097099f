"""Sharpness-Aware Minimization (Foret et al., 2021), in the closure style of davda54/sam.

SAM minimises max_{‖ε‖ ≤ ρ} L(w + ε) with the first-order ascent step
ε̂ = ρ g / ‖g‖ (``adaptive=True``: ε̂ = ρ w² ⊙ g / ‖|w| ⊙ g‖, Kwon et al.'s ASAM), then applies
the wrapped base optimizer with the gradient taken at w + ε̂. A baseline for the flat-minimum
optimizers of paper 000.
"""

from __future__ import annotations

import math

import torch

from localentropy.entropic.errors import EntropicError

__all__ = ["SAM"]


class SAM(torch.optim.Optimizer):
    """SAM wrapping a base optimizer: ``SAM(params, torch.optim.SGD, rho=0.05, adaptive=False, lr=..., ...)``.

    ``base_optimizer`` is a torch optimizer class; extra keyword arguments go to it, and it
    shares SAM's ``param_groups`` (LR schedulers may wrap either). ``step(closure)`` calls the
    closure twice, at w and at w + ε̂: unlike :class:`entropic.EntropySGD`'s, the closure must
    evaluate the *same* mini-batch each time (fetch the batch outside it). Gradients are zeroed
    before each call; the closure computes the loss, calls backward and returns the loss.
    ``step`` returns the loss at w. ``first_step``/``second_step`` are public for manual use.
    """

    def __init__(self, params, base_optimizer=torch.optim.SGD, rho: float = 0.05, adaptive: bool = False, **kwargs):
        try:
            rho_f = float(rho)
        except (TypeError, ValueError):
            raise EntropicError(f"rho must be a number, got {rho!r}") from None
        if not (math.isfinite(rho_f) and rho_f >= 0):
            raise EntropicError(f"rho must be finite and >= 0, got {rho}")
        if not (isinstance(base_optimizer, type) and issubclass(base_optimizer, torch.optim.Optimizer)):
            raise EntropicError(f"base_optimizer must be a torch optimizer class, got {base_optimizer!r}")
        defaults = dict(rho=rho_f, adaptive=bool(adaptive), **kwargs)
        super().__init__(params, defaults)
        try:
            self.base_optimizer = base_optimizer(self.param_groups, **kwargs)
        except ValueError as e:
            raise EntropicError(f"base optimizer rejected its arguments: {e}") from None
        self.param_groups = self.base_optimizer.param_groups
        self.defaults.update(self.base_optimizer.defaults)

    def _grad_norm(self) -> torch.Tensor:
        norms = [((p.abs() if g["adaptive"] else 1.0) * p.grad).norm(p=2)
                 for g in self.param_groups for p in g["params"] if p.grad is not None]
        if not norms:
            raise EntropicError("SAM: no parameter has a gradient after the closure")
        device = norms[0].device
        return torch.stack([n.to(device) for n in norms]).norm(p=2)

    @torch.no_grad()
    def first_step(self, zero_grad: bool = False) -> None:
        """w ← w + ε̂ with ε̂ = ρ (w² ⊙) g / ‖(|w| ⊙) g‖; remembers w."""
        grad_norm = self._grad_norm()
        for g in self.param_groups:
            scale = g["rho"] / (grad_norm + 1e-12)
            for p in g["params"]:
                if p.grad is None:
                    continue
                self.state[p]["old_p"] = p.detach().clone()
                e_w = (p.pow(2) if g["adaptive"] else 1.0) * p.grad * scale.to(p)
                p.add_(e_w)
        if zero_grad:
            self.zero_grad()

    @torch.no_grad()
    def second_step(self, zero_grad: bool = False) -> None:
        """Back to w, then the base optimizer's step with the gradient taken at w + ε̂."""
        for g in self.param_groups:
            for p in g["params"]:
                if "old_p" in self.state[p]:
                    p.copy_(self.state[p]["old_p"])
        self.base_optimizer.step()
        if zero_grad:
            self.zero_grad()

    @torch.no_grad()
    def step(self, closure=None):
        if closure is None:
            raise EntropicError("SAM.step needs a closure (it evaluates the mini-batch twice)")
        self.zero_grad(set_to_none=True)
        with torch.enable_grad():
            loss = closure()
        self.first_step(zero_grad=True)
        with torch.enable_grad():
            closure()
        self.second_step()
        return loss

    def state_dict(self) -> dict:
        """SAM's own state (w of the last ascent) plus the base optimizer's under ``"base"``: the momentum
        buffers live in the base optimizer, and a resumed run needs them to continue exactly."""
        sd = super().state_dict()
        sd["base"] = self.base_optimizer.state_dict()
        return sd

    def load_state_dict(self, state_dict) -> None:
        sd = dict(state_dict)
        base = sd.pop("base", None)
        super().load_state_dict(sd)
        if base is not None:
            self.base_optimizer.load_state_dict(base)
            self.param_groups = self.base_optimizer.param_groups
        else:
            self.base_optimizer.param_groups = self.param_groups
