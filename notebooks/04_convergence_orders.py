# ---
# jupyter:
#   jupytext:
#     notebook_metadata_filter: -jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 04 · Convergence orders on exact oracles
#
# For Gaussian-mixture data the MR marginal is again a Gaussian mixture, so the score, $\hat x_0$,
# $\hat\varepsilon$ and $\hat v$ are known in closed form (`mrs_numerics.verification.oracles`): a
# sampler run on such an oracle has no model error, and its error against a high-precision reference
# is pure discretisation error. `mrs_numerics.verification.driver` measures, on step ladders of
# smooth non-uniform $\lambda$ grids in float64:
#
# - **ODE, global order**: error at the last time against a scipy DOP853 solution of the
#   PF-ODE in $\lambda$ (`mrs_numerics.verification.references`), for the full sampler (start
#   procedure included) and for the multistep kernels alone from an exact warm start;
# - **SDE, strong order**: RMS pathwise error against the second-order data SDE on a 16×
#   finer nested grid driven by the *same* Brownian path
#   (`mrs_numerics.solvers.brownian.CoupledBrownian`);
# - **SDE, weak order**: on Gaussian data every step is affine, so the exact mean and
#   variance of $x_N$ are propagated through `sample` itself (no Monte Carlo).
#
# The observed order is the least-squares slope of $\log$ error against
# $\log h_{\max}$ over the three finest rungs; a solver passes when it is within 0.2 of
# its declared order.
#
# Run it as is for the full version; the test suite executes every notebook with
# `MRS_NOTEBOOK_SIZE=small` (smaller grids and samples, same statements). The small size runs
# the `quick` level, whose short ladders may be pre-asymptotic; the full size runs the
# `default` level, the one `make verify` runs.

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import Markdown, display
from matplotlib.ticker import NullFormatter
from notebook_helpers import SIZE, table

from mrs_numerics import MRSampler, schedules
from mrs_numerics.solvers import SOLVERS
from mrs_numerics.verification import driver, oracles, references, studies

f64 = torch.float64
torch.set_num_threads(1)  # tiny tensors: thread hand-offs would cost more than they save
schedule = schedules.cosine()
LEVEL = "quick" if SIZE == "small" else "default"

# %% [markdown]
# ## 1. The problem
#
# `gmm-2d-diag`: a three-component mixture in 2-D. The second-order MR Sampler (ODE, data
# form) with the exact data oracle at 5 and 10 network calls, against the reference PF-ODE
# trajectories from the same starting points:

# %%
oracle = oracles.builtin_problem("gmm-2d-diag", schedule)
generator = torch.Generator().manual_seed(0)
starts = 12
mu = torch.zeros(starts, oracle.dim, dtype=f64)
lam_first, lam_last = -2.5, 3.0
t_first = float(schedule.t_of_lam(torch.tensor(lam_first, dtype=f64)))
t_last = float(schedule.t_of_lam(torch.tensor(lam_last, dtype=f64)))
x_start = oracle.sample_marginal(mu, t_first, generator=generator)

fig, ax = plt.subplots(figsize=(6.5, 6))
clean = oracle.sample_x0(torch.zeros(2000, oracle.dim, dtype=f64), generator=generator)
ax.scatter(*clean.T, s=2, color="0.75", label="$x_0$ samples")
times = schedule.t_of_lam(torch.linspace(lam_first, lam_last, 80, dtype=f64))
path = references.pf_ode_reference_times(
    oracle, schedule, x_start, mu, t_first, times[1:], dense=True
)
path = torch.cat([x_start[None], path.xs])
for i in range(starts):
    label = "reference PF-ODE" if i == 0 else None
    ax.plot(path[:, i, 0], path[:, i, 1], color="k", lw=0.8, label=label)
for steps, color in ((5, "C3"), (10, "C0")):
    sampler = MRSampler(schedule, "ode", 2, "data", "data", t_start=t_first, t_end=t_last)
    result = sampler.sample(
        oracle.model("data"), mu, steps=steps, x_T=x_start, return_trajectory=True
    )
    trajectory = torch.stack(result.trajectory)
    for i in range(starts):
        label = f"mrs-ode-2-data, {result.nfe} NFE" if i == 0 else None
        ax.plot(*trajectory[:, i].T, "o-", color=color, ms=3, lw=0.6, label=label)
title = rf"PF-ODE from $\lambda = {lam_first}$ to ${lam_last}$ ($\mu = 0$)"
ax.set(title=title, aspect="equal")
ax.legend(fontsize=8)
fig.tight_layout()

# %% [markdown]
# The reference is checked first: on a single Gaussian the PF-ODE flow map is closed form
# (`oracles.gaussian_flow`), and the scipy reference must agree with it far below any
# sampler error measured here.

