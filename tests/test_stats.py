"""common/stats.py: Welch's t-test against scipy and by hand, Holm's step-down correction, the verdicts."""

import math

import pytest
from scipy import stats as scipy_stats

from common import stats


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
