"""The result tables of the committee pipeline, one writer per table, each a CSV that loads as numbers.

Every column holds one kind of value: integers, floats, 0/1 flags, or (only the curves table's
``method``) a short word. Summary rows never share a table with per-restart rows: the mean over
restarts has its own table (``write_energy_summary``).

Floats are written with 12 significant digits (``format(x, ".12g")``; NaN as ``nan``): every
quantity here is known to far fewer digits (BP converges to 1e-7, the local energy is a sampled
mean), and 12 digits drop the binary-rounding tails of grid values (0.30000000000000004 → 0.3).
The grids themselves are computed as the floats nearest their intended decimal values
(``pipeline.sigma_grid``), so a value read back from a table equals the one the computation used
to the precision of the table.

Each writer checks that the output folder exists, then writes atomically (``data.atomic``): a
failed or interrupted write leaves no file and an existing file untouched.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from localentropy.committee.errors import CommitteeError
from localentropy.data.atomic import atomic_open

#: columns of the curves table (`write_curves_table`)
CURVE_COLUMNS = ("restart", "prior_delta", "d", "delta", "phi", "phi_ball", "phi_G", "converged", "phi_G_se",
                 "phi_se", "ess", "method")
#: columns of the per-restart local-energy table (`write_energy_table`)
ENERGY_COLUMNS = ("restart", "sigma", "delta_error", "delta_error_se", "error0")
#: columns of the local-energy summary table (`write_energy_summary`)
ENERGY_SUMMARY_COLUMNS = ("sigma", "delta_error_mean", "delta_error_se", "restarts")
#: columns of the errors table (`write_errors_table`)
ERROR_COLUMNS = ("restart", "converged", "epochs", "train_error", "test_error")


def format_value(v) -> str:
    """One CSV cell: bool → 1/0, int → digits, float → 12 significant digits (nan, inf), None → empty."""
    if v is None:
        return ""
    if isinstance(v, (bool, np.bool_)):
        return "1" if v else "0"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        x = float(v)
        if math.isnan(x):
            return "nan"
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
        return format(x, ".12g")
    return str(v)


def check_output_path(path) -> Path:
    """``path`` as a Path, if it names a file in an existing folder (shared by tables and plots)."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise CommitteeError(f"{path}: folder {folder} does not exist")
    if path.is_dir():
        raise CommitteeError(f"{path}: is a folder, expected a file name")
    return path


def write_table(path, columns: Sequence[str], rows: Iterable[dict]) -> Path:
    """Write ``rows`` (dicts with every name in ``columns``) as CSV, atomically. Returns the path."""
    path = check_output_path(path)
    with atomic_open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(columns)
        for row in rows:
            w.writerow([format_value(row[c]) for c in columns])
    return path


def _at(curve, name: str, j: int) -> float:
    """A sampled curve's per-point statistic (standard errors, ESS); nan for BP's curves, which have none."""
    values = getattr(curve, name, None)
    return math.nan if values is None else float(values[j])


def curve_rows(curves) -> list[dict]:
    """Rows of the curves table from a `pipeline.RestartCurves` (restarts in order, Δ increasing)."""
    rows = []
    for r in curves.restarts:
        c = curves.curves.get(r)
        if c is None:
            continue
        for j in range(len(c.prior_delta)):
            rows.append({"restart": r, "prior_delta": c.prior_delta[j], "d": c.d[j], "delta": c.delta[j],
                         "phi": c.phi[j], "phi_ball": c.phi_ball[j], "phi_G": c.phi_G[j],
                         "converged": bool(c.converged[j]), "method": c.methods[j],
                         "phi_G_se": _at(c, "phi_G_se", j), "phi_se": _at(c, "phi_se", j), "ess": _at(c, "ess", j)})
    return rows


