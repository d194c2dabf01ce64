"""Sequence classification and NLI (the paper's Table 1): accuracy and macro-F1 over the whole split."""

from __future__ import annotations

from typing import Any

from ...options import CLASSIFICATION as NAME
from ..spec import Family, FamilyRuntime, Metric, MetricsSpec
from .tasks import TASKS


def _runtime() -> FamilyRuntime:
    from . import runtime  # torch: imported when a run starts, not for `pifi --help`

    return runtime


def correct(row: dict[str, Any]) -> float:
    """1 when a per-example row of predictions.jsonl is right: accuracy is the mean of these."""
    return float(row["prediction"] == row["label"])


CLASSIFICATION = Family(
    name=NAME,
    summary="sequence classification and NLI",
    tasks=tuple(sorted(TASKS)),
    metrics=MetricsSpec(headline=(Metric("accuracy", "accuracy"), Metric("macro_f1", "macro-F1")),
                        primary="accuracy", select_default="accuracy", example_score=correct),
    plugs=("cls", "sequence"),
    default_max_length=lambda config: 100,  # the paper's
    runtime=_runtime,
)
