"""The optimizer and the learning-rate schedule of a run (``--optimizer``, ``--scheduler``, ``--warmup-ratio``).

Optimizers are torch's (the authors' choices: Adam, AdamW, plain SGD; Adam is the paper's). Schedules are
transformers' ``get_*_schedule_with_warmup`` (a ``LambdaLR`` stepped after every optimizer step): ``constant``
without warmup is no schedule at all (the paper's), so those runs stay bit-identical to earlier pifi. The
authors' code also offered StepLR, LambdaLR(0.95^epoch), CosineAnnealingLR(T_max = one epoch, with restarts)
and ReduceLROnPlateau with ad-hoc constants; the paper used none, so pifi keeps the common warmup schedules.
"""

from __future__ import annotations

import math
from typing import Iterable

import torch

from pifi_extract.errors import ConfigError

from .config import TrainConfig


def build_optimizer(params: Iterable[torch.nn.Parameter], config: TrainConfig) -> torch.optim.Optimizer:
    """``--optimizer`` over ``params`` with ``--lr`` and ``--weight-decay`` (adam/sgd: L2; adamw: decoupled)."""
    params = list(params)
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, weight_decay=config.weight_decay)
    raise ConfigError(f"unknown --optimizer {config.optimizer!r}")


def scheduled(config: TrainConfig) -> bool:
    """Whether the run has a learning-rate schedule (anything but a constant rate without warmup)."""
    return config.scheduler != "constant" or config.warmup_ratio > 0


def warmup_steps(config: TrainConfig, total_steps: int) -> int:
    """``--warmup-ratio`` of ``total_steps``, rounded up (transformers' rule)."""
    return math.ceil(config.warmup_ratio * total_steps)


def build_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig,
                    total_steps: int) -> torch.optim.lr_scheduler.LRScheduler | None:
    """The schedule over ``total_steps`` optimizer steps (None: a constant rate without warmup)."""
    if not scheduled(config):
        return None
    from transformers import (get_constant_schedule_with_warmup, get_cosine_schedule_with_warmup,
                              get_linear_schedule_with_warmup)

    warmup = warmup_steps(config, total_steps)
    if config.scheduler == "constant":
        return get_constant_schedule_with_warmup(optimizer, warmup)
    if config.scheduler == "linear":
        return get_linear_schedule_with_warmup(optimizer, warmup, total_steps)
    if config.scheduler == "cosine":
        return get_cosine_schedule_with_warmup(optimizer, warmup, total_steps)
    raise ConfigError(f"unknown --scheduler {config.scheduler!r}")


def scheduler_state(scheduler: torch.optim.lr_scheduler.LRScheduler) -> dict:
    """The scheduler's state as JSON values (a LambdaLR's lambdas are code: rebuilt from the options)."""
    state = scheduler.state_dict()
    if "lr_lambdas" in state:
        state["lr_lambdas"] = [None] * len(state["lr_lambdas"])  # load_state_dict keeps the built ones
    return state
