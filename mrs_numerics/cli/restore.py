"""``mrs-numerics restore``: restore images with a shipped network and any sampler."""

from __future__ import annotations

import argparse
import shlex
import sys
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from mrs_numerics._errors import command_line_message
from mrs_numerics.cli.common import (
    EXIT_FAILED,
    add_checkpoint_options,
    add_grid_option,
    add_output_options,
    say,
    task_help,
)

MANIFEST_NAME = "mrs-numerics-manifest.json"
"""``restoration.manifest.MANIFEST_NAME``, restated so that building the parser loads no torch."""


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
            " Before the network loads, every option, every input's header and every output"
            " is checked: an existing output is refused unless --overwrite (replace) or"
            " --skip-existing (keep it and restore the rest: a resume); two inputs with one"
            " output name are refused. Images are written to a temporary name and renamed. A"
            " folder run records each image (input, output, seed, status) and the run's"
            f" settings in OUT/{MANIFEST_NAME}, which a resume reads. Exit status: 0 all"
            " written (or skipped), 1 some image failed, 2 bad input (nothing restored),"
            " 130 interrupted by Ctrl-C (143 by SIGTERM), with a line saying what was written."
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
        help="restore in overlapping tiles of N×N pixels (rounded down to a multiple of the"
        " network's size multiple, and up to one multiple if smaller); 0 or none: no tiling"
        " (default, unless --max-memory asks for tiles)",
    )
    parser.add_argument(
        "--tile-overlap",
        metavar="N",
        type=int,
        help="pixels neighbouring tiles share at least (rounded up to the network's size"
        " multiple; default: a quarter of the tile)",
    )
    parser.add_argument(
        "--max-memory",
        metavar="SIZE",
        help="memory budget of one run, i.e. of a batch of --batch-size images (per process"
        " under torchrun), e.g. 4GB, 512MB or 2GiB, against the package's estimate of the"
        " peak (not a measured limit); without --tile the largest tile whose estimate fits is"
        " used (none if the whole batch fits); with --tile it only warns when a tile exceeds"
        " it",
    )
    add_checkpoint_options(parser, "--task/--model")
    add_output_options(parser, folder=True)
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
    """Restore every image with its own seed; under torchrun, this process's share of them.

    Every argument, input header and output path is checked before the network loads, and the
    outputs against the folder's manifest before the first network call.
    """
    # imported here: the networks, imaging and samplers load only when a subcommand runs
    from mrs_numerics.imaging.degradations import task
    from mrs_numerics.restoration import folders
    from mrs_numerics.restoration.paths import create_output_folders, image_pairs
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
    out = Path(args.out) if source.is_dir() else None
    every_job = folders.image_jobs(pairs, source, args.seed)
    previous = None if out is None or args.overwrite else _previous_manifest(out)
    folders.plan_outputs(every_job, out, args.overwrite, args.skip_existing, previous)
    folders.check_inputs(every_job)
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
    check_contexts(network, every_job)
    settings = manifest_settings(args, network, chosen, tiling)
    plan = folders.plan_outputs(
        every_job, out, args.overwrite, args.skip_existing, previous, settings
    )
    device = resolve_device(args.device)
    with processes(device) as group:
        args.device = group.device
        progress = not args.quiet and sys.stderr.isatty() and group.main
        create_output_folders(pairs)
        jobs = group.shard(plan.run)
        manifest = None
        if out is not None and group.main:
            manifest = _new_manifest(args, out, settings, previous, group.world)
        share = folders.OutputPlan(jobs, plan.skipped if group.main else [])
        run_batch = partial(restore_batch, args, network, tiling, progress)
        with folders.FolderRun(share, out, manifest) as record:
            if group.main and record.skipped_line():
                _line(f"mrs-numerics restore: {record.skipped_line()}", progress, True)
            mine = []
            outcomes = folders.restore_jobs(
                jobs, run_batch, args.batch_size, progress, args.overwrite
            )
            for outcome in outcomes:
                record.record(outcome)
                mine.append(outcome)
                _outcome_line(outcome, progress, args.flag_of)
            gathered = group.gather([] if group.main else mine)
            if group.main:  # the other processes' images, for the manifest
                for outcome in (outcome for others in gathered[1:] for outcome in others):
                    record.record(outcome)
        failed = sum(1 for outcome in mine if outcome.failure)
        counts = group.gather((failed, any(outcome.tiles > 1 for outcome in mine)))
    failures = sum(count for count, _ in counts)
    tiled = any(flag for _, flag in counts)
    if group.main:
        processes_note = f" in {group.world} processes" if group.world > 1 else ""
        failed_note = f"; {failures} failed" if failures else ""
        skipped = len(plan.skipped)
        skipped_note = f"; {skipped} skipped (they exist)" if skipped else ""
        say(
            f"restored {len(plan.run) - failures} of {len(plan.run)} image(s){processes_note}"
            f" with {network.name} ({network.label}, {network.prediction} prediction) and"
            f" {chosen.description}:"
            f" {chosen.steps} steps, {chosen.nfe} network calls each"
            + (" (per tile)" if tiled else "")
            + failed_note
            + skipped_note
            + (f"; manifest: {manifest.path}" if manifest is not None else "")
        )
    return EXIT_FAILED if failures else 0


