"""Extractive QA (SQuAD v1.1 / v2.0, the paper's QA rows): the official EM / F1, spans over every token."""

from __future__ import annotations

from typing import Any

from pifi_extract.errors import ConfigError

from ...options import QA as NAME
from ..spec import Family, FamilyRuntime, Metric, MetricsSpec, at_least_one
from .data import PROTOCOLS, QA_TASKS, default_max_length, max_length_of


def _runtime() -> FamilyRuntime:
    from . import runtime  # torch: imported when a run starts, not for `pifi --help`

    return runtime


def check_qa_options(config: Any) -> None:
    if config.protocol not in PROTOCOLS:
        raise ConfigError(f"--protocol must be one of {', '.join(PROTOCOLS)}, got {config.protocol!r}")
    at_least_one(config, ("doc_stride", "max_answer_length", "n_best"))
    max_length = max_length_of(config)
    if config.protocol == "standard" and config.doc_stride >= max_length // 2:
        raise ConfigError(f"--doc-stride {config.doc_stride} must be below half of --max-length {max_length}")


def example_f1(row: dict[str, Any]) -> float:
    """A question's official F1 (predictions.jsonl): the split's F1 is the mean of these."""
    return float(row["f1"])


QA = Family(
    name=NAME,
    summary="extractive question answering",
    tasks=QA_TASKS,
    metrics=MetricsSpec(headline=(Metric("exact_match", "EM"), Metric("f1", "F1")), primary="f1",
                        select_default="f1",
                        variants=(Metric("paper_token_exact_match", "token EM (paper)", paper=True),
                                  Metric("paper_token_f1", "token F1 (paper)", paper=True)),
                        example_score=example_f1),
    plugs=("sequence",),  # the span head needs every token through the layer
    default_max_length=default_max_length,
    runtime=_runtime,
    refuses={"clean_text": "cleaning a context would move the character offsets of its answers"},
    check=check_qa_options,
)
