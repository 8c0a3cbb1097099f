"""Deep training as practitioners expect it: a validation split with a best checkpoint, `deep eval`,
configuration files and extending a finished run, TensorBoard as an extra and one line per epoch in logs.

Everything on a tiny MLP and a few hundred random images, 1-3 epochs."""

from __future__ import annotations

import configparser
import csv
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from localentropy.cli.main import cli
from localentropy.data.idx import write_idx
from localentropy.data.locate import dataset
from localentropy.deep import DeepError
from localentropy.deep.config import config_from_file
from localentropy.deep.datasets import hold_out, synthetic_images, validation_indices
from localentropy.deep.metrics import BEST_TEST_LABEL, METRIC_COLUMNS, VAL_METRIC_COLUMNS, best_by_validation, run_summary
from localentropy.deep.presets import TrainConfig, get_preset, reports_best_test
from localentropy.deep.train import train

from tests.test_cli_usage import one_line_error

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]
TIMES = ("epoch_seconds", "wall_seconds")


def _write_fmnist(folder: Path, seed: int, n_train=200, n_test=50) -> Path:
    rng = np.random.default_rng(seed)
    folder.mkdir()
    files = dataset("fashion-mnist").files
    arrays = {"train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
              "train_labels": rng.integers(0, 10, n_train).astype(np.uint8),
              "test_images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
              "test_labels": rng.integers(0, 10, n_test).astype(np.uint8)}
    for role, a in arrays.items():
        write_idx(folder / files[role], a, compress=False)
    return folder


@pytest.fixture(scope="module")
def fm(tmp_path_factory):
    """Tiny Fashion-MNIST IDX files: 200 training, 50 test images."""
    return _write_fmnist(tmp_path_factory.mktemp("data") / "fm", 0)


@pytest.fixture(scope="module")
def data():
    return synthetic_images("fashion-mnist", n_train=192, n_test=48, seed=2)


def tiny(**kw) -> TrainConfig:
    base = TrainConfig(name="tiny", dataset="fashion-mnist", model="mlp2", method="sgd", batch_size=40, lr=0.05,
                       momentum=0.9, nesterov=True, augment="standard", eval_batch=64, epochs=2, val_split=32)
    return dataclasses.replace(base, **kw)


SETS = ["--set", "batch_size=50", "--set", "train_subset=0", "--set", "test_subset=0", "--set", "milestones=",
        "--set", "lr_schedule=constant", "--threads", "1", "--no-tensorboard"]


def _train_cli(fm, out, *extra, quiet=True):
    args = (["-q"] if quiet else []) + ["deep", "train", "--data-dir", str(fm), "--out", str(out), *SETS, *extra]
    return CliRunner().invoke(cli, args)


def _rows(path):
    return [{k: v for k, v in r.items() if k not in TIMES} for r in csv.DictReader(open(path))]


def _same_tensors(a, b):
    a = torch.load(a, weights_only=True) if isinstance(a, Path) else a
    b = torch.load(b, weights_only=True) if isinstance(b, Path) else b
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ----- 3. validation split and the best checkpoint -----------------------------------------------------------
def test_the_validation_split_is_a_fixed_subset_chosen_by_the_seed_and_never_trained_on(data):
    tr, val = validation_indices(100, 10, seed=5)
    assert len(val) == 10 and len(tr) == 90 and not set(tr.tolist()) & set(val.tolist())
    assert torch.equal(val, validation_indices(100, 10, seed=5)[1])  # the same on every call (resume)
    assert not torch.equal(val, validation_indices(100, 10, seed=6)[1])
    x, t, vx, vt = hold_out(data.train_images, data.train_labels, 32, seed=1)
    assert x.shape[0] == 160 and vx.shape[0] == 32
    with pytest.raises(DeepError, match="val_split"):
        validation_indices(10, 10, seed=0)
    res = train(tiny(epochs=1), data)
    (row,) = res.metrics
    assert row["samples"] == 4 * 40  # 160 training images left: 4 batches of 40; the 32 held out are not read
    assert 0 <= row["val_error"] <= 1 and row["val_loss"] > 0 and res.extra["validation_images"] == 32


