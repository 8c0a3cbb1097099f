"""The five committee-machine settings of paper 000, App. B.1, as frozen dataclasses in a registry.

Numbers are the paper's (App. B.1). Conventions the paper leaves open, fixed here
(see ``committee.train`` for the reasoning):

- Units: each hidden unit is trained as its direction u_h = w_h/√N (unit norm, λ_h = u_h·ξ) and
  saved as w_h = √N u_h. Algorithms 1 and 2 and the stop distances are applied in these u units.
- The gradient is that of the mini-batch loss summed over its patterns (f of Eq. 8 per pattern);
  the stop rule "loss < 1e-7" uses the mean over the whole training set (Eq. 8's expectation).
- rSGD: replicas couple every ``coupling_period`` = 1 steps (Algorithm 2's K, called
  ``coupling_period`` here because K is the number of hidden units; first coupling at step K, as in
  the paper); the paper gives none for the committee. eSGD: α = 0.75 (Chaudhari et al. 2019, as in App. C); none given for the committee.
- One epoch is ceil(P/B) updates of the trained variable: SGD steps, rSGD steps of every replica
  (each replica sees the data once), eSGD outer iterations (each of L inner mini-batches).
- ``max_epochs`` is a guard, not a paper number: a restart that has not met its stop rule by then
  is saved as "not converged". Sized from the schedules: rSGD's coupling contracts the replicas
  by η·γ(t) per step, so reaching d ~ 1e-8 from d ~ 3 needs 5·η·Σ_t γ(t) ≈ 18, about 5 300 epochs
  for rsgd-fast and 8e4 for rsgd-slow. Measured epochs to stop: benchmarks/results/epochs_to_stop.md.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, fields

from localentropy.committee.errors import CommitteeError
from localentropy.committee_sign import check_odd_K

ALGORITHMS = ("sgd", "rsgd", "esgd")
STOP_RULES = {
    "zero_error": "first epoch with zero training error (exact sign network)",
    "loss": "mean training loss f (Eq. 8, current β and ω) below stop_threshold",
    "replica_distance": "max over replicas of d(u_a, ū) = ½‖u_a − ū‖² below stop_threshold",
    "esgd_distance": "d(w, μ) = ½‖u − μ‖² below stop_threshold",
}


@dataclass(frozen=True)
class CommitteePreset:
    """Every hyper-parameter of one training setting (App. B.1); all overridable by name."""

    name: str
    algorithm: str
    eta: float  # η, learning rate (outer one for eSGD)
    beta0: float  # β(t) = β0 (1+β1)^t, t in epochs: tanh(β·) surrogate of the hidden signs
    beta1: float
    omega0: float  # ω(t) = ω0 (1+ω1)^t: loss scale of Eq. 8
    omega1: float
    gamma0: float = 0.0  # γ(t) = γ0 (1+γ1)^t: replica coupling (rSGD) or SGLD elastic term (eSGD)
    gamma1: float = 0.0
    replicas: int = 1  # y (rSGD)
    coupling_period: int = 1  # Algorithm 2's K (rSGD)
    inner_steps: int = 1  # L (eSGD)
    inner_lr: float = 0.0  # η′ (eSGD)
    noise: float = 0.0  # ε (eSGD): SGLD noise √η′ ε N(0, I)
    alpha: float = 0.75  # α (eSGD): weight of the old μ in μ ← αμ + (1−α)w′
    batch_size: int = 100
    K: int = 9
    dropout: float = 0.0  # probability of dropping each input of the hidden units (Figure 6)
    stop: str = "zero_error"
    stop_threshold: float = 0.0
    max_epochs: int = 10_000

    def __post_init__(self):
        def bad(what):
            raise CommitteeError(f"preset {self.name!r}: {what}")

        if self.algorithm not in ALGORITHMS:
            bad(f"algorithm must be one of {', '.join(ALGORITHMS)}, got {self.algorithm!r}")
        if self.stop not in STOP_RULES:
            bad(f"stop must be one of {', '.join(STOP_RULES)}, got {self.stop!r}")
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, float) and not math.isfinite(v):
                bad(f"{f.name} must be finite, got {v}")
        for name in ("eta", "beta0", "omega0"):
            if not getattr(self, name) > 0:
                bad(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("beta1", "omega1", "gamma1"):
            if not getattr(self, name) > -1:
                bad(f"{name} must be > -1, got {getattr(self, name)}")
        for name in ("gamma0", "inner_lr", "noise", "stop_threshold"):
            if getattr(self, name) < 0:
                bad(f"{name} must be ≥ 0, got {getattr(self, name)}")
        try:
            check_odd_K(self.K, CommitteeError)
        except CommitteeError as exc:
            bad(str(exc))
        if self.batch_size < 1:
            bad(f"batch_size must be ≥ 1, got {self.batch_size}")
        if not 0.0 <= self.dropout < 1.0:
            bad(f"dropout must be in [0, 1), got {self.dropout}")
        if not 0.0 <= self.alpha < 1.0:
            bad(f"alpha must be in [0, 1), got {self.alpha}")
        if self.max_epochs < 1:
            bad(f"max_epochs must be ≥ 1, got {self.max_epochs}")
        if self.coupling_period < 1 or self.inner_steps < 1 or self.replicas < 1:
            bad("coupling_period, inner_steps and replicas must be ≥ 1")
        if self.algorithm == "rsgd" and self.replicas < 2:
            bad(f"rSGD needs at least 2 replicas, got {self.replicas}")
        if self.algorithm == "esgd" and not self.inner_lr > 0:
            bad(f"eSGD needs inner_lr > 0, got {self.inner_lr}")
        if self.stop == "replica_distance" and self.algorithm != "rsgd":
            bad("stop rule replica_distance needs algorithm rsgd")
        if self.stop == "esgd_distance" and self.algorithm != "esgd":
            bad("stop rule esgd_distance needs algorithm esgd")

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    def override(self, **changes) -> "CommitteePreset":
        """A copy with some fields changed; values may be strings (CLI ``--set``), coerced to the field type."""
        types = {f.name: f.type for f in fields(self)}
        coerced = {}
        for key, value in changes.items():
            if key not in types or key == "name":
                raise CommitteeError(
                    f"unknown hyper-parameter {key!r} for preset {self.name!r}; known: "
                    + ", ".join(k for k in types if k != "name")
                )
            coerced[key] = _coerce(key, value, type(getattr(self, key)))
        return dataclasses.replace(self, **coerced)


def _coerce(key, value, typ):
    if isinstance(value, str):
        try:
            if typ is int:
                f = float(value)
                if f != int(f):
                    raise ValueError
                return int(f)
            if typ is float:
                return float(value)
            return value
        except ValueError:
            raise CommitteeError(f"hyper-parameter {key}={value!r} is not a valid {typ.__name__}") from None
    if typ is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if typ is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if typ is str and isinstance(value, str):
        return value
    raise CommitteeError(f"hyper-parameter {key}={value!r} must be a {typ.__name__}")


PRESETS: dict[str, CommitteePreset] = {
    p.name: p
    for p in (
        CommitteePreset("sgd-fast", "sgd", eta=2e-4, beta0=2.0, beta1=1e-4, omega0=5.0, omega1=0.0,
                        stop="zero_error", stop_threshold=0.0, max_epochs=5_000),
        CommitteePreset("sgd-slow", "sgd", eta=3e-5, beta0=0.5, beta1=1e-3, omega0=0.5, omega1=1e-3,
                        stop="loss", stop_threshold=1e-7, max_epochs=20_000),
        CommitteePreset("rsgd-fast", "rsgd", eta=1e-4, beta0=1.0, beta1=2e-4, omega0=0.5, omega1=1e-3,
                        gamma0=2e-3, gamma1=2e-3, replicas=10,
                        stop="replica_distance", stop_threshold=1e-8, max_epochs=20_000),
        CommitteePreset("rsgd-slow", "rsgd", eta=1e-3, beta0=1.0, beta1=2e-4, omega0=0.5, omega1=1e-3,
                        gamma0=1e-4, gamma1=1e-4, replicas=10,
                        stop="replica_distance", stop_threshold=1e-8, max_epochs=200_000),
        CommitteePreset("esgd", "esgd", eta=1e-3, beta0=1.0, beta1=1e-4, omega0=0.5, omega1=5e-4,
                        gamma0=10.0, gamma1=5e-5, inner_steps=20, inner_lr=5e-3, noise=1e-6, alpha=0.75,
                        stop="esgd_distance", stop_threshold=1e-8, max_epochs=50_000),
    )
}


def get_preset(name: str, **overrides) -> CommitteePreset:
    """The named setting, with any overrides applied (``get_preset("sgd-fast", eta="1e-3")``)."""
    if name not in PRESETS:
        raise CommitteeError(f"unknown setting {name!r}; known: {', '.join(PRESETS)}")
    return PRESETS[name].override(**overrides) if overrides else PRESETS[name]


def parse_overrides(items) -> dict:
    """``["eta=1e-3", "replicas=5"]`` → ``{"eta": "1e-3", "replicas": "5"}`` (CLI ``--set``)."""
    out = {}
    for item in items or ():
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip() or not value.strip():
            raise CommitteeError(f"--set expects name=value, got {item!r}")
        out[key.strip()] = value.strip()
    return out
