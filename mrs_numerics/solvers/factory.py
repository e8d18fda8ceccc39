"""``make_sampler``: a sampler from a solver id of the registry."""

from __future__ import annotations

from mrs_numerics.schedules.protocol import Schedule
from mrs_numerics.solvers.base import SamplerBase
from mrs_numerics.solvers.baselines import BaselineSampler
from mrs_numerics.solvers.mr_sampler import MRSampler
from mrs_numerics.solvers.registry import parse_mrs_id, solver_info


def make_sampler(
    solver_id: str, schedule: Schedule, model_prediction: str = "noise", **options
) -> SamplerBase:
    """A sampler for ``solver_id`` on ``schedule``.

    Args:
        solver_id: A canonical id of [`SOLVERS`][mrs_numerics.solvers.registry.SOLVERS],
            e.g. ``"mrs-ode-2-data"``, ``"mrs-ode-2-data-unic"`` or ``"posterior"``.
        schedule: The MR schedule.
        model_prediction: What the model returns (noise, data, velocity or score).
        **options (Any): Keyword options of
            [`MRSampler`][mrs_numerics.solvers.mr_sampler.MRSampler] or
            [`BaselineSampler`][mrs_numerics.solvers.baselines.BaselineSampler].

    Returns:
        An [`MRSampler`][mrs_numerics.solvers.mr_sampler.MRSampler] for ``mrs-*`` ids, else a
        [`BaselineSampler`][mrs_numerics.solvers.baselines.BaselineSampler].

    Raises:
        ValueError: If ``solver_id`` is unknown or an option is refused.
    """
    info = solver_info(solver_id)
    if info.family == "mrs":
        if "corrector" in options:
            raise ValueError(
                "the corrector is part of the solver id (e.g. 'mrs-ode-2-data-unic'); "
                "do not pass corrector= to make_sampler"
            )
        method, order, prediction, corrector = parse_mrs_id(solver_id)
        return MRSampler(
            schedule, method, order, prediction, model_prediction, corrector=corrector, **options
        )
    return BaselineSampler(schedule, solver_id, model_prediction, **options)
