"""Plan and write artifacts from a GGUF source: the GGUF twin of ``extract.plan_layers``/``write_artifact``.

Planning reads only the header (and builds the config from it); writing reads the layer's own
tensors, dequantizes and fixes each (see :mod:`.gguf_dequant`), converts it to the output dtype and
writes it at its offset: memory holds one tensor at a time (a few copies of it in fp32).
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from .architectures import arch_for_config
from .artifact import ArtifactInfo, read_artifact
from .gguf_config import config_object, gguf_config
from .gguf_dequant import TensorFixer, dequantize_values
from .gguf_plan import GgufLayerPlan, expected_tensors, gguf_names, plan_gguf_layer
from .plan import num_layers_of, resolve_layer_index
from .provenance import source_provenance

if TYPE_CHECKING:
    from .gguf_source import GgufSource

ProgressCallback = Callable[[int, int], None]
READ_CHUNK = 8 << 20


def plan_gguf_layers(source: GgufSource, layers: Sequence[int], *, dtype: str = "keep") -> list[GgufLayerPlan]:
    """One plan per requested layer; reads only the header."""
    from .version import pifi_version

    header, prefix = source.header()
    config = gguf_config(header, prefix, source.size(source.file), source.name)
    arch = arch_for_config(config)
    num_layers = num_layers_of(config, arch)
    config_obj = config_object(config)
    plans = []
    for requested in layers:
        index = resolve_layer_index(requested, num_layers)
        shapes = expected_tensors(config_obj, arch, index)
        provenance = {
            **source_provenance(
                source,
                [source.file],
                layer_requested=requested,
                num_layers=num_layers,
                model_type=arch.model_type,
                license=header.metadata.get("general.license"),
            ),
            "source_kind": "gguf",
            "gguf_host": source.kind,
            "gguf_file": source.file,
            "gguf_architecture": header.architecture,
        }
        plans.append(
            plan_gguf_layer(
                header,
                gguf_names(header.architecture, num_layers, arch, index, list(shapes)),
                shapes,
                layer_index=index,
                dtype=dtype,
                config=config,
                provenance=provenance,
                pifi_version=pifi_version(),
                where=source.name,
            )
        )
    return plans


def write_gguf_artifact(
    source: GgufSource,
    plan: GgufLayerPlan,
    path: str | Path,
    *,
    progress: ProgressCallback | None = None,
    workers: int = 8,
) -> ArtifactInfo:
    """Read, dequantize and convert the plan's tensors one at a time into ``path`` (atomically)."""
    import torch

    from .convert import torch_dtype
    from .writer import AtomicArtifactWriter

    total = plan.source_bytes
    tick = (lambda n: progress(n, total)) if progress is not None else None
    fix = TensorFixer(plan.gguf_architecture, json.loads(plan.metadata["pifi.config"]))
    with AtomicArtifactWriter(path, plan.artifact_bytes) as out, ThreadPoolExecutor(max(1, workers)) as pool:
        out.pwrite(0, plan.header)
        for t in plan.tensors:
            raw = _read_range(pool, source, t.src_start, t.src_end, tick)
            values = fix(dequantize_values(raw, t), t.gguf_name)  # float32, transformers' layout
            tensor = torch.from_numpy(values if values.flags.writeable else values.copy()).reshape(t.shape)
            out.pwrite(t.out_start, tensor.to(torch_dtype(t.dtype)).contiguous().view(torch.uint8).numpy().data)
        out.commit(plan.header, len(plan.header))
    return read_artifact(path)


def _read_range(
    pool: ThreadPoolExecutor, source: GgufSource, start: int, end: int, tick: Callable[[int], None] | None
) -> bytes:
    """Bytes [start, end) of the GGUF file, in parallel pieces of READ_CHUNK."""
    starts = range(start, end, READ_CHUNK)
    pieces = pool.map(lambda s: source.read(source.file, s, min(s + READ_CHUNK, end), progress=tick), starts)
    return b"".join(pieces)
