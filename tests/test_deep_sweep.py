"""`localentropy deep sweep` / `deep.sweep.run_sweep`: a grid over configuration fields × seeds, each point a
`deep train` run in its own folder; resumable, in parallel processes, one summary table and one CSV.

Tiny: paper 002's MLP on 200 random Fashion-MNIST-shaped images, 2 epochs of 3 steps per run."""

from __future__ import annotations

import csv
import json
import shutil
import statistics
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from localentropy.cli.main import cli
from localentropy.deep import DeepError
from localentropy.deep.presets import get_preset, with_overrides
from localentropy.deep.sweep import (MARKER, expand, normalise_grid, parse_grid, parse_seeds, run_name, run_sweep)

from tests.test_cli_usage import one_line_error
from tests.test_deep_val_eval_config import _rows, _same_tensors, _write_fmnist

torch.set_num_threads(1)
PRESET = "fmnist-mlp2-pla-fc2"  # paper 002: its runs report the best test error during training too
SETS = ["epochs=2", "batch_size=50", "lr=0.05", "val_split=40", "train_subset=0", "test_subset=0"]
GRID = ["--grid", "R=0.005,0.02", "--grid", "layers=fc1,fc1+fc2", "--seeds", "0:2"]
NAMES = sorted(f"R={r}_layers={la}_seed={s}" for r in ("0.005", "0.02") for la in ("fc1", "fc1+fc2") for s in (0, 1))
COMMON = ["--threads", "1", "--no-tensorboard"]


def _sets(sets=SETS):
    return [a for s in sets for a in ("--set", s)]


def _sweep(fm, out, *extra, quiet=True, sets=SETS, grid=GRID):
    args = (["-q"] if quiet else []) + ["deep", "sweep", "--preset", PRESET, *_sets(sets), *grid, "--data-dir", str(fm),
                                        "--out", str(out), *COMMON, *extra]
    return CliRunner().invoke(cli, args)


def _table(text):
    """The summary table's rows: {(R, layers): [cells]}."""
    rows = [ln.strip("|").split("|") for ln in text.splitlines() if ln.startswith("| 0.")]
    return {(r[0].strip(), r[1].strip()): [c.strip() for c in r[2:]] for r in rows}


def _pct(values):
    m = statistics.mean(values)
    return f"{100 * m:.2f} ± {100 * statistics.stdev(values):.2f}"


@pytest.fixture(scope="module")
def fm(tmp_path_factory):
    return _write_fmnist(tmp_path_factory.mktemp("data") / "fm", 0)


@pytest.fixture(scope="module")
def swept(fm, tmp_path_factory):
    """A finished sweep of 2 R × 2 layer selections × 2 seeds (8 runs) and what the command printed."""
    out = tmp_path_factory.mktemp("sweeps") / "sweep"
    res = _sweep(fm, out)
    assert res.exit_code == 0, res.output
    return out, res


def _copy(swept, tmp_path):
    dst = tmp_path / "copy"
    shutil.copytree(swept[0], dst)
    return dst


# ----- the grid ----------------------------------------------------------------------------------
def test_the_grid_expands_to_every_point_and_seed_with_readable_folder_names(tmp_path):
    grid = parse_grid(["R=0.005,0.01,2e-2", "layers=fc1,fc2,fc1+fc2", "energy_sigmas=0.1+2e+1,0.3", "esgd_gamma0=auto,1"])
    assert grid == {"R": [0.005, 0.01, 0.02], "layers": ["fc1", "fc2", "fc1,fc2"],
                    "energy_sigmas": [(0.1, 20.0), (0.3,)], "esgd_gamma0": [None, 1.0]}
    assert parse_grid(["layers=,fc1", "milestones=5+8,"]) == {"layers": ["", "fc1"], "milestones": [(5.0, 8.0), ()]}
    base = with_overrides(get_preset(PRESET), ["epochs=3"])
    runs = expand(base, {"R": [0.005, 0.01], "layers": ["fc1", "fc1,fc2"]}, [0, 1, 2], tmp_path)
    assert [r.name for r in runs][:4] == ["R=0.005_layers=fc1_seed=0", "R=0.005_layers=fc1_seed=1",
                                          "R=0.005_layers=fc1_seed=2", "R=0.005_layers=fc1+fc2_seed=0"]
    assert len(runs) == 12 and len({r.name for r in runs}) == 12
    r = runs[4]
    assert (r.config.R, r.config.layers, r.config.seed, r.config.epochs, r.config.name) == (0.005, "fc1,fc2", 1, 3.0, PRESET)
    assert r.folder == tmp_path / "R=0.005_layers=fc1+fc2_seed=1"
    assert run_name({"layers": "", "lr": 0.1, "milestones": (5.0, 8.0), "nesterov": False}, 3) == \
        "layers=all_lr=0.1_milestones=5+8_nesterov=false_seed=3"
    assert [r.name for r in expand(base, {}, [4], tmp_path)] == ["seed=4"]  # seeds only: one point
    assert parse_seeds("0:3") == parse_seeds("0,1,2") == parse_seeds(range(3)) == [0, 1, 2]
    for bad, words in (("3", "0:3"), ("2:2", "no seeds"), ("0,0", "twice"), ("a:b", "A:B"), ("-1,2", ">= 0"),
                       ("", "A:B")):
        with pytest.raises(DeepError, match=words):
            parse_seeds(bad)
    for bad, words in ((["R="], "no values"), (["R=0.01,1e-2"], "given twice"), (["bogus=1"], "unknown field"),
                       (["lr=fast"], "not a valid float"), (["seed=1,2"], "--seeds"), (["R=1", "R=2"], "given twice"),
                       (["lr"], "NAME=V1")):
        with pytest.raises(DeepError, match=words):
            parse_grid(bad)
    with pytest.raises(DeepError, match="given twice"):
        normalise_grid({"R": [0.01, "0.01"]})
    with pytest.raises(DeepError, match="share the folder name"):  # distinct values, one folder name
        expand(base, {"description": ["a/b", "a-b"]}, [0], tmp_path)
    with pytest.raises(DeepError, match="lr=-1_seed=0: .*lr must be > 0"):
        expand(base, {"lr": [0.1, -1.0]}, [0], tmp_path)


