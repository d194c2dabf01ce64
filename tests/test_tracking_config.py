"""--report-to (trackers fed by the progress events) and --config (a run's options as a file)."""

import importlib.machinery
import json
import sys
import types

import pytest

import cli
from pifi_extract.errors import ConfigError
from pifi_train.config import ProgressEvent, TrainConfig
from pifi_train.config_file import config_from_file, read_config_file
from pifi_train.runner import run_training
from pifi_train.families import FAMILIES
from pifi_train.tracking import TrackingCallback, resolve_report_to
from train_fixtures import FAST_OPTIONS, assets, train_env  # noqa: F401 - fixtures

pytestmark = pytest.mark.usefixtures("train_env")
SMALL = {**FAST_OPTIONS, "epochs": 2, "max_train_samples": 64, "max_eval_samples": 32}


def _options(assets, out, **overrides):
    return dict(train_file=str(assets["train"]), validation_file=str(assets["validation"]),
                test_file=str(assets["test"]), slm=str(assets["bert"]), layer_artifact=str(assets["artifact"]),
                output_dir=str(out), **{**SMALL, **overrides})


def test_tensorboard_logs_loss_lr_validation_test_and_config(assets, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = run_training(TrainConfig(**_options(assets, tmp_path / "run", report_to=["tensorboard"])))[0]
    events = EventAccumulator(str(result.run_dir / "tensorboard"), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"train/loss", "train/learning_rate", "train/examples_per_second", "eval/accuracy", "eval/macro_f1",
            "test/accuracy", "best_epoch"} <= scalars
    steps = [e.step for e in events.Scalars("train/loss")]
    assert steps == list(range(1, 2 * (64 // 16) + 1))  # a global step per batch, over both epochs
    assert [e.value for e in events.Scalars("train/learning_rate")][0] == pytest.approx(SMALL["lr"])
    assert [e.step for e in events.Scalars("eval/accuracy")] == [4, 8]
    test_accuracy = events.Scalars("test/accuracy")[0].value
    assert test_accuracy == pytest.approx(result.metrics["final"]["test"]["accuracy"])
    config_text = events.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert result.metrics["final"] and '"sha256"' in config_text and '"report_to"' in config_text


def test_report_to_words_and_missing_extras(monkeypatch):
    assert resolve_report_to("none") == [] and resolve_report_to(["none"]) == [] and resolve_report_to(None) == []
    assert resolve_report_to(["tensorboard", "tensorboard"]) == ["tensorboard"]
    assert "tensorboard" in resolve_report_to("all")
    with pytest.raises(ConfigError, match="not one of none, all, tensorboard, wandb, mlflow"):
        resolve_report_to(["comet"])
    monkeypatch.setitem(sys.modules, "mlflow", None)  # not installed (find_spec raises)
    with pytest.raises(ConfigError, match=r"pip install 'pifi\[mlflow\]'"):
        resolve_report_to(["mlflow"])


class _FakeWandb(types.ModuleType):
    """Records wandb's public calls (wandb itself is an optional extra, not installed in the test env)."""

    def __init__(self):
        super().__init__("wandb")
        self.__spec__ = importlib.machinery.ModuleSpec("wandb", None)
        self.calls = []

    def init(self, **kw):
        self.calls.append(("init", kw))
        fake = self

        class Run:
            summary = {}

            def log(self, values, step):
                fake.calls.append(("log", values, step))

            def finish(self):
                fake.calls.append(("finish", dict(self.summary)))

        return Run()


def test_wandb_tracker_follows_the_event_stream(monkeypatch, tmp_path):
    fake = _FakeWandb()
    monkeypatch.setitem(sys.modules, "wandb", fake)
    monkeypatch.setenv("WANDB_MODE", "offline")
    (tmp_path / "config.json").write_text(json.dumps({"options": {"lr": 0.1}, "layer": {"sha256": "ab"}}))
    callback = TrackingCallback(resolve_report_to(["wandb"]), None, FAMILIES["classification"])
    for event in [ProgressEvent("run_start", seed=7, run_dir=str(tmp_path)), ProgressEvent("epoch_start", 7, 1, steps=2),
                  ProgressEvent("step", 7, 1, step=1, steps=2, loss=0.9, examples_per_second=10, lr=0.1),
                  ProgressEvent("step", 7, 1, step=2, steps=2, loss=0.7, examples_per_second=10, lr=0.1),
                  ProgressEvent("epoch_end", 7, 1, loss=0.8, metrics={"validation": {"accuracy": 0.5}}),
                  ProgressEvent("run_end", 7, 1, metrics={"best_epoch": 1, "test": {"accuracy": 0.75}})]:
        callback(event)
    kinds = [c[0] for c in fake.calls]
    assert kinds == ["init", "log", "log", "log", "finish"]
    assert fake.calls[0][1]["config"]["layer"]["sha256"] == "ab" and fake.calls[0][1]["dir"] == str(tmp_path)
    assert [c[2] for c in fake.calls[1:4]] == [1, 2, 2] and fake.calls[3][1]["eval/accuracy"] == 0.5
    assert fake.calls[4][1]["test/accuracy"] == 0.75
    assert "mode" not in fake.calls[0][1]  # WANDB_MODE is wandb's own to read


def test_wandb_logs_offline_when_the_hub_is_offline(monkeypatch, tmp_path):
    fake = _FakeWandb()
    monkeypatch.setitem(sys.modules, "wandb", fake)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    TrackingCallback(["wandb"], None, FAMILIES["classification"])(ProgressEvent("run_start", seed=1, run_dir=str(tmp_path)))
    assert fake.calls[0][1]["mode"] == "offline"


def test_config_file_reruns_a_run_and_flags_override(assets, tmp_path, capsys):
    first = tmp_path / "x"
    cli.main(["train", *sum(([f"--{k.replace('_', '-')}", str(v)] for k, v in _options(assets, first).items()), []),
              "--no-post-norm", "-q"])
    again = tmp_path / "y"
    cli.main(["train", "--config", str(first / "config.json"), "--output-dir", str(again), "--epochs", "1", "-q"])
    old = json.loads((first / "config.json").read_text())["options"]
    new = json.loads((again / "config.json").read_text())["options"]
    assert new["output_dir"] == str(again) and new["epochs"] == 1  # the recorded folder is never reused
    assert {k: v for k, v in new.items() if k not in ("output_dir", "epochs")} == \
        {k: v for k, v in old.items() if k not in ("output_dir", "epochs")}
    assert len(json.loads((again / "metrics.json").read_text())["epochs"]) == 1


def test_yaml_config_and_unknown_keys(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("task: sst2\nlr: 0.001\nreport-to: [tensorboard]\nmethod: base\n")
    config = config_from_file(path, {"lr": 0.5})
    assert (config.task, config.lr, config.report_to, config.method) == ("sst2", 0.5, ["tensorboard"], "base")
    assert config.batch_size == TrainConfig().batch_size
    (tmp_path / "bad.json").write_text(json.dumps({"task": "sst2", "learning_rate": 1}))
    with pytest.raises(ConfigError, match="unknown option.*learning_rate") as err:
        read_config_file(tmp_path / "bad.json")
    assert "label_smoothing" in err.value.one_line()


def test_mlflow_tracker_logs_params_layer_tags_metrics(monkeypatch, tmp_path):
    calls = []
    fake = types.ModuleType("mlflow")
    fake.__spec__ = importlib.machinery.ModuleSpec("mlflow", None)
    for name in ("start_run", "log_params", "set_tag", "log_dict", "log_metrics", "end_run"):
        setattr(fake, name, lambda *a, _n=name, **kw: calls.append((_n, a, kw)))
    monkeypatch.setitem(sys.modules, "mlflow", fake)
    (tmp_path / "config.json").write_text(json.dumps({"options": {"lr": 0.1},
                                                      "layer": {"sha256": "ab", "reference": "org/m:-1"}}))
    callback = TrackingCallback(resolve_report_to("mlflow"), None, FAMILIES["classification"])
    for event in [ProgressEvent("run_start", seed=3, run_dir=str(tmp_path)), ProgressEvent("epoch_start", 3, 1, steps=1),
                  ProgressEvent("step", 3, 1, step=1, steps=1, loss=0.5, examples_per_second=2, lr=0.1),
                  ProgressEvent("run_end", 3, 1, metrics={"best_epoch": 1, "test": {"macro_f1": 0.6}})]:
        callback(event)
    names = [c[0] for c in calls]
    assert names == ["start_run", "log_params", "set_tag", "set_tag", "log_dict", "log_metrics", "log_metrics", "end_run"]
    assert calls[1][1][0] == {"lr": "0.1"} and calls[2][1] == ("layer0.sha256", "ab")
    assert calls[5][2]["step"] == 1 and calls[6][1][0]["test/macro_f1"] == 0.6
