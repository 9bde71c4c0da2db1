"""The median's 95 % CI: exact binomial order-statistic ranks, checked by exact coverage and a seeded simulation."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from packrat_lab.profiling.measurement import median_ci_ranks, median_confidence_interval


def coverage(n: int, lo_rank: int, hi_rank: int) -> Fraction:
    """P(x(lo) <= median <= x(hi)) for n continuous samples: K = #below the median is Binomial(n, 1/2)."""
    return Fraction(sum(math.comb(n, k) for k in range(lo_rank, hi_rank)), 2**n)


def ranks_used(n: int) -> tuple[int, int] | None:
    """The 1-based ranks median_confidence_interval really picks, read back from samples 1..n."""
    lo, hi = median_confidence_interval([float(v) for v in range(n, 0, -1)])  # unsorted on purpose
    if math.isinf(lo) and math.isinf(hi):
        return None
    return int(lo), int(hi)


@pytest.mark.parametrize("n", range(5, 201))
def test_exact_coverage_is_at_least_95_percent_and_one_rank_narrower_is_not(n: int) -> None:
    used = ranks_used(n)
    if used is None:  # no pair of order statistics reaches 95 %: the CI is unbounded
        assert coverage(n, 1, n) < Fraction(95, 100)
        return
    lo, hi = used
    assert lo + hi == n + 1  # symmetric
    assert coverage(n, lo, hi) >= Fraction(95, 100)
    assert lo + 1 > hi - 1 or coverage(n, lo + 1, hi - 1) < Fraction(
        95, 100
    )  # exact: the widest rank that holds


@pytest.mark.parametrize("n", [21, 26, 31, 75, 84, 104])
def test_regression_sizes_where_the_normal_approximation_undercovered(n: int) -> None:
    used = ranks_used(n)
    assert used is not None
    assert coverage(n, *used) >= Fraction(95, 100)


def test_ranks_by_hand() -> None:
    assert median_ci_ranks(10) == (2, 9)  # P(K <= 1) = 11/1024 <= 2.5 % < P(K <= 2) = 56/1024
    assert median_ci_ranks(100) == (40, 61)
    assert median_ci_ranks(6) == (1, 6)  # 1 - 2/64 = 96.9 %
    assert median_ci_ranks(5) is None  # 1 - 2/32 = 93.75 %
    assert median_confidence_interval([1.0, 2.0, 3.0, 4.0, 5.0]) == (-math.inf, math.inf)
    assert all(math.isnan(v) for v in median_confidence_interval([]))


@pytest.mark.parametrize("n", [10, 21, 50, 84])
def test_seeded_simulation_agrees_with_the_exact_coverage(n: int) -> None:
    rng = np.random.default_rng(1234 + n)
    trials = 4000
    samples = rng.lognormal(mean=0.0, sigma=0.5, size=(trials, n))  # skewed; true median is exp(0) = 1
    hits = 0
    for row in samples:
        lo, hi = median_confidence_interval(row.tolist())
        hits += lo <= 1.0 <= hi
    used = ranks_used(n)
    assert used is not None
    exact = float(coverage(n, *used))
    standard_error = math.sqrt(exact * (1 - exact) / trials)
    assert abs(hits / trials - exact) < 4 * standard_error
    assert hits / trials > 0.95 - 4 * standard_error
