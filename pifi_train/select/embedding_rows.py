"""Read only the embedding rows of the token ids a batch of samples uses, by range reads.

:func:`row_runs` (pure) turns sorted token ids into runs of adjacent rows; :func:`read_embedding_rows`
finds the embedding tensor (a safetensors shard's header, or the GGUF header), reads each run's bytes
(one range read per run, never a row of an unused id), dequantizes GGUF blocks, and applies the
architecture's embedding scale (``ArchSpec.embedding_scale``).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from pifi_extract.architectures import ArchSpec
from pifi_extract.sources import is_gguf
from pifi_extract.errors import CorruptFileError, UnsupportedModelError

GGUF_EMBEDDING = "token_embd.weight"
_TORCH_DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}


def row_runs(ids: Sequence[int]) -> list[tuple[int, int]]:
    """Half-open row ranges ``[start, end)`` covering exactly the distinct ``ids``, adjacent ids merged."""
    runs: list[tuple[int, int]] = []
    for i in sorted(set(int(x) for x in ids)):
        if runs and runs[-1][1] == i:
            runs[-1] = (runs[-1][0], i + 1)
        else:
            runs.append((i, i + 1))
    return runs


def read_embedding_rows(
    source: Any, arch: ArchSpec, config: dict[str, Any], ids: Sequence[int], *, progress: Any = None
) -> torch.Tensor:  # (len(ids), H) float32, rows in sorted-id order
    """The (scaled) embedding rows of the distinct sorted ``ids``, read by range requests."""
    runs = row_runs(ids)
    if is_gguf(source):
        rows = _gguf_rows(source, runs, progress)
    else:
        rows = _safetensors_rows(source, arch, runs, progress)
    if arch.embedding_scale == "sqrt_hidden":  # as the model: the scale rounded to the weights' dtype
        rows = rows * torch.tensor(float(config["hidden_size"]) ** 0.5, dtype=rows.dtype)
    return rows.float()


def _check_ids(runs: list[tuple[int, int]], vocab: int, where: str) -> None:
    if runs and runs[-1][1] > vocab:
        raise CorruptFileError(
            f"{where}: the tokenizer produced token id {runs[-1][1] - 1}, but the embedding has {vocab} rows",
            "the tokenizer does not belong to this model; pass the model's own --tokenizer",
        )


def _safetensors_rows(source: Any, arch: ArchSpec, runs: list[tuple[int, int]], progress: Any) -> torch.Tensor:
    from pifi_extract.extract import read_safetensors_header
    from pifi_extract.plan import INDEX_FILE, choose_weight_files, parse_weight_map
    from pifi_extract.sources import read_json

    weights = choose_weight_files(source.files())
    if weights == INDEX_FILE:
        file = parse_weight_map(read_json(source, weights), source.name).get(arch.embedding_name)
    else:
        file = weights
    header = read_safetensors_header(source, file) if file else None
    entry = header.tensors.get(arch.embedding_name) if header else None
    if entry is None:
        raise CorruptFileError(f"{source.name}: the checkpoint has no embedding tensor {arch.embedding_name!r}")
    if entry.dtype not in _TORCH_DTYPES or len(entry.shape) != 2:
        raise UnsupportedModelError(f"{source.name}: embedding of dtype {entry.dtype} shape {entry.shape}")
    vocab, hidden = entry.shape
    _check_ids(runs, vocab, source.name)
    dtype = _TORCH_DTYPES[entry.dtype]
    row_bytes = hidden * torch.empty((), dtype=dtype).element_size()
    base = header.data_start + entry.begin
    pieces = [
        torch.frombuffer(bytearray(source.read(file, base + a * row_bytes, base + b * row_bytes, progress=progress)),
                         dtype=dtype).reshape(b - a, hidden)
        for a, b in runs
    ]
    return torch.cat(pieces) if pieces else torch.empty(0, hidden, dtype=dtype)


def _gguf_rows(source: Any, runs: list[tuple[int, int]], progress: Any) -> torch.Tensor:
    from gguf import GGMLQuantizationType, dequantize
    from gguf.quants import quant_shape_to_byte_shape

    header, _ = source.header()
    info = header.tensors.get(GGUF_EMBEDDING)
    if info is None or len(info.shape) != 2:
        raise CorruptFileError(f"{source.name}: the GGUF file has no 2-D {GGUF_EMBEDDING!r}")
    vocab, hidden = info.shape
    _check_ids(runs, vocab, source.name)
    qtype = GGMLQuantizationType(info.ggml_type)
    row_bytes = info.nbytes // vocab
    pieces = []
    for a, b in runs:
        raw = np.frombuffer(source.read(source.file, info.start + a * row_bytes, info.start + b * row_bytes,
                                        progress=progress), dtype=np.uint8)
        if qtype == GGMLQuantizationType.F32:
            values = raw.view(np.float32).reshape(b - a, hidden)
        elif qtype == GGMLQuantizationType.F16:
            values = raw.view(np.float16).reshape(b - a, hidden)
        else:
            values = dequantize(raw.reshape(quant_shape_to_byte_shape((b - a, hidden), qtype)), qtype)
        pieces.append(torch.from_numpy(np.array(values, dtype=np.float32)))
    return torch.cat(pieces) if pieces else torch.empty(0, hidden)
