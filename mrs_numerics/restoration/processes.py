"""Several processes on one job (``torchrun``): who owns which work item, and one reduction.

Under ``torchrun --nproc-per-node K`` every process runs the same command; the launcher sets
``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``.
[`processes`][mrs_numerics.restoration.processes.processes] joins them into one process group
(gloo; on CUDA process r samples on ``cuda:LOCAL_RANK``) within a stated time
(``mrs_numerics._launch.rendezvous_timeout``) and hands out a
[`Processes`][mrs_numerics.restoration.processes.Processes]: work items, sorted, are dealt by
index, item i to process i mod K
([`shard`][mrs_numerics.restoration.processes.Processes.shard]). Unlike torch's default
``DistributedSampler`` nothing is padded or repeated, so every item is done exactly once and
each output is written by the process that made it. Results meet once, at the end
([`gather`][mrs_numerics.restoration.processes.Processes.gather]); a process that fails joins
that gather with its failure, so the others finish their share and the failure is reported
once, by the process it happened on. Without ``torchrun`` the same code runs as one process,
with no process group. Commands that are not sharded run on process 0 only
(``mrs_numerics._launch.single_process``).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch.distributed.distributed_c10d import _set_pg_timeout

from mrs_numerics._launch import (
    RENDEZVOUS_TIMEOUT_VARIABLE,
    PeerFailedError,
    RendezvousTimeoutError,
    environment_world,
    gather_timeout,
    mark_reported_elsewhere,
    note_joining,
    rendezvous_timeout,
)

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
    _state: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def main(self) -> bool:
        """True for the process that writes the job's summary and report (rank 0)."""
        return self.rank == 0

    def shard(self, items: Sequence[Item]) -> list[Item]:
        """This process's items: item i of ``items`` for i mod world = rank (none twice)."""
        return list(items[self.rank :: self.world])

    def gather(self, value: Any) -> list[Any]:
        """Every process's ``value`` (picklable), in rank order; ``[value]`` for one process.

        Called once, by every process, when its share is done.

        Raises:
            PeerFailedError: If another process failed (it reports its own error; this one is
                marked as reported elsewhere) or died before sending its value.
        """
        if self.world == 1:
            return [value]
        self._state["gathered"] = True
        parts = _exchange(("ok", value), self.world)
        failed = [rank for rank, (status, _) in enumerate(parts) if status != "ok"]
        if failed:
            error = PeerFailedError(
                f"process {failed[0]} of {self.world} failed ({parts[failed[0]][1]}); process "
                f"{self.rank} finished its share"
            )
            mark_reported_elsewhere(error)
            raise error
        return [part for _, part in parts]


@contextmanager
def processes(device: torch.device) -> Iterator[Processes]:
    """The job's processes for the duration of the body (a process group under ``torchrun``).

    Every path ends:

    - the processes wait for each other to start at most
      ``mrs_numerics._launch.rendezvous_timeout`` seconds
      (``MRS_NUMERICS_RENDEZVOUS_TIMEOUT``, default 60), then
      ``mrs_numerics._launch.RendezvousTimeoutError`` says what was waited
      for and what to do (a stale ``WORLD_SIZE`` with no peer no longer waits 30 minutes);
    - a body that raises on one process still joins the final
      [`gather`][mrs_numerics.restoration.processes.Processes.gather], with a failure mark, so
      the others finish their share and end with
      ``mrs_numerics._launch.PeerFailedError`` marked as reported elsewhere
      (the failing process reports its own error, once); an error every process raised alike
      (a refused input) is marked so on every process but 0;
    - a peer that dies ends the gather at once with one
      ``mrs_numerics._launch.PeerFailedError``, never a collective's traceback.

    Args:
        device: The device asked for. Under ``torchrun`` a CUDA device without an index
            becomes ``cuda:LOCAL_RANK`` (one GPU per process). The group itself is gloo: it
            only gathers small Python objects at the end, on the CPU.

    Raises:
        ValueError: If the ``torchrun`` environment is malformed, or a CUDA process has no GPU
            of its local rank.
        RendezvousTimeoutError: If the other processes did not start in time.
    """
    world, rank, local = environment_world()
    if world == 1:
        yield Processes(0, 1, device)
        return
    note_joining()
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
    started = not dist.is_initialized()
    if started:
        _join(rank, world)
    group = Processes(rank, world, device)
    try:
        yield group
    except BaseException as error:
        if not group._state.get("gathered"):
            _leave_failed(group, error)
        raise
    finally:
        if started:
            dist.destroy_process_group()


