"""Errors and local energy of committee solutions against closed forms (Eq. 4, Eq. 7)."""

import itertools
import math

import numpy as np
import pytest
from scipy.stats import norm

from localentropy.committee.errors import CommitteeError
from localentropy.committee.evaluate import local_energy_profiles, solution_errors


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


def test_local_energy_matches_exact_gaussian_field_enumeration():
    w, X, y = _problem(R=2, K=3, N=21, P=15)
    sigmas = [0.0, 0.3, 1.0]
    prof = local_energy_profiles(w, X, y, sigmas, draws=200, seed=3)
    e0 = solution_errors(w, X, y)
    assert np.allclose(prof.error0, e0)
    assert np.all(prof.delta_error[:, 0] == 0)
    for r in range(2):
        for j, s in enumerate(sigmas[1:], start=1):
            exact = _exact_perturbed_error(w[r], X, y, s) - e0[r]
            assert abs(prof.delta_error[r, j] - exact) < 4.5 * prof.delta_error_se[r, j] + 1e-12, (r, s)


def test_local_energy_of_a_restart_does_not_depend_on_the_other_restarts(tmp_path):
    w, X, y = _problem(R=3)
    a = local_energy_profiles(w, X, y, [0.5], draws=20, seed=1)
    b = local_energy_profiles(w[:1], X, y, [0.5], draws=20, seed=1)
    assert a.delta_error[0, 0] == b.delta_error[0, 0]
    path = a.write_csv(tmp_path / "e.csv")
    lines = path.read_text().splitlines()
    assert lines[0] == "restart,sigma,delta_error,delta_error_se,error0" and len(lines) == 1 + 3 + 1


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
