"""The sampling engine shared by the MR Sampler and the baselines.

A sampler is compiled, before any network call, into a :class:`Plan`: per step, the times, the
model evaluations it needs and the float64 coefficients of each stage (cast once to the working
dtype). :func:`run` executes a plan: it owns the state, the history of model outputs, the noise,
the network-call count, non-finite detection (a flag on the device, read once at the end),
the callback, the progress bar and the trajectory.

Precision: float16/bfloat16 inputs are carried in a float32 master state; the network sees the
input dtype; the result is cast back once at the end. A network output is converted between
prediction types with the (rounded) state the network saw, not the master state: a noise
prediction is consistent with its own input, and converting it with a different x would divide
the rounding difference by α (≈ 0.005 at the start).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from mrs_numerics import parameterization
from mrs_numerics._generated.types import StepCoefficients
from mrs_numerics.kernels import linear_step


class NonFiniteError(FloatingPointError):
    """The network output (or the state) became NaN/Inf; says at which step and time."""


@dataclass
class Evaluation:
    """One network call at a stage's state, converted to the solver's prediction form."""

    label: str
    t: float
    alpha: float
    sigma: float


@dataclass
class Stage:
    """y = linear_step(x_s, μ, [outputs[l] for l in labels], coefficients[, z]); then evaluate."""

    coefficients: StepCoefficients
    labels: tuple[str, ...]
    evaluate: Evaluation | None = None


@dataclass
class Step:
    """One step t_from → t_to: a first evaluation at (x_s, t_from) labelled m0, then stages."""

    t_from: float
    t_to: float
    first: Evaluation
    stages: list[Stage]
    description: str = ""


@dataclass
class Plan:
    """A compiled sampler run: the grid and its steps."""

    timesteps: torch.Tensor
    steps: list[Step]
    history: int
    output_prediction: str


@dataclass
class SampleResult:
    """What :meth:`sample` returns: the final state, the network calls made, the grid used,
    and (if asked) the trajectory x_T, x_1, …, x_N."""

    x: torch.Tensor
    nfe: int
    timesteps: torch.Tensor
    trajectory: list[torch.Tensor] = field(default_factory=list)


@dataclass
class Thresholding:
    """The official dynamic thresholding of x̂₀ (Imagen; as in DPM-Solver and MRS code).

    Per sample, s = max(quantile(|x̂₀|, ratio), max_value); x̂₀ ← clamp(x̂₀, −s, s)/s.
    """

    ratio: float = 0.995
    max_value: float = 1.0

    def __call__(self, data: torch.Tensor) -> torch.Tensor:
        flat = data.abs().reshape(data.shape[0], -1).float()
        s = torch.quantile(flat, self.ratio, dim=1).clamp(min=self.max_value)
        s = s.to(data.dtype).reshape(-1, *([1] * (data.dim() - 1)))
        return torch.maximum(torch.minimum(data, s), -s) / s


@dataclass
class Options:
    """Run-time options shared by every sampler."""

    model_prediction: str = "noise"
    clip_x0: tuple[float, float] | None = None
    thresholding: Thresholding | None = None
    max_sigma: float = 1.0


class PlanCache:
    """Compiled plans by (steps or times, dtype, device): repeated sampling compiles once.

    A plan only holds read-only tensors, so it is safe to reuse across calls.
    """

    def __init__(self, compile_plan: Callable, size: int = 16):
        self.compile_plan = compile_plan
        self.size = size
        self.plans: dict = {}

    def get(self, steps, timesteps, device, dtype) -> Plan:
        times = (
            None
            if timesteps is None
            else tuple(float(t) for t in torch.as_tensor(timesteps).flatten())
        )
        key = (steps, times, str(device), dtype)
        if key not in self.plans:
            if len(self.plans) >= self.size:
                self.plans.pop(next(iter(self.plans)))
            self.plans[key] = self.compile_plan(steps, timesteps, device, dtype)
        return self.plans[key]


def master_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32 for half precisions, else the dtype itself (float32/float64)."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def cast_coefficients(c: StepCoefficients, dtype, device) -> StepCoefficients:
    """Float64 coefficients → 0-dim tensors of the working dtype on the device (once per plan)."""

    def cast(value):
        return None if value is None else torch.as_tensor(value, dtype=dtype, device=device)

    return StepCoefficients(cast(c.x), cast(c.mu), tuple(cast(w) for w in c.outputs), cast(c.noise))


def noise_source(generator, noise_fn) -> Callable:
    """z-sampler for SDE steps: a user noise function, per-sample generators, or one generator.

    ``noise_fn(step_index, shape, dtype, device)`` must return standard normal noise.
    """
    if noise_fn is not None:
        return noise_fn

    def sample(step_index, shape, dtype, device):
        if isinstance(generator, Sequence):
            if len(generator) != shape[0]:
                raise ValueError(
                    f"got {len(generator)} per-sample generators for a batch of {shape[0]}"
                )
            return torch.stack(
                [torch.randn(shape[1:], generator=g, dtype=dtype, device=device) for g in generator]
            )
        return torch.randn(shape, generator=generator, dtype=dtype, device=device)

    return sample


def run(
    plan: Plan,
    model: Callable,
    x: torch.Tensor,
    mu: torch.Tensor,
    options: Options,
    noise: Callable,
    callback: Callable | None = None,
    progress: bool = False,
    return_trajectory: bool = False,
) -> SampleResult:
    """Execute ``plan`` from state x (at plan.timesteps[0]) with condition μ."""
    out_dtype = x.dtype
    work = master_dtype(out_dtype)
    state, mu_work = x.to(work), mu.to(work)
    device = x.device
    batch_shape = (x.shape[0],)
    first_bad = torch.full((), -1, dtype=torch.long, device=device)
    nfe = 0
    trajectory = [x.clone()] if return_trajectory else []

    def evaluate(y, ev: Evaluation, step_index: int):
        nonlocal first_bad, nfe
        t = torch.full(batch_shape, ev.t, dtype=torch.float64, device=device)
        seen = y.to(out_dtype)
        raw = model(seen, t, mu)
        nfe += 1
        out = raw.to(work)
        # convert with the state the network saw: its output is consistent with that input
        y = seen.to(work)
        bad = ~torch.isfinite(out).all()
        first_bad = torch.where(bad & (first_bad < 0), step_index, first_bad)
        converted = parameterization.convert(
            out,
            options.model_prediction,
            plan.output_prediction,
            y,
            mu_work,
            ev.alpha,
            ev.sigma,
            options.max_sigma,
        )
        return _limit_data(converted, plan.output_prediction, y, mu_work, ev, options)

    history: list[torch.Tensor] = []
    bar = tqdm(plan.steps, disable=not progress, desc="sampling", leave=False)
    for index, step in enumerate(bar):
        m0 = evaluate(state, step.first, index)
        outputs = {"m0": m0}
        outputs.update({f"m{j + 1}": h for j, h in enumerate(history)})
        y = state
        for stage in step.stages:
            z = None
            if stage.coefficients.noise is not None:
                z = noise(index, state.shape, work, device)
            y = linear_step(
                state, mu_work, [outputs[label] for label in stage.labels], stage.coefficients, z
            )
            if stage.evaluate is not None:
                outputs[stage.evaluate.label] = evaluate(y, stage.evaluate, index)
        state = y
        history = [m0, *history][: plan.history]
        if return_trajectory:
            trajectory.append(state.to(out_dtype))
        if callback is not None:
            callback({"i": index, "t": step.t_from, "t_next": step.t_to, "x": state, "output": m0})
    bad_step = int(first_bad)
    if bad_step >= 0:
        step = plan.steps[bad_step]
        raise NonFiniteError(
            f"the model returned NaN/Inf at step {bad_step} (t = {step.t_from:.6g} → "
            f"{step.t_to:.6g}, {step.description}); the result would be meaningless"
        )
    if not torch.isfinite(state).all():
        raise NonFiniteError(
            "the sampler state became NaN/Inf although every model output was finite: the "
            "solver diverged (a noise-form SDE at very low NFE is known to; use the data form)"
        )
    return SampleResult(state.to(out_dtype), nfe, plan.timesteps, trajectory)


def _limit_data(converted, prediction, y, mu, ev, options: Options):
    """Apply x̂₀ clipping / dynamic thresholding (through the data form for noise solvers)."""
    if options.clip_x0 is None and options.thresholding is None:
        return converted
    data = converted
    if prediction == "noise":
        data = parameterization.convert(converted, "noise", "data", y, mu, ev.alpha, ev.sigma, 1.0)
    if options.thresholding is not None:
        data = options.thresholding(data)
    if options.clip_x0 is not None:
        data = data.clamp(*options.clip_x0)
    if prediction == "noise":
        return parameterization.convert(data, "data", "noise", y, mu, ev.alpha, ev.sigma, 1.0)
    return data
