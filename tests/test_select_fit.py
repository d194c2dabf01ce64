"""pifi select --score fit (the fast search), its pairs, and the prefetching layer stream."""

from __future__ import annotations

import json
import threading
import weakref
from pathlib import Path

import pytest
import torch

from cli_runner import fails_in_one_line, run_cli
from pifi_extract.errors import ConfigError, CorruptFileError
from pifi_extract.extract import open_source, plan_layers
from pifi_train.config import TrainConfig, resolve_precision
from pifi_train.frozen_layer import FrozenLayer, load_layer
from pifi_train.frozen_stack import FrozenStack
from pifi_train.select.config import SelectConfig
from pifi_train.select.fit import EncodedSplit, FitOptions, fit_layer
from pifi_train.select.layer_stream import LayerStream
from pifi_train.select.pairs import plan_pairs, total_pairs
from pifi_train.select.scoring import rank
from pifi_train.select.selection import run_select, train_command
from tiny_models import make_tiny_model
from train_fixtures import FAST_OPTIONS, assets, tokenizer_for, train_env  # noqa: F401 - fixtures

CPU = torch.device("cpu")
FP32 = resolve_precision("auto", CPU)


@pytest.fixture(scope="module")
def base_run(assets, tmp_path_factory):  # noqa: F811
    """A `pifi train --method base` run of the tiny BERT on the keyword task: its SLM knows the label."""
    from pifi_train.runner import run_training
    from train_fixtures import offline_single_thread

    out = tmp_path_factory.mktemp("base") / "run"
    with offline_single_thread():
        run_training(TrainConfig(train_file=str(assets["train"]), validation_file=str(assets["validation"]),
                                 slm=str(assets["bert"]), method="base", output_dir=str(out), **FAST_OPTIONS))
    return out


def planted_llm(folder: Path, good: int = 1, num_layers: int = 4) -> Path:
    """A tiny llama whose layers other than ``good`` overwrite their input: a 1e9 bias on o_proj, under which
    fp32 cannot hold an O(1) input (its ulp there is 64), so they output one constant vector whatever comes in."""
    from safetensors.torch import load_file, save_file

    make_tiny_model("llama", folder, num_layers=num_layers, max_shard_size="10MB", attention_bias=True)
    tokenizer_for(folder).save_pretrained(folder)
    weights = load_file(folder / "model.safetensors")
    for i in range(num_layers):
        if i != good:
            weights[f"model.layers.{i}.self_attn.o_proj.bias"].fill_(1e9)
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    return folder


def fit_config(assets, folder: Path, tmp_path: Path, **kw) -> SelectConfig:  # noqa: F811
    values = dict(llm=str(folder), train_file=str(assets["train"]), validation_file=str(assets["validation"]),
                  score="fit", slm=str(assets["bert"]), max_length=16, output=str(tmp_path / "sel.json"))
    return SelectConfig(**{**values, **kw})


@pytest.mark.usefixtures("train_env")
def test_fit_ranks_first_the_planted_layer(assets, base_run, tmp_path):  # noqa: F811
    folder = planted_llm(tmp_path / "llm", good=2)
    result = run_select(fit_config(assets, folder, tmp_path, slm_run=str(base_run), pairs="adjacent:1"))
    fit = {r["name"]: r["fit"] for r in result.rows}
    assert result.best["name"] == "2" and fit["2"] >= 0.9, fit
    assert max(v for k, v in fit.items() if k != "2") <= 0.6, fit  # the overwriting layers stay at chance
    saved = json.loads(Path(result.config.output).read_text())
    assert saved["rank_by"] == "fit" and saved["fit"]["encoder"]["weights"] == "fine-tuned"
    assert saved["fit"]["num_train"] == 320 and saved["fit"]["tokens_per_example"] == 1
    assert saved["fit"]["peak_layers_in_memory"] <= 2
    # adjacent:1 -> layer 2 with each neighbour; a pair through an overwriting layer after it is at chance
    assert [p["layers"] for p in saved["pairs"]] == [[1, 2], [2, 3]]
    assert saved["fit"]["pairs"]["of"] == total_pairs(4) == 6
    assert all(p["fit"] <= 0.6 for p in saved["pairs"])  # each pair crosses an overwriting layer too