def test_the_best_network_is_the_earliest_of_the_lowest_validation_errors():
    rows = [dict(epoch=1, val_error=0.5, test_error=0.4), dict(epoch=2, val_error=0.3, test_error=0.35),
            dict(epoch=3, val_error=0.3, test_error=0.2), dict(epoch=4, val_error=0.6, test_error=0.1)]
    assert best_by_validation(rows)["epoch"] == 2  # a tie keeps the earlier network
    s = run_summary(rows, epochs=4, validation=True, best_test=True)
    assert s["best_by_validation"]["test_error"] == 0.35 and s["last"]["test_error"] == 0.1
    assert s["best_test_during_training"]["epoch"] == 4 and s["best_test_during_training"]["note"] == BEST_TEST_LABEL
    assert reports_best_test(get_preset("fmnist-mlp2-pla-fc2")) and not reports_best_test(get_preset("cpu-fmnist-mlp2-sgd"))


def _strip(rows):
    return [{k: None if v != v else v for k, v in r.items() if k not in TIMES} for r in rows]


RESUME = dict(epochs=3, lr=0.2, seed=2)  # validation errors 0.906, 0.844, 0.844: best at epoch 2, a tie at 3


def test_a_run_that_crashed_after_writing_model_best_resumes_to_the_uninterrupted_result(data, tmp_path, monkeypatch):
    config = tiny(**RESUME)
    whole = train(config, data, out_dir=tmp_path / "whole")
    assert [r["epoch"] for r in whole.metrics if r is whole.best] == [2]  # the tie at epoch 3 keeps epoch 2
    save = torch.save

    def crash_at_epoch_2s_checkpoint(obj, f, *a, **k):
        if isinstance(obj, dict) and obj.get("epoch") == 2 and "method" in obj:
            raise RuntimeError("killed")
        return save(obj, f, *a, **k)

    monkeypatch.setattr(torch, "save", crash_at_epoch_2s_checkpoint)
    with pytest.raises(RuntimeError, match="killed"):
        train(config, data, out_dir=tmp_path / "cut")
    monkeypatch.setattr(torch, "save", save)
    # epoch 2's best network was written before its checkpoint, which never was: the rerun redoes epoch 2
    assert _same_tensors(tmp_path / "cut" / "model-best.pt", tmp_path / "whole" / "model-best.pt")
    rest = train(config, data, out_dir=tmp_path / "cut")
    assert rest.resumed_from == 1 and _strip(rest.metrics) == _strip(whole.metrics)
    for name in ("model.pt", "model-best.pt"):
        assert _same_tensors(tmp_path / "cut" / name, tmp_path / "whole" / name), name
    assert json.loads((tmp_path / "cut" / "summary.json").read_text()) == \
        json.loads((tmp_path / "whole" / "summary.json").read_text())
    assert tuple(next(csv.reader(open(tmp_path / "whole" / "metrics.csv")))) == VAL_METRIC_COLUMNS


def test_a_run_killed_by_sigkill_mid_epoch_resumes_bitwise(data, tmp_path):
    """kill -9 in the middle of epoch 2 (a real process), then the same run again: the uninterrupted result."""
    config = tiny(**RESUME)
    whole = train(config, data, out_dir=tmp_path / "whole")
    script = f"""
import json, os, signal, torch
torch.set_num_threads(1)
from localentropy.deep.datasets import synthetic_images
from localentropy.deep.presets import TrainConfig
from localentropy.deep.train import train
config = TrainConfig.from_dict(json.loads({json.dumps(config.as_dict())!r}))
kill = lambda event, **info: os.kill(os.getpid(), signal.SIGKILL) if event == "step" and info["done"] == 6 else None
train(config, synthetic_images("fashion-mnist", n_train=192, n_test=48, seed=2), out_dir={str(tmp_path / "cut")!r},
      progress=kill)
"""
    proc = subprocess.run([sys.executable, "-c", script], env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=120)
    assert proc.returncode == -signal.SIGKILL
    assert len(torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)["metrics"]) == 1
    rest = train(config, data, out_dir=tmp_path / "cut")
    assert rest.resumed_from == 1 and _strip(rest.metrics) == _strip(whole.metrics)
    for name in ("model.pt", "model-best.pt"):
        assert _same_tensors(tmp_path / "cut" / name, tmp_path / "whole" / name), name


