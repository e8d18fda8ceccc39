"""``mrs-numerics restore``: restore images with a shipped network and any sampler."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from mrs_numerics.cli.common import EXIT_FAILED, add_grid_option, say, task_help


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``restore`` to the command's subparsers."""
    parser = subparsers.add_parser(
        "restore",
        help="restore degraded images with a shipped network and any sampler",
        description=(
            "Restore PNG/JPEG images of any size (reflect-padded to the network's multiple)"
            " with a shipped MR network and a sampler under a budget of network calls."
            " IN is a file (OUT: a file, or an existing folder) or a folder (OUT: a folder,"
            " created if needed; outputs are PNG). Each image draws its noise from its own"
            " generator, seeded from --seed and its path relative to IN, so an output does not"
            " depend on the other files; images of one size are restored --batch-size at a"
            " time. Under torchrun --nproc-per-node K the images are dealt to the processes by"
            " sorted index (none twice), each writing its own."
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
        "step grid: tuned (shipped for a variant, network and NFE), a spacing, or a grid file"
        " written by tune (its entry for --sampler with the most calls within --nfe; without"
        " --sampler, the sampler it was tuned for); default: tuned where one ships, else lambda",
    )
    parser.add_argument(
        "--nfe", type=int, default=10, help="network calls per image, converted to steps"
    )
    parser.add_argument("--model", metavar="NAME", help="a shipped network (see: models)")
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the run (default 0); image NAME draws from a generator seeded with a"
        " hash of (seed, NAME)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=1,
        metavar="B",
        help="images of one size restored together (default 1); the same outputs up to"
        " float32 round-off, bit-identical with 1",
    )
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
    checkpoint = parser.add_argument_group(
        "an IR-SDE or DA-CLIP checkpoint (instead of --task/--model)",
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
        " folder with one per image (FOLDER/<image path relative to IN>.pt)",
    )
    checkpoint.add_argument(
        "--image-context",
        metavar="FILE",
        help="DA-CLIP: the image embedding, a tensor [512] saved with torch.save, or a folder"
        " with one per image",
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
    """Restore every image with its own seed; under torchrun, this process's share of them."""
    # imported here: the networks, imaging and samplers load only when a subcommand runs
    from mrs_numerics.imaging.degradations import task
    from mrs_numerics.restoration.folders import image_jobs, restore_jobs
    from mrs_numerics.restoration.paths import image_pairs
    from mrs_numerics.restoration.processes import processes
    from mrs_numerics.restoration.restore import check_request, choose_sampling, resolve_device
    from mrs_numerics.restoration.tiling import parse_memory

    check_network_options(args)
    if args.task is not None:
        task(args.task)
    check_request(args.sampler, args.nfe, args.grid)
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be ≥ 1 image, got {args.batch_size}")
    if args.tile_overlap is not None and args.tile_overlap < 0:
        raise ValueError(f"--tile-overlap must be ≥ 0 pixels, got {args.tile_overlap}")
    tiling = {
        "tile": tile_side(args.tile),
        "overlap": args.tile_overlap,
        "max_memory": None if args.max_memory is None else parse_memory(args.max_memory),
    }
    source = Path(args.input)
    pairs = image_pairs(source, Path(args.out))
    network = chosen_network(args)
    chosen = choose_sampling(
        network.schedule,
        network.prediction,
        args.nfe,
        args.sampler,
        args.grid,
        network.tuned,
        network.identity,
    )
    with processes(resolve_device(args.device)) as group:
        args.device = group.device
        progress = not args.quiet and sys.stderr.isatty() and group.main
        every_job = image_jobs(pairs, source, args.seed)
        check_contexts(network, every_job)
        jobs = group.shard(every_job)
        run_batch = partial(restore_batch, args, network, tiling, progress)
        tiled, failed = False, 0
        for outcome in restore_jobs(jobs, run_batch, args.batch_size, progress):
            if outcome.failure:
                failed += 1
                _line(f"mrs-numerics restore: failed: {_failure(outcome)}", progress, True)
                continue
            if outcome.warning:
                warning = f"{outcome.job.source}: {outcome.warning}"
                _line(f"mrs-numerics restore: warning: {warning}", progress, True)
            tiled |= outcome.tiles > 1
            where = f" ({outcome.tiles} tiles)" if outcome.tiles > 1 else ""
            _line(f"{outcome.job.source} -> {outcome.job.target}{where}", progress)
        gathered = group.gather((failed, tiled))
    failures = sum(count for count, _ in gathered)
    tiled = any(flag for _, flag in gathered)
    if group.main:
        processes_note = f" in {group.world} processes" if group.world > 1 else ""
        failed_note = f"; {failures} failed" if failures else ""
        say(
            f"restored {len(pairs) - failures} of {len(pairs)} image(s){processes_note} with"
            f" {network.name} ({network.label}, {network.prediction} prediction) and"
            f" {chosen.description}:"
            f" {chosen.steps} steps, {chosen.nfe} network calls each"
            + (" (per tile)" if tiled else "")
            + failed_note
        )
    return EXIT_FAILED if failures else 0


@dataclass
class Network:
    """The network a restore runs, as the library calls it.

    Attributes:
        name: The shipped network's name or the checkpoint's file name.
        label: What it restores, for the summary line (its task, or its architecture).
        model: ``model(x, t, mu)``.
        prediction: What ``model`` returns.
        schedule: The schedule it was trained on.
        tuned: The shipped network's name, whose tuned grids apply ("" for a checkpoint).
        checkpoint: The loaded checkpoint
            ([`CheckpointNetwork`][mrs_numerics.restoration.checkpoint.CheckpointNetwork]), or
            None for a shipped network.
        identity: ``{"name", "sha256"}``, compared with a tuned grid's.
    """

    name: str
    label: str
    model: Any
    prediction: str
    schedule: Any
    tuned: str
    checkpoint: Any = None
    identity: Any = None

    def model_for(self, names: list[str]):
        """The model of a batch of images (a checkpoint's per-image contexts, if any)."""
        return self.model if self.checkpoint is None else self.checkpoint.model_for(names)


def check_network_options(args: argparse.Namespace) -> None:
    """Refuse a network asked for twice or not at all, before anything loads."""
    if args.checkpoint is None:
        stray = [
            flag
            for flag, value in (
                ("--arch", args.arch),
                ("--config", args.config),
                ("--round-time", args.round_time or None),
                ("--text-context", args.text_context),
                ("--image-context", args.image_context),
            )
            if value is not None
        ]
        if stray:
            raise ValueError(f"{', '.join(stray)} need --checkpoint FILE")
        if args.task is None and args.model is None:
            raise ValueError(
                "give --task (to use its shipped network), --model NAME, or --checkpoint FILE"
                " --config FILE (an IR-SDE/DA-CLIP network)"
            )
        return
    if args.task is not None or args.model is not None:
        raise ValueError("--checkpoint replaces --task/--model: give one network")
    if args.config is None:
        raise ValueError(
            "--checkpoint needs --config FILE: the option YAML of its training run (its"
            " network_G and sde sections), or a JSON of the same"
        )


def chosen_network(args: argparse.Namespace) -> Network:
    """The shipped network of --task/--model, or the network of --checkpoint."""
    # imported here: the networks, imaging and samplers load only when a subcommand runs
    from mrs_numerics import schedules
    from mrs_numerics.models.network_identity import checkpoint_identity, network_identity
    from mrs_numerics.models.registry import shipped_network
    from mrs_numerics.restoration.checkpoint import checkpoint_network

    if args.checkpoint is not None:
        loaded = checkpoint_network(
            args.checkpoint,
            args.config,
            args.arch,
            args.round_time,
            args.text_context,
            args.image_context,
        )
        label = f"{loaded.arch} checkpoint"
        model, prediction = loaded.model, loaded.prediction
        identity = checkpoint_identity(args.checkpoint, getattr(loaded, "sha256", None))
        return Network(loaded.name, label, model, prediction, loaded.schedule, "", loaded, identity)
    name, net, info = shipped_network(args.task, args.model)
    schedule = schedules.get(info.schedule, max_sigma=info.max_sigma)
    return Network(
        name, info.task, net, info.prediction, schedule, name, None, network_identity(name)
    )


def check_contexts(network: Network, jobs: list) -> None:
    """Refuse a run whose per-image context files are missing, before any image is restored."""
    if network.checkpoint is None:
        return
    missing = network.checkpoint.missing_contexts([job.name for job in jobs])
    if missing:
        shown = ", ".join(map(str, missing[:3])) + (" …" if len(missing) > 3 else "")
        raise ValueError(
            f"{len(missing)} per-image context file(s) missing ({shown}): a context folder needs"
            " FOLDER/<image path relative to IN, suffix .pt> for every image"
        )


def restore_batch(
    args: argparse.Namespace,
    network: Network,
    tiling: dict,
    progress: bool,
    images,
    jobs: list,
):
    """(restored images, tiles per image) of one batch; image i is ``jobs[i]``, drawing from its
    own seed (and, for a checkpoint with per-image contexts, using its own contexts)."""
    # imported here: the networks, imaging and samplers load only when a subcommand runs
    from mrs_numerics.restoration.restore import plan_tiles, restore

    model = network.model_for([job.name for job in jobs])
    tiles = plan_tiles(images.shape, model, **tiling)
    restored = restore(
        images,
        model,
        network.prediction,
        network.schedule,
        sampler=args.sampler,
        nfe=args.nfe,
        seed=[job.seed for job in jobs],
        device=args.device,
        grid=args.grid,
        model_name=network.tuned,
        network=network.identity,
        progress=progress,
        allow_divergence=args.allow_divergence,
        **tiling,
    )
    return restored, 1 if tiles is None else len(tiles)


def _failure(outcome) -> str:
    """A failed image's line: its file and the error, with the command's option named."""
    message = outcome.failure.replace("pass allow_divergence=True", "--allow-divergence writes it")
    return f"{outcome.job.source}: {message}"


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
