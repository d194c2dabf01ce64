"""Pure planning: which files, tensors and bytes one layer needs, and the artifact's layout.

Nothing here does I/O. The extractor feeds it the config, the shard index and
the headers it read, and gets back a :class:`LayerPlan`: the output tensors in
order, where each one's bytes are in the source, and where they go.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from .architectures import ArchSpec
from .artifact import FINAL_NORM_PREFIX, artifact_metadata
from .config_check import check_layer_config, check_layer_shapes
from .errors import ConfigError, CorruptFileError, LayerIndexError, UnsupportedModelError
from .safetensors_header import DTYPE_SIZES, SafetensorsHeader, build_header

INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"
# Output dtype choices of `--dtype` and their safetensors names.
DTYPE_CHOICES = {"keep": None, "bf16": "BF16", "fp16": "F16", "fp32": "F32"}
FLOAT_DTYPES = {"F16", "BF16", "F32", "F64"}


def choose_weight_files(files: list[str]) -> str:
    """The index file, or the single safetensors file; refuse pickle-only repos."""
    if INDEX_FILE in files:
        return INDEX_FILE
    if SINGLE_FILE in files:
        return SINGLE_FILE
    shards = [f for f in files if f.endswith(".safetensors") and "/" not in f]
    if len(shards) == 1:
        return shards[0]
    pickles = [f for f in files if f.endswith((".bin", ".pt", ".pth", ".ckpt"))]
    if pickles:
        raise UnsupportedModelError(
            f"only pickle weights ({', '.join(sorted(pickles)[:3])}) and no safetensors",
            "pifi never loads pickles; convert the model to safetensors (or use a repo that has them)",
        )
    raise CorruptFileError("no *.safetensors weights and no model.safetensors.index.json found")


def parse_weight_map(index: Mapping[str, Any], where: str) -> dict[str, str]:
    """tensor name -> shard file from a ``*.safetensors.index.json``; refuse unsafe paths."""
    weight_map = index.get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise CorruptFileError(f"{where}: {INDEX_FILE} has no weight_map")
    for name, path in weight_map.items():
        if not isinstance(path, str) or not _is_safe_relative(path):
            raise CorruptFileError(
                f"{where}: weight_map entry {name!r} points to an unsafe path {path!r}",
                "the index must name shard files inside the repo",
            )
    return dict(weight_map)


def _is_safe_relative(path: str) -> bool:
    if not path or path.startswith(("/", "\\")) or "\\" in path or ":" in path:
        return False
    norm = posixpath.normpath(path)
    return norm == path and not norm.startswith("..") and ".." not in norm.split("/")


def resolve_layer_index(requested: int, num_layers: int) -> int:
    """Python-style index into ``num_layers`` layers (``-1`` = last)."""
    if not -num_layers <= requested < num_layers:
        raise LayerIndexError(
            f"layer {requested} is out of range: the model has {num_layers} layers",
            f"valid indices are {-num_layers}..{num_layers - 1} (-1 is the last layer)",
        )
    return requested % num_layers


def num_layers_of(config: Mapping[str, Any], arch: ArchSpec, where: str = "config.json") -> int:
    """The model's number of layers, once the fields that shape a layer are checked strictly (one line each)."""
    return check_layer_config(config, num_layers_attr=arch.num_layers_attr, norm_eps_attr=arch.norm_eps_attr,
                              where=where, error=CorruptFileError)


def select_tensors(weight_map: Mapping[str, str], arch: ArchSpec, layer_index: int) -> dict[str, tuple[str, str]]:
    """artifact name -> (checkpoint name, file) for the layer's tensors and the final norm."""
    selected: dict[str, tuple[str, str]] = {}
    for prefix, out_prefix in ((arch.layer_tensor_prefix(layer_index), ""), (arch.final_norm_prefix, FINAL_NORM_PREFIX)):
        for name, file in weight_map.items():
            relative = name[len(prefix) :]
            if name.startswith(prefix) and not arch.is_ignored_tensor(relative):  # stale buffers, not weights
                selected[out_prefix + relative] = (name, file)
    if not any(not k.startswith(FINAL_NORM_PREFIX) for k in selected):
        raise CorruptFileError(f"no tensors named {arch.layer_tensor_prefix(layer_index)}* in the checkpoint")
    return selected


@dataclass(frozen=True)
class PlannedTensor:
    """One artifact tensor: its bytes in the source file and its place in the artifact."""

    name: str
    source_name: str
    file: str
    src_dtype: str
    dtype: str
    shape: tuple[int, ...]
    src_start: int  # absolute offset in the source file
    src_end: int
    out_start: int  # absolute offset in the artifact file

    @property
    def numel(self) -> int:
        return (self.src_end - self.src_start) // DTYPE_SIZES[self.src_dtype]

    @property
    def out_nbytes(self) -> int:
        return self.numel * DTYPE_SIZES[self.dtype]


