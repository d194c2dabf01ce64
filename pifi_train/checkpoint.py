"""A run directory on disk: config, metrics, trainable-only checkpoint, resume state.

Layout of one run::

    config.json                 every option, the artifact reference and sha256, versions, labels
    metrics.json                per-epoch and final metrics (see pifi_train.metrics), extra test sets
    test_predictions.json       per test set: every example's gold and predicted label id (report --bootstrap)
    checkpoint/                 the best epoch: ONLY trainable tensors (SLM, L_in, L_out, head)
        pifi_trainable.safetensors
        config.json, tokenizer files   the SLM's config and tokenizer (predict needs no download)
    state/                      the last finished epoch, for --resume
        last.safetensors        trainable tensors + optimizer moments + RNG state
        trainer.json            epoch, best epoch so far, optimizer groups, grad-scaler state

The frozen layer is not written: predict and resume read it from the artifact (a random layer,
``--layer-init random``, is rebuilt from the run's seed). With ``--train-layer`` the layer trains, so
the checkpoint DOES hold its tensors (``config.json``: ``"checkpoint_holds_layer": true``).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Mapping

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from pifi_extract.errors import ConfigError, CorruptFileError, SourceNotFoundError

CONFIG = "config.json"
METRICS = "metrics.json"
SWEEP = "sweep.json"
PREDICTIONS = "test_predictions.json"  # per test set: gold and predicted label id of every example
CHECKPOINT_DIR = "checkpoint"
WEIGHTS = "pifi_trainable.safetensors"
STATE_DIR = "state"
RUN_MARKER = "pifi_run"


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (temp file + rename), so a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2, sort_keys=False)
        fh.write("\n")
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    if not path.is_file():
        raise SourceNotFoundError(f"{path} does not exist", "is this a pifi run directory?")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise CorruptFileError(f"{path} is not valid JSON: {err.msg}") from err


def is_run_dir(path: Path) -> bool:
    """A directory written by ``pifi train`` (one run or a seed sweep)."""
    if (path / SWEEP).is_file():
        return True
    try:
        return bool(json.loads((path / CONFIG).read_text()).get(RUN_MARKER))
    except (OSError, ValueError, AttributeError):
        return False


def check_output_dir(path: Path, overwrite: bool, resume: bool) -> None:
    """Refuse to clobber: an existing non-empty directory needs --overwrite (pifi runs only) or --resume."""
    if resume:
        if not is_run_dir(path):
            raise ConfigError(f"--resume: {path} is not a pifi run directory")
        return
    if path.exists() and not path.is_dir():
        raise ConfigError(f"output path {path} exists and is not a directory")
    if path.is_dir() and any(path.iterdir()):
        if not overwrite:
            raise ConfigError(f"output directory {path} already exists",
                              "pass --overwrite to replace it or --resume to continue it")
        if not is_run_dir(path):
            raise ConfigError(f"--overwrite refused: {path} is not a pifi run directory",
                              "choose another --output-dir")


def create_output_dir(path: Path, overwrite: bool) -> None:
    """Make the directory (after every input was validated); --overwrite empties a previous run first."""
    if overwrite and path.is_dir() and is_run_dir(path):
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)


def _cpu_copies(tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in tensors.items()}


def save_trainable(path: Path, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str]) -> None:
    """Write tensors to a safetensors file atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(_cpu_copies(tensors), str(tmp), metadata=dict(metadata))
    os.replace(tmp, path)


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise SourceNotFoundError(f"checkpoint {path} does not exist", "did the run finish an epoch?")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as err:
        raise CorruptFileError(f"checkpoint {path} is unreadable: {err}") from err


def load_into(model: torch.nn.Module, tensors: Mapping[str, torch.Tensor], frozen_prefix: str = "layer.") -> None:
    """Load trainable tensors strictly: every key but the frozen layer's must be present (the layer's
    too when the model trains it: ``trainable_state_dict``)."""
    if hasattr(model, "trainable_state_dict"):
        expected = set(model.trainable_state_dict())
    else:
        expected = {k for k in model.state_dict() if not k.startswith(frozen_prefix)}
    missing, unexpected = sorted(expected - set(tensors)), sorted(set(tensors) - expected)
    if missing or unexpected:
        raise CorruptFileError(f"checkpoint does not match the model: missing {missing[:3]}, "
                               f"unexpected {unexpected[:3]}")
    model.load_state_dict(dict(tensors), strict=False)


# ---- resume state ------------------------------------------------------------------------------


def save_state(run_dir: Path, model_tensors: Mapping[str, torch.Tensor], optimizer: torch.optim.Optimizer,
               trainer: dict[str, Any]) -> None:
    """The last finished epoch: trainable tensors, optimizer moments, RNG, trainer counters."""
    state = optimizer.state_dict()
    tensors = {f"model.{k}": v for k, v in model_tensors.items()}
    for index, moments in state["state"].items():
        for key, value in moments.items():
            tensors[f"optim.{index}.{key}"] = torch.as_tensor(value)
    tensors["rng.cpu"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    save_trainable(run_dir / STATE_DIR / "last.safetensors", tensors, {"format": "pifi-train-state-1"})
    write_json(run_dir / STATE_DIR / "trainer.json", {**trainer, "param_groups": state["param_groups"]})


def load_state(run_dir: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Restore what :func:`save_state` wrote; returns the trainer counters."""
    trainer = read_json(run_dir / STATE_DIR / "trainer.json")
    tensors = load_tensors(run_dir / STATE_DIR / "last.safetensors")
    load_into(model, {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
    moments: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            moments.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": moments, "param_groups": trainer.pop("param_groups")})
    torch.set_rng_state(tensors["rng.cpu"])
    if "rng.cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng.cuda"])
    return trainer
