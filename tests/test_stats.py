"""reproduction/stats.py: Welch's t-test against scipy and by hand, Holm's step-down correction, the verdicts."""

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from reproduction import stats


def test_welch_matches_scipy_and_the_satterthwaite_formula():
    a, b = [98.19, 98.19, 98.10], [98.38, 98.14, 98.17]
    w = stats.welch(a, b)
    reference = scipy_stats.ttest_ind(a, b, equal_var=False)
    assert w.t == pytest.approx(reference.statistic) and w.p == pytest.approx(reference.pvalue)
    va, vb = 0.0027 / 3, 0.0171 / 3   # sample variances / n, by hand
    assert w.se == pytest.approx(math.sqrt(va + vb), rel=1e-3)
    assert w.df == pytest.approx((va + vb) ** 2 / (va ** 2 / 2 + vb ** 2 / 2), rel=1e-3)
    assert w.diff == pytest.approx(-0.07)


def test_a_t_above_3_with_few_degrees_of_freedom_is_not_significant():
    """The old fixed rule (|t| >= 3 counts) would call this real; with df ~ 2 its p-value is ~0.08."""
    w = stats.welch([0.6, 1.1, 1.9], [0.0, 0.01, 0.02])
    assert abs(w.t) > 3 and w.df < 2.5 and w.p > 0.05
    assert stats.verdict(w.p) == "not distinguishable from seed noise"


def test_fewer_than_two_values_give_no_test_and_constant_sides_an_exact_answer():
    assert stats.welch([1.0], [2.0, 3.0]) is None
    assert stats.welch([1.0, 1.0], [1.0, 1.0]).p == 1.0
    assert stats.welch([2.0, 2.0], [1.0, 1.0]).p == 0.0


def test_holm_by_hand():
    # sorted 0.01, 0.03, 0.04, 0.2 -> x4 = 0.04, x3 = 0.09, x2 = 0.08 -> running max 0.09, x1 = 0.2
    assert stats.holm([0.01, 0.04, 0.03, 0.2]) == pytest.approx([0.04, 0.09, 0.09, 0.2])
    assert stats.holm([0.5, None, 0.9]) == [pytest.approx(1.0), None, pytest.approx(1.0)]
    assert stats.holm([]) == []


def test_verdicts():
    assert stats.verdict(0.049) == "beyond seed noise"
    assert stats.verdict(0.05) == "not distinguishable from seed noise"
    assert stats.verdict(None).startswith("not tested")


# --- intervals, verdicts, equivalence, power (figures/findings.md) ---------------------------------------------

A, B = [98.19, 98.19, 98.10, 98.31], [98.38, 98.14, 98.17]


@pytest.mark.parametrize("family", [1, 2, 4])
def test_welch_interval_matches_scipy_at_the_bonferroni_level(family):
    e = stats.welch_interval(A, B, family=family)
    reference = scipy_stats.ttest_ind(A, B, equal_var=False)
    low, high = reference.confidence_interval(1 - 0.05 / family)
    assert (e.low, e.high) == (pytest.approx(low), pytest.approx(high))
    assert e.p == pytest.approx(reference.pvalue) and e.p_adjusted == pytest.approx(min(1, family * reference.pvalue))
    assert e.level == pytest.approx(1 - 0.05 / family) and e.width == pytest.approx(high - low)


def test_one_sample_contrast_is_scipys_one_sample_interval():
    gaps = [0.07, -0.06, 0.08, 0.02]
    e = stats.contrast([gaps], [1])
    reference = scipy_stats.ttest_1samp(gaps, 0.0)
    low, high = reference.confidence_interval(0.95)
    assert (e.low, e.high, e.df) == (pytest.approx(low), pytest.approx(high), pytest.approx(3))
    assert e.p == pytest.approx(reference.pvalue)


