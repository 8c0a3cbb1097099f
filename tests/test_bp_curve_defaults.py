"""The curve's defaults: the Δ grid, extrapolated warm starts and the scan tolerance leave the fixed points alone."""

import numpy as np
import pytest

from localentropy import bp
from localentropy.bp.amp import AMPState
from localentropy.bp.curve import extrapolate_state
from localentropy.bp.edge import EdgeState
from localentropy.bp.instances import planted_instance


def test_default_grid_is_uniform_in_sqrt_delta_and_ends_where_perturbations_match_the_weights():
    d = bp.default_deltas()
    assert len(d) == 30 and d[-1] == pytest.approx(1.0) and np.all(np.diff(d) > 0)
    assert np.allclose(np.diff(np.sqrt(d)), np.sqrt(d[0]))  # evenly spaced in √Δ, starting one step from 0
    assert np.sum(d < 1e-2) == 2  # a log grid over [1e-4, 1] would put half its points there
    assert np.allclose(bp.default_deltas(4, 0.5), 0.5 * np.array([1, 4, 9, 16]) / 16)
    with pytest.raises(bp.BPError, match="points"):
        bp.default_deltas(0)


def _by_hand(W, X, y, deltas, tol):
    """The same scan without extrapolation: each Δ from the previous fixed point (AMP)."""
    state, out = None, []
    for D in deltas:
        r = bp.free_entropy(X, y, W.shape[0], W, D, method="amp", state=state, n_blocks=6, tol=tol)
        assert r.converged
        state = r.state
        out.append((r.phi, r.delta))
    return np.array(out)


def test_extrapolated_warm_starts_and_the_default_tolerance_reach_the_same_fixed_points():
    X, y, W = planted_instance(3, 3, 80, 60)
    deltas = [1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3]
    curve = bp.local_entropy_curve(W, X, y, deltas, method="amp")  # tol 1e-6, blocks of 10, extrapolation
    ref = _by_hand(W, X, y, deltas, tol=1e-10)
    assert curve.converged.all() and curve.n_blocks.tolist() == [6] * len(deltas)
    assert np.allclose(curve.phi_G, ref[:, 0], rtol=0, atol=1e-9)
    assert np.allclose(curve.delta, ref[:, 1], rtol=1e-7, atol=0)
    assert np.all(curve.sweeps >= curve.iterations) and curve.sweeps.sum() > 0


def test_extrapolation_is_linear_in_log_delta_and_leaves_per_edge_states_alone():
    a = AMPState(np.ones((2, 3)), np.zeros((2, 3)), 1)
    b = AMPState(2 * np.ones((2, 3)), np.ones((2, 3)), 2)
    e = extrapolate_state(b, a, 0.5)
    assert np.allclose(e.g, 2.5) and np.allclose(e.Gam, 1.5) and e.rung == 2
    edge = EdgeState.zeros(2, 3, 4)
    assert extrapolate_state(edge, edge, 0.5) is edge
    assert extrapolate_state(b, a, float("nan")) is b
