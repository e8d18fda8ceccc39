"""``mrs-numerics degrade``: a restoration task's synthetic degradation of images."""

from __future__ import annotations

import argparse
from pathlib import Path

from mrs_numerics.cli.common import add_output_options, say, task_help


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
            " Every input and output is checked first: an existing output is refused unless"
            " --overwrite or --skip-existing; images are written to a temporary name and"
            " renamed. Exit status: 0 done, 2 bad input (nothing written), 130 interrupted by"
            " Ctrl-C (143 by SIGTERM), with a line saying what was written."
        ),
    )
    parser.add_argument("input", metavar="IN", help="an image file or a folder of images")
    parser.add_argument("-o", "--out", required=True, metavar="OUT", help="output file or folder")
    parser.add_argument("--task", required=True, help=task_help())
    parser.add_argument("--seed", type=int, default=0, help="seed of the first image (default 0)")
    add_output_options(parser, folder=True)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Degrade each image with its own seed."""
    # imported here: torch and the imaging stack load only when a subcommand runs
    import torch

    from mrs_numerics.imaging.degradations import degrade, task
    from mrs_numerics.imaging.files import read_image, write_image
    from mrs_numerics.restoration import folders
    from mrs_numerics.restoration.paths import create_output_folders, image_pairs

    task(args.task)
    source = Path(args.input)
    pairs = image_pairs(source, Path(args.out))
    jobs = [
        folders.ImageJob(path, target, path.name, args.seed + index)
        for index, (path, target) in enumerate(pairs)
    ]
    plan = folders.plan_outputs(jobs, None, args.overwrite, args.skip_existing)
    folders.check_inputs(jobs)
    create_output_folders(pairs)
    with folders.FolderRun(plan, verb="degraded") as record:
        if record.skipped_line():
            say(record.skipped_line())
        for job in plan.run:
            generator = torch.Generator().manual_seed(job.seed)
            image = degrade(args.task, read_image(job.source), generator)
            write_image(job.target, image, overwrite=args.overwrite)
            record.record(folders.Outcome(job))
            say(f"{job.source} -> {job.target}")
    skipped = f"; {len(plan.skipped)} skipped (they exist)" if plan.skipped else ""
    say(f"degraded {len(plan.run)} image(s) for task {args.task!r}{skipped}")
    return 0
