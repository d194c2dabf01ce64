"""``pifi train`` as a library call: validate everything, then train each seed into its run directory.

Nothing is written until every input (artifact, SLM, data, device, output dir) has
been checked, so a bad option never leaves a half-made directory behind. One seed
writes a run directory at ``output_dir``; ``seeds > 1`` writes ``output_dir/seed-<s>/``
for each seed plus ``sweep.json`` (options, then the per-seed summary).
"""

from __future__ import annotations

import platform
import statistics
from dataclasses import dataclass
from datetime import datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import torch

from pifi_extract.errors import ArtifactError, ConfigError

from . import checkpoint as ckpt
from . import distributed as dist
from .config import ProgressCallback, TrainConfig, resolve_precision
from .data import TaskData, load_local_task
from .layer_ref import describe_artifacts, layer_record, load_frozen_layers, recorded_layers
from .model import PifiModel
from .slm import load_slm, load_slm_config, load_tokenizer
from .tasks import load_builtin_task
from .trainer import Trainer, TrainState


@dataclass
class RunResult:
    """One finished seed."""

    run_dir: Path
    seed: int
    metrics: dict[str, Any]


def versions() -> dict[str, str]:
    def version(name: str) -> str:
        try:
            return importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            return "unknown"

    return {"pifi": version("pifi"), "torch": torch.__version__, "transformers": version("transformers"),
            "python": platform.python_version()}


def load_task(config: TrainConfig, seed: int) -> TaskData:
    """The run's data (built-in task or local files), truncated by --max-*-samples."""
    if config.task is not None:
        data = load_builtin_task(config.task, seed)
    else:
        data = load_local_task(
            Path(config.train_file), Path(config.validation_file) if config.validation_file else None,
            Path(config.test_file) if config.test_file else None, config.text_column, config.text_pair_column,
            config.label_column, config.validation_fraction, seed)
    if config.max_train_samples:
        data.train = data.train.subset(range(min(config.max_train_samples, len(data.train))))
    if config.max_eval_samples:
        data.validation = data.validation.subset(range(min(config.max_eval_samples, len(data.validation))))
        if data.test is not None:
            data.test = data.test.subset(range(min(config.max_eval_samples, len(data.test))))
    if len(data.train) < config.batch_size:
        raise ConfigError(f"the training set has {len(data.train)} examples, fewer than one batch "
                          f"(--batch-size {config.batch_size}; the last partial batch is dropped)")
    if not len(data.validation):
        raise ConfigError("the validation split is empty")
    return data


def default_output_dir(config: TrainConfig) -> Path:
    task = config.task or Path(config.train_file or "data").stem
    return Path("runs") / f"{task}-{config.method}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def run_config(config: TrainConfig, seed: int, data: TaskData, layer: Any, slm_config: Any, model: PifiModel,
               ctx: dist.DistContext, precision: Any) -> dict[str, Any]:
    """What config.json records for one seed."""
    return {
        ckpt.RUN_MARKER: 1, "seed": seed, "options": config.to_dict(),
        "layer": layer_record(layer) if layer is not None else None,
        "slm": {"name": config.slm, "model_type": slm_config.model_type, "hidden_size": slm_config.hidden_size,
                "pooling": model.pooling},
        "data": data.source, "labels": data.label_names, "text_pairs": data.train.pairs is not None,
        "num_examples": {"train": len(data.train), "validation": len(data.validation),
                         "test": len(data.test) if data.test is not None else 0},
        "parameters": {"trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
                       "frozen": sum(p.numel() for p in model.parameters() if not p.requires_grad)},
        "device": str(ctx.device), "world_size": ctx.world_size, "precision": precision.describe(),
        "versions": versions(), "created": datetime.now().isoformat(timespec="seconds"),
    }


@dataclass
class Inputs:
    """What every seed shares, validated before anything is written."""

    config: TrainConfig
    ctx: dist.DistContext
    precision: Any
    layer: Any  # list[LayerIdentity] (in plugging order) | None
    slm_config: Any
    tokenizer: Any


def _finished(run_dir: Path, epochs: int) -> dict[str, Any] | None:
    """The saved metrics of a run that already completed ``epochs`` epochs, else None."""
    path = run_dir / ckpt.METRICS
    if not path.is_file():
        return None
    metrics = ckpt.read_json(path)
    return metrics if metrics.get("complete") and len(metrics.get("epochs", [])) >= epochs else None


