"""A FrozenLayer rebuilt from checkpoint tensors is the model's own layer, bit for bit.

For every architecture (and a few variants: Falcon-7B style, Falcon-RW with ALiBi, bidirectional
Gemma-3), a tiny random model is saved as sharded safetensors; the layer's tensors are read back
from the shards under the table's prefix; the FrozenLayer fed the hidden states captured by a
forward hook on the model's layer must return what the model's layer returned.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from tiny_models import TINY_CONFIGS, TINY_VARIANTS, make_tiny_model, weight_map
from transformers import AutoModelForCausalLM

from pifi_extract.architectures import ARCHITECTURES
from pifi_extract.errors import ArtifactError, ConfigError, LayerIndexError, UnsupportedModelError
from pifi_train import FrozenLayer, build_frozen_layer

TOL = 1e-5
SEQ = 10  # > the tiny sliding window (4), so sliding layers really slide
CASES = {**{mt: (mt, {}) for mt in TINY_CONFIGS}, **TINY_VARIANTS}
LAYERS = [2, -1]  # a middle layer (sliding in Gemma-2/3) and the last one (full)


class Saved:
    """A tiny model saved to disk, reloaded, plus helpers to slice its checkpoint."""

    def __init__(self, folder: Path, model_type: str, attn: str | None = None) -> None:
        self.folder = folder
        self.spec = ARCHITECTURES[model_type]
        self.config = json.loads((folder / "config.json").read_text())
        kwargs = {"attn_implementation": attn} if attn else {}
        self.model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, **kwargs).eval()
        self.num_layers = self.config[self.spec.num_layers_attr]
        self._weight_map = weight_map(folder)

    def checkpoint_slice(self, prefix: str) -> dict[str, torch.Tensor]:
        """Tensors under ``prefix`` read from the shards, prefix stripped."""
        out: dict[str, torch.Tensor] = {}
        for shard in sorted({s for n, s in self._weight_map.items() if n.startswith(prefix)}):
            with safe_open(self.folder / shard, "pt") as f:
                for name in f.keys():
                    if name.startswith(prefix):
                        out[name[len(prefix):]] = f.get_tensor(name)
        return out

    def frozen(self, index: int, **kwargs) -> FrozenLayer:
        resolved = index % self.num_layers
        return build_frozen_layer(
            self.config,
            resolved,
            self.checkpoint_slice(self.spec.layer_tensor_prefix(resolved)),
            final_norm_state=self.checkpoint_slice(self.spec.final_norm_prefix),
            **kwargs,
        )

    def model_layer(self, index: int) -> torch.nn.Module:
        return self.model.get_submodule(self.spec.layer_tensor_prefix(index % self.num_layers)[:-1])

    def capture(self, index: int, input_ids: torch.Tensor, attention_mask: torch.Tensor | None):
        """(input, output) of the model's layer ``index`` on these tokens."""
        seen = {}

        def hook(module, args, kwargs, output):
            seen["in"] = (args[0] if args else kwargs["hidden_states"]).detach().clone()
            seen["out"] = (output[0] if isinstance(output, tuple) else output).detach().clone()

        handle = self.model_layer(index).register_forward_hook(hook, with_kwargs=True)
        try:
            with torch.no_grad():
                self.model(input_ids=input_ids, attention_mask=attention_mask)
        finally:
            handle.remove()
        return seen["in"], seen["out"]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    cache: dict[tuple[str, str | None], Saved] = {}

    def get(case: str, attn: str | None = None) -> Saved:
        if (case, attn) not in cache:
            model_type, overrides = CASES[case]
            folder = tmp_path_factory.mktemp(case)
            make_tiny_model(model_type, folder, **overrides)
            cache[(case, attn)] = Saved(folder, model_type, attn)
        return cache[(case, attn)]

    return get


