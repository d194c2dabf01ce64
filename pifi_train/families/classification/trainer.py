"""Classification batches, inference and the trainer hooks: label-smoothed cross-entropy, accuracy / macro-F1."""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from ... import distributed as dist
from ...config import Precision
from ...trainer import Tick, Trainer, autocast
from .data import Examples
from .metrics import compute_metrics


class Collator:
    """Turns example indices into a padded batch: tokenizer outputs the SLM accepts, plus ``labels``."""

    def __init__(self, examples: Examples, tokenizer: Any, max_length: int, input_names: Sequence[str]) -> None:
        self.examples = examples
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.input_names = set(input_names)

    def __call__(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        texts = [self.examples.texts[i] for i in indices]
        pairs = [self.examples.pairs[i] for i in indices] if self.examples.pairs is not None else None
        encoded = self.tokenizer(texts, pairs, truncation=True, max_length=self.max_length, padding=True,
                                 return_tensors="pt")
        batch = {k: v for k, v in encoded.items() if k in self.input_names}
        batch["labels"] = torch.tensor([self.examples.labels[i] for i in indices], dtype=torch.long)  # (B,)
        batch["index"] = torch.tensor(list(indices), dtype=torch.long)  # (B,)
        return batch


@torch.no_grad()
def infer(model: nn.Module, examples: Examples, tokenizer: Any, max_length: int, batch_size: int,
          ctx: dist.DistContext, precision: Precision, tick: Tick | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(example indices (N,), class probabilities (N, C)) for every example, gathered from all ranks."""
    was_training = model.training
    model.eval()
    collate = Collator(examples, tokenizer, max_length, model.slm_inputs)
    indices = dist.shard(range(len(examples)), ctx, drop_remainder=False)
    rows: list[tuple[int, list[float]]] = []
    steps = (len(indices) + batch_size - 1) // batch_size
    for step, start in enumerate(range(0, len(indices), batch_size), 1):
        batch = collate(indices[start:start + batch_size])
        index = batch.pop("index").tolist()
        batch.pop("labels")
        with autocast(ctx.device, precision):
            logits = model(**{k: v.to(ctx.device) for k, v in batch.items()})  # (B, C)
        probs = torch.softmax(logits.float(), dim=-1).cpu()  # (B, C)
        rows.extend(zip(index, probs.tolist()))
        if tick is not None:
            tick(step, steps)
    model.train(was_training)
    rows = sorted(dist.gather(ctx, rows))
    probs = torch.tensor([p for _, p in rows], dtype=torch.float32)  # (N, C)
    return torch.tensor([i for i, _ in rows], dtype=torch.long), probs


def split_metrics(probs: torch.Tensor, examples: Examples, label_names: Sequence[str]) -> tuple[dict[str, Any], list[int]]:
    """(metrics of a split plus its mean cross-entropy (no smoothing), the predicted label id per example)."""
    labels = torch.tensor(examples.labels, dtype=torch.long)  # (N,)
    predictions = probs.argmax(dim=-1).tolist()
    metrics = compute_metrics(examples.labels, predictions, label_names).to_dict()
    picked = probs[torch.arange(len(labels)), labels].clamp_min(1e-12)  # (N,)
    metrics["loss"] = float(-picked.log().mean()) if len(labels) else 0.0
    return metrics, predictions


class ClassificationTrainer(Trainer):
    """The shared loop with text-classification batches."""

    def make_collator(self) -> Collator:
        return Collator(self.data.train, self.tokenizer, self.max_length, self.model.slm_inputs)

    def batch_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
        labels = batch.pop("labels").to(self.ctx.device)  # (B,)
        with autocast(self.ctx.device, self.precision):
            logits = self.network(**{k: v.to(self.ctx.device) for k, v in batch.items()})  # (B, C)
        loss = nn.functional.cross_entropy(logits.float(), labels, label_smoothing=self.config.label_smoothing)
        return loss, len(labels)

    def evaluate(self, split: Examples, tick: Tick | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        _, probs = infer(self.model, split, self.tokenizer, self.max_length,
                         self.config.eval_batch_size or self.config.batch_size, self.ctx, self.precision, tick)
        metrics, predicted = split_metrics(probs, split, self.data.label_names)
        return metrics, [{"index": i, "label": y, "prediction": p}
                         for i, (y, p) in enumerate(zip(split.labels, predicted))]
