"""Experiment trackers (``--report-to``) as progress callbacks: TensorBoard, Weights & Biases, MLflow.

The words and meaning are those of transformers' ``TrainingArguments.report_to``: ``none``, ``all``
(every installed tracker) or a list of names. Each tracker consumes the trainer's
:class:`~pifi_train.config.ProgressEvent` stream (rank 0 only: the trainer emits nothing elsewhere) and logs

- per step: ``train/loss``, ``train/learning_rate``, ``train/examples_per_second``;
- per epoch: ``train/epoch_loss`` and ``eval/<metric>``: the run's family's metrics (classification
  accuracy and macro_f1; QA exact_match and f1; seq2seq bleu, chrf, rouge..., their paper variants) and loss;
- at the end: ``test/<metric>`` (and ``extra_test/<name>/<metric>``) and the best epoch;
- once per run: the run's ``config.json`` (options, the layer artifact's reference and sha256).

A seed is one tracker run (its ``run_start`` opens it, ``run_end`` closes it). Nothing is sent anywhere by
pifi itself: TensorBoard writes ``<run_dir>/tensorboard/``; wandb and mlflow follow their own environment
(``WANDB_MODE=offline``, ``WANDB_PROJECT``, ``MLFLOW_TRACKING_URI``: local ``./mlruns`` by default); with
``HF_HUB_OFFLINE=1`` and no ``WANDB_MODE``, wandb logs offline.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import Any, Callable, Sequence

from pifi_extract.errors import ConfigError

from .config import ProgressCallback, ProgressEvent
from .families.spec import Family

# name -> (module that must be importable, the pifi extra that installs it)
TRACKERS: dict[str, tuple[str, str]] = {
    "tensorboard": ("torch.utils.tensorboard", "tensorboard"),
    "wandb": ("wandb", "wandb"),
    "mlflow": ("mlflow", "mlflow"),
}


def _installed(module: str) -> bool:
    try:
        if module == "torch.utils.tensorboard":  # torch ships the shim; it needs the tensorboard package
            return importlib.util.find_spec("tensorboard") is not None
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def resolve_report_to(report_to: str | Sequence[str] | None) -> list[str]:
    """The tracker names of ``report_to`` (``none`` -> [], ``all`` -> the installed ones); a named one that is
    not installed is refused with the extra that installs it."""
    words = [report_to] if isinstance(report_to, str) else list(report_to or [])
    words = [w.strip().lower() for word in words for w in str(word).split(",") if w.strip()]
    valid = ("none", "all", *TRACKERS)
    for word in words:
        if word not in valid:
            raise ConfigError(f"--report-to {word!r} is not one of {', '.join(valid)}")
    if not words or words == ["none"]:
        return []
    if "none" in words:
        raise ConfigError("--report-to none cannot be combined with a tracker")
    if "all" in words:
        return [name for name, (module, _) in TRACKERS.items() if _installed(module)]
    names = list(dict.fromkeys(words))
    for name in names:
        module, extra = TRACKERS[name]
        if not _installed(module):
            raise ConfigError(f"--report-to {name} needs the {module.split('.')[-1]} package",
                              f"pip install 'pifi[{extra}]'")
    return names


class Tracker:
    """One tracker backend: a run per seed, scalars at a global step, a config record."""

    def start(self, run_dir: Path, seed: int, record: dict[str, Any]) -> None: ...

    def log(self, values: dict[str, float], step: int) -> None: ...

    def finish(self, summary: dict[str, float]) -> None: ...


class TensorBoardTracker(Tracker):
    def start(self, run_dir: Path, seed: int, record: dict[str, Any]) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"))
        self.writer.add_text("config", "```json\n" + json.dumps(record, indent=2, default=str) + "\n```")

    def log(self, values: dict[str, float], step: int) -> None:
        for key, value in values.items():
            self.writer.add_scalar(key, value, step)

    def finish(self, summary: dict[str, float]) -> None:
        for key, value in summary.items():
            self.writer.add_scalar(key, value, 0)
        self.writer.close()


class WandbTracker(Tracker):
    def start(self, run_dir: Path, seed: int, record: dict[str, Any]) -> None:
        import wandb

        # WANDB_MODE wins; without it, an offline Hugging Face setup (HF_HUB_OFFLINE=1) logs offline too
        offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0") and not os.environ.get("WANDB_MODE")
        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT", "pifi"), name=f"{run_dir.name}-seed{seed}",
                              dir=str(run_dir), config=record, reinit=True, **({"mode": "offline"} if offline else {}))

    def log(self, values: dict[str, float], step: int) -> None:
        self.run.log(values, step=step)

    def finish(self, summary: dict[str, float]) -> None:
        self.run.summary.update(summary)
        self.run.finish()


class MlflowTracker(Tracker):
    def start(self, run_dir: Path, seed: int, record: dict[str, Any]) -> None:
        import mlflow

        self.mlflow = mlflow
        mlflow.start_run(run_name=f"{run_dir.name}-seed{seed}")
        options = record.get("options", {})
        mlflow.log_params({k: str(v)[:250] for k, v in options.items()})
        layers = record.get("layer")
        for i, layer in enumerate(layers if isinstance(layers, list) else [layers] if layers else []):
            mlflow.set_tag(f"layer{i}.sha256", str(layer.get("sha256")))
            mlflow.set_tag(f"layer{i}.reference", str(layer.get("reference") or layer.get("path")))
        mlflow.log_dict(record, "config.json")

    def log(self, values: dict[str, float], step: int) -> None:
        self.mlflow.log_metrics(values, step=step)

    def finish(self, summary: dict[str, float]) -> None:
        self.mlflow.log_metrics(summary)
        self.mlflow.end_run()


BACKENDS: dict[str, Callable[[], Tracker]] = {
    "tensorboard": TensorBoardTracker, "wandb": WandbTracker, "mlflow": MlflowTracker}


def _split_values(prefix: str, split: dict[str, Any] | None, keys: Sequence[str]) -> dict[str, float]:
    return {f"{prefix}/{k}": float(split[k]) for k in keys if split and split.get(k) is not None}


class TrackingCallback:
    """A :data:`ProgressCallback` that forwards each event to ``inner`` and logs it to every tracker."""

    def __init__(self, names: Sequence[str], inner: ProgressCallback | None, family: Family) -> None:
        self.names, self.inner = list(names), inner
        self.keys = (*family.metrics.summary_keys(), "loss")  # what the family reports
        self.active: list[Tracker] = []
        self.steps_per_epoch = 0

    def __call__(self, event: ProgressEvent) -> None:
        if self.inner is not None:
            self.inner(event)
        if event.kind == "run_start":
            self._start(event)
        elif event.kind == "epoch_start":
            self.steps_per_epoch = event.steps
        elif event.kind == "step" and event.loss is not None:
            values = {"train/loss": event.loss, "train/examples_per_second": event.examples_per_second or 0.0}
            if event.lr is not None:
                values["train/learning_rate"] = event.lr
            self._log(values, (event.epoch - 1) * self.steps_per_epoch + event.step)
        elif event.kind == "epoch_end":
            record = event.metrics or {}
            values = {"train/epoch_loss": float(event.loss or 0.0), "train/epoch": float(event.epoch),
                      "train/epoch_examples_per_second": float(event.examples_per_second or 0.0),
                      **_split_values("eval", record.get("validation"), self.keys)}
            self._log(values, event.epoch * self.steps_per_epoch)
        elif event.kind == "run_end":
            final = event.metrics or {}
            summary = {"best_epoch": float(final.get("best_epoch", event.epoch)),
                       **_split_values("final_eval", final.get("validation"), self.keys),
                       **_split_values("test", final.get("test"), self.keys)}
            for name, split in (final.get("extra_tests") or {}).items():
                summary.update(_split_values(f"extra_test/{name}", split, self.keys))
            for tracker in self.active:
                tracker.finish(summary)
            self.active = []

    def _start(self, event: ProgressEvent) -> None:
        self.close()
        run_dir = Path(event.run_dir or ".")
        path = run_dir / "config.json"
        record = json.loads(path.read_text()) if event.run_dir and path.is_file() else {}
        for name in self.names:
            tracker = BACKENDS[name]()
            tracker.start(run_dir, event.seed, record)
            self.active.append(tracker)

    def _log(self, values: dict[str, float], step: int) -> None:
        for tracker in self.active:
            tracker.log(values, step)

    def close(self) -> None:
        """Finish any tracker run left open (a run that failed before ``run_end``)."""
        for tracker in self.active:
            tracker.finish({})
        self.active = []


def with_trackers(progress: ProgressCallback | None, report_to: str | Sequence[str] | None, family: Family
                  ) -> ProgressCallback | None:
    """``progress`` plus the trackers of ``report_to`` (unchanged when there are none), logging ``family``'s
    metrics."""
    names = resolve_report_to(report_to)
    return TrackingCallback(names, progress, family) if names else progress
