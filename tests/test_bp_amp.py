"""The node-level (AMP) BP: compiled vs numpy oracle, same fixed point and free entropy as the per-edge BP,
exact cases, direct Monte Carlo (docs/bp.md §4, §7.1, §7.6)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy.stats import norm

from localentropy import bp
from localentropy.bp.amp import (AMPState, amp_free_entropy, bethe_numpy, bethe_terms, edge_state_from_amp, run_amp, sweep,
                    sweep_numpy)
from localentropy.bp.edge import bethe_terms as edge_bethe_terms
from localentropy.bp.edge import make_problem
from localentropy.bp.edge import sweep as edge_sweep
from localentropy.bp.errors import BPError
from localentropy.bp.instances import least_action, planted_instance


@pytest.mark.parametrize("inputs", ["pm1", "gaussian"])
@pytest.mark.parametrize("eta", [0.0, 0.6])
def test_compiled_amp_sweep_matches_numpy_oracle(inputs, eta):
    X, y, Wt = planted_instance(1, 3, 50, 60, inputs)
    problem = make_problem(X, y, Wt)
    state = AMPState.zeros(60, 3)
    g, Gam = state.g.copy(), state.Gam.copy()
    rng = np.random.default_rng(0)
    for _ in range(6):
        blocks = np.array_split(rng.permutation(60), 4)
        m1, v1, ml1 = sweep(problem, 0.02, np.inf, eta, blocks, state)
        m2, v2, ml2 = sweep_numpy(X, y, Wt, 0.02, np.inf, eta, blocks, g, Gam)
        np.testing.assert_allclose(m1, m2, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(v1, v2, rtol=1e-12)
        np.testing.assert_allclose(state.g, g, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(state.Gam, Gam, rtol=1e-10, atol=1e-12)
        assert ml1 == pytest.approx(ml2, rel=1e-12)
    F1, sq1, z1 = bethe_terms(problem, 0.02, np.inf, state)
    F2, sq2, z2 = bethe_numpy(X, y, Wt, 0.02, np.inf, g, Gam)
    assert F1 == pytest.approx(F2, rel=1e-10, abs=1e-10)
    assert sq1 == pytest.approx(sq2, rel=1e-12)
    assert z1 == pytest.approx(z2, rel=1e-10)


# docs/bp.md §7.6 instances (K, N, P, Δ), smaller ones kept for the default run
SEVEN_SIX = [(1, 200, 200, 0.005), (1, 50, 50, 0.3), (3, 100, 100, 0.01), (3, 31, 31, 0.1), (3, 31, 62, 0.1),
             (3, 100, 300, 0.005)]


@pytest.mark.parametrize("K,N,P,Delta", SEVEN_SIX)
def test_amp_reaches_the_per_edge_fixed_point_and_free_entropy(K, N, P, Delta):
    """The node form is an exact rewriting of the per-edge fixed point (bp/amp.py docstring), so φ_G, δ
    and the marginals agree to the convergence tolerance, far below O(1/N)."""
    X, y, Wt = planted_instance(7, K, N, P)
    a = amp_free_entropy(X, y, K, Wt, Delta, tol=1e-11)
    e = bp.free_entropy(X, y, K, Wt, Delta, tol=1e-11)
    assert a.converged and e.converged and a.method == "amp"
    assert a.phi == pytest.approx(e.phi, abs=1e-9)
    assert a.delta == pytest.approx(e.delta, rel=1e-8)
    assert a.lnZ_patterns == pytest.approx(e.lnZ_patterns, abs=1e-7)
    assert a.phi < 0 and abs(a.delta - Delta / 2) < Delta / 2


def test_amp_fixed_point_is_a_fixed_point_of_the_per_edge_equations():
    """Per-edge messages rebuilt from the AMP fixed point (a = Γ/N, B = x g/√N + A m_{ki→μ}) do not move under
    one per-edge sweep, and the per-edge Bethe formula gives the node-level value."""
    K, N, P, Delta = 3, 60, 90, 0.02
    X, y, Wt = planted_instance(3, K, N, P, "gaussian")
    problem = make_problem(X, y, Wt)
    r = amp_free_entropy(X, y, K, Wt, Delta, tol=1e-12)
    assert r.converged
    es = edge_state_from_amp(problem, Delta, r.state)
    F_edge, sq_edge, _ = edge_bethe_terms(problem, Delta, np.inf, es)
    assert F_edge / (K * N) == pytest.approx(r.phi, abs=1e-10)
    assert sq_edge / (2 * K * N) == pytest.approx(r.delta, rel=1e-9)
    B0, a0 = es.B.copy(), es.a.copy()
    edge_sweep(problem, Delta, np.inf, 0.0, [np.arange(P)], es)
    assert np.max(np.abs(es.B - B0)) < 1e-9 * np.max(np.abs(B0))
    assert np.max(np.abs(es.a - a0)) < 1e-9 * np.max(np.abs(a0))


def test_no_patterns_gives_zero_free_entropy_and_the_prior_distance():
    X, y, Wt = planted_instance(0, 3, 40, 0)
    r = amp_free_entropy(X, y, 3, Wt, 0.07)
    assert r.converged and r.phi == 0.0
    assert r.delta == pytest.approx(0.07 / 2, rel=1e-14)


@pytest.mark.parametrize("K", [1, 3, 5])
@pytest.mark.parametrize("Delta", [0.01, 0.5])
def test_one_pattern_is_a_tree_and_amp_is_exact(K, Delta):
    """P = 1: F = ln P(committee correct), with λ_k ~ N(λ̃_k, Δ) independent, by enumerating the 2^K votes."""
    X, y, Wt = planted_instance(K, K, 40, 1)
    lam = (X @ Wt.T)[0] / math.sqrt(40)
    p = norm.cdf(y[0] * lam / math.sqrt(Delta))
    Z = sum(np.prod(np.where(s, p, 1 - p)) for s in itertools.product([True, False], repeat=K) if sum(s) > K // 2)
    r = amp_free_entropy(X, y, K, Wt, Delta, tol=1e-12)
    assert r.converged
    assert r.phi * K * 40 == pytest.approx(math.log(Z), rel=1e-9, abs=1e-12)


def test_amp_matches_direct_monte_carlo_around_a_planted_solution():
    """docs/bp.md §7.6, K=3 N=31 P=31 Δ=0.1: φ_G = (1/n) ln P_{w~N(w̃,Δ)}[all correct], δ = E[½|w−w̃|²|hit]/n."""
    K, N, P, Delta = 3, 31, 31, 0.1
    X, y, Wt = planted_instance(11, K, N, P)
    r = amp_free_entropy(X, y, K, Wt, Delta, tol=1e-10)
    rng = np.random.default_rng(5)
    hits, d_sum, S = 0, 0.0, 0
    for _ in range(20):
        u = rng.normal(scale=math.sqrt(Delta), size=(10_000, K, N))
        lam = np.einsum("skn,pn->spk", Wt[None] + u, X)
        ok = np.all(y[None] * np.sign(lam).sum(axis=2) > 0, axis=1)
        hits += int(ok.sum())
        d_sum += float(0.5 * np.sum(u[ok] ** 2))
        S += len(u)
    n = K * N
    phi_mc = math.log(hits / S) / n
    se = math.sqrt((1 - hits / S) / hits) / n
    assert hits > 200, hits
    assert r.phi == pytest.approx(phi_mc, abs=max(3 * se, 0.01 * abs(phi_mc)))
    assert r.delta == pytest.approx(d_sum / hits / n, rel=0.02)


def test_warm_start_and_bad_state_are_checked():
    X, y, Wt = planted_instance(2, 3, 40, 50)
    r1 = amp_free_entropy(X, y, 3, Wt, 0.01)
    r2 = amp_free_entropy(X, y, 3, Wt, 0.012, state=r1.state)
    cold = amp_free_entropy(X, y, 3, Wt, 0.012)
    assert r2.converged and r2.iterations < cold.iterations
    assert r2.phi == pytest.approx(cold.phi, abs=1e-8)
    with pytest.raises(BPError, match="AMPState"):
        amp_free_entropy(X, y, 3, Wt, 0.01, state=bp.EdgeState.zeros(50, 3, 40))
    with pytest.raises(BPError, match="shapes"):
        amp_free_entropy(X, y, 3, Wt, 0.01, state=AMPState.zeros(49, 3))
    with pytest.raises(BPError, match="K=5"):
        amp_free_entropy(X, y, 5, Wt, 0.01)
    with pytest.raises(BPError, match="prior width"):
        amp_free_entropy(X, y, 3, Wt, -1.0)


def test_divergence_is_reported_not_hidden():
    """With a one-sweep cap nothing converges: the result says so instead of returning a bogus φ."""
    X, y, Wt = planted_instance(4, 3, 40, 80)
    problem = make_problem(X, y, Wt)
    run = run_amp(problem, 0.05, max_sweeps=1, damping=[0.0, 0.5])
    assert not run.converged and run.total_sweeps == 2 and run.reason == "max_sweeps"


@pytest.mark.slow
def test_amp_converges_on_the_real_dresscoat_data_with_a_least_action_reference():
    """Node-level iterations can fail on correlated images (docs/bp.md §8.3); on the Dress/Coat training set
    (P=500, K=9, N=784) around a least-action solution (§7.7) it converges on the whole Δ grid."""
    from localentropy.data import load_dresscoat

    ds = load_dresscoat()
    X, y = ds.X_train.astype(float), ds.y_train.astype(float)
    Wt = least_action(X, y, 9, seed=0)
    state, conv = None, []
    for D in np.logspace(-4, 0, 9):
        r = amp_free_entropy(X, y, 9, Wt, D, state=state)
        conv.append(r.converged)
        state = r.state if r.converged else state
    assert all(conv)


def test_auto_uses_amp_and_falls_back_to_per_edge_when_amp_fails(monkeypatch):
    import dataclasses
    import importlib

    import localentropy.bp.amp  # noqa: F401  (bp.amp below)

    X, y, Wt = planted_instance(5, 3, 50, 60)
    edge = bp.free_entropy(X, y, 3, Wt, 0.02, method="edge", tol=1e-10)
    auto = bp.free_entropy(X, y, 3, Wt, 0.02, method="auto", tol=1e-10)
    assert auto.method == "amp" and auto.converged
    assert auto.phi == pytest.approx(edge.phi, abs=1e-9)
    real = bp.amp.amp_result

    def failing(*args, **kwargs):  # an AMP run that did not converge
        return dataclasses.replace(real(*args, **kwargs), converged=False, reason="forced")

    fe_module = importlib.import_module("localentropy.bp.free_entropy")  # bp.free_entropy is the function
    monkeypatch.setattr(fe_module, "amp_result", failing)  # the name free_entropy calls
    fb = bp.free_entropy(X, y, 3, Wt, 0.02, method="auto", tol=1e-10, state=auto.state)
    assert fb.method == "edge" and fb.converged and isinstance(fb.state, bp.EdgeState)
    assert fb.phi == pytest.approx(edge.phi, abs=1e-9)
    assert fb.iterations <= 3  # warm-started at the fixed point implied by the AMP messages
    sticky = bp.free_entropy(X, y, 3, Wt, 0.021, method="auto", state=fb.state)
    assert sticky.method == "edge"
    assert bp.free_entropy(X, y, 3, Wt, 0.02, method="amp").method == "amp"


def test_carried_node_sums_equal_rebuilt_ones():
    """Skipping the rebuild (node sums carried from the previous sweep's fold-ins) changes nothing but rounding."""
    X, y, Wt = planted_instance(6, 3, 50, 70, "gaussian")
    problem = make_problem(X, y, Wt)
    s1, s2 = AMPState.zeros(70, 3), AMPState.zeros(70, 3)
    from localentropy.bp.amp import _Workspace

    ws = _Workspace(70, 3, 50)
    rng = np.random.default_rng(1)
    for it in range(8):
        blocks = np.array_split(rng.permutation(70), 5)
        m1, _, _ = sweep(problem, 0.03, np.inf, 0.3, blocks, s1, ws, rebuild=(it == 0))
        m2, _, _ = sweep(problem, 0.03, np.inf, 0.3, blocks, s2)
        np.testing.assert_allclose(m1, m2, rtol=1e-11, atol=1e-13)


def test_curve_records_which_solver_produced_each_point(tmp_path):
    X, y, Wt = planted_instance(6, 3, 50, 60)
    curve = bp.local_entropy_curve(Wt, X, y, deltas=[1e-3, 1e-2], method="auto")
    assert curve.methods == ("amp", "amp") and curve.method == "auto"
    edge = bp.local_entropy_curve(Wt, X, y, deltas=[1e-3, 1e-2], method="edge")
    assert edge.methods == ("edge", "edge")
    np.testing.assert_allclose(curve.phi, edge.phi, atol=1e-8)
