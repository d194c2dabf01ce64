"""Plan one artifact from a GGUF file: which tensors, their transformers names, dtypes and layout.

No file I/O here. The names come from the ``gguf`` package's own tensor-name table
(the one llama.cpp's converter and transformers' GGUF loader use), applied to the
state-dict keys of the transformers layer class pifi will rebuild, so the artifact
holds exactly the keys ``pifi_train.load_layer`` expects, with their shapes.

Output dtypes: ``--dtype fp32|fp16|bf16`` converts every tensor. ``keep`` keeps
F32/F16/BF16 tensors as they are and writes quantized ones (Q4_1, Q8_0, ...) as F32:
their dequantized values are exact in fp32 and would be rounded in a half type.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from .architectures import ArchSpec, import_object
from .artifact import FINAL_NORM_PREFIX, artifact_metadata
from .errors import ConfigError, CorruptFileError, UnsupportedModelError
from .gguf_header import FLOAT_TYPES, GgufHeader, readable_type_names
from .plan import DTYPE_CHOICES, PlanSizes, one_or_list
from .safetensors_header import DTYPE_SIZES, build_header

# What `keep` writes for a block-quantized tensor.
DEQUANTIZED_DTYPE = "F32"


@dataclass(frozen=True)
class GgufPlannedTensor:
    """One artifact tensor: the GGUF tensor it comes from and where it goes."""

    name: str  # artifact name, e.g. "self_attn.q_proj.weight" or "final_norm.weight"
    gguf_name: str  # e.g. "blk.29.attn_q.weight"
    ggml_type: int
    type_name: str  # "Q4_1", "F32", ...
    shape: tuple[int, ...]  # the transformers parameter's shape
    gguf_shape: tuple[int, ...]  # the shape GGUF stores, in torch order (same number of elements)
    src_start: int  # absolute byte range in the GGUF file
    src_end: int
    dtype: str  # safetensors dtype written
    out_start: int  # absolute offset in the artifact

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def out_nbytes(self) -> int:
        return self.numel * DTYPE_SIZES[self.dtype]


@dataclass(frozen=True)
class GgufLayerPlan(PlanSizes):
    """Everything needed to write one artifact from a GGUF file (the GGUF twin of ``plan.LayerPlan``)."""

    layer_index: int
    header: bytes  # length prefix + JSON header, data hash as a placeholder
    tensors: list[GgufPlannedTensor]
    metadata: dict[str, str]
    gguf_architecture: str


def expected_tensors(config: Any, arch: ArchSpec, layer_index: int) -> dict[str, tuple[int, ...]]:
    """Artifact name -> shape of every tensor the rebuilt layer and final norm hold (meta device, free)."""
    import torch

    with torch.device("meta"):
        layer = import_object(arch.layer_class)(config, layer_idx=layer_index)
        norm = import_object(arch.final_norm_class)(config.hidden_size, eps=getattr(config, arch.norm_eps_attr))
    shapes = {name: tuple(t.shape) for name, t in layer.state_dict().items()}
    shapes.update({FINAL_NORM_PREFIX + name: tuple(t.shape) for name, t in norm.state_dict().items()})
    return shapes


def gguf_names(gguf_arch: str, num_layers: int, arch: ArchSpec, layer_index: int, names: list[str]) -> dict[str, str]:
    """Artifact name -> GGUF tensor name, through the gguf package's HF<->GGUF name table."""
    import gguf

    arch_id = next((k for k, v in gguf.MODEL_ARCH_NAMES.items() if v == gguf_arch), None)
    if arch_id is None:
        raise UnsupportedModelError(f"the gguf package does not know the GGUF architecture {gguf_arch!r}")
    table = gguf.get_tensor_name_map(arch_id, num_layers)
    out = {}
    for name in names:
        hf = (arch.final_norm_prefix + name[len(FINAL_NORM_PREFIX) :]) if name.startswith(FINAL_NORM_PREFIX) else (
            arch.layer_tensor_prefix(layer_index) + name
        )
        base, dot, suffix = hf.rpartition(".")
        mapped = table.get_name(base)
        if mapped is None:
            raise UnsupportedModelError(
                f"no GGUF name for {hf!r} in the gguf package's table for {gguf_arch!r}",
                "this architecture's GGUF layout is not supported; use its safetensors repo instead",
            )
        out[name] = f"{mapped}{dot}{suffix}"
    return out


def plan_gguf_layer(
    header: GgufHeader,
    names: Mapping[str, str],
    shapes: Mapping[str, tuple[int, ...]],
    *,
    layer_index: int,
    dtype: str,
    config: Mapping[str, Any],
    provenance: Mapping[str, Any],
    pifi_version: str,
    where: str,
) -> GgufLayerPlan:
    """Lay out the artifact: ``names`` maps artifact names to GGUF tensor names, ``shapes`` gives their shapes."""
    target = DTYPE_CHOICES.get(dtype, "?")
    if target == "?":
        raise ConfigError(f"unknown dtype choice {dtype!r}", f"choose one of {', '.join(DTYPE_CHOICES)}")
    found = []
    for name in sorted(names):
        info = header.tensors.get(names[name])
        if info is None:
            raise CorruptFileError(
                f"{where}: tensor {names[name]!r} (for {name}) is missing from the GGUF file",
                "the file is incomplete or was converted with an unusual layout",
            )
        if math.prod(info.shape) != math.prod(shapes[name]):
            raise CorruptFileError(
                f"{where}: {info.name} has shape {list(info.shape)} but {name} needs {list(shapes[name])}",
                "the GGUF metadata and its tensors disagree",
            )
        if info.type_name not in readable_type_names():
            raise UnsupportedModelError(
                f"{where}: {info.name} is stored as {info.type_name}, which pifi cannot read",
                f"GGUF tensor types pifi reads: {', '.join(readable_type_names())}; use another quantization of the model",
            )
        kept = FLOAT_TYPES.get(info.ggml_type, DEQUANTIZED_DTYPE)  # type: ignore[call-overload]  (an IntEnum key)
        out_dtype = target or kept
        found.append((name, info, out_dtype))
    types = {name: info.type_name for name, info, _ in found}
    quantized = sorted({info.type_name for _, info, _ in found if info.quantized})
    full_provenance = {
        **provenance,
        "layer_index": layer_index,
        "original_names": {name: info.name for name, info, _ in found},
        "source_dtype": one_or_list(types.values()),
        "dtype": one_or_list(d for *_, d in found),
        "dequantized": bool(quantized),
        "quantization_types": quantized,
        "gguf_tensor_types": types,
    }
    metadata = artifact_metadata(config, full_provenance, pifi_version)
    raw_header, offsets = build_header([(name, d, tuple(shapes[name])) for name, _, d in found], metadata)
    tensors = [
        GgufPlannedTensor(
            name=name,
            gguf_name=info.name,
            ggml_type=info.ggml_type,
            type_name=info.type_name,
            shape=tuple(shapes[name]),
            gguf_shape=info.shape,
            src_start=info.start,
            src_end=info.end,
            dtype=d,
            out_start=len(raw_header) + off,
        )
        for (name, info, d), off in zip(found, offsets)
    ]
    return GgufLayerPlan(layer_index, raw_header, tensors, metadata, header.architecture)

