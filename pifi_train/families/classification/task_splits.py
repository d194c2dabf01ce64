"""How a built-in task's rows become its train / validation / test splits, as the authors' code cuts them.

A :class:`Take` says which rows of one split of the source make one of our splits:

- ``shuffle_fraction=(a, b)``: permute the rows with the run's split seed and keep ``[int(a·n), int(b·n))``.
  ``shuffle="python"`` permutes with ``random.Random(seed).shuffle`` (pifi's rule for imdb and cola);
  ``shuffle="numpy"`` with ``numpy.random.RandomState(seed).permutation(n)``, which is exactly what the
  authors' ``df.sample(frac=1)`` draws as the first use of numpy's global generator after their
  ``np.random.seed(seed)`` (pandas' ``sample`` without ``random_state`` calls ``np.random.choice(n, n,
  replace=False)`` = ``permutation(n)``), so their validation split is reproduced row for row.
- ``tail_size_of=S``: the last ``len(S)`` rows (``tail=True``) or every row before them (``tail=False``).
- ``holdouts``: then, in order, scikit-learn's ``train_test_split(rows, test_size=f, random_state=r)``,
  keeping its train or its test part (:func:`train_test_split_indices` reproduces its permutation without
  scikit-learn).

Rows whose label the task drops are removed BEFORE any of this (the authors drop Filmstarts' rating 3 and
missing rows before shuffling; for the other tasks the order does not matter).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Sequence

SHUFFLES = ("python", "numpy")


@dataclass(frozen=True)
class Holdout:
    """``sklearn.model_selection.train_test_split(rows, test_size=test_size, random_state=random_state)``;
    ``keep`` its ``"train"`` or its ``"test"`` part."""

    test_size: float
    random_state: int
    keep: str


@dataclass(frozen=True)
class Take:
    """Which rows of a source split make one of our splits (see the module docstring)."""

    split: str
    shuffle_fraction: tuple[float, float] | None = None
    shuffle: str = "python"
    tail_size_of: str | None = None
    tail: bool = False
    holdouts: tuple[Holdout, ...] = ()


def permutation(n: int, seed: int, shuffle: str) -> list[int]:
    """The order ``shuffle`` (python | numpy) puts ``n`` rows in."""
    if shuffle == "numpy":
        import numpy

        return [int(i) for i in numpy.random.RandomState(seed).permutation(n)]
    if shuffle != "python":
        raise ValueError(f"unknown shuffle {shuffle!r} (one of {', '.join(SHUFFLES)})")
    order = list(range(n))
    random.Random(seed).shuffle(order)
    return order


def train_test_split_indices(n: int, test_size: float, random_state: int) -> tuple[list[int], list[int]]:
    """(train, test) positions that ``sklearn.model_selection.train_test_split`` gives ``n`` rows with a float
    ``test_size`` and an integer ``random_state`` (shuffle on, no stratification): sklearn's ShuffleSplit
    takes ``ceil(test_size·n)`` test rows = the head of ``RandomState(random_state).permutation(n)``, and the
    rest, in that order, as train."""
    import numpy

    if not 0.0 < test_size < 1.0:
        raise ValueError(f"test_size must be in (0, 1), got {test_size}")
    n_test = math.ceil(test_size * n)
    order = [int(i) for i in numpy.random.RandomState(random_state).permutation(n)]
    return order[n_test:], order[:n_test]


def select(take: Take, rows: Sequence[int], seed: int, tail_size: int | None = None) -> list[int]:
    """The rows (indices into the source split, labels already filtered, in file order) that ``take`` keeps.
    ``tail_size``: the size of ``take.tail_size_of`` when the take has one."""
    kept = list(rows)
    n = len(kept)
    if take.shuffle_fraction is not None:
        order = [kept[i] for i in permutation(n, seed, take.shuffle)]
        start, stop = take.shuffle_fraction
        kept = order[int(n * start):int(n * stop)]
    elif take.tail_size_of is not None:
        assert tail_size is not None
        kept = kept[n - tail_size:] if take.tail else kept[:n - tail_size]
    for cut in take.holdouts:
        train, test = train_test_split_indices(len(kept), cut.test_size, cut.random_state)
        kept = [kept[i] for i in (train if cut.keep == "train" else test)]
    return kept
