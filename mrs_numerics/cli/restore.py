"""``mrs-numerics restore``: restore images with a shipped network and any sampler."""

from __future__ import annotations

import argparse
from pathlib import Path

from mrs_numerics.cli.common import add_grid_option, say, task_help


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``restore`` to the command's subparsers."""
    parser = subparsers.add_parser(
        "restore",
        help="restore degraded images with a shipped network and any sampler",
        description=(
            "Restore PNG/JPEG images of any size (reflect-padded to the network's multiple)"
            " with a shipped MR network and a sampler under a budget of network calls."
            " IN is a file (OUT: a file, or an existing folder) or a folder (OUT: a folder,"
            " created if needed; outputs are PNG). Image i (sorted by name) uses seed + i."
        ),
    )
    parser.add_argument("input", metavar="IN", help="an image file or a folder of images")
    parser.add_argument("-o", "--out", required=True, metavar="OUT", help="output file or folder")
    parser.add_argument("--task", help="the task; picks its shipped network. " + task_help())
    parser.add_argument(
        "--sampler",
        metavar="ID",
        help="a solver id (mrs_numerics.solvers) or a few-step variant (default: the default"
        " variant, see mrs_numerics.solvers.presets)",
    )
    add_grid_option(
        parser,
        "step grid: tuned (shipped for a variant, network and NFE) or a spacing; default:"
        " tuned where one ships, else lambda",
    )
    parser.add_argument(
        "--nfe", type=int, default=10, help="network calls per image, converted to steps"
    )
    parser.add_argument("--model", metavar="NAME", help="a shipped network (see: models)")
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first image (default 0)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Restore each image with its own seed."""
    # imported here: the networks, imaging and samplers load only when a subcommand runs
    from mrs_numerics import schedules
    from mrs_numerics.imaging.degradations import task
    from mrs_numerics.imaging.files import read_image, write_image
    from mrs_numerics.models.registry import shipped_network
    from mrs_numerics.restoration.paths import image_pairs
    from mrs_numerics.restoration.restore import (
        check_request,
        choose_sampling,
        resolve_device,
        restore,
    )

    if args.task is None and args.model is None:
        raise ValueError("give --task (to use its shipped network) or --model NAME")
    if args.task is not None:
        task(args.task)
    check_request(args.sampler, args.nfe, args.grid)
    device = resolve_device(args.device)
    pairs = image_pairs(Path(args.input), Path(args.out))
    name, net, info = shipped_network(args.task, args.model)
    schedule = schedules.get(info.schedule, max_sigma=info.max_sigma)
    chosen = choose_sampling(schedule, info.prediction, args.nfe, args.sampler, args.grid, name)
    for index, (source, target) in enumerate(pairs):
        restored = restore(
            read_image(source),
            net,
            info.prediction,
            schedule,
            sampler=args.sampler,
            nfe=args.nfe,
            seed=args.seed + index,
            device=device,
            grid=args.grid,
            model_name=name,
        )
        write_image(target, restored)
        say(f"{source} -> {target}")
    say(
        f"restored {len(pairs)} image(s) with {name} ({info.task}, {info.prediction} prediction)"
        f" and {chosen.description}: {chosen.steps} steps, {chosen.nfe} network calls each"
    )
    return 0
