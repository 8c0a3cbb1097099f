"""Flatness measures (``localentropy.flatness``) against closed forms: quadratics with a known Hessian,
linear models whose noise response is exact, and the contracts (model untouched, seeded, typed errors)."""

import math

import numpy as np
import pytest
import torch
from scipy.optimize import brentq
from scipy.stats import norm
from torch import nn

from localentropy.flatness import (FlatnessError, adaptive_sharpness, hessian_top_eigenvalue, hessian_trace,
                                   hessian_vector_product, hutchinson, lanczos, pacbayes_sigma, power_iteration,
                                   sam_sharpness)

torch.set_num_threads(1)
F64 = torch.float64


class Quadratic(nn.Module):
    """L(w) = ½ (w − c)ᵀ A (w − c): forward returns w − c per sample, ``quadratic_loss(A)`` weighs it."""

    def __init__(self, w, c=None):
        super().__init__()
        self.weight = nn.Parameter(torch.as_tensor(w, dtype=F64).clone())
        self.register_buffer("c", torch.zeros_like(self.weight) if c is None else torch.as_tensor(c, dtype=F64))

    def forward(self, x):
        return (self.weight - self.c).expand(x.shape[0], -1)


def quadratic_loss(A):
    A = torch.as_tensor(A, dtype=F64)
    return lambda out, _: 0.5 * torch.einsum("ni,ij,nj->n", out, A, out).mean()


def dummy(n=3):
    return torch.zeros(n, 1, dtype=F64), torch.zeros(n, dtype=F64)


def spd(D, spectrum, seed=0):
    """A = Q diag(spectrum) Qᵀ with a random orthogonal Q."""
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.normal(size=(D, D)))
    return (Q * np.asarray(spectrum)) @ Q.T


def mse(out, t):
    return ((out.reshape(t.shape) - t) ** 2).mean()


def half_mse(out, t):
    return 0.5 * ((out.reshape(t.shape) - t) ** 2).mean()


def linear(d, w=None):
    m = nn.Linear(d, 1, bias=False).double()
    if w is not None:
        with torch.no_grad():
            m.weight.copy_(torch.as_tensor(w, dtype=F64).reshape(1, d))
    return m


# ---------------------------------------------------------------------------------------------- Hessian


def test_lanczos_top_eigenvalues_of_a_quadratic_match_eigvalsh_within_the_residual():
    D = 60
    spectrum = np.concatenate([[5.0, 4.0, 3.5], np.linspace(-1.0, 2.0, D - 3)])
    A = spd(D, spectrum)
    model = Quadratic(np.random.default_rng(1).normal(size=D))
    r = hessian_top_eigenvalue(model, quadratic_loss(A), *dummy(), top_n=3, k=30, tol=0.0)
    exact = np.sort(np.linalg.eigvalsh(A))[::-1][:3]
    assert r.hvps == r.iterations == 30 and r.dim == D and r.method == "lanczos"
    for lam, est, res in zip(exact, r.eigenvalues, r.residuals):
        assert est <= lam + 1e-10  # Ritz values never exceed the eigenvalue of the same rank
        assert abs(est - lam) <= res + 1e-10
        assert abs(est - lam) < 1e-6
    assert r.estimate == r.eigenvalues[0] and r.uncertainty == r.residuals[0]


