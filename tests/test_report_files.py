"""Every malformed metrics.json / config.json / predictions.jsonl that `pifi report` reads is one line and exit 2
(issue 21 §7): empty, not JSON, a list, missing keys, wrong types, NaN / strings / booleans as metrics, absurd
nesting, non-UTF-8, a number too long to read, a folder where a file should be."""

from __future__ import annotations

import json
import shutil

import pytest

from cli_runner import fails_in_one_line
from family_fixtures import options_for
from pifi_train.config import TrainConfig
from pifi_train.runner import run_training

pytestmark = pytest.mark.usefixtures("train_env")


@pytest.fixture(scope="module")
def finished(family_runs, tmp_path_factory):
    """One finished classification run (base, one seed)."""
    from train_fixtures import offline_single_thread

    with offline_single_thread():
        [run] = run_training(TrainConfig(**options_for(family_runs, "classification", method="base",
                                                       output_dir=str(tmp_path_factory.mktemp("finished") / "run"))))
    return run.run_dir


def _edit(name: str, change):  # noqa: ANN001 - a JSON document -> the edited document
    return name, lambda path: path.write_text(json.dumps(change(json.loads(path.read_text()))))


def _bytes(name: str, data: bytes):  # noqa: ANN001
    return name, lambda path: path.write_bytes(data)


def _test_metrics(value):  # noqa: ANN001
    return lambda m: {**m, "final": {**m["final"], "test": {**m["final"]["test"], "accuracy": value}}}


