"""The Legendre transform from a Gaussian-prior free entropy to the local entropy (pure numpy).

Shared by BP (``bp.curve``) and the sampling estimator (``entropic.smc``), which must not
import each other (bp stays free of torch, entropic of bp): one copy of the formulas, in one place,
like ``committee_sign``. Conventions of docs/bp.md §5 (paper 000, Eq. 3 and App. B.1): φ_G(Δ) =
(1/n) ln Prob_{w ~ N(w̃, ΔI)}[constraint], δ(Δ) = ⟨½‖w − w̃‖²⟩/n under that constrained Gaussian.
"""

from __future__ import annotations

import numpy as np


def shell_entropy(phi_G, delta, Delta):
    """s = φ_G − ½ ln(2δ/Δ) + δ/Δ − ½ (docs/bp.md §5.2), as φ_G − ½ log1p(r) + r/2 with r = 2δ/Δ − 1:
    at small Δ, δ ≈ Δ/2 and the naive form loses the O(r²) remainder to cancellation."""
    r = 2.0 * np.asarray(delta) / np.asarray(Delta) - 1.0
    return np.asarray(phi_G) - 0.5 * np.log1p(r) + 0.5 * r


def ball_entropy(delta, s):
    """Φ_ball(δ_j) = max_{δ_i ≤ δ_j} [s_i + ½ ln(δ_i/δ_j)] over the finite sampled points (docs/bp.md §5.4)."""
    delta = np.asarray(delta, dtype=np.float64)
    s = np.asarray(s, dtype=np.float64)
    out = np.full_like(s, np.nan)
    ok = np.isfinite(delta) & np.isfinite(s) & (delta > 0)
    for j in np.flatnonzero(ok):
        cand = ok & (delta <= delta[j])
        out[j] = np.max(s[cand] + 0.5 * np.log(delta[cand] / delta[j]))
    return out
