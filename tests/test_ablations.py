"""The paper's ablations and data options (issue 14): random and trainable layers, LoRA, extra test
sets, the authors' text cleaning, the fixed split, and the report's statistics."""

import json
import warnings

import pytest
import torch
from safetensors import safe_open

import cli
from pifi_train.clean import clean_texts, resolve_cleaning
from pifi_train.config import TrainConfig
from pifi_train.families.classification.data import Examples
from pifi_train.families.classification.predict import predict
from pifi_train.families.classification.runtime import load_data as load_task
from pifi_train.run_record import load_run
from pifi_train.runner import run_training
from pifi_train.splits import fraction_indices, subset
from pifi_train.stats import paired_bootstrap, welch_difference
from train_fixtures import FAST_OPTIONS, assets, offline_single_thread, train_env, write_jsonl  # noqa: F401
from train_fixtures import synthetic_rows
from cli_runner import fails_in_one_line

pytestmark = pytest.mark.usefixtures("train_env")


def _config(assets, out, **overrides):
    values = dict(train_file=str(assets["train"]), validation_file=str(assets["validation"]),
                  test_file=str(assets["test"]), slm=str(assets["bert"]), layer_artifact=str(assets["artifact"]),
                  output_dir=str(out), **{**FAST_OPTIONS, "epochs": 1})
    values.update(overrides)
    if values.get("method", "pifi") != "pifi":
        values["layer_artifact"] = None  # a base run takes no layer (refused if given)
    return TrainConfig(**values)


def _predictions(run_dir, split):
    """The per-example rows of one split in predictions.jsonl."""
    rows = [json.loads(line) for line in (run_dir / "predictions.jsonl").read_text().splitlines()]
    return [r for r in rows if r["split"] == split]


def _reproduces(run, assets):
    """pifi predict on the test file gives the run's own saved test predictions."""
    loaded = load_run(run.run_dir, device="cpu")
    rows = [json.loads(line) for line in assets["test"].read_text().splitlines()]
    got = [loaded.label_names.index(p.label) for p in predict(loaded, [r["text"] for r in rows])]
    saved = [r["prediction"] for r in _predictions(run.run_dir, "test")]
    assert got == saved


# ---- PiFi-Random (Table 5) ------------------------------------------------------------------------


def test_random_layer_has_the_artifacts_shapes_differs_stays_frozen_and_is_seeded(assets):
    from pifi_train.ablations import randomize_layer
    from pifi_train.frozen_layer import load_layer

    original = load_layer(assets["artifact"], dtype=torch.float32)
    first = randomize_layer(load_layer(assets["artifact"], dtype=torch.float32), seed=7)
    again = randomize_layer(load_layer(assets["artifact"], dtype=torch.float32), seed=7)
    other = randomize_layer(load_layer(assets["artifact"], dtype=torch.float32), seed=8)
    before, after = original.layer.state_dict(), first.layer.state_dict()
    assert {k: v.shape for k, v in before.items()} == {k: v.shape for k, v in after.items()}
    weights = [k for k in before if k.endswith("proj.weight")]
    assert weights and all(not torch.equal(before[k], after[k]) for k in weights)
    assert all(torch.equal(after[k], again.layer.state_dict()[k]) for k in after)
    assert not torch.equal(after[weights[0]], other.layer.state_dict()[weights[0]])
    std = float(after[weights[0]].std())
    assert abs(std - first.config.initializer_range) < 0.01  # the architecture's own init (normal, 0.02)
    assert not any(p.requires_grad for p in first.parameters())


def test_random_layer_run_keeps_the_layer_out_of_the_checkpoint_and_predict_rebuilds_it(assets, tmp_path):
    run = run_training(_config(assets, tmp_path / "random", layer_init="random"))[0]
    with safe_open(run.run_dir / "checkpoint" / "pifi_trainable.safetensors", "pt") as f:
        assert not any(k.startswith("layer.") for k in f.keys())
    assert json.loads((run.run_dir / "config.json").read_text())["checkpoint_holds_layer"] is False
    _reproduces(run, assets)


# ---- trainable layer (Table 11) -------------------------------------------------------------------


