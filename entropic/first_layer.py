"""The first perturbed layer of a network, as a linear map of the perturbation (for `entropic.local_entropy`).

An elliptical slice proposal is θ = θ̃ + √Δ s ⊙ (z cos t + ν sin t). When the first module that holds
selected parameters is linear in them (nn.Linear, nn.Conv1d/2d/3d) and sees the unperturbed input A
(nothing selected acts before it), its output is

    out(θ) = out(θ̃) + √Δ (cos t · L(s ⊙ z) + sin t · L(s ⊙ ν)),   L(u) = the module with parameters u on A,

so its products L(s ⊙ z), L(s ⊙ ν) are computed once per move, and every shrink of the slice bracket, and
every feasibility test of the same particles at another Δ, costs an elementwise combination instead of a
product. `FirstLayer.order_first` finds the layer by tracing one forward pass; the sampler
(`entropic.module_sampling._ModelSpace`) then checks the identity numerically on random perturbations (a model
that uses the parameters elsewhere, or is not deterministic, fails the check and keeps the general path).
"""

from __future__ import annotations

import math
from contextlib import contextmanager

import torch
from torch import nn

LINEAR_MODULES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


class FirstLayer:
    """The first selected module (``name``) of a model: the parameters it owns are the first ``size``
    entries of the selection (``locals``: their names in the module, ``shapes``); ``A``: its input on the
    training set (computed once, unperturbed); ``base``: its output at θ̃ (P, ...)."""

    def __init__(self, name, module, locals_, shapes, A, base):
        self.name, self.module = name, module
        self.locals, self.shapes = locals_, shapes
        self.sizes = [math.prod(s) for s in shapes]
        self.size = sum(self.sizes)
        self.A, self.base = A, base
        self._value = None  # the output the module returns while `replaced` is active

    @staticmethod
    def order_first(model, names, X):
        """``(name, names reordered so that its parameters come first)`` for the first module (in execution
        order) that owns selected parameters, when it is a linear module called once and reading a single
        tensor; otherwise None."""
        mods = dict(model.named_modules())
        owner = {k: k.rpartition(".")[0] for k in names}
        owners = {m for m in owner.values() if m in mods}
        calls = []
        hooks = [mods[m].register_forward_pre_hook(lambda mod, inp, m=m: calls.append((m, len(inp))))
                 for m in owners]  # in the order the modules start (a container before what it holds)
        try:
            with torch.no_grad():
                model(X[:2])
        except Exception:  # noqa: BLE001 (any failure: the general path decides what to report)
            return None
        finally:
            for h in hooks:
                h.remove()
        if not calls:
            return None
        first, n_inputs = calls[0]
        if n_inputs != 1 or sum(1 for m, _ in calls if m == first) != 1 or not isinstance(mods[first], LINEAR_MODULES):
            return None
        mine = [k for k in names if owner[k] == first]
        if any(k.rpartition(".")[2] not in ("weight", "bias") for k in mine):
            return None
        return first, mine + [k for k in names if owner[k] != first]

    @classmethod
    def capture(cls, model, first, names, params, X, batch_size):
        """The module's input and output on all of X at the reference parameters."""
        module = dict(model.named_modules())[first]
        mine = [k for k in names if k.rpartition(".")[0] == first]
        seen = []
        h = module.register_forward_hook(lambda mod, inp, out: seen.append((inp[0].detach(), out.detach())))
        try:
            with torch.no_grad():
                for i in range(0, X.shape[0], batch_size):
                    model(X[i:i + batch_size])
        finally:
            h.remove()
        A = torch.cat([a for a, _ in seen])
        base = torch.cat([o for _, o in seen])
        return cls(first, module, [k.rpartition(".")[2] for k in mine], [params[k].shape for k in mine], A, base)

    def L(self, u, scales=None):
        """The module's output on A with parameters ``u`` (rows, size), each of its tensors multiplied by
        ``scales`` (one number per tensor; None: 1) and its unselected parameters zero: (rows, P, ...)."""
        from torch.func import vmap

        scales = [1.0] * len(self.locals) if scales is None else scales
        pieces = dict(zip(self.locals, torch.split(u.to(self.A.dtype), self.sizes, dim=1)))
        shapes = dict(zip(self.locals, self.shapes))
        scale = dict(zip(self.locals, scales))
        rows = u.shape[0]
        with torch.no_grad():
            if "weight" in pieces:
                w = pieces["weight"].reshape(rows, *shapes["weight"])
                out = vmap(lambda w: self._apply(w, None))(w)
                if scale["weight"] != 1.0:
                    out.mul_(scale["weight"])
            else:
                out = torch.zeros((rows, *self.base.shape), dtype=self.base.dtype, device=self.base.device)
            if "bias" in pieces:  # the bias's output: its value broadcast over the samples (and positions)
                b = pieces["bias"] * scale["bias"]
                out += b.reshape(rows, 1, -1, *([1] * (self.base.dim() - 2)))
        return out

    def _apply(self, w, b):
        """The module's own computation (not its forward, which `replaced` overrides) on A."""
        if isinstance(self.module, nn.Linear):
            return nn.functional.linear(self.A, w, b)
        return self.module._conv_forward(self.A, w, b)

    @contextmanager
    def replaced(self):
        """While active, the module returns ``self._value`` (set per chain) instead of computing."""
        self.module.forward = lambda *args, **kwargs: self._value  # the instance attribute shadows the class's
        try:
            yield self
        finally:
            del self.module.forward
            self._value = None
