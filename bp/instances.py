"""Small committee-machine instances with a known solution, for tests, benchmarks and examples.

`planted_instance`: random patterns labelled by a random reference, which therefore classifies them all
(docs/bp.md §7.6, the regime of the direct Monte Carlo checks). `least_action`: a solution of given patterns
by the classical committee least-action rule (docs/bp.md §7.7), a sharp reference for a local-entropy curve.
"""

from __future__ import annotations

import math

import numpy as np

from localentropy.bp.curve import normalize_reference
from localentropy.bp.edge import make_problem
from localentropy.committee_sign import check_odd_K
from localentropy.bp.errors import BPError


def planted_instance(seed, K, N, P, inputs="pm1"):
    """Random patterns, reference w̃_k ~ N(0, I) rescaled to ‖w̃_k‖² = N, labels = committee output of w̃.

    inputs: "pm1" (x_μi = ±1) or "gaussian" (x_μi ~ N(0, 1)). Returns (X (P,N), y (P,), w̃ (K,N)).
    K odd, so the majority vote never ties.
    """
    if inputs not in ("pm1", "gaussian"):
        raise BPError(f"inputs must be 'pm1' or 'gaussian', got {inputs!r}")
    K = check_odd_K(K, BPError)
    rng = np.random.default_rng(seed)
    X = rng.choice([-1.0, 1.0], size=(P, N)) if inputs == "pm1" else rng.normal(size=(P, N))
    Wt = normalize_reference(rng.normal(size=(K, N)))
    y = np.sign(np.sign(X @ Wt.T).sum(axis=1))
    return X, y, Wt


def least_action(X, y, K, seed=0, max_epochs=1000):
    """A committee of K units classifying every pattern, by the classical least-action rule (docs/bp.md §7.7).

    On an error, the wrong-voting unit with the smallest |λ_k| moves towards the label, w_k += y x/√N.
    Returns the solution normalised to ‖w_k‖² = N; BPError if an epoch without errors is not reached
    within max_epochs (the patterns may not be separable by K units).
    """
    if np.ndim(X) != 2:
        raise BPError(f"X must have shape (P, N), got {np.shape(X)}")
    P, N = np.shape(X)
    problem = make_problem(X, y, np.ones((int(K), N)))  # validates X, y and K (odd) as the solvers do
    X, y = problem.X, problem.y
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(K, N))
    for _ in range(max_epochs):
        errors = 0
        for mu in rng.permutation(P):
            lam = W @ X[mu]
            if y[mu] * np.sign(lam).sum() <= 0:
                errors += 1
                wrong = np.flatnonzero(np.sign(lam) != y[mu])
                k = wrong[np.argmin(np.abs(lam[wrong]))]
                W[k] += y[mu] * X[mu] / math.sqrt(N)
        if errors == 0:
            return normalize_reference(W)
    raise BPError(f"the least-action rule did not classify all {P} patterns within {max_epochs} epochs")
