"""``pifi train --task squad|squad_v2`` (or ``--task-type qa --train-file x.json``): the QA family.

Plugs into the shared run flow (:func:`pifi_train.runner.run_pipeline`: validation, run directories,
seeds, checkpoints of trainable tensors only, resume, distributed): the data are SQuAD examples, the model
:class:`PifiSpanModel`, the trainer :class:`QaTrainer` (windows as training items, span loss, EM/F1 per
split, the best epoch by validation F1). ``predictions.json`` (official format: id -> answer) holds the
best epoch's test answers (validation when there is no test split).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Sequence

import torch

from pifi_extract.errors import ConfigError

from .. import run_files
from .. import distributed as dist
from ..config import Precision, ProgressCallback, TrainConfig
from ..runner import Pipeline, RunResult, run_pipeline
from ..trainer import Trainer, autocast
from .data import (QaCollator, QaExample, QaFeatures, QaTaskData, best_answers, featurize, load_hub_squad,
                   read_squad, seeded_holdout, split_builtin)
from .metrics import squad_metrics, token_span_metrics
from .model import PifiSpanModel, span_loss

QA_TASKS = ("squad", "squad_v2")
PROTOCOLS = ("standard", "paper")
CLASSIFICATION_MAX_LENGTH = 100  # TrainConfig.max_length's default; QA reads it as "not set": 384 / paper 100
STANDARD_MAX_LENGTH = 384
PREDICTIONS = "predictions.json"


def qa_max_length(config: TrainConfig) -> int:
    """384 tokens (the standard protocol) unless --max-length was changed; the paper protocol keeps 100."""
    if config.max_length == CLASSIFICATION_MAX_LENGTH and config.protocol == "standard":
        return STANDARD_MAX_LENGTH
    return config.max_length


def check_qa_options(config: TrainConfig) -> None:
    if config.protocol not in PROTOCOLS:
        raise ConfigError(f"--protocol must be one of {', '.join(PROTOCOLS)}, got {config.protocol!r}")
    if config.task is not None and config.task not in QA_TASKS:
        raise ConfigError(f"--task {config.task} is not a QA task ({', '.join(QA_TASKS)})")
    for name in ("doc_stride", "max_answer_length", "n_best"):
        if getattr(config, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be at least 1")
    if config.protocol == "standard" and config.doc_stride >= qa_max_length(config) // 2:
        raise ConfigError(f"--doc-stride {config.doc_stride} must be below half of --max-length "
                          f"{qa_max_length(config)}")


def load_qa_task(config: TrainConfig, seed: int) -> QaTaskData:
    """Hub SQuAD split by the protocol, or local files (no validation file: a seeded hold-out of train)."""
    check_qa_options(config)
    if config.task is not None:
        train, validation, test = split_builtin(*load_hub_squad(config.task), config.protocol)
        source: dict[str, Any] = {"task": config.task, "path": f"rajpurkar/{config.task}", "protocol": config.protocol}
    else:
        train = read_squad(config.train_file)
        if config.validation_file:
            validation = read_squad(config.validation_file)
        else:
            train, validation = seeded_holdout(train, config.validation_fraction, seed)
        test = read_squad(config.test_file) if config.test_file else None
        source = {"train_file": config.train_file, "validation_file": config.validation_file,
                  "test_file": config.test_file, "protocol": config.protocol}
    if config.max_train_samples:
        train = train[:config.max_train_samples]
    if config.max_eval_samples:
        validation = validation[:config.max_eval_samples]
        test = test[:config.max_eval_samples] if test is not None else None
    if not validation:
        raise ConfigError("the validation split is empty")
    if len(train) < config.batch_size:
        raise ConfigError(f"the training set has {len(train)} questions, fewer than one batch "
                          f"(--batch-size {config.batch_size})")
    v2 = config.task == "squad_v2" or any(not e.answers for e in train)
    return QaTaskData(config.task or Path(config.train_file or "qa").stem, train, validation, test, v2,
                      {**source, "max_length": qa_max_length(config), "v2": v2})


def build_span_model(slm: Any, data: Any, config: TrainConfig, frozen: Any) -> PifiSpanModel:
    return PifiSpanModel(slm, config.model_options(), frozen)


def windows(examples: Sequence[QaExample], tokenizer: Any, config: TrainConfig) -> QaFeatures:
    return featurize(examples, tokenizer, qa_max_length(config), config.doc_stride,
                     overflow=config.protocol == "standard")


@torch.no_grad()
def span_logits(model: PifiSpanModel, features: QaFeatures, tokenizer: Any, allow_null: bool, batch_size: int,
                ctx: dist.DistContext, precision: Precision) -> tuple[list[list[float]], list[list[float]]]:
    """Start and end logits of every window (unpadded), gathered from all ranks."""
    was_training = model.training
    model.eval()
    collate = QaCollator(features, tokenizer.pad_token_id, allow_null, model.slm_inputs)
    indices = dist.shard(range(len(features)), ctx, drop_remainder=False)
    rows: list[tuple[int, list[float], list[float]]] = []
    for begin in range(0, len(indices), batch_size):
        batch = collate(indices[begin:begin + batch_size])
        index = batch.pop("index").tolist()
        batch.pop("start_positions"), batch.pop("end_positions")
        with autocast(ctx.device, precision):
            logits = model(**{k: v.to(ctx.device) for k, v in batch.items()}).float().cpu()  # (B, T, 2)
        for row, w in enumerate(index):
            n = len(features.input_ids[w])
            rows.append((w, logits[row, :n, 0].tolist(), logits[row, :n, 1].tolist()))
    model.train(was_training)
    rows = sorted(dist.gather(ctx, rows), key=lambda r: r[0])
    return [r[1] for r in rows], [r[2] for r in rows]


def evaluate_qa(model: PifiSpanModel, examples: Sequence[QaExample], features: QaFeatures, tokenizer: Any,
                config: TrainConfig, v2: bool, ctx: dist.DistContext, precision: Precision
                ) -> tuple[dict[str, Any], dict[str, str]]:
    """(metrics, predictions id -> answer) of a split: the official EM/F1 (+ the paper's token-span EM/F1
    under --protocol paper)."""
    starts, ends = span_logits(model, features, tokenizer, v2, config.eval_batch_size or config.batch_size,
                               ctx, precision)
    answers = best_answers(examples, features, starts, ends, config.n_best, config.max_answer_length, v2,
                           config.null_score_threshold)
    predictions = {e.id: a.text for e, a in zip(examples, answers)}
    metrics: dict[str, Any] = squad_metrics(predictions, {e.id: e.answers for e in examples})
    if config.protocol == "paper":  # one window per example: the authors' independent argmax vs token indices
        predicted = [(max(range(len(s)), key=s.__getitem__), max(range(len(t)), key=t.__getitem__))
                     for s, t in zip(starts, ends)]
        metrics.update(token_span_metrics(predicted, list(zip(features.starts, features.ends))))
    return metrics, predictions


class QaTrainer(Trainer):
    """The shared loop with QA batches: context windows, the span loss, EM/F1, best epoch by validation F1."""

    select_metric = "f1"

    def make_collator(self) -> QaCollator:
        self.train_features = windows(self.data.train, self.tokenizer, self.config)
        self.split_features: dict[int, QaFeatures] = {}
        return QaCollator(self.train_features, self.tokenizer.pad_token_id, self.data.v2, self.model.slm_inputs)

    def train_size(self) -> int:
        return len(self.train_features)

    def batch_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
        starts = batch.pop("start_positions").to(self.ctx.device)  # (B,)
        ends = batch.pop("end_positions").to(self.ctx.device)  # (B,)
        with autocast(self.ctx.device, self.precision):
            logits = self.network(**{k: v.to(self.ctx.device) for k, v in batch.items()})  # (B, T, 2)
        return span_loss(logits.float(), starts, ends, self.config.label_smoothing), len(starts)

    def _evaluate_with_predictions(self, examples: list[QaExample]) -> tuple[dict[str, Any], dict[str, str]]:
        key = id(examples)
        if key not in self.split_features:
            self.split_features[key] = windows(examples, self.tokenizer, self.config)
        return evaluate_qa(self.model, examples, self.split_features[key], self.tokenizer, self.config,
                           self.data.v2, self.ctx, self.precision)

    def _evaluate(self, examples: list[QaExample]) -> dict[str, Any]:  # type: ignore[override]
        metrics, self.last_predictions = self._evaluate_with_predictions(examples)
        return metrics

    def evaluate_test(self, examples: list[QaExample]) -> tuple[dict[str, Any], None]:  # type: ignore[override]
        return self._evaluate(examples), None

    def finish(self, metrics: dict[str, Any], state: Any) -> dict[str, Any]:
        metrics = super().finish(metrics, state)  # the best epoch's tensors are loaded; test evaluated last
        if not (self.data.test is not None and len(self.data.test)):
            _, self.last_predictions = self._evaluate_with_predictions(self.data.validation)
        if self.ctx.is_main:
            run_files.write_json(self.run_dir / PREDICTIONS, self.last_predictions)
        return metrics


QA = Pipeline(load_data=load_qa_task, build_model=build_span_model, trainer=QaTrainer,
              summary_keys=("exact_match", "f1"))


def run_qa(config: TrainConfig, progress: ProgressCallback | None = None,
           resume_dir: Path | None = None) -> list[RunResult]:
    """Train extractive QA runs (every seed) — the QA row of :data:`pifi_train.families.FAMILIES`."""
    check_qa_options(config)
    # the span model always sends every token through the layer: recorded as such (pifi report groups by it)
    return run_pipeline(dataclasses.replace(config, plug="sequence"), progress, resume_dir, QA)
