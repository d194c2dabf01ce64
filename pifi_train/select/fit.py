"""The fast search's training: L_in, L_out and the head fitted on cached SLM states through frozen layers.

:func:`encode` runs the SLM once over a split (eval mode, no gradients) and keeps what the plug sends to the
layer: the pooled vector (``plug="cls"``, the paper's: (N, 1, H)) or every token's state (``plug="sequence"``:
(N, T, H) with its mask; memory and the layer's cost per epoch grow with T). :func:`fit_layer` trains the
classification family's :class:`~pifi_train.families.classification.model.SequenceClassifier` whose SLM is
:class:`CachedSLM`, a stand-in that returns the cached states: L_in, L_out, the head, the plug, the pooling and
``--post-norm`` are the classifier's own, the frozen layer (or a :class:`~pifi_train.frozen_stack.FrozenStack`
of two, in order) is the run's. Adam, label-smoothed cross-entropy
and gradient clipping as pifi's trainer; the score of a seed is its best epoch's validation accuracy (earliest on
ties, as the trainer picks) with that epoch's loss; seeds are averaged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
from torch import nn

from ..config import Precision, TrainConfig
from ..families.classification.data import Examples
from ..families.classification.model import SequenceClassifier, pool, resolve_pooling
from ..families.classification.trainer import Collator
from ..options import ModelOptions
from ..plugged import forward_input_names
from ..trainer import autocast


class CachedSLM(nn.Module):
    """Stands in for the SLM inside the classifier: ``input_ids`` are already its output states (B, T, H)."""

    def __init__(self, config: Any) -> None:
        super().__init__()
        self.config = config  # the real SLM's: hidden size, and the model type that resolves --pooling auto

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> Any:
        from transformers.modeling_outputs import BaseModelOutput

        return BaseModelOutput(last_hidden_state=input_ids)  # (B, T, H)


@dataclass
class EncodedSplit:
    """What the plug sends to the layer, for every example of a split (on the CPU, fp32)."""

    states: torch.Tensor  # (N, T, H); T = 1 for the cls plug
    mask: torch.Tensor  # (N, T) 1 token, 0 padding
    labels: torch.Tensor  # (N,)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def batch(self, index: torch.Tensor, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(states (B, T_b, H), mask (B, T_b), labels (B,)), T_b the batch's longest example."""
        mask = self.mask[index]  # (B, T)
        length = max(1, int(mask.sum(1).max()))
        return (self.states[index, :length].to(device), mask[:, :length].to(device), self.labels[index].to(device))


@torch.no_grad()
def encode(slm: nn.Module, tokenizer: Any, examples: Examples, *, plug: str, pooling: str, max_length: int,
           batch_size: int, device: torch.device, precision: Precision) -> EncodedSplit:
    """Run the SLM once over ``examples`` (as the trainer tokenizes them) and keep what crosses the layer."""
    slm.eval()
    how = resolve_pooling(slm.config, pooling)
    collate = Collator(examples, tokenizer, max_length, forward_input_names(slm))
    states: list[torch.Tensor] = []
    masks: list[torch.Tensor] = []
    for start in range(0, len(examples), batch_size):
        batch = collate(range(start, min(start + batch_size, len(examples))))
        batch.pop("labels")
        batch.pop("index")
        batch = {k: v.to(device) for k, v in batch.items()}
        with autocast(device, precision):
            hidden = slm(**batch).last_hidden_state  # (B, T, H)
        mask = batch["attention_mask"]  # (B, T)
        if plug == "cls":
            states.append(pool(hidden, mask, how).float().unsqueeze(1).cpu())  # (B, 1, H)
            masks.append(torch.ones(len(mask), 1, dtype=torch.long))
        else:
            states.append((hidden.float() * mask.unsqueeze(-1)).cpu())  # (B, T, H)
            masks.append(mask.long().cpu())
    width = max(s.shape[1] for s in states)
    out = torch.zeros(len(examples), width, int(slm.config.hidden_size))  # (N, T, H)
    mask_out = torch.zeros(len(examples), width, dtype=torch.long)  # (N, T)
    row = 0
    for s, m in zip(states, masks):
        out[row:row + len(s), :s.shape[1]] = s
        mask_out[row:row + len(s), :s.shape[1]] = m
        row += len(s)
    return EncodedSplit(out, mask_out, torch.tensor(examples.labels, dtype=torch.long))