def test_train_layer_changes_the_layer_saves_it_and_predict_reproduces(assets, tmp_path):
    from pifi_train.frozen_layer import load_layer

    run = run_training(_config(assets, tmp_path / "full", train_layer=True))[0]
    record = json.loads((run.run_dir / "config.json").read_text())
    assert record["checkpoint_holds_layer"] is True
    original = load_layer(assets["artifact"], dtype=torch.float32).layer.state_dict()
    with safe_open(run.run_dir / "checkpoint" / "pifi_trainable.safetensors", "pt") as f:
        saved = {k[len("layer.layer."):]: f.get_tensor(k) for k in f.keys() if k.startswith("layer.layer.")}
    assert set(saved) == set(original)
    assert all(saved[k].dtype == torch.float32 for k in saved)
    assert any(not torch.equal(saved[k], original[k]) for k in saved)
    assert record["parameters"]["frozen"] == 0
    _reproduces(run, assets)


# ---- LoRA baseline (Table 18) ---------------------------------------------------------------------


def test_lora_trains_adapters_and_head_only_and_predict_reproduces(assets, tmp_path):
    run = run_training(_config(assets, tmp_path / "lora", method="lora", layer_artifact=None, lora_r=4))[0]
    loaded = load_run(run.run_dir, device="cpu")
    adapters, _ = loaded.model.slm.get_nb_trainable_parameters()  # what peft reports
    head = sum(p.numel() for p in loaded.model.head.parameters())
    record = json.loads((run.run_dir / "config.json").read_text())
    assert record["parameters"]["trainable"] == adapters + head
    assert 0 < adapters < record["parameters"]["frozen"]
    _reproduces(run, assets)


def test_lora_without_peft_is_one_line(assets, tmp_path, capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "peft", None)
    args = ["train", "--train-file", str(assets["train"]), "--slm", str(assets["bert"]), "--method", "lora",
            "--output-dir", str(tmp_path / "x"), "--epochs", "1", "--max-length", "16"]
    _fails(capsys, args, "pifi[lora]")


# ---- extra test sets (Table 3) --------------------------------------------------------------------


def test_extra_test_sets_are_evaluated_with_the_best_epoch(assets, tmp_path):
    shifted = write_jsonl(tmp_path / "shifted.jsonl", synthetic_rows(40, seed=9))
    run = run_training(_config(assets, tmp_path / "run", extra_test=[str(shifted)]))[0]
    extra = run.metrics["final"]["extra_tests"][str(shifted)]
    assert extra["count"] == 40 and 0.0 <= extra["accuracy"] <= 1.0
    splits = {json.loads(line)["split"] for line in (run.run_dir / "predictions.jsonl").read_text().splitlines()}
    assert splits == {"validation", "test", f"extra_test:{shifted}"}
    assert len(_predictions(run.run_dir, f"extra_test:{shifted}")) == 40
    from pifi_train.report import build_report
    from pifi_train.report_render import render

    report = build_report([run.run_dir], None)
    assert report.rows[0].extra[str(shifted)]["accuracy"][0] == extra["accuracy"]
    assert "accuracy shifted.jsonl" in render(report.rows, "csv").splitlines()[0]


def test_extra_test_with_other_labels_is_refused_naming_both_sets(assets, tmp_path, capsys):
    other = write_jsonl(tmp_path / "other.jsonl", synthetic_rows(20, seed=3, string_labels=True))
    args = ["train", "--train-file", str(assets["train"]), "--slm", str(assets["bert"]), "--method", "base",
            "--extra-test", str(other), "--output-dir", str(tmp_path / "x"), "--epochs", "1"]
    err = _fails(capsys, args, "do not match")
    assert "neg, pos" in err and "0, 1" in err
    assert not (tmp_path / "x").exists()


_fails = fails_in_one_line


# ---- the authors' data handling -------------------------------------------------------------------

TRICKY = ["I loved it.<br /><br />Great fun", "Tom &amp; Jerry", "a<b c d", "tabs\tand\nnew\r\nlines  ",
          "<p>one</p><p>two</p>", "plain text", "http://example.com/x"]


def test_html_cleaning_equals_the_authors_beautifulsoup_function():
    bs4 = pytest.importorskip("bs4")
    pytest.importorskip("lxml")

    def authors(text):  # Classification/task/classification/preprocessing.py:464-466
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clean = bs4.BeautifulSoup(text, "lxml").text
        clean = clean.replace("\n", " ").replace("\t", " ").replace("\r", " ")
        return " ".join(clean.split())

    assert clean_texts(TRICKY, "html") == [authors(t) for t in TRICKY]
    assert clean_texts(TRICKY[:1], "html") == ["I loved it.Great fun"]
    assert clean_texts(TRICKY, "none") == TRICKY


def test_cleaning_defaults_follow_the_paper():
    assert resolve_cleaning("auto", "imdb") == "html" and resolve_cleaning("auto", "sst2") == "html"
    assert resolve_cleaning("auto", "mnli") == "none" and resolve_cleaning("auto", None) == "none"
    assert resolve_cleaning("none", "imdb") == "none"


