"""Convert raw little-endian tensor bytes between safetensors dtypes, chunk by chunk."""

from __future__ import annotations

import torch

TORCH_DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}


def convert_bytes(data: bytes, src_dtype: str, dst_dtype: str) -> bytes:
    """``data`` (elements of ``src_dtype``) as elements of ``dst_dtype``; a no-op when they match."""
    if src_dtype == dst_dtype or not data:
        return data
    src = torch.frombuffer(bytearray(data), dtype=TORCH_DTYPES[src_dtype])  # (N,)
    return src.to(TORCH_DTYPES[dst_dtype]).view(torch.uint8).numpy().tobytes()
