"""``pifi train`` as a library call: ONE run flow for every task family.

validate → output dir → inputs (artifact, data, SLM config, tokenizer) → seeds → summary, with resume
and failure cleanup. Nothing is written until every input has been checked, so a bad option never
leaves a half-made directory behind. One seed writes a run directory at ``output_dir``; ``seeds > 1``
writes ``output_dir/seed-<s>/`` for each seed plus ``sweep.json`` (options, then the per-seed summary).
The family (:mod:`pifi_train.families`) supplies the data, the SLM, the model and the trainer hooks.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import torch

from pifi_extract.errors import ArtifactError

from . import distributed as dist
from . import run_files
from .build import build_model
from .config import Precision, ProgressCallback, TrainConfig, resolve_precision
from .families import family_for
from .families.spec import Family, FamilyRuntime
from .layer_ref import LayerIdentity, describe_artifacts, recorded_layers
from .run_record import RUN_VERSION, make_record, options_of
from .slm import load_tokenizer
from .stats import mean_std
from .tracking import with_trackers
from .trainer import TrainState


@dataclass
class RunResult:
    """One finished seed."""

    run_dir: Path
    seed: int
    metrics: dict[str, Any]


@dataclass
class Inputs:
    """What every seed shares, validated before anything is written."""

    config: TrainConfig
    family: Family
    runtime: FamilyRuntime
    ctx: dist.DistContext
    precision: Precision
    layer: list[LayerIdentity] | None  # in plugging order
    data: Any
    slm_config: Any
    tokenizer: Any
    spec: dict[str, Any]  # config.json's "model": what rebuilds the model without the data


def default_output_dir(config: TrainConfig) -> Path:
    task = config.task or Path(config.train_file or "data").stem
    return Path("runs") / f"{task}-{config.method}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def _finished(run_dir: Path, epochs: int) -> dict[str, Any] | None:
    """The saved metrics of a run that already completed ``epochs`` epochs, else None."""
    path = run_dir / run_files.METRICS
    if not path.is_file():
        return None
    metrics = run_files.read_json(path)
    return metrics if metrics.get("complete") and len(metrics.get("epochs", [])) >= epochs else None


def _check_resumed_layers(run_dir: Path, layer: list[LayerIdentity] | None) -> None:
    """--resume refuses artifacts other than the ones the run started with (by sha256)."""
    if layer is None or not (run_dir / run_files.CONFIG).is_file():
        return
    recorded = recorded_layers(run_files.read_json(run_dir / run_files.CONFIG))
    if len(recorded) != len(layer):
        raise ArtifactError(f"--resume: this run started with {len(recorded)} layer artifact(s), not {len(layer)}")
    for identity, entry in zip(layer, recorded):
        if entry.get("sha256") != identity.sha256:
            raise ArtifactError(f"--resume: the artifact {identity.path} is not the one this run started with "
                                f"(sha256 {identity.sha256[:12]}… vs {str(entry.get('sha256'))[:12]}…)")


def _train_seed(inputs: Inputs, seed: int, run_dir: Path, resume: bool,
                progress: ProgressCallback | None) -> RunResult:
    config, ctx, layer = inputs.config, inputs.ctx, inputs.layer
    if resume and (done := _finished(run_dir, config.epochs)) is not None:
        return RunResult(run_dir, seed, done)
    if resume:
        _check_resumed_layers(run_dir, layer)
    torch.manual_seed(seed)
    slm = inputs.runtime.load_slm(config.slm, inputs.slm_config, pretrained=config.slm_pretrained)
    options = inputs.family.model_options(config)
    model = build_model(config, slm, layer, ctx.device, inputs.precision.layer_dtype, seed,
                        lambda slm, frozen: inputs.runtime.build_model(slm, inputs.spec, options, frozen))
    trainer = inputs.runtime.Trainer(model, inputs.data, inputs.tokenizer, config, seed, ctx, inputs.precision,
                                     run_dir, progress, inputs.spec, family=inputs.family)
    state = TrainState()
    metrics: dict[str, Any] = {"seed": seed, "family": inputs.family.name, "epochs": [], "best_epoch": 0}
    if resume and (run_dir / run_files.STATE_DIR / run_files.STATE_COUNTERS).is_file():
        state = trainer.restore()
        metrics = run_files.read_json(run_dir / run_files.METRICS)
        metrics.pop("final", None)
        metrics["complete"] = False
    elif ctx.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        saved = inputs.tokenizer.save_pretrained(run_dir / run_files.CHECKPOINT_DIR)
        inputs.slm_config.save_pretrained(run_dir / run_files.CHECKPOINT_DIR)
        names = {Path(p).name for p in saved} | {run_files.CONFIG}
        run_files.write_json(run_dir / run_files.CONFIG, make_record(
            config, inputs.family, seed, inputs.spec, inputs.data, layer, inputs.slm_config, model, str(ctx.device),
            ctx.world_size, inputs.precision, sorted(names)))
    dist.barrier(ctx)
    if state.epoch_done >= config.epochs:
        return RunResult(run_dir, seed, trainer.finish(metrics, state))
    return RunResult(run_dir, seed, trainer.fit(metrics, state))


def summarize_seeds(results: list[RunResult], family: Family) -> dict[str, Any]:
    """Mean and (sample) standard deviation over seeds of the family's summary metrics (validation, test and
    every --extra-test set)."""
    summary: dict[str, Any] = {"seeds": [r.seed for r in results], "family": family.name}
    finals = [r.metrics["final"] for r in results]
    splits = {"validation": [f.get("validation") for f in finals], "test": [f.get("test") for f in finals]}
    names = sorted({name for f in finals for name in (f.get("extra_tests") or {})})
    splits.update({f"extra_test:{n}": [(f.get("extra_tests") or {}).get(n) for f in finals] for n in names})
    for split, values in splits.items():
        for key in family.metrics.summary_keys():
            numbers = [float(v[key]) for v in values if v and v.get(key) is not None]
            if numbers:
                mean, std = mean_std(numbers)
                summary[f"{split}_{key}"] = {"mean": mean, "std": std, "values": numbers}
    return summary


def run_training(config: TrainConfig, progress: ProgressCallback | None = None,
                 resume_dir: Path | None = None) -> list[RunResult]:
    """Train ``config.seeds`` seeds (starting at ``config.seed``) of the run's family; ``resume_dir`` continues
    a run. ``progress`` receives the trainer's events (``--report-to`` trackers are added to it)."""
    family = family_for(config)
    family.validate(config)
    tracked = with_trackers(progress, config.report_to, family)
    try:
        return _run(config, tracked, resume_dir)
    finally:
        if tracked is not progress:
            tracked.close()  # type: ignore[union-attr]


