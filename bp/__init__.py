"""Belief Propagation local entropy of committee-machine solutions (numpy, numba, scipy only).

Public API (BP.md): `free_entropy` (Bethe free entropy φ_G(Δ) under a Gaussian prior centred on a
reference), `local_entropy_curve` (scan over Δ + Legendre transform into s(d)), `output_channel`
(the exact committee output factor), and `BPError`. `bp.instances` builds small instances with a known
solution (planted patterns, the least-action rule) for tests, benchmarks and examples.
"""

from localentropy.bp.curve import LocalEntropyCurve, ball_entropy, local_entropy_curve, normalize_reference, shell_entropy
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
    "free_entropy",
    "local_entropy_curve",
    "normalize_reference",
    "output_channel",
    "shell_entropy",
]
