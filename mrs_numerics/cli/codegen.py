"""``mrs-numerics codegen``: a user schedule from θ(t), or the package's kernels regenerated."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import mrs_numerics
from mrs_numerics.cli.common import add_output_options, say
from mrs_numerics.schedules.user import (
    SCHEDULE_DIR_VARIABLE,
    check_user_schedule_free,
    user_schedule_dir,
    write_user_schedule,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``codegen`` to the command's subparsers."""
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
    add_output_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Generate a user schedule, or regenerate the package's kernels."""
    if args.theta is None:
        given = [
            flag for flag, value in _user_flags(args) if value is not None and value is not False
        ]
        if given:
            raise ValueError(f"{', '.join(given)} only apply together with --theta")
        # imported here: the SymPy derivations take seconds to import, and only codegen needs them
        from derivations import codegen

        return int(codegen.main([]) or 0)
    if args.name is None:
        raise ValueError("--theta needs --name NAME")
    out = Path(args.out).expanduser() if args.out else user_schedule_dir()
    _refuse_package_folder(out)
    if args.name.isidentifier():
        check_user_schedule_free(out, args.name, args.overwrite)
    # imported here: the SymPy derivations take seconds to import, and only codegen needs them
    from derivations.schedule_codegen import derive_user_schedule, user_schedule_files

    t_max = 1.0 if args.t_max is None else args.t_max
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        derived = derive_user_schedule(args.theta, args.name, t_max)
    for warning in caught:
        sys.stderr.write(f"mrs-numerics codegen: warning: {warning.message}\n")
    written = write_user_schedule(out, user_schedule_files(derived), args.overwrite)
    _report_user_schedule(derived, written, out)
    return 0


def _user_flags(args: argparse.Namespace) -> list[tuple[str, object]]:
    return [
        ("--name", args.name),
        ("--t-max", args.t_max),
        ("--out", args.out),
        ("--overwrite", args.overwrite),
    ]


def _refuse_package_folder(out: Path) -> None:
    package = Path(mrs_numerics.__file__).resolve().parent
    target = out.resolve()
    if target == package or package in target.parents:
        raise ValueError(
            f"refusing to write a user schedule inside the package ({package});"
            " choose another --out"
        )


def _report_user_schedule(derived, written: list[Path], out: Path) -> None:
    schedule = derived.schedule
    name = schedule.name
    say(f"wrote user schedule {name!r}: θ(t) = {schedule.theta}, t ∈ [0, {float(schedule.t_max)}]")
    for path in written:
        say(f"  {path}")
    theta_found = "yes" if derived.Theta is not None else "no"
    inverse_found = "yes" if derived.inverse is not None else "no"
    say(f"closed-form Θ(t): {theta_found} ({derived.Theta_note})")
    say(f"closed-form t(λ): {inverse_found} ({derived.inverse_note})")
    say("use it:")
    if out.resolve() != user_schedule_dir().resolve():
        say(f"  export {SCHEDULE_DIR_VARIABLE}={out}")
    say("  from mrs_numerics.schedules import load_user_schedule")
    say(f'  schedule = load_user_schedule("{name}")  # or backend="numpy"')
    say("  schedule.alpha(t), schedule.sigma(t), schedule.lam(t), schedule.t_of_lam(lam)")
