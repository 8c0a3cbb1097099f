"""Finding a data set on disk: --data-dir, then $LOCALENTROPY_DATA, then data/raw, then system folders."""

from __future__ import annotations

import os
from pathlib import Path

from localentropy.data.errors import DataError
from localentropy.data.sources import DATASETS, IdxDataset

#: The default store (git-ignored): data/raw/ inside the repository / installed package.
RAW_DIR = Path(__file__).resolve().parent / "raw"
ENV_VAR = "LOCALENTROPY_DATA"


def search_roots(data_dir: str | os.PathLike | None = None) -> list[Path]:
    """The folders downloaded files are looked for under: ``data_dir`` alone when given (no silent
    fallback), else $LOCALENTROPY_DATA, then data/raw/."""
    if data_dir is not None:
        return [Path(data_dir)]
    return ([Path(os.environ[ENV_VAR])] if os.environ.get(ENV_VAR) else []) + [RAW_DIR]


def dataset(name: str) -> IdxDataset:
    try:
        return DATASETS[name]
    except KeyError:
        raise DataError(f"unknown data set {name!r}; known: {', '.join(sorted(DATASETS))}") from None


def file_in(folder: Path, name: str) -> Path | None:
    """``folder/name`` or ``folder/name.gz``, whichever exists (plain first)."""
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def candidate_dirs(ds: IdxDataset, data_dir: str | os.PathLike | None = None) -> list[Path]:
    """The folders searched, in order. A user-given folder is searched alone (no silent fallback)."""
    if data_dir is not None:
        root = Path(data_dir)
        return [root / ds.name, root]
    dirs: list[Path] = []
    env = os.environ.get(ENV_VAR)
    if env:
        dirs += [Path(env) / ds.name, Path(env)]
    dirs.append(RAW_DIR / ds.name)
    for sys_dir in ds.system_dirs:
        p = Path(sys_dir)
        dirs += [p] if p.is_absolute() else [Path.cwd() / p, RAW_DIR.parent.parent / p]
    return dirs


def find_dataset(name: str, data_dir: str | os.PathLike | None = None) -> dict[str, Path]:
    """Paths of the four IDX files of ``name`` (role -> path), from the first folder that has all four."""
    ds = dataset(name)
    searched = candidate_dirs(ds, data_dir)
    for folder in searched:
        found = {role: file_in(folder, fname) for role, fname in ds.files.items()}
        if all(found.values()):
            return found
    where = ", ".join(str(p) for p in searched)
    raise DataError(f"{name} not found (looked in {where}); to get it: {ds.how_to_get}")
