"""Replicated-SGD with one process per replica over torch.distributed (paper 000, Algorithm 2).

Each process owns replica a = its rank among y = world-size processes and trains it with
torch SGD on its own mini-batches; every K steps the barycenter w̄ is obtained by one
``all_reduce`` (sum of the flattened parameters, divided by y) and Kγ(w_a − w̄) is added to the
gradient, exactly as :class:`entropic.replicated.Replicated` does with the replicas stacked on
one device. With the seeding rule of :mod:`entropic.replicated` (replica a initialised under
``replica_seed(seed, a)`` by :func:`make_replicas`-style construction, batches from
:func:`replica_batch_indices`), both executions follow the same trajectory (up to the
summation order of the all-reduce).

Launch with torchrun, e.g. ``torchrun --nproc_per_node 3 train.py``, where train.py calls
:func:`init_from_env` (gloo on CPU, nccl on CUDA) and builds a :class:`DistributedReplicated`.
"""

from __future__ import annotations

import os
from typing import Callable, Optional

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from localentropy.entropic.errors import EntropicError
from localentropy.entropic.schedules import as_schedule, focusing_gamma
from localentropy.entropic.replicated import sgd_optimizer, coupling_grad, recompute_bn_stats, replica_seed

__all__ = ["init_from_env", "build_replica", "DistributedReplicated"]


def init_from_env(backend: Optional[str] = None) -> int:
    """Initialise the default process group from torchrun's environment; returns the rank.

    backend: "gloo" on CPU, "nccl" when CUDA is available (default). On CUDA each process
    uses device ``LOCAL_RANK``.
    """
    for var in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        if var not in os.environ:
            raise EntropicError(f"environment variable {var} is not set: launch with torchrun")
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return dist.get_rank()


