"""The training loop of one seed: Adam, label-smoothed cross-entropy, grad clipping, best epoch.

Per epoch: train on a seeded permutation of the training set (sharded over ranks,
batches of ``batch_size`` per rank, last partial batch dropped), evaluate the
whole validation split, keep the trainable tensors of the best epoch (validation
accuracy, earliest on ties) in ``checkpoint/``, save resume state in ``state/``.
After the last epoch the best checkpoint is reloaded and evaluated on the test split.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from . import checkpoint as ckpt
from . import run_files
from . import distributed as dist
from .config import Precision, ProgressCallback, ProgressEvent, TrainConfig
from .data import Collator, Examples
from .metrics import compute_metrics
from .model import PifiModel


def autocast(device: torch.device, precision: Precision) -> contextlib.AbstractContextManager:
    if precision.autocast is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=precision.autocast)


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int, ctx: dist.DistContext) -> list[list[int]]:
    """This rank's training batches for one epoch: a permutation seeded by (seed, epoch), drop_last."""
    generator = torch.Generator().manual_seed(seed * 1000 + epoch)
    mine = dist.shard(torch.randperm(n, generator=generator).tolist(), ctx, drop_remainder=True)
    return [mine[i:i + batch_size] for i in range(0, len(mine) - batch_size + 1, batch_size)]


@torch.no_grad()
def infer(model: PifiModel, examples: Examples, tokenizer: Any, max_length: int, batch_size: int,
          ctx: dist.DistContext, precision: Precision) -> tuple[torch.Tensor, torch.Tensor]:
    """(example indices (N,), class probabilities (N, C)) for every example, gathered from all ranks."""
    was_training = model.training
    model.eval()
    collate = Collator(examples, tokenizer, max_length, model.slm_inputs)
    indices = dist.shard(range(len(examples)), ctx, drop_remainder=False)
    rows: list[tuple[int, list[float]]] = []
    for start in range(0, len(indices), batch_size):
        batch = collate(indices[start:start + batch_size])
        index = batch.pop("index").tolist()
        batch.pop("labels")
        with autocast(ctx.device, precision):
            logits = model(**{k: v.to(ctx.device) for k, v in batch.items()})  # (B, C)
        probs = torch.softmax(logits.float(), dim=-1).cpu()  # (B, C)
        rows.extend(zip(index, probs.tolist()))
    model.train(was_training)
    rows = sorted(dist.gather(ctx, rows))
    probs = torch.tensor([p for _, p in rows], dtype=torch.float32)  # (N, C)
    return torch.tensor([i for i, _ in rows], dtype=torch.long), probs


def evaluate_with_predictions(model: PifiModel, examples: Examples, label_names: Sequence[str], tokenizer: Any,
                              config: TrainConfig, ctx: dist.DistContext, precision: Precision
                              ) -> tuple[dict[str, Any], list[int]]:
    """(metrics of a whole split plus its mean cross-entropy (no smoothing), predicted label id per example)."""
    batch_size = config.eval_batch_size or config.batch_size
    _, probs = infer(model, examples, tokenizer, config.max_length, batch_size, ctx, precision)
    labels = torch.tensor(examples.labels, dtype=torch.long)  # (N,)
    predictions = probs.argmax(dim=-1).tolist()
    metrics = compute_metrics(examples.labels, predictions, label_names).to_dict()
    picked = probs[torch.arange(len(labels)), labels].clamp_min(1e-12)  # (N,)
    metrics["loss"] = float(-picked.log().mean()) if len(labels) else 0.0
    return metrics, predictions


def evaluate(model: PifiModel, examples: Examples, label_names: Sequence[str], tokenizer: Any,
             config: TrainConfig, ctx: dist.DistContext, precision: Precision) -> dict[str, Any]:
    """Metrics of a whole split plus its mean cross-entropy (no smoothing)."""
    return evaluate_with_predictions(model, examples, label_names, tokenizer, config, ctx, precision)[0]


@dataclass
class TrainState:
    """Counters that survive a resume."""

    epoch_done: int = 0
    best_epoch: int = 0
    best_accuracy: float = -float("inf")  # the best selection_score so far (classification: accuracy)


