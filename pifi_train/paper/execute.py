"""Running a table's grid: extract the layers once, then each seed of each run that is not finished.

A :class:`Job` is one seed of one run (``<run>/seed-<s>/``), the unit every launcher hands out. Its state on
disk decides what happens (:func:`job_state`): ``done`` (metrics.json complete for its epochs) is skipped,
``partial`` (a run directory without a complete metrics.json: interrupted) continues with
:func:`pifi_train.runner.resume_training`, ``new`` starts with :func:`pifi_train.runner.run_training`. A folder
holding a run with other options (another scale, another stand-in) is refused in one line, never reused or
overwritten. A lock file beside the folder keeps two launchers from training the same seed at once.
Torch is imported only where a job trains.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

from pifi_extract.errors import ConfigError

from .. import run_files
from ..config import TrainConfig
from ..options import result_options
from .grid import LayerNeed, Run, with_artifacts

StepCallback = Callable[[int, int, str], None]  # (done, total, text)
DONE, PARTIAL, NEW = "done", "partial", "new"


@dataclass(frozen=True)
class Job:
    """One seed of one run, ready to train (layer artifacts are files); picklable for worker processes."""

    name: str  # "<slm>/<task>/<arm>/seed-<s>"
    config: dict[str, Any]  # TrainConfig.to_dict(): seed = this seed, seeds = 1, output_dir = the seed's folder

    @property
    def dir(self) -> Path:
        return Path(self.config["output_dir"])


@dataclass(frozen=True)
class JobResult:
    name: str
    status: str  # trained | resumed | skipped (done) | busy (another process holds it) | failed
    error: str | None = None


def seed_dir(run: Run, seed: int) -> Path:
    return run.dir / f"seed-{seed}"


def job_state(folder: Path, epochs: int) -> str:
    """done / partial / new for a seed's folder (see the module docstring)."""
    if not folder.is_dir() or not any(folder.iterdir()):
        return NEW
    metrics = folder / run_files.METRICS
    if metrics.is_file():
        saved = run_files.read_json(metrics)
        if saved.get("complete") and len(saved.get("epochs", [])) >= epochs:
            return DONE
    if run_files.is_run_dir(folder):
        return PARTIAL
    raise ConfigError(f"{folder} holds files but no pifi run",
                      "move them away (pifi paper writes its runs there), or pass another --output-dir")


def jobs_of(runs: Sequence[Run], artifacts: dict[LayerNeed, str]) -> list[Job]:
    """Every seed of every run, its layers given as the extracted files."""
    jobs = []
    for run in runs:
        config = with_artifacts(run, artifacts)
        for seed in run.seeds:
            folder = seed_dir(run, seed)
            jobs.append(Job("/".join(folder.parts[-4:]),
                            replace(config, seed=seed, seeds=1, output_dir=str(folder)).to_dict()))
    return jobs


def extract_layers(runs: Sequence[Run], *, cache_dir: str | None = None, token: str | bool | None = None,
                   progress: StepCallback | None = None) -> dict[LayerNeed, str]:
    """Every layer the runs need, from the cache or extracted into it once (one call per LLM)."""
    from layer_cache import get_or_extract_layers

    by_source: dict[str, list[int]] = {}
    for run in runs:
        for layer in run.layers:
            indices = by_source.setdefault(layer.source, [])
            if layer.index not in indices:
                indices.append(layer.index)
    found: dict[LayerNeed, str] = {}
    for k, (source, indices) in enumerate(by_source.items()):
        if progress is not None:
            progress(k, len(by_source), f"layers {', '.join(map(str, indices))} of {source}")
        artifacts = get_or_extract_layers(source, indices, cache_dir=cache_dir, token=token)
        found.update({LayerNeed(source, i): str(a.path) for i, a in zip(indices, artifacts)})
    if progress is not None:
        progress(len(by_source), len(by_source), "layers ready")
    return found


def check_same_run(folder: Path, config: TrainConfig) -> None:
    """Refuse a folder whose run was made with other result options or other layers than ``config``'s."""
    from pifi_extract.artifact import read_artifact

    from ..layer_ref import artifact_references, recorded_layers
    from ..run_record import options_of

    record = run_files.read_json(folder / run_files.CONFIG)
    saved = options_of(record, folder / run_files.CONFIG).to_dict()
    wanted = config.to_dict()
    differ = [name for name in result_options() if saved.get(name) != wanted.get(name)]
    if config.layer_artifact:
        shas = [read_artifact(path).data_sha256 for path in artifact_references(config.layer_artifact)]
        if [layer.get("sha256") for layer in recorded_layers(record)] != shas:
            differ.append("layer_artifact")
    if differ:
        name = differ[0]
        raise ConfigError(f"{folder} holds a run with another {name.replace('_', '-')} ({saved.get(name)!r}, this grid "
                          f"wants {wanted.get(name)!r})", "use another --output-dir for another scale or stand-in")


def run_job(job: Job, progress: Any = None) -> JobResult:
    """Train, continue or skip one seed (see the module docstring); a failure is the result's error line."""
    from filelock import FileLock, Timeout

    from pifi_extract.errors import PifiError

    config = TrainConfig.from_dict(job.config)
    try:
        state = job_state(job.dir, config.epochs)
        if state == DONE:
            check_same_run(job.dir, config)
            return JobResult(job.name, "skipped")
        job.dir.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(job.dir.parent / f".{job.dir.name}.lock"))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            return JobResult(job.name, "busy")
        try:
            return _train(job, config, progress)
        finally:
            lock.release()
    except PifiError as err:
        return JobResult(job.name, "failed", str(err))
    except Exception as err:  # one failed seed must not stop a grid: named, the others go on  # noqa: BLE001
        return JobResult(job.name, "failed", f"{type(err).__name__}: {' '.join(str(err).split())[:300]}")


def _train(job: Job, config: TrainConfig, progress: Any) -> JobResult:
    from ..runner import resume_training, run_training

    state = job_state(job.dir, config.epochs)  # again, under the lock: another process may have finished it
    if state == DONE:
        return JobResult(job.name, "skipped")
    if state == PARTIAL:
        check_same_run(job.dir, config)
        resume_training(job.dir, config.epochs, progress)
        return JobResult(job.name, "resumed")
    run_training(config, progress)
    return JobResult(job.name, "trained")