def _train_seed(inputs: Inputs, seed: int, data: TaskData, run_dir: Path, resume: bool,
                progress: ProgressCallback | None) -> RunResult:
    config, ctx, layer = inputs.config, inputs.ctx, inputs.layer
    if resume and (done := _finished(run_dir, config.epochs)) is not None:
        return RunResult(run_dir, seed, done)
    if resume and layer is not None and (run_dir / ckpt.CONFIG).is_file():
        recorded = recorded_layers(ckpt.read_json(run_dir / ckpt.CONFIG))
        if len(recorded) != len(layer):
            raise ArtifactError(f"--resume: this run started with {len(recorded)} layer artifact(s), not {len(layer)}")
        for identity, entry in zip(layer, recorded):
            if entry.get("sha256") != identity.sha256:
                raise ArtifactError(f"--resume: the artifact {identity.path} is not the one this run started with "
                                    f"(sha256 {identity.sha256[:12]}… vs {str(entry.get('sha256'))[:12]}…)")
    torch.manual_seed(seed)
    slm = load_slm(config.slm, inputs.slm_config, pretrained=config.slm_pretrained)
    frozen = load_frozen_layers(layer, ctx.device, inputs.precision.layer_dtype) if layer is not None else None
    model = PifiModel(slm, data.num_labels, config.model_options(), frozen).to(ctx.device)
    trainer = Trainer(model, data, inputs.tokenizer, config, seed, ctx, inputs.precision, run_dir, progress)
    state, metrics = TrainState(), {"seed": seed, "labels": data.label_names, "epochs": [], "best_epoch": 0}
    if resume and (run_dir / ckpt.STATE_DIR / "trainer.json").is_file():
        state = trainer.restore()
        metrics = ckpt.read_json(run_dir / ckpt.METRICS)
        metrics.pop("final", None)
        metrics["complete"] = False
    elif ctx.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        ckpt.write_json(run_dir / ckpt.CONFIG, run_config(config, seed, data, layer, inputs.slm_config, model, ctx,
                                                          inputs.precision))
        inputs.tokenizer.save_pretrained(run_dir / ckpt.CHECKPOINT_DIR)
        inputs.slm_config.save_pretrained(run_dir / ckpt.CHECKPOINT_DIR)
    dist.barrier(ctx)
    if state.epoch_done >= config.epochs:
        return RunResult(run_dir, seed, trainer.finish(metrics, state))
    return RunResult(run_dir, seed, trainer.fit(metrics, state))


def summarize_seeds(results: list[RunResult]) -> dict[str, Any]:
    """Mean and (sample) standard deviation of the final metrics over seeds."""
    summary: dict[str, Any] = {"seeds": [r.seed for r in results]}
    for split in ("validation", "test"):
        for key in ("accuracy", "macro_f1"):
            values = [r.metrics["final"][split][key] for r in results if r.metrics["final"].get(split)]
            if values:
                summary[f"{split}_{key}"] = {"mean": statistics.fmean(values),
                                             "std": statistics.stdev(values) if len(values) > 1 else 0.0,
                                             "values": values}
    return summary


def run_training(config: TrainConfig, progress: ProgressCallback | None = None,
                 resume_dir: Path | None = None) -> list[RunResult]:
    """Train ``config.seeds`` seeds (starting at ``config.seed``); ``resume_dir`` continues a run.

    Dispatches on the run's family (classification, qa, seq2seq: :mod:`pifi_train.families`)."""
    from .families import runner_for

    return runner_for(config.family())(config, progress, resume_dir)


def run_classification(config: TrainConfig, progress: ProgressCallback | None = None,
                       resume_dir: Path | None = None) -> list[RunResult]:
    """The sequence-classification pipeline (the paper's Table 1 tasks)."""
    config.validate()
    resume = resume_dir is not None
    ctx = dist.setup(config.device)
    created, out = False, Path(".")
    try:
        # fail fast, cheapest checks first: output dir, artifact (missing, not one, hash), data, then the SLM
        out = Path(resume_dir) if resume else Path(config.output_dir or dist.broadcast(ctx, default_output_dir(config)))
        ckpt.check_output_dir(out, config.overwrite, resume)
        artifact = describe_artifacts(config.layer_artifact) if config.method == "pifi" else None
        seeds = [config.seed + i for i in range(config.seeds)]
        first = load_task(config, seeds[0])
        inputs = Inputs(config, ctx, resolve_precision(config.precision, ctx.device), artifact,
                        load_slm_config(config.slm), load_tokenizer(config.slm))
        dist.barrier(ctx)
        created = ctx.is_main and not resume and not out.exists()
        if ctx.is_main and not resume:
            ckpt.create_output_dir(out, config.overwrite)
            if len(seeds) > 1:
                ckpt.write_json(out / ckpt.SWEEP, {"pifi_sweep": 1, "options": config.to_dict(), "seeds": seeds,
                                                   "runs": [f"seed-{s}" for s in seeds]})
        dist.barrier(ctx)
        results = []
        for i, seed in enumerate(seeds):
            run_dir = out if len(seeds) == 1 else out / f"seed-{seed}"
            data = first if i == 0 else load_task(config, seed)
            results.append(_train_seed(inputs, seed, data, run_dir, resume, progress))
        if len(seeds) > 1 and ctx.is_main:
            sweep = ckpt.read_json(out / ckpt.SWEEP)
            ckpt.write_json(out / ckpt.SWEEP, {**sweep, "options": config.to_dict(),
                                               "summary": summarize_seeds(results)})
        return results
    except BaseException:
        if created:
            _remove_if_empty(out)  # a failed run leaves no empty run folder (never anything it wrote into)
        raise
    finally:
        dist.teardown(ctx)


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass


def resume_training(run_dir: Path, epochs: int | None = None, progress: ProgressCallback | None = None
                    ) -> list[RunResult]:
    """Continue an interrupted run (or sweep) from its last finished epoch; ``epochs`` may extend it."""
    run_dir = Path(run_dir)
    ckpt.check_output_dir(run_dir, overwrite=False, resume=True)
    sweep = run_dir / ckpt.SWEEP
    options = ckpt.read_json(sweep if sweep.is_file() else run_dir / ckpt.CONFIG)["options"]
    config = TrainConfig.from_dict(options)
    if epochs is not None:
        config.epochs = epochs
    return run_training(config, progress, resume_dir=run_dir)
