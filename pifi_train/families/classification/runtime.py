"""The torch side of the classification family (:class:`pifi_train.families.spec.FamilyRuntime`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from ...clean import clean_texts, resolve_cleaning
from ...config import TrainConfig
from ...options import ModelOptions
from ...slm import load_slm, load_slm_config  # noqa: F401 - the family's SLM loaders (AutoModel)
from ...splits import finish_splits
from .data import TaskData, load_local_task
from .extra_tests import load_extra_test
from .model import SequenceClassifier, resolve_pooling
from .tasks import load_builtin_task
from .trainer import ClassificationTrainer as Trainer  # noqa: F401 - the family's trainer

__all__ = ["Trainer", "build_model", "load_data", "load_slm", "load_slm_config", "model_spec"]


def load_data(config: TrainConfig) -> TaskData:
    """The run's data: a built-in task or local files (split with ``--split-seed``, the same for every
    seed), the --extra-test sets, --train-fraction (stratified by label) and the sample caps, cleaning."""
    if config.task is not None:
        data = load_builtin_task(config.task, config.split_seed)
    else:
        data = load_local_task(
            Path(config.train_file), Path(config.validation_file) if config.validation_file else None,
            Path(config.test_file) if config.test_file else None, config.text_column, config.text_pair_column,
            config.label_column, config.validation_fraction, config.split_seed)
    data.extra_tests = {ref: load_extra_test(ref, config, data.label_names) for ref in config.extra_test or []}
    finish_splits(data, config, labels=data.train.labels)
    cleaning = resolve_cleaning(config.clean_text, config.task)
    for examples in [data.train, data.validation, data.test, *data.extra_tests.values()]:
        if examples is not None:
            examples.texts = clean_texts(examples.texts, cleaning)
            if examples.pairs is not None:
                examples.pairs = clean_texts(examples.pairs, cleaning)
    data.source = {**data.source, "clean_text": cleaning, "split_seed": config.split_seed}
    return data


def model_spec(data: TaskData, slm_config: Any, config: TrainConfig) -> dict[str, Any]:
    """The labels (id i = labels[i]), whether inputs are text pairs, and the pooling the SLM gets."""
    return {"labels": list(data.label_names), "text_pairs": data.train.pairs is not None,
            "pooling": resolve_pooling(slm_config, config.pooling)}


def build_model(slm: Any, spec: Mapping[str, Any], options: ModelOptions, layer: Any) -> SequenceClassifier:
    return SequenceClassifier(slm, len(spec["labels"]), options, layer)
