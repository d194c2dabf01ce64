"""The torch side of the QA family (:class:`pifi_train.families.spec.FamilyRuntime`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from ...config import TrainConfig
from ...options import ModelOptions
from ...slm import load_slm, load_slm_config  # noqa: F401 - the family's SLM loaders (AutoModel)
from ...splits import finish_splits, seeded_holdout
from .data import QA_TASKS, QaExample, QaTaskData, load_hub_squad, max_length_of, read_squad, split_builtin
from .model import PifiSpanModel
from .trainer import QaTrainer as Trainer  # noqa: F401 - the family's trainer

__all__ = ["Trainer", "build_model", "load_data", "load_slm", "load_slm_config", "model_spec"]


def load_extra_test(reference: str) -> list[QaExample]:
    """One --extra-test set: a SQuAD file, or a built-in task's official dev set."""
    if reference.lower() in QA_TASKS and not Path(reference).is_file():
        return load_hub_squad(reference.lower())[1]
    return read_squad(reference)


def load_data(config: TrainConfig) -> QaTaskData:
    """Hub SQuAD split by the protocol, or local files (no validation file: a hold-out of train seeded by
    --split-seed), the --extra-test sets, then --train-fraction and the sample caps."""
    if config.task is not None:
        train, validation, test = split_builtin(*load_hub_squad(config.task), config.protocol)
        source: dict[str, Any] = {"task": config.task, "path": f"rajpurkar/{config.task}", "protocol": config.protocol}
    else:
        train = read_squad(config.train_file)
        if config.validation_file:
            validation = read_squad(config.validation_file)
        else:
            train, validation = seeded_holdout(train, config.validation_fraction, config.split_seed)
        test = read_squad(config.test_file) if config.test_file else None
        source = {"train_file": config.train_file, "validation_file": config.validation_file,
                  "test_file": config.test_file, "protocol": config.protocol}
    v2 = config.task == "squad_v2" or any(not e.answers for e in train)
    data = QaTaskData(config.task or Path(config.train_file or "qa").stem, train, validation, test, v2,
                      {**source, "max_length": max_length_of(config), "v2": v2, "split_seed": config.split_seed},
                      {ref: load_extra_test(ref) for ref in config.extra_test or []})
    return finish_splits(data, config)


def model_spec(data: QaTaskData, slm_config: Any, config: TrainConfig) -> dict[str, Any]:
    """Whether the run answers SQuAD v2 (unanswerable questions: CLS is a valid answer)."""
    return {"v2": data.v2}


def build_model(slm: Any, spec: Mapping[str, Any], options: ModelOptions, layer: Any) -> PifiSpanModel:
    return PifiSpanModel(slm, options, layer)
