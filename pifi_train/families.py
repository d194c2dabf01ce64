"""Which pipeline a run belongs to: sequence classification (built in), extractive QA, sequence-to-sequence.

A family is a row of :data:`FAMILIES` (the dotted path of its ``run(config, progress, resume_dir)``); a
built-in task names its family in :data:`TASK_FAMILIES`. ``TrainConfig.task_type`` overrides both
("auto" = the task's family, else classification). Torch-free: the CLI dispatches before any model loads.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any, Callable

from pifi_extract.errors import ConfigError

# family -> "module:function" running it (same signature as pifi_train.runner.run_training)
FAMILIES: dict[str, str] = {
    "classification": "pifi_train.runner:run_classification",
    "qa": "pifi_train.qa.runner:run_qa",
    "seq2seq": "pifi_train.seq2seq.runner:run_seq2seq",
}
# built-in task -> family (tasks not listed are classification tasks of pifi_train.tasks.TASKS)
TASK_FAMILIES: dict[str, str] = {
    "squad": "qa",
    "squad_v2": "qa",
    "multi30k": "seq2seq",
    "cnn_dailymail": "seq2seq",
}


def family_of(task: str | None, task_type: str = "auto") -> str:
    """The family of a run: ``task_type`` when given, else the built-in task's, else classification."""
    if task_type != "auto":
        if task_type not in FAMILIES:
            raise ConfigError(f"--task-type {task_type!r} is not one of auto, {', '.join(FAMILIES)}")
        return task_type
    return TASK_FAMILIES.get(task or "", "classification")


def runner_for(family: str) -> Callable[..., Any]:
    module, _, function = FAMILIES[family].partition(":")
    return getattr(importlib.import_module(module), function)


def run_family(run_dir: str | Path) -> str:
    """The family of a finished run (or seed sweep) from its config.json / sweep.json options."""
    run_dir = Path(run_dir)
    for name in ("config.json", "sweep.json"):
        path = run_dir / name
        if path.is_file():
            try:
                options = json.loads(path.read_text()).get("options", {})
            except (OSError, ValueError, AttributeError):
                return "classification"  # the loader reports the damaged file with its own message
            return family_of(options.get("task"), options.get("task_type", "auto"))
    return "classification"
