"""`pifi train` as users run it: a separate process, offline, and under torchrun with 2 CPU ranks (gloo)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from train_fixtures import assets, make_tiny_bert, write_task  # noqa: F401 - fixtures
from tiny_models import make_tiny_model

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--epochs", "2", "--batch-size", "16", "--lr", "3e-3", "--max-length", "16", "--dropout", "0", "--quiet"]


def _env(**extra):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), **extra}
    env.pop("PIFI_DEBUG", None)
    return env


def _data_args(files):
    return ["--train-file", str(files["train"]), "--validation-file", str(files["validation"]),
            "--test-file", str(files["test"])]


def _layout(metrics):
    """The key structure of a metrics file (values dropped)."""
    if isinstance(metrics, dict):
        return {k: _layout(v) for k, v in metrics.items() if k not in ("per_class_f1",)}
    if isinstance(metrics, list) and metrics and isinstance(metrics[0], dict):
        return [_layout(metrics[0])]
    return type(metrics).__name__


def test_never_the_full_llm_offline_with_the_hub_stopped(hub_server, tmp_path):
    """The layer comes from the loopback Hub by range reads; then the Hub stops, the LLM's local copy is gone,
    HF_HUB_OFFLINE=1, and `pifi train` still runs: it reads the LLM only through the artifact."""
    from pifi_extract import extract_layer

    llm = make_tiny_model("llama", tmp_path / "llm", num_layers=2, hidden=64)
    hub_server.add_repo("org/tiny-llm", llm)
    artifact = Path(extract_layer("org/tiny-llm", -1, tmp_path / "layer.safetensors").path)
    endpoint = hub_server.url
    hub_server.stop()
    files = write_task(tmp_path / "task")
    slm = make_tiny_bert(tmp_path / "bert")
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "cli", "train", *_data_args(files), "--slm", str(slm),
           "--layer-artifact", str(artifact), "--output-dir", str(out), *FAST]
    done = subprocess.run(cmd, cwd=tmp_path, env=_env(HF_ENDPOINT=endpoint, HF_HOME=str(tmp_path / "hf")),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["complete"] and metrics["final"]["test"]["accuracy"] >= 0.9
    assert json.loads((out / "config.json").read_text())["layer"]["source"] == "org/tiny-llm"


def test_torchrun_two_cpu_ranks_with_gloo(assets, tmp_path):
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    common = ["train", *_data_args(assets), "--slm", str(assets["bert"]), "--layer-artifact",
              str(assets["artifact"]), *FAST, "--batch-size", "8"]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "cli"]
    procs = [subprocess.Popen(torchrun + common + ["--output-dir", str(ddp)], cwd=ROOT, env=_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True),
             subprocess.Popen([sys.executable, "-m", "cli", *common, "--output-dir", str(single)], cwd=ROOT,
                              env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs[0][-3000:] + outputs[1][-2000:]
    config = json.loads((ddp / "config.json").read_text())
    assert config["world_size"] == 2
    metrics = json.loads((ddp / "metrics.json").read_text())
    reference = json.loads((single / "metrics.json").read_text())
    assert _layout(metrics) == _layout(reference)
    # metrics are over the whole split, gathered from both ranks, not one shard
    assert metrics["final"]["test"]["count"] == 96 and metrics["epochs"][0]["validation"]["count"] == 96
    assert metrics["final"]["test"]["accuracy"] >= 0.9
    assert not list(ddp.glob("*.tmp")) and (ddp / "checkpoint" / "pifi_trainable.safetensors").is_file()


@pytest.mark.parametrize("family", ["qa", "seq2seq"])
def test_torchrun_two_cpu_ranks_for_qa_and_seq2seq(family_runs, family, tmp_path):
    """The one run flow under DDP in every family: the frozen layer is not broadcast (it is not a module
    parameter DDP owns), metrics are gathered over the whole split, the files match a single process's."""
    from family_fixtures import cli_args, options_for

    single, ddp = tmp_path / "single", tmp_path / "ddp"
    common = cli_args(options_for(family_runs, family, batch_size=8, quiet=True))
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "cli"]
    procs = [subprocess.Popen(torchrun + common + ["--output-dir", str(ddp)], cwd=ROOT, env=_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True),
             subprocess.Popen([sys.executable, "-m", "cli", *common, "--output-dir", str(single)], cwd=ROOT,
                              env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs[0][-3000:] + outputs[1][-2000:]
    assert json.loads((ddp / "config.json").read_text())["world_size"] == 2
    metrics, reference = (json.loads((d / "metrics.json").read_text()) for d in (ddp, single))
    assert _layout(metrics) == _layout(reference)
    rows = [json.loads(line) for line in (ddp / "predictions.jsonl").read_text().splitlines()]
    assert len([r for r in rows if r["split"] == "test"]) == 32  # every test example, from both ranks
    assert not list(ddp.glob("*.tmp")) and (ddp / "checkpoint" / "pifi_trainable.safetensors").is_file()
