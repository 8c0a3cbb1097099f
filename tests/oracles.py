"""Hand-written numpy oracles of paper 000's Algorithm 2, shared by the tests of both of its
implementations (``entropic.Replicated`` and the committee trainer), so that both follow one
reading of the paper, coupling phase included.

Algorithm 2 (Replicated-SGD), as printed:

    for t = 1, 2, ...:
        w̄ ← (1/y) Σ_a w_a
        for a = 1..y:
            dw_a ← ∇L(w_a; Ξ_a,t)
            if t ≡ 0 mod K:  dw_a ← dw_a + K γ (w_a − w̄)
            w_a ← w_a − η dw_a

The first coupling is at step t = K (with K = 1: every step).
"""

import numpy as np


def algorithm2(W, grad, eta, K, gamma, steps, t0=0, project=None):
    """Run ``steps`` steps of Algorithm 2 from the replicas W (y, ...) and return them (a copy).

    ``grad(a, t, w)``: the mini-batch gradient of replica a at step t (1-based) at weights w;
    ``gamma(t)``: γ at step t; ``t0``: steps already done (the next one is t0 + 1);
    ``project``: applied to each replica after its update (e.g. the committee's unit norm).
    """
    W = np.array(W, dtype=np.float64, copy=True)
    for t in range(t0 + 1, t0 + steps + 1):
        centre = W.mean(0)
        new = np.empty_like(W)
        for a in range(W.shape[0]):
            d = grad(a, t, W[a])
            if t % K == 0:
                d = d + K * gamma(t) * (W[a] - centre)
            w = W[a] - eta * d
            new[a] = project(w) if project is not None else w
        W = new
    return W
