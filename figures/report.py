"""Drawing and writing a computed figure: panels (PNG, PDF), one long CSV, the summary.

Files written into the output folder (each atomically):

- ``figN.png`` / ``figN.pdf``: (a) Φ_LE against δ = d/n, both per weight (n = K·N), mean ± standard
  error over the setting's solutions (hard-constraint treatment); (b) δE_train against σ, mean ±
  standard error; (c) test errors per setting (every solution a dot, the box its quartiles).
- ``figN-correlation.png`` / ``.pdf``: App. B.3 (Figure 7 style): δE_train at σ = 0.5 and Φ_LE at the
  chosen δ against test error, all solutions, Pearson r and p.
- ``figN.csv``: every plotted number, one per row. Columns: ``figure``, ``setting``, ``restart``
  (empty on rows that aggregate over restarts), ``quantity`` (``phi_le_hard``, ``phi_le_soft``:
  Φ_LE per weight at x = δ per weight; ``delta_train_error``: δE_train at x = σ; ``test_error``,
  ``train_error``: x empty; ``*_mean`` rows: the mean over solutions at x, with ``y_se``),
  ``x``, ``y``, ``y_se``.
- ``figN-solutions-<setting>.npz``: the solutions drawn, one ``committee.solutions`` file per setting.
- ``figN-summary.md``: whether the paper's claims hold (``figures.claims``); per panel the ranking of the settings and Mann–Whitney U tests between
  neighbours, the correlation, restarts used and excluded, the exact command, the code version and
  the wall time per stage.
"""

from __future__ import annotations

import csv
import math
import re
import subprocess
from pathlib import Path
from typing import Optional

import numpy as np

from localentropy.data.atomic import atomic_open
from localentropy.figures.pipeline import FigureData, curve_name
from localentropy.figures.claims import ALPHA, verdicts
from localentropy.figures.stats import mann_whitney, mean_se, pearson

SIGMA_CORR = 0.5


def _fmt(x) -> str:
    """Shortest text that reads back as the same float (numbers from np.round'ed grids print cleanly)."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    return repr(float(x)) if isinstance(x, (float, np.floating)) else str(x)


METHOD_LABELS = {"auto": "BP", "amp": "BP (amp)", "edge": "BP (edge)", "is": "importance sampling", "hmc": "HMC"}
METHOD_SUFFIX = {"auto": "bp", "amp": "amp", "edge": "edge", "is": "is", "hmc": "hmc"}


def primary(fd: FigureData, treatment: str = "hard") -> str:
    """The curve name of the figure's own estimator (its first curve method) in ``treatment``."""
    return curve_name(treatment, fd.spec.curve_methods[0])


def compared(fd: FigureData) -> list:
    """The other estimators of panel (a), drawn dashed beside the figure's own: [(method, label)]."""
    return [(m, METHOD_LABELS.get(m, m)) for m in fd.spec.curve_methods[1:]]


def curve_points(sol, treatment):
    """(δ per weight, Φ_LE per weight) of a solution's converged points with δ > 0 in the curve named
    ``treatment`` ("hard", "soft": BP; "hard-is": the importance sampler; ``pipeline.curve_name``)."""
    c = sol.curves.get(treatment) or {}
    if not len(c.get("delta", [])):
        return np.array([]), np.array([])
    ok = np.asarray(c["converged"], bool) & np.isfinite(c["phi"]) & (np.asarray(c["delta"]) > 0)
    return np.asarray(c["delta"])[ok], np.asarray(c["phi"])[ok]


def mean_curve(sols, treatment, grid):
    """Mean ± se over solutions of Φ_LE interpolated (in log δ) at ``grid``; only where ≥ half the
    solutions' converged ranges cover the point (no extrapolation). Solutions without a curve in this
    treatment (outside a figure's curve subset) are left out."""
    sols = with_curves(sols, treatment)
    vals = []
    for s in sols:
        d, phi = curve_points(s, treatment)
        row = np.full(len(grid), np.nan)
        if len(d) >= 2:
            order = np.argsort(d)
            d, phi = d[order], phi[order]
            inside = (grid >= d[0]) & (grid <= d[-1])
            row[inside] = np.interp(np.log(grid[inside]), np.log(d), phi)
        vals.append(row)
    vals = np.array(vals) if vals else np.zeros((0, len(grid)))
    m, se = np.full(len(grid), np.nan), np.full(len(grid), np.nan)
    for j in range(len(grid)):
        col = vals[:, j][np.isfinite(vals[:, j])]
        if len(col) and len(col) * 2 >= len(sols):
            m[j], se[j] = mean_se(col)
    return m, se


