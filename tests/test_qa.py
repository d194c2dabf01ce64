"""Extractive QA (pifi_train.families.qa): metrics, windows, masking, training base and PiFi, predict."""

from __future__ import annotations

import json

import pytest
import torch

from pifi_train.families.qa import metrics as qm
from pifi_train.families.qa.data import QaCollator, best_answers, example_from_row, featurize, read_squad
from train_fixtures import QA_MARKER, assets, qa_rows, tokenizer_for, train_env, write_jsonl  # noqa: F401

QA_FAST = {"epochs": 12, "batch_size": 16, "lr": 3e-3, "max_length": 48, "doc_stride": 16}


# ---- metrics ----------------------------------------------------------------------------------

def test_official_normalisation_and_max_over_golds():
    assert qm.normalize_answer("The  Eiffel-Tower!") == "eiffeltower"
    assert qm.normalize_answer("an apple, a pear") == "apple pear"
    assert qm.exact_match("the Cat.", "cat") == 1.0
    assert qm.f1("red big cat", "big cat") == pytest.approx(0.8)  # p 2/3, r 1
    assert qm.f1("dog", "cat") == 0.0
    scores = qm.squad_metrics({"a": "Paris", "b": "in london"}, {"a": ["paris", "Lyon"], "b": ["London", "uk"]})
    assert scores["exact_match"] == pytest.approx(0.5)
    assert scores["f1"] == pytest.approx((1.0 + 2 / 3) / 2)  # "in london" vs "london": p 1/2, r 1


def test_v2_empty_answers_split_has_and_no_answer():
    scores = qm.squad_metrics({"a": "", "b": "x", "c": "yes"}, {"a": [], "b": [], "c": ["yes"]}, v2=True)
    assert scores["no_ans_exact_match"] == pytest.approx(0.5) and scores["no_ans_count"] == 2
    assert scores["has_ans_exact_match"] == 1.0 and scores["has_ans_count"] == 1
    assert scores["exact_match"] == pytest.approx(2 / 3)


def test_paper_token_span_metric():
    out = qm.token_span_metrics([(3, 5), (0, 1)], [(3, 5), (1, 2)])
    assert out["paper_token_exact_match"] == 0.5
    assert out["paper_token_f1"] == pytest.approx((1 + 0.5) / 2)


# ---- data -------------------------------------------------------------------------------------

def test_reads_official_nested_json(tmp_path):
    path = tmp_path / "dev.json"
    path.write_text(json.dumps({"data": [{"paragraphs": [{"context": "w1 good w2", "qas": [
        {"id": "x", "question": "movie", "answers": [{"text": "w2", "answer_start": 8}]},
        {"id": "y", "question": "plot", "answers": [], "is_impossible": True}]}]}]}))
    examples = read_squad(path)
    assert [(e.id, e.answers, e.starts) for e in examples] == [("x", ["w2"], [8]), ("y", [], [])]


def test_answer_in_second_window_found_through_stride(tmp_path):
    tokenizer = tokenizer_for(tmp_path / "tok")
    row = qa_rows(1, seed=3, length=(40, 40), answer_at=35)[0]  # far beyond the first 24-token window
    example = example_from_row(row, 0)
    features = featurize([example], tokenizer, max_length=24, doc_stride=8)
    assert len(features) >= 3 and features.starts[0] == 0  # not in the first window
    hits = [w for w in range(len(features)) if features.starts[w]]
    assert hits and hits[0] > 0
    w = hits[0]
    # logits that point at the gold tokens of that window only
    starts = [[0.0] * len(ids) for ids in features.input_ids]
    ends = [[0.0] * len(ids) for ids in features.input_ids]
    starts[w][features.starts[w]], ends[w][features.ends[w]] = 10.0, 10.0
    answer = best_answers([example], features, starts, ends, n_best=5, max_answer_length=5)[0]
    assert answer.text == row["answers"]["text"][0] and answer.window == w


def test_padding_and_question_never_get_the_argmax(tmp_path):
    from pifi_train.families.qa.model import PifiSpanModel
    from pifi_train.options import ModelOptions
    from transformers import BertConfig, BertModel

    tokenizer = tokenizer_for(tmp_path / "tok")
    examples = [example_from_row(r, i) for i, r in enumerate(qa_rows(4, seed=1, length=(2, 12)))]
    features = featurize(examples, tokenizer, max_length=32, doc_stride=8)
    slm = BertModel(BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1,
                               num_attention_heads=4, intermediate_size=64, max_position_embeddings=64))
    model = PifiSpanModel(slm, ModelOptions(method="base", dropout=0.0), None).eval()
    with torch.no_grad():
        model.head.bias.fill_(0.0)
        model.head.weight.fill_(0.0)
    batch = QaCollator(features, tokenizer.pad_token_id, False, model.slm_inputs)(list(range(len(features))))
    batch.pop("index"), batch.pop("start_positions"), batch.pop("end_positions")
    assert (batch["attention_mask"] == 0).any()  # padded rows exist
    logits = model(**batch)  # (B, T, 2): all allowed logits are 0, the rest masked
    for k in (0, 1):
        chosen = logits[..., k].argmax(dim=1)  # (B,)
        assert batch["answer_mask"][torch.arange(len(chosen)), chosen].all()
    assert (logits[~batch["answer_mask"]] < -1e3).all()


