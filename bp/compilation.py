"""Where bp's Numba kernels are cached, and compiling them ahead of a user's first curve.

The kernels (bp.output, bp.edge, bp.amp) are ``@nb.njit(cache=True)``; compiling them all takes long
(benchmarks/bench_bp.py measures it), so a first ``local_entropy_curve`` would spend most of its time in
the compiler. Two functions take that out of the user's first run (the CLI calls them, with a message, before computing curves;
``python -m localentropy.bp.compilation`` does it from a Makefile or an install script):

- ``needs_compilation()``: True when the next BP call would compile (no complete cache for this machine);
- ``compile_kernels()``: compiles (or loads) every kernel with the signatures BP actually uses, by
  running a tiny instance through every path (AMP and per-edge, ±1 and real-valued inputs, hard and
  soft constraint, the Bethe terms, the output channel), then records them in a manifest.

**The cache folder** (``cache_dir()``) is keyed by a hash of every bp source file, the Numba, NumPy and
Python versions and the machine architecture: ``<base>/kernels-<hash>``. Numba's own cache checks
only the timestamp of the file that defines a function, so after an edit of a *callee* (say
bp/output.py) a caller's cached machine code (bp/amp.py) still holds the old callee and is silently
stale; with the folder keyed by all sources, any edit of bp starts a fresh folder. Older folders of
the in-package base are pruned. The base is the first writable of: ``$LOCALENTROPY_NUMBA_CACHE``; the
folder ``__nbcache__`` inside the installed package; the user cache (``$XDG_CACHE_HOME`` or
``~/.cache``)/localentropy/numba (an installed package's folder is often read-only); the system
temporary folder. The folder is handed to Numba by setting ``numba.config.CACHE_DIR`` (what
``NUMBA_CACHE_DIR`` sets) only while bp's kernel modules are imported (``kernel_cache``), which is when
Numba fixes each function's cache location, so other Numba users in the process are not affected.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numba
import numpy as np

_PACKAGE_DIR = Path(__file__).resolve().parent
_KERNEL_MODULES = ("localentropy.bp.output", "localentropy.bp.edge", "localentropy.bp.amp")
_PREFIX = "kernels-"
_chosen: Path | None = None


def source_key(folder=_PACKAGE_DIR) -> str:
    """Hash of every bp source file (in `folder`) and of the versions and architecture the machine code
    depends on."""
    h = hashlib.sha256()
    for f in sorted(Path(folder).glob("*.py")):
        h.update(f.name.encode())
        h.update(f.read_bytes())
    for part in (numba.__version__, np.__version__, sys.version, platform.machine()):
        h.update(part.encode())
    return h.hexdigest()[:16]


def _writable(folder: Path) -> bool:
    """Whether `folder` exists or can be created and a file can be written in it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
        return True
    except OSError:
        return False


def cache_bases() -> list[Path]:
    """Candidate base folders, in order of preference (module docstring)."""
    env = os.environ.get("LOCALENTROPY_NUMBA_CACHE")
    user = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "localentropy" / "numba"
    bases = [Path(env)] if env else []
    return bases + [_PACKAGE_DIR / "__nbcache__", user, Path(tempfile.gettempdir()) / f"localentropy-numba-{os.getuid()}"]


def choose_cache_dir(bases, key: str) -> Path | None:
    """``<first writable base>/kernels-<key>``, or None if no base is writable (Numba then compiles in
    memory only, never into a stale in-tree cache)."""
    for base in bases:
        folder = Path(base) / f"{_PREFIX}{key}"
        if _writable(folder):
            return folder
    return None


def cache_dir() -> Path | None:
    """The folder holding this bp's compiled kernels (chosen once per process)."""
    global _chosen
    if _chosen is None:
        _chosen = choose_cache_dir(cache_bases(), source_key())
    return _chosen


def prune(folder: Path) -> None:
    """Remove the other ``kernels-*`` folders beside `folder` (caches of earlier bp sources), only in the
    package's own base: a user-wide base may be shared by other installations."""
    if folder is None or folder.parent != _PACKAGE_DIR / "__nbcache__":
        return
    for other in folder.parent.glob(f"{_PREFIX}*"):
        if other != folder:
            shutil.rmtree(other, ignore_errors=True)