def with_curves(sols, treatment):
    """The solutions that have a curve in ``treatment`` (all, unless the figure computed a subset)."""
    return [s for s in sols if treatment in s.curves]


def phi_at(sol, treatment, delta):
    """Φ_LE of one solution interpolated at δ (NaN outside its converged range)."""
    d, phi = curve_points(sol, treatment)
    if len(d) < 2:
        return math.nan
    order = np.argsort(d)
    d, phi = d[order], phi[order]
    if not d[0] <= delta <= d[-1]:
        return math.nan
    return float(np.interp(math.log(delta), np.log(d), phi))


def delta_grid(fd: FigureData) -> np.ndarray:
    names = [curve_name("hard", m) for m in fd.spec.curve_methods]
    ds = np.concatenate([curve_points(s, k)[0] for lab in fd.solutions for s in fd.solutions[lab] for k in names]
                        or [np.array([])])
    if ds.size == 0:
        return np.array([])
    return np.logspace(np.log10(ds.min()), np.log10(ds.max()), 40)


def correlation_delta(fd: FigureData) -> float:
    """The δ at which Φ_LE is correlated with test error: the median of the solutions' largest converged δ
    at most, the geometric middle of the range all solutions cover otherwise."""
    lows, highs = [], []
    for lab in fd.solutions:
        for s in fd.solutions[lab]:
            d, _ = curve_points(s, primary(fd))
            if len(d) >= 2:
                lows.append(d.min())
                highs.append(d.max())
    if not lows:
        return math.nan
    lo, hi = max(lows), min(highs)
    return float(math.sqrt(lo * hi)) if hi > lo else float(np.median(highs))


def _quantities(fd: FigureData):
    """(curve name, CSV quantity) of every curve: the figure's own estimator as phi_le_<treatment>, the
    others with the estimator as suffix (phi_le_hard_bp)."""
    out = []
    for i, m in enumerate(fd.spec.curve_methods):
        for t in ("hard", "soft"):
            out.append((curve_name(t, m), f"phi_le_{t}" + ("" if i == 0 else f"_{METHOD_SUFFIX.get(m, m)}")))
    return out


def _phi_se(sol, key):
    """The standard errors of a sampled curve's converged points (None for BP's curves)."""
    c = sol.curves.get(key) or {}
    if "phi_se" not in c or not len(c.get("delta", [])):
        return None
    ok = np.asarray(c["converged"], bool) & np.isfinite(c["phi"]) & (np.asarray(c["delta"]) > 0)
    return np.asarray(c["phi_se"])[ok]


def rows(fd: FigureData):
    name = fd.spec.name
    grid = delta_grid(fd)
    for lab, sols in fd.solutions.items():
        for s in sols:
            for key, quantity in _quantities(fd):
                d, phi = curve_points(s, key)
                se = _phi_se(s, key)
                for j, (x, y) in enumerate(zip(d, phi)):
                    yield [name, lab, s.restart, quantity, x, y, None if se is None else se[j]]
            if s.energy is not None:
                for x, y, se in zip(s.energy["sigmas"], s.energy["delta_error"], s.energy["delta_error_se"]):
                    yield [name, lab, s.restart, "delta_train_error", x, y, se]
            yield [name, lab, s.restart, "test_error", None, s.test_error, None]
            yield [name, lab, s.restart, "train_error", None, s.train_error, None]
        for key, quantity in _quantities(fd):
            if grid.size:
                m, se = mean_curve(sols, key, grid)
                for x, y, e in zip(grid, m, se):
                    if math.isfinite(y):
                        yield [name, lab, None, f"{quantity}_mean", x, y, e]
        if sols and sols[0].energy is not None:
            E = np.array([s.energy["delta_error"] for s in sols])
            for j, x in enumerate(sols[0].energy["sigmas"]):
                m, e = mean_se(E[:, j])
                yield [name, lab, None, "delta_train_error_mean", x, m, e]
        m, e = mean_se([s.test_error for s in sols])
        yield [name, lab, None, "test_error_mean", None, m, e]


