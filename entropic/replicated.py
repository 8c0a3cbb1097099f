"""Replicated-SGD (rSGD), paper 000 Sec. 4, Eq. (6) and Algorithm 2.

y replicas w_a, each trained by SGD on its own mini-batches; every K steps each replica is
pulled towards the barycenter w̄ = (1/y) Σ_a w_a with strength Kγ, i.e. the gradient gets
Kγ (w_a − w̄) added (Alg. 2, lines 6–7). This approximates descending the replicated loss
L_R = Σ_a L(w_a) + γ Σ_a d(w_a, w̄) of Eq. (6), d = ½‖·‖².

Two layers:

* a functional core on plain tensors whose leading dimension is the replica axis
  (:func:`barycenter`, :func:`coupling_grad`, :func:`replica_distances`, :func:`auto_gamma0`),
  used by the committee machine with (replicas, restarts, K, N) weights and by
  :mod:`entropic.distributed`;
* :class:`Replicated`, which owns y replicas of any ``nn.Module`` stacked with
  ``torch.func.stack_module_state`` and evaluated with ``functional_call`` under ``vmap`` (one
  call for all replicas), each replica on its own mini-batch. The base optimizer is torch's
  (SGD with momentum / Nesterov / weight decay by default) on the stacked tensors; since those
  optimizers act element-wise, replica a evolves exactly as it would alone.

Seeding rule shared with the one-process-per-replica version: replica a of a run seeded
``seed`` is initialised under ``torch.manual_seed(replica_seed(seed, a))`` (see
:func:`make_replicas`) and reads the mini-batches :func:`replica_batch_indices` gives it.
"""

from __future__ import annotations

import copy
import math
from typing import Callable, Iterable, Mapping, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad_and_value, stack_module_state, vmap

from localentropy.entropic.errors import EntropicError
from localentropy.entropic.schedules import as_schedule, focusing_gamma

__all__ = [
    "barycenter",
    "coupling_grad",
    "replica_distances",
    "auto_gamma0",
    "replica_seed",
    "make_replicas",
    "replica_batch_indices",
    "Replicated",
]

Stacked = Union[torch.Tensor, Mapping[str, torch.Tensor]]


# ----------------------------------------------------------------------------------------------
# functional core
# ----------------------------------------------------------------------------------------------
def _tensors(stacked: Stacked, name: str = "stacked") -> list:
    if isinstance(stacked, torch.Tensor):
        ts = [stacked]
    elif isinstance(stacked, Mapping):
        ts = list(stacked.values())
        if not ts:
            raise EntropicError(f"{name} is an empty mapping")
    else:
        raise EntropicError(f"{name} must be a tensor or a mapping of tensors, got {type(stacked).__name__}")
    y = None
    for t in ts:
        if not isinstance(t, torch.Tensor) or t.dim() < 1:
            raise EntropicError(f"{name} entries need a leading replica axis, got shape {getattr(t, 'shape', None)}")
        if y is None:
            y = t.shape[0]
        elif t.shape[0] != y:
            raise EntropicError(f"{name} entries disagree on the number of replicas ({y} vs {t.shape[0]})")
    if y == 0:
        raise EntropicError(f"{name} has 0 replicas")
    return ts


def barycenter(stacked: Stacked) -> Stacked:
    """w̄ = (1/y) Σ_a w_a over the leading replica axis (Alg. 2, line 2); tensor or dict of tensors."""
    _tensors(stacked)
    if isinstance(stacked, torch.Tensor):
        return stacked.sum(0) / stacked.shape[0]
    return {k: v.sum(0) / v.shape[0] for k, v in stacked.items()}


def coupling_grad(stacked: Stacked, center: Stacked, strength) -> Stacked:
    """strength · (w_a − w̄), the term added to each replica's gradient (Alg. 2, line 7).

    Algorithm 2 adds it every K steps with strength Kγ. ``strength`` is a float or a tensor that
    broadcasts against one replica's tensor (e.g. shape (R, 1, 1) for per-restart γ0 with
    (replicas, R, K, N) weights).
    """
    if isinstance(strength, torch.Tensor):
        if not bool(torch.isfinite(strength).all()) or bool((strength < 0).any()):
            raise EntropicError("coupling strength must be finite and >= 0")
    else:
        s = float(strength)
        if not (math.isfinite(s) and s >= 0):
            raise EntropicError(f"coupling strength must be finite and >= 0, got {strength}")
    if isinstance(stacked, torch.Tensor):
        if not isinstance(center, torch.Tensor) or center.shape != stacked.shape[1:]:
            raise EntropicError(
                f"center shape {tuple(getattr(center, 'shape', ()))} does not match a replica's shape {tuple(stacked.shape[1:])}")
        return strength * (stacked - center.unsqueeze(0))
    _tensors(stacked)
    if not isinstance(center, Mapping) or set(center) != set(stacked):
        raise EntropicError("center must have the same keys as stacked")
    return {k: coupling_grad(v, center[k], strength) for k, v in stacked.items()}