def test_without_a_validation_split_the_outputs_are_as_before(data, tmp_path):
    res = train(tiny(epochs=1, val_split=0), data, out_dir=tmp_path)
    assert tuple(next(csv.reader(open(tmp_path / "metrics.csv")))) == METRIC_COLUMNS
    assert "val_error" not in res.metrics[0] and res.best is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt", "config.json", "metrics.csv",
                                                           "metrics.jsonl", "model.pt"]


def test_the_cli_reports_best_by_validation_and_the_paper_002_figure_each_by_its_name(fm, tmp_path):
    res = _train_cli(fm, tmp_path / "a", "--preset", "cpu-fmnist-mlp2-sgd", "--set", "epochs=2", "--set", "val_split=40")
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    b = summary["best_by_validation"]
    assert f"best by validation: epoch {b['epoch']}, val error {b['val_error']:.4f}, test error {b['test_error']:.4f}" \
        in res.stdout and "val error" in res.stdout.splitlines()[0]
    assert BEST_TEST_LABEL not in res.stdout  # not a paper-002 preset
    assert _same_tensors(tmp_path / "a" / "model-best.pt", tmp_path / "a" / "model.pt") == (b["epoch"] == 2)
    # a paper-002 preset: the best test accuracy during training, named as what it is, beside the final one
    res = _train_cli(fm, tmp_path / "b", "--preset", "fmnist-mlp2-sgd", "--set", "epochs=2", "--set", "lr=0.05")
    assert res.exit_code == 0, res.output
    t = json.loads((tmp_path / "b" / "summary.json").read_text())["best_test_during_training"]
    rows = list(csv.DictReader(open(tmp_path / "b" / "metrics.csv")))
    assert t["test_error"] == min(float(r["test_error"]) for r in rows)
    assert f"{BEST_TEST_LABEL}: {100 * t['test_accuracy']:.2f} % at epoch {t['epoch']}; final test accuracy" in res.stdout


# ----- 4. deep eval ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def run(fm, tmp_path_factory):
    """A finished 2-epoch run with a validation split of 40 images."""
    out = tmp_path_factory.mktemp("runs") / "run"
    res = _train_cli(fm, out, "--preset", "cpu-fmnist-mlp2-sgd", "--set", "epochs=2", "--set", "val_split=40")
    assert res.exit_code == 0, res.output
    return out


def test_eval_reproduces_the_runs_test_and_validation_errors(fm, run):
    last = list(csv.DictReader(open(run / "metrics.csv")))[-1]
    res = CliRunner().invoke(cli, ["deep", "eval", str(run), "--data-dir", str(fm), "--json"])
    assert res.exit_code == 0, res.output
    got = json.loads(res.stdout)
    for k in ("test_error", "test_loss", "val_error", "val_loss"):
        assert f"{got[k]:.12g}" == last[k], k
    assert got["model"] == "model.pt" and got["test_images"] == 50 and got["val_images"] == 40
    line = CliRunner().invoke(cli, ["deep", "eval", str(run), "--data-dir", str(fm)])
    assert line.exit_code == 0 and line.stdout.count("\n") == 1
    assert f"test error {got['test_error']:.4f}" in line.stdout and f"val error {got['val_error']:.4f}" in line.stdout


