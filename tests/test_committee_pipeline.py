"""The committee pipeline's stages as library functions: curves of many restarts (checks before any
progress, the same curves as BP restart by restart, in one process or several), training that
returns solutions with test errors and provenance, errors, grids that are the intended decimals."""

from __future__ import annotations

import inspect
from fractions import Fraction

import numpy as np
import pytest

from localentropy import bp
from localentropy.bp.errors import BPError
from localentropy.committee import pipeline
from localentropy.committee.errors import CommitteeError
from localentropy.committee.evaluate import solution_errors
from localentropy.committee.pipeline import (evaluate_solutions, log_grid, restart_curves, sigma_grid,
                                             train_solutions)
from localentropy.committee.presets import get_preset
from localentropy.committee.solutions import Solutions, load_solutions, save_solutions
from localentropy.committee.train import train_committee
from localentropy.data import patterns_hash
from tests.planted import planted_committee
from localentropy.data.dresscoat import DressCoat

K, N, P = 3, 40, 30
GRID = [1e-3, 1e-2, 0.05]


@pytest.fixture(scope="module")
def problem():
    """Random ±1 patterns labelled by restart 0; restarts 1, 2 perturb it and still classify every pattern."""
    return planted_committee(K, N, P)


class Spy:
    def __init__(self):
        self.events = []

    def __call__(self, info):
        self.events.append(dict(info))


# ---------------------------------------------------------------------------------------------------
# grids


def test_sigma_grid_values_are_the_floats_nearest_the_intended_decimals():
    g = sigma_grid(0.5, 11)
    assert g[6] == 0.3 and repr(float(g[6])) == "0.3" and repr(float(g[3])) == "0.15"
    assert np.linspace(0, 0.5, 11)[6] != 0.3  # 0.30000000000000004: the artefact this grid avoids
    for i, s in enumerate(g):
        assert s == float(Fraction(1, 2) * i / 10)
    assert list(sigma_grid(0.4, 3)) == [0.0, 0.2, 0.4]
    with pytest.raises(CommitteeError):
        sigma_grid(0.5, 1)
    with pytest.raises(CommitteeError):
        sigma_grid(float("nan"), 5)


def test_log_grid_hits_the_decades_exactly_and_matches_logspace_elsewhere():
    g = log_grid(1e-4, 1.0, 25)
    assert g[0] == 1e-4 and g[6] == 1e-3 and g[12] == 1e-2 and g[18] == 0.1 and g[24] == 1.0
    np.testing.assert_allclose(g, np.logspace(-4, 0, 25), rtol=1e-14)
    assert np.all(np.diff(g) > 0)
    assert list(pipeline.parse_deltas("1e-3,1e-2")) == [1e-3, 1e-2]
    for bad in ("1:0.1:5", "a,b", "0.1,0.01", "1e-3:1e-1"):
        with pytest.raises(BPError):
            pipeline.parse_deltas(bad)


# ---------------------------------------------------------------------------------------------------
# curves


def test_the_default_method_is_importance_sampling_as_in_the_command_line():
    from localentropy.cli.phi_cmd import phi
    from localentropy.committee.curves import METHODS

    assert inspect.signature(restart_curves).parameters["method"].default == "is" == pipeline.DEFAULT_METHOD
    assert {p.name: p.default for p in phi.params}["method"] == "is" == METHODS[0]


