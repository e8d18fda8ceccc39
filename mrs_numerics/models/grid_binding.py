"""Binding a tuned grid to a run: the one place that checks a grid against the schedule, the
sampler, the network and the NFE budget of the run that uses it.

[`bind_grid`][mrs_numerics.models.grid_binding.bind_grid] returns the times to run, with notes:

- **Schedule.** The grid's record holds the identity of the schedule it was fitted on
  ([`schedule_identity`][mrs_numerics.schedules.identity.schedule_identity]). The same
  schedule (within tolerance): its times as they are. Another schedule: the grid is re-mapped
  through λ, t'_i = t'(λ_i), when both λ ends of the grid lie inside the target schedule's λ
  range (within [`LAM_SLACK`][mrs_numerics.models.grid_binding.LAM_SLACK]), with a
  [`GridTransferWarning`][mrs_numerics.models.grid_binding.GridTransferWarning]; else it is
  refused. A grid whose schedule is unknown (a version-1 record of a network that is not
  shipped) is refused.
- **Budget.** The calls are counted on the compiled plan of the sampler that runs, on these
  times ([`SamplerBase.calls`][mrs_numerics.solvers.base.SamplerBase.calls]), never taken from
  the record: ``heun-ode`` on a 5-step grid makes 10 calls, and a budget of 5 refuses it.
- **Sampler.** Another solver, or other run options, than the grid was tuned for: a
  ``GridTransferWarning`` (transfer may be intended), the run goes on.
- **Network.** Another network (by weights hash, or by name where a hash is missing): a
  ``GridTransferWarning``. A run whose network is unknown is not compared (a note says so).

Warnings go through one class, so that a filter never has to match message text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from mrs_numerics._errors import Advice, InputError
from mrs_numerics._warn import warn
from mrs_numerics.models.network_identity import describe_network, same_network
from mrs_numerics.models.tuned_grids import TunedGrid
from mrs_numerics.schedules import grids as spacings
from mrs_numerics.schedules.identity import (
    describe_identity,
    identity_differences,
    lam_range,
    schedule_identity,
)
from mrs_numerics.solvers.base import SamplerBase
from mrs_numerics.solvers.configuration import (
    describe_configuration,
    same_sampler,
    sampler_configuration,
)

LAM_SLACK = 1e-9
"""How far (relative to 1 + |λ|) a grid's λ end may lie outside the target's λ range and still
count as inside: the same λ end computed on two schedules differs by round-off."""


class GridTransferWarning(UserWarning):
    """A tuned grid is used on another schedule (re-mapped), sampler or network than its own."""


@dataclass
class BoundGrid:
    """A tuned grid bound to a run.

    Attributes:
        timesteps: The times to run (the grid's own, or re-mapped through λ).
        calls: The network calls a run of the sampler on them makes (counted on its plan).
        notes: What the binding found (each warned note also went out as a
            ``GridTransferWarning``).
        remapped: Whether the times were re-mapped to another schedule.
    """

    timesteps: torch.Tensor
    calls: int
    notes: list[str] = field(default_factory=list)
    remapped: bool = False


def _inside(value: float, low: float, high: float) -> bool:
    slack = LAM_SLACK * (1.0 + abs(value))
    return low - slack <= value <= high + slack


def remapped_times(grid: TunedGrid, schedule) -> torch.Tensor:
    """The grid's times moved to ``schedule`` through λ (refused when its λ ends lie outside).

    t'_i = t'(λ_i) with t' the inverse of the target's λ, clamped to its time range; the ends
    must lie in [λ(t_max), λ(t_min)] of ``schedule`` (within ``LAM_SLACK``) and the result must
    stay strictly decreasing.
    """
    low, high = lam_range(schedule)
    first, last = float(grid.lams[0]), float(grid.lams[-1])
    if not (_inside(first, low, high) and _inside(last, low, high)):
        raise InputError(
            f"the tuned grid spans λ from {first:.4g} to {last:.4g}, outside the λ range "
            f"[{low:.4g}, {high:.4g}] of the run's schedule "
            f"{describe_identity(schedule_identity(schedule))}: it cannot be re-mapped; use a "
            "grid tuned on this schedule, or a spacing"
        )
    lams = grid.lams.clamp(low, high)
    times = schedule.t_of_lam(lams).to(torch.float64)
    times = times.clamp(float(schedule.t_min), float(schedule.t_max))
    try:
        return spacings.explicit(schedule, times)
    except ValueError as error:
        raise InputError(f"the tuned grid re-mapped to the run's schedule fails: {error}") from None


def bind_grid(
    grid: TunedGrid,
    schedule,
    sampler: SamplerBase,
    network: dict[str, Any] | None = None,
    nfe: int | None = None,
    label: str = "the tuned grid",
) -> BoundGrid:
    """The times a run of ``sampler`` on ``schedule`` uses from ``grid``, checked (see the module
    description).

    Args:
        grid: The tuned grid.
        schedule: The run's schedule (the network's).
        sampler: The sampler that runs (built on ``schedule``).
        network: The run's network identity ``{"name", "sha256"}``; None: unknown.
        nfe: The budget of network calls; None: not checked.
        label: How messages name the grid (e.g. ``"grid file g.json entry 2"``).

    Returns:
        The [`BoundGrid`][mrs_numerics.models.grid_binding.BoundGrid].

    Raises:
        InputError: If the grid's schedule is unknown, or another schedule that the grid cannot
            be re-mapped to, or a run on it needs more calls than ``nfe``.
    """
    notes: list[str] = []
    warned: list[str] = []
    if grid.schedule is None:
        raise InputError(
            f"{label} (a version-1 record for {grid.model or 'an unnamed network'}) does not "
            "say which schedule it was tuned on; re-tune it with this version of mrs-numerics"
        )
    target = schedule_identity(schedule)
    differences = identity_differences(grid.schedule, target)
    times, remapped = grid.timesteps, False
    if differences:
        times, remapped = remapped_times(grid, schedule), True
        shown = "; ".join(differences[:3]) + (" …" if len(differences) > 3 else "")
        warned.append(
            f"{label} was tuned on schedule {describe_identity(grid.schedule)}, the run's is "
            f"{describe_identity(target)} ({shown}): re-mapped through λ"
        )
    calls = sampler.calls(times.numel() - 1)
    if nfe is not None and calls > nfe:
        raise InputError(
            f"{label} has {times.numel() - 1} steps, which {sampler.solver_id} runs in {calls} "
            f"network calls, above the budget of {nfe} NFE (use a grid tuned for "
            f"{sampler.solver_id}, or a larger budget)",
            advice=Advice("nfe", calls, "to spend them"),
        )
    configuration = sampler_configuration(sampler)
    if not same_sampler(grid.sampler, configuration):
        warned.append(
            f"{label} was tuned for {describe_configuration(grid.sampler)}, the run uses "
            f"{describe_configuration(configuration)}"
        )
    if network is None:
        notes.append("the run's network is unknown: not compared with the grid's")
    elif same_network(grid.network, network) is False:
        warned.append(
            f"{label} was tuned for network {describe_network(grid.network)}, the run uses "
            f"{describe_network(network)}"
        )
    for line in warned:
        warn(line, GridTransferWarning)
    return BoundGrid(times, calls, warned + notes, remapped)
