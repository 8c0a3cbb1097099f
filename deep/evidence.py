"""The CPU-scale evidence: SmallConvNet and paper 002's MLP on Fashion-MNIST, SGD, eSGD, rSGD, PLA
and SAM at the same data budget, several seeds, one table.

``run_evidence(data, runs_dir, seeds=3, overrides=[...])`` trains every ``cpu-fmnist-{model}-{method}``
preset (see :mod:`deep.presets`) for every seed, each run in its own folder under ``runs_dir`` (its
checkpoint, metrics, energy table and ``model.pt``), with the local-energy profile δE_train(σ) (000,
Eq. 4) of the final network; a finished run leaves ``evidence.json`` and is read back, not retrained,
so an interrupted evidence run resumes. ``evidence_table(rows, command)`` gives the markdown: per
model and method the final test and train errors and δE_train at ``TABLE_SIGMAS`` (mean ± standard
deviation over seeds), then per model each method against SGD (difference of the means, Welch's
t-test), and whether that matches the papers' claims.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Callable, Optional

from localentropy.data.atomic import atomic_open
from localentropy.deep.errors import DeepError
from localentropy.deep.presets import METHOD_NAMES, TrainConfig, get_preset, summary, with_overrides
from localentropy.deep.train import train

MODELS = ("smallconvnet", "mlp2")
METHODS = ("sgd", "esgd", "rsgd", "pla", "sam")
TABLE_SIGMAS = (0.1, 0.3)  # the two relative noise widths of the table's flatness columns
ALPHA = 0.05


def evidence_configs(seeds: int = 3, models=MODELS, methods=METHODS, overrides=()) -> list:
    """The runs: one config per (model, method, seed), δE_train measured at the last epoch."""
    out = []
    for m in models:
        for k in methods:
            base = get_preset(f"cpu-fmnist-{m}-{k}")
            sig = tuple(sorted(set(base.energy_sigmas) | set(TABLE_SIGMAS)))
            base = dataclasses.replace(base, energy_epochs=(-1,), energy_sigmas=sig)
            for s in range(seeds):
                out.append(with_overrides(dataclasses.replace(base, seed=s), overrides))
    return out


def run_folder(runs_dir, config) -> Path:
    return Path(runs_dir) / f"{config.model}-{config.method}-seed{config.seed}"


def _row(config, res) -> dict:
    f = res.final
    last = max((r["epoch"] for r in res.energy), default=None)
    energy = {f"{r['sigma']:g}": r["delta_error"] for r in res.energy if r["epoch"] == last}
    return dict(model=config.model, method=config.method, seed=config.seed, test_error=f["test_error"],
                train_error=f["train_error"], samples=f["samples"], wall=f["wall_seconds"], energy=energy,
                settings=summary(config), config=config.as_dict())


def run_evidence(data, runs_dir, *, seeds: int = 3, models=MODELS, methods=METHODS, overrides=(), device="cpu",
                 progress: Optional[Callable] = None) -> list[dict]:
    """Train (or read back) every (model, method, seed); ``progress(done, total, row)`` after each run."""
    configs = evidence_configs(seeds, models, methods, overrides)
    rows = []
    for i, c in enumerate(configs):
        folder = run_folder(runs_dir, c)
        done = folder / "evidence.json"
        row = None
        if done.is_file():
            try:
                row = json.loads(done.read_text())
            except (OSError, ValueError):
                row = None
            if row is not None and TrainConfig.stored_dict(row.get("config")) != c.as_dict():
                raise DeepError(f"{done}: written by another configuration; delete {folder} or use another --runs")
        if row is None:
            res = train(c, data, out_dir=folder, device=device, tensorboard=False)
            if res.diverged:
                raise DeepError(f"{c.name} seed {c.seed}: the loss became non-finite; see {folder / 'metrics.csv'}")
            row = _row(c, res)
            with atomic_open(done, "w") as fh:
                json.dump(row, fh, indent=1, sort_keys=True)
        rows.append(row)
        if progress is not None:
            progress(i + 1, len(configs), row)
    return rows


def _mean_sd(xs):
    xs = [x for x in xs if x is not None and math.isfinite(x)]
    n = len(xs)
    if n == 0:
        return math.nan, math.nan
    m = sum(xs) / n
    return m, (math.sqrt(sum((x - m) ** 2 for x in xs) / (n - 1)) if n > 1 else math.nan)


def welch(a, b) -> float:
    """Two-sided p of Welch's t-test (NaN with fewer than 2 values a side or no spread)."""
    import warnings

    from scipy.stats import ttest_ind

    a = [x for x in a if math.isfinite(x)]
    b = [x for x in b if math.isfinite(x)]
    if len(a) < 2 or len(b) < 2:
        return math.nan
    with warnings.catch_warnings():  # identical values: scipy warns and returns NaN, which we report as untested
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(ttest_ind(a, b, equal_var=False).pvalue)


def _groups(rows):
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["model"], r["method"]), []).append(r)
    return groups


def comparisons(rows) -> list[dict]:
    """Per model, each method against SGD: test error and δE_train at each table σ (lower is better)."""
    groups = _groups(rows)
    out = []
    for (model, method), rs in groups.items():
        base = groups.get((model, "sgd"))
        if method == "sgd" or not base:
            continue
        quantities = [("test error %", lambda r: 100 * r["test_error"])]
        quantities += [(f"δE_train σ={s:g}", lambda r, s=s: r["energy"].get(f"{s:g}", math.nan)) for s in TABLE_SIGMAS]
        for name, get in quantities:
            a, b = [get(r) for r in rs], [get(r) for r in base]
            ma, mb = _mean_sd(a)[0], _mean_sd(b)[0]
            p = welch(a, b)
            if not (math.isfinite(ma) and math.isfinite(mb)):
                word = "untested"
            elif math.isfinite(p) and p < ALPHA:
                word = "better than SGD" if ma < mb else "worse than SGD"
            else:
                word = "no significant difference"
            out.append(dict(model=model, method=method, quantity=name, diff=ma - mb, p=p, word=word))
    return out


