"""The ``mrs-numerics`` command line: one module per subcommand, no domain logic here.

Each subcommand module has ``register(subparsers)`` (its arguments) and ``run(args)`` (calling
the library); [`SUBCOMMANDS`][mrs_numerics.cli.SUBCOMMANDS] lists them in ``--help`` order.
Expected failures (bad input, missing files) print one line on stderr and exit with status 2,
without a traceback; a run that fails on valid input (NaN/Inf model output, a diverged sampler)
prints one line and exits with status 1. Every subcommand takes ``--threads N``: torch's CPU
threads for the run, [`DEFAULT_THREADS`][mrs_numerics.cli.common.DEFAULT_THREADS] when not given.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from types import ModuleType

from mrs_numerics.cli import benchmark, codegen, degrade, models, restore, train, tune, verify
from mrs_numerics.cli.common import (
    EXIT_FAILED,
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
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        with torch_threads(thread_count(args.threads)):
            return args.run(args)
    except EXPECTED_ERRORS as error:
        sys.stderr.write(f"mrs-numerics {args.command}: error: {error}\n")
        return EXIT_USAGE
    except FAILED_RUNS as error:
        sys.stderr.write(f"mrs-numerics {args.command}: failed: {error}\n")
        return EXIT_FAILED


__all__ = ["EXIT_FAILED", "EXIT_USAGE", "SUBCOMMANDS", "build_parser", "main"]
