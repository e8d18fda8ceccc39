"""``mrs-numerics benchmark quality``: quality and solver fidelity of the samplers against NFE."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mrs_numerics._files import check_output, check_output_folder, write_text
from mrs_numerics.cli.common import (
    add_grid_option,
    add_output_options,
    list_option,
    say,
    task_help,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``benchmark`` (and its ``quality`` benchmark) to the command's subparsers."""
    parser = subparsers.add_parser(
        "benchmark", help="restoration benchmarks of the samplers on a shipped network"
    )
    benchmarks = parser.add_subparsers(dest="benchmark", metavar="BENCHMARK", required=True)
    quality = benchmarks.add_parser(
        "quality",
        help="PSNR/SSIM, seconds and solver fidelity of every sampler against NFE",
        description=(
            "Restore centre crops of the held-out photos with every sampler at every NFE"
            " budget for several seeds: PSNR and SSIM to the ground truth, wall seconds per"
            " image, and solver fidelity (PSNR to the converged solution of the same equation"
            " from the same start and Brownian path: one PF-ODE reference for the ODE"
            " samplers, one fine coupled SDE solution for the SDE samplers). Writes"
            " quality.md, quality.json, quality.png and grid.png into --out. --quick: 48²"
            " crops, 2 seeds, NFE ≤ 100; explicit options override it. Under torchrun"
            " --nproc-per-node K the seeds are dealt to the processes (seed s to process"
            " s mod K) and the results gathered once; process 0 writes the report."
        ),
    )
    quality.add_argument("--task", help="the task; picks its shipped network. " + task_help())
    quality.add_argument("--model", metavar="NAME", help="a shipped network (see: models)")
    quality.add_argument("--quick", action="store_true", help="small crops, fewer seeds and NFE")
    quality.add_argument("--seeds", type=int, help="number of seeds (0 … N − 1)")
    quality.add_argument("--crop", type=int, help="centre-crop side in pixels")
    quality.add_argument("--nfe", metavar="LIST", help="NFE budgets, e.g. 3,5,10,20")
    quality.add_argument(
        "--samplers",
        metavar="LIST",
        help="comma-separated solver ids or few-step variants, each optionally NAME@GRID"
        " (e.g. ms3@tuned,ms3@lambda,ms3@grids.json,euler-ode); default: every solver id and"
        " the default few-step variant (restore's default: on the network's tuned grid where"
        " one ships for the budget)",
    )
    add_grid_option(
        quality,
        "grid of entries without @GRID (default: each sampler's own spacing; tuned: the"
        " network's shipped tuned grids; a grid file written by tune: its grid for each"
        " sampler and budget; budgets without one skipped)",
    )
    quality.add_argument(
        "--reference-steps",
        type=int,
        metavar="N",
        help="steps of the PF-ODE reference and least steps of the SDE reference"
        " (even; default max(1000, 4 × largest NFE))",
    )
    quality.add_argument(
        "--sde-refinement",
        type=int,
        metavar="R",
        help="refinement of the merged SDE grids for the SDE reference (1 or even; default 2)",
    )
    quality.add_argument("--out", metavar="DIR", default="quality-report", help="output folder")
    quality.add_argument("--json", metavar="PATH", help="also write the results JSON here")
    add_output_options(
        quality,
        help_text="replace an existing --json file (default: refuse, before the run); the"
        " report folder's own files are always replaced",
    )
    quality.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    quality.add_argument("--no-progress", action="store_true", help="no progress bar")
    quality.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run the quality benchmark and write its report."""
    # imported here: the benchmark loads the networks, imaging, samplers and matplotlib
    from mrs_numerics import schedules
    from mrs_numerics.imaging.degradations import task
    from mrs_numerics.models.registry import shipped_network
    from mrs_numerics.restoration.processes import processes
    from mrs_numerics.restoration.quality.options import QualityOptions, with_overrides
    from mrs_numerics.restoration.quality.report import markdown_table, write_report
    from mrs_numerics.restoration.quality.run import run_quality
    from mrs_numerics.restoration.restore import resolve_device

    if args.task is not None:
        task(args.task)
    check_output_folder(args.out, what="report folder")
    if args.json:
        check_output(args.json, overwrite=args.overwrite, what="JSON file")
    base = QualityOptions.quick() if args.quick else QualityOptions()
    options = with_overrides(
        base,
        task=args.task,
        seeds=args.seeds,
        crop=args.crop,
        nfes=list_option("--nfe", args.nfe, int),
        samplers=list_option("--samplers", args.samplers, str),
        grid=args.grid,
        device=args.device,
        reference_steps=args.reference_steps,
        sde_refinement=args.sde_refinement,
    ).validate()
    # --model alone names the task; with neither, the options' default task picks the network
    task_name = args.task if (args.task or args.model) else options.task
    name, net, info = shipped_network(task_name, args.model)
    options = with_overrides(options, task=info.task)
    schedule = schedules.get(info.schedule, max_sigma=info.max_sigma)
    with processes(resolve_device(options.device)) as group:
        progress = not args.no_progress and group.main
        result = run_quality(net, info.prediction, schedule, options, name, progress, group)
    if not group.main:
        return 0
    written = write_report(result, Path(args.out))
    if args.json:
        document = json.dumps(result.as_json(), indent=2) + "\n"
        write_text(args.json, document, overwrite=args.overwrite, what="JSON file")
        written.append(Path(args.json))
    say(markdown_table(result))
    say(f"took {result.metadata['wall_seconds']:.0f} s; wrote " + ", ".join(map(str, written)))
    return 0
