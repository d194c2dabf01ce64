"""Forged pifi artifacts, as a hostile user makes them with pifi's own header code (for tests only)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Callable

from pifi_extract.artifact import DATA_HASH_PLACEHOLDER, HEADER_HASH_PLACEHOLDER, METADATA_KEYS
from pifi_extract.safetensors_header import PREFIX_BYTES, build_header, header_length, parse_header
from pifi_extract.writer import finish_header


def forge(
    src: Path,
    dst: Path,
    *,
    swap: tuple[str, str] | None = None,
    data: Callable[[bytes], bytes] | None = None,
    provenance: dict[str, Any] | None = None,
    format_1: bool = False,
) -> Path:
    """Re-write the artifact ``src`` at ``dst``: tensor names ``swap``ped (same data), the data section changed by
    ``data``, provenance entries updated; every hash recomputed (``format_1``: the header digest stripped and
    ``pifi.format`` set to 1, a downgrade), so the result is self-consistent."""
    raw = src.read_bytes()
    n = header_length(raw[:PREFIX_BYTES], len(raw), str(src))
    header = parse_header(raw[PREFIX_BYTES : PREFIX_BYTES + n], len(raw), str(src))
    body = raw[header.data_start :]
    entries = sorted(header.tensors.values(), key=lambda e: e.begin)
    names = {e.name: e.name for e in entries}
    if swap is not None:
        names[swap[0]], names[swap[1]] = swap[1], swap[0]
    chunks = [body[e.begin : e.end] for e in entries]
    new_body = b"".join(chunks)
    if data is not None:
        new_body = data(new_body)
    meta = dict(header.metadata)
    if provenance:
        meta[METADATA_KEYS["provenance"]] = json.dumps({**json.loads(meta[METADATA_KEYS["provenance"]]), **provenance},
                                                       sort_keys=True)
    meta[METADATA_KEYS["data_sha256"]] = DATA_HASH_PLACEHOLDER
    if format_1:
        meta[METADATA_KEYS["format"]] = "1"
        meta.pop(METADATA_KEYS["header_sha256"], None)
    else:
        meta[METADATA_KEYS["header_sha256"]] = HEADER_HASH_PLACEHOLDER
    head, _ = build_header([(names[e.name], e.dtype, e.shape) for e in entries], meta)
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(finish_header(head, hashlib.sha256(new_body).hexdigest()) + new_body)
    return dst
