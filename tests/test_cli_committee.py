"""`localentropy train | eval | energy` on a small Dress/Coat-format file: outputs, resume, exit codes."""

import csv

import numpy as np
import pytest
from click.testing import CliRunner

from localentropy.cli.main import cli
from localentropy.committee.presets import get_preset
from localentropy.committee.solutions import load_solutions, save_solutions
from localentropy.committee.train import train_committee
from localentropy.data.dresscoat import DressCoat, save_dresscoat

SMALL_ARGS = ["--set", "K=3", "--set", "batch_size=10", "--set", "eta=0.05", "--max-epochs", "40"]


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    rng = np.random.default_rng(3)
    N = 51
    ds = DressCoat(
        X_train=rng.choice([-1, 1], size=(40, N)).astype(np.int8), y_train=rng.choice([-1, 1], size=40).astype(np.int8),
        X_test=rng.choice([-1, 1], size=(30, N)).astype(np.int8), y_test=rng.choice([-1, 1], size=30).astype(np.int8),
        train_index=np.arange(40), test_index=np.arange(30), provenance={"source": "random test patterns"},
    )
    path = tmp_path_factory.mktemp("data") / "small.npz"
    save_dresscoat(ds, path)
    return path, ds


def _run(*args):
    return CliRunner().invoke(cli, ["-q", *map(str, args)], catch_exceptions=False)


def test_train_eval_energy_end_to_end(small_data, tmp_path):
    data, ds = small_data
    out = tmp_path / "sols.npz"
    r = _run("train", "--setting", "sgd-fast", "--restarts", 3, "--seed", 1, "--out", out, "--data", data, *SMALL_ARGS)
    assert r.exit_code == 0, r.output
    sol = load_solutions(out)
    assert sol.weights.shape == (3, 3, 51)
    m = sol.metadata
    assert m["setting"] == "sgd-fast" and m["hyperparameters"]["eta"] == 0.05 and m["seed"] == 1
    assert len(m["status"]) == len(m["epochs"]) == len(m["train_error"]) == len(m["test_error"]) == 3
    assert not (tmp_path / "sols.npz.ckpt").exists()
    # same numbers as calling the library directly
    res = train_committee(ds.X_train, ds.y_train, get_preset("sgd-fast", K=3, batch_size=10, eta=0.05, max_epochs=40),
                          restarts=3, seed=1)
    assert np.array_equal(sol.weights, res.weights)

    r = CliRunner().invoke(cli, ["eval", str(out), "--data", str(data), "--out", str(tmp_path / "e.csv")])
    assert r.exit_code == 0, r.output
    assert "mean" in r.output and "restart" in r.output
    rows = list(csv.DictReader(open(tmp_path / "e.csv")))
    assert [float(x["train_error"]) for x in rows] == pytest.approx(m["train_error"])

    r = _run("energy", out, "--data", data, "--sigma-max", 0.4, "--sigmas", 3, "--draws", 8, "--out", tmp_path / "en.csv",
             "--summary", tmp_path / "en-mean.csv", "--plot", tmp_path / "en.png")
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(open(tmp_path / "en.csv")))
    assert len(rows) == 3 * 3 and float(rows[0]["sigma"]) == 0.0 and float(rows[0]["delta_error"]) == 0.0
    assert [int(x["restart"]) for x in rows] == [0, 0, 0, 1, 1, 1, 2, 2, 2]  # no summary rows in this table
    assert [x["sigma"] for x in rows[:3]] == ["0", "0.2", "0.4"]
    mean = list(csv.DictReader(open(tmp_path / "en-mean.csv")))
    assert list(mean[0]) == ["sigma", "delta_error_mean", "delta_error_se", "restarts"] and len(mean) == 3
    by_sigma = [np.mean([float(x["delta_error"]) for x in rows if x["sigma"] == m["sigma"]]) for m in mean]
    assert [float(m["delta_error_mean"]) for m in mean] == pytest.approx(by_sigma, rel=1e-10)
    assert (tmp_path / "en.png").read_bytes()[:4] == b"\x89PNG"
    assert "δE_train (mean)" in r.stdout  # the table is printed even with -q


def test_rerun_resumes_from_checkpoint_with_the_uninterrupted_result(small_data, tmp_path):
    data, ds = small_data
    args = ["--setting", "rsgd-fast", "--restarts", 2, "--seed", 0, "--data", data, "--set", "replicas=3",
            "--set", "gamma0=0.05", "--set", "gamma1=0.2", *SMALL_ARGS]
    assert _run("train", "--out", tmp_path / "a.npz", *args).exit_code == 0
    p = get_preset("rsgd-fast", K=3, batch_size=10, eta=0.05, replicas=3, gamma0=0.05, gamma1=0.2, max_epochs=40)
    ck = tmp_path / "b.npz.ckpt"  # what an interrupted `train --out b.npz` leaves behind
    assert train_committee(ds.X_train, ds.y_train, p, restarts=2, seed=0, checkpoint=ck, stop_after_epochs=5) is None
    assert _run("train", "--out", tmp_path / "b.npz", *args).exit_code == 0
    assert np.array_equal(load_solutions(tmp_path / "a.npz").weights, load_solutions(tmp_path / "b.npz").weights)
    assert not ck.exists()


