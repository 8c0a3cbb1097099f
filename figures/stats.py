"""The statistics a figure's summary reports: Mann–Whitney U between settings, Pearson r.

Effect size of a Mann–Whitney comparison: the common-language effect size
A = P(a > b) + ½ P(a = b) = U_a / (n_a n_b) (0.5: no difference), and the rank-biserial
correlation 2A − 1. p-values are two-sided (scipy.stats; exact for small samples without ties).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Comparison:
    a: str
    b: str
    n_a: int
    n_b: int
    U: float  # U statistic of sample a
    p: float
    A: float  # common-language effect size P(a > b) + ½ P(a = b)

    @property
    def rank_biserial(self) -> float:
        return 2 * self.A - 1


def mann_whitney(a_name: str, a, b_name: str, b) -> Comparison:
    """Two-sided Mann–Whitney U test of samples a and b (finite values only; NaN where a sample has < 1)."""
    from scipy.stats import mannwhitneyu

    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if len(a) < 1 or len(b) < 1:
        return Comparison(a_name, b_name, len(a), len(b), math.nan, math.nan, math.nan)
    res = mannwhitneyu(a, b, alternative="two-sided")
    U = float(res.statistic)
    return Comparison(a_name, b_name, len(a), len(b), U, float(res.pvalue), U / (len(a) * len(b)))


@dataclass(frozen=True)
class Correlation:
    n: int
    r: float
    p: float


def pearson(x, y) -> Correlation:
    """Pearson r of the finite pairs (x_i, y_i) with its two-sided p-value (NaN below 3 pairs or no spread)."""
    from scipy.stats import pearsonr

    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return Correlation(len(x), math.nan, math.nan)
    res = pearsonr(x, y)
    return Correlation(len(x), float(res.statistic), float(res.pvalue))


def mean_se(values) -> tuple[float, float]:
    """Mean and standard error (sample std / √n) of the finite values; se NaN for n < 2."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return math.nan, math.nan
    return float(v.mean()), (float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else math.nan)
