"""`pifi report --against`: any arm against any arm in every family (Welch p and CI over seeds, the paired
bootstrap where the test examples match, refused where they differ); the selectors themselves; names that tell
rows apart, the plot's legend, title and colours; --bootstrap's p < 1/N through the CLI."""

from __future__ import annotations

import csv
import io
import json
import shutil

import pytest

from cli_runner import fails_in_one_line, run_cli
from family_fixtures import FAMILIES, options_for
from pifi_train.config import TrainConfig
from pifi_train.families import FAMILIES as REGISTRY
from pifi_train.report import build_report
from pifi_train.report_compare import LayerInfo, layers_fit, parse_selector, value_fits
from pifi_train.report_render import curve_lines, display_names, distinct_tails, render
from pifi_train.runner import run_training

pytestmark = pytest.mark.usefixtures("train_env")


# ---- selectors (no run needed) -------------------------------------------------------------------------------
def test_selector_names_are_options_task_or_layer_in_either_spelling():
    assert parse_selector("layer-init=random, method=base").clauses == (("layer_init", "random"), ("method", "base"))
    assert parse_selector("--slm=x,task=sst2,layer=abc").names == {"slm", "task", "layer"}
    for bad, says in (("colour=red", "not an option a report row has"), ("method", "is not name=value"),
                      ("method=", "is not name=value"), (",", "at least one")):
        with pytest.raises(Exception, match=says):
            parse_selector(bad)


@pytest.mark.parametrize("value, wanted, fits", [
    ("google-bert/bert-large-uncased", "bert-large-uncased", True),
    ("google-bert/bert-large-uncased", "google-bert/bert-large-uncased", True),
    ("google-bert/bert-large-uncased", "bert-large", False),  # never a substring: Llama-3.1-8B is not -Instruct
    ("/runs/models/bert", "models/bert", True),
    (5e-5, "0.00005", True), (3, "3", True), (3, "three", False),
    (True, "true", True), (False, "true", False), (None, "none", True), (None, "x", False),
    (("query", "value"), "query+value", True),
])
def test_value_fits_by_value_or_trailing_path_part(value, wanted, fits):
    assert value_fits(value, wanted) is fits


def test_layers_fit_by_cache_key_source_or_sha256_prefix():
    base = LayerInfo("meta-llama/Llama-3.1-8B", "meta-llama/Llama-3.1-8B:-1", "/c/a.safetensors", "ab12cd34ef", 31)
    instruct = LayerInfo("meta-llama/Llama-3.1-8B-Instruct", "meta-llama/Llama-3.1-8B-Instruct:-1", "/c/b", "99ff", 31)
    assert layers_fit([base], "Llama-3.1-8B") and not layers_fit([instruct], "Llama-3.1-8B")
    assert layers_fit([base], "meta-llama/Llama-3.1-8B:-1") and layers_fit([base], "ab12cd")
    assert not layers_fit([base], "ab12")  # a sha256 prefix needs 6 characters
    assert layers_fit([base, instruct], "Llama-3.1-8B+Llama-3.1-8B-Instruct") and not layers_fit([], "x")


def test_distinct_tails_keep_the_parts_that_tell_values_apart():
    shown = distinct_tails(["/a/x/bert", "/b/y/bert", "google-bert/bert-base-uncased"])
    assert shown == {"/a/x/bert": "x/bert", "/b/y/bert": "y/bert", "google-bert/bert-base-uncased": "bert-base-uncased"}
    assert distinct_tails(["/d/data/train.csv"], minimum=2) == {"/d/data/train.csv": "data/train.csv"}
    assert distinct_tails(["/a/data/train.csv", "/b/data/train.csv"], minimum=2)["/a/data/train.csv"] == "a/data/train.csv"


# ---- every family: PiFi-Random against PiFi -----------------------------------------------------------------
@pytest.fixture(scope="module")
def ablation(family_runs, tmp_path_factory):
    """Per family: PiFi and PiFi-Random (the layer's shape, random weights), 2 seeds each."""
    from train_fixtures import offline_single_thread

    root = tmp_path_factory.mktemp("ablation")
    with offline_single_thread():
        for family in FAMILIES:
            for name, init in (("pifi", "artifact"), ("random", "random")):
                run_training(TrainConfig(**options_for(family_runs, family, layer_init=init, seeds=2,
                                                       output_dir=str(root / family / name))))
    return root


