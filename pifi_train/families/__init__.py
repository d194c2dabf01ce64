"""The task families, as one static registry: classification, extractive QA, sequence-to-sequence.

Each family is a package with the same few modules (``data``, ``model``, ``metrics``, ``trainer``,
``predict``, ``runtime``) and a torch-free :class:`~pifi_train.families.spec.Family` object in its
``family`` module: its tasks, metrics spec, plugs and the options it refuses. Imports go one way:
options < config < spec < family < runtime (torch) < runner; nothing below imports the registry. A run's family is
``--task-type``, else its built-in task's, else classification; ``config.json`` records it.
"""

from __future__ import annotations

from typing import Any

from pifi_extract.errors import ConfigError

from .classification.family import CLASSIFICATION
from .qa.family import QA
from .seq2seq.family import SEQ2SEQ
from .spec import Family, Metric, MetricsSpec

FAMILIES: dict[str, Family] = {family.name: family for family in (CLASSIFICATION, QA, SEQ2SEQ)}
TASK_FAMILIES: dict[str, str] = {task: family.name for family in FAMILIES.values() for task in family.tasks}

__all__ = ["FAMILIES", "TASK_FAMILIES", "Family", "Metric", "MetricsSpec", "family_for", "family_of",
           "family_of_record", "get_family"]


def get_family(name: str) -> Family:
    family = FAMILIES.get(name)
    if family is None:
        raise ConfigError(f"--task-type {name!r} is not one of auto, {', '.join(FAMILIES)}")
    return family


def family_of(task: str | None, task_type: str = "auto") -> Family:
    """The family of a run: ``task_type`` when given, else the built-in task's, else classification."""
    if task_type != "auto":
        family = get_family(task_type)
        if task is not None and task.lower() in TASK_FAMILIES and TASK_FAMILIES[task.lower()] != family.name:
            raise ConfigError(f"--task {task} is a {TASK_FAMILIES[task.lower()]} task, not {family.name}",
                              "drop --task-type (the task names its family)")
        return family
    return FAMILIES[TASK_FAMILIES.get((task or "").lower(), CLASSIFICATION.name)]


def family_for(config: Any) -> Family:
    """The family of a run's options (a TrainConfig)."""
    return family_of(config.task, config.task_type)


def family_of_record(record: dict) -> Family:
    """The family that trained a run (records before version 2: the family of its task)."""
    options = record.get("options") or {}
    if record.get("family"):
        return family_of(None, str(record["family"]))
    return family_of(options.get("task"), options.get("task_type", "auto"))
