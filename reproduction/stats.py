"""Seed-noise statistics shared by results.md and figures/findings.md.

    from reproduction.stats import welch, holm, contrast, judge, tost, seeds_to_exclude
    w = welch([98.1, 98.2, 98.3], [97.9, 98.0, 98.1])   # w.diff, w.se, w.t, w.df, w.p   (results.md)
    adjusted = holm([w.p, 0.2, 0.01])                    # family-wise error held at alpha

    e = contrast([[98.1, 98.2, 98.3], [97.9, 98.0, 98.1]], [1, -1], family=2)   # mean(a) - mean(b), Welch
    e.low, e.high                        # its interval at level 1 - 0.05/2 (Bonferroni over a family of 2)
    judge(e, sign=+1, report=0.23)       # ("holds" | "does not hold" | "not resolved", why)
    seeds_to_exclude(e, 0.0)             # seeds per group for 80% power to exclude 0 at the observed variance
    tost(e, margin=0.2)                  # two one-sided tests: is the effect within +-0.2?

The p-values come from scipy (a maintained library), not from a fixed |t| threshold: with 3 seeds a side,
Welch's degrees of freedom are 2-4 and the 5% two-sided critical t is 2.8-4.3, not 3.

A contrast is sum_i w_i * mean(group_i) over independent groups; with weights (1, -1) it is Welch's two-sample
difference, with one group and weight 1 the one-sample mean (e.g. of per-seed paired differences). Its
variance is sum_i w_i^2 s_i^2 / n_i, its degrees of freedom Welch-Satterthwaite's.
"""

import math
from dataclasses import dataclass

import numpy as np

ALPHA = 0.05
POWER = 0.8
MAX_SEEDS = 100_000  # a power calculation that needs more than this says so instead of searching on
RULE = ("Welch's two-sample t-test on the per-seed values (unequal variances, Satterthwaite degrees of "
        "freedom, two-sided, scipy.stats.ttest_ind), p-values adjusted with Holm's step-down method over "
        "the comparisons of one table; a difference counts as beyond seed noise when its adjusted p < 0.05")
HOLDS, FAILS, UNRESOLVED = "holds", "does not hold", "not resolved"


def prediction_interval(values, level=0.95):
    """(low, high): where one more draw from the values' population falls with probability ``level``, if it is
    normal: mean ± t((1 + level)/2, n−1) · s · sqrt(1 + 1/n). None with fewer than 2 values."""
    from scipy import stats

    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    if n < 2:
        return None
    half = float(stats.t.ppf((1 + level) / 2, n - 1)) * values.std(ddof=1) * math.sqrt(1 + 1 / n)
    return float(values.mean() - half), float(values.mean() + half)


# --- results.md: Welch's t and Holm -------------------------------------------------------------------------

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


# --- findings.md: intervals, equivalence, power ----------------------------------------------------------

@dataclass(frozen=True)
class Effect:
    """A contrast of group means with its Welch t interval at level 1 - alpha/family (Bonferroni)."""
    diff: float
    se: float
    df: float          # Welch-Satterthwaite; nan when every group is constant
    low: float
    high: float
    p: float           # two-sided test of diff = 0, unadjusted
    family: int        # comparisons sharing the family-wise alpha
    alpha: float
    parts: tuple       # w_i^2 * s_i^2 per group: the variance of the contrast is sum(parts_i / n_i)
    sizes: tuple       # n_i per group

    @property
    def level(self):
        return 1 - self.alpha / self.family

    @property
    def p_adjusted(self):
        return min(1.0, self.p * self.family)

    @property
    def width(self):
        return self.high - self.low

    @property
    def seeds(self):
        return min(self.sizes)


def satterthwaite(parts, sizes):
    """Degrees of freedom of sum(parts_i / n_i): (sum v_i)^2 / sum(v_i^2 / (n_i - 1)), v_i = parts_i / n_i."""
    v = [c / n for c, n in zip(parts, sizes)]
    denominator = sum(x * x / (n - 1) for x, n in zip(v, sizes))
    return sum(v) ** 2 / denominator if denominator > 0 else math.nan


def contrast(groups, weights, alpha=ALPHA, family=1):
    """sum_i w_i * mean(groups_i) with its Welch interval at level 1 - alpha/family; None if a group has < 2 values."""
    from scipy import stats

    groups = [np.asarray(g, dtype=np.float64) for g in groups]
    if any(len(g) < 2 for g in groups):
        return None
    diff = float(sum(w * g.mean() for w, g in zip(weights, groups)))
    parts = tuple(float(w * w * g.var(ddof=1)) for w, g in zip(weights, groups))
    sizes = tuple(len(g) for g in groups)
    se = math.sqrt(sum(c / n for c, n in zip(parts, sizes)))
    if se == 0:  # every group constant: the difference is exact
        return Effect(diff, 0.0, math.nan, diff, diff, 0.0 if diff else 1.0, family, alpha, parts, sizes)
    df = satterthwaite(parts, sizes)
    half = float(stats.t.ppf(1 - alpha / (2 * family), df)) * se
    p = float(2 * stats.t.sf(abs(diff) / se, df))
    return Effect(diff, se, df, diff - half, diff + half, p, family, alpha, parts, sizes)


def welch_interval(a, b, alpha=ALPHA, family=1):
    """mean(a) - mean(b) with its Welch interval (the two-group contrast)."""
    return contrast([a, b], [1, -1], alpha, family)