def test_curves_of_each_restart_equal_bp_run_on_that_restart_alone(problem):
    X, y, W = problem
    spy = Spy()
    res = restart_curves(W, X, y, GRID, restarts=[2, 0], method="edge", progress=spy)
    assert res.restarts == (2, 0) and not res.errors and not res.skipped
    for r in (0, 2):
        ref = bp.local_entropy_curve(W[r], X, y, GRID, method="edge")
        np.testing.assert_array_equal(res.curves[r].phi, ref.phi)
        np.testing.assert_array_equal(res.curves[r].d, ref.d)
    starts = [e for e in spy.events if e["event"] == "start"]
    points = [e for e in spy.events if e["event"] == "point"]
    assert starts == [{"event": "start", "total": 6, "restarts": [2, 0], "skipped": [], "reused": 0}]
    assert [e["restart"] for e in points] == [2, 2, 2, 0, 0, 0] and [e["index"] for e in points] == [0, 1, 2] * 2
    rep = res.report()
    assert [(x.restart, x.points, x.converged, x.methods, x.error) for x in rep] == \
        [(2, 3, 3, ("edge",), None), (0, 3, 3, ("edge",), None)]
    summary = res.summary()
    assert [row["converged"] for row in summary] == [2, 2, 2]
    assert summary[1]["phi_mean"] == pytest.approx((res.curves[0].phi[1] + res.curves[2].phi[1]) / 2, rel=1e-12)


@pytest.mark.slow
def test_two_processes_give_the_same_curves_and_report_every_point(problem):
    X, y, W = problem
    spy = Spy()
    par = restart_curves(W, X, y, GRID, method="edge", jobs=2, progress=spy)
    one = restart_curves(W, X, y, GRID, method="edge", jobs=1)
    for r in range(3):
        np.testing.assert_array_equal(par.curves[r].phi, one.curves[r].phi)
    points = [e for e in spy.events if e["event"] == "point"]
    assert sorted((e["restart"], e["index"]) for e in points) == [(r, j) for r in range(3) for j in range(3)]


def test_restarts_that_did_not_converge_are_skipped_unless_named(problem):
    X, y, W = problem
    status = ["converged", "not converged", "converged"]
    res = restart_curves(W, X, y, [1e-3], status=status, method="edge")
    assert res.restarts == (0, 2) and res.skipped == (1,)
    res = restart_curves(W, X, y, [1e-3], status=status, restarts=[1], method="edge")
    assert res.restarts == (1,) and res.skipped == ()
    with pytest.raises(CommitteeError, match="no restart converged"):
        restart_curves(W, X, y, [1e-3], status=["not converged"] * 3)


@pytest.mark.parametrize("case", ["misclassifies", "hash", "out of range", "deltas", "beta", "N"])
def test_every_check_fails_before_any_progress_is_reported(problem, case):
    X, y, W = problem
    spy = Spy()
    kwargs = dict(method="edge", progress=spy)
    Wc, Xc = W, X
    if case == "misclassifies":
        Wc = W.copy()
        Wc[2] = -W[0]  # restart 2 misclassifies every pattern; restarts 0 and 1 would run first
        error, match = BPError, f"restart 2 misclassifies {P} of {P} training patterns"
    elif case == "hash":
        kwargs["patterns_hash"] = "0" * 64
        error, match = CommitteeError, "other patterns"
    elif case == "out of range":
        kwargs["restarts"] = [0, 3]
        error, match = CommitteeError, "out of range"
    elif case == "deltas":
        kwargs["deltas"] = [0.1, 0.01]
        error, match = BPError, "increasing"
    elif case == "beta":
        kwargs["beta"] = -1.0
        error, match = BPError, "beta"
    else:
        Xc = X[:, :-1]
        error, match = CommitteeError, "N=40"
    grid = kwargs.pop("deltas", GRID)
    with pytest.raises(error, match=match):
        restart_curves(Wc, Xc, y, grid, **kwargs)
    assert spy.events == []


def test_a_restart_whose_bp_fails_is_reported_and_the_others_are_still_computed(problem, monkeypatch):
    X, y, W = problem
    real = bp.local_entropy_curve

    def failing(center, *a, **kw):
        if np.array_equal(center, W[1]):
            raise BPError("synthetic failure\nsecond line")
        return real(center, *a, **kw)

    monkeypatch.setattr(bp, "local_entropy_curve", failing)
    res = restart_curves(W, X, y, [1e-3], method="edge")
    assert set(res.curves) == {0, 2} and res.errors == {1: "synthetic failure"}
    assert res.report()[1].line() == "restart 1: error: synthetic failure"


