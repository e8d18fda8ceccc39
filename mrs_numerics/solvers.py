"""The solver registry: one canonical id per solver, with its declared orders and cost.

Ids (used everywhere: Python, CLI, JSON, reports):

- ``mrs-<ode|sde>-<order>-<data|noise>``: the MR Sampler (ODE orders 1–3, SDE orders 1–2);
- ``euler-maruyama``, ``posterior``, ``euler-ode``, ``heun-ode``: the baselines.

Declared orders state only what is proved (``derivations.order_proofs`` for the local order of
every update; the classical results for the baselines) or measured by the verification study:
``order`` is the global order of an ODE solver in the largest λ-step; ``strong_order`` and
``weak_order`` describe SDE solvers. The MR Sampler's second-order SDE declares strong order 1
(its gain is in the weak error, theory.md §7) and weak order 2: measured by the exact-moment weak
study on Gaussian data (affine model), not proved for general nonlinear networks.
"""

from __future__ import annotations

from dataclasses import dataclass

from mrs_numerics._generated import registry

MRS_START_EXTRA_CALLS = {("ode", 3): 1}
"""Extra network calls of the default order-preserving start (singlestep first step)."""


@dataclass(frozen=True)
class SolverInfo:
    """What a solver declares about itself."""

    id: str
    family: str
    method: str
    solver_prediction: str
    order: int | None
    strong_order: float | None
    weak_order: float | None
    nfe_per_step: int
    start_extra_nfe: int
    description: str


def _mrs_solvers() -> dict[str, SolverInfo]:
    solvers = {}
    for info in registry.UPDATES.values():
        if info["scheme"] != "multistep":
            continue
        method, prediction, order = info["method"], info["prediction"], info["order"]
        solver_id = f"mrs-{method}-{order}-{prediction}"
        is_ode = method == "ode"
        solvers[solver_id] = SolverInfo(
            id=solver_id,
            family="mrs",
            method=method,
            solver_prediction=prediction,
            order=order if is_ode else None,
            strong_order=None if is_ode else 1.0,
            weak_order=None if is_ode else float(order),
            nfe_per_step=info["model_calls"],
            start_extra_nfe=MRS_START_EXTRA_CALLS.get((method, order), 0),
            description=(
                f"MR Sampler, {method.upper()} {prediction}-form multistep of order {order} "
                f"(local error O(h^{info['local_error_power']}), proved symbolically)"
            ),
        )
    return solvers


def _baseline_solvers() -> dict[str, SolverInfo]:
    try:
        from mrs_numerics._generated import baselines_registry
    except ImportError:
        return {}
    solvers = {}
    for info in baselines_registry.BASELINES.values():
        solvers[info["id"]] = SolverInfo(
            id=info["id"],
            family="baseline",
            method=info["method"],
            solver_prediction=info["prediction"],
            order=info["order"] if info["method"] == "ode" else None,
            strong_order=info.get("strong_order"),
            weak_order=info.get("weak_order"),
            nfe_per_step=info["model_calls"],
            start_extra_nfe=0,
            description=info.get("description", info["id"]),
        )
    return solvers


SOLVERS: dict[str, SolverInfo] = {**_mrs_solvers(), **_baseline_solvers()}
"""Every solver by canonical id."""


def solver_info(solver_id: str) -> SolverInfo:
    """The registry entry of ``solver_id`` (a clear error listing the known ids otherwise)."""
    try:
        return SOLVERS[solver_id]
    except KeyError:
        known = ", ".join(sorted(SOLVERS))
        raise ValueError(f"unknown solver {solver_id!r}; known solvers: {known}") from None


def parse_mrs_id(solver_id: str) -> tuple[str, int, str]:
    """(method, order, solver_prediction) of an ``mrs-…`` id."""
    info = solver_info(solver_id)
    if info.family != "mrs":
        raise ValueError(f"{solver_id!r} is a baseline, not an MR Sampler id")
    _, method, order, prediction = solver_id.split("-")
    return method, int(order), prediction


def make_sampler(solver_id: str, schedule, model_prediction: str = "noise", **options):
    """A sampler for ``solver_id`` on ``schedule`` (options are the sampler's keyword arguments)."""
    info = solver_info(solver_id)
    if info.family == "mrs":
        from mrs_numerics.samplers import MRSampler

        method, order, prediction = parse_mrs_id(solver_id)
        return MRSampler(schedule, method, order, prediction, model_prediction, **options)
    from mrs_numerics.baselines import BaselineSampler

    return BaselineSampler(schedule, solver_id, model_prediction=model_prediction, **options)
