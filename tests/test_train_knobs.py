"""The authors' training knobs on classification runs: resume stays bit-for-bit with a schedule and with
--patience, --select-by macro_f1 / loss pick the epoch they name, cosine schedule, Table 10's poolings."""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors import safe_open

from cli_runner import fails_in_one_line
from pifi_train.config import TrainConfig
from pifi_train.families import FAMILIES as REGISTRY
from pifi_train.runner import resume_training, run_training

pytestmark = pytest.mark.usefixtures("train_env")


def _config(family_runs, out, **changes) -> TrainConfig:
    from family_fixtures import options_for

    return TrainConfig(**options_for(family_runs, "classification", output_dir=str(out), **changes))


class Interrupt(Exception):
    pass


def _interrupted_after(epoch: int):
    """A progress callback that stops the run once ``epoch`` is saved (as a killed process would)."""
    def progress(event):
        if event.kind == "epoch_end" and event.epoch == epoch:
            raise Interrupt
    return progress


def _state(run_dir):
    with safe_open(str(run_dir / "state" / "last.safetensors"), "pt") as fh:
        return {k: fh.get_tensor(k) for k in fh.keys() if not k.startswith("rng")}


@pytest.mark.parametrize("changes", [
    dict(scheduler="cosine", warmup_ratio=0.2, optimizer="adamw", weight_decay=0.01),
    dict(scheduler="linear", optimizer="sgd", lr=0.05),
])
def test_resume_with_a_schedule_is_bit_for_bit(family_runs, tmp_path, changes):
    straight = run_training(_config(family_runs, tmp_path / "straight", epochs=3, **changes))[0]
    with pytest.raises(Interrupt):
        run_training(_config(family_runs, tmp_path / "resumed", epochs=3, **changes), _interrupted_after(1))
    resumed = resume_training(tmp_path / "resumed")[0]
    assert [e["train_loss"] for e in resumed.metrics["epochs"]] == [e["train_loss"] for e in straight.metrics["epochs"]]
    assert resumed.metrics["final"]["test"] == straight.metrics["final"]["test"]
    a, b = _state(straight.run_dir), _state(resumed.run_dir)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    counters = [json.loads((run.run_dir / "state" / "trainer.json").read_text()) for run in (straight, resumed)]
    assert counters[0]["scheduler"] == counters[1]["scheduler"] and counters[0]["param_groups"] == counters[1]["param_groups"]


def test_extending_a_scheduled_run_is_refused_in_one_line(family_runs, tmp_path, capsys):
    run_training(_config(family_runs, tmp_path / "run", epochs=1, scheduler="linear"))
    capsys.readouterr()
    fails_in_one_line(capsys, ["train", "--resume", "--output-dir", str(tmp_path / "run"), "--epochs", "2"],
                      "spans its 1 planned epochs")
    assert len(json.loads((tmp_path / "run" / "metrics.json").read_text())["epochs"]) == 1  # untouched


def test_patience_survives_an_interruption(family_runs, tmp_path, monkeypatch):
    trainer = REGISTRY["classification"].runtime().Trainer
    original = trainer.evaluate
    scripted = {"losses": None}

    def evaluate(self, split, tick=None):
        metrics, rows = original(self, split, tick)
        return ({**metrics, "loss": next(scripted["losses"])} if split is self.data.validation else metrics), rows

    monkeypatch.setattr(trainer, "evaluate", evaluate)
    options = dict(epochs=6, patience=2, select_by="loss")
    scripted["losses"] = iter([3.0, 1.0, 2.0, 2.0, 0.5, 0.1])  # best 2, stale 3 and 4: stop after epoch 4
    straight = run_training(_config(family_runs, tmp_path / "straight", **options))[0]
    assert straight.metrics["stopped_early"] == 4 and straight.metrics["best_epoch"] == 2
    scripted["losses"] = iter([3.0, 1.0, 2.0, 2.0, 0.5, 0.1])
    with pytest.raises(Interrupt):  # interrupted with one stale epoch counted
        run_training(_config(family_runs, tmp_path / "resumed", **options), _interrupted_after(3))
    resumed = resume_training(tmp_path / "resumed")[0]
    assert [e["epoch"] for e in resumed.metrics["epochs"]] == [1, 2, 3, 4]
    assert resumed.metrics["stopped_early"] == 4 and resumed.metrics["final"] == straight.metrics["final"]


@pytest.mark.parametrize("select_by, pick", [("macro_f1", max), ("loss", min), ("accuracy", max)])
def test_select_by_picks_the_epoch_of_its_metric(family_runs, tmp_path, select_by, pick):
    run = run_training(_config(family_runs, tmp_path / "run", epochs=3, lr=1e-2, select_by=select_by))[0]
    values = [e["validation"][select_by] for e in run.metrics["epochs"]]
    assert run.metrics["best_epoch"] == values.index(pick(values)) + 1  # the earliest of ties
    assert run.metrics["final"]["validation"][select_by] == pick(values)
    kept = [json.loads(line) for line in (run.run_dir / "predictions.jsonl").read_text().splitlines()]
    assert {row["split"] for row in kept} == {"validation", "test"}
    assert run.metrics["final"]["validation"]["paper_macro_f1"] is not None  # the paper's number beside it


def test_cosine_schedule_rates(family_runs, tmp_path):
    lrs = []
    run_training(_config(family_runs, tmp_path / "run", epochs=2, scheduler="cosine"),
                 lambda e: lrs.append(e.lr) if e.kind == "step" else None)
    total, lr = len(lrs), 3e-3
    assert lrs == pytest.approx([lr * 0.5 * (1 + math.cos(math.pi * i / total)) for i in range(total)], rel=1e-9)


@pytest.mark.parametrize("pooling", ["mean", "mean_with_padding"])
@pytest.mark.parametrize("method", ["pifi", "base"])
def test_mean_poolings_train_and_predict(family_runs, tmp_path, pooling, method):
    from pifi_train.families.classification.predict import predict
    from pifi_train.run_record import load_run

    run = run_training(_config(family_runs, tmp_path / "run", method=method, pooling=pooling, epochs=2, lr=1e-2))[0]
    record = json.loads((run.run_dir / "config.json").read_text())
    assert record["model"]["pooling"] == pooling and record["options"]["pooling"] == pooling
    assert run.metrics["final"]["test"]["accuracy"] > 0.5
    loaded = load_run(run.run_dir, device="cpu")
    assert loaded.model.pooling == pooling
    assert [p.label for p in predict(loaded, ["w7 good w8", "w7 bad w8"])]
