"""The per-edge BP solver, Bethe free entropy and curve bookkeeping (docs/bp.md §3–§6, §7.1–7.3)."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
from scipy.special import log_ndtr

from localentropy import bp
from localentropy.bp.curve import ball_entropy, find_gaps, misclassified, shell_entropy
from localentropy.bp.edge import EdgeState, bethe_terms, make_problem, run_edge_bp, sweep
from localentropy.bp.errors import BPError
from localentropy.bp.instances import least_action, planted_instance
from localentropy.bp.reference import bethe_numpy, sweep_numpy


@pytest.mark.parametrize("inputs", ["pm1", "gaussian"])
@pytest.mark.parametrize("eta", [0.0, 0.6])
def test_compiled_sweep_matches_numpy_oracle(inputs, eta):
    X, y, Wt = planted_instance(1, 3, 50, 60, inputs)
    problem = make_problem(X, y, Wt)
    state = EdgeState.zeros(60, 3, 50)
    a, B = state.a.copy(), state.B.copy()
    rng = np.random.default_rng(0)
    for _ in range(6):
        blocks = np.array_split(rng.permutation(60), 4)
        m1, ml1 = sweep(problem, 0.02, np.inf, eta, blocks, state)
        m2, ml2 = sweep_numpy(X, y, Wt, 0.02, np.inf, eta, blocks, a, B)
        np.testing.assert_allclose(m1, m2, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(state.B, B, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(state.a, a, rtol=1e-10, atol=1e-12)
        assert ml1 == pytest.approx(ml2, rel=1e-12)
    F1, sq1, _ = bethe_terms(problem, 0.02, np.inf, state)
    F2, sq2 = bethe_numpy(X, y, Wt, 0.02, np.inf, a, B)
    assert F1 == pytest.approx(F2, rel=1e-10, abs=1e-10)
    assert sq1 == pytest.approx(sq2, rel=1e-10)


def test_block_and_parallel_schedules_reach_the_same_fixed_point():
    X, y, Wt = planted_instance(2, 3, 80, 100)
    block = bp.free_entropy(X, y, 3, Wt, 0.01, schedule="block", tol=1e-10)
    par = bp.free_entropy(X, y, 3, Wt, 0.01, schedule="parallel", tol=1e-10)
    assert block.converged and par.converged
    assert block.phi == pytest.approx(par.phi, abs=1e-8)
    assert block.delta == pytest.approx(par.delta, abs=1e-9)


def test_no_patterns_gives_zero_free_entropy_and_the_prior_distance():
    rng = np.random.default_rng(3)
    Wt = rng.normal(size=(3, 20))
    r = bp.free_entropy(np.zeros((0, 20)), np.zeros(0), 3, Wt, 0.7)
    assert r.phi == 0.0 and r.converged
    assert r.delta == pytest.approx(0.7 / 2, rel=1e-14)


@pytest.mark.parametrize("K", [1, 3])
@pytest.mark.parametrize("Delta", [1e-3, 0.3])
def test_one_pattern_is_a_tree_and_bp_is_exact(K, Delta):
    """P = 1: F = ln P(committee correct) with λ_k ~ N(λ̃_k, Δ) independent (K = 1: ln Φ(y λ̃/√Δ))."""
    rng = np.random.default_rng(4 + K)
    N = 40
    Wt = rng.normal(size=(K, N))
    X = rng.choice([-1.0, 1.0], size=(1, N))
    y = np.array([-1.0])
    lam = (X @ Wt.T / np.sqrt(N))[0]
    exact = math.log(sum(math.exp(np.sum(log_ndtr(np.array(tau) * lam / np.sqrt(Delta))))
                         for tau in itertools.product((-1, 1), repeat=K) if y[0] * sum(tau) > 0))
    r = bp.free_entropy(X, y, K, Wt, Delta, tol=1e-12)
    assert r.converged
    assert r.F == pytest.approx(exact, rel=1e-9)


@pytest.mark.parametrize("K", [1, 3])
def test_free_entropy_at_zero_reference_does_not_depend_on_prior_width(K):
    """Constraints are cones: with w̃ = 0, φ_G(Δ) is the Gardner volume for every Δ (docs/bp.md §7.2)."""
    rng = np.random.default_rng(5)
    N, P = 200, 60 * K
    X = rng.choice([-1.0, 1.0], size=(P, N))
    y = rng.choice([-1.0, 1.0], size=P)
    r1 = bp.free_entropy(X, y, K, np.zeros((K, N)), 1.0, tol=1e-10)
    r5 = bp.free_entropy(X, y, K, np.zeros((K, N)), 5.0, tol=1e-10)
    assert r1.converged and r5.converged and r1.phi < -0.05
    assert r1.phi == pytest.approx(r5.phi, abs=1e-7)
    assert r5.delta == pytest.approx(5 * r1.delta, rel=1e-6)


@pytest.mark.parametrize("K", [1, 3])
def test_bethe_free_entropy_is_stationary_in_the_reference_and_the_prior_width(K):
    """∂F/∂w̃_ki = (m_ki − w̃_ki)/Δ and δ = Δ/2 + Δ² dφ/dΔ (docs/bp.md §7.3, §5.1), up to the O(1/N)
    error of the r-BP message expansion (§3.5)."""
    rng = np.random.default_rng(7)
    N, P, Delta, eps = 300, 300, 1.0, 1e-3
    Wt = rng.normal(scale=0.3, size=(K, N))
    X = rng.choice([-1.0, 1.0], size=(P, N))
    y = rng.choice([-1.0, 1.0], size=P)
    problem = make_problem(X, y, Wt)
    run = run_edge_bp(problem, Delta, tol=1e-12, max_sweeps=3000)
    assert run.converged
    F0, sq, _ = bethe_terms(problem, Delta, np.inf, run.state)
    m = (Wt / Delta + run.state.B.sum(0)) / (1 / Delta + run.state.a.sum(0)[:, None])

    def F_at(W, D):
        pb = make_problem(X, y, W)
        r = run_edge_bp(pb, D, state=run.state, tol=1e-12, max_sweeps=3000)
        assert r.converged
        return bethe_terms(pb, D, np.inf, r.state)[0]

    fd, pred = [], []
    for k, i in [(0, 0), (0, 5), (K - 1, 17), (K // 2, 33), (0, 250)]:
        W = [Wt.copy(), Wt.copy()]
        W[0][k, i] += eps
        W[1][k, i] -= eps
        fd.append((F_at(W[0], Delta) - F_at(W[1], Delta)) / (2 * eps))
        pred.append((m[k, i] - Wt[k, i]) / Delta)
    fd, pred = np.array(fd), np.array(pred)
    assert np.linalg.norm(fd - pred) < 0.03 * np.linalg.norm(pred)  # measured ~1 % at N = 300 (docs/bp.md §7.3)
    n = K * N
    dphi = (F_at(Wt, Delta + eps) - F_at(Wt, Delta - eps)) / (2 * eps * n)
    assert Delta / 2 + Delta**2 * dphi == pytest.approx(sq / (2 * n), abs=2.0 / N)


def test_local_entropy_is_negative_and_vanishes_at_small_distance():
    X, y, Wt = planted_instance(8, 3, 100, 100)
    curve = bp.local_entropy_curve(Wt, X, y, deltas=[1e-5, 1e-4, 1e-3, 1e-2, 0.1])
    assert curve.converged.all() and not curve.gaps
    assert np.all(curve.phi <= 0) and np.all(curve.phi_ball <= 0) and np.all(curve.phi_G <= 0)
    assert np.all(np.diff(curve.d) > 0) and np.all(np.diff(curve.phi) < 0)
    assert abs(curve.phi[0]) < 2e-3 and abs(curve.phi[-1]) > 10 * abs(curve.phi[0])
    np.testing.assert_allclose(curve.delta[:2], curve.prior_delta[:2] / 2, rtol=0.05)
    np.testing.assert_allclose(curve.d, curve.delta * 3 * 100)


def test_unconstrained_shell_entropy_is_zero():
    Delta = np.logspace(-4, 0, 5)
    np.testing.assert_allclose(shell_entropy(np.zeros(5), Delta / 2, Delta), 0.0, atol=1e-16)
    # away from δ = Δ/2 the Gaussian-ensemble rate is negative: s < φ_G
    assert np.all(shell_entropy(np.zeros(5), Delta / 3, Delta) > 0)


def test_ball_entropy_is_shell_entropy_when_the_shell_term_dominates():
    delta = np.array([1e-3, 1e-2, 1e-1])
    s = np.array([-0.001, -0.01, -0.05])
    np.testing.assert_allclose(ball_entropy(delta, s), s)
    s_steep = np.array([-0.001, -2.0, -0.05])  # a point far below ½ ln(δ'/δ) + s(δ')
    assert ball_entropy(delta, s_steep)[1] == pytest.approx(-0.001 + 0.5 * math.log(0.1))


def test_gaps_are_reported_for_jumps_and_unconverged_points():
    Dl = np.array([1e-3, 2e-3, 4e-3, 8e-3, 1.6e-2])
    delta = np.array([5e-4, 1e-3, 2e-2, 4e-2, 3e-2])
    conv = np.array([True, True, True, True, True])
    reasons = [g["reason"] for g in find_gaps(Dl, delta, conv)]
    assert reasons == ["jump in delta", "delta decreased"]
    conv[1] = False
    assert find_gaps(Dl, delta, conv)[0]["reason"] == "not converged in between"


def test_misclassifying_reference_raises_unless_soft_or_dropped(tmp_path):
    X, y, Wt = planted_instance(9, 3, 60, 50)
    y = y.copy()
    y[[3, 7, 11]] *= -1
    assert misclassified(Wt, X, y).sum() == 3
    with pytest.raises(BPError, match="misclassifies 3 of 50"):
        bp.local_entropy_curve(Wt, X, y, deltas=[1e-3])
    dropped = bp.local_entropy_curve(Wt, X, y, deltas=[1e-3, 1e-2], drop_misclassified=True)
    assert dropped.n_dropped == 3 and dropped.P == 47 and dropped.converged.all()
    soft = bp.local_entropy_curve(Wt, X, y, deltas=[1e-2, 1e-1], beta=3.0)
    assert soft.converged.all() and soft.P == 50 and np.all(np.isfinite(soft.phi))
    d = json.loads(json.dumps(soft.to_dict()))
    assert d["beta"] == 3.0 and len(d["phi"]) == 2


def test_curve_normalises_each_hidden_unit_and_is_scale_free():
    X, y, Wt = planted_instance(10, 3, 60, 40)
    scaled = Wt * np.array([[0.1], [3.0], [7.0]])
    a = bp.local_entropy_curve(Wt, X, y, deltas=[1e-3, 1e-2])
    b = bp.local_entropy_curve(scaled, X, y, deltas=[1e-3, 1e-2])
    np.testing.assert_allclose(a.phi, b.phi, rtol=1e-8)
    per_input = bp.local_entropy_curve(Wt, X, y, deltas=[1e-3, 1e-2], normalize="input")
    np.testing.assert_allclose(per_input.phi, 3 * a.phi, rtol=1e-8)
    np.testing.assert_allclose(per_input.d, a.d)


def test_curve_reports_progress_and_skips_after_repeated_failures():
    X, y, Wt = planted_instance(11, 3, 60, 40)
    seen = []
    c = bp.local_entropy_curve(Wt, X, y, deltas=[1e-3, 1e-2, 1e-1], max_sweeps=2, damping=0.0, max_failures=1,
                               progress=seen.append)
    assert [p["index"] for p in seen] == [0] and not c.converged.any()
    assert np.all(np.isnan(c.phi)) and "skipped" in c.reasons[1]


def test_warm_start_state_round_trips():
    X, y, Wt = planted_instance(12, 3, 60, 60)
    r1 = bp.free_entropy(X, y, 3, Wt, 1e-3)
    r2 = bp.free_entropy(X, y, 3, Wt, 2e-3, state=r1.state)
    cold = bp.free_entropy(X, y, 3, Wt, 2e-3)
    assert r2.converged and r2.iterations <= cold.iterations
    assert r2.phi == pytest.approx(cold.phi, abs=1e-7)
    with pytest.raises(BPError, match="warm-start state"):
        bp.free_entropy(X[:10], y[:10], 3, Wt, 2e-3, state=r1.state)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"X": np.ones((5, 7))}, r"X must have shape \(P, 20\)"),
        ({"y": np.ones(4)}, r"y must have shape \(5,\)"),
        ({"y": np.array([1, 0, 1, 1, -1])}, "±1"),
        ({"center": np.ones((2, 20))}, "odd"),
        ({"K": 5}, "does not match"),
        ({"delta": 0.0}, "prior width"),
        ({"delta": np.nan}, "prior width"),
        ({"beta": -1.0}, "beta"),
        ({"method": "magic"}, "unknown method"),
        ({"normalize": "per-pattern"}, "normalize"),
        ({"schedule": "random"}, "schedule"),
        ({"damping": 1.5}, "damping"),
    ],
)
def test_free_entropy_rejects_bad_input(kwargs, match):
    rng = np.random.default_rng(0)
    args = {"X": rng.choice([-1.0, 1.0], size=(5, 20)), "y": np.ones(5), "K": 3, "center": rng.normal(size=(3, 20)),
            "delta": 0.1}
    args.update(kwargs)
    with pytest.raises(BPError, match=match):
        bp.free_entropy(args.pop("X"), args.pop("y"), args.pop("K"), args.pop("center"), args.pop("delta"), **args)


def test_nan_inputs_are_rejected():
    X, y, Wt = planted_instance(13, 3, 20, 5)
    Xn = X.copy()
    Xn[0, 0] = np.nan
    with pytest.raises(BPError, match="X contains NaN"):
        bp.free_entropy(Xn, y, 3, Wt, 0.1)
    Wn = Wt.copy()
    Wn[1, 2] = np.inf
    with pytest.raises(BPError, match="center contains NaN"):
        bp.local_entropy_curve(Wn, X, y)
    with pytest.raises(BPError, match="all zero"):
        bp.local_entropy_curve(np.zeros((3, 20)), X, y)
    with pytest.raises(BPError, match="increasing"):
        bp.local_entropy_curve(Wt, X, y, deltas=[1e-2, 1e-3])


def test_instances_are_solved_by_their_references():
    """bp.instances: the planted reference and the least-action solution classify every pattern, at ‖w_k‖² = N."""
    K, N, P = 3, 30, 40
    X, y, Wt = planted_instance(21, K, N, P)
    for W in (Wt, least_action(X, y, K, seed=1)):
        assert np.all(y * np.sign(np.sign(X @ W.T).sum(axis=1)) > 0)
        np.testing.assert_allclose(np.sum(W**2, axis=1), N, rtol=1e-12)
    with pytest.raises(BPError, match="odd"):
        planted_instance(0, 2, N, P)
    with pytest.raises(BPError, match="odd"):
        least_action(X, y, 2)
    with pytest.raises(BPError, match="did not classify"):  # one pattern with both labels: no solution
        least_action(np.vstack([X[:1], X[:1]]), np.array([1.0, -1.0]), K, max_epochs=20)
