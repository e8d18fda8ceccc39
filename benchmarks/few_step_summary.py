"""Summarise the few-step targets from ``benchmarks/few_step_quality.sh``'s JSON files.

Per network: the first ladder NFE at which each entry reaches 40 dB solver fidelity, its fidelity
at 4 and 5 NFE with the PSNR/SSIM to the ground truth beside it, and the ratio of the best
strided baseline's NFE to 40 dB to the best MR variant's.

Usage: python benchmarks/few_step_summary.py > benchmarks/results/few_step_summary.md
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
MODELS = ("denoise-data", "blur-data", "lowlight-data")
BASELINES = ("euler-ode", "heun-ode")


def say(line: str = "") -> None:
    """One line of the summary on stdout."""
    sys.stdout.write(line + "\n")


def cell(row) -> str:
    """'fidelity (PSNR / SSIM)' of a row, or why it did not run."""
    if row is None or row["status"] != "ok":
        return "—"
    return f"{row['fidelity_db']:.1f} ({row['psnr']:.1f} / {row['ssim']:.3f})"


def main() -> None:
    say("# Few-step targets: solver fidelity on held-out 64² crops (3 seeds)\n")
    say("Cells: fidelity dB (PSNR dB / SSIM to the ground truth). '40 dB at': the first ladder")
    say("NFE with mean fidelity ≥ 40 dB. Ratio: best strided baseline's NFE to 40 dB over the")
    say("best MR entry's.\n")
    for model in MODELS:
        path = RESULTS / f"few_step_quality_{model}.json"
        if not path.is_file():
            say(f"## {model}\n\nnot run\n")
            continue
        document = json.loads(path.read_text())
        rows = document["rows"]
        reached = document["nfe_to_fidelity"]
        meta = document["metadata"]
        say(f"## {model}\n")
        reference = meta["references"]["ode"]["psnr"]
        say(f"Input PSNR {meta['input_psnr']:.1f} dB; ODE reference {reference:.1f} dB PSNR.\n")
        say("| entry | 40 dB at | NFE 3 | NFE 4 | NFE 5 | NFE 10 |")
        say("|---|---|---|---|---|---|")
        for entry, first in reached.items():
            by_nfe = {r["nfe_budget"]: r for r in rows if r["sampler"] == entry}
            cells = " | ".join(cell(by_nfe.get(n)) for n in (3, 4, 5, 10))
            say(f"| `{entry}` | {first or '> 100'} | {cells} |")
        mr = [n for e, n in reached.items() if e not in BASELINES and n is not None]
        base = [n for e, n in reached.items() if e in BASELINES and n is not None]
        if mr and base:
            say(
                f"\nBest MR entry: 40 dB at {min(mr)} NFE; best strided baseline at {min(base)}: "
                f"{min(base) / min(mr):.1f}× fewer calls.\n"
            )
        else:
            say("\nA ratio needs both an MR entry and a baseline that reach 40 dB.\n")


if __name__ == "__main__":
    main()
