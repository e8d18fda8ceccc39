"""The ``mrs-numerics`` command line: one subcommand per task, each in its own small section.

A subcommand is a pair (``_add_NAME`` registering its arguments, ``_run_NAME`` doing the work);
:data:`SUBCOMMANDS` lists the registrars. Expected failures (bad input, missing files) print one
line on stderr and exit with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from mrs_numerics.user_schedules import SCHEDULE_DIR_VARIABLE, user_schedule_dir

EXIT_USAGE = 2
"""Exit status for bad input (argparse's convention)."""

_EXPECTED_ERRORS = (ValueError, LookupError, OSError, ImportError)


def _say(text: str = "") -> None:
    sys.stdout.write(text + "\n")


# ---------------------------------------------------------------------------------------------
# codegen
# ---------------------------------------------------------------------------------------------


def _add_codegen(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "codegen",
        help="generate a user schedule from θ(t), or regenerate the package's kernels",
        description=(
            "With --theta: derive a continuous MR schedule from θ(t) (SymPy closed forms where"
            " they exist, documented numerics where not) and write its torch and numpy modules"
            " to the user schedule folder. Without --theta: regenerate mrs_numerics/_generated."
        ),
    )
    parser.add_argument("--theta", metavar="EXPR", help="θ(t) as a SymPy expression in t")
    parser.add_argument("--name", help="schedule name (a Python identifier)")
    parser.add_argument(
        "--t-max", type=float, default=None, help="end of the time interval [0, t_max] (default 1)"
    )
    parser.add_argument(
        "--out", metavar="DIR", help=f"output folder (default: {SCHEDULE_DIR_VARIABLE} or cache)"
    )
    parser.set_defaults(run=_run_codegen)


def _run_codegen(args: argparse.Namespace) -> int:
    if args.theta is None:
        given = [flag for flag, value in _user_flags(args) if value is not None]
        if given:
            raise ValueError(f"{', '.join(given)} only apply together with --theta")
        from derivations import codegen  # imported lazily: SymPy derivations are heavy

        return int(codegen.main([]) or 0)
    if args.name is None:
        raise ValueError("--theta needs --name NAME")
    from derivations.emit import write_modules
    from derivations.schedule_codegen import derive_user_schedule, user_schedule_files

    t_max = 1.0 if args.t_max is None else args.t_max
    derived = derive_user_schedule(args.theta, args.name, t_max)
    out = Path(args.out).expanduser() if args.out else user_schedule_dir()
    _refuse_package_folder(out)
    written = write_modules(out, user_schedule_files(derived))
    _report_user_schedule(derived, written, out)
    return 0


def _user_flags(args: argparse.Namespace) -> list[tuple[str, object]]:
    return [("--name", args.name), ("--t-max", args.t_max), ("--out", args.out)]


def _refuse_package_folder(out: Path) -> None:
    package = Path(__file__).resolve().parent
    target = out.resolve()
    if target == package or package in target.parents:
        raise ValueError(
            f"refusing to write a user schedule inside the package ({package});"
            " choose another --out"
        )


def _report_user_schedule(derived, written: list[Path], out: Path) -> None:
    schedule = derived.schedule
    name = schedule.name
    _say(f"wrote user schedule {name!r}: θ(t) = {schedule.theta}, t ∈ [0, {float(schedule.t_max)}]")
    for path in written:
        _say(f"  {path}")
    theta_found = "yes" if derived.Theta is not None else "no"
    inverse_found = "yes" if derived.inverse is not None else "no"
    _say(f"closed-form Θ(t): {theta_found} ({derived.Theta_note})")
    _say(f"closed-form t(λ): {inverse_found} ({derived.inverse_note})")
    _say("use it:")
    if out.resolve() != user_schedule_dir().resolve():
        _say(f"  export {SCHEDULE_DIR_VARIABLE}={out}")
    _say("  from mrs_numerics.user_schedules import load_user_schedule")
    _say(f'  schedule = load_user_schedule("{name}")  # or backend="numpy"')
    _say("  schedule.alpha(t), schedule.sigma(t), schedule.lam(t), schedule.t_of_lam(lam)")


# ---------------------------------------------------------------------------------------------
# verify
# ---------------------------------------------------------------------------------------------


def _add_verify(subparsers: argparse._SubParsersAction) -> None:
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
        "--problem", action="append", metavar="NAME", help="built-in problem (repeatable)"
    )
    parser.add_argument(
        "--schedule", default="cosine", help="built-in or user schedule name (default: cosine)"
    )
    parser.add_argument("--solver", action="append", metavar="ID", help="only these solver ids")
    parser.add_argument("--json", metavar="PATH", help="also write the results JSON here")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(run=_run_verify)


def _run_verify(args: argparse.Namespace) -> int:
    import json

    from mrs_numerics import schedules
    from mrs_numerics.oracles import builtin_problems
    from mrs_numerics.report import results_json, table, write_report
    from mrs_numerics.solvers import solver_info
    from mrs_numerics.verify import run_verification

    level = "quick" if args.quick else "full" if args.full else "default"
    known = builtin_problems()
    for name in args.problem or ():
        if name not in known:
            raise ValueError(f"unknown problem {name!r}; built-in problems: {', '.join(known)}")
    for solver_id in args.solver or ():
        solver_info(solver_id)
    schedule = schedules.get(args.schedule)
    results, conversions = run_verification(
        level, args.problem, schedule, args.solver, progress=not args.no_progress
    )
    header = f"level: {level}; schedule: {schedule!r}"
    out = Path(args.out)
    written = write_report(results, out, {"conversions": conversions}, header)
    _say(table(results))
    failed_conversions = [c for c in conversions if not c["passed"]]
    _say(
        f"conversions: {len(conversions) - len(failed_conversions)}/{len(conversions)} model "
        "predictions reproduce the data-prediction run"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(results_json(results), indent=2))
        written.append(Path(args.json))
    _say("wrote " + ", ".join(str(p) for p in written))
    failed = [r for r in results if not r.passed]
    return 1 if failed or failed_conversions else 0


# ---------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------

SUBCOMMANDS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (_add_codegen, _add_verify)
"""Registrars of the subcommands, in the order ``--help`` lists them."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="mrs-numerics",
        description="Derived, code-generated and verified samplers for Mean-Reverting diffusion.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for register in SUBCOMMANDS:
        register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``mrs-numerics``; returns the exit status (argparse exits itself on usage errors)."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except _EXPECTED_ERRORS as error:
        sys.stderr.write(f"mrs-numerics {args.command}: error: {error}\n")
        return EXIT_USAGE
