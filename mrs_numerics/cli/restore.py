"""``mrs-numerics restore``: restore images with a shipped network and any sampler."""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Callable
from functools import partial
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
            " Large images can be restored in overlapping tiles (--tile, --max-memory), each"
            " tile a whole run with the crop of the image's own noise. Progress bars (images,"
            " tiles, steps, with an ETA) go to stderr when it is a terminal."
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
    parser.add_argument(
        "--tile",
        metavar="N",
        help="restore in overlapping tiles of N×N pixels (rounded down to the network's"
        " multiple); 0 or none: no tiling (default, unless --max-memory asks for tiles)",
    )
    parser.add_argument(
        "--tile-overlap",
        metavar="N",
        type=int,
        help="pixels neighbouring tiles share (default: a quarter of the tile)",
    )
    parser.add_argument(
        "--max-memory",
        metavar="SIZE",
        help="memory budget of one image's run, e.g. 4GB, 512MB or 2GiB; without --tile the"
        " largest tile whose estimated peak fits is used (none if the whole image fits)",
    )
    parser.add_argument(
        "--allow-divergence",
        action="store_true",
        help="write a diverged run's image anyway (with a warning line) instead of failing"
        " with exit status 1",
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="no progress bars (off anyway off a terminal)"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Restore each image with its own seed."""
    # imported here: the networks, imaging and samplers load only when a subcommand runs
    from tqdm.auto import tqdm

    from mrs_numerics import schedules
    from mrs_numerics.imaging.degradations import task
    from mrs_numerics.models.registry import shipped_network
    from mrs_numerics.restoration.paths import image_pairs
    from mrs_numerics.restoration.restore import check_request, choose_sampling, resolve_device
    from mrs_numerics.restoration.tiling import parse_memory

    if args.task is None and args.model is None:
        raise ValueError("give --task (to use its shipped network) or --model NAME")
    if args.task is not None:
        task(args.task)
    check_request(args.sampler, args.nfe, args.grid)
    args.device = resolve_device(args.device)
    if args.tile_overlap is not None and args.tile_overlap < 0:
        raise ValueError(f"--tile-overlap must be ≥ 0 pixels, got {args.tile_overlap}")
    tiling = {
        "tile": tile_side(args.tile),
        "overlap": args.tile_overlap,
        "max_memory": None if args.max_memory is None else parse_memory(args.max_memory),
    }
    pairs = image_pairs(Path(args.input), Path(args.out))
    name, net, info = shipped_network(args.task, args.model)
    network = (name, net, info, schedules.get(info.schedule, max_sigma=info.max_sigma))
    chosen = choose_sampling(network[3], info.prediction, args.nfe, args.sampler, args.grid, name)
    progress = not args.quiet and sys.stderr.isatty()
    tiled = False
    for index, (source, target) in enumerate(
        tqdm(pairs, desc="images", unit="image", disable=not progress)
    ):
        tiles = restore_file(args, source, target, args.seed + index, network, tiling, progress)
        tiled |= tiles > 1
        where = f" ({tiles} tiles)" if tiles > 1 else ""
        _line(f"{source} -> {target}{where}", progress)
    say(
        f"restored {len(pairs)} image(s) with {name} ({info.task}, {info.prediction} prediction)"
        f" and {chosen.description}: {chosen.steps} steps, {chosen.nfe} network calls each"
        + (" (per tile)" if tiled else "")
    )
    return 0


def restore_file(
    args: argparse.Namespace,
    source: Path,
    target: Path,
    seed: int,
    network: tuple,
    tiling: dict,
    progress: bool,
) -> int:
    """Restore one file into ``target``; returns the number of tiles it ran in (1: untiled).

    A failed run's error names the file.
    """
    # imported here: the networks, imaging and samplers load only when a subcommand runs
    from mrs_numerics.imaging.files import read_image, write_image
    from mrs_numerics.restoration.restore import plan_tiles, restore

    name, net, info, schedule = network
    image = read_image(source)
    tiles = plan_tiles(image.shape, net, **tiling)
    run = partial(
        restore,
        image,
        net,
        info.prediction,
        schedule,
        sampler=args.sampler,
        nfe=args.nfe,
        seed=seed,
        device=args.device,
        grid=args.grid,
        model_name=name,
        progress=progress,
        allow_divergence=args.allow_divergence,
        **tiling,
    )
    try:
        restored = restore_reporting_divergence(source, run, progress)
    except FloatingPointError as error:
        message = str(error).replace("pass allow_divergence=True", "--allow-divergence writes it")
        raise type(error)(f"{source}: {message}") from error
    write_image(target, restored)
    return 1 if tiles is None else len(tiles)


def tile_side(text: str | None) -> int | None:
    """``--tile``: a side in pixels; None for "none", "0" or not given."""
    if text is None or text.strip().lower() in ("none", "0"):
        return None
    try:
        side = int(text)
    except ValueError:
        raise ValueError(f"--tile must be a number of pixels or none, got {text!r}") from None
    if side < 0:
        raise ValueError(f"--tile must be ≥ 0 pixels, got {side}")
    return side


def restore_reporting_divergence(source: Path, restore: Callable, progress: bool):
    """``restore()``, with a diverged run's warning as one ``warning:`` line naming ``source``.

    Only reached with ``--allow-divergence`` (otherwise the run raises and the command exits
    with status 1); other warnings pass through unchanged.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        restored = restore()
    for warning in caught:
        if issubclass(warning.category, RuntimeWarning) and "diverged" in str(warning.message):
            _line(f"mrs-numerics restore: warning: {source}: {warning.message}", progress, True)
        else:
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )
    return restored


def _line(text: str, progress: bool, error: bool = False) -> None:
    """A line on stdout (stderr for ``error``), written above the progress bars."""
    stream = sys.stderr if error else sys.stdout
    if progress:
        # imported here: tqdm is only needed while progress bars are shown
        from tqdm.auto import tqdm

        tqdm.write(text, file=stream)
    elif error:
        stream.write(text + "\n")
    else:
        say(text)
