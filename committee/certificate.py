"""A proof that every gradient coefficient of the committee loss is exactly zero near given weights.

Late in the slow settings β and ω are so large that exp(2ωm) overflows to +inf at every training
pattern, so f′(m) = −1/(1 + e^(2ωm)) is exactly 0 and so is every coefficient of the mini-batch
gradient (``train._coef_shared``): the step's gradient product adds nothing, and the trainer skips
it. It still had to compute the fields λ = u·ξ of the batch to see that. A ``ZeroCertificate`` makes
that forward product unnecessary too: computed once from the fields of the whole training set at
weights U0 and (β0, ω0), it gives a radius R such that, for any weights U with ‖u_h − u0_h‖ ≤ R for
every hidden unit h and any β ≥ β0, ω ≥ ω0, the trainer's own floating-point computation of every
coefficient of every pattern gives exactly 0. So a step certified by it does exactly what the
trainer's zero-gradient skip does, without the gather and the forward product: the weights are
bitwise those of the uncertified run.

The bound, per network and pattern μ (s_h = y^μ λ0_h, ‖ξ‖ ≤ X = max_μ ‖ξ^μ‖, e = rounding of λ):
|λ_h − λ0_h| ≤ R X + e, so a unit with s_h − R X − e > 0 keeps
y^μ tanh(βλ_h) ≥ tanh(β0 (s_h − R X − e))
(β ≥ β0), any other unit contributes at least −1; the margin m ≥ (1/√K) Σ_h (those) − slack, and the
coefficient is exactly 0 when 2ωm ≥ ln(max float) + 1 (the exponential overflows whatever the libm).
Or, for a pattern some network misclassifies: every unit keeps β|λ_h| ≥ ``saturation`` (tanh(βλ_h) is
exactly ±1, so 1 − t² = 0 whatever f′), which holds while |λ0_h| − R X − e ≥ saturation/β0.
Rounding: e = 4 γ_N X (‖u0‖ + R) with γ_N = N ε/(1 − N ε) (the trainer's product and this reference one),
and a few ε of the run's dtype per tanh, product and sum. R is the largest radius meeting the bound
at every pattern (bisection: the bound falls with R).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch

BISECTIONS = 40


def saturation(dtype) -> float:
    """A |x| beyond which the dtype's tanh(x) is exactly ±1: where the true 1 − |tanh x| ≈ 2e^(−2|x|) is
    e^(−20) of the half-spacing of floats below 1 (ε/4). An assumption on the tanh implementation (it
    holds for every libm and SLEEF; ``test_tanh_is_exactly_one_beyond_saturation`` checks this machine's
    scalar and vectorised tanh)."""
    return 0.5 * math.log(8.0 / torch.finfo(dtype).eps) + 10.0


@dataclass
class ZeroCertificate:
    U0: torch.Tensor  # (..., K, N) the weights it was computed at (a copy)
    beta: float
    omega: float
    radius: float  # ‖u_h − u0_h‖ ≤ radius for every unit h keeps every coefficient exactly 0
    key: tuple  # which networks (the trainer's active restarts)

    def covers(self, U: torch.Tensor, beta: float, omega: float, key: tuple,
               buffer: Optional[torch.Tensor] = None) -> bool:
        """Whether the certificate holds for weights ``U`` at (β, ω): same networks, β ≥ β0, ω ≥ ω0,
        every unit within ``radius`` of U0 (its distance computed with a relative rounding margin)."""
        if key != self.key or U.shape != self.U0.shape or beta < self.beta or omega < self.omega:
            return False
        diff = torch.sub(U, self.U0, out=buffer) if buffer is not None else U - self.U0
        drift = float(torch.linalg.vector_norm(diff, dim=-1).max())
        return drift * (1 + 1e-6) + 1e-300 <= self.radius


def certify(U: torch.Tensor, X: torch.Tensor, y: torch.Tensor, beta: float, omega: float, key: tuple = ()
            ) -> Optional[ZeroCertificate]:
    """A certificate at weights ``U`` (..., K, N) of unit-norm hidden units, patterns X (P, N), labels
    y (P,) ±1, and (β, ω); None when the bound fails at radius 0 (some coefficient may be non-zero)."""
    if not (math.isfinite(beta) and math.isfinite(omega)) or beta <= 0 or omega <= 0:
        return None
    K, N = U.shape[-2:]
    eps = torch.finfo(U.dtype).eps
    if N * eps >= 0.5:
        return None
    xmax = float(torch.linalg.vector_norm(X.double(), dim=-1).max())
    umax = float(torch.linalg.vector_norm(U.double(), dim=-1).max())
    gamma_n = N * eps / (1.0 - N * eps)
    lam = X.double() @ U.double().reshape(-1, N).T  # (P, M·K): the fields of every pattern, float64
    s = (lam * y.double()[:, None]).view(X.shape[0], -1, K)  # y λ per (pattern, network, unit)
    c = 1.0 / math.sqrt(K)
    need = (math.log(torch.finfo(U.dtype).max) + 1.0) / (2.0 * omega * (1.0 - 8.0 * eps))
    tanh_slack, sum_slack = 8.0 * eps, 8.0 * K * eps

    sat = saturation(U.dtype) / (beta * (1.0 - 8.0 * eps))  # |λ| beyond which tanh(βλ) is exactly ±1
    pairs = s.reshape(-1, K)  # one row per (pattern, network)

    def hold(rows: torch.Tensor, R: float) -> torch.Tensor:
        """Per row: whether every coefficient stays exactly 0 at any weights within R."""
        err = 4.0 * gamma_n * xmax * (umax + R) * (1.0 + 1e-6)  # rounding of λ by either product
        x = rows - (R * xmax + err)  # lower bound on y λ_h at any weights within R
        contrib = torch.where(x > 0, torch.tanh(beta * (1.0 - 8.0 * eps) * x) - tanh_slack, torch.full_like(x, -1.0))
        margin = c * contrib.sum(-1) - sum_slack >= need  # f′ = 0: e^(2ωm) overflows
        saturated = ((rows.abs() - (R * xmax + err)) >= sat).all(-1)  # tanh′ = 0 at every unit (same sign kept)
        return margin | saturated

    if not bool(hold(pairs, 0.0).all()):
        return None
    # bisection on R; a row that holds at R holds below it, so after a failure only the failing rows matter
    lo, hi = 0.0, max(float(pairs.max()), 0.0) / xmax  # at hi every unit may flip: the bound fails there
    rows = pairs
    for _ in range(BISECTIONS):
        mid = 0.5 * (lo + hi)
        ok = hold(rows, mid)
        if bool(ok.all()):
            lo = mid
        else:
            rows, hi = rows[~ok], mid
    return ZeroCertificate(U.detach().clone(), float(beta), float(omega), lo, tuple(key))
