"""Every row of the architecture table is checked against a real saved tiny model."""

from __future__ import annotations

import pytest
import torch
from tiny_models import TINY_CONFIGS, build_tiny_model, make_tiny_model, shards_of_layer, weight_map

from pifi_extract.architectures import ARCHITECTURES, arch_for_config, import_object, supported_model_types
from pifi_extract.errors import UnsupportedModelError

REQUIRED = {
    "llama", "mistral", "qwen2", "qwen3", "gemma2", "gemma3_text",
    "phi3", "olmo2", "gpt_neox", "falcon", "stablelm",
}  # fmt: skip


def test_table_covers_the_required_architectures():
    assert REQUIRED <= set(supported_model_types())
    assert set(TINY_CONFIGS) == set(supported_model_types())
    for model_type, spec in ARCHITECTURES.items():
        assert spec.model_type == model_type
        assert "{i}" in spec.layer_prefix and spec.layer_prefix.endswith(".")
        assert spec.final_norm_prefix.endswith(".") and spec.final_norm_class


@pytest.mark.parametrize("model_type", sorted(ARCHITECTURES))
def test_row_matches_a_saved_checkpoint(model_type, tmp_path):
    spec = ARCHITECTURES[model_type]
    folder = make_tiny_model(model_type, tmp_path)
    # Tiny (what keeps the suite fast): ~0.66 MB of weights over many small shards.
    assert sum(f.stat().st_size for f in folder.glob("*.safetensors")) < 1 << 20

    names = set(weight_map(folder))
    model = build_tiny_model(model_type)
    num_layers = getattr(model.config, spec.num_layers_attr)
    layer_class = import_object(spec.layer_class)
    for i in range(num_layers):
        prefix = spec.layer_tensor_prefix(i)
        layer = model.get_submodule(prefix[:-1])
        assert type(layer) is layer_class
        # The checkpoint holds exactly the layer class's tensors under the prefix.
        saved = {n[len(prefix):] for n in names if n.startswith(prefix)}
        assert saved == set(layer.state_dict()), i
    # Several shards, and the last layer's tensors straddle more than one of them.
    assert len(set(weight_map(folder).values())) > 2
    assert len(shards_of_layer(folder, spec.layer_tensor_prefix(num_layers - 1))) >= 2

    norm = model.get_submodule(spec.final_norm_prefix[:-1])
    assert type(norm) is import_object(spec.final_norm_class)
    assert {n[len(spec.final_norm_prefix):] for n in names if n.startswith(spec.final_norm_prefix)} == set(
        norm.state_dict()
    )
    norm_eps = getattr(norm, "eps", getattr(norm, "variance_epsilon", None))
    assert norm_eps == getattr(model.config, spec.norm_eps_attr)
    rotary = [m for m in model.modules() if spec.rotary_class and type(m) is import_object(spec.rotary_class)]
    assert len(rotary) == 1
    # Everything else in the checkpoint is embeddings / LM head: no layer tensor lives elsewhere.
    rest = {n for n in names if not n.startswith(spec.layer_prefix.split("{i}")[0])}
    rest -= {n for n in names if n.startswith(spec.final_norm_prefix)}
    assert all("embed" in n or "lm_head" in n for n in rest), rest
    # The default attention implementation is the one the model picks by itself.
    assert model.config._attn_implementation == spec.attn_implementation


def test_norm_classes_take_hidden_and_eps():
    """Built as cls(hidden, eps=...), each final norm normalises with that eps (fresh weights: the identity scale)."""
    x = torch.randn(2, 8, generator=torch.Generator().manual_seed(0)) * 3 + 1  # (B, H)
    for spec in ARCHITECTURES.values():
        norm = import_object(spec.final_norm_class)(8, eps=0.5)
        assert sum(p.numel() for p in norm.parameters()) >= 8
        if spec.final_norm_class == "torch.nn.LayerNorm":
            want = (x - x.mean(-1, keepdim=True)) / torch.sqrt(x.var(-1, unbiased=False, keepdim=True) + 0.5)
        else:
            want = x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + 0.5)
        with torch.no_grad():
            got = norm(x)
        assert got.shape == x.shape and torch.allclose(got, want, atol=1e-5), spec.model_type


def test_rows_say_only_what_is_special():
    """Defaults: the common checkpoint layout and the classes named from the stem in the model_type's module."""
    from pifi_extract.architectures import ArchSpec

    row = ArchSpec("llama", "Llama")
    assert (row.layer_prefix, row.final_norm_prefix) == ("model.layers.{i}.", "model.norm.")
    base = "transformers.models.llama.modeling_llama."
    assert row.layer_class == base + "LlamaDecoderLayer" and row.final_norm_class == base + "LlamaRMSNorm"
    assert row.rotary_class == base + "LlamaRotaryEmbedding" and row == ARCHITECTURES["llama"]
    gemma3 = ARCHITECTURES["gemma3_text"]
    assert gemma3.layer_class == "transformers.models.gemma3.modeling_gemma3.Gemma3DecoderLayer"
    assert gemma3.bidirectional_window_overlay == "transformers.models.gemma3.modeling_gemma3._bidirectional_window_overlay"
    assert ARCHITECTURES["falcon"].final_norm_class == "torch.nn.LayerNorm"  # a dotted name is taken as it is
    assert ArchSpec("x", "X", rotary_class=None).rotary_class is None


def test_arch_for_config_refuses_unknown_and_remote_code():
    with pytest.raises(UnsupportedModelError, match="supported architectures: falcon, gemma2"):
        arch_for_config({"model_type": "mamba"})
    with pytest.raises(UnsupportedModelError, match="remote code"):
        arch_for_config({"model_type": "my_custom", "auto_map": {"AutoModel": "x.Y"}})
    with pytest.raises(UnsupportedModelError):
        arch_for_config({})
    # Phi-3 and Falcon checkpoints keep an auto_map from their remote-code days: still native.
    assert arch_for_config({"model_type": "phi3", "auto_map": {"AutoConfig": "configuration_phi3.Phi3Config"}})
    assert arch_for_config({"model_type": "llama"}).layer_tensor_prefix(7) == "model.layers.7."


def test_stale_buffers_are_recognised():
    neox, llama, falcon = ARCHITECTURES["gpt_neox"], ARCHITECTURES["llama"], ARCHITECTURES["falcon"]
    assert neox.is_ignored_tensor("attention.bias") and neox.is_ignored_tensor("attention.masked_bias")
    assert not neox.is_ignored_tensor("attention.dense.bias")
    assert llama.is_ignored_tensor("self_attn.rotary_emb.inv_freq")
    assert not falcon.is_ignored_tensor("ln_attn.bias")
