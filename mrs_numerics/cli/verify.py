"""``mrs-numerics verify``: every solver's declared order, measured (the main job)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mrs_numerics._files import check_output, check_output_folder, write_text
from mrs_numerics.cli.common import add_output_options, say


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``verify`` to the command's subparsers."""
    parser = subparsers.add_parser(
        "verify",
        help="measure every solver's convergence order on exact Gaussian-mixture problems",
        description=(
            "The main job: fitted log-log slopes on step ladders (float64, non-uniform λ grids)"
            " against exact oracles and high-precision references, for every solver's declared"
            " order (ODE global, SDE strong and weak), plus model-prediction conversion checks."
            " Prints a table and writes orders.json, report.md and PNG plots."
        ),
    )
    level = parser.add_mutually_exclusive_group()
    level.add_argument("--quick", action="store_true", help="short ladders (a smoke run)")
    level.add_argument("--full", action="store_true", help="every problem, longer ladders")
    parser.add_argument("--out", metavar="DIR", default="verify-report", help="report folder")
    parser.add_argument(
        "--problem",
        action="append",
        metavar="NAME",
        help=(
            "built-in problem (repeatable), or 'real': ODE orders on the PF-ODE of a shipped"
            " network (float64, a 16² crop, scipy reference; not in the default run)"
        ),
    )
    parser.add_argument(
        "--model",
        metavar="NAME",
        help=(
            "shipped network of --problem real (default denoise-data; also a shipped network"
            " in IR-SDE's format, such as denoise-irsde)"
        ),
    )
    parser.add_argument(
        "--schedule", default="cosine", help="built-in or user schedule name (default: cosine)"
    )
    parser.add_argument("--solver", action="append", metavar="ID", help="only these solver ids")
    parser.add_argument("--json", metavar="PATH", help="also write the results JSON here")
    add_output_options(
        parser,
        help_text="replace an existing --json file (default: refuse, before the run); the"
        " report folder's own files are always replaced",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Measure every order; exit 1 when one fails."""
    # imported here: the verification stack (scipy, matplotlib, the networks) is slow to load
    from mrs_numerics import schedules
    from mrs_numerics.solvers.registry import solver_info
    from mrs_numerics.verification.driver import run_verification
    from mrs_numerics.verification.oracles import builtin_problems
    from mrs_numerics.verification.real_network import PROBLEM as REAL_PROBLEM
    from mrs_numerics.verification.real_network import check_real_model
    from mrs_numerics.verification.report import results_json, table, write_report

    level = "quick" if args.quick else "full" if args.full else "default"
    check_output_folder(args.out, what="report folder")
    if args.json:
        check_output(args.json, overwrite=args.overwrite, what="JSON file")
    known = [*builtin_problems(), REAL_PROBLEM]
    for name in args.problem or ():
        if name not in known:
            raise ValueError(f"unknown problem {name!r}; allowed: {', '.join(known)}")
    if args.model is not None:
        if REAL_PROBLEM not in (args.problem or ()):
            raise ValueError(f"--model applies to --problem {REAL_PROBLEM} only")
        check_real_model(args.model)
    for solver_id in args.solver or ():
        solver_info(solver_id)
    schedule = schedules.get(args.schedule)
    results, conversions = run_verification(
        level, args.problem, schedule, args.solver, not args.no_progress, args.model
    )
    header = f"level: {level}; schedule: {schedule!r}"
    if REAL_PROBLEM in (args.problem or ()):
        header += f"; {REAL_PROBLEM}: the shipped network's own schedule"
    out = Path(args.out)
    written = write_report(results, out, {"conversions": conversions}, header)
    say(table(results))
    failed_conversions = [c for c in conversions if not c["passed"]]
    if conversions:
        say(
            f"conversions: {len(conversions) - len(failed_conversions)}/{len(conversions)} model "
            "predictions reproduce the data-prediction run"
        )
    if args.json:
        document = json.dumps(results_json(results), indent=2)
        write_text(args.json, document, overwrite=args.overwrite, what="JSON file")
        written.append(Path(args.json))
    say("wrote " + ", ".join(str(p) for p in written))
    failed = [r for r in results if not r.passed]
    return 1 if failed or failed_conversions else 0
