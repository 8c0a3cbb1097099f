"""Ctrl-C stops a command within moments, process pools included, with one line saying what was kept."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXE = [sys.executable, "-m", "localentropy.cli"]


def _interrupt_after(args, seconds, cwd, ready=None):
    """Run the CLI in its own process group, send the group SIGINT (as a terminal's Ctrl-C does) after
    ``seconds`` and once ``ready()`` holds; return (exit status, seconds it took to exit after the signal,
    stderr)."""
    proc = subprocess.Popen(EXE + args, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    time.sleep(seconds)
    end = time.monotonic() + 300
    while ready is not None and not ready(proc) and proc.poll() is None and time.monotonic() < end:
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()
    kids = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
    t0 = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    took = time.monotonic() - t0
    time.sleep(0.5)
    alive = []
    for pid in map(int, kids):  # no worker outlives the command
        try:
            os.kill(pid, 0)
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            if state != "Z":  # a zombie has exited; only its parent's reaping is left
                alive.append(pid)
        except (ProcessLookupError, FileNotFoundError):
            pass
    assert not alive, f"worker processes {alive} still running"
    return proc.returncode, took, err


def _workers_busy(proc) -> bool:
    """The command's worker processes (a pool of 2 and multiprocessing's resource tracker) are up, and a moment
    has passed for them to start computing."""
    kids = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
    if len(kids) < 3:
        return False
    time.sleep(2.0)
    return True


def test_ctrl_c_stops_phi_and_its_worker_processes_at_once_and_a_rerun_resumes_from_the_finished_curves(tmp_path):
    out = tmp_path / "c.csv"
    parts = tmp_path / ".c.csv.curves"
    args = ["-q", "phi", str(ROOT / "results/fig1/fig1-solutions-sgd-fast.npz"), "--restarts", "0,1,2,3",
            "--method", "is", "--jobs", "2", "--out", str(out)]
    rc, took, err = _interrupt_after(args, 1.0, tmp_path, ready=lambda proc: parts.is_dir() and any(parts.iterdir()))
    assert rc == 130, err
    assert took < 2.0, f"took {took:.1f} s to stop"
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines == [f"localentropy: interrupted; the finished curves are in {parts}; rerun the same command to go "
                     f"on from them"], err
    assert not out.exists()
    kept = len(list(parts.iterdir()))
    assert 1 <= kept < 4
    again = subprocess.run(EXE + args[1:], cwd=tmp_path, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert f"resuming: {kept} of 4 curves read from {parts}" in again.stderr
    assert not parts.exists()  # removed once the table holds every curve
    fresh = subprocess.run(EXE + args[:-1] + [str(tmp_path / "fresh.csv")], cwd=tmp_path, capture_output=True,
                           text=True)
    assert fresh.returncode == 0, fresh.stderr
    assert out.read_bytes() == (tmp_path / "fresh.csv").read_bytes()  # resumed = uninterrupted, bit for bit


def test_ctrl_c_before_phi_finished_a_curve_says_nothing_was_kept(tmp_path):
    out = tmp_path / "c.csv"
    rc, took, err = _interrupt_after(["-q", "phi", str(ROOT / "results/fig1/fig1-solutions-sgd-fast.npz"),
                                      "--restarts", "0,1", "--method", "is", "--jobs", "2", "--out", str(out)],
                                     0.0, tmp_path, ready=_workers_busy_briefly)
    assert rc == 130 and took < 2.0, (rc, took, err)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines == ["localentropy: interrupted; no curve had finished; nothing was kept"], err
    assert not out.exists()


def _workers_busy_briefly(proc) -> bool:
    kids = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
    return len(kids) >= 3


def _small_solutions_folder(folder: Path, per_setting: int = 3) -> Path:
    """The first solutions of two Figure-1 settings, in a figure's solutions format."""
    from localentropy.committee.solutions import load_solutions, save_solutions

    folder.mkdir()
    for name in ("sgd-fast", "sgd-slow"):
        sol = load_solutions(ROOT / f"results/fig1/fig1-solutions-{name}.npz")
        meta = {k: (v[:per_setting] if isinstance(v, list) and len(v) == sol.restarts else v)
                for k, v in sol.metadata.items()}
        save_solutions(folder / f"fig1-solutions-{name}.npz", sol.weights[:per_setting], sol.patterns_hash, meta)
    return folder


def test_ctrl_c_during_a_figures_curves_keeps_the_finished_ones_and_says_where(tmp_path):
    cache = tmp_path / "cache"
    sols = _small_solutions_folder(tmp_path / "sols", per_setting=8)
    args = ["-q", "figure", "1", "--from-solutions", str(sols), "--methods", "auto", "--draws", "10",
            "--out", str(tmp_path / "o"), "--cache", str(cache), "--jobs", "2"]
    rc, took, err = _interrupt_after(args, 1.0, tmp_path, ready=lambda proc: any((cache / "curve").rglob("*.npz")))
    assert rc == 130 and took < 2.0, (rc, took, err)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and f"in the cache {cache}" in lines[0] and "Traceback" not in err, err
    assert not (tmp_path / "o" / "fig1-summary.md").exists()
    kept = len(list((cache / "curve").rglob("*.npz"))) if (cache / "curve").exists() else 0
    assert 0 < kept < 32  # some of the 16 solutions × 2 treatments finished, each kept as it did


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_no_worker_outlives_its_parent_killed_alone(tmp_path, sig):
    """A `kill PID` (SIGTERM: handled as Ctrl-C) or `kill -9 PID` of the command alone, not its process group:
    its worker processes end too, instead of computing on as orphans."""
    proc = subprocess.Popen(EXE + ["-q", "phi", str(ROOT / "results/fig1/fig1-solutions-sgd-fast.npz"), "--restarts",
                                   "0,1", "--jobs", "2", "--out", str(tmp_path / "c.csv")],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    end = time.monotonic() + 300
    kids = []
    while len(kids) < 3 and proc.poll() is None and time.monotonic() < end:
        kids = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
        time.sleep(0.1)
    assert len(kids) >= 3, proc.communicate()
    time.sleep(0.5)
    os.kill(proc.pid, sig)
    _, err = proc.communicate(timeout=60)
    if sig == signal.SIGTERM:
        assert proc.returncode == 130 and "localentropy: interrupted;" in err, err
    end = time.monotonic() + 5
    alive = kids
    while alive and time.monotonic() < end:
        alive = [k for k in kids if Path(f"/proc/{k}").exists()
                 and Path(f"/proc/{k}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"]
        time.sleep(0.1)
    assert not alive, f"worker processes {alive} outlived their parent"
