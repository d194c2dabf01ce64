"""pifi_train: load a frozen LLM layer from a pifi artifact and fine-tune a small LM with it.

Names are imported on first use (PEP 562), so ``import pifi_train.config`` and ``pifi --help`` do not
pay for torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "FrozenLayer": "frozen_layer", "build_frozen_layer": "frozen_layer", "load_layer": "frozen_layer",
    "FrozenStack": "frozen_stack",
    "ProgressEvent": "config", "TrainConfig": "config", "ModelOptions": "options",
    "FAMILIES": "families", "family_of": "families",
    "PifiModel": "pretrained",
    "load_run": "run_record", "open_run": "run_record",
    "predict": "families.classification.predict", "load_classifier": "families.classification.predict",
    "Classifier": "families.classification.predict",
    "answer": "families.qa.predict", "generate": "families.seq2seq.predict",
    "build_report": "report",
    "RunResult": "runner", "resume_training": "runner", "run_training": "runner",
    "TASKS": "families.classification.tasks", "task_names": "families.classification.tasks",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pifi_train' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups skip this hook
    return value
