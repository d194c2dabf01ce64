"""PifiModel: the forward pass is the paper's composition, the layer stays frozen, gradients reach L_in."""

import pytest
import torch
from transformers import AutoModelForCausalLM

from pifi_extract.artifact import load_artifact_tensors
from pifi_train.families.classification.data import Examples, TaskData
from pifi_train.families.classification.family import CLASSIFICATION
from pifi_train.config import Precision, TrainConfig
from pifi_train.distributed import DistContext
from pifi_train.frozen_layer import load_layer
from pifi_train.frozen_stack import FrozenStack
from pifi_train.families.classification.model import SequenceClassifier as PifiModel, pool
from pifi_train.options import ModelOptions
from pifi_train.slm import load_slm, load_tokenizer
from pifi_train.families.classification.trainer import ClassificationTrainer as Trainer
from train_fixtures import assets, second_artifact, synthetic_rows, train_env  # noqa: F401 - fixtures

pytestmark = pytest.mark.usefixtures("train_env")


def _model(assets, method="pifi", slm="bert", layer_dtype=torch.float32, **options):
    torch.manual_seed(0)
    layer = load_layer(assets["artifact"], dtype=layer_dtype) if method == "pifi" else None
    model = PifiModel(load_slm(str(assets[slm])), 2, ModelOptions(method=method, dropout=0.0, **options), layer)
    return model.eval(), load_tokenizer(str(assets[slm]))


def _batch(tokenizer, texts=("good movie w1", "w2 w3 w4 w5 bad plot")):
    return dict(tokenizer(list(texts), padding=True, return_tensors="pt"))


def _llm_last_layer(assets):
    """The original LLM's last layer, run as the LLM runs it (the reference for the manual composition)."""
    return _llm_last_layer_of(assets["artifact"])


def _llm_last_layer_of(artifact):
    llm = AutoModelForCausalLM.from_pretrained(artifact.parent / "llm").eval()

    def run(x):  # (B, T, H) -> (B, T, H), bidirectional not needed at T = 1
        positions = torch.arange(x.shape[1]).unsqueeze(0)
        return llm.model.layers[-1](x, attention_mask=None, position_ids=positions,
                                    position_embeddings=llm.model.rotary_emb(x, positions))

    return run, llm.model.norm


@pytest.mark.parametrize("post_norm", [False, True])
def test_cls_plug_equals_manual_composition_with_the_llms_own_layer(assets, post_norm):
    model, tokenizer = _model(assets, post_norm=post_norm)
    batch = _batch(tokenizer)
    layer, norm = _llm_last_layer(assets)
    with torch.no_grad():
        cls = model.slm(**batch).last_hidden_state[:, 0]  # (B, H_slm)
        y = layer(model.l_in(cls).unsqueeze(1))  # (B, 1, H_llm)
        y = norm(y) if post_norm else y
        expected = model.head(model.l_out(y[:, 0]))
        assert torch.allclose(model(**batch), expected, atol=1e-5)


def test_sequence_plug_runs_every_token_with_the_padding_mask_then_pools(assets):
    model, tokenizer = _model(assets, plug="sequence", attention="bidirectional")
    batch = _batch(tokenizer)
    with torch.no_grad():
        hidden = model.slm(**batch).last_hidden_state
        y = model.layer(model.l_in(hidden), batch["attention_mask"], causal=False)  # (B, T, H_llm)
        expected = model.head(model.l_out(y[:, 0]))
        assert torch.allclose(model(**batch), expected, atol=1e-5)
        # padding must not change a row: the short row alone gives the same logits
        alone = _batch(tokenizer, texts=("good movie w1",))
        assert torch.allclose(model(**alone)[0], model(**batch)[0], atol=1e-5)
        causal = _model(assets, plug="sequence", attention="causal")[0]
        assert not torch.allclose(causal(**batch), model(**batch), atol=1e-4)


def test_base_is_the_slm_and_head_only(assets):
    model, tokenizer = _model(assets, method="base")
    assert not hasattr(model, "layer") and not hasattr(model, "l_in")
    batch = _batch(tokenizer)
    with torch.no_grad():
        assert torch.allclose(model(**batch), model.head(model.slm(**batch).last_hidden_state[:, 0]))


def test_decoder_slm_pools_the_last_real_token(assets):
    model, tokenizer = _model(assets, slm="decoder")
    assert model.pooling == "last"
    texts = ("good movie w1", "w2 w3 w4 w5 bad plot")
    with torch.no_grad():
        together = model(**_batch(tokenizer, texts))
        for i, text in enumerate(texts):
            assert torch.allclose(model(**_batch(tokenizer, (text,)))[0], together[i], atol=1e-5)
    hidden = torch.arange(12.0).view(2, 3, 2)
    assert pool(hidden, torch.tensor([[1, 1, 0], [0, 1, 1]]), "last").tolist() == [[2.0, 3.0], [10.0, 11.0]]


def test_layer_is_frozen_in_eval_mode_and_gradients_reach_l_in_and_the_slm(assets):
    model, tokenizer = _model(assets)
    model.train()
    assert model.training and model.head.training and not model.layer.training
    assert all(not p.requires_grad for p in model.layer.parameters())
    model(**_batch(tokenizer)).sum().backward()
    assert model.l_in.weight.grad is not None and model.l_in.weight.grad.abs().sum() > 0
    assert model.slm.embeddings.word_embeddings.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.layer.parameters())
    assert not any(k.startswith("layer.") for k in model.trainable_state_dict())
    assert {"l_in.weight", "l_out.weight", "head.0.weight"} <= set(model.trainable_state_dict())


