"""End to end on a learnable synthetic task: training, outputs, predict, resume, seeds and report."""

import json

import pytest
import torch
from safetensors import safe_open

import cli
from pifi_train.config import TrainConfig
from pifi_train.families.classification.predict import accuracy, predict, read_inputs
from pifi_train.run_record import load_run
from pifi_train.report import build_report
from pifi_train.runner import resume_training, run_training
from train_fixtures import FAST_OPTIONS, assets, offline_single_thread, train_env, write_csv, write_task  # noqa: F401
from train_fixtures import second_artifact, synthetic_rows  # noqa: F401 - fixture

pytestmark = pytest.mark.usefixtures("train_env")


def _config(assets, out, **overrides):
    values = dict(train_file=str(assets["train"]), validation_file=str(assets["validation"]),
                  test_file=str(assets["test"]), slm=str(assets["bert"]), layer_artifact=str(assets["artifact"]),
                  output_dir=str(out), **FAST_OPTIONS)
    values.update(overrides)
    if values.get("method", "pifi") != "pifi":
        values["layer_artifact"] = None  # a base run takes no layer (refused if given)
    return TrainConfig(**values)


@pytest.fixture(scope="module")
def runs(assets, tmp_path_factory):
    """One base and one PiFi run (default cls plug), shared by the tests below."""
    root = tmp_path_factory.mktemp("runs")
    with offline_single_thread():
        return {method: run_training(_config(assets, root / method, method=method))[0] for method in ("base", "pifi")}


def test_pifi_and_base_both_learn_and_loss_falls(runs):
    for result in runs.values():
        losses = [e["train_loss"] for e in result.metrics["epochs"]]
        assert losses[-1] < losses[0] - 0.3
        assert result.metrics["final"]["test"]["accuracy"] >= 0.9


def test_metrics_file_layout(runs):
    metrics = json.loads((runs["pifi"].run_dir / "metrics.json").read_text())
    assert metrics["complete"] and len(metrics["epochs"]) == 3
    epoch = metrics["epochs"][0]
    assert {"epoch", "train_loss", "examples_per_second", "seconds", "validation", "best"} <= set(epoch)
    split = metrics["final"]["test"]
    assert {"accuracy", "macro_f1", "per_class_f1", "confusion_matrix", "count", "loss"} <= set(split)
    assert split["count"] == 96 and sum(map(sum, split["confusion_matrix"])) == 96
    best = metrics["final"]["best_epoch"]
    assert metrics["final"]["validation"] == metrics["epochs"][best - 1]["validation"]
    assert max(e["validation"]["accuracy"] for e in metrics["epochs"]) == metrics["final"]["validation"]["accuracy"]


def test_config_records_options_artifact_hash_and_versions(runs, assets):
    from pifi_extract.artifact import read_artifact

    config = json.loads((runs["pifi"].run_dir / "config.json").read_text())
    assert config["options"]["lr"] == FAST_OPTIONS["lr"] and config["options"]["method"] == "pifi"
    assert config["layer"]["sha256"] == read_artifact(assets["artifact"]).data_sha256
    assert {"pifi", "torch", "transformers", "python"} <= set(config["versions"])
    assert config["parameters"]["frozen"] > 0 and config["model"]["labels"] == ["0", "1"]


def test_checkpoint_holds_only_trainable_tensors(runs):
    run_dir = runs["pifi"].run_dir
    for path in (run_dir / "checkpoint" / "pifi_trainable.safetensors", run_dir / "state" / "last.safetensors"):
        with safe_open(str(path), "pt") as f:
            keys = list(f.keys())
        assert keys and not any(k.startswith(("layer.", "model.layer.")) for k in keys)
        assert any("l_in.weight" in k for k in keys)
    with safe_open(str(run_dir / "checkpoint" / "pifi_trainable.safetensors"), "pt") as f:
        assert f.metadata()["epoch"] == str(runs["pifi"].metrics["final"]["best_epoch"])


