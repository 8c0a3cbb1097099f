"""Errors and local energy of saved committee solutions (paper 000, Eq. 4 and Eq. 7; Figure 1).

``solution_errors``: training/test error of the exact sign network per restart.
``local_energy_profiles``: δE_train(w, σ) = E_z E_train(w + σ z ⊙ w) − E_train(w) per restart by
sampling, through the model-agnostic ``entropic.local_energy`` on a ``CommitteeNet`` wrapper of one
restart's (K, N) weights (draws evaluated in batches with vmap).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from localentropy.committee.errors import CommitteeError
from localentropy.committee.model import CommitteeNet, check_K, errors
from localentropy.committee.train import restart_seed
from localentropy.data.atomic import atomic_open


def _weights(weights) -> np.ndarray:
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 3:
        raise CommitteeError(f"weights must be (restarts, K, N), got shape {w.shape}")
    check_K(w.shape[1])
    if not np.all(np.isfinite(w)):
        raise CommitteeError("weights contain NaN or infinite values")
    return w


def _patterns(X, y, N, what="patterns") -> tuple[np.ndarray, np.ndarray]:
    Xn, yn = np.asarray(X), np.asarray(y)
    if Xn.ndim != 2 or yn.ndim != 1 or Xn.shape[0] != yn.shape[0] or Xn.shape[0] == 0:
        raise CommitteeError(f"{what} must be X (P, N) and y (P,), got {Xn.shape} and {yn.shape}")
    if Xn.shape[1] != N:
        raise CommitteeError(f"{what} have {Xn.shape[1]} inputs but the weights have N={N}")
    if not np.all(np.isin(yn, (-1, 1))):
        raise CommitteeError(f"{what}: labels must be ±1")
    return Xn.astype(np.float64), yn.astype(np.float64)


def solution_errors(weights, X, y, device="cpu") -> np.ndarray:
    """Fraction of (X, y) that each restart's sign network (Eq. 7) misclassifies, shape (R,)."""
    w = _weights(weights)
    Xn, yn = _patterns(X, y, w.shape[2])
    W = torch.as_tensor(w, device=device)
    return errors(W, torch.as_tensor(Xn, device=device), torch.as_tensor(yn, device=device)).cpu().numpy()


def _pm1_error(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean of [output ≠ label] for ±1 outputs of the sign network."""
    return (outputs != targets.to(outputs.dtype)).to(torch.float64).mean()


@dataclass(frozen=True)
class EnergyProfiles:
    """δE_train(σ) per restart: arrays (R, S) of mean and standard error over draws, E_train(w) (R,)."""

    sigmas: np.ndarray
    error0: np.ndarray
    delta_error: np.ndarray
    delta_error_se: np.ndarray
    draws: int
    seed: int

    def rows(self):
        """CSV rows: one per (restart, σ), then the mean over restarts (restart = "mean", se across restarts)."""
        R = self.delta_error.shape[0]
        for r in range(R):
            for j, s in enumerate(self.sigmas):
                yield {"restart": r, "sigma": float(s), "delta_error": float(self.delta_error[r, j]),
                       "delta_error_se": float(self.delta_error_se[r, j]), "error0": float(self.error0[r])}
        for j, s in enumerate(self.sigmas):
            col = self.delta_error[:, j]
            se = float(col.std(ddof=1) / math.sqrt(R)) if R > 1 else float(self.delta_error_se[0, j])
            yield {"restart": "mean", "sigma": float(s), "delta_error": float(col.mean()),
                   "delta_error_se": se, "error0": float(self.error0.mean())}

    def write_csv(self, path) -> Path:
        """Write ``rows()`` atomically to ``path``."""
        path = Path(path)
        folder = path.parent if str(path.parent) else Path(".")
        if not folder.is_dir():
            raise CommitteeError(f"{path}: folder {folder} does not exist")
        with atomic_open(path, "w", newline="") as fh:
            wr = csv.DictWriter(fh, fieldnames=["restart", "sigma", "delta_error", "delta_error_se", "error0"])
            wr.writeheader()
            for row in self.rows():
                wr.writerow(row)
        return path


def local_energy_profiles(
    weights,
    X,
    y,
    sigmas,
    *,
    draws: int = 1000,
    seed: int = 0,
    device="cpu",
    batch_draws: int = 50,
    progress: Optional[Callable[[int, int], None]] = None,
) -> EnergyProfiles:
    """δE_train(w_r, σ) of Eq. (4) for every restart r, multiplicative noise on all K·N weights.

    Restart r's noise comes from a generator seeded with ``restart_seed(seed, r)``, so a profile does
    not depend on which other restarts are in the file. ``progress(done, R)`` after each restart.
    """
    from localentropy.entropic.local_energy import local_energy

    w = _weights(weights)
    Xn, yn = _patterns(X, y, w.shape[2])
    sig = np.asarray(sigmas, dtype=np.float64).reshape(-1)
    if sig.size == 0 or not np.all(np.isfinite(sig)) or np.any(sig < 0):
        raise CommitteeError(f"sigmas must be finite and ≥ 0, got {sig}")
    if int(draws) != draws or draws < 2:
        raise CommitteeError(f"draws must be an integer ≥ 2, got {draws}")
    Xt = torch.as_tensor(Xn, device=device)
    yt = torch.as_tensor(yn, device=device)
    R = w.shape[0]
    d, se, e0 = np.zeros((R, sig.size)), np.zeros((R, sig.size)), np.zeros(R)
    for r in range(R):
        net = CommitteeNet(torch.as_tensor(w[r])).to(device)
        gen = torch.Generator().manual_seed(restart_seed(seed, r))
        le = local_energy(net, (Xt, yt), sig, draws=int(draws), noise="multiplicative", error_fn=_pm1_error,
                          generator=gen, batch_draws=int(batch_draws))
        d[r], se[r], e0[r] = le.delta_error, le.delta_error_se, le.error0
        if progress is not None:
            progress(r + 1, R)
    return EnergyProfiles(sigmas=sig, error0=e0, delta_error=d, delta_error_se=se, draws=int(draws), seed=int(seed))
