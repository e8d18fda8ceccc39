"""Verification report: ``orders.json``, ``report.md`` and log-log plots per family.

Each plot shows error against the largest λ-step for every solver of one family (ODE global,
SDE strong, SDE weak; kernel and full runs), with dashed reference slopes of the declared orders
drawn through each solver's coarsest point.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from matplotlib import colormaps
from matplotlib.figure import Figure

from mrs_numerics._files import atomic_path, check_output_folder, write_text
from mrs_numerics.verification.studies import OrderResult, log_slope_reference

FAMILIES = (
    ("global", "ODE global error"),
    ("strong", "SDE strong error"),
    ("weak", "SDE weak error"),
)


def results_json(results: Sequence[OrderResult], extra: dict | None = None) -> dict:
    """The public JSON document: ``{"results": [...]}`` (plus optional extra sections)."""
    return {"results": [r.summary() for r in results], **(extra or {})}


def _solver_width(solvers) -> int:
    """Width of a solver column: 16, or the longest id (``mrs-ode-2-noise-unic``)."""
    return max([16, *(len(solver) for solver in solvers)])


def table(results: Sequence[OrderResult]) -> str:
    """A plain-text table: solver, problem, kind, run, declared, observed, verdict."""
    width = max([12, *(len(r.problem) for r in results)])
    ids = _solver_width(r.solver for r in results)
    head = (
        f"{'solver':<{ids}} {'problem':<{width}} {'kind':<7} {'run':<7} {'declared':>8} "
        f"{'observed':>8}  verdict"
    )
    lines = [head, "-" * len(head)]
    for r in results:
        verdict = r.verdict
        lines.append(
            f"{r.solver:<{ids}} {r.problem:<{width}} {r.order_kind:<7} {r.run:<7} "
            f"{r.declared_order:>8.2f} {r.observed_order:>8.2f}  {verdict}"
        )
    return "\n".join(lines)


def _plot(results: Sequence[OrderResult], kind: str, title: str, path: Path) -> bool:
    chosen = [r for r in results if r.order_kind == kind and r.errors]
    if not chosen:
        return False
    fig = Figure(figsize=(8, 6))
    ax = fig.subplots()
    ax.set_prop_cycle(color=colormaps["tab20"].colors)  # type: ignore[attr-defined]
    for r in chosen:
        errors = [abs(e) for e in r.errors]
        style = "-o" if r.run == "full" else "--s"
        (line,) = ax.loglog(
            r.h_max, errors, style, ms=3.5, label=f"{r.solver} [{r.run}] {r.observed_order:.2f}"
        )
        reference = log_slope_reference(r.h_max, errors[0], r.declared_order)
        ax.loglog(r.h_max, reference, ":", color=line.get_color(), lw=0.9)
    ax.set_xlabel("largest λ-step h_max")
    ax.set_ylabel("error")
    ax.set_title(f"{title} (dotted: declared order)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=6.5, ncol=2)
    fig.tight_layout()
    with atomic_path(path, overwrite=True, what="figure") as temporary:
        fig.savefig(temporary, dpi=130)
    return True


def write_report(
    results: Sequence[OrderResult], out: Path, extra: dict | None = None, header: str = ""
) -> list[Path]:
    """Write orders.json, report.md and the PNG plots into ``out``; return the written paths.

    ``out`` is the report's own folder: these files in it are replaced, each atomically (a
    report from an earlier run is not kept).
    """
    out = check_output_folder(out, what="report folder")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    orders = out / "orders.json"
    document = results_json(results, extra)
    document["details"] = [r.as_dict() for r in results]
    write_text(orders, json.dumps(document, indent=2), overwrite=True, what="report")
    written.append(orders)
    plots = []
    for kind, title in FAMILIES:
        path = out / f"orders_{kind}.png"
        if _plot(results, kind, title, path):
            written.append(path)
            plots.append(path.name)
    failed = [r for r in results if not r.passed]
    faster = [r for r in results if r.verdict == "faster than declared"]
    lines = [
        "# mrs-numerics verification report",
        "",
        header,
        "",
        f"{len(results)} measured orders, {len(results) - len(failed)} pass "
        f"({len(faster)} of them faster than declared), {len(failed)} fail (pass = observed ≥ "
        "declared − 0.2; faster than declared = observed > declared + 0.2).",
        "",
        "```",
        table(results),
        "```",
        "",
    ]
    if extra and extra.get("conversions"):
        lines += ["## Model-prediction conversions", "", "```"]
        ids = _solver_width(row["solver"] for row in extra["conversions"])
        for row in extra["conversions"]:
            lines.append(
                f"{row['solver']:<{ids}} {row['model_prediction']:<9} "
                f"max |Δx| = {row['max_difference']:.2e}  {'pass' if row['passed'] else 'FAIL'}"
            )
        lines += ["```", ""]
    lines += [f"![{name}]({name})" for name in plots]
    report = out / "report.md"
    write_text(report, "\n".join(lines) + "\n", overwrite=True, what="report")
    written.append(report)
    return written
