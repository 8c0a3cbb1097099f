"""Schedules as data: γ (focusing), β, ω and the like as functions of a step or epoch counter t.

Paper 000 writes every growing hyper-parameter as x(t) = x0 (1 + x1)^t (App. B.1, App. C); the
PyramidNet runs use cosine focusing. A schedule is a small immutable object with ``value(t)``
(also ``schedule(t)``) and a readable ``repr``, so trainers take schedules, not formulas.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

from localentropy.entropic.errors import EntropicError


def _finite(name: str, x: float) -> float:
    x = float(x)
    if not math.isfinite(x):
        raise EntropicError(f"schedule parameter {name} must be finite, got {x}")
    return x


class Schedule:
    """A hyper-parameter as a function of the counter t ≥ 0 (steps or epochs, the caller's choice)."""

    def value(self, t: float) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, t: float) -> float:
        return self.value(t)


@dataclass(frozen=True)
class Constant(Schedule):
    """x(t) = x0."""

    x0: float

    def __post_init__(self):
        _finite("x0", self.x0)

    def value(self, t: float) -> float:
        return float(self.x0)


@dataclass(frozen=True)
class Exponential(Schedule):
    """x(t) = x0 · (1 + x1)^t, the paper's γ(t) = γ0(1 + γ1)^t (000, Sec. 4 and App. B.1).

    ``Exponential.from_growth(x0, factor, t_total)`` picks x1 so that x(t_total) = factor · x0,
    as in "γ growing ×10 over training" (App. C).
    """

    x0: float
    x1: float = 0.0

    def __post_init__(self):
        _finite("x0", self.x0)
        if not _finite("x1", self.x1) > -1.0:
            raise EntropicError(f"schedule rate x1 must be > -1, got {self.x1}")

    @classmethod
    def from_growth(cls, x0: float, factor: float, t_total: float) -> "Exponential":
        if not factor > 0:
            raise EntropicError(f"growth factor must be > 0, got {factor}")
        if not t_total > 0:
            raise EntropicError(f"t_total must be > 0, got {t_total}")
        return cls(x0, factor ** (1.0 / t_total) - 1.0)

    def value(self, t: float) -> float:
        return float(self.x0) * (1.0 + float(self.x1)) ** float(t)


@dataclass(frozen=True)
class Cosine(Schedule):
    """x(t) = x_min + (x_max − x_min) · (1 − cos(π t / t_total)) / 2, then x_max for t ≥ t_total.

    Cosine focusing of the PyramidNet runs (000, App. C): γ rises smoothly from x_min to x_max.
    """

    x_min: float
    x_max: float
    t_total: float

    def __post_init__(self):
        _finite("x_min", self.x_min)
        _finite("x_max", self.x_max)
        if not _finite("t_total", self.t_total) > 0:
            raise EntropicError(f"cosine schedule needs t_total > 0, got {self.t_total}")

    def value(self, t: float) -> float:
        frac = min(max(float(t) / float(self.t_total), 0.0), 1.0)
        return float(self.x_min) + (float(self.x_max) - float(self.x_min)) * 0.5 * (1.0 - math.cos(math.pi * frac))


# Focusing (paper 000, Sec. 4): γ as a schedule, shared by EntropySGD, Replicated and DistributedReplicated.


def as_schedule(gamma, name: str = "gamma") -> Schedule:
    """A float or a Schedule as a Schedule of non-negative, finite values (checked at t = 0)."""
    if isinstance(gamma, Schedule):
        sched = gamma
    elif isinstance(gamma, (int, float)) and not isinstance(gamma, bool):
        if not (math.isfinite(float(gamma)) and gamma >= 0):
            raise EntropicError(f"{name} must be finite and >= 0, got {gamma}")
        sched = Constant(float(gamma))
    else:
        raise EntropicError(f"{name} must be a float or an entropic Schedule, got {gamma!r}")
    g0 = sched.value(0)
    if not (math.isfinite(g0) and g0 >= 0):
        raise EntropicError(f"{name} must be finite and >= 0, got {name}(0) = {g0}")
    return sched


def focusing_gamma(schedule: Schedule, t: int, auto_gamma0: bool = False, gamma0: Optional[float] = None) -> float:
    """γ(t) of the focusing protocol (Sec. 4): schedule(t), or γ0 · schedule(t) with auto γ0 (App. C),
    0 until γ0 has been set at the first step. Shared by eSGD and both rSGD versions."""
    g = schedule.value(t)
    if auto_gamma0:
        return 0.0 if gamma0 is None else gamma0 * g
    return g
