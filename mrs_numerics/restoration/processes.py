"""Several processes on one job (``torchrun``): who owns which work item, and one reduction.

Under ``torchrun --nproc-per-node K`` every process runs the same command; the launcher sets
``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``.
[`processes`][mrs_numerics.restoration.processes.processes] joins them into one process group
(``gloo`` on the CPU, ``nccl`` on CUDA, where process r samples on ``cuda:LOCAL_RANK``) and
hands out a
[`Processes`][mrs_numerics.restoration.processes.Processes]: work items, sorted, are dealt by
index, item i to process i mod K
([`shard`][mrs_numerics.restoration.processes.Processes.shard]). Unlike torch's default
``DistributedSampler`` nothing is padded or repeated, so every item is done exactly once and
each output is written by the process that made it. Results meet once, at the end
([`gather`][mrs_numerics.restoration.processes.Processes.gather]). Without ``torchrun`` the
same code runs as one process, with no process group.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist

Item = TypeVar("Item")


@dataclass(frozen=True)
class Processes:
    """This process's place among the job's processes.

    Attributes:
        rank: This process's index, 0 … world − 1.
        world: How many processes run the job.
        device: Where this process samples (``cuda:LOCAL_RANK`` for CUDA under ``torchrun``).
    """

    rank: int
    world: int
    device: torch.device

    @property
    def main(self) -> bool:
        """True for the process that writes the job's summary and report (rank 0)."""
        return self.rank == 0

    def shard(self, items: Sequence[Item]) -> list[Item]:
        """This process's items: item i of ``items`` for i mod world = rank (none twice)."""
        return list(items[self.rank :: self.world])

    def gather(self, value: Any) -> list[Any]:
        """Every process's ``value`` (picklable), in rank order; ``[value]`` for one process."""
        if self.world == 1:
            return [value]
        gathered: list[Any] = [None] * self.world
        dist.all_gather_object(gathered, value)
        return gathered


def environment_world() -> tuple[int, int, int]:
    """(world, rank, local rank) as ``torchrun`` sets them; (1, 0, 0) without it.

    Raises:
        ValueError: If ``WORLD_SIZE`` says several processes but ``RANK`` is missing or the
            values are not integers in range.
    """
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return 1, 0, 0
        rank = int(os.environ["RANK"])
        local = int(os.environ.get("LOCAL_RANK", rank))
    except (KeyError, ValueError):
        raise ValueError(
            "WORLD_SIZE > 1 but RANK/LOCAL_RANK are missing or not integers: start several "
            "processes with torchrun --nproc-per-node K …"
        ) from None
    if not 0 <= rank < world:
        raise ValueError(f"RANK={rank} is outside 0 … WORLD_SIZE − 1 = {world - 1}")
    return world, rank, local


@contextmanager
def processes(device: torch.device) -> Iterator[Processes]:
    """The job's processes for the duration of the body (a process group under ``torchrun``).

    Args:
        device: The device asked for. Under ``torchrun`` a CUDA device without an index
            becomes ``cuda:LOCAL_RANK`` (one GPU per process) and the group uses NCCL;
            otherwise the group uses gloo.

    Raises:
        ValueError: If the ``torchrun`` environment is malformed, or a CUDA process has no GPU
            of its local rank.
    """
    world, rank, local = environment_world()
    if world == 1:
        yield Processes(0, 1, device)
        return
    if device.type == "cuda":
        if device.index is None:
            if local >= torch.cuda.device_count():
                raise ValueError(
                    f"process {rank} (local rank {local}) has no GPU: "
                    f"{torch.cuda.device_count()} visible; use at most that many processes "
                    "per node"
                )
            device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    started = not dist.is_initialized()
    if started:
        dist.init_process_group(backend)
    try:
        yield Processes(rank, world, device)
    finally:
        if started:
            dist.destroy_process_group()
