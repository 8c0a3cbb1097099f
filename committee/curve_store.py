"""Finished local-entropy curves kept on disk as they come, so that a batch of curves resumes.

`restart_curves(checkpoint=FOLDER)` stores each restart's curve (or its one-line error) in FOLDER the
moment it is done, under the SHA-256 of everything the curve depends on (the reference's weights, the
patterns, the Δ grid, the method and its options); a rerun with the same inputs reads those back and
computes only the others. A stored curve is a `StoredCurve`: the fields the tables, plots and reports
read, in plain arrays (``np.load(allow_pickle=False)``), so a folder left by an interrupted run can be
trusted as data. An entry that cannot be read is computed again.
"""

from __future__ import annotations

import hashlib
import json
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from localentropy.data.atomic import atomic_open

_ARRAYS = ("prior_delta", "delta", "d", "phi", "phi_ball", "phi_G", "converged")
_ERROR_BARS = ("phi_G_se", "phi_se", "delta_se", "ess")
VERSION = 1


@dataclass(frozen=True)
class StoredCurve:
    """A curve read back from a checkpoint: the fields every estimator's curve has (``committee.curves``),
    error bars None where the estimator gives none."""

    prior_delta: np.ndarray
    delta: np.ndarray
    d: np.ndarray
    phi: np.ndarray
    phi_ball: np.ndarray
    phi_G: np.ndarray
    converged: np.ndarray
    methods: tuple
    gaps: tuple
    method: str
    n: int
    K: int
    N: int
    P: int
    beta: float
    n_dropped: int = 0
    phi_G_se: Optional[np.ndarray] = None
    phi_se: Optional[np.ndarray] = None
    delta_se: Optional[np.ndarray] = None
    ess: Optional[np.ndarray] = None


def _digest(h, a) -> None:
    a = np.ascontiguousarray(a)
    h.update(f"{a.dtype.str}{a.shape}".encode())
    h.update(a.tobytes())


def curve_key(weights, X, y, deltas, options: dict) -> str:
    """The SHA-256 naming the curve of ``weights`` on (X, y) over ``deltas`` with the estimator's ``options``."""
    h = hashlib.sha256(f"curve-store v{VERSION}".encode())
    for a in (np.asarray(weights, dtype=np.float64), np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.float64),
              np.asarray(deltas, dtype=np.float64)):
        _digest(h, a)
    h.update(json.dumps({k: (repr(v) if isinstance(v, float) else v) for k, v in sorted(options.items())},
                        sort_keys=True).encode())
    return h.hexdigest()


class CurveStore:
    """Curves by key in ``folder`` (``<key>.npz``); ``get`` → a `StoredCurve`, an error message, or None."""

    def __init__(self, folder):
        self.folder = Path(folder)

    def path(self, key: str) -> Path:
        return self.folder / f"{key[:32]}.npz"

    def get(self, key: str):
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(str(z["__meta__"]))
                arrays = {k: z[k] for k in z.files if k != "__meta__"}
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            return None  # unreadable (a copy cut short): computed again, and overwritten
        if meta.get("key") != key:
            return None
        if meta.get("error") is not None:
            return str(meta["error"])
        return StoredCurve(**{k: arrays[k] for k in _ARRAYS}, **{k: arrays.get(k) for k in _ERROR_BARS},
                           methods=tuple(meta["methods"]), gaps=tuple(meta["gaps"]), method=meta["method"],
                           n=int(meta["n"]), K=int(meta["K"]), N=int(meta["N"]), P=int(meta["P"]),
                           beta=float(meta["beta"]), n_dropped=int(meta["n_dropped"]))

    def put(self, key: str, curve) -> Path:
        """Store ``curve`` (any estimator's curve, or a one-line error message), atomically."""
        self.folder.mkdir(parents=True, exist_ok=True)
        if isinstance(curve, str):
            arrays, meta = {}, {"error": curve}
        else:
            arrays = {k: np.asarray(getattr(curve, k)) for k in _ARRAYS}
            arrays.update({k: np.asarray(getattr(curve, k)) for k in _ERROR_BARS if getattr(curve, k, None) is not None})
            beta = float(curve.beta)
            meta = {"methods": list(curve.methods), "gaps": [dict(g) for g in curve.gaps], "method": curve.method,
                    "n": int(curve.n), "K": int(curve.K), "N": int(curve.N), "P": int(curve.P),
                    "beta": beta if math.isfinite(beta) else "inf", "n_dropped": int(getattr(curve, "n_dropped", 0))}
        meta["key"] = key
        with atomic_open(self.path(key)) as fh:
            np.savez(fh, __meta__=np.array(json.dumps(meta, default=float)), **arrays)
        return self.path(key)