def test_top_eigenvalue_and_trace_of_a_linear_least_squares_loss_with_batches():
    # L = ½ mean (x·w − y)²  ⇒  H = XᵀX / n exactly, at any w
    g = torch.Generator().manual_seed(0)
    X = torch.randn(70, 12, generator=g, dtype=F64) * torch.linspace(0.3, 2.0, 12, dtype=F64)
    y = torch.randn(70, generator=g, dtype=F64)
    H = (X.T @ X / 70).numpy()
    lam = np.linalg.eigvalsh(H)
    model = linear(12, torch.randn(12, generator=g, dtype=F64))
    full = hessian_top_eigenvalue(model, half_mse, X, y, k=8, tol=0.0)
    batched = hessian_top_eigenvalue(model, half_mse, X, y, k=8, tol=0.0, batch_size=16)
    assert abs(full.estimate - lam[-1]) <= full.uncertainty + 1e-10
    assert batched.estimate == pytest.approx(full.estimate, rel=1e-12)
    tr = hessian_trace(model, half_mse, X, y, probes=200, seed=3, batch_size=32)
    assert abs(tr.estimate - np.trace(H)) < 3 * tr.uncertainty
    hv = hessian_vector_product(model, half_mse, X, y, torch.arange(12, dtype=F64), batch_size=9)
    np.testing.assert_allclose(hv.numpy(), H @ np.arange(12.0), rtol=1e-12)


def test_power_iteration_matches_the_top_eigenvalue_within_its_residual():
    D = 30
    A = spd(D, np.concatenate([[6.0, 3.0], np.linspace(0.0, 2.0, D - 2)]), seed=2)
    model = Quadratic(np.zeros(D))
    r = hessian_top_eigenvalue(model, quadratic_loss(A), *dummy(), method="power", top_n=2, tol=1e-8)
    exact = np.sort(np.linalg.eigvalsh(A))[::-1][:2]
    assert r.method == "power" and r.converged and r.hvps == r.iterations <= 200
    for lam, est, res in zip(exact, r.eigenvalues, r.residuals):
        assert abs(est - lam) <= res + 1e-10
        assert abs(est - lam) < 1e-6


def test_at_a_saddle_power_iteration_finds_the_largest_magnitude_and_lanczos_the_largest():
    A = torch.as_tensor(spd(6, [-5.0, 2.0, 1.0, 0.5, 0.2, 0.1], seed=3))
    p = power_iteration(lambda v: A @ v, 6, max_iter=500, tol=1e-12)
    assert p.estimate == pytest.approx(-5.0, abs=1e-8)  # the documented trap of power iteration
    lz = lanczos(lambda v: A @ v, 6, k=6)
    assert lz.estimate == pytest.approx(2.0, abs=1e-10) and lz.converged


def test_lanczos_with_a_known_gap_meets_the_kaniel_paige_bound():
    # λ1 − θ1 ≤ (λ1 − λn) (tan φ0 / T_{k−1}(1 + 2γ))², γ = (λ1 − λ2)/(λ2 − λn), φ0 the start's angle to u1
    D = 400
    lam = np.concatenate([[1.0], np.linspace(0.0, 0.8, D - 1)[::-1]])
    A = torch.as_tensor(np.diag(lam))
    v0 = torch.randn(D, generator=torch.Generator().manual_seed(7), dtype=F64)
    c = abs(float(v0[0])) / float(v0.norm())
    tan0 = math.sqrt(1 - c * c) / c
    gamma = (lam[0] - lam[1]) / (lam[1] - lam[-1])
    errors = []
    for k in (3, 6, 10, 15):
        r = lanczos(lambda v: A @ v, D, k=k, tol=0.0, seed=7)
        cheb = math.cosh((k - 1) * math.acosh(1 + 2 * gamma))
        bound = (lam[0] - lam[-1]) * (tan0 / cheb) ** 2
        err = lam[0] - r.estimate
        assert -1e-12 <= err <= bound + 1e-12
        # the residual certifies that SOME eigenvalue is that close; λ1 only once converged (k = 15 here)
        assert np.min(np.abs(lam - r.estimate)) <= r.uncertainty + 1e-12
        assert k < 15 or err <= r.uncertainty
        errors.append(err)
    assert errors == sorted(errors, reverse=True)  # nested Krylov spaces: the top Ritz value only rises


