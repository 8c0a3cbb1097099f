"""Layer training signal and layer temperature, paper 002 Eq. 2 and Figure 1.

For layer I with weights Ω_I (the N_I weights connecting it with its inputs; biases excluded)

    s_I = (1/N_I) Σ_{ω ∈ Ω_I} ‖∇_ω L(W)‖₂ ,

where each ω is a single weight, so ‖∇_ω L‖₂ = |∂L/∂ω| and s_I is the mean absolute gradient
of the layer's weights on one mini-batch. Its mean over the mini-batches of an epoch is the
layer's training signal, its standard deviation the noise ("layer temperature").

Use as a callback: ``signal.update()`` after ``loss.backward()`` (before ``zero_grad``) reads
the ``.grad`` of the chosen weights; ``summary()`` gives per-layer mean and std; ``reset()``
starts a new epoch (appending the finished epoch's summary to ``history`` when asked).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from localentropy.entropic.errors import EntropicError
from localentropy.entropic.params import Selection, layer_name, select_parameters


@dataclass(frozen=True)
class LayerStats:
    """One layer's training signal over the updates since the last reset (002, Eq. 2).

    signal: mean of s_I over mini-batches; noise: its sample standard deviation (ddof = 1; NaN
    for a single update); count: number of updates; weights: N_I.
    """

    signal: float
    noise: float
    count: int
    weights: int


class LayerSignal:
    """Per-layer training signal s_I (002, Eq. 2), its mean (signal) and std (noise) over batches.

    ``LayerSignal(model, params=None, include_biases=False, history=False)``. Layers are the owning
    modules of the selected parameters (by default every weight, so one layer per weight matrix
    or kernel); ``include_biases=True`` adds a module's bias to its layer's N_I.
    """

    def __init__(self, model: nn.Module, params: Selection = None, *, include_biases: bool = False,
                 history: bool = False):
        chosen = select_parameters(model, params, include_biases=include_biases)
        self.layers: dict[str, list[nn.Parameter]] = {}
        for name, p in chosen.items():
            self.layers.setdefault(layer_name(name), []).append(p)
        self.weights = {k: sum(p.numel() for p in ps) for k, ps in self.layers.items()}
        self.keep_history = bool(history)
        self.history: list[dict[str, LayerStats]] = []
        self.last: dict[str, float] = {}
        self.reset(_record=False)

    def __repr__(self) -> str:
        return f"LayerSignal(layers={list(self.layers)})"

    def update(self) -> dict[str, float]:
        """Add one mini-batch: s_I from the current ``.grad`` of each layer; returns {layer: s_I}.

        A layer none of whose weights has a gradient (unused in this step) is skipped.
        """
        names, values = [], []
        for k, ps in self.layers.items():
            grads = [p.grad for p in ps if p.grad is not None]
            if not grads:
                continue
            if any(g.is_sparse for g in grads):
                raise EntropicError(f"layer {k!r} has a sparse gradient; LayerSignal needs dense gradients")
            total = sum(g.detach().abs().sum(dtype=torch.float64) for g in grads)
            names.append(k)
            values.append(total / self.weights[k])
        if not names:
            self.last = {}
            return {}
        s = torch.stack([v.to(values[0].device) for v in values]).tolist()  # one device sync
        self.last = dict(zip(names, s))
        for k, v in self.last.items():
            if not math.isfinite(v):
                raise EntropicError(f"layer {k!r} has a non-finite gradient (s_I = {v})")
            # Welford's update: stable mean and variance in one pass
            n, mean, m2 = self._acc[k]
            n += 1
            d = v - mean
            mean += d / n
            m2 += d * (v - mean)
            self._acc[k] = (n, mean, m2)
        return dict(self.last)

    __call__ = update

    def summary(self) -> dict[str, LayerStats]:
        """{layer: LayerStats(signal, noise, count, weights)} over the updates since the last reset."""
        out = {}
        for k, (n, mean, m2) in self._acc.items():
            if n == 0:
                out[k] = LayerStats(math.nan, math.nan, 0, self.weights[k])
            else:
                std = math.sqrt(m2 / (n - 1)) if n > 1 else math.nan
                out[k] = LayerStats(mean, std, n, self.weights[k])
        return out

    def reset(self, _record: bool = True) -> None:
        """Start a new epoch; with ``history=True`` the finished epoch's summary goes to ``history``."""
        if _record and self.keep_history and any(n > 0 for n, _, _ in self._acc.values()):
            self.history.append(self.summary())
        self._acc = {k: (0, 0.0, 0.0) for k in self.layers}
