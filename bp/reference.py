"""Plain-numpy oracle of the per-edge BP sweep and Bethe free entropy (docs/bp.md §9), for the tests.

Same algorithm as bp.edge (block schedule, cavity-mean expansion, A = x² a), written with whole-array
numpy operations and the scipy output channel (K separate count DPs), so that the compiled kernels
can be checked against an independent implementation. Slow: (P,K,N) temporaries per block.
"""

from __future__ import annotations

import numpy as np

from localentropy.bp.output import output_channel_numpy


def sweep_numpy(X, y, Wt, Delta, beta, eta, blocks, a, B):
    """One sweep in place on (a (P,K), B (P,K,N)) with the given list of pattern-index blocks (§3.6).

    Returns the marginal means m (K,N) and the smallest cavity precision met.
    """
    P, N = X.shape
    X2 = X * X
    Lam = 1.0 / Delta + np.einsum("pn,pk->kn", X2, a)
    Xi = Wt / Delta + B.sum(axis=0)
    minlc = np.inf
    for idx in blocks:
        A_old = X2[idx, None, :] * a[idx, :, None]  # (b,K,N)
        Lc = Lam[None] - A_old
        minlc = min(minlc, float(Lc.min()))
        mc = (Xi[None] - B[idx]) / Lc
        omega = np.einsum("bkn,bn->bk", mc, X[idx]) / np.sqrt(N)
        V = np.maximum(np.einsum("bkn,bn->bk", 1.0 / Lc, X2[idx]) / N, 1e-300)
        _, g, Gam = output_channel_numpy(omega, V, y[idx], beta)
        a_new = Gam / N
        a_d = eta * a[idx] + (1 - eta) * a_new
        B_new = X[idx, None, :] * g[:, :, None] / np.sqrt(N) + X2[idx, None, :] * a_new[:, :, None] * mc
        B_d = eta * B[idx] + (1 - eta) * B_new
        Xi = Xi + (B_d - B[idx]).sum(axis=0)
        Lam = Lam + (X2[idx, None, :] * (a_d - a[idx])[:, :, None]).sum(axis=0)
        B[idx] = B_d
        a[idx] = a_d
    return Xi / Lam, minlc


def bethe_numpy(X, y, Wt, Delta, beta, a, B):
    """(F_Bethe, Σ_ki[(m−w̃)² + v]) at the messages (a, B), closed forms of §4."""
    P, N = X.shape
    X2 = X * X
    A = X2[:, None, :] * a[:, :, None]
    SA = A.sum(axis=0)
    SB = B.sum(axis=0)
    Lam = 1.0 / Delta + SA
    Xi = Wt / Delta + SB
    Lc = Lam[None] - A
    vc = 1.0 / Lc
    mc = (Xi[None] - B) * vc
    omega = np.einsum("pkn,pn->pk", mc, X) / np.sqrt(N)
    V = np.maximum(np.einsum("pkn,pn->pk", vc, X2) / N, 1e-300)
    lnZ, _, _ = output_channel_numpy(omega, V, y, beta)
    av = A * vc
    F_edge = -0.5 * np.log1p(av) + (B * mc - 0.5 * A * mc**2 + 0.5 * vc * B**2) / (1 + av)
    den = 1 + Delta * SA
    F_var = -0.5 * np.log1p(Delta * SA) + (SB * Wt - 0.5 * SA * Wt**2 + 0.5 * Delta * SB**2) / den
    F = lnZ.sum() + F_var.sum() - F_edge.sum()
    sq = np.sum((Delta * (SB - SA * Wt) / den) ** 2 + Delta / den)
    return float(F), float(sq)