@pytest.mark.usefixtures("train_env")
def test_pairs_are_trained_through_both_layers_in_model_order(assets, tmp_path, monkeypatch):  # noqa: F811
    folder = make_tiny_model("llama", tmp_path / "llm", max_shard_size="10MB")
    tokenizer_for(folder).save_pretrained(folder)
    calls: list[tuple[int, torch.Tensor, torch.Tensor]] = []
    forward = FrozenLayer.forward

    def recording(self, hidden_states, *args, **kw):  # type: ignore[no-untyped-def]
        out = forward(self, hidden_states, *args, **kw)
        calls.append((self.layer_index, hidden_states.detach().clone(), out.detach().clone()))
        return out

    monkeypatch.setattr(FrozenLayer, "forward", recording)
    result = run_select(fit_config(assets, folder, tmp_path, pairs="top:3", fit_epochs=1))
    singles = [r["layer"] for r in sorted(result.rows, key=lambda r: r["rank"]) if not r["post_norm"]]
    expected = plan_pairs(singles, "top", 3, 4)
    assert [tuple(p["layers"]) for p in result.pairs] == expected and len(expected) == 3
    steps = (320 + 31) // 32 + (96 + 255) // 256  # forwards of one fit: the epoch's batches, the validation's
    assert len(calls) == (4 + 1) * steps + len(expected) * 2 * steps  # 4 layers + 3+norm, then the pairs
    pair_calls = calls[-len(expected) * 2 * steps:]
    for k, (a, b) in enumerate(expected):
        chunk = pair_calls[k * 2 * steps:(k + 1) * 2 * steps]
        assert [c[0] for c in chunk] == [a, b] * steps  # every forward: layer a, then layer b
        for first, second in zip(chunk[::2], chunk[1::2]):
            assert torch.equal(first[2], second[1])  # b reads what a wrote


def test_fit_layer_trains_l_in_through_a_stack(tmp_path):
    """Gradients reach L_in through both frozen layers (and never the layers themselves)."""
    folder = make_tiny_model("llama", tmp_path / "llm", num_layers=2, max_shard_size="10MB")
    source = open_source(str(folder))
    from pifi_extract.extract import write_artifact

    layers = []
    for plan in plan_layers(source, [0, 1]):
        write_artifact(source, plan, tmp_path / f"{plan.layer_index}.safetensors")
        layers.append(load_layer(tmp_path / f"{plan.layer_index}.safetensors"))
    before = [p.clone() for p in layers[0].parameters()]
    gen = torch.Generator().manual_seed(0)
    y = torch.arange(64) % 2
    states = torch.randn(64, 1, 16, generator=gen) + 4.0 * y.view(-1, 1, 1).float()  # (N, 1, H_slm)
    split = EncodedSplit(states, torch.ones(64, 1, dtype=torch.long), y)

    class Config:
        hidden_size, model_type = 16, "bert"

    score = fit_layer(FrozenStack(layers), split, split, 2, Config(), FitOptions(epochs=20, lr=1e-2), CPU, FP32)
    assert score.accuracy >= 0.9 and len(score.curves[0]) == 20
    assert all(torch.equal(a, b) for a, b in zip(before, layers[0].parameters()))


def test_plan_pairs_and_counts():
    assert plan_pairs([5, 1, 3, 0], "top", 3, 8) == [(1, 3), (1, 5), (3, 5)]
    assert plan_pairs([0, 7, 3], "adjacent", 2, 8) == [(0, 1), (6, 7)]
    assert plan_pairs([3, 3, 4], "adjacent", 2, 8) == [(2, 3), (3, 4), (4, 5)]
    assert total_pairs(32) == 496 and total_pairs(1) == 0


def test_stream_never_holds_more_than_two_layers(tmp_path, monkeypatch):
    """A consumer that holds each layer until the next one is built: the stream reads ahead (two alive), never
    further (a counting hook on every layer the stream builds)."""
    import pifi_train.frozen_layer as fl

    folder = make_tiny_model("llama", tmp_path / "llm", num_layers=32, hidden=32, heads=2, kv_heads=1,
                             max_shard_size="10MB")
    source = open_source(str(folder))
    lock = threading.Condition()
    state = {"built": 0, "alive": 0, "peak": 0}
    original = fl.load_layer

    def release() -> None:
        with lock:
            state["alive"] -= 1

    def counting(*a, **kw):  # type: ignore[no-untyped-def]
        layer = original(*a, **kw)
        with lock:
            state["built"] += 1
            state["alive"] += 1
            state["peak"] = max(state["peak"], state["alive"])
            lock.notify_all()
        weakref.finalize(layer, release)
        return layer

    monkeypatch.setattr(fl, "load_layer", counting)
    stream = LayerStream(source, plan_layers(source, list(range(32))), tmp_path, device=CPU, dtype=torch.float32)
    seen, ahead = [], 0
    for k, (index, layer) in enumerate(stream):
        seen.append(index)
        with lock:  # hold layer k until k+1 is built (no sleeping: woken by the hook)
            assert lock.wait_for(lambda: state["built"] >= min(k + 2, 32), timeout=60)
            ahead += state["alive"] == 2
        del layer
    assert seen == list(range(32)) and state["peak"] == stream.stats.peak_alive == 2
    assert ahead == 31  # every layer but the last had its successor built while it was held
    assert not list(tmp_path.glob("layer-*.safetensors"))  # temporary artifacts removed once loaded


