"""Experiment statistics against cases worked out by hand (the arithmetic is in each test)."""

import pytest

from agents.evalstats import (
    diff_interval,
    mean_interval,
    pass_rate,
    percentile,
    significant,
    t_critical,
    win_loss_tie,
)

approx = pytest.approx


def test_the_mean_of_four_scores_has_a_t_interval():
    # mean = 2.0 / 4 = 0.5; deviations ±0.3, ±0.1 → squares 0.09 + 0.01 + 0.01 + 0.09 = 0.2
    # variance = 0.2 / (4 − 1) = 0.0666…; standard error = √(0.0666… / 4) = 0.1290994
    # t(3 df, 95 %) = 3.182 → half width = 3.182 × 0.1290994 = 0.4107943
    mean, low, high = mean_interval([0.2, 0.4, 0.6, 0.8])
    assert mean == approx(0.5)
    assert low == approx(0.5 - 0.4107943, abs=1e-6)
    assert high == approx(0.5 + 0.4107943, abs=1e-6)


def test_no_values_give_nothing_and_one_value_no_interval():
    assert mean_interval([]) == (None, None, None)
    assert mean_interval([0.7]) == (0.7, None, None)


def test_equal_values_have_a_zero_width_interval():
    assert mean_interval([1.0, 1.0, 1.0]) == (1.0, 1.0, 1.0)


def test_t_critical_values_come_from_the_table_and_between_its_rows():
    assert t_critical(1) == 12.706
    assert t_critical(30) == 2.042
    # 35 df: between 30 (2.042) and 40 (2.021), linear in 1/df:
    # (1/35 − 1/40) / (1/30 − 1/40) = 0.0035714 / 0.0083333 = 0.4285714
    # → 2.021 + 0.021 × 0.4285714 = 2.03
    assert t_critical(35) == approx(2.03, abs=1e-9)
    assert t_critical(10**9) == approx(1.96, abs=1e-6)


def test_pass_rate_counts_scores_at_or_above_the_threshold():
    # 0.6 and 0.8 pass 0.5 of four scores: 2 / 4
    assert pass_rate([0.2, 0.4, 0.6, 0.8], 0.5) == 0.5
    # at the threshold passes: 1 of 2
    assert pass_rate([0.5, 0.49], 0.5) == 0.5
    assert pass_rate([], 0.5) is None


def test_wins_losses_and_ties_of_pairs():
    pairs = [(1.0, 0.0), (0.0, 1.0), (0.5, 0.5), (0.7, 0.7 + 1e-12), (0.9, 0.8)]
    # 1 > 0 win, 0 < 1 loss, equal tie, within eps tie, 0.9 > 0.8 win
    assert win_loss_tie(pairs) == (2, 1, 2)
    assert win_loss_tie([(0.6, 0.5)], eps=0.2) == (0, 0, 1)


def test_a_paired_difference_uses_the_differences_of_each_case():
    # differences b − a: 0.3, 0.2, 0.3 → mean 0.8 / 3 = 0.2666667
    # deviations 0.0333, −0.0667, 0.0333 → squares sum 0.0066667; variance / 2 = 0.0033333
    # standard error √(0.0033333 / 3) = 0.0333333; t(2) = 4.303 → half = 0.1434333
    diff, low, high = diff_interval([0.2, 0.4, 0.6], [0.5, 0.6, 0.9])
    assert diff == approx(0.2666667, abs=1e-6)
    assert low == approx(0.2666667 - 0.1434333, abs=1e-6)
    assert high == approx(0.2666667 + 0.1434333, abs=1e-6)
    assert significant(low, high)


def test_unpaired_samples_get_welchs_interval():
    # a = 0.1, 0.3: mean 0.2, variance 0.02, /n = 0.01
    # b = 0.6, 0.8, 1.0: mean 0.8, variance (0.04 + 0 + 0.04) / 2 = 0.04, /n = 0.0133333
    # diff = 0.8 − 0.2 = 0.6; standard error √0.0233333 = 0.1527525
    # Welch df = 0.0233333² / (0.01² / 1 + 0.0133333² / 2) = 0.00054444 / 0.00018889 = 2.882353
    # t between 2 df (4.303) and 3 (3.182): (1/2.882353 − 1/3) / (1/2 − 1/3) = 0.0816327
    # → 3.182 + 1.121 × 0.0816327 = 3.2735102; half = 3.2735102 × 0.1527525 = 0.5000367
    diff, low, high = diff_interval([0.1, 0.3], [0.6, 0.8, 1.0])
    assert diff == approx(0.6)
    assert low == approx(0.6 - 0.5000367, abs=1e-6)
    assert high == approx(0.6 + 0.5000367, abs=1e-6)
    assert significant(low, high)


def test_a_difference_within_its_noise_is_not_significant():
    # differences 0.5, −0.5: mean 0, the interval straddles zero
    diff, low, high = diff_interval([0.0, 1.0], [0.5, 0.5])
    assert diff == 0
    assert low < 0 < high
    assert not significant(low, high)
    assert not significant(None, None)
    assert significant(-0.3, -0.1)


def test_percentiles_interpolate_between_ranks():
    # p95 of 1..5: rank (5 − 1) × 0.95 = 3.8 → 4 + 0.8 × (5 − 4) = 4.8
    assert percentile([5, 1, 3, 2, 4], 50) == 3
    assert percentile([5, 1, 3, 2, 4], 95) == approx(4.8)
    assert percentile([], 50) is None
    assert percentile([2.5], 95) == 2.5
