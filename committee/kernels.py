"""Elementwise passes of the committee trainers on the CPU, fused into one pass each (Numba).

Between and after their GEMMs the trainers run chains of short elementwise torch operations over the
(networks·K, N) weights. Each is a pass through memory with its own dispatch; fused, the row of one
hidden unit stays in L1 between the two loops that touch it:

- ``sgld_tail_``, the tail of an eSGD inner step (paper 000, Alg. 1, lines 5–7), about ten torch
  passes: w′ ← (w′ + c w + s z) / ‖w′ + c w + s z‖, then μ ← μ + a (w′ − μ);
- ``add_unit_``, the end of an SGD or rSGD step (the coupling's centre term of Alg. 2, then every
  hidden unit back to unit norm), three to four passes: u ← (u + c ū) / ‖u + c ū‖.

The arithmetic is the torch sequence's up to rounding (the norm's sum reassociated for SIMD, a
multiply by the reciprocal norm); each row is processed alone by the same code, so a restart's numbers
do not depend on the other restarts of the batch. Compiled on first use and cached by Numba.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np
import torch

_FLAGS = {"reassoc", "nsz"}  # SIMD sums (their order follows the CPU's vector width); no FMA contraction


@nb.njit(cache=True, fastmath=_FLAGS, error_model="numpy")
def _tail(wp, w, z, noisy, c, s, mu, a):
    R, N = wp.shape
    c = wp.dtype.type(c)
    s = wp.dtype.type(s)
    a = wp.dtype.type(a)
    for r in range(R):
        ss = wp.dtype.type(0.0)
        if noisy:
            for i in range(N):
                v = wp[r, i] + c * w[r, i] + s * wp.dtype.type(z[r, i])
                wp[r, i] = v
                ss += v * v
        else:
            for i in range(N):
                v = wp[r, i] + c * w[r, i]
                wp[r, i] = v
                ss += v * v
        inv = wp.dtype.type(1.0) / math.sqrt(ss)
        for i in range(N):
            v = wp[r, i] * inv
            wp[r, i] = v
            mu[r, i] += a * (v - mu[r, i])


@nb.njit(cache=True, fastmath=_FLAGS, error_model="numpy")
def _add_unit(u, centre, has_centre, c):
    R, N = u.shape
    M = centre.shape[0]
    c = u.dtype.type(c)
    for r in range(R):
        ss = u.dtype.type(0.0)
        if has_centre:
            m = r % M
            for i in range(N):
                v = u[r, i] + c * centre[m, i]
                u[r, i] = v
                ss += v * v
        else:
            for i in range(N):
                v = u[r, i]
                ss += v * v
        inv = u.dtype.type(1.0) / math.sqrt(ss)
        for i in range(N):
            u[r, i] *= inv


_NO_NOISE = np.zeros((1, 1), np.float32)


def usable(*tensors: torch.Tensor) -> bool:
    """Whether the fused kernels apply: CPU tensors, float32/float64, contiguous, no autograd."""
    return all(x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64) and x.is_contiguous()
               and not x.requires_grad for x in tensors)


def sgld_tail_(wp: torch.Tensor, w: torch.Tensor, z: torch.Tensor | None, c: float, s: float,
               mu: torch.Tensor, a: float) -> None:
    """w′ ← (w′ + c w + s z) / ‖w′ + c w + s z‖ per hidden unit (last axis), then μ ← μ + a (w′ − μ);
    all of the same shape (…, N), contiguous; z (float32) may be None (no noise)."""
    N = wp.shape[-1]
    zz = _NO_NOISE if z is None else z.view(-1, N).numpy()
    _tail(wp.view(-1, N).numpy(), w.view(-1, N).numpy(), zz, z is not None, float(c), float(s),
          mu.view(-1, N).numpy(), float(a))


def add_unit_(u: torch.Tensor, centre: torch.Tensor | None = None, c: float = 0.0) -> None:
    """u ← (u + c ū) / ‖u + c ū‖ per hidden unit (last axis), in place; u (C, …, N) contiguous and
    ``centre`` (…, N) of u's dtype, the same for each of u's C leading copies (rSGD's replicas), or None."""
    N = u.shape[-1]
    cc = u.view(-1, N)[:1] if centre is None else centre.reshape(-1, N)
    _add_unit(u.view(-1, N).numpy(), cc.numpy(), centre is not None, float(c))