def test_stream_failure_surfaces_once_and_stops_the_workers(tmp_path, monkeypatch):
    import pifi_train.select.layer_stream as ls

    folder = make_tiny_model("llama", tmp_path / "llm", max_shard_size="10MB")
    source = open_source(str(folder))
    real = ls.write_artifact

    def failing(src, plan, path, **kw):  # type: ignore[no-untyped-def]
        if plan.layer_index == 2:
            raise CorruptFileError("shard changed while reading layer 2")
        return real(src, plan, path, **kw)

    monkeypatch.setattr(ls, "write_artifact", failing)
    got = []
    with pytest.raises(CorruptFileError, match="layer 2"):
        for index, _layer in LayerStream(source, plan_layers(source, [0, 1, 2, 3]), tmp_path, device=CPU,
                                         dtype=torch.float32):
            got.append(index)
    assert got == [0, 1]
    assert not [t for t in threading.enumerate() if t.name.startswith("pifi-")]


@pytest.mark.usefixtures("train_env")
def test_prefetch_on_and_off_give_the_same_selection(tmp_path):
    from train_fixtures import synthetic_rows, write_jsonl

    folder = make_tiny_model("llama", tmp_path / "llm", max_shard_size="10MB")
    tokenizer_for(folder).save_pretrained(folder)
    data = write_jsonl(tmp_path / "d.jsonl", synthetic_rows(40, seed=0))
    rows = [run_select(SelectConfig(llm=str(folder), train_file=str(data), samples=40, folds=4, prefetch=p,
                                    output=str(tmp_path / f"{p}.json"))).rows for p in (True, False)]
    assert rows[0] == rows[1]


@pytest.mark.usefixtures("train_env")
def test_sequence_plug_caches_token_states(assets, tmp_path):  # noqa: F811
    folder = make_tiny_model("llama", tmp_path / "llm", max_shard_size="10MB")
    result = run_select(fit_config(assets, folder, tmp_path, plug="sequence", fit_epochs=1, layers="-1"))
    assert result.fit["plug"] == "sequence" and result.fit["tokens_per_example"] > 1
    assert [r["name"] for r in result.rows] == ["3", "3+norm"]
    assert "--plug sequence" in train_command(result)


def test_ilm_ties_go_to_the_earlier_layer_as_the_fork():
    assert rank([0.0, 0.2, 0.2, 0.1]) == [4, 1, 2, 3]
    assert rank([0.7, 0.7, 0.7], [0.0, 0.1, 0.1]) == [3, 1, 2]


@pytest.mark.parametrize("args, message", [
    (["--max-length", "0"], "--max-length and --batch-size must be at least 1"),
    (["--pairs", "top:3"], "--pairs needs --score fit"),
    (["--score", "fit", "--pairs", "top:1"], "cannot read --pairs 'top:1'"),
    (["--score", "fit", "--plug", "tokens"], "unknown --plug 'tokens'"),
    (["--score", "fit", "--fit-lr", "nan"], "--fit-lr a finite number > 0"),
    (["--score", "fit", "--samples", "100"], "--samples does not apply to --score fit"),
    (["--slm-run", "runs/base"], "--slm-run does not apply to --score both"),
])
def test_select_refusals_are_one_line(capsys, tmp_path, args, message):
    fails_in_one_line(capsys, ["select", "--llm", str(tmp_path), "--train-file", str(tmp_path / "t.jsonl"),
                               "-o", str(tmp_path / "s.json"), *args], message)
    assert not (tmp_path / "s.json").exists()


def test_fit_needs_training_data_and_a_classification_task(tmp_path):
    with pytest.raises(ConfigError, match="--score fit trains on training data"):
        SelectConfig(llm="x", validation_file="v.jsonl", score="fit").validate()
    with pytest.raises(ConfigError, match="covers classification tasks"):
        run_select(SelectConfig(llm=str(tmp_path), task="squad", score="fit", output=str(tmp_path / "s.json")))


