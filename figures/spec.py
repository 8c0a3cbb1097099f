"""What each figure of paper 000 compares: its settings, restarts, grids and the quick preview.

Figure 1 (Sec. 5, App. B.1): the five committee settings sgd-fast, sgd-slow, rsgd-fast, rsgd-slow,
esgd. Figure 6 (App. B.3): sgd-fast with dropout probabilities p on the hidden units' inputs.

``--quick`` is a preview, not the paper's settings: few restarts, and time rescaled by a factor f
per setting: every growing schedule x(t) = x0 (1 + x1)^t (β, ω, γ) runs f times faster,
x1 → (1 + x1)^f − 1, so that x_quick(t) = x(f t), and one rate is multiplied by f so that a quick
epoch does the work of f epochs of the paper's run: the learning rate η (with the schedules alone
faster, β and ω outrun learning and sgd-slow restarts freeze before they stop), except for
rsgd-slow, whose η = 1e-3 is already the largest of the settings: there the coupling γ0 (its stop
epoch is set by ∫ηγ dt). The factors and rates were measured (3 restarts, seed 0, training errors
out of 500): rsgd-slow at f = 100 collapses its replicas at 32–92 errors, at f = 20 at 3–27 (with η
× 20 at 61–87), at f = 10 at 0–1; rsgd-fast at f = 10 ends at 2–4 errors with γ0 × 10, at 0–1 with
η × 10; eSGD at f = 20 keeps 0–3 errors, as its paper-setting solutions do (up to 3 of the 250 in
Figure 1). ``max_epochs`` is divided by f. The summary states the factors.

Training runs the trainers with shared mini-batch sequences (replica a of every restart reads
sequence a: a step is a few large GEMMs; a restart's result does not depend on which others share
its batch) in float32 for SGD and eSGD and float64 for rSGD, whose late coupling steps are below
float32's resolution (``train_options``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from localentropy.bp.curve import default_deltas
from localentropy.committee.presets import CommitteePreset, get_preset
from localentropy.figures.errors import FigureError

FIGURE1_SETTINGS = ("sgd-fast", "sgd-slow", "rsgd-fast", "rsgd-slow", "esgd")
FIGURE6_DROPOUTS = (0.0, 0.1, 0.2, 0.3, 0.5)
#: quick preview: schedule speed-up per setting (x(t) → x(f t)) and restarts per setting
QUICK_TIME_SCALE = {"sgd-fast": 1.0, "sgd-slow": 6.0, "rsgd-fast": 10.0, "rsgd-slow": 10.0, "esgd": 20.0}
#: the rate multiplied by f in the quick preview, per setting (module docstring)
QUICK_RATE = {"sgd-fast": "eta", "sgd-slow": "eta", "rsgd-fast": "eta", "rsgd-slow": "gamma0", "esgd": "eta"}
QUICK_RESTARTS = 3
SIGMAS = tuple(np.round(np.linspace(0.0, 0.5, 11), 12))  # relative noise σ of Eq. 4
DRAWS = 200
SOFT_BETA = 10.0  # the second treatment of misclassified patterns: one finite β for every setting
SAMPLED_POINTS = 16  # prior widths of a sampled curve: Δ_j = (j/16)², the range of BP's 30-point grid


@dataclass(frozen=True)
class Setting:
    """One compared group of a figure: a label and the full training preset."""

    label: str
    preset: CommitteePreset
    time_scale: float = 1.0


@dataclass(frozen=True)
class FigureSpec:
    name: str  # "1" or "6"
    settings: tuple
    restarts: int  # solutions (converged restarts) per setting
    seed: int
    sigmas: tuple
    draws: int
    deltas: tuple
    quick: bool
    soft_beta: float = SOFT_BETA
    #: panel (a)'s estimators (committee.curves.METHODS): the first is the figure's Φ_LE (the claims, the
    #: correlation); the others are drawn dashed beside it and their claims and bias reported
    curve_methods: tuple = ("is", "auto")
    sampled_deltas: tuple = tuple(default_deltas(SAMPLED_POINTS))  # the samplers' grid (cost ∝ points)
    max_tries_factor: int = 4  # at most this many restarts tried per wanted solution

    def as_dict(self) -> dict:
        return {"figure": self.name, "restarts": self.restarts, "seed": self.seed, "quick": self.quick,
                "sigmas": list(self.sigmas), "draws": self.draws, "deltas": list(self.deltas),
                "soft_beta": self.soft_beta, "curve_methods": list(self.curve_methods),
                "sampled_deltas": list(self.sampled_deltas),
                "settings": [{"label": s.label, "time_scale": s.time_scale, **s.preset.as_dict()} for s in self.settings]}


def shortened(preset: CommitteePreset, factor: float) -> CommitteePreset:
    """The preset with time rescaled by ``factor``: schedules x(t) → x(f t), and η (γ0 for rsgd-slow)
    → f times itself (module docstring)."""
    if not (math.isfinite(factor) and factor >= 1):
        raise FigureError(f"time scale must be ≥ 1, got {factor}")
    if factor == 1:
        return preset
    grow = {k: float((1 + getattr(preset, k)) ** factor - 1) for k in ("beta1", "omega1", "gamma1")}
    rate = QUICK_RATE.get(preset.name, "eta")
    grow[rate] = getattr(preset, rate) * factor
    return dataclasses.replace(preset, max_epochs=max(1, math.ceil(preset.max_epochs / factor)), **grow)


def train_options(preset: CommitteePreset) -> dict:
    """How the recipe runs the trainer for a setting: shared batches; float32, but float64 for rSGD."""
    import torch

    return {"shared_batches": True, "dtype": torch.float64 if preset.algorithm == "rsgd" else torch.float32}


def figure_spec(name: str, *, quick: bool = False, restarts: int | None = None, seed: int = 0,
                dropouts=None, draws: int | None = None, curve_methods=None) -> FigureSpec:
    """The settings of Figure ``name`` ("1" or "6"), full or ``quick``; ``curve_methods``: panel (a)'s
    estimators, the figure's own first (default ``FigureSpec.curve_methods``)."""
    from localentropy.committee.curves import METHODS

    name = str(name)
    if curve_methods is not None:
        curve_methods = tuple(curve_methods)
        bad = [m for m in curve_methods if m not in METHODS]
        if bad or not curve_methods or len(set(curve_methods)) != len(curve_methods):
            raise FigureError(f"curve methods {list(curve_methods)}: need distinct ones of {', '.join(METHODS)}")
        if "ep" in curve_methods or "hmc" in curve_methods:
            raise FigureError("a figure's curves need the soft treatment too: 'ep' and 'hmc' compute the hard one only")
    if restarts is not None and (int(restarts) != restarts or restarts < 1):
        raise FigureError(f"--restarts must be a positive integer, got {restarts}")
    if int(seed) != seed or seed < 0:
        raise FigureError(f"--seed must be a non-negative integer, got {seed}")
    if name == "1":
        if dropouts is not None:
            raise FigureError("--dropout belongs to figure 6")
        base = [(s, get_preset(s)) for s in FIGURE1_SETTINGS]
    elif name == "6":
        ps = FIGURE6_DROPOUTS if dropouts is None else tuple(dropouts)
        if not ps or any(not (0 <= p < 1) for p in ps) or len(set(ps)) != len(ps):
            raise FigureError(f"--dropout: need distinct probabilities in [0, 1), got {list(ps)}")
        base = [(f"sgd-fast p={p:g}", get_preset("sgd-fast", dropout=float(p))) for p in ps]
    else:
        raise FigureError(f"unknown figure {name!r}; available: 1, 6")
    settings = []
    for label, preset in base:
        f = QUICK_TIME_SCALE[preset.name] if quick else 1.0
        settings.append(Setting(label, shortened(preset, f), f))
    n = restarts if restarts is not None else (QUICK_RESTARTS if quick else 50)
    if draws is not None and (int(draws) != draws or draws < 2):
        raise FigureError(f"--draws must be an integer ≥ 2, got {draws}")
    if curve_methods is None and quick:  # the preview: the default estimator only, to stay within minutes
        curve_methods = ("is",)
    extra = {} if curve_methods is None else {"curve_methods": curve_methods}
    return FigureSpec(name=name, settings=tuple(settings), restarts=int(n), seed=int(seed), sigmas=SIGMAS,
                      draws=int(draws or (100 if quick else DRAWS)), deltas=tuple(default_deltas()), quick=quick,
                      **extra)