# ----- the runs and the table --------------------------------------------------------------------
def test_each_run_is_the_plain_deep_train_run_with_the_same_settings(fm, swept, tmp_path):
    out, res = swept
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == NAMES
    assert {"sweep.md", "sweep.csv"} <= {p.name for p in out.iterdir()}
    name = "R=0.02_layers=fc1+fc2_seed=1"
    plain = CliRunner().invoke(cli, ["-q", "deep", "train", "--preset", PRESET, *_sets(), "--set", "R=0.02",
                                     "--set", "layers=fc1,fc2", "--set", "seed=1", "--data-dir", str(fm),
                                     "--out", str(tmp_path / "plain"), *COMMON])
    assert plain.exit_code == 0, plain.output
    run = out / name
    for f in ("model.pt", "model-best.pt"):
        assert _same_tensors(run / f, tmp_path / "plain" / f), f
    assert _rows(run / "metrics.csv") == _rows(tmp_path / "plain" / "metrics.csv")
    assert (run / "config.json").read_text() == (tmp_path / "plain" / "config.json").read_text()
    assert json.loads((run / "summary.json").read_text())["best_test_during_training"] == \
        json.loads((tmp_path / "plain" / "summary.json").read_text())["best_test_during_training"]


def test_the_summary_and_csv_hold_the_runs_metrics(swept):
    out, res = swept
    text = (out / "sweep.md").read_text()
    assert res.stdout == text and "Command: `localentropy deep sweep --preset fmnist-mlp2-pla-fc2" in text
    table = _table(text)
    assert sorted(table) == [("0.005", "fc1"), ("0.005", "fc1,fc2"), ("0.02", "fc1"), ("0.02", "fc1,fc2")]
    by_run = {}
    for name in NAMES:
        rows = list(csv.DictReader(open(out / name / "metrics.csv")))
        summary = json.loads((out / name / "summary.json").read_text())
        by_run[name] = dict(final=float(rows[-1]["test_error"]),
                            best_val=summary["best_by_validation"]["test_error"],
                            best_test=min(float(r["test_error"]) for r in rows), epochs=int(rows[-1]["epoch"]),
                            wall=float(rows[-1]["wall_seconds"]))
    assert len({v["final"] for v in by_run.values()}) > 1  # the runs differ: the table is a real summary
    for (R, layers), cells in table.items():
        runs = [by_run[f"R={R}_layers={layers.replace(',', '+')}_seed={s}"] for s in (0, 1)]
        seeds, final, best_val, best_test, epochs = cells[:5]
        assert seeds == "0,1" and epochs == "2"
        assert final == _pct([r["final"] for r in runs])
        assert best_val == _pct([r["best_val"] for r in runs])
        assert best_test == _pct([r["best_test"] for r in runs])
    rows = list(csv.DictReader(open(out / "sweep.csv")))
    assert [r["run"] for r in rows] == [f"R={R}_layers={la}_seed={s}" for R in ("0.005", "0.02")
                                        for la in ("fc1", "fc1+fc2") for s in (0, 1)]
    for r in rows:
        v = by_run[r["run"]]
        assert r["layers"] in ("fc1", "fc1,fc2") and r["seed"] in ("0", "1") and r["diverged"] == "false"
        assert float(r["final_test_error"]) == pytest.approx(v["final"], abs=1e-12)
        assert float(r["best_val_test_error"]) == pytest.approx(v["best_val"], abs=1e-12)
        assert float(r["best_test_error_during_training"]) == pytest.approx(v["best_test"], abs=1e-12)
        assert int(r["epochs"]) == v["epochs"] and float(r["wall_seconds"]) == pytest.approx(v["wall"], rel=1e-9)


