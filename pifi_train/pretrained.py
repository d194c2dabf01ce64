"""PiFi in a ``transformers.Trainer`` script: :class:`PifiModel`, built, saved and reloaded with the layer by reference.

Three lines swap PiFi into an existing script::

    model = PifiModel.from_slm("google-bert/bert-base-uncased", "meta-llama/Llama-3.1-8B:-1", num_labels=2)
    trainer = Trainer(model=model, args=args, train_dataset=..., eval_dataset=...)   # as before
    model.save_pretrained("out")            # later: PifiModel.from_pretrained("out")

The saved folder is a pifi run directory (``config.json`` with the options, the labels and the layer's
reference + sha256, ``checkpoint/`` with only the trainable tensors, the SLM config and tokenizer), so
``pifi predict --run-dir out`` and :func:`pifi_train.load_classifier` read it too. The frozen layer is never
written, not even in the Trainer's own ``checkpoint-N`` folders (its tensors are left out of ``state_dict``),
and the Trainer's resume and ``load_best_model_at_end`` reload such checkpoints without a warning.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from . import checkpoint as ckpt
from . import run_files
from .build import load_frozen_layers
from .config import TrainConfig, resolve_precision
from .families.classification.family import CLASSIFICATION
from .families.classification.model import SequenceClassifier
from .layer_ref import describe_artifacts
from .run_record import layers_for, load_run, make_record
from .slm import load_slm, load_slm_config, load_tokenizer


def _drop_frozen_layer(module: nn.Module, state_dict: dict, prefix: str, local_metadata: Any) -> None:
    """state_dict post-hook: the frozen layer's tensors stay out of every checkpoint (transformers.Trainer's)."""
    if getattr(module, "train_layer", False):
        return
    for key in [k for k in state_dict if k.startswith(prefix + "layer.")]:
        del state_dict[key]


class PifiModel(SequenceClassifier):
    """The PiFi classifier for ``transformers.Trainer``: ``forward(..., labels=)`` returns a
    ``SequenceClassifierOutput`` whose loss is label-smoothed as the run's options say."""

    label_smoothing: float = 0.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.register_state_dict_post_hook(_drop_frozen_layer)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,  # type: ignore[override]
                labels: torch.Tensor | None = None, return_dict: bool | None = None, **inputs: torch.Tensor) -> Any:
        """Logits (B, C); with ``labels`` (B,) or ``return_dict``: a ``SequenceClassifierOutput``."""
        logits = super().forward(input_ids, attention_mask, **inputs)  # (B, C)
        if labels is None and not return_dict:
            return logits
        from transformers.modeling_outputs import SequenceClassifierOutput

        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(logits.float(), labels.to(logits.device).long(),
                                               label_smoothing=self.label_smoothing)
        return SequenceClassifierOutput(loss=loss, logits=logits)

    @property
    def _keys_to_ignore_on_save(self) -> list[str]:
        """What transformers.Trainer finds missing when it reloads its checkpoint: the frozen layer."""
        return [] if not self.has_layer or self.train_layer else [f"layer.{k}" for k in self.layer.state_dict()]

    def tie_weights(self) -> None:
        """transformers.Trainer calls this after a reload with only the ignored keys missing: nothing is tied."""

    @classmethod
    def from_slm(cls, slm: str, layer_artifact: str | list[str] | None, num_labels: int = 2,
                 label_names: Sequence[str] | None = None, text_pairs: bool = False, **options: Any) -> "PifiModel":
        """A new classifier: the SLM (Hub id or folder) plus the frozen layer(s) of ``layer_artifact`` (a file
        or a cache key; None = the SLM alone, ``method="base"``). ``options``: TrainConfig fields (plug,
        pooling, dropout, label_smoothing, max_length, slm_pretrained...), recorded in the saved config."""
        method = options.pop("method", "pifi" if layer_artifact else "base")
        config = TrainConfig(slm=slm, layer_artifact=layer_artifact if method == "pifi" else None, method=method,
                             **options)
        wiring = CLASSIFICATION.model_options(config)  # option values checked before anything loads
        identities = describe_artifacts(config.layer_artifact) if method == "pifi" else None
        slm_config = load_slm_config(slm)
        body = load_slm(slm, slm_config, pretrained=config.slm_pretrained)
        frozen = load_frozen_layers(identities, torch.device("cpu"), torch.float32) if identities else None
        model = cls(body, num_labels, wiring, frozen)
        names = list(label_names) if label_names is not None else [str(i) for i in range(num_labels)]
        return model._attach(config, identities, names, load_tokenizer(slm), text_pairs)

    @classmethod
    def from_pretrained(cls, folder: str | Path, device: str = "cpu",
                        layer_artifact: str | Sequence[str] | None = None) -> "PifiModel":
        """The model of a saved folder or a pifi classification run; the layer comes from its recorded
        reference (or ``layer_artifact`` if it moved) and must have the recorded sha256."""
        run = load_run(folder, device=device, layer_artifact=layer_artifact,
                       make_model=lambda slm, spec, wiring, layer: cls(slm, len(spec["labels"]), wiring, layer))
        identities = layers_for(run.record, layer_artifact) if run.options.method == "pifi" else None
        return run.model._attach(run.options, identities, run.spec["labels"], run.tokenizer,
                                 bool(run.spec.get("text_pairs")))

    def _attach(self, config: TrainConfig, identities: Any, label_names: Sequence[str], tokenizer: Any,
                text_pairs: bool) -> "PifiModel":
        self.pifi_config, self.layer_identities = config, identities
        self.label_names, self.tokenizer, self.text_pairs = list(label_names), tokenizer, text_pairs
        self.label_smoothing = config.label_smoothing
        return self

    def save_pretrained(self, folder: str | Path, tokenizer: Any = None) -> Path:
        """Write ``folder`` as a pifi run directory: trainable tensors, SLM config, tokenizer, the layer's
        reference (never its tensors)."""
        folder = Path(folder)
        config: TrainConfig = self.pifi_config
        checkpoint = folder / run_files.CHECKPOINT_DIR
        ckpt.save_trainable(checkpoint / run_files.WEIGHTS, self.trainable_state_dict(),
                            {"format": "pifi-trainable-1", "epoch": "0"})
        self.slm.config.save_pretrained(checkpoint)
        saved = (tokenizer or self.tokenizer).save_pretrained(checkpoint)
        spec = {"labels": self.label_names, "text_pairs": self.text_pairs, "pooling": self.pooling}
        data = _TrainerData()
        device = next(self.parameters()).device
        record = make_record(config, CLASSIFICATION, config.seed, spec, data, self.layer_identities, self.slm.config, self,
                             str(device), 1, resolve_precision("auto", torch.device("cpu")),
                             sorted({Path(p).name for p in saved} | {run_files.CONFIG}))
        run_files.write_json(folder / run_files.CONFIG, record)
        return folder


class _TrainerData:
    """The data record of a model trained outside pifi (by transformers.Trainer): nothing pifi saw."""

    train = validation = test = None
    extra_tests: dict = {}
    source = {"kind": "transformers.Trainer"}
