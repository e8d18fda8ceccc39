"""The MR Sampler: semi-analytical exponential-integrator solvers of the MR PF-ODE and reverse SDE.

``MRSampler(schedule, method, order, solver_prediction, model_prediction, …).sample(model, mu, …)``
integrates the reverse MR equation from the prior at the first time to the last, with

- ``method="ode"``: orders 1, 2, 3 (multistep, one network call per step);
- ``method="sde"``: orders 1, 2 (multistep; exact Gaussian noise of the linear part);
- ``solver_prediction``: the semi-analytical form integrated, "data" (bounded weights, the
  default) or "noise"; ``model_prediction``: what the network returns ("noise", "data",
  "velocity" or "score"), converted at each call.

**Start.** A k-step method needs k − 1 earlier outputs. ``start="singlestep"`` (default) keeps the
declared global order: order 3 takes its first step with the second-order singlestep update
through the λ-midpoint of the first interval (local error O(h³), **one extra network call**),
then one multistep-2 step, then multistep-3; orders 1 and 2 need nothing extra (a first-order
first step has local error O(h²), enough for global order 2). ``start="warmup"`` is the classical
DPM-Solver warm-up (orders 1, 2, … on the first steps, no extra call) which caps order 3 at 2.

**lower_order_final** (default True) lowers the order of the last steps when N < 15 steps
(order ≤ steps left), which stabilises very few-step sampling; switch it off for order studies.

**σ = 0 end.** A grid ending where σ = 0 (IR-SDE tables with α₀ = 1) takes its last step as the
exact limit of the first-order data-form step: the data prediction. The noise form is undefined
there and is refused.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch

from mrs_numerics import grids, parameterization
from mrs_numerics._generated import registry, updates_torch
from mrs_numerics.kernels import coefficients as generated_coefficients
from mrs_numerics.stepping import (
    Evaluation,
    NonFiniteError,
    Options,
    Plan,
    PlanCache,
    SampleResult,
    Stage,
    Step,
    Thresholding,
    cast_coefficients,
    master_dtype,
    noise_source,
    run,
)

METHODS = ("ode", "sde")
ORDERS = {"ode": (1, 2, 3), "sde": (1, 2)}
STARTS = ("singlestep", "warmup")
LOWER_ORDER_FINAL_BELOW = 15
"""lower_order_final acts when the run has fewer steps than this (as in diffusers)."""
SINGLESTEP_START_POSITION = 0.5
"""λ-position (fraction of the first interval) of the singlestep start's intermediate call."""
NOISE_SDE_WARN_BELOW = 10
"""A noise-form SDE below this many steps warns: it is known to blow up at 3–5 NFE."""


class GridSampler:
    """What every sampler on a time grid shares: the grid, the cached plan and ``sample``.

    Subclasses set ``schedule``, ``grid``, ``t_start``, ``t_end``, ``lam_min``, ``rho``,
    ``model_prediction``, ``clip_x0``, ``thresholding``, ``noise_fn``, ``denoise_last`` and
    ``_plans`` (a :class:`~mrs_numerics.stepping.PlanCache` of their ``plan``).
    """

    def timesteps(self, steps: int) -> torch.Tensor:
        """The grid this sampler uses for ``steps`` steps."""
        return grids.timesteps(
            self.schedule, steps, self.grid, self.t_start, self.t_end, self.lam_min, self.rho
        )

    def sample(
        self,
        model: Callable,
        mu: torch.Tensor,
        steps: int | None = None,
        timesteps=None,
        x_T: torch.Tensor | None = None,
        generator=None,
        callback: Callable | None = None,
        progress: bool = False,
        return_trajectory: bool = False,
    ) -> SampleResult:
        """Sample from the prior at the first time to the last; see the module docstring.

        ``model(x, t, mu)`` returns the ``model_prediction``; t is a float64 tensor [batch].
        ``x_T`` defaults to the prior μ + σ(t_0)·ξ (≈ μ + Λξ at t_max). ``generator`` is a
        torch.Generator or a list with one per sample (per-sample seeds).
        """
        x_T, mu = _check_inputs(mu, x_T)
        plan = self._plans.get(steps, timesteps, mu.device, _work_dtype(mu))
        if x_T is None:
            x_T = prior_sample(self.schedule, mu, plan.timesteps[0], generator)
        options = Options(
            self.model_prediction, self.clip_x0, self.thresholding, float(self.schedule.max_sigma)
        )
        noise = noise_source(generator, self.noise_fn)
        result = run(plan, model, x_T, mu, options, noise, callback, progress, return_trajectory)
        if self.denoise_last:
            result = _denoise_last(self, model, mu, result, options, plan)
        return result


