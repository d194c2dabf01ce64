"""Convert raw little-endian tensor bytes between safetensors dtypes, chunk by chunk.

torch is imported on the first conversion only: ``--dtype keep`` and the CLI never pay for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

_DTYPE_NAMES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64",
                "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool"}


def torch_dtype(name: str) -> "torch.dtype":
    """The torch dtype of safetensors dtype ``name`` (F32, BF16, ...)."""
    import torch

    return getattr(torch, _DTYPE_NAMES[name])


def convert_bytes(data: bytes, src_dtype: str, dst_dtype: str) -> bytes:
    """``data`` (elements of ``src_dtype``) as elements of ``dst_dtype``; a no-op when they match."""
    if src_dtype == dst_dtype or not data:
        return data
    import torch

    src = torch.frombuffer(bytearray(data), dtype=torch_dtype(src_dtype))  # (N,)
    return src.to(torch_dtype(dst_dtype)).view(torch.uint8).numpy().tobytes()