def test_predict_reproduces_the_test_accuracy(runs, assets, capsys):
    for result in runs.values():
        loaded = load_run(result.run_dir, device="cpu")
        texts, pairs, labels = read_inputs(assets["test"], loaded)
        predictions = predict(loaded, texts, pairs)
        assert accuracy(predictions, labels, loaded.label_names) == result.metrics["final"]["test"]["accuracy"]
    cli.main(["predict", "--run-dir", str(runs["pifi"].run_dir), "--text", "w1 good w2", "--text", "w3 bad"])
    out = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in out] == ["1", "0"]
    cli.main(["predict", "--run-dir", str(runs["pifi"].run_dir), "--file", str(assets["test"])])
    expected = 100 * runs["pifi"].metrics["final"]["test"]["accuracy"]
    assert f"accuracy {expected:.2f}% on 96 labelled examples" in capsys.readouterr().out


def test_pair_input_uses_the_second_text(assets, tmp_path):
    files = write_task(tmp_path / "pairs", pair=True)
    config = _config(assets, tmp_path / "run", train_file=str(files["train"]), validation_file=str(files["validation"]),
                     test_file=str(files["test"]), text_pair_column="text2", epochs=4)
    result = run_training(config)[0]
    assert result.metrics["final"]["test"]["accuracy"] >= 0.9  # the label depends on the second text only
    loaded = load_run(result.run_dir, device="cpu")
    assert [p.label for p in predict(loaded, ["w1 w2", "good w3"], ["w4 good", "w5 w6"])] == ["1", "0"]


def test_string_labels_from_csv_without_validation_file(assets, tmp_path):
    train = write_csv(tmp_path / "train.csv", synthetic_rows(400, seed=4, string_labels=True))
    config = _config(assets, tmp_path / "run", method="base", train_file=str(train), validation_file=None,
                     test_file=None)
    result = run_training(config)[0]
    assert json.loads((result.run_dir / "config.json").read_text())["model"]["labels"] == ["neg", "pos"] and result.metrics["final"]["test"] is None
    assert result.metrics["final"]["validation"]["count"] == 80  # 20 % held out
    assert result.metrics["final"]["validation"]["accuracy"] >= 0.9
    loaded = load_run(result.run_dir, device="cpu")
    assert predict(loaded, ["w7 good w8"])[0].label == "pos"


@pytest.mark.parametrize("options", [dict(plug="sequence"), dict(plug="sequence", attention="causal", post_norm=True),
                                     dict(slm="decoder")])
def test_other_variants_train(assets, tmp_path, options):
    if options.get("slm"):
        options = {**options, "slm": str(assets[options["slm"]])}
    result = run_training(_config(assets, tmp_path / "run", **options))[0]
    assert result.metrics["final"]["test"]["accuracy"] >= 0.9


def test_resume_continues_exactly_where_it_stopped(assets, tmp_path):
    straight = run_training(_config(assets, tmp_path / "straight", epochs=2))[0]
    run_training(_config(assets, tmp_path / "resumed", epochs=1))
    resumed = resume_training(tmp_path / "resumed", epochs=2)[0]
    assert [e["train_loss"] for e in resumed.metrics["epochs"]] == [e["train_loss"] for e in straight.metrics["epochs"]]
    assert resumed.metrics["final"]["test"] == straight.metrics["final"]["test"]
    with safe_open(str(straight.run_dir / "state/last.safetensors"), "pt") as a, \
            safe_open(str(resumed.run_dir / "state/last.safetensors"), "pt") as b:
        assert all(torch.equal(a.get_tensor(k), b.get_tensor(k)) for k in a.keys() if not k.startswith("rng"))
    # a finished run resumes to itself without training again
    again = resume_training(tmp_path / "resumed")[0]
    assert again.metrics == json.loads((tmp_path / "resumed" / "metrics.json").read_text())


def test_seeds_sweep_and_report(assets, tmp_path, capsys, monkeypatch):
    for method in ("base", "pifi"):
        results = run_training(_config(assets, tmp_path / method, method=method, seeds=2, epochs=2))
        assert [r.seed for r in results] == [2023, 2024]
        sweep = json.loads((tmp_path / method / "sweep.json").read_text())
        assert sweep["runs"] == ["seed-2023", "seed-2024"] and "test_accuracy" in sweep["summary"]
    report = build_report([tmp_path], plot_path=tmp_path / "curves.png")
    assert [row.options["method"] for row in report.rows] == ["base", "pifi"]
    assert all(len(row.seeds) == 2 for row in report.rows)
    pifi, base = report.rows[1], report.rows[0]
    assert pifi.delta_vs_base == pytest.approx(100 * (pifi.metrics["accuracy"][0] - base.metrics["accuracy"][0]))
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    cli.main(["report", str(tmp_path / "base"), str(tmp_path / "pifi")])
    out = capsys.readouterr().out
    assert "base" in out and "pifi" in out and "±" in out
    assert not list(cwd.iterdir())  # no --plot: no PNG
    (tmp_path / "plots").mkdir()
    for target, written in (("plots", "plots/pifi-report.png"), ("curves2", "curves2.png")):
        cli.main(["report", str(tmp_path / "pifi"), "--plot", str(tmp_path / target)])
        assert f"validation curves: {tmp_path / written}" in capsys.readouterr().out  # the file it wrote
        assert (tmp_path / written).read_bytes()[:4] == b"\x89PNG"


