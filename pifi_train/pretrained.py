"""PiFi in a ``transformers.Trainer`` script: build, save and reload a :class:`PifiModel`, layer by reference.

Three lines swap PiFi into an existing script::

    model = PifiModel.from_slm("google-bert/bert-base-uncased", "meta-llama/Llama-3.1-8B:-1", num_labels=2)
    trainer = Trainer(model=model, args=args, train_dataset=..., eval_dataset=...)   # as before
    model.save_pretrained("out")            # later: PifiModel.from_pretrained("out")

The saved folder is a pifi run directory (``config.json`` with the options, the labels and the layer's
reference + sha256, ``checkpoint/`` with only the trainable tensors, the SLM config and tokenizer), so
``pifi predict --run-dir out`` and :func:`pifi_train.load_classifier` read it too. The frozen layer is never
written, not even in the Trainer's own ``checkpoint-N`` folders (its tensors are left out of ``state_dict``).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Sequence

import torch

from . import checkpoint as ckpt
from . import run_files
from .config import TrainConfig
from .layer_ref import describe_artifacts, layer_record, load_frozen_layers
from .model import PifiModel
from .slm import load_slm, load_slm_config, load_tokenizer


def _drop_frozen_layer(module: torch.nn.Module, state_dict: dict, prefix: str, local_metadata: Any) -> None:
    """state_dict post-hook: the frozen layer's tensors stay out of every checkpoint (transformers.Trainer's)."""
    for key in [k for k in state_dict if k.startswith(prefix + "layer.")]:
        del state_dict[key]


def _attach(model: PifiModel, config: TrainConfig, identities: Any, label_names: Sequence[str], tokenizer: Any,
            text_pairs: bool) -> PifiModel:
    model.pifi_config, model.layer_identities = config, identities
    model.label_names, model.tokenizer, model.text_pairs = list(label_names), tokenizer, text_pairs
    model.label_smoothing = config.label_smoothing
    model.register_state_dict_post_hook(_drop_frozen_layer)
    return model


def from_slm(slm: str, layer_artifact: str | Sequence[str] | None, num_labels: int = 2,
             label_names: Sequence[str] | None = None, text_pairs: bool = False, **options: Any) -> PifiModel:
    """A new classifier: the SLM (Hub id or folder) plus the frozen layer(s) of ``layer_artifact`` (a file or
    a cache key; None = the SLM alone, ``method="base"``). ``options``: TrainConfig fields (plug, pooling,
    dropout, label_smoothing, max_length, slm_pretrained...), recorded in the saved config."""
    method = options.pop("method", "pifi" if layer_artifact else "base")
    config = TrainConfig(slm=slm, layer_artifact=layer_artifact if method == "pifi" else None, method=method,
                         **options)
    config.model_options()  # option values checked before anything loads
    identities = describe_artifacts(config.layer_artifact) if method == "pifi" else None
    slm_config = load_slm_config(slm)
    model_slm = load_slm(slm, slm_config, pretrained=config.slm_pretrained)
    frozen = load_frozen_layers(identities, torch.device("cpu"), torch.float32) if identities else None
    model = PifiModel(model_slm, num_labels, config.model_options(), frozen)
    names = list(label_names) if label_names is not None else [str(i) for i in range(num_labels)]
    return _attach(model, config, identities, names, load_tokenizer(slm), text_pairs)


def save_pretrained(model: PifiModel, folder: str | Path, tokenizer: Any = None) -> Path:
    """Write ``folder`` as a pifi run directory: trainable tensors, SLM config, tokenizer, layer reference."""
    folder = Path(folder)
    config: TrainConfig = model.pifi_config
    slm_config = model.slm.config
    record = {
        run_files.RUN_MARKER: 1, "seed": config.seed, "options": config.to_dict(),
        "layer": layer_record(model.layer_identities) if model.layer_identities else None,
        "slm": {"name": config.slm, "model_type": slm_config.model_type, "hidden_size": slm_config.hidden_size,
                "pooling": model.pooling},
        "data": {"kind": "transformers.Trainer"}, "labels": model.label_names, "text_pairs": model.text_pairs,
        "parameters": {"trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
                       "frozen": sum(p.numel() for p in model.parameters() if not p.requires_grad)},
        "created": datetime.now().isoformat(timespec="seconds"),
    }
    run_files.write_json(folder / run_files.CONFIG, record)
    ckpt.save_trainable(folder / run_files.CHECKPOINT_DIR / run_files.WEIGHTS, model.trainable_state_dict(),
                        {"format": "pifi-trainable-1", "epoch": "0"})
    slm_config.save_pretrained(folder / run_files.CHECKPOINT_DIR)
    (tokenizer or model.tokenizer).save_pretrained(folder / run_files.CHECKPOINT_DIR)
    return folder


def from_pretrained(folder: str | Path, device: str = "cpu", layer_artifact: str | Sequence[str] | None = None
                    ) -> PifiModel:
    """The model of a saved folder or run directory; the layer comes from its recorded reference (or
    ``layer_artifact`` if it moved) and must have the recorded sha256."""
    from .layer_ref import recorded_layers
    from .predict import _layers_for, load_run

    run = load_run(folder, device=device, layer_artifact=layer_artifact)
    identities = _layers_for(run.record, layer_artifact) if recorded_layers(run.record) else None
    return _attach(run.model, run.options, identities, run.label_names, run.tokenizer,
                   bool(run.record.get("text_pairs")))
