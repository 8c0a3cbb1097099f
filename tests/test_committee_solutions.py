"""Solutions files: round trip, atomic writes, and one clear CommitteeError per kind of bad file."""

import json

import numpy as np
import pytest

from localentropy.committee.errors import CommitteeError
from localentropy.committee.solutions import load_solutions, save_solutions


def _normalised(R=4, K=3, N=11, seed=0):
    w = np.random.default_rng(seed).uniform(-1, 1, size=(R, K, N))
    return w * np.sqrt(N) / np.linalg.norm(w, axis=2, keepdims=True)


def test_round_trip_keeps_weights_hash_and_metadata_exactly(tmp_path):
    w = _normalised()
    meta = {"setting": "sgd-fast", "status": ["converged", "not converged", "converged", "converged"], "eta": 2e-4}
    p = save_solutions(tmp_path / "s.npz", w, "abc123", meta)
    s = load_solutions(p)
    assert s.weights.dtype == np.float64 and np.array_equal(s.weights, w)
    assert s.patterns_hash == "abc123" and s.metadata == meta
    assert (s.restarts, s.K, s.N) == (4, 3, 11)
    assert [f.name for f in tmp_path.iterdir()] == ["s.npz"]  # no temporary file left behind


def test_file_layout_is_plain_npz_without_pickles(tmp_path):
    save_solutions(tmp_path / "s.npz", _normalised(), "h", {"a": 1})
    with np.load(tmp_path / "s.npz", allow_pickle=False) as z:
        assert sorted(z.files) == ["metadata", "patterns_hash", "weights"]
        assert z["patterns_hash"].shape == () and json.loads(str(z["metadata"])) == {"a": 1}


def _raw(path, **entries):
    np.savez(path, **entries)
    return path


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda w: w[0], "must be 3-d"),
        (lambda w: np.concatenate([w, w[:, :1]], axis=1), "must be a positive odd integer"),
        (lambda w: np.where(np.arange(w.size).reshape(w.shape) == 5, np.nan, w), "NaN"),
        (lambda w: w * 1.001, "squared norm"),
    ],
)
def test_bad_weights_are_rejected_naming_the_file(tmp_path, change, message):
    path = _raw(tmp_path / "bad.npz", weights=change(_normalised()), patterns_hash=np.array("h"), metadata=np.array("{}"))
    with pytest.raises(CommitteeError, match=message) as info:
        load_solutions(path)
    assert "bad.npz" in str(info.value)
    with pytest.raises(CommitteeError, match=message):
        save_solutions(tmp_path / "out.npz", change(_normalised()), "h", {})
    assert not (tmp_path / "out.npz").exists()


def test_missing_keys_bad_json_and_non_npz_are_rejected(tmp_path):
    p = _raw(tmp_path / "a.npz", weights=_normalised(), metadata=np.array("{}"))
    with pytest.raises(CommitteeError, match="missing patterns_hash"):
        load_solutions(p)
    p = _raw(tmp_path / "b.npz", weights=_normalised(), patterns_hash=np.array("h"), metadata=np.array("{oops"))
    with pytest.raises(CommitteeError, match="not valid JSON"):
        load_solutions(p)
    (tmp_path / "c.npz").write_text("not a zip")
    with pytest.raises(CommitteeError, match="cannot read"):
        load_solutions(tmp_path / "c.npz")
    with pytest.raises(FileNotFoundError):
        load_solutions(tmp_path / "nope.npz")


def test_normalisation_tolerance_is_one_part_in_a_million(tmp_path):
    w = _normalised()
    save_solutions(tmp_path / "ok.npz", w * (1 + 2e-7), "h", {})  # ‖w‖² off by 4e-7: accepted
    with pytest.raises(CommitteeError):
        save_solutions(tmp_path / "no.npz", w * (1 + 1e-6), "h", {})  # off by 2e-6: rejected
