"""What a launcher (``torchrun``) left in the environment, and how its processes end (no torch).

Usable from every layer, the command line included, without loading torch:

- ``mrs_numerics._launch.environment_world``: (world, rank, local rank)
  from ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``;
- ``mrs_numerics._launch.rendezvous_timeout``: how long the processes wait
  for each other to start (``MRS_NUMERICS_RENDEZVOUS_TIMEOUT``, seconds, default 60);
- ``mrs_numerics._launch.single_process``: the one rule for the commands that
  are not sharded (only ``restore`` and ``benchmark`` deal work to the processes): under
  ``WORLD_SIZE`` > 1 process 0 runs them and every other process exits at once with one line;
- ``mrs_numerics._launch.LauncherError`` (with its exit status) and the mark
  that an error was already reported by another process, so that a failure shared by every
  process is printed once.
"""

from __future__ import annotations

import os

RENDEZVOUS_TIMEOUT_VARIABLE = "MRS_NUMERICS_RENDEZVOUS_TIMEOUT"
"""Environment variable: seconds the processes of a job wait for each other to start."""
DEFAULT_RENDEZVOUS_TIMEOUT = 60.0
"""Seconds waited for the other processes when the variable is not set."""
GATHER_TIMEOUT_VARIABLE = "MRS_NUMERICS_GATHER_TIMEOUT"
"""Environment variable: seconds a process that finished its share waits for the others."""
DEFAULT_GATHER_TIMEOUT = 24 * 3600.0
"""Seconds waited at the final gather when the variable is not set (a peer that dies ends the
wait at once; this bounds only a peer that hangs)."""
SHARDED_COMMANDS = frozenset({"restore", "benchmark"})
"""The subcommands that deal their work to the processes of a ``torchrun`` job."""
EXIT_USAGE = 2
"""Exit status of a launcher environment that cannot work (as for other bad input)."""
EXIT_FAILED = 1
"""Exit status of a job whose process failed."""


class LauncherError(Exception):
    """A job of several processes that cannot start or could not finish together.

    Attributes:
        status: The exit status the command line returns for it.
    """

    status = EXIT_FAILED


class RendezvousTimeoutError(LauncherError, TimeoutError):
    """The processes named by ``WORLD_SIZE`` did not all start within the rendezvous timeout."""

    status = EXIT_USAGE


class PeerFailedError(LauncherError):
    """Another process of the job failed (it reported its own error) or ended without a word."""


def environment_world() -> tuple[int, int, int]:
    """(world, rank, local rank) as ``torchrun`` sets them; (1, 0, 0) without it.

    Raises:
        ValueError: If ``WORLD_SIZE`` is not an integer, or says several processes but
            ``RANK``/``LOCAL_RANK`` are missing, not integers, or out of range.
    """
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return 1, 0, 0
        rank = int(os.environ["RANK"])
        local = int(os.environ.get("LOCAL_RANK", rank))
    except (KeyError, ValueError):
        raise ValueError(
            "WORLD_SIZE > 1 but RANK/LOCAL_RANK are missing or not integers (or WORLD_SIZE is "
            "not an integer): start several processes with torchrun --nproc-per-node K …, or "
            "unset WORLD_SIZE to run one process"
        ) from None
    if not 0 <= rank < world:
        raise ValueError(f"RANK={rank} is outside 0 … WORLD_SIZE − 1 = {world - 1}")
    return world, rank, local


def seconds_variable(name: str, default: float) -> float:
    """The positive number of seconds in the environment variable ``name``, or ``default``.

    Raises:
        ValueError: If the variable is set to something that is not a positive number.
    """
    text = os.environ.get(name)
    if text is None or not text.strip():
        return default
    try:
        seconds = float(text)
    except ValueError:
        seconds = float("nan")
    if not seconds > 0 or seconds == float("inf"):
        raise ValueError(f"{name}={text!r} must be a positive number of seconds")
    return seconds


def rendezvous_timeout() -> float:
    """Seconds the processes wait for each other to start (``MRS_NUMERICS_RENDEZVOUS_TIMEOUT``)."""
    return seconds_variable(RENDEZVOUS_TIMEOUT_VARIABLE, DEFAULT_RENDEZVOUS_TIMEOUT)


def gather_timeout() -> float:
    """Seconds a finished process waits for the others (``MRS_NUMERICS_GATHER_TIMEOUT``)."""
    return seconds_variable(GATHER_TIMEOUT_VARIABLE, DEFAULT_GATHER_TIMEOUT)


def single_process(command: str) -> str | None:
    """The line a process other than 0 ends with when ``command`` is not sharded, else None.

    A command outside ``mrs_numerics._launch.SHARDED_COMMANDS`` run under
    ``torchrun`` (``WORLD_SIZE`` > 1) runs once, on process 0, with no process group (so it
    never waits for a peer); every other process gets this line and exits with status 0.

    Raises:
        ValueError: If the launcher environment is malformed
            (``mrs_numerics._launch.environment_world``).
    """
    if command in SHARDED_COMMANDS:
        return None
    world, rank, _ = environment_world()
    if world == 1 or rank == 0:
        return None
    return (
        f"{command} is not sharded: it runs once, on process 0 of {world}; process {rank} "
        "exits without running it"
    )


_REPORTED_ELSEWHERE = "_mrs_numerics_reported_elsewhere"
_JOINING: dict[str, bool] = {}


def note_joining() -> None:
    """Record that this process started to join the job's process group."""
    _JOINING["started"] = True


def refused_alike(error: BaseException) -> bool:
    """True for an error raised before this process (not process 0) started to join the group.

    Such an error comes from checking the command's arguments and files, which every process
    of the job does alike on the same command line; process 0 reports it, the others only exit.
    """
    if isinstance(error, LauncherError) or _JOINING.get("started"):
        return False
    try:
        world, rank, _ = environment_world()
    except ValueError:
        return False
    return world > 1 and rank != 0


def mark_reported_elsewhere(error: BaseException) -> None:
    """Mark ``error`` as already reported by another process of the job (print it once)."""
    setattr(error, _REPORTED_ELSEWHERE, True)


def reported_elsewhere(error: BaseException) -> bool:
    """True if another process of the job reports ``error`` (this one only exits)."""
    return bool(getattr(error, _REPORTED_ELSEWHERE, False)) or refused_alike(error)
