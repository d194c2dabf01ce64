"""`pifi push` of a fine-tuned run and `pifi predict --run-dir hf://ORG/REPO` on the loopback Hub: the layer
comes from the pifi cache, the same repo (--with-layer) or the source model by range reads; offline after."""

from __future__ import annotations

import json

import pytest
from huggingface_hub import constants

import cli
from layer_cache import get_or_extract
from pifi_train.config import TrainConfig
from pifi_train import load_classifier
from pifi_train.runner import run_training
from tiny_models import make_tiny_model
from train_fixtures import FAST_OPTIONS, assets, offline_single_thread  # noqa: F401 - fixture

LLM = "org/tiny-llm"
TEXTS = ["w1 good w2", "w3 bad w4"]


@pytest.fixture
def pushed(hub_server, assets, tmp_path, monkeypatch):
    llm = make_tiny_model("llama", tmp_path / "llm", num_layers=2, hidden=64)
    files = {p.name: p.read_bytes() for p in llm.iterdir() if p.is_file()}
    hub_server.add_repo(LLM, {**files, "README.md": b"---\nlicense: apache-2.0\n---\n"})
    art = get_or_extract(LLM, -1)
    config = TrainConfig(train_file=str(assets["train"]), validation_file=str(assets["validation"]),
                         test_file=str(assets["test"]), slm=str(assets["bert"]), layer_artifact=f"{LLM}:-1",
                         output_dir=str(tmp_path / "run"), **{**FAST_OPTIONS, "epochs": 2, "max_train_samples": 96})
    with offline_single_thread():
        run = run_training(config)[0]
        expected = load_classifier(run.run_dir, device="cpu")(TEXTS)
    return run, art, expected


def _card(hub, repo):
    return hub.repos[repo].commits[hub.head(repo)].files["README.md"].source.read_text()


def test_push_then_predict_from_the_hub_cache_source_and_offline(hub_server, pushed, tmp_path, monkeypatch, capsys):
    run, art, expected = pushed
    cli.main(["push", "--run-dir", str(run.run_dir), "--to", "lab/sst-pifi", "--token", hub_server.write_token])
    repo = hub_server.repos["lab/sst-pifi"]
    files = set(repo.commits[hub_server.head("lab/sst-pifi")].files)
    assert repo.private and {"config.json", "metrics.json", "pifi_share.json", "README.md",
                             "checkpoint/pifi_trainable.safetensors", "checkpoint/config.json", "checkpoint/tokenizer_config.json"} <= files
    assert not any(f.startswith(("layers/", "state/")) for f in files)  # the layer goes by reference
    card = _card(hub_server, "lab/sst-pifi")
    test_acc = 100 * run.metrics["final"]["test"]["accuracy"]
    assert art.data_sha256 in card and hub_server.head(LLM) in card and f"{test_acc:.2f}" in card
    assert f"--layer-artifact {LLM}@{hub_server.head(LLM)}:1" in card and "--lr 0.003" in card
    capsys.readouterr()
    monkeypatch.setenv("HF_TOKEN", hub_server.write_token)  # the reader's login token (the repo is private)

    # the pifi cache holds the layer: nothing is read from the source model
    hub_server.reset_counters()
    got = load_classifier("hf://lab/sst-pifi", device="cpu", layer_artifact=None)(TEXTS)
    assert len(got) == len(expected)
    for g, e in zip(got, expected):  # (pytest >= 9.1 refuses nested data in approx)
        assert g.label == e.label and g.probabilities == pytest.approx(e.probabilities)
    assert not any(LLM in r.path for r in hub_server.log)

    # an empty pifi cache: the layer is extracted from the source model by range reads (its shards' bytes only)
    monkeypatch.setenv("PIFI_CACHE", str(tmp_path / "fresh-cache"))
    hub_server.reset_counters()
    monkeypatch.delenv("HF_TOKEN")
    cli.main(["predict", "--run-dir", "hf://lab/sst-pifi@main", "--text", TEXTS[0], "--device", "cpu",
              "--token", hub_server.write_token])
    assert capsys.readouterr().out.split("\t")[0] == expected[0].label
    tensor_gets = [r for r in hub_server.requests("GET") if LLM in r.path and r.path.endswith(".safetensors")]
    assert tensor_gets and all(r.range for r in tensor_gets)

    hub_server.reset_counters()  # offline afterwards: no request at all
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    again = load_classifier("hf://lab/sst-pifi", device="cpu")(TEXTS)
    assert [p.label for p in again] == [p.label for p in expected] and hub_server.log == []


def test_with_layer_pushes_the_artifact_and_predict_reads_it_from_the_repo(hub_server, pushed, tmp_path, monkeypatch):
    run, art, expected = pushed
    cli.main(["push", "--run-dir", str(run.run_dir), "--to", "lab/with-layer", "--with-layer", "--public",
              "--token", hub_server.write_token])
    share = json.loads(hub_server.repos["lab/with-layer"].commits[hub_server.head("lab/with-layer")]
                       .files["pifi_share.json"].source.read_text())
    assert share["layers"][0]["sha256"] == art.data_sha256 and share["layers"][0]["repo_path"].startswith("layers/")
    monkeypatch.setenv("PIFI_CACHE", str(tmp_path / "fresh-cache"))
    hub_server.reset_counters()
    got = load_classifier("hf://lab/with-layer", device="cpu")(TEXTS)
    assert [p.label for p in got] == [p.label for p in expected]
    assert not any(LLM in r.path for r in hub_server.log)  # the source model is not touched


@pytest.mark.parametrize("family", ["qa", "seq2seq"])
def test_a_pushed_qa_or_seq2seq_run_predicts_as_the_local_run(hub_server, family_runs, family, tmp_path, monkeypatch,
                                                              capsys):
    from family_fixtures import options_for

    with offline_single_thread():
        run = run_training(TrainConfig(**options_for(family_runs, family, output_dir=str(tmp_path / "run"))))[0]
    question = {"qa": ["--question", "movie plot", "--context", "w3 w4 good w17 w8"],
                "seq2seq": ["--text", "w1 w2 w3"]}[family]
    cli.main(["predict", "--run-dir", str(run.run_dir), "--device", "cpu", *question])
    local = capsys.readouterr().out
    cli.main(["push", "--run-dir", str(run.run_dir), "--to", f"lab/{family}", "--with-layer",
              "--token", hub_server.write_token])
    card = _card(hub_server, f"lab/{family}")
    assert {"qa": "question-answering", "seq2seq": "text2text-generation"}[family] in card and family in card
    capsys.readouterr()
    monkeypatch.setenv("HF_TOKEN", hub_server.write_token)
    monkeypatch.setenv("PIFI_CACHE", str(tmp_path / "fresh-cache"))
    cli.main(["predict", "--run-dir", f"hf://lab/{family}", "--device", "cpu", *question])
    assert capsys.readouterr().out == local and local.strip()