@contextlib.contextmanager
def kernel_cache():
    """Point Numba's cache at ``cache_dir()`` while the kernel modules are imported (their decorators fix
    each function's cache location), then restore the process's setting."""
    folder = cache_dir()
    old = numba.config.CACHE_DIR
    if folder is not None:
        prune(folder)
        numba.config.CACHE_DIR = str(folder)
    try:
        yield folder
    finally:
        numba.config.CACHE_DIR = old


def kernel_dispatchers() -> dict:
    """{"module.function": dispatcher} for every Numba kernel of bp."""
    import importlib

    out = {}
    for name in _KERNEL_MODULES:
        mod = importlib.import_module(name)
        for attr, obj in vars(mod).items():
            if isinstance(obj, numba.core.dispatcher.Dispatcher) and obj.py_func.__module__ == name:
                out[f"{name}.{attr}"] = obj
    return out


def _manifest_path(folder: Path) -> Path:
    """One manifest per target machine (CPU name and features), since the index may hold several."""
    from numba.core.registry import cpu_target

    magic = repr(cpu_target.target_context.codegen().magic_tuple())
    return folder / f"manifest-{hashlib.sha256(magic.encode()).hexdigest()[:16]}.json"


def _workload() -> None:
    """A tiny instance through every compiled path: AMP and per-edge BP, ±1 and real inputs, β = ∞ and
    finite, the curve driver (warm starts, per-edge fallback), the Bethe terms and the output channel."""
    from localentropy.bp.curve import local_entropy_curve
    from localentropy.bp.free_entropy import free_entropy
    from localentropy.bp.instances import planted_instance
    from localentropy.bp.output import output_channel

    X, y, Wt = planted_instance(0, 3, 24, 12)
    for inst in ((X, y, Wt), planted_instance(1, 3, 24, 12, inputs="gaussian")):  # x² = 1 and x² ≠ 1 kernels
        for method in ("amp", "edge"):
            for beta in (np.inf, 3.0):
                free_entropy(inst[0], inst[1], 3, inst[2], 1e-2, beta, method=method)
    local_entropy_curve(Wt, X, y, [1e-3, 2e-3, 4e-3], method="auto")
    om = np.random.default_rng(2).normal(size=(4, 3))
    output_channel(om, np.ones((4, 3)), np.ones(4))


def compile_kernels() -> None:
    """Compile (or load from the cache) every kernel with the signatures BP uses, so that the next BP call,
    in this process or a new one, starts at once; records them in the cache folder's manifest."""
    _workload()
    folder = cache_dir()
    if folder is None:
        return
    sigs = {name: [str(s) for s in d.signatures] for name, d in kernel_dispatchers().items() if d.signatures}
    path = _manifest_path(folder)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps({"numba": numba.__version__, "written": time.time(), "kernels": sigs}, indent=1))
    os.replace(tmp, path)


def _cached_on_disk(name: str, dispatcher) -> bool:
    """Whether Numba's index file for this kernel exists in its cache folder."""
    cache_path = dispatcher.stats.cache_path
    if not cache_path:
        return False
    return bool(glob.glob(os.path.join(glob.escape(cache_path), f"*{name.rsplit('.', 1)[1]}-*.nbi")))


def needs_compilation() -> bool:
    """True when the next BP call would compile kernels: neither compiled in this process nor cached on
    disk for this machine by ``compile_kernels`` (same bp sources, Numba/NumPy/Python versions, CPU)."""
    folder = cache_dir()
    if folder is None:
        return not all(d.signatures for d in kernel_dispatchers().values())
    try:
        manifest = json.loads(_manifest_path(folder).read_text())
    except (OSError, ValueError):
        return True
    disp = kernel_dispatchers()
    for name, sigs in manifest.get("kernels", {}).items():
        d = disp.get(name)
        if d is None:
            return True
        if {str(s) for s in d.signatures} >= set(sigs):
            continue  # already in memory
        if not _cached_on_disk(name, d):
            return True
    return False


def main() -> int:
    """``python -m localentropy.bp.compilation``: compile and cache the kernels now; print where and how long."""
    t = time.perf_counter()
    if not needs_compilation():
        print(f"bp kernels already compiled and cached in {cache_dir()}")
        return 0
    compile_kernels()
    print(f"compiled bp kernels in {time.perf_counter() - t:.1f} s; cache: {cache_dir()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