# ---- training ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def qa_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("qa")
    return {split: write_jsonl(root / f"{split}.jsonl", qa_rows(n, seed=k))
            for k, (split, n) in enumerate([("train", 320), ("validation", 64), ("test", 64)])}


def _train(assets, qa_files, tmp_path, method):
    from pifi_train.config import TrainConfig
    from pifi_train.runner import run_training

    config = TrainConfig(task_type="qa", train_file=str(qa_files["train"]),
                         validation_file=str(qa_files["validation"]), test_file=str(qa_files["test"]),
                         slm=str(assets["bert"]), method=method,
                         layer_artifact=str(assets["artifact"]) if method == "pifi" else None,
                         output_dir=str(tmp_path / method), device="cpu", **QA_FAST)
    return run_training(config)[0]


@pytest.mark.parametrize("method", ["base", "pifi"])
def test_base_and_pifi_learn_the_marker_span(assets, qa_files, tmp_path, train_env, method):
    from safetensors import safe_open

    from pifi_train.families.qa.predict import answer
    from pifi_train.run_record import load_run

    result = _train(assets, qa_files, tmp_path, method)
    test = result.metrics["final"]["test"]
    assert test["exact_match"] > 0.9 and test["f1"] >= test["exact_match"]
    with safe_open(str(result.run_dir / "checkpoint" / "pifi_trainable.safetensors"), "pt") as fh:
        keys = list(fh.keys())
    assert not [k for k in keys if k.startswith("layer.")] and "head.weight" in keys
    if method == "pifi":
        assert any(k.startswith("l_in.") for k in keys)
    saved = [json.loads(line) for line in (result.run_dir / "predictions.jsonl").read_text().splitlines()]
    predictions = {r["id"]: r["prediction"] for r in saved if r["split"] == "test"}
    rows = [json.loads(line) for line in qa_files["test"].read_text().splitlines()]
    assert set(predictions) == {r["id"] for r in rows}
    assert {r["split"] for r in saved} == {"validation", "test"}
    # predict reproduces the test EM from the run directory alone
    run = load_run(result.run_dir, device="cpu")
    answers = answer(run, [r["question"] for r in rows], [r["context"] for r in rows])
    em = sum(qm.exact_match(a.text, r["answers"]["text"][0]) for a, r in zip(answers, rows)) / len(rows)
    assert em == pytest.approx(test["exact_match"])
    assert [a.text for a in answers] == [predictions[r["id"]] for r in rows]


def test_cli_train_predict_report_qa(assets, qa_files, tmp_path, train_env, capsys):
    import cli

    out = tmp_path / "cli"
    cli.main(["train", "--task-type", "qa", "--train-file", str(qa_files["train"]), "--validation-file",
              str(qa_files["validation"]), "--slm", str(assets["bert"]), "--method", "base", "--output-dir",
              str(out), "--seeds", "2", "--quiet", "--epochs", "12", "--batch-size", "16", "--lr", "3e-3",
              "--max-length", "48", "--doc-stride", "16"])
    printed = capsys.readouterr().out
    assert "EM, F1" in printed and "mean" in printed
    sweep = json.loads((out / "sweep.json").read_text())
    assert sweep["summary"]["validation_exact_match"]["mean"] > 0.9
    config = json.loads((out / "seed-2023" / "config.json").read_text())
    assert config["family"] == "qa" and config["data"]["max_length"] == 48
    cli.main(["predict", "--run-dir", str(out / "seed-2023"), "--question", "movie plot",
              "--context", "w3 w4 good w17 w8", "--question", "movie plot", "--context", "w9 good w5"])
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in lines] == ["w17", "w5"]
    cli.main(["report", str(out), "--json"])
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 1 and rows[0]["family"] == "qa" and rows[0]["seeds"] == [2023, 2024]
    assert rows[0]["metrics"]["exact_match"]["mean"] > 0.9 and rows[0]["split"] == "validation"
    assert rows[0]["primary"] == "f1" and "accuracy" not in rows[0]["metrics"]
    with pytest.raises(SystemExit) as info:  # a classification-only option combination is refused in one line
        cli.main(["predict", "--run-dir", str(out / "seed-2023"), "--question", "q"])
    assert info.value.code == 2