def write_csv(fd: FigureData, path) -> None:
    with atomic_open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["figure", "setting", "restart", "quantity", "x", "y", "y_se"])
        for row in rows(fd):
            w.writerow([_fmt(v) for v in row])


def _savefig(fig, stem: Path):
    for ext in ("png", "pdf"):
        with atomic_open(stem.with_suffix("." + ext)) as fh:
            fig.savefig(fh, format=ext, dpi=130)


def draw(fd: FigureData, out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    name, labels = fd.spec.name, list(fd.solutions)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    grid = delta_grid(fd)
    for i, lab in enumerate(labels):
        c = colors[i % len(colors)]
        sols = fd.solutions[lab]
        if grid.size and sols:
            m, se = mean_curve(sols, primary(fd), grid)
            axes[0].plot(grid, m, color=c, label=f"{lab} ({len(with_curves(sols, primary(fd)))})")
            axes[0].fill_between(grid, m - se, m + se, color=c, alpha=0.25, lw=0)
            for method, _ in compared(fd):
                m, _ = mean_curve(sols, curve_name("hard", method), grid)
                axes[0].plot(grid, m, color=c, ls="--", lw=1)
        if sols and sols[0].energy is not None:
            E = np.array([s.energy["delta_error"] for s in sols])
            sig = sols[0].energy["sigmas"]
            ms = np.array([mean_se(E[:, j]) for j in range(E.shape[1])])
            axes[1].errorbar(sig, ms[:, 0], yerr=np.nan_to_num(ms[:, 1]), color=c, marker=".", capsize=2, label=lab)
        te = [s.test_error for s in sols]
        axes[2].scatter(np.full(len(te), i) + np.linspace(-0.15, 0.15, len(te)) if te else [], te, color=c, s=10)
        if te:
            axes[2].boxplot([te], positions=[i], widths=0.5, showfliers=False)
    axes[0].set_xscale("log")
    axes[0].set_xlabel("δ = d / (K·N)  (distance per weight)")
    own = METHOD_LABELS.get(fd.spec.curve_methods[0], fd.spec.curve_methods[0])
    others = ", ".join(label for _, label in compared(fd))
    axes[0].set_ylabel(f"Φ_LE(δ) per weight ({'IS' if own == 'importance sampling' else own}"
                       + (f"; dashed: {others})" if others else ")"))
    title = [f"{own}" + (f" (solid) and {others} (dashed)" if others else "")]
    if fd.curve_subset is not None:
        title.append(_subset_text(fd) + " per setting")
    axes[0].set_title(", ".join(title), fontsize="small")
    axes[0].legend(fontsize="small")
    axes[1].set_xlabel("σ (relative weight noise, Eq. 4)")
    axes[1].set_ylabel("δE_train(σ)")
    axes[1].legend(fontsize="small")
    axes[2].set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize="small")
    axes[2].set_ylabel("test error")
    title = f"Figure {name}" + (" — quick preview, not the paper's settings" if fd.spec.quick else "")
    fig.suptitle(title)
    fig.tight_layout()
    stem = out_dir / f"fig{name}"
    try:
        _savefig(fig, stem)
    finally:
        plt.close(fig)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    dstar = correlation_delta(fd)
    for ax, (xlab, getter) in zip(axes, _flatness_measures(fd, dstar)):
        for i, lab in enumerate(labels):
            sols = fd.solutions[lab]
            ax.scatter([getter(s) for s in sols], [s.test_error for s in sols], s=12, color=colors[i % len(colors)],
                       label=lab)
        xs, ys = _pairs(fd, getter)
        cor = pearson(xs, ys)
        ax.set_title(f"Pearson r = {cor.r:.3f}, p = {cor.p:.2g}, n = {cor.n}", fontsize="small")
        ax.set_xlabel(xlab)
        ax.set_ylabel("test error")
    axes[0].legend(fontsize="small")
    fig.suptitle(f"Figure {name}: flatness against generalisation (App. B.3)" +
                 (" — quick preview" if fd.spec.quick else ""))
    fig.tight_layout()
    try:
        _savefig(fig, out_dir / f"fig{name}-correlation")
    finally:
        plt.close(fig)
    corr = out_dir / f"fig{name}-correlation"
    return [stem.with_suffix(".png"), stem.with_suffix(".pdf"), corr.with_suffix(".png"), corr.with_suffix(".pdf")]


