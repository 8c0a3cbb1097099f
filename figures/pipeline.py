"""The stages of a figure, each cached per solution: train → test error → local energy → BP curve.

``compute_figure(spec, cache_dir)`` makes sure every stage of every solution the figure needs is in
the cache (computing only what is missing) and returns the assembled ``FigureData``; drawing and
writing are ``figures.report``'s. Stages split by restart ids (``restart_ids``), so a figure can be
computed in shards, on several machines; a run without ``restart_ids``
assembles the figure from the cached pieces, computing what is still missing.

Which restarts are a setting's solutions: restart ids 0, 1, 2, … are trained in order; the first
``spec.restarts`` that meet their stop rule are the solutions (restarts that never stop are counted
and named, never used). If too few stop, further ids are trained, up to ``max_tries_factor`` ×
``spec.restarts`` ids in all.

Misclassified training patterns (BP's hard constraint has no solution at a reference that
misclassifies a pattern): two treatments, the same for every setting, both reported —
``hard``: BP with the hard constraint on the patterns that every solution of the figure classifies
(the dropped patterns are named); ``soft``: BP on all patterns with one finite β (``spec.soft_beta``).
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from localentropy.committee_sign import misclassified
from localentropy.figures.cache import StageCache, stage_key
from localentropy.figures.errors import FigureError
from localentropy.figures.spec import FigureSpec, Setting, shard_ids, train_options

# progress(stage, done, total, detail): the first report of a stage may start above 0 (a resumed
# training run), so a display should count its rate from there.
Progress = Optional[Callable[[str, int, int, str], None]]


@dataclass
class Solution:
    """One trained restart of one setting, with everything the figure draws of it."""

    setting: str
    restart: int
    converged: bool
    epochs: int
    train_error: float
    test_error: float
    weights: np.ndarray = field(repr=False)
    misclassified: np.ndarray = field(repr=False)  # indices of training patterns it misclassifies
    energy: Optional[dict] = None  # sigmas, delta_error, delta_error_se
    curves: dict = field(default_factory=dict)  # treatment → dict of arrays (prior_delta, delta, phi, converged)
    source: str = ""  # what the later stages' cache keys derive from: the train key, or the weights' hash


@dataclass
class FigureData:
    spec: FigureSpec
    solutions: dict  # label → list[Solution] (the used ones, ordered by restart id)
    excluded: dict  # label → list of (restart id, reason)
    tried: dict  # label → number of restart ids trained
    dropped_patterns: list  # training patterns left out of the hard-constraint BP
    wall: dict  # stage → seconds spent computing in this call
    data_hash: str
    origin: str = ""  # where the solutions came from: "" (trained by the recipe) or the solutions folder
    reused: dict = field(default_factory=dict)  # what → (entries found in the cache, entries needed)
    curve_subset: Optional[dict] = None  # method → curves for the first this many solutions per setting (None: all)


def _train_key(spec, setting, data_hash, r):
    from localentropy.committee.train import DROPOUT_MASKS

    opts = train_options(setting.preset)
    inputs = {"preset": setting.preset.as_dict(), "seed": spec.seed, "restart": int(r), "data": data_hash,
              "shared_batches": opts["shared_batches"], "dtype": str(opts["dtype"])}
    if setting.preset.dropout > 0:  # the masks' random stream decides the result only when dropout is on
        inputs["dropout_masks"] = DROPOUT_MASKS
    return stage_key("train", inputs)


def _train_missing(spec, setting, ids, ds, data_hash, cache, device, progress, wall):
    from localentropy.committee.evaluate import solution_errors
    from localentropy.committee.train import train_committee

    missing = [r for r in ids if not cache.has("train", _train_key(spec, setting, data_hash, r))]
    if not missing:
        return
    ckdir = cache.root / "checkpoints"
    ckdir.mkdir(parents=True, exist_ok=True)
    ckpt = ckdir / (stage_key("train", {"batch": missing, "restart0": _train_key(spec, setting, data_hash, missing[0])})[:24]
                    + ".ckpt")
    t0 = time.perf_counter()

    def on_epoch(epoch, converged, finished, R):
        if progress is not None:
            progress(f"train {setting.label}", epoch, setting.preset.max_epochs,
                     f"restarts {missing[0]}–{missing[-1]}: {converged}/{R} stopped")

    def on_resume(epoch):  # the first report of a resumed run: a progress display starts its count there
        if progress is not None:
            progress(f"train {setting.label}", epoch, setting.preset.max_epochs,
                     f"restarts {missing[0]}–{missing[-1]}: resumed at epoch {epoch}")

    res = train_committee(ds.X_train, ds.y_train, setting.preset, restart_ids=missing, seed=spec.seed,
                          device=device, checkpoint=ckpt, progress=on_epoch, on_resume=on_resume,
                          **train_options(setting.preset))
    test = solution_errors(res.weights, ds.X_test, ds.y_test)
    share = (time.perf_counter() - t0) / len(missing)  # the restarts trained together share the time
    for i, r in enumerate(missing):
        lam = ds.X_train @ res.weights[i].T
        bad = np.flatnonzero(misclassified(lam, ds.y_train))
        cache.save("train", _train_key(spec, setting, data_hash, r),
                   {"weights": res.weights[i], "misclassified": bad.astype(np.int64)},
                   {"setting": setting.label, "restart": int(r), "converged": bool(res.converged[i]),
                    "epochs": int(res.epochs[i]), "train_error": float(res.train_error[i]),
                    "test_error": float(test[i]), "train_loss": float(res.train_loss[i]),
                    "stop_value": float(res.stop_value[i]), "seconds": share})
    if ckpt.exists():
        ckpt.unlink()
    wall["train"] = wall.get("train", 0.0) + time.perf_counter() - t0


def _train_slice(spec, labels, ids, ds, data_hash, cache_dir, queue, index) -> None:
    """A worker process of ``_train_parallel``: trains the restart ids ``ids`` of each setting in
    ``labels`` into the cache, reporting progress as (index, stage, done, total, detail) on ``queue``."""
    cache = StageCache(cache_dir)
    setting_of = {s.label: s for s in spec.settings}

    def progress(stage, done, total, detail):
        queue.put((index, stage, done, total, detail))

    for label in labels:
        _train_missing(spec, setting_of[label], ids, ds, data_hash, cache, "cpu", progress, {})


def _train_parallel(spec, chosen, ds, data_hash, cache, workers, progress, wall) -> None:
    """Restart ids 0 … restarts − 1 of every chosen setting trained in ``workers`` processes, each a
    consecutive slice of the ids (as ``--shard i/n`` would), into the cache; progress relayed from the
    workers: the first worker's stage, with where the others are. Ctrl-C stops the workers at once
    (``localentropy.workers.WorkerPool``); each keeps its training checkpoint."""
    import queue as queue_mod

    from localentropy.workers import WorkerPool

    ids = list(range(spec.restarts))
    labels = [s.label for s in chosen
              if any(not cache.has("train", _train_key(spec, s, data_hash, r)) for r in ids)]
    if not labels:
        return
    n = min(workers, len(ids))
    slices = [shard_ids(f"{i}/{n}", len(ids)) for i in range(1, n + 1)]
    t0 = time.perf_counter()
    with WorkerPool(len(slices)) as pool:
        q = pool.queue()
        pending = [pool.submit(_train_slice, spec, labels, s, ds, data_hash, str(cache.root), q, i)
                   for i, s in enumerate(slices)]
        last: dict = {}

        def relay():
            try:
                while True:
                    i, stage, done, total, detail = q.get_nowait()
                    last[i] = (stage, done, total, detail)
            except (queue_mod.Empty, EOFError, OSError):
                pass
            if progress is not None and 0 in last:
                stage, done, total, detail = last[0]
                others = "; ".join(f"{last[i][0]} {last[i][1]}/{last[i][2]}" for i in sorted(last) if i)
                progress(stage, done, total, f"{detail}" + (f" | other processes: {others}" if others else ""))

        while pending:
            for f in pool.wait_any(pending, 0.5):
                pending.remove(f)
                f.get()  # a worker's error, raised here (the others are then stopped)
            relay()
    wall["train"] = wall.get("train", 0.0) + time.perf_counter() - t0


def _load_solution(spec, setting, data_hash, r, cache) -> Solution:
    arrays, meta = cache.load("train", _train_key(spec, setting, data_hash, r))
    return Solution(setting.label, int(r), bool(meta["converged"]), int(meta["epochs"]), float(meta["train_error"]),
                    float(meta["test_error"]), arrays["weights"], arrays["misclassified"],
                    source=_train_key(spec, setting, data_hash, r))


def _energy_key(spec, s: Solution):
    return stage_key("energy", {"train": s.source, "sigmas": list(spec.sigmas), "draws": spec.draws})


def _energy_profiles(weights, X, y, sigmas, draws, seeds, device="cpu", threads=None):
    """Local-energy profiles of several solutions, one at a time (a worker's task in ``_energies``)."""
    import torch

    from localentropy.committee.evaluate import local_energy_profiles

    if threads is not None:
        torch.set_num_threads(threads)
    out = []
    for w, seed in zip(weights, seeds):
        t0 = time.perf_counter()
        prof = local_energy_profiles(w[None], X, y, sigmas, draws=draws, seed=seed, device=device)
        out.append((prof.sigmas, prof.delta_error[0], prof.delta_error_se[0], float(prof.error0[0]),
                    time.perf_counter() - t0))
    return out


def _energies(spec, sols, ds, cache, device, progress, wall, jobs=None):
    """δE_train(σ) of every solution the cache lacks, each stored as it is done: on the CPU in ``jobs``
    processes of one torch thread each (one thread is also the faster per process at this size), a few
    solutions per task."""
    from localentropy.committee.train import restart_seed
    from localentropy.workers import WorkerPool

    todo = [s for s in sols if not cache.has("energy", _energy_key(spec, s))]
    cache.tally("local energies", len(sols) - len(todo), len(sols), "energy",
                [_energy_key(spec, s) for s in sols if s not in todo])
    t0 = time.perf_counter()
    sigmas = np.asarray(spec.sigmas)
    seeds = [restart_seed(spec.seed, s.restart) for s in todo]

    def keep(batch, results, done):
        for s, (sig, de, se, e0, seconds) in zip(batch, results):
            cache.save("energy", _energy_key(spec, s), {"sigmas": sig, "delta_error": de, "delta_error_se": se},
                       {"setting": s.setting, "restart": s.restart, "error0": e0, "seconds": seconds})
        if progress is not None:
            progress("local energy", done, len(todo), batch[-1].setting)

    workers = max(1, min(int(jobs or os.cpu_count() or 1), len(todo)))
    if str(device) != "cpu" or workers == 1:
        for i, s in enumerate(todo):
            keep([s], _energy_profiles([s.weights], ds.X_train, ds.y_train, sigmas, spec.draws, [seeds[i]], device),
                 i + 1)
    else:
        step = 8
        batches = [list(range(i, min(i + step, len(todo)))) for i in range(0, len(todo), step)]
        with WorkerPool(workers) as pool:
            task = {pool.submit(_energy_profiles, [todo[i].weights for i in b], ds.X_train, ds.y_train, sigmas,
                                spec.draws, [seeds[i] for i in b], "cpu", 1): b for b in batches}
            pending, done = list(task), 0
            while pending:
                for f in pool.wait_any(pending):
                    pending.remove(f)
                    done += len(task[f])
                    keep([todo[i] for i in task[f]], f.get(), done)
    if todo:
        wall["energy"] = wall.get("energy", 0.0) + time.perf_counter() - t0
    for s in sols:
        arrays, _ = cache.load("energy", _energy_key(spec, s))
        s.energy = arrays


def curve_name(treatment: str, method: str = "auto") -> str:
    """The key of a solution's curve in ``Solution.curves``: the treatment for BP ("hard", "soft"), else
    treatment-method ("hard-is")."""
    return treatment if method == "auto" else f"{treatment}-{method}"


def _curve_key(spec, s: Solution, treatment, dropped, method="auto"):
    from localentropy.committee.curves import DEFAULT_SAMPLES, SAMPLED_METHODS

    sampled = method in SAMPLED_METHODS
    inputs = {"train": s.source, "deltas": list(spec.sampled_deltas if sampled else spec.deltas), "treatment": treatment}
    inputs.update({"dropped": [int(i) for i in dropped]} if treatment == "hard" else {"beta": spec.soft_beta})
    if method != "auto":  # BP's keys stay those of the figures computed before the other estimators
        inputs.update({"method": method, "seed": spec.seed}, **({"samples": DEFAULT_SAMPLES} if method == "is" else {}))
    return stage_key("curve", inputs)


def _curve_arrays(c) -> dict:
    if c is None:
        return {"prior_delta": np.array([]), "delta": np.array([]), "d": np.array([]), "phi": np.array([]),
                "phi_ball": np.array([]), "phi_G": np.array([]), "converged": np.zeros(0, bool)}
    out = {"prior_delta": c.prior_delta, "delta": c.delta, "d": c.d, "phi": c.phi, "phi_ball": c.phi_ball,
           "phi_G": c.phi_G, "converged": c.converged}
    for name in ("phi_G_se", "phi_se", "delta_se", "ess"):  # the samplers' error bars
        if getattr(c, name, None) is not None:
            out[name] = getattr(c, name)
    return out


def _curves(spec, sols, ds, dropped, cache, jobs, progress, wall, treatments=("hard", "soft")):
    """The curves of every solution by each of ``spec.curve_methods``, in the ``treatments`` (both by
    default); the ones the cache lacks are computed by ``committee.pipeline.restart_curves`` (parallel
    processes), each stored as it finishes."""
    for method in spec.curve_methods:
        _method_curves(spec, sols, ds, dropped, cache, jobs, progress, wall, treatments, method)


def _method_curves(spec, sols, ds, dropped, cache, jobs, progress, wall, treatments, method):
    from localentropy.committee.curves import SAMPLED_METHODS
    from localentropy.committee.pipeline import restart_curves

    name = "BP" if method == "auto" else {"is": "importance sampling", "hmc": "HMC"}.get(method, method)
    grid = np.asarray(spec.sampled_deltas if method in SAMPLED_METHODS else spec.deltas)
    keep = np.setdiff1d(np.arange(len(ds.y_train)), np.asarray(dropped, dtype=np.int64))
    inputs = {"hard": (ds.X_train[keep], ds.y_train[keep], math.inf),
              "soft": (ds.X_train, ds.y_train, spec.soft_beta)}
    treatments = {t: inputs[t] for t in treatments}
    t0 = time.perf_counter()
    computed = False
    for treatment, (X, y, beta) in treatments.items():
        key_of = {id(s): _curve_key(spec, s, treatment, dropped, method) for s in sols}
        todo = [s for s in sols if not cache.has("curve", key_of[id(s)])]
        cache.tally(f"{name} curves ({treatment})", len(sols) - len(todo), len(sols), "curve",
                    [key_of[id(s)] for s in sols if s not in todo])
        if not todo:
            continue
        computed = True
        state = {"done": 0, "total": len(todo) * len(grid)}

        def report(info, todo=todo, state=state, treatment=treatment):
            if progress is None:
                return
            if info.get("event") == "compiling":  # BP's kernels
                progress("compiling BP kernels (once per machine)", 0, 1, "")
            elif info.get("event") == "point":
                state["done"] += 1
                s = todo[info["restart"]]
                progress(f"{name} curves ({treatment})", state["done"], state["total"], f"{s.setting} restart {s.restart}")

        def keep(i, result, seconds, todo=todo, key_of=key_of, treatment=treatment):
            """Each curve into the cache as soon as it is done: an interrupted stage loses only those in flight."""
            s = todo[i]
            error = result if isinstance(result, str) else None
            cache.save("curve", key_of[id(s)], _curve_arrays(None if error else result),
                       {"setting": s.setting, "restart": s.restart, "treatment": treatment, "error": error,
                        "seconds": seconds})

        restart_curves(np.stack([s.weights for s in todo]), X, y, grid, beta=beta, method=method,
                       jobs=max(1, min(int(jobs or os.cpu_count() or 1), len(todo))),
                       seed=0 if method == "auto" else spec.seed,
                       progress=report, on_curve=keep)
    stage = "curve" if method == "auto" else f"curve ({method})"
    if computed:
        wall[stage] = wall.get(stage, 0.0) + time.perf_counter() - t0
    for s in sols:
        for treatment in treatments:
            arrays, meta = cache.load("curve", _curve_key(spec, s, treatment, dropped, method))
            s.curves[curve_name(treatment, method)] = dict(arrays, error=meta.get("error"))


def compute_figure(spec: FigureSpec, cache_dir, *, restart_ids=None, settings=None, device="cpu", jobs=None,
                   progress: Progress = None, data=None, notify: Optional[Callable[[str], None]] = None) -> FigureData:
    """Every stage of the figure's solutions, from the cache or computed (module docstring).

    ``jobs`` (default: the CPU count): processes for the BP curves, and, for a whole figure on the CPU,
    for training its first ``spec.restarts`` restart ids of every setting (a slice of the ids each).

    With ``restart_ids`` (a shard): trains those restart ids, and computes the test errors, local
    energies and soft-treatment BP curves of the ones that stop, and returns what the shard holds
    (``dropped_patterns`` empty, no hard-treatment curves: the patterns the hard treatment drops
    depend on every solution of the figure, so those curves are computed when the figure is
    assembled). ``settings`` (labels) restricts the work to those settings: in a shard, e.g. to compute
    a slow setting on another machine; without one, a figure of those settings only (the comparisons
    with the others are not drawn). ``notify(text)`` hears, as each stage starts, how many of
    its entries the cache already holds, and any unreadable entry moved aside (``StageCache``).
    """
    from localentropy.data import load_dresscoat, patterns_hash

    setting_of = {s.label: s for s in spec.settings}
    if settings is not None:  # checked before any work
        unknown = [lab for lab in settings if lab not in setting_of]
        if unknown or not settings:
            raise FigureError(f"unknown setting(s) {', '.join(unknown) or '(none given)'} for figure {spec.name}; "
                              f"known: {', '.join(setting_of)}")
    ds = data if data is not None else load_dresscoat()
    data_hash = patterns_hash(ds.X_train, ds.y_train)
    cache = StageCache(cache_dir, notify)
    chosen = [s for s in spec.settings if settings is None or s.label in settings]
    if settings is not None and restart_ids is None:  # a figure of those settings only
        spec = dataclasses.replace(spec, settings=tuple(chosen))
    wall: dict = {}
    first = list(restart_ids) if restart_ids is not None else list(range(spec.restarts))
    found = [k for k in (_train_key(spec, s, data_hash, r) for s in chosen for r in first) if cache.has("train", k)]
    cache.tally("trainings", len(found), len(chosen) * len(first), "train", found)
    workers = max(1, int(jobs or os.cpu_count() or 1))
    if restart_ids is None and workers > 1 and str(device) == "cpu":  # the first restarts of every setting in
        # parallel processes (independent restarts; the same numbers as one process up to rounding)
        _train_parallel(spec, chosen, ds, data_hash, cache, workers, progress, wall)
    solutions, excluded, tried = {}, {}, {}
    for setting in chosen:
        loaded: dict = {}  # restart id → Solution, each cache entry read once

        def load(r, setting=setting, loaded=loaded):
            if r not in loaded:
                loaded[r] = _load_solution(spec, setting, data_hash, r, cache)
            return loaded[r]

        if restart_ids is not None:
            ids = list(restart_ids)
            _train_missing(spec, setting, ids, ds, data_hash, cache, device, progress, wall)
        else:
            ids = list(range(spec.restarts))
            cap = spec.max_tries_factor * spec.restarts
            while True:
                _train_missing(spec, setting, ids, ds, data_hash, cache, device, progress, wall)
                n_ok = sum(load(r).converged for r in ids)
                if n_ok >= spec.restarts or len(ids) >= cap:
                    break
                rate = max(n_ok / len(ids), 0.25)
                extra = min(cap - len(ids), math.ceil((spec.restarts - n_ok) / rate))
                ids = ids + list(range(len(ids), len(ids) + extra))
        sols, exc = [], []
        for r in ids:
            s = load(r)
            if not s.converged:
                exc.append((r, f"not converged in {s.epochs} epochs (train error {s.train_error:.4f})"))
            elif len(sols) < (len(ids) if restart_ids is not None else spec.restarts):
                sols.append(s)
        solutions[setting.label], excluded[setting.label], tried[setting.label] = sols, exc, len(ids)
    all_sols = [s for lab in solutions for s in solutions[lab]]
    if not all_sols:
        if restart_ids is not None:  # a shard whose restarts all failed to stop: nothing more to compute
            return FigureData(spec, solutions, excluded, tried, [], wall, data_hash, reused=cache.reused)
        raise FigureError("no restart met its stop rule; nothing to draw (see the excluded restarts)")
    _energies(spec, all_sols, ds, cache, device, progress, wall, jobs)
    if restart_ids is not None:
        dropped = []
        _curves(spec, all_sols, ds, dropped, cache, jobs, progress, wall, treatments=("soft",))
    else:
        dropped = sorted({int(i) for s in all_sols for i in s.misclassified})
        _curves(spec, all_sols, ds, dropped, cache, jobs, progress, wall)
    return FigureData(spec, solutions, excluded, tried, dropped, wall, data_hash, reused=cache.reused)


def solution_files(folder, figure: str) -> list:
    """The ``figN-solutions-<setting>.npz`` files of Figure ``figure`` in ``folder``, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FigureError(f"{folder}: no such solutions folder")
    files = sorted(folder.glob(f"fig{figure}-solutions-*.npz"))
    if not files:
        raise FigureError(f"{folder}: no fig{figure}-solutions-*.npz files (a figure's output folder holds them)")
    return files


def weights_source(weights: np.ndarray) -> str:
    """The cache identity of a solution given by its weights alone: the SHA-256 of its float64 bytes."""
    import hashlib

    return "weights:" + hashlib.sha256(np.ascontiguousarray(weights, dtype=np.float64).tobytes()).hexdigest()


def figure_from_solutions(spec: FigureSpec, folder, cache_dir, *, curve_subset: Optional[int] = None, device="cpu",
                          jobs=None, progress: Progress = None, data=None,
                          notify: Optional[Callable[[str], None]] = None) -> FigureData:
    """Figure ``spec.name`` redrawn from solutions trained elsewhere: every stage after training (test
    and training errors, misclassified patterns, local energies, BP curves) computed afresh from the
    weights in ``folder``'s ``figN-solutions-<setting>.npz`` files (a figure's own output folder, or
    files in that format), cached under ``cache_dir`` keyed by the weights' hash.

    The settings are those of the files, in ``spec``'s order where their labels are the spec's; the
    grids (σ, draws, Δ, soft β) are ``spec``'s. The local energies use each solution's own seed and
    restart id, so solutions drawn by a figure run give that run's numbers again. ``curve_subset``: the
    curves for the first that many solutions of each setting only (the cost of panel (a)), one number for
    every estimator or a dict method → number; the patterns the hard treatment drops are still those
    misclassified by any solution of the figure.
    """
    from localentropy.committee.errors import CommitteeError
    from localentropy.committee.evaluate import solution_errors
    from localentropy.committee.presets import CommitteePreset
    from localentropy.committee.solutions import load_solutions
    from localentropy.data import load_dresscoat, patterns_hash

    if curve_subset is not None:
        if not isinstance(curve_subset, dict):
            curve_subset = {m: curve_subset for m in spec.curve_methods}
        if set(curve_subset) != set(spec.curve_methods):
            raise FigureError(f"curves per setting given for {sorted(curve_subset)}, the methods are "
                              f"{list(spec.curve_methods)}")
        for n in curve_subset.values():
            if n is not None and (isinstance(n, bool) or int(n) != n or n < 2):
                raise FigureError(f"curves per setting must be integers ≥ 2, got {n}")
    files = solution_files(folder, spec.name)
    ds = data if data is not None else load_dresscoat()
    data_hash = patterns_hash(ds.X_train, ds.y_train)
    loaded = []
    for path in files:  # every file checked before any work
        try:
            sol = load_solutions(path)
        except (CommitteeError, FileNotFoundError) as exc:
            raise FigureError(str(exc)) from None
        if sol.patterns_hash != data_hash:
            raise FigureError(f"{path}: trained on other patterns (hash {sol.patterns_hash[:12]}…, the data set's "
                              f"{data_hash[:12]}…)")
        meta = sol.metadata
        if str(meta.get("figure", spec.name)) != spec.name:
            raise FigureError(f"{path}: solutions of figure {meta.get('figure')}, not figure {spec.name}")
        label = meta.get("figure_setting") or meta.get("setting")
        hyper = meta.get("hyperparameters")
        if not isinstance(label, str) or not isinstance(hyper, dict):
            raise FigureError(f"{path}: metadata lacks the setting's label or hyper-parameters")
        try:
            preset = CommitteePreset(**hyper)
        except (TypeError, CommitteeError) as exc:
            raise FigureError(f"{path}: hyper-parameters do not make a committee setting ({exc})") from None
        ids = meta.get("restart_ids") or list(range(sol.restarts))
        status = sol.status or ["converged"] * sol.restarts
        epochs = sol.epochs or [0] * sol.restarts
        if len(ids) != sol.restarts:
            raise FigureError(f"{path}: {len(ids)} restart ids for {sol.restarts} solutions")
        if any(lab == label for lab, *_ in loaded):
            raise FigureError(f"{path}: a second file for setting {label!r}")
        loaded.append((label, preset, float(meta.get("time_scale", 1.0)), int(meta.get("seed", spec.seed)),
                       sol, ids, status, epochs))
    order = {s.label: i for i, s in enumerate(spec.settings)}
    loaded.sort(key=lambda t: order.get(t[0], len(order)))
    seeds = {t[3] for t in loaded}
    if len(seeds) != 1:
        raise FigureError(f"{folder}: solutions drawn with different seeds {sorted(seeds)}")
    settings = tuple(Setting(label, preset, ts) for label, preset, ts, *_ in loaded)
    quick = any(bool(t[4].metadata.get("quick")) for t in loaded)
    spec = dataclasses.replace(spec, settings=settings, seed=seeds.pop(), quick=quick,
                               restarts=max(t[4].restarts for t in loaded))
    wall: dict = {}
    t0 = time.perf_counter()
    solutions, excluded, tried = {}, {}, {}
    for label, preset, ts, seed, sol, ids, status, epochs in loaded:
        W = np.asarray(sol.weights, dtype=np.float64)
        test = solution_errors(W, ds.X_test, ds.y_test, device=device)
        train = solution_errors(W, ds.X_train, ds.y_train, device=device)
        sols, exc = [], []
        for i, r in enumerate(ids):
            if status[i] != "converged":
                exc.append((int(r), f"marked {status[i]!r} in {Path(folder).name}"))
                continue
            bad = np.flatnonzero(misclassified(ds.X_train @ W[i].T, ds.y_train)).astype(np.int64)
            sols.append(Solution(label, int(r), True, int(epochs[i]), float(train[i]), float(test[i]), W[i], bad,
                                 source=weights_source(W[i])))
        solutions[label], excluded[label], tried[label] = sols, exc, sol.restarts
    wall["errors"] = time.perf_counter() - t0
    all_sols = [s for lab in solutions for s in solutions[lab]]
    if not all_sols:
        raise FigureError(f"{folder}: no converged solution to draw")
    cache = StageCache(cache_dir, notify)
    _energies(spec, all_sols, ds, cache, device, progress, wall, jobs)
    dropped = sorted({int(i) for s in all_sols for i in s.misclassified})
    for method in spec.curve_methods:
        n = None if curve_subset is None else curve_subset[method]
        chosen = [s for lab in solutions for s in solutions[lab][:n]]
        _method_curves(spec, chosen, ds, dropped, cache, jobs, progress, wall, ("hard", "soft"), method)
    return FigureData(spec, solutions, excluded, tried, dropped, wall, data_hash, origin=str(folder),
                      curve_subset=curve_subset, reused=cache.reused)