@pytest.mark.parametrize("family", FAMILIES)
def test_pifi_random_against_pifi_in_every_family(ablation, family, capsys):
    primary = REGISTRY[family].metrics.primary_metric
    report = build_report([ablation / family], bootstrap=30, against="layer_init=artifact")
    pifi, random = sorted(report.rows, key=lambda r: r.options["layer_init"])
    assert (pifi.options["layer_init"], random.options["layer_init"]) == ("artifact", "random")
    assert pifi.delta is None and pifi.welch is None  # the reference row itself
    assert random.against == pifi.runs
    assert random.delta == pytest.approx(primary.points(random.metrics[primary.key][0] - pifi.metrics[primary.key][0]))
    assert random.welch is not None and random.welch.mean == pytest.approx(random.delta)
    assert random.welch.ci_low <= random.delta <= random.welch.ci_high and 0 <= random.welch.p_value <= 1
    boot = random.bootstrap
    assert boot is not None and boot.resamples == 30 and boot.ci_low <= boot.mean <= boot.ci_high
    code, out, _ = run_cli(capsys, "report", str(ablation / family), "--against", "layer-init=artifact", "--format", "md")
    assert code == 0 and f"Δ {primary.label} vs layer_init=artifact" in out
    rows = json.loads(render(report.rows, "json", report.against))
    assert {r["compared_with"] for r in rows} == {"layer_init=artifact"}
    # the default compares with the base SLM: there is none here, so no Δ, and no error
    assert all(r.delta is None for r in build_report([ablation / family]).rows)


def test_a_selector_that_fits_no_row_is_one_line(ablation, capsys):
    err = fails_in_one_line(capsys, ["report", str(ablation / "qa"), "--against", "slm=bert-large-uncased"],
                            "fits no row")
    assert "slm=bert-large-uncased" in err
    fails_in_one_line(capsys, ["report", str(ablation / "qa"), "--against", "colour=red"], "'colour' is not an option")


# ---- classification: another SLM, another layer, another test set, and an ambiguous reference -------------------
@pytest.fixture(scope="module")
def arms(family_runs, assets, second_artifact, tmp_path_factory):
    """PiFi (tiny BERT + the first llama layer), PiFi with the second llama layer, the base tiny BERT and the base
    decoder SLM (as Table 6's BERT-large), and a base BERT tested on the validation file: 2 seeds each."""
    from train_fixtures import offline_single_thread

    root = tmp_path_factory.mktemp("arms")
    runs = {"pifi": {}, "pifi-second": {"layer_artifact": str(second_artifact)},
            "base": {"method": "base"}, "base-decoder": {"method": "base", "slm": str(assets["decoder"])},
            "base-other-test": {"method": "base", "test_file": str(assets["validation"])}}
    with offline_single_thread():
        for name, changes in runs.items():
            run_training(TrainConfig(**options_for(family_runs, "classification", seeds=2, **changes,
                                                   output_dir=str(root / name))))
    return root


def test_pifi_against_another_slm_and_between_two_layers(arms, assets, second_artifact):
    names = lambda report: {tuple(n[k] for k in ("slm", "method", "layer")): r  # noqa: E731
                            for r, n in zip(report.rows, display_names(report.rows))}
    paths = [arms / n for n in ("pifi", "pifi-second", "base", "base-decoder")]
    # Table 6: PiFi on the small SLM against the larger SLM's base run
    report = build_report(paths, bootstrap=20, against=f"slm={assets['decoder'].name},method=base")
    rows = names(report)
    decoder = rows[("decoder", "base", "-")]
    pifi = rows[("bert", "pifi", "artifact/llm#1")]
    assert pifi.against == decoder.runs and pifi.bootstrap is not None
    assert pifi.delta == pytest.approx(100 * (pifi.metrics["accuracy"][0] - decoder.metrics["accuracy"][0]))
    assert rows[("bert", "base", "-")].against == decoder.runs and decoder.delta is None
    # Table 12: the PiFi arm with the second layer against the one with the first (named by its source folder)
    report = build_report(paths, bootstrap=20, against="layer=artifact/llm")
    rows = names(report)
    first, second = rows[("bert", "pifi", "artifact/llm#1")], rows[("bert", "pifi", f"{second_artifact.parent.name}/llm#1")]
    assert second.against == first.runs and second.welch is not None and second.bootstrap is not None
    assert first.delta is None and rows[("bert", "base", "-")].delta is None  # its method differs: not named
    # by a sha256 prefix too
    sha = first.layers[0].sha256
    by_sha = build_report(paths, against=f"layer={sha[:10]}")
    assert [(r.against, r.delta) for r in by_sha.rows] == [(r.against, r.delta) for r in report.rows]


def test_a_paired_bootstrap_on_different_test_examples_is_refused(arms, assets, capsys):
    paths = [str(arms / "base"), str(arms / "base-other-test")]
    against = f"test_file={assets['validation'].name}"
    report = build_report(paths, against=against)  # Welch over seeds needs no pairing
    [row] = [r for r in report.rows if r.delta is not None]
    assert row.options["test_file"] == str(assets["test"]) and row.welch is not None
    fails_in_one_line(capsys, ["report", *paths, "--against", against, "--bootstrap", "20"],
                      "were tested on different examples")


