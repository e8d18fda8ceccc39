"""``mrs-numerics train``: train a small conditional MR restoration network."""

from __future__ import annotations

import argparse
from importlib import resources
from pathlib import Path

from mrs_numerics.cli.common import say


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``train`` to the command's subparsers."""
    # imported here: only building this parser needs the training defaults
    from mrs_numerics.models.training import (
        DEFAULT_DEPTH,
        DEFAULT_EPS,
        DEFAULT_T,
        DEFAULT_TIME_SCALE,
        TRAINED_ARCHITECTURES,
        TrainConfig,
    )

    defaults = TrainConfig()
    parser = subparsers.add_parser(
        "train",
        help="train a small conditional MR restoration network on the bundled photos",
        description=(
            "MR training on random crops of the bundled training photos (held-out photos are"
            " never used). --arch unet (default): the package's conditional UNet, continuous"
            " time on a continuous schedule (cosine), data or noise prediction. --arch irsde:"
            " IR-SDE's ConditionalUNet trained as IR-SDE trains it (its table schedule with the"
            " integer index as time, noise prediction, L1 on the reverse-step mean), exported in"
            " IR-SDE's format (NAME.pth and the option file NAME.yml, for restore --checkpoint"
            " NAME.pth --config NAME.yml). Every argument, the work folder and the export are"
            " checked before the first iteration. Seeded and resumable; --export writes the EMA"
            " weights and their training facts (command, seed, held-out PSNR at 100-NFE"
            " posterior sampling) next to the shipped networks or into --export-dir."
        ),
    )
    parser.add_argument(
        "--arch",
        choices=TRAINED_ARCHITECTURES,
        default=defaults.arch,
        help="unet: the package's UNet (default); irsde: IR-SDE's ConditionalUNet",
    )
    parser.add_argument("--task", default=defaults.task)
    parser.add_argument(
        "--prediction",
        choices=("data", "noise"),
        help="what the network predicts (default: data for unet; irsde predicts noise)",
    )
    parser.add_argument(
        "--schedule",
        default=defaults.schedule,
        help=(
            "unet: a continuous schedule (constant, linear, cosine or a user schedule); irsde:"
            f" IR-SDE's θ table (cosine, linear, constant); default {defaults.schedule}"
        ),
    )
    parser.add_argument(
        "--max-sigma",
        type=float,
        default=defaults.max_sigma,
        metavar="LAMBDA",
        help="Λ in (0, 1) (default 50/255)",
    )
    parser.add_argument(
        "--eps", type=float, help=f"α at the schedule's end (default {DEFAULT_EPS})"
    )
    parser.add_argument(
        "--T",
        dest="T",
        type=int,
        metavar="N",
        help=f"irsde: the table's last index, the network's time range (default {DEFAULT_T})",
    )
    parser.add_argument(
        "--depth",
        type=int,
        help=f"irsde: the network's resolution levels (default {DEFAULT_DEPTH})",
    )
    for name in ("iterations", "batch", "crop", "seed", "base_channels"):
        parser.add_argument(
            f"--{name.replace('_', '-')}", type=int, default=getattr(defaults, name)
        )
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument(
        "--time-scale",
        type=float,
        help=(
            "unet: range [0, S] of the embedded time (small S: a network smooth in t; default"
            f" {DEFAULT_TIME_SCALE:g})"
        ),
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--work", metavar="DIR", default="train-runs", help="checkpoint folder")
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint")
    parser.add_argument(
        "--stop-after", type=int, metavar="STEPS", help="checkpoint and stop after STEPS steps"
    )
    parser.add_argument("--export", metavar="NAME", help="export the trained network as NAME")
    parser.add_argument("--export-dir", metavar="DIR", help="export folder (default: shipped)")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing export, or an earlier run's checkpoint in the work folder",
    )
    parser.add_argument("--no-progress", action="store_true")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Check everything, train (or resume), and export when asked."""
    # imported here: training pulls in the networks, photos and samplers
    from mrs_numerics.models.training import (
        IRSDE_PREDICTION,
        TrainConfig,
        check_device,
        check_export,
        check_work,
        evaluate_heldout,
        export,
        train,
    )

    prediction = args.prediction or (IRSDE_PREDICTION if args.arch == "irsde" else "data")
    config = TrainConfig(
        arch=args.arch,
        task=args.task,
        prediction=prediction,
        iterations=args.iterations,
        batch=args.batch,
        crop=args.crop,
        seed=args.seed,
        lr=args.lr,
        schedule=args.schedule,
        max_sigma=args.max_sigma,
        eps=args.eps,
        T=args.T,
        depth=args.depth,
        base_channels=args.base_channels,
        time_scale=args.time_scale,
    )
    config.check()
    device = check_device(args.device)
    work = Path(args.work) / f"{args.task}-{prediction}-seed{args.seed}"
    if args.arch != "unet":
        work = work.with_name(f"{args.arch}-{work.name}")
    check_work(work, config, args.resume, args.overwrite)
    folder = Path(args.export_dir) if args.export_dir else _shipped_folder()
    if args.export is not None:
        check_export(config, args.export, folder, args.overwrite)
    elif args.export_dir:
        raise ValueError("--export-dir needs --export NAME (the name of the exported network)")
    net, facts = train(
        config,
        work,
        device,
        args.resume,
        not args.no_progress,
        args.stop_after,
        overwrite=args.overwrite,
    )
    if facts["completed"] < config.iterations:
        exported = (
            " (nothing exported yet: --export runs after the last step)" if args.export else ""
        )
        say(
            f"stopped at step {facts['completed']} of {config.iterations}: resume with "
            f"--resume{exported}"
        )
        return 0
    say(f"trained {config.iterations} iterations in {facts['seconds']:.0f} s on {facts['device']}")
    if args.export:
        heldout = evaluate_heldout(net, config, device)
        for name, row in heldout["images"].items():
            say(
                f"held-out {name}: input {row['input_psnr']:.2f} dB → restored "
                f"{row['restored_psnr']:.2f} dB (SSIM {row['input_ssim']:.3f} → "
                f"{row['restored_ssim']:.3f})"
            )
        command = "mrs-numerics " + " ".join(args.argv)
        path = export(
            net, config, facts, heldout, args.export, folder, command, overwrite=args.overwrite
        )
        say(f"exported {path}")
    return 0


def _shipped_folder() -> Path:
    return Path(str(resources.files("mrs_numerics.models.weights")))
