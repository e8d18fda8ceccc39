"""The report of ``benchmark quality``: Markdown tables, the quality plot and the picture grid."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

from matplotlib import colormaps
from matplotlib.figure import Figure

from mrs_numerics._files import atomic_path, check_output_folder, write_text
from mrs_numerics.restoration.quality.run import QualityResult, QualityRow

GRID_SAMPLERS = ("mrs-ode-2-data", "mrs-sde-2-data", "posterior", "heun-ode")
"""Samplers shown in the picture grid (those of the run; else the first four run)."""
GRID_NFES = (5, 10, 20)
"""Budgets shown in the picture grid (those of the run)."""


def _cell(row: QualityRow, value: float | None, digits: int) -> str:
    if row.status == "skipped":
        return "—"
    if row.status in ("nonfinite", "diverged"):
        return "blow-up"
    if value is None:
        return "n/a"
    text = "∞" if value == math.inf else f"{value:.{digits}f}"
    return text if row.nfe == row.nfe_budget else f"{text} ({row.nfe})"


def _pivot(result: QualityResult, title: str, value: Callable, digits: int, first=None) -> list:
    budgets = result.metadata["nfe_budgets"]
    samplers = list(result.nfe_to_fidelity)
    head = ["sampler", *([first[0]] if first else []), *(str(b) for b in budgets)]
    lines = [f"**{title}**", "", "| " + " | ".join(head) + " |"]
    lines.append("|" + "---|" * len(head))
    for sampler in samplers:
        cells = [sampler, *([first[1](sampler)] if first else [])]
        for budget in budgets:
            row = result.row(sampler, budget)
            cells.append(_cell(row, value(row), digits))
        lines.append("| " + " | ".join(cells) + " |")
    return [*lines, ""]


def markdown_table(result: QualityResult) -> str:
    """Pivot tables (samplers × NFE budgets) of fidelity, PSNR, SSIM and seconds per image.

    A number of network calls in parentheses marks a budget the sampler cannot spend exactly.
    """
    meta = result.metadata
    refs = meta["references"]
    threshold = meta["threshold_db"]

    def reached(sampler):
        nfe = result.nfe_to_fidelity[sampler]
        return "—" if nfe is None else str(nfe)

    lines = [
        f"# Quality vs NFE: {meta['model'] or 'model'} ({meta['task']}, "
        f"{meta['prediction']} prediction)",
        "",
        f"Held-out photos {', '.join(meta['photos'])}, centre crops {meta['crop']}², "
        f"seeds {meta['seeds']}, device {meta['device']} ({meta['torch_threads']} threads). "
        f"Degraded input: PSNR {_number(meta['input_psnr'], 2)} dB, "
        f"SSIM {_number(meta['input_ssim'], 3)}.",
        "",
        _reference_line("PF-ODE", refs["ode"], f"{refs['ode']['steps']} steps"),
        _reference_line(
            "SDE", refs["sde"], f"{refs['sde']['fine_steps']} fine steps, coupled path"
        ),
        "",
    ]
    lines += _pivot(
        result,
        f"Fidelity (dB) to the converged solution; NFE to {threshold:g} dB in column 2",
        lambda row: row.fidelity_db,
        1,
        (f"NFE→{threshold:g} dB", reached),
    )
    lines += _pivot(result, "PSNR to ground truth (dB)", lambda row: row.psnr, 2)
    lines += _pivot(result, "SSIM to ground truth", lambda row: row.ssim, 3)
    lines += _pivot(result, "Seconds per image", lambda row: row.seconds, 3)
    return "\n".join(lines)


def _number(value, digits: int) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _reference_line(name: str, info: dict, what: str) -> str:
    if info["psnr"] is None:
        return f"- {name} reference: not computed"
    return (
        f"- {name} reference ({info['solver']}, {what}): PSNR {_number(info['psnr'], 2)} dB, "
        f"SSIM {_number(info['ssim'], 3)}; own accuracy ≈ {_number(info['accuracy_db'], 1)} dB "
        "(PSNR to the half-resolution solution)"
    )


def plot_quality(result: QualityResult, path) -> None:
    """PSNR, SSIM and fidelity against NFE (log axis), one line per sampler (ODE solid)."""
    panels = (
        ("psnr", "PSNR to ground truth (dB)"),
        ("ssim", "SSIM to ground truth"),
        ("fidelity_db", "fidelity to converged solution (dB)"),
    )
    fig = Figure(figsize=(15, 4.8), layout="constrained")
    axes = fig.subplots(1, 3)
    colors = colormaps["tab20"].colors  # type: ignore[attr-defined]
    meta = result.metadata
    for index, sampler in enumerate(result.nfe_to_fidelity):
        rows = [r for r in result.rows if r.sampler == sampler and r.status == "ok"]
        style = "-o" if _kind(result, sampler) == "ode" else "--s"
        for axis, (key, _) in zip(axes, panels, strict=True):
            points = [(r.nfe, getattr(r, key)) for r in rows if _finite(getattr(r, key))]
            if points:
                xs, ys = zip(*points, strict=True)
                axis.plot(xs, ys, style, ms=3.5, color=colors[index % 20], label=sampler)
    if meta["input_psnr"] is not None:
        axes[0].axhline(meta["input_psnr"], color="grey", ls=":", lw=1, label="degraded input")
        axes[1].axhline(meta["input_ssim"], color="grey", ls=":", lw=1)
    axes[2].axhline(meta["threshold_db"], color="black", ls=":", lw=1)
    for axis, (_, label) in zip(axes, panels, strict=True):
        axis.set_xscale("log")
        axis.set_xticks(meta["nfe_budgets"], [str(n) for n in meta["nfe_budgets"]])
        axis.minorticks_off()
        axis.set_xlabel("NFE (network calls)")
        axis.set_ylabel(label)
        axis.grid(True, alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center", fontsize=7)
    fig.suptitle(
        f"{meta['model']} ({meta['task']}): {meta['crop']}² crops, {meta['seeds']} seed(s); "
        f"ODE solid, SDE dashed; dotted: degraded input, {meta['threshold_db']:g} dB"
    )
    save_figure(fig, path, 90)


def _kind(result: QualityResult, sampler: str) -> str:
    """``"ode"`` or ``"sde"``: the kind of a ``samplers`` entry (a solver id or NAME@GRID)."""
    for row in result.rows:
        if row.sampler == sampler:
            return row.kind
    return "ode"


def _finite(value) -> bool:
    return value is not None and math.isfinite(value)


def plot_grid(result: QualityResult, path) -> bool:
    """Picture grid of image 0, seed 0: per sampler, degraded | 5/10/20 NFE | reference | truth.

    Returns False (nothing written) when no grid budget was run.
    """
    pictures = result.pictures
    budgets = [b for b in GRID_NFES if b in result.metadata["nfe_budgets"]]
    run = [s for s in result.nfe_to_fidelity if any((s, b) in pictures for b in budgets)]
    chosen = [s for s in GRID_SAMPLERS if s in run] or run[:4]
    if not chosen:
        return False
    columns = ["degraded", *(f"{b} NFE" for b in budgets), "converged", "ground truth"]
    fig = Figure(figsize=(1.7 * len(columns), 1.8 * len(chosen)))
    axes = fig.subplots(len(chosen), len(columns), squeeze=False)
    for i, sampler in enumerate(chosen):
        kind = _kind(result, sampler)
        images = [
            pictures.get("degraded"),
            *(pictures.get((sampler, b)) for b in budgets),
            pictures.get(f"reference-{kind}"),
            pictures.get("clean"),
        ]
        for j, (axis, image) in enumerate(zip(axes[i], images, strict=True)):
            axis.set_xticks([])
            axis.set_yticks([])
            if image is not None:
                axis.imshow(image.permute(1, 2, 0).numpy(), interpolation="nearest")
            else:
                axis.text(0.5, 0.5, "blow-up / none", ha="center", va="center", fontsize=7)
            if i == 0:
                axis.set_title(columns[j], fontsize=8)
        axes[i][0].set_ylabel(sampler, fontsize=7)
    fig.tight_layout()
    save_figure(fig, path, 80)
    return True


def save_figure(fig, path, dpi: int) -> None:
    """Save a matplotlib figure atomically (a temporary PNG renamed onto ``path``, replaced)."""
    with atomic_path(path, overwrite=True, what="figure") as temporary:
        fig.savefig(temporary, dpi=dpi)


def write_report(result: QualityResult, out) -> list[Path]:
    """Write quality.md, quality.json, quality.png and (if any grid budget ran) grid.png.

    ``out`` is the report's own folder: these four files in it are replaced, each atomically
    (a report from an earlier run of the benchmark is not kept).
    """
    out = check_output_folder(out, what="report folder")
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "quality.md", out / "quality.json", out / "quality.png"]
    write_text(written[0], markdown_table(result) + "\n", overwrite=True, what="report")
    write_text(written[1], json.dumps(result.as_json(), indent=2) + "\n", overwrite=True)
    plot_quality(result, written[2])
    if plot_grid(result, out / "grid.png"):
        written.append(out / "grid.png")
    return written