def test_eval_of_the_best_network_with_the_local_energy(fm, run):
    best = json.loads((run / "summary.json").read_text())["best_by_validation"]
    res = CliRunner().invoke(cli, ["deep", "eval", str(run), "--best", "--sigma", "0,0.2", "--data-dir", str(fm),
                                   "--json"])
    assert res.exit_code == 0, res.output
    got = json.loads(res.stdout)
    assert got["model"] == "model-best.pt" and got["val_error"] == pytest.approx(best["val_error"], abs=1e-12)
    assert got["test_error"] == pytest.approx(best["test_error"], abs=1e-12)
    assert [e["sigma"] for e in got["energy"]] == [0.0, 0.2]
    assert got["energy"][0]["delta_error"] == 0.0 and got["energy"][1]["delta_error_se"] >= 0
    line = CliRunner().invoke(cli, ["deep", "eval", str(run), "--best", "--sigma", "0.2", "--data-dir", str(fm)])
    assert line.exit_code == 0 and "δE_train(0.2) = " in line.stdout
    again = CliRunner().invoke(cli, ["deep", "eval", str(run), "--best", "--sigma", "0.2", "--data-dir", str(fm),
                                     "--seed", "1"])
    assert again.exit_code == 0 and again.stdout != line.stdout  # other noise draws
    assert again.stdout.split("δE")[0] == line.stdout.split("δE")[0]  # the same errors


