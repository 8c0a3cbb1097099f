"""Sweeps: a grid over configuration fields and seeds, one ``deep train`` run per point and seed, one table.

``run_sweep(base, {"R": [0.005, 0.01], "layers": ["fc1", "fc1,fc2"]}, seeds=[0, 1, 2], out_dir="runs/sweep")``
trains every grid point × seed with :func:`deep.train.train`, each run in its own folder under ``out_dir``
named by its grid values and seed (``R=0.01_layers=fc1+fc2_seed=0``: a run folder exactly as ``deep train``
writes it, plus ``sweep-run.json``, the run's result), and returns a :class:`SweepResult` with one row per
run and the mean ± standard deviation over seeds of each grid point's errors; it writes ``sweep.md`` (the
table) and ``sweep.csv`` (one row per run) into ``out_dir``.

- **The runs.** Grid point × seed is ``dataclasses.replace(base, **point, seed=seed)``: the configuration
  ``deep train --preset P --set NAME=VALUE ... --set seed=S`` would train, with the same name, so the run is
  bitwise that run (and ``deep train --config RUN/config.json`` extends it).
- **Resume.** A finished run (``sweep-run.json`` and ``model.pt`` of the same configuration) is read back,
  not retrained; an interrupted one resumes from its checkpoint exactly as ``deep train`` resumes; a finished
  run whose only change is a larger ``epochs`` is extended (as ``deep train`` extends it). A folder holding a
  run of another configuration is refused (DeepError naming it) unless ``resume=False``, which trains every
  run afresh.
- **Checks first.** Unknown fields, values of the wrong type or range, an empty grid or seed list, two grid
  points of identical configurations, folders of other configurations, missing data, a batch larger than a
  run's training images: each a :class:`DeepError` raised before any run starts and before anything is
  written.
- **Processes.** ``jobs`` > 1 trains that many runs side by side in spawned processes
  (:class:`localentropy.workers.WorkerPool`: deaf to Ctrl-C, terminated when the caller leaves by an
  exception; every run keeps its last complete epoch), each with ``threads`` torch threads (default 1);
  on a CPU the runs are bitwise those of ``jobs=1`` at the same thread count.

Grid values are Python values or strings parsed as ``--set`` parses them (``parse_grid`` reads the CLI's
``NAME=V1,V2,...``, where ``+`` joins the items of one list value: ``layers=fc1,fc1+fc2``).
"""

from __future__ import annotations

import csv
import dataclasses
import itertools
import json
import math
import operator
import re
import time
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from localentropy.data.atomic import atomic_open
from localentropy.deep.errors import DeepError
from localentropy.deep.presets import FIELD_TYPES, TrainConfig, reports_best_test, summary, validate

MARKER = "sweep-run.json"  # a finished run's result, beside its deep-train files
CSV_COLUMNS = ("final_test_error", "final_train_error", "final_val_error", "best_val_epoch", "best_val_error",
               "best_val_test_error", "best_test_epoch", "best_test_error_during_training", "epochs",
               "budget_epochs", "steps", "wall_seconds", "diverged")


# ----- parsing -----------------------------------------------------------------------------------
def _is_list_field(name: str) -> bool:
    """Fields whose one value is itself a list (tuples, and ``layers``: comma-separated module names)."""
    return typing.get_origin(FIELD_TYPES[name]) is tuple or name == "layers"


def _normalise(name: str, value, where: str):
    """``value`` (a Python value or a string as ``--set`` takes it) as field ``name`` holds it; DeepError if not one."""
    from localentropy.deep.config import field_value

    try:
        return field_value(name, value, where)
    except DeepError:
        kind = getattr(FIELD_TYPES[name], "__name__", None) or str(FIELD_TYPES[name])
        raise DeepError(f"{where}: {value!r} is not a valid {kind} for {name}") from None


def _check_name(name) -> str:
    key = str(name).strip().replace("-", "_")
    if key == "seed":
        raise DeepError("--grid seed: give the seeds with --seeds (e.g. --seeds 0:3), not as a grid field")
    if key not in FIELD_TYPES:
        raise DeepError(f"--grid {key}: unknown field; known: {', '.join(FIELD_TYPES)}")
    return key


