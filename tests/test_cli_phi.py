"""`localentropy phi`: curves from .npy / solutions .npz files, CSV and plot outputs, one-line errors (exit 2)."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from click.testing import CliRunner

from localentropy import bp
from localentropy.cli.main import cli
from localentropy.committee.solutions import save_solutions
from localentropy.data import patterns_hash
from tests.planted import planted_committee

K, N, P = 3, 40, 30


def run(*args):
    return CliRunner().invoke(cli, ["--quiet", *map(str, args)])


@pytest.fixture()
def problem(tmp_path):
    """Random ±1 patterns labelled by restart 0 of a (R=3, K, N) weight stack; files written for the CLI."""
    X, y, W = planted_committee(K, N, P)
    np.savez(tmp_path / "pats.npz", X=X, y=y)
    np.save(tmp_path / "w.npy", W)
    return X, y, W, tmp_path


def read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.parametrize("method", ["edge", "amp", "auto"])
def test_npy_curve_matches_the_library_and_is_written_with_every_column(problem, method):
    from localentropy.bp.free_entropy import METHODS

    if method not in METHODS:
        pytest.skip(f"method {method!r} not wired into bp.free_entropy yet (METHODS={METHODS})")
    X, y, W, tmp = problem
    out = tmp / "c.csv"
    res = run("phi", tmp / "w.npy", "--data", tmp / "pats.npz", "--deltas", "1e-3,1e-2,0.05", "--restarts", "0,2",
              "--method", method, "--jobs", 1, "--out", out)
    assert res.exit_code == 0, res.output
    rows = read_csv(out)
    assert list(rows[0]) == ["restart", "prior_delta", "d", "delta", "phi", "phi_ball", "phi_G", "converged",
                             "phi_G_se", "phi_se", "ess", "method"]
    assert all(r["phi_G_se"] == r["ess"] == "nan" for r in rows)  # BP has no sampling error
    assert [int(r["restart"]) for r in rows] == [0, 0, 0, 2, 2, 2]
    ref = bp.local_entropy_curve(W[2], X, y, [1e-3, 1e-2, 0.05], method="edge")
    got = [r for r in rows if r["restart"] == "2"]
    for j, r in enumerate(got):
        assert r["converged"] == "1" and r["method"] in ("amp", "edge")
        if method != "auto":
            assert r["method"] == method
        assert float(r["prior_delta"]) == pytest.approx([1e-3, 1e-2, 0.05][j])
        assert float(r["phi"]) == pytest.approx(ref.phi[j], abs=1e-6)
        assert float(r["d"]) == pytest.approx(ref.d[j], rel=1e-5)
        assert float(r["phi"]) <= 0 and float(r["phi_ball"]) <= 0


def test_ep_curve_from_the_cli_equals_the_library_and_refuses_a_soft_constraint(problem):
    X, y, W, tmp = problem
    out = tmp / "ep.csv"
    res = run("phi", tmp / "w.npy", "--data", tmp / "pats.npz", "--deltas", "1e-2,0.1", "--restarts", "0",
              "--method", "ep", "--jobs", 1, "--out", out)
    assert res.exit_code == 0, res.output
    rows = read_csv(out)
    ref = bp.local_entropy_curve(W[0], X, y, [1e-2, 0.1], method="ep")
    assert [r["method"] for r in rows] == ["ep", "ep"] and all(r["converged"] == "1" for r in rows)
    for j, r in enumerate(rows):
        assert float(r["phi_G"]) == pytest.approx(ref.phi_G[j], rel=1e-9)
        assert float(r["phi"]) == pytest.approx(ref.phi[j], rel=1e-9)
    from localentropy.cli.phi_cmd import METHOD_CHOICES
    from localentropy.committee.curves import METHODS

    assert set(METHOD_CHOICES) == set(METHODS)  # the CLI's literal list (no bp import at start-up)
    res = run("phi", tmp / "w.npy", "--data", tmp / "pats.npz", "--method", "ep", "--beta", 3, "--out", tmp / "x.csv")
    one_line_error(res, "beta = inf")
    assert not (tmp / "x.csv").exists()


def test_solutions_npz_parallel_jobs_and_plot(problem):
    X, y, W, tmp = problem
    save_solutions(tmp / "s.npz", W, patterns_hash(X, y), {"setting": "test"})
    res = run("phi", tmp / "s.npz", "--data", tmp / "pats.npz", "--deltas", "1e-3:1e-1:4", "--jobs", 2,
              "--method", "edge", "--out", tmp / "c.csv", "--plot", tmp / "c.png")
    assert res.exit_code == 0, res.output
    rows = read_csv(tmp / "c.csv")
    assert sorted({int(r["restart"]) for r in rows}) == [0, 1, 2] and len(rows) == 12
    assert (tmp / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in tmp.iterdir() if p.name.startswith(".")]  # no temp files left


def one_line_error(res, *words):
    assert res.exit_code == 2, res.output
    assert res.output.count("\n") == 1 and res.output.startswith("localentropy: error:"), res.output
    for w in words:
        assert w in res.output, res.output


def test_bad_inputs_are_one_line_errors_with_exit_2(problem):
    X, y, W, tmp = problem
    data = ["--data", tmp / "pats.npz"]
    out = ["--out", tmp / "c.csv"]
    one_line_error(run("phi", tmp / "missing.npy", *data, *out), "missing.npy")
    one_line_error(run("phi", tmp / "w.npy", "--data", tmp / "nope.npz", *out), "nope.npz")
    one_line_error(run("phi", tmp / "w.npy", *data, "--deltas", "1:0.1:5", *out), "lo (1) must be below hi (0.1)")
    one_line_error(run("phi", tmp / "w.npy", *data, "--deltas", "0.1,0.01", *out), "increasing")
    one_line_error(run("phi", tmp / "w.npy", *data, "--deltas", "a,b", *out), "--deltas")
    one_line_error(run("phi", tmp / "w.npy", *data, "--restarts", "0,5", *out), "out of range")
    one_line_error(run("phi", tmp / "w.npy", *data, "--beta", "-1", *out), "--beta")
    bad = W.copy()
    bad[1, 0, 0] = np.nan
    np.save(tmp / "nan.npy", bad)
    one_line_error(run("phi", tmp / "nan.npy", *data, *out), "NaN")
    np.save(tmp / "flat.npy", W.reshape(-1))
    one_line_error(run("phi", tmp / "flat.npy", *data, *out), "shape")
    np.save(tmp / "wrongN.npy", W[:, :, :-1])
    one_line_error(run("phi", tmp / "wrongN.npy", *data, *out), "N=39")
    np.savez(tmp / "noy.npz", X=X)
    one_line_error(run("phi", tmp / "w.npy", "--data", tmp / "noy.npz", *out), "missing y")
    assert not (tmp / "c.csv").exists()


def test_patterns_hash_mismatch_names_both(problem):
    X, y, W, tmp = problem
    save_solutions(tmp / "s.npz", W, "0123456789abcdef" * 4, {"setting": "test"})
    res = run("phi", tmp / "s.npz", "--data", tmp / "pats.npz", "--out", tmp / "c.csv")
    one_line_error(res, "0123456789abcdef", patterns_hash(X, y)[:16])


def test_misclassifying_reference_is_an_error_unless_dropped(problem):
    X, y, W, tmp = problem
    y2 = y.copy()
    y2[0] = -y2[0]
    np.savez(tmp / "flip.npz", X=X, y=y2)
    res = run("phi", tmp / "w.npy", "--data", tmp / "flip.npz", "--restarts", "0", "--deltas", "1e-3,1e-2",
              "--method", "edge", "--out", tmp / "c.csv")
    one_line_error(res, "restart 0", "misclassifies")
    res = run("phi", tmp / "w.npy", "--data", tmp / "flip.npz", "--restarts", "0", "--deltas", "1e-3,1e-2",
              "--method", "edge", "--drop-misclassified", "--out", tmp / "c.csv")
    assert res.exit_code == 0, res.output
    assert all(r["converged"] == "1" for r in read_csv(tmp / "c.csv"))


def test_restarts_that_did_not_converge_are_skipped_unless_named(problem):
    X, y, W, tmp = problem
    bad = W.copy()
    bad[1] = -W[0]  # misclassifies every pattern
    sols = tmp / "s.npz"
    save_solutions(sols, bad, patterns_hash(X, y), {"status": ["converged", "not converged", "converged"]})
    out = tmp / "c.csv"
    res = CliRunner().invoke(cli, ["phi", str(sols), "--data", str(tmp / "pats.npz"), "--deltas", "1e-3,1e-2",
                                   "--jobs", "1", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "skipping restart(s) 1: not converged" in res.output
    assert sorted({row["restart"] for row in read_csv(out)}) == ["0", "2"]
    named = run("phi", sols, "--data", tmp / "pats.npz", "--deltas", "1e-3", "--restarts", "1", "--out", tmp / "d.csv")
    assert named.exit_code == 2
    assert f"restart 1 misclassifies {P} of {P} training patterns (0, 1, 2, 3, 4, …)" in named.output and not (tmp / "d.csv").exists()


def test_quiet_phi_still_prints_the_report_and_the_table_of_phi(problem):
    X, y, W, tmp = problem
    res = run("phi", tmp / "w.npy", "--data", tmp / "pats.npz", "--deltas", "1e-3,1e-2", "--method", "edge",
              "--jobs", 1, "--out", tmp / "c.csv")
    assert res.exit_code == 0, res.output
    assert res.stderr == ""
    lines = res.stdout.splitlines()
    assert lines[:3] == [f"restart {r}: 2/2 prior widths converged (method edge)" for r in range(3)]
    assert lines[3].split() == ["prior_delta", "d", "(mean)", "Φ_LE", "(mean)", "converged"]
    rows = read_csv(tmp / "c.csv")
    for line, D in zip(lines[4:], ("0.001", "0.01")):
        mean_phi = np.mean([float(r["phi"]) for r in rows if r["prior_delta"] == D])
        mean_d = np.mean([float(r["d"]) for r in rows if r["prior_delta"] == D])
        got = line.split()
        assert float(got[0]) == float(D) and got[3] == "3/3"
        assert float(got[1]) == pytest.approx(mean_d, rel=1e-3) and float(got[2]) == pytest.approx(mean_phi, rel=1e-4)


def test_a_word_before_bp_compiles_and_none_when_quiet(problem, monkeypatch):
    X, y, W, tmp = problem
    monkeypatch.setattr(bp, "needs_compilation", lambda: True, raising=False)
    monkeypatch.setattr(bp, "compile_kernels", lambda: None, raising=False)
    args = ["phi", str(tmp / "w.npy"), "--data", str(tmp / "pats.npz"), "--deltas", "1e-3", "--restarts", "0",
            "--method", "edge", "--out", str(tmp / "c.csv")]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert res.stderr.startswith("compiling BP kernels once for this machine")
    res = CliRunner().invoke(cli, ["-q", *args])
    assert res.exit_code == 0 and "compiling" not in res.output


def test_a_restart_whose_bp_fails_is_reported_and_the_others_written_with_exit_1(problem, monkeypatch):
    X, y, W, tmp = problem
    real = bp.local_entropy_curve

    def failing(center, *a, **kw):
        if np.allclose(center, W[1]):
            raise bp.BPError("synthetic failure")
        return real(center, *a, **kw)

    monkeypatch.setattr(bp, "local_entropy_curve", failing)
    res = run("phi", tmp / "w.npy", "--data", tmp / "pats.npz", "--deltas", "1e-3", "--method", "edge", "--jobs", 1,
              "--out", tmp / "c.csv")
    assert res.exit_code == 1, res.output
    assert "restart 1: error: synthetic failure" in res.stdout
    assert sorted({r["restart"] for r in read_csv(tmp / "c.csv")}) == ["0", "2"]
    res = run("phi", tmp / "w.npy", "--data", tmp / "pats.npz", "--deltas", "1e-3", "--method", "edge",
              "--restarts", "1", "--out", tmp / "d.csv")
    one_line_error(res, "synthetic failure")
    assert not (tmp / "d.csv").exists()


def test_a_long_grid_is_announced_with_its_rough_time_and_a_rerun_resumes_from_the_kept_curves(problem):
    X, y, W, tmp = problem
    args = ["phi", str(tmp / "w.npy"), "--data", str(tmp / "pats.npz"), "--deltas", "1e-4:1e-2:101",
            "--restarts", "0", "--method", "amp", "--jobs", "1", "--out", str(tmp / "c.csv")]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert "warning: 101 prior widths per curve" in res.stderr and "min for 1 curve(s) with --method amp" in res.stderr
    short = CliRunner().invoke(cli, args[:4] + ["1e-4,1e-3"] + args[5:])
    assert "warning" not in short.stderr
    # a kept curve is read back, not recomputed: one planted in the checkpoint is what the table shows
    from localentropy.committee.pipeline import restart_curves

    parts = tmp / ".d.csv.curves"
    grid = np.array([1e-3, 1e-2])
    first = restart_curves(W, X, y, grid, restarts=[0, 1], method="amp", checkpoint=parts)
    assert first.reused == () and len(list(parts.iterdir())) == 2
    again = restart_curves(W, X, y, grid, restarts=[0, 1], method="amp", checkpoint=parts,
                           progress=lambda info: info.get("event") == "point" and pytest.fail("recomputed"))
    assert again.reused == (0, 1)
    for r in (0, 1):
        for name in ("phi", "phi_G", "d", "delta", "converged"):
            assert np.array_equal(getattr(again.curves[r], name), getattr(first.curves[r], name), equal_nan=True)
        assert again.curves[r].methods == first.curves[r].methods
    res = run("phi", tmp / "w.npy", "--data", tmp / "pats.npz", "--deltas", "1e-3,1e-2", "--restarts", "0,1",
              "--method", "amp", "--jobs", 1, "--out", tmp / "d.csv")
    assert res.exit_code == 0, res.output
    assert not parts.exists()
    rows = read_csv(tmp / "d.csv")
    assert [float(r["phi_G"]) for r in rows] == pytest.approx(
        [float(v) for r in (0, 1) for v in first.curves[r].phi_G], rel=1e-11)