def test_bp_compilation_is_announced_before_it_happens_and_only_when_needed(problem, monkeypatch):
    X, y, W = problem
    log = []
    monkeypatch.setattr(bp, "needs_compilation", lambda: True, raising=False)
    monkeypatch.setattr(bp, "compile_kernels", lambda: log.append("compiled"), raising=False)
    spy = Spy()
    restart_curves(W, X, y, [1e-3], restarts=[0], method="edge",
                   progress=lambda info: (spy(info), log.append(info["event"])))
    assert log[:3] == ["compiling", "compiled", "start"]
    monkeypatch.setattr(bp, "needs_compilation", lambda: False, raising=False)
    log.clear()
    restart_curves(W, X, y, [1e-3], restarts=[0], method="edge", progress=lambda info: log.append(info["event"]))
    assert "compiling" not in log and "compiled" not in log


def test_solution_curves_reads_status_and_hash_from_the_file(problem, tmp_path):
    X, y, W = problem
    save_solutions(tmp_path / "s.npz", W, patterns_hash(X, y), {"status": ["converged", "not converged", "converged"]})
    res = pipeline.solution_curves(tmp_path / "s.npz", X, y, [1e-3], method="edge")
    assert res.restarts == (0, 2) and res.skipped == (1,)
    same = pipeline.solution_curves(load_solutions(tmp_path / "s.npz"), X, y, [1e-3], method="edge")
    np.testing.assert_array_equal(same.curves[2].phi, res.curves[2].phi)
    with pytest.raises(CommitteeError, match="other patterns"):
        pipeline.solution_curves(tmp_path / "s.npz", X, -y, [1e-3], method="edge")


def test_references_load_from_solutions_and_npy_files(problem, tmp_path):
    X, y, W = problem
    save_solutions(tmp_path / "s.npz", W, patterns_hash(X, y), {"status": ["converged"] * 3})
    refs = pipeline.load_references(tmp_path / "s.npz")
    assert refs.patterns_hash == patterns_hash(X, y) and refs.status == ("converged",) * 3
    np.save(tmp_path / "w.npy", W[0])
    refs = pipeline.load_references(tmp_path / "w.npy")
    assert refs.weights.shape == (1, K, N) and refs.patterns_hash is None and refs.status is None
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object))
    with pytest.raises(CommitteeError, match="obj.npy"):  # never unpickled
        pipeline.load_references(tmp_path / "obj.npy")


# ---------------------------------------------------------------------------------------------------
# training and errors


@pytest.fixture(scope="module")
def small_data():
    rng = np.random.default_rng(3)
    n = 51
    return DressCoat(
        X_train=rng.choice([-1, 1], size=(40, n)).astype(np.int8), y_train=rng.choice([-1, 1], size=40).astype(np.int8),
        X_test=rng.choice([-1, 1], size=(30, n)).astype(np.int8), y_test=rng.choice([-1, 1], size=30).astype(np.int8),
        train_index=np.arange(40), test_index=np.arange(30), provenance={"source": "random test patterns"},
    )


PRESET = dict(K=3, batch_size=10, eta=0.05, max_epochs=12)