@pytest.mark.parametrize("args, message", [
    (["train", "--setting", "adam", "--out", "x.npz"], "unknown setting"),
    (["train", "--setting", "sgd-fast", "--out", "x.npz", "--set", "K=4"], "odd"),
    (["train", "--setting", "sgd-fast", "--out", "x.npz", "--set", "eta"], "name=value"),
    (["train", "--setting", "sgd-fast", "--out", "x.npz", "--set", "nope=1"], "unknown hyper-parameter"),
    (["train", "--setting", "sgd-fast", "--out", "x.npz", "--dropout", "1.5"], "dropout"),
    (["train", "--setting", "sgd-fast"], "--out"),
    (["train", "--setting", "sgd-fast", "--out", "nowhere/x.npz"], "does not exist"),
    (["eval", "missing.npz"], "missing.npz"),
    (["energy", "missing.npz", "--out", "e.csv"], "missing.npz"),
])
def test_bad_input_exits_2_with_one_line(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 2, r.output
    assert "localentropy: error:" in r.output and message in r.output


def test_solutions_of_other_patterns_are_refused(small_data, tmp_path):
    data, _ = small_data
    w = np.random.default_rng(0).normal(size=(2, 3, 51))
    w *= np.sqrt(51) / np.linalg.norm(w, axis=2, keepdims=True)
    save_solutions(tmp_path / "s.npz", w, "not-the-hash", {"setting": "x"})
    r = CliRunner().invoke(cli, ["eval", str(tmp_path / "s.npz"), "--data", str(data)])
    assert r.exit_code == 2 and "other patterns" in r.output
    (tmp_path / "bad.npz").write_text("junk")
    r = CliRunner().invoke(cli, ["eval", str(tmp_path / "bad.npz"), "--data", str(data)])
    assert r.exit_code == 2 and "bad.npz" in r.output


def test_threads_option_gives_bitwise_the_same_solutions(small_data, tmp_path):
    data, _ = small_data
    outs = []
    for threads in (1, 2):
        out = tmp_path / f"t{threads}.npz"
        r = _run("train", "--setting", "sgd-fast", "--restarts", 4, "--seed", 2, "--out", out, "--data", data,
                 "--threads", threads, *SMALL_ARGS)
        assert r.exit_code == 0, r.output
        outs.append(load_solutions(out).weights)
    assert np.array_equal(outs[0], outs[1])
    bad = CliRunner().invoke(cli, ["train", "--setting", "sgd-fast", "--out", str(tmp_path / "x.npz"), "--threads", "0"])
    assert bad.exit_code == 2 and "--threads" in bad.output


def test_a_resumed_train_says_from_which_epoch_and_its_bar_starts_there(small_data, tmp_path):
    data, ds = small_data
    p = get_preset("sgd-fast", K=3, batch_size=10, eta=0.05, max_epochs=40)
    ck = tmp_path / "b.npz.ckpt"
    assert train_committee(ds.X_train, ds.y_train, p, restarts=2, seed=0, checkpoint=ck, stop_after_epochs=5) is None
    r = CliRunner().invoke(cli, ["train", "--setting", "sgd-fast", "--restarts", 2, "--seed", 0, "--data", str(data),
                                 "--out", str(tmp_path / "b.npz"), *SMALL_ARGS])
    assert r.exit_code == 0, r.output
    assert f"resuming from {ck} at epoch 5" in r.stderr
    bar = r.stderr.split("at epoch 5", 1)[1]
    assert "/40" in bar and not any(f" {k}/40" in bar for k in range(5))  # the bar never counts from 0
    assert "restarts converged" in r.stdout


def test_train_with_shared_batches_in_float32_records_both(tmp_path):
    import json

    import numpy as np

    out = tmp_path / "s.npz"
    res = CliRunner().invoke(cli, ["-q", "train", "--setting", "sgd-fast", "--restarts", "2", "--max-epochs", "3",
                                   "--shared-batches", "--dtype", "float32", "--out", str(out)])
    assert res.exit_code == 0, res.output
    with np.load(out, allow_pickle=False) as z:
        meta = json.loads(str(z["metadata"]))
    assert "float32" in str(meta.get("dtype")) and "shared" in str(meta.get("batches"))
