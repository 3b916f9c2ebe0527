"""Process-group set-up for ``torchrun --nproc_per_node=N -m depthlab train ...``.

torchrun sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``; with
``WORLD_SIZE`` > 1 the trainer joins a process group (gloo on CPU, NCCL on CUDA), wraps the model in
DistributedDataParallel and shards every batch by rank. Only rank 0 writes files or reports progress.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from depthlab.runtime import select_device

__all__ = ["DistContext", "setup", "teardown", "all_reduce_sum", "resolve_device"]


@dataclass(frozen=True)
class DistContext:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    owns_group: bool  # we created the process group, so we destroy it

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(preference: str, local_rank: int = 0) -> torch.device:
    """``auto`` → CUDA when available, else CPU; ``cuda`` without a GPU is an error
    (:func:`depthlab.runtime.select_device`, shared with the study engine)."""
    return select_device(preference, local_rank)


def setup(preference: str) -> DistContext:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(preference, local_rank)
    owns = False
    if world > 1 and not dist.is_initialized():
        _import_before_the_group()
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        owns = True
    return DistContext(rank, world, local_rank, device, owns)


def _import_before_the_group() -> None:
    """Import what DistributedDataParallel imports before the process group exists.

    ``torch.distributed.nn.functional`` (pulled in by ``torch._dynamo``, which DDP's constructor imports)
    takes ``group.WORLD`` as a default argument when it is first imported. Imported after
    ``init_process_group`` it keeps the group alive for ever, so ``destroy_process_group`` cannot destroy it
    and gloo's worker threads outlive Python: at interpreter exit a worker still releasing the last
    collective (it needs the GIL to free a tensor Python made) aborted the process ("terminate called without
    an active exception") after the run had finished. Imported first, the default is ``None`` and the group
    and its threads end in :func:`teardown`.
    """
    importlib.import_module("torch._dynamo")


def teardown(ctx: DistContext) -> None:
    if ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(ctx: DistContext, values: torch.Tensor) -> torch.Tensor:
    """The sum over ranks of ``values`` (unchanged on one process)."""
    if ctx.distributed:
        values = values.clone()
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        dist.barrier()