def test_full_reorthogonalisation_leaves_no_ghost_copies():
    # many more steps than needed for λ1 = 10: plain Lanczos would return λ1 twice as the top-2
    D = 80
    lam = np.concatenate([[10.0, 1.0], np.linspace(0.0, 0.9, D - 2)])
    A = torch.as_tensor(spd(D, lam, seed=4))
    r = lanczos(lambda v: A @ v, D, k=70, top_n=2, tol=0.0, seed=1)
    assert r.eigenvalues[0] == pytest.approx(10.0, abs=1e-10)
    assert r.eigenvalues[1] == pytest.approx(1.0, abs=1e-8)


def test_lanczos_stops_exactly_at_an_invariant_subspace():
    A = torch.diag(torch.tensor([3.0, 3.0, 3.0, 1.0], dtype=F64))
    r = lanczos(lambda v: A @ v, 4, k=20, seed=0)
    assert r.iterations == 2 and r.converged  # the Krylov space of a 2-eigenvalue operator has dimension 2
    assert r.estimate == pytest.approx(3.0, abs=1e-12) and r.uncertainty < 1e-12


def test_hutchinson_trace_matches_numpy_and_a_diagonal_hessian_exactly():
    D = 25
    A = spd(D, np.linspace(-1.0, 4.0, D), seed=3)
    model = Quadratic(np.ones(D))
    r = hessian_trace(model, quadratic_loss(A), *dummy(), probes=300, seed=0)
    assert r.probes == r.hvps == 300 == len(r.samples)
    assert abs(r.estimate - np.trace(A)) < 3 * r.uncertainty
    # the s.e. itself: one probe's variance is 2 Σ_{i≠j} A_ij²
    sd = math.sqrt(2 * ((A**2).sum() - (np.diag(A) ** 2).sum()))
    assert r.uncertainty == pytest.approx(sd / math.sqrt(300), rel=0.15)
    diag = hessian_trace(Quadratic(np.ones(5)), quadratic_loss(np.diag([1.0, 2, 3, 4, 5])), *dummy(), probes=4)
    assert diag.estimate == pytest.approx(15.0, abs=1e-12) and diag.uncertainty < 1e-12


def test_hutchinson_standard_error_is_honest_over_many_seeds():
    D = 30
    A = torch.as_tensor(spd(D, np.linspace(-2.0, 5.0, D), seed=5))
    tr = float(torch.trace(A))
    hits, n = 0, 300
    for seed in range(n):
        r = hutchinson(lambda v: A @ v, D, probes=30, seed=seed)
        hits += abs(r.estimate - tr) <= 2 * r.uncertainty
    assert 0.90 <= hits / n <= 0.99  # ≈ 0.945 for 30 probes (Student t with 29 d.o.f.)


# ---------------------------------------------------------------------------------------------- sharpness


def trust_region_max(A, w, rho):
    """max_{‖ε‖ ≤ ρ} ½(w+ε)ᵀA(w+ε) − ½wᵀAw for A ⪰ 0: ε = (μI − A)⁻¹ A w with μ > λ_max, ‖ε‖ = ρ."""
    lam, Q = np.linalg.eigh(A)
    b = Q.T @ (A @ w)

    def radius(mu):
        return np.linalg.norm(b / (mu - lam)) - rho

    mu = brentq(radius, lam[-1] + 1e-12 * (1 + abs(lam[-1])), lam[-1] + np.linalg.norm(b) / rho + 1.0, xtol=1e-15)
    eps = Q @ (b / (mu - lam))
    return 0.5 * (w + eps) @ A @ (w + eps) - 0.5 * w @ A @ w


def test_sam_sharpness_at_the_minimum_is_half_rho2_lambda_max():
    D = 20
    A = spd(D, np.concatenate([[4.0], np.linspace(0.1, 2.0, D - 1)]), seed=6)
    rho = 0.3
    model = Quadratic(np.zeros(D))
    many = sam_sharpness(model, quadratic_loss(A), *dummy(), rho=rho, steps=60)
    exact = 0.5 * rho**2 * 4.0
    assert many.random_start and many.estimate == pytest.approx(exact, rel=1e-9)
    assert many.radius == pytest.approx(rho) and many.eps_norm == pytest.approx(rho)
    assert many.gradients == 60 and many.forward_passes == 1
    one = sam_sharpness(model, quadratic_loss(A), *dummy(), rho=rho, steps=1)
    assert 0 < one.estimate < exact and one.uncertainty is None  # a lower bound: a random point of the sphere