def test_split_is_the_same_for_every_seed_and_moves_with_split_seed(assets):
    config = dict(train_file=str(assets["train"]), slm=str(assets["bert"]), method="base", batch_size=8)
    a = load_task(TrainConfig(seed=1, **config))
    b = load_task(TrainConfig(seed=2, **config))
    c = load_task(TrainConfig(seed=1, split_seed=5, **config))
    assert a.validation.texts == b.validation.texts and a.train.texts == b.train.texts
    assert a.validation.texts != c.validation.texts
    assert a.source["split_seed"] == 2023 and a.source["clean_text"] == "none"


def test_train_fraction_is_stratified_and_seeded():
    examples = Examples([f"t{i}" for i in range(100)], None, [0] * 80 + [1] * 20)

    def stratified_fraction(examples, fraction, seed):
        return subset(examples, fraction_indices(len(examples), fraction, seed, examples.labels))

    part = stratified_fraction(examples, 0.1, seed=3)
    assert sorted(part.labels) == [0] * 8 + [1] * 2
    assert part.texts == stratified_fraction(examples, 0.1, seed=3).texts
    assert part.texts != stratified_fraction(examples, 0.1, seed=4).texts


# ---- report statistics ----------------------------------------------------------------------------


def test_welch_p_value_and_ci_match_scipy():
    stats = pytest.importorskip("scipy.stats")
    pifi, base = [0.912, 0.905, 0.921, 0.899, 0.915], [0.894, 0.901, 0.889, 0.897]
    got = welch_difference(pifi, base)
    expected = stats.ttest_ind(pifi, base, equal_var=False)
    interval = expected.confidence_interval(0.95)
    assert got.p_value == pytest.approx(expected.pvalue, rel=1e-9)
    assert (got.ci_low, got.ci_high) == (pytest.approx(interval.low, rel=1e-9), pytest.approx(interval.high, rel=1e-9))
    assert got.mean == pytest.approx(sum(pifi) / 5 - sum(base) / 4)
    assert welch_difference([0.9], base) is None


def test_paired_bootstrap_is_centred_on_the_observed_difference():
    a = [[True] * 60 + [False] * 40]
    b = [[True] * 50 + [False] * 50]
    diff = paired_bootstrap(a, b, samples=400, seed=1)
    assert diff.mean == pytest.approx(0.10)
    assert diff.ci_low < 0.10 < diff.ci_high and diff.p_value < 0.05
    same = paired_bootstrap(a, a, samples=50)
    assert same.mean == 0 and same.ci_low == same.ci_high == 0 and same.p_value == 1.0


def test_report_unknown_format_is_one_line(tmp_path, capsys):
    _fails(capsys, ["report", str(tmp_path), "--format", "xlsx"], "--format")


# ---- the paper's tables as commands ---------------------------------------------------------------


def test_every_paper_table_command_uses_existing_commands_and_options():
    import re

    from typer.main import get_command

    from pifi_train.paper import TABLES

    commands = get_command(cli.app).commands
    assert sorted(TABLES, key=int) == ["1", "3", "5", "7", "8", "9", "11", "14", "18", "19"]
    for name, (_, lines) in TABLES.items():
        for line in lines:
            if not (found := re.search(r"\bpifi (\w+)(.*)", line)):
                continue
            command = commands[found.group(1)]
            known = {opt for param in command.params for opt in param.opts}
            used = set(re.findall(r"(--[\w-]+)", found.group(2)))
            assert used <= known, (name, used - known)


def test_paper_prints_a_table_and_refuses_an_unknown_one(capsys):
    cli.main(["paper", "18"])
    out = capsys.readouterr().out
    assert "--method lora --lora-r 8 --lora-alpha 16 --lora-dropout 0.1" in out
    _fails(capsys, ["paper", "4"], "unknown table '4'")


