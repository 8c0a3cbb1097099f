"""The Numba kernel cache of bp: compiled ahead of time, found by a fresh process, keyed by bp's sources."""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numba
import pytest

from localentropy import bp
from localentropy.bp import compilation

ROOT = Path(__file__).resolve().parents[1]

# A fresh interpreter: is compilation needed, then a small curve by AMP (with per-edge fallback) and by
# per-edge BP on ±1 and real inputs; prints the dispatchers' cache statistics as JSON.
PROBE = textwrap.dedent("""
    import json, sys
    from localentropy import bp
    from localentropy.bp.compilation import kernel_dispatchers
    from localentropy.bp.instances import planted_instance
    needs = bp.needs_compilation()
    if sys.argv[1] == "compile":
        bp.compile_kernels()
    X, y, W = planted_instance(5, 3, 30, 20)
    bp.local_entropy_curve(W, X, y, [1e-3, 3e-3, 1e-2], method="auto")
    bp.local_entropy_curve(W, X, y, [1e-3, 3e-3], method="edge")
    Xg, yg, Wg = planted_instance(6, 3, 30, 20, inputs="gaussian")
    bp.free_entropy(Xg, yg, 3, Wg, 1e-2, method="amp")
    bp.free_entropy(Xg, yg, 3, Wg, 1e-2, 2.0, method="edge")
    disp = kernel_dispatchers().values()
    print(json.dumps({"needs": needs, "after": bp.needs_compilation(), "cache_dir": str(bp.cache_dir()),
                      "hits": sum(sum(d.stats.cache_hits.values()) for d in disp),
                      "misses": sum(sum(d.stats.cache_misses.values()) for d in disp)}))
""")


def _probe(mode, env_extra=None):
    env = dict(os.environ, PYTHONPATH=str(ROOT), **(env_extra or {}))
    out = subprocess.run([sys.executable, "-c", PROBE, mode], env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_after_compile_kernels_nothing_needs_compilation_and_a_fresh_process_only_loads():
    bp.compile_kernels()
    assert not bp.needs_compilation()
    manifest = next(bp.cache_dir().glob("manifest-*.json"))
    kernels = json.loads(manifest.read_text())["kernels"]
    assert "localentropy.bp.amp._sweep_kernel" in kernels and "localentropy.bp.edge._sweep_kernel" in kernels
    r = _probe("run")
    assert r["needs"] is False and r["after"] is False
    assert r["misses"] == 0 and r["hits"] > 0, r  # every kernel came from the cache: nothing was compiled
    assert r["cache_dir"] == str(bp.cache_dir())


def test_the_import_leaves_numbas_global_cache_setting_as_it_was():
    assert numba.config.CACHE_DIR == os.environ.get("NUMBA_CACHE_DIR", "")
    d = compilation.kernel_dispatchers()["localentropy.bp.amp._sweep_kernel"]
    assert Path(d.stats.cache_path).is_relative_to(bp.cache_dir())


def test_cache_key_changes_when_any_bp_source_changes(tmp_path):
    src = tmp_path / "bp"
    shutil.copytree(ROOT / "bp", src, ignore=shutil.ignore_patterns("__pycache__", "__nbcache__"))
    key = compilation.source_key(src)
    assert key == compilation.source_key(ROOT / "bp") and key in str(bp.cache_dir())
    callee = src / "output.py"  # a callee of bp.amp and bp.edge: their cached code must not be reused
    callee.write_text(callee.read_text() + "\n# edited\n")
    assert compilation.source_key(src) != key


def test_an_unwritable_base_falls_back_to_the_next_one(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    ok = tmp_path / "user-cache"
    chosen = compilation.choose_cache_dir([blocker / "cache", ok], "abc")
    assert chosen == ok / "kernels-abc" and chosen.is_dir()
    assert compilation.choose_cache_dir([blocker / "x"], "abc") is None


def test_package_base_comes_before_the_user_cache_and_the_environment_overrides_both(monkeypatch, tmp_path):
    monkeypatch.delenv("LOCALENTROPY_NUMBA_CACHE", raising=False)
    bases = compilation.cache_bases()
    assert bases[0] == ROOT / "bp" / "__nbcache__" and "localentropy" in str(bases[1])
    monkeypatch.setenv("LOCALENTROPY_NUMBA_CACHE", str(tmp_path))
    assert compilation.cache_bases()[0] == tmp_path


@pytest.mark.slow
def test_cold_cache_needs_compilation_then_a_fresh_process_finds_it(tmp_path):
    env = {"LOCALENTROPY_NUMBA_CACHE": str(tmp_path)}
    first = _probe("compile", env)
    assert first["needs"] is True and first["after"] is False
    assert first["cache_dir"].startswith(str(tmp_path))
    second = _probe("run", env)
    assert second["needs"] is False and second["misses"] == 0 and second["hits"] > 0, second
