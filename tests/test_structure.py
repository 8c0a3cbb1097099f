"""The package's structure: one installed namespace, no import cycles, layers that point one way,
no private names imported across modules (layers: cli → figures → {committee, deep, bp} → {entropic, data})."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bp", "committee", "entropic", "flatness", "deep", "data", "figures", "cli")
# What each package may import from the others (besides itself and localentropy.committee_sign).
ALLOWED = {
    "bp": set(),
    "data": set(),
    "entropic": set(),
    "flatness": {"entropic"},
    "committee": {"entropic", "data", "bp"},
    "deep": {"entropic", "data"},
    "figures": {"bp", "committee", "entropic", "flatness", "data", "deep"},
    "cli": {"bp", "committee", "entropic", "flatness", "data", "deep", "figures"},
}
NO_TORCH = ("bp", "data")  # a user with saved weights needs only numpy and numba for BP


def _modules() -> dict[str, Path]:
    mods = {}
    for pkg in PACKAGES:
        for f in sorted((ROOT / pkg).rglob("*.py")):
            rel = f.relative_to(ROOT).with_suffix("")
            parts = list(rel.parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods["localentropy." + ".".join(parts)] = f
    for f in sorted((ROOT / "localentropy").glob("*.py")):
        mods["localentropy" if f.stem == "__init__" else f"localentropy.{f.stem}"] = f
    return mods


MODULES = _modules()


def _imports(path: Path):
    """(target module, imported names, line) for every import statement anywhere in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, [], node.lineno
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module, [a.name for a in node.names], node.lineno


def _edges():
    graph = {m: set() for m in MODULES}
    for mod, path in MODULES.items():
        for target, names, _ in _imports(path):
            if not target.startswith("localentropy"):
                continue
            subs = [f"{target}.{n}" for n in names if f"{target}.{n}" in MODULES]
            for t in subs or [target]:
                if t in MODULES and t != mod:
                    graph[mod].add(t)
    return graph


def test_the_modules_are_found():
    assert "localentropy.bp.amp" in MODULES and "localentropy.cli.main" in MODULES and "localentropy" in MODULES


def test_no_import_cycles():
    graph = _edges()
    state, stack = {}, []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for t in sorted(graph[m]):
            if state.get(t) == 1:
                cycle = stack[stack.index(t):] + [t]
                pytest.fail("import cycle: " + " → ".join(cycle))
            if t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_layers_point_one_way_and_bp_has_no_torch():
    bad = []
    for mod, path in MODULES.items():
        parts = mod.split(".")
        if len(parts) < 2 or parts[1] not in PACKAGES:
            continue
        pkg = parts[1]
        for target, _, line in _imports(path):
            top = target.split(".")[0]
            if pkg in NO_TORCH and top == "torch":
                bad.append(f"{path.relative_to(ROOT)}:{line} imports torch")
            t = target.split(".")
            if t[0] == "localentropy" and len(t) > 1 and t[1] in PACKAGES and t[1] != pkg and t[1] not in ALLOWED[pkg]:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
            if top in PACKAGES:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports the bare top-level name {target!r}")
    assert not bad, "\n".join(bad)


def test_no_private_names_imported_across_modules():
    bad = []
    for mod, path in MODULES.items():
        for target, names, line in _imports(path):
            if target.startswith("localentropy") and target != mod:
                bad += [f"{path.relative_to(ROOT)}:{line} imports {target}.{n}" for n in names
                        if n.startswith("_") and not n.startswith("__")]
    assert not bad, "\n".join(bad)


def test_the_package_imports_under_one_name():
    import localentropy
    import localentropy.bp
    import localentropy.committee

    assert isinstance(localentropy.__version__, str) and localentropy.__version__
    assert Path(localentropy.bp.__file__).resolve().parent.name == "bp"


@pytest.mark.slow
def test_the_wheel_has_one_top_level_package(tmp_path):
    """`pip wheel .` gives a wheel whose only top-level name is `localentropy` (with the data files)."""
    import subprocess
    import sys
    import zipfile

    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path), str(ROOT)], check=True)
    (wheel,) = tmp_path.glob("localentropy-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert tops == {"localentropy"}, tops
    for pkg in PACKAGES:
        assert f"localentropy/{pkg}/__init__.py" in names
    assert "localentropy/data/dresscoat.npz" in names
    assert not any(n.startswith("localentropy/tests/") for n in names)
    top_level = [n for n in names if n.endswith("top_level.txt")]
    if top_level:
        assert zipfile.ZipFile(wheel).read(top_level[0]).decode().split() == ["localentropy"]


def test_the_samplers_share_the_smc_driver_and_not_each_other():
    """entropic.smc holds the SMC over Δ; the committee's sampler and the one for any nn.Module build on it
    and are independent of each other (the three were one module before, with no shim left behind)."""
    graph = _edges()
    smc, cs, ms = (f"localentropy.entropic.{m}" for m in ("smc", "committee_sampling", "module_sampling"))
    assert {m for m in MODULES if m.startswith("localentropy.entropic.") and m.endswith("sampling")} == {cs, ms}
    assert smc in graph[cs] and smc in graph[ms]
    assert ms not in graph[cs] and cs not in graph[ms] and not graph[smc] & {cs, ms}