@dataclass(frozen=True)
class FitOptions:
    """How each layer is fitted (the optimisation defaults are ``pifi train``'s, epochs and lr the search's)."""

    epochs: int = 5
    lr: float = 1e-3
    seeds: Sequence[int] = (2023,)
    batch_size: int = TrainConfig.batch_size
    plug: str = "cls"
    attention: str = TrainConfig.attention
    pooling: str = TrainConfig.pooling
    dropout: float = TrainConfig.dropout
    label_smoothing: float = TrainConfig.label_smoothing
    grad_clip: float = TrainConfig.grad_clip
    eval_batch_size: int = 256


@dataclass
class FitScore:
    """Validation accuracy of the best epoch and its loss (means over seeds), and each seed's curve."""

    accuracy: float
    loss: float
    curves: list[list[float]] = field(default_factory=list)  # validation accuracy per epoch, per seed


def fit_layer(layer: nn.Module, train: EncodedSplit, validation: EncodedSplit, num_labels: int, slm_config: Any,
              options: FitOptions, device: torch.device, precision: Precision, *, post_norm: bool = False) -> FitScore:
    """Train L_in, L_out and the head through ``layer`` (a FrozenLayer or FrozenStack) on the cached states."""
    accs, losses, curves = [], [], []
    for seed in options.seeds:
        torch.manual_seed(seed)
        model = SequenceClassifier(CachedSLM(slm_config), num_labels,
                          ModelOptions("pifi", options.plug, options.attention, post_norm, options.pooling,
                                       options.dropout), layer).to(device)
        curve, curve_loss = _train(model, train, validation, options, seed, device, precision)
        best = max(range(len(curve)), key=lambda e: (curve[e], -e))  # earliest best epoch, as the trainer
        accs.append(curve[best])
        losses.append(curve_loss[best])
        curves.append(curve)
        del model
    return FitScore(sum(accs) / len(accs), sum(losses) / len(losses), curves)


def _train(model: SequenceClassifier, train: EncodedSplit, validation: EncodedSplit, options: FitOptions, seed: int,
           device: torch.device, precision: Precision) -> tuple[list[float], list[float]]:
    """(validation accuracy per epoch, validation loss per epoch)."""
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=options.lr)
    criterion = nn.CrossEntropyLoss(label_smoothing=options.label_smoothing)
    scaler = torch.amp.GradScaler(device.type, enabled=precision.grad_scaler)
    accs, losses = [], []
    for epoch in range(options.epochs):
        model.train()
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed * 1000 + epoch))
        for start in range(0, len(train), options.batch_size):
            x, mask, y = train.batch(order[start:start + options.batch_size], device)
            with autocast(device, precision):
                logits = model(input_ids=x, attention_mask=mask)  # (B, C)
            loss = criterion(logits.float(), y)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(params, options.grad_clip)
            scaler.step(optimizer)
            scaler.update()
        acc, val_loss = evaluate(model, validation, options.eval_batch_size, device, precision)
        accs.append(acc)
        losses.append(val_loss)
    return accs, losses


@torch.no_grad()
def evaluate(model: SequenceClassifier, split: EncodedSplit, batch_size: int, device: torch.device,
             precision: Precision) -> tuple[float, float]:
    """(accuracy, mean cross-entropy without smoothing) over a whole split."""
    model.eval()
    correct, total_loss = 0, 0.0
    for start in range(0, len(split), batch_size):
        x, mask, y = split.batch(torch.arange(start, min(start + batch_size, len(split))), device)
        with autocast(device, precision):
            logits = model(input_ids=x, attention_mask=mask).float()  # (B, C)
        correct += int((logits.argmax(-1) == y).sum())
        total_loss += float(nn.functional.cross_entropy(logits, y, reduction="sum"))
    return correct / max(1, len(split)), total_loss / max(1, len(split))
