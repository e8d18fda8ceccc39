"""What every subcommand shares: output, the error policy, and small argument helpers."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager

EXIT_USAGE = 2
"""Exit status for bad input (argparse's convention)."""

EXIT_FAILED = 1
"""Exit status for a run that failed on valid input: the model returned NaN/Inf or the sampler
diverged (``NonFiniteError`` and ``DivergenceError`` of ``mrs_numerics.solvers.engine``)."""

EXPECTED_ERRORS = (ValueError, TypeError, LookupError, OSError, ImportError)
"""Failures reported as one line on stderr with status EXIT_USAGE, without a traceback."""

FAILED_RUNS = (FloatingPointError,)
"""Failures of a run reported as one line on stderr with status EXIT_FAILED (the engine's
``NonFiniteError`` and ``DivergenceError`` derive from ``FloatingPointError``; matched by base
class so that parsing the command line loads no torch)."""


DEFAULT_THREADS = 1
"""CPU threads of torch when ``--threads`` is not given: one, on every machine and under any load.

A fixed number, so that the same command line gives the same thread count, and hence the same
bits (the reproducibility rule), whatever the machine's core count or load. One, because a
single thread has no partner to wait for. With torch's own default (one thread per core), an
OpenMP thread that loses its core to another busy process stalls every parallel region while
its partners spin-wait for it. Beside one busy process on 2 cores a short ``benchmark quality
--quick`` ran 7× slower (up to 9×) on 2 threads and 2× slower on one
(``benchmarks/results/threads_cpu.md``). ``--threads N`` asks for more.
"""


def thread_count(text: str | None) -> int:
    """The ``--threads`` value as a positive int; ``DEFAULT_THREADS`` when not given.

    Args:
        text: The option's text as typed, or None when the option was not given.

    Raises:
        ValueError: ``text`` is not a positive integer (one line, reported with status
            ``EXIT_USAGE``).
    """
    if text is None:
        return DEFAULT_THREADS
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"--threads must be a positive integer, got {text!r}")
    return value


def add_threads_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--threads N`` to every subcommand of ``parser`` that runs something.

    Called once, by [`build_parser`][mrs_numerics.cli.build_parser], after every subcommand
    has registered: the option goes to each parser without subcommands of its own (e.g.
    ``benchmark quality``, not ``benchmark``). Its value stays text until
    [`thread_count`][mrs_numerics.cli.common.thread_count] checks it, so that a bad value is
    a one-line error and parsing loads no torch.

    Args:
        parser: The command's top-level parser, its subcommands registered.
    """
    groups = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not groups:
        parser.add_argument(
            "--threads",
            metavar="N",
            help=f"CPU threads of torch (default {DEFAULT_THREADS}, whatever the machine and"
            " its load; results are bit-identical only for the same count)",
        )
        return
    for group in groups:
        for subparser in dict.fromkeys(group.choices.values()):
            add_threads_option(subparser)


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run the body with ``torch.set_num_threads(threads)``; the previous count is restored.

    Args:
        threads: The CPU thread count (``torch.set_num_threads``; it also sets OpenMP's and
            MKL's, overriding ``OMP_NUM_THREADS`` and ``MKL_NUM_THREADS``).
    """
    # imported here: parsing the command line loads no torch
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


GRID_CHOICES = ("tuned", "lambda", "time", "karras")
"""The ``--grid`` names (``restoration.restore.GRIDS``, restated so parsers load no torch)."""


def add_grid_option(parser, help_text: str) -> None:
    """Add ``--grid GRID`` to ``parser``: a name of ``GRID_CHOICES`` or a grid file's path.

    The value is passed through as typed; the library checks it (an unknown name or a file
    that is not a grid file is one line).
    """
    parser.add_argument(
        "--grid",
        metavar="GRID",
        help=help_text + f" (GRID: {', '.join(GRID_CHOICES)} or FILE.json)",
    )


def say(text: str = "") -> None:
    """Write one line to stdout (the commands' only output channel besides errors)."""
    sys.stdout.write(text + "\n")


def task_help() -> str:
    """One line per restoration task, for --task help texts."""
    # imported here: the degradations pull in PIL; this runs only when a parser is built
    from mrs_numerics.imaging.degradations import TASKS

    return "; ".join(f"{name}: {task.description}" for name, task in TASKS.items())


def list_option(flag: str, text: str | None, kind: type) -> tuple | None:
    """A comma-separated option as a tuple of ``kind``; None when not given."""
    if text is None:
        return None
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise ValueError(f"{flag} is empty")
    try:
        return tuple(kind(item) for item in items)
    except ValueError:
        raise ValueError(f"{flag} must be a comma-separated list of {kind.__name__}s") from None