class MRSampler(GridSampler):
    """The MR Sampler (Li et al., ICLR 2025) on generated, proved coefficients."""

    def __init__(
        self,
        schedule,
        method: str = "ode",
        order: int = 2,
        solver_prediction: str = "data",
        model_prediction: str = "noise",
        grid: str = "lambda",
        lower_order_final: bool = True,
        start: str = "singlestep",
        t_start: float | None = None,
        t_end: float | None = None,
        lam_min: float | None = None,
        rho: float = 7.0,
        denoise_last: bool = False,
        clip_x0: tuple[float, float] | None = None,
        thresholding: Thresholding | bool | None = None,
        noise_fn: Callable | None = None,
    ):
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; allowed: {', '.join(METHODS)}")
        if order not in ORDERS[method]:
            raise ValueError(
                f"order {order!r} is not available for method {method!r}; "
                f"allowed: {', '.join(map(str, ORDERS[method]))}"
            )
        parameterization.check_prediction(solver_prediction, parameterization.SOLVER_PREDICTIONS)
        parameterization.check_prediction(model_prediction)
        if grid not in grids.SPACINGS:
            raise ValueError(f"unknown grid {grid!r}; allowed: {', '.join(grids.SPACINGS)}")
        if start not in STARTS:
            raise ValueError(f"unknown start {start!r}; allowed: {', '.join(STARTS)}")
        if clip_x0 is not None and not (len(clip_x0) == 2 and clip_x0[0] < clip_x0[1]):
            raise ValueError(f"clip_x0 must be a (low, high) pair with low < high, got {clip_x0!r}")
        self.schedule = schedule
        self.method = method
        self.order = order
        self.solver_prediction = solver_prediction
        self.model_prediction = model_prediction
        self.grid = grid
        self.lower_order_final = lower_order_final
        self.start = start
        self.t_start, self.t_end, self.lam_min, self.rho = t_start, t_end, lam_min, rho
        self.denoise_last = denoise_last
        self.clip_x0 = tuple(clip_x0) if clip_x0 is not None else None
        self.thresholding = Thresholding() if thresholding is True else (thresholding or None)
        self.noise_fn = noise_fn
        self._plans = PlanCache(self.plan)

    @property
    def solver_id(self) -> str:
        """Canonical id, e.g. ``mrs-ode-2-data``."""
        return f"mrs-{self.method}-{self.order}-{self.solver_prediction}"

    def __repr__(self) -> str:
        return (
            f"MRSampler({self.solver_id}, model_prediction={self.model_prediction!r}, "
            f"grid={self.grid!r}, start={self.start!r}, lower_order_final={self.lower_order_final})"
        )

    def step_orders(self, steps: int) -> list[int]:
        """Order of each step: start procedure, declared order, lower_order_final."""
        orders = []
        for i in range(steps):
            available = min(self.order, i + 1)
            if self.start == "singlestep" and i == 0 and self.order == 3:
                available = 2
            if self.lower_order_final and steps < LOWER_ORDER_FINAL_BELOW:
                available = min(available, steps - i)
            orders.append(available)
        return orders

    def plan(self, steps: int | None = None, timesteps=None, device=None, dtype=torch.float32):
        """Compile a run: grid, per-step updates and their float64 coefficients (cast to dtype)."""
        times = _resolve_times(self, steps, timesteps)
        n = times.numel() - 1
        if self.method == "sde" and self.solver_prediction == "noise" and n < NOISE_SDE_WARN_BELOW:
            warnings.warn(
                f"a noise-form SDE with {n} steps: this solver is known to blow up at very low "
                "NFE even with an exact model; prefer solver_prediction='data'",
                stacklevel=3,
            )
        sched = self.schedule
        lams = sched.lam(times)
        alphas, sigmas = sched.alpha(times), sched.sigma(times)
        orders = self.step_orders(n)
        steps_out = []
        for i in range(n):
            first = Evaluation("m0", float(times[i]), float(alphas[i]), float(sigmas[i]))
            if float(sigmas[i + 1]) == 0.0:
                stage = _clean_end_stage(self, i, n)
                steps_out.append(Step(float(times[i]), 0.0, first, [stage], "step to σ = 0"))
                continue
            stages, description = self._stages(i, orders[i], times, lams, alphas, sigmas)
            steps_out.append(Step(float(times[i]), float(times[i + 1]), first, stages, description))
        for step in steps_out:
            for stage in step.stages:
                stage.coefficients = cast_coefficients(stage.coefficients, dtype, device)
        return Plan(times, steps_out, self.order - 1, self.solver_prediction)

    def _stages(self, i, order, times, lams, alphas, sigmas):
        h = lams[i + 1] - lams[i]
        base = f"{self.method}_{self.solver_prediction}"
        ends = (alphas[i], sigmas[i], alphas[i + 1], sigmas[i + 1])
        singlestep_start = self.start == "singlestep" and i == 0 and self.order == 3 and order == 2
        if singlestep_start:
            name = f"{base}_singlestep_2"
            r = torch.tensor(SINGLESTEP_START_POSITION, dtype=torch.float64)
            lam_mid = lams[i] + r * h
            t_mid = self.schedule.t_of_lam(lam_mid)
            a_mid, s_mid = self.schedule.alpha(t_mid), self.schedule.sigma(t_mid)
            (stage1_fn, _, _), (step_fn, _, labels) = registry.UPDATES[name]["stages"]
            c1 = generated_coefficients(stage1_fn, h, [r], alphas[i], sigmas[i], a_mid, s_mid)
            c2 = generated_coefficients(step_fn, h, [r], *ends)
            mid = Evaluation("stage1", float(t_mid), float(a_mid), float(s_mid))
            stages = [Stage(c1, ("m0",), mid), Stage(c2, labels)]
            return stages, f"{name} start (+1 network call)"
        name = f"{base}_multistep_{order}"
        ratios = []
        for j in range(1, order):
            ratios.append((lams[i - j + 1] - lams[i - j]) / h)
        ((fn, _, labels),) = registry.UPDATES[name]["stages"]
        return [Stage(generated_coefficients(fn, h, ratios, *ends), labels)], name