def replica_distances(stacked: Stacked, center: Optional[Stacked] = None, keep_dims: int = 1) -> torch.Tensor:
    """d(w_a, w̄) = ½‖w_a − w̄‖² per replica (Eq. 6), summed over every tensor of a dict.

    ``keep_dims`` leading axes are kept: 1 gives shape (y,); 2 gives (y, R) for
    (replicas, restarts, ...) weights. ``center`` defaults to the barycenter.
    """
    ts = _tensors(stacked)
    if center is None:
        center = barycenter(stacked)
    cs = [center] if isinstance(stacked, torch.Tensor) else [center[k] for k in stacked]
    out = None
    for t, c in zip(ts, cs):
        if t.dim() < keep_dims:
            raise EntropicError(f"keep_dims={keep_dims} exceeds the tensor's {t.dim()} dimensions")
        if c.shape != t.shape[1:]:
            raise EntropicError(f"center shape {tuple(c.shape)} does not match a replica's shape {tuple(t.shape[1:])}")
        d = 0.5 * (t - c.unsqueeze(0)).pow(2)
        d = d.reshape(*t.shape[:keep_dims], -1).sum(-1)
        out = d if out is None else out + d
    return out


def auto_gamma0(losses: torch.Tensor, stacked: Stacked, keep_dims: int = 1) -> torch.Tensor:
    """γ0 = Σ_a L(w_a) / Σ_a d(w_a, w̄), balancing data and distance terms of Eq. (6) (Sec. 4).

    ``losses`` has shape ``stacked``'s leading ``keep_dims`` axes ((y,) or (y, R)); the result
    is a 0-d tensor, or one γ0 per restart (shape (R,)) for keep_dims = 2.
    """
    losses = torch.as_tensor(losses)
    d = replica_distances(stacked, keep_dims=keep_dims)
    if losses.shape != d.shape:
        raise EntropicError(f"losses shape {tuple(losses.shape)} must be {tuple(d.shape)} (one per replica)")
    if not bool(torch.isfinite(losses).all()):
        raise EntropicError("auto_gamma0: the replicas' losses are not all finite")
    num = losses.sum(0).to(d.dtype)
    den = d.sum(0)
    if bool((den <= 0).any()):
        raise EntropicError("auto_gamma0: the replicas coincide (sum of distances 0), give gamma0 explicitly")
    return num / den


# ----------------------------------------------------------------------------------------------
# seeding shared by the batched and the distributed runs
# ----------------------------------------------------------------------------------------------
def replica_seed(seed: int, a: int) -> int:
    """The seed of replica a in a run seeded ``seed`` (init and data order): a fixed mixing."""
    if int(a) < 0:
        raise EntropicError(f"replica index must be >= 0, got {a}")
    return (int(seed) * 1_000_003 + 7919 * (int(a) + 1)) % (2**63 - 1)


def make_replicas(factory: Callable[[], nn.Module], replicas: int, seed: int) -> list:
    """y independently initialised models: replica a built under ``torch.manual_seed(replica_seed(seed, a))``.

    The global RNG is restored afterwards. The distributed run builds its one replica the same way.
    """
    if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 1:
        raise EntropicError(f"replicas must be an int >= 1, got {replicas!r}")
    out = []
    for a in range(replicas):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(replica_seed(seed, a))
            out.append(factory())
    return out


def replica_batch_indices(n: int, batch_size: int, seed: int, replica: int, epoch: int = 0) -> torch.Tensor:
    """Mini-batch indices of one replica for one epoch, shape (n // batch_size, batch_size).

    A permutation of range(n) drawn from ``replica_seed(seed, replica)`` and the epoch, cut into
    full batches (the remainder is dropped so that every step stacks across replicas).
    """
    if n < 1 or batch_size < 1 or batch_size > n:
        raise EntropicError(f"need 1 <= batch_size <= n, got batch_size={batch_size}, n={n}")
    g = torch.Generator().manual_seed(replica_seed(seed, replica) + 104729 * int(epoch))
    perm = torch.randperm(n, generator=g)
    steps = n // batch_size
    return perm[: steps * batch_size].reshape(steps, batch_size)


