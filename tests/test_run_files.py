"""pifi never destroys what is not its own run's files: --overwrite by name, configs that cannot smuggle it in."""

import json
import os
import shutil
import stat

import pytest

import cli
from cli_runner import fails_in_one_line
from train_fixtures import assets, train_env  # noqa: F401 - fixtures
from pifi_train import run_files

pytestmark = pytest.mark.usefixtures("train_env")


def _train(assets, out, *extra):
    cli.main(["train", "--train-file", str(assets["train"]), "--validation-file", str(assets["validation"]),
              "--slm", str(assets["bert"]), "--method", "base", "--epochs", "1", "--max-length", "16",
              "--batch-size", "32", "--max-train-samples", "64", "--output-dir", str(out), "--quiet", *extra])


@pytest.fixture(scope="module")
def finished_run(assets, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "run"
    from train_fixtures import offline_single_thread

    with offline_single_thread():
        _train(assets, out)
    return out


def _snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_overwrite_removes_only_the_run_files_and_keeps_a_users_notebook(assets, finished_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run, symlinks=True)
    (run / "analysis.ipynb").write_text("{}")
    (run / "checkpoint" / "notes.txt").write_text("mine")
    (run / "state" / "plot.png").write_bytes(b"png")
    listed = {p.relative_to(run).as_posix() for p in run_files.run_files(run)}
    assert {"config.json", "metrics.json", "checkpoint/pifi_trainable.safetensors", "state/last.safetensors",
            "state/trainer.json", "checkpoint/config.json"} <= listed
    assert not {"analysis.ipynb", "checkpoint/notes.txt", "state/plot.png"} & listed
    _train(assets, run, "--overwrite")
    assert (run / "analysis.ipynb").read_text() == "{}"
    assert (run / "checkpoint" / "notes.txt").read_text() == "mine"
    assert (run / "state" / "plot.png").read_bytes() == b"png"
    assert json.loads((run / "metrics.json").read_text())["complete"]


def test_recorded_checkpoint_files_are_the_tokenizer_files_written(finished_run):
    record = json.loads((finished_run / "config.json").read_text())
    names = set(record["checkpoint_files"])
    assert "config.json" in names and "tokenizer_config.json" in names
    assert names == {p.name for p in (finished_run / "checkpoint").iterdir()} - {run_files.WEIGHTS}


def test_config_file_cannot_set_overwrite_and_wrong_types_are_one_line(assets, finished_run, tmp_path, capsys):
    before = _snapshot(finished_run)
    quoted = tmp_path / "run.yaml"
    quoted.write_text(f'overwrite: "false"\noutput_dir: {finished_run}\n')
    fails_in_one_line(capsys, ["train", "--config", str(quoted)], "sets 'overwrite'")
    for text, match in [("lr: abc", "lr must be a number"), ("epochs: [1, 2]", "epochs must be an integer"),
                        ("batch_size: 2.5", "batch_size must be an integer"), ("seed: x", "seed must be"),
                        ("text_column: [a, b]", "text_column must be a string"), ("device: 3", "device must be"),
                        ("a: &x [1]\nb: *x", "aliases"), ("[" * 20000 + "]" * 20000, "nested too deeply")]:
        bad = tmp_path / "bad.yaml"
        bad.write_text(text + "\n")
        fails_in_one_line(capsys, ["train", "--config", str(bad)], match)
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("text_column: caf\xe9\n".encode("latin-1"))
    fails_in_one_line(capsys, ["train", "--config", str(latin)], "not UTF-8")
    assert _snapshot(finished_run) == before


def test_rerun_from_a_recorded_config_never_reuses_its_folder_or_overwrite(assets, finished_run, tmp_path,
                                                                              monkeypatch):
    record = json.loads((finished_run / "config.json").read_text())
    record["options"]["overwrite"] = True  # as if trained with --overwrite
    recorded = tmp_path / "config.json"
    recorded.write_text(json.dumps(record))
    before = _snapshot(finished_run)
    monkeypatch.chdir(tmp_path)
    cli.main(["train", "--config", str(recorded), "--quiet"])
    assert _snapshot(finished_run) == before  # trained into a new runs/<task>-<method>-<time> folder instead
    assert len(list((tmp_path / "runs").iterdir())) == 1


def test_overwrite_onto_a_symlinked_run_folder_is_refused(assets, finished_run, tmp_path, capsys):
    link = tmp_path / "link"
    link.symlink_to(finished_run)
    before = _snapshot(finished_run)
    fails_in_one_line(capsys, ["train", "--train-file", str(assets["train"]), "--slm", str(assets["bert"]),
                               "--method", "base", "--output-dir", str(link), "--overwrite"], "symbolic link")
    assert _snapshot(finished_run) == before


def test_run_files_are_readable_by_the_lab(finished_run):
    umask = os.umask(0)
    os.umask(umask)
    for path in [finished_run / "config.json", finished_run / "metrics.json",
                 finished_run / "checkpoint" / "pifi_trainable.safetensors"]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, path


def test_a_full_disk_is_one_line(tmp_path, monkeypatch):
    import errno

    from pifi_extract.errors import StorageError

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fdopen", full)
    with pytest.raises(StorageError, match="disk full"):
        run_files.write_json(tmp_path / "metrics.json", {"a": 1})
    assert list(tmp_path.iterdir()) == []  # no temp file left


@pytest.mark.parametrize("tamper, message", [
    ("labels", "do not fit together"),
    ("options", "was edited"),
    ("tensor", "do not fit together"),
    ("slm_config", "do not fit together"),
])
def test_predict_on_a_tampered_run_is_one_line(finished_run, tmp_path, capsys, tamper, message):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    record = json.loads((run / "config.json").read_text())
    if tamper == "labels":
        record["model"]["labels"] += ["third"]
    elif tamper == "options":
        record["options"]["max_length"] = "long"
    elif tamper == "slm_config":
        slm = json.loads((run / "checkpoint" / "config.json").read_text())
        slm["hidden_size"] = 48
        (run / "checkpoint" / "config.json").write_text(json.dumps(slm))
    else:
        from safetensors.torch import load_file, save_file

        weights = run / "checkpoint" / "pifi_trainable.safetensors"
        tensors = load_file(str(weights))
        name = next(k for k in tensors if k.startswith("head."))
        tensors[name] = tensors[name][:1].clone()
        weights.chmod(0o644)
        save_file(tensors, str(weights))
    (run / "config.json").write_text(json.dumps(record))
    fails_in_one_line(capsys, ["predict", "--run-dir", str(run), "--text", "w1 good"], message)


def test_an_output_dir_that_cannot_be_made_is_one_line(assets, capsys):
    fails_in_one_line(capsys, ["train", "--train-file", str(assets["train"]), "--slm", str(assets["bert"]),
                               "--method", "base", "--epochs", "1", "--output-dir", "/proc/pifi-run"], "cannot write")


def test_an_interrupted_train_says_how_to_resume(assets, tmp_path, capsys, monkeypatch):
    from pifi_train import trainer

    real = trainer.Trainer.train_epoch

    def interrupted(self, epoch):
        if epoch == 2:
            raise KeyboardInterrupt
        return real(self, epoch)

    monkeypatch.setattr(trainer.Trainer, "train_epoch", interrupted)
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as info:
        _train(assets, out, "--epochs", "3")
    assert info.value.code == 130
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "pifi train --resume --output-dir" in err and str(out) in err
    monkeypatch.setattr(trainer.Trainer, "train_epoch", real)
    cli.main(["train", "--resume", "--output-dir", str(out), "--quiet"])
    assert [e["epoch"] for e in json.loads((out / "metrics.json").read_text())["epochs"]] == [1, 2, 3]


@pytest.mark.parametrize("name", ["texts.txt", "texts.csv"])
def test_predict_file_that_is_not_utf8_is_one_line(finished_run, tmp_path, capsys, name):
    path = tmp_path / name
    path.write_bytes("text\ncaf\xe9 good\n".encode("latin-1"))
    fails_in_one_line(capsys, ["predict", "--run-dir", str(finished_run), "--file", str(path)], "not UTF-8")