def _energy_at(s, sigma=SIGMA_CORR):
    if s.energy is None:
        return math.nan
    sig = np.asarray(s.energy["sigmas"])
    j = int(np.argmin(np.abs(sig - sigma)))
    return float(s.energy["delta_error"][j]) if abs(sig[j] - sigma) < 1e-9 else math.nan


def _flatness_measures(fd, dstar, method=None):
    method = fd.spec.curve_methods[0] if method is None else method
    key = curve_name("hard", method)
    by = "" if method == fd.spec.curve_methods[0] else f", {METHOD_LABELS.get(method, method)}"
    return [(f"δE_train at σ = {SIGMA_CORR}", _energy_at),
            (f"Φ_LE at δ = {dstar:.3g} (per weight, hard{by})", lambda s: phi_at(s, key, dstar))]


def _pairs(fd, getter):
    sols = [s for lab in fd.solutions for s in fd.solutions[lab]]
    return np.array([getter(s) for s in sols], float), np.array([s.test_error for s in sols], float)


def _ranking(fd, values_of, higher_is_flatter: bool, what: str) -> list[str]:
    """Markdown lines: settings ranked by the median of a per-solution quantity, MWU between neighbours."""
    vals = {lab: np.array([values_of(s) for s in sols], float) for lab, sols in fd.solutions.items()}
    med = {lab: (np.nanmedian(v) if np.isfinite(v).any() else math.nan) for lab, v in vals.items()}
    order = sorted((lab for lab in vals if math.isfinite(med[lab])), key=lambda lab: med[lab],
                   reverse=higher_is_flatter)
    out = [f"Ranking by {what} (median over solutions; first = {'largest' if higher_is_flatter else 'smallest'}):", ""]
    out.append("| rank | setting | n | median | mean ± se |")
    out.append("|---|---|---|---|---|")
    for i, lab in enumerate(order):
        m, se = mean_se(vals[lab])
        out.append(f"| {i + 1} | {lab} | {int(np.isfinite(vals[lab]).sum())} | {med[lab]:.4g} | {m:.4g} ± {se:.2g} |")
    out.append("")
    if len(order) > 1:
        out.append("| neighbours | U | p (two-sided) | A = P(first > second) |")
        out.append("|---|---|---|---|")
        for a, b in zip(order[:-1], order[1:]):
            c = mann_whitney(a, vals[a], b, vals[b])
            out.append(f"| {a} vs {b} | {c.U:.1f} | {c.p:.3g} | {c.A:.3f} |")
        out.append("")
    return out


def claim_verdicts(fd: FigureData, dstar: Optional[float] = None, method: Optional[str] = None) -> list:
    """The paper's claimed orderings for this figure, each tested (``figures.claims.Verdict``), with Φ_LE
    by ``method`` (default: the figure's own estimator)."""
    dstar = correlation_delta(fd) if dstar is None else dstar
    method = fd.spec.curve_methods[0] if method is None else method
    hard, soft = curve_name("hard", method), curve_name("soft", method)
    quantities = [(f"Φ_LE hard at δ = {dstar:.3g}", lambda s: phi_at(s, hard, dstar), True),
                  (f"Φ_LE soft at δ = {dstar:.3g}", lambda s: phi_at(s, soft, dstar), True),
                  (f"δE_train at σ = {SIGMA_CORR}", _energy_at, False),
                  ("test error", lambda s: s.test_error, False)]
    dropouts = {st.label: st.preset.dropout for st in fd.spec.settings}
    return verdicts(fd.spec.name, fd.solutions, quantities, dropouts)


