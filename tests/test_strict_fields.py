"""Config, header and GGUF fields are read strictly (issue 21 §7): JSON `true` is no layer count, a head count that
cannot shape the layer's tensors is no layer, a GGUF claiming 2**31 - 1 blocks is no model. Each is one line and
exit 2 wherever it is read (extract, select, inspect, train, predict), and nothing is written."""

from __future__ import annotations

import json
import resource
import struct
import subprocess
import sys
from pathlib import Path

import pytest

import cli
from cli_runner import fails_in_one_line
from pifi_extract.artifact import FORMAT_VERSION, METADATA_KEYS, header_sha256, read_artifact
from pifi_extract.errors import ArtifactError, CorruptFileError
from pifi_extract.extract import extract_layer
from pifi_extract.safetensors_header import PREFIX_BYTES, parse_header
from tiny_models import make_tiny_model
from train_fixtures import FAST_OPTIONS, assets, train_env, write_jsonl, synthetic_rows  # noqa: F401 - fixtures


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return make_tiny_model("llama", tmp_path_factory.mktemp("models") / "llama", num_layers=2)


def _with_config(model: Path, folder: Path, **changes) -> Path:
    """A copy of ``model`` (shards linked) whose config.json has ``changes``."""
    folder.mkdir()
    for p in model.iterdir():
        (folder / p.name).symlink_to(p)
    (folder / "config.json").unlink()
    config = json.loads((model / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **changes}))
    return folder


@pytest.mark.parametrize("changes, match", [
    ({"num_hidden_layers": True}, "num_hidden_layers is 'True', not a layer count"),
    ({"num_hidden_layers": "2"}, "num_hidden_layers is '2', not a layer count"),
    ({"num_hidden_layers": 2.0}, "not a layer count"),
    ({"num_hidden_layers": 2**31 - 1}, "not a layer count (an integer from 1 to 10000)"),
    ({"hidden_size": True}, "hidden_size is 'True', not a positive integer"),
    ({"num_attention_heads": 0}, "num_attention_heads is '0', not a positive integer"),
    ({"num_key_value_heads": False}, "num_key_value_heads is 'False'"),
    ({"rms_norm_eps": True}, "rms_norm_eps is 'True', not a positive number"),
    ({"num_attention_heads": 3, "head_dim": None}, "num_attention_heads=3 does not divide hidden_size=64"),
    ({"num_attention_heads": 3}, "num_key_value_heads=2 does not divide num_attention_heads=3"),
    ({"num_attention_heads": 2}, "self_attn.q_proj.weight is [64, 64] but the config's heads need 2 x 16 = 32 rows"),
    ({"num_key_value_heads": 4}, "self_attn.k_proj.weight is [32, 64] but the config's heads need 4 x 16 = 64 rows"),
])
def test_a_config_field_of_the_wrong_type_or_shape_is_one_line(model, tmp_path, capsys, changes, match):
    folder = _with_config(model, tmp_path / "m", **changes)
    out = tmp_path / "out.safetensors"
    fails_in_one_line(capsys, ["extract", "--llm", str(folder), "--layer", "-1", "--no-cache", "-o", str(out)], match)
    assert not out.exists()
    with pytest.raises(CorruptFileError):
        extract_layer(str(folder), -1, out)


def test_safetensors_header_counts_are_never_bools(tmp_path):
    raw = json.dumps({"w": {"dtype": "F32", "shape": [True, 4], "data_offsets": [0, 16]}}).encode()
    with pytest.raises(CorruptFileError, match="invalid shape"):
        parse_header(raw, PREFIX_BYTES + len(raw) + 16, "x.safetensors")
    raw = json.dumps({"w": {"dtype": "F32", "shape": [4], "data_offsets": [False, 16]}}).encode()
    with pytest.raises(CorruptFileError, match="invalid data_offsets"):
        parse_header(raw, PREFIX_BYTES + len(raw) + 16, "x.safetensors")


def _resigned(artifact: Path, out: Path, config: dict | None = None, provenance: dict | None = None) -> Path:
    """A copy of ``artifact`` with config/provenance entries changed and its header digest recomputed: an
    artifact that passes every integrity check (as one crafted, or written by a buggy tool, would)."""
    data = artifact.read_bytes()
    n = struct.unpack("<Q", data[:PREFIX_BYTES])[0]
    obj = json.loads(data[PREFIX_BYTES : PREFIX_BYTES + n])
    meta = obj["__metadata__"]
    for key, changes in (("config", config), ("provenance", provenance)):
        if changes:
            meta[METADATA_KEYS[key]] = json.dumps({**json.loads(meta[METADATA_KEYS[key]]), **changes}, sort_keys=True)

    def encode() -> bytes:
        raw = json.dumps(obj, separators=(",", ":")).encode()
        return raw + b" " * (-(len(raw) + PREFIX_BYTES) % 8)

    meta[METADATA_KEYS["header_sha256"]] = header_sha256(parse_header(encode(), None, "resigned"))
    raw = encode()
    out.write_bytes(struct.pack("<Q", len(raw)) + raw + data[PREFIX_BYTES + n :])
    return out


