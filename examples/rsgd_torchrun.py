"""Replicated-SGD with one process per replica, launched by torchrun (paper 000, Algorithm 2).

    torchrun --standalone --nproc_per_node 3 examples/rsgd_torchrun.py --steps 200 --out center.pt

Each process trains replica a = its rank on its own mini-batches of a small synthetic problem
(a stand-in for your data loader); every K steps the replicas are coupled to their barycenter by
one all_reduce. gloo on CPU, nccl on CUDA. Rank 0 saves the centre's weights and the replicas'
distances to it; the same seed run batched on one device gives the same trajectory
(tests/test_torchrun.py checks that).
"""

from __future__ import annotations

import argparse

import torch
import torch.distributed as dist
from torch import nn

from localentropy.entropic.distributed import DistributedReplicated, build_replica, init_from_env
from localentropy.entropic.replicated import replica_batch_indices
from localentropy.entropic.schedules import Exponential


def make_model() -> nn.Module:
    return nn.Sequential(nn.Linear(10, 16), nn.Tanh(), nn.Linear(16, 2)).double()


def make_data(n: int = 256):
    g = torch.Generator().manual_seed(1234)
    X = torch.randn(n, 10, generator=g, dtype=torch.float64)
    y = (X[:, 0] * X[:, 1] + 0.3 * X[:, 2] > 0).long()
    return X, y


HYPER = dict(lr=0.05, momentum=0.9, K=5, gamma=Exponential(1.0, 0.02), auto_gamma0=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="where rank 0 saves the centre and distances (torch.save)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    rank = init_from_env()
    try:
        X, y = make_data()
        rep = DistributedReplicated(build_replica(make_model, args.seed, rank), **HYPER)
        idx = replica_batch_indices(len(X), args.batch_size, args.seed, rank)
        for step in range(args.steps):
            batch = idx[step % len(idx)]
            rep.step(X[batch], y[batch])
        distances = rep.distances()
        center = rep.center_model()
        if rank == 0:
            print(f"replicas {dist.get_world_size()}, steps {args.steps}, distances to centre {distances.tolist()}")
            if args.out:
                torch.save({"center": center.state_dict(), "distances": distances}, args.out)
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
