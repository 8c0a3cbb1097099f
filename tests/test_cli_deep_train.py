"""`localentropy deep presets | train`: the presets listed with the paper's errors, a tiny run from a preset on
Fashion-MNIST files, and every bad input as one line on stderr with exit status 2 and no output folder."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
from click.testing import CliRunner

from localentropy.cli.main import cli
from localentropy.data.locate import dataset
from localentropy.data.idx import write_idx
from localentropy.deep.presets import PRESETS

from tests.test_cli_usage import one_line_error


@pytest.fixture()
def fmnist(tmp_path):
    """Tiny Fashion-MNIST IDX files (200 train, 50 test images) in tmp_path/fm."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "fm"
    folder.mkdir()
    files = dataset("fashion-mnist").files
    arrays = {"train_images": rng.integers(0, 256, (200, 28, 28), dtype=np.uint8),
              "train_labels": rng.integers(0, 10, 200).astype(np.uint8),
              "test_images": rng.integers(0, 256, (50, 28, 28), dtype=np.uint8),
              "test_labels": rng.integers(0, 10, 50).astype(np.uint8)}
    for role, a in arrays.items():
        write_idx(folder / files[role], a, compress=False)
    return folder


def test_presets_lists_every_preset_with_the_papers_error():
    res = CliRunner().invoke(cli, ["deep", "presets"])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    for name, c in PRESETS.items():
        (line,) = [ln for ln in lines if ln.split()[0] == name]
        assert c.model in line and f"{c.epochs:g} ep" in line
    assert [ln for ln in lines if ln.startswith("cifar10-resnet18-rsgd ")][0].split()[1] == "12.4"
    res = CliRunner().invoke(cli, ["deep", "presets", "mlp2-pla", "--long"])
    assert res.exit_code == 0 and "Figures 3, 4" in res.output and "cifar" not in res.output


