"""--method llm (Table 15): the LLM's own embedding rows -> its frozen layer -> head, no small model.

On a tiny llama (with a word tokenizer) from a local folder and from the loopback Hub: the head sees what the
transformers model computes after that layer; the run keeps exactly the rows its data uses (read by range,
never the LLM); predict reads rows of unseen tokens from the source, and offline says so in one line.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from cli_runner import fails_in_one_line, run_cli
from family_fixtures import cli_args
from pifi_extract import extract_layer
from pifi_train.config import TrainConfig
from pifi_train.families.classification.predict import predict
from pifi_train.llm_rows import EmbeddingRows
from pifi_train.run_record import load_run
from pifi_train.runner import resume_training, run_training
from pifi_train.slm import load_tokenizer
from tiny_models import make_tiny_model, weight_map
from train_fixtures import offline_single_thread, tokenizer_for

UNSEEN = "zzz"  # not in the word vocabulary: [UNK], a token the synthetic data never uses


@pytest.fixture(scope="module")
def llm(tmp_path_factory) -> dict[str, Path]:
    """A tiny llama LLM with a tokenizer, and its first and last layers as artifacts."""
    root = tmp_path_factory.mktemp("llm")
    folder = make_tiny_model("llama", root / "llm", num_layers=3, hidden=64, max_shard_size="20KB")
    tokenizer_for(folder).save_pretrained(folder)
    return {"folder": folder, 0: Path(extract_layer(str(folder), 0, root / "first.safetensors").path),
            -1: Path(extract_layer(str(folder), -1, root / "last.safetensors").path)}


def _options(family_runs, llm_layers, out: Path, **changes) -> dict:
    options = {k: v for k, v in family_runs["classification"].items() if k not in ("slm", "layer_artifact")}
    layers = [str(x) for x in llm_layers] if isinstance(llm_layers, list) else str(llm_layers)
    return {**options, "method": "llm", "layer_artifact": layers, "output_dir": str(out), **changes}


def _reference(folder: Path, layer: int, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """transformers' own LlamaModel holding only the LLM's embeddings and layer ``layer``: its output (B, T, H)."""
    from safetensors.torch import load_file
    from transformers import AutoConfig, LlamaModel

    config = AutoConfig.from_pretrained(folder)
    layer = layer % config.num_hidden_layers
    config.num_hidden_layers = 1
    tensors = {}
    for file in set(weight_map(folder).values()):
        tensors.update(load_file(str(folder / file)))
    prefix = f"model.layers.{layer}."
    state = {"embed_tokens.weight": tensors["model.embed_tokens.weight"], "norm.weight": tensors["model.norm.weight"],
             **{"layers.0." + k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}}
    model = LlamaModel(config).eval()
    model.load_state_dict(state)
    raw = []  # the layer's own output (the model's last hidden state has the final norm applied)
    model.layers[0].register_forward_hook(lambda _m, _i, out: raw.append(out[0] if isinstance(out, tuple) else out))
    with torch.no_grad():
        model(input_ids=input_ids, attention_mask=mask)
    return raw[0]


@pytest.mark.parametrize("layer", [0, -1])
def test_the_head_sees_the_llms_own_states_after_the_layer(family_runs, llm, tmp_path, layer):
    with offline_single_thread():
        [run] = run_training(TrainConfig(**_options(family_runs, llm[layer], tmp_path / "run", epochs=3,
                                                    max_train_samples=None)))
    loaded = load_run(run.run_dir, device="cpu")
    texts = ["w1 good w2 w3", "w7", "movie plot bad w9 w10"]
    batch = loaded.tokenizer(texts, padding=True, return_tensors="pt")
    seen = []
    loaded.model.head.register_forward_hook(lambda _m, inputs, _o: seen.append(inputs[0]))
    with torch.no_grad():
        loaded.model(**batch)
    expected = _reference(llm["folder"], layer, batch["input_ids"], batch["attention_mask"])  # (B, T, H)
    last = batch["attention_mask"].sum(dim=1) - 1  # right padding: the last real token
    assert torch.allclose(seen[0], expected[torch.arange(3), last], atol=1e-5)
    assert loaded.model.pooling == "last" and run.metrics["final"]["test"]["accuracy"] > 0.6  # it learns


def test_the_run_keeps_exactly_the_rows_its_data_uses(family_runs, llm, tmp_path):
    with offline_single_thread():
        [run] = run_training(TrainConfig(**_options(family_runs, llm[-1], tmp_path / "run")))
    record = json.loads((run.run_dir / "config.json").read_text())
    assert record["slm"] is None and record["layer"]["sha256"]
    rows_record = record["model"]["llm_embeddings"]
    assert rows_record["source"] == str(llm["folder"]) and rows_record["source_kind"] == "local"
    tokenizer = load_tokenizer(str(run.run_dir / "checkpoint"))
    used = {tokenizer.pad_token_id}
    for split in ("train_file", "validation_file", "test_file"):
        rows = [json.loads(line) for line in Path(family_runs["classification"][split]).read_text().splitlines()]
        limit = 64 if split == "train_file" else 32  # --max-train-samples / --max-eval-samples
        for row in rows[:limit]:
            used.update(tokenizer(row["text"], truncation=True, max_length=16)["input_ids"])
    with safe_open(str(run.run_dir / "checkpoint" / "embedding_rows.safetensors"), "pt") as fh:
        ids, rows = fh.get_tensor("ids"), fh.get_tensor("rows")
    assert ids.tolist() == sorted(used) == sorted(set(ids.tolist())) and rows_record["rows"] == len(used)
    full = _embedding_matrix(llm["folder"])
    assert torch.equal(rows.float(), full[ids])  # the LLM's own rows, exactly (fp32 model: kept in fp32)
    with safe_open(str(run.run_dir / "checkpoint" / "pifi_trainable.safetensors"), "pt") as fh:
        assert {k.split(".")[0] for k in fh.keys()} == {"head"}  # only the head trains
    assert "embedding_rows.safetensors" in record["checkpoint_files"]  # --overwrite removes it by name


def _embedding_matrix(folder: Path) -> torch.Tensor:
    from safetensors.torch import load_file

    file = weight_map(folder)["model.embed_tokens.weight"]
    return load_file(str(folder / file))["model.embed_tokens.weight"].float()


def test_predict_reads_rows_of_unseen_tokens_from_the_local_source(family_runs, llm, tmp_path):
    with offline_single_thread():
        [run] = run_training(TrainConfig(**_options(family_runs, llm[0], tmp_path / "run")))
        loaded = load_run(run.run_dir, device="cpu")
        known = len(loaded.model.embeddings.ids)
        got = predict(loaded, [f"w1 {UNSEEN} good", "w2 w3"])
    assert len(loaded.model.embeddings.ids) == known + 1  # [UNK]'s row, read from the LLM folder
    full = _embedding_matrix(llm["folder"])
    loaded.model.embeddings = EmbeddingRows(torch.arange(len(full)), full, loaded.model.embeddings.config)
    again = predict(loaded, [f"w1 {UNSEEN} good", "w2 w3"])
    assert [g.probabilities for g in got] == [a.probabilities for a in again]


def test_hub_source_read_by_range_and_offline_predict_is_one_line(family_runs, llm, tmp_path, hub_server, capsys):
    from layer_cache import get_or_extract

    hub_server.add_repo("org/tiny-llm", llm["folder"])
    get_or_extract("org/tiny-llm", -1)  # the layer, into the test's pifi cache
    hub_server.reset_counters()
    torch.set_num_threads(1)
    def stop_after_epoch_1(event):
        if event.kind == "epoch_end":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_training(TrainConfig(**_options(family_runs, "org/tiny-llm:-1", tmp_path / "run", epochs=2)),
                     stop_after_epoch_1)
    record = json.loads((tmp_path / "run" / "config.json").read_text())["model"]["llm_embeddings"]
    assert record["source"] == "org/tiny-llm" and record["source_kind"] == "hub" and len(record["commit"]) == 40
    embedding_file = weight_map(llm["folder"])["model.embed_tokens.weight"]
    data = [r for r in hub_server.requests("GET") if r.path.endswith(embedding_file) and r.range]
    body = sum(r.body_bytes for r in data if not r.range.startswith("bytes=0-"))  # headers: the first read
    assert body == record["rows"] * 64 * 4  # only the used rows (fp32), never the whole matrix
    hub_server.reset_counters()
    with offline_single_thread():  # --resume: the run's own tokenizer and rows, the layer from the cache
        [run] = resume_training(tmp_path / "run")
    assert len(run.metrics["epochs"]) == 2 and not hub_server.requests()
    with offline_single_thread():
        code, out, _ = run_cli(capsys, "predict", "--run-dir", str(run.run_dir), "--text", "w1 good w2")
        assert code == 0 and out.strip()  # tokens the run saw: no network
        fails_in_one_line(capsys, ["predict", "--run-dir", str(run.run_dir), "--text", f"w1 {UNSEEN}"],
                          "the texts use 1 token(s) this --method llm run has no embedding rows for")
    code, out, _ = run_cli(capsys, "predict", "--run-dir", str(run.run_dir), "--text", f"w1 {UNSEEN}")
    assert code == 0 and out.strip()  # online: the missing row is read from the Hub


def test_refusals_are_one_line_and_write_nothing(family_runs, llm, assets, tmp_path, capsys):
    out = tmp_path / "run"
    with offline_single_thread():
        fails_in_one_line(capsys, cli_args(_options(family_runs, [llm[0], assets["artifact"]], out)),
                          "the layer artifacts come from different LLMs")
        assert not out.exists()
        changed = tmp_path / "changed"
        shutil.copytree(llm["folder"], changed)
        artifact = extract_layer(str(changed), 0, tmp_path / "changed.safetensors").path
        shard = changed / weight_map(changed)["model.layers.0.mlp.up_proj.weight"]
        os.utime(shard, ns=(shard.stat().st_atime_ns, shard.stat().st_mtime_ns + 10**9))
        fails_in_one_line(capsys, cli_args(_options(family_runs, artifact, out)),
                          "changed since the layer was extracted from it")
        assert not out.exists()
        for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
            (changed / name).unlink(missing_ok=True)
        artifact = extract_layer(str(changed), 0, tmp_path / "notok.safetensors").path
        fails_in_one_line(capsys, cli_args(_options(family_runs, artifact, out)), "--method llm: ")
        assert not out.exists()


def test_rows_of_a_gguf_source_are_its_dequantized_embedding(tmp_path):
    """A Q8_0 GGUF file: the layer's source reopened from the artifact's provenance, rows dequantized as
    transformers' own GGUF loader does."""
    import gguf
    from transformers import AutoModelForCausalLM

    from pifi_train.llm_rows import RowSource
    from tiny_gguf import write_tiny_gguf
    from tiny_models import build_tiny_model

    path = write_tiny_gguf(build_tiny_model("llama"), tmp_path / "tiny.gguf",
                           quantize={"token_embd": gguf.GGMLQuantizationType.Q8_0})
    artifact = extract_layer(str(path), 0, tmp_path / "layer.safetensors").path
    origin = RowSource.of_layers([str(artifact)])
    assert origin.kind == "gguf" and origin.gguf_host == "local"
    ids, rows = origin.read(origin.open(), [9, 1, 5, 9])
    model = AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file=path.name, dtype=torch.float32)
    assert ids.tolist() == [1, 5, 9]
    assert torch.allclose(rows, model.model.embed_tokens.weight[ids].detach(), atol=1e-6)


def test_pifi_model_refuses_what_it_cannot_wrap(family_runs, llm, assets, tmp_path):
    from pifi_extract.errors import ConfigError
    from pifi_train import PifiModel

    with pytest.raises(ConfigError, match="--method llm has none"):
        PifiModel.from_slm(str(assets["bert"]), str(llm[0]), method="llm")
    with pytest.raises(ConfigError, match="mean_with_padding averages inputs padded to max_length"):
        PifiModel.from_slm(str(assets["bert"]), str(llm[0]), pooling="mean_with_padding")
    with offline_single_thread():
        [run] = run_training(TrainConfig(**_options(family_runs, llm[0], tmp_path / "run")))
        with pytest.raises(ConfigError, match="is a --method llm run"):
            PifiModel.from_pretrained(run.run_dir)
