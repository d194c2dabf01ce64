"""Trainable tensors on disk: the best epoch's checkpoint and the resume state of a run.

Only trainable tensors are written (SLM, L_in, L_out, head); the frozen layer is not: predict and resume
read it from the artifact (a random layer, ``--layer-init random``, is rebuilt from the run's seed). With
``--train-layer`` the layer trains, so the checkpoint DOES hold its tensors (``config.json``:
``"checkpoint_holds_layer": true``). File names and the JSON files of a run: :mod:`pifi_train.run_files`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from pifi_extract.errors import CorruptFileError, SourceNotFoundError

from .run_files import FILE_MODE, STATE_COUNTERS, STATE_DIR, STATE_WEIGHTS, read_json, write_error, write_json


def _cpu_copies(tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in tensors.items()}


def save_trainable(path: Path, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str]) -> None:
    """Write tensors to a safetensors file atomically."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file(_cpu_copies(tensors), str(tmp), metadata=dict(metadata))
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise write_error(err, path) from None


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
    save_trainable(run_dir / STATE_DIR / STATE_WEIGHTS, tensors, {"format": "pifi-train-state-1"})
    write_json(run_dir / STATE_DIR / STATE_COUNTERS, {**trainer, "param_groups": state["param_groups"]})


def load_state(run_dir: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Restore what :func:`save_state` wrote; returns the trainer counters."""
    trainer = read_json(run_dir / STATE_DIR / STATE_COUNTERS)
    tensors = load_tensors(run_dir / STATE_DIR / STATE_WEIGHTS)
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