def verdict_line(vs) -> str:
    """'15 of 16 claims hold, 1 contradicted, 0 not shown' for a list of verdicts."""
    held = sum(v.word == "holds" for v in vs)
    against = sum(v.word.startswith("contradicted") for v in vs)
    return f"{held} of {len(vs)} claims hold, {against} contradicted, {len(vs) - held - against} not shown"


def _claims(fd: FigureData, dstar: float) -> list[str]:
    """Markdown lines: the paper's claims for this figure, each with its test and verdict (figures.claims)."""
    spec = fd.spec
    vs = claim_verdicts(fd, dstar)
    what = ("entropic settings (rsgd-fast, rsgd-slow, esgd) beat SGD slow, and SGD slow beats SGD fast"
            if spec.name == "1" else "a larger dropout probability beats the next smaller one")
    out = ["## Do the paper's claims hold here?", "",
           f"Claim ({'Sec. 5' if spec.name == '1' else 'App. B.3'}): {what} — flatter (larger Φ_LE, smaller "
           f"δE_train) and better generalising (smaller test error). Each row: one-sided Mann–Whitney U test in "
           f"the claimed direction; A = P(first better than second) + ½ P(tie) (0.5: no difference); "
           f"Holm-adjusted over the {len(vs)} rows; \"holds\" means Holm p < {ALPHA}, \"contradicted\" that the "
           f"opposite one-sided test has Holm p < {ALPHA}.", "",
           "| claim | quantity | n | A | p (one-sided) | p (Holm) | verdict |", "|---|---|---|---|---|---|---|"]
    for v in vs:
        out.append(f"| {v.better} beats {v.worse} | {v.quantity} | {v.n_better}, {v.n_worse} | {v.A:.3f} | "
                   f"{v.p:.3g} | {v.p_holm:.3g} | {v.word} |")
    out += ["", verdict_line(vs) + ".", ""]
    for method, label in compared(fd):  # the same claims with the other estimators' Φ_LE
        other = claim_verdicts(fd, dstar, method)
        out += [f"The same claims with {label}'s Φ_LE (the δE_train and test-error rows are the ones above; "
                f"Holm over all {len(other)} rows): {verdict_line(other)}.", "",
                "| claim | quantity | n | A | p (Holm) | verdict |", "|---|---|---|---|---|---|"]
        out += [f"| {v.better} beats {v.worse} | {v.quantity} | {v.n_better}, {v.n_worse} | {v.A:.3f} | "
                f"{v.p_holm:.3g} | {v.word} |" for v in other if v.quantity.startswith("Φ_LE")]
        out.append("")
    out += ["Flatness correlates with test error (App. B.3, Figure 7: flatter, lower error):", ""]
    measures = _flatness_measures(fd, dstar) + [m for method, _ in compared(fd)
                                                 for m in _flatness_measures(fd, dstar, method)[1:]]
    for (xlab, getter), sign in zip(measures, (1, -1) + (-1,) * (len(measures) - 2)):
        xs, ys = _pairs(fd, getter)
        c = pearson(xs, ys)
        one = c.p / 2 if math.isfinite(c.r) and np.sign(c.r) == sign else (1 - c.p / 2 if math.isfinite(c.p) else math.nan)
        word = ("holds" if one < ALPHA else
                ("contradicted (the other way)" if math.isfinite(one) and 1 - one < ALPHA else "not shown"))
        out.append(f"- {xlab} against test error: expected r {'>' if sign > 0 else '<'} 0; Pearson r = {c.r:.3f}, "
                   f"one-sided p = {one:.3g}, n = {c.n}: {word}")
    out.append("")
    return out


