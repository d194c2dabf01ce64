"""Hostile GGUF headers end in one error (one CLI line, exit 2): no traceback, no memory or CPU bomb.

Each file is crafted in a tmp folder: arrays nested thousands deep, a string claiming most of a big
sparse file, a million arrays in one array, tensors stored in types pifi cannot read.
"""

from __future__ import annotations

import struct
import time

import gguf
import pytest
from tiny_gguf import write_tiny_gguf
from tiny_models import build_tiny_model

from pifi_extract import extract_layer
from pifi_extract.errors import ConfigError, CorruptFileError, UnsupportedModelError
from pifi_extract.gguf_header import MAX_HEADER_BYTES, parse_gguf_header
from cli_runner import run_cli

V = gguf.GGUFValueType


def _gguf(*pairs: bytes, tensors: int = 0) -> bytes:
    """A GGUF v3 header holding the raw metadata ``pairs`` and claiming ``tensors`` tensors."""
    return b"GGUF" + struct.pack("<IQQ", 3, tensors, len(pairs)) + b"".join(pairs)


def _key(name: str, value_type: int) -> bytes:
    return struct.pack("<Q", len(name)) + name.encode() + struct.pack("<I", value_type)


def _nested_arrays(depth: int) -> bytes:
    """``depth`` arrays, each holding the next one; the innermost is empty."""
    return _key("a.nested", V.ARRAY) + struct.pack("<IQ", V.ARRAY, 1) * (depth - 1) + struct.pack("<IQ", V.UINT8, 0)


def _pifi(capsys, *args: str) -> tuple[int, str]:
    """Run the CLI in-process: (exit code, stderr)."""
    code, _, err = run_cli(capsys, *args)
    return code, err


def _refused_in_one_line(capsys, path, tmp_path, pattern: str) -> None:
    code, err = _pifi(capsys, "extract", "--llm", str(path), "--layer", "-1", "--no-cache", "-o", str(tmp_path / "out.safetensors"))
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert pattern in err, err
    assert not (tmp_path / "out.safetensors").exists()


def test_arrays_nested_5000_deep(tmp_path, capsys):
    raw = _gguf(_nested_arrays(5000))
    with pytest.raises(CorruptFileError, match="nested deeper than 2"):
        parse_gguf_header(raw, len(raw), "deep.gguf")
    (tmp_path / "deep.gguf").write_bytes(raw)
    _refused_in_one_line(capsys, tmp_path / "deep.gguf", tmp_path, "nested deeper")
    # A million nested arrays (12 MB): refused at the third level, at once (CPU time: a loaded box cannot fail it).
    million = _gguf(_nested_arrays(1_000_000))
    started = time.process_time()
    with pytest.raises(CorruptFileError, match="nested deeper than 2 at byte 68"):
        parse_gguf_header(million, len(million), "million.gguf")
    assert time.process_time() - started < 0.5
    # An array of arrays (the spec allows it) still parses.
    ok = _gguf(_nested_arrays(2))
    assert parse_gguf_header(ok, len(ok), "ok.gguf").array_lengths == {"a.nested": 1}


def test_a_million_arrays_in_one_array_is_refused_at_once(tmp_path, capsys):
    n = 1_000_000  # 12 MB of empty arrays
    raw = _gguf(_key("a.many", V.ARRAY) + struct.pack("<IQ", V.ARRAY, n) + struct.pack("<IQ", V.UINT8, 0) * n)
    started = time.process_time()
    with pytest.raises(CorruptFileError, match="arrays in arrays"):
        parse_gguf_header(raw, len(raw), "many.gguf")
    # Refused from the count, before walking one item (CPU time, not wall: a loaded box cannot fail it).
    assert time.process_time() - started < 0.5
    (tmp_path / "many.gguf").write_bytes(raw)
    _refused_in_one_line(capsys, tmp_path / "many.gguf", tmp_path, "arrays in arrays")


def test_counts_beyond_a_real_header_are_refused():
    for raw, what in [
        (b"GGUF" + struct.pack("<IQQ", 3, 0, 1 << 20), "metadata count"),
        (b"GGUF" + struct.pack("<IQQ", 3, 1 << 20, 0), "tensor count"),
        (_gguf(_key("t.tokens", V.ARRAY) + struct.pack("<IQ", V.STRING, 1 << 23)), "strings in arrays"),
        (_gguf(struct.pack("<Q", 1 << 20) + b"k" * 64), "key or tensor name"),
    ]:
        with pytest.raises(CorruptFileError, match=what):
            parse_gguf_header(raw + b"\0" * 4096, 1 << 30, "x.gguf")


def test_an_absurd_alignment_is_refused():
    """A header without tensors but a 2**31 alignment would otherwise pad the config replica to 2 GB."""
    align = _key("general.alignment", V.UINT32) + struct.pack("<I", 1 << 31)
    raw = _gguf(align)
    with pytest.raises(CorruptFileError, match="invalid general.alignment"):
        parse_gguf_header(raw, len(raw), "x.gguf")
    fits = _gguf(_key("general.alignment", V.UINT32) + struct.pack("<I", 64))
    assert parse_gguf_header(fits, len(fits), "x.gguf").data_start == 64


