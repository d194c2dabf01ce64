"""Encoder-decoder PiFi: an identity layer with an exact L_in/L_out inverse pair changes nothing."""

from __future__ import annotations

import copy

import pytest
import torch

from seq2seq_fixtures import make_tiny_seq2seq
from train_fixtures import make_tiny_artifact


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    return make_tiny_artifact(tmp_path_factory.mktemp("s2s-layer"), hidden=64)


def identity_layer(artifact):
    from pifi_train.frozen_layer import load_layer

    layer = load_layer(artifact)
    with torch.no_grad():
        layer.layer.self_attn.o_proj.weight.zero_()
        layer.layer.mlp.down_proj.weight.zero_()
    return layer


@pytest.mark.parametrize("kind", ["t5", "bart"])
def test_identity_plug_reproduces_base_logits_and_generate(kind, artifact, tmp_path):
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    from pifi_train.families.seq2seq.model import PluggedEncoder, Seq2SeqPifi
    from pifi_train.options import ModelOptions

    folder = make_tiny_seq2seq(kind, tmp_path / kind, d_model=32)
    base = AutoModelForSeq2SeqLM.from_pretrained(folder).eval()
    pifi = Seq2SeqPifi(copy.deepcopy(base), identity_layer(artifact), ModelOptions()).eval()
    assert isinstance(pifi.slm.get_encoder(), PluggedEncoder)
    hidden = base.config.d_model
    q, _ = torch.linalg.qr(torch.randn(64, hidden, dtype=torch.float64))  # (64, H), orthonormal columns
    with torch.no_grad():
        pifi.plug.l_in.weight.copy_(q.float())
        pifi.plug.l_out.weight.copy_(q.T.float())  # L_out @ L_in = I
    tokenizer = AutoTokenizer.from_pretrained(folder)
    batch = tokenizer(["w1 w2 w3 w4", "w5 w6"], padding=True, return_tensors="pt")
    labels = tokenizer(text_target=["w3 w2", "w1 w1 w4"], padding=True, return_tensors="pt").input_ids
    labels[labels == tokenizer.pad_token_id] = -100
    with torch.no_grad():
        expected = base(**batch, labels=labels).logits
        got = pifi(batch.input_ids, batch.attention_mask, labels)
    assert got.shape == expected.shape
    assert torch.allclose(got, expected, atol=1e-5), (got - expected).abs().max()
    decoding = {"num_beams": 3, "max_new_tokens": 8, "do_sample": False}
    assert torch.equal(pifi.generate(batch.input_ids, batch.attention_mask, **decoding),
                       base.generate(**batch, **decoding))
    assert not any(k.startswith("layer.") for k in pifi.trainable_state_dict())
    assert not any("frozen" in k or ".layer.self_attn" in k for k in pifi.trainable_state_dict())

