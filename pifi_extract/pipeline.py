"""Stream the tensors of one or more layer plans into their artifacts through ONE pool of range reads.

Several layers of one model (``--layer -1 --layer -2``, ``pifi select --extract-top K``) share the source's
connections and form one pipeline: the reads of the next artifact start while the last reads of the previous
one are still in flight, so no layer pays a ramp-up or a drained pipe. Each artifact is written atomically
(:class:`~.writer.AtomicArtifactWriter`) and committed as soon as its own bytes are in; ``on_written`` then
hears of it (a cache records it at once). On any error or interrupt the reads still running are stopped at
their next piece, every uncommitted temp file is removed, and the error propagates.
"""

from __future__ import annotations

import contextlib
import threading
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any, Callable, Sequence

from .artifact import ArtifactInfo, read_artifact
from .convert import convert_bytes
from .plan import CopyJob, LayerPlan, copy_jobs
from .sources import Source

# progress(advance_bytes, total_bytes)
ProgressCallback = Callable[[int, int], None]


class Stopped(Exception):
    """Raised inside a read whose pipeline is being abandoned (another read failed, or an interrupt)."""


def write_artifacts(
    source: Source,
    targets: Sequence[tuple[LayerPlan, str | Path]],
    *,
    progress: ProgressCallback | None = None,
    on_written: Callable[[int, ArtifactInfo], None] | None = None,
    workers: int = 8,
    chunk_bytes: int = 8 << 20,
) -> list[ArtifactInfo]:
    """Write ``plan`` to ``path`` for each ``(plan, path)`` of ``targets`` (one pipeline; memory stays flat).

    ``progress(n, total)``: tensor bytes read, ``total`` over all targets. ``on_written(i, info)``: target ``i``
    has just been committed (called in order).
    """
    own_format = getattr(source, "write_artifact", None)  # a source that carries its own format (GGUF)
    if own_format is not None:
        infos = []
        for i, (plan, path) in enumerate(targets):
            infos.append(own_format(plan, path, progress=progress, workers=workers))
            if on_written is not None:
                on_written(i, infos[-1])
        return infos
    from .writer import AtomicArtifactWriter

    total = sum(plan.source_bytes for plan, _ in targets)
    tick = (lambda n: progress(n, total)) if progress is not None else None
    stop = threading.Event()
    infos: list[ArtifactInfo] = []
    with contextlib.ExitStack() as writers:
        outs = [writers.enter_context(AtomicArtifactWriter(path, plan.artifact_bytes, data_start=len(plan.header)))
                for plan, path in targets]
        pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="pifi-read")
        try:
            pending: list[list[Future[None]]] = []
            for (plan, _), out in zip(targets, outs):
                out.pwrite(0, plan.header)
                pending.append([pool.submit(_copy, source, job, out, tick, stop) for job in copy_jobs(plan, chunk_bytes)])
            for i, ((plan, path), out, futures) in enumerate(zip(targets, outs, pending)):
                done, _ = wait(futures, return_when=FIRST_EXCEPTION)
                for future in done:
                    future.result()  # the first failure, as it was raised
                # the data was hashed and written back while it arrived: commit() needs no final pass
                out.commit(plan.header, len(plan.header))
                infos.append(read_artifact(path))
                if on_written is not None:
                    on_written(i, infos[-1])
        except BaseException:
            stop.set()  # reads still running give up at their next piece
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)  # before the writers close their files
    return infos


def _copy(source: Source, job: CopyJob, out: Any, tick: Callable[[int], None] | None, stop: threading.Event) -> None:
    """One job: bytes go to their artifact offsets as they arrive (memory stays flat), or, when the dtype
    changes, one chunk (<= chunk_bytes) at a time, since a conversion needs whole elements."""
    if stop.is_set():
        raise Stopped
    if job.src_dtype == job.dtype:

        def sink(offset: int, piece: bytes) -> None:
            if stop.is_set():
                raise Stopped
            out.pwrite(job.out_start + offset, piece)

        source.read_into(job.file, job.src_start, job.src_end, sink, progress=tick)
    else:
        data = source.read(job.file, job.src_start, job.src_end, progress=tick)
        out.pwrite(job.out_start, convert_bytes(data, job.src_dtype, job.dtype))
