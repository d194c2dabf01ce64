"""Running under ``torchrun``: process group, device per rank, sharding, gathering.

Outside torchrun every helper degrades to the single-process case, so the trainer
has one code path. Rank 0 writes outputs and reports progress; metrics are computed
on the predictions gathered from every rank (the whole split, not a shard).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.distributed as dist

from pifi_extract.errors import ConfigError


@dataclass(frozen=True)
class DistContext:
    """Where this process sits in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def resolve_device(device: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> cuda when available else cpu; ``cuda`` without CUDA is an error."""
    name = device.strip().lower()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {device}: CUDA is not available on this machine", "use --device cpu")
        if name == "cuda":
            return torch.device("cuda", local_rank)
        index = torch.device(name).index or 0
        if index >= torch.cuda.device_count():
            raise ConfigError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s)")
        return torch.device(name)
    if name != "cpu":
        raise ConfigError(f"unknown --device {device!r}", "use auto, cpu, cuda or cuda:N")
    return torch.device("cpu")


def setup(device: str) -> DistContext:
    """Join the torchrun job if there is one (nccl on CUDA, gloo on CPU) and pick this rank's device."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    resolved = resolve_device(device, local_rank)
    if world_size <= 1:
        return DistContext(device=resolved)
    if resolved.type == "cuda":
        torch.cuda.set_device(resolved)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if resolved.type == "cuda" else "gloo")
    return DistContext(dist.get_rank(), dist.get_world_size(), local_rank, resolved)


def teardown(ctx: DistContext) -> None:
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        dist.barrier()


def broadcast(ctx: DistContext, value: Any) -> Any:
    """Rank 0's ``value`` on every rank (any picklable object)."""
    if not ctx.enabled:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather(ctx: DistContext, values: Sequence[Any]) -> list[Any]:
    """Concatenation of every rank's ``values``, on every rank, in rank order."""
    if not ctx.enabled:
        return list(values)
    parts: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(parts, list(values))
    return [v for part in parts for v in part]


def mean(ctx: DistContext, value: float) -> float:
    """Average of a float over ranks."""
    if not ctx.enabled:
        return value
    return sum(gather(ctx, [value])) / ctx.world_size


def shard(indices: Sequence[int], ctx: DistContext, drop_remainder: bool) -> list[int]:
    """This rank's share of ``indices`` (strided); optionally trimmed so every rank has as many."""
    items = list(indices)
    if drop_remainder:
        items = items[: len(items) - len(items) % ctx.world_size]
    return items[ctx.rank:: ctx.world_size]