def test_train_solutions_returns_the_trainers_weights_with_test_errors_and_provenance(small_data, tmp_path):
    preset = get_preset("sgd-fast", **PRESET)
    sol = train_solutions(small_data, preset, restarts=2, seed=1)
    assert isinstance(sol, Solutions)
    res = train_committee(small_data.X_train, small_data.y_train, preset, restarts=2, seed=1)
    np.testing.assert_array_equal(sol.weights, res.weights)
    assert sol.patterns_hash == patterns_hash(small_data.X_train, small_data.y_train)
    assert sol.test_error == pytest.approx(tuple(solution_errors(res.weights, small_data.X_test, small_data.y_test)))
    assert sol.metadata["data"] == {"n_train": 40, "n_test": 30, "provenance": {"source": "random test patterns"}}
    assert sol.status == tuple(res.status) and sol.epochs == tuple(int(e) for e in res.epochs)
    back = load_solutions(sol.save(tmp_path / "s.npz"))
    assert back.metadata == sol.metadata and np.array_equal(back.weights, sol.weights)
    err = evaluate_solutions(back, small_data)
    assert list(err.test_error) == pytest.approx(list(sol.test_error))
    assert err.converged == tuple(s == "converged" for s in sol.status) and err.epochs == sol.epochs


def test_train_solutions_checks_before_the_first_report(small_data, tmp_path):
    calls = []
    preset = get_preset("sgd-fast", **PRESET)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(CommitteeError, match="restarts"):
            train_solutions(small_data, preset, restarts=bad, progress=lambda *a: calls.append(a))
    with pytest.raises(CommitteeError, match="does not exist"):
        train_solutions(small_data, preset, restarts=1, checkpoint=tmp_path / "no" / "c.ckpt",
                        progress=lambda *a: calls.append(a))
    assert calls == []


def test_a_resumed_run_reports_its_epoch_before_any_progress(small_data, tmp_path):
    preset = get_preset("sgd-fast", **PRESET)
    ckpt = tmp_path / "c.ckpt"
    assert train_committee(small_data.X_train, small_data.y_train, preset, restarts=2, seed=1, checkpoint=ckpt,
                           stop_after_epochs=5) is None
    log = []
    sol = train_solutions(small_data, preset, restarts=2, seed=1, checkpoint=ckpt,
                          on_resume=lambda e: log.append(("resume", e)), progress=lambda e, *a: log.append(e))
    assert log[0] == ("resume", 5) and log[1] == 6
    fresh = train_solutions(small_data, preset, restarts=2, seed=1)
    np.testing.assert_array_equal(sol.weights, fresh.weights)
    log.clear()
    train_solutions(small_data, preset, restarts=1, seed=1, on_resume=lambda e: log.append(("resume", e)),
                    progress=lambda e, *a: log.append(e))
    assert log[0] == 1 and not [x for x in log if isinstance(x, tuple)]  # a fresh run does not resume


def test_evaluate_refuses_solutions_of_other_patterns(small_data):
    w = np.random.default_rng(0).normal(size=(2, 3, 51))
    w *= np.sqrt(51) / np.linalg.norm(w, axis=2, keepdims=True)
    with pytest.raises(CommitteeError, match="other patterns"):
        evaluate_solutions(Solutions(w, "not-the-hash", {}), small_data)
    err = evaluate_solutions(Solutions(w, patterns_hash(small_data.X_train, small_data.y_train), {}), small_data)
    assert err.converged is None and err.epochs is None and err.train_error.shape == (2,)


def test_a_trainer_with_its_own_resume_hook_is_passed_the_callback(small_data, monkeypatch):
    """Once `train_committee` takes on_resume, train_solutions hands the callback on (a fresh run's epoch 0 is no resume)."""
    import localentropy.committee.train as train_mod

    real = train_mod.train_committee
    seen = []

    def with_hook(*args, on_resume=None, **kwargs):
        seen.append("hook")
        on_resume(0)
        on_resume(5)
        return real(*args, **kwargs)

    monkeypatch.setattr(train_mod, "train_committee", with_hook)
    log = []
    train_solutions(small_data, get_preset("sgd-fast", **PRESET), restarts=1, seed=1,
                    on_resume=lambda e: log.append(("resume", e)), progress=lambda e, *a: log.append(e))
    assert seen == ["hook"] and log[0] == ("resume", 5) and log[1] == 1
    assert [x for x in log if isinstance(x, tuple)] == [("resume", 5)]
