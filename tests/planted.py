"""A small planted committee instance shared by the tests that need solutions with zero training error."""

import math

import numpy as np


def planted_committee(K: int, N: int, P: int, seed: int = 0):
    """Random ±1 patterns (P, N) labelled by restart 0 of a (3, K, N) weight stack; restarts 1, 2 are
    perturbations of restart 0 that still classify every pattern. Weights rescaled to ‖w_k‖² = N."""
    rng = np.random.default_rng(seed)
    X = rng.choice([-1, 1], size=(P, N)).astype(np.int8)
    W = rng.normal(size=(3, K, N))
    y = np.sign(np.sign(X @ W[0].T).sum(axis=1)).astype(np.int8)
    for r in (1, 2):
        while True:
            cand = W[0] + 0.05 * rng.normal(size=(K, N))
            if np.all(y * np.sign(X @ cand.T).sum(axis=1) > 0):
                W[r] = cand
                break
    return X, y, W * (math.sqrt(N) / np.linalg.norm(W, axis=2, keepdims=True))
