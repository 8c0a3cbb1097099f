"""Which flatness measure predicts generalisation? Every measure on the solutions of Figures 1 and 6.

For every solution of the committed figures (``results/figN/figN-solutions-<setting>.npz``) this
module computes every measure of ``localentropy.flatness`` (``flatness.committee.committee_measures``:
Hessian top eigenvalue and trace of Eq. 8's surrogate loss, PAC-Bayes σ′ plain and magnitude-aware of
the sign network's error, SAM and adaptive sharpness), cached per solution, and reads beside them, from
the figure's own CSV (``results/figN/figN.csv``), the numbers the figure reports for the same weights:
Φ_LE at the figure's compared δ (hard and soft treatments, importance sampling and BP), δE_train at
σ = 0.5, and the test error. The test error is also recomputed from the weights and must agree with
the CSV, so the rows are known to belong to these weights.

Statistics (``statistics``), per scope (Figure 1, Figure 6, and all distinct solutions of both):

- Pearson r and Kendall τ (τ_b) of each measure with the test error over the scope's solutions;
- Jiang et al. 2020's granulated Kendall τ: for each axis a of the hyper-parameters we vary
  (``AXES``: algorithm sgd/rsgd/esgd, schedule speed fast/slow, dropout probability), Ψ_a is the mean
  over the groups of settings that agree on every other axis of the Kendall τ within the group,
  computed over the pairs of solutions that differ in a (``cross_pair_tau``: with one solution per
  setting this is Jiang et al.'s τ; with 50 solutions per setting it is their τ averaged over every
  way of matching the seeds). Ψ is the mean of the Ψ_a. An axis value that is not defined (eSGD's
  schedule is neither the fast nor the slow one) leaves the solution out of that axis and matches
  any value of it when the other axes are grouped (eSGD is compared with the fast and with the slow
  settings on the algorithm axis);
- the mean Kendall τ within settings (solutions that differ only in their seed);
- 95 % bootstrap percentile intervals of all of these (solutions resampled with replacement within
  each setting, seeded), the ranking of the measures by their oriented Ψ and the share of
  bootstrap resamples in which each measure ranks first.

Directions: each measure states whether larger means sharper (expected correlation with test error
> 0) or flatter (< 0); "oriented" statistics are multiplied by that expected sign, so that a positive
oriented value always means "agrees with the flatness–generalisation hypothesis".
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import time
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from localentropy.data.atomic import atomic_open
from localentropy.figures.errors import FigureError

#: bump when the measures' numbers would change for the same inputs (the cache keys hold it)
MEASURES_VERSION = 1
FIGURES = ("1", "6")
SIGMA = 0.5  # δE_train is read at this σ (the figures' correlation)
AXES = ("algorithm", "speed", "dropout")
SCOPES = ("1", "6", "all")
BOOTSTRAP = 1000


@dataclass(frozen=True)
class Column:
    """A per-solution quantity compared with test error. ``sharper_is_larger``: larger = sharper."""

    name: str
    label: str
    sharper_is_larger: bool
    source: str  # "flatness": computed here; "figure": read from the figure's CSV

    @property
    def expected_sign(self) -> int:
        return 1 if self.sharper_is_larger else -1

    @property
    def direction(self) -> str:
        return "larger = sharper" if self.sharper_is_larger else "larger = flatter"


def columns(options: Optional[dict] = None) -> tuple[Column, ...]:
    """The compared quantities: every flatness measure (labelled with its radius ρ for the sharpness ones, from
    ``options``, default the defaults), δE_train and the four Φ_LE."""
    from localentropy.flatness.committee import DEFAULT_OPTIONS, MEASURES

    def label(m):
        o = dict(DEFAULT_OPTIONS[m.name], **((options or {}).get(m.name) or {}))
        return f"{m.label} (ρ = {o['rho']:g})" if "rho" in o else m.label

    return tuple(Column(m.name, label(m), m.sharper_is_larger, "flatness") for m in MEASURES) + (
        Column("delta_train_error", f"δE_train (σ = {SIGMA})", True, "figure"),
        Column("phi_le_hard", "Φ_LE hard (importance sampling)", False, "figure"),
        Column("phi_le_hard_bp", "Φ_LE hard (BP)", False, "figure"),
        Column("phi_le_soft", "Φ_LE soft, β = 10 (importance sampling)", False, "figure"),
        Column("phi_le_soft_bp", "Φ_LE soft, β = 10 (BP)", False, "figure"),
    )


@dataclass
class Record:
    """One solution: where it comes from, its axes, test error, and every column's value."""

    figure: str
    setting: str
    restart: int
    algorithm: str
    speed: Optional[str]
    dropout: float
    test_error: float
    train_error: float
    source: str  # "weights:<sha256>" of the float64 weights
    weights: np.ndarray = field(repr=False)
    values: dict = field(default_factory=dict)
    uncertainty: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)
    details: dict = field(default_factory=dict)

    def axis(self, name: str):
        return {"algorithm": self.algorithm, "speed": self.speed, "dropout": self.dropout}[name]


@dataclass
class MeasuresData:
    records: list  # every solution of every figure, in figure, setting, file order
    dstar: dict  # figure → compared δ
    options: dict  # beta, omega, seed, dtype, per-measure options
    checks: list  # lines: what was checked against the figures' numbers
    wall: dict
    reused: tuple  # (solutions found in the cache, solutions needed)
    energy_seconds: list = field(default_factory=list)  # measured δE_train seconds per timed solution


# ---- the figures' own numbers, from their CSV ------------------------------------------------------------

def _interp(d, phi, delta) -> float:
    """Φ_LE interpolated in log δ at ``delta``, NaN outside the converged range (``figures.report.phi_at``)."""
    if len(d) < 2:
        return math.nan
    order = np.argsort(d)
    d, phi = np.asarray(d)[order], np.asarray(phi)[order]
    if not d[0] <= delta <= d[-1]:
        return math.nan
    return float(np.interp(math.log(delta), np.log(d), phi))


