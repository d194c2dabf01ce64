"""The seq2seq trainer: pifi_train.trainer.Trainer's loop with a token-level loss and generation metrics.

Loss: label-smoothed cross-entropy over real target tokens only (padding is -100). Evaluation:
mean token cross-entropy (no smoothing) plus ``model.generate`` with one decoding config for both
arms, scored by :func:`~pifi_train.seq2seq.metrics.generation_metrics`. The test split's
hypotheses are written to ``predictions.jsonl`` (source, reference, hypothesis).
"""

from __future__ import annotations

import json
from typing import Any, Sequence

import torch
from torch import nn

from .. import distributed as dist
from ..config import Precision, TrainConfig
from ..trainer import Trainer, autocast
from .data import IGNORE_INDEX, Pairs, Seq2SeqCollator
from .metrics import generation_metrics
from .model import Seq2SeqPifi

PREDICTIONS = "predictions.jsonl"
SELECT_BY = ("loss", "bleu", "rougeL")


def decoding_options(config: TrainConfig) -> dict[str, Any]:
    """The one ``generate`` configuration both arms decode with."""
    return {"num_beams": config.num_beams, "max_new_tokens": config.max_new_tokens, "do_sample": False,
            "length_penalty": config.length_penalty, "no_repeat_ngram_size": config.no_repeat_ngram_size,
            "early_stopping": config.num_beams > 1}


@torch.no_grad()
def generate_texts(model: Seq2SeqPifi, collate: Seq2SeqCollator, indices: Sequence[int], config: TrainConfig,
                   batch_size: int, device: torch.device, precision: Precision) -> list[str]:
    """Decoded hypotheses of the examples ``indices`` (in that order)."""
    was_training = model.training
    model.eval()
    texts: list[str] = []
    for start in range(0, len(indices), batch_size):
        batch = collate.sources(indices[start:start + batch_size])
        with autocast(device, precision):
            out = model.generate(batch["input_ids"].to(device), batch["attention_mask"].to(device),
                                 **decoding_options(config))  # (B, L)
        texts.extend(t.strip() for t in collate.tokenizer.batch_decode(out, skip_special_tokens=True))
    model.train(was_training)
    return texts


class Seq2SeqTrainer(Trainer):
    """Trains one seed of a seq2seq run (same epochs, checkpoints, resume and DDP as classification)."""

    def __init__(self, model: Seq2SeqPifi, data: Any, tokenizer: Any, config: TrainConfig, seed: int,
                 ctx: dist.DistContext, precision: Precision, run_dir: Any, progress: Any, prefix: str) -> None:
        super().__init__(model, data, tokenizer, config, seed, ctx, precision, run_dir, progress)
        self.prefix = prefix
        self.collate = self.collator(data.train)
        self.criterion = nn.CrossEntropyLoss(ignore_index=IGNORE_INDEX, label_smoothing=config.label_smoothing)
        self.last_generation: tuple[Pairs, list[str]] | None = None

    def collator(self, pairs: Pairs) -> Seq2SeqCollator:
        return Seq2SeqCollator(pairs, self.tokenizer, self.prefix, self.config.max_length,
                               self.config.max_target_length)

    def batch_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
        batch.pop("index", None)
        batch = {k: v.to(self.ctx.device) for k, v in batch.items()}
        with autocast(self.ctx.device, self.precision):
            logits = self.network(**batch)  # (B, L, V)
        loss = self.criterion(logits.float().flatten(0, 1), batch["labels"].flatten())
        return loss, len(batch["labels"])

    def selection_score(self, validation: dict[str, Any]) -> float:
        return -validation["loss"] if self.config.select_by == "loss" else validation[self.config.select_by]

    @torch.no_grad()
    def _token_loss(self, collate: Seq2SeqCollator, indices: Sequence[int], batch_size: int) -> tuple[float, int]:
        """(summed cross-entropy, real target tokens) of ``indices``: padding never counts."""
        self.model.eval()
        total, tokens = 0.0, 0
        for start in range(0, len(indices), batch_size):
            batch = collate(indices[start:start + batch_size])
            batch.pop("index")
            batch = {k: v.to(self.ctx.device) for k, v in batch.items()}
            with autocast(self.ctx.device, self.precision):
                logits = self.model(**batch)  # (B, L, V)
            total += float(nn.functional.cross_entropy(logits.float().flatten(0, 1), batch["labels"].flatten(),
                                                       ignore_index=IGNORE_INDEX, reduction="sum"))
            tokens += int((batch["labels"] != IGNORE_INDEX).sum())
        self.model.train()
        return total, tokens

    def _evaluate(self, pairs: Pairs) -> dict[str, Any]:  # type: ignore[override]
        batch_size = self.config.eval_batch_size or self.config.batch_size
        collate = self.collator(pairs)
        mine = dist.shard(range(len(pairs)), self.ctx, drop_remainder=False)
        total, tokens = self._token_loss(collate, mine, batch_size)
        hyps = generate_texts(self.model, collate, mine, self.config, batch_size, self.ctx.device, self.precision)
        rows = sorted(dist.gather(self.ctx, list(zip(mine, hyps))))
        sums = dist.gather(self.ctx, [(total, tokens)])
        hypotheses = [h for _, h in rows]
        metrics: dict[str, Any] = generation_metrics(hypotheses, pairs.targets)
        metrics["loss"] = sum(t for t, _ in sums) / max(sum(n for _, n in sums), 1)
        self.last_generation = (pairs, hypotheses)
        return metrics

    def evaluate_test(self, pairs: Pairs) -> tuple[dict[str, Any], None]:  # type: ignore[override]
        return self._evaluate(pairs), None  # predictions.jsonl is this family's per-example record

    def finish(self, metrics: dict[str, Any], state: Any) -> dict[str, Any]:
        metrics = super().finish(metrics, state)
        if self.ctx.is_main and self.data.test is not None and self.last_generation is not None:
            pairs, hypotheses = self.last_generation
            with open(self.run_dir / PREDICTIONS, "w", encoding="utf-8") as fh:
                for source, reference, hypothesis in zip(pairs.sources, pairs.targets, hypotheses):
                    fh.write(json.dumps({"source": source, "reference": reference, "hypothesis": hypothesis},
                                        ensure_ascii=False) + "\n")
        return metrics
