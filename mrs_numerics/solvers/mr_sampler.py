"""The MR Sampler: semi-analytical exponential-integrator solvers of the MR PF-ODE and reverse SDE.

See [Semi-analytical solutions](../theory.md#semi-analytical-solutions) and
[Exponential-integrator updates](../theory.md#exponential-integrator-updates).

``MRSampler(schedule, method, order, solver_prediction, model_prediction, …).sample(model, mu, …)``
integrates the reverse MR equation from the prior at the first time to the last, with

- ``method="ode"``: orders 1, 2, 3 (multistep, one network call per step);
- ``method="sde"``: orders 1, 2 (multistep; exact Gaussian noise of the linear part);
- ``solver_prediction``: the semi-analytical form integrated, "data" (bounded weights, the
  default) or "noise"; ``model_prediction``: what the network returns ("noise", "data",
  "velocity" or "score"), converted at each call.

**Start** (see [Order-preserving start](../theory.md#order-preserving-start)). A k-step method needs
k − 1 earlier outputs. ``start="singlestep"`` (default) keeps the declared global order: order 3
takes its first step with the second-order singlestep update through the λ-midpoint of the first
interval (local error O(h³), **one extra network call**), then one multistep-2 step, then
multistep-3; orders 1 and 2 need nothing extra (a first-order first step has local error O(h²),
enough for global order 2). ``start="warmup"`` is the classical DPM-Solver warm-up (orders 1, 2, …
on the first steps, no extra call) which caps order 3 at 2.

**Corrector** (see [Corrector](../theory.md#corrector)). ``corrector="unic"`` (ODE, orders 1, 2, 3)
follows each multistep predictor of order k with one call at the predicted state and recomputes
the step through that output (order k + 1); the output is the next step's m0, so the run still
makes one call per step. The last step is the predictor alone (its call would be an extra one).
Order 3 (corrected order 4) with ``start="singlestep"`` takes its first step with the third-order
singlestep update (calls at λ₀ + h/3 and λ₀ + 2h/3: **two extra calls**), uncorrected; the next
step calls the model at its own state.
A grid ending where σ = 0 returns the data prediction at the last predicted state.

**lower_order_final** lowers the order of the last steps when N < 15 steps (order ≤ steps left).
The default (None) follows the measurement in
[`LOWER_ORDER_FINAL_DEFAULTS`][mrs_numerics.solvers.mr_sampler.LOWER_ORDER_FINAL_DEFAULTS]: off
for the ODE (it costs 1–3 dB of solver fidelity at 3–10 NFE on the shipped networks), except
the noise-form corrector; on for the SDE (not re-measured). The table
behind it is in the docs' "Few-step sampling" page (``benchmarks/few_step_defaults.py``).

**σ = 0 end.** A grid ending where σ = 0 (IR-SDE tables with α₀ = 1) takes its last step as the
exact limit of the first-order data-form step: the data prediction. The noise form is undefined
there and is refused.
"""

from __future__ import annotations

from fractions import Fraction

import torch

from mrs_numerics.schedules.protocol import Schedule
from mrs_numerics.solvers import registry
from mrs_numerics.solvers.base import SamplerBase
from mrs_numerics.solvers.engine import Evaluation, Plan, Stage, Step, cast_coefficients
from mrs_numerics.solvers.instability import warn_if_unstable
from mrs_numerics.solvers.kernels import (
    CoefficientBatch,
    PendingCoefficients,
    data_step_to_clean,
    stage_function,
)
from mrs_numerics.solvers.options import SamplerOptions, Thresholding
from mrs_numerics.solvers.parameterization import SOLVER_PREDICTIONS, check_prediction
from mrs_numerics.solvers.protocols import NoiseSource

STARTS = ("singlestep", "warmup")
"""Start procedures: order-preserving singlestep first step, or the classical warm-up."""
LOWER_ORDER_FINAL_DEFAULTS: dict[tuple[str, str, str | None], bool] = {
    ("ode", "data", None): False,
    ("ode", "noise", None): False,
    ("ode", "data", "unic"): False,
    ("ode", "noise", "unic"): True,
    ("sde", "data", None): True,
    ("sde", "noise", None): True,
}
"""Default lower_order_final per (method, solver prediction, corrector), from
``benchmarks/few_step_defaults.py`` on ``denoise-data`` (held-out 64² crops, uniform λ, NFE
3–15): switching it off raised the fidelity of every ODE multistep of order ≥ 2 at 3–10 NFE by
0.6–3 dB (order 3 is mixed at 4–5 NFE and better at ≥ 6), and lowered only that of the
noise-form corrector. The SDE keeps it on (not re-measured)."""
LOWER_ORDER_FINAL_BELOW = 15
"""lower_order_final acts when the run has fewer steps than this (as in diffusers)."""
OFFICIAL_LOWER_ORDER_BELOW = 10
"""``lower_order_final="official"`` acts when the run has fewer steps than this."""
SINGLESTEP_START_PARAMETERS = {"r": 0.5, "r1": 1 / 3}
"""Free stage positions of the singlestep starts, as fractions of the first λ-interval: the
second-order start calls the model at the λ-midpoint (r = 1/2); the third-order start (corrected
order 4) at r₁ = 1/3 and at r₂ = 2/3, which its order proof fixes (as in DPM-Solver-3)."""