def _previous_manifest(out: Path):
    """The manifest a previous run left in ``out``, or None."""
    # imported here: the manifest pulls in the library only when a subcommand runs
    from mrs_numerics.restoration.manifest import MANIFEST_NAME, Manifest

    return Manifest.read(out / MANIFEST_NAME)


def _new_manifest(args: argparse.Namespace, out: Path, settings: dict, previous, world: int):
    """This run's manifest in ``out`` (a resume's keeps the previous entries)."""
    # imported here: the manifest pulls in the library only when a subcommand runs
    from mrs_numerics.restoration.manifest import MANIFEST_NAME, Manifest, run_record

    command = shlex.join(["mrs-numerics", *getattr(args, "argv", [])])
    record = run_record(command, str(args.device), args.batch_size, world)
    return Manifest.for_run(out / MANIFEST_NAME, settings, record, previous)


def manifest_settings(args: argparse.Namespace, network: Network, chosen, tiling: dict) -> dict:
    """The run's settings as its manifest records them (see ``restoration.manifest``)."""
    # imported here: the manifest pulls in the library only when a subcommand runs
    from mrs_numerics.restoration import manifest

    weights = args.checkpoint if network.checkpoint is not None else None
    if weights is None and network.tuned:
        weights = manifest.shipped_weights(network.tuned)
    identity = manifest.network_identity(network.name, network.label, network.prediction, weights)
    if network.checkpoint is not None:
        identity["round_time"] = bool(args.round_time)
        identity["contexts"] = {"text": args.text_context, "image": args.image_context}
    record = manifest.tuned_grid_record(chosen, network.tuned, args.nfe)
    return manifest.run_settings(chosen, identity, tiling, args.seed, record)


def _outcome_line(outcome, progress: bool, flag_of) -> None:
    """The line of one finished image: its paths, a warning, or why it failed."""
    if outcome.failure:
        _line(f"mrs-numerics restore: failed: {_failure(outcome, flag_of)}", progress, True)
        return
    if outcome.warning:
        warning = f"{outcome.job.source}: {outcome.warning}"
        _line(f"mrs-numerics restore: warning: {warning}", progress, True)
    where = f" ({outcome.tiles} tiles)" if outcome.tiles > 1 else ""
    _line(f"{outcome.job.source} -> {outcome.job.target}{where}", progress)


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
    """Refuse a run whose per-image contexts are not all usable, before any image is restored
    (the library's rules: ``CheckpointNetwork.check_contexts``)."""
    if network.checkpoint is not None:
        network.checkpoint.check_contexts([job.name for job in jobs])


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


def _failure(outcome, flag_of) -> str:
    """A failed image's line: its file and the error, with the command's flags as advice."""
    error = outcome.error
    message = outcome.failure if error is None else command_line_message(error, flag_of)
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
