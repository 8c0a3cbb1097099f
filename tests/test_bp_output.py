"""The committee output factor (docs/bp.md §3.3–3.4) against brute-force enumeration and finite differences."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.special import log_ndtr

from localentropy.bp.errors import BPError
from localentropy.bp.output import log_ndtr_nb, output_channel, output_channel_numpy


def brute_force_lnZ(omega, V, y, beta):
    """ln[e^{−β} + (1−e^{−β}) P(y Σ_k τ_k > 0)], τ_k = sign λ_k, λ_k ~ N(ω_k, V_k): all 2^K configurations."""
    P, K = omega.shape
    out = np.empty(P)
    for mu in range(P):
        t = omega[mu] / np.sqrt(V[mu])
        total = 0.0
        for tau in itertools.product((-1, 1), repeat=K):
            tau = np.array(tau)
            if y[mu] * tau.sum() > 0:
                total += np.exp(np.sum(log_ndtr(tau * t)))
        if np.isfinite(beta):
            total = np.exp(-beta) + (1 - np.exp(-beta)) * total
        out[mu] = np.log(total)
    return out


def random_channel_inputs(rng, P, K, scale=1.5):
    omega = rng.normal(scale=scale, size=(P, K))
    V = rng.uniform(0.3, 2.0, size=(P, K))
    y = rng.choice([-1.0, 1.0], size=P)
    return omega, V, y


@pytest.mark.parametrize("K", [1, 3, 5, 9])
@pytest.mark.parametrize("beta", [np.inf, 2.0])
def test_output_factor_matches_enumeration_of_hidden_configurations(K, beta):
    rng = np.random.default_rng(10 + K)
    omega, V, y = random_channel_inputs(rng, 12 if K < 9 else 5, K)
    lnZ, g, Gam = output_channel(omega, V, y, beta)
    np.testing.assert_allclose(lnZ, brute_force_lnZ(omega, V, y, beta), rtol=0, atol=1e-12)


@pytest.mark.parametrize("K", [1, 3, 5, 9])
@pytest.mark.parametrize("beta", [np.inf, 2.0])
def test_output_derivatives_match_finite_differences_of_enumeration(K, beta):
    """g = ∂_ω ln Z_μ and Γ = −∂²_ω ln Z_μ, with ln Z_μ from brute-force enumeration."""
    rng = np.random.default_rng(20 + K)
    P = 6 if K < 9 else 3
    omega, V, y = random_channel_inputs(rng, P, K)
    _, g, Gam = output_channel(omega, V, y, beta)
    eps = 1e-4
    for k in range(K):
        shift = np.zeros_like(omega)
        shift[:, k] = eps
        fp = brute_force_lnZ(omega + shift, V, y, beta)
        f0 = brute_force_lnZ(omega, V, y, beta)
        fm = brute_force_lnZ(omega - shift, V, y, beta)
        np.testing.assert_allclose(g[:, k], (fp - fm) / (2 * eps), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(Gam[:, k], -(fp - 2 * f0 + fm) / eps**2, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("K", [1, 3, 9])
@pytest.mark.parametrize("beta", [np.inf, 0.5, 8.0])
def test_compiled_channel_matches_numpy_oracle_including_far_tails(K, beta):
    rng = np.random.default_rng(30 + K)
    omega, V, y = random_channel_inputs(rng, 300, K, scale=1.0)
    omega[::3] *= 60.0  # |t| up to ~2e4: Φ(−t) underflows outside log space
    V[1::5] = 1e-5
    a = output_channel(omega, V, y, beta)
    b = output_channel_numpy(omega, V, y, beta)
    for u, v in zip(a, b):
        assert np.all(np.isfinite(u))
        np.testing.assert_allclose(u, v, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("x", [6.0, 30.0, 1e3, 1e5])
def test_perceptron_gamma_far_on_the_wrong_side_follows_the_mills_asymptotics(x):
    """K = 1, t = −x ≪ 0: ΓV = G(G + t) → 1 − 1/x² + 6/x⁴ − 50/x⁶ (from M(x) ~ 1/x − 1/x³ + 3/x⁵ − 15/x⁷);
    the naive G(G + t) loses ~4 log10(x) digits here (docs/bp.md §6.1)."""
    _, _, Gam = output_channel(np.array([[-x]]), np.array([[1.0]]), np.array([1.0]))
    expected = 1 - 1 / x**2 + 6 / x**4 - 50 / x**6
    assert abs(Gam[0, 0] - expected) < 700 / x**8 + 1e-15


def test_log_ndtr_kernel_matches_scipy_in_both_tails():
    t = np.concatenate([np.linspace(-300, 40, 3401), [-20.0, -20.000001, -19.99999, 0.0, 1e-12, -1e-12]])
    ours = np.array([log_ndtr_nb(x) for x in t])
    ref = log_ndtr(t)
    np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-300)


def test_pivotal_decomposition_is_consistent_for_every_unit():
    """𝒵_kμ(ω_kμ) = R_kμ + D_kμ Φ(t_kμ) equals Z_μ for every k (docs/bp.md §3.3 consistency check)."""
    rng = np.random.default_rng(4)
    omega, V, y = random_channel_inputs(rng, 50, 7)
    for beta in (np.inf, 1.0):
        lnZ, _, _, lnR, lnD = output_channel_numpy(omega, V, y, beta, return_terms=True)
        lnp = log_ndtr(y[:, None] * omega / np.sqrt(V))
        np.testing.assert_allclose(np.logaddexp(lnR, lnD + lnp), lnZ[:, None] * np.ones((1, 7)), atol=1e-12)


def test_perceptron_channel_is_inverse_mills_ratio_with_gamma_v_in_unit_interval():
    rng = np.random.default_rng(5)
    omega, V, y = random_channel_inputs(rng, 200, 1, scale=4.0)
    lnZ, g, Gam = output_channel(omega, V, y)
    t = y[:, None] * omega / np.sqrt(V)
    mills = np.exp(-0.5 * t**2 - 0.5 * np.log(2 * np.pi) - log_ndtr(t))
    np.testing.assert_allclose(g, y[:, None] * mills / np.sqrt(V), rtol=1e-12)
    assert np.all(Gam * V > 0) and np.all(Gam * V < 1)


def test_committee_gamma_can_be_negative_but_is_finite():
    """For K > 1 ln 𝒵 is not concave in ω (docs/bp.md §3.4): negative Γ is legitimate and must come out."""
    rng = np.random.default_rng(6)
    omega, V, y = random_channel_inputs(rng, 400, 3, scale=2.0)
    _, _, Gam = output_channel(omega, V, y)
    assert np.all(np.isfinite(Gam)) and np.any(Gam < 0)


@pytest.mark.parametrize(
    "args, match",
    [
        ((np.zeros((3, 3)), np.ones((3, 2)), np.ones(3)), "shape of omega"),
        ((np.zeros((3, 2)), np.ones((3, 2)), np.ones(3)), "odd"),
        ((np.full((3, 3), np.nan), np.ones((3, 3)), np.ones(3)), "NaN"),
        ((np.zeros((3, 3)), np.zeros((3, 3)), np.ones(3)), "V must"),
        ((np.zeros((3, 3)), np.ones((3, 3)), np.array([1.0, 0.0, -1.0])), "±1"),
        ((np.zeros(3), np.ones(3), np.ones(3)), r"\(P, K\)"),
    ],
)
def test_output_channel_rejects_bad_input(args, match):
    with pytest.raises(BPError, match=match):
        output_channel(*args)


def test_output_channel_rejects_nonpositive_beta():
    with pytest.raises(BPError, match="beta"):
        output_channel(np.zeros((2, 3)), np.ones((2, 3)), np.ones(2), beta=0.0)
