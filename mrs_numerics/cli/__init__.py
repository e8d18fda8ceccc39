"""The ``mrs-numerics`` command line: one module per subcommand, no domain logic here.

Each subcommand module has ``register(subparsers)`` (its arguments) and ``run(args)`` (calling
the library); [`SUBCOMMANDS`][mrs_numerics.cli.SUBCOMMANDS] lists them in ``--help`` order.
Every subcommand takes ``--threads N``: torch's CPU threads for the run,
[`DEFAULT_THREADS`][mrs_numerics.cli.common.DEFAULT_THREADS] when not given.

Exit statuses (each failure is one line on stderr, never a traceback):

- **0**: everything asked was done (for a folder run: every image written, or skipped by
  ``--skip-existing``).
- **1** ([`EXIT_FAILED`][mrs_numerics.cli.common.EXIT_FAILED]): a run failed on valid input
  (NaN/Inf model output, a diverged sampler, ``verify`` measuring a failed order); for a folder
  run, some images failed (one ``failed:`` line each) and the others were written.
- **2** ([`EXIT_USAGE`][mrs_numerics.cli.common.EXIT_USAGE]): bad input (a bad option, a
  missing or unreadable file, an output that exists without ``--overwrite``); refused before
  the long work, so nothing was written.
- **130** ([`EXIT_INTERRUPTED`][mrs_numerics.cli.common.EXIT_INTERRUPTED]): stopped by Ctrl-C;
  128 + the signal's number for a signal (SIGTERM: 143). The line says what was written and
  what was not; no partial file is left under an output's name.
Under ``torchrun`` only ``restore`` and ``benchmark`` are sharded; every other command runs on
process 0 alone (``mrs_numerics._launch.single_process``).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import warnings
from collections.abc import Iterator, Sequence
from functools import partial
from types import ModuleType

from mrs_numerics._errors import InputError, command_line_message
from mrs_numerics._interrupts import as_interrupted, signals_interrupt
from mrs_numerics._launch import LauncherError, reported_elsewhere, single_process
from mrs_numerics.cli import (
    benchmark,
    codegen,
    degrade,
    grids,
    models,
    restore,
    train,
    tune,
    verify,
)
from mrs_numerics.cli.common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    EXPECTED_ERRORS,
    FAILED_RUNS,
    add_threads_option,
    thread_count,
    torch_threads,
)

SUBCOMMANDS: tuple[ModuleType, ...] = (
    codegen,
    verify,
    train,
    models,
    grids,
    degrade,
    tune,
    restore,
    benchmark,
)
"""The subcommand modules, in the order ``--help`` lists them."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="mrs-numerics",
        description="Derived, code-generated and verified samplers for Mean-Reverting diffusion.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for subcommand in SUBCOMMANDS:
        subcommand.register(subparsers)
    add_threads_option(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``mrs-numerics``; returns the exit status (argparse exits itself on usage errors)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = argv
    args.flag_of = partial(flag_of, parser, args)
    command = args.command
    try:
        if (note := single_process(command)) is not None:
            sys.stderr.write(f"mrs-numerics {command}: {note}\n")
            return 0
        with (
            signals_interrupt(),
            _one_line_warnings(command),
            torch_threads(thread_count(args.threads)),
        ):
            return args.run(args)
    except KeyboardInterrupt as error:
        stopped = as_interrupted(error)
        said = stopped.for_command_line(partial(flag_of, parser, args))
        detail = f": {said}" if said else ""
        sys.stderr.write(
            f"mrs-numerics {args.command}: interrupted ({stopped.signal_name}){detail}\n"
        )
        return stopped.exit_status
    except InputError as error:
        message = error.for_command_line(partial(flag_of, parser, args))
        return _report(command, "error", message, error, EXIT_USAGE)
    except LauncherError as error:
        return _report(command, "failed", str(error), error, error.status)
    except EXPECTED_ERRORS as error:
        return _report(command, "error", str(error), error, EXIT_USAGE)
    except FAILED_RUNS as error:
        message = command_line_message(error, args.flag_of)
        return _report(command, "failed", message, error, EXIT_FAILED)


@contextlib.contextmanager
def _one_line_warnings(command: str) -> Iterator[None]:
    """Within the body, a warning prints as one line, ``mrs-numerics COMMAND: warning: …``.

    Python's own format (file, line and source line of the warning) points into the package,
    which says nothing to a command-line user; the warning's class is kept in brackets so that
    it can still be looked up (e.g. ``InstabilityWarning`` subclasses, ``GridTransferWarning``).
    Only the text changes (``warnings.formatwarning``): filters (``-W``, ``PYTHONWARNINGS``)
    and recorders (``warnings.catch_warnings(record=True)``, ``pytest.warns``) work as before.
    """

    def one_line(message, category, filename, lineno, line=None) -> str:
        return f"mrs-numerics {command}: warning: {message} [{category.__name__}]\n"

    previous = warnings.formatwarning
    warnings.formatwarning = one_line
    try:
        yield
    finally:
        warnings.formatwarning = previous


def _report(command: str, kind: str, message: str, error: BaseException, status: int) -> int:
    """Print one line for ``error`` (unless another process of the job prints it); ``status``."""
    if not reported_elsewhere(error):
        sys.stderr.write(f"mrs-numerics {command}: {kind}: {message}\n")
    return status


def flag_of(parser: argparse.ArgumentParser, args: argparse.Namespace, dest: str) -> str | None:
    """The flag (longest option string) of the parameter ``dest`` in the subcommand ``args`` ran.

    Library errors name the keyword argument that fixes them
    (``mrs_numerics._errors.InputError``); a flag's ``dest`` is that keyword, so
    the command line can give its own advice. None where the subcommand has no such flag.
    """
    while True:
        for action in parser._actions:
            if action.dest == dest and action.option_strings:
                return max(action.option_strings, key=len)
        groups = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not groups:
            return None
        parser = groups[0].choices[getattr(args, groups[0].dest)]


__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_USAGE",
    "SUBCOMMANDS",
    "build_parser",
    "flag_of",
    "main",
]
