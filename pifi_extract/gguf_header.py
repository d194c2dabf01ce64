"""Parse a GGUF file's header from a byte prefix (pure: bytes in, structures out).

A GGUF file (llama.cpp) is ``magic "GGUF"``, ``u32 version``, ``u64 tensor count``,
``u64 metadata count``, the metadata key/value pairs, the tensor table (name, dims
fastest-first, ggml type, offset in the data section), padding to
``general.alignment`` (default 32), then the tensor data. The header has no length
field, so a remote reader fetches a prefix, calls :func:`parse_gguf_header`, and on
:class:`NeedMoreBytes` fetches more. The format's constants come from the ``gguf``
package (the llama.cpp project's own Python library).
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Any

from .errors import CorruptFileError, UnsupportedModelError

try:
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFValueType
except ImportError:  # pragma: no cover - the optional extra is missing
    raise UnsupportedModelError(
        "reading GGUF files needs the gguf package (llama.cpp's Python library)", "pip install 'pifi[gguf]'"
    ) from None

GGUF_MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32
# Bounds on what a header may claim, checked before any byte past them is read or walked: real
# headers (a 262k-token vocabulary, merges and chat templates included) are 1-20 MB, keys < 64 KiB,
# arrays never nest deeper than an array of arrays, and vocabularies hold < 1 M strings.
MAX_HEADER_BYTES = 64 << 20
MAX_COUNT = 1 << 24  # items of one array
MAX_METADATA = 1 << 16  # metadata pairs (real files: < 100)
MAX_TENSORS = 1 << 18  # tensors (real files: < 5000)
MAX_KEY_BYTES = (1 << 16) - 1  # the GGUF spec's limit on a key (and pifi's on a tensor name)
MAX_ARRAY_DEPTH = 2  # an array of arrays at most
MAX_WALKED_STRINGS = 1 << 22  # strings inside arrays, in the whole header (walked one by one)
MAX_NESTED_ARRAYS = 1 << 16  # arrays inside arrays, in the whole header (real files: none)
MAX_DIMS = 4  # GGML_MAX_DIMS
MAX_ALIGNMENT = 1 << 16  # general.alignment: real files use 32 (a power of two)
# Types stored as plain values (not blocks) that pifi can keep as they are.
FLOAT_TYPES = {GGMLQuantizationType.F32: "F32", GGMLQuantizationType.F16: "F16", GGMLQuantizationType.BF16: "BF16"}

_SCALAR_FORMATS = {
    GGUFValueType.UINT8: "<B", GGUFValueType.INT8: "<b", GGUFValueType.BOOL: "<?",
    GGUFValueType.UINT16: "<H", GGUFValueType.INT16: "<h",
    GGUFValueType.UINT32: "<I", GGUFValueType.INT32: "<i", GGUFValueType.FLOAT32: "<f",
    GGUFValueType.UINT64: "<Q", GGUFValueType.INT64: "<q", GGUFValueType.FLOAT64: "<d",
}  # fmt: skip


class NeedMoreBytes(Exception):
    """The prefix ends inside the header; at least ``needed`` bytes of the file are required."""

    def __init__(self, needed: int) -> None:
        super().__init__(needed)
        self.needed = needed


@dataclass(frozen=True)
class GgufTensorInfo:
    """One tensor of the file: its type, torch-order shape and absolute byte range."""

    name: str
    ggml_type: int
    shape: tuple[int, ...]  # torch order (slowest dim first); GGUF stores the reverse
    start: int  # absolute file offset
    end: int

    @property
    def type_name(self) -> str:
        return GGMLQuantizationType(self.ggml_type).name

    @property
    def quantized(self) -> bool:
        """Stored as blocks that must be dequantized (anything but F32/F16/BF16)."""
        return self.ggml_type not in FLOAT_TYPES

    @property
    def nbytes(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class GgufHeader:
    """What pifi needs from a header: scalar metadata (arrays skipped), tensors, where data starts."""

    version: int
    metadata: dict[str, Any]  # scalar and string values only; arrays (vocabularies) are not kept
    array_lengths: dict[str, int]  # metadata key of each array -> its number of items
    tensors: dict[str, GgufTensorInfo]
    data_start: int  # absolute offset of the data section == the header's length
    # Byte spans (start, end) of each metadata pair and of the whole tensor table, for slim_header().
    kv_spans: tuple[tuple[str, int, int], ...] = ()
    table_span: tuple[int, int] = (0, 0)

    @property
    def architecture(self) -> str:
        return str(self.metadata.get("general.architecture", "?"))


class _ArrayLength(int):
    """Marks a metadata value that was an array (only its length is kept)."""


_U64 = struct.Struct("<Q")
# The smallest encoding of one array item of a non-scalar type (a string: its u64 length; an array:
# u32 item type + u64 count), so an item count is checked against the header bound before walking.
_MIN_ITEM_BYTES = {GGUFValueType.STRING: 8, GGUFValueType.ARRAY: 12}


class _Cursor:
    """Reads little-endian values from a prefix of a file of ``file_size`` bytes."""

    def __init__(self, buf: bytes | memoryview, file_size: int, where: str) -> None:
        self.buf, self.file_size, self.where, self.pos = memoryview(buf), file_size, where, 0
        self.strings = self.arrays = 0  # items walked one by one: strings and arrays inside arrays

    def need(self, n: int) -> None:
        end = self.pos + n
        if end > MAX_HEADER_BYTES:
            raise CorruptFileError(
                f"{self.where}: GGUF header claims more than {MAX_HEADER_BYTES >> 20} MiB (byte {end})",
                "real headers are a few MB; the file is damaged or not a model",
            )
        if end > self.file_size:
            raise CorruptFileError(
                f"{self.where}: GGUF header runs past the end of the file (byte {end} of {self.file_size})",
                "the file is truncated or not GGUF; download it again",
            )
        if end > len(self.buf):
            raise NeedMoreBytes(end)

    def unpack(self, fmt: str) -> Any:
        size = struct.calcsize(fmt)
        self.need(size)
        value = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += size
        return value[0] if len(value) == 1 else value

    def count(self, what: str, limit: int = MAX_COUNT) -> int:
        n = self.unpack("<Q")
        if n > limit:
            raise CorruptFileError(f"{self.where}: absurd GGUF {what} count {n}", "the file is damaged or not GGUF")
        return n

    def string(self, limit: int | None = None) -> str:
        n = self.unpack("<Q")
        if limit is not None and n > limit:
            raise CorruptFileError(
                f"{self.where}: GGUF key or tensor name of {n} bytes at byte {self.pos - 8}", "the file is damaged"
            )
        self.need(n)
        raw = bytes(self.buf[self.pos : self.pos + n])
        self.pos += n
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise CorruptFileError(f"{self.where}: GGUF string at byte {self.pos - n} is not UTF-8") from None

    def skip_string(self) -> None:
        n = self.unpack("<Q")
        self.need(n)
        self.pos += n

    def _walk(self, strings: int = 0, arrays: int = 0) -> None:
        self.strings, self.arrays = self.strings + strings, self.arrays + arrays
        if self.strings > MAX_WALKED_STRINGS or self.arrays > MAX_NESTED_ARRAYS:
            raise CorruptFileError(
                f"{self.where}: GGUF metadata holds more than {MAX_WALKED_STRINGS} strings in arrays "
                f"or {MAX_NESTED_ARRAYS} arrays in arrays",
                "real vocabularies hold < 1 M tokens; the file is damaged or not a model",
            )

    def skip_strings(self, n: int) -> None:
        """Skip ``n`` strings (a vocabulary): one tight loop over their lengths, bounds checked as it goes."""
        self._walk(strings=n)
        self.need(8 * n)  # each string is at least its length field
        buf, start, limit, unpack = self.buf, self.pos, min(len(self.buf), MAX_HEADER_BYTES), _U64.unpack_from
        pos = start
        for done in range(n):
            if pos + 8 > limit:
                break
            pos += 8 + unpack(buf, pos)[0]
        else:
            self.pos = pos
            self.need(0)
            return
        self.pos = pos
        try:
            self.need(8)  # past what is read (or allowed): NeedMoreBytes or an error; the loop restarts on retry
        except NeedMoreBytes as more:
            # Ask for the rest of the array at once, from the mean length so far: one more read, not log2(size).
            guess = pos + ((pos - start) // done + 1) * (n - done) if done else more.needed
            raise NeedMoreBytes(max(more.needed, min(guess, self.file_size, MAX_HEADER_BYTES))) from None

    def value(self, value_type: int, keep: bool, depth: int = 0) -> Any:
        """One metadata value; an array is walked and returned as its length (it can be huge)."""
        if value_type in _SCALAR_FORMATS:
            return self.unpack(_SCALAR_FORMATS[GGUFValueType(value_type)])
        if value_type == GGUFValueType.STRING:
            return self.string() if keep else self.skip_string()
        if value_type == GGUFValueType.ARRAY:
            if depth >= MAX_ARRAY_DEPTH:
                raise CorruptFileError(
                    f"{self.where}: GGUF arrays nested deeper than {MAX_ARRAY_DEPTH} at byte {self.pos}",
                    "the file is damaged or not a model",
                )
            item_type, n = self.unpack("<I"), self.count("array item")
            if item_type in _SCALAR_FORMATS:
                size = struct.calcsize(_SCALAR_FORMATS[GGUFValueType(item_type)])
                self.need(size * n)
                self.pos += size * n
            elif item_type == GGUFValueType.STRING:
                self.skip_strings(n)
            elif item_type == GGUFValueType.ARRAY:
                self._walk(arrays=n)
                self.need(_MIN_ITEM_BYTES[GGUFValueType.ARRAY] * n)
                for _ in range(n):
                    self.value(item_type, keep=False, depth=depth + 1)
            else:
                raise CorruptFileError(f"{self.where}: unknown GGUF array item type {item_type}")
            return _ArrayLength(n)
        raise CorruptFileError(f"{self.where}: unknown GGUF metadata value type {value_type}")


def parse_gguf_header(buf: bytes | memoryview, file_size: int, where: str) -> GgufHeader:
    """Parse the header at the start of ``buf`` (a prefix of a ``file_size``-byte file).

    Raises :class:`NeedMoreBytes` when the prefix is too short and :class:`CorruptFileError`
    when the bytes are not a valid GGUF header or tensors lie outside the file.
    """
    cur = _Cursor(buf, file_size, where)
    cur.need(4)
    if bytes(cur.buf[:4]) != GGUF_MAGIC:
        raise CorruptFileError(f"{where} is not a GGUF file (bad magic bytes)", "pass a .gguf file (llama.cpp)")
    cur.pos = 4
    version = cur.unpack("<I")
    if version not in SUPPORTED_VERSIONS:
        raise CorruptFileError(f"{where}: GGUF version {version} is not supported (only 2 and 3)")
    tensor_count, kv_count = cur.count("tensor", MAX_TENSORS), cur.count("metadata", MAX_METADATA)
    metadata: dict[str, Any] = {}
    array_lengths: dict[str, int] = {}
    kv_spans = []
    for _ in range(kv_count):
        start = cur.pos
        key = cur.string(MAX_KEY_BYTES)
        value = cur.value(cur.unpack("<I"), keep=True)
        if isinstance(value, _ArrayLength):
            array_lengths[key] = int(value)
        else:
            metadata[key] = value
        kv_spans.append((key, start, cur.pos))
    table_start = cur.pos
    table = []
    for _ in range(tensor_count):
        name = cur.string(MAX_KEY_BYTES)
        n_dims = cur.unpack("<I")
        if not 0 < n_dims <= MAX_DIMS:
            raise CorruptFileError(f"{where}: tensor {name!r} has {n_dims} dimensions")
        dims = [cur.unpack("<Q") for _ in range(n_dims)]
        ggml_type, offset = cur.unpack("<I"), cur.unpack("<Q")
        table.append((name, dims, ggml_type, offset))
    alignment = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
    if not isinstance(alignment, int) or not 0 < alignment <= MAX_ALIGNMENT or alignment & (alignment - 1):
        raise CorruptFileError(f"{where}: invalid general.alignment {alignment!r}", "the file is damaged")
    data_start = -(-cur.pos // alignment) * alignment
    tensors = {name: _tensor(name, dims, t, data_start + off, file_size, where) for name, dims, t, off in table}
    if len(tensors) != len(table):
        raise CorruptFileError(f"{where}: the GGUF tensor table names a tensor twice")
    return GgufHeader(
        version, metadata, array_lengths, tensors, data_start, tuple(kv_spans), (table_start, cur.pos)
    )


def slim_header(prefix: bytes, header: GgufHeader, drop_arrays: str = "tokenizer.") -> bytes:
    """A copy of the header without the arrays under ``drop_arrays`` (the vocabulary and merges).

    Parsing a 50k-token vocabulary takes the gguf reader seconds and the model config needs only
    its length, so that is kept as ``{arch}.vocab_size`` when the file does not state it. Tensor
    offsets are relative to the data section, so the table is copied unchanged; the result is
    padded to the file's alignment and is followed by the data section in a replica file.
    """
    dropped = {key for key in header.array_lengths if key.startswith(drop_arrays)}
    kept = [bytes(prefix[start:end]) for key, start, end in header.kv_spans if key not in dropped]
    vocab_key = f"{header.architecture}.vocab_size"
    tokens = header.array_lengths.get("tokenizer.ggml.tokens")
    if vocab_key not in header.metadata and tokens is not None:
        key = vocab_key.encode()
        kept.append(struct.pack("<Q", len(key)) + key + struct.pack("<II", GGUFValueType.UINT32, tokens))
    out = bytearray(GGUF_MAGIC + struct.pack("<IQQ", header.version, len(header.tensors), len(kept)))
    for raw in kept:
        out += raw
    out += prefix[header.table_span[0] : header.table_span[1]]
    alignment = header.metadata.get("general.alignment", DEFAULT_ALIGNMENT)
    out += b"\0" * (-len(out) % alignment)
    return bytes(out)


def readable_type_names() -> list[str]:
    """The ggml types pifi can turn into floats: F32, F16 and every type ``gguf.quants`` dequantizes."""
    from gguf import quants

    traits = getattr(quants, "_type_traits", {})  # the gguf package's table of implemented block types
    return ["F32", "F16"] + sorted(t.name for t in traits)


def _tensor(name: str, dims: list[int], ggml_type: int, start: int, file_size: int, where: str) -> GgufTensorInfo:
    try:
        qtype = GGMLQuantizationType(ggml_type)
        block, type_size = GGML_QUANT_SIZES[qtype]
    except (ValueError, KeyError):
        raise CorruptFileError(f"{where}: tensor {name!r} has unknown ggml type {ggml_type}") from None
    numel = math.prod(dims)
    if dims[0] % block:
        raise CorruptFileError(f"{where}: tensor {name!r} rows ({dims[0]}) are not whole {qtype.name} blocks")
    end = start + numel // block * type_size
    if end > file_size:
        raise CorruptFileError(
            f"{where}: tensor {name!r} ends at byte {end} but the file has {file_size}",
            "the file is truncated; download it again",
        )
    return GgufTensorInfo(name, int(qtype), tuple(reversed(dims)), start, end)
