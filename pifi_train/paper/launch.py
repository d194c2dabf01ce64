"""Launchers for a grid's jobs: in this process, one worker process per GPU (or N on CPU), or Slurm jobs.

- ``serial``: one job after the other, here (the training progress callback sees every step);
- ``local``: ``workers`` processes (default: one per visible GPU, each with its own ``CUDA_VISIBLE_DEVICES``;
  on CPU each gets an equal share of the cores), handing out jobs as workers come free;
- ``slurm``: each job is a Slurm job (a job array) submitted through submitit (``pifi[slurm]``); ``wait``
  blocks until they finish. ``cluster`` is submitit's: ``slurm``, or ``local``/``debug`` to try it without one.

Every launcher runs :func:`pifi_train.paper.execute.run_job`, so results land in the same folders.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from pifi_extract.errors import ConfigError

from .execute import Job, JobResult, run_job

StepCallback = Callable[[int, int, str], None]
LAUNCHERS = ("serial", "local", "slurm")


@dataclass(frozen=True)
class SlurmOptions:
    """What each Slurm job asks for (submitit's names in brackets)."""

    partition: str | None = None  # slurm_partition
    time_min: int = 24 * 60  # timeout_min
    gpus: int = 1  # gpus_per_node
    cpus: int = 8  # cpus_per_task
    mem_gb: int | None = None  # mem_gb
    params: dict[str, str] = field(default_factory=dict)  # more slurm_<key> parameters (account, qos, ...)
    cluster: str = "slurm"  # submitit's executor: slurm, or local / debug (tests, a laptop)
    wait: bool = False


def run_serial(jobs: Sequence[Job], progress: StepCallback | None = None, train_progress: Any = None
               ) -> list[JobResult]:
    results = []
    for k, job in enumerate(jobs):
        if progress is not None:
            progress(k, len(jobs), job.name)
        results.append(run_job(job, train_progress))
    if progress is not None:
        progress(len(jobs), len(jobs), "done")
    return results


def visible_gpus() -> list[str]:
    """The GPUs this process may use (CUDA_VISIBLE_DEVICES when set, else every one torch sees)."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [d.strip() for d in listed.split(",") if d.strip() and d.strip() != "-1"]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def _worker_init(devices: Any, threads: int | None) -> None:
    """A worker's first act: its own GPU (before torch touches CUDA), or its share of the CPU cores."""
    device = devices.get()
    if device is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = device
    if threads:
        import torch

        torch.set_num_threads(threads)


def run_local(jobs: Sequence[Job], workers: int | None = None, progress: StepCallback | None = None,
              gpus: Sequence[str] | None = None) -> list[JobResult]:
    """The jobs over ``workers`` processes (default: one per visible GPU; on CPU: 1)."""
    import multiprocessing

    gpus = list(visible_gpus() if gpus is None else gpus)
    count = workers or max(1, len(gpus))
    if count < 1:
        raise ConfigError(f"--workers must be at least 1, got {count}")
    if not jobs:
        return []
    context = multiprocessing.get_context("spawn")  # fresh interpreters: CUDA is never forked
    devices = context.Queue()
    for i in range(count):
        devices.put(gpus[i % len(gpus)] if gpus else None)
    threads = None if gpus else max(1, (os.cpu_count() or 1) // count)
    results = []
    try:
        with context.Pool(count, initializer=_worker_init, initargs=(devices, threads)) as pool:
            for result in pool.imap_unordered(run_job, jobs):
                results.append(result)
                if progress is not None:
                    progress(len(results), len(jobs), result.name)
    finally:
        devices.close()
        devices.join_thread()
    return results


def submit_slurm(jobs: Sequence[Job], folder: str | Path, options: SlurmOptions,
                 progress: StepCallback | None = None) -> list[JobResult]:
    """Submit every job (one job array); with ``options.wait``, wait for them and return their results."""
    try:
        import submitit
    except ImportError as err:
        raise ConfigError("--launcher slurm needs submitit", "pip install 'pifi[slurm]'") from err
    if not jobs:
        return []
    executor = submitit.AutoExecutor(folder=str(folder), cluster=options.cluster)
    params: dict[str, Any] = {"timeout_min": options.time_min, "gpus_per_node": options.gpus,
                              "cpus_per_task": options.cpus, "name": "pifi-paper"}
    if options.mem_gb is not None:
        params["mem_gb"] = options.mem_gb
    if options.partition:
        params["slurm_partition"] = options.partition
    params.update({f"slurm_{key}": value for key, value in options.params.items()})
    try:
        executor.update_parameters(**params)
    except ValueError as err:  # an unknown slurm_<key>
        raise ConfigError(f"--slurm-param: {' '.join(str(err).split())[:200]}") from None
    with executor.batch():
        futures = [executor.submit(run_job, job) for job in jobs]
    if not options.wait:
        return [JobResult(job.name, "submitted", f"job {future.job_id}") for job, future in zip(jobs, futures)]
    results = []
    for job, future in zip(jobs, futures):
        try:
            results.append(future.result())
        except Exception as err:  # noqa: BLE001  (the job died: killed, out of time, out of memory)
            results.append(JobResult(job.name, "failed", f"job {future.job_id}: {' '.join(str(err).split())[:300]}"))
        if progress is not None:
            progress(len(results), len(jobs), job.name)
    return results
