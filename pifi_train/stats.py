"""Statistics over runs: mean ± std, Welch's t-test with the CI of a difference, a paired bootstrap.

Pure Python except :func:`welch_difference`, which needs scipy for the t distribution
(``pifi[paper]``; one-line error without it). The paper reports p-values over seeds (Table 12).
"""

from __future__ import annotations

import math
import random
import statistics
from dataclasses import dataclass
from typing import Callable, Sequence

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
    resamples: int | None = None  # a bootstrap's: p = 0 means p < 1/resamples

    def p_text(self) -> str:
        """The p-value as a table shows it (a bootstrap that never crossed 0: "< 1/N")."""
        if self.resamples and self.p_value == 0:
            return f"< {1 / self.resamples:.2g}"
        return f"{self.p_value:.3g}"


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


def paired_bootstrap(scores_a: Sequence[Sequence[float]], scores_b: Sequence[Sequence[float]], samples: int,
                     seed: int = 0, confidence: float = 0.95) -> Difference:
    """Difference a − b of a mean per-example score (accuracy: 1 when right), resampling test examples (the
    same indices for both and every seed pair).

    ``scores_a[s][i]``: the score of seed-pair ``s`` of ``a`` on example ``i`` (all rows of one length).
    The p-value is two-sided: twice the share of resamples on the other side of 0 than the observed mean
    (0 when none is: read it as p < 1/samples).
    """
    n = len(scores_a[0])
    if samples < 1 or not n or any(len(row) != n for row in [*scores_a, *scores_b]):
        raise ConfigError("--bootstrap needs the same test examples in every paired run, and N >= 1")
    # per example: mean over seed pairs of score(a) − score(b)
    delta = [statistics.fmean(float(ra[i]) - float(rb[i]) for ra, rb in zip(scores_a, scores_b)) for i in range(n)]
    rng = random.Random(seed)
    means = [statistics.fmean(delta[rng.randrange(n)] for _ in range(n)) for _ in range(samples)]
    return _bootstrap_difference(statistics.fmean(delta), means, samples, confidence)


def paired_bootstrap_corpus(statistic: Callable[[int, Sequence[int]], float], pairs: int, n: int, samples: int,
                            seed: int = 0, confidence: float = 0.95) -> Difference:
    """The same for a corpus metric (BLEU): ``statistic(pair, indices)`` is a − b of seed-pair ``pair``
    on the examples ``indices`` (with repetition)."""
    if samples < 1 or not n or pairs < 1:
        raise ConfigError("--bootstrap needs the same test examples in every paired run, and N >= 1")
    everything = list(range(n))
    observed = statistics.fmean(statistic(p, everything) for p in range(pairs))
    rng = random.Random(seed)
    means = []
    for _ in range(samples):
        indices = [rng.randrange(n) for _ in range(n)]
        means.append(statistics.fmean(statistic(p, indices) for p in range(pairs)))
    return _bootstrap_difference(observed, means, samples, confidence)


def _bootstrap_difference(observed: float, means: list[float], samples: int, confidence: float) -> Difference:
    means = sorted(means)
    low = means[int((1 - confidence) / 2 * (samples - 1))]
    high = means[int((1 + confidence) / 2 * (samples - 1))]
    other_side = sum(m <= 0 for m in means) if observed > 0 else sum(m >= 0 for m in means)
    return Difference(observed, low, high, min(1.0, 2 * other_side / samples), samples)