def evidence_table(rows: list[dict], command: str) -> str:
    """Markdown: the errors and flatness per (model, method), each method against SGD, and a reading."""
    lines = ["# CPU-scale evidence: Fashion-MNIST, every method at the same data budget", "",
             f"Command: `{command}`", "",
             "Mean ± standard deviation over seeds. δE_train(σ): the increase of the training error under relative "
             "Gaussian noise of width σ on every weight (000, Eq. 4), of the final network, on 1000 training images.",
             "", "| model | method | seeds | test error % | train error % | "
             + " | ".join(f"δE_train σ={s:g}" for s in TABLE_SIGMAS) + " | samples read | s/run |",
             "|---|---|---|---|---|" + "---|" * len(TABLE_SIGMAS) + "---|---|"]
    for (model, method), rs in _groups(rows).items():
        te, te_sd = _mean_sd([100 * r["test_error"] for r in rs])
        tr, tr_sd = _mean_sd([100 * r["train_error"] for r in rs])
        flat = [_mean_sd([r["energy"].get(f"{s:g}", math.nan) for r in rs]) for s in TABLE_SIGMAS]
        wall = sum(r["wall"] for r in rs) / len(rs)
        lines.append(f"| {model} | {METHOD_NAMES[method]} | {len(rs)} | {te:.2f} ± {te_sd:.2f} | {tr:.2f} ± {tr_sd:.2f} | "
                     + " | ".join(f"{m:.4f} ± {sd:.4f}" for m, sd in flat) + f" | {rs[0]['samples']} | {wall:.0f} |")
    comps = comparisons(rows)
    if comps:
        lines += ["", "## Each method against SGD", "",
                  f"Difference of the means (method − SGD; negative: lower error, flatter) and Welch's t-test "
                  f"(two-sided, p < {ALPHA}, no correction for the {len(comps)} comparisons).", "",
                  "| model | method | quantity | difference | p | reading |", "|---|---|---|---|---|---|"]
        for c in comps:
            lines.append(f"| {c['model']} | {METHOD_NAMES[c['method']]} | {c['quantity']} | {c['diff']:+.4g} | "
                         f"{c['p']:.3g} | {c['word']} |")
        lines += ["", "## Reading", ""]
        for model in dict.fromkeys(c["model"] for c in comps):
            mine = [c for c in comps if c["model"] == model and c["quantity"] == "test error %"]
            wins = [METHOD_NAMES[c["method"]] for c in mine if c["word"] == "better than SGD"]
            losses = [METHOD_NAMES[c["method"]] for c in mine if c["word"] == "worse than SGD"]
            flat = [c for c in comps if c["model"] == model and c["quantity"] != "test error %"]
            flatter = sorted({METHOD_NAMES[c["method"]] for c in flat if c["word"] == "better than SGD"})
            best = min(mine, key=lambda c: c["diff"])
            lines.append(f"- {model}: test error below SGD's (p < {ALPHA}): {', '.join(wins) or 'none'}; above: "
                         f"{', '.join(losses) or 'none'}; best mean difference {METHOD_NAMES[best['method']]} "
                         f"({best['diff']:+.2f} points, p = {best['p']:.3g}). Flatter than SGD at some σ (p < {ALPHA}): "
                         f"{', '.join(flatter) or 'none'}.")
        groups = _groups(rows)
        under = []
        for (model, method), rs in groups.items():
            base = groups.get((model, "sgd"))
            if method != "sgd" and base:
                gap = 100 * (_mean_sd([r["train_error"] for r in rs])[0] - _mean_sd([r["train_error"] for r in base])[0])
                if gap > 3:
                    under.append(f"{METHOD_NAMES[method]} on {model} (+{gap:.1f} points of training error)")
        if under:
            lines.append(f"- Underfit at this budget, relative to SGD: {'; '.join(under)}: their flatness numbers "
                         "measure a network that has not fitted the data as SGD's has, not a flatter minimum.")
        wins = [c for c in comps if c["quantity"] == "test error %" and c["word"] == "better than SGD"]
        lines += ["", "The papers claim that the entropic methods (eSGD, rSGD) and the flatness-seeking losses "
                  "(PLA, and SAM) reach flatter minima that generalise better than SGD's at the same data budget. "
                  + ("At this small budget the run does not show it: no method's test error is significantly below "
                     "SGD's." if not wins else
                     "This run shows a lower test error than SGD's for: "
                     + ", ".join(f"{METHOD_NAMES[c['method']]} on {c['model']}" for c in wins) + "; the other "
                     "comparisons do not show it.")
                  + " Each row above says which comparison does."]
    lines += ["", "Settings (seed 0):", ""]
    seen = set()
    for r in rows:
        if (r["model"], r["method"]) not in seen:
            seen.add((r["model"], r["method"]))
            lines.append(f"- {r['settings']}")
    return "\n".join(lines) + "\n"


__all__ = ["run_evidence", "evidence_table", "evidence_configs", "comparisons", "MODELS", "METHODS"]
