"""Errors and local energy of committee solutions against closed forms (Eq. 4, Eq. 7)."""

import itertools
import math

import numpy as np
import pytest
from scipy.stats import norm

import torch

from localentropy.committee.errors import CommitteeError
from localentropy.committee.evaluate import expected_delta_error, local_energy_profiles, solution_errors
from localentropy.committee.model import CommitteeNet
from localentropy.committee.train import restart_seed
from localentropy.entropic.local_energy import local_energy


def _problem(R=2, K=3, N=21, P=15, seed=0):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(R, K, N))
    w *= math.sqrt(N) / np.linalg.norm(w, axis=2, keepdims=True)
    X = rng.choice([-1, 1], size=(P, N)).astype(np.int8)
    y = rng.choice([-1, 1], size=P).astype(np.int8)
    return w, X, y


def _error_by_loops(w, X, y):
    """Eq. 7 written out with Python loops (sign(0) = +1)."""
    out = []
    for wr in w:
        wrong = 0
        for x, lab in zip(X, y):
            votes = sum(1 if float(np.dot(wk, x)) >= 0 else -1 for wk in wr)
            wrong += (1 if votes >= 0 else -1) != lab
        out.append(wrong / len(y))
    return np.array(out)


def test_solution_errors_match_loops_over_patterns_and_units():
    w, X, y = _problem(R=3, K=5, N=17, P=30)
    assert np.allclose(solution_errors(w, X, y), _error_by_loops(w, X, y), atol=0)


def _exact_perturbed_error(wr, X, y, sigma):
    """E_z E_train(w + σ z ⊙ w) exactly: each hidden unit's field is Gaussian, mean w·x, variance
    σ²‖w‖² (x_i² = 1), independent across units; the majority vote is enumerated over 2^K outcomes."""
    K = wr.shape[0]
    total = 0.0
    for x, lab in zip(X, y):
        m = wr @ x
        s = sigma * np.linalg.norm(wr, axis=1)
        p_plus = norm.cdf(m / s)
        p_wrong = 0.0
        for signs in itertools.product((1, -1), repeat=K):
            prob = np.prod([p_plus[k] if signs[k] == 1 else 1 - p_plus[k] for k in range(K)])
            p_wrong += prob * ((1 if sum(signs) >= 0 else -1) != lab)
        total += p_wrong
    return total / len(y)


@pytest.mark.parametrize("common_noise", [True, False])
def test_local_energy_matches_exact_gaussian_field_enumeration(common_noise):
    w, X, y = _problem(R=2, K=3, N=21, P=15)
    sigmas = [0.0, 0.3, 1.0]
    prof = local_energy_profiles(w, X, y, sigmas, draws=200, seed=3, common_noise=common_noise)
    e0 = solution_errors(w, X, y)
    assert np.allclose(prof.error0, e0)
    assert np.all(prof.delta_error[:, 0] == 0) and np.all(prof.delta_error_exact[:, 0] == 0)
    for r in range(2):
        for j, s in enumerate(sigmas[1:], start=1):
            exact = _exact_perturbed_error(w[r], X, y, s) - e0[r]
            assert abs(prof.delta_error_exact[r, j] - exact) < 1e-12, (r, s)
            assert abs(prof.delta_error[r, j] - exact) < 4.5 * prof.delta_error_se[r, j] + 1e-12, (r, s)


def test_expected_delta_error_matches_enumeration_for_K5_and_non_pm1_inputs():
    w, _, y = _problem(R=1, K=5, N=13, P=12, seed=4)
    X = np.random.default_rng(5).normal(size=(12, 13))  # x² ≠ 1: noise variance σ² Σ_i w² x²

    def brute(s):
        total = 0.0
        for x, lab in zip(X, y):
            m, sd = w[0] @ x, s * np.sqrt((w[0] ** 2) @ (x**2))
            p = norm.cdf(m / sd)
            for signs in itertools.product((1, -1), repeat=5):
                prob = np.prod([p[k] if signs[k] == 1 else 1 - p[k] for k in range(5)])
                total += prob * ((1 if sum(signs) >= 0 else -1) != lab)
        return total / len(y)

    e0 = solution_errors(w, X, y)[0]
    got = expected_delta_error(w, X, y, [0.2, 0.7])
    assert np.allclose(got[0], [brute(0.2) - e0, brute(0.7) - e0], atol=1e-12, rtol=0)


