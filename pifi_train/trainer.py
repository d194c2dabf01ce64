"""The training loop of one seed, shared by every family: Adam, grad clipping, best epoch, resume, DDP.

Per epoch: train on a seeded permutation of the training items (sharded over ranks, batches of
``batch_size`` per rank, last partial batch dropped), evaluate the whole validation split, keep the
trainable tensors of the best epoch (by the family's selection metric, ``--select-by``; earliest on
ties) in ``checkpoint/`` and its validation predictions in ``predictions.jsonl``, save resume state in
``state/``. After the last epoch the best checkpoint is reloaded and evaluated on every test split.

A family subclasses :class:`Trainer` and fills four hooks: :meth:`make_collator`, :meth:`train_size`,
:meth:`batch_loss` and :meth:`evaluate` (a split's metrics and its per-example rows).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from . import checkpoint as ckpt
from . import distributed as dist
from . import run_files
from .config import Precision, ProgressCallback, ProgressEvent, TrainConfig
from .families.spec import Family

# an evaluation's progress: tick(batches done, batches in all)
Tick = Callable[[int, int], None]


def autocast(device: torch.device, precision: Precision) -> contextlib.AbstractContextManager:
    if precision.autocast is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=precision.autocast)


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int, ctx: dist.DistContext) -> list[list[int]]:
    """This rank's training batches for one epoch: a permutation seeded by (seed, epoch), drop_last."""
    generator = torch.Generator().manual_seed(seed * 1000 + epoch)
    mine = dist.shard(torch.randperm(n, generator=generator).tolist(), ctx, drop_remainder=True)
    return [mine[i:i + batch_size] for i in range(0, len(mine) - batch_size + 1, batch_size)]


@dataclass
class TrainState:
    """Counters that survive a resume."""

    epoch_done: int = 0
    best_epoch: int = 0
    best_score: float = -float("inf")  # the selection metric, signed so that higher is better