def test_eval_on_another_data_folder(run, tmp_path):
    other = _write_fmnist(tmp_path / "other", 7, n_test=30)
    res = CliRunner().invoke(cli, ["deep", "eval", str(run), "--data-dir", str(other), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["test_images"] == 30


def test_eval_refuses_bad_input_in_one_line(fm, run, tmp_path):
    one_line_error(CliRunner().invoke(cli, ["deep", "eval", str(tmp_path / "none")]), "no such folder")
    one_line_error(CliRunner().invoke(cli, ["deep", "eval", str(tmp_path)]), "config.json")
    one_line_error(CliRunner().invoke(cli, ["deep", "eval", str(run), "--sigma", "a,b"]), "--sigma")
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    (copy / "model-best.pt").unlink()
    one_line_error(CliRunner().invoke(cli, ["deep", "eval", str(copy), "--best", "--data-dir", str(fm)]),
                   "model-best.pt")
    (copy / "model.pt").write_bytes(b"\x80\x02 not a model")
    one_line_error(CliRunner().invoke(cli, ["deep", "eval", str(copy), "--data-dir", str(fm)]), "cannot read the model")
    torch.save({"w": torch.zeros(2), "bad": _Foreign()}, copy / "model.pt")
    one_line_error(CliRunner().invoke(cli, ["deep", "eval", str(copy), "--data-dir", str(fm)]),
                   "holds objects other than tensors")
    shutil.copy(run / "model.pt", copy / "model.pt")
    cfg = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps(dict(cfg, model="mlp3")))  # a config the saved weights do not fit
    one_line_error(CliRunner().invoke(cli, ["deep", "eval", str(copy), "--data-dir", str(fm)]), "does not fit")
    (copy / "config.json").write_text(json.dumps(dict(cfg, nonsense=1)))
    one_line_error(CliRunner().invoke(cli, ["deep", "eval", str(copy), "--data-dir", str(fm)]), "nonsense")


class _Foreign:
    """An object a run never saves: loading it would need unpickling code."""


# ----- 5. configuration files and extending a run ------------------------------------------------------------
def test_a_json_or_toml_file_then_set_overrides(tmp_path):
    (tmp_path / "c.json").write_text(json.dumps({"preset": "cpu-fmnist-mlp2-sgd", "epochs": 3, "milestones": [2],
                                                 "val-split": 100, "esgd_gamma0": None}))
    c = config_from_file(tmp_path / "c.json", overrides=["lr=0.1"])
    assert c == dataclasses.replace(get_preset("cpu-fmnist-mlp2-sgd"), epochs=3.0, milestones=(2.0,), val_split=100,
                                    esgd_gamma0=None, lr=0.1)
    (tmp_path / "c.toml").write_text('preset = "cpu-fmnist-mlp2-sgd"\nepochs = 3\nmilestones = [2]\nval_split = 100\n'
                                     'esgd_gamma0 = "auto"\nlr = 0.1\n')
    assert config_from_file(tmp_path / "c.toml") == c
    # a run's config.json gives that configuration back exactly
    (tmp_path / "config.json").write_text(json.dumps(c.as_dict()))
    assert config_from_file(tmp_path / "config.json") == c
    for text, words in (('{"lr": "fast"}', "lr"), ('{"bogus": 1}', "bogus"), ('{"batch_size": 1.5}', "batch_size"),
                        ('[1, 2]', "table"), ('{"lr": ', "not valid JSON"), ('{"epochs": 0}', "epochs must be > 0")):
        (tmp_path / "bad.json").write_text(text)
        with pytest.raises(DeepError, match=words):
            config_from_file(tmp_path / "bad.json")
    with pytest.raises(DeepError, match="--preset is"):
        config_from_file(tmp_path / "c.json", preset="cpu-fmnist-mlp2-esgd")


def test_toml_without_a_toml_reader_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tomllib", None)  # as on Python 3.10 without tomli
    monkeypatch.setitem(sys.modules, "tomli", None)
    (tmp_path / "c.toml").write_text("lr = 0.1\n")
    res = CliRunner().invoke(cli, ["deep", "train", "--config", str(tmp_path / "c.toml"), "--out", str(tmp_path / "r")])
    one_line_error(res, "TOML", "tomli")
    res = CliRunner().invoke(cli, ["deep", "train", "--config", str(tmp_path / "no.json"), "--out", str(tmp_path / "r")])
    one_line_error(res, "no such configuration file")
    assert not (tmp_path / "r").exists()


def test_a_finished_run_given_a_larger_budget_extends_to_the_uninterrupted_result(fm, tmp_path):
    common = ["--set", "val_split=40", "--set", "lr=0.1"]
    whole = _train_cli(fm, tmp_path / "whole", "--preset", "cpu-fmnist-mlp2-sgd", "--set", "epochs=2", *common)
    assert whole.exit_code == 0, whole.output
    short = _train_cli(fm, tmp_path / "ext", "--preset", "cpu-fmnist-mlp2-sgd", "--set", "epochs=1", *common)
    assert short.exit_code == 0, short.output
    # the run's own config.json, a larger budget: it goes on in that folder (the default --out) and says so
    args = ["deep", "train", "--config", str(tmp_path / "ext" / "config.json"), "--data-dir", str(fm),
            "--set", "epochs=2", "--threads", "1", "--no-tensorboard"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert "extending run from 1 to 2 epochs" in res.stderr
    assert _rows(tmp_path / "ext" / "metrics.csv") == _rows(tmp_path / "whole" / "metrics.csv")
    for name in ("model.pt", "model-best.pt"):
        assert _same_tensors(tmp_path / "ext" / name, tmp_path / "whole" / name), name
    assert json.loads((tmp_path / "ext" / "config.json").read_text())["epochs"] == 2
    # a smaller budget, or any other change, is refused as before
    one_line_error(CliRunner().invoke(cli, args[:-5] + ["--set", "epochs=1", "--no-tensorboard"]),
                   "another configuration", "smaller")
    one_line_error(CliRunner().invoke(cli, args + ["--set", "lr=0.5"]), "another configuration (lr differ)")


def test_extending_a_run_whose_last_epoch_was_short_takes_the_same_steps_as_an_uninterrupted_run(data, tmp_path):
    """1.5 budget epochs (4 + 2 steps) extended to 3: the stream goes on where it stopped, so after 12 steps the
    network is the uninterrupted 3-epoch run's (only the epoch boundaries differ: 4, 2, 4, 2 steps)."""
    short = train(tiny(epochs=1.5), data, out_dir=tmp_path / "ext")
    assert [r["steps"] for r in short.metrics] == [4, 6]
    ext = train(tiny(epochs=3), data, out_dir=tmp_path / "ext")
    assert ext.extra["extended_from"] == 1.5 and ext.resumed_from == 2
    assert [r["steps"] for r in ext.metrics] == [4, 6, 10, 12]
    whole = train(tiny(epochs=3), data)
    assert _same_tensors(ext.model.state_dict(), whole.model.state_dict())


# ----- 6. TensorBoard extra and one line per epoch -----------------------------------------------------------
def test_tensorboard_is_an_extra_and_asking_for_it_without_it_says_how_to_install_it(fm, data, tmp_path, monkeypatch):
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    assert "tensorboard>=2.10" in cfg["options.extras_require"]["tensorboard"]
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # not installed
    res = CliRunner().invoke(cli, ["deep", "train", "--preset", "cpu-fmnist-mlp2-sgd", "--data-dir", str(fm),
                                   "--out", str(tmp_path / "r"), "--tensorboard"])
    one_line_error(res, "pip install localentropy[tensorboard]")
    assert not (tmp_path / "r").exists()
    with pytest.raises(DeepError, match=r"localentropy\[tensorboard\]"):
        train(tiny(epochs=1), data, out_dir=tmp_path / "api", tensorboard=True)
    assert train(tiny(epochs=1), data, out_dir=tmp_path / "quiet").tensorboard is False  # default: when installed


def test_tensorboard_gets_the_validation_scalars(data, tmp_path, monkeypatch):
    import types

    written = []

    class Writer:
        def __init__(self, logdir, purge_step=None):
            pass

        def add_scalar(self, tag, value, step):
            written.append((tag, value, step))

        def flush(self):
            pass

        def close(self):
            pass

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", types.SimpleNamespace(SummaryWriter=Writer))
    res = train(tiny(epochs=1), data, out_dir=tmp_path, tensorboard=True)
    assert res.tensorboard and ("val_error", res.metrics[0]["val_error"], 1) in written


def test_one_line_per_epoch_when_the_output_is_not_a_terminal(fm, tmp_path, monkeypatch):
    res = _train_cli(fm, tmp_path / "log", "--preset", "cpu-fmnist-mlp2-sgd", "--set", "epochs=2", "--set",
                     "val_split=40", quiet=False)  # under CliRunner stdout is not a terminal
    assert res.exit_code == 0, res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("epoch ")]
    assert [ln.split(":")[0] for ln in lines] == ["epoch 1/2", "epoch 2/2"]
    assert all(w in lines[0] for w in ("train loss", "error", "val error", "test error")) and lines[0].endswith(" s")
    assert "step/s" not in res.stderr and "it/s" not in res.stderr  # no progress bar
    assert "epoch 1/2" not in res.stdout  # results only on stdout
    from localentropy.cli import deep_cmd

    monkeypatch.setattr(deep_cmd, "line_per_epoch", lambda: False)  # a terminal: the bar, no epoch lines
    res = _train_cli(fm, tmp_path / "tty", "--preset", "cpu-fmnist-mlp2-sgd", "--set", "epochs=1", quiet=False)
    assert res.exit_code == 0 and not [ln for ln in res.stderr.splitlines() if ln.startswith("epoch 1/1:")]


def test_the_local_entropy_of_a_run_uses_its_training_images_not_its_validation_split(tmp_path, monkeypatch):
    """`deep local-entropy` measures the constraint on the images the run trained on: a held-out validation
    image never enters it."""
    import localentropy.entropic as entropic_pkg
    from localentropy.deep.datasets import synthetic_images
    from localentropy.deep.local_entropy import run_local_entropy
    from localentropy.deep.presets import get_preset, with_overrides
    from localentropy.deep.train import eval_stack, run_images, train

    data = synthetic_images("fashion-mnist", n_train=120, n_test=20, seed=3)
    config = with_overrides(get_preset("cpu-fmnist-mlp2-sgd"), ["epochs=1", "batch_size=40", "train_subset=0",
                                                                 "test_subset=0", "val_split=30"])
    train(config, data, out_dir=tmp_path / "run", tensorboard=False)
    seen = {}

    def fake(model, x, y, deltas, **kw):
        seen["x"], seen["y"] = x, y
        return "curve"

    monkeypatch.setattr(entropic_pkg, "local_entropy", fake)
    assert run_local_entropy(tmp_path / "run", [1e-3], samples=1000, data=data) == "curve"
    train_x, train_t, val_x, _, _, _ = run_images(config, data)
    assert seen["x"].shape[0] == 90 and torch.equal(seen["y"], train_t)
    assert torch.equal(seen["x"], eval_stack(config, data)(train_x, None))
