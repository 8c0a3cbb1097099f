"""A stage cache on disk: each result stored under the SHA-256 of everything it depends on.

A key is the hash of a canonical JSON of the stage's name, its code version (``STAGE_VERSIONS``,
bumped whenever a stage's results would change) and its inputs (setting and hyper-parameters,
seed, restart id, data hash, grids). A rerun finds every result it computed before; a changed
hyper-parameter changes the keys of what depends on it and nothing else. Entries are ``.npz``
files of plain arrays plus a JSON string, written atomically and read with ``allow_pickle=False``,
so a cache folder copied from elsewhere (another machine, a shard, a commit) can be trusted as data.
"""

from __future__ import annotations

import hashlib
import json
import math
import zipfile
from pathlib import Path

import numpy as np

from localentropy.data.atomic import atomic_open
from localentropy.figures.errors import FigureError

#: Code version of each stage: bump when the stage's numbers would change for the same inputs.
STAGE_VERSIONS = {"train": 2, "energy": 2, "curve": 2}


def _canonical(obj):
    if isinstance(obj, dict):
        return {str(k): _canonical(v) for k, v in sorted(obj.items())}
    if isinstance(obj, (list, tuple)):
        return [_canonical(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [_canonical(v) for v in obj.tolist()]
    if isinstance(obj, (np.integer, bool, np.bool_)):
        return obj.item() if hasattr(obj, "item") else obj
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return repr(f) if not math.isfinite(f) else float.hex(f)  # exact, and JSON-safe for inf/nan
    return obj


def stage_key(stage: str, inputs: dict) -> str:
    """The SHA-256 (hex) naming the result of ``stage`` on ``inputs`` (any JSON-able values)."""
    if stage not in STAGE_VERSIONS:
        raise FigureError(f"unknown stage {stage!r}")
    text = json.dumps({"stage": stage, "version": STAGE_VERSIONS[stage], "inputs": _canonical(inputs)},
                      sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


class StageCache:
    """Results by (stage, key) under ``root/stage/kk/key.npz``; ``load`` → (arrays, meta) or None."""

    def __init__(self, root):
        self.root = Path(root)

    def path(self, stage: str, key: str) -> Path:
        return self.root / stage / key[:2] / f"{key}.npz"

    def has(self, stage: str, key: str) -> bool:
        return self.path(stage, key).is_file()

    def load(self, stage: str, key: str):
        path = self.path(stage, key)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files if k != "__meta__"}
                meta = json.loads(str(z["__meta__"]))
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            raise FigureError(f"{path}: unreadable cache entry ({type(exc).__name__}); delete it to recompute") from None
        if meta.get("key") != key:
            raise FigureError(f"{path}: cache entry holds key {str(meta.get('key'))[:12]}…, not its file name")
        return arrays, meta

    def save(self, stage: str, key: str, arrays: dict, meta: dict) -> Path:
        path = self.path(stage, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = dict(meta, key=key, stage=stage, version=STAGE_VERSIONS[stage])
        with atomic_open(path) as fh:
            np.savez(fh, __meta__=np.array(json.dumps(meta, sort_keys=True, default=str)),
                     **{k: np.asarray(v) for k, v in arrays.items()})
        return path