class MRSampler(SamplerBase):
    """The MR Sampler (Li et al., ICLR 2025) on generated, proved coefficients.

    Args:
        schedule: The MR schedule (a [`Schedule`][mrs_numerics.schedules.protocol.Schedule]).
        method: ``"ode"`` (the probability-flow ODE) or ``"sde"`` (the reverse SDE).
        order: The multistep order: 1, 2, 3 for the ODE; 1, 2 for the SDE.
        solver_prediction: The semi-analytical form integrated: ``"data"`` (bounded
            weights; the default) or ``"noise"``.
        model_prediction: What the model returns: ``"noise"``, ``"data"``, ``"velocity"``
            or ``"score"``.
        grid: Step spacing for ``steps=N``: ``"lambda"`` (default), ``"time"``,
            ``"karras"``.
        lower_order_final: Lower the order of the last steps (order ≤ steps left) when the
            run has fewer than 15 steps; None (default): the measured default of
            [`LOWER_ORDER_FINAL_DEFAULTS`][mrs_numerics.solvers.mr_sampler.LOWER_ORDER_FINAL_DEFAULTS];
            ``"official"``: the official MR Sampler code's rule (below 10 steps, step i < N − 1
            takes order ≤ N − 1 − i and the last step the full order; see
            [`step_orders`][mrs_numerics.solvers.mr_sampler.MRSampler.step_orders]).
        start: ``"singlestep"`` (order-preserving; +1 call for order 3, +2 for order 3 with
            the corrector) or ``"warmup"``.
        corrector: None, or ``"unic"`` (ODE orders 1, 2, 3): the UniC-style corrector, order
            + 1 at no extra call per step (order 3: +2 calls for its start).
        t_start: First (noisiest) time of the grid; default the schedule's ``t_max``.
        t_end: Last time; default ``t_min``, or where σ/Λ = 2e-3 if σ(t_min) = 0.
        lam_min: Start no noisier than λ = lam_min.
        rho: The Karras spacing's ρ.
        denoise_last: One more network call at the last time returns x̂₀ there.
        clip_x0: Clamp every x̂₀ to ``(low, high)``.
        thresholding: Dynamic thresholding of x̂₀ (``True``: ratio 0.995, least threshold 1).
        noise_fn: A [`NoiseSource`][mrs_numerics.solvers.protocols.NoiseSource] for the SDE
            noise; default: draws from the ``generator`` given to ``sample``.
    """

    def __init__(
        self,
        schedule: Schedule,
        method: str = "ode",
        order: int = 2,
        solver_prediction: str = "data",
        model_prediction: str = "noise",
        *,
        grid: str = "lambda",
        lower_order_final: bool | str | None = None,
        start: str = "singlestep",
        corrector: str | None = None,
        t_start: float | None = None,
        t_end: float | None = None,
        lam_min: float | None = None,
        rho: float = 7.0,
        denoise_last: bool = False,
        clip_x0: tuple[float, float] | None = None,
        thresholding: Thresholding | bool | None = None,
        noise_fn: NoiseSource | None = None,
    ):
        if method not in registry.METHODS:
            raise ValueError(f"unknown method {method!r}; allowed: {', '.join(registry.METHODS)}")
        if order not in registry.ORDERS[method]:
            raise ValueError(
                f"order {order!r} is not available for method {method!r}; "
                f"allowed: {', '.join(map(str, registry.ORDERS[method]))}"
            )
        check_prediction(solver_prediction, SOLVER_PREDICTIONS)
        if start not in STARTS:
            raise ValueError(f"unknown start {start!r}; allowed: {', '.join(STARTS)}")
        self._corrector_update = _corrector_update(method, order, solver_prediction, corrector)
        options = SamplerOptions(
            model_prediction=model_prediction,
            grid=grid,
            t_start=t_start,
            t_end=t_end,
            lam_min=lam_min,
            rho=rho,
            denoise_last=denoise_last,
            clip_x0=clip_x0,
            thresholding=thresholding,  # type: ignore[arg-type]
            noise_fn=noise_fn,
        )
        super().__init__(schedule, options)
        self.method = method
        self.order = order
        self.solver_prediction = solver_prediction
        if lower_order_final is None:
            lower_order_final = LOWER_ORDER_FINAL_DEFAULTS[method, solver_prediction, corrector]
        if lower_order_final not in (True, False, "official"):
            raise ValueError(
                f"lower_order_final must be True, False, None or 'official', got "
                f"{lower_order_final!r}"
            )
        self.lower_order_final: bool | str = (
            "official" if lower_order_final == "official" else bool(lower_order_final)
        )
        self.start = start
        self.corrector = corrector
        self._start_update = (
            registry.start_update(method, solver_prediction, order, corrector)
            if start == "singlestep"
            else None
        )

    @property
    def solver_id(self) -> str:  # type: ignore[override]
        """Canonical id, e.g. ``mrs-ode-2-data`` or ``mrs-ode-2-data-unic``."""
        return registry.mrs_id(self.method, self.order, self.solver_prediction, self.corrector)

    def __repr__(self) -> str:
        return (
            f"MRSampler({self.solver_id}, model_prediction={self.model_prediction!r}, "
            f"grid={self.options.grid!r}, start={self.start!r}, "
            f"lower_order_final={self.lower_order_final})"
        )

    def step_orders(self, steps: int) -> list[int]:
        """Order of each step's multistep update (the predictor with a corrector).

        From the start procedure, the declared order and lower_order_final; a corrected step
        has one order more. A run of one step takes it at first order (no start call).

        With ``lower_order_final=True`` and N < 15 steps, step i takes order ≤ N − i (order 2,
        5 steps: 1, 2, 2, 2, 1); the singlestep start uses no earlier outputs and is not
        lowered. With ``"official"`` and N < 10, as the official MR Sampler
        code does, step i < N − 1 takes order ≤ N − 1 − i and the last step its full order
        (order 2, 5 steps: 1, 2, 2, 1, 2); a start it lowers becomes a first-order step.
        """
        orders = []
        start = self._start_update
        start_order: int = 0 if start is None or steps < 2 else start.order  # 0: no start
        for i in range(steps):
            is_start = i == 0 and start_order > 0
            available = start_order if is_start else min(self.order, i + 1)
            if self.lower_order_final == "official":
                if steps < OFFICIAL_LOWER_ORDER_BELOW and i < steps - 1:
                    available = min(available, steps - 1 - i)
            elif self.lower_order_final and steps < LOWER_ORDER_FINAL_BELOW and not is_start:
                available = min(available, steps - i)
            if is_start and available != start_order:
                available = 1  # a lowered start: only m0 exists, so a first-order step
            orders.append(available)
        return orders

    def plan(
        self, steps: int | None = None, timesteps=None, device=None, dtype=torch.float32
    ) -> Plan:
        """Compile a run: grid, per-step updates and their float64 coefficients (cast to dtype)."""
        times = self.resolve_times(steps, timesteps)
        n = times.numel() - 1
        sched = self.schedule
        lams = sched.lam(times).tolist()
        alphas, sigmas = sched.alpha(times).tolist(), sched.sigma(times).tolist()
        moments = times.tolist()
        orders = self.step_orders(n)
        steps_out = []
        corrected = self._corrector_update is not None
        start = self._start_update
        batch = CoefficientBatch()
        carry = None
        for i in range(n):
            first = None
            if carry is None:
                first = Evaluation("m0", moments[i], alphas[i], sigmas[i])
            if sigmas[i + 1] == 0.0:
                stage = self._clean_end_stage()
                steps_out.append(Step(moments[i], 0.0, first, [stage], "step to σ = 0"))
                continue
            grid = (batch, i, orders[i], moments, lams, alphas, sigmas)
            carry = None
            if i == 0 and start is not None and orders[0] == start.order:
                stages, description = self._start_stages(*grid)
            elif corrected and i < n - 1:
                stages, description, carry = self._corrected(*grid)
            else:
                stages, description = self._stages(*grid)
            steps_out.append(Step(moments[i], moments[i + 1], first, stages, description, carry))
        batch.evaluate(dtype, device)
        for step in steps_out:
            for stage in step.stages:
                if isinstance(stage.coefficients, PendingCoefficients):
                    stage.coefficients = batch.resolve(stage.coefficients)
                else:
                    stage.coefficients = cast_coefficients(stage.coefficients, dtype, device)
        plan = Plan(
            times,
            steps_out,
            self.order - 1,
            self.solver_prediction,
            float(sched.max_sigma),
            self.final_evaluation(times),
        )
        warn_if_unstable(self.solver_id, plan)
        return plan

    def _start_stages(self, batch, i, order, times, lams, alphas, sigmas):
        """The singlestep start: its intermediate stages call the model inside the first step.

        Stage k ends at λ_0 + c_k h (c_k its generated ``end``: a free position from
        [`SINGLESTEP_START_PARAMETERS`][mrs_numerics.solvers.mr_sampler.SINGLESTEP_START_PARAMETERS]
        or one the order proof fixes) and its output, ``stage{k+1}``, is a node of the next.
        No corrector follows: the next step evaluates its own m0.
        """
        start = self._start_update
        assert start is not None and i == 0
        h = lams[1] - lams[0]
        values = {name: SINGLESTEP_START_PARAMETERS[name] for name in start.parameters}
        *intermediate, last = start.stages
        stages = []
        for k, stage in enumerate(intermediate):
            position = values.get(stage.end)
            position = float(Fraction(stage.end)) if position is None else position
            lam = torch.tensor(lams[0] + position * h, dtype=torch.float64)
            t = self.schedule.t_of_lam(lam)
            a, s = float(self.schedule.alpha(t)), float(self.schedule.sigma(t))
            pending = batch.request(
                stage_function(stage), h, *values.values(), alphas[0], sigmas[0], a, s
            )
            evaluation = Evaluation(f"stage{k + 1}", float(t), a, s)
            stages.append(Stage(pending, stage.labels, evaluation))
        ends = (alphas[0], sigmas[0], alphas[1], sigmas[1])
        pending = batch.request(stage_function(last), h, *values.values(), *ends)
        stages.append(Stage(pending, last.labels))
        extra = start.model_calls - 1
        calls = "call" if extra == 1 else "calls"
        return stages, f"{start.name} start (+{extra} network {calls})"

    def _stages(self, batch, i, order, times, lams, alphas, sigmas):
        h = lams[i + 1] - lams[i]
        ends = (alphas[i], sigmas[i], alphas[i + 1], sigmas[i + 1])
        update = registry.multistep_update(self.method, self.solver_prediction, order)
        ratios = [(lams[i - j + 1] - lams[i - j]) / h for j in range(1, order)]
        (stage,) = update.stages
        pending = batch.request(stage_function(stage), h, *ratios, *ends)
        return [Stage(pending, stage.labels)], update.name

    def _corrected(self, batch, i, order, times, lams, alphas, sigmas):
        """Predictor of ``order``, its call at λ_{i+1} (carried on), the corrector through it.

        The call's label is the corrector's first (its node 1, the generated ``predictor``).
        """
        update = registry.corrector_update(self.method, self.solver_prediction, order)
        assert update is not None
        h = lams[i + 1] - lams[i]
        ends = (alphas[i], sigmas[i], alphas[i + 1], sigmas[i + 1])
        ratios = [(lams[i - j + 1] - lams[i - j]) / h for j in range(1, order)]
        predictor, corrector = (
            Stage(batch.request(stage_function(stage), h, *ratios, *ends), stage.labels)
            for stage in update.stages
        )
        label = corrector.labels[0]
        predictor.evaluate = Evaluation(label, times[i + 1], alphas[i + 1], sigmas[i + 1])
        return [predictor, corrector], update.name, label

    def _clean_end_stage(self) -> Stage:
        if self.solver_prediction != "data":
            raise ValueError(
                "the grid ends where σ = 0; only a data-form step can land there (it returns the "
                "data prediction). Use solver_prediction='data' or end the grid at t_end > "
                f"{self.schedule.t_min}"
            )
        return Stage(data_step_to_clean(), ("m0",))


def _corrector_update(method: str, order: int, prediction: str, corrector: str | None):
    """The generated corrector of a corrected sampler (None without one); refuses the others."""
    if corrector is None:
        return None
    if corrector not in registry.CORRECTORS:
        allowed = ", ".join(registry.CORRECTORS)
        raise ValueError(f"unknown corrector {corrector!r}; allowed: None, {allowed}")
    if method != "ode":
        raise ValueError(
            f"the {corrector!r} corrector is derived and proved for the ODE only; "
            "use method='ode' or corrector=None"
        )
    update = registry.corrector_update(method, prediction, order)
    if update is None:
        raise ValueError(f"the {corrector!r} corrector is not derived for ODE order {order}")
    return update