def write_curves_table(path, curves) -> Path:
    """The curves table: one row per (restart, prior width Δ) of a `pipeline.RestartCurves`.

    Columns: ``restart`` (index in the solutions file); ``prior_delta`` (Δ, the variance per weight
    of BP's Gaussian prior around the reference); ``d`` (½‖w − w̃‖² over all K·N weights, the typical
    distance to the reference w̃ of the weights BP weighs at this Δ); ``delta`` (d per weight, δ = d/(K·N)); ``phi`` (shell local
    entropy Φ_LE(d), per weight); ``phi_ball`` (ball version, per weight); ``phi_G`` (Gaussian-prior
    free entropy φ_G(Δ), per weight); ``converged`` (1 if BP converged at this Δ; otherwise 0 and the
    numbers are nan); ``method`` (what produced the point: ``is`` or ``hmc`` for the samplers, ``amp`` or
    ``edge`` for BP; empty where the point was skipped); ``phi_G_se``, ``phi_se`` (the samplers' standard
    errors of phi_G and phi; nan for BP and EP); ``ess`` (the importance sampler's effective sample size;
    nan otherwise).
    """
    return write_table(path, CURVE_COLUMNS, curve_rows(curves))


def energy_rows(profiles) -> Iterator[dict]:
    """Rows of the per-restart local-energy table from a `committee.evaluate.EnergyProfiles`."""
    for r in range(profiles.delta_error.shape[0]):
        for j, s in enumerate(profiles.sigmas):
            yield {"restart": r, "sigma": s, "delta_error": profiles.delta_error[r, j],
                   "delta_error_se": profiles.delta_error_se[r, j], "error0": profiles.error0[r]}


def write_energy_table(path, profiles) -> Path:
    """The local-energy table: one row per (restart, σ) of an `EnergyProfiles`.

    Columns: ``restart``; ``sigma`` (relative noise σ of paper 000's Eq. 4: each weight is multiplied
    by 1 + σz, z standard normal); ``delta_error`` (δE_train(w, σ) = E_z E_train(w + σ z ⊙ w) − E_train(w),
    mean over the draws); ``delta_error_se`` (its standard error over the draws); ``error0``
    (E_train(w), the unperturbed training error).
    """
    return write_table(path, ENERGY_COLUMNS, energy_rows(profiles))


def energy_summary_rows(profiles) -> list[dict]:
    """Mean over restarts per σ; the standard error is across restarts (over draws if there is one)."""
    d = np.asarray(profiles.delta_error)
    R = d.shape[0]
    rows = []
    for j, s in enumerate(profiles.sigmas):
        col = d[:, j]
        se = float(col.std(ddof=1) / math.sqrt(R)) if R > 1 else float(profiles.delta_error_se[0, j])
        rows.append({"sigma": s, "delta_error_mean": float(col.mean()), "delta_error_se": se, "restarts": R})
    return rows


def write_energy_summary(path, profiles) -> Path:
    """The local-energy summary table: one row per σ.

    Columns: ``sigma``; ``delta_error_mean`` (δE_train(σ) averaged over the restarts);
    ``delta_error_se`` (standard error of that mean across restarts; with one restart, over its draws);
    ``restarts`` (how many restarts the mean is over).
    """
    return write_table(path, ENERGY_SUMMARY_COLUMNS, energy_summary_rows(profiles))


def error_rows(errors) -> list[dict]:
    """Rows of the errors table from a `pipeline.SolutionErrors`."""
    return [{"restart": r, "converged": None if errors.converged is None else bool(errors.converged[i]),
             "epochs": None if errors.epochs is None else int(errors.epochs[i]),
             "train_error": errors.train_error[i], "test_error": errors.test_error[i]}
            for i, r in enumerate(errors.restarts)]


def write_errors_table(path, errors) -> Path:
    """The errors table: one row per restart of a `pipeline.SolutionErrors`.

    Columns: ``restart``; ``converged`` (1 if the restart met its setting's stop rule, 0 if it was
    stopped by the epoch limit; empty if the file does not say); ``epochs`` (epochs trained; empty if
    unknown); ``train_error`` and ``test_error`` (fraction of the training and test patterns the
    sign network of Eq. 7 misclassifies).
    """
    return write_table(path, ERROR_COLUMNS, error_rows(errors))
