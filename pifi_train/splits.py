"""Cutting a run's splits the same way in every family: hold-out, train fraction, sample caps, size checks.

A split is any sequence of examples with ``len()`` and (optionally) ``subset(indices)``; a family's data
object has ``train``, ``validation``, ``test`` (or None) and ``extra_tests`` (name -> split). Every random
cut is seeded by ``--split-seed`` (never by ``--seed``), so every seed of a run sees the same splits.
Torch-free.
"""

from __future__ import annotations

import random
from typing import Any, Sequence

from pifi_extract.errors import ConfigError


def subset(split: Any, indices: Sequence[int]) -> Any:
    """The examples ``indices`` of ``split``, in that order."""
    if hasattr(split, "subset"):
        return split.subset(indices)
    return [split[i] for i in indices]


def seeded_holdout(split: Any, fraction: float, seed: int) -> tuple[Any, Any]:
    """(rest, held out): shuffle with ``seed`` and hold out the first ``fraction`` (the authors' 80/20 rule)."""
    indices = list(range(len(split)))
    random.Random(seed).shuffle(indices)
    cut = int(len(indices) * fraction)
    rest, held = subset(split, indices[cut:]), subset(split, indices[:cut])
    if not len(rest) or not len(held):
        raise ConfigError(f"{len(split)} training examples are too few to hold out a validation split",
                          "pass --validation-file, or more training data")
    return rest, held


def fraction_indices(n: int, fraction: float, seed: int, labels: Sequence[Any] | None = None) -> list[int]:
    """A seeded share ``fraction`` of ``n`` examples, in their original order; per label when ``labels``
    (stratified: at least one example of each)."""
    if fraction >= 1.0:
        return list(range(n))
    groups: dict[Any, list[int]] = {}
    for i in range(n):
        groups.setdefault(labels[i] if labels is not None else 0, []).append(i)
    rng = random.Random(seed)
    keep: list[int] = []
    for key in sorted(groups):
        members = groups[key][:]
        rng.shuffle(members)
        keep.extend(members[:max(1, round(len(members) * fraction))])
    return sorted(keep)


def first(split: Any, n: int | None) -> Any:
    return split if n is None or split is None else subset(split, range(min(n, len(split))))


def finish_splits(data: Any, config: Any, labels: Sequence[Any] | None = None) -> Any:
    """Apply --train-fraction (``labels``: stratified), --max-train-samples, --max-eval-samples (validation,
    test and every extra test set), then refuse a training set smaller than one batch or an empty validation."""
    if config.train_fraction is not None:
        data.train = subset(data.train, fraction_indices(len(data.train), config.train_fraction, config.split_seed,
                                                         labels))
    data.train = first(data.train, config.max_train_samples)
    data.validation = first(data.validation, config.max_eval_samples)
    data.test = first(data.test, config.max_eval_samples)
    data.extra_tests = {name: first(split, config.max_eval_samples) for name, split in data.extra_tests.items()}
    if len(data.train) < config.batch_size:
        raise ConfigError(f"the training set has {len(data.train)} examples, fewer than one batch "
                          f"(--batch-size {config.batch_size}; the last partial batch is dropped)")
    if not len(data.validation):
        raise ConfigError("the validation split is empty")
    return data