def _join(rank: int, world: int) -> None:
    """Meet the other processes (at most the rendezvous timeout) and start the gloo group."""
    timeout = rendezvous_timeout()
    waited = timedelta(seconds=timeout)
    address = f"{os.environ.get('MASTER_ADDR', '?')}:{os.environ.get('MASTER_PORT', '?')}"
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    try:
        if rank != 0 or os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True":
            _wait_for_store(timeout)
        store, _, _ = next(dist.rendezvous("env://", rank=rank, world_size=world, timeout=waited))
        store.set(f"mrs_numerics/{attempt}/joined/{rank}", "1")
        store.wait([f"mrs_numerics/{attempt}/joined/{r}" for r in range(world)], waited)
        dist.init_process_group("gloo", store=store, rank=rank, world_size=world, timeout=waited)
    except ValueError as error:  # torch's env:// rendezvous: a missing MASTER_ADDR/PORT
        raise ValueError(
            f"WORLD_SIZE={world} asks for {world} processes but {_first_line(error)}: start them "
            "with torchrun --nproc-per-node K …, or unset WORLD_SIZE (and RANK, MASTER_ADDR, "
            "MASTER_PORT) to run one process"
        ) from None
    except (RuntimeError, OSError) as error:  # the store's or the group's timeout or refusal
        raise RendezvousTimeoutError(
            f"process {rank} of {world} waited {timeout:g} s for the other processes of the "
            f"job at {address} (WORLD_SIZE={world}) and they did not all start "
            f"({_first_line(error)}): start all {world} processes (torchrun --nproc-per-node "
            f"{world} …), or unset WORLD_SIZE, RANK, MASTER_ADDR and MASTER_PORT left by an "
            f"earlier launch to run one process; {RENDEZVOUS_TIMEOUT_VARIABLE} sets the wait "
            "in seconds"
        ) from None
    _set_gather_timeout()


def _wait_for_store(timeout: float) -> None:
    """Wait until the job's store at MASTER_ADDR:MASTER_PORT accepts a connection.

    torch's own client retries just as long but prints native stack frames for every failed
    try; a plain socket says nothing until the one error line.

    Raises:
        ConnectionError: If nothing accepted within ``timeout`` seconds.
    """
    address = os.environ.get("MASTER_ADDR")
    port = os.environ.get("MASTER_PORT", "")
    if address is None or not port.isdigit():
        return  # torch's rendezvous names the missing variable
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        try:
            with socket.create_connection((address, int(port)), timeout=max(0.05, min(1, left))):
                return
        except OSError as error:
            if time.monotonic() + 0.1 >= deadline:
                raise ConnectionError(f"nothing accepted a connection: {error}") from None
            time.sleep(0.1)


def _set_gather_timeout() -> None:
    """The group's collectives wait up to the gather timeout (a slow peer's share is fine)."""
    _set_pg_timeout(timedelta(seconds=gather_timeout()))


def _exchange(item: Any, world: int) -> list[Any]:
    """Every process's ``item``, in rank order; a peer that died ends it with one error."""
    gathered: list[Any] = [None] * world
    try:
        dist.all_gather_object(gathered, item)
    except (RuntimeError, OSError) as error:
        raise PeerFailedError(
            "another process of the job ended without sending its results (it was killed or "
            f"crashed; see its own output): {_first_line(error)}"
        ) from None
    return gathered


def _leave_failed(group: Processes, error: BaseException) -> None:
    """Join the peers' final gather with this process's failure, so that they can finish.

    If every process failed alike (the same refused input), the error is marked as reported
    by process 0, and only process 0 prints it.
    """
    group._state["gathered"] = True
    try:
        parts = _exchange(("failed", _failure_text(error)), group.world)
    except PeerFailedError:
        return
    first = parts[0]
    if group.rank != 0 and all(part == first for part in parts):
        mark_reported_elsewhere(error)


def _failure_text(error: BaseException) -> str:
    """What failed, in one line: the error's type and first line."""
    return f"{type(error).__name__}: {_first_line(error)}"


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


__all__ = ["Processes", "environment_world", "processes"]
