"""The result tables: documented columns, numbers that load as numbers, no binary-rounding tails,
no summary rows among per-restart rows, and atomic writes that leave nothing behind on failure."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest

from localentropy.committee import tables
from localentropy.committee.errors import CommitteeError
from localentropy.committee.evaluate import EnergyProfiles
from localentropy.committee.pipeline import SolutionErrors, restart_curves, sigma_grid


def _read(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _profiles(R=3):
    rng = np.random.default_rng(0)
    sig = sigma_grid(0.5, 11)
    d = np.cumsum(rng.uniform(0, 0.01, size=(R, 11)), axis=1) - 0.0  # increasing in σ
    d[:, 0] = 0.0
    return EnergyProfiles(sigmas=sig, error0=np.zeros(R), delta_error=d, delta_error_se=d / 10, draws=10, seed=0)


def test_format_value_writes_short_decimals_and_flags():
    assert tables.format_value(0.1 + 0.2) == "0.3"
    assert tables.format_value(np.float64(np.linspace(0, 0.5, 11)[6])) == "0.3"
    assert tables.format_value(-2.8e-4) == "-0.00028"
    assert tables.format_value(1 / 3) == "0.333333333333"
    assert tables.format_value(float("nan")) == "nan" and tables.format_value(-math.inf) == "-inf"
    assert tables.format_value(True) == "1" and tables.format_value(np.bool_(False)) == "0"
    assert tables.format_value(np.int64(7)) == "7" and tables.format_value(None) == ""


def test_energy_table_has_integer_restarts_and_the_summary_its_own_table(tmp_path):
    prof = _profiles()
    tables.write_energy_table(tmp_path / "e.csv", prof)
    tables.write_energy_summary(tmp_path / "m.csv", prof)
    rows = _read(tmp_path / "e.csv")
    assert list(rows[0]) == list(tables.ENERGY_COLUMNS) and len(rows) == 3 * 11
    a = np.genfromtxt(tmp_path / "e.csv", delimiter=",", names=True)  # every column numeric
    assert a["restart"].tolist() == [float(r) for r in range(3) for _ in range(11)]
    assert not np.any(np.isnan(a["restart"])) and not np.any(np.isnan(a["delta_error"]))
    assert [r["sigma"] for r in rows[:4]] == ["0", "0.05", "0.1", "0.15"] and rows[6]["sigma"] == "0.3"
    assert "0.30000000000000004" not in (tmp_path / "e.csv").read_text()
    m = np.genfromtxt(tmp_path / "m.csv", delimiter=",", names=True)
    assert list(m.dtype.names) == list(tables.ENERGY_SUMMARY_COLUMNS)
    np.testing.assert_allclose(m["delta_error_mean"], prof.delta_error.mean(0), rtol=1e-11)
    np.testing.assert_allclose(m["delta_error_se"][1:], prof.delta_error.std(0, ddof=1)[1:] / math.sqrt(3), rtol=1e-11)
    assert m["restarts"].tolist() == [3.0] * 11


def test_errors_table_is_numeric_with_converged_as_0_or_1(tmp_path):
    err = SolutionErrors(restarts=(0, 1), converged=(True, False), epochs=(120, 400),
                         train_error=np.array([0.0, 0.02]), test_error=np.array([0.1, 0.30000000000000004]))
    tables.write_errors_table(tmp_path / "x.csv", err)
    rows = _read(tmp_path / "x.csv")
    assert rows == [{"restart": "0", "converged": "1", "epochs": "120", "train_error": "0", "test_error": "0.1"},
                    {"restart": "1", "converged": "0", "epochs": "400", "train_error": "0.02", "test_error": "0.3"}]
    unknown = SolutionErrors(restarts=(0,), converged=None, epochs=None, train_error=np.zeros(1), test_error=np.zeros(1))
    tables.write_errors_table(tmp_path / "y.csv", unknown)
    a = np.genfromtxt(tmp_path / "y.csv", delimiter=",", names=True)
    assert math.isnan(float(a["converged"])) and float(a["test_error"]) == 0.0


def test_curves_table_columns_and_values_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.choice([-1, 1], size=(20, 30))
    W = rng.normal(size=(1, 3, 30))
    y = np.sign(np.sign(X @ W[0].T).sum(axis=1))
    res = restart_curves(W, X, y, [1e-3, 1e-2], method="edge")
    tables.write_curves_table(tmp_path / "c.csv", res)
    rows = _read(tmp_path / "c.csv")
    assert list(rows[0]) == list(tables.CURVE_COLUMNS) and len(rows) == 2
    assert [r["prior_delta"] for r in rows] == ["0.001", "0.01"] and {r["method"] for r in rows} == {"edge"}
    for j, r in enumerate(rows):
        assert float(r["phi"]) == pytest.approx(res.curves[0].phi[j], rel=1e-11, abs=1e-300)
        assert float(r["d"]) == pytest.approx(res.curves[0].d[j], rel=1e-11)
    numeric = [c for c in tables.CURVE_COLUMNS if c != "method"]
    a = np.genfromtxt(tmp_path / "c.csv", delimiter=",", names=True, usecols=range(len(numeric)))
    assert list(a.dtype.names) == numeric and a["converged"].tolist() == [1.0, 1.0]


def test_a_write_that_cannot_happen_leaves_no_file(tmp_path):
    prof = _profiles()
    with pytest.raises(CommitteeError, match="does not exist"):
        tables.write_energy_table(tmp_path / "nowhere" / "e.csv", prof)
    (tmp_path / "adir").mkdir()
    with pytest.raises(CommitteeError, match="folder"):
        tables.write_energy_table(tmp_path / "adir", prof)

    class Broken:
        sigmas = prof.sigmas
        error0 = prof.error0
        delta_error = prof.delta_error
        delta_error_se = None  # fails half-way through the rows

    with pytest.raises(TypeError):
        tables.write_energy_table(tmp_path / "half.csv", Broken())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir"]