def read_figure_csv(path) -> tuple[dict, float, np.ndarray]:
    """The per-solution numbers of a figure's CSV: {(setting, restart): {quantity: value}}, the compared δ,
    and the σ grid of δE_train.

    The compared δ is recomputed as ``figures.report.correlation_delta`` does, from the figure's own
    estimator's hard curves (quantity ``phi_le_hard``); Φ_LE of every curve quantity is interpolated
    there in log δ. δE_train is the row at σ = 0.5.
    """
    path = Path(path)
    if not path.is_file():
        raise FigureError(f"{path}: no such figure CSV (a figure's output folder holds it)")
    curves: dict = {}
    out: dict = {}
    sigmas = set()
    try:
        with open(path, newline="") as fh:
            reader = csv.DictReader(fh)
            need = {"figure", "setting", "restart", "quantity", "x", "y"}
            if reader.fieldnames is None or not need <= set(reader.fieldnames):
                raise FigureError(f"{path}: not a figure CSV (columns {', '.join(sorted(need))} needed)")
            for row in reader:
                if not row["restart"]:
                    continue
                key = (row["setting"], int(row["restart"]))
                q = row["quantity"]
                if q in ("phi_le_hard", "phi_le_hard_bp", "phi_le_soft", "phi_le_soft_bp"):
                    curves.setdefault(key, {}).setdefault(q, []).append((float(row["x"]), float(row["y"])))
                elif q == "delta_train_error":
                    sigmas.add(float(row["x"]))
                    if abs(float(row["x"]) - SIGMA) < 1e-9:
                        out.setdefault(key, {})["delta_train_error"] = float(row["y"])
                elif q in ("test_error", "train_error"):
                    out.setdefault(key, {})[q] = float(row["y"])
    except (OSError, UnicodeDecodeError, ValueError, csv.Error) as exc:
        raise FigureError(f"{path}: cannot read as a figure CSV ({exc})") from None
    lows, highs = [], []
    for key, c in curves.items():
        pts = c.get("phi_le_hard", [])
        if len(pts) >= 2:
            d = [p[0] for p in pts]
            lows.append(min(d))
            highs.append(max(d))
    if not lows:
        raise FigureError(f"{path}: no Φ_LE curves (quantity phi_le_hard) to read")
    lo, hi = max(lows), min(highs)
    dstar = float(math.sqrt(lo * hi)) if hi > lo else float(np.median(highs))
    for key, c in curves.items():
        for q, pts in c.items():
            out.setdefault(key, {})[q] = _interp([p[0] for p in pts], [p[1] for p in pts], dstar)
    return out, dstar, np.array(sorted(sigmas))


def _speed(preset_name: str) -> Optional[str]:
    for s in ("fast", "slow"):
        if preset_name.endswith("-" + s):
            return s
    return None


def load_figure(figure: str, folder, data, limit: Optional[int] = None) -> tuple[list, float, dict]:
    """The solutions of Figure ``figure`` in ``folder`` as Records (the first ``limit`` of each setting),
    with the figure's numbers read from ``folder/figN.csv``; every solution's test error recomputed from its
    weights and checked against the CSV. Returns (records, compared δ, {"sigmas": the σ grid of δE_train,
    "seed": the seed the solutions were drawn with})."""
    from localentropy.committee.errors import CommitteeError
    from localentropy.committee.evaluate import solution_errors
    from localentropy.committee.solutions import load_solutions
    from localentropy.data import patterns_hash
    from localentropy.figures.pipeline import solution_files, weights_source

    folder = Path(folder)
    files = solution_files(folder, figure)
    table, dstar, sigmas = read_figure_csv(folder / f"fig{figure}.csv")
    data_hash = patterns_hash(data.X_train, data.y_train)
    records, seeds = [], set()
    for path in files:
        try:
            sol = load_solutions(path)
        except (CommitteeError, FileNotFoundError) as exc:
            raise FigureError(str(exc)) from None
        if sol.patterns_hash != data_hash:
            raise FigureError(f"{path}: trained on other patterns than the embedded data set")
        meta = sol.metadata
        seeds.add(int(meta.get("seed", 0)))
        label = meta.get("figure_setting") or meta.get("setting")
        hyper = meta.get("hyperparameters")
        if not isinstance(label, str) or not isinstance(hyper, dict) or "algorithm" not in hyper:
            raise FigureError(f"{path}: metadata lacks the setting's label or hyper-parameters")
        ids = meta.get("restart_ids") or list(range(sol.restarts))
        status = sol.status or ["converged"] * sol.restarts
        n = sol.restarts if limit is None else min(limit, sol.restarts)
        W = np.asarray(sol.weights[:n], dtype=np.float64)
        test = solution_errors(W, data.X_test, data.y_test)
        for i in range(n):
            if status[i] != "converged":
                continue
            key = (label, int(ids[i]))
            row = table.get(key)
            if row is None or "test_error" not in row:
                raise FigureError(f"{folder / f'fig{figure}.csv'}: no row for {label} restart {ids[i]} of {path.name}")
            if abs(row["test_error"] - float(test[i])) > 1e-9:
                raise FigureError(f"{path.name}: {label} restart {ids[i]} has test error {test[i]:.6f} by its weights, "
                                  f"{row['test_error']:.6f} in fig{figure}.csv: the CSV is not these solutions'")
            rec = Record(figure=figure, setting=label, restart=int(ids[i]), algorithm=str(hyper["algorithm"]),
                         speed=_speed(str(hyper.get("name", label))), dropout=float(hyper.get("dropout", 0.0)),
                         test_error=float(test[i]), train_error=float(row.get("train_error", math.nan)),
                         source=weights_source(W[i]), weights=W[i])
            for q in ("delta_train_error", "phi_le_hard", "phi_le_hard_bp", "phi_le_soft", "phi_le_soft_bp"):
                rec.values[q] = float(row.get(q, math.nan))
            records.append(rec)
    if len(seeds) != 1:
        raise FigureError(f"{folder}: solutions drawn with different seeds {sorted(seeds)}")
    return records, dstar, {"sigmas": sigmas, "seed": seeds.pop()}


