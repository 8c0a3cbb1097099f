"""Writing a run's measurements: per-epoch metrics as CSV and JSON lines, tables of the local-energy
profiles and layer signals, and TensorBoard scalars when TensorBoard is installed.

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
SIGNAL_COLUMNS = ("epoch", "layer", "signal", "noise", "count", "weights")


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


def write_tables(out_dir, metrics, energy, signal) -> None:
    """metrics.csv, metrics.jsonl, and energy.csv / signal.csv when there are such rows."""
    out = Path(out_dir)
    write_csv(out / "metrics.csv", METRIC_COLUMNS, metrics)
    write_jsonl(out / "metrics.jsonl", metrics)
    if energy:
        write_csv(out / "energy.csv", ENERGY_COLUMNS, energy)
    if signal:
        write_csv(out / "signal.csv", SIGNAL_COLUMNS, signal)


class TensorBoard:
    """Scalars of every epoch to ``out_dir/tensorboard`` if the ``tensorboard`` package is installed, else nothing."""

    def __init__(self, out_dir, start_epoch: int = 0, enabled: bool = True):
        self.writer = None
        if not enabled or out_dir is None:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard not installed: the CSV and JSONL files carry everything
            return
        self.writer = SummaryWriter(str(Path(out_dir) / "tensorboard"), purge_step=start_epoch + 1)

    @property
    def active(self) -> bool:
        return self.writer is not None

    def add(self, row: dict) -> None:
        if self.writer is None:
            return
        for k in ("lr", "gamma", "batch_loss", "train_loss", "train_error", "test_loss", "test_error"):
            v = row.get(k)
            if isinstance(v, (int, float)) and math.isfinite(v):
                self.writer.add_scalar(k, v, row["epoch"])
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


__all__ = ["METRIC_COLUMNS", "ENERGY_COLUMNS", "SIGNAL_COLUMNS", "write_csv", "write_jsonl", "write_json",
           "write_tables", "TensorBoard"]
