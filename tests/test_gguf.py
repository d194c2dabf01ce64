"""GGUF files as a layer source: exact against transformers' own GGUF load, range-only reads, bad input."""

from __future__ import annotations

import struct

import gguf
import pytest
import torch
from transformers import AutoModelForCausalLM

from pifi_extract import extract_layer, load_artifact_tensors, read_artifact
from pifi_extract import gguf_source
from pifi_extract.errors import (
    CorruptFileError,
    LayerIndexError,
    OfflineError,
    SourceNotFoundError,
    UnsupportedModelError,
)
from pifi_extract.gguf_header import NeedMoreBytes, parse_gguf_header, slim_header
from pifi_train import load_layer
from tiny_gguf import write_tiny_gguf
from tiny_models import build_tiny_model
from cli_runner import run_cli

Q = gguf.GGMLQuantizationType
# F32 everywhere but: two Q8_0 weights (one permuted by llama.cpp), a Q4_1 one (permuted) and an F16 one.
MIXED = {"attn_q": Q.Q8_0, "ffn_down": Q.Q8_0, "attn_k": Q.Q4_1, "attn_v": Q.F16}
# model_type -> tiny-model overrides. transformers' GGUF config for qwen3 does not read the head size from the
# metadata (it keeps Qwen3Config's default, 128, which every real Qwen3 has), so the tiny qwen3 uses 128 too.
ARCHS = {"llama": {}, "qwen2": {}, "qwen3": {"head_dim": 128}}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """model_type -> (gguf path, the original tiny model, transformers' full load of the GGUF)."""
    out = {}
    for model_type, overrides in ARCHS.items():
        folder = tmp_path_factory.mktemp(f"gguf-{model_type}")
        model = build_tiny_model(model_type, **overrides)
        path = write_tiny_gguf(model, folder / "tiny.Q8_0.gguf", quantize=MIXED, vocab_as_tokens=model_type == "llama")
        ref = AutoModelForCausalLM.from_pretrained(folder, gguf_file=path.name).eval()
        out[model_type] = (path, model, ref)
    return out


def _layer_io(model: torch.nn.Module, index: int, ids: torch.Tensor, mask: torch.Tensor):
    """Input and output of model.model.layers[index] during a forward pass (forward hook)."""
    seen = {}

    def hook(module, args, kwargs, output):
        seen["x"] = args[0] if args else kwargs["hidden_states"]
        seen["y"] = output[0] if isinstance(output, tuple) else output

    handle = model.model.layers[index].register_forward_hook(hook, with_kwargs=True)
    try:
        with torch.no_grad():
            model(input_ids=ids, attention_mask=mask)
    finally:
        handle.remove()
    return seen["x"], seen["y"]


