"""Extract layers: open a source, plan from its config and headers, stream the bytes into artifacts.

The three steps are separate so a cache can stop after the first (the commit is
known) when it already holds the artifact:

    source = open_source("meta-llama/Llama-3.1-8B")        # one metadata request
    plans = plan_layers(source, [-1], dtype="keep")        # config, index, shard headers
    info = write_artifact(source, plans[0], "layer.safetensors", progress=cb)
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor, wait, FIRST_EXCEPTION
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from . import __version__
from .architectures import arch_for_config
from .artifact import ArtifactInfo, read_artifact
from .convert import convert_bytes
from .errors import CorruptFileError, SourceNotFoundError
from .hf_cache import cached_file
from .plan import (
    INDEX_FILE,
    LayerPlan,
    choose_weight_files,
    copy_jobs,
    num_layers_of,
    parse_weight_map,
    plan_layer,
    resolve_layer_index,
    select_tensors,
)
from .provenance import source_provenance
from .safetensors_header import PREFIX_BYTES, SafetensorsHeader, header_length, parse_header
from .sources import LocalSource, Source, read_json

# progress(advance_bytes, total_bytes)
ProgressCallback = Callable[[int, int], None]
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?$")


def is_local_reference(llm: str) -> bool:
    """True when ``llm`` names something on disk rather than a Hub repo id."""
    p = Path(llm).expanduser()
    return p.exists() or llm.startswith((".", "/", "~")) or not _REPO_ID.match(llm) or llm.endswith(".gguf")


def artifact_file_name(llm: str, layer_index: int, dtype: str = "keep") -> str:
    """The default file name of an artifact: ``<model>-layer-<i>[.<dtype>].safetensors``."""
    stem = Path(llm.rstrip("/")).name.removesuffix(".gguf")
    return f"{stem}-layer-{layer_index}" + ("" if dtype == "keep" else f".{dtype}") + ".safetensors"


def open_source(
    llm: str, revision: str | None = None, *, token: str | bool | None = None, gguf_file: str | None = None
) -> Source:
    """A local folder, or a Hub repo resolved to one commit (with ``HF_HUB_OFFLINE``, its cached snapshot).

    A ``.gguf`` path, or ``gguf_file`` (a file in the folder or repo), opens a GGUF source (see ``gguf_source``).
    """
    if gguf_file is not None or llm.endswith(".gguf"):
        from .gguf_source import open_gguf_source

        return open_gguf_source(llm, gguf_file, revision, token=token)
    if is_local_reference(llm):
        return LocalSource(Path(llm), revision=revision)
    from huggingface_hub import constants

    if constants.is_offline_mode():
        return _cached_snapshot(llm, revision)
    from .hub_source import HubSource

    return HubSource(llm, revision, token=token)


def _cached_snapshot(repo_id: str, revision: str | None) -> Source:
    """The model's snapshot in the local Hugging Face cache, if one was downloaded before."""
    found, commit = cached_file(
        repo_id, "config.json", revision, hint="unset HF_HUB_OFFLINE to extract it, or pass a local model folder to --llm"
    )
    source = LocalSource(found.parent, revision=revision, commit=commit, kind="hub")
    source.name = repo_id  # provenance names the repo, as when read online
    return source


HEADER_GUESS = 64 << 10  # real shard headers are 0.5-12 KB: one read of this much usually holds all of it
HEADER_GUESS_FRACTION = 32  # ...but never more than 1/32 of a (small) file on speculation


