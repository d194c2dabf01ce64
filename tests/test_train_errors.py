"""Bad input to `pifi train` / `predict` / `report`: one line on stderr, exit code 2, nothing written or overwritten."""

import json
import shutil

import pytest
import torch
from safetensors.torch import save_file

import cli
from train_fixtures import FAST_OPTIONS, assets, make_tiny_artifact, train_env, write_jsonl  # noqa: F401 - fixtures
from cli_runner import fails_in_one_line

pytestmark = pytest.mark.usefixtures("train_env")


def _args(assets, out, **overrides):
    options = {"train-file": assets["train"], "validation-file": assets["validation"], "slm": assets["bert"],
               "layer-artifact": assets["artifact"], "output-dir": out, "epochs": 1, "max-length": 16}
    options.update(overrides)
    args = ["train"]
    for key, value in options.items():
        if value is not None:
            args += [f"--{key}", str(value)]
    return args


_fails = fails_in_one_line


def _corrupted_copy(artifact, folder):
    copy = folder / "corrupt.safetensors"
    shutil.copy(artifact, copy)
    data = bytearray(copy.read_bytes())
    data[-1] ^= 0xFF
    copy.write_bytes(bytes(data))
    return copy


def test_artifact_errors(assets, tmp_path, capsys):
    out = tmp_path / "out"
    _fails(capsys, _args(assets, out, **{"layer-artifact": tmp_path / "missing.safetensors"}), "does not exist")
    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(plain))
    _fails(capsys, _args(assets, out, **{"layer-artifact": plain}), "not a pifi artifact")
    _fails(capsys, _args(assets, out, **{"layer-artifact": _corrupted_copy(assets["artifact"], tmp_path)}),
           "does not match")
    _fails(capsys, _args(assets, out, **{"layer-artifact": None}), "--method pifi needs --layer-artifact")
    assert not out.exists()


def test_slm_errors(assets, tmp_path, capsys):
    out = tmp_path / "out"
    _fails(capsys, _args(assets, out, slm="nobody/no-such-model"), "not available offline")
    _fails(capsys, _args(assets, out, slm=tmp_path / "no-such-folder"), "no such folder")
    empty = tmp_path / "empty-folder"
    empty.mkdir()
    _fails(capsys, _args(assets, out, slm=empty), "not a loadable model")
    assert not out.exists()


def test_data_errors(assets, tmp_path, capsys):
    out = tmp_path / "out"
    _fails(capsys, _args(assets, out, **{"train-file": tmp_path / "nope.jsonl"}), "data file not found")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    _fails(capsys, _args(assets, out, **{"train-file": empty}), "has no rows")
    _fails(capsys, _args(assets, out, **{"text-column": "sentence"}), "has no column 'sentence'")
    fractional = write_jsonl(tmp_path / "frac.jsonl", [{"text": "a", "label": 0.25}])
    _fails(capsys, _args(assets, out, **{"train-file": fractional}), "does not parse")
    _fails(capsys, _args(assets, out, **{"train-file": None, "validation-file": None, "task": "sst3"}),
           "unknown task 'sst3' — known tasks: agnews, cola, cr")
    _fails(capsys, _args(assets, out, **{"task": "sst2"}), "either --task or --train-file")
    _fails(capsys, _args(assets, out, **{"batch-size": 10_000}), "fewer than one batch")
    assert not out.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda(assets, tmp_path, capsys):
    _fails(capsys, _args(assets, tmp_path / "out", device="cuda"), "CUDA is not available")
    _fails(capsys, _args(assets, tmp_path / "out", precision="bf16"), "needs a CUDA device")
    assert not (tmp_path / "out").exists()


def test_existing_output_dir_is_refused_and_left_alone(assets, tmp_path, capsys):
    mine = tmp_path / "precious"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    _fails(capsys, _args(assets, mine), "already exists")
    _fails(capsys, _args(assets, mine) + ["--overwrite"], "not a pifi run directory")
    _fails(capsys, _args(assets, mine) + ["--resume"], "not a pifi run directory")
    assert [p.name for p in mine.iterdir()] == ["notes.txt"] and (mine / "notes.txt").read_text() == "keep me"


def test_existing_run_needs_overwrite_and_bad_input_keeps_it(assets, tmp_path, capsys):
    run = tmp_path / "run"
    cli.main(_args(assets, run, **{"batch-size": 16, "lr": FAST_OPTIONS["lr"]}) + ["--quiet"])
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    _fails(capsys, _args(assets, run), "already exists")
    _fails(capsys, _args(assets, run, **{"layer-artifact": tmp_path / "gone.safetensors"}) + ["--overwrite"],
           "does not exist")
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before
    other = make_tiny_artifact(tmp_path / "other", seed=1)
    _fails(capsys, ["predict", "--run-dir", str(run), "--text", "x", "--layer-artifact", str(other)],
           "is not the layer this run was trained with")
    _fails(capsys, ["predict", "--run-dir", str(run), "--text", "x", "--text-pair", "y"], "single texts")
    cli.main(_args(assets, run, **{"batch-size": 16, "method": "base", "layer-artifact": None}) + ["--overwrite", "--quiet"])
    assert '"method": "base"' in (run / "config.json").read_text()