def test_sam_sharpness_away_from_the_minimum_reaches_the_trust_region_maximum():
    D = 6
    A = spd(D, [3.0, 2.0, 1.0, 0.5, 0.2, 0.0], seed=8)
    w = np.random.default_rng(9).normal(size=D)
    rho = 0.7
    model = Quadratic(w)
    one = sam_sharpness(model, quadratic_loss(A), *dummy(), rho=rho)
    eps = rho * A @ w / np.linalg.norm(A @ w)  # SAM's own step
    assert one.estimate == pytest.approx(0.5 * (w + eps) @ A @ (w + eps) - 0.5 * w @ A @ w, rel=1e-12)
    many = sam_sharpness(model, quadratic_loss(A), *dummy(), rho=rho, steps=100)
    exact = trust_region_max(A, w, rho)
    assert many.estimate == pytest.approx(exact, rel=1e-9)
    assert one.estimate <= many.estimate <= exact + 1e-12
    assert np.all(np.diff(many.history) >= -1e-12)  # convex loss: no step lowers it (up to rounding)


def test_sam_sharpness_matches_a_brute_force_maximum_in_two_dimensions():
    A = np.array([[2.0, 0.8], [0.8, 0.5]])
    w = np.array([0.4, -1.0])
    rho = 0.5
    r = sam_sharpness(Quadratic(w), quadratic_loss(A), *dummy(), rho=rho, steps=200)
    rad = np.linspace(0, rho, 201)[:, None, None]
    ang = np.linspace(0, 2 * np.pi, 20001)[None, :, None]
    e = rad * np.concatenate([np.cos(ang), np.sin(ang)], axis=2)
    p = w + e
    brute = (0.5 * np.einsum("rai,ij,raj->ra", p, A, p)).max() - 0.5 * w @ A @ w
    assert r.estimate == pytest.approx(brute, rel=1e-6)
    assert r.estimate >= brute - 1e-12  # the grid is a lower bound too
    assert r.estimate == pytest.approx(trust_region_max(A, w, rho), rel=1e-9)


def test_adaptive_sharpness_on_a_diagonal_quadratic():
    # L = ½ Σ a_i (w_i − c_i)²; ε = T δ, T = |w| + η
    a = np.array([1.0, 3.0, 0.5, 2.0])
    c = np.array([0.5, -1.0, 2.0, 0.3])
    w = np.array([1.0, -0.2, 1.5, 0.3])  # the last coordinate at its minimum
    r_ = w - c
    model = Quadratic(w, c)
    A = np.diag(a)
    for eta in (0.0, 0.1):
        T = np.abs(w) + eta
        rho = 0.2
        # L∞: separable, each coordinate pushed to ±ρ T_i away from c_i: exact in one step
        inf = adaptive_sharpness(model, quadratic_loss(A), *dummy(), norm="linf", rho=rho, eta=eta)
        exact = 0.5 * np.sum(a * ((np.abs(r_) + rho * T) ** 2 - r_**2))
        assert inf.estimate == pytest.approx(exact, rel=1e-12)
        assert inf.radius == pytest.approx(rho)
        # L2, one step: ASAM's ε̂ = ρ T² g / ‖T g‖
        one = adaptive_sharpness(model, quadratic_loss(A), *dummy(), norm="l2", rho=rho, eta=eta)
        g = a * r_
        eps = rho * T**2 * g / np.linalg.norm(T * g)
        assert one.estimate == pytest.approx(0.5 * np.sum(a * ((r_ + eps) ** 2 - r_**2)), rel=1e-12)
        # L2, many steps: the trust-region maximum of the quadratic in δ (matrix T A T, centre T⁻¹ r)
        many = adaptive_sharpness(model, quadratic_loss(A), *dummy(), norm="l2", rho=rho, eta=eta, steps=200)
        assert many.estimate == pytest.approx(trust_region_max(np.diag(a * T**2), r_ / T, rho), rel=1e-8)