def read_safetensors_header(source: Source, file: str) -> SafetensorsHeader:
    """Read and validate one shard's header: one speculative range read of its first 64 KB (at most 1/32 of the
    file), a second one only for the rest of a longer header."""
    size = source.size(file)
    where = f"{source.name}/{file}"
    head = source.read(file, 0, min(size, HEADER_GUESS, max(PREFIX_BYTES, size // HEADER_GUESS_FRACTION)))
    n = header_length(bytes(head[:PREFIX_BYTES]), size, where)
    if PREFIX_BYTES + n <= len(head):
        raw = bytes(head[PREFIX_BYTES : PREFIX_BYTES + n])
    else:
        raw = bytes(head[PREFIX_BYTES:]) + bytes(source.read(file, len(head), PREFIX_BYTES + n))
    return parse_header(raw, size, where)


def plan_layers(source: Source, layers: Sequence[int], *, dtype: str = "keep", workers: int = 8) -> list[LayerPlan]:
    """Plan one artifact per requested layer; reads only config, index and the needed shards' headers."""
    own_format = getattr(source, "plan_layers", None)  # a source that carries its own format (GGUF)
    if own_format is not None:
        return own_format(layers, dtype=dtype)  # type: ignore[no-any-return]
    files = source.files()
    if "config.json" not in files:
        raise SourceNotFoundError(f"{source.name} has no config.json", "point --llm at a transformers model")
    weights = choose_weight_files(files)
    with ThreadPoolExecutor(max_workers=2) as pool:  # config and index (or the single shard's header) at once
        index_job = pool.submit(read_json if weights == INDEX_FILE else read_safetensors_header, source, weights)
        config = read_json(source, "config.json")
        arch = arch_for_config(config)
        num_layers = num_layers_of(config, arch)
        indices = [resolve_layer_index(layer, num_layers) for layer in layers]
        first = index_job.result()
    used_files = ["config.json", weights]
    headers: dict[str, SafetensorsHeader] = {}
    if weights == INDEX_FILE:
        weight_map = parse_weight_map(first, source.name)
    else:
        headers[weights] = first
        weight_map = {name: weights for name in headers[weights].tensors}
    selections = [select_tensors(weight_map, arch, i) for i in indices]
    needed = sorted({file for sel in selections for _, file in sel.values()} - set(headers))
    missing = [f for f in needed if f not in files]
    if missing:
        raise CorruptFileError(f"{source.name}: the index names shard {missing[0]!r}, which the repo does not have")
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(needed) or 1))) as pool:
        headers.update(zip(needed, pool.map(lambda f: read_safetensors_header(source, f), needed)))
    used_files += [f for f in needed if f not in used_files]
    plans = []
    for requested, index, selected in zip(layers, indices, selections):
        shard_files = sorted({file for _, file in selected.values()})
        provenance = source_provenance(
            source,
            ["config.json", weights, *shard_files],
            layer_requested=requested,
            num_layers=num_layers,
            model_type=arch.model_type,
            license=config.get("license"),
        )
        plans.append(
            plan_layer(
                selected,
                headers,
                layer_index=index,
                dtype=dtype,
                config=config,
                provenance=provenance,
                pifi_version=__version__,
            )
        )
    return plans


def write_artifact(
    source: Source,
    plan: LayerPlan,
    path: str | Path,
    *,
    progress: ProgressCallback | None = None,
    workers: int = 8,
    chunk_bytes: int = 8 << 20,
) -> ArtifactInfo:
    """Stream the plan's tensors into ``path`` (atomically), in parallel, with flat memory."""
    own_format = getattr(source, "write_artifact", None)  # a source that carries its own format (GGUF)
    if own_format is not None:
        return own_format(plan, path, progress=progress, workers=workers)  # type: ignore[no-any-return]
    from .writer import AtomicArtifactWriter

    total = plan.source_bytes
    tick = (lambda n: progress(n, total)) if progress is not None else None
    jobs = copy_jobs(plan, chunk_bytes)

    # the data is hashed and written back while it arrives: commit() needs no final pass
    with AtomicArtifactWriter(path, plan.artifact_bytes, data_start=len(plan.header)) as out:
        out.pwrite(0, plan.header)

        def run(job: Any) -> None:
            if job.src_dtype == job.dtype:  # bytes go to their offsets as they arrive: memory stays flat
                source.read_into(
                    job.file, job.src_start, job.src_end,
                    lambda offset, piece: out.pwrite(job.out_start + offset, piece), progress=tick,
                )
            else:  # a conversion needs whole elements: one chunk (<= chunk_bytes) at a time
                data = source.read(job.file, job.src_start, job.src_end, progress=tick)
                out.pwrite(job.out_start, convert_bytes(data, job.src_dtype, job.dtype))

        pool = ThreadPoolExecutor(max_workers=max(1, workers))
        try:
            futures = [pool.submit(run, job) for job in jobs]
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            for fut in done:
                fut.result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        out.commit(plan.header, len(plan.header))
    return read_artifact(path)


@dataclass(frozen=True)
class ExtractResult:
    """An artifact written by :func:`extract_layer`, with what it cost to read."""

    path: Path
    info: ArtifactInfo
    source_bytes: int


def extract_layers(
    llm: str | Source,
    layers: Sequence[int],
    output_for: Callable[[LayerPlan], Path],
    *,
    revision: str | None = None,
    token: str | bool | None = None,
    dtype: str = "keep",
    progress: ProgressCallback | None = None,
    gguf_file: str | None = None,
) -> list[ExtractResult]:
    """Extract several layers of one model, one artifact each, at ``output_for(plan)``."""
    source = open_source(llm, revision, token=token, gguf_file=gguf_file) if isinstance(llm, str) else llm
    results = []
    for plan in plan_layers(source, layers, dtype=dtype):
        path = Path(output_for(plan))
        info = write_artifact(source, plan, path, progress=progress)
        results.append(ExtractResult(path, info, plan.source_bytes))
    return results


def extract_layer(
    llm: str | Source,
    layer: int,
    output: str | Path,
    *,
    revision: str | None = None,
    token: str | bool | None = None,
    dtype: str = "keep",
    progress: ProgressCallback | None = None,
    gguf_file: str | None = None,
) -> ExtractResult:
    """Extract one layer of ``llm`` (Hub repo id, local folder or ``.gguf`` file) into the artifact ``output``."""
    (result,) = extract_layers(
        llm,
        [layer],
        lambda _: Path(output),
        revision=revision,
        token=token,
        dtype=dtype,
        progress=progress,
        gguf_file=gguf_file,
    )
    return result