def _inputs(config: TrainConfig, ctx: dist.DistContext) -> Inputs:
    """Every input, cheapest checks first: artifact (missing, not one, hash), data, then the SLM."""
    family = family_for(config)
    runtime = family.runtime()
    layer = describe_artifacts(config.layer_artifact) if config.method == "pifi" else None
    data = runtime.load_data(config)
    slm_config = runtime.load_slm_config(config.slm)
    return Inputs(config, family, runtime, ctx, resolve_precision(config.precision, ctx.device), layer, data,
                  slm_config, load_tokenizer(config.slm), runtime.model_spec(data, slm_config, config))


def _run(config: TrainConfig, progress: ProgressCallback | None, resume_dir: Path | None) -> list[RunResult]:
    resume = resume_dir is not None
    ctx = dist.setup(config.device)
    created, out = False, Path(".")
    try:
        out = Path(resume_dir) if resume else Path(config.output_dir or dist.broadcast(ctx, default_output_dir(config)))
        run_files.check_output_dir(out, config.overwrite, resume)
        inputs = _inputs(config, ctx)
        seeds = [config.seed + i for i in range(config.seeds)]
        dist.barrier(ctx)
        created = ctx.is_main and not resume and not out.exists()
        if ctx.is_main and not resume:
            run_files.prepare_output_dir(out, config.overwrite)
            if len(seeds) > 1:
                run_files.write_json(out / run_files.SWEEP, {"pifi_sweep": RUN_VERSION, "family": inputs.family.name,
                                                             "options": config.to_dict(), "seeds": seeds,
                                                             "runs": [f"seed-{s}" for s in seeds]})
        dist.barrier(ctx)
        results = [_train_seed(inputs, seed, out if len(seeds) == 1 else out / f"seed-{seed}", resume, progress)
                   for seed in seeds]  # one split for every seed (--split-seed)
        if len(seeds) > 1 and ctx.is_main:
            sweep = run_files.read_json(out / run_files.SWEEP)
            run_files.write_json(out / run_files.SWEEP, {**sweep, "options": config.to_dict(),
                                                         "summary": summarize_seeds(results, inputs.family)})
        return results
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM from a job scheduler (cli.py turns it into this)
        if created:
            run_files.remove_if_empty(out)
        if out.is_dir() and any((d / run_files.STATE_DIR / run_files.STATE_COUNTERS).is_file()
                                for d in [out, *out.glob("seed-*")]):
            raise KeyboardInterrupt(f"interrupted; {out} keeps its last finished epoch: continue it with "
                                    f"`pifi train --resume --output-dir {out}`") from None
        raise KeyboardInterrupt("interrupted before the first epoch finished; nothing of the run was kept") from None
    except BaseException:
        if created:
            run_files.remove_if_empty(out)  # a failed run leaves no empty run folder (never anything it wrote)
        raise
    finally:
        dist.teardown(ctx)


def resume_training(run_dir: Path, epochs: int | None = None, progress: ProgressCallback | None = None
                    ) -> list[RunResult]:
    """Continue an interrupted run (or sweep) from its last finished epoch; ``epochs`` may extend it."""
    run_dir = Path(run_dir)
    run_files.check_output_dir(run_dir, overwrite=False, resume=True)
    sweep = run_dir / run_files.SWEEP
    record = run_files.read_json(sweep if sweep.is_file() else run_dir / run_files.CONFIG)
    config = options_of(record, sweep if sweep.is_file() else run_dir / run_files.CONFIG)
    if epochs is not None:
        config.epochs = epochs
    return run_training(config, progress, resume_dir=run_dir)