def test_predict_and_report_errors(assets, tmp_path, capsys):
    _fails(capsys, ["predict", "--run-dir", str(tmp_path), "--text", "x"], "config.json does not exist")
    _fails(capsys, ["report", str(tmp_path / "nothing")], "no such run directory")
    _fails(capsys, ["report", str(tmp_path)], "no pifi runs")
    _fails(capsys, ["predict", "--run-dir", str(tmp_path), "--text", "x", "-o", str(tmp_path)], "is a folder")
    _fails(capsys, ["predict", "--run-dir", str(tmp_path), "--text", "x", "-o", str(tmp_path / "no" / "p.jsonl")],
           "does not exist")


def test_stacked_layers_of_different_hidden_sizes_are_refused(assets, tmp_path, capsys):
    from pifi_train.frozen_layer import load_layer
    from pifi_train.frozen_stack import FrozenStack
    from pifi_extract.errors import ConfigError

    narrow = make_tiny_artifact(tmp_path / "narrow", hidden=32)
    capsys.readouterr()  # the tiny model's save progress
    out = tmp_path / "out"
    err = _fails(capsys, _args(assets, out) + ["--layer-artifact", str(narrow)], "different hidden sizes")
    assert ": 64" in err and ": 32" in err and not out.exists()
    with pytest.raises(ConfigError, match=r"different hidden sizes \(64, 32\)"):
        FrozenStack([load_layer(assets["artifact"]), load_layer(narrow)])


def test_pickle_only_slm_is_refused_unloaded(assets, tmp_path, capsys, monkeypatch):
    pickled = tmp_path / "pickled-slm"
    shutil.copytree(assets["bert"], pickled)
    state = {k: v for k, v in __import__("safetensors.torch", fromlist=["load_file"]).load_file(
        str(pickled / "model.safetensors")).items()}
    (pickled / "model.safetensors").unlink()
    torch.save(state, pickled / "pytorch_model.bin")
    loads = []
    monkeypatch.setattr(torch, "load", lambda *a, **k: loads.append(a) or {})
    out = tmp_path / "out"
    _fails(capsys, _args(assets, out, slm=pickled), "holds only pickle weights (pytorch_model.bin)")
    assert loads == [] and not out.exists()


@pytest.mark.parametrize("option, value, match", [("lr", "nan", "--lr and --grad-clip must be finite"),
                                                  ("grad-clip", "nan", "--lr and --grad-clip must be finite"),
                                                  ("num-workers", "-1", "--num-workers must be 0 or more")])
def test_nan_and_negative_options_are_one_line(assets, tmp_path, capsys, option, value, match):
    out = tmp_path / "out"
    _fails(capsys, _args(assets, out, **{option: value}), match)
    assert not out.exists()


def test_unreadable_and_one_class_data_are_one_line(assets, tmp_path, capsys):
    out = tmp_path / "out"
    latin = tmp_path / "latin.csv"
    latin.write_bytes("text,label\ncaf\xe9 au lait,1\nthe,0\n".encode("latin-1"))
    _fails(capsys, _args(assets, out, **{"train-file": latin}), "is not UTF-8 text")
    huge = tmp_path / "huge.csv"
    huge.write_text("text,label\n" + '"' + "a" * (10 << 20) + '",1\nb,0\n')
    _fails(capsys, _args(assets, out, **{"train-file": huge}), "cannot read it as CSV")
    one = write_jsonl(tmp_path / "one.jsonl", [{"text": f"t{i}", "label": 1} for i in range(20)])
    _fails(capsys, _args(assets, out, **{"train-file": one, "validation-file": one}), "holds one class only")
    assert not out.exists()


def test_a_failed_train_leaves_no_empty_run_folder(assets, tmp_path, capsys, monkeypatch):
    import pifi_train.runner as runner
    from pifi_extract.errors import ConfigError

    def boom(*args, **kwargs):
        raise ConfigError("the model could not be built")

    monkeypatch.setattr(runner, "build_model", boom)
    out = tmp_path / "out"
    _fails(capsys, _args(assets, out), "the model could not be built")
    assert not out.exists()


@pytest.mark.parametrize("name, content, message", [
    ("deep.jsonl", '{"text": ' + "[" * 200_000 + "]" * 200_000 + ', "label": 1}\n', "nested too deeply"),
    ("digits.jsonl", '{"text": "a", "label": ' + "9" * 5000 + "}\n", "line 1"),
])
def test_hostile_jsonl_rows_are_one_line(assets, tmp_path, capsys, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    _fails(capsys, _args(assets, tmp_path / "out", **{"train-file": path, "validation-file": None}), message)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("content, message", [
    (json.dumps({"data": [{"title": "t"}]}), "not SQuAD data"),  # no paragraphs
    (json.dumps({"data": [{"paragraphs": [{"context": "c", "qas": "a string"}]}]}), "not SQuAD data"),
    (b"\xff\xfe not utf-8", "not UTF-8"),
    ("[" * 100_000 + "]" * 100_000, "SQuAD"),
])
def test_hostile_qa_files_are_one_line(assets, tmp_path, capsys, content, message):
    path = tmp_path / "squad.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    _fails(capsys, ["train", "--task-type", "qa", "--train-file", str(path), "--slm", str(assets["bert"]),
                    "--method", "base", "--output-dir", str(tmp_path / "out")], message)
    assert not (tmp_path / "out").exists()
