"""Pure planning and header validation: no network, no model."""

from __future__ import annotations

import json
import struct

import pytest

from pifi_extract.architectures import arch_for_config
from pifi_extract.errors import CorruptFileError, LayerIndexError, UnsupportedModelError
from pifi_extract.plan import (
    INDEX_FILE,
    choose_weight_files,
    copy_jobs,
    parse_weight_map,
    plan_layer,
    resolve_layer_index,
    select_tensors,
)
from pifi_extract.safetensors_header import build_header, header_length, parse_header


def _header(entries: dict) -> bytes:
    return json.dumps(entries).encode()


def test_layer_index_resolution_and_range_message():
    assert resolve_layer_index(-1, 32) == 31
    assert resolve_layer_index(0, 32) == 0
    assert resolve_layer_index(-32, 32) == 0
    with pytest.raises(LayerIndexError, match=r"has 32 layers.*-32\.\.31"):
        resolve_layer_index(32, 32)
    with pytest.raises(LayerIndexError):
        resolve_layer_index(-33, 32)


@pytest.mark.parametrize("path", ["../x.safetensors", "/etc/passwd", "a/../../b", "C:\\x", "a\\b", ""])
def test_unsafe_weight_map_paths_are_refused(path):
    with pytest.raises(CorruptFileError, match="unsafe path"):
        parse_weight_map({"weight_map": {"model.layers.0.x": path}}, "repo")


def test_safe_weight_map_paths_pass():
    wm = parse_weight_map({"weight_map": {"a": "model-00001.safetensors", "b": "sub/m.safetensors"}}, "repo")
    assert wm["b"] == "sub/m.safetensors"


def test_pickle_only_repo_is_refused():
    with pytest.raises(UnsupportedModelError, match="pickle"):
        choose_weight_files(["config.json", "pytorch_model.bin"])
    assert choose_weight_files(["config.json", INDEX_FILE, "model-1.safetensors"]) == INDEX_FILE


def test_unknown_and_remote_code_architectures_are_refused():
    with pytest.raises(UnsupportedModelError, match="supported architectures: .*llama"):
        arch_for_config({"model_type": "mamba"})
    with pytest.raises(UnsupportedModelError, match="remote code"):
        arch_for_config({"model_type": "my_custom_lm", "auto_map": {"AutoModel": "x.Y"}})
    # a native architecture that still carries an old auto_map is rebuilt from transformers' classes
    assert arch_for_config({"model_type": "llama", "auto_map": {"AutoModel": "x.Y"}}).model_type == "llama"


@pytest.mark.parametrize(
    "entries, match",
    [
        ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}, "spans 4 bytes"),
        ({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "b": {"dtype": "F32", "shape": [1], "data_offsets": [2, 6]}}, "overlap"),
        ({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, "ends at byte 16"),
        ({"a": {"dtype": "Q4", "shape": [1], "data_offsets": [0, 1]}}, "unknown dtype"),
        ({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}}, "invalid data_offsets"),
        ({"a": {"dtype": "F32", "shape": [True, 1], "data_offsets": [0, 4]}}, "invalid shape"),
        ({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 2**70]}}, "invalid data_offsets"),
        ({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "b": {"dtype": "F32", "shape": [1], "data_offsets": [6, 10]}}, "a gap of 2 bytes"),
        ({"a": {"dtype": "F32", "shape": [1], "data_offsets": [2, 6]}}, "starts with 2 bytes no tensor owns"),
    ],
)
def test_corrupt_headers_are_refused(entries, match):
    raw = _header(entries)
    with pytest.raises(CorruptFileError, match=match):
        parse_header(raw, 8 + len(raw) + 8, "f")


def test_bad_json_and_absurd_header_length():
    with pytest.raises(CorruptFileError, match="not valid JSON"):
        parse_header(b"{nope", 100, "f")
    huge = b'{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, ' + b"9" * 5000 + b"]}}"
    with pytest.raises(CorruptFileError, match="not valid JSON"):  # Python refuses the 5000-digit integer
        parse_header(huge, 10**6, "f")
    with pytest.raises(CorruptFileError, match="nested too deeply"):
        parse_header(b"[" * 100_000 + b"]" * 100_000, 10**6, "f")
    with pytest.raises(CorruptFileError, match="header length"):
        header_length(struct.pack("<Q", 10**12), 1000, "f")
    with pytest.raises(CorruptFileError, match="too short"):
        header_length(b"\x01", 1, "f")


def test_build_header_round_trips_and_is_aligned():
    raw, offsets = build_header([("a", "F32", (2, 3)), ("b", "BF16", (5,))], {"k": "v"})
    assert len(raw) % 8 == 0 and offsets == [0, 24]
    n = header_length(raw[:8], len(raw) + 34, "f")
    header = parse_header(raw[8 : 8 + n], len(raw) + 34, "f")
    assert header.metadata == {"k": "v"}
    assert (header.tensors["b"].begin, header.tensors["b"].end) == (24, 34)


