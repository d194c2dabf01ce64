"""What reads finished runs works in every family: report (every format, Δ vs base with p-value and CI, the
bootstrap), sweep (its table and sweep.json), trackers (TensorBoard events read back), report grouping."""

from __future__ import annotations

import csv
import io
import json

import pytest

import cli
from family_fixtures import FAMILIES, options_for
from pifi_train.config import TrainConfig
from pifi_train.families import FAMILIES as REGISTRY
from pifi_train.report import build_report
from pifi_train.report_render import render
from pifi_train.runner import run_training

pytestmark = pytest.mark.usefixtures("train_env")


@pytest.fixture(scope="module")
def arms(family_runs, tmp_path_factory):
    """Per family: a base and a PiFi run, 2 seeds each, in one folder."""
    from train_fixtures import offline_single_thread

    root = tmp_path_factory.mktemp("arms")
    with offline_single_thread():
        for family in FAMILIES:
            for method in ("base", "pifi"):
                run_training(TrainConfig(**options_for(family_runs, family, method=method, seeds=2,
                                                       output_dir=str(root / family / method))))
    return root


@pytest.mark.parametrize("family", FAMILIES)
def test_report_shows_each_familys_metrics_with_delta_p_and_ci_in_every_format(arms, family, capsys):
    spec = REGISTRY[family].metrics
    report = build_report([arms / family], bootstrap=30)
    base, pifi = report.rows
    assert base.options["method"] == "base" and pifi.options["method"] == "pifi" and pifi.seeds == [2023, 2024]
    primary = spec.primary_metric
    assert pifi.delta_vs_base == pytest.approx(primary.points(pifi.metrics[primary.key][0] - base.metrics[primary.key][0]))
    assert pifi.welch is not None and 0 <= pifi.welch.p_value <= 1 and pifi.welch.ci_low <= pifi.welch.ci_high
    assert pifi.bootstrap is not None and pifi.bootstrap.ci_low <= pifi.bootstrap.mean <= pifi.bootstrap.ci_high
    assert set(pifi.metrics) >= {m.key for m in spec.headline}
    rows = json.loads(render(report.rows, "json"))
    assert rows[1]["family"] == family and rows[1]["primary"] == spec.primary
    assert "accuracy" not in rows[1]["metrics"] or family == "classification"  # no accuracy field holding EM
    header = next(csv.reader(io.StringIO(render(report.rows, "csv"))))
    assert {m.label for m in spec.headline} <= set(header) and "p (Welch)" in header and "95% CI" in header
    latex = render(report.rows, "latex")
    assert "\\begin{tabular}" in latex and "nan" not in latex
    cli.main(["report", str(arms / family), "--format", "md"])
    table = capsys.readouterr().out
    assert f"Δ {primary.label} vs base" in table and "nan" not in table and "±" in table
    cli.main(["report", str(arms / family)])
    printed = capsys.readouterr().out
    assert all(m.label in printed for m in spec.headline) and "nan" not in printed


def test_report_keeps_families_apart_and_refuses_two_runs_of_one_seed(arms, tmp_path, capsys):
    import shutil

    report = build_report([arms])
    assert {r.family for r in report.rows} == set(FAMILIES) and len(report.rows) == 6
    assert render(report.rows, "md").count("**") == 2 * len(FAMILIES)  # one table per family
    shutil.copytree(arms / "qa" / "pifi" / "seed-2023", tmp_path / "again")
    from cli_runner import fails_in_one_line

    err = fails_in_one_line(capsys, ["report", str(arms / "qa" / "pifi"), str(tmp_path / "again")], "same seed 2023")
    assert "again" in err


def test_report_never_pools_runs_that_differ_and_shows_what_differs(family_runs, tmp_path, capsys):
    """seed 7 at 2 epochs, seed 8 at 2 epochs and seed 7 at 1 epoch: two rows (issue 21 §3), not one."""
    runs = [("a", 7, 2), ("b", 8, 2), ("c", 7, 1)]
    for name, seed, epochs in runs:
        run_training(TrainConfig(**options_for(family_runs, "classification", seed=seed, epochs=epochs,
                                               output_dir=str(tmp_path / name))))
    report = build_report([tmp_path])
    assert sorted(r.seeds for r in report.rows) == [[7], [7, 8]]
    cli.main(["report", str(tmp_path), "--format", "csv"])
    header = capsys.readouterr().out.splitlines()[0].split(",")
    assert "epochs" in header  # the option that tells the rows apart gets a column


@pytest.mark.parametrize("family", ["qa", "seq2seq"])
def test_sweep_trains_every_layer_in_qa_and_seq2seq(family_runs, family, tmp_path, capsys):
    from tiny_models import make_tiny_model

    llm = make_tiny_model("llama", tmp_path / "llm", num_layers=2, hidden=64)
    options = options_for(family_runs, family, layer_artifact=None)
    args = ["sweep", "--llm", str(llm), "--layers", "0:2", "--output-dir", str(tmp_path / "sweep")]
    for key, value in options.items():
        args += ["--" + key.replace("_", "-"), str(value)]
    cli.main(args)
    out = capsys.readouterr().out
    saved = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    primary = REGISTRY[family].metrics.primary_metric
    assert saved["family"] == family and saved["metric"] == primary.key and set(saved["scores"]) == {"base", "0", "1"}
    assert primary.label in out and "base" in out and f"pifi sweep ({family})" in out


@pytest.mark.parametrize("family", ["qa", "seq2seq"])
def test_tensorboard_receives_the_familys_metrics(family_runs, family, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    [run] = run_training(TrainConfig(**options_for(family_runs, family, report_to=["tensorboard"],
                                                   output_dir=str(tmp_path / "run"))))
    events = EventAccumulator(str(run.run_dir / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    keys = {"qa": ("exact_match", "f1"), "seq2seq": ("bleu", "rougeL", "bleu_avg")}[family]
    assert {f"eval/{k}" for k in keys} <= tags and {f"test/{k}" for k in keys} <= tags
    assert "eval/accuracy" not in tags and "eval/loss" in tags or family == "qa"
