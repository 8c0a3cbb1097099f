"""One process per replica (gloo, 3 processes on localhost) follows the batched trajectory."""

import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from localentropy.entropic import EntropicError
from localentropy.entropic.distributed import DistributedReplicated, build_replica
from localentropy.entropic.replicated import Replicated, make_replicas, replica_batch_indices
from localentropy.entropic.schedules import Exponential

Y, SEED, STEPS, BS = 3, 11, 6, 8
KW = dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3, K=2,
          gamma=Exponential(1.0, 0.2), auto_gamma0=True)


def factory():
    return nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(),
                         nn.Linear(3 * 4 * 4, 3)).double()


def dataset():
    g = torch.Generator().manual_seed(0)
    return torch.randn(48, 2, 6, 6, generator=g, dtype=torch.float64), torch.randint(0, 3, (48,), generator=g)


def _worker(rank, rendezvous, out_path):
    torch.set_num_threads(1)
    # a file rendezvous: no TCP port to pick, so no race with another process taking it
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=Y)
    try:
        X, T = dataset()
        rep = DistributedReplicated(build_replica(factory, SEED, rank), **KW)
        idx = replica_batch_indices(len(X), BS, SEED, rank)
        for s in range(STEPS):
            rep.step(X[idx[s]], T[idx[s]])
        d = rep.distances()
        center = rep.center_model()
        if rank == 0:
            torch.save(dict(center=center.state_dict(), d=d, gamma0=rep.gamma0), out_path)
        torch.save(rep.model.state_dict(), f"{out_path}.{rank}")
    finally:
        dist.destroy_process_group()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_distributed_replicas_match_batched_run(tmp_path):
    out = str(tmp_path / "dist.pt")
    mp.spawn(_worker, args=(str(tmp_path / "rendezvous"), out), nprocs=Y, join=True)
    X, T = dataset()
    rep = Replicated(make_replicas(factory, Y, SEED), **KW)
    idx = torch.stack([replica_batch_indices(len(X), BS, SEED, a) for a in range(Y)], 1)
    for s in range(STEPS):
        rep.step(X[idx[s]], T[idx[s]])
    got = torch.load(out)
    assert got["gamma0"] == pytest.approx(rep.gamma0, rel=1e-9)
    assert torch.allclose(got["d"], rep.distances(), rtol=1e-6, atol=1e-9)
    for a in range(Y):
        sd = torch.load(f"{out}.{a}")
        mine = rep.replica_model(a).state_dict()
        for k, v in sd.items():
            assert torch.allclose(mine[k].to(v.dtype), v, atol=1e-6), (a, k)
    center = rep.center_model().state_dict()
    for k, v in got["center"].items():
        assert torch.allclose(center[k].to(v.dtype), v, atol=1e-6), k


def test_distributed_needs_an_initialised_group():
    if dist.is_initialized():
        pytest.skip("a process group is already initialised")
    with pytest.raises(EntropicError, match="not initialised"):
        DistributedReplicated(factory())
