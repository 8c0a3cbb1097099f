"""BP local entropy against independent ground truth (docs/bp.md §7.4–7.6): replica-symmetric formulas for the
perceptron, evaluated here by quadrature, and direct Monte Carlo around planted committee solutions.

BP on a finite instance is not exact (O(1/N) corrections, and the scalar-node approximation of docs/bp.md §8.1),
so every comparison allows the Monte Carlo / sample standard error (×4) plus a small relative model error
stated next to it.
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.polynomial.hermite_e import hermegauss
from scipy.optimize import minimize_scalar
from scipy.special import log_ndtr, ndtr

from localentropy import bp
from localentropy.bp.instances import planted_instance

_Z, _W = hermegauss(201)
_W = _W / _W.sum()  # ∫Dz f(z) ≈ Σ w f(z)


def gardner_rs(alpha):
    """Fractional volume of the spherical perceptron with random labels (Gardner 1988), RS, per weight:
    s = extr_q {½ ln(1−q) + q/(2(1−q)) + α ∫Dz ln H(z √(q/(1−q)))}; the extremum is the minimum in q."""

    def f(q):
        return 0.5 * np.log1p(-q) + q / (2 * (1 - q)) + alpha * np.sum(_W * log_ndtr(-_Z * np.sqrt(q / (1 - q))))

    r = minimize_scalar(f, bounds=(1e-9, 1 - 1e-9), method="bounded", options={"xatol": 1e-12})
    return r.x, f(r.x)


def teacher_student_rs(alpha):
    """Version-space entropy of Gibbs learning of a perceptron teacher, RS, per weight:
    s = extr_R {½ ln(1−R) + R/2 + 2α ∫Dt H(−t a) ln H(−t a)}, a = √(R/(1−R)); the extremum is the maximum."""

    def f(R):
        a = np.sqrt(R / (1 - R))
        return 0.5 * np.log1p(-R) + R / 2 + 2 * alpha * np.sum(_W * ndtr(_Z * a) * log_ndtr(_Z * a))

    r = minimize_scalar(lambda R: -f(R), bounds=(1e-9, 1 - 1e-9), method="bounded", options={"xatol": 1e-12})
    return r.x, f(r.x)


def test_rs_formulas_reproduce_the_tabulated_values():
    """The quadrature above is the formula of docs/bp.md §7.4–7.5 (the values tabulated there)."""
    q, s = gardner_rs(0.5)
    assert q == pytest.approx(0.30739, abs=2e-5) and s == pytest.approx(-0.37767, abs=2e-5)
    R, s = teacher_student_rs(1.0)
    assert R == pytest.approx(0.4863, abs=2e-4) and s == pytest.approx(-0.59644, abs=2e-5)


def _gardner_samples(alpha, N, samples, seed):
    rng = np.random.default_rng(seed)
    P = int(round(alpha * N))
    phis, qs = [], []
    for _ in range(samples):
        X = rng.choice([-1.0, 1.0], size=(P, N))
        y = rng.choice([-1.0, 1.0], size=P)
        r = bp.free_entropy(X, y, 1, np.zeros((1, N)), 1.0, tol=1e-9, method="edge")  # reads the per-edge messages
        assert r.converged
        m = r.state.B.sum(0) / (1.0 + r.state.a.sum(0)[:, None])  # w̃ = 0, Δ = 1: m = Ξ'/(1 + Λ')
        phis.append(r.phi)
        qs.append(np.mean(m**2))
    return np.mean(phis), np.std(phis, ddof=1) / np.sqrt(samples), np.mean(qs)


@pytest.mark.parametrize("alpha", [0.5, 1.0])
def test_free_entropy_matches_gardner_rs_below_capacity(alpha):
    q_rs, s_rs = gardner_rs(alpha)
    phi, se, q = _gardner_samples(alpha, 250, 16, seed=int(alpha * 100))
    assert abs(phi - s_rs) < 4 * se + 0.01 * abs(s_rs)
    assert q == pytest.approx(q_rs, abs=0.02)


@pytest.mark.slow
@pytest.mark.parametrize("alpha", [0.25, 0.5, 1.0, 1.5])
def test_free_entropy_matches_gardner_rs_at_larger_size(alpha):
    q_rs, s_rs = gardner_rs(alpha)
    phi, se, q = _gardner_samples(alpha, 1000, 8, seed=int(alpha * 100) + 1)
    assert abs(phi - s_rs) < 4 * se + 0.005 * abs(s_rs)
    assert q == pytest.approx(q_rs, abs=0.01)


def _teacher_student(alpha, N, samples, seed):
    rng = np.random.default_rng(seed)
    P = int(round(alpha * N))
    phis, overlaps = [], []
    for _ in range(samples):
        teacher = rng.normal(size=N)
        X = rng.choice([-1.0, 1.0], size=(P, N))
        y = np.sign(X @ teacher)
        r = bp.free_entropy(X, y, 1, np.zeros((1, N)), 1.0, tol=1e-9, method="edge")  # reads the per-edge messages
        assert r.converged
        m = (r.state.B.sum(0) / (1.0 + r.state.a.sum(0)[:, None]))[0]
        phis.append(r.phi)
        overlaps.append(m @ teacher / N)
    return np.mean(phis), np.std(phis, ddof=1) / np.sqrt(samples), np.mean(overlaps)


@pytest.mark.parametrize("alpha", [1.0])
def test_free_entropy_matches_teacher_student_version_space(alpha):
    R, s_rs = teacher_student_rs(alpha)
    phi, se, overlap = _teacher_student(alpha, 300, 8, seed=11)
    assert abs(phi - s_rs) < 4 * se + 0.01 * abs(s_rs)
    assert overlap == pytest.approx(R, abs=0.04)


@pytest.mark.slow
@pytest.mark.parametrize("alpha", [0.5, 2.0])
def test_free_entropy_matches_teacher_student_version_space_at_larger_size(alpha):
    R, s_rs = teacher_student_rs(alpha)
    phi, se, overlap = _teacher_student(alpha, 1000, 4, seed=12)
    assert abs(phi - s_rs) < 4 * se + 0.01 * abs(s_rs)
    assert overlap == pytest.approx(R, abs=0.02)


# ------------------------------------------------------------------------------------------------------
# direct Monte Carlo around planted solutions (docs/bp.md §7.6)


def _all_correct(W, X, y):
    """W: (S,K,N) weights → (S,) bool: every pattern classified correctly by the committee."""
    S, K, N = W.shape
    lam = (W.reshape(S * K, N) @ X.T).reshape(S, K, -1)
    return np.all(y * np.sign(lam).sum(axis=1) > 0, axis=1)


def mc_gaussian(X, y, Wt, Delta, S, rng, chunk=20000):
    """w ~ N(w̃, ΔI): (φ_G = ln(hit fraction)/n, its s.e., δ = hit-mean of ½‖w−w̃‖²/n, its s.e., hits)."""
    K, N = Wt.shape
    n = K * N
    d_hits = []
    for start in range(0, S, chunk):
        c = min(chunk, S - start)
        U = np.sqrt(Delta) * rng.standard_normal((c, K, N))
        ok = _all_correct(Wt + U, X, y)
        d_hits.append(0.5 * np.sum(U[ok] ** 2, axis=(1, 2)) / n)
    d_hits = np.concatenate(d_hits)
    h = len(d_hits)
    assert h >= 200, f"too few Monte Carlo hits ({h}) for a meaningful test"
    p = h / S
    return np.log(p) / n, np.sqrt((1 - p) / h) / n, d_hits.mean(), d_hits.std(ddof=1) / np.sqrt(h), h


def mc_shell_ball(X, y, Wt, delta, S, rng, chunk=20000):
    """Uniform on the sphere ½‖u‖² = nδ and in the ball ½‖u‖² ≤ nδ: (ln fraction/n, s.e.) for each."""
    K, N = Wt.shape
    n = K * N
    R = np.sqrt(2 * n * delta)
    hits = np.zeros(2, dtype=np.int64)
    for start in range(0, S, chunk):
        c = min(chunk, S - start)
        G = rng.standard_normal((c, K, N))
        G *= (R / np.sqrt(np.sum(G**2, axis=(1, 2))))[:, None, None]
        hits[0] += _all_correct(Wt + G, X, y).sum()
        G *= rng.uniform(size=c)[:, None, None] ** (1.0 / n)
        hits[1] += _all_correct(Wt + G, X, y).sum()
    assert hits.min() >= 200, f"too few Monte Carlo hits ({hits}) for a meaningful test"
    p = hits / S
    return [(np.log(pi) / n, np.sqrt((1 - pi) / hi) / n) for pi, hi in zip(p, hits)]


def _check_against_monte_carlo(K, N, P, deltas, S, seed, rel=0.02):
    """BP (curve) vs direct sampling (at most S draws): φ_G, δ, shell s and ball Φ at each Δ; tolerance 4 s.e. + rel·|value|
    (rel: BP's finite-N / scalar-node error, ≤ ~1.5 % in the measurements of docs/bp.md §7.6)."""
    X, y, Wt = planted_instance(seed, K, N, P)
    curve = bp.local_entropy_curve(Wt, X, y, deltas=deltas, tol=1e-9)
    assert curve.converged.all()
    rng = np.random.default_rng(seed + 1000)
    n = K * N

    def samples(log_rate):  # enough draws for ~600 expected hits (BP's estimate only sizes the sample)
        return int(min(S, max(200_000, 600 * np.exp(-n * log_rate))))

    for j, Delta in enumerate(deltas):
        phi_mc, phi_se, d_mc, d_se, _ = mc_gaussian(X, y, Wt, Delta, samples(curve.phi_G[j]), rng)
        assert abs(curve.phi_G[j] - phi_mc) < 4 * phi_se + rel * abs(phi_mc), (Delta, curve.phi_G[j], phi_mc)
        assert abs(curve.delta[j] - d_mc) < 4 * d_se + rel * d_mc, (Delta, curve.delta[j], d_mc)
        (s_mc, s_se), (b_mc, b_se) = mc_shell_ball(X, y, Wt, curve.delta[j], samples(curve.phi[j]), rng)
        assert abs(curve.phi[j] - s_mc) < 4 * s_se + rel * abs(s_mc), (Delta, curve.phi[j], s_mc)
        assert abs(curve.phi_ball[j] - b_mc) < 4 * b_se + rel * abs(b_mc), (Delta, curve.phi_ball[j], b_mc)


def test_perceptron_local_entropy_matches_direct_sampling_small():
    _check_against_monte_carlo(K=1, N=50, P=50, deltas=[0.1], S=200_000, seed=21)


def test_committee_local_entropy_matches_direct_sampling_small():
    _check_against_monte_carlo(K=3, N=31, P=31, deltas=[0.1], S=200_000, seed=22)


@pytest.mark.slow
def test_perceptron_local_entropy_matches_direct_sampling_at_small_prior_width():
    _check_against_monte_carlo(K=1, N=200, P=200, deltas=[0.002, 0.005], S=2_000_000, seed=23)


@pytest.mark.slow
def test_committee_local_entropy_matches_direct_sampling_at_small_prior_width():
    _check_against_monte_carlo(K=3, N=100, P=100, deltas=[0.002, 0.005, 0.01, 0.02], S=1_200_000, seed=24)


@pytest.mark.slow
@pytest.mark.parametrize("P, Delta", [(31, 0.3), (62, 0.1)])
def test_committee_local_entropy_matches_direct_sampling_at_larger_prior_width(P, Delta):
    _check_against_monte_carlo(K=3, N=31, P=P, deltas=[Delta], S=2_000_000, seed=25, rel=0.03)
