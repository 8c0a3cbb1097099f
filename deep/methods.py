"""The training methods by name: how one step is taken, wrapping ``entropic``'s optimizers unchanged.

``make_method(config, factory, streams, ...)`` returns an object with the same small interface for
every method: ``step()`` (takes one step, reading its mini-batches from the streams; returns the
mini-batch loss at the weights being trained, a 0-d tensor), ``set_lr(lr)``, ``gamma``,
``eval_model()`` (the network that is evaluated and saved: for rSGD the centre w̄), ``modules()``
(the modules whose mode train/eval is switched), ``state_dict()`` / ``load_state_dict()``, and
``batches_per_step`` (mini-batches read per step, for the data accounting).

- ``sgd``: torch SGD (momentum, Nesterov, weight decay) or RMSprop.
- ``esgd``: :class:`entropic.EntropySGD` (000, Algorithm 1); its closure draws a fresh batch per call.
- ``rsgd`` / ``rsgd-xy``: :class:`entropic.Replicated` (y replicas on one device, Algorithm 2), or
  :class:`entropic.distributed.DistributedReplicated` (this process's replica) when distributed.
- ``pla`` / ``plea``: the base optimizer on :class:`entropic.PLA` / :class:`entropic.PLEA` (002, Eqs. 23, 22).
- ``sam``: :class:`entropic.SAM` around the base optimizer.

``hook`` (optional) is called after the first backward pass of each step, at the trained weights on a
fresh batch: the layer signal (002, Eq. 2) reads the gradients there.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

from localentropy.deep.errors import DeepError
from localentropy.entropic import PLA, PLEA, SAM, EntropySGD, Replicated, make_replicas
from localentropy.entropic.distributed import DistributedReplicated, build_replica
from localentropy.entropic.gauss import CounterNormal
from localentropy.entropic.noise import DEFAULT_SIZE, NoiseTable


def base_optimizer(config) -> tuple[type, dict]:
    """(torch optimizer class, keyword arguments) of the config's base optimizer, without ``params``."""
    if config.optimizer == "sgd":
        kw = dict(lr=config.lr, momentum=config.momentum, nesterov=config.nesterov, weight_decay=config.weight_decay)
        return torch.optim.SGD, (dict(kw, fused=True) if config.fused else kw)
    if config.optimizer == "rmsprop":
        return torch.optim.RMSprop, dict(lr=config.lr, alpha=config.rmsprop_alpha, eps=config.rmsprop_eps,
                                         momentum=config.momentum, weight_decay=config.weight_decay)
    raise DeepError(f"unknown optimizer {config.optimizer!r}")


def _set_lr(groups, lr: float) -> None:
    for g in groups:
        g["lr"] = lr


class Single:
    """SGD, PLA, PLEA, SAM: one network, one mini-batch per step."""

    batches_per_step = 1

    def __init__(self, config, model: nn.Module, stream: Callable, *, train_module: Optional[nn.Module] = None,
                 generator: Optional[torch.Generator] = None, hook: Optional[Callable] = None):
        self.method = config.method
        self.model = model  # the plain module (evaluated, saved)
        self.net = train_module if train_module is not None else model  # what runs forward (DDP wrapper)
        self.stream = stream
        self.hook = hook
        cls, kw = base_optimizer(config)
        if self.method == "sam":
            self.opt = SAM(model.parameters(), cls, rho=config.rho, **kw)
        else:
            self.opt = cls(model.parameters(), **kw)
        self.loss = None
        self.generator = generator
        if self.method in ("pla", "plea"):
            layers = [s.strip() for s in config.layers.split(",") if s.strip()] or None
            self.loss = (PLA if self.method == "pla" else PLEA)(model, nn.CrossEntropyLoss(), y=config.pla_y,
                                                                R=config.R, params=layers, generator=generator)

    gamma = float("nan")

    def set_lr(self, lr: float) -> None:
        _set_lr(self.opt.param_groups, lr)

    def step(self) -> torch.Tensor:
        x, t = self.stream()
        if self.method == "sam":
            first = [True]

            def closure():
                loss = F.cross_entropy(self.net(x), t)
                loss.backward()
                if first[0] and self.hook is not None:
                    self.hook()
                first[0] = False
                return loss.detach()

            return self.opt.step(closure)
        self.opt.zero_grad(set_to_none=True)
        if self.loss is not None:
            loss = self.loss(x, t)
            at_w = self.loss.last_losses[0]
        else:
            loss = F.cross_entropy(self.net(x), t)
            at_w = loss.detach()
        loss.backward()
        if self.hook is not None:
            self.hook()
        self.opt.step()
        return at_w

    def eval_model(self) -> nn.Module:
        return self.model

    def modules(self) -> list:
        return [self.model]

    def state_dict(self) -> dict:
        sd = {"model": self.model.state_dict(), "optimizer": self.opt.state_dict()}
        if self.generator is not None:
            sd["generator"] = self.generator.get_state()
        return sd

    def load_state_dict(self, sd: dict) -> None:
        self.model.load_state_dict(sd["model"])
        self.opt.load_state_dict(sd["optimizer"])
        if self.generator is not None:
            self.generator.set_state(sd["generator"])


