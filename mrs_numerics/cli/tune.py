"""``mrs-numerics tune``: fit step grids of a network for a sampler, write a grid file."""

from __future__ import annotations

import argparse

from mrs_numerics.cli.common import add_checkpoint_options, list_option, say

DEFAULT_CROPS = 8
"""``--crops`` default (``tuning.calibration.DEFAULT_CROPS``, restated so parsers load no torch)."""
DEFAULT_CROP = 64
"""``--crop`` default (``tuning.calibration.DEFAULT_CROP``)."""
DEFAULT_TEACHER_STEPS = 200
"""``--teacher-steps`` default (``tuning.teacher.DEFAULT_TEACHER_STEPS``)."""
STARTING_GRIDS = 8
"""Starting grids every fit runs (``tuning.fit``: its warps and the time and Karras grids)."""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``tune`` to the command's subparsers."""
    parser = subparsers.add_parser(
        "tune",
        help="fit few-step grids of a network to its converged output",
        description=(
            "Fit the interior step times of a sampler so that its output in NFE network calls"
            " matches the converged output of the same equation, then score each grid on"
            " held-out inputs beside the uniform-λ grid. A shipped network (--model) is"
            " calibrated on random crops of the training photos, degraded by its task, and"
            " checked on the held-out photos; a checkpoint (--checkpoint, --config) on your own"
            " degraded images (--calibration DIR, cropped at random to --crop), checked on"
            " --heldout DIR or a --heldout-fraction of them (no ground truth is needed: the"
            " target is the network's own converged output). Every argument, input folder and"
            " the output are checked before the first network call. Writes a JSON grid file"
            " (see mrs_numerics.models.tuned_grids) for restore --grid FILE."
        ),
    )
    parser.add_argument("--model", metavar="NAME", help="a shipped network (see: models)")
    parser.add_argument("--sampler", metavar="ID", help="a solver id (mrs_numerics.solvers)")
    parser.add_argument(
        "--variant", metavar="NAME", help="a named few-step variant (solvers.presets)"
    )
    parser.add_argument(
        "--start",
        choices=("singlestep", "warmup"),
        help="MR Sampler start (default: the sampler's or variant's)",
    )
    parser.add_argument(
        "--lower-order-final",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="lower the last steps' order (MR Sampler option; default: the sampler's)",
    )
    parser.add_argument(
        "--nfe",
        required=True,
        metavar="N[,N...]",
        help="budgets of network calls, e.g. 3,4,5: one grid each, with the most steps the"
        " sampler runs within the budget",
    )
    parser.add_argument(
        "--crops",
        type=int,
        default=DEFAULT_CROPS,
        help=f"calibration crops (default {DEFAULT_CROPS})",
    )
    parser.add_argument(
        "--crop",
        type=int,
        default=DEFAULT_CROP,
        help=f"side of the calibration crops in pixels (default {DEFAULT_CROP})",
    )
    parser.add_argument(
        "--heldout-crop", type=int, help="side of the held-out centre crops (default: --crop)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the crops, priors and noise (default 0)"
    )
    parser.add_argument(
        "--teacher-steps",
        type=int,
        default=DEFAULT_TEACHER_STEPS,
        help=f"the teacher's fine uniform-λ steps, even and more than any grid's steps"
        f" (default {DEFAULT_TEACHER_STEPS})",
    )
    parser.add_argument(
        "--max-evaluations",
        type=int,
        help="runs of the calibration batch per fit (default 30 + 10(N−1) for a grid of N"
        f" steps; the {STARTING_GRIDS} starting grids are always run)",
    )
    parser.add_argument(
        "--calibration",
        metavar="DIR",
        help="your own degraded PNG/JPEG images to calibrate on (needed with --checkpoint;"
        " default for --model: its training photos, degraded by its task); with it, give"
        " --heldout, --heldout-fraction or --no-heldout",
    )
    parser.add_argument(
        "--heldout", metavar="DIR", help="your own degraded images for the held-out check"
    )
    parser.add_argument(
        "--heldout-fraction",
        type=float,
        metavar="F",
        help="hold out this fraction of the --calibration images (seeded split) instead",
    )
    parser.add_argument("--no-heldout", action="store_true", help="skip the held-out check")
    parser.add_argument(
        "-o", "--out", required=True, metavar="FILE", help="grid file to write (.json)"
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace FILE if it exists (its grids are lost)"
    )
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the other grids of an existing grid file FILE: a grid for the same network,"
        " schedule, sampler with options and NFE is replaced, the others are kept",
    )
    add_checkpoint_options(parser, "--model")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Check the whole request, tune, report one line per budget, write the grid file."""
    # imported here: the networks, SciPy and the samplers load only when a subcommand runs
    from mrs_numerics.tuning.output import save_grids
    from mrs_numerics.tuning.request import check_tuning
    from mrs_numerics.tuning.shipped import tune_grids

    nfe = list_option("--nfe", args.nfe, int)
    assert nfe is not None  # --nfe is required
    request = check_tuning(
        nfe=nfe,
        model=args.model,
        checkpoint=args.checkpoint,
        config=args.config,
        arch=args.arch,
        round_time=args.round_time,
        text_context=args.text_context,
        image_context=args.image_context,
        sampler=args.sampler,
        variant=args.variant,
        start=args.start,
        lower_order_final=args.lower_order_final,
        crops=args.crops,
        crop=args.crop,
        heldout_crop=args.heldout_crop,
        seed=args.seed,
        teacher_steps=args.teacher_steps,
        max_evaluations=args.max_evaluations,
        calibration=args.calibration,
        heldout=args.heldout,
        heldout_fraction=args.heldout_fraction,
        no_heldout=args.no_heldout,
        out=args.out,
        overwrite=args.overwrite,
        merge=args.merge,
    )
    model, prediction, schedule, identity, model_for = _network(args)
    grids = tune_grids(
        model,
        prediction,
        schedule,
        request,
        identity,
        progress=not args.no_progress,
        log=say,
        model_for=model_for,
    )
    assert request.out is not None  # -o is required
    written = save_grids(request.out, grids, overwrite=request.overwrite, merge=request.merge)
    note = ""
    if request.merge:
        note = f" (merged: {written['replaced']} replaced, {written['kept']} kept)"
    say(f"wrote {written['written']} grid(s) to {written['path']}{note}")
    return 0


def _network(args: argparse.Namespace):
    """(model, prediction, schedule, identity, per-image model or None) of the network asked."""
    # imported here: the networks load only when a subcommand runs
    from mrs_numerics import schedules
    from mrs_numerics.models.network_identity import checkpoint_identity, shipped_network_identity
    from mrs_numerics.models.registry import load_model
    from mrs_numerics.restoration.checkpoint import checkpoint_network

    if args.checkpoint is None:
        net, info = load_model(args.model)
        schedule = schedules.get(info.schedule, max_sigma=info.max_sigma)
        return net, info.prediction, schedule, shipped_network_identity(args.model), None
    loaded = checkpoint_network(
        args.checkpoint,
        args.config,
        args.arch,
        args.round_time,
        args.text_context,
        args.image_context,
    )
    model_for = loaded.model_for if loaded.context_folders else None
    identity = checkpoint_identity(args.checkpoint, loaded.sha256)
    return loaded.model, loaded.prediction, loaded.schedule, identity, model_for