def parse_grid(assignments) -> dict:
    """``["R=0.005,0.01", "layers=fc1,fc1+fc2"]`` → ``{"R": [0.005, 0.01], "layers": ["fc1", "fc1,fc2"]}``.

    Values are separated by commas and parsed as ``--set`` parses them; in a field whose value is a list
    (``milestones``, ``energy_sigmas``, ``layers``, ...) ``+`` joins the items of one value; an empty item is
    the field's empty value (``layers=,fc1``: every weight, then fc1). DeepError on an unknown field, a bad
    value, a field given twice, or ``NAME=`` with no value."""
    grid: dict = {}
    for a in assignments:
        if "=" not in a:
            raise DeepError(f"--grid {a}: expected NAME=V1,V2,...")
        name, text = a.split("=", 1)
        key = _check_name(name)
        if key in grid:
            raise DeepError(f"--grid {key}: given twice; list every value in one --grid {key}=V1,V2,...")
        if not text.strip():
            raise DeepError(f"--grid {key}=: no values (an empty grid); give --grid {key}=V1,V2,...")
        tokens = text.split(",")
        if _is_list_field(key):
            tokens = [",".join(re.split(r"(?<![eE])\+", t)) for t in tokens]
        grid[key] = [t.strip() for t in tokens]
    return normalise_grid(grid)


def normalise_grid(grid: dict) -> dict:
    """Every field's values as the configuration holds them (strings parsed as ``--set`` parses them), in
    their order; DeepError on an unknown field, a bad or repeated value, or a field without values."""
    out: dict = {}
    for name, values in dict(grid).items():
        key = _check_name(name)
        if key in out:
            raise DeepError(f"--grid {key}: given twice")
        if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
            values = [values]
        values = list(values)
        if not values:
            raise DeepError(f"--grid {key}: no values (an empty grid)")
        parsed = []
        for v in values:
            p = _normalise(key, v, f"--grid {key}")
            if p in parsed:
                raise DeepError(f"--grid {key}: the value {value_text(key, p)} is given twice")
            parsed.append(p)
        out[key] = parsed
    return out


def parse_seeds(seeds) -> list[int]:
    """``"0:3"`` (0, 1, 2: as Python's range), ``"0,1,2"``, or a list of integers → the seeds, checked: at least
    one, each an integer ≥ 0, none twice. A lone number is ambiguous (a count or a seed?) and refused."""
    if isinstance(seeds, str):
        text = seeds.strip()
        bad = DeepError(f"--seeds {text}: expected A:B (e.g. 0:3 for 0, 1, 2) or a comma list (0,1,2)")
        try:
            if ":" in text:
                lo, hi = (int(t) for t in text.split(":"))
            elif "," in text:
                out = [int(t) for t in text.split(",") if t.strip()]
            else:
                lone = int(text)
        except ValueError:
            raise bad from None
        if ":" in text:
            out = list(range(lo, hi))
            if not out:
                raise DeepError(f"--seeds {text}: no seeds (A:B is A, A+1, ..., B-1; e.g. 0:3)")
        elif "," not in text:
            hint = f"0:{lone} for the seeds 0..{lone - 1}, or " if lone > 0 else ""
            raise DeepError(f"--seeds {text}: a count or a seed? write {hint}{lone}:{lone + 1} for the seed {lone} alone")
    else:
        try:
            out = list(seeds)
        except TypeError:
            raise DeepError(f"seeds must be a list of integers or a text such as '0:3', got {seeds!r}") from None
        try:
            if any(isinstance(s, bool) for s in out):
                raise TypeError
            out = [operator.index(s) for s in out]
        except TypeError:
            raise DeepError(f"seeds must be integers, got {out!r}") from None
    if not out:
        raise DeepError("no seeds: give --seeds A:B or a comma list")
    if any(s < 0 for s in out):
        raise DeepError(f"seeds must be >= 0, got {out}")
    twice = sorted({s for s in out if out.count(s) > 1})
    if twice:
        raise DeepError(f"seed(s) {', '.join(map(str, twice))} given twice")
    return [int(s) for s in out]