def parse_restart_ids(text: str) -> list[int]:
    """'0-24' → 0..24, '3,5,9' → those, '0-4,10' → both forms; distinct non-negative integers."""
    ids = []
    try:
        for part in str(text).split(","):
            part = part.strip()
            if not part:
                continue
            if "-" in part:
                lo, hi = (int(t) for t in part.split("-", 1))
                if hi < lo:
                    raise ValueError
                ids.extend(range(lo, hi + 1))
            else:
                ids.append(int(part))
    except ValueError:
        raise FigureError(f"--restart-ids {text!r}: expected ranges like 0-24 or a comma list") from None
    if not ids or min(ids) < 0 or len(set(ids)) != len(ids):
        raise FigureError(f"--restart-ids {text!r}: need distinct non-negative restart ids")
    return sorted(ids)


def shard_ids(shard: str, restarts: int) -> list[int]:
    """'i/n' → the i-th of n near-equal consecutive ranges of restart ids 0..restarts−1 (i from 1)."""
    try:
        i, n = (int(t) for t in str(shard).split("/"))
    except ValueError:
        raise FigureError(f"--shard {shard!r}: expected i/n, e.g. 1/2") from None
    if not (n >= 1 and 1 <= i <= n):
        raise FigureError(f"--shard {shard!r}: need 1 ≤ i ≤ n")
    bounds = np.linspace(0, restarts, n + 1).round().astype(int)
    ids = list(range(bounds[i - 1], bounds[i]))
    if not ids:
        raise FigureError(f"--shard {shard}: no restarts in this shard of {restarts}")
    return ids
