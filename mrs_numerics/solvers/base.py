"""What every sampler on a time grid shares: options, grid, compiled plans and ``sample``.

A sampler subclass only says how to compile a grid into a
[`Plan`][mrs_numerics.solvers.engine.Plan] (its ``plan`` method); checking the shared options,
resolving the grid, caching plans, drawing the prior and running the plan through the engine
happen here, once for every sampler.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch

from mrs_numerics.schedules import grids
from mrs_numerics.schedules.protocol import Schedule
from mrs_numerics.solvers.engine import (
    Evaluation,
    Plan,
    PlanCache,
    SampleResult,
    master_dtype,
    run,
)
from mrs_numerics.solvers.options import SamplerOptions
from mrs_numerics.solvers.protocols import Model, NoiseSource
from mrs_numerics.solvers.randomness import GeneratorNoise, Generators, randn
from mrs_numerics.solvers.registry import solver_info


class SamplerBase:
    """A sampler on a time grid (the MR Sampler and the baselines derive from it).

    Args:
        schedule: The MR schedule (a [`Schedule`][mrs_numerics.schedules.protocol.Schedule]).
        options: The shared, validated options.
    """

    solver_id: str = ""

    def __init__(self, schedule: Schedule, options: SamplerOptions):
        self.schedule = schedule
        self.options = options
        self._plans = PlanCache(self.plan)

    @property
    def model_prediction(self) -> str:
        """What the model returns (``options.model_prediction``)."""
        return self.options.model_prediction

    def plan(
        self, steps: int | None = None, timesteps=None, device=None, dtype=torch.float32
    ) -> Plan:
        """Compile a run on ``steps`` steps of the sampler's grid or on explicit ``timesteps``."""
        raise NotImplementedError

    def timesteps(self, steps: int) -> torch.Tensor:
        """The grid this sampler uses for ``steps`` steps (float64, decreasing)."""
        o = self.options
        return grids.timesteps(self.schedule, steps, o.grid, o.t_start, o.t_end, o.lam_min, o.rho)

    def resolve_times(self, steps: int | None, timesteps) -> torch.Tensor:
        """The grid of a run: ``steps`` steps of the sampler's spacing, or ``timesteps``."""
        if (steps is None) == (timesteps is None):
            raise ValueError(
                "give exactly one of steps (a number of steps) or timesteps (explicit times)"
            )
        if timesteps is not None:
            return grids.explicit(self.schedule, getattr(timesteps, "timesteps", timesteps))
        assert steps is not None
        return self.timesteps(steps)

    def prepare(
        self, steps: int | None = None, timesteps=None, device=None, dtype=torch.float32
    ) -> Plan:
        """The compiled plan of a run, compiled now and cached for ``sample`` (e.g. before timing).

        ``dtype`` is the dtype of μ (half precisions are planned in float32, as ``sample`` runs
        them).
        """
        timesteps = getattr(timesteps, "timesteps", timesteps)
        return self._plans.get(steps, timesteps, device, master_dtype(dtype))

    def calls(self, steps: int) -> int:
        """The network calls a run of ``steps`` steps makes with these options.

        Counted by running the compiled plan with a zero model on a 1-pixel input, so every
        start, corrector, per-step cost and ``denoise_last`` counts exactly as it happens.
        """
        probe = torch.zeros(1, 1, dtype=torch.float64)

        def zero(x, t, mu):
            return torch.zeros_like(x)

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the compile-time advice is for real runs
            plan = self.plan(steps, dtype=torch.float64)  # not cached: only counted
        return run(plan, zero, probe, probe, self.options, _zero_noise).nfe

    def steps_within(self, nfe: int) -> tuple[int, int]:
        """(steps, calls): the most steps whose run makes at most ``nfe`` network calls.

        Starts from the registry's declared cost and corrects it by counting
        ([`calls`][mrs_numerics.solvers.base.SamplerBase.calls]).
        """
        if isinstance(nfe, bool) or not isinstance(nfe, int):
            raise ValueError(f"the NFE budget must be an integer, got {nfe!r}")
        info = solver_info(self.solver_id)
        steps = max(1, (nfe - info.start_extra_nfe) // info.nfe_per_step)
        while steps > 1 and self.calls(steps) > nfe:
            steps -= 1
        calls = self.calls(steps)
        if calls > nfe:
            raise ValueError(
                f"{self.solver_id} needs at least {calls} network calls for one step, got an "
                f"NFE budget of {nfe}"
            )
        while (more := self.calls(steps + 1)) <= nfe:
            steps, calls = steps + 1, more
        return steps, calls

    def final_evaluation(self, times: torch.Tensor) -> Evaluation | None:
        """The ``denoise_last`` evaluation at the grid's last time, or None when it is off."""
        if not self.options.denoise_last:
            return None
        t_end = times[-1]
        alpha, sigma = float(self.schedule.alpha(t_end)), float(self.schedule.sigma(t_end))
        return Evaluation("final", float(t_end), alpha, sigma)

    def sample(
        self,
        model: Model,
        mu: torch.Tensor,
        steps: int | None = None,
        timesteps=None,
        x_T: torch.Tensor | None = None,
        generator: Generators = None,
        callback: Callable | None = None,
        progress: bool = False,
        return_trajectory: bool = False,
        noise: NoiseSource | None = None,
    ) -> SampleResult:
        """Sample from the prior at the grid's first time to its last.

        Args:
            model: ``model(x, t, mu)`` returning the ``model_prediction``; t is a float64
                tensor ``[batch]`` in the schedule's time unit.
            mu: The condition μ (the degraded images), ``[batch, ...]``, floating point.
            steps: The number of steps on the sampler's grid (give this or ``timesteps``).
            timesteps (Sequence[float] | torch.Tensor | TunedGrid | None): Explicit decreasing
                times t_0 > … > t_N, or a tuned grid (its ``timesteps``; see
                [`tune_timesteps`][mrs_numerics.tuning.fit.tune_timesteps]); give this or
                ``steps``.
            x_T: The start state; default the prior μ + σ(t_0)·ξ (≈ μ + Λξ at t_max).
            generator: A ``torch.Generator``, or a list with one per sample (per-sample
                seeds), for the prior and the SDE noise.
            callback: Called after every step with ``{"i", "t", "t_next", "x", "output"}``.
            progress: Show a tqdm progress bar over the steps.
            return_trajectory: Also return x after every step.
            noise: A [`NoiseSource`][mrs_numerics.solvers.protocols.NoiseSource] for this run's
                SDE noise (overrides the ``noise_fn`` option and ``generator``).

        Returns:
            The final state, the network calls made, the grid (and the trajectory).

        Raises:
            NonFiniteError: If the model returned NaN/Inf (with the step) or the state
                diverged.
        """
        x_T, mu = _check_inputs(mu, x_T)
        plan = self.prepare(steps, timesteps, mu.device, mu.dtype)
        if x_T is None:
            x_T = prior_sample(self.schedule, mu, plan.timesteps[0], generator)
        noise = noise or self.options.noise_fn or GeneratorNoise(generator)
        return run(plan, model, x_T, mu, self.options, noise, callback, progress, return_trajectory)


def _zero_noise(step, t_from, t_to, shape, dtype, device):
    return torch.zeros(shape, dtype=dtype, device=device)


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


def prior_sample(
    schedule: Schedule, mu: torch.Tensor, t0, generator: Generators = None
) -> torch.Tensor:
    """μ + σ(t_0)·ξ: the MR marginal at t_0 for x₀ ≈ μ (≈ μ + Λξ at t_max, where α ≈ eps).

    ξ is drawn in the working dtype (float32 for half-precision μ) with
    [`randn`][mrs_numerics.solvers.randomness.randn] (one generator, or one per sample).
    """
    sigma0 = float(schedule.sigma(torch.as_tensor(t0, dtype=torch.float64)))
    work = master_dtype(mu.dtype)
    xi = randn(mu.shape, generator, work, mu.device)
    return (mu.to(work) + sigma0 * xi).to(mu.dtype)
