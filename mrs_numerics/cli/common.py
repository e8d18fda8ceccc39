"""What every subcommand shares: output, the error policy, and small argument helpers."""

from __future__ import annotations

import sys

EXIT_USAGE = 2
"""Exit status for bad input (argparse's convention)."""

EXPECTED_ERRORS = (ValueError, LookupError, OSError, ImportError)
"""Failures reported as one line on stderr with status EXIT_USAGE, without a traceback."""


GRID_CHOICES = ("tuned", "lambda", "time", "karras")
"""The ``--grid`` choices (``restoration.restore.GRIDS``, restated so parsers load no torch)."""


def add_grid_option(parser, help_text: str) -> None:
    """Add ``--grid tuned|lambda|time|karras`` to ``parser``."""
    parser.add_argument("--grid", choices=GRID_CHOICES, help=help_text)


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
