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

**Custom timesteps** (``set_timesteps(timesteps=[t_0, …, t_{k−1}])``) are, as in diffusers, the
times the network is called at: each is a step's start, and the scheduler appends the run's
end, the configured ``t_end`` (default: the schedule's clean end, see
[`default_t_end`][mrs_numerics.schedules.grids.default_t_end]), as diffusers appends its final
σ. So k times are k steps and k calls (plus the start's extra calls of order 3 and the
``denoise_last`` call, which ``timesteps`` then lists too), and ``set_timesteps(timesteps=
s.timesteps)`` repeats ``set_timesteps(N)`` exactly whenever every call is at a step start. A
grid object with its own end (a ``TunedGrid``: its ``timesteps`` attribute) is used as it is.

**Partial starts** (img2img). As in diffusers, a run may start at an entry ``k`` of
``timesteps`` other than 0: with ``set_begin_index(k)`` before the first ``step``, or by giving
the first ``step`` that entry's time. The entry must be a step start t_j (not a stage's call
inside the order-3 start). The rest of the run is the configured solver on the remaining grid
t_j > … > t_N, its first steps warmed up at orders 1, 2, … (as ``DPMSolverMultistepScheduler``
restarts its history): its calls are exactly ``timesteps[k:]``. For every id without extra start
calls this is the configured sampler itself on that grid; for order 3 with ``start=
"singlestep"`` it is the ``start="warmup"`` one. The state at t_j comes from ``add_noise``.

**Conversion.** Each output is converted to the plan's prediction form (noise or data) with the
state the network saw (the ``sample`` passed to ``step``), and limited by ``clip_x0`` /
``thresholding`` as the engine does.

Not replayed: the engine's per-step NaN/Inf and divergence checks (they would cost a host
synchronisation per call); the model output's shape is checked.

