"""The solutions file: trained committee weights, the patterns they were trained on, and metadata.

A solutions file is an ``.npz`` with three entries (docs/formats.md):

- ``weights``: float64 array (R, K, N), one (K, N) first-layer matrix per restart (Eq. 7), each hidden
  unit at norm √N (for rSGD the replicas' centre, for eSGD the reference w, both renormalised);
- ``patterns_hash``: 0-d str array, ``data.patterns_hash(X_train, y_train)`` of the training set;
- ``metadata``: 0-d str array holding JSON (setting, hyper-parameters, seed, per-restart epochs,
  status and errors).

``load_solutions`` checks all of this and raises ``CommitteeError`` naming the file on any problem,
so downstream tools (BP's ``localentropy phi``, evaluation) can trust what they read.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from localentropy.committee.errors import CommitteeError
from localentropy.committee_sign import check_odd_K
from localentropy.data.atomic import atomic_open

#: relative tolerance on ‖w_k‖² = N for every hidden unit of every restart
NORM_RTOL = 1e-6

_KEYS = ("weights", "patterns_hash", "metadata")


@dataclass(frozen=True)
class Solutions:
    """What a solutions file holds: weights (R, K, N) float64, the patterns' hash, the metadata dict."""

    weights: np.ndarray
    patterns_hash: str
    metadata: dict

    @property
    def restarts(self) -> int:
        return int(self.weights.shape[0])

    @property
    def K(self) -> int:
        return int(self.weights.shape[1])

    @property
    def N(self) -> int:
        return int(self.weights.shape[2])

    def _per_restart(self, key: str):
        value = self.metadata.get(key)
        return tuple(value) if isinstance(value, list) and len(value) == self.restarts else None

    @property
    def status(self):
        """Per restart "converged" or "not converged" (None if the metadata does not say)."""
        return self._per_restart("status")

    @property
    def test_error(self):
        """Per restart test error recorded when the solutions were trained (None if not recorded)."""
        return self._per_restart("test_error")

    @property
    def train_error(self):
        """Per restart training error recorded when the solutions were trained (None if not recorded)."""
        return self._per_restart("train_error")

    @property
    def epochs(self):
        """Per restart epochs trained (None if not recorded)."""
        return self._per_restart("epochs")

    def save(self, path) -> Path:
        """Write this object to ``path`` (see `save_solutions`)."""
        return save_solutions(path, self.weights, self.patterns_hash, self.metadata)


def _check_weights(weights: np.ndarray, where: str) -> np.ndarray:
    """Shape (R, K, N) with R ≥ 1, K odd, N ≥ 1; finite; each hidden unit at ‖w_k‖² = N (rel. 1e-6)."""
    w = np.asarray(weights)
    if w.ndim != 3:
        raise CommitteeError(f"{where}: weights must be 3-d (restarts, K, N), got shape {w.shape}")
    R, K, N = w.shape
    if R < 1 or N < 1:
        raise CommitteeError(f"{where}: weights shape {w.shape} has an empty axis")
    try:
        check_odd_K(K, CommitteeError)
    except CommitteeError as exc:
        raise CommitteeError(f"{where}: {exc}") from None
    if not np.issubdtype(w.dtype, np.floating):
        raise CommitteeError(f"{where}: weights must be floating point, got dtype {w.dtype}")
    w = w.astype(np.float64, copy=False)
    if not np.all(np.isfinite(w)):
        raise CommitteeError(f"{where}: weights contain NaN or infinite values")
    sq = np.einsum("rkn,rkn->rk", w, w)
    rel = np.abs(sq - N) / N
    if np.any(rel > NORM_RTOL):
        r, k = np.unravel_index(int(np.argmax(rel)), rel.shape)
        raise CommitteeError(
            f"{where}: hidden unit {k} of restart {r} has squared norm {sq[r, k]:.9g}, expected N={N} "
            f"(relative tolerance {NORM_RTOL:g}); weights must be normalised to norm sqrt(N)"
        )
    return w


def save_solutions(path, weights, patterns_hash: str, metadata: dict) -> Path:
    """Write a solutions file atomically (temporary name in the same folder, then ``os.replace``).

    The weights are validated exactly as ``load_solutions`` would (shape, K odd, finite, normalised),
    so a file that is written can always be read back.
    """
    path = Path(path)
    w = _check_weights(weights, str(path))
    if not isinstance(patterns_hash, str) or not patterns_hash:
        raise CommitteeError(f"{path}: patterns_hash must be a non-empty string, got {patterns_hash!r}")
    if not isinstance(metadata, dict):
        raise CommitteeError(f"{path}: metadata must be a dict, got {type(metadata).__name__}")
    try:
        meta_json = json.dumps(metadata, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise CommitteeError(f"{path}: metadata is not JSON-serialisable ({exc})") from exc
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise CommitteeError(f"{path}: folder {folder} does not exist")
    if path.is_dir():
        raise CommitteeError(f"{path}: is a folder, expected a file name")
    with atomic_open(path) as fh:
        np.savez(
            fh,
            weights=np.ascontiguousarray(w, dtype=np.float64),
            patterns_hash=np.array(patterns_hash),
            metadata=np.array(meta_json),
        )
    return path


def load_solutions(path) -> Solutions:
    """Read and validate a solutions file; any problem raises ``CommitteeError`` naming the file."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such solutions file")
    if path.is_dir():
        raise CommitteeError(f"{path}: is a folder, expected a solutions .npz file")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in _KEYS if k not in z.files]
            if missing:
                raise CommitteeError(
                    f"{path}: not a solutions file, missing {', '.join(missing)} (has {', '.join(z.files) or 'nothing'})"
                )
            weights = z["weights"]
            ph = z["patterns_hash"]
            meta = z["metadata"]
    except CommitteeError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise CommitteeError(f"{path}: cannot read as .npz ({exc})") from exc
    w = _check_weights(weights, str(path))
    if ph.ndim != 0 or ph.dtype.kind != "U":
        raise CommitteeError(f"{path}: patterns_hash must be a 0-d string array, got dtype {ph.dtype} shape {ph.shape}")
    if meta.ndim != 0 or meta.dtype.kind != "U":
        raise CommitteeError(f"{path}: metadata must be a 0-d string array, got dtype {meta.dtype} shape {meta.shape}")
    try:
        metadata = json.loads(str(meta))
    except json.JSONDecodeError as exc:
        raise CommitteeError(f"{path}: metadata is not valid JSON ({exc.msg})") from exc
    if not isinstance(metadata, dict):
        raise CommitteeError(f"{path}: metadata must be a JSON object, got {type(metadata).__name__}")
    return Solutions(weights=np.array(w, dtype=np.float64), patterns_hash=str(ph), metadata=metadata)