@pytest.fixture(scope="module")
def artifact(model, tmp_path_factory) -> Path:
    return extract_layer(str(model), -1, tmp_path_factory.mktemp("art") / "layer.safetensors").path


@pytest.mark.parametrize("config, provenance, match", [
    ({"num_attention_heads": 3}, None, "num_key_value_heads=2 does not divide num_attention_heads=3"),
    ({"num_attention_heads": 3, "head_dim": None}, None, "num_attention_heads=3 does not divide hidden_size=64"),
    ({"num_attention_heads": 2}, None, "self_attn.q_proj.weight is [64, 64] but the config's heads need 2 x 16"),
    ({"num_hidden_layers": True}, None, "num_hidden_layers is 'True'"),
    (None, {"layer_index": True}, "provenance names layer 'True' of '2'"),
    (None, {"layer_index": 5}, "provenance names layer '5' of '2'"),
    (None, {"num_layers": 7}, "(the config says 2 layers)"),
])
def test_an_inconsistent_artifact_is_one_line_wherever_it_is_read(artifact, tmp_path, capsys, config, provenance,
                                                                   match):
    bad = _resigned(artifact, tmp_path / "bad.safetensors", config, provenance)
    assert FORMAT_VERSION == 2
    with pytest.raises(ArtifactError, match=match.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        read_artifact(bad)
    fails_in_one_line(capsys, ["inspect", str(bad)], match)


@pytest.mark.usefixtures("train_env")
def test_train_and_predict_refuse_a_crafted_artifact_in_one_line(assets, tmp_path, capsys):  # noqa: F811
    bad = _resigned(assets["artifact"], tmp_path / "bad.safetensors", {"num_attention_heads": 3})
    match = "num_key_value_heads=2 does not divide num_attention_heads=3"
    base = ["train", "--train-file", str(assets["train"]), "--validation-file", str(assets["validation"]),
            "--slm", str(assets["bert"]), "--epochs", "1", "--max-length", "16", "--quiet",
            "--batch-size", "32", "--lr", str(FAST_OPTIONS["lr"])]
    fails_in_one_line(capsys, [*base, "--layer-artifact", str(bad), "--output-dir", str(tmp_path / "refused")], match)
    assert not (tmp_path / "refused").exists()
    run = tmp_path / "run"
    cli.main([*base, "--layer-artifact", str(assets["artifact"]), "--output-dir", str(run)])
    fails_in_one_line(capsys, ["predict", "--run-dir", str(run), "--text", "x", "--layer-artifact", str(bad)], match)


def _gguf_claiming_blocks(tmp_path: Path, blocks: int) -> Path:
    """A tiny llama GGUF (4 blocks of tensors) whose metadata claims ``blocks`` blocks."""
    from tiny_gguf import write_tiny_gguf
    from tiny_models import build_tiny_model

    path = write_tiny_gguf(build_tiny_model("llama"), tmp_path / "tiny.gguf")
    raw = bytearray(path.read_bytes())
    at = raw.index(b"llama.block_count") + len(b"llama.block_count")
    assert struct.unpack("<II", raw[at : at + 8]) == (4, 4)  # UINT32, 4
    raw[at + 4 : at + 8] = struct.pack("<I", blocks)
    path.write_bytes(bytes(raw))
    return path


def _limit_memory() -> None:  # a regression must fail with MemoryError, not take the shared machine down
    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))


def test_a_gguf_claiming_2_31_layers_is_one_line_in_extract_and_select(tmp_path, capsys):
    from test_select import tokenizer_for

    path = _gguf_claiming_blocks(tmp_path, 2**31 - 1)
    match = "the GGUF metadata says 2147483647 blocks but its tensors hold 4 (blk.0-blk.3)"
    fails_in_one_line(capsys, ["extract", "--llm", str(path), "--layer", "-1", "--no-cache", "-o",
                               str(tmp_path / "x.safetensors")], match)
    data = write_jsonl(tmp_path / "d.jsonl", synthetic_rows(40, seed=0))
    tokenizer_for(tmp_path / "tok").save_pretrained(tmp_path / "tok")
    done = subprocess.run([sys.executable, "-c", "import cli; cli.main()", "select", "--llm", str(path),
                           "--train-file", str(data), "--tokenizer", str(tmp_path / "tok"), "--samples", "40",
                           "-o", str(tmp_path / "s.json")], capture_output=True, text=True, timeout=300,
                          preexec_fn=_limit_memory)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and match in done.stderr, done.stderr
    assert not (tmp_path / "x.safetensors").exists() and not (tmp_path / "s.json").exists()