**diffusers' ``SchedulerCommonTest``**, checked in ``tests/test_diffusers_scheduler.py``:
``from_save_pretrained`` and ``from_pretrained`` (equal configs, values and types, and equal
steps), ``compatibles`` (each listed class builds from this config and back), ``step_shape``,
outputs equivalence (``return_dict`` True/False), public API (``init_noise_sigma``,
``scale_model_input``, ``step``), ``add_noise`` shape/device/dtype, ``deprecated_kwargs``
(none), ``getattr_is_correct``, ``timesteps`` dtype and device after ``set_timesteps(device=)``,
``step`` for several step counts, a deterministic SDE ``step`` with a generator, and the DPM
tests' custom-timesteps and partial-start loops. Not applicable: ``trained_betas`` (an MR
schedule has no β table: ``from_config`` refuses one without an MR schedule) and the golden
sums of the full loops (the tests compare with ``MRSampler`` instead). ``add_noise`` takes
``mu=`` as well: the MR marginal depends on μ.
"""

from __future__ import annotations

import inspect
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from mrs_numerics import schedules
from mrs_numerics._checks import integer
from mrs_numerics._errors import InputError
from mrs_numerics.schedules import grids
from mrs_numerics.schedules.protocol import Schedule
from mrs_numerics.solvers import diffusers_config, parameterization
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
from mrs_numerics.solvers.options import Thresholding
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


__all__ = ["MRSamplerScheduler", "SchedulerOutput", "call_times", "step_starts"]

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
            (v = Λαε − (σ/Λ)(x₀ − μ)) or ``"score"`` (−ε/σ); diffusers' ``"epsilon"`` and
            ``"sample"`` are read as noise and data, ``"v_prediction"`` as velocity when
            Λ = 1 only (see [`diffusers_config`][mrs_numerics.solvers.diffusers_config]).
            The config stores the package's name.
        timestep_spacing: The grid of ``set_timesteps(N)``: ``"lambda"`` (uniform in λ),
            ``"time"`` or ``"karras"``; diffusers' ``"linspace"`` and ``"trailing"`` are read
            as ``"time"``.
        lower_order_final: Lower the last steps' order when N < 15 (None: the sampler's
            measured default; ``"official"``: the official MR Sampler code's rule).
        start: ``"singlestep"`` (order-preserving; one extra call for order 3, two for order
            3 with the corrector) or ``"warmup"``.
        t_start: The grid's first (noisiest) time; default t_max.
        t_end: The grid's last time, also the end appended to custom ``timesteps``; default as
            in [`MRSampler`][mrs_numerics.solvers.mr_sampler.MRSampler].
        lam_min: Start no noisier than λ = lam_min.
        rho: The Karras spacing's ρ.
        denoise_last: One more call at the last time returns x̂₀ there.
        clip_x0: Clamp every x̂₀ to ``(low, high)`` (stored as a tuple of floats).
        thresholding: Dynamic thresholding of x̂₀.
        dynamic_thresholding_ratio: Its per-sample quantile (diffusers' name).
        sample_max_value: Its least threshold (diffusers' name).

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
    _compatibles = list(diffusers_config.SOURCES)  # noqa: RUF012 (diffusers' own attribute)
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
        dynamic_thresholding_ratio: float = 0.995,
        sample_max_value: float = 1.0,
    ):
        if solver_info(solver).family != "mrs":
            raise ValueError(
                f"MRSamplerScheduler runs the MR Sampler only (ids 'mrs-…'), got {solver!r}"
            )
        if clip_x0 is not None and not isinstance(clip_x0, (tuple, list)):
            raise InputError(f"clip_x0 must be a (low, high) pair or None, got {clip_x0!r}")
        if not isinstance(thresholding, bool):
            raise InputError(f"thresholding must be True or False, got {thresholding!r}")
        prediction = diffusers_config.mr_prediction(prediction_type, max_sigma)
        spacing = diffusers_config.mr_spacing(timestep_spacing)
        self.schedule: Schedule = schedules.get(schedule, max_sigma=max_sigma, eps=eps)
        self._options: dict[str, Any] = dict(
            grid=spacing,
            lower_order_final=lower_order_final,
            t_start=t_start,
            t_end=t_end,
            lam_min=lam_min,
            rho=rho,
            denoise_last=denoise_last,
            clip_x0=None if clip_x0 is None else tuple(clip_x0),
            thresholding=(
                Thresholding(float(dynamic_thresholding_ratio), float(sample_max_value))
                if thresholding
                else None
            ),
        )
        self.sampler: SamplerBase = make_sampler(
            solver, self.schedule, prediction, start=start, **self._options
        )
        self.register_to_config(
            prediction_type=prediction,
            timestep_spacing=spacing,
            clip_x0=self.sampler.options.clip_x0,
        )
        self.solver_order: int = int(getattr(self.sampler, "order", 1))
        t_max = torch.tensor(float(self.schedule.t_max), dtype=torch.float64)
        self.init_noise_sigma: float = float(self.schedule.sigma(t_max))
        self.timesteps: torch.Tensor | None = None
        self.num_inference_steps: int | None = None
        self.plan: Plan | None = None
        self._grid: tuple[int | None, torch.Tensor | None] = (None, None)
        self._starts: dict[int, int] = {}
        self._begin_index: int | None = None
        self._reset()

    @classmethod
    def from_config(cls, config=None, return_unused_kwargs=False, **kwargs):
        """An ``MRSamplerScheduler`` from its own config, or from a config of one of
        ``compatibles`` (diffusers' DPM-Solver, UniPC, DDIM, DDPM schedulers).

        A foreign config is mapped by
        [`translate`][mrs_numerics.solvers.diffusers_config.translate] (what maps, what is
        refused and why: see [`diffusers_config`][mrs_numerics.solvers.diffusers_config]); it
        carries no MR process, so name it: ``from_config(config, schedule="cosine",
        max_sigma=50 / 255)``. ``from_pretrained`` of a scheduler folder goes through here.

        Raises:
            InputError: For what cannot map, and for diffusers' keys in an MR config.
        """
        if not isinstance(config, dict):  # diffusers' own path (a name, a path or None)
            return super().from_config(config, return_unused_kwargs, **kwargs)
        own = _init_keys(cls)
        name = _class_of(config, own)
        if name == cls.__name__:
            diffusers_config.check_own(config, kwargs)
            return super().from_config(config, return_unused_kwargs, **kwargs)
        mapped, rest = diffusers_config.translate(name, config, kwargs, own)
        return super().from_config(mapped, return_unused_kwargs, **rest)

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

    @property
    def begin_index(self) -> int | None:
        """The entry of ``timesteps`` the run starts at (``set_begin_index``; None: 0 or the
        first ``step``'s time)."""
        return self._begin_index

    def set_begin_index(self, begin_index: int = 0) -> None:
        """Start the next run at ``timesteps[begin_index]`` (img2img), as diffusers' pipelines
        do after ``set_timesteps``; see the module's "Partial starts".

        Raises:
            InputError: Before ``set_timesteps``, during a run, or for an entry that is not a
                step start.
        """
        self._require_plan()
        if self._replay is not None:
            raise InputError(
                "set_begin_index during a run: call it after set_timesteps, before the first step"
            )
        index = integer(begin_index, "begin_index", least=0)
        self._start_index(index)
        self._begin_index = index

    def set_timesteps(
        self,
        num_inference_steps: int | None = None,
        device: str | torch.device | None = None,
        timesteps=None,
    ) -> None:
        """Compile the plan of N steps of the configured grid, or on custom ``timesteps``.

        Args:
            num_inference_steps: N, the number of solver steps (not of calls: the singlestep
                third-order start and ``denoise_last`` add calls).
            device: Where ``timesteps`` is put (the plan is compiled on the sample's device
                at the first ``step``).
            timesteps (Sequence[float] | torch.Tensor | TunedGrid | None): The decreasing
                times of the network calls t_0 > … > t_{k−1}, in the schedule's time unit;
                ``t_end`` is appended (see the module's "Custom timesteps"). A grid object
                (with a ``timesteps`` attribute, e.g. a ``TunedGrid``) is a whole grid, end
                included.

        Raises:
            InputError: Unless exactly one of ``num_inference_steps`` and ``timesteps`` is
                given, for a bad N, and for times outside the schedule or not above ``t_end``.
        """
        if (num_inference_steps is None) == (timesteps is None):
            raise InputError(
                "give exactly one of num_inference_steps (a number of steps) or timesteps "
                "(the times of the network calls)"
            )
        times = None
        if timesteps is not None:
            times = self._custom_grid(timesteps)
        else:
            num_inference_steps = integer(num_inference_steps, "num_inference_steps", least=1)
        self._grid = (num_inference_steps, times)
        plan = self.sampler.prepare(num_inference_steps, times, torch.device("cpu"))
        self.plan = plan
        self.num_inference_steps = len(plan.steps)
        self.timesteps = call_times(plan).to(device)
        self._starts = step_starts(plan)
        sigma0 = self.schedule.sigma(plan.timesteps[0].to(torch.float64))
        self.init_noise_sigma = float(sigma0)
        self._begin_index = None
        self._reset()

    def _custom_grid(self, timesteps) -> torch.Tensor:
        """The run's grid for custom ``timesteps``: the call times and ``t_end`` after them."""
        if hasattr(timesteps, "timesteps"):
            return torch.as_tensor(timesteps.timesteps, dtype=torch.float64).flatten().cpu()
        calls = torch.as_tensor(timesteps, dtype=torch.float64).flatten().cpu()
        low, high = float(self.schedule.t_min), float(self.schedule.t_max)
        if calls.numel() == 0:
            raise InputError("timesteps is empty; give at least one call time")
        if not (torch.isfinite(calls).all() and (calls >= low).all() and (calls <= high).all()):
            raise InputError(
                f"timesteps must be times of the MR schedule, in [{low:g}, {high:g}] (its own "
                f"unit, not diffusers' integer indices); got {calls.tolist()}"
            )
        options = self.sampler.options
        t_end = grids.default_t_end(self.schedule) if options.t_end is None else options.t_end
        if not float(calls[-1]) > t_end:
            raise InputError(
                f"the last of timesteps, t = {float(calls[-1])!r}, is not above the run's end "
                f"t_end = {t_end!r}, which the scheduler appends: timesteps are the times of "
                "the network calls (drop an end time you gave, or set t_end lower in the config)"
            )
        return torch.cat([calls, torch.tensor([float(t_end)], dtype=torch.float64)])

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

        ``timesteps`` is one MR time (a float, in the schedule's unit) or one per sample: the
        times it is given, never an index (with a begin index set, the pipeline's
        ``timesteps[:1]`` is that entry's time). α and σ are computed in float64; the result
        has the samples' dtype and device.

        Raises:
            InputError: Without ``mu``, for mismatched shapes or devices, and for times
                outside the schedule.
        """
        if mu is None:
            raise InputError(
                "add_noise needs the condition mu= (the degraded image: the MR process "
                "reverts to μ)"
            )
        like = original_samples
        for name, value in (("noise", noise), ("mu", mu)):
            if not isinstance(value, torch.Tensor) or value.shape != like.shape:
                shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value)
                raise InputError(
                    f"add_noise: {name} must be a tensor shaped like original_samples "
                    f"{tuple(like.shape)}, got {shape}"
                )
            if value.device != like.device:
                raise InputError(
                    f"add_noise: {name} is on {value.device}, original_samples on {like.device}"
                )
        t = torch.as_tensor(timesteps, dtype=torch.float64).flatten().cpu()
        if t.numel() not in (1, like.shape[0]):
            raise InputError(
                f"add_noise: give one time or one per sample ({like.shape[0]}), got {t.numel()}"
            )
        low, high = float(self.schedule.t_min), float(self.schedule.t_max)
        if not (torch.isfinite(t).all() and (t >= low).all() and (t <= high).all()):
            raise InputError(
                f"add_noise: times must be in the schedule's range [{low:g}, {high:g}] (MR "
                f"times, not diffusers' integer indices), got {t.tolist()}"
            )
        shape = (-1,) + (1,) * (like.dim() - 1)
        alpha = self.schedule.alpha(t).reshape(shape).to(like)
        sigma = self.schedule.sigma(t).reshape(shape).to(like)
        mu = mu.to(like.dtype)
        return mu + alpha * (like - mu) + sigma * noise.to(like.dtype)

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
            timestep: The current entry of ``timesteps`` (checked against the plan). The
                first ``step`` may give a later step start's time: the run starts there
                (see the module's "Partial starts").
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
            InputError: Without ``mu``, before ``set_timesteps``, after the last call, or for
                a ``timestep`` that is not the next call's time (or, first, a step start's).
        """
        if mu is None:
            raise InputError(
                "step needs the condition mu= (the degraded image: the MR process reverts to μ)"
            )
        self._require_plan()
        assert self.timesteps is not None
        given = float(torch.as_tensor(timestep, dtype=torch.float64).flatten()[0])
        if self._replay is None:
            index = self._first_index(given)
            self._start(index, sample, mu)
        else:
            index = self._step_index if self._step_index is not None else 0
            if index >= len(self.timesteps):
                raise InputError(
                    f"all {len(self.timesteps)} calls of this run were made; call set_timesteps "
                    "again to start a new run"
                )
            expected = float(self.timesteps[index])
            if not _same_time(given, expected):
                raise InputError(
                    f"step {index} expects the call at t = {expected!r} "
                    f"(scheduler.timesteps[{index}]), got t = {given!r}"
                )
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
            raise InputError("call set_timesteps first")
        return self.plan

    def _first_index(self, given: float) -> int:
        """The entry of ``timesteps`` the run starts at: the begin index, else the entry
        whose time the first ``step`` gives (0 for the whole run)."""
        assert self.timesteps is not None
        if self._begin_index is not None:
            expected = float(self.timesteps[self._begin_index])
            if not _same_time(given, expected):
                raise InputError(
                    f"the run starts at timesteps[{self._begin_index}] = {expected!r} "
                    f"(set_begin_index), but the first step gives t = {given!r}"
                )
            return self._begin_index
        for index, t in enumerate(self.timesteps.tolist()):
            if _same_time(given, t):
                self._start_index(index)
                return index
        starts = [float(self.timesteps[k]) for k in sorted(self._starts)]
        raise InputError(
            f"step 0 expects the call at t = {float(self.timesteps[0])!r} "
            f"(scheduler.timesteps[0]) or, for a partial start, a step's start time "
            f"(one of {starts}), got t = {given!r}"
        )

    def _start_index(self, index: int) -> int:
        """The grid index j of a partial start at ``timesteps[index]``, or a refusal."""
        assert self.timesteps is not None
        calls = len(self.timesteps)
        if index >= calls:
            raise InputError(f"begin_index {index} is past the last of the {calls} calls")
        if index not in self._starts:
            raise InputError(
                f"timesteps[{index}] = {float(self.timesteps[index])!r} is a call inside a "
                "step (the order-3 start's stage, or denoise_last), not a step's start; a run "
                f"can start at the entries {sorted(self._starts)}"
            )
        return self._starts[index]

    def _start(self, index: int, sample: torch.Tensor, mu: torch.Tensor) -> None:
        """Compile the (remaining) plan for the sample's dtype and device; run to its first
        call."""
        self._out_dtype = sample.dtype
        work = master_dtype(sample.dtype)
        steps, times = self._grid
        sampler = self.sampler
        if index > 0:
            plan = self._require_plan()
            steps, times = None, plan.timesteps[self._start_index(index) :]
            sampler = self._restart_sampler()
        self._run_plan = sampler.prepare(steps, times, mu.device, mu.dtype)
        check_plan(self._run_plan)
        self._mu = mu.to(work)
        self._replay = self._program(self._run_plan, sample.to(work))
        _, self._pending = next(self._replay)
        self._returned = sample

    def _restart_sampler(self) -> SamplerBase:
        """The configured sampler with the warm-up start: the sampler of a partial run."""
        solver = self.config["solver"]
        if solver_info(solver).start_extra_nfe == 0:
            return self.sampler
        return make_sampler(
            solver,
            self.schedule,
            self.sampler.model_prediction,
            start="warmup",
            **self._options,
        )

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


def _init_keys(cls) -> frozenset[str]:
    """The keyword parameters of a class's ``__init__`` (its config keys)."""
    return frozenset(inspect.signature(cls.__init__).parameters) - {"self", "kwargs"}


def _class_of(config: dict, own: frozenset[str]) -> str:
    """The scheduler class a config belongs to: its ``_class_name``; for a config without
    one (``scheduler.config`` of a scheduler built in Python), the class of ``compatibles``
    whose other keys are exactly the config's keys beyond the MR ones, else ``"MRSampler
    Scheduler"`` when it has none, else ``"an unnamed scheduler (keys …)"`` (refused)."""
    name = config.get("_class_name")
    if isinstance(name, str):
        return name
    foreign = {k for k in config if not k.startswith("_")} - own
    if not foreign:
        return MRSamplerScheduler.__name__
    for candidate in MRSamplerScheduler._get_compatibles():
        if _init_keys(candidate) - own == foreign:
            return candidate.__name__
    return f"an unnamed scheduler (keys {sorted(foreign)})"


def call_times(plan: Plan) -> torch.Tensor:
    """The times of a plan's network calls, in call order (float64).

    Per step: the step start (if it evaluates there), then each stage's evaluation (the
    singlestep start's midpoint, a corrector's predicted state); finally ``denoise_last``.
    """
    return torch.tensor([t for t, _ in _calls(plan)], dtype=torch.float64)


def step_starts(plan: Plan) -> dict[int, int]:
    """{call index: grid index j} for the calls made at a step's start t_j (j < N): where a
    run may begin (the start's stages and the ``denoise_last`` call are not)."""
    last = len(plan.steps)
    return {k: j for k, (_, j) in enumerate(_calls(plan)) if j is not None and j < last}


def _calls(plan: Plan) -> list[tuple[float, int | None]]:
    """(time, grid index or None) of every network call of a plan, in call order."""
    calls: list[tuple[float, int | None]] = []
    for i, step in enumerate(plan.steps):
        if step.first is not None:
            calls.append((step.first.t, i))
        for stage in step.stages:
            if stage.evaluate is not None:
                at_end = step.carry is not None and stage.evaluate.label == step.carry
                calls.append((stage.evaluate.t, i + 1 if at_end else None))
    if plan.final is not None:
        calls.append((plan.final.t, len(plan.steps)))
    return calls


def _same_time(given: float, expected: float) -> bool:
    """Times equal to round-off (a float32 copy of a float64 time, or a tensor entry)."""
    return abs(given - expected) <= 1e-6 * max(1.0, abs(expected))
