"""Learning-rate and focusing schedules of the deep-net recipes (paper 000, App. C) as data.

Every schedule is an :class:`entropic.Schedule` of the budget clock t (baseline epochs, fractional
within an epoch; see :mod:`deep.presets`): multi-step drops, "×0.97 every 2 epochs", cosine annealing,
and a linear warm-up in front of any of them. ``lr_schedule(config)`` builds the one a config asks for;
``gamma_schedule(config, total_steps)`` the focusing protocol γ(step) of eSGD or rSGD.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from localentropy.entropic import Constant, Cosine, Exponential, Schedule
from localentropy.deep.errors import DeepError


@dataclass(frozen=True)
class MultiStep(Schedule):
    """x0 · decay^(number of milestones ≤ t): "lr 0.01, ÷10 at epochs 150 and 225"."""

    x0: float
    milestones: tuple
    decay: float = 0.1

    def value(self, t: float) -> float:
        return self.x0 * self.decay ** sum(1 for m in self.milestones if t >= m)


@dataclass(frozen=True)
class StepExponential(Schedule):
    """x0 · decay^⌊t / every⌋: "lr 0.01 decays by 0.97 every 2 epochs" (EfficientNet-B0)."""

    x0: float
    decay: float
    every: float

    def value(self, t: float) -> float:
        return self.x0 * self.decay ** math.floor(t / self.every + 1e-9)


@dataclass(frozen=True)
class CosineAnnealing(Schedule):
    """x0 · (1 + cos(π t / t_total)) / 2, one annealing cycle from x0 to 0 (PyramidNet)."""

    x0: float
    t_total: float

    def value(self, t: float) -> float:
        return self.x0 * 0.5 * (1.0 + math.cos(math.pi * min(max(t / self.t_total, 0.0), 1.0)))


@dataclass(frozen=True)
class Warmup(Schedule):
    """Linear from ``start`` to ``then(t_warm)`` over [0, t_warm), then ``then(t)`` (ResNet-110's 0.01 → 0.1)."""

    start: float
    t_warm: float
    then: Schedule

    def value(self, t: float) -> float:
        if t >= self.t_warm:
            return self.then.value(t)
        return self.start + (self.then.value(self.t_warm) - self.start) * t / self.t_warm


def lr_schedule(config) -> Schedule:
    """The learning rate as a function of the budget clock (baseline epochs), from a TrainConfig."""
    c = config
    if c.lr_schedule == "constant":
        s = Constant(c.lr)
    elif c.lr_schedule == "multistep":
        s = MultiStep(c.lr, tuple(c.milestones), c.lr_decay)
    elif c.lr_schedule == "exponential":
        s = StepExponential(c.lr, c.lr_decay, c.lr_every)
    elif c.lr_schedule == "cosine":
        s = CosineAnnealing(c.lr, c.epochs)
    else:
        raise DeepError(f"unknown lr_schedule {c.lr_schedule!r}")
    return Warmup(c.warmup_lr, c.warmup_epochs, s) if c.warmup_epochs > 0 else s


def gamma_schedule(config, total_steps: int) -> tuple[Schedule, bool]:
    """(γ schedule of the step counter, auto γ0?) for eSGD or rSGD (000, Sec. 4 and App. C).

    eSGD: γ0 (1 + γ1)^t, γ1 given or chosen so that γ grows ×10 by the last step; γ0 = None is the
    automatic choice (then the schedule is relative). rSGD: γ grows ×``gamma_growth`` over training from
    γ0 (automatic when None), or cosine focusing 0 → γmax (PyramidNet).
    """
    c = config
    total = max(int(total_steps), 1)
    if c.method == "esgd":
        auto = c.esgd_gamma0 is None
        g0 = 1.0 if auto else c.esgd_gamma0
        if c.esgd_gamma1 is not None:
            return Exponential(g0, c.esgd_gamma1), auto
        return Exponential.from_growth(g0, 10.0, total), auto
    if c.gamma_schedule == "cosine":
        return Cosine(0.0, c.gamma_max, total), False
    auto = c.rsgd_gamma0 is None
    g0 = 1.0 if auto else c.rsgd_gamma0
    if g0 == 0:
        return Constant(0.0), False
    return Exponential.from_growth(g0, c.gamma_growth, total), auto


__all__ = ["MultiStep", "StepExponential", "CosineAnnealing", "Warmup", "lr_schedule", "gamma_schedule"]
