"""Figures of the committee pipeline's results (matplotlib, Agg backend), written atomically.

`plot_curves`: Φ_LE vs d, one line per restart (paper 000, Fig. 1 left); `plot_energies`: δE_train
vs σ, one line per restart and their mean (Fig. 1 centre). The image format follows the file's suffix.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from localentropy.committee.errors import CommitteeError
from localentropy.committee.tables import check_output_path
from localentropy.data.atomic import atomic_open


def _check_target(path) -> Path:
    path = check_output_path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    if fmt not in ("png", "pdf", "svg"):
        raise CommitteeError(f"{path}: figures are written as .png, .pdf or .svg")
    return path


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    try:
        with atomic_open(path) as fh:
            fig.savefig(fh, format=path.suffix.lstrip(".").lower() or "png", dpi=120)
    finally:
        plt.close(fig)
    return path


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(5.5, 4))


def plot_curves(curves, path) -> Path:
    """Φ_LE(d) vs d of a `pipeline.RestartCurves`, one line per restart; non-converged points and
    reported gaps (first-order jumps, points missing in between) break the line, never bridged."""
    path = _check_target(path)
    fig, ax = _figure()
    for r in curves.restarts:
        c = curves.curves.get(r)
        if c is None:
            continue
        gap_starts = {g["prior_delta_low"] for g in c.gaps}
        d, phi = [], []
        for j in range(len(c.prior_delta)):
            ok = bool(c.converged[j]) and math.isfinite(c.phi[j]) and c.d[j] > 0
            d.append(c.d[j] if ok else np.nan)
            phi.append(c.phi[j] if ok else np.nan)
            if ok and float(c.prior_delta[j]) in gap_starts:
                d.append(np.nan)
                phi.append(np.nan)
        ax.plot(d, phi, marker=".", label=f"restart {r}")
    ax.set_xscale("log")
    ax.set_xlabel("d = ½‖w − w̃‖²")
    ax.set_ylabel("Φ_LE(d) (per weight)")
    if curves.curves:
        ax.legend(fontsize="small")
    fig.tight_layout()
    return _save(fig, path)


def plot_energies(profiles, path) -> Path:
    """δE_train(σ) vs σ of an `EnergyProfiles`: one thin line per restart, their mean in black."""
    path = _check_target(path)
    fig, ax = _figure()
    d = np.asarray(profiles.delta_error)
    for r in range(d.shape[0]):
        ax.plot(profiles.sigmas, d[r], color="tab:blue", alpha=0.35, lw=0.8)
    ax.plot(profiles.sigmas, d.mean(0), color="black", marker=".", label=f"mean of {d.shape[0]} restart(s)")
    ax.set_xlabel("σ (relative noise, Eq. 4)")
    ax.set_ylabel("δE_train(σ)")
    ax.legend(fontsize="small")
    fig.tight_layout()
    return _save(fig, path)
