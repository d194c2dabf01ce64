"""GGUF exactness on the real SmolLM2-135M-Instruct Q4_1 file of the demo assets (skipped when not installed).

transformers' own full GGUF load takes ~30 s here (it parses the 49k-token vocabulary twice and
dequantizes every tensor), so one load serves both the tensor and the forward comparison.
"""

from __future__ import annotations

import pytest
import torch

from pifi_extract import extract_layer, load_artifact_tensors
from pifi_extract.errors import SourceNotFoundError
from pifi_train import load_layer
from pifi_train.demo_assets import find_asset

try:
    GGUF = find_asset("llm")
except SourceNotFoundError:
    GGUF = None


@pytest.mark.skipif(GGUF is None, reason="demo assets not installed (scripts/install_demo_assets.sh)")
def test_smollm2_last_layer_equals_transformers_gguf_load(tmp_path):
    from transformers import AutoModelForCausalLM

    result = extract_layer(str(GGUF), -1, tmp_path / "smollm2-29.safetensors")
    assert result.info.layer_index == 29 and result.info.provenance["quantization_types"] == ["Q4_1"]
    assert result.source_bytes < 0.03 * GGUF.stat().st_size

    ref = AutoModelForCausalLM.from_pretrained(GGUF.parent, gguf_file=GGUF.name).eval()
    layer_sd, norm_sd = load_artifact_tensors(result.path)
    expected = ref.model.layers[29].state_dict()
    assert sorted(layer_sd) == sorted(expected)
    for name, tensor in expected.items():
        assert (layer_sd[name] - tensor).abs().max().item() <= 1e-6, name
    assert torch.equal(norm_sd["weight"], ref.model.norm.weight.detach())

    seen = {}

    def hook(module, args, kwargs, output):
        seen["x"] = args[0] if args else kwargs["hidden_states"]
        seen["y"] = output[0] if isinstance(output, tuple) else output

    handle = ref.model.layers[29].register_forward_hook(hook, with_kwargs=True)
    ids = torch.randint(0, ref.config.vocab_size, (2, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref(input_ids=ids)
        got = load_layer(result.path)(seen["x"], None, causal=True)
    handle.remove()
    assert (got - seen["y"]).abs().max().item() <= 1e-4 * seen["y"].abs().max().item()
