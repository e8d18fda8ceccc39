"""The MR Sampler as a 🤗 diffusers scheduler: ``MRSamplerScheduler``.

This module imports ``diffusers`` (an optional dependency); ``mrs_numerics.solvers`` does not
import it, so diffusers is only needed by whoever imports this module.

**What it runs.** The scheduler builds the sampler of its ``solver`` id with
[`make_sampler`][mrs_numerics.solvers.factory.make_sampler] and compiles the same
[`Plan`][mrs_numerics.solvers.engine.Plan] as ``MRSampler.sample`` (``sampler.prepare``). Its
``step`` replays the engine's loop ([`run`][mrs_numerics.solvers.engine.run]) one network call at
a time, so a diffusers-style loop

    scheduler.set_timesteps(N)
    x = x_T
    for t in scheduler.timesteps:
        x = scheduler.step(model(x, t, mu), t, x, mu=mu, generator=g).prev_sample

returns what ``MRSampler.sample(model, mu, steps=N, x_T=x_T, generator=g)`` returns (to
round-off; bit for bit in float64 on the CPU in the tests). The MR marginal is

    x_t = μ + α_t (x₀ − μ) + σ_t ε,   σ_t = Λ √(1 − α_t²),   λ_t = log α_t − log σ_t,

and every stage of the plan is ``x_e = c.x·x_s + c.mu·μ + Σ_j c.outputs[j]·m_j (+ c.noise·z)``
with float64 coefficients compiled once, m_j the converted network outputs (newest first) and
z ~ N(0, I) drawn with ``torch.randn`` from the ``generator`` of the ``step`` call, one draw per
stochastic stage, in stage order, exactly as the engine's default noise source does.

**Timesteps.** ``scheduler.timesteps`` is a float64 tensor of the times (not integer indices) at
which the network must be evaluated, in the order of the calls: the step start t_i of every step
that evaluates there, the λ-midpoint of the first interval for the second-order singlestep
start (``mrs-ode-3-data``/``-noise`` with ``start="singlestep"``: one extra call) or its λ-thirds
for the third-order one (``mrs-ode-3-*-unic``: two extra calls), the predicted state's time
t_{i+1} for the corrector variants (``-unic``: still one call per step, the output carried on as
the next step's m0), and the last time with ``denoise_last``. ``prev_sample`` is always the state
at which the *next* call is to be made (after the last call: the sampler's result).

**Conversion.** Each output is converted to the plan's prediction form (noise or data) with the
state the network saw (the ``sample`` passed to ``step``), and limited by ``clip_x0`` /
``thresholding`` as the engine does.

Not replayed: the engine's per-step NaN/Inf and divergence checks (they would cost a host
synchronisation per call); the model output's shape is checked.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from mrs_numerics import schedules
from mrs_numerics.schedules.protocol import Schedule
from mrs_numerics.solvers import parameterization
from mrs_numerics.solvers.base import SamplerBase, prior_sample
from mrs_numerics.solvers.engine import (
    Call,
    Evaluation,
    Plan,
    Step,
    check_model_output,
    check_noise,
    check_plan,
    limit_data,
    master_dtype,
    walk,
)
from mrs_numerics.solvers.factory import make_sampler
from mrs_numerics.solvers.randomness import GeneratorNoise, Generators
from mrs_numerics.solvers.registry import solver_info

try:  # diffusers ≥ 0.x ships its own output dataclass
    from diffusers.schedulers.scheduling_utils import SchedulerOutput
except ImportError:  # pragma: no cover - older layouts
    from diffusers.utils import BaseOutput

    @dataclass
    class SchedulerOutput(BaseOutput):  # type: ignore[no-redef]
        """The state after a scheduler step (``prev_sample``)."""

        prev_sample: torch.Tensor


__all__ = ["MRSamplerScheduler", "SchedulerOutput"]

_Request = tuple[torch.Tensor, Evaluation | None]
"""What the replay yields: the state to evaluate and its evaluation (None: finished)."""


class MRSamplerScheduler(SchedulerMixin, ConfigMixin):
    """The MR Sampler (any ``mrs-*`` id of the registry) behind diffusers' scheduler interface.

    Args:
        schedule: The schedule's name for [`schedules.get`][mrs_numerics.schedules.get]
            (``"cosine"``, ``"linear"``, ``"constant"`` or a generated user schedule).
        max_sigma: Λ, the stationary standard deviation of the MR process.
        eps: α(t_max): the fraction of the clean image left at the noisiest time.
        solver: An MR Sampler id, e.g. ``"mrs-ode-2-data"``, ``"mrs-sde-1-data"``,
            ``"mrs-ode-3-noise"`` or ``"mrs-ode-2-data-unic"``.
        prediction_type: What the network returns: ``"noise"``, ``"data"``, ``"velocity"``
            (v = Λαε − (σ/Λ)(x₀ − μ)) or ``"score"`` (−ε/σ).
        timestep_spacing: The grid of ``set_timesteps(N)``: ``"lambda"`` (uniform in λ),
            ``"time"`` or ``"karras"``.
        lower_order_final: Lower the last steps' order when N < 15 (None: the sampler's
            measured default; ``"official"``: the official MR Sampler code's rule).
        start: ``"singlestep"`` (order-preserving; one extra call for order 3, two for order
            3 with the corrector) or ``"warmup"``.
        t_start: The grid's first (noisiest) time; default t_max.
        t_end: The grid's last time; default as in
            [`MRSampler`][mrs_numerics.solvers.mr_sampler.MRSampler].
        lam_min: Start no noisier than λ = lam_min.
        rho: The Karras spacing's ρ.
        denoise_last: One more call at the last time returns x̂₀ there.
        clip_x0: Clamp every x̂₀ to ``(low, high)``.
        thresholding: Dynamic thresholding of x̂₀ with the official defaults.

    Attributes:
        timesteps: The float64 times of the network calls, in call order (see the module
            description); set by ``set_timesteps``.
        init_noise_sigma: σ at the grid's first time, Λ√(1 − α²) (σ(t_max) before
            ``set_timesteps`` and for the default grid). The MR prior is μ + σξ, not σξ: use
            ``prior_sample`` (or add μ yourself).
        order: 1: diffusers' "calls per entry of ``timesteps``" (every entry is one call);
            the method's order is ``solver_order``.
    """

    config_name = SchedulerMixin.config_name  # type: ignore[assignment]
    order = 1

    @register_to_config
    def __init__(
        self,
        schedule: str = "cosine",
        max_sigma: float = 50 / 255,
        eps: float = 0.005,
        solver: str = "mrs-ode-2-data",
        prediction_type: str = "noise",
        timestep_spacing: str = "lambda",
        lower_order_final: bool | str | None = None,
        start: str = "singlestep",
        t_start: float | None = None,
        t_end: float | None = None,
        lam_min: float | None = None,
        rho: float = 7.0,
        denoise_last: bool = False,
        clip_x0: tuple[float, float] | None = None,
        thresholding: bool = False,
    ):
        if solver_info(solver).family != "mrs":
            raise ValueError(
                f"MRSamplerScheduler runs the MR Sampler only (ids 'mrs-…'), got {solver!r}"
            )
        self.schedule: Schedule = schedules.get(schedule, max_sigma=max_sigma, eps=eps)
        self.sampler: SamplerBase = make_sampler(
            solver,
            self.schedule,
            prediction_type,
            grid=timestep_spacing,
            lower_order_final=lower_order_final,
            start=start,
            t_start=t_start,
            t_end=t_end,
            lam_min=lam_min,
            rho=rho,
            denoise_last=denoise_last,
            clip_x0=None if clip_x0 is None else (float(clip_x0[0]), float(clip_x0[1])),
            thresholding=bool(thresholding),
        )
        self.solver_order: int = int(getattr(self.sampler, "order", 1))
        t_max = torch.tensor(float(self.schedule.t_max), dtype=torch.float64)
        self.init_noise_sigma: float = float(self.schedule.sigma(t_max))
        self.timesteps: torch.Tensor | None = None
        self.num_inference_steps: int | None = None
        self.plan: Plan | None = None
        self._grid: tuple[int | None, torch.Tensor | None] = (None, None)
        self._reset()

    # ------------------------------------------------------------------ set-up

    def _reset(self) -> None:
        """Forget a run in progress (the next ``step`` starts at the first call)."""
        self._replay: Generator[_Request, tuple[torch.Tensor, torch.Tensor | None], None] | None = (
            None
        )
        self._pending: Evaluation | None = None
        self._returned: torch.Tensor | None = None
        self._step_index: int | None = None
        self._run_plan: Plan | None = None
        self._out_dtype: torch.dtype | None = None
        self._mu: torch.Tensor | None = None
        self._generator: Generators = None

    @property
    def step_index(self) -> int | None:
        """The index in ``timesteps`` of the next call (None before the first ``step``)."""
        return self._step_index

    def set_timesteps(
        self,
        num_inference_steps: int | None = None,
        device: str | torch.device | None = None,
        timesteps=None,
    ) -> None:
        """Compile the plan of N steps of the configured grid, or of explicit ``timesteps``.

        Args:
            num_inference_steps: N, the number of solver steps (not of calls: the singlestep
                third-order start and ``denoise_last`` add one each).
            device: Where ``timesteps`` is put (the plan is compiled on the sample's device
                at the first ``step``).
            timesteps (Sequence[float] | torch.Tensor | TunedGrid | None): Explicit
                decreasing times t_0 > … > t_N (or a tuned grid), instead of N.

        Raises:
            ValueError: Unless exactly one of ``num_inference_steps`` and ``timesteps`` is given.
        """
        if (num_inference_steps is None) == (timesteps is None):
            raise ValueError("give exactly one of num_inference_steps or timesteps")
        times = getattr(timesteps, "timesteps", timesteps)
        if times is not None:
            times = torch.as_tensor(times, dtype=torch.float64).flatten().cpu()
        self._grid = (num_inference_steps, times)
        plan = self.sampler.prepare(num_inference_steps, times, torch.device("cpu"))
        self.plan = plan
        self.num_inference_steps = len(plan.steps)
        self.timesteps = call_times(plan).to(device)
        sigma0 = self.schedule.sigma(plan.timesteps[0].to(torch.float64))
        self.init_noise_sigma = float(sigma0)
        self._reset()

    def scale_model_input(self, sample: torch.Tensor, timestep=None) -> torch.Tensor:
        """The sample unchanged: the MR Sampler's networks take the state as it is."""
        return sample

    def prior_sample(self, mu: torch.Tensor, generator: Generators = None) -> torch.Tensor:
        """A start state μ + σ(t_0)ξ at the grid's first time (as ``MRSampler.sample`` draws)."""
        plan = self._require_plan()
        return prior_sample(self.schedule, mu, plan.timesteps[0], generator)

    def add_noise(
        self,
        original_samples: torch.Tensor,
        noise: torch.Tensor,
        timesteps,
        mu: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The MR marginal x_t = μ + α_t(x₀ − μ) + σ_t ε, σ_t = Λ√(1 − α_t²).

        ``timesteps`` is a time (float) or one per sample; α and σ are computed in float64
        and cast to the samples' dtype.
        """
        if mu is None:
            raise ValueError("add_noise needs the condition mu (the MR process reverts to μ)")
        t = torch.as_tensor(timesteps, dtype=torch.float64).flatten().cpu()
        shape = (-1,) + (1,) * (original_samples.dim() - 1)
        alpha = self.schedule.alpha(t).reshape(shape).to(original_samples)
        sigma = self.schedule.sigma(t).reshape(shape).to(original_samples)
        return mu + alpha * (original_samples - mu) + sigma * noise

    # ------------------------------------------------------------------- steps

    def step(
        self,
        model_output: torch.Tensor,
        timestep,
        sample: torch.Tensor,
        generator: Generators = None,
        return_dict: bool = True,
        mu: torch.Tensor | None = None,
    ) -> SchedulerOutput | tuple[torch.Tensor]:
        """Take the network's output at ``(sample, timestep)`` and advance to the next call.

        Args:
            model_output: The network's prediction (``prediction_type``) at the state
                ``sample`` and time ``timestep``.
            timestep: The current entry of ``timesteps`` (checked against the plan).
            sample: The state the network saw: x_T at the first call, then the previous
                ``prev_sample``. At a step's start it may be replaced (e.g. inpainting);
                at a stage's intermediate state it is only used for the conversion.
            generator: The ``torch.Generator`` (or one per sample) of the SDE noise: one
                ``randn`` of the state's shape per stochastic stage, in stage order.
            return_dict: Return a ``SchedulerOutput`` (else a tuple).
            mu: The condition μ (required).

        Returns:
            ``prev_sample``: the state of the next call, or the result after the last one.

        Raises:
            ValueError: Without ``mu``, before ``set_timesteps``, after the last call, or for
                a ``timestep`` that is not the next call's time.
        """
        if mu is None:
            raise ValueError("step needs the condition mu (keyword mu=…)")
        plan = self._require_plan()
        index = 0 if self._step_index is None else self._step_index
        assert self.timesteps is not None
        if index >= len(self.timesteps):
            raise ValueError(
                f"all {len(self.timesteps)} calls of this run were made; call set_timesteps "
                "again to start a new run"
            )
        expected = float(self.timesteps[index])
        given = float(torch.as_tensor(timestep, dtype=torch.float64).flatten()[0])
        if abs(given - expected) > 1e-9 * max(1.0, abs(expected)):
            raise ValueError(
                f"step {index} expects the call at t = {expected!r} (scheduler.timesteps[{index}]),"
                f" got t = {given!r}"
            )
        if self._replay is None:
            self._start(plan, sample, mu)
        assert self._mu is not None and self._out_dtype is not None
        work = master_dtype(self._out_dtype)
        self._mu = mu.to(work)
        self._generator = generator
        request = self._pending
        assert request is not None and self._replay is not None and self._run_plan is not None
        output = check_model_output(model_output, sample, request).to(work)
        seen = sample.to(work)
        target = "data" if request.label == "final" else self._run_plan.output_prediction
        converted = parameterization.convert(
            output,
            self.sampler.model_prediction,
            target,
            seen,
            self._mu,
            request.alpha,
            request.sigma,
            self._run_plan.max_sigma,
        )
        limited = limit_data(converted, target, seen, self._mu, request, self.sampler.options)
        replaced = sample is not self._returned
        state, self._pending = self._replay.send((limited, seen if replaced else None))
        self._step_index = index + 1
        prev_sample = state.to(self._out_dtype)
        self._returned = prev_sample
        if not return_dict:
            return (prev_sample,)
        return SchedulerOutput(prev_sample=prev_sample)

    def _require_plan(self) -> Plan:
        if self.plan is None:
            raise ValueError("call set_timesteps first")
        return self.plan

    def _start(self, plan: Plan, sample: torch.Tensor, mu: torch.Tensor) -> None:
        """Compile the plan for the sample's dtype and device; run to the first call."""
        self._out_dtype = sample.dtype
        work = master_dtype(sample.dtype)
        steps, times = self._grid
        self._run_plan = self.sampler.prepare(steps, times, mu.device, mu.dtype)
        check_plan(self._run_plan)
        self._mu = mu.to(work)
        self._replay = self._program(self._run_plan, sample.to(work))
        _, self._pending = next(self._replay)
        self._returned = sample

    def _program(
        self, plan: Plan, state: torch.Tensor
    ) -> Generator[_Request, tuple[torch.Tensor, torch.Tensor | None], None]:
        """The engine's loop ([`walk`][mrs_numerics.solvers.engine.walk]) one call at a time.

        Yields (state, evaluation) for every call and is sent back (converted output,
        replaced state or None); after the plan's steps, the ``denoise_last`` call, then
        (result, None).
        """
        program = walk(plan, state, self._condition, self._noise)
        request = next(program)
        while True:
            reply = None
            if isinstance(request, Call):
                reply = yield request.x, request.evaluation
            else:
                state = request.x
            try:
                request = program.send(reply)
            except StopIteration:
                break
        if plan.final is not None:
            state, _ = yield state, plan.final
        yield state, None

    def _condition(self) -> torch.Tensor:
        """μ in the working dtype, as the last ``step`` gave it."""
        assert self._mu is not None
        return self._mu

    def _noise(self, index: int, step: Step, state: torch.Tensor) -> torch.Tensor:
        """A stochastic stage's Gaussian draw: the sampler's ``noise_fn`` or the step's
        generator (the engine's [`Draw`][mrs_numerics.solvers.engine.Draw])."""
        source = self.sampler.options.noise_fn or GeneratorNoise(self._generator)
        z = source(index, step.t_from, step.t_to, state.shape, state.dtype, state.device)
        return check_noise(z, state, index)

    def __len__(self) -> int:
        return 0 if self.timesteps is None else len(self.timesteps)


def call_times(plan: Plan) -> torch.Tensor:
    """The times of a plan's network calls, in call order (float64).

    Per step: the step start (if it evaluates there), then each stage's evaluation (the
    singlestep start's midpoint, a corrector's predicted state); finally ``denoise_last``.
    """
    times: list[float] = []
    for step in plan.steps:
        if step.first is not None:
            times.append(step.first.t)
        times.extend(stage.evaluate.t for stage in step.stages if stage.evaluate is not None)
    if plan.final is not None:
        times.append(plan.final.t)
    return torch.tensor(times, dtype=torch.float64)
