"""The claims of paper 000 that a figure tests, and their verdicts on the computed solutions.

Figure 1 (Sec. 5): the entropic settings (rsgd-fast, rsgd-slow, esgd) find flatter minima that
generalise better than SGD slow, and SGD slow than SGD fast, in every panel. Figure 6 (App. B.3):
a larger dropout probability gives flatter, better-generalising minima. Both: flatness correlates
with test error (Figure 7).

Each ordered claim "a beats b on a quantity" is a one-sided Mann–Whitney U test in the claimed
direction (p < ``ALPHA`` holds) with its effect size A = P(a better than b) + ½ P(tie), and with the
Holm-adjusted p over all of a figure's comparisons beside it. A claim whose data point the other way
(the opposite one-sided test, Holm-adjusted the same way, p < ``ALPHA``) is reported as
contradicted; otherwise as not shown.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

ALPHA = 0.05
FIG1_ORDER = (("rsgd-fast", "sgd-slow"), ("rsgd-slow", "sgd-slow"), ("esgd", "sgd-slow"), ("sgd-slow", "sgd-fast"))


@dataclass(frozen=True)
class Verdict:
    better: str
    worse: str
    quantity: str
    n_better: int
    n_worse: int
    A: float  # P(better's value is the better one) + ½ P(tie)
    p: float  # one-sided, in the claimed direction
    p_opposite: float  # one-sided, the other way
    p_holm: float = math.nan
    p_opposite_holm: float = math.nan

    @property
    def word(self) -> str:
        p = self.p_holm if math.isfinite(self.p_holm) else self.p
        if not math.isfinite(p):
            return "untested (too few values)"
        if p < ALPHA:
            return "holds"
        q = self.p_opposite_holm if math.isfinite(self.p_opposite_holm) else self.p_opposite
        if math.isfinite(q) and q < ALPHA:
            return "contradicted (the other way)"
        return "not shown"


def one_sided(better_name, better, worse_name, worse, quantity, higher_is_better: bool) -> Verdict:
    """Mann–Whitney U of "better beats worse" on ``quantity``, one-sided in the claimed direction."""
    from scipy.stats import mannwhitneyu

    a = np.asarray(better, float)
    b = np.asarray(worse, float)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if len(a) < 1 or len(b) < 1:
        return Verdict(better_name, worse_name, quantity, len(a), len(b), math.nan, math.nan, math.nan)
    if not higher_is_better:
        a, b = -a, -b
    res = mannwhitneyu(a, b, alternative="greater")
    opp = mannwhitneyu(a, b, alternative="less")
    return Verdict(better_name, worse_name, quantity, len(a), len(b), float(res.statistic) / (len(a) * len(b)),
                   float(res.pvalue), float(opp.pvalue))


def holm_adjust(ps) -> list:
    """Holm's step-down adjusted p-values (NaN entries stay NaN and are not counted)."""
    idx = [i for i, p in enumerate(ps) if math.isfinite(p)]
    order = sorted(idx, key=lambda i: ps[i])
    adj, running = [math.nan] * len(ps), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * ps[i]))
        adj[i] = running
    return adj


def holm(verdicts: list) -> list:
    """The verdicts with Holm-adjusted p-values, the claimed direction's and the opposite one's
    (each family: all the figure's comparisons)."""
    import dataclasses

    fwd = holm_adjust([v.p for v in verdicts])
    back = holm_adjust([v.p_opposite for v in verdicts])
    return [dataclasses.replace(v, p_holm=a, p_opposite_holm=b) for v, a, b in zip(verdicts, fwd, back)]


def claimed_pairs(figure: str, labels: list, dropouts: dict) -> list:
    """(better, worse) pairs the paper claims for this figure, among the settings present.

    Figure 6: every larger dropout beats the next smaller one (``dropouts``: label → p)."""
    if figure == "1":
        return [(a, b) for a, b in FIG1_ORDER if a in labels and b in labels]
    ordered = sorted(labels, key=lambda lab: dropouts[lab])
    return [(hi, lo) for lo, hi in zip(ordered[:-1], ordered[1:])]


def verdicts(figure: str, solutions: dict, quantities: list, dropouts: dict) -> list:
    """One Verdict per claimed pair and quantity. ``quantities``: (name, getter(solution), higher_is_better)."""
    out = []
    for name, getter, higher in quantities:
        for a, b in claimed_pairs(figure, list(solutions), dropouts):
            out.append(one_sided(a, [getter(s) for s in solutions[a]], b, [getter(s) for s in solutions[b]],
                                 name, higher))
    return holm(out)