def test_the_library_function_reads_a_finished_sweep_back_with_its_numbers(fm, swept):
    out, _ = swept
    stamp = {p: p.stat().st_mtime_ns for p in out.glob("*/*")}
    base = with_overrides(get_preset(PRESET), SETS)
    events = []
    res = run_sweep(base, {"R": ["0.005", 0.02], "layers": ["fc1", "fc1,fc2"]}, "0:2", out, data_dir=fm,
                    progress=lambda event, **info: events.append(event))
    assert events == ["start"] and all(r.reused for r in res.runs)  # nothing trained, nothing read but the results
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/*")} == stamp
    assert res.markdown.split("| `R`")[1] == (out / "sweep.md").read_text().split("| `R`")[1]
    assert res.fields == ["R", "layers"] and res.seeds == [0, 1] and len(res.groups) == 4
    for g in res.groups:
        runs = [r for r in res.runs if r.point == {"R": float(g["point"]["R"]), "layers": g["point"]["layers"]}]
        finals = [float(list(csv.DictReader(open(r.folder / "metrics.csv")))[-1]["test_error"]) for r in runs]
        m, sd = g["final_test_error"]
        assert m == pytest.approx(statistics.mean(finals), abs=1e-12)
        assert sd == pytest.approx(statistics.stdev(finals), abs=1e-12)
        assert g["n"] == 2 and g["seeds"] == [0, 1] and g["diverged"] == 0
        bm, bsd = g["best_val_test_error"]
        assert bm == pytest.approx(statistics.mean(r.row["best_val_test_error"] for r in runs), abs=1e-12)


# ----- resume, reuse, processes ------------------------------------------------------------------
def test_a_rerun_reuses_finished_runs_and_resumes_interrupted_ones(fm, swept, tmp_path):
    from localentropy.deep.datasets import load_images
    from localentropy.deep.train import train

    out = _copy(swept, tmp_path)
    runs = sorted(p for p in out.iterdir() if p.is_dir())
    stamp = {p: p.stat().st_mtime_ns for p in out.glob("*/*")}
    res = _sweep(fm, out, quiet=False)
    assert res.exit_code == 0, res.output
    assert "8 runs (4 grid points x 2 seeds)" in res.stderr and "8 finished (reused" in res.stderr
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/*")} == stamp  # nothing retrained or rewritten
    assert res.stdout.split("| `R`")[1] == swept[1].stdout.split("| `R`")[1]
    # a run whose final files are gone (killed after its last checkpoint), and one killed after epoch 1
    lost, cut = runs[1], runs[6]
    for f in ("model.pt", MARKER):
        (lost / f).unlink()
    keep = tmp_path / "whole"
    shutil.copytree(cut, keep)
    shutil.rmtree(cut)
    config = json.loads((keep / "config.json").read_text())
    from localentropy.deep.presets import TrainConfig

    train(TrainConfig.from_dict(config), load_images("fashion-mnist", fm), out_dir=cut, stop_after=1, tensorboard=False)
    assert not (cut / MARKER).exists()
    res = _sweep(fm, out, quiet=False)
    assert res.exit_code == 0, res.output
    assert "6 finished (reused; --no-resume retrains them), 2 resumed from their checkpoints" in res.stderr
    assert f"{lost.name}: resuming from epoch 2 of 2" in res.stderr
    assert f"{cut.name}: resuming from epoch 1 of 2" in res.stderr
    assert f"run 8/8 " in res.stderr and "2 runs in" in res.stderr  # the rate counts this session's runs only
    for f in ("model.pt", "model-best.pt"):
        assert _same_tensors(cut / f, keep / f), f
        assert _same_tensors(lost / f, swept[0] / lost.name / f), f
    assert _rows(cut / "metrics.csv") == _rows(keep / "metrics.csv")
    no_wall = lambda text: {k: v[:-1] for k, v in _table(text).items()}  # noqa: E731 (wall times differ)
    assert no_wall(res.stdout) == no_wall(swept[1].stdout)


def test_two_processes_give_the_runs_of_one(fm, swept, tmp_path):
    out = tmp_path / "jobs2"
    res = _sweep(fm, out, "--jobs", "2", quiet=False, grid=["--grid", "R=0.02", "--grid", "layers=fc1,fc1+fc2",
                                                             "--seeds", "1,0"])
    assert res.exit_code == 0, res.output
    names = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert names == [n for n in NAMES if n.startswith("R=0.02_")]
    for n in names:  # progress from the workers reaches the parent
        assert f"{n}: epoch 2/2:" in res.stderr and f" {n}: test error" in res.stderr
        for f in ("model.pt", "model-best.pt"):
            assert _same_tensors(out / n / f, swept[0] / n / f), (n, f)
        assert _rows(out / n / "metrics.csv") == _rows(swept[0] / n / "metrics.csv")


# ----- refusals ----------------------------------------------------------------------------------
@pytest.mark.parametrize("args, words", [
    (["--grid", "bogus=1,2"], ["--grid bogus: unknown field"]),
    (["--grid", "R=0.1,fast"], ["--grid R", "'fast' is not a valid float"]),
    (["--grid", "R="], ["no values"]),
    (["--grid", "R=0.01,1e-2"], ["the value 0.01 is given twice"]),
    (["--grid", "seed=0,1"], ["--seeds"]),
    (["--grid", "lr=0.1,-1"], ["lr=-1_seed=0", "lr must be > 0"]),
    (["--grid", "train_subset=0,80"], ["train_subset=80_seed=0", "batch_size 50 exceeds the 40 training images"]),
    (["--grid", "model=mlp2,resnet18"], ["model=resnet18_seed=0", "3-channel images"]),
    (["--grid", "R=0.1", "--set", "R=0.2"], ["R: given by both --set and --grid"]),
    (["--seeds", "3"], ["--seeds 3", "0:3"]),
    (["--seeds", "1:1"], ["no seeds"]),
    (["--seeds", "0,x"], ["--seeds 0,x"]),
    (["--seeds", "0,0"], ["given twice"]),
    (["--data-dir", "{tmp}"], ["fashion-mnist not found"]),
    (["--out", "{tmp}/no/sweep"], ["--out", "does not exist"]),
    (["--jobs", "0"], ["--jobs"]),
    (["--preset", "nope"], ["unknown preset 'nope'"]),
])
def test_bad_inputs_are_one_line_exit_2_before_any_run(args, words, fm, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LOCALENTROPY_DATA", raising=False)
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    data = [] if "--data-dir" in args else ["--data-dir", str(fm)]
    preset = [] if "--preset" in args else ["--preset", PRESET]
    before = sorted(p.name for p in tmp_path.iterdir())
    sets = _sets(["epochs=2", "batch_size=50", "val_split=40"])
    res = CliRunner().invoke(cli, ["deep", "sweep", *preset, *sets, *data, *args, *COMMON]
                             + ([] if "--out" in args else ["--out", str(tmp_path / "sweep")]))
    one_line_error(res, *words)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_a_folder_of_another_configuration_is_refused_and_no_resume_starts_afresh(fm, swept, tmp_path, monkeypatch):
    out = swept[0]
    stamp = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    res = _sweep(fm, out, sets=SETS + ["momentum=0.5"])
    one_line_error(res, f"{out / 'R=0.005_layers=fc1_seed=0'} holds a run of another configuration",
                   "momentum differ", "--no-resume")
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == stamp
    one_line_error(_sweep(fm, out, sets=[s if s != "epochs=2" else "epochs=1" for s in SETS]), "smaller one (1 < 2)")
    # one run: refused, then afresh with --no-resume; a larger budget extends it (on a terminal: the bar)
    one = ["--grid", "R=0.02", "--seeds", "0,"]
    small = tmp_path / "one"
    assert _sweep(fm, small, grid=one).exit_code == 0
    one_line_error(_sweep(fm, small, grid=one, sets=SETS + ["lr=0.1"]), "lr differ")
    res = _sweep(fm, small, "--no-resume", grid=one, sets=SETS + ["lr=0.1"], quiet=False)
    assert res.exit_code == 0 and "1 started afresh" in res.stderr
    assert json.loads((small / "R=0.02_seed=0" / "config.json").read_text())["lr"] == 0.1
    from localentropy.cli import deep_cmd

    monkeypatch.setattr(deep_cmd, "line_per_epoch", lambda: False)
    res = _sweep(fm, small, grid=one, sets=[s if s != "epochs=2" else "epochs=3" for s in SETS] + ["lr=0.1"],
                 quiet=False)
    assert res.exit_code == 0, res.output
    assert "1 extended to a larger epochs" in res.stderr and "R=0.02_seed=0: extending from 2 to 3 epochs" in res.stderr
    assert len(list(csv.DictReader(open(small / "R=0.02_seed=0" / "metrics.csv")))) == 3


def test_ctrl_c_is_one_line_saying_what_is_kept(fm, tmp_path, monkeypatch):
    import localentropy.deep.train as train_mod

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_mod, "train", interrupted)
    res = _sweep(fm, tmp_path / "s", grid=["--grid", "R=0.02"])
    assert res.exit_code == 130
    assert res.output.strip() == (f"localentropy: interrupted; finished runs and each run's last complete epoch are "
                                  f"kept in {tmp_path / 's'}; rerun the same command to go on")
