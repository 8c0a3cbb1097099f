"""`deep.train` across processes (gloo on CPU): rSGD with one replica per process follows the single-process
run on the same seeds, and SGD / eSGD data-parallel through DistributedDataParallel follow the one-process run."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from localentropy.deep.datasets import synthetic_images
from localentropy.deep.presets import TrainConfig, budget_factor
from localentropy.deep.train import train

ROOT = Path(__file__).resolve().parents[1]


def config(method, **kw):
    c = TrainConfig(name=f"dist-{method}", dataset="fashion-mnist", model="mlp2", method=method, batch_size=32,
                    lr=0.02, momentum=0.9, nesterov=True, weight_decay=1e-4, augment="standard", replicas=3, K=2,
                    rsgd_gamma0=None, L=2, esgd_gamma0=0.1, eval_batch=64, **kw)
    return dataclasses.replace(c, epochs=2 * budget_factor(c))


def data():
    return synthetic_images("fashion-mnist", n_train=96, n_test=32, seed=2)


def rendezvous(tmp_path, name="rdzv"):
    """A file for the processes to meet at (a TCP port picked, released, then bound again can be taken
    in between by another process; a fresh file cannot)."""
    path = tmp_path / name
    assert not path.exists()
    return str(path)


def _worker(rank, world, rdzv, method, out, stop_after=None):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{rdzv}", rank=rank, world_size=world)
    try:
        train(config(method), data(), out_dir=out, distributed=True, tensorboard=False, stop_after=stop_after)
    finally:
        dist.destroy_process_group()


def _compare(out, single, atol):
    got = torch.load(Path(out) / "model.pt", weights_only=True)
    ref = single.model.state_dict()
    for k, v in ref.items():
        assert torch.allclose(got[k], v, atol=atol), (k, (got[k] - v).abs().max())


@pytest.mark.parametrize("method, world", [
    ("rsgd", 3),
    pytest.param("sgd", 2, marks=pytest.mark.slow),  # ~16 s each of process start-up on 2 cores
    pytest.param("esgd", 2, marks=pytest.mark.slow),
])
def test_the_distributed_run_follows_the_single_process_run(method, world, tmp_path):
    out = tmp_path / "dist"
    mp.spawn(_worker, args=(world, rendezvous(tmp_path), method, str(out)), nprocs=world, join=True)
    torch.set_num_threads(1)
    single = train(config(method), data(), tensorboard=False)
    _compare(out, single, atol=1e-5)
    import csv

    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert [int(r["samples"]) for r in rows] == [r["samples"] for r in single.metrics]
    assert float(rows[-1]["test_error"]) == pytest.approx(single.final["test_error"], abs=1 / 32 + 1e-9)
    assert sorted(p.name for p in out.glob("checkpoint-rank*.pt")) == [f"checkpoint-rank{r}.pt" for r in range(world)]


@pytest.mark.slow  # two launches of 3 processes: ~45 s on 2 cores
def test_an_interrupted_distributed_rsgd_run_resumes_from_its_per_rank_checkpoints(tmp_path):
    out = tmp_path / "dist"
    mp.spawn(_worker, args=(3, rendezvous(tmp_path, "first"), "rsgd", str(out), 1), nprocs=3, join=True)
    assert not (out / "model.pt").exists() and len(list(out.glob("checkpoint-rank*.pt"))) == 3
    mp.spawn(_worker, args=(3, rendezvous(tmp_path, "second"), "rsgd", str(out)), nprocs=3, join=True)
    torch.set_num_threads(1)
    single = train(config("rsgd"), data(), tensorboard=False)
    _compare(out, single, atol=1e-5)


@pytest.mark.slow  # torchrun start-up of 3 processes: ~30 s on 2 cores
def test_torchrun_launches_the_cli_with_one_replica_per_process(tmp_path):
    import numpy as np

    from localentropy.data.idx import write_idx
    from localentropy.data.locate import dataset

    rng = np.random.default_rng(0)
    fm = tmp_path / "fm"
    fm.mkdir()
    files = dataset("fashion-mnist").files
    for role, n in (("train", 120), ("test", 40)):
        write_idx(fm / files[f"{role}_images"], rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), compress=False)
        write_idx(fm / files[f"{role}_labels"], rng.integers(0, 10, n).astype(np.uint8), compress=False)
    sets = ["--set", "epochs=6", "--set", "batch_size=40", "--set", "train_subset=0", "--set", "test_subset=0",
            "--set", "milestones=4"]
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    common = ["deep", "train", "--preset", "cpu-fmnist-mlp2-rsgd", "--data-dir", str(fm), "--threads", "1",
              "--no-tensorboard", *sets]
    res = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=3",
                          "-m", "localentropy.cli", "-q", *common, "--distributed", "--out", str(tmp_path / "d")],
                         env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    one = subprocess.run([sys.executable, "-m", "localentropy.cli", "-q", *common, "--out", str(tmp_path / "s")],
                         env=env, capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr[-3000:]
    a = torch.load(tmp_path / "d" / "model.pt", weights_only=True)
    b = torch.load(tmp_path / "s" / "model.pt", weights_only=True)
    for k in b:
        assert torch.allclose(a[k], b[k], atol=1e-5), k


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # two torchrun agents and their workers: ~1 min on 2 cores
@pytest.mark.parametrize("preset, extra", [("cpu-fmnist-mlp2-sgd", []), ("cpu-fmnist-mlp2-rsgd", ["--set", "replicas=2"])],
                         ids=["sgd", "rsgd"])
def test_two_nodes_on_this_machine_follow_the_one_process_run(tmp_path, preset, extra):
    """Multi-node as on a cluster: two torchrun agents ("nodes" 0 and 1, one process each) meet through the c10d
    rendezvous at 127.0.0.1, as `torchrun --nnodes 2 --node-rank i --rdzv-backend c10d --rdzv-endpoint HOST:PORT`
    on two machines would; data-parallel SGD and rSGD with one replica per process follow the one-process run."""
    import numpy as np

    from localentropy.data.idx import write_idx
    from localentropy.data.locate import dataset

    rng = np.random.default_rng(0)
    fm = tmp_path / "fm"
    fm.mkdir()
    files = dataset("fashion-mnist").files
    for role, n in (("train", 120), ("test", 40)):
        write_idx(fm / files[f"{role}_images"], rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), compress=False)
        write_idx(fm / files[f"{role}_labels"], rng.integers(0, 10, n).astype(np.uint8), compress=False)
    sets = ["--set", "epochs=4", "--set", "batch_size=40", "--set", "train_subset=0", "--set", "test_subset=0",
            *extra]
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    common = ["deep", "train", "--preset", preset, "--data-dir", str(fm), "--threads", "1", "--no-tensorboard", *sets]
    port = _free_port()
    nodes = [subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--node-rank", str(i),
                               "--nproc-per-node", "1", "--rdzv-backend", "c10d", "--rdzv-endpoint",
                               f"127.0.0.1:{port}", "--rdzv-id", "two-nodes", "-m", "localentropy.cli", "-q",
                               *common, "--distributed", "--out", str(tmp_path / "d")],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    for node in nodes:
        _, err = node.communicate(timeout=600)
        assert node.returncode == 0, err[-3000:]
    one = subprocess.run([sys.executable, "-m", "localentropy.cli", "-q", *common, "--out", str(tmp_path / "s")],
                         env=env, capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr[-3000:]
    a = torch.load(tmp_path / "d" / "model.pt", weights_only=True)
    b = torch.load(tmp_path / "s" / "model.pt", weights_only=True)
    for k in b:
        assert torch.allclose(a[k], b[k], atol=1e-5), k