def _huge_string_file(path, claimed: int) -> None:
    """A sparse file of ``claimed + 16 MiB`` bytes whose first metadata value claims a ``claimed``-byte string."""
    raw = _gguf(_key("general.name", V.STRING) + struct.pack("<Q", claimed))
    with open(path, "wb") as fh:
        fh.write(raw)
        fh.truncate(claimed + (16 << 20))


def test_a_string_claiming_most_of_the_file_is_refused_before_reading_it(tmp_path, capsys):
    path = tmp_path / "huge.gguf"
    _huge_string_file(path, 900 << 20)  # 900 MiB string in a ~1 GB (sparse) file
    with open(path, "rb") as fh:
        raw = fh.read(4096)
    with pytest.raises(CorruptFileError, match="MiB"):
        parse_gguf_header(raw, path.stat().st_size, str(path))  # refused from the claim, not after reading it
    _refused_in_one_line(capsys, path, tmp_path, "real headers are a few MB")


def test_a_huge_string_via_the_hub_downloads_only_a_bounded_prefix(tmp_path, hub_server, capsys):
    folder = tmp_path / "repo"
    folder.mkdir()
    claimed = MAX_HEADER_BYTES + (16 << 20)  # past the bound, yet a file the test server hashes quickly
    _huge_string_file(folder / "huge.gguf", claimed)
    hub_server.add_repo("org/huge-gguf", folder)
    hub_server.reset_counters()
    with pytest.raises(CorruptFileError, match="real headers are a few MB"):
        extract_layer("org/huge-gguf", -1, tmp_path / "a.safetensors", gguf_file="huge.gguf")
    assert hub_server.bytes_for("org/huge-gguf", "huge.gguf") <= 1 << 20  # the first read; never the claimed string
    code, err = _pifi(capsys, "extract", "--llm", "org/huge-gguf", "--gguf-file", "huge.gguf", "--layer", "-1", "-o", str(tmp_path / "b"))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "real headers" in err, err


@pytest.mark.parametrize("qtype", [gguf.GGMLQuantizationType.F64, gguf.GGMLQuantizationType.I32, gguf.GGMLQuantizationType.Q8_1])
def test_layer_tensors_of_unreadable_types_are_refused(tmp_path, capsys, qtype):
    model = build_tiny_model("llama", seed=2)
    path = write_tiny_gguf(model, tmp_path / f"odd.{qtype.name}.gguf", quantize={"attn_q": qtype})
    with pytest.raises(UnsupportedModelError, match=f"stored as {qtype.name}, which pifi cannot read.*Q4_K"):
        extract_layer(str(path), -1, tmp_path / "a.safetensors")
    _refused_in_one_line(capsys, path, tmp_path, "GGUF tensor types pifi reads: F32, F16, BF16")


def test_gguf_sources_implement_read_into(tmp_path, hub_server, monkeypatch):
    """GgufSource (over a mapped file or a Hub repo) and MappedFile deliver ranges piece by piece, as read() does."""
    from pifi_extract import gguf_source, mapped_file
    from pifi_extract.mapped_file import MappedFile

    monkeypatch.setattr(mapped_file, "LOCAL_PIECE", 64 << 10)
    path = write_tiny_gguf(build_tiny_model("llama", seed=4), tmp_path / "m.gguf")
    hub_server.add_repo("org/m-gguf", tmp_path)
    start, end = 5, path.stat().st_size - 7
    assert end - start > 4 * (64 << 10)
    for source, local in (
        (MappedFile(path), True),
        (gguf_source.open_gguf_source(str(path)), True),
        (gguf_source.open_gguf_source("org/m-gguf", "m.gguf"), False),
    ):
        got = bytearray(end - start)
        offsets = []

        def sink(offset: int, piece: bytes) -> None:
            offsets.append(offset)
            got[offset : offset + len(piece)] = piece

        source.read_into("m.gguf", start, end, sink)
        assert bytes(got) == path.read_bytes()[start:end] == source.read("m.gguf", start, end)
        assert offsets[0] == 0 and (len(offsets) > 4 or not local)
    assert MappedFile(path).etag("m.gguf") == gguf_source.open_gguf_source(str(path)).etag("m.gguf")


def test_an_unknown_dtype_is_a_config_error(tmp_path):
    path = write_tiny_gguf(build_tiny_model("llama", seed=5), tmp_path / "m.gguf")
    with pytest.raises(ConfigError, match="unknown dtype choice 'fp8'.*keep, bf16, fp16, fp32"):
        extract_layer(str(path), -1, tmp_path / "a.safetensors", dtype="fp8")
    assert not (tmp_path / "a.safetensors").exists()
