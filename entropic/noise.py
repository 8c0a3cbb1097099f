"""A shared table of standard-normal numbers for SGLD noise (Entropy-SGD's line 6, paper 000 Alg. 1).

Drawing one fresh Gaussian per weight per inner step costs about a third of a small network's
forward and backward pass on a CPU (benchmarks/bench_deep_methods.py measures it). ``NoiseTable``
draws ``size`` normals once and returns, for each parameter and step, a window of the table at a
uniformly random offset (a view: no copy, no arithmetic), as evolution strategies do with their
shared noise table (Salimans et al. 2017). For a fixed weight, the values it receives over steps
are independent picks (with replacement) from a population of ``size`` normals standardised to mean
exactly 0 and variance 1 (so their sums neither drift nor lose variance); two weights share a value at two steps only when the two offsets
differ by exactly their index gap. It is an approximation of i.i.d. noise, chosen by a caller
(``noise_fn=NoiseTable(...)``), never silently.

The table is a function of ``seed`` and ``size`` only (built once per process, dtype and device), the offsets come from ``generator`` (whose state the
optimizer saves), so a resumed run draws the same windows as an uninterrupted one.
"""

from __future__ import annotations

import torch

from localentropy.entropic.errors import EntropicError

DEFAULT_SIZE = 1 << 22
_TABLES: dict = {}  # (seed, size, dtype, device) → table, shared by every NoiseTable of the process


class NoiseTable:
    """``table(p)``: a standard-normal tensor of ``p``'s shape, dtype and device, read from the table."""

    def __init__(self, seed: int, generator: torch.Generator, *, size: int = DEFAULT_SIZE):
        if isinstance(size, bool) or not isinstance(size, int) or size < 2:
            raise EntropicError(f"size must be an int >= 2, got {size!r}")
        if not isinstance(generator, torch.Generator):
            raise EntropicError(f"generator must be a torch.Generator, got {generator!r}")
        self.seed, self.size, self.generator = int(seed), int(size), generator

    def _table(self, dtype, device) -> torch.Tensor:
        key = (self.seed, self.size, dtype, str(device))
        if key not in _TABLES:
            if len(_TABLES) >= 4:  # a few tables (dtypes, devices) at most; the oldest goes
                _TABLES.pop(next(iter(_TABLES)))
            g = torch.Generator().manual_seed(self.seed)
            t = torch.randn(self.size, generator=g, dtype=torch.float64)
            t = (t - t.mean()) / t.std(correction=0)  # population mean exactly 0, variance 1: no drift in sums
            _TABLES[key] = t.to(dtype=dtype, device=device)
        return _TABLES[key]

    def __call__(self, p: torch.Tensor) -> torch.Tensor:
        n = p.numel()
        if n > self.size:
            raise EntropicError(f"a parameter of {n} values does not fit a noise table of {self.size}; "
                                f"use a larger size")
        table = self._table(p.dtype, p.device)
        offset = int(torch.randint(self.size - n + 1, (1,), generator=self.generator,
                                   device=self.generator.device))
        return table[offset:offset + n].view(p.shape)


__all__ = ["NoiseTable", "DEFAULT_SIZE"]