def test_four_group_contrast_by_hand():
    """(a - b) - (c - d): variance sum s_i^2 / n_i, Satterthwaite's degrees of freedom."""
    groups = [[1.0, 2.0, 3.0], [0.0, 0.0, 3.0], [5.0, 7.0], [1.0, 1.5, 2.0, 2.5]]
    e = stats.contrast(groups, [1, -1, -1, 1])
    assert e.diff == pytest.approx((2 - 1) - (6 - 1.75))
    v = [1 / 3, 3 / 3, 2 / 2, (5 / 12) / 4]   # sample variances 1, 3, 2, 5/12 over n
    assert e.se == pytest.approx(math.sqrt(sum(v)))
    assert e.df == pytest.approx(sum(v) ** 2 / (v[0] ** 2 / 2 + v[1] ** 2 / 2 + v[2] ** 2 / 1 + v[3] ** 2 / 3))
    half = scipy_stats.t.ppf(0.975, e.df) * e.se
    assert (e.low, e.high) == (pytest.approx(e.diff - half), pytest.approx(e.diff + half))


def test_contrast_needs_two_values_per_group_and_constant_groups_are_exact():
    assert stats.contrast([[1.0], [2.0, 3.0]], [1, -1]) is None
    e = stats.welch_interval([3, 3, 3], [5, 5, 5])
    assert (e.low, e.high, e.p) == (-2, -2, 0.0)


def effect(low, high, diff=None):
    """A hand-made interval (only low, high and diff matter to judge)."""
    diff = (low + high) / 2 if diff is None else diff
    return stats.Effect(diff, 1.0, 5.0, low, high, 0.5, 1, 0.05, (1.0, 1.0), (3, 3))


@pytest.mark.parametrize("low, high, sign, report, word, why", [
    (0.1, 0.5, +1, 0.23, "holds", ""),
    (0.1, 0.2, +1, 0.80, "holds", "smaller than the report's +0.80"),
    (0.9, 1.2, +1, 0.80, "holds", "larger than the report's +0.80"),
    (-0.5, -0.1, +1, 0.23, "does not hold", "the opposite sign"),
    (-0.1, 0.1, +1, 0.23, "does not hold", "the interval excludes the report's +0.23"),
    (-0.14, 0.48, +1, 0.23, "not resolved", ""),
    (-0.14, 0.48, +1, None, "not resolved", ""),
    (-7.1, -1.0, -1, None, "holds", ""),            # a claim that the effect is negative
    (1.0, 3.0, -1, None, "does not hold", "the opposite sign"),
    (0.0, 0.3, +1, None, "not resolved", ""),       # touching 0 does not exclude it
    (0.0, 0.0, +1, None, "does not hold", "exactly 0, with no seed-to-seed variation"),
])
def test_judge_reads_the_interval_against_zero_and_the_reports_effect(low, high, sign, report, word, why):
    assert stats.judge(effect(low, high), sign, report) == (word, why)


def test_tost_is_two_one_sided_welch_tests_as_scipy_computes_them():
    a, b, margin = [98.59, 98.52, 98.66, 98.61], [98.56, 98.60, 98.52], 0.2
    e = stats.welch_interval(a, b, family=2)
    t = stats.tost(e, margin)
    above = scipy_stats.ttest_ind(np.add(a, margin), b, equal_var=False, alternative="greater").pvalue
    below = scipy_stats.ttest_ind(np.subtract(a, margin), b, equal_var=False, alternative="less").pvalue
    assert t.p == pytest.approx(max(above, below))
    # the matching interval: level 1 - 2 * 0.05 / 2, inside the margin exactly when p < 0.05 / 2
    low, high = scipy_stats.ttest_ind(a, b, equal_var=False).confidence_interval(1 - 2 * 0.05 / 2)
    assert (t.low, t.high) == (pytest.approx(low), pytest.approx(high))
    assert t.equivalent and t.p < 0.025 and -margin < low and high < margin
    wide = stats.tost(stats.welch_interval([98.0, 98.4, 98.1], [98.2, 97.9, 98.3]), margin)
    assert not wide.equivalent and wide.p > 0.05