def code_version() -> str:
    from localentropy import __version__

    root = Path(__file__).resolve().parents[1]
    try:
        rev = subprocess.run(["git", "-C", str(root), "describe", "--always", "--dirty"], capture_output=True,
                             text=True, timeout=10)
        if rev.returncode == 0 and rev.stdout.strip():
            return f"{__version__} (git {rev.stdout.strip()})"
    except (OSError, subprocess.SubprocessError):
        pass
    return __version__


def _reuse_note(what: str, found: int, needed: int, spent=None) -> str:
    return f"{what} {found}/{needed}" + (f" (computed earlier in {spent:.1f} s)" if found and spent is not None else "")


def summary(fd: FigureData, command: str, stage_wall: dict) -> str:
    spec = fd.spec
    lines = [f"# Figure {spec.name}" + (" — quick preview, NOT the paper's settings" if spec.quick else ""), ""]
    lines += [f"Command: `{command}`", "", f"Code version: {code_version()}; data hash {fd.data_hash[:16]}", ""]
    if fd.origin:
        lines += [f"Solutions read from `{fd.origin}` (trained by an earlier run of the recipe); every later stage "
                  f"(test and training errors, local energies, local-entropy curves) computed afresh from their "
                  f"weights.", ""]
    if fd.curve_subset is not None:
        lines += [f"Panel (a) and every Φ_LE row below use the local-entropy curves of the first solutions of each "
                  f"setting (by restart id), not all of them ({_subset_text(fd)}): the rows' n says how many.", ""]
    if spec.quick:
        from localentropy.figures.spec import QUICK_RATE

        lines += ["Quick preview: time rescaled by a factor f per setting — schedules x(t) = x0(1+x1)^t run as "
                  "x(f·t), and one rate (η, or the coupling γ0) multiplied by f:", ""]
        lines += [f"- {s.label}: f = {s.time_scale:g}" + (f", {QUICK_RATE.get(s.preset.name, 'eta')} × f"
                                                           if s.time_scale != 1 else "") for s in spec.settings] + [""]
    dstar = correlation_delta(fd)
    lines += _claims(fd, dstar)
    lines += ["## Solutions", "", "| setting | solutions used | restarts tried | excluded | train error (mean, max) | "
              "epochs to stop (median, max) | curve points failed (hard / soft) |", "|---|---|---|---|---|---|---|"]
    for s in spec.settings:
        sols = fd.solutions[s.label]
        fails = []
        for m in spec.curve_methods:
            n_fail = [sum(int((~np.asarray(x.curves[k]["converged"], bool)).sum()) + (1 if x.curves[k].get("error") else 0)
                          for x in with_curves(sols, k)) for k in (curve_name("hard", m), curve_name("soft", m))]
            fails.append(f"{METHOD_LABELS.get(m, m)} {n_fail[0]} / {n_fail[1]}")
        tr = [x.train_error for x in sols] or [math.nan]
        ep = [x.epochs for x in sols] or [0]
        lines.append(f"| {s.label} | {len(sols)} | {fd.tried[s.label]} | {len(fd.excluded[s.label])} | "
                     f"{np.mean(tr):.4f}, {np.max(tr):.4f} | {np.median(ep):.0f}, {np.max(ep)} | {'; '.join(fails)} |")
    lines.append("")
    for lab, exc in fd.excluded.items():
        for r, why in exc:
            lines.append(f"- excluded: {lab} restart {r}: {why}")
    for lab, sols in fd.solutions.items():
        for x in sols:
            for k in sorted(x.curves):
                if x.curves[k].get("error"):
                    lines.append(f"- curve failed: {lab} restart {x.restart} ({k}): {x.curves[k]['error']}")
    lines += ["", f"Training patterns misclassified by some solution, left out of the hard treatment "
              f"(the same for every setting): {fd.dropped_patterns or 'none'}; the soft treatment keeps every "
              f"pattern with β = {spec.soft_beta:g}.", ""]
    lines += ["## Panel (a): local entropy", ""] + _panel_a_reading(fd)
    for t in ("hard", "soft"):
        lines += [f"Treatment `{t}`: Φ_LE per weight at δ = {dstar:.3g}.", ""]
        lines += _ranking(fd, lambda s, k=primary(fd, t): phi_at(s, k, dstar), True, f"Φ_LE ({t}) — flatter first")
    lines += _bias(fd, dstar)
    lines += ["## Panel (b): local energy", ""]
    lines += _ranking(fd, _energy_at, False, f"δE_train at σ = {SIGMA_CORR} — flatter first")
    lines += ["## Panel (c): test error", ""]
    lines += _ranking(fd, lambda s: s.test_error, False, "test error — better first")
    lines += ["## Flatness against test error (App. B.3)", ""]
    for xlab, getter in _flatness_measures(fd, dstar) + [m for method, _ in compared(fd)
                                                         for m in _flatness_measures(fd, dstar, method)[1:]]:
        xs, ys = _pairs(fd, getter)
        c = pearson(xs, ys)
        lines.append(f"- {xlab}: Pearson r = {c.r:.3f}, p = {c.p:.3g}, n = {c.n}")
    lines += ["", "## Wall time of this run", "", "Computed in this run (stages read from the cache cost nothing here):", ""]
    lines += [f"- {k}: {v:.1f} s" for k, v in stage_wall.items()]
    if fd.reused:
        lines += ["", "Read from the cache (found / needed, and what the found entries took when computed where "
                      "they record it): " + "; ".join(_reuse_note(what, *t) for what, t in fd.reused.items())]
    lines.append("")
    return "\n".join(lines)