def test_adaptive_sharpness_at_a_minimum_away_from_zero():
    # at w = c: L2 gives ½ρ² max_i a_i c_i², L∞ gives ½ρ² Σ a_i c_i² (from a random vertex)
    a = np.array([1.0, 3.0, 0.5, 2.0])
    c = np.array([0.5, -1.0, 2.0, 0.3])
    model = Quadratic(c, c)
    rho = 0.1
    l2 = adaptive_sharpness(model, quadratic_loss(np.diag(a)), *dummy(), rho=rho, steps=80)
    assert l2.random_start and l2.estimate == pytest.approx(0.5 * rho**2 * np.max(a * c**2), rel=1e-8)
    li = adaptive_sharpness(model, quadratic_loss(np.diag(a)), *dummy(), rho=rho, norm="linf", steps=2)
    assert li.estimate == pytest.approx(0.5 * rho**2 * np.sum(a * c**2), rel=1e-12)
    # moving the minimum from c to 10c: the SAM value stays (same Hessian), the adaptive one grows ×100
    big = adaptive_sharpness(Quadratic(10 * c, 10 * c), quadratic_loss(np.diag(a)), *dummy(), rho=rho, steps=80)
    assert big.estimate == pytest.approx(100 * l2.estimate, rel=1e-8)
    s_small = sam_sharpness(Quadratic(c, c), quadratic_loss(np.diag(a)), *dummy(), rho=rho, steps=80).estimate
    s_big = sam_sharpness(Quadratic(10 * c, 10 * c), quadratic_loss(np.diag(a)), *dummy(), rho=rho, steps=80).estimate
    assert s_big == pytest.approx(s_small, rel=1e-8)


# ---------------------------------------------------------------------------------------------- PAC-Bayes


