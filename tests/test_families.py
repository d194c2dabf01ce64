"""Every training option in every task family: an observable effect, or a one-line refusal with nothing written.

The matrix of issue 19: LoRA (only adapters and the head change), a random layer (differs from the
artifact, the same for the same seed), a trained layer and a stack of two layers with the final norm,
--train-fraction (its count), --extra-test (its metrics), --split-seed (one split for every seed),
--clean-text, and the options a family does not take. One run flow for all: a failed run leaves nothing.
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open

import cli
from cli_runner import fails_in_one_line
from family_fixtures import FAMILIES, cli_args, options_for
from train_fixtures import write_jsonl
from pifi_extract.artifact import load_artifact_tensors
from pifi_train.config import TrainConfig
from pifi_train.families import FAMILIES as REGISTRY
from pifi_train.run_record import load_run
from pifi_train.runner import run_training

pytestmark = pytest.mark.usefixtures("train_env")


def _train(family_runs, family, tmp_path, **changes):
    options = options_for(family_runs, family, output_dir=str(tmp_path / "run"), **changes)
    return run_training(TrainConfig(**options))


def _checkpoint(run_dir):
    with safe_open(str(run_dir / "checkpoint" / "pifi_trainable.safetensors"), "pt") as fh:
        return {k: fh.get_tensor(k) for k in fh.keys()}


def _rows(run_dir, split):
    rows = [json.loads(line) for line in (run_dir / "predictions.jsonl").read_text().splitlines()]
    return [r for r in rows if r["split"] == split]


@pytest.mark.parametrize("family", FAMILIES)
def test_lora_changes_only_adapters_and_the_head(family_runs, family, tmp_path):
    pytest.importorskip("peft")
    [run] = _train(family_runs, family, tmp_path, method="lora")
    runtime = REGISTRY[family].runtime()
    original = runtime.load_slm(family_runs[family]["slm"], runtime.load_slm_config(family_runs[family]["slm"]))
    before = {name: p for name, p in original.named_parameters()}
    model = load_run(run.run_dir, device="cpu").model
    changed, kept = [], 0
    for name, param in model.slm.named_parameters():
        if "lora_" in name:
            changed.append(name)
            continue
        base = name.replace("base_model.model.", "").replace(".base_layer", "")
        assert torch.equal(param.detach(), before[base].detach()), name  # the SLM's own weights never move
        kept += 1
    assert changed and kept
    assert not hasattr(model, "layer")  # LoRA is the SLM alone (Table 18): no LLM layer
    if family != "seq2seq":  # the classification / span head trains fully
        assert all(p.requires_grad for p in model.head.parameters())


@pytest.mark.parametrize("family", FAMILIES)
def test_random_layer_differs_from_the_artifact_and_is_the_same_for_the_seed(family_runs, family, tmp_path):
    [run] = _train(family_runs, family, tmp_path, layer_init="random")
    artifact, _ = load_artifact_tensors(family_runs[family]["layer_artifact"])
    first = load_run(run.run_dir, device="cpu").model.layer.layer.state_dict()
    again = load_run(run.run_dir, device="cpu").model.layer.layer.state_dict()
    weights = [k for k in artifact if k.endswith("proj.weight")]
    assert weights and all(not torch.equal(first[k], artifact[k]) for k in weights)
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not any(k.startswith("layer.") for k in _checkpoint(run.run_dir))  # rebuilt from the seed, not saved


@pytest.mark.parametrize("family", FAMILIES)
def test_trained_stack_of_two_layers_with_the_final_norm(family_runs, family, second_artifact, tmp_path):
    artifacts = [family_runs[family]["layer_artifact"], str(second_artifact)]
    [run] = _train(family_runs, family, tmp_path, layer_artifact=artifacts, train_layer=True, post_norm=True)
    record = json.loads((run.run_dir / "config.json").read_text())
    assert [entry["sha256"] for entry in record["layer"]] and len(record["layer"]) == 2
    assert record["checkpoint_holds_layer"] is True
    saved = _checkpoint(run.run_dir)
    layer_keys = [k for k in saved if k.startswith("layer.")]
    assert layer_keys  # --train-layer: the checkpoint holds the layers
    original, _ = load_artifact_tensors(artifacts[0])
    trained = {k.split("layer.layers.0.layer.", 1)[1]: v for k, v in saved.items() if k.startswith("layer.layers.0.layer.")}
    assert any(not torch.equal(trained[k], original[k]) for k in trained if k in original)
    model = load_run(run.run_dir, device="cpu").model
    assert len(model.layer.layers) == 2 and model.options.post_norm


@pytest.mark.parametrize("family", FAMILIES)
def test_fraction_extra_test_and_one_split_for_every_seed(family_runs, family, tmp_path):
    options = family_runs[family]
    extra = options["test_file"]
    results = _train(family_runs, family, tmp_path, validation_file=None, train_fraction=0.5, extra_test=[extra],
                     seeds=2, split_seed=7, max_train_samples=None, max_eval_samples=None)
    train_file_rows = len(open(options["train_file"]).read().splitlines())
    held = int(train_file_rows * 0.2)
    remaining = train_file_rows - held
    records = [json.loads((r.run_dir / "config.json").read_text()) for r in results]
    if family == "classification":  # stratified: half of each class
        from pifi_train.families.classification.runtime import load_data

        config = TrainConfig(**options_for(family_runs, family, validation_file=None, split_seed=7,
                                           max_train_samples=None))
        labels = load_data(config).train.labels
        expected = sum(max(1, round(labels.count(c) * 0.5)) for c in set(labels))
    else:
        expected = max(1, round(remaining * 0.5))
    assert all(r["num_examples"]["train"] == expected for r in records)
    assert all(r["num_examples"]["validation"] == held for r in records)
    headline = [m.key for m in REGISTRY[family].metrics.headline]
    for r in results:
        assert set(headline) <= set(r.metrics["final"]["extra_tests"][extra])
    first, second = (_rows(r.run_dir, "validation") for r in results)
    key = {"classification": "index", "qa": "id", "seq2seq": "source"}[family]
    assert [row[key] for row in first] == [row[key] for row in second]  # the same held-out split for both seeds
    if family != "classification":
        assert [row.get("reference", row.get("answers")) for row in first] == \
            [row.get("reference", row.get("answers")) for row in second]
    assert all(r["data"]["split_seed"] == 7 for r in records)


@pytest.mark.parametrize("family", ["classification", "seq2seq"])
def test_clean_text_html_cleans_every_text(family_runs, family, tmp_path):
    from pifi_train.families.classification.runtime import load_data as load_classification
    from pifi_train.families.seq2seq.runtime import load_data as load_seq2seq

    rows = [json.loads(line) for line in open(family_runs[family]["train_file"]).read().splitlines()]
    for row in rows:
        for column in ("text", "src", "tgt"):
            if column in row:
                row[column] = row[column] + "<br /><br />end"
    dirty = write_jsonl(tmp_path / "dirty.jsonl", rows)
    config = TrainConfig(**options_for(family_runs, family, train_file=str(dirty), clean_text="html"))
    data = (load_classification if family == "classification" else load_seq2seq)(config)
    texts = data.train.texts if family == "classification" else data.train.sources + data.train.targets
    assert all("<br" not in t and t.endswith("end") for t in texts)


REFUSALS = [
    ("qa", {"clean_text": "html"}, "would move the character offsets"),
    ("qa", {"dropout": 0.0}, "--dropout is a classification option"),
    ("seq2seq", {"dropout": 0.0}, "--dropout is a classification option"),
    ("qa", {"pooling": "last"}, "--pooling is a classification option"),
    ("seq2seq", {"pooling": "last"}, "--pooling is a classification option"),
    ("qa", {"plug": "cls"}, "--plug cls is not a qa plug"),
    ("seq2seq", {"plug": "cls"}, "--plug cls is not a seq2seq plug"),
    ("qa", {"text_column": "x"}, "--text-column is a classification option"),
    ("seq2seq", {"label_column": "x"}, "--label-column is a classification option"),
    ("classification", {"protocol": "paper"}, "--protocol is a qa option"),
    ("seq2seq", {"doc_stride": 8}, "--doc-stride is a qa option"),
    ("classification", {"num_beams": 3}, "--num-beams is a seq2seq option"),
    ("qa", {"source_column": "x"}, "--source-column is a seq2seq option"),
    ("classification", {"method": "base", "layer_artifact": "x.safetensors"}, "--layer-artifact applies to --method pifi"),
    ("qa", {"method": "base", "post_norm": True}, "--post-norm applies to --method pifi"),
    ("seq2seq", {"method": "lora", "plug": "sequence"}, "--plug applies to --method pifi"),
    ("classification", {"lora_r": 4}, "--lora-r applies to --method lora"),
    ("qa", {"select_by": "bleu"}, "--select-by 'bleu' is not a validation metric"),
    ("seq2seq", {"select_by": "accuracy"}, "--select-by 'accuracy' is not a validation metric"),
]


@pytest.mark.parametrize("family, changes, message", REFUSALS)
def test_an_option_a_family_does_not_take_is_refused_in_one_line(family_runs, family, changes, message, tmp_path,
                                                                   capsys):
    fails_in_one_line(capsys, cli_args(options_for(family_runs, family, output_dir=str(tmp_path / "run"), **changes)),
                      message)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("family", FAMILIES)
def test_a_failed_run_leaves_no_run_folder(family_runs, family, tmp_path, capsys, monkeypatch):
    import pifi_train.runner as runner
    from pifi_extract.errors import ConfigError

    def boom(*args, **kwargs):
        raise ConfigError("the model could not be built")

    monkeypatch.setattr(runner, "build_model", boom)
    options = {**family_runs[family], "output_dir": str(tmp_path / "run")}
    fails_in_one_line(capsys, cli_args(options), "the model could not be built")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_loads_its_slm_without_pickles(family_runs, family, tmp_path, capsys):
    import shutil

    folder = tmp_path / "pickled"
    shutil.copytree(family_runs[family]["slm"], folder)
    for weights in folder.glob("*.safetensors"):
        weights.rename(weights.with_name("pytorch_model.bin"))
    options = {**family_runs[family], "slm": str(folder), "output_dir": str(tmp_path / "run")}
    fails_in_one_line(capsys, cli_args(options), "pifi never loads pickles")
    assert not (tmp_path / "run").exists()


def test_max_length_is_not_a_sentinel(family_runs, tmp_path):
    """--max-length 100 on a QA run means 100 (was read as "not set": 384)."""
    from pifi_train.families.qa.family import QA

    assert QA.max_length(TrainConfig(task="squad", max_length=100)) == 100
    assert QA.max_length(TrainConfig(task="squad")) == 384
    assert QA.max_length(TrainConfig(task="squad", protocol="paper")) == 100
    assert REGISTRY["classification"].max_length(TrainConfig()) == 100
