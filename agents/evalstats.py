"""Experiment statistics on plain numbers: means with 95 % intervals, pass rates, wins and
losses, and whether a difference is larger than its noise."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

# Two-sided 95 % critical values of Student's t by degrees of freedom (any table of t has
# them); between rows, and past the last, interpolated linearly in 1/df, which is exact to
# three decimals here. Infinity is the normal distribution's 1.96.
T95: dict[float, float] = {
    1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
    9: 2.262, 10: 2.228, 11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120,
    17: 2.110, 18: 2.101, 19: 2.093, 20: 2.086, 21: 2.080, 22: 2.074, 23: 2.069, 24: 2.064,
    25: 2.060, 26: 2.056, 27: 2.052, 28: 2.048, 29: 2.045, 30: 2.042, 40: 2.021, 50: 2.009,
    60: 2.000, 80: 1.990, 100: 1.984, 120: 1.980, 200: 1.972, 500: 1.965, 1000: 1.962,
    math.inf: 1.960,
}  # fmt: skip
_ROWS = sorted(T95)

Interval = tuple[float | None, float | None, float | None]


def t_critical(df: float) -> float:
    """The two-sided 95 % critical value of t with `df` degrees of freedom (df ≥ 1; a
    fractional df, as Welch's, falls between two rows)."""
    if df < 1:
        raise ValueError("t needs at least one degree of freedom")
    if df in T95:
        return T95[df]
    upper = next(row for row in _ROWS if row > df)
    lower = _ROWS[_ROWS.index(upper) - 1]
    # Linear in 1/df: the critical value's error shrinks as 1/df does.
    x, x0, x1 = 1 / df, 1 / lower, (0.0 if math.isinf(upper) else 1 / upper)
    return T95[upper] + (T95[lower] - T95[upper]) * (x - x1) / (x0 - x1)


def mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def variance(values: Sequence[float]) -> float:
    """The sample variance (n − 1 in the denominator); needs two values."""
    m = sum(values) / len(values)
    return sum((v - m) ** 2 for v in values) / (len(values) - 1)


def mean_interval(values: Iterable[float]) -> Interval:
    """(mean, low, high): the mean and its 95 % confidence interval from Student's t.

    No values: (None, None, None); one value: its mean and no interval.
    """
    values = list(values)
    if not values:
        return None, None, None
    m = sum(values) / len(values)
    if len(values) < 2:
        return m, None, None
    half = t_critical(len(values) - 1) * math.sqrt(variance(values) / len(values))
    return m, m - half, m + half


def pass_rate(values: Iterable[float], threshold: float) -> float | None:
    """The share of values at or above `threshold` (None for no values)."""
    values = list(values)
    if not values:
        return None
    return sum(1 for v in values if v >= threshold) / len(values)


def win_loss_tie(pairs: Iterable[tuple[float, float]], eps: float = 1e-9) -> tuple[int, int, int]:
    """For pairs (x, y): how often x is larger than y by more than `eps` (wins), smaller
    (losses), or within it (ties)."""
    wins = losses = ties = 0
    for x, y in pairs:
        if x - y > eps:
            wins += 1
        elif y - x > eps:
            losses += 1
        else:
            ties += 1
    return wins, losses, ties


def diff_interval(
    a_values: Sequence[float], b_values: Sequence[float], *, paired: bool | None = None
) -> Interval:
    """(diff, low, high): how far b's mean is above a's, with its 95 % interval.

    Paired (`a_values[i]` and `b_values[i]` score the same case; by default when the two
    have the same length): the interval of the mean of the differences b − a, which takes
    out how hard each case is. Otherwise Welch's interval for two samples of unequal
    variances. No interval without two values on each side (two pairs when paired).
    """
    a_values, b_values = list(a_values), list(b_values)
    if paired is None:
        paired = len(a_values) == len(b_values)
    if paired:
        if len(a_values) != len(b_values):
            raise ValueError("paired values come in pairs")
        return mean_interval([b - a for a, b in zip(a_values, b_values, strict=True)])
    if not a_values or not b_values:
        return None, None, None
    diff = sum(b_values) / len(b_values) - sum(a_values) / len(a_values)
    if len(a_values) < 2 or len(b_values) < 2:
        return diff, None, None
    va, vb = variance(a_values) / len(a_values), variance(b_values) / len(b_values)
    se = math.sqrt(va + vb)
    if se == 0:  # both constant: the difference is exact
        return diff, diff, diff
    # Welch–Satterthwaite degrees of freedom.
    df = (va + vb) ** 2 / (va**2 / (len(a_values) - 1) + vb**2 / (len(b_values) - 1))
    half = t_critical(max(df, 1.0)) * se
    return diff, diff - half, diff + half


def significant(low: float | None, high: float | None) -> bool:
    """Whether the interval [low, high] leaves out zero: the difference is larger than its
    noise. No interval is never significant."""
    if low is None or high is None:
        return False
    return low > 0 or high < 0


def percentile(values: Iterable[float], q: float) -> float | None:
    """The q-th percentile (0–100), interpolated between the nearest ranks (as a
    spreadsheet's PERCENTILE.INC); None for no values."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)
