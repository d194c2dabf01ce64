"""``pifi train`` as a library call: validate everything, then train each seed into its run directory.

Nothing is written until every input (artifact, SLM, data, device, output dir) has
been checked, so a bad option never leaves a half-made directory behind. One seed
writes a run directory at ``output_dir``; ``seeds > 1`` writes ``output_dir/seed-<s>/``
for each seed plus ``sweep.json`` (options, then the per-seed summary).
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from datetime import datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any, Callable

import torch

from pifi_extract.errors import ArtifactError, ConfigError

from . import run_files
from . import distributed as dist
from .ablations import apply_lora, randomize_layer
from .config import ProgressCallback, TrainConfig, resolve_precision
from .clean import clean_texts, resolve_cleaning
from .data import TaskData, load_local_task
from .extra_tests import load_extra_test, stratified_fraction
from .layer_ref import describe_artifacts, layer_record, load_frozen_layers, recorded_layers
from .model import PifiModel
from .slm import load_slm, load_slm_config, load_tokenizer
from .stats import mean_std
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


def load_task(config: TrainConfig, seed: int | None = None) -> TaskData:
    """The run's data (built-in task or local files), split with ``config.split_seed`` (the same split for
    every seed, as the paper; ``seed`` is kept for callers), cleaned (--clean-text), reduced by
    --train-fraction and --max-*-samples, plus the --extra-test sets."""
    split_seed = config.split_seed
    if config.task is not None:
        data = load_builtin_task(config.task, split_seed)
    else:
        data = load_local_task(
            Path(config.train_file), Path(config.validation_file) if config.validation_file else None,
            Path(config.test_file) if config.test_file else None, config.text_column, config.text_pair_column,
            config.label_column, config.validation_fraction, split_seed)
    data.extra_tests = {ref: load_extra_test(ref, config, data.label_names) for ref in config.extra_test or []}
    if config.train_fraction is not None:
        data.train = stratified_fraction(data.train, config.train_fraction, split_seed)
    if config.max_train_samples:
        data.train = data.train.subset(range(min(config.max_train_samples, len(data.train))))
    if config.max_eval_samples:
        data.validation = data.validation.subset(range(min(config.max_eval_samples, len(data.validation))))
        first_n = lambda e: e.subset(range(min(config.max_eval_samples, len(e))))  # noqa: E731
        if data.test is not None:
            data.test = first_n(data.test)
        data.extra_tests = {name: first_n(e) for name, e in data.extra_tests.items()}
    cleaning = resolve_cleaning(config.clean_text, config.task)
    for examples in [data.train, data.validation, data.test, *data.extra_tests.values()]:
        if examples is not None:
            examples.texts = clean_texts(examples.texts, cleaning)
            if examples.pairs is not None:
                examples.pairs = clean_texts(examples.pairs, cleaning)
    data.source = {**data.source, "clean_text": cleaning, "split_seed": split_seed}
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
        run_files.RUN_MARKER: 1, "seed": seed, "options": config.to_dict(),
        "layer": layer_record(layer) if layer is not None else None,
        "slm": {"name": config.slm, "model_type": slm_config.model_type, "hidden_size": slm_config.hidden_size,
                "pooling": model.pooling},
        "data": data.source, "labels": data.label_names,
        "text_pairs": getattr(data.train, "pairs", None) is not None,
        "num_examples": {"train": len(data.train), "validation": len(data.validation),
                         "test": len(data.test) if data.test is not None else 0,
                         **{f"extra_test:{name}": len(e) for name, e in getattr(data, "extra_tests", {}).items()}},
        # --train-layer: the layer trained, so checkpoint/ holds its tensors (predict does not need the artifact's)
        "checkpoint_holds_layer": model.options.train_layer,
        "parameters": {"trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
                       "frozen": sum(p.numel() for p in model.parameters() if not p.requires_grad)},
        "device": str(ctx.device), "world_size": ctx.world_size,
        "precision": {**precision.describe(), **({"layer_dtype": "float32"} if config.train_layer else {})},
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
    path = run_dir / run_files.METRICS
    if not path.is_file():
        return None
    metrics = run_files.read_json(path)
    return metrics if metrics.get("complete") and len(metrics.get("epochs", [])) >= epochs else None


def build_classifier(slm: Any, data: TaskData, config: TrainConfig, frozen: Any) -> PifiModel:
    return PifiModel(slm, data.num_labels, config.model_options(), frozen)


@dataclass(frozen=True)
class Pipeline:
    """What a task family plugs into the shared run flow (data, model, trainer, summary metrics)."""

    load_data: Callable[[TrainConfig, int], Any] = load_task
    build_model: Callable[[Any, Any, TrainConfig, Any], Any] = build_classifier
    trainer: type[Trainer] = Trainer
    summary_keys: tuple[str, ...] = ("accuracy", "macro_f1")


CLASSIFICATION = Pipeline()


def _train_seed(inputs: Inputs, seed: int, data: TaskData, run_dir: Path, resume: bool,
                progress: ProgressCallback | None, pipeline: Pipeline = CLASSIFICATION) -> RunResult:
    config, ctx, layer = inputs.config, inputs.ctx, inputs.layer
    if resume and (done := _finished(run_dir, config.epochs)) is not None:
        return RunResult(run_dir, seed, done)
    if resume and layer is not None and (run_dir / run_files.CONFIG).is_file():
        recorded = recorded_layers(run_files.read_json(run_dir / run_files.CONFIG))
        if len(recorded) != len(layer):
            raise ArtifactError(f"--resume: this run started with {len(recorded)} layer artifact(s), not {len(layer)}")
        for identity, entry in zip(layer, recorded):
            if entry.get("sha256") != identity.sha256:
                raise ArtifactError(f"--resume: the artifact {identity.path} is not the one this run started with "
                                    f"(sha256 {identity.sha256[:12]}… vs {str(entry.get('sha256'))[:12]}…)")
    torch.manual_seed(seed)
    slm = load_slm(config.slm, inputs.slm_config, pretrained=config.slm_pretrained)
    model = build_model(config, slm, layer, ctx.device, inputs.precision.layer_dtype, seed,
                        lambda slm, frozen: pipeline.build_model(slm, data, config, frozen))
    trainer = pipeline.trainer(model, data, inputs.tokenizer, config, seed, ctx, inputs.precision, run_dir, progress)
    state, metrics = TrainState(), {"seed": seed, "labels": data.label_names, "epochs": [], "best_epoch": 0}
    if resume and (run_dir / run_files.STATE_DIR / "trainer.json").is_file():
        state = trainer.restore()
        metrics = run_files.read_json(run_dir / run_files.METRICS)
        metrics.pop("final", None)
        metrics["complete"] = False
    elif ctx.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        saved = inputs.tokenizer.save_pretrained(run_dir / run_files.CHECKPOINT_DIR)
        inputs.slm_config.save_pretrained(run_dir / run_files.CHECKPOINT_DIR)
        record = run_config(config, seed, data, layer, inputs.slm_config, model, ctx, inputs.precision)
        record["checkpoint_files"] = sorted({Path(p).name for p in saved} | {run_files.CONFIG})
        run_files.write_json(run_dir / run_files.CONFIG, record)
    dist.barrier(ctx)
    if state.epoch_done >= config.epochs:
        return RunResult(run_dir, seed, trainer.finish(metrics, state))
    return RunResult(run_dir, seed, trainer.fit(metrics, state))


def build_layer(config: TrainConfig, layer: Any, device: torch.device, layer_dtype: torch.dtype, seed: int) -> Any:
    """The run's LLM layer(s) with their ablations: a random layer (--layer-init random, seeded by ``seed``),
    a trainable fp32 layer (--train-layer); None for --method base."""
    if layer is None:
        return None
    dtype = torch.float32 if config.train_layer else layer_dtype  # a trained layer keeps fp32 masters
    if config.layer_init == "random":  # initialised on the CPU in fp32: the same layer on every device
        frozen = randomize_layer(load_frozen_layers(layer, torch.device("cpu"), torch.float32), seed)
        return frozen.to(device=device, dtype=dtype)
    return load_frozen_layers(layer, device, dtype)


def build_model(config: TrainConfig, slm: Any, layer: Any, device: torch.device, layer_dtype: torch.dtype,
                seed: int, make: Callable[[Any, Any], Any]) -> Any:
    """``make(slm, layer)`` (the family's model) around the run's layer (:func:`build_layer`), with LoRA
    adapters on the SLM for --method lora."""
    model = make(slm, build_layer(config, layer, device, layer_dtype, seed))
    if config.method == "lora":
        apply_lora(model, config.lora_r, config.lora_alpha, config.lora_dropout, config.lora_targets)
    return model.to(device)


def summarize_seeds(results: list[RunResult], keys: tuple[str, ...] = ("accuracy", "macro_f1")) -> dict[str, Any]:
    """Mean and (sample) standard deviation of the final metrics over seeds."""
    summary: dict[str, Any] = {"seeds": [r.seed for r in results]}
    for split in ("validation", "test"):
        for key in keys:
            values = [r.metrics["final"][split][key] for r in results if r.metrics["final"].get(split)]
            if values:
                mean, std = mean_std(values)
                summary[f"{split}_{key}"] = {"mean": mean, "std": std, "values": values}
    extra_names = sorted({name for r in results for name in r.metrics["final"].get("extra_tests", {})})
    for name in extra_names:  # --extra-test sets: accuracy over seeds
        values = [r.metrics["final"]["extra_tests"][name]["accuracy"] for r in results
                  if name in r.metrics["final"].get("extra_tests", {})]
        mean, std = mean_std(values)
        summary.setdefault("extra_tests", {})[name] = {"accuracy": {"mean": mean, "std": std, "values": values}}
    return summary


def run_training(config: TrainConfig, progress: ProgressCallback | None = None,
                 resume_dir: Path | None = None) -> list[RunResult]:
    """Train ``config.seeds`` seeds (starting at ``config.seed``); ``resume_dir`` continues a run.

    Dispatches on the run's family (classification, qa, seq2seq: :mod:`pifi_train.families`)."""
    from .families import runner_for
    from .tracking import TrackingCallback, with_trackers

    progress = with_trackers(progress, config.report_to)  # --report-to: trackers fed by the progress events
    try:
        return runner_for(config.family())(config, progress, resume_dir)
    finally:
        if isinstance(progress, TrackingCallback):
            progress.close()


def run_classification(config: TrainConfig, progress: ProgressCallback | None = None,
                       resume_dir: Path | None = None) -> list[RunResult]:
    """The sequence-classification pipeline (the paper's Table 1 tasks)."""
    return run_pipeline(config, progress, resume_dir, CLASSIFICATION)


def run_pipeline(config: TrainConfig, progress: ProgressCallback | None, resume_dir: Path | None,
                 pipeline: Pipeline) -> list[RunResult]:
    """Validate every input, then train each seed into its run directory (shared by the task families)."""
    config.validate()
    resume = resume_dir is not None
    ctx = dist.setup(config.device)
    created, out = False, Path(".")
    try:
        # fail fast, cheapest checks first: output dir, artifact (missing, not one, hash), data, then the SLM
        out = Path(resume_dir) if resume else Path(config.output_dir or dist.broadcast(ctx, default_output_dir(config)))
        run_files.check_output_dir(out, config.overwrite, resume)
        artifact = describe_artifacts(config.layer_artifact) if config.method == "pifi" else None
        seeds = [config.seed + i for i in range(config.seeds)]
        first = pipeline.load_data(config, seeds[0])
        inputs = Inputs(config, ctx, resolve_precision(config.precision, ctx.device), artifact,
                        load_slm_config(config.slm), load_tokenizer(config.slm))
        dist.barrier(ctx)
        created = ctx.is_main and not resume and not out.exists()
        if ctx.is_main and not resume:
            run_files.prepare_output_dir(out, config.overwrite)
            if len(seeds) > 1:
                run_files.write_json(out / run_files.SWEEP, {"pifi_sweep": 1, "options": config.to_dict(), "seeds": seeds,
                                                   "runs": [f"seed-{s}" for s in seeds]})
        dist.barrier(ctx)
        results = []
        for i, seed in enumerate(seeds):
            run_dir = out if len(seeds) == 1 else out / f"seed-{seed}"
            data = first  # the split does not depend on the seed (--split-seed)
            results.append(_train_seed(inputs, seed, data, run_dir, resume, progress, pipeline))
        if len(seeds) > 1 and ctx.is_main:
            sweep = run_files.read_json(out / run_files.SWEEP)
            run_files.write_json(out / run_files.SWEEP, {**sweep, "options": config.to_dict(),
                                               "summary": summarize_seeds(results, pipeline.summary_keys)})
        return results
    except BaseException:
        if created:
            run_files.remove_if_empty(out)  # a failed run leaves no empty run folder (never anything it wrote into)
        raise
    finally:
        dist.teardown(ctx)


def resume_training(run_dir: Path, epochs: int | None = None, progress: ProgressCallback | None = None
                    ) -> list[RunResult]:
    """Continue an interrupted run (or sweep) from its last finished epoch; ``epochs`` may extend it."""
    run_dir = Path(run_dir)
    run_files.check_output_dir(run_dir, overwrite=False, resume=True)
    sweep = run_dir / run_files.SWEEP
    options = run_files.read_json(sweep if sweep.is_file() else run_dir / run_files.CONFIG)["options"]
    config = TrainConfig.from_dict(options)
    if epochs is not None:
        config.epochs = epochs
    return run_training(config, progress, resume_dir=run_dir)
