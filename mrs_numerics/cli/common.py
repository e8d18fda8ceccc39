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
diverged (``NonFiniteError`` and ``DivergenceError`` of ``mrs_numerics.solvers.engine``); for a
folder run, some image failed (the others were written)."""

EXIT_INTERRUPTED = 130
"""Exit status for a run stopped by Ctrl-C: 128 + SIGINT. A signal gives 128 + its number
(SIGTERM: 143), see ``mrs_numerics._interrupts.Interrupted.exit_status``."""

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


def add_output_options(
    parser: argparse.ArgumentParser,
    folder: bool = False,
    help_text: str = "replace outputs that exist (default: refuse, before any work)",
) -> None:
    """Add ``--overwrite`` (dest ``overwrite``, the library keyword) and, for commands that
    write many files, ``--skip-existing`` (dest ``skip_existing``)."""
    choice = parser.add_mutually_exclusive_group()
    choice.add_argument("--overwrite", action="store_true", help=help_text)
    if folder:
        choice.add_argument(
            "--skip-existing",
            dest="skip_existing",
            action="store_true",
            help="keep outputs that exist and do the rest (a resume); says what it skipped",
        )


def add_checkpoint_options(parser: argparse.ArgumentParser, instead: str) -> None:
    """Add the IR-SDE/DA-CLIP checkpoint group (``--checkpoint``, ``--arch``, ``--config``,
    ``--round-time``, ``--text-context``, ``--image-context``) to ``parser``.

    Args:
        parser: A subcommand's parser (``restore``, ``tune``).
        instead: The flags the checkpoint replaces, for the group's title (e.g. ``--model``).
    """
    checkpoint = parser.add_argument_group(
        f"an IR-SDE or DA-CLIP checkpoint (instead of {instead})",
        "A .pth state dict saved by the IR-SDE or DA-CLIP code and the option YAML of its run"
        " (network_G.setting and sde are read; or a JSON of the same). The schedule is the one"
        " the training used: IR-SDE's table with α(0) = 1, Λ = max_sigma/255 and T from the"
        " option file; the network predicts noise.",
    )
    checkpoint.add_argument("--checkpoint", metavar="FILE", help="the network's .pth weights")
    checkpoint.add_argument(
        "--arch",
        choices=("irsde", "daclip"),
        help="the architecture (default: from the option file)",
    )
    checkpoint.add_argument("--config", metavar="FILE", help="the option YAML (or JSON)")
    checkpoint.add_argument(
        "--round-time",
        action="store_true",
        help="pass integer training indices to the network (default: the sampler's fractional"
        " times, unrounded, as the official MR Sampler code does)",
    )
    checkpoint.add_argument(
        "--text-context",
        metavar="FILE",
        help="DA-CLIP: the degradation embedding, a tensor [512] saved with torch.save, or a"
        " folder with one per image (FOLDER/<image path relative to its input folder>.pt);"
        " required where the option file sets use_degra_context, refused where it does not",
    )
    checkpoint.add_argument(
        "--image-context",
        metavar="FILE",
        help="DA-CLIP: the image embedding, a tensor [512] saved with torch.save, or a folder"
        " with one per image; required where the option file sets use_image_context, refused"
        " where it does not",
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