def _tokens(batch: int = 3, length: int = SEQ, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random ids and a mask with left padding (row 1: 3 pads, row 2: 6 pads)."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, 128, (batch, length), generator=generator)
    mask = torch.ones(batch, length, dtype=torch.long)
    mask[1, :3] = 0
    mask[2, :6] = 0
    ids[mask == 0] = 0
    return ids, mask


def _max_diff(a: torch.Tensor, b: torch.Tensor, where: torch.Tensor | None = None) -> float:
    diff = (a - b).abs()
    return float((diff[where.bool()] if where is not None else diff).max().detach())


# -- exactness -----------------------------------------------------------------------------------
@pytest.mark.parametrize("index", LAYERS)
@pytest.mark.parametrize("case", list(CASES))
def test_frozen_layer_reproduces_the_model_layer(saved, case, index):
    s = saved(case)
    frozen = s.frozen(index)
    assert frozen.config._attn_implementation == s.model.config._attn_implementation
    # The checkpoint slice is exactly the model's own state-dict slice.
    prefix = s.spec.layer_tensor_prefix(index % s.num_layers)
    own = {k[len(prefix):]: v for k, v in s.model.state_dict().items() if k.startswith(prefix)}
    assert own.keys() == frozen.layer.state_dict().keys()
    assert all(torch.equal(own[k], v) for k, v in frozen.layer.state_dict().items())

    ids, mask = _tokens()
    for attention_mask in (None, mask):
        hidden_in, expected = s.capture(index, ids, attention_mask)
        with torch.no_grad():
            got = frozen(hidden_in, attention_mask)
        assert got.shape == expected.shape == hidden_in.shape
        if attention_mask is not None:
            assert _max_diff(got, expected, attention_mask) <= TOL
        assert torch.isfinite(got).all()
        assert _max_diff(got, expected) <= TOL  # padded positions match too


@pytest.mark.parametrize("case", ["llama", "qwen2", "gemma3_text", "gpt_neox", "falcon", "falcon-rw-alibi", "stablelm"])
def test_exact_under_eager_attention_too(saved, case):
    s = saved(case, "eager")
    frozen = s.frozen(-1, attn_implementation="eager")
    ids, mask = _tokens(seed=1)
    hidden_in, expected = s.capture(-1, ids, mask)
    with torch.no_grad():
        assert _max_diff(frozen(hidden_in, mask), expected) <= TOL


def test_last_layer_plus_final_norm_is_the_models_last_hidden_state(saved):
    for case in CASES:
        s = saved(case)
        frozen = s.frozen(-1)
        ids, mask = _tokens(seed=2)
        hidden_in, _ = s.capture(-1, ids, mask)
        with torch.no_grad():
            expected = s.model.base_model(input_ids=ids, attention_mask=mask).last_hidden_state
            got = frozen.norm(frozen(hidden_in, mask))
        assert _max_diff(got, expected) <= TOL, case
        norm_module = s.model.get_submodule(s.spec.final_norm_prefix[:-1])
        assert type(frozen.final_norm) is type(norm_module)
        assert _max_diff(frozen.norm(hidden_in), norm_module(hidden_in)) == 0.0


def test_wrong_layer_type_would_be_caught(saved):
    """Negative control: Gemma-2 layer 2 is sliding; running its weights as full layer 3 differs."""
    s = saved("gemma2")
    ids, mask = _tokens(seed=3)
    hidden_in, expected = s.capture(2, ids, mask)
    state = s.checkpoint_slice(s.spec.layer_tensor_prefix(2))
    as_full = build_frozen_layer(s.config, 3, state)
    assert as_full.layer_type == "full_attention" and s.frozen(2).layer_type == "sliding_attention"
    with torch.no_grad():
        assert _max_diff(as_full(hidden_in, mask), expected) > 1e-3


# -- bidirectional mode --------------------------------------------------------------------------
@pytest.mark.parametrize("case", ["llama", "gemma2", "falcon-rw-alibi", "gpt_neox"])
def test_length_one_is_the_same_causal_or_not(saved, case):
    """The paper's CLS plug: one token at position 0, where the mask cannot matter."""
    frozen = saved(case).frozen(-1)
    x = torch.randn(4, 1, frozen.hidden_size)
    with torch.no_grad():
        assert torch.equal(frozen(x, causal=True), frozen(x, causal=False))
        assert torch.equal(frozen(x, torch.ones(4, 1), causal=False), frozen(x, causal=False))


@pytest.mark.parametrize("case", ["llama", "qwen3", "gemma2", "gemma3_text", "falcon", "stablelm"])
def test_bidirectional_sees_later_tokens_and_respects_padding(saved, case):
    s = saved(case)
    frozen = s.frozen(-1)
    x = torch.randn(2, 6, frozen.hidden_size)
    later = x.clone()
    later[:, 1] += torch.randn(frozen.hidden_size)  # position 0 sees token 1 only bidirectionally
    with torch.no_grad():
        assert torch.equal(frozen(x, causal=True)[:, 0], frozen(later, causal=True)[:, 0])
        assert _max_diff(frozen(x, causal=False)[:, 0], frozen(later, causal=False)[:, 0]) > 1e-4
        # Left padding: whatever sits at padded positions never reaches real tokens.
        mask = torch.tensor([[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]])
        noisy = x.clone()
        noisy[0, :2] = torch.randn(2, frozen.hidden_size) * 10
        for causal in (True, False):
            a, b = frozen(x, mask, causal=causal), frozen(noisy, mask, causal=causal)
            assert _max_diff(a, b, mask) <= TOL
            assert torch.isfinite(a).all()


# Not falcon-rw-alibi: transformers' own Falcon ALiBi eager path adds the bias twice (scores and
# mask), so its eager and sdpa outputs differ by ~3e-3 in the model itself.
@pytest.mark.parametrize("case", ["llama", "qwen2", "gemma3_text", "falcon", "stablelm"])
def test_bidirectional_is_the_same_under_eager_and_sdpa(saved, case):
    """A None mask means causal to sdpa but nothing to eager; both must honour the padding mask."""
    s = saved(case)
    sdpa, eager = s.frozen(-1, attn_implementation="sdpa"), s.frozen(-1, attn_implementation="eager")
    _, mask = _tokens()
    x = torch.randn(3, SEQ, sdpa.hidden_size)
    with torch.no_grad():
        for attention_mask in (None, mask):
            for causal in (True, False):
                a, b = sdpa(x, attention_mask, causal), eager(x, attention_mask, causal)
                where = attention_mask if attention_mask is not None else torch.ones(3, SEQ)
                assert _max_diff(a, b, where) <= TOL, (attention_mask is None, causal)


def test_bidirectional_sliding_layer_keeps_its_window(saved):
    frozen = saved("gemma2").frozen(2)  # sliding, window 4
    assert frozen.layer_type == "sliding_attention"
    x = torch.randn(1, SEQ, frozen.hidden_size)
    near, far = x.clone(), x.clone()
    near[0, 2] += torch.randn(frozen.hidden_size)
    far[0, 9] += torch.randn(frozen.hidden_size)
    with torch.no_grad():
        base = frozen(x, causal=False)
        assert _max_diff(frozen(near, causal=False)[:, 0], base[:, 0]) > 1e-4
        assert torch.equal(frozen(far, causal=False)[:, 0], base[:, 0])


# -- module behaviour ----------------------------------------------------------------------------
def test_frozen_in_eval_with_gradients_to_the_input(saved):
    frozen = saved("phi3").frozen(-1)  # phi3 has residual dropout in its layer
    assert frozen.model_type == "phi3" and frozen.layer_index == 3 and frozen.hidden_size == 64
    assert frozen.num_parameters == sum(p.numel() for p in frozen.layer.parameters()) > 0
    assert all(not p.requires_grad for p in frozen.parameters())
    parent = torch.nn.Sequential(torch.nn.Linear(64, 64), frozen)
    parent.train()
    assert not frozen.training and not any(m.training for m in frozen.modules())
    x = torch.randn(2, 5, 64, requires_grad=True)
    parent(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in frozen.parameters())
    assert parent[0].weight.grad is not None


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_on_cpu(saved, dtype):
    s = saved("gemma3_text")
    ref, low = s.frozen(-1), s.frozen(-1, dtype=dtype)
    assert low.dtype == dtype and low.final_norm.weight.dtype == dtype
    x = torch.randn(2, SEQ, 64)
    with torch.no_grad():
        out = low(x)  # fp32 in, fp32 out; computed in `dtype`
        assert out.dtype == torch.float32
        assert _max_diff(out, ref(x)) < 0.2 * float(ref(x).abs().max())


def test_rotary_stays_fp32_when_a_parent_changes_dtype(saved):
    frozen = saved("llama").frozen(-1)
    parent = torch.nn.ModuleList([frozen]).to(torch.bfloat16)
    assert parent[0].dtype == torch.bfloat16
    assert frozen.rotary_emb.inv_freq.dtype == torch.float32
    assert not any("rotary" in name for name in frozen.state_dict())


def test_build_refuses_bad_input(saved):
    s = saved("llama")
    state = s.checkpoint_slice(s.spec.layer_tensor_prefix(3))
    with pytest.raises(LayerIndexError, match="4 layers"):
        build_frozen_layer(s.config, 4, state)
    assert build_frozen_layer(s.config, -1, state).layer_index == 3
    with pytest.raises(ArtifactError, match="missing"):
        build_frozen_layer(s.config, 3, {k: v for k, v in state.items() if "q_proj" not in k})
    with pytest.raises(ArtifactError):
        build_frozen_layer(s.config, 3, {**state, "mlp.up_proj.weight": torch.zeros(3, 3)})
    with pytest.raises(UnsupportedModelError, match="supported architectures"):
        build_frozen_layer({**s.config, "model_type": "bert"}, 0, state)
    with pytest.raises(ConfigError):
        build_frozen_layer(s.config, 3, state, attn_implementation="flash_attention_9")
    stale = {**state, "self_attn.rotary_emb.inv_freq": torch.ones(8)}  # old checkpoints carry it
    assert build_frozen_layer(s.config, 3, stale).num_parameters == frozen_params(state)
    with pytest.raises(ConfigError, match="hidden states"):
        build_frozen_layer(s.config, 3, state)(torch.randn(1, 2, 65))


def frozen_params(state: dict[str, torch.Tensor]) -> int:
    return sum(t.numel() for t in state.values())


def test_legacy_config_json_keys_are_understood(saved):
    """A Llama-3.1 config.json written by transformers 4.x (rope_theta + rope_scaling)."""
    from transformers import LlamaConfig

    legacy = {
        "model_type": "llama", "architectures": ["LlamaForCausalLM"], "transformers_version": "4.43.0",
        "hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4, "num_key_value_heads": 2,
        "num_hidden_layers": 4, "vocab_size": 128, "rms_norm_eps": 1e-6, "torch_dtype": "bfloat16",
        "max_position_embeddings": 128, "rope_theta": 500000.0,
        "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                         "original_max_position_embeddings": 16},
    }  # fmt: skip
    s = saved("llama-3.1-rope")
    frozen = build_frozen_layer(legacy, 3, s.checkpoint_slice(s.spec.layer_tensor_prefix(3)))
    assert frozen.config.rope_parameters == LlamaConfig.from_dict(legacy).rope_parameters
    assert frozen.dtype == torch.float32  # the tensors' dtype, not the config's torch_dtype
    ids, mask = _tokens(seed=6)
    hidden_in, expected = s.capture(-1, ids, mask)
    with torch.no_grad():
        assert _max_diff(frozen(hidden_in, mask), expected) <= TOL


# -- through a real artifact ---------------------------------------------------------------------
@pytest.mark.parametrize("case", list(CASES))
def test_extract_then_load_layer_is_exact(saved, case, tmp_path):
    from pifi_extract import extract_layer

    from pifi_train import load_layer

    s = saved(case)
    result = extract_layer(str(s.folder), -1, tmp_path / "layer.safetensors", dtype="keep")
    assert result.info.layer_index == s.num_layers - 1
    frozen = load_layer(result.path)
    assert frozen.layer_index == s.num_layers - 1 and frozen.final_norm is not None
    ids, mask = _tokens(seed=4)
    hidden_in, expected = s.capture(-1, ids, mask)
    with torch.no_grad():
        assert _max_diff(frozen(hidden_in, mask), expected) <= TOL


# -- CUDA (skipped without a GPU) ----------------------------------------------------------------
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_cuda_frozen_layer_reproduces_the_model_layer(saved, dtype):
    """On the GPU, in each dtype, the FrozenLayer is the model's layer (same kernels, same inputs)."""
    ids, mask = _tokens(seed=5)
    ids, mask = ids.cuda(), mask.cuda()
    report = {}
    for case in CASES:
        s = saved(case)
        model = AutoModelForCausalLM.from_pretrained(s.folder, dtype=dtype).to("cuda").eval()
        cuda_saved = Saved.__new__(Saved)
        cuda_saved.__dict__.update(s.__dict__, model=model)
        frozen = s.frozen(-1, device="cuda", dtype=dtype)
        assert frozen.device.type == "cuda" and frozen.dtype == dtype
        hidden_in, expected = cuda_saved.capture(-1, ids, mask)
        with torch.no_grad():
            got = frozen(hidden_in, mask)
            bidirectional = frozen(hidden_in, mask, causal=False)
        scale = float(expected.abs().max())
        report[case] = _max_diff(got, expected, mask)
        assert report[case] <= (TOL if dtype == torch.float32 else 1e-2 * scale), case
        assert torch.isfinite(bidirectional[mask.bool()]).all()
        # Gradients reach the input through the frozen bf16/fp16 layer under autocast.
        x = hidden_in.float().requires_grad_(True)
        with torch.autocast("cuda", dtype=torch.bfloat16 if dtype == torch.float32 else dtype):
            frozen(x, mask, causal=False).float().square().mean().backward()
        assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    print(f"\ncuda {dtype}: max |frozen - model| over tokens: " + ", ".join(f"{k}={v:.1e}" for k, v in report.items()))
