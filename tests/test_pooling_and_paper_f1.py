"""Table 10's h_enc (mean over real tokens, mean over every padded position) and the paper's per-batch macro-F1."""

from __future__ import annotations

import warnings

import pytest
import torch

from pifi_train.families.classification.data import Examples
from pifi_train.families.classification.metrics import compute_metrics, paper_macro_f1
from pifi_train.families.classification.model import SequenceClassifier
from pifi_train.families.classification.trainer import Collator, padding_of
from pifi_train.options import ModelOptions
from pifi_train.slm import load_slm, load_tokenizer

TEXTS = ["w1 good w2 w3 w4 w5", "w7", "bad movie plot w9"]


def _pooled(assets, pooling: str, plug: str = "cls", layer=None) -> tuple[torch.Tensor, dict, torch.nn.Module]:
    """The vector the head receives (a forward hook on it) for TEXTS, the batch, and the model."""
    torch.manual_seed(0)
    method = "pifi" if layer is not None else "base"
    model = SequenceClassifier(load_slm(str(assets["bert"])), 2, ModelOptions(method=method, plug=plug,
                                                                               pooling=pooling, dropout=0.0), layer).eval()
    batch = Collator(Examples(TEXTS, None, [0, 1, 0]), load_tokenizer(str(assets["bert"])), 12,
                     model.slm_inputs, padding_of(model))([0, 1, 2])
    seen = []
    model.head.register_forward_hook(lambda _m, inputs, _o: seen.append(inputs[0]))
    batch.pop("labels"), batch.pop("index")
    with torch.no_grad():
        model(**batch)
    return seen[0], batch, model


def test_mean_pools_over_the_real_tokens_only(assets):
    pooled, batch, model = _pooled(assets, "mean")
    assert batch["input_ids"].shape[1] < 12  # padded to the longest text, as for first/last
    with torch.no_grad():
        states = model.slm(**batch).last_hidden_state  # (B, T, H)
    for row, mask in enumerate(batch["attention_mask"]):
        assert torch.allclose(pooled[row], states[row, mask.bool()].mean(dim=0), atol=1e-6)
    assert not torch.allclose(pooled[1], states[1].mean(dim=0))  # the short text's padding is left out


def test_mean_with_padding_averages_every_max_length_position(assets):
    pooled, batch, model = _pooled(assets, "mean_with_padding")
    assert batch["input_ids"].shape == (3, 12)  # padded to --max-length, as the authors' inputs
    assert (batch["attention_mask"] == 0).any()
    with torch.no_grad():
        states = model.slm(**batch).last_hidden_state  # (B, 12, H)
    for row in range(3):
        assert torch.allclose(pooled[row], torch.stack(list(states[row])).sum(dim=0) / 12, atol=1e-6)


def test_sequence_plug_pools_the_layer_output(assets):
    from pifi_train.frozen_layer import load_layer

    layer = load_layer(str(assets["artifact"]), dtype=torch.float32)
    _, batch, model = _pooled(assets, "mean", plug="sequence", layer=layer)
    seen = []
    model.l_out.register_forward_hook(lambda _m, inputs, _o: seen.append(inputs[0]))
    with torch.no_grad():
        model(**batch)
        hidden = model.slm(**batch).last_hidden_state
        after = model.through_layer(model.l_in(hidden), batch["attention_mask"], False, False)  # (B, T, H_llm)
    for row, mask in enumerate(batch["attention_mask"]):
        assert torch.allclose(seen[0][row], after[row, mask.bool()].mean(dim=0), atol=1e-5)


BATCHES = [
    # (labels, predictions): crafted edge cases for sklearn's per-batch macro-F1
    ([0] * 8, [0] * 8),  # one class, all right: F1 1 over the one class present
    ([0] * 8, [0] * 7 + [1]),  # one wrong prediction in a one-class batch: the other class scores 0
    ([0, 1, 2, 2, 1], [0, 2, 2, 1, 1]),  # three classes
    ([1, 1, 1], [0, 0, 0]),  # nothing right: zero_division
    ([0, 1, 0, 1, 2, 2, 0], [0, 1, 1, 1, 2, 0, 0]),
]


@pytest.mark.parametrize("batch_size", [1, 3, 4, 32])
def test_paper_macro_f1_is_sklearns_per_batch_mean(batch_size):
    sklearn = pytest.importorskip("sklearn.metrics")
    labels = [y for truth, _ in BATCHES for y in truth]
    predictions = [p for _, guess in BATCHES for p in guess]
    expected = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns on undefined precision/recall (zero_division="warn": 0)
        for start in range(0, len(labels), batch_size):  # the authors' DataLoader: shuffle=False, drop_last=False
            truth, guess = labels[start:start + batch_size], predictions[start:start + batch_size]
            expected.append(sklearn.f1_score(truth, guess, average="macro"))
    assert paper_macro_f1(labels, predictions, batch_size) == pytest.approx(sum(expected) / len(expected), abs=1e-12)


def test_a_label_sorted_split_makes_the_papers_f1_about_half():
    """Why the paper's IMDB F1 is ~0.48 beside 87 % accuracy: its test set is sorted by label."""
    labels = [0] * 320 + [1] * 320
    predictions = [1 - y if i % 16 == 3 else y for i, y in enumerate(labels)]  # 2 errors per batch of 32
    per_batch = paper_macro_f1(labels, predictions, 32)
    dataset = compute_metrics(labels, predictions, ["neg", "pos"])
    assert dataset.accuracy == pytest.approx(0.9375) and dataset.macro_f1 == pytest.approx(0.9375)
    assert 0.45 < per_batch < 0.5
