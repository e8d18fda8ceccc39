"""``mrs-numerics grids``: what a grid file (or a shipped network's grids) holds."""

from __future__ import annotations

import argparse

from mrs_numerics.cli.common import say


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``grids`` to the command's subparsers."""
    parser = subparsers.add_parser(
        "grids",
        help="list the tuned grids of a grid file or a shipped network",
        description=(
            "List every entry of a grid file written by tune (or the shipped grids of a"
            " network): its sampler and options, NFE, network, schedule, calibration and"
            " fidelity (calibration, held-out, and the uniform-λ grid's). A malformed file is"
            " refused with one line naming the entry and the field."
        ),
    )
    parser.add_argument(
        "source", metavar="FILE", nargs="+", help="a grid file, or a shipped network's name"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Print the entries of each source."""
    # imported here: the grid files' parser loads torch and the samplers
    from mrs_numerics.models.tuned_grids import listing

    for source in args.source:
        for line in listing(source):
            say(line)
    return 0
