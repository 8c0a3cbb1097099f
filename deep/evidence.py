"""The CPU-scale evidence of issue 12: SmallConvNet and paper 002's MLP on Fashion-MNIST, SGD, eSGD, rSGD, PLA
and SAM at the same data budget, several seeds, one table.

``run_evidence(data, seeds=3, overrides=[...])`` trains every ``cpu-fmnist-{model}-{method}`` preset (see
:mod:`deep.presets`) for every seed and returns one row per run; ``evidence_table(rows, command)`` gives
the markdown table (mean ± standard error over seeds of the final test and train errors, samples read,
wall time per run) with the command that produced it.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Optional

from localentropy.deep.presets import METHOD_NAMES, get_preset, summary, with_overrides
from localentropy.deep.train import train

MODELS = ("smallconvnet", "mlp2")
METHODS = ("sgd", "esgd", "rsgd", "pla", "sam")


def run_evidence(data, *, seeds: int = 3, models=MODELS, methods=METHODS, overrides=(), device="cpu",
                 progress: Optional[Callable] = None) -> list[dict]:
    """Train every (model, method, seed); ``progress(done, total, row)`` after each run."""
    configs = [with_overrides(dataclasses.replace(get_preset(f"cpu-fmnist-{m}-{k}"), seed=s), overrides)
               for m in models for k in methods for s in range(seeds)]
    rows = []
    for i, c in enumerate(configs):
        res = train(c, data, device=device, tensorboard=False)
        f = res.final
        rows.append(dict(model=c.model, method=c.method, seed=c.seed, test_error=f["test_error"],
                         train_error=f["train_error"], samples=f["samples"], wall=f["wall_seconds"],
                         settings=summary(c)))
        if progress is not None:
            progress(i + 1, len(configs), rows[-1])
    return rows


def _mean_se(xs):
    n = len(xs)
    m = sum(xs) / n
    se = math.sqrt(sum((x - m) ** 2 for x in xs) / (n - 1) / n) if n > 1 else float("nan")
    return m, se


def evidence_table(rows: list[dict], command: str) -> str:
    """Markdown: one line per (model, method), test/train error mean ± s.e. over seeds, samples, seconds per run."""
    lines = ["# CPU-scale evidence: Fashion-MNIST, every method at the same data budget", "",
             f"Command: `{command}`", "",
             "| model | method | seeds | test error % | train error % | samples read | s/run |",
             "|---|---|---|---|---|---|---|"]
    groups = {}
    for r in rows:
        groups.setdefault((r["model"], r["method"]), []).append(r)
    for (model, method), rs in groups.items():
        te, te_se = _mean_se([100 * r["test_error"] for r in rs])
        tr, tr_se = _mean_se([100 * r["train_error"] for r in rs])
        wall = sum(r["wall"] for r in rs) / len(rs)
        lines.append(f"| {model} | {METHOD_NAMES[method]} | {len(rs)} | {te:.2f} ± {te_se:.2f} | {tr:.2f} ± {tr_se:.2f} "
                     f"| {rs[0]['samples']} | {wall:.0f} |")
    lines += ["", "Settings (seed 0):", ""]
    seen = set()
    for r in rows:
        if (r["model"], r["method"]) not in seen:
            seen.add((r["model"], r["method"]))
            lines.append(f"- {r['settings']}")
    return "\n".join(lines) + "\n"


__all__ = ["run_evidence", "evidence_table", "MODELS", "METHODS"]
