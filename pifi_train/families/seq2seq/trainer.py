"""The seq2seq trainer hooks: a token-level loss over real target tokens, and generation metrics.

Loss: label-smoothed cross-entropy over real target tokens only (padding is -100). Evaluation:
mean token cross-entropy (no smoothing) plus ``model.generate`` with one decoding config for both
arms, scored by :func:`~pifi_train.families.seq2seq.metrics.generation_metrics`; every example's
hypothesis becomes a row of ``predictions.jsonl`` (source, reference, prediction).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from ... import distributed as dist
from ...config import Precision, TrainConfig
from ...trainer import Tick, Trainer, autocast
from .data import Pairs
from .metrics import generation_metrics
from .model import Seq2SeqPifi

IGNORE_INDEX = -100  # label positions that never enter the loss (padding)


class Seq2SeqCollator:
    """Indices -> input_ids, attention_mask (B, T) and labels (B, L) with padding set to -100."""

    def __init__(self, pairs: Pairs, tokenizer: Any, prefix: str, max_length: int, max_target_length: int) -> None:
        self.pairs, self.tokenizer, self.prefix = pairs, tokenizer, prefix
        self.max_length, self.max_target_length = max_length, max_target_length

    def sources(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        texts = [self.prefix + self.pairs.sources[i] for i in indices]
        return dict(self.tokenizer(texts, max_length=self.max_length, truncation=True, padding=True,
                                   return_tensors="pt"))

    def __call__(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        batch = {k: v for k, v in self.sources(indices).items() if k in ("input_ids", "attention_mask")}
        labels = self.tokenizer(text_target=[self.pairs.targets[i] for i in indices],
                                max_length=self.max_target_length, truncation=True, padding=True,
                                return_tensors="pt")
        ids = labels["input_ids"]  # (B, L)
        batch["labels"] = ids.masked_fill(labels["attention_mask"] == 0, IGNORE_INDEX)  # (B, L)
        batch["index"] = torch.tensor(list(indices), dtype=torch.long)  # (B,)
        return batch


def decoding_options(config: TrainConfig) -> dict[str, Any]:
    """The one ``generate`` configuration both arms decode with."""
    return {"num_beams": config.num_beams, "max_new_tokens": config.max_new_tokens, "do_sample": False,
            "length_penalty": config.length_penalty, "no_repeat_ngram_size": config.no_repeat_ngram_size,
            "early_stopping": config.num_beams > 1}


@torch.no_grad()
def generate_texts(model: Seq2SeqPifi, collate: Seq2SeqCollator, indices: Sequence[int], config: TrainConfig,
                   batch_size: int, device: torch.device, precision: Precision, tick: Tick | None = None) -> list[str]:
    """Decoded hypotheses of the examples ``indices`` (in that order)."""
    was_training = model.training
    model.eval()
    texts: list[str] = []
    steps = (len(indices) + batch_size - 1) // batch_size
    for step, start in enumerate(range(0, len(indices), batch_size), 1):
        batch = collate.sources(indices[start:start + batch_size])
        with autocast(device, precision):
            out = model.generate(batch["input_ids"].to(device), batch["attention_mask"].to(device),
                                 **decoding_options(config))  # (B, L)
        texts.extend(t.strip() for t in collate.tokenizer.batch_decode(out, skip_special_tokens=True))
        if tick is not None:
            tick(step, steps)
    model.train(was_training)
    return texts


class Seq2SeqTrainer(Trainer):
    """Trains one seed of a seq2seq run (same epochs, checkpoints, resume and DDP as every family)."""

    @property
    def prefix(self) -> str:
        return str(self.model_spec.get("source_prefix", ""))

    def make_collator(self) -> Seq2SeqCollator:
        return self.collator(self.data.train)

    def collator(self, pairs: Pairs) -> Seq2SeqCollator:
        return Seq2SeqCollator(pairs, self.tokenizer, self.prefix, self.max_length, self.config.max_target_length)

    def batch_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
        batch = {k: v.to(self.ctx.device) for k, v in batch.items()}
        with autocast(self.ctx.device, self.precision):
            logits = self.network(**batch)  # (B, L, V)
        loss = nn.functional.cross_entropy(logits.float().flatten(0, 1), batch["labels"].flatten(),
                                           ignore_index=IGNORE_INDEX, label_smoothing=self.config.label_smoothing)
        return loss, len(batch["labels"])

    @torch.no_grad()
    def _token_loss(self, collate: Seq2SeqCollator, indices: Sequence[int], batch_size: int) -> tuple[float, int]:
        """(summed cross-entropy, real target tokens) of ``indices``: padding never counts."""
        was_training = self.model.training
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
        self.model.train(was_training)
        return total, tokens

    def evaluate(self, split: Pairs, tick: Tick | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        batch_size = self.config.eval_batch_size or self.config.batch_size
        collate = self.collator(split)
        mine = dist.shard(range(len(split)), self.ctx, drop_remainder=False)
        total, tokens = self._token_loss(collate, mine, batch_size)
        hyps = generate_texts(self.model, collate, mine, self.config, batch_size, self.ctx.device, self.precision,
                              tick)
        ordered = sorted(dist.gather(self.ctx, list(zip(mine, hyps))))
        sums = dist.gather(self.ctx, [(total, tokens)])
        hypotheses = [h for _, h in ordered]
        metrics: dict[str, Any] = generation_metrics(hypotheses, split.targets)
        metrics["loss"] = sum(t for t, _ in sums) / max(sum(n for _, n in sums), 1)
        return metrics, [{"index": i, "source": s, "reference": r, "prediction": h}
                         for i, (s, r, h) in enumerate(zip(split.sources, split.targets, hypotheses))]
