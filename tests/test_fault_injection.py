"""Fault injection: a command killed (SIGKILL) or interrupted (SIGINT, as Ctrl-C) at random moments and
rerun each time ends with the same outputs, bit for bit, as an uninterrupted run.

The short versions (a few kills of a small figure, a tiny `deep train` and `deep local-entropy`) run in
the default suite; the full ones (ten kills or more of a figure spanning training, local energies and
curves, with each signal) in the slow suite. Each run is its own process group, signalled as a whole, as a
terminal's Ctrl-C or an OOM kill of the session would do.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from localentropy.data.idx import write_idx
from localentropy.data.locate import dataset

EXE = [sys.executable, "-m", "localentropy.cli"]


def _run(args, cwd, timeout=900):
    """One uninterrupted run; (wall seconds, completed process)."""
    t0 = time.monotonic()
    res = subprocess.run(EXE + args, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, res.stderr[-3000:]
    return time.monotonic() - t0, res


def _kill_and_rerun(args, cwd, *, sig, moments, timeout=900) -> list:
    """Start the command, signal its process group ``moments[i]`` seconds later, again for every moment,
    then run it to the end; returns what each signal met: "signalled" or "finished" (the run ended first).

    After SIGINT the run must exit with status 130 within 2 s, saying so in one line without a traceback."""
    met = []
    for t in moments:
        proc = subprocess.Popen(EXE + args, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
        try:
            proc.wait(timeout=t)
            met.append("finished")
            continue
        except subprocess.TimeoutExpired:
            pass
        t0 = time.monotonic()
        os.killpg(proc.pid, sig)
        try:
            _, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        took = time.monotonic() - t0
        if sig == signal.SIGINT and proc.returncode != 0:
            assert proc.returncode == 130, err[-3000:]
            assert took < 2.0, f"took {took:.1f} s to stop after SIGINT"
            assert "Traceback" not in err, err[-3000:]
        met.append("signalled")
        _wait_for_group(proc.pid)
    _run(args, cwd, timeout)
    return met


def _wait_for_group(pgid, limit=10.0):
    """Every process of the group (worker processes included) has exited."""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    os.killpg(pgid, signal.SIGKILL)


def _npz_equal(a: Path, b: Path):
    """Two .npz files hold the same arrays bit for bit (the zip members' timestamps may differ)."""
    with np.load(a, allow_pickle=False) as za, np.load(b, allow_pickle=False) as zb:
        assert sorted(za.files) == sorted(zb.files), a.name
        for k in za.files:
            x, y = za[k], zb[k]
            assert x.dtype == y.dtype and x.shape == y.shape, (a.name, k)
            assert x.tobytes() == y.tobytes(), (a.name, k)


def _summary_numbers(path: Path) -> str:
    """The summary up to its wall-time section (what this run computed and what it reused differ)."""
    return path.read_text().split("## Wall time of this run")[0]


def _same_figure(ref: Path, got: Path):
    names = sorted(p.name for p in ref.iterdir() if p.is_file() and p.suffix in (".csv", ".npz", ".md"))
    assert names == sorted(p.name for p in got.iterdir() if p.is_file() and p.suffix in (".csv", ".npz", ".md"))
    for name in names:
        if name.endswith(".csv"):
            assert (ref / name).read_bytes() == (got / name).read_bytes(), name
        elif name.endswith(".npz"):
            _npz_equal(ref / name, got / name)
        else:
            assert _summary_numbers(ref / name) == _summary_numbers(got / name), name


def _figure_args(settings: str, restarts: int):
    """Run in the folder of its outputs (relative paths: the summary quotes the command)."""
    return ["-q", "figure", "1", "--quick", "--restarts", str(restarts), "--settings", settings, "--draws", "10",
            "--jobs", "2", "--out", "out", "--cache", "cache"]


def _moments(rng, n, span):
    """``n`` kill moments, random, spread over ``span`` seconds of work: each rerun resumes, so moments
    drawn across the whole span land in every stage of the run."""
    edges = np.linspace(0.3, max(span, 1.0), n + 1)
    return [float(rng.uniform(lo, hi)) for lo, hi in zip(edges[:-1], edges[1:])]


def _figure_fault_test(tmp_path, sig, kills, settings, restarts, seed):
    ref, got = tmp_path / "reference", tmp_path / "faulted"
    ref.mkdir()
    got.mkdir()
    wall, _ = _run(_figure_args(settings, restarts), ref)
    rng = np.random.default_rng(seed)
    # the runs resume, so each moment is a fraction of what is left: spread the moments over the reference's
    # time divided among them, so that the kills reach the late stages too
    met = _kill_and_rerun(_figure_args(settings, restarts), got, sig=sig,
                          moments=_moments(rng, kills, wall / 2))
    assert met.count("signalled") >= kills // 2, met
    _same_figure(ref / "out", got / "out")


def test_a_small_figure_killed_three_times_ends_bitwise_equal_to_an_uninterrupted_run(tmp_path):
    _figure_fault_test(tmp_path, signal.SIGKILL, 3, "sgd-fast", 2, seed=1)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_a_figure_signalled_ten_times_across_all_stages_ends_bitwise_equal(tmp_path, sig):
    _figure_fault_test(tmp_path, sig, 12, "sgd-fast,esgd", 2, seed=int(sig))


# ---- deep train and deep local-entropy


@pytest.fixture()
def fmnist(tmp_path):
    """Tiny Fashion-MNIST IDX files (300 train, 50 test images) in tmp_path/fm."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "fm"
    folder.mkdir()
    files = dataset("fashion-mnist").files
    arrays = {"train_images": rng.integers(0, 256, (300, 28, 28), dtype=np.uint8),
              "train_labels": rng.integers(0, 10, 300).astype(np.uint8),
              "test_images": rng.integers(0, 256, (50, 28, 28), dtype=np.uint8),
              "test_labels": rng.integers(0, 10, 50).astype(np.uint8)}
    for role, a in arrays.items():
        write_idx(folder / files[role], a, compress=False)
    return folder


def _train_args(fm, out, epochs):
    return ["-q", "deep", "train", "--preset", "cpu-fmnist-mlp2-esgd", "--data-dir", str(fm), "--out", str(out),
            "--set", f"epochs={epochs}", "--set", "batch_size=50", "--set", "train_subset=0",
            "--set", "test_subset=0", "--threads", "1", "--no-tensorboard"]


def _metrics(path: Path):
    """metrics.csv without its timing columns."""
    rows = list(csv.DictReader(open(path)))
    return [{k: v for k, v in r.items() if "time" not in k and "second" not in k} for r in rows]


def _state_equal(a: Path, b: Path):
    import torch

    sa, sb = torch.load(a, weights_only=True), torch.load(b, weights_only=True)
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def _deep_fault_test(tmp_path, fm, sig, kills, epochs, seed):
    wall, _ = _run(_train_args(fm, tmp_path / "ref", epochs), tmp_path)
    rng = np.random.default_rng(seed)
    met = _kill_and_rerun(_train_args(fm, tmp_path / "got", epochs), tmp_path, sig=sig,
                          moments=_moments(rng, kills, wall / 2))
    assert met.count("signalled") >= kills // 2, met
    _state_equal(tmp_path / "ref" / "model.pt", tmp_path / "got" / "model.pt")
    assert _metrics(tmp_path / "ref" / "metrics.csv") == _metrics(tmp_path / "got" / "metrics.csv")
    # the local entropy of the trained network, signalled in turn
    le = ["-q", "deep", "local-entropy", None, "--data-dir", str(fm), "--layers", "out", "--deltas",
          "1e-6,1e-5,1e-4,1e-3", "--samples", "40", "--chains", "8", "--groups", "2", "--moves", "1"]
    wall, _ = _run([str(tmp_path / "ref") if a is None else a for a in le], tmp_path)
    met = _kill_and_rerun([str(tmp_path / "got") if a is None else a for a in le], tmp_path, sig=sig,
                          moments=_moments(rng, kills, wall / 2))
    out = "local_entropy-out.csv"
    assert (tmp_path / "ref" / out).read_bytes() == (tmp_path / "got" / out).read_bytes()


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_deep_train_and_local_entropy_signalled_end_bitwise_equal(fmnist, tmp_path, sig):
    _deep_fault_test(tmp_path, fmnist, sig, 3, 3, seed=int(sig))


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_deep_train_and_local_entropy_signalled_ten_times_end_bitwise_equal(fmnist, tmp_path, sig):
    _deep_fault_test(tmp_path, fmnist, sig, 10, 8, seed=10 + int(sig))


@pytest.mark.slow
def test_shards_started_together_on_one_cache_assemble_to_the_figure_of_the_same_shards_run_in_turn(tmp_path):
    """The SLURM job-array recipe on this machine (docs/deep.md): n shard processes side by side on one cache
    folder, then one run without --shard assembles; its outputs equal, bit for bit, those of the same shards
    run one after another. (A sharded figure is not bitwise the one-process figure: restarts trained in
    other batches round differently, docs/figures.md.)"""
    shard = [a for a in _figure_args("sgd-fast", 4) if a != "-q"]
    shard[shard.index("--jobs") + 1] = "1"
    folders = {"in-turn": tmp_path / "in-turn", "together": tmp_path / "together"}
    for f in folders.values():
        f.mkdir()
    for i in (1, 2, 3):
        _run(["-q"] + shard + ["--shard", f"{i}/3"], folders["in-turn"])
    procs = [subprocess.Popen(EXE + ["-q"] + shard + ["--shard", f"{i}/3"], cwd=folders["together"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in (1, 2, 3)]
    for p in procs:
        _, err = p.communicate(timeout=900)
        assert p.returncode == 0, err[-3000:]
    assert not (folders["together"] / "out" / "fig1.csv").exists()  # shards draw nothing
    for f in folders.values():
        _run(_figure_args("sgd-fast", 4), f)
    _same_figure(folders["in-turn"] / "out", folders["together"] / "out")
