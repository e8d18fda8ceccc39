"""``mrs-numerics train``: train a small conditional MR restoration network."""

from __future__ import annotations

import argparse
from importlib import resources
from pathlib import Path

from mrs_numerics.cli.common import say


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``train`` to the command's subparsers."""
    # imported here: only building this parser needs the training defaults
    from mrs_numerics.models.training import TrainConfig

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
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Train (or resume), and export when asked."""
    # imported here: training pulls in the networks, photos and samplers
    from mrs_numerics.models.training import TrainConfig, evaluate_heldout, export, train
    from mrs_numerics.restoration.restore import resolve_device

    device = resolve_device(args.device)
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
    net, facts = train(config, work, device, args.resume, not args.no_progress, args.stop_after)
    if facts["completed"] < config.iterations:
        say(f"stopped at step {facts['completed']} of {config.iterations}: resume with --resume")
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
        folder = Path(args.export_dir) if args.export_dir else _shipped_folder()
        command = "mrs-numerics " + " ".join(args.argv)
        path = export(net, config, facts, heldout, args.export, folder, command)
        say(f"exported {path}")
    return 0


def _shipped_folder() -> Path:
    return Path(str(resources.files("mrs_numerics.models.weights")))
