"""The QA trainer hooks: context windows as training items, the span loss, the official EM/F1 per split.

Every example becomes one or more windows (``--doc-stride`` overlap under the standard protocol); an epoch
permutes the windows; evaluation takes the n-best spans of every window of a question and scores the
answers as the official SQuAD script does. The best epoch is chosen by validation F1 (``--select-by``).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from ... import distributed as dist
from ...config import Precision, TrainConfig
from ...trainer import Tick, Trainer, autocast
from .data import QaCollator, QaExample, QaFeatures, best_answers, featurize, max_length_of
from .metrics import example_scores, squad_metrics, token_span_metrics
from .model import PifiSpanModel, span_loss


def windows(examples: Sequence[QaExample], tokenizer: Any, config: TrainConfig) -> QaFeatures:
    """The run's windows: the standard protocol slides with --doc-stride and labels an answer cut by a window's
    edge as no answer (CLS), as transformers' run_qa; --protocol paper keeps one truncated window and labels a
    cut answer from its start to the last context token, as the authors' preprocessing meant to (theirs points
    one past it, at [SEP], a position the span head can never predict)."""
    paper = config.protocol == "paper"
    return featurize(examples, tokenizer, max_length_of(config), config.doc_stride, overflow=not paper,
                     cut_answers="truncate" if paper else "cls")


@torch.no_grad()
def span_logits(model: PifiSpanModel, features: QaFeatures, tokenizer: Any, allow_null: bool, batch_size: int,
                ctx: dist.DistContext, precision: Precision, tick: Tick | None = None
                ) -> tuple[list[list[float]], list[list[float]]]:
    """Start and end logits of every window (unpadded), gathered from all ranks."""
    was_training = model.training
    model.eval()
    collate = QaCollator(features, tokenizer.pad_token_id, allow_null, model.slm_inputs)
    indices = dist.shard(range(len(features)), ctx, drop_remainder=False)
    rows: list[tuple[int, list[float], list[float]]] = []
    steps = (len(indices) + batch_size - 1) // batch_size
    for step, begin in enumerate(range(0, len(indices), batch_size), 1):
        batch = collate(indices[begin:begin + batch_size])
        index = batch.pop("index").tolist()
        batch.pop("start_positions"), batch.pop("end_positions")
        with autocast(ctx.device, precision):
            logits = model(**{k: v.to(ctx.device) for k, v in batch.items()}).float().cpu()  # (B, T, 2)
        for row, w in enumerate(index):
            n = len(features.input_ids[w])
            rows.append((w, logits[row, :n, 0].tolist(), logits[row, :n, 1].tolist()))
        if tick is not None:
            tick(step, steps)
    model.train(was_training)
    rows = sorted(dist.gather(ctx, rows), key=lambda r: r[0])
    return [r[1] for r in rows], [r[2] for r in rows]


def evaluate_qa(model: PifiSpanModel, examples: Sequence[QaExample], features: QaFeatures, tokenizer: Any,
                config: TrainConfig, v2: bool, ctx: dist.DistContext, precision: Precision, tick: Tick | None = None
                ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(metrics, one row per question: id, answer, golds, its EM and F1) of a split: the official EM/F1
    (+ the paper's token-span EM/F1 under --protocol paper)."""
    starts, ends = span_logits(model, features, tokenizer, v2, config.eval_batch_size or config.batch_size,
                               ctx, precision, tick)
    answers = best_answers(examples, features, starts, ends, config.n_best, config.max_answer_length, v2,
                           config.null_score_threshold)
    predictions = {e.id: a.text for e, a in zip(examples, answers)}
    metrics: dict[str, Any] = squad_metrics(predictions, {e.id: e.answers for e in examples}, v2)
    if config.protocol == "paper":  # one window per example: the authors' independent argmax vs token indices
        predicted = [(max(range(len(s)), key=s.__getitem__), max(range(len(t)), key=t.__getitem__))
                     for s, t in zip(starts, ends)]
        metrics.update(token_span_metrics(predicted, list(zip(features.starts, features.ends))))
    rows = [{"id": e.id, "prediction": a.text, "answers": list(e.answers),
             **dict(zip(("exact_match", "f1"), example_scores(a.text, e.answers, v2)))} for e, a in zip(examples, answers)]
    return metrics, rows


class QaTrainer(Trainer):
    """The shared loop with QA batches: context windows, the span loss, EM/F1."""

    def make_collator(self) -> QaCollator:
        self.train_features = windows(self.data.train, self.tokenizer, self.config)
        self.split_features: dict[int, QaFeatures] = {}
        # CLS is a training target in every version: a window without the answer learns "not here" (as run_qa);
        # for v1.1 the post-processing never answers with CLS, so it is masked only where answers are read
        return QaCollator(self.train_features, self.tokenizer.pad_token_id, True, self.model.slm_inputs)

    def train_size(self) -> int:
        return len(self.train_features)

    def batch_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
        starts = batch.pop("start_positions").to(self.ctx.device)  # (B,)
        ends = batch.pop("end_positions").to(self.ctx.device)  # (B,)
        with autocast(self.ctx.device, self.precision):
            logits = self.network(**{k: v.to(self.ctx.device) for k, v in batch.items()})  # (B, T, 2)
        return span_loss(logits.float(), starts, ends, self.config.label_smoothing), len(starts)

    def evaluate(self, split: list[QaExample], tick: Tick | None = None
                 ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        key = id(split)
        if key not in self.split_features:
            self.split_features[key] = windows(split, self.tokenizer, self.config)
        return evaluate_qa(self.model, split, self.split_features[key], self.tokenizer, self.config,
                           self.data.v2, self.ctx, self.precision, tick)
