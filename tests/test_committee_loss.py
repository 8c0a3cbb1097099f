"""The loss of Eq. 8 against 400-digit arithmetic, and gradients of the training objective against
finite differences."""

import math

import mpmath
import numpy as np
import pytest
import torch

from localentropy.committee.errors import CommitteeError
from localentropy.committee.loss import margin_loss, margin_loss_grad
from localentropy.committee.model import surrogate_output


def _f_mp(x, omega):
    """f(x, ω) = −x/2 + log(2 cosh(ωx))/(2ω) in 400-digit arithmetic (enough for the cancellation), Eq. 8."""
    with mpmath.workdps(400):
        return _f_raw(mpmath.mpf(x), mpmath.mpf(omega))


def _f_raw(x, omega):
    return -x / 2 + mpmath.log(2 * mpmath.cosh(omega * x)) / (2 * omega)


@pytest.mark.parametrize("omega", [0.5, 5.0, 300.0])
def test_loss_matches_high_precision_over_the_whole_range(omega):
    xs = np.array([-50.0, -3.0, -1e-3, 0.0, 1e-9, 0.1, 1.0, 3.0, 20.0, 200.0])
    got = margin_loss(torch.tensor(xs, dtype=torch.float64), omega).numpy()
    for x, g in zip(xs, got):
        exact = float(_f_mp(x, omega))
        assert g == pytest.approx(exact, rel=1e-13, abs=1e-300), (x, omega)
    assert np.all(np.isfinite(got))


def test_loss_tail_keeps_its_digits_where_the_naive_form_cancels():
    x, omega = 10.0, 5.0  # f ≈ e^(−100)/10: the naive −x/2 + log(2cosh)/2ω returns 0
    naive = -x / 2 + math.log(2 * math.cosh(omega * x)) / (2 * omega)
    got = margin_loss(torch.tensor(x, dtype=torch.float64), omega).item()
    assert naive == 0.0 and got == pytest.approx(float(_f_mp(x, omega)), rel=1e-13) and got > 0


def test_loss_limits_are_the_hinge_max_0_minus_x():
    x = torch.linspace(-3, 3, 13, dtype=torch.float64)
    assert torch.allclose(margin_loss(x, 1e4), torch.clamp(-x, min=0), atol=1e-4)


def test_loss_derivative_is_the_logistic_of_minus_2_omega_x():
    x = torch.linspace(-30, 30, 61, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(margin_loss(x, 2.0).sum(), x)
    with mpmath.workdps(400):  # d/dx of Eq. 8 by hand: −1/2 + tanh(ωx)/2, evaluated without cancellation loss
        mp_grad = [float(-mpmath.mpf(1) / 2 + mpmath.tanh(2 * mpmath.mpf(float(v))) / 2) for v in x.detach()[::10]]
    assert torch.allclose(g, margin_loss_grad(x.detach(), 2.0), rtol=1e-14, atol=1e-300)
    assert np.allclose(g.numpy()[::10], mp_grad, rtol=1e-12, atol=1e-300)


def test_training_objective_gradient_matches_central_differences():
    """∂/∂w of Σ_μ f(y^μ ŷ_β(w, ξ^μ), ω) (Eq. 7 surrogate + Eq. 8) vs (F(w+h e) − F(w−h e)) / 2h."""
    rng = np.random.default_rng(0)
    K, N, P = 3, 13, 9
    W = torch.tensor(rng.normal(size=(K, N)), dtype=torch.float64, requires_grad=True)
    X = torch.tensor(rng.choice([-1.0, 1.0], size=(P, N)))
    y = torch.tensor(rng.choice([-1.0, 1.0], size=P))

    def F(w):
        return margin_loss(y * surrogate_output(w, X, 1.7), 3.0).sum()

    (g,) = torch.autograd.grad(F(W), W)
    h = 1e-6
    fd = torch.zeros_like(W)
    with torch.no_grad():
        for k in range(K):
            for i in range(N):
                e = torch.zeros_like(W)
                e[k, i] = h
                fd[k, i] = (F(W + e) - F(W - e)) / (2 * h)
    assert torch.allclose(g, fd, rtol=1e-7, atol=1e-9)


def test_bad_omega_is_rejected():
    with pytest.raises(CommitteeError, match="omega"):
        margin_loss(torch.zeros(2), 0.0)
    with pytest.raises(CommitteeError, match="omega"):
        margin_loss(torch.zeros(2), float("nan"))
