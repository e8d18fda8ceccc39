"""``mrs-numerics degrade``: a restoration task's synthetic degradation of images."""

from __future__ import annotations

import argparse
from pathlib import Path

from mrs_numerics.cli.common import say, task_help


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``degrade`` to the command's subparsers."""
    parser = subparsers.add_parser(
        "degrade",
        help="apply a restoration task's synthetic degradation to an image or a folder",
        description=(
            "Degrade clean PNG/JPEG images as the restoration tasks define it. IN is a file"
            " (OUT: a file, or an existing folder) or a folder (OUT: a folder, created if"
            " needed; outputs are PNG). Image i (sorted by name) uses seed + i. Outputs are"
            " 8-bit files, so the unclipped denoise noise is clipped to [0, 1] on writing."
        ),
    )
    parser.add_argument("input", metavar="IN", help="an image file or a folder of images")
    parser.add_argument("-o", "--out", required=True, metavar="OUT", help="output file or folder")
    parser.add_argument("--task", required=True, help=task_help())
    parser.add_argument("--seed", type=int, default=0, help="seed of the first image (default 0)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Degrade each image with its own seed."""
    # imported here: torch and the imaging stack load only when a subcommand runs
    import torch

    from mrs_numerics.imaging.degradations import degrade, task
    from mrs_numerics.imaging.files import read_image, write_image
    from mrs_numerics.restoration.paths import image_pairs

    task(args.task)
    pairs = image_pairs(Path(args.input), Path(args.out))
    for index, (source, target) in enumerate(pairs):
        generator = torch.Generator().manual_seed(args.seed + index)
        write_image(target, degrade(args.task, read_image(source), generator))
        say(f"{source} -> {target}")
    say(f"degraded {len(pairs)} image(s) for task {args.task!r}")
    return 0