@pytest.mark.usefixtures("train_env")
def test_cli_fit_table_pairs_and_commands(assets, tmp_path, capsys):  # noqa: F811
    folder = planted_llm(tmp_path / "llm", good=1)
    code, out, err = run_cli(capsys, "select", "--llm", str(folder), "--train-file", str(assets["train"]),
                             "--validation-file", str(assets["validation"]), "--score", "fit", "--slm",
                             str(assets["bert"]), "--max-length", "16", "--fit-epochs", "1", "--pairs", "top:2",
                             "--layers", "0:2", "-o", str(tmp_path / "sel.json"))
    assert code == 0, err
    assert "320 training / 96 validation examples, pretrained" in out and "fit_loss" in out
    assert "pairs: 1 trained (top:2) of the model's 6 pairs of two layers" in out
    assert "best pair: pifi train" in out and f"--layer-artifact {folder}:0 --layer-artifact {folder}:1" in out
    assert f"--slm {assets['bert']}" in out


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.usefixtures("train_env")
def test_select_and_fit_on_cuda_in_bf16(assets, base_run, tmp_path):  # noqa: F811
    from train_fixtures import synthetic_rows, write_jsonl

    folder = planted_llm(tmp_path / "llm", good=2)
    result = run_select(fit_config(assets, folder, tmp_path, slm_run=str(base_run), device="cuda"))
    assert result.fit["device"].startswith("cuda") and result.fit["layer_dtype"] == "bfloat16"
    assert result.best["name"] == "2", result.rows
    plain = make_tiny_model("llama", tmp_path / "plain", max_shard_size="10MB")
    tokenizer_for(plain).save_pretrained(plain)
    data = write_jsonl(tmp_path / "d.jsonl", synthetic_rows(40, seed=0))
    probes = [run_select(SelectConfig(llm=str(plain), train_file=str(data), samples=40, folds=4, device=d,
                                      score="probe", output=str(tmp_path / f"{d}.json"))) for d in ("cpu", "cuda")]
    assert [r["name"] for r in probes[0].rows] == [r["name"] for r in probes[1].rows]
    assert all(abs(a["probe"] - b["probe"]) <= 0.15 for a, b in zip(probes[0].rows, probes[1].rows))


@pytest.mark.usefixtures("train_env")
def test_a_layer_with_non_finite_states_is_scored_none_and_ranked_last(tmp_path, capsys):
    from safetensors.torch import load_file, save_file
    from train_fixtures import synthetic_rows, write_jsonl

    folder = make_tiny_model("llama", tmp_path / "llm", max_shard_size="10MB")
    tokenizer_for(folder).save_pretrained(folder)
    weights = load_file(folder / "model.safetensors")
    weights["model.layers.2.mlp.down_proj.weight"][0, 0] = float("nan")  # layer 2 on: NaN states
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    data = write_jsonl(tmp_path / "d.jsonl", synthetic_rows(40, seed=0))
    code, out, err = run_cli(capsys, "select", "--llm", str(folder), "--train-file", str(data), "--samples", "40",
                             "--folds", "4", "-o", str(tmp_path / "s.json"))
    assert code == 0, err
    rows = {r["name"]: r for r in json.loads((tmp_path / "s.json").read_text())["layers"]}
    broken = ("2", "3", "3+norm")
    assert all(rows[n]["probe"] is None and rows[n]["ilm"] is None and rows[n]["nonfinite"] for n in broken)
    assert sorted(rows[n]["rank"] for n in broken) == [3, 4, 5] and "—" in out


@pytest.mark.parametrize("plug", ["cls", "sequence"])
def test_cached_states_give_the_real_classifiers_logits(assets, plug):  # noqa: F811
    """The fit's model (the classifier around a stand-in SLM that returns the cached states) computes what the
    classifier with the real SLM computes, given the same L_in, L_out and head."""
    from pifi_train.families.classification.data import Examples
    from pifi_train.families.classification.model import SequenceClassifier
    from pifi_train.options import ModelOptions
    from pifi_train.select.fit import CachedSLM, encode
    from pifi_train.slm import load_slm, load_tokenizer
    from train_fixtures import synthetic_rows

    rows = synthetic_rows(12, seed=4)
    examples = Examples([r["text"] for r in rows], None, [r["label"] for r in rows])
    slm, tok = load_slm(str(assets["bert"])), load_tokenizer(str(assets["bert"]))
    layer = load_layer(assets["artifact"])
    options = ModelOptions("pifi", plug, "bidirectional", False, "auto", 0.2)
    torch.manual_seed(0)
    real = SequenceClassifier(slm, 2, options, layer).eval()
    cached = SequenceClassifier(CachedSLM(slm.config), 2, options, layer).eval()
    cached.load_state_dict({k: v for k, v in real.state_dict().items() if not k.startswith("slm.")})
    split = encode(slm, tok, examples, plug=plug, pooling="auto", max_length=16, batch_size=5, device=CPU,
                   precision=FP32)
    x, mask, _ = split.batch(torch.arange(12), CPU)
    enc = tok(examples.texts, padding=True, truncation=True, max_length=16, return_tensors="pt")
    with torch.no_grad():
        expected = real(**enc)  # (B, C)
        got = cached(input_ids=x, attention_mask=mask)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