CASES = {
    # 1. empty files
    "empty metrics.json": (_bytes("metrics.json", b""), "metrics.json is not valid JSON"),
    "empty config.json": (_bytes("config.json", b""), "config.json is not valid JSON"),
    # 2. not JSON
    "metrics.json not JSON": (_bytes("metrics.json", b"{final: 1"), "metrics.json is not valid JSON"),
    "config.json not JSON": (_bytes("config.json", b"pifi_run: 2"), "config.json is not valid JSON"),
    # 3. a list where an object belongs
    "metrics.json a list": (_bytes("metrics.json", b"[1, 2]"), "metrics.json is a list, not an object"),
    "config.json a list": (_bytes("config.json", b"[1, 2]"), "config.json is not a pifi run record (a list"),
    "final.test a list": (_edit("metrics.json", lambda m: {**m, "final": {"test": [0.5]}}),
                          "final.test is a list, not an object"),
    # 4. missing keys
    "no seed": (_edit("config.json", lambda c: {k: v for k, v in c.items() if k != "seed"}), "seed is NoneType"),
    "no options": (_edit("config.json", lambda c: {k: v for k, v in c.items() if k != "options"}), "has no options"),
    "no primary metric": (_edit("metrics.json", lambda m: {**m, "final": {"test": {"macro_f1": 0.5}}}),
                          "final.test has no 'accuracy'"),
    # 5. wrong types
    "seed a string": (_edit("config.json", lambda c: {**c, "seed": "x"}), "seed is a string"),
    "seed a boolean": (_edit("config.json", lambda c: {**c, "seed": True}), "seed is a boolean"),
    "seed a float": (_edit("config.json", lambda c: {**c, "seed": 2.5}), "not an integer seed"),
    "an option of the wrong type": (_edit("config.json", lambda c: {**c, "options": {**c["options"], "epochs": "3"}}),
                                    "epochs must be an integer"),
    "epochs a string": (_edit("metrics.json", lambda m: {**m, "epochs": "x"}), "epochs is a string, not a list"),
    "a layer record a string": (_edit("config.json", lambda c: {**c, "layer": "x", "options": {
        **c["options"], "method": "pifi"}}), "layer[0] is a string, not an object"),
    "an unknown family": (_edit("config.json", lambda c: {**c, "family": "poetry"}), "'poetry' is not one of"),
    # 6. NaN, infinity, strings and booleans as metrics
    "NaN accuracy": (_edit("metrics.json", _test_metrics(float("nan"))), "accuracy is nan, not a finite number"),
    "infinite accuracy": (_edit("metrics.json", _test_metrics(float("inf"))), "accuracy is inf, not a finite number"),
    "accuracy a string": (_edit("metrics.json", _test_metrics("high")), "accuracy is a string ('high')"),
    "accuracy a numeric string": (_edit("metrics.json", _test_metrics("0.5")), "accuracy is a string ('0.5')"),
    "accuracy a boolean": (_edit("metrics.json", _test_metrics(True)), "accuracy is a boolean"),
    "a curve point a string": (_edit("metrics.json", lambda m: {**m, "epochs": [{"validation": {"accuracy": "x"}}]}),
                               "epochs[0].validation.accuracy is a string"),
    # 7. absurd nesting and numbers
    "metrics.json nested 100k deep": (_bytes("metrics.json", b"[" * 100_000 + b"]" * 100_000), "nested too deeply"),
    "config.json nested 100k deep": (_bytes("config.json", b'{"a":' * 100_000 + b"1" + b"}" * 100_000),
                                     "nested too deeply"),
    "a 5000-digit metric": (_bytes("metrics.json", b'{"final": {"test": {"accuracy": ' + b"9" * 5000 + b"}}}"),
                            "holds a number too long"),
    # 8. not UTF-8
    "metrics.json not UTF-8": (_bytes("metrics.json", b'{"seed": "\xff\xfe"}'), "metrics.json is not UTF-8 text"),
    "config.json not UTF-8": (_bytes("config.json", b'{"pifi_run": "\xff"}'), "config.json is not UTF-8 text"),
    # and a folder where metrics.json should be
    "metrics.json a folder": (("metrics.json", lambda path: (path.unlink(), path.mkdir())), "metrics.json is not a file"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_damaged_run_file_is_one_line(finished, case, tmp_path, capsys):
    (name, damage), says = CASES[case]
    run = shutil.copytree(finished, tmp_path / "run")
    damage(run / name)
    for target in (run, tmp_path):  # the run itself, or a folder holding it
        err = fails_in_one_line(capsys, ["report", str(target)], says)
        assert str(run) in err and "restore" in err


def test_a_damaged_predictions_file_is_one_line_with_bootstrap(finished, tmp_path, capsys):
    runs = {}
    for dropout in (0.3, 0.4):  # two configurations to compare
        runs[dropout] = run = shutil.copytree(finished, tmp_path / f"run-{dropout}")
        config = json.loads((run / "config.json").read_text())
        (run / "config.json").write_text(json.dumps({**config, "options": {**config["options"], "dropout": dropout}}))
    args = ["report", str(runs[0.3]), str(runs[0.4]), "--against", "dropout=0.4", "--bootstrap", "20"]
    (runs[0.4] / "predictions.jsonl").write_bytes(b'{"split": "test", "index": "\xff"}\n')
    fails_in_one_line(capsys, args, "predictions.jsonl is not UTF-8 text")
    (runs[0.4] / "predictions.jsonl").write_text('[1, 2]\n')
    fails_in_one_line(capsys, args, "predictions.jsonl is a list, not an object")


def test_an_unfinished_run_is_skipped_and_a_foreign_config_json_ignored(finished, tmp_path, capsys):
    from cli_runner import run_cli

    run = shutil.copytree(finished, tmp_path / "runs" / "run")
    unfinished = shutil.copytree(finished, tmp_path / "runs" / "unfinished")
    metrics = json.loads((unfinished / "metrics.json").read_text())
    (unfinished / "metrics.json").write_text(json.dumps({k: v for k, v in metrics.items() if k != "final"}))
    (tmp_path / "runs" / "model").mkdir()
    (tmp_path / "runs" / "model" / "config.json").write_text('{"model_type": "bert"}')  # an SLM's, not a run's
    (tmp_path / "runs" / "config.json").write_text("not json")  # nothing of a run beside it: not a run folder
    code, out, _ = run_cli(capsys, "report", str(tmp_path / "runs"))
    assert code == 0 and f"unfinished, skipped: {unfinished}" in out and "base" in out
    assert run.is_dir()