def test_builtin_split_protocols_and_qa_max_length():
    from pifi_train.config import TrainConfig
    from pifi_train.families import family_of
    from pifi_train.families.qa.family import QA
    from pifi_train.families.qa.data import PAPER_HOLDOUT, QaExample, split_builtin

    qa_max_length = QA.max_length

    train = [QaExample(str(i), "q", "c", ["c"], [0]) for i in range(PAPER_HOLDOUT + 100)]
    dev = [QaExample(f"d{i}", "q", "c", ["c"], [0]) for i in range(7)]
    tr, val, test = split_builtin(train, dev, "paper")
    assert len(tr) == 100 and val is dev and [e.id for e in test] == [e.id for e in train[100:]]
    tr, val, test = split_builtin(train, dev, "standard")
    assert len(tr) == 100 and test is dev and len(val) == PAPER_HOLDOUT
    assert family_of("squad") is family_of("squad_v2") is QA
    assert qa_max_length(TrainConfig(task="squad")) == 384
    assert qa_max_length(TrainConfig(task="squad", protocol="paper")) == 100
    assert qa_max_length(TrainConfig(task="squad", max_length=256)) == 256


@pytest.mark.parametrize("options, message", [
    ({"protocol": "bogus"}, "--protocol must be one of"),
    ({"doc_stride": 30}, "--doc-stride 30 must be below half"),
    ({"batch_size": 999}, "fewer than one batch"),
])
def test_qa_option_errors_are_one_line_config_errors(assets, qa_files, tmp_path, options, message):
    from pifi_extract.errors import ConfigError
    from pifi_train.config import TrainConfig
    from pifi_train.runner import run_training

    config = TrainConfig(task_type="qa", train_file=str(qa_files["train"]), slm=str(assets["bert"]),
                         method="base", output_dir=str(tmp_path / "x"), **{**QA_FAST, **options})
    with pytest.raises(ConfigError, match=message):
        run_training(config)
    assert not (tmp_path / "x").exists()


def test_v2_no_answer_and_paper_protocol_token_metrics(assets, tmp_path, train_env):
    """Unanswerable rows (no marker) are answered "" through CLS; --protocol paper adds the token-span EM/F1."""
    from pifi_train.config import TrainConfig
    from pifi_train.runner import run_training

    def rows(n, seed):
        out = qa_rows(n, seed)
        for r in out[::3]:  # every third question has no answer: drop the marker
            r["context"] = r["context"].replace(QA_MARKER + " ", "")
            r["answers"] = {"text": [], "answer_start": []}
        return out

    files = {s: write_jsonl(tmp_path / f"{s}.jsonl", rows(n, k)) for k, (s, n) in
             enumerate([("train", 320), ("validation", 64)])}
    config = TrainConfig(task_type="qa", train_file=str(files["train"]), validation_file=str(files["validation"]),
                         slm=str(assets["bert"]), method="base", output_dir=str(tmp_path / "v2"), device="cpu",
                         protocol="paper", **{**QA_FAST, "max_length": 24})
    final = run_training(config)[0].metrics["final"]["validation"]
    assert final["no_ans_count"] > 0 and final["has_ans_count"] > 0
    assert final["no_ans_exact_match"] > 0.8 and final["has_ans_exact_match"] > 0.5  # chance: ~0.1
    # token-span EM counts an unanswerable question as the span (0, 0): it tracks the official EM here
    assert abs(final["paper_token_exact_match"] - final["exact_match"]) < 0.1


def test_qa_resume_extends_a_run_and_epoch_lines_show_em(assets, qa_files, tmp_path, train_env, capsys):
    import cli

    out = tmp_path / "resume"
    common = ["--output-dir", str(out), "--batch-size", "16", "--lr", "3e-3", "--max-length", "48",
              "--doc-stride", "16"]
    cli.main(["train", "--task-type", "qa", "--train-file", str(qa_files["train"]), "--validation-file",
              str(qa_files["validation"]), "--slm", str(assets["bert"]), "--method", "base", "--epochs", "1",
              *common])
    assert "val EM" in capsys.readouterr().err
    cli.main(["train", "--resume", "--epochs", "2", "--quiet", "--output-dir", str(out)])
    metrics = json.loads((out / "metrics.json").read_text())
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2] and metrics["complete"]
    assert "exact_match" in metrics["final"]["validation"] and (out / "predictions.jsonl").is_file()
