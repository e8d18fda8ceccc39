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

from mrs_numerics._checks import integer
from mrs_numerics.schedules import grids
from mrs_numerics.schedules.protocol import Schedule, check_prior
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
        nfe = integer(nfe, "the NFE budget", least=1)
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
        allow_divergence: bool = False,
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
            allow_divergence: Return a diverged state (with a ``RuntimeWarning``) instead of
                raising [`DivergenceError`][mrs_numerics.solvers.engine.DivergenceError].

        Returns:
            The final state, the network calls made, the grid (and the trajectory).

        Raises:
            NonFiniteError: If the model returned NaN/Inf or the state overflowed (with the
                step; on the CPU the run stops at that step).
            DivergenceError: If a sample's RMS distance from μ exceeded
                [`DIVERGENCE_FACTOR`][mrs_numerics.solvers.engine.DIVERGENCE_FACTOR]·Λ.
            TypeError, ValueError: For bad input (non-tensor or integer μ, non-finite μ or x_T,
                mismatched shapes), and for a model or noise output that is not a tensor
                shaped exactly like its input.
        """
        x_T, mu = _check_inputs(mu, x_T)
        plan = self.prepare(steps, timesteps, mu.device, mu.dtype)
        if x_T is None:
            x_T = prior_sample(self.schedule, mu, plan.timesteps[0], generator)
        noise = noise or self.options.noise_fn or GeneratorNoise(generator)
        return run(
            plan,
            model,
            x_T,
            mu,
            self.options,
            noise,
            callback,
            progress,
            return_trajectory,
            allow_divergence,
        )


def _zero_noise(step, t_from, t_to, shape, dtype, device):
    return torch.zeros(shape, dtype=dtype, device=device)


def _check_inputs(mu, x_T):
    """Refuse a condition μ or start state x_T the run cannot use, saying what was passed."""
    _check_tensor("mu", mu)
    if mu.dim() < 1 or mu.shape[0] < 1:
        raise ValueError(f"mu must have shape [batch, ...] with batch ≥ 1, got {tuple(mu.shape)}")
    if x_T is not None:
        _check_tensor("x_T", x_T)
        if x_T.shape != mu.shape:
            raise ValueError(f"x_T has shape {tuple(x_T.shape)} but mu has {tuple(mu.shape)}")
        if x_T.device != mu.device:
            raise ValueError(f"x_T is on {x_T.device} but mu is on {mu.device}")
        if x_T.dtype != mu.dtype:
            raise ValueError(f"x_T has dtype {x_T.dtype} but mu has {mu.dtype}")
    for name, value in (("mu", mu), ("x_T", x_T)):
        if value is not None and not bool(torch.isfinite(value).all()):
            raise ValueError(
                f"{name} contains NaN/Inf ({int((~torch.isfinite(value)).sum())} of "
                f"{value.numel()} values): bad input, not a solver failure"
            )
    return x_T, mu


def _check_tensor(name: str, value) -> None:
    """A floating-point torch tensor with data (not on the meta device)."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if not value.is_floating_point():
        raise TypeError(
            f"{name} must be a floating-point tensor, got {value.dtype} (convert with "
            f"{name}.float(), and divide 8-bit images by 255)"
        )
    if value.device.type == "meta":
        raise ValueError(f"{name} is on the meta device (no data); move it to a real device")


def prior_sample(
    schedule: Schedule, mu: torch.Tensor, t0, generator: Generators = None
) -> torch.Tensor:
    """μ + σ(t_0)·ξ: the MR marginal at t_0 for x₀ ≈ μ (≈ μ + Λξ at t_max, where α ≈ eps).

    ξ is drawn in the working dtype (float32 for half-precision μ) with
    [`randn`][mrs_numerics.solvers.randomness.randn] (one generator, or one per sample).
    """
    check_prior(schedule, t0)
    sigma0 = float(schedule.sigma(torch.as_tensor(t0, dtype=torch.float64)))
    work = master_dtype(mu.dtype)
    xi = randn(mu.shape, generator, work, mu.device)
    return (mu.to(work) + sigma0 * xi).to(mu.dtype)
