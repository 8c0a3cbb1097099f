"""A stage cache on disk: each result stored under the SHA-256 of everything it depends on.

A key is the hash of a canonical JSON of the stage's name, its code version (``STAGE_VERSIONS``,
bumped whenever a stage's results would change) and its inputs (setting and hyper-parameters,
seed, restart id, data hash, grids). A rerun finds every result it computed before; a changed
hyper-parameter changes the keys of what depends on it and nothing else. Entries are ``.npz``
files of plain arrays plus a JSON string, written atomically and read with ``allow_pickle=False``,
so a cache folder copied from elsewhere (another machine, a shard, a commit) can be trusted as data.
An entry that cannot be read (a truncated copy, a disk error) or holds another key is moved aside into
``root/corrupt/`` by ``has``, which then answers False, so the stage computes it again.
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
    """Results by (stage, key) under ``root/stage/kk/key.npz``; ``load`` → (arrays, meta) or None.

    ``moved``: the (entry, where it was moved, why) of every unreadable entry ``has`` set aside;
    ``reused``: what → (entries found, entries needed, seconds they took when computed, or None where an entry
    does not record it), as the stages ``tally`` them; ``notify(text)``, if given, hears each tally and each
    entry moved aside as it happens (a CLI prints them). An entry saved with ``meta["seconds"]`` (the time
    computing it took) keeps it, so a rerun can say what its reused results cost."""

    def __init__(self, root, notify=None):
        self.root = Path(root)
        self.moved: list = []
        self.reused: dict = {}
        self.notify = notify
        self._seconds: dict = {}

    def seconds(self, stage: str, key: str):
        """The recorded compute time of an entry ``has`` found (None if it records none)."""
        return self._seconds.get((stage, key))

    def tally(self, what: str, found: int, needed: int, stage: str | None = None, keys=()) -> None:
        """Record (and announce) that ``found`` of the ``needed`` entries of ``what`` were in the cache; with
        ``stage`` and the found ``keys``, also the time they took when they were computed."""
        times = [self.seconds(stage, k) for k in keys] if stage is not None else []
        spent = None if not times or any(t is None for t in times) else float(sum(times))
        self.reused[what] = (int(found), int(needed), spent)
        if self.notify is not None:
            self.notify(f"cache: {found}/{needed} {what} reused"
                        + (f" (computed earlier in {spent:.0f} s)" if spent is not None and found else ""))

    def path(self, stage: str, key: str) -> Path:
        return self.root / stage / key[:2] / f"{key}.npz"

    def has(self, stage: str, key: str) -> bool:
        """Whether a readable entry of ``key`` is stored; an unreadable one is moved aside (class docstring)."""
        path = self.path(stage, key)
        if not path.is_file():
            return False
        try:
            _, meta = self.load(stage, key)
        except FigureError as exc:
            aside = self.root / "corrupt" / f"{stage}-{path.name}"
            aside.parent.mkdir(parents=True, exist_ok=True)
            path.replace(aside)
            self.moved.append((path, aside, str(exc).split(": ", 1)[-1]))
            if self.notify is not None:
                self.notify(f"unreadable cache entry {path} moved to {aside}; computing it again")
            return False
        if isinstance(meta.get("seconds"), (int, float)):
            self._seconds[(stage, key)] = float(meta["seconds"])
        return True

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
