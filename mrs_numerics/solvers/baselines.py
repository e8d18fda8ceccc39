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
from mrs_numerics.solvers.engine import Evaluation, Plan, Stage, Step
from mrs_numerics.solvers.instability import warn_if_unstable
from mrs_numerics.solvers.kernels import CoefficientBatch
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

    def _values(self, times: torch.Tensor) -> dict:
        """Per-step argument lists (floats) of the generated baseline functions."""
        sched = self.schedule
        s, t = times[:-1], times[1:]
        n = s.numel()
        return {
            "dt": (s - t).tolist(),
            "theta_s": sched.theta(s).tolist(),
            "alpha_s": sched.alpha(s).tolist(),
            "sigma_s": sched.sigma(s).tolist(),
            "theta_t": sched.theta(t).tolist(),
            "alpha_t": sched.alpha(t).tolist(),
            "sigma_t": sched.sigma(t).tolist(),
            "max_sigma": [float(sched.max_sigma)] * n,
        }

    def plan(
        self, steps: int | None = None, timesteps=None, device=None, dtype=torch.float32
    ) -> Plan:
        """Compile a run: grid and per-step float64 coefficients (cast to ``dtype``).

        Every generated function is evaluated once on the whole grid
        ([`CoefficientBatch`][mrs_numerics.solvers.kernels.CoefficientBatch]).
        """
        times = self.resolve_times(steps, timesteps)
        sched = self.schedule
        values = self._values(times)
        moments = times.tolist()
        batch = CoefficientBatch()
        plan_steps = []
        for i in range(times.numel() - 1):
            s, t = moments[i], moments[i + 1]
            first = Evaluation("m0", s, values["alpha_s"][i], values["sigma_s"][i])
            stages_info = self.info.stages
            description = self.solver_id
            if values["sigma_t"][i] == 0.0 and not self.info.defined_at_sigma_zero:
                stages_info = BASELINES[SIGMA_ZERO_FALLBACK].stages
                description = f"{self.solver_id}: Euler last step to σ = 0"
            stages = []
            for index, stage_info in enumerate(stages_info):
                function = getattr(baselines_torch, stage_info.function)
                pending = batch.request(function, *(values[a][i] for a in stage_info.arguments))
                evaluate = None
                if index + 1 < len(stages_info):
                    label = stages_info[index + 1].labels[-1]
                    evaluate = Evaluation(label, t, values["alpha_t"][i], values["sigma_t"][i])
                stages.append(Stage(pending, stage_info.labels, evaluate))
            plan_steps.append(Step(s, t, first, stages, description))
        batch.evaluate(dtype, device)
        for step in plan_steps:
            for stage in step.stages:
                stage.coefficients = batch.resolve(stage.coefficients)
        plan = Plan(times, plan_steps, 0, self.info.prediction, float(sched.max_sigma))
        warn_if_unstable(self.solver_id, plan)
        return plan