class ESGD:
    """Entropy-SGD: each step is L SGLD steps on fresh mini-batches, then the outer update (Algorithm 1)."""

    def __init__(self, config, model: nn.Module, stream: Callable, gamma, auto_gamma0: bool, *,
                 train_module: Optional[nn.Module] = None, generator: Optional[torch.Generator] = None,
                 hook: Optional[Callable] = None):
        if config.optimizer != "sgd":
            raise DeepError(f"{config.name}: eSGD's loops are torch SGD; set optimizer=sgd (got {config.optimizer})")
        self.model, self.net, self.stream, self.hook = model, train_module or model, stream, hook
        self.batches_per_step = config.L
        noise_fn = None
        if config.esgd_noise != "normal":  # the noise source's seed, from the run's generator
            seed = int(torch.randint(2**62, (1,), generator=generator, device=generator.device)) if generator \
                else config.seed
        if config.esgd_noise == "counter":  # exact normals from (seed, counter); on the CPU the inner step is
            # one fused pass per parameter (entropic.gauss); the counter is saved by the optimizer
            noise_fn = CounterNormal(seed)
        elif config.esgd_noise == "table":  # offsets drawn on the CPU (no device sync per parameter), saved by
            # the optimizer as its generator; the table itself is a function of the seed (entropic.noise)
            generator = torch.Generator().manual_seed(seed)
            largest = max((p.numel() for p in model.parameters()), default=1)
            noise_fn = NoiseTable(config.seed + 1, generator, size=max(DEFAULT_SIZE, 4 * largest))
        self.opt = EntropySGD(model.parameters(), lr=config.lr, inner_lr=config.inner_lr, L=config.L, gamma=gamma,
                              noise=config.noise, alpha=config.alpha, momentum=config.momentum,
                              nesterov=config.nesterov, weight_decay=config.weight_decay, auto_gamma0=auto_gamma0,
                              model=model, generator=generator, noise_fn=noise_fn, fused=config.fused)

    @property
    def gamma(self) -> float:
        return self.opt.gamma

    def set_lr(self, lr: float) -> None:
        _set_lr(self.opt.param_groups, lr)

    def step(self) -> torch.Tensor:
        calls = [0]

        def closure():
            x, t = self.stream()
            loss = F.cross_entropy(self.net(x), t)
            loss.backward()
            if calls[0] == 0 and self.hook is not None:
                self.hook()
            calls[0] += 1
            return loss.detach()

        return self.opt.step(closure)

    def eval_model(self) -> nn.Module:
        return self.model

    def modules(self) -> list:
        return [self.model]

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "optimizer": self.opt.state_dict()}

    def load_state_dict(self, sd: dict) -> None:
        self.model.load_state_dict(sd["model"])
        self.opt.load_state_dict(sd["optimizer"])


class RSGD:
    """Replicated-SGD: y replicas, each on its own stream, coupled every K steps; the centre is evaluated.

    ``streams`` holds one stream per replica on one device (:class:`entropic.Replicated`), or this
    process's single stream when ``distributed`` (:class:`entropic.distributed.DistributedReplicated`,
    replica = rank). ``bn_loader()`` gives the batches that recompute the centre's BatchNorm statistics
    (used only when the model has BatchNorm).
    """

    def __init__(self, config, factory: Callable[[], nn.Module], streams: list, gamma, auto_gamma0: bool, *,
                 distributed: bool = False, rank: int = 0, bn_loader: Optional[Callable] = None, device="cpu"):
        self.streams, self.distributed, self.bn_loader = streams, distributed, bn_loader
        cls, kw = base_optimizer(config)
        common = dict(K=config.K, gamma=gamma, auto_gamma0=auto_gamma0,
                      optimizer=lambda params: cls(params, **kw))
        if distributed:
            models = [build_replica(factory, config.seed, rank).to(device)]
            self.rep = DistributedReplicated(models[0], **common)
            self.batches_per_step = 1
        else:
            models = [m.to(device) for m in make_replicas(factory, config.replicas, config.seed)]
            self.rep = Replicated(models, **common)
            self.batches_per_step = config.replicas
        if not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in models[0].modules()):
            self.bn_loader = None  # no running statistics to recompute for the centre
        self._center = None

    @property
    def gamma(self) -> float:
        return self.rep.gamma

    def set_K(self, K: int) -> None:
        self.rep.K = int(K)

    def set_lr(self, lr: float) -> None:
        _set_lr(self.rep.optimizer.param_groups, lr)

    def step(self) -> torch.Tensor:
        self._center = None
        if self.distributed:
            x, t = self.streams[0]()
            return self.rep.step(x, t)
        xs, ts = zip(*(s() for s in self.streams))
        return self.rep.step(torch.stack(xs), torch.stack(ts)).mean()

    def eval_model(self) -> nn.Module:
        """The centre w̄ (BatchNorm statistics recomputed on training batches when the model has any)."""
        if self._center is None:
            loader = self.bn_loader() if self.bn_loader is not None else None
            self._center = self.rep.center_model(loader)
        return self._center

    def modules(self) -> list:
        return [self.rep.model] if self.distributed else []

    def train(self, mode: bool) -> None:
        if not self.distributed:
            self.rep.train(mode)

    def state_dict(self) -> dict:
        return {"rep": self.rep.state_dict()}

    def load_state_dict(self, sd: dict) -> None:
        self.rep.load_state_dict(sd["rep"])
        self._center = None


__all__ = ["Single", "ESGD", "RSGD", "base_optimizer"]
