"""The command line's manners: every usage mistake is one line and exit 2 with no progress output and
no file; --help keeps click's usage block and a short description of every command that survives;
results are printed whatever -q says, progress and notes are not."""

from __future__ import annotations

import io

import numpy as np
import pytest
from click.testing import CliRunner

from localentropy.cli.main import cli
from localentropy.committee.solutions import save_solutions
from localentropy.data import load_dresscoat, patterns_hash


def one_line_error(res, *words):
    assert res.exit_code == 2, res.output
    assert res.output.count("\n") == 1 and res.output.startswith("localentropy: error: "), res.output
    assert res.stdout == ""  # the error goes to stderr, nothing else anywhere
    for w in words:
        assert w in res.output, res.output


@pytest.fixture()
def sols(tmp_path):
    """A solutions file of the embedded subset's patterns (random weights) and one of other patterns."""
    ds = load_dresscoat()
    w = np.random.default_rng(0).normal(size=(2, 3, ds.X_train.shape[1]))
    w *= np.sqrt(w.shape[2]) / np.linalg.norm(w, axis=2, keepdims=True)
    save_solutions(tmp_path / "s.npz", w, patterns_hash(ds.X_train, ds.y_train), {"setting": "test"})
    save_solutions(tmp_path / "other.npz", w, "0" * 64, {"setting": "test"})
    return tmp_path


@pytest.mark.parametrize("args, words", [
    (["train", "--setting", "sgd-fast"], ["Missing option '--out'"]),
    (["phi", "s.npz"], ["Missing option '--out'"]),
    (["energy", "s.npz"], ["Missing option '--out'"]),
    (["train", "--setting", "sgd-fast", "--out", "."], ["--out", "is a directory"]),
    (["energy", "s.npz", "--out", "."], ["--out", "is a directory"]),
    (["phi", "s.npz", "--out", "."], ["--out", "is a directory"]),
    (["train", "--setting", "sgd-fast", "--out", "x.npz", "--restarts", "0"], ["--restarts"]),
    (["energy", "s.npz", "--out", "e.csv", "--draws", "0"], ["--draws"]),
    (["energy", "s.npz", "--out", "e.csv", "--sigma-max", "-1"], ["--sigma-max"]),
    (["phi", "s.npz", "--out", "c.csv", "--jobs", "0"], ["--jobs"]),
    (["phi", "s.npz", "--out", "c.csv", "--method", "bogus"], ["--method"]),
    (["phi", "s.npz", "--out", "c.csv", "--beta", "hot"], ["--beta"]),
    (["phi", "s.npz", "--out", "c.csv", "--restarts", "a"], ["--restarts"]),
    (["phi", "s.npz", "--out", "no/c.csv"], ["does not exist"]),
    (["energy", "s.npz", "--out", "e.csv", "--plot", "no/e.png"], ["--plot", "does not exist"]),
    (["phi"], ["Missing argument"]),
    (["trian"], ["No such command"]),
    (["--bogus", "eval", "s.npz"], ["No such option"]),
    (["eval", "s.npz", "--bogus"], ["No such option"]),
    (["data", "download"], ["fashion-mnist, mnist"]),
    (["eval", "other.npz"], ["other patterns"]),
    (["energy", "other.npz", "--out", "e.csv", "--draws", "2"], ["other patterns"]),
])
def test_every_usage_mistake_is_one_line_on_stderr_with_exit_2_and_no_file(sols, monkeypatch, args, words):
    monkeypatch.chdir(sols)
    before = sorted(p.name for p in sols.iterdir())
    res = CliRunner().invoke(cli, args)  # not quiet: a progress bar drawn before the error would show here
    one_line_error(res, *words)
    assert sorted(p.name for p in sols.iterdir()) == before


def test_cuda_on_a_machine_without_it_is_one_line(sols, monkeypatch):
    import torch

    monkeypatch.chdir(sols)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for args in (["train", "--setting", "sgd-fast", "--out", "x.npz", "--device", "cuda"],
                 ["energy", "s.npz", "--out", "e.csv", "--device", "cuda:1"]):
        one_line_error(CliRunner().invoke(cli, args), "--device", "CUDA is not available")
    one_line_error(CliRunner().invoke(cli, ["energy", "s.npz", "--out", "e.csv", "--device", "tpu"]), "--device")
    assert not (sols / "x.npz").exists() and not (sols / "e.csv").exists()


