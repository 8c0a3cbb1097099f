"""committee.curves: every estimator of a committee curve behind one call, and `localentropy phi --method is|hmc`."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
from click.testing import CliRunner

from localentropy import bp
from localentropy.bp.errors import BPError
from localentropy.cli.main import cli
from localentropy.committee.curves import METHODS, SampledCurve, committee_curve
from localentropy.committee.pipeline import restart_curves

DELTAS = [0.01, 0.05]


@pytest.fixture(scope="module")
def planted():
    """A K = 3, N = 40 teacher committee and 30 of its patterns (P < N, independent patterns)."""
    from localentropy.bp.instances import planted_instance

    X, y, W = planted_instance(3, 3, 40, 30)
    return X, y, W


def test_bp_methods_are_bp_itself_and_the_samplers_agree_with_each_other(planted):
    X, y, W = planted
    ref = bp.local_entropy_curve(W, X, y, DELTAS, method="auto")
    got = committee_curve(W, X, y, DELTAS, method="auto")
    assert np.array_equal(got.phi_G, ref.phi_G, equal_nan=True)
    sis = committee_curve(W, X, y, DELTAS, method="is", samples=2048, seed=1)
    hmc = committee_curve(W, X, y, DELTAS, method="hmc", seed=1)
    assert isinstance(sis, SampledCurve) and sis.methods == ("is", "is") and sis.converged.all()
    assert hmc.methods == ("hmc", "hmc") and np.isnan(hmc.ess).all()
    # two independent unbiased estimates of the same φ_G: within 4 combined standard errors
    z = (sis.phi_G - hmc.phi_G) / np.hypot(sis.phi_G_se, hmc.phi_G_se)
    assert np.all(np.abs(z) < 4), (sis.phi_G, hmc.phi_G, z)
    assert np.all(sis.phi_G < 0) and np.all(sis.ess > 100)


def test_samplers_take_the_constraint_options_and_refuse_what_they_cannot_do(planted):
    X, y, W = planted
    soft = committee_curve(W, X, y, DELTAS, method="is", beta=3.0, samples=256)
    hard = committee_curve(W, X, y, DELTAS, method="is", samples=256)
    assert np.all(soft.phi_G > hard.phi_G)  # the soft constraint charges less than the hard one
    flipped = y.copy()
    flipped[0] = -flipped[0]  # the reference now misclassifies pattern 0
    with pytest.raises(BPError, match="misclassifies"):
        committee_curve(W, X, flipped, DELTAS, method="is", samples=64)
    dropped = committee_curve(W, X, flipped, DELTAS, method="is", samples=64, drop_misclassified=True)
    assert dropped.n_dropped == 1 and dropped.P == len(y) - 1
    with pytest.raises(BPError, match="hard-constraint"):
        restart_curves(W, X, y, DELTAS, method="hmc", beta=2.0)
    with pytest.raises(BPError, match="unknown method"):
        committee_curve(W, X, y, DELTAS, method="mc")
    assert METHODS[0] == "is" and {"auto", "amp", "edge", "ep", "hmc"} <= set(METHODS)


def test_phi_command_with_the_importance_sampler_writes_standard_errors(planted, tmp_path):
    X, y, W = planted
    np.savez(tmp_path / "pats.npz", X=X, y=y)
    np.save(tmp_path / "w.npy", np.stack([W, W]))
    out = tmp_path / "c.csv"
    res = CliRunner().invoke(cli, ["-q", "phi", str(tmp_path / "w.npy"), "--data", str(tmp_path / "pats.npz"),
                                   "--deltas", "0.01,0.05", "--method", "is", "--samples", "128", "--jobs", "2",
                                   "--out", str(out)])
    assert res.exit_code == 0, res.output
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 4 and all(r["method"] == "is" for r in rows)
    for r in rows:
        assert float(r["phi_G_se"]) > 0 and float(r["ess"]) > 1 and math.isfinite(float(r["phi"]))
    # the same seed for both restarts: the same reference gives the same numbers, in parallel processes
    assert [r["phi_G"] for r in rows[:2]] == [r["phi_G"] for r in rows[2:]]
    res = CliRunner().invoke(cli, ["-q", "phi", str(tmp_path / "w.npy"), "--data", str(tmp_path / "pats.npz"),
                                   "--method", "is", "--samples", "1", "--out", str(tmp_path / "x.csv")])
    assert res.exit_code == 2 and "--samples" in res.output and not (tmp_path / "x.csv").exists()