def _shard_header(names: dict[str, tuple[str, list[int]]]):
    entries, pos = {}, 0
    for name, (dtype, shape) in names.items():
        n = 4 if dtype == "F32" else 2
        for d in shape:
            n *= d
        entries[name] = {"dtype": dtype, "shape": shape, "data_offsets": [pos, pos + n]}
        pos += n
    raw = _header(entries)
    return parse_header(raw, 8 + len(raw) + pos, "shard")


def test_plan_selects_only_the_layer_and_final_norm_across_two_shards():
    cfg = {"model_type": "llama", "num_hidden_layers": 2}
    arch = arch_for_config(cfg)
    wm = {
        "model.layers.1.self_attn.q_proj.weight": "s1",
        "model.layers.1.mlp.down_proj.weight": "s2",
        "model.layers.1.self_attn.rotary_emb.inv_freq": "s1",
        "model.layers.10.mlp.down_proj.weight": "s2",
        "model.layers.0.mlp.down_proj.weight": "s1",
        "model.norm.weight": "s2",
    }
    sel = select_tensors(wm, arch, 1)
    assert sorted(sel) == ["final_norm.weight", "mlp.down_proj.weight", "self_attn.q_proj.weight"]
    headers = {
        "s1": _shard_header({"model.layers.0.mlp.down_proj.weight": ("F32", [4]), "model.layers.1.self_attn.q_proj.weight": ("BF16", [4, 4])}),
        "s2": _shard_header({"model.layers.1.mlp.down_proj.weight": ("BF16", [3, 4]), "model.norm.weight": ("BF16", [4])}),
    }
    plan = plan_layer(sel, headers, layer_index=1, dtype="fp32", config=cfg, provenance={"source": "x"}, pifi_version="t")
    assert [t.name for t in plan.tensors] == sorted(sel)
    assert plan.num_parameters == 16 + 12
    q = next(t for t in plan.tensors if t.name == "self_attn.q_proj.weight")
    assert q.src_start == headers["s1"].data_start + 16 and q.src_end - q.src_start == 32 and q.out_nbytes == 64
    assert plan.artifact_bytes == len(plan.header) + 4 * (16 + 12 + 4)
    prov = json.loads(plan.metadata["pifi.provenance"])
    assert prov["original_names"]["final_norm.weight"] == "model.norm.weight" and prov["dtype"] == "F32"
    # chunks are element-aligned and tile every tensor exactly
    jobs = copy_jobs(plan, chunk_bytes=7)
    assert all((j.src_end - j.src_start) % 2 == 0 for j in jobs)
    assert sum(j.src_end - j.src_start for j in jobs) == plan.source_bytes


def test_tensor_missing_from_its_shard_is_refused():
    cfg = {"model_type": "llama", "num_hidden_layers": 1}
    sel = select_tensors({"model.layers.0.mlp.down_proj.weight": "s1"}, arch_for_config(cfg), 0)
    headers = {"s1": _shard_header({"other": ("F32", [1])})}
    with pytest.raises(CorruptFileError, match="does not contain it"):
        plan_layer(sel, headers, layer_index=0, dtype="keep", config=cfg, provenance={}, pifi_version="t")


def test_model_type_that_is_not_a_string_is_refused():
    with pytest.raises(UnsupportedModelError, match="not an architecture name"):
        arch_for_config({"model_type": ["llama"]})


@pytest.mark.parametrize("field, value", [("config", "[1, 2]"), ("provenance", "null"), ("config", '{"model_type": 3}')])
def test_malformed_pifi_metadata_is_one_artifact_error(tmp_path, field, value):
    import torch
    from safetensors.torch import save_file

    from pifi_extract.artifact import METADATA_KEYS, read_artifact
    from pifi_extract.errors import ArtifactError

    meta = {METADATA_KEYS["format"]: "1", METADATA_KEYS["config"]: '{"model_type": "llama"}',
            METADATA_KEYS["provenance"]: "{}", METADATA_KEYS["data_sha256"]: "0" * 64}
    meta[METADATA_KEYS[field]] = value
    path = tmp_path / "a.safetensors"
    save_file({"w": torch.zeros(2)}, str(path), metadata=meta)
    with pytest.raises(ArtifactError, match="damaged pifi metadata"):
        read_artifact(path)


def test_config_hidden_size_must_match_the_layer_tensors(tmp_path):
    import json

    from pifi_extract import extract_layer
    from tiny_models import make_tiny_model

    model = make_tiny_model("llama", tmp_path / "m", num_layers=2)
    config = json.loads((model / "config.json").read_text())
    config["hidden_size"] = 65
    (model / "config.json").write_text(json.dumps(config))
    with pytest.raises(CorruptFileError, match="hidden_size=65 but the layer's tensors disagree"):
        extract_layer(str(model), 0, tmp_path / "out.safetensors")
    assert not (tmp_path / "out.safetensors").exists()