def test_report_on_seed_sweeps_gives_welch_and_bootstrap_against_base(assets, tmp_path, capsys):
    for method in ("base", "pifi"):
        run_training(_config(assets, tmp_path / method, method=method, seeds=2, extra_test=[str(assets["validation"])],
                             layer_artifact=str(assets["artifact"]) if method == "pifi" else None))
    sweep = json.loads((tmp_path / "pifi" / "sweep.json").read_text())
    assert len(sweep["summary"][f"extra_test:{assets['validation']}_accuracy"]["values"]) == 2
    from pifi_train.report import build_report
    from pifi_train.report_render import render

    report = build_report([tmp_path], None, bootstrap=50)
    base, pifi = report.rows
    assert base.welch is None and base.bootstrap is None
    assert pifi.welch is not None and 0.0 <= pifi.welch.p_value <= 1.0
    assert pifi.welch.mean == pytest.approx(pifi.delta_vs_base)
    assert pifi.bootstrap.ci_low <= pifi.bootstrap.mean <= pifi.bootstrap.ci_high
    assert json.loads(render(report.rows, "json"))[1]["options"]["method"] == "pifi"
    assert "\\begin{tabular}" in render(report.rows, "latex")
    cli.main(["report", str(tmp_path), "--format", "md", "--bootstrap", "20"])
    table = capsys.readouterr().out
    assert "| p (Welch) | 95% CI | p (bootstrap) |" in table and table.count("\n") >= 3


def test_builtin_tasks_are_cleaned_as_the_authors_did_and_entailment_is_not(monkeypatch):
    pytest.importorskip("bs4")
    from pifi_train.families.classification import runtime
    from pifi_train.families.classification.tasks import assemble_task, get_task

    def fake_hub(name, seed, cache_dir=None):  # the real splitting rules on rows held in memory
        spec = get_task(name)
        n = 40
        columns = {spec.text_column: [f"review {i}<br /><br />the end" for i in range(n)],
                   spec.label_column: [i % 2 for i in range(n)]}
        if spec.text_pair_column:
            columns[spec.text_pair_column] = [f"a &amp; b {i}" for i in range(n)]
        raw = {split: dict(columns) for split in ("train", "test", "validation")}
        raw["validation_mismatched"] = {k: v[:10] for k, v in columns.items()}  # mnli: its size cuts train
        return assemble_task(spec, raw, seed)

    monkeypatch.setattr(runtime, "load_builtin_task", fake_hub)
    imdb = load_task(TrainConfig(task="imdb", method="base", batch_size=4))
    assert imdb.train.texts[0].endswith("the end") and "<br" not in " ".join(imdb.train.texts + imdb.test.texts)
    assert imdb.source["clean_text"] == "html"
    mnli = load_task(TrainConfig(task="mnli", method="base", batch_size=4))
    assert "<br /><br />" in mnli.train.texts[0] and "&amp;" in mnli.train.pairs[0]
    raw = load_task(TrainConfig(task="imdb", method="base", batch_size=4, clean_text="none"))
    assert "<br /><br />" in raw.train.texts[0]


def test_extra_test_labels_match_by_name_with_the_datasets_synonyms():
    from pifi_train.families.classification.extra_tests import map_labels

    assert map_labels(["negative", "positive"], ["neg", "pos"], "tweets") == {0: 0, 1: 1}
    assert map_labels(["pos", "neg"], ["neg", "pos"], "x") == {0: 1, 1: 0}
    with pytest.raises(Exception, match="do not match"):
        map_labels(["entailment", "neutral", "contradiction"], ["neg", "pos"], "snli")


def test_cli_train_with_ablation_options_prints_the_extra_test(assets, tmp_path, capsys):
    shifted = write_jsonl(tmp_path / "shifted.jsonl", synthetic_rows(24, seed=5))
    cli.main(["train", "--train-file", str(assets["train"]), "--test-file", str(assets["test"]),
              "--slm", str(assets["bert"]), "--layer-artifact", str(assets["artifact"]), "--layer-init", "random",
              "--train-fraction", "0.5", "--split-seed", "11", "--extra-test", str(shifted), "--epochs", "1",
              "--batch-size", "16", "--max-length", "16", "--output-dir", str(tmp_path / "run"), "--quiet"])
    assert f"extra test {shifted}: loss" in capsys.readouterr().out
    record = json.loads((tmp_path / "run" / "config.json").read_text())
    assert record["options"]["layer_init"] == "random" and record["options"]["extra_test"] == [str(shifted)]
    assert record["num_examples"]["train"] == 128 and record["data"]["split_seed"] == 11  # half of 320·0.8


def test_a_random_trainable_layer_resumes_exactly(assets, tmp_path):
    from pifi_train.runner import resume_training

    options = dict(layer_init="random", train_layer=True, max_train_samples=64)
    straight = run_training(_config(assets, tmp_path / "straight", epochs=2, **options))[0]
    run_training(_config(assets, tmp_path / "resumed", epochs=1, **options))
    resumed = resume_training(tmp_path / "resumed", epochs=2)[0]
    assert [e["train_loss"] for e in resumed.metrics["epochs"]] == [e["train_loss"] for e in straight.metrics["epochs"]]
    assert resumed.metrics["final"]["test"] == straight.metrics["final"]["test"]