def test_report_without_matplotlib_needs_it_only_for_a_plot(runs, tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__
    monkeypatch.setattr(builtins, "__import__", lambda name, *a, **k: (_ for _ in ()).throw(ImportError(name))
                        if name.startswith("matplotlib") else real_import(name, *a, **k))
    report = build_report([runs["base"].run_dir, runs["pifi"].run_dir])
    assert report.plot is None and len(report.rows) == 2
    with pytest.raises(Exception, match="needs matplotlib"):
        build_report([runs["base"].run_dir], tmp_path / "x.png")


def test_two_stacked_layers_train_predict_and_record_both_artifacts(assets, second_artifact, tmp_path, capsys):
    from pifi_extract.artifact import read_artifact

    run_dir = tmp_path / "stack"
    args = ["train", "--train-file", str(assets["train"]), "--validation-file", str(assets["validation"]),
            "--test-file", str(assets["test"]), "--slm", str(assets["bert"]), "--output-dir", str(run_dir),
            "--layer-artifact", str(assets["artifact"]), "--layer-artifact", str(second_artifact), "--quiet",
            "--epochs", "2", "--batch-size", "16", "--lr", "3e-3", "--max-length", "16", "--dropout", "0"]
    cli.main(args)
    capsys.readouterr()
    config = json.loads((run_dir / "config.json").read_text())
    artifacts = [assets["artifact"], second_artifact]
    assert config["options"]["layer_artifact"] == [str(a) for a in artifacts]
    assert [entry["sha256"] for entry in config["layer"]] == [read_artifact(a).data_sha256 for a in artifacts]
    with safe_open(str(run_dir / "checkpoint" / "pifi_trainable.safetensors"), "pt") as f:
        keys = list(f.keys())
    assert "l_in.weight" in keys and not any(k.startswith("layer.") for k in keys)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["complete"] and metrics["final"]["test"]["accuracy"] >= 0.8
    loaded = load_run(run_dir, device="cpu")
    assert len(loaded.model.layer.layers) == 2
    texts, pairs, labels = read_inputs(assets["test"], loaded)
    assert accuracy(predict(loaded, texts, pairs), labels, loaded.label_names) == metrics["final"]["test"]["accuracy"]
    # moved artifacts: one --layer-artifact per layer, in order, each hash-checked
    cli.main(["predict", "--run-dir", str(run_dir), "--text", "w1 good w2", "--layer-artifact", str(artifacts[0]),
              "--layer-artifact", str(artifacts[1])])
    assert capsys.readouterr().out.startswith("1\t")
    for given in ([artifacts[0]], [artifacts[1], artifacts[0]]):
        with pytest.raises(SystemExit) as info:
            cli.main(["predict", "--run-dir", str(run_dir), "--text", "x",
                      *[arg for a in given for arg in ("--layer-artifact", str(a))]])
        assert info.value.code == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and ("2 layer artifact(s)" in err or "is not the layer" in err), err
    report = build_report([run_dir])
    assert report.rows[0].layers.count("#") == 2


def test_predict_with_a_moved_artifact_names_layer_artifact(runs, tmp_path, capsys):
    import shutil

    run_dir = tmp_path / "copy"
    shutil.copytree(runs["pifi"].run_dir, run_dir)
    config = json.loads((run_dir / "config.json").read_text())
    config["layer"]["path"] = config["layer"]["reference"] = str(tmp_path / "moved-away.safetensors")
    (run_dir / "config.json").write_text(json.dumps(config))
    with pytest.raises(SystemExit) as info:
        cli.main(["predict", "--run-dir", str(run_dir), "--text", "w1 good w2"])
    err = capsys.readouterr().err.strip()
    assert info.value.code == 2 and "\n" not in err and "is gone" in err and "--layer-artifact" in err