# ----------------------------------------------------------------------------------------------
# the replicated trainer for nn.Modules
# ----------------------------------------------------------------------------------------------
def _is_bn(m: nn.Module) -> bool:
    return isinstance(m, nn.modules.batchnorm._BatchNorm)


def recompute_bn_stats(model: nn.Module, loader: Iterable) -> None:
    """Recompute BatchNorm running statistics of ``model`` as plain averages over ``loader``.

    The loader yields input tensors or (inputs, ...) tuples. Used for the barycenter, whose
    averaged buffers are only an approximation of its true activation statistics.
    """
    bns = [m for m in model.modules() if _is_bn(m) and m.track_running_stats]
    if not bns:
        return
    was_training = model.training
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    model.train()
    seen = 0
    with torch.no_grad():
        for batch in loader:
            x = batch[0] if isinstance(batch, (tuple, list)) else batch
            model(x)
            seen += 1
    for m, mom in zip(bns, momenta):
        m.momentum = mom
    model.train(was_training)
    if seen == 0:
        raise EntropicError("recompute_bn_stats: the loader yielded no batch")


def _cpu_conv_net(model: nn.Module) -> bool:
    """True for a model on CPU with convolutions, where vmap's grouped convolutions lose to a loop."""
    on_cpu = all(p.device.type == "cpu" for p in model.parameters())
    return on_cpu and any(isinstance(m, nn.modules.conv._ConvNd) for m in model.modules())


def sgd_optimizer(params: list, lr, momentum, nesterov, weight_decay) -> torch.optim.SGD:
    """The default base optimizer of rSGD (this module and entropic.distributed): torch SGD over `params`,
    after checking lr > 0, momentum and weight_decay finite and >= 0, Nesterov only with momentum."""
    for name, v in (("lr", lr), ("momentum", momentum), ("weight_decay", weight_decay)):
        v = float(v)
        if not (math.isfinite(v) and v >= 0):
            raise EntropicError(f"{name} must be finite and >= 0, got {v}")
    if not lr > 0:
        raise EntropicError(f"lr must be > 0, got {lr}")
    if nesterov and not momentum > 0:
        raise EntropicError(f"nesterov=True needs momentum > 0, got {momentum}")
    return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)


