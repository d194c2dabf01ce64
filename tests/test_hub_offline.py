"""Offline, or with the Hub unreachable, every command that talks to the Hub says so in ONE line (issue 24 item 4):
extract, select, cache pull, cache push, push and predict --run-dir hf://, under HF_HUB_OFFLINE=1 and with the
loopback Hub's port closed. One mapping of Hub errors (pifi_extract.hub_source.hub_errors) serves them all."""

from __future__ import annotations

import pytest
from huggingface_hub import constants

from cli_runner import run_cli
from layer_cache import get_or_extract
from train_fixtures import FAST_OPTIONS, assets, offline_single_thread  # noqa: F401 - fixture

REPO = "org/tiny-llama"


@pytest.fixture(scope="module")
def run_dir(assets, tmp_path_factory):
    """A finished one-seed run on a local layer artifact (no Hub involved)."""
    from pifi_train.config import TrainConfig
    from pifi_train.runner import run_training

    config = TrainConfig(train_file=str(assets["train"]), validation_file=str(assets["validation"]),
                         slm=str(assets["bert"]), layer_artifact=str(assets["artifact"]),
                         output_dir=str(tmp_path_factory.mktemp("runs") / "run"),
                         **{**FAST_OPTIONS, "epochs": 1, "max_train_samples": 32})
    with offline_single_thread():
        return run_training(config)[0].run_dir


def commands(run_dir, assets, cached_reference: str, token: str) -> dict[str, list[str]]:
    return {
        "extract": ["extract", "--llm", REPO, "--layer", "0", "-q"],
        "select": ["select", "--llm", REPO, "--validation-file", str(assets["validation"]), "--samples", "16", "--folds", "2", "-q"],
        "pull": ["cache", "pull", "lab/layers", "-q"],
        "cache push": ["cache", "push", cached_reference, "--to", "lab/layers", "--token", token],
        "push": ["push", "--run-dir", str(run_dir), "--to", "lab/run", "--token", token],
        "predict hf://": ["predict", "--run-dir", "hf://lab/run", "--text", "a film", "--device", "cpu"],
    }


@pytest.mark.parametrize("mode", ["HF_HUB_OFFLINE=1", "port closed"])
@pytest.mark.parametrize("command", ["extract", "select", "pull", "cache push", "push", "predict hf://"])
def test_offline_or_unreachable_is_one_line_naming_the_network(hub_server, llama_dir, run_dir, assets, capsys,
                                                               monkeypatch, mode, command):
    hub_server.add_repo(REPO, llama_dir)
    cached = get_or_extract(str(llama_dir), 0)  # a local artifact: what `cache push` uploads
    args = commands(run_dir, assets, cached.reference, hub_server.write_token)[command]
    if mode == "port closed":
        hub_server.stop()  # HF_ENDPOINT still names its port, where nothing listens now
        expected = "cannot reach the Hub"
    else:
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        expected = "HF_HUB_OFFLINE=1"
    code, out, err = run_cli(capsys, *args)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    assert expected in lines[0] and "not found" not in lines[0], lines[0]