class Trainer:
    """Trains one seed of one run into ``run_dir`` (rank 0 writes, every rank computes)."""

    def __init__(self, model: nn.Module, data: Any, tokenizer: Any, config: TrainConfig, seed: int,
                 ctx: dist.DistContext, precision: Precision, run_dir: Path,
                 progress: ProgressCallback | None = None, model_spec: dict[str, Any] | None = None, *,
                 family: Family) -> None:
        self.model, self.data, self.tokenizer, self.config = model, data, tokenizer, config
        self.model_spec = dict(model_spec or {})  # what config.json records under "model" (labels, prefix...)
        self.seed, self.ctx, self.precision, self.run_dir = seed, ctx, precision, run_dir
        self.progress = progress if ctx.is_main else None
        self.family = family
        self.max_length = family.max_length(config)
        self.selection = family.metrics.selection(config.select_by)
        self.trainable = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(self.trainable, lr=config.lr, weight_decay=config.weight_decay)
        self.scaler = torch.amp.GradScaler(ctx.device.type, enabled=precision.grad_scaler)
        self.collate = self.make_collator()
        self.network: nn.Module = model
        if ctx.enabled:
            from torch.nn.parallel import DistributedDataParallel

            # the frozen layer is identical on every rank: DDP must not broadcast it
            DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(model, model.frozen_parameter_names())
            # find_unused_parameters: an SLM's pooler (BERT) never gets a gradient
            self.network = DistributedDataParallel(
                model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None,
                find_unused_parameters=True)

    # ---- the hooks a family fills ----------------------------------------------------------------

    def make_collator(self) -> Callable[[list[int]], dict[str, torch.Tensor]]:
        """Training batches: from a list of training-item indices to a dict of tensors with ``index``."""
        raise NotImplementedError

    def train_size(self) -> int:
        """How many training items an epoch permutes (examples; QA: context windows)."""
        return len(self.data.train)

    def batch_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
        """(loss, examples) of one training batch (``index`` already removed)."""
        raise NotImplementedError

    def evaluate(self, split: Any, tick: Tick | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """(metrics of a whole split, one row per example for predictions.jsonl), gathered over ranks."""
        raise NotImplementedError

    # ---- the loop ----------------------------------------------------------------------------------

    def _emit(self, **fields: Any) -> None:
        if self.progress is not None:
            self.progress(ProgressEvent(seed=self.seed, epochs=self.config.epochs, **fields))

    def ticker(self, split: str, epoch: int = 0) -> Tick:
        """An evaluation's progress, reported as ``eval_step`` events (a front end keeps its ETA moving)."""
        return lambda done, total: self._emit(kind="eval_step", epoch=epoch, step=done, steps=total, split=split)

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
        """The selection metric of a validation result, signed so that higher is better."""
        value = float(validation[self.selection.key])
        return value if self.selection.higher_is_better else -value

    def fit(self, metrics: dict[str, Any], state: TrainState) -> dict[str, Any]:
        """Train from ``state.epoch_done + 1`` to ``config.epochs``, then test the best epoch."""
        self._emit(kind="run_start", run_dir=str(self.run_dir))
        weights = self.run_dir / run_files.CHECKPOINT_DIR / run_files.WEIGHTS
        for epoch in range(state.epoch_done + 1, self.config.epochs + 1):
            start = time.perf_counter()
            train_loss, rate = self.train_epoch(epoch)
            validation, rows = self.evaluate(self.data.validation, self.ticker("validation", epoch))
            score = self.selection_score(validation)
            improved = score > state.best_score
            if improved:
                state.best_epoch, state.best_score = epoch, score
            state.epoch_done = epoch
            record = {"epoch": epoch, "train_loss": train_loss, "examples_per_second": rate,
                      "seconds": time.perf_counter() - start, "validation": validation, "best": improved}
            metrics["epochs"] = [e for e in metrics["epochs"] if e["epoch"] < epoch] + [record]
            metrics["best_epoch"] = state.best_epoch
            if self.ctx.is_main:
                tensors = self.model.trainable_state_dict()
                if improved:
                    ckpt.save_trainable(weights, tensors, {"epoch": str(epoch), "format": "pifi-trainable-1"})
                    run_files.write_jsonl(self.run_dir / run_files.PREDICTIONS, _tagged("validation", rows))
                ckpt.save_state(self.run_dir, tensors, self.optimizer,
                                {**state.__dict__, "scaler": self.scaler.state_dict()})
                run_files.write_json(self.run_dir / run_files.METRICS, metrics)
            dist.barrier(self.ctx)
            self._emit(kind="epoch_end", epoch=epoch, loss=train_loss, examples_per_second=rate, metrics=record)
        return self.finish(metrics, state)

    def finish(self, metrics: dict[str, Any], state: TrainState) -> dict[str, Any]:
        """Reload the best epoch's tensors and evaluate every test split with them."""
        weights = self.run_dir / run_files.CHECKPOINT_DIR / run_files.WEIGHTS
        ckpt.load_into(self.model, ckpt.load_tensors(weights))
        tests = {"test": self.data.test} if self.data.test is not None and len(self.data.test) else {}
        tests.update({f"extra_test:{name}": split for name, split in (self.data.extra_tests or {}).items()})
        results, rows = {}, []
        for name, split in tests.items():  # the best epoch on every test set (--extra-test: Table 3)
            results[name], split_rows = self.evaluate(split, self.ticker(name))
            rows += _tagged(name, split_rows)
        best = next(e for e in metrics["epochs"] if e["epoch"] == state.best_epoch)
        metrics["final"] = {"best_epoch": state.best_epoch, "validation": best["validation"],
                            "test": results.pop("test", None)}
        if results:
            metrics["final"]["extra_tests"] = {name.split(":", 1)[1]: value for name, value in results.items()}
        metrics["complete"] = True
        if self.ctx.is_main:
            path = self.run_dir / run_files.PREDICTIONS
            kept = [r for r in run_files.read_jsonl(path) if r.get("split") == "validation"] if path.is_file() else []
            run_files.write_jsonl(path, kept + rows)
            run_files.write_json(self.run_dir / run_files.METRICS, metrics)
        dist.barrier(self.ctx)
        self._emit(kind="run_end", epoch=state.best_epoch, metrics=metrics["final"])
        return metrics

    def restore(self) -> TrainState:
        """Load ``state/`` (model, optimizer, RNG, counters) written after the last finished epoch."""
        counters = ckpt.load_state(self.run_dir, self.model, self.optimizer)
        scaler = counters.pop("scaler", None)
        if scaler:
            self.scaler.load_state_dict(scaler)
        best = counters.get("best_score", counters.get("best_accuracy", -float("inf")))  # older runs: accuracy
        return TrainState(int(counters["epoch_done"]), int(counters["best_epoch"]), float(best))


def _tagged(split: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"split": split, **row} for row in rows]
