"""Parse, validate and build safetensors headers (pure: bytes in, structures out).

A safetensors file is ``u64 little-endian header length`` + ``JSON header`` +
``data``. Each header entry gives a tensor's dtype, shape and ``data_offsets``
relative to the start of the data section. ``__metadata__`` maps str to str.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from typing import Mapping

from .errors import CorruptFileError

# Bytes per element of each safetensors dtype name.
DTYPE_SIZES: dict[str, int] = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4,
    "I64": 8, "U64": 8, "F64": 8,
}
# Largest header we accept: real checkpoints stay far below this.
MAX_HEADER_BYTES = 100 * 1024 * 1024
PREFIX_BYTES = 8


@dataclass(frozen=True)
class TensorEntry:
    """One tensor of a safetensors file: where its bytes are, relative to the data section."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int  # offset of the first byte in the data section
    end: int  # one past the last byte

    @property
    def nbytes(self) -> int:
        return self.end - self.begin

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class SafetensorsHeader:
    """A parsed, validated header of one file."""

    header_len: int  # length of the JSON header in bytes
    tensors: dict[str, TensorEntry]
    metadata: dict[str, str]

    @property
    def data_start(self) -> int:
        """Absolute file offset of the data section."""
        return PREFIX_BYTES + self.header_len


def header_length(prefix: bytes, file_size: int | None, where: str) -> int:
    """Decode the 8-byte prefix; refuse absurd lengths."""
    if len(prefix) != PREFIX_BYTES:
        raise CorruptFileError(f"{where}: file too short to be safetensors ({len(prefix)} bytes)")
    (n,) = struct.unpack("<Q", prefix)
    limit = MAX_HEADER_BYTES if file_size is None else min(MAX_HEADER_BYTES, file_size - PREFIX_BYTES)
    if n < 2 or n > limit:
        raise CorruptFileError(
            f"{where}: corrupt safetensors header length {n} (file size {file_size})",
            "the file is damaged or not safetensors; re-upload or re-download it",
        )
    return n


def parse_header(raw: bytes, file_size: int | None, where: str) -> SafetensorsHeader:
    """Parse and validate the JSON header ``raw`` of a file of ``file_size`` bytes."""
    try:
        obj = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as err:  # JSONDecodeError, or an integer of thousands of digits
        raise CorruptFileError(f"{where}: safetensors header is not valid JSON ({str(err)[:120]})",
                               "the file is corrupt or not a safetensors file: download or extract it again") from None
    except RecursionError:
        raise CorruptFileError(f"{where}: safetensors header is nested too deeply",
                               "the file is corrupt or crafted: download or extract it again") from None
    if not isinstance(obj, dict):
        raise CorruptFileError(f"{where}: safetensors header is not a JSON object")
    metadata = obj.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise CorruptFileError(f"{where}: safetensors __metadata__ must map strings to strings")
    data_size = None if file_size is None else file_size - PREFIX_BYTES - len(raw)
    tensors = {name: _entry(name, spec, where) for name, spec in obj.items()}
    _check_layout(tensors, data_size, where)
    return SafetensorsHeader(len(raw), tensors, metadata)


MAX_RANK = 16
MAX_COUNT = 1 << 62  # no real dimension or byte offset comes near it


def _is_count(value: object) -> bool:
    """A non-negative JSON integer of a sane size (``true`` is not 1)."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_COUNT


def _entry(name: str, spec: object, where: str) -> TensorEntry:
    if not isinstance(spec, dict):
        raise CorruptFileError(f"{where}: header entry {name!r} is not an object")
    dtype, shape, offsets = spec.get("dtype"), spec.get("shape"), spec.get("data_offsets")
    if dtype not in DTYPE_SIZES:
        raise CorruptFileError(f"{where}: tensor {name!r} has unknown dtype {dtype!r}")
    if not isinstance(shape, list) or len(shape) > MAX_RANK or not all(_is_count(d) for d in shape):
        raise CorruptFileError(f"{where}: tensor {name!r} has an invalid shape {shape!r}")
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(_is_count(o) for o in offsets)
        or offsets[0] > offsets[1]
    ):
        raise CorruptFileError(f"{where}: tensor {name!r} has invalid data_offsets {offsets!r}")
    entry = TensorEntry(name, dtype, tuple(shape), offsets[0], offsets[1])
    if entry.nbytes != entry.numel * DTYPE_SIZES[dtype]:
        raise CorruptFileError(
            f"{where}: tensor {name!r} spans {entry.nbytes} bytes but {dtype}{list(shape)} needs "
            f"{entry.numel * DTYPE_SIZES[dtype]}"
        )
    return entry


def _check_layout(tensors: Mapping[str, TensorEntry], data_size: int | None, where: str) -> None:
    """Offsets must lie inside the data section, never overlap, and leave no gap (as the safetensors format says)."""
    spans = sorted((e.begin, e.end, e.name) for e in tensors.values() if e.nbytes)
    for (_, end_a, a), (begin_b, _, b) in zip(spans, spans[1:]):
        if begin_b < end_a:
            raise CorruptFileError(f"{where}: tensors {a!r} and {b!r} overlap in the data section")
        if begin_b > end_a:
            raise CorruptFileError(f"{where}: a gap of {begin_b - end_a} bytes lies between tensors {a!r} and {b!r}",
                                   "the header is corrupt or crafted: download or extract the file again")
    if spans and spans[0][0] != 0:
        raise CorruptFileError(f"{where}: the data section starts with {spans[0][0]} bytes no tensor owns",
                               "the header is corrupt or crafted: download or extract the file again")
    if data_size is not None and spans and spans[-1][1] > data_size:
        raise CorruptFileError(
            f"{where}: tensor {spans[-1][2]!r} ends at byte {spans[-1][1]} but the data section has {data_size}",
            "the file is truncated or its header is corrupt",
        )


def build_header(entries: list[tuple[str, str, tuple[int, ...]]], metadata: Mapping[str, str]) -> tuple[bytes, list[int]]:
    """Header bytes (length prefix included) for tensors laid out back to back in the given order.

    ``entries`` holds (name, dtype, shape). Returns the full prefix+header bytes,
    padded with spaces to a multiple of 8, and each tensor's data-section offset.
    """
    obj: dict[str, object] = {"__metadata__": dict(metadata)}
    offsets: list[int] = []
    pos = 0
    for name, dtype, shape in entries:
        n = DTYPE_SIZES[dtype] * math.prod(shape)
        obj[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [pos, pos + n]}
        offsets.append(pos)
        pos += n
    raw = json.dumps(obj, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-(len(raw) + PREFIX_BYTES) % 8)
    return struct.pack("<Q", len(raw)) + raw, offsets
