"""Writing a run's measurements: per-epoch metrics as CSV and JSON lines, tables of the local-energy
profiles and layer signals, the run's summary (best-by-validation and last network), and TensorBoard
scalars when TensorBoard is installed (``pip install localentropy[tensorboard]``).

Every table is rewritten whole, atomically (temporary name, then rename), from the rows kept in the
run's checkpoint, so an interrupted and resumed run leaves the same files as an uninterrupted one.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

from localentropy.data.atomic import atomic_open

METRIC_COLUMNS = ("epoch", "steps", "samples", "budget_epochs", "lr", "gamma", "batch_loss", "train_loss",
                  "train_error", "test_loss", "test_error", "epoch_seconds", "wall_seconds")
ENERGY_COLUMNS = ("epoch", "sigma", "delta_error", "delta_error_se", "delta_loss", "delta_loss_se", "error0", "loss0",
                  "draws", "samples")
# with a validation split (val_split > 0): the validation columns beside the training ones
VAL_METRIC_COLUMNS = METRIC_COLUMNS[:9] + ("val_loss", "val_error") + METRIC_COLUMNS[9:]
SIGNAL_COLUMNS = ("epoch", "layer", "signal", "noise", "count", "weights")
TENSORBOARD_MISSING = ("TensorBoard is not installed: pip install localentropy[tensorboard] (or leave out --tensorboard; "
                       "metrics.csv and metrics.jsonl hold every epoch)")
BEST_TEST_LABEL = "best test accuracy during training (as paper 002 reports it; selected on the test set)"


def _fmt(v):
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.12g}"
    return v


def write_csv(path, columns, rows) -> None:
    with atomic_open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(columns)
        for r in rows:
            w.writerow([_fmt(r.get(c)) for c in columns])


def write_jsonl(path, rows) -> None:
    def clean(v):
        return None if isinstance(v, float) and not math.isfinite(v) else v

    with atomic_open(path, "w") as fh:
        for r in rows:
            fh.write(json.dumps({k: clean(v) for k, v in r.items()}) + "\n")


def write_json(path, obj) -> None:
    with atomic_open(path, "w") as fh:
        json.dump(obj, fh, indent=1)
        fh.write("\n")


def write_tables(out_dir, metrics, energy, signal, validation: bool = False) -> None:
    """metrics.csv (with the validation columns when ``validation``), metrics.jsonl, and energy.csv /
    signal.csv when there are such rows."""
    out = Path(out_dir)
    write_csv(out / "metrics.csv", VAL_METRIC_COLUMNS if validation else METRIC_COLUMNS, metrics)
    write_jsonl(out / "metrics.jsonl", metrics)
    if energy:
        write_csv(out / "energy.csv", ENERGY_COLUMNS, energy)
    if signal:
        write_csv(out / "signal.csv", SIGNAL_COLUMNS, signal)


def _row_of(metrics, key):
    """The row of the smallest finite ``key`` (the earliest of ties), or None."""
    best = None
    for r in metrics:
        v = r.get(key)
        if isinstance(v, (int, float)) and math.isfinite(v) and (best is None or v < best[key]):
            best = r
    return best


def best_by_validation(metrics):
    """The row of the epoch with the lowest validation error (the earliest of ties): the epoch of
    ``model-best.pt``; None without a validation split."""
    return _row_of(metrics, "val_error")


def run_summary(metrics, *, epochs: int, validation: bool, best_test: bool) -> dict:
    """What a run's ``summary.json`` holds: the last epoch's errors, with ``validation`` the network best by
    validation error (its epoch, validation and test errors: the honest "best"), and with ``best_test``
    (paper-002 presets) the best test accuracy during training, which the paper reports (selected on the
    test set, so not an estimate of the error on new data)."""
    keys = ("epoch", "train_error", "val_loss", "val_error", "test_loss", "test_error")
    last = metrics[-1] if metrics else {}
    out = {"epochs_done": int(last.get("epoch", 0)), "epochs": int(epochs),
           "last": {k: last[k] for k in keys if k in last}}
    if validation:
        b = best_by_validation(metrics)
        out["best_by_validation"] = None if b is None else dict({k: b[k] for k in keys if k in b}, model="model-best.pt")
    if best_test:
        b = _row_of(metrics, "test_error")
        out["best_test_during_training"] = None if b is None else {
            "epoch": b["epoch"], "test_error": b["test_error"], "test_accuracy": 1.0 - b["test_error"],
            "final_test_accuracy": 1.0 - last["test_error"], "note": BEST_TEST_LABEL}
    return out


def tensorboard_available() -> bool:
    try:
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError:
        return False
    return True


class TensorBoard:
    """Scalars of every epoch to ``out_dir/tensorboard`` if the ``tensorboard`` package is installed, else
    nothing; ``required=True`` (the user asked for it) raises DeepError saying how to install it instead."""

    def __init__(self, out_dir, start_epoch: int = 0, enabled: bool = True, required: bool = False):
        self.writer = None
        if not enabled or out_dir is None:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard not installed: the CSV and JSONL files carry everything
            if required:
                from localentropy.deep.errors import DeepError

                raise DeepError(TENSORBOARD_MISSING) from None
            return
        self.writer = SummaryWriter(str(Path(out_dir) / "tensorboard"), purge_step=start_epoch + 1)

    @property
    def active(self) -> bool:
        return self.writer is not None

    def add(self, row: dict) -> None:
        if self.writer is None:
            return
        for k in ("lr", "gamma", "batch_loss", "train_loss", "train_error", "val_loss", "val_error", "test_loss",
                  "test_error"):
            v = row.get(k)
            if isinstance(v, (int, float)) and math.isfinite(v):
                self.writer.add_scalar(k, v, row["epoch"])
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


__all__ = ["METRIC_COLUMNS", "VAL_METRIC_COLUMNS", "ENERGY_COLUMNS", "SIGNAL_COLUMNS", "TENSORBOARD_MISSING",
           "BEST_TEST_LABEL", "write_csv", "write_jsonl", "write_json", "write_tables", "best_by_validation",
           "run_summary", "tensorboard_available", "TensorBoard"]