# ---- the measures' cache: one .npz per solution ----------------------------------------------------------

def _canonical(obj):
    """JSON-able and exact: floats as hexadecimal (``figures.cache``'s convention), arrays as lists."""
    if isinstance(obj, dict):
        return {str(k): _canonical(v) for k, v in sorted(obj.items())}
    if isinstance(obj, (list, tuple, np.ndarray)):
        return [_canonical(v) for v in (obj.tolist() if isinstance(obj, np.ndarray) else obj)]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return repr(f) if not math.isfinite(f) else float.hex(f)
    return obj


class MeasureCache:
    """One entry per solution under ``root/kk/key.npz``, key = SHA-256 of the weights' hash, the data's hash,
    (β, ω, seed, dtype) and ``MEASURES_VERSION``; the entry holds each measure's options and result, so
    a measure asked with other options is computed again (and the entry rewritten) while the others are
    reused. Entries are a JSON string in an .npz, written atomically, read with ``allow_pickle=False``;
    an unreadable one is moved to ``root/corrupt/`` and computed again (as ``figures.cache.StageCache``)."""

    def __init__(self, root):
        self.root = Path(root)
        self.moved: list = []

    @staticmethod
    def key(source: str, data_hash: str, settings: dict) -> str:
        text = json.dumps({"stage": "measures", "version": MEASURES_VERSION, "weights": source, "data": data_hash,
                           "settings": _canonical(settings)}, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npz"

    def load(self, key: str) -> dict:
        """The entry's measures {name: {"options": ..., "result": ...}} ({} when absent or unreadable)."""
        path = self.path(key)
        if not path.is_file():
            return {}
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(str(z["__meta__"]))
            if meta.get("key") != key or not isinstance(meta.get("measures"), dict):
                raise ValueError("holds another key")
            return meta["measures"]
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            aside = self.root / "corrupt" / path.name
            aside.parent.mkdir(parents=True, exist_ok=True)
            path.replace(aside)
            self.moved.append((path, aside, f"{type(exc).__name__}: {exc}"))
            return {}

    def save(self, key: str, measures: dict, meta: dict) -> Path:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        body = dict(meta, key=key, version=MEASURES_VERSION, measures=measures)
        with atomic_open(path) as fh:
            np.savez_compressed(fh, __meta__=np.array(json.dumps(body, sort_keys=True, default=str)))
        return path


def _opts_text(opts: dict) -> str:
    return json.dumps(_canonical(opts), sort_keys=True, separators=(",", ":"))


def _measure_batch(weights_list, names_list, X, y, beta, omega, seed, options):
    """A worker's task: committee_measures of several solutions on one torch thread."""
    import torch

    from localentropy.flatness.committee import committee_measures

    torch.set_num_threads(1)
    return [committee_measures(w, X, y, beta=beta, omega=omega, measures=names, options=options, seed=seed)
            for w, names in zip(weights_list, names_list)]


def _energy_check(records, data, sigmas, draws, seed):
    """δE_train at σ = 0.5 recomputed (the figure stage's own call) for the first solution of each setting:
    (lines, seconds per solution). Equal numbers show that the figure's δE_train is of these weights."""
    from localentropy.committee.evaluate import local_energy_profiles
    from localentropy.committee.train import restart_seed

    firsts, seen = [], set()
    for r in records:
        if (r.figure, r.setting) not in seen:
            seen.add((r.figure, r.setting))
            firsts.append(r)
    worst, secs = 0.0, []
    j = int(np.argmin(np.abs(sigmas - SIGMA)))
    for r in firsts:
        t0 = time.process_time()
        prof = local_energy_profiles(r.weights[None], data.X_train, data.y_train, sigmas, draws=draws,
                                     seed=restart_seed(seed, r.restart))
        secs.append(time.process_time() - t0)
        worst = max(worst, abs(float(prof.delta_error[0, j]) - r.values["delta_train_error"]))
    line = (f"δE_train at σ = {SIGMA} recomputed from the weights for the first solution of each of the "
            f"{len(firsts)} settings ({draws} draws, the figure's seed {seed}): largest difference from the figure's "
            f"CSV {worst:.3g}")
    if worst > 1e-12:  # the test errors already tie the CSV to the weights: other draws or seeds, most likely
        line += " (NOT equal: the figure was drawn with other draws or another seed than the defaults)"
    return [line], secs


def compute_measures(figures=FIGURES, results="results", cache_dir="out/measures/cache", *, jobs: int = 1,
                     limit: Optional[int] = None, beta: Optional[float] = None, omega: Optional[float] = None,
                     seed: int = 0, options: Optional[dict] = None, data=None,
                     progress: Optional[Callable[[int, int, str], None]] = None,
                     notify: Optional[Callable[[str], None]] = None, check_energy: bool = True) -> MeasuresData:
    """Every measure of every solution of ``figures`` (folders ``results/figN``), from the cache or computed.

    Each solution's measures are stored as soon as they are done (an interrupted run resumes); a solution
    that appears in two figures (Figure 6's p = 0 is Figure 1's sgd-fast) is computed once. ``jobs``
    processes of one torch thread each. ``limit``: the first that many solutions of each setting.
    ``progress(done, total, detail)`` after each computed solution; ``notify(text)`` hears what the
    cache held. ``check_energy``: recompute δE_train for one solution per setting (module docstring).
    """
    from localentropy.data import load_dresscoat, patterns_hash
    from localentropy.figures.spec import DRAWS
    from localentropy.flatness.committee import BETA, MEASURE_NAMES, OMEGA, check_options
    from localentropy.flatness.errors import FlatnessError

    figures = tuple(str(f) for f in figures)
    bad = [f for f in figures if f not in FIGURES]
    if bad or not figures or len(set(figures)) != len(figures):
        raise FigureError(f"figures must be distinct ones of {', '.join(FIGURES)}, got {', '.join(figures) or '(none)'}")
    if limit is not None and (isinstance(limit, bool) or int(limit) != limit or limit < 2):
        raise FigureError(f"the solutions per setting must be an integer >= 2, got {limit}")
    beta = BETA if beta is None else float(beta)
    omega = OMEGA if omega is None else float(omega)
    for name, v in (("beta", beta), ("omega", omega)):
        if not (math.isfinite(v) and v > 0):
            raise FigureError(f"{name} must be finite and > 0, got {v}")
    try:
        opts = check_options(options)
    except FlatnessError as exc:
        raise FigureError(str(exc)) from None
    results = Path(results)
    folders = {f: results / f"fig{f}" for f in figures}
    for f, folder in folders.items():
        if not folder.is_dir():
            raise FigureError(f"{folder}: no such folder (the committed figure {f} lives in results/fig{f})")
    ds = data if data is not None else load_dresscoat()
    data_hash = patterns_hash(ds.X_train, ds.y_train)
    t0 = time.perf_counter()
    records, dstar, sigmas = [], {}, {}
    for f in figures:
        recs, dstar[f], sigmas[f] = load_figure(f, folders[f], ds, limit)
        records += recs
    wall = {"load": time.perf_counter() - t0}
    checks = [f"Test errors recomputed from the weights of all {len(records)} solutions: equal to the figures' CSV."]
    energy_seconds: list = []
    if check_energy:
        t1 = time.perf_counter()
        for f in figures:
            lines, secs = _energy_check([r for r in records if r.figure == f], ds, sigmas[f]["sigmas"], DRAWS,
                                        sigmas[f]["seed"])
            checks += [f"Figure {f}: " + lines[0] + "."]
            energy_seconds += secs
        wall["energy check"] = time.perf_counter() - t1

    settings = {"beta": beta, "omega": omega, "seed": int(seed), "dtype": "float64"}
    cache = MeasureCache(cache_dir)
    unique: dict = {}
    for r in records:
        unique.setdefault(r.source, r)
    want_text = {n: _opts_text(opts[n]) for n in MEASURE_NAMES}
    entries, todo = {}, []
    for src, r in unique.items():
        key = MeasureCache.key(src, data_hash, settings)
        have = cache.load(key)
        entries[src] = (key, have)
        missing = [n for n in MEASURE_NAMES if n not in have or have[n].get("options") != want_text[n]]
        if missing:
            todo.append((src, missing))
    for path, aside, why in cache.moved:
        if notify is not None:
            notify(f"unreadable cache entry {path} moved to {aside} ({why}); computing it again")
    reused = (len(unique) - len(todo), len(unique))
    if notify is not None:
        notify(f"cache: {reused[0]}/{reused[1]} solutions' measures reused")

    def keep(src, res):
        key, have = entries[src]
        r = unique[src]
        for n, v in res.items():
            if not n.startswith("_"):
                have[n] = {"options": want_text[n], "result": v}
        have["_loss0"] = {"options": "", "result": res.get("_loss0")}
        have["_error0"] = {"options": "", "result": res.get("_error0")}
        cache.save(key, have, {"setting": r.setting, "restart": r.restart, "figure": r.figure,
                               "settings": settings, "data": data_hash})

    t2 = time.perf_counter()
    Xtr, ytr = ds.X_train, ds.y_train
    try:
        workers = max(1, min(int(jobs or 1), len(todo)))
        if workers == 1:
            for i, (src, names) in enumerate(todo):
                res = _measure_batch([unique[src].weights], [names], Xtr, ytr, beta, omega, seed, opts)[0]
                keep(src, res)
                if progress is not None:
                    progress(i + 1, len(todo), f"{unique[src].setting} restart {unique[src].restart}")
        elif todo:
            from localentropy.workers import WorkerPool

            step = 4
            batches = [todo[i:i + step] for i in range(0, len(todo), step)]
            with WorkerPool(workers) as pool:
                task = {pool.submit(_measure_batch, [unique[s].weights for s, _ in b], [n for _, n in b], Xtr, ytr,
                                    beta, omega, seed, opts): b for b in batches}
                pending, done = list(task), 0
                while pending:
                    for fut in pool.wait_any(pending):
                        pending.remove(fut)
                        for (src, _), res in zip(task[fut], fut.get()):
                            keep(src, res)
                        done += len(task[fut])
                        if progress is not None:
                            b = task[fut][-1][0]
                            progress(done, len(todo), f"{unique[b].setting} restart {unique[b].restart}")
    except FlatnessError as exc:
        raise FigureError(str(exc)) from None
    wall["measures"] = time.perf_counter() - t2
    for r in records:
        _, have = entries[r.source]
        for n in MEASURE_NAMES:
            res = have[n]["result"]
            r.values[n] = float(res["value"])
            r.uncertainty[n] = float(res["uncertainty"]) if res.get("uncertainty") is not None else math.nan
            r.seconds[n] = float(res["seconds"])
            r.details[n] = {k: v for k, v in res.items() if k not in ("value", "uncertainty", "seconds")}
        r.details["loss0"] = have.get("_loss0", {}).get("result")
        r.details["error0"] = have.get("_error0", {}).get("result")
    return MeasuresData(records, dstar, {"beta": beta, "omega": omega, "seed": int(seed), "dtype": "float64",
                                         "measures": opts, "bootstrap": None},
                        checks, wall, reused, energy_seconds)


# ---- statistics -------------------------------------------------------------------------------------------

def cross_pair_tau(x, y, codes):
    """Kendall's τ over the pairs (i, j) with codes[i] ≠ codes[j]: Σ sign(x_i − x_j) sign(y_i − y_j) / #pairs
    (ties count 0; pairs where x or y is not finite are left out; NaN without pairs). x may be (M, n): one τ
    per row."""
    x = np.asarray(x, dtype=float)
    one = x.ndim == 1
    x = np.atleast_2d(x)
    y = np.asarray(y, dtype=float)
    codes = np.asarray(codes)
    ok = np.isfinite(x) & np.isfinite(y)[None, :]  # (M, n)
    mask = (codes[:, None] != codes[None, :])[None] & ok[:, :, None] & ok[:, None, :]  # (M, n, n)
    with np.errstate(invalid="ignore"):
        sx = np.sign(x[:, :, None] - x[:, None, :])
        sy = np.sign(y[:, None] - y[None, :])[None]
        prod = np.where(mask, sx * sy, 0.0)
    n = mask.sum(axis=(1, 2))
    out = np.where(n > 0, prod.sum(axis=(1, 2)) / np.maximum(n, 1), np.nan)
    return float(out[0]) if one else out


def axis_groups(axis_values: dict, axis: str) -> list[np.ndarray]:
    """The groups of solution indices for granulated τ along ``axis`` (module docstring): for each
    combination of the other axes' values (of the solutions that define them all), the solutions that
    define ``axis`` and agree with the combination (an undefined value, None, agrees with any)."""
    others = [a for a in axis_values if a != axis]
    vals = {a: list(axis_values[a]) for a in axis_values}
    n = len(vals[axis])
    combos = sorted({tuple(vals[a][i] for a in others) for i in range(n) if all(vals[a][i] is not None for a in others)},
                    key=repr)
    groups = []
    for c in combos:
        idx = [i for i in range(n) if vals[axis][i] is not None
               and all(vals[a][i] is None or vals[a][i] == c[k] for k, a in enumerate(others))]
        if len({vals[axis][i] for i in idx}) >= 2:
            groups.append(np.array(idx, dtype=np.int64))
    return groups


def granulated_tau(x, y, axis_values: dict) -> dict:
    """Jiang et al.'s granulated τ: {axis: Ψ_a} for every axis along which some group varies, and "psi",
    their mean. x (n,) or (M, n); axis_values: axis → sequence of n values (None: undefined)."""
    out = {}
    codes_of = {a: _codes(v) for a, v in axis_values.items()}
    for a in axis_values:
        groups = axis_groups(axis_values, a)
        if not groups:
            continue
        taus = [cross_pair_tau(np.asarray(x)[..., g], np.asarray(y)[g], codes_of[a][g]) for g in groups]
        out[a] = _nanmean(np.array(taus, dtype=float))
    if out:
        out["psi"] = _nanmean(np.array([out[a] for a in axis_values if a in out], dtype=float))
    return out


def _nanmean(a: np.ndarray):
    """Mean over the first axis ignoring NaN (NaN where all are NaN, without a warning)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        m = np.nanmean(a, axis=0)
    return float(m) if np.ndim(m) == 0 else m


def _codes(values) -> np.ndarray:
    seen: dict = {}
    return np.array([-1 if v is None else seen.setdefault(v, len(seen)) for v in values], dtype=np.int64)


def kendall_tau_b(X, y):
    """Kendall's τ_b of each row of X (M, n) with y (n,), over the pairs where both are finite; NaN with fewer
    than 3 such samples or no spread. Σ_{i<j} sign(Δx) sign(Δy) / √(#pairs untied in x · #pairs untied in y):
    scipy's ``kendalltau``, vectorised over the rows (a bootstrap calls it thousands of times)."""
    X = np.atleast_2d(np.asarray(X, dtype=float))
    y = np.asarray(y, dtype=float)
    ok = np.isfinite(X) & np.isfinite(y)[None, :]
    both = ok[:, :, None] & ok[:, None, :]
    with np.errstate(invalid="ignore"):
        sx = np.where(both, np.sign(X[:, :, None] - X[:, None, :]), 0.0)
        sy = np.where(both, np.sign(y[:, None] - y[None, :])[None], 0.0)
    num = (sx * sy).sum(axis=(1, 2))
    den = np.sqrt(np.abs(sx).sum(axis=(1, 2)) * np.abs(sy).sum(axis=(1, 2)))
    with np.errstate(invalid="ignore", divide="ignore"):
        tau = np.where((ok.sum(axis=1) >= 3) & (den > 0), num / np.where(den > 0, den, 1.0), np.nan)
    return tau


def _pearson_rows(X, y):
    out = np.full(X.shape[0], np.nan)
    for m in range(X.shape[0]):
        ok = np.isfinite(X[m]) & np.isfinite(y)
        if ok.sum() >= 3 and np.ptp(X[m][ok]) > 0 and np.ptp(y[ok]) > 0:
            out[m] = float(np.corrcoef(X[m][ok], y[ok])[0, 1])
    return out


def _within_rows(X, y, strata):
    """Mean over strata of each row's Kendall τ_b within the stratum (NaN strata left out)."""
    taus = np.array([kendall_tau_b(X[:, strata == s], y[strata == s]) for s in np.unique(strata)])
    return _nanmean(taus)


def scope_records(records, scope: str) -> list:
    """The records of a scope: one figure's, or ("all") every distinct solution once (the first figure's)."""
    if scope != "all":
        return [r for r in records if r.figure == scope]
    seen, out = set(), []
    for r in records:
        if r.source not in seen:
            seen.add(r.source)
            out.append(r)
    return out


@dataclass
class Stat:
    estimate: float
    lo: float
    hi: float


def _point_stats(X, y, strata, axis_values):
    """Every statistic of every column (rows of X) on one sample: dict name → array (M,)."""
    M = X.shape[0]
    gran = granulated_tau(X, y, axis_values)
    out = {"r": _pearson_rows(X, y), "tau": kendall_tau_b(X, y),
           "tau_within": np.asarray(_within_rows(X, y, strata), dtype=float).reshape(M)}
    for a in AXES:
        out[f"psi_{a}"] = np.asarray(gran.get(a, np.full(M, np.nan)), dtype=float).reshape(M)
    out["psi"] = np.asarray(gran.get("psi", np.full(M, np.nan)), dtype=float).reshape(M)
    return out


STATISTICS = ("r", "tau", "psi_algorithm", "psi_speed", "psi_dropout", "psi", "tau_within", "psi_gap")


def statistics(records, cols=None, *, scopes=SCOPES, bootstrap: int = BOOTSTRAP, seed: int = 0,
               progress: Optional[Callable[[int, int, str], None]] = None) -> dict:
    """{scope: {"n", "columns", "stats": {column: {statistic: Stat}}, "ranking": [...], "p_first": {...}}}.

    Statistics (``STATISTICS``) as in the module docstring; intervals: 2.5 and 97.5 percentiles over
    ``bootstrap`` resamples of the solutions within each setting (numpy generator seeded by ``seed``).
    The ranking orders the columns by their oriented Ψ (expected sign × Ψ), then oriented τ;
    ``p_first`` is each column's share of resamples in which its oriented Ψ is the largest.
    """
    cols = tuple(columns() if cols is None else cols)
    out = {}
    rng = np.random.default_rng([int(seed), 2020])
    for scope in scopes:
        recs = scope_records(records, scope)
        if not recs:
            continue
        X = np.array([[r.values.get(c.name, math.nan) for r in recs] for c in cols], dtype=float)
        y = np.array([r.test_error for r in recs], dtype=float)
        labels = [f"{r.figure}:{r.setting}" for r in recs]
        strata = _codes(labels)
        axis_values = {a: [r.axis(a) for r in recs] for a in AXES}
        point = _point_stats(X, y, strata, axis_values)
        boots = {k: np.full((bootstrap, len(cols)), np.nan) for k in point}
        members = [np.flatnonzero(strata == s) for s in np.unique(strata)]
        for b in range(bootstrap):
            idx = np.concatenate([rng.choice(m, size=len(m), replace=True) for m in members])
            res = _point_stats(X[:, idx], y[idx], strata[idx], {a: [v[i] for i in idx] for a, v in axis_values.items()})
            for k in res:
                boots[k][b] = res[k]
            if progress is not None:
                progress(b + 1, bootstrap, f"bootstrap ({'all' if scope == 'all' else 'figure ' + scope})")
        stats = {}
        for j, c in enumerate(cols):
            stats[c.name] = {}
            for k in point:
                col = boots[k][:, j]
                col = col[np.isfinite(col)]
                lo, hi = (np.percentile(col, [2.5, 97.5]) if col.size else (math.nan, math.nan))
                stats[c.name][k] = Stat(float(point[k][j]), float(lo), float(hi))
        sign = np.array([c.expected_sign for c in cols], dtype=float)
        key_psi = np.nan_to_num(point["psi"] * sign, nan=-np.inf)
        key_tau = np.nan_to_num(point["tau"] * sign, nan=-np.inf)
        order = sorted(range(len(cols)), key=lambda j: (key_psi[j], key_tau[j]), reverse=True)
        oriented = np.nan_to_num(boots["psi"] * sign, nan=-np.inf)
        first = np.argmax(oriented, axis=1)
        p_first = {c.name: float(np.mean(first == j)) for j, c in enumerate(cols)}
        # the gap to the first-ranked measure, oriented, with its paired bootstrap interval (same resamples)
        j0 = order[0]
        for j, c in enumerate(cols):
            gap = (boots["psi"][:, j0] * sign[j0]) - (boots["psi"][:, j] * sign[j])
            gap = gap[np.isfinite(gap)]
            lo, hi = (np.percentile(gap, [2.5, 97.5]) if gap.size else (math.nan, math.nan))
            stats[c.name]["psi_gap"] = Stat(float(point["psi"][j0] * sign[j0] - point["psi"][j] * sign[j]),
                                            float(lo), float(hi))
        out[scope] = {"n": len(recs), "settings": list(dict.fromkeys(labels)), "columns": cols, "stats": stats,
                      "ranking": [cols[j].name for j in order], "p_first": p_first}
    return out


# ---- outputs ----------------------------------------------------------------------------------------------

def _f(x, digits=3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–" if x is None or math.isnan(x) else ("∞" if x > 0 else "−∞")
    return f"{x:.{digits}f}"


def _ci(s: Stat, sign: int = 1) -> str:
    if not math.isfinite(s.estimate):
        return "–"
    lo, hi = sorted((sign * s.lo, sign * s.hi))
    return f"{sign * s.estimate:+.3f} [{lo:+.3f}, {hi:+.3f}]"


def cost_table(data: MeasuresData) -> dict:
    """Median CPU seconds per solution of each flatness measure over the distinct solutions; δE_train's
    from the energy check (one solution per setting)."""
    recs = scope_records(data.records, "all")
    out = {}
    for c in columns():
        if c.source == "flatness":
            out[c.name] = float(np.median([r.seconds[c.name] for r in recs]))
    if data.energy_seconds:
        out["delta_train_error"] = float(np.median(data.energy_seconds))
    return out


def summary(data: MeasuresData, stats: dict, command: str, wall: dict, bootstrap: int) -> str:
    from localentropy.figures.report import code_version

    cols = columns(data.options["measures"])
    opts = data.options
    costs = cost_table(data)
    n_unique = len(scope_records(data.records, "all"))
    lines = ["# Which flatness measure predicts generalisation? (committee machines, Figures 1 and 6)", "",
             f"Command: `{command}`", "", f"Code version: {code_version()}", "",
             "Wall time: " + ", ".join(f"{k} {v:.1f} s" for k, v in wall.items()), "",
             f"Solutions: {len(data.records)} ({n_unique} distinct: Figure 6's p = 0 setting holds Figure 1's "
             f"sgd-fast solutions); cache: {data.reused[0]}/{data.reused[1]} distinct solutions' measures reused.", "",
             "## What is computed", "",
             f"- Loss-based measures (Hessian, SAM, adaptive sharpness): paper 000's Eq. 8 loss of the tanh(β·) "
             f"surrogate of Eq. 7 at one β = {opts['beta']:g}, ω = {opts['omega']:g} for every solution, on the "
             f"500 training patterns, float64, seed {opts['seed']}. PAC-Bayes σ′: the exact sign network's 0-1 "
             f"training error, threshold +{opts['measures']['pacbayes_sigma']['deviation']:g}, "
             f"{opts['measures']['pacbayes_sigma']['draws']} noise draws per σ.",
             "- Options per measure: " + "; ".join(f"{n} {json.dumps(o, sort_keys=True)}" for n, o in opts["measures"].items()) + ".",
             "- From the figures' CSVs (the same weights): δE_train at σ = 0.5; Φ_LE per weight at the compared δ "
             + ", ".join(f"{d:.4g} (Figure {f})" for f, d in data.dstar.items())
             + ", importance sampling and BP, hard and soft treatments (Figure 6's hard treatment drops its own "
               "patterns; in the pooled scope a solution of both figures counts once, with Figure 1's numbers).",
             f"- Statistics against test error; 95 % intervals from {bootstrap} bootstrap resamples of the solutions "
             "within each setting. Ψ_a: Jiang et al.'s granulated τ along axis a (pairs of solutions that differ "
             "in a, the other axes equal; eSGD, whose schedule is neither fast nor slow, is compared with both on "
             "the algorithm axis); Ψ the mean over the axes varied in the scope; τ within: the mean Kendall τ "
             "within settings (seeds only).",
             "- Sign convention: each measure's direction is stated; the table shows r, τ and Ψ *oriented* "
             "(multiplied by the expected sign: + for larger = sharper, − for larger = flatter), so positive "
             "always means \"flatter solutions generalise better\".", ""]
    lines += ["## Checks", ""] + [f"- {c}" for c in data.checks] + [""]
    for scope, st in stats.items():
        title = {"1": "Figure 1 (algorithm × schedule speed)", "6": "Figure 6 (dropout)",
                 "all": "All distinct solutions of Figures 1 and 6"}[scope]
        axes = [a for a in AXES if any(math.isfinite(st["stats"][c.name][f"psi_{a}"].estimate) for c in cols)]
        lines += [f"## {title}: n = {st['n']}", "",
                  "Oriented statistics (positive = flatter generalises better), estimate [95 % CI]; \"Ψ of the first "
                  "− Ψ\": the gap to the first-ranked measure's oriented Ψ, with its paired bootstrap interval (an "
                  "interval containing 0: not distinguishable from the first); P(first): the share of resamples in "
                  "which the measure's oriented Ψ is the largest:", "",
                  "| rank | measure | direction | r | Kendall τ | " + " | ".join(f"Ψ {a}" for a in axes)
                  + " | Ψ (granulated) | Ψ of the first − Ψ | τ within settings | P(first) | CPU s / solution |",
                  "|---|---|---|---|---|" + "---|" * len(axes) + "---|---|---|---|---|"]
        by = {c.name: c for c in cols}
        for rank, name in enumerate(st["ranking"], 1):
            c, s = by[name], st["stats"][name]
            e = c.expected_sign
            cost = costs.get(name)
            cost_text = (f"{cost:.3f}" if cost is not None else "figure CSV")
            lines.append(f"| {rank} | {c.label} | {c.direction} | {_ci(s['r'], e)} | {_ci(s['tau'], e)} | "
                         + " | ".join(_ci(s[f'psi_{a}'], e) for a in axes)
                         + f" | {_ci(s['psi'], e)} | {_ci(s['psi_gap']) if rank > 1 else '–'} | {_ci(s['tau_within'], e)} | "
                         f"{st['p_first'][name]:.2f} | {cost_text} |")
        lines.append("")
    cpu = sum(sum(r.seconds.values()) for r in scope_records(data.records, "all"))
    lines += ["## Per-measure details", "",
              f"- Every flatness measure of the {n_unique} distinct solutions took {cpu:.0f} s of CPU time in all when "
              "it was computed (the cache keeps each measure's time; this run reused "
              f"{data.reused[0]} of {data.reused[1]} solutions).",
              "- Hessian λ_max: Lanczos converged (residual ≤ 1e-3·λ) for "
              f"{sum(bool(r.details['hessian_lambda_max'].get('converged')) for r in scope_records(data.records, 'all'))}"
              f" of {n_unique} solutions.",
              "- PAC-Bayes σ′ censored (bound kept or broken over the whole σ range): isotropic "
              f"{sum(bool(r.details['pacbayes_sigma'].get('censored')) for r in scope_records(data.records, 'all'))}, "
              f"magnitude-aware {sum(bool(r.details['pacbayes_mag_sigma'].get('censored')) for r in scope_records(data.records, 'all'))}.",
              "- CPU s / solution: median process CPU time of one solution's measure on one torch thread (δE_train: "
              "the figures' local-energy stage, 11 σ × 200 draws, timed on one solution per setting). Φ_LE: read from "
              "the figures; its cost per curve is in docs/flatness.md.", ""]
    return "\n".join(lines)


def write_csvs(data: MeasuresData, stats: dict, out_dir: Path) -> list[Path]:
    cols = columns()
    sol_path = out_dir / "measures-solutions.csv"
    with atomic_open(sol_path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["figure", "setting", "restart", "algorithm", "speed", "dropout", "test_error", "train_error",
                    "quantity", "value", "uncertainty", "cpu_seconds", "detail"])
        for r in data.records:
            for c in cols:
                unc = r.uncertainty.get(c.name, math.nan)
                detail = r.details.get(c.name)
                w.writerow([r.figure, r.setting, r.restart, r.algorithm, r.speed or "", repr(r.dropout),
                            repr(r.test_error), repr(r.train_error), c.name, repr(r.values.get(c.name, math.nan)),
                            "" if not math.isfinite(unc) else repr(unc),
                            repr(r.seconds[c.name]) if c.name in r.seconds else "",
                            json.dumps(detail, sort_keys=True) if detail else ""])
            for q in ("loss0", "error0"):
                w.writerow([r.figure, r.setting, r.restart, r.algorithm, r.speed or "", repr(r.dropout),
                            repr(r.test_error), repr(r.train_error), q, repr(r.details.get(q)), "", "", ""])
    st_path = out_dir / "measures-stats.csv"
    with atomic_open(st_path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["scope", "n", "measure", "direction", "expected_sign", "statistic", "estimate", "ci_lo", "ci_hi",
                    "oriented", "oriented_ci_lo", "oriented_ci_hi", "rank", "p_first"])
        for scope, st in stats.items():
            for c in cols:
                rank = st["ranking"].index(c.name) + 1
                for k in STATISTICS:
                    s = st["stats"][c.name][k]
                    e = 1 if k == "psi_gap" else c.expected_sign  # the gap is oriented already
                    lo, hi = sorted((e * s.lo, e * s.hi))
                    w.writerow([scope, st["n"], c.name, c.direction, c.expected_sign, k, repr(s.estimate),
                                repr(s.lo), repr(s.hi), repr(e * s.estimate), repr(lo), repr(hi), rank,
                                repr(st["p_first"][c.name])])
    return [sol_path, st_path]


def draw(data: MeasuresData, stats: dict, out_dir: Path) -> list[Path]:
    """measures.png/.pdf: every column against test error (all distinct solutions, coloured by setting);
    measures-tau.png/.pdf: oriented Kendall τ and granulated Ψ with 95 % intervals, per scope."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recs = scope_records(data.records, "all")
    labels = list(dict.fromkeys(f"{r.setting}" for r in recs))
    cmap = plt.get_cmap("tab10")
    cols = columns(data.options["measures"])
    colour = {lab: cmap(i % 10) for i, lab in enumerate(labels)}
    ncol = 4
    nrow = math.ceil(len(cols) / ncol)
    files = []
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.0 * ncol, 3.2 * nrow), squeeze=False)
    st_all = stats.get("all") or next(iter(stats.values()))
    y = np.array([r.test_error for r in recs])
    try:
        for k, c in enumerate(cols):
            ax = axes[k // ncol][k % ncol]
            x = np.array([r.values.get(c.name, math.nan) for r in recs])
            for lab in labels:
                m = np.array([r.setting == lab for r in recs])
                ax.scatter(x[m], 100 * y[m], s=7, alpha=0.7, color=colour[lab], label=lab)
            fin = x[np.isfinite(x)]
            if fin.size and fin.min() > 0 and fin.max() / fin.min() > 20:
                ax.set_xscale("log")
            else:
                ax.ticklabel_format(axis="x", style="sci", scilimits=(-2, 3))
                ax.xaxis.get_offset_text().set_fontsize(7)
            s = st_all["stats"][c.name]
            ax.set_title(f"{c.label}\nr = {s['r'].estimate:.2f}, τ = {s['tau'].estimate:.2f}, "
                         f"Ψ = {s['psi'].estimate:.2f}", fontsize=8)
            ax.set_xlabel(c.direction, fontsize=7)
            ax.set_ylabel("test error (%)", fontsize=7)
            ax.tick_params(labelsize=7)
        for k in range(len(cols), nrow * ncol):
            axes[k // ncol][k % ncol].axis("off")
        handles, lab = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, lab, loc="lower center", fontsize=7, markerscale=2, ncol=min(len(lab), 10), frameon=False)
        fig.suptitle(f"Flatness measures against test error: {len(recs)} committee solutions (Figures "
                     f"{', '.join(sorted({r.figure for r in recs}))}); r, τ: Pearson and Kendall, Ψ: granulated τ",
                     fontsize=10)
        fig.tight_layout(rect=(0, 0.04, 1, 0.97))
        files += _save(fig, out_dir / "measures")
    finally:
        plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(13, 0.45 * len(cols) + 1.8), sharey=True)
    try:
        scopes = list(stats)
        order = (stats.get("all") or stats[scopes[0]])["ranking"]
        by = {c.name: c for c in cols}
        ypos = np.arange(len(order))[::-1]
        hgt = 0.8 / len(scopes)
        for ax, key, title in ((axes[0], "tau", "Kendall τ with test error (oriented)"),
                               (axes[1], "psi", "granulated τ Ψ (oriented)")):
            for i, scope in enumerate(scopes):
                est, lo, hi = [], [], []
                for name in order:
                    s = stats[scope]["stats"][name][key]
                    e = by[name].expected_sign
                    est.append(e * s.estimate)
                    a, b = sorted((e * s.lo, e * s.hi))
                    lo.append(max(0.0, e * s.estimate - a))  # a percentile interval may miss the estimate
                    hi.append(max(0.0, b - e * s.estimate))
                est = np.array(est)
                err = np.nan_to_num(np.array([lo, hi]), nan=0.0)
                ax.barh(ypos + (i - (len(scopes) - 1) / 2) * hgt, np.nan_to_num(est), height=hgt, xerr=err,
                        capsize=2, label={"1": "Figure 1", "6": "Figure 6", "all": "all"}[scope],
                        color=cmap(i), error_kw={"lw": 0.8})
            ax.axvline(0, color="k", lw=0.6)
            ax.set_title(title, fontsize=9)
            ax.set_xlabel("> 0: flatter solutions have lower test error", fontsize=8)
            ax.tick_params(labelsize=8)
        axes[0].set_yticks(ypos)
        axes[0].set_yticklabels([by[n].label for n in order], fontsize=8)
        axes[1].legend(fontsize=8, loc="lower right")
        fig.tight_layout()
        files += _save(fig, out_dir / "measures-tau")
    finally:
        plt.close(fig)
    return files


def _save(fig, stem: Path) -> list[Path]:
    out = []
    for ext in ("png", "pdf"):
        path = stem.with_suffix("." + ext)
        with atomic_open(path) as fh:
            fig.savefig(fh, format=ext, dpi=130)
        out.append(path)
    return out


def write_outputs(data: MeasuresData, stats: dict, out_dir, command: str, wall: dict, bootstrap: int) -> list[Path]:
    """measures-summary.md, measures-solutions.csv, measures-stats.csv, measures.png/.pdf, measures-tau.png/.pdf."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = write_csvs(data, stats, out_dir)
    files += draw(data, stats, out_dir)
    md = out_dir / "measures-summary.md"
    with atomic_open(md, "w") as fh:
        fh.write(summary(data, stats, command, wall, bootstrap))
    return [md] + files