def judge(effect, sign, report=None):
    """Read an interval against the claimed direction ``sign`` (+1: the effect is positive) and the report's own
    effect: (HOLDS | FAILS | UNRESOLVED, why).

    holds: the interval excludes 0 on the claimed side (why notes when it also excludes the report's effect);
    does not hold: it lies on the other side of 0, or includes 0 but excludes the report's effect (or is exactly
    0: every group constant, the effect nil);
    not resolved: it includes 0 and (where the report gives one) the report's effect.
    """
    low, high = sorted((sign * effect.low, sign * effect.high))
    claimed = None if report is None else sign * report
    if low == high == 0:  # no noise and no effect: nothing left to resolve
        return FAILS, "exactly 0, with no seed-to-seed variation"
    if low > 0:
        if claimed is not None and claimed > high:
            return HOLDS, f"smaller than the report's {report:+.2f}"
        if claimed is not None and claimed < low:
            return HOLDS, f"larger than the report's {report:+.2f}"
        return HOLDS, ""
    if high < 0:
        return FAILS, "the opposite sign"
    if claimed is not None and not low <= claimed <= high:
        return FAILS, f"the interval excludes the report's {report:+.2f}"
    return UNRESOLVED, ""


@dataclass(frozen=True)
class Tost:
    """Two one-sided tests of -margin < effect < margin, at alpha/family each (Bonferroni)."""
    p: float           # max of the two one-sided p-values, unadjusted
    low: float         # the matching interval, level 1 - 2 alpha/family: equivalent iff it lies inside +-margin
    high: float
    margin: float
    equivalent: bool


def tost(effect, margin, alpha=ALPHA):
    from scipy import stats

    a = alpha / effect.family
    if effect.se == 0:
        inside = abs(effect.diff) < margin
        return Tost(0.0 if inside else 1.0, effect.diff, effect.diff, margin, inside)
    p_lower = float(stats.t.sf((effect.diff + margin) / effect.se, effect.df))    # H0: effect <= -margin
    p_upper = float(stats.t.cdf((effect.diff - margin) / effect.se, effect.df))   # H0: effect >= +margin
    half = float(stats.t.ppf(1 - a, effect.df)) * effect.se
    p = max(p_lower, p_upper)
    return Tost(p, effect.diff - half, effect.diff + half, margin, p < a)


def at_seeds(effect, n):
    """(standard error, degrees of freedom) of ``effect``'s contrast with n values per group, same variances."""
    total = sum(effect.parts)
    df = total ** 2 * (n - 1) / sum(c * c for c in effect.parts) if total > 0 else math.inf
    return math.sqrt(total / n), df


def power_to_exclude(effect, target, n, sides=2):
    """Power of the t-test of effect = target (level alpha/family; sides=1: one-sided, towards the observed
    effect) with n seeds per group, when the true effect and the variances are the observed ones: noncentral t
    with Welch's df."""
    from scipy import stats

    se, df = at_seeds(effect, n)
    a = effect.alpha / effect.family
    shift = (effect.diff - target) / se
    if sides == 1:
        return float(stats.nct.sf(stats.t.ppf(1 - a, df), df, abs(shift)))
    critical = stats.t.ppf(1 - a / 2, df)
    return float(stats.nct.sf(critical, df, shift) + stats.nct.cdf(-critical, df, shift))


def power_of_equivalence(effect, margin, n):
    """Power of TOST (each one-sided test at alpha/family) with n seeds per group at the observed effect and
    variances; the usual approximation P(T1 > t) + P(T2 < -t) - 1 with noncentral t's (exact as df -> inf)."""
    from scipy import stats

    se, df = at_seeds(effect, n)
    critical = stats.t.ppf(1 - effect.alpha / effect.family, df)
    upper = stats.nct.sf(critical, df, (effect.diff + margin) / se)
    lower = stats.nct.cdf(-critical, df, (effect.diff - margin) / se)
    return max(0.0, float(upper + lower - 1))


def smallest_n(power_at, goal=POWER, start=2):
    """The smallest n >= start with power_at(n) >= goal (power grows with n); None above MAX_SEEDS."""
    if power_at(start) >= goal:
        return start
    low, high = start, start * 2
    while power_at(high) < goal:
        if high >= MAX_SEEDS:
            return None
        low, high = high, min(high * 2, MAX_SEEDS)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if power_at(middle) >= goal else (middle, high)
    return high


def seeds_to_exclude(effect, target, goal=POWER, sides=2):
    """Seeds per group (more than now) for ``goal`` power to exclude ``target`` from the interval, at the observed
    effect and variances; None when no number will (the observed effect equals the target, or > MAX_SEEDS)."""
    if effect.se == 0 or effect.diff == target:
        return None
    return smallest_n(lambda n: power_to_exclude(effect, target, n, sides), goal, effect.seeds + 1)


def seeds_for_equivalence(effect, margin, goal=POWER):
    """Seeds per group (more than now) for ``goal`` power to show the effect within +-margin, at the observed effect and
    variances; None when the observed effect is not inside the margin (no number of seeds would)."""
    if abs(effect.diff) >= margin or effect.se == 0:
        return None
    return smallest_n(lambda n: power_of_equivalence(effect, margin, n), goal, effect.seeds + 1)
