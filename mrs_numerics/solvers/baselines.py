"""Baseline samplers, strided correctly for any number of steps, on generated coefficients.

- ``euler-maruyama``: Euler–Maruyama on the reverse SDE (IR-SDE's default sampler);
- ``posterior``: IR-SDE's optimal reverse step from s to t given x̂₀ (proved equal to the
  first-order data-form SDE step of the MR Sampler, ``derivations.baselines``);
- ``euler-ode``, ``heun-ode``: Euler and Heun (explicit trapezoid, 2 calls per step) on the PF-ODE.

"Strided" means every step goes from the grid time s to the next grid time t, whatever their
distance, with coefficients for that distance: the official code's baselines below 100 NFE
advance one training index per call instead, which makes their few-step numbers meaningless.
Heun's corrector divides by σ_t, so a last step ending at σ = 0 is taken with Euler (as
k-diffusion does); it then costs one call.
"""

from __future__ import annotations

import torch

from mrs_numerics._generated import baselines_torch
from mrs_numerics._generated.baselines_registry import BASELINES
from mrs_numerics.schedules.protocol import Schedule
from mrs_numerics.solvers.base import SamplerBase
from mrs_numerics.solvers.engine import Evaluation, Plan, Stage, Step, cast_coefficients
from mrs_numerics.solvers.options import SamplerOptions, Thresholding
from mrs_numerics.solvers.protocols import NoiseSource

BASELINE_IDS = tuple(BASELINES)
"""The ids of the baselines."""
SIGMA_ZERO_FALLBACK = "euler-ode"
"""The baseline whose step ends a run at σ = 0 for a baseline undefined there (Heun)."""


class BaselineSampler(SamplerBase):
    """A strided baseline (see the module docstring) with the MR Sampler's ``sample`` API.

    Args:
        schedule: The MR schedule (a [`Schedule`][mrs_numerics.schedules.protocol.Schedule]).
        solver: ``"euler-maruyama"``, ``"posterior"``, ``"euler-ode"`` or ``"heun-ode"``.
        model_prediction: What the model returns (noise, data, velocity or score).
        grid: Step spacing for ``steps=N``: ``"time"`` (default), ``"lambda"``, ``"karras"``.
        t_start: First (noisiest) time of the grid; default the schedule's ``t_max``.
        t_end: Last time; default ``t_min``, or where σ/Λ = 2e-3 if σ(t_min) = 0.
        lam_min: Start no noisier than λ = lam_min.
        rho: The Karras spacing's ρ.
        clip_x0: Clamp every x̂₀ to ``(low, high)``.
        thresholding: Dynamic thresholding of x̂₀ (``True`` for the defaults).
        noise_fn: A [`NoiseSource`][mrs_numerics.solvers.protocols.NoiseSource] for the SDE
            noise; default: draws from the ``generator`` given to ``sample``.
    """

    def __init__(
        self,
        schedule: Schedule,
        solver: str = "posterior",
        model_prediction: str = "noise",
        *,
        grid: str = "time",
        t_start: float | None = None,
        t_end: float | None = None,
        lam_min: float | None = None,
        rho: float = 7.0,
        clip_x0: tuple[float, float] | None = None,
        thresholding: Thresholding | bool | None = None,
        noise_fn: NoiseSource | None = None,
    ):
        if solver not in BASELINES:
            raise ValueError(f"unknown baseline {solver!r}; allowed: {', '.join(BASELINE_IDS)}")
        options = SamplerOptions(
            model_prediction=model_prediction,
            grid=grid,
            t_start=t_start,
            t_end=t_end,
            lam_min=lam_min,
            rho=rho,
            clip_x0=clip_x0,
            thresholding=thresholding,  # type: ignore[arg-type]
            noise_fn=noise_fn,
        )
        super().__init__(schedule, options)
        self.solver_id = solver
        self.info = BASELINES[solver]

    def __repr__(self) -> str:
        return (
            f"BaselineSampler({self.solver_id}, model_prediction={self.model_prediction!r}, "
            f"grid={self.options.grid!r})"
        )

    def _values(self, s, t) -> dict:
        sched = self.schedule
        return {
            "dt": s - t,
            "theta_s": sched.theta(s),
            "alpha_s": sched.alpha(s),
            "sigma_s": sched.sigma(s),
            "theta_t": sched.theta(t),
            "alpha_t": sched.alpha(t),
            "sigma_t": sched.sigma(t),
            "max_sigma": torch.tensor(sched.max_sigma, dtype=torch.float64),
        }

    def plan(
        self, steps: int | None = None, timesteps=None, device=None, dtype=torch.float32
    ) -> Plan:
        """Compile a run: grid and per-step float64 coefficients (cast to ``dtype``)."""
        times = self.resolve_times(steps, timesteps)
        sched = self.schedule
        plan_steps = []
        for i in range(times.numel() - 1):
            s, t = times[i], times[i + 1]
            values = self._values(s, t)
            first = Evaluation("m0", float(s), float(values["alpha_s"]), float(values["sigma_s"]))
            stages_info = self.info.stages
            description = self.solver_id
            if float(values["sigma_t"]) == 0.0 and not self.info.defined_at_sigma_zero:
                stages_info = BASELINES[SIGMA_ZERO_FALLBACK].stages
                description = f"{self.solver_id}: Euler last step to σ = 0"
            stages = []
            for index, stage_info in enumerate(stages_info):
                function = getattr(baselines_torch, stage_info.function)
                coefficients = function(*(values[a] for a in stage_info.arguments))
                evaluate = None
                if index + 1 < len(stages_info):
                    label = stages_info[index + 1].labels[-1]
                    evaluate = Evaluation(
                        label, float(t), float(sched.alpha(t)), float(sched.sigma(t))
                    )
                stages.append(Stage(coefficients, stage_info.labels, evaluate))
            plan_steps.append(Step(float(s), float(t), first, stages, description))
        for step in plan_steps:
            for stage in step.stages:
                stage.coefficients = cast_coefficients(stage.coefficients, dtype, device)
        return Plan(times, plan_steps, 0, self.info.prediction, float(sched.max_sigma))