def _work_dtype(mu):
    return master_dtype(mu.dtype)


def _clean_end_stage(sampler: MRSampler, i: int, n: int) -> Stage:
    if sampler.solver_prediction != "data":
        raise ValueError(
            "the grid ends where σ = 0; only a data-form step can land there (it returns the data "
            "prediction). Use solver_prediction='data' or end the grid at t_end > "
            f"{sampler.schedule.t_min}"
        )
    return Stage(updates_torch.data_step_to_clean(), ("m0",))


def _resolve_times(sampler, steps, timesteps) -> torch.Tensor:
    if (steps is None) == (timesteps is None):
        raise ValueError(
            "give exactly one of steps (a number of steps) or timesteps (explicit times)"
        )
    if timesteps is not None:
        return grids.explicit(sampler.schedule, timesteps)
    return sampler.timesteps(steps)


def _check_inputs(mu, x_T):
    if not isinstance(mu, torch.Tensor):
        raise TypeError(f"mu must be a torch.Tensor, got {type(mu).__name__}")
    if mu.dim() < 1 or mu.shape[0] < 1:
        raise ValueError(f"mu must have shape [batch, ...] with batch ≥ 1, got {tuple(mu.shape)}")
    if not mu.is_floating_point():
        raise TypeError(f"mu must be a floating-point tensor, got {mu.dtype}")
    if x_T is not None:
        if x_T.shape != mu.shape:
            raise ValueError(f"x_T has shape {tuple(x_T.shape)} but mu has {tuple(mu.shape)}")
        if x_T.device != mu.device:
            raise ValueError(f"x_T is on {x_T.device} but mu is on {mu.device}")
        if x_T.dtype != mu.dtype:
            raise ValueError(f"x_T has dtype {x_T.dtype} but mu has {mu.dtype}")
    return x_T, mu


def prior_sample(schedule, mu: torch.Tensor, t0, generator=None) -> torch.Tensor:
    """μ + σ(t_0)·ξ: the MR marginal at t_0 for x₀ ≈ μ (≈ μ + Λξ at t_max, where α ≈ eps)."""
    sigma0 = float(schedule.sigma(torch.as_tensor(t0, dtype=torch.float64)))
    work = _work_dtype(mu)
    if isinstance(generator, (list, tuple)):
        if len(generator) != mu.shape[0]:
            raise ValueError(
                f"got {len(generator)} per-sample generators for a batch of {mu.shape[0]}"
            )
        xi = torch.stack(
            [
                torch.randn(mu.shape[1:], generator=g, dtype=work, device=mu.device)
                for g in generator
            ]
        )
    else:
        xi = torch.randn(mu.shape, generator=generator, dtype=work, device=mu.device)
    return (mu.to(work) + sigma0 * xi).to(mu.dtype)


def _denoise_last(sampler, model, mu, result: SampleResult, options: Options, plan: Plan):
    t_end = plan.timesteps[-1]
    alpha, sigma = float(sampler.schedule.alpha(t_end)), float(sampler.schedule.sigma(t_end))
    t = torch.full((mu.shape[0],), float(t_end), dtype=torch.float64, device=mu.device)
    work = _work_dtype(mu)
    x = result.x.to(work)
    out = model(result.x, t, mu).to(work)
    data = parameterization.convert(
        out, options.model_prediction, "data", x, mu.to(work), alpha, sigma, options.max_sigma
    )
    if options.thresholding is not None:
        data = options.thresholding(data)
    if options.clip_x0 is not None:
        data = data.clamp(*options.clip_x0)
    if not torch.isfinite(data).all():
        raise NonFiniteError(
            f"the model returned NaN/Inf in the denoise-last call at t = {float(t_end):.6g}"
        )
    trajectory = [*result.trajectory, data.to(mu.dtype)] if result.trajectory else []
    return SampleResult(data.to(mu.dtype), result.nfe + 1, result.timesteps, trajectory)
