"""The solver registry: one canonical id per solver, with its declared orders and cost.

Ids (used everywhere: Python, CLI, JSON, reports):

- ``mrs-<ode|sde>-<order>-<data|noise>``: the MR Sampler (ODE orders 1–3, SDE orders 1–2);
- ``mrs-ode-<p>-<data|noise>-unic``: the MR Sampler's ODE multistep of order p with the UniC-style
  corrector (see [Corrector](../theory.md#corrector)): order p + 1 at one call per step, p = 1, 2,
  3 (the p of UniPC-p; p = 3 starts with the third-order singlestep step, +2 calls);
- ``euler-maruyama``, ``posterior``, ``euler-ode``, ``heun-ode``: the baselines.

Everything here is read from the generated registries
([`UPDATES`][mrs_numerics._generated.registry.UPDATES],
[`BASELINES`][mrs_numerics._generated.baselines_registry.BASELINES]), never restated: the
orders an MR Sampler offers are the orders of its generated multistep updates, and the cost of
its order-preserving start is the extra calls of the generated singlestep update it starts with;
the corrected ids are the generated corrector updates, their order the corrector's.

Declared orders state only what is proved
([`derivations.order_proofs`][derivations.order_proofs] for the local order of every update; the
classical results for the baselines) or measured by the verification study: ``order`` is the
global order of an ODE solver in the largest λ-step; ``strong_order`` and ``weak_order``
describe SDE solvers. The MR Sampler's second-order SDE declares strong order 1 (its gain is in
the weak error, see [Strong and weak order](../theory.md#strong-and-weak-order)) and weak order
2: measured by the exact-moment weak study on Gaussian data (affine model), not proved for
general nonlinear networks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from mrs_numerics._generated.baselines_registry import BASELINES
from mrs_numerics._generated.registry import UPDATES
from mrs_numerics._generated.types import UpdateInfo

METHODS = ("ode", "sde")
"""The equations the MR Sampler integrates: the PF-ODE and the reverse SDE."""

MRS_PREFIX = "mrs"
"""First part of every MR Sampler id."""

CORRECTORS = ("unic",)
"""Correctors of the MR Sampler's ODE (the optional fifth part of its id)."""


def multistep_update(method: str, prediction: str, order: int) -> UpdateInfo:
    """The generated multistep update of (method, prediction form, order)."""
    return UPDATES[f"{method}_{prediction}_multistep_{order}"]


def corrector_update(method: str, prediction: str, order: int) -> UpdateInfo | None:
    """The generated corrector of the order-``order`` multistep predictor (order + 1), or None.

    Its stages are the predictor (ending with the call at the predicted state) and the
    corrector through that output; see [Corrector](../theory.md#corrector).
    """
    return UPDATES.get(f"{method}_{prediction}_corrector_{order + 1}")


def start_update(
    method: str, prediction: str, order: int, corrector: str | None = None
) -> UpdateInfo | None:
    """The order-preserving first step of a multistep (or corrected) run of order ``order``.

    ``order`` is the multistep (predictor) order written in the id. The update's generated
    ``start`` is read, never restated: a first step of local order K keeps global order K (see
    [Order-preserving start](../theory.md#order-preserving-start)). None where the warm-up keeps
    it (multistep orders 1, 2; corrected orders 2, 3); multistep order 3 starts with the
    singlestep update of order 2 (+1 call), corrected order 4 (``mrs-ode-3-*-unic``) with the
    singlestep update of order 3 (+2 calls).
    """
    if corrector is None:
        update = multistep_update(method, prediction, order)
    else:
        update = corrector_update(method, prediction, order)
    if update is None or update.start is None:
        return None
    return UPDATES[update.start]


def _start_extra_nfe(update: UpdateInfo) -> int:
    """Extra calls of the update's generated order-preserving start (0 without one)."""
    if update.start is None:
        return 0
    return UPDATES[update.start].model_calls - update.model_calls


def _orders() -> dict[str, tuple[int, ...]]:
    orders: dict[str, set[int]] = {method: set() for method in METHODS}
    for update in UPDATES.values():
        if update.scheme == "multistep":
            orders[update.method].add(update.order)
    return {method: tuple(sorted(values)) for method, values in orders.items()}


ORDERS: dict[str, tuple[int, ...]] = _orders()
"""The orders of the MR Sampler per method, from the generated multistep updates."""


