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
        "--problem",
        action="append",
        metavar="NAME",
        help=(
            "built-in problem (repeatable), or 'real': ODE orders on the PF-ODE of a shipped"
            " network (float64, a 16² crop, scipy reference; not in the default run)"
        ),
    )
    parser.add_argument(
        "--model", metavar="NAME", help="shipped network of --problem real (default denoise-data)"
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
    from mrs_numerics.models.registry import available_model
    from mrs_numerics.oracles import builtin_problems
    from mrs_numerics.real_network import PROBLEM as REAL_PROBLEM
    from mrs_numerics.report import results_json, table, write_report
    from mrs_numerics.solvers import solver_info
    from mrs_numerics.verify import run_verification

    level = "quick" if args.quick else "full" if args.full else "default"
    known = [*builtin_problems(), REAL_PROBLEM]
    for name in args.problem or ():
        if name not in known:
            raise ValueError(f"unknown problem {name!r}; allowed: {', '.join(known)}")
    if args.model is not None:
        if REAL_PROBLEM not in (args.problem or ()):
            raise ValueError(f"--model applies to --problem {REAL_PROBLEM} only")
        available_model(args.model)
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
    _say(table(results))
    failed_conversions = [c for c in conversions if not c["passed"]]
    if conversions:
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
# train, models
# ---------------------------------------------------------------------------------------------


def _add_train(subparsers: argparse._SubParsersAction) -> None:
    from mrs_numerics.training import TrainConfig

    defaults = TrainConfig()
    parser = subparsers.add_parser(
        "train",
        help="train a small conditional MR restoration network on the bundled photos",
        description=(
            "Continuous-time MR training (cosine schedule) of the package's conditional UNet on"
            " random crops of the bundled training photos (held-out photos are never used)."
            " Seeded and resumable; --export writes the EMA weights and their training facts"
            " (command, seed, held-out PSNR at 100-NFE posterior sampling) next to the shipped"
            " networks or into --export-dir."
        ),
    )
    parser.add_argument("--task", default=defaults.task)
    parser.add_argument("--prediction", default=defaults.prediction, choices=("data", "noise"))
    for name in ("iterations", "batch", "crop", "seed", "base_channels"):
        parser.add_argument(
            f"--{name.replace('_', '-')}", type=int, default=getattr(defaults, name)
        )
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument(
        "--time-scale",
        type=float,
        default=defaults.time_scale,
        help="range [0, S] of the embedded time (small S: a network smooth in t)",
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--work", metavar="DIR", default="train-runs", help="checkpoint folder")
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint")
    parser.add_argument(
        "--stop-after", type=int, metavar="STEPS", help="checkpoint and stop after STEPS steps"
    )
    parser.add_argument("--export", metavar="NAME", help="export the trained network as NAME")
    parser.add_argument("--export-dir", metavar="DIR", help="export folder (default: shipped)")
    parser.add_argument("--no-progress", action="store_true")
    parser.set_defaults(run=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    from mrs_numerics.training import TrainConfig, evaluate_heldout, export, train

    config = TrainConfig(
        task=args.task,
        prediction=args.prediction,
        iterations=args.iterations,
        batch=args.batch,
        crop=args.crop,
        seed=args.seed,
        lr=args.lr,
        base_channels=args.base_channels,
        time_scale=args.time_scale,
    )
    work = Path(args.work) / f"{args.task}-{args.prediction}-seed{args.seed}"
    net, facts = train(
        config, work, args.device, args.resume, not args.no_progress, args.stop_after
    )
    if facts["completed"] < config.iterations:
        _say(f"stopped at step {facts['completed']} of {config.iterations}: resume with --resume")
        return 0
    _say(f"trained {config.iterations} iterations in {facts['seconds']:.0f} s on {facts['device']}")
    if args.export:
        heldout = evaluate_heldout(net, config, args.device)
        for name, row in heldout["images"].items():
            _say(
                f"held-out {name}: input {row['input_psnr']:.2f} dB → restored "
                f"{row['restored_psnr']:.2f} dB (SSIM {row['input_ssim']:.3f} → "
                f"{row['restored_ssim']:.3f})"
            )
        folder = Path(args.export_dir) if args.export_dir else _shipped_folder()
        command = "mrs-numerics " + " ".join(args.argv)
        path = export(net, config, facts, heldout, args.export, folder, command)
        _say(f"exported {path}")
    return 0


def _shipped_folder() -> Path:
    from importlib import resources

    return Path(str(resources.files("mrs_numerics.models.weights")))


def _add_models(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("models", help="list the shipped networks and their training")
    parser.set_defaults(run=_run_models)


def _run_models(args: argparse.Namespace) -> int:
    from mrs_numerics.models.registry import available_models

    models = available_models()
    if not models:
        _say("no shipped networks")
    for name, info in sorted(models.items()):
        _say(f"{name}: task {info.task}, {info.prediction} prediction, schedule {info.schedule}")
        _say(f"  trained {info.iterations} iterations, {info.seconds:.0f} s on {info.device}")
        _say("  network: " + ", ".join(f"{k} {v}" for k, v in sorted(info.config.items())))
        _say(f"  command: {info.command}")
        for image, row in info.heldout.get("images", {}).items():
            _say(
                f"  held-out {image}: {row['input_psnr']:.2f} dB → {row['restored_psnr']:.2f} dB "
                f"({info.heldout['sampler']}, {info.heldout['nfe']} NFE)"
            )
    return 0


# ---------------------------------------------------------------------------------------------
# degrade, restore
# ---------------------------------------------------------------------------------------------


def _task_help() -> str:
    from mrs_numerics.degradations import TASKS

    return "; ".join(f"{name}: {task.description}" for name, task in TASKS.items())


def _add_degrade(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "degrade",
        help="apply a restoration task's synthetic degradation to an image or a folder",
        description=(
            "Degrade clean PNG/JPEG images as the restoration tasks define it. IN is a file"
            " (OUT: a file, or an existing folder) or a folder (OUT: a folder, created if"
            " needed; outputs are PNG). Image i (sorted by name) uses seed + i. Outputs are"
            " 8-bit files, so the unclipped denoise noise is clipped to [0, 1] on writing."
        ),
    )
    parser.add_argument("input", metavar="IN", help="an image file or a folder of images")
    parser.add_argument("-o", "--out", required=True, metavar="OUT", help="output file or folder")
    parser.add_argument("--task", required=True, help=_task_help())
    parser.add_argument("--seed", type=int, default=0, help="seed of the first image (default 0)")
    parser.set_defaults(run=_run_degrade)


def _run_degrade(args: argparse.Namespace) -> int:
    import torch

    from mrs_numerics.degradations import degrade, task
    from mrs_numerics.images import read_image, write_image

    task(args.task)
    pairs = _image_pairs(Path(args.input), Path(args.out))
    for index, (source, target) in enumerate(pairs):
        generator = torch.Generator().manual_seed(args.seed + index)
        write_image(target, degrade(args.task, read_image(source), generator))
        _say(f"{source} -> {target}")
    _say(f"degraded {len(pairs)} image(s) for task {args.task!r}")
    return 0


def _add_restore(subparsers: argparse._SubParsersAction) -> None:
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
    parser.add_argument("--task", help="the task; picks its shipped network. " + _task_help())
    parser.add_argument(
        "--sampler", default="mrs-ode-2-data", metavar="ID", help="solver id (mrs_numerics.solvers)"
    )
    parser.add_argument(
        "--nfe", type=int, default=10, help="network calls per image, converted to steps"
    )
    parser.add_argument("--model", metavar="NAME", help="a shipped network (see: models)")
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first image (default 0)")
    parser.set_defaults(run=_run_restore)


def _run_restore(args: argparse.Namespace) -> int:
    from mrs_numerics import schedules
    from mrs_numerics.degradations import task
    from mrs_numerics.images import read_image, write_image
    from mrs_numerics.models.registry import shipped_network
    from mrs_numerics.restoration import nfe_for_steps, resolve_device, restore, steps_for_nfe

    if args.task is None and args.model is None:
        raise ValueError("give --task (to use its shipped network) or --model NAME")
    if args.task is not None:
        task(args.task)
    steps = steps_for_nfe(args.sampler, args.nfe)
    device = resolve_device(args.device)
    pairs = _image_pairs(Path(args.input), Path(args.out))
    name, net, info = shipped_network(args.task, args.model)
    schedule = schedules.get(info.schedule, max_sigma=info.max_sigma)
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
        )
        write_image(target, restored)
        _say(f"{source} -> {target}")
    _say(
        f"restored {len(pairs)} image(s) with {name} ({info.task}, {info.prediction} prediction)"
        f" and {args.sampler}: {steps} steps, {nfe_for_steps(args.sampler, steps)} network calls"
        " each"
    )
    return 0


def _image_pairs(source: Path, out: Path) -> list[tuple[Path, Path]]:
    """(input, output) paths for IN and OUT, with OUT's folder created; clear errors otherwise."""
    from mrs_numerics.images import IMAGE_SUFFIXES, image_files

    if not source.exists():
        raise ValueError(f"input {str(source)!r} does not exist")
    if source.is_dir():
        pairs = _folder_pairs(source, out, image_files(source))
    else:
        target = out / f"{source.stem}.png" if out.is_dir() else out
        if target.suffix.lower() not in IMAGE_SUFFIXES:
            raise ValueError(
                f"output {str(target)!r} needs an image suffix ({', '.join(IMAGE_SUFFIXES)})"
            )
        if not target.parent.is_dir():
            raise ValueError(f"output folder {str(target.parent)!r} does not exist")
        if target.resolve() == source.resolve():
            raise ValueError(f"refusing to overwrite the input {str(source)!r}")
        pairs = [(source, target)]
    pairs[0][1].parent.mkdir(parents=True, exist_ok=True)
    return pairs


def _folder_pairs(source: Path, out: Path, files: list[Path]) -> list[tuple[Path, Path]]:
    if not files:
        raise ValueError(f"no PNG or JPEG images in {str(source)!r}")
    if out.exists() and not out.is_dir():
        raise ValueError(f"output {str(out)!r} exists and is not a folder (IN is a folder)")
    if out.resolve() == source.resolve():
        raise ValueError(f"refusing to write into the input folder {str(source)!r}")
    targets = [out / f"{path.stem}.png" for path in files]
    if len(set(targets)) < len(targets):
        raise ValueError(f"images in {str(source)!r} share a name stem; outputs would collide")
    return list(zip(files, targets, strict=True))


# ---------------------------------------------------------------------------------------------
# benchmark
# ---------------------------------------------------------------------------------------------


def _add_benchmark(subparsers: argparse._SubParsersAction) -> None:
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
            " crops, 2 seeds, NFE ≤ 100; explicit options override it."
        ),
    )
    quality.add_argument("--task", help="the task; picks its shipped network. " + _task_help())
    quality.add_argument("--model", metavar="NAME", help="a shipped network (see: models)")
    quality.add_argument("--quick", action="store_true", help="small crops, fewer seeds and NFE")
    quality.add_argument("--seeds", type=int, help="number of seeds (0 … N − 1)")
    quality.add_argument("--crop", type=int, help="centre-crop side in pixels")
    quality.add_argument("--nfe", metavar="LIST", help="NFE budgets, e.g. 3,5,10,20")
    quality.add_argument("--samplers", metavar="LIST", help="solver ids, comma-separated")
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
    quality.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    quality.add_argument("--no-progress", action="store_true", help="no progress bar")
    quality.set_defaults(run=_run_benchmark)


def _run_benchmark(args: argparse.Namespace) -> int:
    import json

    from mrs_numerics import schedules
    from mrs_numerics.degradations import task
    from mrs_numerics.models.registry import shipped_network
    from mrs_numerics.quality import (
        QualityOptions,
        markdown_table,
        run_quality,
        with_overrides,
        write_report,
    )

    if args.task is not None:
        task(args.task)
    base = QualityOptions.quick() if args.quick else QualityOptions()
    options = with_overrides(
        base,
        task=args.task,
        seeds=args.seeds,
        crop=args.crop,
        nfes=_list_option("--nfe", args.nfe, int),
        samplers=_list_option("--samplers", args.samplers, str),
        device=args.device,
        reference_steps=args.reference_steps,
        sde_refinement=args.sde_refinement,
    ).validate()
    name, net, info = shipped_network(args.task or options.task, args.model)
    options = with_overrides(options, task=info.task)
    schedule = schedules.get(info.schedule, max_sigma=info.max_sigma)
    result = run_quality(net, info.prediction, schedule, options, name, not args.no_progress)
    written = write_report(result, Path(args.out))
    if args.json:
        Path(args.json).write_text(json.dumps(result.as_json(), indent=2) + "\n")
        written.append(Path(args.json))
    _say(markdown_table(result))
    _say(f"took {result.metadata['wall_seconds']:.0f} s; wrote " + ", ".join(map(str, written)))
    return 0


def _list_option(flag: str, text: str | None, kind: type) -> tuple | None:
    """A comma-separated option as a tuple of ``kind``; None when not given."""
    if text is None:
        return None
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise ValueError(f"{flag} is empty")
    try:
        return tuple(kind(item) for item in items)
    except ValueError:
        raise ValueError(f"{flag} must be a comma-separated list of {kind.__name__}s") from None


# ---------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------

SUBCOMMANDS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (
    _add_codegen,
    _add_verify,
    _add_train,
    _add_models,
    _add_degrade,
    _add_restore,
    _add_benchmark,
)
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
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        return args.run(args)
    except _EXPECTED_ERRORS as error:
        sys.stderr.write(f"mrs-numerics {args.command}: error: {error}\n")
        return EXIT_USAGE
