"""The torchrun launch of one process per replica follows the batched one-device trajectory."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from localentropy.entropic.replicated import Replicated, make_replicas, replica_batch_indices

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))
import rsgd_torchrun as ex  # noqa: E402


@pytest.mark.slow  # ~30 s of torchrun start-up; tests/test_distributed.py covers the same arithmetic by mp.spawn
def test_torchrun_three_processes_match_the_batched_replicas(tmp_path):
    steps, bs, seed, y = 12, 32, 3, 3
    out = tmp_path / "center.pt"
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={y}",
           str(ROOT / "examples" / "rsgd_torchrun.py"), "--steps", str(steps), "--batch-size", str(bs),
           "--seed", str(seed), "--out", str(out)]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    got = torch.load(out)

    X, T = ex.make_data()
    rep = Replicated(make_replicas(ex.make_model, y, seed), **ex.HYPER)
    idx = [replica_batch_indices(len(X), bs, seed, a) for a in range(y)]
    for s in range(steps):
        batches = [i[s % len(i)] for i in idx]
        rep.step(torch.stack([X[b] for b in batches]), torch.stack([T[b] for b in batches]))
    assert torch.allclose(got["distances"], rep.distances(), rtol=1e-6, atol=1e-10)
    center = rep.center_model().state_dict()
    for k, v in got["center"].items():
        assert torch.allclose(center[k], v, atol=1e-8), k
