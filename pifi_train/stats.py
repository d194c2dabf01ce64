"""Statistics over runs: mean ± std, Welch's t-test with the CI of a difference, a paired bootstrap.

Pure Python except :func:`welch_difference`, which needs scipy for the t distribution
(``pifi[paper]``; one-line error without it). The paper reports p-values over seeds (Table 12).
"""

from __future__ import annotations

import math
import random
import statistics
from dataclasses import dataclass
from typing import Sequence

from pifi_extract.errors import ConfigError


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    values = list(values)
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


@dataclass(frozen=True)
class Difference:
    """``a − b``: the mean difference, its 95 % confidence interval and a two-sided p-value."""

    mean: float
    ci_low: float
    ci_high: float
    p_value: float


def welch_difference(a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> Difference | None:
    """Welch's unequal-variance t-test of mean(a) − mean(b) (None with fewer than two values on a side)."""
    if len(a) < 2 or len(b) < 2:
        return None
    try:
        from scipy import stats
    except ImportError as err:
        raise ConfigError("p-values need scipy", "pip install 'pifi[paper]'") from err
    (ma, sa), (mb, sb) = mean_std(a), mean_std(b)
    va, vb = sa ** 2 / len(a), sb ** 2 / len(b)
    diff, se = ma - mb, math.sqrt(va + vb)
    if se == 0.0:
        return Difference(diff, diff, diff, 1.0 if diff == 0 else 0.0)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))  # Welch–Satterthwaite
    t = diff / se
    half = float(stats.t.ppf(0.5 + confidence / 2, df)) * se
    return Difference(diff, diff - half, diff + half, float(2 * stats.t.sf(abs(t), df)))


def paired_bootstrap(correct_a: Sequence[Sequence[bool]], correct_b: Sequence[Sequence[bool]], samples: int,
                     seed: int = 0, confidence: float = 0.95) -> Difference:
    """Accuracy difference a − b, resampling test examples (the same indices for both and every seed pair).

    ``correct_a[s][i]``: whether seed-pair ``s`` of ``a`` got example ``i`` right (all rows of one length).
    The p-value is two-sided: twice the share of resamples on the other side of 0 than the observed mean.
    """
    n = len(correct_a[0])
    if samples < 1 or not n or any(len(row) != n for row in [*correct_a, *correct_b]):
        raise ConfigError("--bootstrap needs the same test examples in every paired run, and N >= 1")
    # per example: mean over seed pairs of (a right) − (b right)
    delta = [statistics.fmean(float(ra[i]) - float(rb[i]) for ra, rb in zip(correct_a, correct_b))
             for i in range(n)]
    observed = statistics.fmean(delta)
    rng = random.Random(seed)
    means = sorted(statistics.fmean(delta[rng.randrange(n)] for _ in range(n)) for _ in range(samples))
    low = means[int((1 - confidence) / 2 * (samples - 1))]
    high = means[int((1 + confidence) / 2 * (samples - 1))]
    other_side = sum(m <= 0 for m in means) if observed > 0 else sum(m >= 0 for m in means)
    return Difference(observed, low, high, min(1.0, 2 * other_side / samples))


def spearman_p_value(rho: float, n: int) -> float:
    """Two-sided p-value of Spearman's ``rho`` over ``n`` untied pairs under independence: exact (every ordering)
    for n <= 8, the normal approximation ``rho * sqrt(n - 1)`` above. With 2 points any ``rho`` is ±1 and p is 1."""
    import itertools

    if n < 3 or rho != rho:  # NaN: a constant side
        return 1.0
    if n <= 8:
        denominator = n * (n * n - 1)
        extreme = sum(1 for perm in itertools.permutations(range(n))
                      if abs(1 - 6 * sum((i - j) ** 2 for i, j in enumerate(perm)) / denominator) >= abs(rho) - 1e-9)
        return extreme / math.factorial(n)
    return min(1.0, math.erfc(abs(rho) * math.sqrt(n - 1) / math.sqrt(2)))


def accuracy_standard_error(accuracy: float, n: int) -> float:
    """Binomial standard error of an accuracy measured on ``n`` examples."""
    return math.sqrt(max(accuracy * (1 - accuracy), 0.0) / n) if n > 0 else float("inf")
