"""Extract layers: open a source, plan from its config and headers, stream the bytes into artifacts.

The three steps are separate so a cache can stop after the first (the commit is
known) when it already holds the artifact:

    source = open_source("meta-llama/Llama-3.1-8B")        # one metadata request
    plans = plan_layers(source, [-1], dtype="keep")        # config, index, shard headers
    info = write_artifact(source, plans[0], "layer.safetensors", progress=cb)
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from .version import pifi_version
from .architectures import arch_for_config
from .artifact import ArtifactInfo
from .errors import CorruptFileError, SourceNotFoundError
from .hf_cache import cached_file
from .plan import (
    INDEX_FILE,
    LayerPlan,
    choose_weight_files,
    num_layers_of,
    parse_weight_map,
    plan_layer,
    resolve_layer_index,
    select_tensors,
)
from .pipeline import ProgressCallback, write_artifacts
from .provenance import source_provenance
from .safetensors_header import PREFIX_BYTES, SafetensorsHeader, header_length, parse_header
from .sources import LocalSource, Source, read_json

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
    llm: str,
    revision: str | None = None,
    *,
    token: str | bool | None = None,
    gguf_file: str | None = None,
    prefetch: bool = True,
) -> Source:
    """A local folder, or a Hub repo resolved to one commit (with ``HF_HUB_OFFLINE``, its cached snapshot).

    A ``.gguf`` path, or ``gguf_file`` (a file in the folder or repo), opens a GGUF source (see ``gguf_source``).
    ``prefetch`` (Hub repos): fetch config and index while the commit is resolved (one round trip saved),
    unless the caller expects to need neither (a cache that probably holds the layers already).
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

    return HubSource(llm, revision, token=token, prefetch=("config.json", INDEX_FILE) if prefetch else ())


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


def read_safetensors_header(source: Source, file: str, *, exact: bool = False) -> SafetensorsHeader:
    """Read and validate one shard's header: one speculative range read of its first 64 KB (at most 1/32 of the
    file), a second one only for the rest of a longer header. ``exact``: the 8-byte length, then exactly the
    header, so no byte past it (no tensor byte) is requested (a dry run; one round trip more per shard)."""
    size = source.size(file)
    where = f"{source.name}/{file}"
    first = PREFIX_BYTES if exact else max(PREFIX_BYTES, min(HEADER_GUESS, size // HEADER_GUESS_FRACTION))
    head = source.read(file, 0, min(size, first))
    n = header_length(bytes(head[:PREFIX_BYTES]), size, where)
    if PREFIX_BYTES + n <= len(head):
        raw = bytes(head[PREFIX_BYTES : PREFIX_BYTES + n])
    else:
        raw = bytes(head[PREFIX_BYTES:]) + bytes(source.read(file, len(head), PREFIX_BYTES + n))
    return parse_header(raw, size, where)


def plan_layers(
    source: Source, layers: Sequence[int], *, dtype: str = "keep", workers: int = 8, exact_headers: bool = False
) -> list[LayerPlan]:
    """Plan one artifact per requested layer; reads only config, index and the needed shards' headers
    (``exact_headers``: not one byte past them, see :func:`read_safetensors_header`)."""
    own_format = getattr(source, "plan_layers", None)  # a source that carries its own format (GGUF)
    if own_format is not None:
        return own_format(layers, dtype=dtype)  # type: ignore[no-any-return]
    files = source.files()
    if "config.json" not in files:
        raise SourceNotFoundError(f"{source.name} has no config.json", "point --llm at a transformers model")
    weights = choose_weight_files(files)
    with ThreadPoolExecutor(max_workers=2) as pool:  # config and index (or the single shard's header) at once
        index_job = (pool.submit(read_json, source, weights) if weights == INDEX_FILE
                     else pool.submit(read_safetensors_header, source, weights, exact=exact_headers))
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
        headers.update(zip(needed, pool.map(lambda f: read_safetensors_header(source, f, exact=exact_headers), needed)))
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
                pifi_version=pifi_version(),
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
    """Stream the plan's tensors into ``path`` (atomically), in parallel, with flat memory
    (:func:`~.pipeline.write_artifacts` of one target)."""
    (info,) = write_artifacts(source, [(plan, path)], progress=progress, workers=workers, chunk_bytes=chunk_bytes)
    return info


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
    plans = plan_layers(source, layers, dtype=dtype)
    targets = [(plan, Path(output_for(plan))) for plan in plans]
    infos = write_artifacts(source, targets, progress=progress)  # one pipeline for every layer
    return [ExtractResult(path, info, plan.source_bytes) for (plan, path), info in zip(targets, infos)]


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