# %%
single = oracles.gauss_1d(schedule)
mu_single = torch.zeros(8, 1, dtype=f64)
x_single = single.sample_marginal(mu_single, t_first, generator=generator)
offset, covariance = single.offsets[0], single.covariances[0]
ends = (t_first, t_last)
closed = oracles.gaussian_flow(schedule, x_single, *ends, mu_single, offset, covariance)
scipy_end = references.pf_ode_reference(single, schedule, x_single, mu_single, *ends).x
reference_error = float((scipy_end - closed).abs().max())
display(Markdown(f"max |scipy reference − closed-form flow| = {reference_error:.1e}"))
assert reference_error <= references.REFERENCE_TOLERANCE

# %% [markdown]
# ## 2. The verification
#
# `driver.run_verification` is what `mrs-numerics verify` runs (cosine schedule,
# `gmm-2d-diag`):

# %%
results, conversions = driver.run_verification(LEVEL)
rows = []
for r in results:
    rows.append(
        [
            f"`{r.solver}`",
            r.order_kind,
            r.run,
            f"{r.declared_order:g}",
            f"{r.observed_order:.2f}",
            "pass" if r.passed else "**FAIL**",
            f"{min(r.nfe)}–{max(r.nfe)}",
        ]
    )
table(["solver", "order", "run", "declared", "observed", "verdict", "NFE"], rows)
failed = [f"{r.solver} {r.order_kind} {r.run}" for r in results if not r.passed]
summary = f"level `{LEVEL}`: {len(results) - len(failed)} of {len(results)} orders pass"
display(Markdown(summary + (f"; failing: {', '.join(failed)}" if failed else "")))
if LEVEL != "quick":
    assert not failed, failed

# %% [markdown]
# The same results with one line per solver: declared order (observed order).

# %%
columns = [("global", "full"), ("global", "kernel"), ("strong", "full"), ("weak", "full")]
by_key = {(r.solver, r.order_kind, r.run): r for r in results}
rows = []
for solver_id, info in SOLVERS.items():
    cells = []
    for kind, run in columns:
        r = by_key.get((solver_id, kind, run))
        if r is None:
            cells.append("—")
        else:
            cells.append(f"{r.declared_order:g} ({r.observed_order:.2f})")
    rows.append([f"`{solver_id}`", info.nfe_per_step, *cells])
header = ["solver", "calls / step", "ODE global (full)", "ODE global (kernel)"]
table([*header, "SDE strong", "SDE weak"], rows)

# %% [markdown]
# ## 3. Log-log plots
#
# Error against the largest $\lambda$-step; dotted lines have the declared slope through
# each solver's coarsest point, and filled markers are the points of the fit window.

# %%
families = [
    ("global", "ODE global error"),
    ("strong", "SDE strong error"),
    ("weak", "SDE weak error"),
]
fig, axes = plt.subplots(1, 3, figsize=(16, 5))
for ax, (kind, title) in zip(axes, families, strict=True):
    ax.set_prop_cycle(color=plt.cm.tab20.colors)
    for r in (r for r in results if r.order_kind == kind):
        h_max, errors = np.array(r.h_max), np.abs(np.array(r.errors))
        style = "-" if r.run == "full" else "--"
        label = f"{r.solver} [{r.run}] {r.observed_order:.2f}"
        (line,) = ax.loglog(h_max, errors, style, lw=1, label=label)
        ax.loglog(h_max[r.window], errors[r.window], "o", ms=4, color=line.get_color())
        slope = studies.log_slope_reference(h_max, errors[0], r.declared_order)
        ax.loglog(h_max, slope, ":", lw=0.8, color=line.get_color())
    ax.set(xlabel=r"largest $\lambda$-step $h_{\max}$", ylabel="error", title=title)
    ax.grid(True, which="both", alpha=0.3)
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.legend(fontsize=6.5, ncol=2 if kind == "global" else 1)
fig.tight_layout()

# %% [markdown]
# ## 4. What a network call buys
#
# The same ODE errors against the number of network calls (NFE includes the start
# procedure's extra call of the third-order sampler):

# %%
fig, ax = plt.subplots(figsize=(7, 4.5))
ax.set_prop_cycle(color=plt.cm.tab10.colors)
for r in results:
    if r.order_kind == "global" and r.run == "full":
        ax.loglog(r.nfe, np.abs(r.errors), "o-", ms=3, lw=1, label=r.solver)
ax.set(xlabel="NFE", ylabel="global error", title="ODE solvers: error vs network calls")
ax.grid(True, which="both", alpha=0.3)
ax.legend(fontsize=8)
fig.tight_layout()

# %% [markdown]
# ## 5. Model parameterisations
#
# Every solver fed a noise, velocity or score oracle must reproduce its data-oracle run to
# round-off: the conversions with $\mu$ (notebook 01's shift) are exact.

# %%
worst = {}
for row in conversions:
    key = row["model_prediction"]
    worst[key] = max(worst.get(key, 0.0), row["max_difference"])
tolerance = f"{driver.CONVERSION_TOLERANCE:g}"
table(
    ["model prediction", "largest difference from the data-oracle run", "tolerance"],
    [[key, f"{value:.1e}", tolerance] for key, value in worst.items()],
)
assert all(row["passed"] for row in conversions)
