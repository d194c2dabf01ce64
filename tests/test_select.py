"""pifi select: streamed pooled states equal the full model's, the fork's ILM score, the probe, the reads."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import cli
from pifi_extract.extract import open_source, read_safetensors_header
from pifi_train.select.config import SelectConfig, parse_layers
from pifi_train.select.scoring import ilm_score, probe_score, rank, spearman
from pifi_train.select.selection import run_select
from pifi_train.select.stream import pool, stream_pooled_states
from pifi_train.select.tokenizer import load_tokenizer
from tiny_models import make_tiny_model, weight_map
from train_fixtures import assets, synthetic_rows, tokenizer_for, train_env, write_jsonl  # noqa: F401

TEXTS = [r["text"] for r in synthetic_rows(12, seed=3)]


def tiny_llm(folder: Path, model_type: str = "llama", **kw) -> Path:
    make_tiny_model(model_type, folder, **kw)
    tokenizer_for(folder).save_pretrained(folder)
    return folder


def full_model_states(folder: Path, tok, texts: list[str], batch: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Pooled output_hidden_states[1:] of the whole model, and the last layer's raw output (a hook)."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    raw: list[torch.Tensor] = []
    model.model.layers[-1].register_forward_hook(lambda _m, _i, out: raw.append(out[0] if isinstance(out, tuple) else out))
    per_layer, raw_pooled = [], []
    for i in range(0, len(texts), batch):
        enc = tok(texts[i : i + batch], padding=True, return_tensors="pt")
        with torch.no_grad():
            hs = model(**enc, output_hidden_states=True).hidden_states[1:]
        per_layer.append([pool(h, enc["attention_mask"], "mean") for h in hs])
        raw_pooled.append(pool(raw[-1], enc["attention_mask"], "mean"))
    layers = [torch.cat([b[j] for b in per_layer]).numpy() for j in range(len(per_layer[0]))]
    return layers, torch.cat(raw_pooled).numpy()


@pytest.mark.parametrize("model_type", ["llama", "qwen2", "gemma3_text"])
@pytest.mark.parametrize("side", ["left", "right"])
def test_streamed_states_equal_the_full_model(tmp_path, model_type, side):
    folder = tiny_llm(tmp_path / model_type, model_type)
    source = open_source(str(folder))
    tok = load_tokenizer(source)
    tok.padding_side = side
    streamed = stream_pooled_states(source, TEXTS, tok, batch_size=5)
    full, last_raw = full_model_states(folder, tok, TEXTS, 5)
    names = [s.name for s in streamed.states]
    assert names == ["0", "1", "2", "3", "3+norm"]
    for st in streamed.states:
        expected = full[st.layer] if st.layer < 3 or st.post_norm else last_raw
        np.testing.assert_allclose(st.X, expected, atol=1e-5, rtol=0)
    assert np.abs(streamed.states[3].X - streamed.states[4].X).max() > 1e-2  # raw and normed differ


def _fork_ilm(X, y, n_pcs=16, top_pc=5, lambdas=(0.5, 1.0)):
    """NAMUORI00/PIFI-ILM selection/ilm_direct.py@555ad63, _ilm_effect_for_layer, written out directly."""
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score

    pca = PCA(n_components=n_pcs, svd_solver="auto", random_state=0)
    S = pca.fit_transform(X)
    corrs = []
    for j in range(S.shape[1]):
        s = S[:, j]
        if len(np.unique(y)) <= 2:
            corrs.append(0.0 if s.std() < 1e-8 else abs(np.corrcoef(s, y.astype(float))[0, 1]))
        else:
            corrs.append(max(abs(np.corrcoef(s, (y == k).astype(float))[0, 1]) for k in range(int(y.max()) + 1)))
    idx = np.argsort(-np.array(corrs))[:top_pc]
    recon = S[:, idx] @ pca.components_[idx]
    best = 0.0
    for lam in lambdas:
        clf = LogisticRegression(max_iter=1000).fit(X, y)
        eff = max(0.0, accuracy_score(y, clf.predict(X)) - accuracy_score(y, clf.predict(X - lam * recon)))
        best = max(best, eff)
    return best


@pytest.mark.parametrize("classes", [2, 3])
def test_ilm_score_is_the_forks_formula(classes):
    rng = np.random.default_rng(0)
    y = rng.integers(0, classes, 120)
    X = (rng.normal(size=(120, 32)) + 0.8 * np.eye(32)[y % 32]).astype(np.float32)
    ours = ilm_score(X, y)
    assert ours == pytest.approx(_fork_ilm(X, y), abs=1e-12)
    assert ours > 0


def test_probe_prefers_held_out_signal_over_memorisable_noise():
    rng = np.random.default_rng(1)
    y = np.repeat([0, 1], 60)
    noise = rng.normal(size=(120, 60))  # a wide probe fits it perfectly in-sample, not held out
    signal = rng.normal(size=(120, 60))
    signal[:, 0] += 4.0 * y
    scores = [probe_score(noise, y), probe_score(signal, y), probe_score(noise * 3, y)]
    assert rank(scores)[1] == 1 and scores[1] > 0.8 and scores[0] < 0.7
    assert spearman([1, 2, 3], [0.1, 0.2, 0.3]) == pytest.approx(1.0)


def test_layer_list_syntax():
    assert parse_layers("0:32", 4) == [0, 1, 2, 3] and parse_layers("0,2,-1", 4) == [0, 2, 3]
    assert parse_layers("1:", 4) == [1, 2, 3] and parse_layers(None, 2) == [0, 1]
    with pytest.raises(IndexError, match="out of range"):
        parse_layers("0,9", 4)


def test_hub_reads_each_layer_once_and_only_used_embedding_rows(tmp_path, hub_server):
    folder = tiny_llm(tmp_path / "llm", "llama")
    hub_server.add_repo("org/tiny", folder)
    data = write_jsonl(tmp_path / "data.jsonl", synthetic_rows(40, seed=0))
    hub_server.reset_counters()
    result = run_select(SelectConfig(llm="org/tiny", train_file=str(data), samples=40, folds=4,
                                     output=str(tmp_path / "sel.json"), layers="0:4"))
    source = open_source(str(folder))
    tok = load_tokenizer(source)
    used = {i for t in [r["text"] for r in synthetic_rows(40, seed=0)] for i in tok(t)["input_ids"]} | {tok.pad_token_id}
    wmap = weight_map(folder)
    reads: dict[str, list[tuple[int, int]]] = {}
    for r in hub_server.requests("GET"):
        if r.range and r.path.endswith(".safetensors"):
            a, b = (int(x) for x in r.range.removeprefix("bytes=").split("-"))
            if a == 0:  # a shard header's speculative read (pifi_extract.hub_source.HEADER_GUESS): not tensor data
                continue
            reads.setdefault(r.path.rsplit("/", 1)[-1], []).append((a, b + 1))
    headers = {f: read_safetensors_header(source, f) for f in set(wmap.values())}
    for name, file in wmap.items():
        entry = headers[file].tensors[name]
        start, end = headers[file].data_start + entry.begin, headers[file].data_start + entry.end
        overlaps = [(a, b) for a, b in reads.get(file, []) if a < end and b > start]
        if name == "model.embed_tokens.weight":
            row = entry.shape[1] * 4
            rows = {(x - start) // row for a, b in overlaps for x in range(max(a, start), min(b, end), row)}
            assert rows == used  # exactly the used rows, none other
        elif name.startswith("model.layers."):
            covered = sum(min(b, end) - max(a, start) for a, b in overlaps)
            assert covered == end - start, name  # every byte of every layer tensor read exactly once
        elif name.startswith("lm_head"):
            assert not overlaps
    saved = json.loads((tmp_path / "sel.json").read_text())
    assert [r["name"] for r in saved["layers"]] == ["0", "1", "2", "3", "3+norm"]
    assert saved["best"] == result.best and {"ilm", "probe", "rank"} <= set(saved["layers"][0])


def test_cli_select_table_json_and_train_command(tmp_path):
    folder = tiny_llm(tmp_path / "llm", "llama")
    data = write_jsonl(tmp_path / "data.jsonl", synthetic_rows(40, seed=0))
    out = tmp_path / "sel.json"
    run = lambda *a: cli.app(list(a), standalone_mode=False)  # noqa: E731
    run("select", "--llm", str(folder), "--train-file", str(data), "--samples", "40", "--folds", "4",
        "--layers", "1,-1", "--score", "probe", "-o", str(out), "--extract-top", "1", "--cache-layers")
    saved = json.loads(out.read_text())
    assert [r["name"] for r in saved["layers"]] == ["1", "3", "3+norm"] and "ilm" not in saved["layers"][0]
    assert saved["extracted"] == [f"{folder}:{saved['best']['layer']}"]
    from layer_cache import artifact_path
    from pifi_extract.artifact import read_artifact

    assert read_artifact(artifact_path(saved["extracted"][0])).layer_index == saved["best"]["layer"]  # --layer-artifact
    # the layers read on the way are cached: a second run reads them from the cache
    run("select", "--llm", str(folder), "--train-file", str(data), "--samples", "40", "--folds", "4",
        "--layers", "1,-1", "-o", str(out))
    assert json.loads(out.read_text())["cached_layers"] == [0, 1, 2, 3]


def test_too_few_samples_per_class_is_one_line(tmp_path):
    from pifi_extract.errors import ConfigError

    data = write_jsonl(tmp_path / "d.jsonl", synthetic_rows(6, seed=0))
    with pytest.raises(ConfigError, match="fewer than the 5 probe folds"):
        run_select(SelectConfig(llm=str(tmp_path), train_file=str(data), samples=6))


@pytest.mark.usefixtures("train_env")
def test_sweep_trains_every_layer_once_and_reports_spearman(tmp_path, assets, capsys):  # noqa: F811
    from layer_cache import LayerCache
    from pifi_extract.extract import plan_layers

    folder = tiny_llm(tmp_path / "llm", "llama")
    selection = tmp_path / "sel.json"
    selection.write_text(json.dumps({"layers": [{"layer": i, "post_norm": False, "probe": p, "ilm": 0.0}
                                                for i, p in enumerate([0.5, 0.6, 0.7, 0.8])]}))
    args = ["sweep", "--llm", str(folder), "--layers", "0:4", "--output-dir", str(tmp_path / "sweep"),
            "--slm", str(assets["bert"]), "--train-file", str(assets["train"]), "--validation-file",
            str(assets["validation"]), "--test-file", str(assets["test"]), "--selection", str(selection),
            "--epochs", "3", "--batch-size", "16", "--lr", "3e-3", "--max-length", "16", "--dropout", "0",
            "--plot", str(tmp_path / "curve.png")]
    cli.app(args, standalone_mode=False)
    out = capsys.readouterr().out
    saved = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    assert saved["layers"] == [0, 1, 2, 3] and set(saved["scores"]) == {"base", "0", "1", "2", "3"}
    assert saved["metric"] == "accuracy" and saved["family"] == "classification"
    assert saved["split"] == "test" and all(0 <= a <= 1 for v in saved["scores"].values() for a in v)
    plans = plan_layers(open_source(str(folder)), [0, 1, 2, 3])
    assert saved["extracted_bytes"] == sum(p.source_bytes for p in plans)  # one extraction per layer
    assert len(LayerCache().entries()) == 4
    means = [saved["mean"][str(i)] for i in range(4)]
    assert saved["spearman"]["ilm"] is None  # a constant score has no rank correlation
    expected = spearman([0.5, 0.6, 0.7, 0.8], means)
    assert saved["spearman"]["probe"] == (None if expected != expected else pytest.approx(expected))
    assert max(means) > 0.6  # the layers were trained, not left at chance
    assert "spearman(probe, accuracy)" in out and "base" in out and "pifi sweep" in out
    for i in range(4):
        assert (tmp_path / "sweep" / f"layer-{i}" / "metrics.json").is_file()
    assert (tmp_path / "curve.png").read_bytes()[:4] == b"\x89PNG"


def test_probe_ranks_first_the_layer_that_carries_a_planted_label(tmp_path):
    """A tiny model whose layer 1 alone writes the label direction: its MLP output is scaled up 50x along
    the direction that the label reads, and the other layers are made identities; the probe ranks layer 1
    (and the identity layers after it, which pass it on unchanged) far above layer 0."""
    from safetensors.torch import load_file, save_file

    folder = tiny_llm(tmp_path / "llm", "llama", max_shard_size="10MB")
    weights = load_file(folder / "model.safetensors")
    for i in (0, 2, 3):  # identity layers: nothing added to the residual stream
        weights[f"model.layers.{i}.self_attn.o_proj.weight"].zero_()
        weights[f"model.layers.{i}.mlp.down_proj.weight"].zero_()
    weights["model.layers.1.mlp.down_proj.weight"] *= 50.0
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    source = open_source(str(folder))
    tok = load_tokenizer(source)
    texts = [r["text"] for r in synthetic_rows(160, seed=5)]
    states = {s.name: s.X for s in stream_pooled_states(source, texts, tok, batch_size=32).states}
    w = np.random.default_rng(0).normal(size=states["1"].shape[1])
    projection = (states["1"] - states["0"]) @ w  # what layer 1 alone adds, read along w
    y = (projection > np.median(projection)).astype(int)
    scores = {name: probe_score(X, y, folds=4) for name, X in states.items()}
    assert scores["1"] > scores["0"] + 0.1, scores
    assert max(scores, key=scores.get) in {"1", "2", "3"} and scores["1"] == scores["2"] == scores["3"]


def test_gguf_streamed_states_equal_transformers_gguf_model(tmp_path):
    """A Q8_0 embedding (rows dequantized block by block) and Q8_0 attention, read from a GGUF file."""
    import gguf
    from transformers import AutoModelForCausalLM

    from tiny_gguf import write_tiny_gguf
    from tiny_models import build_tiny_model

    Q = gguf.GGMLQuantizationType
    path = write_tiny_gguf(build_tiny_model("llama"), tmp_path / "tiny.gguf",
                           quantize={"token_embd": Q.Q8_0, "attn_q": Q.Q8_0})
    tok = tokenizer_for(tmp_path / "tok")
    source = open_source(str(path))
    streamed = stream_pooled_states(source, TEXTS, tok, batch_size=6)
    model = AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file=path.name, dtype=torch.float32).eval()
    for i in range(0, len(TEXTS), 6):
        enc = tok(TEXTS[i : i + 6], padding=True, return_tensors="pt")
        with torch.no_grad():
            hs = model(**enc, output_hidden_states=True).hidden_states[1:]
        for st in streamed.states[:3]:  # layers 0-2 (the last one's raw output is checked above)
            np.testing.assert_allclose(st.X[i : i + 6], pool(hs[st.layer], enc["attention_mask"], "mean").numpy(),
                                       atol=1e-5, rtol=0)
        np.testing.assert_allclose(streamed.states[-1].X[i : i + 6], pool(hs[3], enc["attention_mask"], "mean").numpy(),
                                   atol=1e-5, rtol=0)


def test_one_line_errors(tmp_path, capsys):
    import subprocess
    import sys

    folder = make_tiny_model("llama", tmp_path / "notok")  # no tokenizer files
    data = write_jsonl(tmp_path / "d.jsonl", synthetic_rows(40, seed=0))
    base = [sys.executable, "-c", "import cli; cli.main()", "select", "--llm", str(folder), "--train-file", str(data),
            "--samples", "40", "-o", str(tmp_path / "s.json")]
    for extra, message in [([], "has no tokenizer files"), (["--tokenizer", str(tmp_path / "tok"), "--layers", "0,7"],
                                                          "layer 7 is out of range")]:
        if extra and extra[0] == "--tokenizer":
            tokenizer_for(tmp_path / "tok").save_pretrained(tmp_path / "tok")
        done = subprocess.run(base + extra, capture_output=True, text=True)
        assert done.returncode == 2 and message in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_missing_scikit_learn_names_the_extra(monkeypatch):
    import sys

    from pifi_train.select.scoring import MissingExtraError, sklearn

    monkeypatch.setitem(sys.modules, "sklearn", None)
    with pytest.raises(MissingExtraError) as err:
        sklearn()
    assert "pip install 'pifi[select]'" in err.value.one_line()


def test_select_shares_its_data_options_with_train():
    """--task, --train-file, the columns and the sample caps mean in `pifi select` what they mean in `pifi train`:
    the same flags, defaults and help, built from pifi_train/options.py (issue 19)."""
    from typer.main import get_command

    from pifi_cli.select_cmds import SHARED_DATA

    commands = get_command(cli.app).commands
    params = {name: {p.name: p for p in commands[name].params} for name in ("select", "train")}
    for name in SHARED_DATA:
        mine, theirs = params["select"][name], params["train"][name]
        assert (mine.opts, mine.default, mine.help) == (theirs.opts, theirs.default, theirs.help), name
