"""Belief Propagation local entropy of committee-machine solutions (numpy, numba, scipy only).

Public API (docs/bp.md): `free_entropy` (Bethe free entropy φ_G(Δ) under a Gaussian prior centred on a
reference), `local_entropy_curve` (scan over Δ + Legendre transform into s(d); `method="ep"`:
expectation propagation with a full-covariance Gaussian per hidden unit, bp/ep.py), `output_channel`
(the exact committee output factor), `check_deltas` (the check of a Δ grid, which committee's pipeline
shares), and `BPError`. `bp.instances` builds small instances with a known solution (planted patterns,
the least-action rule) for tests, benchmarks and examples.

`needs_compilation()` / `compile_kernels()` (bp.compilation): whether the Numba kernels still have to be
compiled on this machine, and compiling them ahead of the first curve. The kernel modules are imported
under `kernel_cache()`, which puts their machine code in a folder keyed by a hash of bp's sources.
"""

from localentropy.bp.compilation import cache_dir, compile_kernels, kernel_cache, needs_compilation

with kernel_cache():  # before any kernel module: Numba fixes each function's cache folder at decoration
    from localentropy.bp.curve import (LocalEntropyCurve, ball_entropy, check_deltas, default_deltas,
                                       local_entropy_curve, normalize_reference, shell_entropy)
    from localentropy.bp.edge import EdgeState
    from localentropy.bp.errors import BPError
    from localentropy.bp.free_entropy import FreeEntropy, free_entropy
    from localentropy.bp.output import output_channel

__all__ = [
    "BPError",
    "EdgeState",
    "FreeEntropy",
    "LocalEntropyCurve",
    "ball_entropy",
    "cache_dir",
    "check_deltas",
    "compile_kernels",
    "default_deltas",
    "free_entropy",
    "local_entropy_curve",
    "needs_compilation",
    "normalize_reference",
    "output_channel",
    "shell_entropy",
]