def test_train_runs_a_preset_on_fashion_mnist_and_resumes(fmnist, tmp_path):
    out = tmp_path / "run"
    args = ["-q", "deep", "train", "--preset", "cpu-fmnist-mlp2-rsgd", "--data-dir", str(fmnist), "--out", str(out),
            "--set", "epochs=6", "--set", "batch_size=50", "--set", "train_subset=0", "--set", "test_subset=0",
            "--set", "milestones=4", "--threads", "1", "--no-tensorboard"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert "cpu-fmnist-mlp2-rsgd: epoch 2/2, budget 6 epochs" in res.stdout
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert [int(r["samples"]) for r in rows] == [600, 1200]  # 3 replicas x 4 steps x 50 per epoch
    assert (out / "model.pt").exists() and (out / "checkpoint.pt").exists()
    again = CliRunner().invoke(cli, args)  # finished: resumes at the end and trains nothing more
    assert again.exit_code == 0 and again.stdout == res.stdout


@pytest.mark.parametrize("args, words", [
    (["--preset", "nope"], ["unknown preset 'nope'"]),
    (["--preset", "cpu-fmnist-mlp2-sgd", "--set", "bogus=1"], ["--set bogus: unknown field"]),
    (["--preset", "cpu-fmnist-mlp2-sgd", "--set", "lr=quick"], ["--set lr=quick", "float"]),
    (["--preset", "cpu-fmnist-mlp2-sgd", "--set", "epochs=0"], ["epochs must be > 0"]),
    (["--preset", "cifar10-smallconvnet-sgd", "--data-dir", "{tmp}"], ["cifar-10 not found"]),
    (["--preset", "cpu-fmnist-mlp2-sgd", "--data-dir", "{fm}"], ["truncated"]),
    (["--preset", "cpu-fmnist-mlp2-sgd", "--out", "{tmp}/no/run"], ["--out", "does not exist"]),
    (["--preset", "cpu-fmnist-mlp2-sgd", "--device", "tpu"], ["--device"]),
    (["--preset", "cpu-fmnist-mlp2-sgd", "--distributed"], ["launch with torchrun"]),
    (["--set", "lr=1"], ["Missing option '--preset'"]),
])
def test_bad_inputs_are_one_line_exit_2_and_leave_no_output(args, words, fmnist, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LOCALENTROPY_DATA", raising=False)
    monkeypatch.delenv("RANK", raising=False)
    if "{fm}" in args:  # a corrupted (truncated) training-images file
        f = fmnist / dataset("fashion-mnist").files["train_images"]
        f.write_bytes(f.read_bytes()[:5000])
    args = [a.replace("{tmp}", str(tmp_path)).replace("{fm}", str(fmnist)) for a in args]
    before = sorted(p.name for p in tmp_path.iterdir())
    res = CliRunner().invoke(cli, ["deep", "train", *args])
    one_line_error(res, *words)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_evidence_runs_every_method_and_writes_its_table(fmnist, tmp_path):
    out = tmp_path / "evidence.md"
    args = ["-q", "deep", "evidence", "--data-dir", str(fmnist), "--seeds", "2", "--out", str(out),
            "--runs", str(tmp_path / "runs"), "--models", "smallconvnet", "--set", "epochs=5", "--set", "train_subset=100",
            "--set", "batch_size=50", "--set", "test_subset=20", "--set", "energy_samples=50", "--set", "energy_draws=4",
            "--threads", "1"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    text = out.read_text()
    assert text == res.stdout and "Command: `localentropy deep evidence" in text
    rows = [ln for ln in text.split("## Each method")[0].splitlines() if ln.startswith("| small-convnet")]
    assert [r.split("|")[2].strip() for r in rows] == ["SGD", "eSGD", "rSGD", "PLA", "SAM"]
    assert all(r.split("|")[3].strip() == "2" for r in rows)
    # one budget: 5 epochs x 100 images (rSGD: round(10 steps / 3 replicas) = 3 steps x 3 x 50 = 450)
    assert [int(r.split("|")[8]) for r in rows] == [500, 500, 450, 500, 500]
    for r in rows:  # δE_train at σ = 0.1 and 0.3: mean ± sd of numbers
        for col in (6, 7):
            m, sd = (float(t) for t in r.split("|")[col].split("±"))
            assert math.isfinite(m) and sd >= 0
    assert "## Each method against SGD" in text and "| small-convnet | eSGD | test error % |" in text
    # every run left its folder with the final model and its result; a rerun reads them back, trains nothing
    assert len(list((tmp_path / "runs").glob("*/evidence.json"))) == 10
    assert len(list((tmp_path / "runs").glob("*/model.pt"))) == 10
    stamp = {p: p.stat().st_mtime_ns for p in (tmp_path / "runs").rglob("*")}
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0 and out.read_text().split("Command:")[1] == text.split("Command:")[1]
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "runs").rglob("*")} == stamp


def test_evidence_refuses_an_unknown_method_before_any_work(tmp_path):
    res = CliRunner().invoke(cli, ["deep", "evidence", "--methods", "sgd,adam", "--out", str(tmp_path / "e.md")])
    one_line_error(res, "unknown preset 'cpu-fmnist-smallconvnet-adam'")
    assert not (tmp_path / "e.md").exists()


def test_a_diverging_run_stops_says_so_and_exits_1(fmnist, tmp_path):
    res = CliRunner().invoke(cli, ["-q", "deep", "train", "--preset", "cpu-fmnist-mlp2-sgd", "--data-dir", str(fmnist),
                                   "--out", str(tmp_path / "run"), "--set", "lr=1e6", "--set", "epochs=8",
                                   "--set", "batch_size=50", "--threads", "1"])
    assert res.exit_code == 1, res.output
    assert "became non-finite" in res.stderr
    rows = list(csv.DictReader(open(tmp_path / "run" / "metrics.csv")))
    assert len(rows) < 8 and rows[-1]["batch_loss"] == "nan"


def test_local_entropy_of_a_trained_run_over_one_layer(fmnist, tmp_path):
    """`deep local-entropy` on a `deep train` folder: one row per Δ, n = the layer's weights, φ_G ≤ 0,
    δ(Δ) ≈ Δ/2 at a Δ small enough that the constraint hardly binds; a rerun resumes to the same file."""
    run = tmp_path / "run"
    res = CliRunner().invoke(cli, ["-q", "deep", "train", "--preset", "cpu-fmnist-mlp2-sgd", "--data-dir", str(fmnist),
                                   "--out", str(run), "--set", "epochs=1", "--set", "train_subset=100",
                                   "--set", "batch_size=50", "--set", "test_subset=20", "--threads", "1"])
    assert res.exit_code == 0, res.output
    args = ["-q", "deep", "local-entropy", str(run), "--data-dir", str(fmnist), "--layers", "out",
            "--deltas", "1e-6,1e-4", "--samples", "40", "--chains", "8", "--groups", "2", "--moves", "1"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    out = run / "local_entropy-out.csv"
    rows = list(csv.DictReader(open(out)))
    assert [float(r["prior_delta"]) for r in rows] == [1e-6, 1e-4]
    assert "n = 7840 weights (out)" in res.stdout  # the output layer of the 784-wide MLP: 784 × 10
    assert "first layer out as a linear map" in res.stdout  # the sampler's shortcut (entropic.first_layer) ran
    for r in rows:
        assert float(r["phi_G"]) <= 0 and math.isfinite(float(r["phi_G_se"]))
    assert float(rows[0]["delta"]) == pytest.approx(0.5e-6, rel=0.05)
    first = out.read_text()
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0 and out.read_text() == first
    # the checkpoint of other settings is not silently reused: one line saying how to start afresh
    other = [a if a != "8" else "12" for a in args]
    refused = CliRunner().invoke(cli, other)
    one_line_error(refused, "--no-resume")
    fresh = CliRunner().invoke(cli, other + ["--no-resume"])
    assert fresh.exit_code == 0, fresh.output
    said = CliRunner().invoke(cli, other[1:])  # without -q: it says it resumes
    assert said.exit_code == 0 and "resuming from" in said.output
    # a model file holding a foreign object is refused, in our words
    import torch

    torch.save({"w": torch.zeros(2), "bad": _Foreign()}, run / "model.pt")
    res = CliRunner().invoke(cli, args)
    one_line_error(res, "holds objects other than tensors")
    assert "weights_only" not in res.output


class _Foreign:
    """An object a `deep train` run never saves: loading it back would need unpickling code."""


def test_local_entropy_refuses_a_folder_that_is_not_a_finished_run(tmp_path):
    res = CliRunner().invoke(cli, ["deep", "local-entropy", str(tmp_path)])
    one_line_error(res, "config.json")
    res = CliRunner().invoke(cli, ["deep", "local-entropy", str(tmp_path), "--deltas", "1,0.1"])
    one_line_error(res, "increasing")


def test_evidence_local_entropy_draws_every_method_and_layer_and_reruns_from_its_curves(fmnist, tmp_path):
    """`deep evidence-local-entropy` on a (tiny) evidence run: figure, long CSV and summary with the
    command; one curve per method and selection kept beside its run, so a rerun computes nothing."""
    runs = tmp_path / "runs"
    ev = ["-q", "deep", "evidence", "--data-dir", str(fmnist), "--seeds", "1", "--out", str(tmp_path / "e.md"),
          "--runs", str(runs), "--models", "mlp2", "--methods", "sgd,rsgd", "--set", "epochs=1",
          "--set", "train_subset=100", "--set", "batch_size=50", "--set", "test_subset=20",
          "--set", "energy_samples=50", "--set", "energy_draws=4", "--threads", "1"]
    assert CliRunner().invoke(cli, ev).exit_code == 0
    out = tmp_path / "fig"
    args = ["-q", "deep", "evidence-local-entropy", "--runs", str(runs), "--out", str(out), "--methods", "sgd,rsgd",
            "--layers", "out,fc2", "--deltas", "1e-3,1e-2,0.1", "--samples", "40", "--chains", "16", "--groups", "2",
            "--moves", "1", "--data-dir", str(fmnist), "--threads", "1"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    for name in ("mlp-local-entropy.png", "mlp-local-entropy.pdf", "mlp-local-entropy.csv", "summary.md"):
        assert (out / name).stat().st_size > 0
    rows = list(csv.DictReader(open(out / "mlp-local-entropy.csv")))
    curves = {(r["method"], r["layers"]) for r in rows if r["quantity"] == "local_entropy"}
    assert curves == {(m, s) for m in ("sgd", "rsgd") for s in ("out", "fc2")}
    n = {r["layers"]: int(r["n"]) for r in rows if r["quantity"] == "local_entropy"}
    assert n == {"out": 7840, "fc2": 784 * 784}
    for r in rows:
        if r["quantity"] == "local_entropy":
            assert float(r["phi_G"]) <= 0 and float(r["delta"]) > 0
    assert {r["method"] for r in rows if r["quantity"] == "local_energy"} == {"sgd", "rsgd"}
    summary = (out / "summary.md").read_text()
    assert "Command: `localentropy deep evidence-local-entropy --runs" in summary and "output layer" in summary
    assert "Against SGD" in summary and "- rSGD: d = " in summary
    kept = sorted(runs.glob("*/local_entropy-*.csv"))
    assert len(kept) == 4
    stamp = {p: p.stat().st_mtime_ns for p in kept}
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0 and {p: p.stat().st_mtime_ns for p in kept} == stamp
    # the same curves from one process as from the two workers above
    for p in runs.glob("*/local_entropy-*"):
        p.rename(p.with_name("parallel-" + p.name))
    one = CliRunner().invoke(cli, args + ["--jobs", "1"])
    assert one.exit_code == 0, one.output
    for p in kept:
        assert p.read_text() == p.with_name("parallel-" + p.name).read_text()


def test_evidence_local_entropy_without_evidence_runs_is_one_line_and_status_2(tmp_path):
    res = CliRunner().invoke(cli, ["deep", "evidence-local-entropy", "--runs", str(tmp_path / "none"),
                                   "--out", str(tmp_path / "fig")])
    assert res.exit_code == 2
    assert "no finished evidence run" in res.output and len(res.output.strip().splitlines()) == 1
    assert not (tmp_path / "fig").exists()
