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

from collections.abc import Callable

import torch

from mrs_numerics import grids, parameterization
from mrs_numerics._generated import baselines_registry, baselines_torch
from mrs_numerics.samplers import GridSampler, _resolve_times
from mrs_numerics.stepping import (
    Evaluation,
    Plan,
    PlanCache,
    Stage,
    Step,
    Thresholding,
    cast_coefficients,
)

BASELINE_IDS = tuple(baselines_registry.BASELINES)


class BaselineSampler(GridSampler):
    """A strided baseline (see the module docstring) with the MR Sampler's ``sample`` API."""

    def __init__(
        self,
        schedule,
        solver: str = "posterior",
        model_prediction: str = "noise",
        grid: str = "time",
        t_start: float | None = None,
        t_end: float | None = None,
        lam_min: float | None = None,
        rho: float = 7.0,
        clip_x0: tuple[float, float] | None = None,
        thresholding: Thresholding | bool | None = None,
        noise_fn: Callable | None = None,
    ):
        if solver not in baselines_registry.BASELINES:
            raise ValueError(f"unknown baseline {solver!r}; allowed: {', '.join(BASELINE_IDS)}")
        parameterization.check_prediction(model_prediction)
        if grid not in grids.SPACINGS:
            raise ValueError(f"unknown grid {grid!r}; allowed: {', '.join(grids.SPACINGS)}")
        self.schedule = schedule
        self.solver_id = solver
        self.info = baselines_registry.BASELINES[solver]
        self.model_prediction = model_prediction
        self.grid = grid
        self.t_start, self.t_end, self.lam_min, self.rho = t_start, t_end, lam_min, rho
        self.clip_x0 = tuple(clip_x0) if clip_x0 is not None else None
        self.thresholding = Thresholding() if thresholding is True else (thresholding or None)
        self.noise_fn = noise_fn
        self.denoise_last = False
        self._plans = PlanCache(self.plan)

    def __repr__(self) -> str:
        return (
            f"BaselineSampler({self.solver_id}, model_prediction={self.model_prediction!r}, "
            f"grid={self.grid!r})"
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

    def plan(self, steps: int | None = None, timesteps=None, device=None, dtype=torch.float32):
        """Compile a run: grid and per-step float64 coefficients (cast to ``dtype``)."""
        times = _resolve_times(self, steps, timesteps)
        sched = self.schedule
        plan_steps = []
        for i in range(times.numel() - 1):
            s, t = times[i], times[i + 1]
            values = self._values(s, t)
            first = Evaluation("m0", float(s), float(values["alpha_s"]), float(values["sigma_s"]))
            stages_info = self.info["stages"]
            description = self.solver_id
            if float(values["sigma_t"]) == 0.0 and not self.info["defined_at_sigma_zero"]:
                stages_info = baselines_registry.BASELINES["euler-ode"]["stages"]
                description = f"{self.solver_id}: Euler last step to σ = 0"
            stages = []
            for index, (function, labels, arguments) in enumerate(stages_info):
                coefficients = getattr(baselines_torch, function)(*(values[a] for a in arguments))
                evaluate = None
                if index + 1 < len(stages_info):
                    label = stages_info[index + 1][1][-1]
                    evaluate = Evaluation(
                        label, float(t), float(sched.alpha(t)), float(sched.sigma(t))
                    )
                stages.append(Stage(coefficients, labels, evaluate))
            plan_steps.append(Step(float(s), float(t), first, stages, description))
        for step in plan_steps:
            for stage in step.stages:
                stage.coefficients = cast_coefficients(stage.coefficients, dtype, device)
        return Plan(times, plan_steps, 0, self.info["prediction"])