class Replicated:
    """Replicated-SGD (paper 000, Algorithm 2) over y replicas of an ``nn.Module``, batched with vmap.

    ``models``: the y replicas (same architecture; see :func:`make_replicas`). Their parameters
    and buffers are copied into stacked tensors ``params[name]`` / ``buffers[name]`` of shape
    (y, ...); the given modules are not modified afterwards.
    Hyper-parameters: lr [η], momentum, nesterov, weight_decay (torch SGD), or ``optimizer``, a
    callable list-of-tensors → torch Optimizer (must act element-wise, e.g. SGD, RMSprop, Adam);
    K [K], gamma [γ] (float or Schedule of the focusing counter), gamma_unit "step" | "epoch",
    auto_gamma0 (γ0 = Σ_a L(w_a)/Σ_a d(w_a, w̄) at the first step, then γ(t) = γ0 · gamma(t), so
    pass a relative schedule such as ``Exponential(1.0, γ1)``), loss_fn(output, target) → scalar.
    ``batched=False`` runs the same arithmetic as a per-replica Python loop; needed only where
    vmap cannot trace the model (data-dependent Python control flow on tensor values, ``.item()``
    in forward, in-place writes into unbatched tensors, custom autograd Functions without vmap
    support). With dropout the batched run draws independent masks per replica (vmap
    randomness="different") from a different stream than the loop: same law, other samples.
    On CPU vmap turns convolutions into grouped convolutions, which are slower there than a loop
    over replicas (benchmarks/bench_entropic_optim.py measures both). Hence the default ``batched="auto"``: the loop for
    models with convolutions on CPU, vmap otherwise (GPU, MLPs, small models such as the committee).

    ``step(inputs, targets)``: inputs (y, B, ...), targets (y, B, ...), replica a on its own
    batch; returns the y losses (detached). ``self.optimizer`` is the torch optimizer (attach LR
    schedulers to it). ``grad_evals`` counts mini-batch gradients (y per step).
    """

    def __init__(
        self,
        models: Sequence[nn.Module],
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
        batched: bool | str = "auto",
    ):
        models = list(models) if not isinstance(models, nn.Module) else None
        if not models or not all(isinstance(m, nn.Module) for m in models):
            raise EntropicError("models must be a non-empty sequence of nn.Module replicas")
        names = [tuple((k, tuple(v.shape)) for k, v in m.state_dict().items()) for m in models]
        if any(n != names[0] for n in names):
            raise EntropicError("the replicas do not share one architecture (parameter names/shapes differ)")
        if isinstance(K, bool) or not isinstance(K, int) or K < 1:
            raise EntropicError(f"K (coupling period) must be an int >= 1, got {K!r}")
        if gamma_unit not in ("step", "epoch"):
            raise EntropicError(f"gamma_unit must be 'step' or 'epoch', got {gamma_unit!r}")
        if not callable(loss_fn):
            raise EntropicError(f"loss_fn must be callable, got {loss_fn!r}")
        if auto_gamma0 and len(models) < 2:
            raise EntropicError("auto_gamma0 needs at least 2 replicas (the distances vanish for y = 1)")
        self.replicas = len(models)
        self.K = K
        self.gamma_schedule = as_schedule(gamma)
        self.gamma_unit = gamma_unit
        self.auto_gamma0 = bool(auto_gamma0)
        self.loss_fn = loss_fn
        if batched == "auto":
            batched = not _cpu_conv_net(models[0])
        elif not isinstance(batched, bool):
            raise EntropicError(f"batched must be True, False or 'auto', got {batched!r}")
        self.batched = batched
        params, buffers = stack_module_state(models)
        self.params = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
        self.buffers = {k: v.detach().clone() for k, v in buffers.items()}
        self._template = copy.deepcopy(models[0]).to("meta")
        if optimizer is None:
            self.optimizer = sgd_optimizer(list(self.params.values()), lr, momentum, nesterov, weight_decay)
        else:
            self.optimizer = optimizer(list(self.params.values()))
            if not isinstance(self.optimizer, torch.optim.Optimizer):
                raise EntropicError("optimizer must build a torch.optim.Optimizer from a list of tensors")
        self.t = 0
        self.gamma_t = 0
        self.gamma0: Optional[float] = None
        self.grad_evals = 0
        self._vgrad = vmap(grad_and_value(self._loss_one), randomness="different")

    # ----- focusing ------------------------------------------------------------------------
    @property
    def gamma(self) -> float:
        """Current γ(t) (γ0 · gamma(t) with auto γ0; 0 before the first step in that case)."""
        return focusing_gamma(self.gamma_schedule, self.gamma_t, self.auto_gamma0, self.gamma0)

    def epoch_end(self) -> None:
        """Advance the γ counter by one when ``gamma_unit == "epoch"`` (no-op for "step")."""
        if self.gamma_unit == "epoch":
            self.gamma_t += 1

    def train(self, mode: bool = True) -> "Replicated":
        """Training / evaluation mode of the replicas (BatchNorm, dropout), like nn.Module.train."""
        self._template.train(mode)
        return self

    # ----- gradients -----------------------------------------------------------------------
    def _loss_one(self, params, buffers, x, target):
        out = functional_call(self._template, {**params, **buffers}, (x,))
        return self.loss_fn(out, target)

    def _grads(self, inputs, targets):
        detached = {k: v.detach() for k, v in self.params.items()}
        if self.batched:
            return self._vgrad(detached, self.buffers, inputs, targets)
        # one gradient buffer kept across steps (a fresh one per step costs its page faults on the CPU)
        if getattr(self, "_grad_buf", None) is None or any(self._grad_buf[k].shape != v.shape or
                                                           self._grad_buf[k].dtype != v.dtype for k, v in detached.items()):
            self._grad_buf = {k: torch.empty_like(v) for k, v in detached.items()}
        grads = self._grad_buf
        losses = []
        for a in range(self.replicas):
            pa = {k: v[a].requires_grad_(True) for k, v in detached.items()}  # views: no copy of the weights
            ba = {k: v[a] for k, v in self.buffers.items()}  # views: BN updates land in the stack
            with torch.enable_grad():
                loss = self._loss_one(pa, ba, inputs[a], targets[a])
                gs = torch.autograd.grad(loss, list(pa.values()), allow_unused=True)
            for (k, p), g in zip(pa.items(), gs):
                grads[k][a] = 0.0 if g is None else g
            losses.append(loss.detach())
        return grads, torch.stack(losses)

    def step(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """One step of Algorithm 2 for all replicas; returns the y mini-batch losses."""
        y = self.replicas
        if not isinstance(inputs, torch.Tensor) or inputs.dim() < 1 or inputs.shape[0] != y:
            raise EntropicError(f"inputs must have leading dimension y={y}, got shape {tuple(getattr(inputs, 'shape', ()))}")
        if not isinstance(targets, torch.Tensor) or targets.dim() < 1 or targets.shape[0] != y:
            raise EntropicError(f"targets must have leading dimension y={y}, got shape {tuple(getattr(targets, 'shape', ()))}")
        grads, losses = self._grads(inputs, targets)
        self.grad_evals += y
        self.t += 1
        with torch.no_grad():
            if self.auto_gamma0 and self.gamma0 is None:
                self.gamma0 = float(auto_gamma0(losses, {k: v.detach() for k, v in self.params.items()}))
            couple = self.t % self.K == 0
            strength = self.K * self.gamma
            center = barycenter({k: v.detach() for k, v in self.params.items()}) if couple else None
            for k, p in self.params.items():
                g = grads[k]
                if couple and strength != 0.0:
                    g = g + coupling_grad(p.detach(), center[k], strength)
                p.grad = g
        self.optimizer.step()
        for p in self.params.values():
            p.grad = None
        if self.gamma_unit == "step":
            self.gamma_t += 1
        return losses.detach()

    # ----- measurements --------------------------------------------------------------------
    def center(self) -> dict:
        """Barycenter w̄ of the parameters, a dict name → tensor."""
        with torch.no_grad():
            return barycenter({k: v.detach() for k, v in self.params.items()})

    def distances(self) -> torch.Tensor:
        """d(w_a, w̄) = ½‖w_a − w̄‖² over all parameters, shape (y,) (Eq. 6)."""
        with torch.no_grad():
            return replica_distances({k: v.detach() for k, v in self.params.items()})

    def _module(self, params: dict, buffers: dict) -> nn.Module:
        device = next(iter(self.params.values())).device
        m = copy.deepcopy(self._template).to_empty(device=device)
        sd = {**{k: v.detach().clone() for k, v in params.items()},
              **{k: v.detach().clone() for k, v in buffers.items()}}
        m.load_state_dict(sd, strict=True)
        return m

    def replica_model(self, a: int) -> nn.Module:
        """Replica a as a standalone nn.Module (a copy)."""
        if not 0 <= a < self.replicas:
            raise EntropicError(f"replica index must lie in [0, {self.replicas}), got {a}")
        return self._module({k: v[a] for k, v in self.params.items()}, {k: v[a] for k, v in self.buffers.items()})

    def center_model(self, loader: Optional[Iterable] = None) -> nn.Module:
        """The barycenter w̄ as an nn.Module (the network the paper evaluates, Sec. 6).

        Float buffers (BatchNorm running statistics) are averaged over the replicas, integer
        ones (``num_batches_tracked``) take their maximum; with ``loader`` the BatchNorm
        statistics are recomputed for w̄ by a pass over it (:func:`recompute_bn_stats`).
        """
        bufs = {}
        for k, v in self.buffers.items():
            bufs[k] = v.float().mean(0).to(v.dtype) if v.is_floating_point() else v.max(0).values
        m = self._module(self.center(), bufs)
        if loader is not None:
            recompute_bn_stats(m, loader)
        return m

    # ----- checkpointing -------------------------------------------------------------------
    def state_dict(self) -> dict:
        return dict(
            params={k: v.detach().clone() for k, v in self.params.items()},
            buffers={k: v.clone() for k, v in self.buffers.items()},
            optimizer=self.optimizer.state_dict(),
            t=self.t, gamma_t=self.gamma_t, gamma0=self.gamma0, grad_evals=self.grad_evals, K=self.K,
        )

    def load_state_dict(self, sd: dict) -> None:
        try:
            params, buffers = sd["params"], sd["buffers"]
        except (KeyError, TypeError):
            raise EntropicError("state_dict is not a Replicated state (missing params/buffers)") from None
        if "K" in sd and int(sd["K"]) != self.K:  # the coupling steps t ≡ 0 mod K would move
            raise EntropicError(f"state_dict was saved with coupling period K = {sd['K']}, this Replicated has "
                                f"K = {self.K}")
        if set(params) != set(self.params) or set(buffers) != set(self.buffers):
            raise EntropicError("state_dict parameter names do not match this Replicated model")
        with torch.no_grad():
            for k, v in params.items():
                if v.shape != self.params[k].shape:
                    raise EntropicError(f"state_dict entry {k} has shape {tuple(v.shape)}, expected {tuple(self.params[k].shape)}")
                self.params[k].copy_(v)
            for k, v in buffers.items():
                self.buffers[k].copy_(v)
        self.optimizer.load_state_dict(sd["optimizer"])
        self.t = int(sd["t"])
        self.gamma_t = int(sd["gamma_t"])
        self.gamma0 = sd["gamma0"]
        self.grad_evals = int(sd["grad_evals"])