def build_replica(factory: Callable[[], nn.Module], seed: int, replica: int) -> nn.Module:
    """Replica ``replica`` of a run seeded ``seed``, built as :func:`entropic.replicated.make_replicas` does."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(replica_seed(seed, replica))
        return factory()


def _flat(tensors) -> torch.Tensor:
    return torch.cat([t.detach().reshape(-1) for t in tensors])


class DistributedReplicated:
    """This process's replica of Replicated-SGD; the other replicas live in the other processes.

    Same hyper-parameters and meaning as :class:`entropic.replicated.Replicated` (lr, momentum,
    nesterov, weight_decay or ``optimizer``; K; gamma float or Schedule; gamma_unit; auto_gamma0;
    loss_fn). ``step(inputs, targets)`` takes this replica's mini-batch (B, ...) and returns its
    loss. Collective calls (every process must make them in the same order): ``step`` on
    coupling steps (t ≡ 0 mod K) and on the first step with auto γ0, ``center_model``,
    ``distances``.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        lr: float = 0.01,
        momentum: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
        K: int = 10,
        gamma=1e-3,
        gamma_unit: str = "step",
        auto_gamma0: bool = False,
        loss_fn: Callable = F.cross_entropy,
        optimizer: Optional[Callable[[list], torch.optim.Optimizer]] = None,
        group=None,
    ):
        if not dist.is_available() or not dist.is_initialized():
            raise EntropicError("torch.distributed is not initialised (call init_from_env under torchrun)")
        if not isinstance(model, nn.Module):
            raise EntropicError(f"model must be an nn.Module, got {type(model).__name__}")
        if isinstance(K, bool) or not isinstance(K, int) or K < 1:
            raise EntropicError(f"K (coupling period) must be an int >= 1, got {K!r}")
        if gamma_unit not in ("step", "epoch"):
            raise EntropicError(f"gamma_unit must be 'step' or 'epoch', got {gamma_unit!r}")
        self.group = group
        self.rank = dist.get_rank(group)
        self.replicas = dist.get_world_size(group)
        if auto_gamma0 and self.replicas < 2:
            raise EntropicError("auto_gamma0 needs at least 2 replicas (processes)")
        self.model = model
        self.K = K
        self.gamma_schedule = as_schedule(gamma)
        self.gamma_unit = gamma_unit
        self.auto_gamma0 = bool(auto_gamma0)
        self.loss_fn = loss_fn
        self.params = [p for p in model.parameters()]
        if optimizer is None:
            self.optimizer = sgd_optimizer(self.params, lr, momentum, nesterov, weight_decay)
        else:
            self.optimizer = optimizer(self.params)
        self.t = 0
        self.gamma_t = 0
        self.gamma0: Optional[float] = None
        self.grad_evals = 0

    @property
    def gamma(self) -> float:
        return focusing_gamma(self.gamma_schedule, self.gamma_t, self.auto_gamma0, self.gamma0)

    def epoch_end(self) -> None:
        if self.gamma_unit == "epoch":
            self.gamma_t += 1

    def _center_flat(self) -> torch.Tensor:
        """w̄ flattened: one all_reduce of the concatenated parameters, divided by y."""
        flat = _flat(self.params)
        dist.all_reduce(flat, op=dist.ReduceOp.SUM, group=self.group)
        return flat / self.replicas

    def _unflatten(self, flat: torch.Tensor) -> list:
        out, i = [], 0
        for p in self.params:
            out.append(flat[i:i + p.numel()].view_as(p))
            i += p.numel()
        return out

    def step(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """One step of Algorithm 2 for this replica (collective on coupling steps)."""
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss_fn(self.model(inputs), targets)
        loss.backward()
        self.grad_evals += 1
        self.t += 1
        with torch.no_grad():
            center = None
            if self.auto_gamma0 and self.gamma0 is None:
                center = self._unflatten(self._center_flat())
                d = sum(0.5 * float((p - c).pow(2).sum()) for p, c in zip(self.params, center))
                stats = torch.tensor([float(loss), d], dtype=torch.float64, device=inputs.device)
                dist.all_reduce(stats, group=self.group)
                if not stats[1] > 0:
                    raise EntropicError("auto_gamma0: the replicas coincide (sum of distances 0)")
                self.gamma0 = float(stats[0] / stats[1])
            if self.t % self.K == 0:
                strength = self.K * self.gamma
                if strength != 0.0:
                    if center is None:
                        center = self._unflatten(self._center_flat())
                    for p, c in zip(self.params, center):
                        if p.grad is None:
                            p.grad = torch.zeros_like(p)
                        p.grad.add_(coupling_grad(p.detach().unsqueeze(0), c, strength)[0])
        self.optimizer.step()
        if self.gamma_unit == "step":
            self.gamma_t += 1
        return loss.detach()

    def distances(self) -> torch.Tensor:
        """d(w_a, w̄) for every replica, shape (y,), on every process (collective)."""
        with torch.no_grad():
            center = self._unflatten(self._center_flat())
            d = sum((0.5 * (p - c).pow(2).sum()).to(torch.float64) for p, c in zip(self.params, center))
            out = torch.zeros(self.replicas, dtype=torch.float64, device=d.device)
            out[self.rank] = d
            dist.all_reduce(out, group=self.group)
        return out

    def center_model(self, loader=None) -> nn.Module:
        """The barycenter as a copy of this replica's module, float buffers averaged (collective)."""
        import copy

        m = copy.deepcopy(self.model)
        with torch.no_grad():
            for p, c in zip(m.parameters(), self._unflatten(self._center_flat())):
                p.copy_(c)
            for b in m.buffers():
                if b.is_floating_point():
                    dist.all_reduce(b, group=self.group)
                    b.div_(self.replicas)
                else:
                    dist.all_reduce(b, op=dist.ReduceOp.MAX, group=self.group)
        if loader is not None:
            recompute_bn_stats(m, loader)
        return m

    def state_dict(self) -> dict:
        return dict(model=self.model.state_dict(), optimizer=self.optimizer.state_dict(),
                    t=self.t, gamma_t=self.gamma_t, gamma0=self.gamma0, grad_evals=self.grad_evals)

    def load_state_dict(self, sd: dict) -> None:
        self.model.load_state_dict(sd["model"])
        self.optimizer.load_state_dict(sd["optimizer"])
        self.t, self.gamma_t, self.gamma0, self.grad_evals = int(sd["t"]), int(sd["gamma_t"]), sd["gamma0"], int(sd["grad_evals"])