def test_bf16_layer_keeps_its_dtype_while_fp32_gradients_flow_through_it(assets):
    model, tokenizer = _model(assets, layer_dtype=torch.bfloat16)
    assert model.layer.dtype == torch.bfloat16 and model.l_in.weight.dtype == torch.float32
    logits = model(**_batch(tokenizer))
    assert logits.dtype == torch.float32
    logits.sum().backward()
    assert model.l_in.weight.grad.dtype == torch.float32 and model.l_in.weight.grad.abs().sum() > 0


def test_training_leaves_the_layer_bit_identical_and_updates_l_in(assets, tmp_path):
    model, tokenizer = _model(assets)
    rows = synthetic_rows(64, seed=9)
    examples = Examples([r["text"] for r in rows], None, [r["label"] for r in rows])
    data = TaskData("t", ["0", "1"], examples, examples, None)
    config = TrainConfig(train_file="x", slm="x", layer_artifact="x", batch_size=16, lr=1e-2)
    trainer = Trainer(model, data, tokenizer, config, 0, DistContext(), Precision(None, torch.float32, False), tmp_path,
                      family=CLASSIFICATION)
    before = model.l_in.weight.detach().clone()
    loss, _ = trainer.train_epoch(1)
    assert loss > 0 and not torch.equal(before, model.l_in.weight)
    original, _ = load_artifact_tensors(assets["artifact"])
    current = model.layer.layer.state_dict()
    assert set(current) == set(original)
    assert all(torch.equal(current[k], original[k]) for k in original)
    frozen = {id(p) for p in model.layer.parameters()}
    assert not any(id(p) in frozen for group in trainer.optimizer.param_groups for p in group["params"])


def _stack_model(assets, second_artifact, **options):
    """A PiFi model with two frozen layers: the fixture's artifact, then the second one."""
    torch.manual_seed(0)
    stack = FrozenStack([load_layer(assets["artifact"]), load_layer(second_artifact)])
    model = PifiModel(load_slm(str(assets["bert"])), 2, ModelOptions(dropout=0.0, **options), stack)
    return model.eval(), load_tokenizer(str(assets["bert"]))


@pytest.mark.parametrize("post_norm", [False, True])
def test_two_layers_equal_the_manual_composition_in_order(assets, second_artifact, post_norm):
    model, tokenizer = _stack_model(assets, second_artifact, post_norm=post_norm)
    batch = _batch(tokenizer)
    first, _ = _llm_last_layer_of(assets["artifact"])
    second, second_norm = _llm_last_layer_of(second_artifact)
    assert model.layer.final_norm is model.layer.layers[1].final_norm  # the LAST layer's model's norm
    with torch.no_grad():
        x = model.l_in(model.slm(**batch).last_hidden_state[:, 0]).unsqueeze(1)  # (B, 1, H_llm)
        y = second(first(x))  # layer2(layer1(L_in x))
        y = second_norm(y) if post_norm else y
        expected = model.head(model.l_out(y[:, 0]))
        assert torch.allclose(model(**batch), expected, atol=1e-5)
        swapped = first(second(x))  # the other order gives another model
        swapped = second_norm(swapped) if post_norm else swapped
        assert not torch.allclose(model(**batch), model.head(model.l_out(swapped[:, 0])), atol=1e-4)


def test_stack_runs_every_layer_with_the_same_mask_and_stays_frozen(assets, second_artifact):
    one, two = load_layer(assets["artifact"]), load_layer(second_artifact)
    stack = FrozenStack([one, two])
    assert stack.hidden_size == 64 and stack.dtype == torch.float32
    assert stack.num_parameters == one.num_parameters + two.num_parameters
    stack.train()
    assert not stack.training and all(not p.requires_grad for p in stack.parameters())
    x = torch.randn(2, 5, 64)  # (B, T, H)
    mask = torch.tensor([[1, 1, 1, 1, 1], [0, 0, 1, 1, 1]])  # (B, T), left padding
    with torch.no_grad():
        for causal in (True, False):
            assert torch.equal(stack(x, mask, causal=causal), two(one(x, mask, causal=causal), mask, causal=causal))


def test_training_leaves_both_stacked_layers_bit_identical(assets, second_artifact, tmp_path):
    model, tokenizer = _stack_model(assets, second_artifact)
    rows = synthetic_rows(32, seed=9)
    examples = Examples([r["text"] for r in rows], None, [r["label"] for r in rows])
    data = TaskData("t", ["0", "1"], examples, examples, None)
    config = TrainConfig(train_file="x", slm="x", layer_artifact=["x", "y"], batch_size=16, lr=1e-2)
    trainer = Trainer(model, data, tokenizer, config, 0, DistContext(), Precision(None, torch.float32, False), tmp_path,
                      family=CLASSIFICATION)
    before = model.l_in.weight.detach().clone()
    trainer.train_epoch(1)
    assert not torch.equal(before, model.l_in.weight)
    for layer, artifact in zip(model.layer.layers, (assets["artifact"], second_artifact)):
        original, _ = load_artifact_tensors(artifact)
        current = layer.layer.state_dict()
        assert set(current) == set(original) and all(torch.equal(current[k], original[k]) for k in original)
    assert not any(k.startswith("layer.") for k in model.trainable_state_dict())
    frozen = {id(p) for p in model.layer.parameters()}
    assert not any(id(p) in frozen for group in trainer.optimizer.param_groups for p in group["params"])
