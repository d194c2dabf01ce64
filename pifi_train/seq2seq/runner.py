"""``pifi train`` for the seq2seq family (multi30k, cnn_dailymail, --task-type seq2seq): validate, then train.

Same contract as :func:`pifi_train.runner.run_classification`: every input is checked before
anything is written; one seed writes ``output_dir``, several write ``output_dir/seed-<s>/`` and
``sweep.json``; ``resume_dir`` continues a run from its last finished epoch.
"""

from __future__ import annotations

import statistics
from datetime import datetime
from pathlib import Path
from typing import Any

import torch

from pifi_extract.errors import ArtifactError, ConfigError

from .. import run_files
from .. import distributed as dist
from ..config import ProgressCallback, TrainConfig, resolve_precision
from ..layer_ref import describe_artifacts, layer_record, load_frozen_layers, recorded_layers
from ..runner import RunResult, _finished, default_output_dir, versions
from ..slm import load_tokenizer
from ..trainer import TrainState
from .data import TASKS, Seq2SeqData, load_builtin_pairs, load_local_pairs
from .model import Seq2SeqPifi, load_seq2seq_slm
from .trainer import SELECT_BY, Seq2SeqTrainer

T5_PREFIX_MODEL_TYPES = ("t5", "mt5", "umt5", "longt5")  # SLMs trained with task prefixes
METRIC_KEYS = ("bleu", "bleu_avg", "chrf", "rouge1", "rouge2", "rougeL", "rougeLsum", "loss")


