"""``mrs-numerics models``: the shipped networks and how each was trained."""

from __future__ import annotations

import argparse

from mrs_numerics.cli.common import say


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``models`` to the command's subparsers."""
    parser = subparsers.add_parser("models", help="list the shipped networks and their training")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """List the shipped networks."""
    # imported here: the registry reads the weights index only when asked
    from mrs_numerics.models.registry import available_models, shipped_checkpoints
    from mrs_numerics.models.tuned_grids import shipped_grids

    models = available_models()
    if not models:
        say("no shipped networks")
    for name, info in sorted(models.items()):
        say(f"{name}: task {info.task}, {info.prediction} prediction, schedule {info.schedule}")
        say(f"  trained {info.iterations} iterations, {info.seconds:.0f} s on {info.device}")
        say("  network: " + ", ".join(f"{k} {v}" for k, v in sorted(info.config.items())))
        say(f"  command: {info.command}")
        for image, row in info.heldout.get("images", {}).items():
            say(
                f"  held-out {image}: {row['input_psnr']:.2f} dB → {row['restored_psnr']:.2f} dB "
                f"({info.heldout['sampler']}, {info.heldout['nfe']} NFE)"
            )
        by_variant: dict[str, list] = {}
        for grid in shipped_grids(name):
            by_variant.setdefault(grid.variant, []).append(grid)
        for variant, grids in sorted(by_variant.items()):
            fidelities = ", ".join(
                f"{g.nfe}: {g.heldout_fidelity_db:.1f}"
                for g in sorted(grids, key=lambda g: g.nfe)
                if g.heldout_fidelity_db is not None
            )
            say(f"  tuned grids for {variant} (NFE: held-out fidelity dB): {fidelities}")
    for name, shipped in shipped_checkpoints().items():
        facts = shipped.facts
        say(f"{name}: IR-SDE format (ConditionalUNet), task {facts.get('task')}, noise prediction")
        say(
            f"  trained {facts.get('iterations')} iterations, {facts.get('seconds', 0):.0f} s on "
            f"{facts.get('device')}"
        )
        say(f"  command: {facts.get('command')}")
        heldout = facts.get("heldout", {})
        for image, row in heldout.get("images", {}).items():
            say(
                f"  held-out {image}: {row['input_psnr']:.2f} dB → {row['restored_psnr']:.2f} dB "
                f"({heldout.get('sampler')}, {heldout.get('nfe')} NFE)"
            )
        say(f"  restore --checkpoint {shipped.weights} --config {shipped.options}")
    return 0