def _per_draw_path(w, X, y, sigmas, draws, seed, r=0):
    """The model-agnostic per-draw path (entropic.local_energy, loop) on one restart, noise as in evaluate."""
    net = CommitteeNet(torch.as_tensor(w[r]))
    gen = torch.Generator().manual_seed(restart_seed(seed, r))
    err = lambda out, t: (out != t.to(out.dtype)).to(torch.float64).mean()  # noqa: E731
    return local_energy(net, (torch.as_tensor(X, dtype=torch.float64), torch.as_tensor(y, dtype=torch.float64)),
                        sigmas, draws=draws, noise="multiplicative", error_fn=err, generator=gen, vectorize=False)


def test_fresh_noise_per_sigma_reproduces_the_per_draw_path_draw_for_draw():
    w, X, y = _problem(R=1, K=5, N=41, P=60, seed=7)
    sigmas = [0.0, 0.2, 0.6]
    old = _per_draw_path(w, X, y, sigmas, draws=30, seed=11)
    new = local_energy_profiles(w, X, y, sigmas, draws=30, seed=11, common_noise=False, batch_draws=7)
    assert np.allclose(new.delta_error[0], old.delta_error, atol=1e-12, rtol=0)
    assert np.allclose(new.delta_error_se[0], old.delta_error_se, atol=1e-12, rtol=0)
    assert new.delta_error[0, 1] != 0  # the noise does change errors here


def test_shared_noise_agrees_with_the_per_draw_path_within_sampling_error():
    w, X, y = _problem(R=1, K=5, N=101, P=200, seed=8)
    sigmas = [0.1, 0.3, 0.6, 1.0]
    old = _per_draw_path(w, X, y, sigmas, draws=300, seed=2)
    new = local_energy_profiles(w, X, y, sigmas, draws=300, seed=2, common_noise=True)
    assert new.delta_error[0, 0] == pytest.approx(old.delta_error[0], abs=1e-12)  # σ₀: the same draws
    z = (new.delta_error[0] - old.delta_error) / np.sqrt(new.delta_error_se[0] ** 2 + old.delta_error_se**2)
    assert np.all(np.abs(z[1:]) < 4.5), z
    assert np.all(np.abs(new.delta_error[0] - new.delta_error_exact[0]) < 4.5 * new.delta_error_se[0]), new


def test_thread_count_changes_nothing_and_is_restored():
    w, X, y = _problem(R=2, K=5, N=41, P=60, seed=3)
    before = torch.get_num_threads()
    a = local_energy_profiles(w, X, y, [0.2, 0.5], draws=40, seed=4, threads=1)
    assert torch.get_num_threads() == before
    b = local_energy_profiles(w, X, y, [0.2, 0.5], draws=40, seed=4, batch_draws=13)
    assert np.array_equal(a.delta_error, b.delta_error) and np.array_equal(a.delta_error_se, b.delta_error_se)


def test_ties_follow_the_sign_of_zero_is_plus_one_convention():
    rng = np.random.default_rng(9)
    X = rng.choice([-1, 1], size=(40, 6)).astype(np.int8)
    w = rng.choice([-1.0, 1.0], size=(2, 3, 6))  # integer weights, even N: many fields are exactly 0
    y = rng.choice([-1, 1], size=40).astype(np.int8)
    assert np.any(X @ w[0].T == 0)
    prof = local_energy_profiles(w, X, y, [0.0, 0.5], draws=4, seed=0)
    assert np.array_equal(prof.error0, solution_errors(w, X, y))
    assert np.array_equal(prof.error0, _error_by_loops(w, X, y))


def test_local_energy_of_a_restart_does_not_depend_on_the_other_restarts(tmp_path):
    w, X, y = _problem(R=3)
    a = local_energy_profiles(w, X, y, [0.5], draws=20, seed=1)
    b = local_energy_profiles(w[:1], X, y, [0.5], draws=20, seed=1)
    assert a.delta_error[0, 0] == b.delta_error[0, 0]


def test_bad_inputs_raise_committee_error():
    w, X, y = _problem()
    with pytest.raises(CommitteeError, match="odd"):
        solution_errors(np.ones((1, 2, 21)), X, y)
    with pytest.raises(CommitteeError, match="inputs"):
        solution_errors(w, X[:, :5], y)
    with pytest.raises(CommitteeError, match="sigmas"):
        local_energy_profiles(w, X, y, [-0.1], draws=10)
    with pytest.raises(CommitteeError, match="draws"):
        local_energy_profiles(w, X, y, [0.1], draws=1)
    with pytest.raises(CommitteeError, match="threads"):
        local_energy_profiles(w, X, y, [0.1], draws=4, threads=0)
    with pytest.raises(CommitteeError, match="batch_draws"):
        local_energy_profiles(w, X, y, [0.1], draws=4, batch_draws=0)
    with pytest.raises(CommitteeError, match="sigmas"):
        expected_delta_error(w, X, y, [float("nan")])