SHORT = {
    "data": "Prepare, inspect and download the data sets.",
    "train": "Train committee machines with a setting of paper 000.",
    "eval": "Training and test error of every restart.",
    "energy": "Local energy of every restart, by sampling.",
    "phi": "Local-entropy curves of saved solutions (sampling, BP, EP).",
    "figure": "Regenerate Figure 1 or 6 of paper 000 (cached, resumable).",
    "measures": "Flatness measures against test error (Figures 1, 6; cached).",
    "deep": "Deep-net architectures, data sets and training.",
}


def test_help_gives_every_command_a_whole_first_line():
    res = CliRunner().invoke(cli, ["--help"])
    assert res.exit_code == 0 and res.output.startswith("Usage:")
    lines = {ln.split()[0]: ln.strip() for ln in res.output.split("Commands:")[1].splitlines() if ln.strip()}
    assert set(lines) == set(SHORT)
    for name, text in SHORT.items():
        assert lines[name].split(None, 1)[1] == text, lines[name]
    sub = CliRunner().invoke(cli, ["data", "--help"])
    for ln in sub.output.split("Commands:")[1].splitlines():
        if ln.strip():
            assert not ln.rstrip().endswith(("...", "Eq.", "Sec.")), ln


def _all_commands(group, path=()):
    import click

    for name, cmd in group.commands.items():
        yield path + (name,)
        if isinstance(cmd, click.Group):
            yield from _all_commands(cmd, path + (name,))


def test_no_help_text_cites_a_design_document_the_user_does_not_have():
    for path in [()] + list(_all_commands(cli)):
        res = CliRunner().invoke(cli, [*path, "--help"])
        assert res.exit_code == 0, path
        assert "bp.md" not in res.output.lower() and "§" not in res.output, (path, res.output)


def test_quiet_silences_progress_not_results(sols, monkeypatch):
    monkeypatch.chdir(sols)
    res = CliRunner().invoke(cli, ["-q", "eval", "s.npz"])
    assert res.exit_code == 0, res.output
    assert "restart  converged  epochs  train_error  test_error" in res.stdout and "mean" in res.stdout
    assert res.stderr == ""
    res = CliRunner().invoke(cli, ["-q", "energy", "s.npz", "--out", "e.csv", "--sigmas", "2", "--draws", "2"])
    assert res.exit_code == 0, res.output
    assert "δE_train (mean)" in res.stdout and res.stderr == ""
    loud = CliRunner().invoke(cli, ["energy", "s.npz", "--out", "e.csv", "--sigmas", "2", "--draws", "2"])
    assert loud.exit_code == 0 and loud.stdout == res.stdout and "wrote e.csv" in loud.stderr


def test_the_bar_counts_only_work_done_in_this_process():
    """A resumed run's bar starts at the epoch it resumes from; its rate counts the epochs run since."""
    import time

    from localentropy.cli.progress import LazyBar

    out = io.StringIO()
    bar = LazyBar({"quiet": False}, total=10_000, unit="epoch", file=out, mininterval=0)
    bar.start(initial=8000)
    time.sleep(0.25)
    bar.update_to(8001)
    d = bar.bar.format_dict
    assert d["n"] == 8001 and d["initial"] == 8000 and d["elapsed"] >= 0.25
    rate = d["rate"] if d["rate"] else (d["n"] - d["initial"]) / d["elapsed"]
    assert rate < 1 / 0.25 + 1e-9  # one epoch in ≥ 0.25 s, not 8001 epochs
    bar.close()
    assert "8000/10000" in out.getvalue() and " 0/10000" not in out.getvalue()
    quiet = LazyBar({"quiet": True}, total=3, file=out)
    quiet.start()
    quiet.update_to(2)
    assert quiet.bar is None