def test_an_ambiguous_reference_gives_no_delta_and_a_note(arms, capsys):
    # the base row against "method=pifi": two PiFi rows (two layers) fit; neither is chosen silently
    code, out, _ = run_cli(capsys, "report", str(arms / "base"), str(arms / "pifi"), str(arms / "pifi-second"),
                           "--against", "method=pifi")
    assert code == 0 and "note: base: --against method=pifi fits 2 rows for it (they differ in layer)" in out
    report = build_report([arms / "base", arms / "pifi", arms / "pifi-second"], against="method=pifi")
    assert [r.delta for r in report.rows if r.options["method"] == "base"] == [None]


def _rewritten(seed_dirs, folder, dropout: float, right: bool):
    """Copies of classification runs as another configuration (--dropout) answering every test example right
    (or wrong): real run files a report reads."""
    for seed_dir in seed_dirs:
        copy = shutil.copytree(seed_dir, folder / seed_dir.name)
        config = json.loads((copy / "config.json").read_text())
        config["options"]["dropout"] = dropout
        (copy / "config.json").write_text(json.dumps(config))
        rows = [json.loads(line) for line in (copy / "predictions.jsonl").read_text().splitlines()]
        (copy / "predictions.jsonl").write_text("".join(
            json.dumps({**r, "prediction": r["label"] if right else 1 - r["label"]}) + "\n" for r in rows))
        metrics = json.loads((copy / "metrics.json").read_text())
        metrics["final"]["test"]["accuracy"] = 1.0 if right else 0.0
        (copy / "metrics.json").write_text(json.dumps(metrics))
    return folder


def test_bootstrap_p_zero_prints_below_one_over_n(arms, tmp_path, capsys):
    """All right against all wrong, example by example: no resample crosses 0, so p < 1/200 (issue 21 §8)."""
    seeds = sorted((arms / "base").glob("seed-*"))
    right = _rewritten(seeds, tmp_path / "right", 0.3, True)
    wrong = _rewritten(seeds, tmp_path / "wrong", 0.4, False)
    code, out, _ = run_cli(capsys, "report", str(right), str(wrong), "--against", "dropout=0.4", "--bootstrap", "200",
                           "--format", "csv")
    assert code == 0
    header, *lines = list(csv.reader(io.StringIO(out)))
    [compared] = [line for line in lines if line[header.index("dropout")] == "0.3"]
    assert compared[header.index("Δ accuracy vs dropout=0.4")] == "+100.00"
    assert compared[header.index("p (bootstrap)")] == "< 0.005"  # not "0"


# ---- names, legend, title and colours ---------------------------------------------------------------------------
def test_names_legend_title_and_colours_tell_the_arms_apart(arms, assets, second_artifact):
    from pifi_train.curves import ARM_COLORS, arm_color

    report = build_report([arms / "pifi", arms / "pifi-second", arms / "base", arms / "base-decoder"])
    shown = display_names(report.rows)
    assert {n["layer"] for n in shown} == {"-", "artifact/llm#1", f"{second_artifact.parent.name}/llm#1"}
    assert {n["slm"] for n in shown} == {"bert", "decoder"} and {n["task"] for n in shown} == {"task/train.jsonl"}
    lines = curve_lines(report.records, report.rows)
    assert lines.title.startswith("task/train.jsonl: validation curves")  # what every row shares
    assert set(lines.curves) == {"bert base (n=2)", "decoder base (n=2)", "bert pifi artifact/llm#1 (n=2)",
                                 f"bert pifi {second_artifact.parent.name}/llm#1 (n=2)"}
    assert lines.ylabel == "validation accuracy (%)"
    by_label = dict(zip(lines.curves, lines.colors))
    assert by_label["bert base (n=2)"] == arm_color("base") == ARM_COLORS[("base", "raw")]
    assert by_label["bert pifi artifact/llm#1 (n=2)"] == arm_color("pifi", False) == "C1"
    # one seed: the value alone, never "± 0.00"
    single = build_report([arms / "pifi" / "seed-2023"])
    assert "±" not in render(single.rows, "md") and "±" in render(report.rows, "md")


def test_plot_gives_each_line_its_own_colour_and_arms_theirs(tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pifi_train.curves import plot_validation_curves

    drawn = []
    original = plt.Axes.plot

    def spy(self, *args, **kwargs):  # records what the real plot call received, then draws it
        drawn.append((kwargs["label"], kwargs["color"]))
        return original(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(plt.Axes, "plot", spy)
        path = plot_validation_curves({"base": [[0.5, 0.6]], "pifi": [[0.5, 0.7]], "pifi random": [[0.4, 0.5]],
                                       "other": [[0.1, 0.2]]}, tmp_path / "c.png",
                                      colors=["C0", "C1", "C1", None])
    assert path.read_bytes()[:4] == b"\x89PNG"
    colours = dict(drawn)
    assert colours["base"] == "C0" and colours["pifi"] == "C1"
    assert len(set(colours.values())) == 4 and not {colours["pifi random"], colours["other"]} & {"C2", "C3"}