class PlanSizes:
    """Sizes every layer plan reports (safetensors and GGUF plans alike): needs ``header`` and ``tensors``."""

    header: bytes
    tensors: Sequence[Any]  # each with name, src_start, src_end, numel, out_nbytes

    @property
    def source_bytes(self) -> int:
        """Tensor bytes read from the source."""
        return sum(t.src_end - t.src_start for t in self.tensors)

    @property
    def artifact_bytes(self) -> int:
        return len(self.header) + sum(t.out_nbytes for t in self.tensors)

    @property
    def num_parameters(self) -> int:
        """Parameters of the layer itself (the final norm not counted)."""
        return sum(t.numel for t in self.tensors if not t.name.startswith(FINAL_NORM_PREFIX))


@dataclass(frozen=True)
class LayerPlan(PlanSizes):
    """Everything needed to write one artifact: header bytes and where each tensor comes from."""

    layer_index: int
    header: bytes  # length prefix + JSON header, with the data hash as a placeholder
    tensors: list[PlannedTensor]
    metadata: dict[str, str]


def one_or_list(values: Iterable[str]) -> str | list[str]:
    """The single distinct value, or the sorted distinct values when they differ."""
    distinct = sorted(set(values))
    return distinct[0] if len(distinct) == 1 else distinct


def plan_layer(
    selected: Mapping[str, tuple[str, str]],
    headers: Mapping[str, SafetensorsHeader],
    *,
    layer_index: int,
    dtype: str,
    config: Mapping[str, Any],
    provenance: Mapping[str, Any],
    pifi_version: str,
) -> LayerPlan:
    """Lay out the artifact for the ``selected`` tensors, given their shards' parsed headers."""
    target = DTYPE_CHOICES.get(dtype, "?")
    if target == "?":
        raise ConfigError(f"unknown dtype choice {dtype!r}", f"use one of {', '.join(DTYPE_CHOICES)}")
    found = []
    for name in sorted(selected):
        source_name, file = selected[name]
        entry = headers[file].tensors.get(source_name)
        if entry is None:
            raise CorruptFileError(
                f"tensor {source_name!r} is listed in the index under {file} but that shard does not contain it",
                "the checkpoint is inconsistent; report it to the model's authors",
            )
        out_dtype = target if (target and entry.dtype in FLOAT_DTYPES) else entry.dtype
        found.append((name, source_name, file, entry, out_dtype))
    check_layer_shapes({n: e.shape for n, _, _, e, _ in found}, config, where="config.json", error=CorruptFileError)
    full_provenance = {
        **provenance,
        "layer_index": layer_index,
        "original_names": {n: s for n, s, _, _, _ in found},
        "source_dtype": one_or_list(e.dtype for _, _, _, e, _ in found),
        "dtype": target or one_or_list(d for *_, d in found),  # the --dtype asked for, else what was kept
    }
    metadata = artifact_metadata(config, full_provenance, pifi_version)
    header, offsets = build_header([(n, d, e.shape) for n, _, _, e, d in found], metadata)
    tensors = [
        PlannedTensor(
            name=n,
            source_name=s,
            file=f,
            src_dtype=e.dtype,
            dtype=d,
            shape=e.shape,
            src_start=headers[f].data_start + e.begin,
            src_end=headers[f].data_start + e.end,
            out_start=len(header) + off,
        )
        for (n, s, f, e, d), off in zip(found, offsets)
    ]
    return LayerPlan(layer_index, header, tensors, metadata)


@dataclass(frozen=True)
class CopyJob:
    """A contiguous piece of one tensor: read, convert if needed, write at ``out_start``."""

    file: str
    src_start: int
    src_end: int
    out_start: int
    src_dtype: str
    dtype: str


def copy_jobs(plan: LayerPlan, chunk_bytes: int = 8 << 20) -> list[CopyJob]:
    """Split every tensor into element-aligned pieces of at most ``chunk_bytes`` source bytes."""
    jobs = []
    for t in plan.tensors:
        src_size, out_size = DTYPE_SIZES[t.src_dtype], DTYPE_SIZES[t.dtype]
        step = max(src_size, chunk_bytes - chunk_bytes % src_size)
        for begin in range(t.src_start, t.src_end, step):
            end = min(begin + step, t.src_end)
            out = t.out_start + (begin - t.src_start) // src_size * out_size
            jobs.append(CopyJob(t.file, begin, end, out, t.src_dtype, t.dtype))
    return jobs
