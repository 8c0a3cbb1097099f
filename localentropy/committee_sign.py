"""The committee machine's exact output and its two conventions, in one place for every package.

Paper 000, Eq. (7): ŷ(ξ) = sign(Σ_k sign(λ_k)) with λ_k = w_k·ξ/√N (the 1/√K and the 1/√N do not
change a sign). Conventions used by training, evaluation and BP's check of a reference:

- **sign(0) = +1**, at both layers. For real-valued weights λ_k = 0 has probability zero; the rule
  only has to be the same everywhere, so that "classifies every training pattern" means one thing.
- **K odd**, so the vote of the K hidden units never ties.

The functions use only comparison and arithmetic operators, so they take numpy arrays and torch
tensors alike (this module imports neither; ``bp`` stays free of torch).
"""

from __future__ import annotations


def sign(t):
    """+1 where t ≥ 0, −1 elsewhere (sign(0) = +1), as integers of the input's array library."""
    return (t >= 0) * 2 - 1


def committee_output(fields):
    """ŷ = sign(Σ_k sign(λ_k)) ∈ {−1, +1} from the hidden fields λ, shape (..., K) → (...)."""
    return sign(sign(fields).sum(-1))


def misclassified(fields, y):
    """Boolean mask of the patterns whose committee output differs from the label y (±1)."""
    return committee_output(fields) != y


def check_odd_K(K, error: type[Exception] = ValueError) -> int:
    """K as an int if it is a positive odd integer (no tie in the vote); otherwise raise ``error``."""
    try:
        ok = int(K) == K and K >= 1 and int(K) % 2 == 1
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise error(f"the number of hidden units K must be a positive odd integer (majority vote), got K={K}")
    return int(K)
