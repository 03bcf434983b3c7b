"""Seed-noise statistics shared by results.md and figures/findings.md: Welch's t-test and Holm's correction.

    from common.stats import welch, holm
    w = welch([98.1, 98.2, 98.3], [97.9, 98.0, 98.1])   # w.diff, w.se, w.t, w.df, w.p
    adjusted = holm([w.p, 0.2, 0.01])                    # family-wise error held at alpha

The p-values come from scipy (a maintained library), not from a fixed |t| threshold: with 3 seeds a side,
Welch's degrees of freedom are 2-4 and the 5% two-sided critical t is 2.8-4.3, not 3.
"""

import math
from dataclasses import dataclass

import numpy as np

ALPHA = 0.05
RULE = ("Welch's two-sample t-test on the per-seed values (unequal variances, Satterthwaite degrees of "
        "freedom, two-sided, scipy.stats.ttest_ind), p-values adjusted with Holm's step-down method over "
        "the comparisons of one table; a difference counts as beyond seed noise when its adjusted p < 0.05")


@dataclass(frozen=True)
class Welch:
    diff: float   # mean(a) - mean(b)
    se: float     # standard error of the difference
    t: float
    df: float     # Satterthwaite's degrees of freedom
    p: float      # two-sided, unadjusted


def welch(a, b):
    """Welch's t-test of mean(a) - mean(b); None with fewer than 2 values on either side."""
    from scipy import stats

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(a) < 2 or len(b) < 2:
        return None
    diff = float(a.mean() - b.mean())
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:  # both sides constant: no noise at all, so any difference is exact
        return Welch(diff, 0.0, math.copysign(math.inf, diff) if diff else 0.0, math.nan,
                     0.0 if diff else 1.0)
    result = stats.ttest_ind(a, b, equal_var=False)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    return Welch(diff, se, float(result.statistic), float(df), float(result.pvalue))


def holm(pvalues):
    """Holm's step-down adjustment of ``pvalues`` (same order back); None entries stay None."""
    indexed = [(p, i) for i, p in enumerate(pvalues) if p is not None]
    m = len(indexed)
    adjusted = [None] * len(pvalues)
    running = 0.0
    for rank, (p, i) in enumerate(sorted(indexed)):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted


def verdict(p_adjusted, alpha=ALPHA):
    if p_adjusted is None:
        return "not tested (fewer than 2 seeds)"
    return "beyond seed noise" if p_adjusted < alpha else "not distinguishable from seed noise"


def mean_std(values):
    """(mean, sample std); std 0 for a single value."""
    values = np.asarray(values, dtype=np.float64)
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0