def _subset_text(fd: FigureData) -> str:
    """'importance sampling: first 3, BP: first 12' (or 'first 20' when every estimator has the same)."""
    sub = fd.curve_subset or {}
    if len(set(sub.values())) == 1:
        n = next(iter(sub.values()))
        return f"first {n}" if n is not None else "all"
    return ", ".join(f"{METHOD_LABELS.get(m, m)}: " + (f"first {n}" if n is not None else "all")
                     for m, n in sub.items())


def _panel_a_reading(fd: FigureData) -> list[str]:
    """What panel (a)'s Φ_LE is, by the figure's own estimator."""
    own = fd.spec.curve_methods[0]
    if own == "is":
        text = ("Φ_LE by EP-guided sequential importance sampling (`committee.curves`, method `is`; "
                "docs/committee_estimator.md): an unbiased estimate of φ_G(Δ) with a standard error on every point "
                f"(the CSV's y_se), on {len(fd.spec.sampled_deltas)} prior widths Δ from {min(fd.spec.sampled_deltas):.3g} "
                f"to {max(fd.spec.sampled_deltas):.3g}.")
    elif own in ("auto", "amp", "edge"):
        text = ("Φ_LE is BP's (Bethe) estimate. On this subset plain Monte Carlo and the samplers find BP's φ_G(Δ) "
                "too negative by tens of percent (docs/bp.md §8.3); read the values as BP's.")
    else:
        text = f"Φ_LE by {METHOD_LABELS.get(own, own)}."
    others = ", ".join(label for _, label in compared(fd))
    if others:
        text += f" Dashed in panel (a): {others}, computed on the same solutions; its bias is below."
    return [text, ""]


def _bias(fd: FigureData, dstar: float) -> list[str]:
    """Per setting, each other estimator's Φ_LE and φ_G against the figure's own: median and range of the
    ratio − 1 over the solutions that have both."""
    own = fd.spec.curve_methods[0]
    out = []
    for method, label in compared(fd):
        out += [f"### {label} against {METHOD_LABELS.get(own, own)}", "",
                f"Per setting, over the solutions with both curves: {label}'s Φ_LE at δ = {dstar:.3g} (hard and soft) "
                f"and φ_G at the prior width Δ* of the figure's grid nearest to 2δ (hard), each as the ratio to "
                f"{METHOD_LABELS.get(own, own)}'s − 1: median [min, max]. Positive: {label} more negative.", "",
                "| setting | n | Φ_LE hard | Φ_LE soft | φ_G hard at Δ* |", "|---|---|---|---|---|"]
        for lab, sols in fd.solutions.items():
            cells, n = [], 0
            for t in ("hard", "soft"):
                r = np.array([phi_at(s, curve_name(t, method), dstar) / phi_at(s, curve_name(t, own), dstar) - 1
                              for s in sols if curve_name(t, method) in s.curves and curve_name(t, own) in s.curves])
                r = r[np.isfinite(r)]
                n = max(n, len(r))
                cells.append(f"{np.median(r):+.1%} [{r.min():+.1%}, {r.max():+.1%}]" if len(r) else "—")
            r = np.array([_phi_G_ratio(s, method, own, 2 * dstar) for s in sols])
            r = r[np.isfinite(r)]
            cells.append(f"{np.median(r):+.1%} [{r.min():+.1%}, {r.max():+.1%}]" if len(r) else "—")
            out.append(f"| {lab} | {n} | " + " | ".join(cells) + " |")
        out.append("")
    return out