def exact_fit(n=200, d=10, seed=0, noise=0.0):
    """Data with y = x·w* (+ noise) and w at the least-squares solution (Xᵀr = 0: no linear term)."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g, dtype=F64) * torch.linspace(0.5, 1.5, d, dtype=F64)
    w_star = torch.randn(d, generator=g, dtype=F64)
    y = X @ w_star + noise * torch.randn(n, generator=g, dtype=F64)
    w = torch.linalg.lstsq(X, y.unsqueeze(1)).solution.squeeze(1)
    return X, y, w


def test_pacbayes_sigma_of_a_linear_model_with_squared_loss():
    # E_z mse(w + σz) − mse(w) = σ² mean_i ‖x_i‖²  ⇒  σ′ = √(d / mean ‖x‖²)
    X, y, w = exact_fit()
    q = float((X**2).sum(1).mean())
    d = 0.05
    r = pacbayes_sigma(linear(10, w), mse, X, y, target="loss", deviation=d, draws=200, seed=0)
    exact = math.sqrt(d / q)
    assert r.censored is None and r.draws == 200 and r.bootstrap == 200
    assert r.bracket[0] <= r.estimate <= r.bracket[1] and r.bracket[1] / r.bracket[0] - 1 <= 1e-3
    assert abs(r.estimate - exact) <= 3 * r.uncertainty
    assert r.interval[0] < r.estimate < r.interval[1]
    assert r.uncertainty < 0.05 * exact  # and the uncertainty is informative
    assert r.forward_passes == r.evaluations * 200 + 2 and r.flatness == pytest.approx(1 / r.estimate**2)


def test_pacbayes_relative_threshold_uses_the_unperturbed_loss():
    X, y, w = exact_fit(noise=0.3)
    L0 = float(((X @ w - y) ** 2).mean())
    q = float((X**2).sum(1).mean())
    r = pacbayes_sigma(linear(10, w), mse, X, y, target="loss", deviation=0.5, relative=True, draws=200)
    assert r.value0 == pytest.approx(L0, rel=1e-12) and r.threshold == pytest.approx(0.5 * L0, rel=1e-12)
    assert abs(r.estimate - math.sqrt(0.5 * L0 / q)) <= 3 * r.uncertainty


def test_pacbayes_magnitude_aware_sigma_of_a_linear_model():
    # u_j ~ N(0, σ² w_j² + ε²): rise = mean_i Σ_j x_ij² (σ² w_j² + ε²)
    X, y, w = exact_fit(seed=1)
    s = (X**2).mean(0)
    d, eps = 0.05, 1e-2
    exact = math.sqrt((d - eps**2 * float(s.sum())) / float((s * w**2).sum()))
    r = pacbayes_sigma(linear(10, w), mse, X, y, noise="magnitude", target="loss", deviation=d, eps=eps, draws=200)
    assert r.noise == "magnitude" and r.eps == eps
    assert abs(r.estimate - exact) <= 3 * r.uncertainty and r.uncertainty < 0.1 * exact


def test_pacbayes_sigma_on_the_training_error_of_a_linear_classifier():
    # sign(x·(w + u)) flips with probability Φ(−|x·w| / (σ ‖x‖)); default target: error, deviation 0.1
    g = torch.Generator().manual_seed(2)
    X = torch.randn(300, 8, generator=g, dtype=F64)
    w = torch.randn(8, generator=g, dtype=F64)
    y = torch.sign(X @ w)
    m = (X @ w).abs().numpy() / X.norm(dim=1).numpy()

    def expected_error(sigma):
        return norm.cdf(-m / sigma).mean()

    exact = brentq(lambda s: expected_error(s) - 0.1, 1e-4, 100.0)
    r = pacbayes_sigma(linear(8, w), mse, X, y, draws=100, seed=3)
    assert r.target == "error" and r.value0 == 0.0 and r.threshold == 0.1
    assert abs(r.estimate - exact) <= 3 * r.uncertainty and r.uncertainty < 0.1 * exact


def test_pacbayes_bootstrap_interval_covers_the_truth_across_seeds():
    X, y, w = exact_fit(n=100, d=4, seed=4)
    q = float((X**2).sum(1).mean())
    exact = math.sqrt(0.05 / q)
    model = linear(4, w)
    hits = sum(r.interval[0] <= exact <= r.interval[1] for r in
               (pacbayes_sigma(model, mse, X, y, target="loss", deviation=0.05, draws=30, seed=s, bootstrap=300)
                for s in range(20)))
    assert hits >= 16  # nominal 95 %: 19 of 20 expected


def test_pacbayes_is_seeded_censored_and_loop_equals_vmap():
    X, y, w = exact_fit(n=60, d=5)
    model = linear(5, w)
    kw = dict(target="loss", deviation=0.05, draws=12, batch_draws=5, seed=11)
    a = pacbayes_sigma(model, mse, X, y, **kw)
    b = pacbayes_sigma(model, mse, X, y, **kw)
    assert a == b

    class NoVmap(nn.Module):  # .item() in forward: vmap cannot run it, the per-draw loop must
        def __init__(self):
            super().__init__()
            self.lin = linear(5, w)

        def forward(self, x):
            assert float(self.lin.weight.abs().sum()) >= 0
            return self.lin(x)

    c = pacbayes_sigma(NoVmap(), mse, X, y, **kw)
    assert c.estimate == pytest.approx(a.estimate, rel=1e-12) and c.sigmas == pytest.approx(a.sigmas, rel=1e-12)
    above = pacbayes_sigma(model, mse, X, y, target="loss", deviation=1e6, sigma_range=(1e-3, 1.0), draws=4)
    assert above.censored == "above" and above.estimate == 1.0 and above.uncertainty == math.inf
    below = pacbayes_sigma(model, mse, X, y, target="loss", deviation=1e-9, sigma_range=(1e-1, 1.0), draws=4)
    assert below.censored == "below" and below.bracket == (0.0, 0.1)


# ---------------------------------------------------------------------------------------------- contracts


def small_net():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.Tanh(), nn.Dropout(0.5), nn.Linear(8, 3)).double()
    X = torch.randn(40, 6, dtype=F64)
    y = torch.randint(0, 3, (40,))
    return net, X, y


def test_the_model_is_unchanged_bitwise_and_modes_restored_after_every_measure():
    net, X, y = small_net()
    net.train()
    net[3].eval()  # a mixed mode must come back as it was
    ce = nn.functional.cross_entropy
    for p in net.parameters():
        p.grad = torch.full_like(p, 0.25)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    modes = [m.training for m in net.modules()]
    calls = [
        lambda: hessian_top_eigenvalue(net, ce, X, y, k=5, include_biases=True),
        lambda: hessian_top_eigenvalue(net, ce, X, y, method="power", k=5, params="0"),
        lambda: hessian_trace(net, ce, X, y, probes=3, batch_size=16),
        lambda: sam_sharpness(net, ce, X, y, steps=3),
        lambda: adaptive_sharpness(net, ce, X, y, norm="linf", steps=2),
        lambda: pacbayes_sigma(net, ce, X, y, draws=4, bootstrap=10),
        lambda: pacbayes_sigma(net, ce, X, y, noise="magnitude", target="loss", draws=3, batch_size=15),
        lambda: hessian_vector_product(net, ce, X, y, {"0.weight": torch.ones(8, 6, dtype=F64),
                                                       "1.weight": torch.ones(8, dtype=F64),
                                                       "4.weight": torch.ones(3, 8, dtype=F64)}),
    ]
    for call in calls:
        call()
        after = net.state_dict()
        assert all(torch.equal(before[k], after[k]) for k in before)
        assert [m.training for m in net.modules()] == modes
        assert all(torch.equal(p.grad, torch.full_like(p, 0.25)) for p in net.parameters())


def test_eval_mode_makes_the_measures_deterministic_and_selection_is_respected():
    net, X, y = small_net()
    ce = nn.functional.cross_entropy
    a = hessian_trace(net, ce, X, y, probes=5, seed=2)
    b = hessian_trace(net, ce, X, y, probes=5, seed=2)
    assert a == b and a.params == ("0.weight", "1.weight", "4.weight") and a.dim == 6 * 8 + 8 + 8 * 3
    only = hessian_top_eigenvalue(net, ce, X, y, params="4", include_biases=True, k=5)
    assert only.params == ("4.weight", "4.bias") and only.dim == 8 * 3 + 3


def counting_loss():
    calls = []

    def loss(out, t):
        calls.append(1)
        return mse(out, t)
    return loss, calls


BAD = [
    ("rho must be finite and > 0", lambda m, l, X, y: sam_sharpness(m, l, X, y, rho=0.0)),
    ("rho must be finite and > 0", lambda m, l, X, y: adaptive_sharpness(m, l, X, y, rho=-1.0)),
    ("steps must be an integer >= 1", lambda m, l, X, y: sam_sharpness(m, l, X, y, steps=0)),
    ("norm must be one of", lambda m, l, X, y: adaptive_sharpness(m, l, X, y, norm="l3")),
    ("k must be an integer >= 1", lambda m, l, X, y: hessian_top_eigenvalue(m, l, X, y, k=0)),
    ("method must be one of", lambda m, l, X, y: hessian_top_eigenvalue(m, l, X, y, method="arnoldi")),
    ("top_n = 5 exceeds", lambda m, l, X, y: hessian_top_eigenvalue(m, l, X, y, top_n=5)),
    ("probes must be an integer >= 2", lambda m, l, X, y: hessian_trace(m, l, X, y, probes=1)),
    ("seed must be a non-negative integer", lambda m, l, X, y: hessian_trace(m, l, X, y, seed=-1)),
    ("draws must be an integer >= 2", lambda m, l, X, y: pacbayes_sigma(m, l, X, y, draws=1)),
    ("sigma_range must satisfy", lambda m, l, X, y: pacbayes_sigma(m, l, X, y, sigma_range=(1.0, 0.1))),
    ("noise must be one of", lambda m, l, X, y: pacbayes_sigma(m, l, X, y, noise="laplace")),
    ("deviation must be finite and > 0", lambda m, l, X, y: pacbayes_sigma(m, l, X, y, deviation=math.nan)),
    ("relative=True needs a positive", lambda m, l, X, y: pacbayes_sigma(m, l, X, y, relative=True)),
    ("no parameter named or under 'fc9'", lambda m, l, X, y: sam_sharpness(m, l, X, y, params="fc9")),
    ("is empty (biases", lambda m, l, X, y: hessian_trace(nn.Linear(4, 1).double(), l, X, y, params="bias")),
    ("X holds non-finite", lambda m, l, X, y: sam_sharpness(m, l, torch.full_like(X, math.nan), y)),
    ("y holds non-finite", lambda m, l, X, y: hessian_trace(m, l, X, torch.full_like(y, math.inf))),
    ("X holds non-finite", lambda m, l, X, y: pacbayes_sigma(m, l, X.index_put((torch.tensor([7]), torch.tensor([2])),
                                                                              torch.tensor(-math.inf, dtype=F64)), y)),
    ("first dimension must be the 20 samples", lambda m, l, X, y: sam_sharpness(m, l, X[:5], y)),
    ("model must be a torch.nn.Module", lambda m, l, X, y: sam_sharpness(lambda x: x, l, X, y)),
    ("loss_fn must be callable", lambda m, l, X, y: hessian_trace(m, "mse", X, y)),
    ("batch_size must be an integer >= 1", lambda m, l, X, y: hessian_trace(m, l, X, y, batch_size=0)),
    ("no samples", lambda m, l, X, y: sam_sharpness(m, l, X[:0], y[:0])),
    ("v must be a 1-D tensor of length 4", lambda m, l, X, y: hessian_vector_product(m, l, X, y, torch.ones(3))),
]


@pytest.mark.parametrize("message,call", BAD, ids=[b[0][:30] for b in BAD])
def test_bad_input_raises_a_one_line_flatness_error_before_any_work(message, call):
    g = torch.Generator().manual_seed(0)
    X = torch.randn(20, 4, generator=g, dtype=F64)
    y = torch.sign(X.sum(1))  # the model's own signs: training error 0
    m = linear(4, torch.ones(4))
    loss, calls = counting_loss()
    with pytest.raises(FlatnessError, match=message.replace("(", r"\(")) as e:
        call(m, loss, X, y)
    assert "\n" not in str(e.value) and isinstance(e.value, ValueError)
    if "relative" not in message:
        assert not calls  # refused before the loss ran


def test_non_finite_weights_and_losses_are_refused():
    X, y, w = exact_fit(n=20, d=4)
    m = linear(4, w)
    with torch.no_grad():
        m.weight[0, 1] = math.inf
    with pytest.raises(FlatnessError, match="parameter 'weight' of the model holds non-finite"):
        hessian_top_eigenvalue(m, mse, X, y)
    with pytest.raises(FlatnessError, match="loss at the model's weights is not finite"):
        sam_sharpness(linear(4, w), lambda o, t: mse(o, t) * math.inf, X, y)
    with pytest.raises(FlatnessError, match="0-d tensor"):
        hessian_trace(linear(4, w), lambda o, t: (o.squeeze(1) - t) ** 2, X, y)