def test_seeds_to_exclude_zero_match_the_classic_table():
    """Equal variances 1 and a difference of 1 (Cohen's d = 1): 17 per group for 80% power at 5% two-sided;
    d = 0.5: 64 (G*Power and Cohen's tables, the t-test with equal n, whose df Welch's equals here)."""
    unit = [1.0, 0.0, -1.0]   # sample variance 1
    d1 = stats.welch_interval(np.add(unit, 1.0), unit)
    assert stats.seeds_to_exclude(d1, 0.0) == 17
    assert stats.power_to_exclude(d1, 0.0, 17) >= 0.8 > stats.power_to_exclude(d1, 0.0, 16)
    assert stats.seeds_to_exclude(stats.welch_interval(np.add(unit, 0.5), unit), 0.0) == 64
    # excluding the report's effect instead of 0: the distance that matters is observed - report
    assert stats.seeds_to_exclude(d1, 1.5) == 64


def test_seeds_to_exclude_follow_the_family_and_the_normal_approximation():
    unit = [1.0, 0.0, -1.0]
    d = stats.welch_interval(np.add(unit, 0.1), unit, family=4)
    z = scipy_stats.norm.ppf(1 - 0.05 / 8) + scipy_stats.norm.ppf(0.8)
    assert stats.seeds_to_exclude(d, 0.0) == pytest.approx(2 * z ** 2 / 0.1 ** 2, rel=0.01)
    assert stats.seeds_to_exclude(d, 0.1) is None          # the observed effect is the target itself
    assert stats.seeds_to_exclude(stats.welch_interval(np.add(unit, 1e-4), unit), 0.0) is None  # > MAX_SEEDS


def test_power_of_equivalence_against_a_simulation():
    """TOST's power at the computed n, checked by simulating Welch's TOST on normal data."""
    a, b, margin = [0.05, 0.15, -0.05], [0.1, 0.0, -0.1], 0.2    # observed difference 0.05, variances 0.01
    e = stats.welch_interval(a, b)
    n = stats.seeds_for_equivalence(e, margin)
    assert stats.power_of_equivalence(e, margin, n) >= 0.8 > stats.power_of_equivalence(e, margin, n - 1)
    rng = np.random.default_rng(0)
    x = rng.normal(0.05, 0.1, size=(4000, n))
    y = rng.normal(0.0, 0.1, size=(4000, n))
    diff, se = x.mean(1) - y.mean(1), np.sqrt(x.var(1, ddof=1) / n + y.var(1, ddof=1) / n)
    df = se ** 4 / ((x.var(1, ddof=1) / n) ** 2 / (n - 1) + (y.var(1, ddof=1) / n) ** 2 / (n - 1))
    critical = scipy_stats.t.ppf(0.95, df)
    simulated = np.mean(((diff + margin) / se > critical) & ((diff - margin) / se < -critical))
    assert simulated == pytest.approx(stats.power_of_equivalence(e, margin, n), abs=0.03)
    assert stats.seeds_for_equivalence(stats.welch_interval(np.add(a, 0.2), b), margin) is None  # 0.25 > margin


def test_seeds_needed_are_more_than_the_seeds_now():
    e = stats.welch_interval([98.3, 98.2, 98.1], [98.0, 98.1, 97.9])   # would reach 80% power with 2 already
    assert stats.seeds_to_exclude(e, 0.0) >= 4


def test_prediction_interval_by_hand_and_by_simulation():
    values = [98.0, 98.2, 98.1, 98.3, 98.4]
    low, high = stats.prediction_interval(values)
    half = 2.7764451051977987 * np.std(values, ddof=1) * np.sqrt(1 + 1 / 5)   # t(0.975, 4)
    assert (low, high) == pytest.approx((np.mean(values) - half, np.mean(values) + half))
    assert stats.prediction_interval([98.0]) is None
    # one more draw falls inside 95% of the time (normal data, 5 seeds)
    rng = np.random.default_rng(0)
    draws = rng.normal(size=(4000, 6))
    inside = [lo <= d[5] <= hi for d in draws for lo, hi in [stats.prediction_interval(d[:5])]]
    assert np.mean(inside) == pytest.approx(0.95, abs=0.012)