@dataclass(frozen=True)
class SolverInfo:
    """What a solver declares about itself.

    Attributes:
        id: The canonical id.
        family: ``"mrs"`` (the MR Sampler) or ``"baseline"``.
        method: ``"ode"`` or ``"sde"``.
        solver_prediction: The form the steps consume (``"data"`` or ``"noise"``).
        order: Global order in the largest step (ODE solvers; None for SDEs).
        strong_order: Strong order (SDE solvers).
        weak_order: Weak order (SDE solvers).
        nfe_per_step: Network calls per step.
        start_extra_nfe: Extra calls of the default order-preserving start.
        description: One line for listings.
        corrector: The MR Sampler's corrector (``"unic"``), or None.
    """

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
    corrector: str | None = None

    def nfe(self, steps: int) -> int:
        """Network calls of ``steps`` steps with the default start.

        The start's extra calls are made only when there is a step after the first (a single
        step is taken at first order).
        """
        return (self.start_extra_nfe if steps > 1 else 0) + steps * self.nfe_per_step


class MrsId(NamedTuple):
    """The parts of an MR Sampler id.

    Attributes:
        method: ``"ode"`` or ``"sde"``.
        order: The multistep (predictor) order written in the id.
        prediction: The solver prediction, ``"data"`` or ``"noise"``.
        corrector: ``"unic"`` for a corrected id, else None.
    """

    method: str
    order: int
    prediction: str
    corrector: str | None


def mrs_id(method: str, order: int, prediction: str, corrector: str | None = None) -> str:
    """The id of an MR Sampler, e.g. ``mrs-ode-2-data`` or ``mrs-ode-2-data-unic``."""
    suffix = "" if corrector is None else f"-{corrector}"
    return f"{MRS_PREFIX}-{method}-{order}-{prediction}{suffix}"


def _corrected_solver(update: UpdateInfo) -> SolverInfo:
    """The ``…-unic`` entry of a generated corrector update (its predictor one order lower)."""
    prediction, order = update.prediction, update.order
    solver_id = mrs_id(update.method, order - 1, prediction, CORRECTORS[0])
    return SolverInfo(
        id=solver_id,
        family="mrs",
        method=update.method,
        solver_prediction=prediction,
        order=order,
        strong_order=None,
        weak_order=None,
        nfe_per_step=update.model_calls,
        start_extra_nfe=_start_extra_nfe(update),
        description=(
            f"MR Sampler, ODE {prediction}-form multistep of order {order - 1} with the UniC "
            f"corrector: order {order} at one call per step (local error "
            f"O(h^{update.local_error_power}) with reused outputs, proved symbolically)"
        ),
        corrector=CORRECTORS[0],
    )


def _mrs_solvers() -> dict[str, SolverInfo]:
    solvers = {}
    for update in UPDATES.values():
        if update.scheme == "corrector":
            solver = _corrected_solver(update)
            solvers[solver.id] = solver
        if update.scheme != "multistep":
            continue
        method, prediction, order = update.method, update.prediction, update.order
        is_ode = method == "ode"
        solver_id = mrs_id(method, order, prediction)
        solvers[solver_id] = SolverInfo(
            id=solver_id,
            family="mrs",
            method=method,
            solver_prediction=prediction,
            order=order if is_ode else None,
            strong_order=None if is_ode else 1.0,
            weak_order=None if is_ode else float(order),
            nfe_per_step=update.model_calls,
            start_extra_nfe=_start_extra_nfe(update),
            description=(
                f"MR Sampler, {method.upper()} {prediction}-form multistep of order {order} "
                f"(local error O(h^{update.local_error_power}), proved symbolically)"
            ),
        )
    return solvers


def _baseline_solvers() -> dict[str, SolverInfo]:
    return {
        info.id: SolverInfo(
            id=info.id,
            family="baseline",
            method=info.method,
            solver_prediction=info.prediction,
            order=info.order if info.method == "ode" else None,
            strong_order=info.strong_order,
            weak_order=info.weak_order,
            nfe_per_step=info.model_calls,
            start_extra_nfe=0,
            description=info.id,
        )
        for info in BASELINES.values()
    }


SOLVERS: dict[str, SolverInfo] = {**_mrs_solvers(), **_baseline_solvers()}
"""Every solver by canonical id."""


def solver_info(solver_id: str) -> SolverInfo:
    """The registry entry of ``solver_id`` (a clear error listing the known ids otherwise)."""
    try:
        return SOLVERS[solver_id]
    except (KeyError, TypeError):
        known = ", ".join(sorted(SOLVERS))
        raise ValueError(f"unknown solver {solver_id!r}; known solvers: {known}") from None


def parse_mrs_id(solver_id: str) -> MrsId:
    """(method, order, prediction, corrector) of an ``mrs-…`` id; order is the id's number."""
    info = solver_info(solver_id)
    if info.family != "mrs":
        raise ValueError(f"{solver_id!r} is a baseline, not an MR Sampler id")
    _, method, order, prediction, *corrector = solver_id.split("-")
    return MrsId(method, int(order), prediction, corrector[0] if corrector else None)