# ----- names -------------------------------------------------------------------------------------
def _num(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        short = f"{v:g}"
        return short if float(short) == v else repr(v)
    return str(v)


def value_text(name: str, v) -> str:
    """A value as ``--set NAME=`` would take it (lists comma-separated; None: ``none``)."""
    if v is None:
        return "none"
    if isinstance(v, (tuple, list)):
        return ",".join(_num(x) for x in v)
    return _num(v)


def _folder_part(name: str, v) -> str:
    text = value_text(name, v).replace(",", "+")
    if text == "":
        text = "all" if name == "layers" else "none"
    return f"{name}={re.sub(r'[^A-Za-z0-9.+=-]', '-', text)}"


def run_name(point: dict, seed: int) -> str:
    """A run's folder name: ``R=0.01_layers=fc1+fc2_seed=0`` (the grid's fields in order, then the seed)."""
    return "_".join([_folder_part(k, v) for k, v in point.items()] + [f"seed={seed}"])


# ----- the plan ----------------------------------------------------------------------------------
@dataclass
class SweepRun:
    """One run of a sweep: its folder name, grid values, seed, configuration, and once trained its ``row``."""

    name: str
    point: dict
    seed: int
    config: TrainConfig
    folder: Path
    status: str = "new"  # new | finished | resume | extend | afresh
    row: Optional[dict] = None

    @property
    def reused(self) -> bool:
        return self.status == "finished"


@dataclass
class SweepResult:
    """What a sweep produced: its runs (in grid order, seeds innermost), one summary per grid point
    (``groups``: n, seeds, mean and s.d. of each error), the markdown table and the files written."""

    base: TrainConfig
    fields: list
    seeds: list
    runs: list
    groups: list
    markdown: str
    out_dir: Path
    wall: float = 0.0

    @property
    def md_path(self) -> Path:
        return self.out_dir / "sweep.md"

    @property
    def csv_path(self) -> Path:
        return self.out_dir / "sweep.csv"


def expand(base: TrainConfig, grid: dict, seeds, out_dir) -> list[SweepRun]:
    """The runs of ``grid`` × ``seeds`` (first field outermost, seeds innermost), each configuration validated;
    DeepError on identical configurations or folder names."""
    grid = normalise_grid(grid)
    seeds = parse_seeds(seeds)
    out_dir = Path(out_dir)
    runs, configs, names = [], {}, {}
    for values in itertools.product(*grid.values()):
        point = dict(zip(grid, values))
        for s in seeds:
            name = run_name(point, s)
            try:
                config = dataclasses.replace(base, **point, seed=s)
                validate(config)
            except DeepError as exc:
                raise DeepError(f"{name}: {exc}") from None
            key = json.dumps(config.as_dict(), sort_keys=True)
            if key in configs:
                raise DeepError(f"grid points {configs[key]} and {name} give identical configurations; "
                                "remove one of the values")
            if name in names:
                raise DeepError(f"grid points {names[name]} and {name} share the folder name {name}")
            configs[key] = names[name] = name
            runs.append(SweepRun(name, point, s, config, out_dir / name))
    return runs


def _compare(stored, mine: dict):
    """"same", "extend" (only a larger epochs), or the sorted list of fields that differ."""
    stored = TrainConfig.stored_dict(stored)
    if stored == mine:
        return "same"
    known = stored if isinstance(stored, dict) else {}
    diff = sorted(k for k, v in mine.items() if known.get(k) != v)
    old = known.get("epochs")
    if diff == ["epochs"] and set(known) == set(mine) and isinstance(old, (int, float)) and old < mine["epochs"]:
        return "extend"
    return diff or ["unknown"]


def _stored_config(run: SweepRun):
    """The configuration found in the run's folder and where: (marker, checkpoint or config.json) or None."""
    folder = run.folder
    marker = folder / MARKER
    if marker.is_file() and (folder / "model.pt").is_file():
        try:
            return "finished", json.loads(marker.read_text()).get("config"), marker
        except (OSError, ValueError, AttributeError):
            pass  # a damaged marker: the checkpoint decides
    ckpt = folder / "checkpoint.pt"
    if ckpt.is_file():
        import torch

        try:
            try:
                state = torch.load(ckpt, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError:  # not a zip archive: no mmap
                state = torch.load(ckpt, map_location="cpu", weights_only=True)
        except Exception as exc:  # a truncated or foreign file: say which, never unpickle anything else
            raise DeepError(f"checkpoint {ckpt} is unreadable ({type(exc).__name__}); delete it to start afresh, "
                            "or --no-resume") from None
        return "resume", state.get("config") if isinstance(state, dict) else None, ckpt
    cfg = folder / "config.json"
    if cfg.is_file():
        try:
            return "new", json.loads(cfg.read_text()), cfg
        except (OSError, ValueError):
            return "new", None, cfg
    return None


def plan(runs: list[SweepRun], resume: bool = True) -> list[SweepRun]:
    """Each run's status from its folder: finished (read back), resume (a checkpoint), extend (a smaller
    epochs, otherwise the same), new; ``resume=False``: afresh. DeepError naming a folder of another run."""
    for run in runs:
        if not resume:
            run.status = "afresh" if run.folder.exists() else "new"
            continue
        found = _stored_config(run)
        if found is None:
            run.status = "new"
            continue
        status, stored, where = found
        verdict = _compare(stored, run.config.as_dict())
        if verdict == "same":
            run.status = status
        elif verdict == "extend" and status in ("finished", "resume"):
            run.status = "extend"
        else:
            what = "epochs" if verdict == "extend" else ", ".join(verdict[:5])
            old = stored.get("epochs") if isinstance(stored, dict) else None
            hint = (f": a larger epoch budget extends a run, a smaller one ({run.config.epochs:g} < {old:g}) cannot"
                    if verdict == ["epochs"] and isinstance(old, (int, float)) else "")
            raise DeepError(f"{run.folder} holds a run of another configuration ({where.name}: {what} differ{hint}); "
                            "use another --out, or --no-resume to start it afresh")
    return runs


def _precheck(config: TrainConfig, data, data_dir) -> None:
    """What ``train`` would refuse once started: a missing augmentation policy, a model that does not fit
    the images, a validation split or batch larger than the run's training images."""
    from localentropy.deep.stacks import stack_policy
    from localentropy.deep.train import model_factory

    stack_policy(config.augment, data_dir)
    model_factory(config, data, "cpu")
    n_all = int(data.train_images.shape[0])
    n = n_all if not config.train_subset or config.train_subset >= n_all else int(config.train_subset)
    if config.val_split and not 0 <= config.val_split < n:
        raise DeepError(f"val_split {config.val_split} must lie in [0, {n}): the run has {n} training images")
    n -= int(config.val_split)
    if config.batch_size > n:
        raise DeepError(f"batch_size {config.batch_size} exceeds the {n} training images")


# ----- one run -----------------------------------------------------------------------------------
def run_row(name: str, result) -> dict:
    """A finished run's sweep row (also its ``sweep-run.json``): final and best errors, epochs, wall time."""
    f = result.final
    b = result.best
    t = result.summary.get("best_test_during_training") if reports_best_test(result.config) else None
    return dict(run=name, seed=result.config.seed, config=result.config.as_dict(),
                final_test_error=f.get("test_error"), final_train_error=f.get("train_error"),
                final_val_error=f.get("val_error"),
                best_val_epoch=b["epoch"] if b else None, best_val_error=b["val_error"] if b else None,
                best_val_test_error=b["test_error"] if b else None,
                best_test_epoch=t["epoch"] if t else None, best_test_error_during_training=t["test_error"] if t else None,
                epochs=f.get("epoch", 0), budget_epochs=f.get("budget_epochs"), steps=f.get("steps"),
                wall_seconds=f.get("wall_seconds"), diverged=bool(result.diverged))


def _run_one(task: dict, data, emit: Callable) -> dict:
    """Train one run (in this process or a worker) and write its ``sweep-run.json``; returns its row."""
    from localentropy.deep.train import train

    name = task["name"]
    config = TrainConfig.from_dict(task["config"])
    folder = Path(task["folder"])

    def progress(event, **info):
        if event == "start":
            emit("run_start", name=name, epoch=info["epoch"], epochs=info["epochs"],
                 extended_from=info.get("extended_from"))
        elif event == "epoch":
            emit("epoch", name=name, row=info["row"], epochs=info["epochs"])

    res = train(config, data, out_dir=folder, data_dir=task["data_dir"], device=task["device"], progress=progress,
                resume=task["resume"], tensorboard=task["tensorboard"])
    row = run_row(name, res)
    with atomic_open(folder / MARKER, "w") as fh:
        json.dump(row, fh, indent=1)
        fh.write("\n")
    return row


def _portable(data) -> dict:
    """A TensorImages as numpy arrays (pickled by value to a worker, not through shared memory)."""
    out = {}
    for f in dataclasses.fields(data):
        v = getattr(data, f.name)
        out[f.name] = v.detach().cpu().numpy() if hasattr(v, "detach") else v
    return out


_WORKER_DATA: dict = {}


def _worker_data(dataset: str, blob, data_dir, device):
    key = (dataset, str(data_dir), str(device))
    if key not in _WORKER_DATA:
        import torch

        from localentropy.deep.datasets import TensorImages, load_images, to_device

        if blob is not None:
            fields = {k: (to_device(torch.from_numpy(v), device) if hasattr(v, "dtype") and hasattr(v, "shape") else v)
                      for k, v in blob.items()}
            _WORKER_DATA[key] = TensorImages(**fields)
        else:
            _WORKER_DATA[key] = load_images(dataset, data_dir, device)
    return _WORKER_DATA[key]


def _worker(task: dict, threads: int, blob, channel) -> dict:
    """One run in a worker process: its own torch threads; progress events on the pool's channel."""
    import torch

    torch.set_num_threads(int(threads))
    data = _worker_data(task["dataset"], blob, task["data_dir"], task["device"])
    return _run_one(task, data, lambda event, **info: channel.put((event, info)))


# ----- the sweep ---------------------------------------------------------------------------------
def run_sweep(base_config: TrainConfig, grid: dict, seeds, out_dir, *, jobs: int = 1, threads: Optional[int] = None,
              data=None, data_dir=None, device="cpu", resume: bool = True, tensorboard: Optional[bool] = None,
              progress: Optional[Callable] = None, command: str = "") -> SweepResult:
    """Train (or read back) every run of ``grid`` × ``seeds`` under ``out_dir`` and write ``sweep.md`` and
    ``sweep.csv`` there (module docstring). ``data``: a TensorImages (or a dict of them by data-set name) for
    the runs of that data set, else each data set is read from ``data_dir``. ``threads``: torch threads of each
    run: of each worker when ``jobs`` > 1 (default 1), of this process while it trains (default: as they
    are with ``jobs`` = 1, else 1; restored afterwards). ``progress(event, **info)`` gets "start" (total, done: runs finished before, runs: the
    SweepRun list), "run_start" (name, epoch, epochs, extended_from: a run begins, resumes or is extended),
    "epoch" (name, row, epochs) and "run" (name, row, done, total) events. ``command`` is written into
    sweep.md. Raises DeepError before any run starts on any bad input (module docstring)."""
    t0 = time.time()
    emit = progress or (lambda *a, **k: None)
    if not isinstance(base_config, TrainConfig):
        raise DeepError(f"base_config must be a TrainConfig, got {type(base_config).__name__}")
    validate(base_config)
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise DeepError(f"jobs must be an integer >= 1, got {jobs!r}")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise DeepError(f"threads must be an integer >= 1, got {threads!r}")
    grid = normalise_grid(grid)
    seeds = parse_seeds(seeds)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise DeepError(f"{out_dir} is a file, not a folder")
    runs = plan(expand(base_config, grid, seeds, out_dir), resume=resume)
    # the data of every data set the runs use, and what train would refuse once started: before any run
    given = {} if data is None else ({data.name: data} if not isinstance(data, dict) else dict(data))
    loaded = dict(given)
    from localentropy.deep.datasets import load_images

    todo = [r for r in runs if r.status != "finished"]
    here = jobs == 1 or len(todo) <= 1  # else each worker reads its own copy: this one only checks the runs
    for run in todo:  # finished runs need no data
        ds = run.config.dataset
        if ds not in loaded:
            loaded[ds] = load_images(ds, data_dir, device if here else "cpu")
        try:
            _precheck(run.config, loaded[ds], data_dir)
        except DeepError as exc:
            raise DeepError(f"{run.name}: {exc}") from None
    for run in runs:
        if run.status == "finished":
            run.row = json.loads((run.folder / MARKER).read_text())
    out_dir.mkdir(parents=True, exist_ok=True)
    total = len(runs)
    done = sum(r.reused for r in runs)
    emit("start", total=total, done=done, runs=runs)
    tasks = []
    for r in todo:
        (r.folder / MARKER).unlink(missing_ok=True)  # trained again (extended, afresh): not finished until it ends
        tasks.append(dict(name=r.name, config=r.config.as_dict(), folder=str(r.folder), dataset=r.config.dataset,
                          data_dir=None if data_dir is None else str(data_dir), device=str(device),
                          resume=resume, tensorboard=tensorboard))

    def finished(run, row):
        nonlocal done
        run.row = row
        done += 1
        emit("run", name=run.name, row=row, done=done, total=total)

    if here:
        import torch

        before = torch.get_num_threads()
        mine = threads if threads is not None else 1 if jobs > 1 else None  # as the workers would have
        if mine is not None:
            torch.set_num_threads(mine)
        try:
            for run, task in zip(todo, tasks):
                finished(run, _run_one(task, loaded[run.config.dataset], emit))
        finally:
            torch.set_num_threads(before)
    else:
        _parallel(todo, tasks, given, jobs, threads or 1, emit, finished)
    groups = summarise(runs, list(grid))
    text = markdown(base_config, grid, seeds, runs, groups, out_dir, command=command)
    result = SweepResult(base_config, list(grid), seeds, runs, groups, text, out_dir, wall=time.time() - t0)
    with atomic_open(result.md_path, "w") as fh:
        fh.write(text)
    write_csv(result.csv_path, runs, list(grid))
    return result


def _parallel(todo, tasks, given, jobs, threads, emit, finished) -> None:
    import queue as queue_mod

    from localentropy.workers import WorkerPool

    blobs = {name: _portable(d) for name, d in given.items()}
    with WorkerPool(min(jobs, len(todo))) as pool:
        channel = pool.queue()
        pending = {pool.submit(_worker, task, threads, blobs.get(task["dataset"]), channel): (run, task)
                   for run, task in zip(todo, tasks)}

        def relay():
            try:
                while True:
                    event, info = channel.get_nowait()
                    emit(event, **info)
            except (queue_mod.Empty, EOFError, OSError):
                pass

        while pending:
            for f in pool.wait_any(list(pending), 0.2):
                run, _ = pending.pop(f)
                row = f.get()  # a worker's error is raised here; leaving the block stops the others
                relay()
                finished(run, row)
            relay()


# ----- the summary -------------------------------------------------------------------------------
def mean_sd(values) -> tuple[float, float]:
    """(mean, sample standard deviation with n - 1) of the finite values; NaN where undefined."""
    xs = [float(x) for x in values if x is not None and math.isfinite(x)]
    n = len(xs)
    if n == 0:
        return math.nan, math.nan
    m = sum(xs) / n
    return m, (math.sqrt(sum((x - m) ** 2 for x in xs) / (n - 1)) if n > 1 else math.nan)


def summarise(runs: list[SweepRun], fields: list) -> list[dict]:
    """One dict per grid point (in grid order): its values (``point``: field → the value as --set takes it),
    seeds, n, diverged, and (mean, s.d.) of the final
    test error, the test error best by validation (None without val_split) and paper 002's best test error
    during training (None where the run does not report it), epochs and wall time."""
    groups: dict = {}
    for r in runs:
        key = tuple(value_text(k, r.point[k]) for k in fields)
        groups.setdefault(key, []).append(r)
    out = []
    for key, rs in groups.items():
        rows = [r.row for r in rs]
        val = all(r.config.val_split for r in rs)
        best = all(reports_best_test(r.config) for r in rs)
        out.append(dict(point=dict(zip(fields, key)), seeds=[r.seed for r in rs], n=len(rs),
                        diverged=sum(bool(x["diverged"]) for x in rows),
                        final_test_error=mean_sd(x["final_test_error"] for x in rows),
                        best_val_test_error=mean_sd(x["best_val_test_error"] for x in rows) if val else None,
                        best_test_error_during_training=(mean_sd(x["best_test_error_during_training"] for x in rows)
                                                         if best else None),
                        epochs=mean_sd(x["epochs"] for x in rows), wall_seconds=mean_sd(x["wall_seconds"] for x in rows)))
    return out


def _pct(ms) -> str:
    if ms is None:
        return "-"
    m, sd = ms
    if not math.isfinite(m):
        return "-"
    return f"{100 * m:.2f}" + (f" ± {100 * sd:.2f}" if math.isfinite(sd) else "")


def markdown(base: TrainConfig, grid: dict, seeds, runs, groups, out_dir, command: str = "") -> str:
    """sweep.md: the command, the base settings, the grid, and one row per grid point."""
    fields = list(grid)
    val = any(g["best_val_test_error"] is not None for g in groups)
    best = any(g["best_test_error_during_training"] is not None for g in groups)
    head = [f"`{k}`" for k in fields] or ["configuration"]
    head += ["seeds", "final test error %"]
    head += ["best-by-validation test error %"] if val else []
    head += ["best test error during training % (paper 002)"] if best else []
    head += ["epochs", "wall s"]
    lines = [f"# Sweep: {base.name}", ""]
    if command:
        lines += [f"Command: `{command}`", ""]
    lines += [f"Base settings: {summary(base)}.", ""]
    g_text = "; ".join(f"`{k}` = {', '.join(value_text(k, v) for v in vs)}" for k, vs in grid.items()) or "none"
    lines += [f"Grid: {g_text}; seeds {', '.join(map(str, seeds))}: {len(runs)} runs, each a `deep train` folder "
              f"`{out_dir}/<run>/` (one row per run in `sweep.csv`).", ""]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for g in groups:
        cells = [g["point"][k] or ("all" if k == "layers" else "none") for k in fields] or [base.name]
        seeds_cell = ",".join(map(str, g["seeds"])) + (f" ({g['diverged']} diverged)" if g["diverged"] else "")
        cells += [seeds_cell, _pct(g["final_test_error"])]
        cells += [_pct(g["best_val_test_error"])] if val else []
        cells += [_pct(g["best_test_error_during_training"])] if best else []
        ep = g["epochs"][0]
        wall = g["wall_seconds"][0]
        cells += [f"{ep:g}" if math.isfinite(ep) else "-",
                  "-" if not math.isfinite(wall) else f"{wall:.1f}" if wall < 100 else f"{wall:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Errors in %, mean ± standard deviation over the seeds (n − 1; one seed: the value alone), of the "
                  "network after the last epoch (`model.pt`)."]
    if val:
        lines.append("Best-by-validation: the test error of `model-best.pt`, the epoch of the lowest validation error "
                     "(`val_split` images held out of training).")
    if best:
        lines.append("Best test error during training: the figure paper 002 reports, selected on the test set, so "
                     "not an estimate of the error on new images.")
    lines.append("Epochs: the method's own epochs done (mean); wall s: training time per run (mean).")
    return "\n".join(lines) + "\n"


def _csv_value(v) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.12g}"
    return str(v)


def write_csv(path, runs: list[SweepRun], fields: list) -> None:
    """sweep.csv: one row per run: its folder, grid values (as --set takes them), seed, and ``CSV_COLUMNS``."""
    with atomic_open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["run", *fields, "seed", *CSV_COLUMNS])
        for r in runs:
            w.writerow([r.name, *(value_text(k, r.point[k]) for k in fields), r.seed,
                        *(_csv_value(r.row.get(c)) for c in CSV_COLUMNS)])


__all__ = ["run_sweep", "SweepResult", "SweepRun", "parse_grid", "normalise_grid", "parse_seeds", "expand", "plan",
           "run_name", "value_text", "summarise", "markdown", "mean_sd", "MARKER", "CSV_COLUMNS"]
