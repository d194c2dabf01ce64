"""GGUF tensor bytes -> the float32 values transformers' own GGUF loader would give the parameter.

Dequantization is ``gguf.quants.dequantize`` (the llama.cpp project's reference kernels); the
architecture's fix-ups (the q/k rotary un-permutation of Llama-family files, Gemma's norm offset...)
are transformers' GGUF tensor processor for that architecture.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import UnsupportedModelError
from .gguf_plan import GgufPlannedTensor


def dequantize_values(raw: bytes, tensor: GgufPlannedTensor) -> np.ndarray:
    """The tensor's values as float32 in GGUF's shape (torch order), via ``gguf.quants.dequantize``."""
    from gguf import GGMLQuantizationType, dequantize
    from gguf.quants import quant_shape_to_byte_shape

    qtype = GGMLQuantizationType(tensor.ggml_type)
    data = np.frombuffer(raw, dtype=np.uint8)
    if qtype == GGMLQuantizationType.F32:
        data = data.view(np.float32).reshape(tensor.gguf_shape)
    elif qtype == GGMLQuantizationType.F16:
        data = data.view(np.float16).reshape(tensor.gguf_shape)
    else:
        data = data.reshape(quant_shape_to_byte_shape(tensor.gguf_shape, qtype))
    return np.asarray(dequantize(data, qtype), dtype=np.float32)


class TensorFixer:
    """transformers' GGUF tensor processor for one architecture, applied to one tensor at a time."""

    def __init__(self, gguf_arch: str, config: dict[str, Any]) -> None:
        from transformers.modeling_gguf_pytorch_utils import TENSOR_PROCESSORS, TensorProcessor

        self._processor = TENSOR_PROCESSORS.get(gguf_arch, TensorProcessor)(config=config)

    def __call__(self, values: np.ndarray, gguf_name: str) -> np.ndarray:
        """``values`` (float32, GGUF layout) as transformers loads them, C-contiguous float32."""
        result = self._processor.process(
            weights=values, name=gguf_name, tensor_key_mapping={}, parsed_parameters={"tensors": {}}
        )
        if result.name is None:
            raise UnsupportedModelError(f"{gguf_name}: this GGUF tensor layout (merged experts) is not supported")
        return np.ascontiguousarray(result.weights, dtype=np.float32)