class Trainer:
    """Trains one seed of one run into ``run_dir`` (rank 0 writes, every rank computes)."""

    def __init__(self, model: PifiModel, data: Any, tokenizer: Any, config: TrainConfig, seed: int,
                 ctx: dist.DistContext, precision: Precision, run_dir: Path,
                 progress: ProgressCallback | None = None) -> None:
        self.model, self.data, self.tokenizer, self.config = model, data, tokenizer, config
        self.seed, self.ctx, self.precision, self.run_dir = seed, ctx, precision, run_dir
        self.progress = progress if ctx.is_main else None
        self.trainable = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(self.trainable, lr=config.lr, weight_decay=config.weight_decay)
        self.scaler = torch.amp.GradScaler(ctx.device.type, enabled=precision.grad_scaler)
        self.criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
        self.collate = self.make_collator()
        self.network: nn.Module = model
        if ctx.enabled:
            from torch.nn.parallel import DistributedDataParallel

            # The frozen layer is identical on every rank: do not broadcast it.
            frozen = not model.options.train_layer
            DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(
                model, [n for n, _ in model.named_parameters() if frozen and n.startswith("layer.")]
                + [n for n, _ in model.named_buffers() if frozen and n.startswith("layer.")])
            # find_unused_parameters: an SLM's pooler (BERT) never gets a gradient.
            self.network = DistributedDataParallel(
                model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None,
                find_unused_parameters=True)

    # hooks a task family overrides (pifi_train.qa.runner): batches, loss, split metrics, model selection
    select_metric = "accuracy"  # the validation metric that picks the best epoch

    def make_collator(self) -> Any:
        """Training batches: a callable from a list of example indices to a dict of tensors with ``index``."""
        return Collator(self.data.train, self.tokenizer, self.config.max_length, self.model.slm_inputs)

    def train_size(self) -> int:
        """How many training items an epoch permutes (examples; QA: context windows)."""
        return len(self.data.train)

    def batch_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
        """(loss, examples) of one training batch (``index`` already removed)."""
        labels = batch.pop("labels").to(self.ctx.device)  # (B,)
        with autocast(self.ctx.device, self.precision):
            logits = self.network(**{k: v.to(self.ctx.device) for k, v in batch.items()})  # (B, C)
        return self.criterion(logits.float(), labels), len(labels)

    def _emit(self, **fields: Any) -> None:
        if self.progress is not None:
            self.progress(ProgressEvent(seed=self.seed, epochs=self.config.epochs, **fields))

    def train_epoch(self, epoch: int) -> tuple[float, float]:
        """One pass over the training set: (mean loss over ranks, examples per second over ranks)."""
        self.network.train()
        batches = epoch_batches(self.train_size(), self.config.batch_size, self.seed, epoch, self.ctx)
        loader = torch.utils.data.DataLoader(batches, batch_size=None, collate_fn=self.collate,
                                             num_workers=self.config.num_workers)
        self._emit(kind="epoch_start", epoch=epoch, steps=len(batches))
        total, seen, start = 0.0, 0, time.perf_counter()
        for step, batch in enumerate(loader, 1):
            loss, size = self.step(batch)
            total += loss
            seen += size
            rate = seen * self.ctx.world_size / max(time.perf_counter() - start, 1e-9)
            self._emit(kind="step", epoch=epoch, step=step, steps=len(batches), loss=loss,
                       examples_per_second=rate, lr=self.optimizer.param_groups[0]["lr"])
        elapsed = max(time.perf_counter() - start, 1e-9)
        return dist.mean(self.ctx, total / max(len(batches), 1)), seen * self.ctx.world_size / elapsed

    def step(self, batch: dict[str, torch.Tensor]) -> tuple[float, int]:
        """One optimizer step on a collated batch: (its loss, its number of examples)."""
        batch = dict(batch)
        batch.pop("index", None)
        loss, count = self.batch_loss(batch)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        nn.utils.clip_grad_norm_(self.trainable, self.config.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return float(loss.detach()), count

    def selection_score(self, validation: dict[str, Any]) -> float:
        """Higher is better: picks the best epoch (earliest on ties); default: ``validation[select_metric]``."""
        return validation[self.select_metric]

    def _evaluate(self, examples: Examples) -> dict[str, Any]:
        return evaluate(self.model, examples, self.data.label_names, self.tokenizer, self.config, self.ctx,
                        self.precision)

    def fit(self, metrics: dict[str, Any], state: TrainState) -> dict[str, Any]:
        """Train from ``state.epoch_done + 1`` to ``config.epochs``, then test the best epoch."""
        self._emit(kind="run_start", run_dir=str(self.run_dir))
        weights = self.run_dir / run_files.CHECKPOINT_DIR / run_files.WEIGHTS
        for epoch in range(state.epoch_done + 1, self.config.epochs + 1):
            start = time.perf_counter()
            train_loss, rate = self.train_epoch(epoch)
            validation = self._evaluate(self.data.validation)
            score = self.selection_score(validation)
            improved = score > state.best_accuracy
            if improved:
                state.best_epoch, state.best_accuracy = epoch, score
            state.epoch_done = epoch
            record = {"epoch": epoch, "train_loss": train_loss, "examples_per_second": rate,
                      "seconds": time.perf_counter() - start, "validation": validation, "best": improved}
            metrics["epochs"] = [e for e in metrics["epochs"] if e["epoch"] < epoch] + [record]
            metrics["best_epoch"] = state.best_epoch
            if self.ctx.is_main:
                tensors = self.model.trainable_state_dict()
                if improved:
                    ckpt.save_trainable(weights, tensors, {"epoch": str(epoch), "format": "pifi-trainable-1"})
                ckpt.save_state(self.run_dir, tensors, self.optimizer,
                                {**state.__dict__, "scaler": self.scaler.state_dict()})
                run_files.write_json(self.run_dir / run_files.METRICS, metrics)
            dist.barrier(self.ctx)
            self._emit(kind="epoch_end", epoch=epoch, loss=train_loss, examples_per_second=rate, metrics=record)
        return self.finish(metrics, state)

    def evaluate_test(self, examples: Any) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """A test set's metrics and its per-example record (gold and predicted labels, for the paired bootstrap
        of ``pifi report``; None for families without one)."""
        metrics, predicted = evaluate_with_predictions(
            self.model, examples, self.data.label_names, self.tokenizer, self.config, self.ctx, self.precision)
        return metrics, {"labels": list(examples.labels), "predictions": predicted}

    def finish(self, metrics: dict[str, Any], state: TrainState) -> dict[str, Any]:
        """Reload the best epoch's tensors and evaluate validation and test with them."""
        weights = self.run_dir / run_files.CHECKPOINT_DIR / run_files.WEIGHTS
        ckpt.load_into(self.model, ckpt.load_tensors(weights))
        tests = {"test": self.data.test} if self.data.test is not None and len(self.data.test) else {}
        tests.update(getattr(self.data, "extra_tests", {}) or {})
        results, per_example = {}, {}
        for name, examples in tests.items():  # the best epoch on every test set (--extra-test: Table 3)
            results[name], record = self.evaluate_test(examples)
            if record is not None:
                per_example[name] = record
        best = next(e for e in metrics["epochs"] if e["epoch"] == state.best_epoch)
        metrics["final"] = {"best_epoch": state.best_epoch, "validation": best["validation"],
                            "test": results.pop("test", None)}
        if results:
            metrics["final"]["extra_tests"] = results
        metrics["complete"] = True
        if self.ctx.is_main:
            run_files.write_json(self.run_dir / run_files.METRICS, metrics)
            if per_example:  # for `pifi report --bootstrap` (paired over test examples)
                run_files.write_json(self.run_dir / run_files.PREDICTIONS, per_example)
        dist.barrier(self.ctx)
        self._emit(kind="run_end", epoch=state.best_epoch, metrics=metrics["final"])
        return metrics

    def restore(self) -> TrainState:
        """Load ``state/`` (model, optimizer, RNG, counters) written after the last finished epoch."""
        counters = ckpt.load_state(self.run_dir, self.model, self.optimizer)
        scaler = counters.pop("scaler", None)
        if scaler:
            self.scaler.load_state_dict(scaler)
        return TrainState(**{k: counters[k] for k in ("epoch_done", "best_epoch", "best_accuracy")})