@pytest.mark.parametrize("model_type", ARCHS)
@pytest.mark.parametrize("layer", [-1, 1])
def test_layer_equals_transformers_gguf_load(tmp_path, files, model_type, layer):
    path, _, ref = files[model_type]
    result = extract_layer(str(path), layer, tmp_path / "layer.safetensors")
    layer_sd, norm_sd = load_artifact_tensors(result.path)
    expected = ref.model.layers[layer].state_dict()
    assert sorted(layer_sd) == sorted(expected)
    for name, tensor in expected.items():
        assert (layer_sd[name].float() - tensor).abs().max().item() <= 1e-6, name
    assert torch.equal(norm_sd["weight"], ref.model.norm.weight.detach())

    # The rebuilt layer computes what the GGUF-loaded model's layer computes (left padding included).
    frozen = load_layer(result.path, dtype=torch.float32)
    ids = torch.randint(0, ref.config.vocab_size, (2, 9), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[1, :3] = 0
    x, y = _layer_io(ref, layer, ids, mask)
    with torch.no_grad():
        got = frozen(x, mask, causal=True)
    keep = mask.bool()
    assert (got - y)[keep].abs().max().item() <= 1e-5


def test_f32_file_reproduces_the_original_model_exactly(tmp_path):
    """No quantization: the artifact is the original model's layer bit for bit (q/k un-permuted right)."""
    model = build_tiny_model("llama", seed=3)
    path = write_tiny_gguf(model, tmp_path / "tiny.f32.gguf")
    layer_sd, norm_sd = load_artifact_tensors(extract_layer(str(path), 2, tmp_path / "a.safetensors").path)
    for name, tensor in model.model.layers[2].state_dict().items():
        assert torch.equal(layer_sd[name], tensor), name
    assert torch.equal(norm_sd["weight"], model.model.norm.weight.detach())


def test_provenance_and_dtypes(tmp_path, files):
    path, _, _ = files["llama"]
    info = extract_layer(str(path), -1, tmp_path / "keep.safetensors").info
    prov = info.provenance
    assert prov["source_kind"] == "gguf" and prov["dequantized"] is True
    assert prov["quantization_types"] == ["Q4_1", "Q8_0"]
    assert prov["gguf_tensor_types"]["self_attn.q_proj.weight"] == "Q8_0"
    assert prov["original_names"]["self_attn.q_proj.weight"] == "blk.3.attn_q.weight"
    assert prov["original_names"]["final_norm.weight"] == "output_norm.weight"
    assert prov["layer_index"] == 3 and prov["num_layers"] == 4 and prov["license"] == "apache-2.0"
    assert info.config["model_type"] == "llama" and info.config["num_key_value_heads"] == 2
    # keep: quantized -> F32, F16 stays F16, F32 stays F32
    assert info.tensors["self_attn.q_proj.weight"][0] == "F32"
    assert info.tensors["self_attn.v_proj.weight"][0] == "F16"
    assert info.tensors["input_layernorm.weight"][0] == "F32"
    bf16 = extract_layer(str(path), -1, tmp_path / "bf16.safetensors", dtype="bf16").info
    assert {dtype for dtype, _ in bf16.tensors.values()} == {"BF16"} and bf16.provenance["dtype"] == "BF16"


def test_slim_header_keeps_the_config_and_drops_the_vocabulary(tmp_path, files):
    """The replica transformers reads has no vocabulary but the same config (vocab_size from the token count)."""
    from transformers import AutoConfig

    path, _, ref = files["llama"]
    raw = path.read_bytes()
    header = parse_gguf_header(raw, len(raw), str(path))
    assert "llama.vocab_size" not in header.metadata and header.array_lengths["tokenizer.ggml.tokens"] == 128
    slim = slim_header(raw[: header.data_start], header)
    assert len(slim) < header.data_start
    replica = tmp_path / "replica.gguf"
    replica.write_bytes(slim + raw[header.data_start :])
    got = AutoConfig.from_pretrained(tmp_path, gguf_file=replica.name).to_dict()
    want = ref.config.to_dict()
    for key in ("vocab_size", "hidden_size", "num_hidden_layers", "num_key_value_heads", "rope_parameters", "rms_norm_eps"):
        assert got[key] == want[key], key
    with pytest.raises(NeedMoreBytes):
        parse_gguf_header(raw[: header.data_start // 2], len(raw), str(path))


def test_hub_file_reads_only_header_and_layer(tmp_path, hub_server, monkeypatch):
    """A GGUF in a Hub repo: a growing header read, then only the layer's tensors (range requests)."""
    model = build_tiny_model("llama", seed=1)
    folder = tmp_path / "repo"
    folder.mkdir()
    path = write_tiny_gguf(model, folder / "tiny.Q8_0.gguf", quantize=MIXED, vocab_as_tokens=True, extra_tokens=400)
    hub_server.add_repo("org/tiny-gguf", folder)
    monkeypatch.setattr(gguf_source, "FIRST_HEADER_READ", 1024)  # several growing reads
    hub_server.reset_counters()
    result = extract_layer("org/tiny-gguf", -1, tmp_path / "hub.safetensors", gguf_file=path.name)

    raw = path.read_bytes()
    header = parse_gguf_header(raw, len(raw), str(path))
    layer_bytes = sum(t.nbytes for n, t in header.tensors.items() if n.startswith("blk.3.") or n == "output_norm.weight")
    served = hub_server.bytes_for("org/tiny-gguf", path.name)
    assert layer_bytes + header.data_start <= served <= layer_bytes + 2 * header.data_start
    assert served < 0.5 * len(raw)
    assert result.info.provenance["gguf_host"] == "hub" and result.info.provenance["commit"] == hub_server.head("org/tiny-gguf")
    local = extract_layer(str(path), -1, tmp_path / "local.safetensors").info
    assert result.info.data_sha256 == local.data_sha256  # the same tensors, byte for byte

    with pytest.raises(SourceNotFoundError, match="tiny.Q8_0.gguf"):
        extract_layer("org/tiny-gguf", -1, tmp_path / "x.safetensors", gguf_file="other.gguf")

    # Offline: a file already in the Hugging Face cache is read from there, recorded as the repo's.
    from huggingface_hub import constants, hf_hub_download

    hf_hub_download("org/tiny-gguf", path.name)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    offline = extract_layer("org/tiny-gguf", -1, tmp_path / "offline.safetensors", gguf_file=path.name).info
    assert offline.data_sha256 == local.data_sha256
    assert offline.provenance["source"] == "org/tiny-gguf" and offline.provenance["commit"] == hub_server.head("org/tiny-gguf")
    with pytest.raises(OfflineError, match="HF_HUB_OFFLINE"):
        extract_layer("org/other", -1, tmp_path / "y.safetensors", gguf_file=path.name)


def test_bad_files_are_refused(tmp_path, files):
    path, _, _ = files["qwen2"]
    raw = path.read_bytes()
    not_gguf = tmp_path / "not.gguf"
    not_gguf.write_bytes(b"NOPE" + raw[4:])
    with pytest.raises(CorruptFileError, match="not a GGUF file"):
        extract_layer(str(not_gguf), -1, tmp_path / "a.safetensors")
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(raw[: len(raw) - 100])
    with pytest.raises(CorruptFileError, match="truncated"):
        extract_layer(str(truncated), -1, tmp_path / "b.safetensors")
    absurd = tmp_path / "absurd.gguf"
    absurd.write_bytes(raw[:8] + struct.pack("<Q", 1 << 40) + raw[16:])
    with pytest.raises(CorruptFileError, match="absurd"):
        extract_layer(str(absurd), -1, tmp_path / "c.safetensors")
    with pytest.raises(LayerIndexError, match="4 layers"):
        extract_layer(str(path), 4, tmp_path / "d.safetensors")
    with pytest.raises(SourceNotFoundError):
        extract_layer(str(tmp_path / "missing.gguf"), -1, tmp_path / "e.safetensors")
    assert not list(tmp_path.glob("*.safetensors"))


def test_metadata_contradicting_the_tensors_is_refused(tmp_path):
    """A qwen3 file whose head size is not the one transformers assumes: an error, never a wrong layer."""
    model = build_tiny_model("qwen3")  # head_dim 16; the GGUF config will say 128
    path = write_tiny_gguf(model, tmp_path / "odd.gguf")
    with pytest.raises(CorruptFileError, match="has shape .* but self_attn.* needs"):
        extract_layer(str(path), -1, tmp_path / "a.safetensors")
    assert not (tmp_path / "a.safetensors").exists()


def test_unsupported_gguf_architecture(tmp_path):
    writer = gguf.GGUFWriter(str(tmp_path / "m.gguf"), "rwkv6")
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", torch.zeros(4, 32).numpy())
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(UnsupportedModelError, match="rwkv6"):
        extract_layer(str(tmp_path / "m.gguf"), -1, tmp_path / "a.safetensors")


def _pifi(capsys, *args: str) -> tuple[int, str]:
    """Run the CLI in-process: (exit code, stderr)."""
    code, _, err = run_cli(capsys, *args)
    return code, err


def test_cli_extract_gguf(tmp_path, files, capsys):
    path, _, _ = files["qwen2"]
    out = tmp_path / "out"
    out.mkdir()
    code, err = _pifi(capsys, "extract", "--llm", str(path.parent), "--gguf-file", path.name, "--layer", "-1", "-o", str(out), "-q")
    assert code == 0, err
    artifact = out / "tiny.Q8_0-layer-3.safetensors"
    assert read_artifact(artifact).provenance["gguf_file"] == path.name
    code, err = _pifi(capsys, "extract", "--llm", str(path), "--layer", "9", "--no-cache", "-o", str(out / "x.safetensors"))
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "valid indices" in err
    assert not (out / "x.safetensors").exists()