def validate(config: TrainConfig) -> None:
    if config.select_by not in SELECT_BY:
        raise ConfigError(f"--select-by must be one of {', '.join(SELECT_BY)}, got {config.select_by!r}")
    for name in ("max_target_length", "num_beams", "max_new_tokens"):
        if getattr(config, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be at least 1")
    if config.task is not None and config.task not in TASKS:
        raise ConfigError(f"--task {config.task!r} is not a seq2seq task", f"seq2seq tasks: {', '.join(TASKS)}")
    config.validate()


def load_pairs(config: TrainConfig, seed: int) -> Seq2SeqData:
    if config.task is not None:
        data = load_builtin_pairs(config.task)
    else:
        data = load_local_pairs(Path(config.train_file), Path(config.validation_file) if config.validation_file
                                else None, Path(config.test_file) if config.test_file else None,
                                config.source_column, config.target_column, config.validation_fraction, seed)
    if config.max_train_samples:
        data.train = data.train.subset(range(min(config.max_train_samples, len(data.train))))
    if config.max_eval_samples:
        data.validation = data.validation.subset(range(min(config.max_eval_samples, len(data.validation))))
        if data.test is not None:
            data.test = data.test.subset(range(min(config.max_eval_samples, len(data.test))))
    if len(data.train) < config.batch_size:
        raise ConfigError(f"the training set has {len(data.train)} examples, fewer than one batch "
                          f"(--batch-size {config.batch_size})")
    if not len(data.validation):
        raise ConfigError("the validation split is empty")
    return data


def source_prefix(config: TrainConfig, data: Seq2SeqData, slm_config: Any) -> str:
    """--source-prefix, else the task's T5 prefix for a T5-family SLM, else none."""
    if config.source_prefix is not None:
        return config.source_prefix
    return data.t5_prefix if slm_config.model_type in T5_PREFIX_MODEL_TYPES else ""


def summarize_seeds(results: list[RunResult]) -> dict[str, Any]:
    """Mean and sample standard deviation of each final generation metric over seeds."""
    summary: dict[str, Any] = {"seeds": [r.seed for r in results]}
    for split in ("validation", "test"):
        for key in METRIC_KEYS:
            values = [r.metrics["final"][split][key] for r in results if (r.metrics["final"].get(split) or {})
                      .get(key) is not None]
            if values:
                summary[f"{split}_{key}"] = {"mean": statistics.fmean(values), "values": values,
                                             "std": statistics.stdev(values) if len(values) > 1 else 0.0}
    return summary


def _train_seed(config: TrainConfig, ctx: dist.DistContext, precision: Any, layer: Any, slm_config: Any,
                tokenizer: Any, seed: int, data: Seq2SeqData, run_dir: Path, resume: bool,
                progress: ProgressCallback | None) -> RunResult:
    if resume and (done := _finished(run_dir, config.epochs)) is not None:
        return RunResult(run_dir, seed, done)
    if resume and layer is not None and (run_dir / run_files.CONFIG).is_file():
        recorded = [entry.get("sha256") for entry in recorded_layers(run_files.read_json(run_dir / run_files.CONFIG))]
        if recorded != [identity.sha256 for identity in layer]:
            raise ArtifactError("--resume: the layer artifact(s) are not the ones this run started with")
    torch.manual_seed(seed)
    seq2seq = load_seq2seq_slm(config.slm, slm_config, pretrained=config.slm_pretrained)
    frozen = load_frozen_layers(layer, ctx.device, precision.layer_dtype) if layer is not None else None
    model = Seq2SeqPifi(seq2seq, frozen, config.method, config.attention, config.post_norm).to(ctx.device)
    prefix = source_prefix(config, data, slm_config)
    trainer = Seq2SeqTrainer(model, data, tokenizer, config, seed, ctx, precision, run_dir, progress, prefix)
    state, metrics = None, {"seed": seed, "epochs": [], "best_epoch": 0}
    if resume and (run_dir / run_files.STATE_DIR / "trainer.json").is_file():
        state = trainer.restore()
        metrics = run_files.read_json(run_dir / run_files.METRICS)
        metrics.pop("final", None)
        metrics["complete"] = False
    elif ctx.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        run_files.write_json(run_dir / run_files.CONFIG, {
            run_files.RUN_MARKER: 1, "family": "seq2seq", "seed": seed, "options": config.to_dict(),
            "layer": layer_record(layer) if layer is not None else None,
            "slm": {"name": config.slm, "model_type": slm_config.model_type, "hidden_size": slm_config.d_model},
            "source_prefix": prefix, "data": data.source,
            "num_examples": {"train": len(data.train), "validation": len(data.validation),
                             "test": len(data.test) if data.test is not None else 0},
            "parameters": {"trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
                           "frozen": sum(p.numel() for p in model.parameters() if not p.requires_grad)},
            "device": str(ctx.device), "world_size": ctx.world_size, "precision": precision.describe(),
            "versions": versions(), "created": datetime.now().isoformat(timespec="seconds")})
        tokenizer.save_pretrained(run_dir / run_files.CHECKPOINT_DIR)
        slm_config.save_pretrained(run_dir / run_files.CHECKPOINT_DIR)
    dist.barrier(ctx)
    state = state or TrainState()
    if state.epoch_done >= config.epochs:
        return RunResult(run_dir, seed, trainer.finish(metrics, state))
    return RunResult(run_dir, seed, trainer.fit(metrics, state))


def run_seq2seq(config: TrainConfig, progress: ProgressCallback | None = None,
                resume_dir: Path | None = None) -> list[RunResult]:
    """Train ``config.seeds`` seeds of a translation / summarization run."""
    from transformers import AutoConfig

    validate(config)
    from .metrics import _require

    _require()  # pifi[generation] present before anything is written
    resume = resume_dir is not None
    ctx = dist.setup(config.device)
    try:
        out = Path(resume_dir) if resume else Path(config.output_dir or dist.broadcast(ctx, default_output_dir(config)))
        run_files.check_output_dir(out, config.overwrite, resume)
        artifact = describe_artifacts(config.layer_artifact) if config.method == "pifi" else None
        seeds = [config.seed + i for i in range(config.seeds)]
        first = load_pairs(config, seeds[0])
        try:
            slm_config = AutoConfig.from_pretrained(config.slm, trust_remote_code=False)
        except (OSError, ValueError) as err:
            from ..slm import _translate

            raise _translate(config.slm, err) from err
        precision = resolve_precision(config.precision, ctx.device)
        tokenizer = load_tokenizer(config.slm)
        dist.barrier(ctx)
        if ctx.is_main and not resume:
            run_files.prepare_output_dir(out, config.overwrite)
            if len(seeds) > 1:
                run_files.write_json(out / run_files.SWEEP, {"pifi_sweep": 1, "options": config.to_dict(), "seeds": seeds,
                                                   "runs": [f"seed-{s}" for s in seeds]})
        dist.barrier(ctx)
        results = []
        for i, seed in enumerate(seeds):
            run_dir = out if len(seeds) == 1 else out / f"seed-{seed}"
            data = first if i == 0 else load_pairs(config, seed)
            results.append(_train_seed(config, ctx, precision, artifact, slm_config, tokenizer, seed, data, run_dir,
                                       resume, progress))
        if len(seeds) > 1 and ctx.is_main:
            sweep = run_files.read_json(out / run_files.SWEEP)
            run_files.write_json(out / run_files.SWEEP, {**sweep, "options": config.to_dict(),
                                               "summary": summarize_seeds(results)})
        return results
    finally:
        dist.teardown(ctx)