def _phi_G_ratio(sol, method, own, Delta) -> float:
    """φ_G by ``method`` over φ_G by ``own`` − 1 at the Δ of own's grid nearest ``Delta`` (interpolated in
    log Δ on method's grid); nan when either curve is missing there."""
    a, b = sol.curves.get(curve_name("hard", method)), sol.curves.get(curve_name("hard", own))
    if not a or not b or not len(a.get("prior_delta", [])) or not len(b.get("prior_delta", [])):
        return math.nan
    Db, gb = np.asarray(b["prior_delta"]), np.asarray(b["phi_G"])
    j = int(np.argmin(np.abs(np.log(Db / Delta))))
    Da, ga = np.asarray(a["prior_delta"]), np.asarray(a["phi_G"])
    ok = np.isfinite(ga)
    if ok.sum() < 2 or not Da[ok][0] <= Db[j] <= Da[ok][-1] or not math.isfinite(gb[j]):
        return math.nan
    return float(np.interp(math.log(Db[j]), np.log(Da[ok]), ga[ok]) / gb[j] - 1)


def solutions_file_name(figure: str, label: str) -> str:
    """``figN-solutions-<label>.npz`` with the label made file-safe (``sgd-fast p=0.1`` → ``sgd-fast-p0.1``)."""
    slug = re.sub(r"[^A-Za-z0-9.]+", "-", label.replace("=", "")).strip("-")
    return f"fig{figure}-solutions-{slug}.npz"


def write_solutions(fd: FigureData, out_dir: Path) -> list[Path]:
    """One solutions file per setting (``committee.solutions`` format: ``localentropy phi`` and
    ``energy`` read it) holding the solutions the figure drew, in the order of their restart ids."""
    from localentropy.committee.solutions import save_solutions
    from localentropy.figures.spec import train_options

    paths = []
    for st in fd.spec.settings:
        sols = fd.solutions[st.label]
        if not sols:
            continue
        opts = train_options(st.preset)
        meta = {"figure": fd.spec.name, "figure_setting": st.label, "setting": st.preset.name,
                "algorithm": st.preset.algorithm, "hyperparameters": st.preset.as_dict(), "seed": fd.spec.seed,
                "quick": fd.spec.quick, "time_scale": st.time_scale,
                "training": {"shared_batches": opts["shared_batches"], "dtype": str(opts["dtype"]).replace("torch.", "")},
                "restart_ids": [s.restart for s in sols], "epochs": [s.epochs for s in sols],
                "status": ["converged" for _ in sols], "train_error": [s.train_error for s in sols],
                "test_error": [s.test_error for s in sols],
                "misclassified": [[int(i) for i in s.misclassified] for s in sols]}
        paths.append(save_solutions(out_dir / solutions_file_name(fd.spec.name, st.label),
                                    np.stack([s.weights for s in sols]), fd.data_hash, meta))
    return paths


def write_outputs(fd: FigureData, out_dir, command: str, stage_wall: dict) -> list[Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = fd.spec.name
    write_csv(fd, out_dir / f"fig{name}.csv")
    files = draw(fd, out_dir) + write_solutions(fd, out_dir)
    with atomic_open(out_dir / f"fig{name}-summary.md", "w") as fh:
        fh.write(summary(fd, command, stage_wall))
    return files + [out_dir / f"fig{name}.csv", out_dir / f"fig{name}-summary.md"]
