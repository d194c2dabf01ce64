"""The torch side of the seq2seq family (:class:`pifi_train.families.spec.FamilyRuntime`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from ...clean import clean_texts, resolve_cleaning
from ...config import TrainConfig
from ...options import ModelOptions
from ...slm import load_config
from ...splits import finish_splits
from .data import Seq2SeqData, load_builtin_pairs, load_extra_test, load_local_pairs
from .metrics import require_generation
from .model import Seq2SeqPifi, check_encoder_decoder, load_seq2seq_slm
from .trainer import Seq2SeqTrainer as Trainer  # noqa: F401 - the family's trainer

__all__ = ["Trainer", "build_model", "load_data", "load_slm", "load_slm_config", "model_spec"]

T5_PREFIX_MODEL_TYPES = ("t5", "mt5", "umt5", "longt5")  # SLMs trained with task prefixes


def load_data(config: TrainConfig) -> Seq2SeqData:
    """A built-in task's splits or local files (no validation file: a hold-out seeded by --split-seed), the
    --extra-test sets, cleaning (sources and targets), then --train-fraction and the sample caps."""
    require_generation()  # pifi[generation] present before anything is written
    if config.task is not None:
        data = load_builtin_pairs(config.task)
    else:
        data = load_local_pairs(Path(config.train_file), Path(config.validation_file) if config.validation_file
                                else None, Path(config.test_file) if config.test_file else None,
                                config.source_column, config.target_column, config.validation_fraction,
                                config.split_seed)
    data.extra_tests = {ref: load_extra_test(ref, config.source_column, config.target_column) for ref in config.extra_test or []}
    finish_splits(data, config)
    cleaning = resolve_cleaning(config.clean_text, config.task)
    for pairs in [data.train, data.validation, data.test, *data.extra_tests.values()]:
        if pairs is not None:
            pairs.sources, pairs.targets = clean_texts(pairs.sources, cleaning), clean_texts(pairs.targets, cleaning)
    data.source = {**data.source, "clean_text": cleaning, "split_seed": config.split_seed}
    return data


def load_slm_config(name: str) -> Any:
    """The config of an encoder-decoder SLM (T5, BART...); other models refused."""
    return check_encoder_decoder(name, load_config(name))


def load_slm(name: str, slm_config: Any, pretrained: bool = True) -> Any:
    return load_seq2seq_slm(name, slm_config, pretrained)


def model_spec(data: Seq2SeqData, slm_config: Any, config: TrainConfig) -> dict[str, Any]:
    """The source prefix: --source-prefix, else the task's T5 prefix for a T5-family SLM, else none."""
    if config.source_prefix is not None:
        prefix = config.source_prefix
    else:
        prefix = data.t5_prefix if slm_config.model_type in T5_PREFIX_MODEL_TYPES else ""
    return {"source_prefix": prefix}


def build_model(slm: Any, spec: Mapping[str, Any], options: ModelOptions, layer: Any) -> Seq2SeqPifi:
    return Seq2SeqPifi(slm, layer, options)
