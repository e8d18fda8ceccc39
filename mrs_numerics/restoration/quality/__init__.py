"""``benchmark quality``: restoration quality and solver fidelity of every sampler against NFE.

[`options`][mrs_numerics.restoration.quality.options] (what is measured),
[`run`][mrs_numerics.restoration.quality.run]
([`run_quality`][mrs_numerics.restoration.quality.run.run_quality]),
[`report`][mrs_numerics.restoration.quality.report] (tables and figures).
"""

from __future__ import annotations

from mrs_numerics.restoration.quality.options import (
    DEFAULT_NFES,
    FIDELITY_THRESHOLD_DB,
    QUICK_MAX_NFE,
    PlannedRun,
    QualityOptions,
    plan_runs,
    with_overrides,
)
from mrs_numerics.restoration.quality.report import (
    markdown_table,
    plot_grid,
    plot_quality,
    write_report,
)
from mrs_numerics.restoration.quality.run import (
    ODE_REFERENCE_SOLVER,
    SDE_REFERENCE_SOLVER,
    QualityResult,
    QualityRow,
    SeedInputs,
    merged_grid,
    nfe_to_fidelity,
    ode_reference,
    run_quality,
    sde_reference,
    seed_inputs,
)

__all__ = [
    "DEFAULT_NFES",
    "FIDELITY_THRESHOLD_DB",
    "ODE_REFERENCE_SOLVER",
    "QUICK_MAX_NFE",
    "SDE_REFERENCE_SOLVER",
    "PlannedRun",
    "QualityOptions",
    "QualityResult",
    "QualityRow",
    "SeedInputs",
    "markdown_table",
    "merged_grid",
    "nfe_to_fidelity",
    "ode_reference",
    "plan_runs",
    "plot_grid",
    "plot_quality",
    "run_quality",
    "sde_reference",
    "seed_inputs",
    "with_overrides",
    "write_report",
]
