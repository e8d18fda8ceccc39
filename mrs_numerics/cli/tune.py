"""``mrs-numerics tune``: fit step grids of a shipped network for a sampler, write a grid file."""

from __future__ import annotations

import argparse
from pathlib import Path

from mrs_numerics.cli.common import list_option, say


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``tune`` to the command's subparsers."""
    parser = subparsers.add_parser(
        "tune",
        help="fit few-step grids of a shipped network to its converged output",
        description=(
            "Fit the interior step times of a sampler so that its output in NFE network calls"
            " matches the converged output of the same equation (calibration: random crops of"
            " the training photos only), then score each grid on the held-out photos beside"
            " the uniform-λ grid. Writes a JSON grid file (see mrs_numerics.models.tuned_grids)."
        ),
    )
    parser.add_argument("--model", required=True, metavar="NAME", help="a shipped network")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--sampler", metavar="ID", help="a solver id (mrs_numerics.solvers)")
    which.add_argument(
        "--variant", metavar="NAME", help="a named few-step variant (solvers.presets)"
    )
    parser.add_argument("--start", choices=("singlestep", "warmup"), help="MR Sampler start")
    parser.add_argument(
        "--lower-order-final",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="lower the last steps' order (MR Sampler option; default: the sampler's)",
    )
    parser.add_argument(
        "--nfe", required=True, metavar="N[,N...]", help="budgets of network calls, e.g. 3,4,5"
    )
    parser.add_argument("--crops", type=int, default=8, help="calibration crops (default 8)")
    parser.add_argument("--crop", type=int, default=64, help="calibration crop side (default 64)")
    parser.add_argument(
        "--heldout-crop", type=int, help="side of the held-out centre crops (default: --crop)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of crops and priors")
    parser.add_argument("--teacher-steps", type=int, default=200, help="teacher's fine steps")
    parser.add_argument("--max-evaluations", type=int, help="runs per fit (default 40 + 25(N−1))")
    parser.add_argument("--no-heldout", action="store_true", help="skip the held-out check")
    parser.add_argument("-o", "--out", required=True, metavar="FILE", help="grid file to write")
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the other grids of an existing FILE (same variant/sampler and NFE replaced)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Tune, report one line per budget, write the grid file."""
    # imported here: the networks, SciPy and the samplers load only when a subcommand runs
    from mrs_numerics.models.registry import available_model
    from mrs_numerics.models.tuned_grids import read_grid_file, write_grid_file
    from mrs_numerics.solvers.presets import few_step_variant
    from mrs_numerics.tuning.shipped import tune_network

    available_model(args.model)
    nfes = list_option("--nfe", args.nfe, int)
    assert nfes is not None
    if args.variant is not None:
        variant = few_step_variant(args.variant)
        solver_id, options, name = variant.solver_id, dict(variant.options), variant.name
    else:
        solver_id, options, name = args.sampler, {}, ""
    if args.start is not None:
        options["start"] = args.start
    if args.lower_order_final is not None:
        options["lower_order_final"] = args.lower_order_final
    out = Path(args.out)
    grids = tune_network(
        args.model,
        solver_id,
        options,
        nfes,
        variant=name,
        crops=args.crops,
        crop=args.crop,
        seed=args.seed,
        teacher_steps=args.teacher_steps,
        max_evaluations=args.max_evaluations,
        heldout=not args.no_heldout,
        heldout_crop=args.heldout_crop,
        progress=not args.no_progress,
        log=say,
    )
    kept = read_grid_file(out) if args.merge and out.exists() else []  # read late: runs may overlap
    new = {(g.variant, g.solver_id, g.nfe) for g in grids}
    kept = [g for g in kept if (g.variant, g.solver_id, g.nfe) not in new]
    write_grid_file(out, kept + grids, overwrite=args.merge)
    say(f"wrote {len(grids)} grid(s) to {out}" + (f" ({len(kept)} kept)" if kept else ""))
    return 0
