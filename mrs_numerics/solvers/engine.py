"""The engine: compiled plans and the one loop that runs them, for every sampler.

A sampler is compiled, before any network call, into a [`Plan`][mrs_numerics.solvers.engine.Plan]:
per step, the times, the model evaluations it needs and the float64 coefficients of each stage
(cast once to the working dtype). [`walk`][mrs_numerics.solvers.engine.walk] is the only
sampling loop of the package, a coroutine that asks for model outputs;
[`run`][mrs_numerics.solvers.engine.run] drives it with the model (and does the checks below),
the diffusers scheduler one user call at a time. Every change to how sampling proceeds
(correctors, divergence checks, GPU capture) is made here.

**Invariants of the loop** (for step i = 0 … N − 1 of a plan, from x at ``plan.timesteps[0]``):

1. *Evaluation.* Each step first evaluates the model once at (x_s, t_from), label ``m0``; a
   stage with an ``evaluate`` then evaluates it at its own stage state (singlestep stages,
   Heun's corrector, the MR Sampler's predictor before its corrector). A step without a first
   evaluation (``first`` None) takes as m0 the output its predecessor carried (``carry``: the
   MR Sampler's call at its predicted, uncorrected state, see
   [Corrector](../theory.md#corrector)); no call is made for it. The model sees the state in the
   input dtype and ``t`` as a float64 tensor ``[batch]``; every call counts one NFE, once.
2. *Conversion.* An output is converted to the plan's prediction form right after its call,
   with the (rounded) state the network saw, not the master state: a noise prediction is
   consistent with its own input, and converting it with a different x would divide the
   rounding difference by α (≈ 0.005 at the start). x̂₀ limiters (``clip_x0``,
   ``thresholding``) act on the converted output, through the data form for noise solvers.
3. *Stages.* Every stage is ``linear_step(x_s, μ, outputs[labels], coefficients[, z])``; the
   step's result is its last stage. Stochastic stages draw z from the noise source, told the
   step index and the interval (t_from, t_to), once per stage, in stage order.
4. *History.* After the step, ``m0`` (evaluated or carried) is pushed on the history of
   earlier outputs (``m1``, ``m2``, … for multistep updates), kept to ``plan.history`` entries;
   the output labelled ``step.carry`` is kept for the next step's m0.
5. *Non-finite values and divergence.* After every step the loop records, on the device, the
   first step whose model call returned NaN/Inf (a carried output is charged to the step that
   made the call), and the first step whose state is NaN/Inf or has diverged: a sample's RMS
   distance from μ exceeds [`DIVERGENCE_FACTOR`][mrs_numerics.solvers.engine.DIVERGENCE_FACTOR]
   · Λ (see [`diverged`][mrs_numerics.solvers.engine.diverged]). On the CPU the flags are read
   after every step, so the run stops at the step where it went wrong; on an accelerator they
   are read every [`CHECK_EVERY`][mrs_numerics.solvers.engine.CHECK_EVERY] steps and at the end
   (no host synchronisation per step), so the run stops at most that many steps later, and the
   error still names the first bad step. A bad model output raises
   [`NonFiniteError`][mrs_numerics.solvers.engine.NonFiniteError], a finite state far from μ
   [`DivergenceError`][mrs_numerics.solvers.engine.DivergenceError] (with ``allow_divergence``
   a warning instead, and the run goes on).
6. *Precision.* float16/bfloat16 inputs are carried in a float32 master state; the result is
   cast back to the input dtype once, at the end.
7. *Final call.* With ``plan.final`` (``denoise_last``) one more evaluation at the last time
   returns x̂₀ there (limited as in 2) as the result; it counts one NFE.

The callback gets ``{"i", "t", "t_next", "x", "output"}`` after every step.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from mrs_numerics._errors import Advice, AdvisedError
from mrs_numerics._generated.types import StepCoefficients
from mrs_numerics._warn import warn
from mrs_numerics.solvers import parameterization
from mrs_numerics.solvers.kernels import linear_step
from mrs_numerics.solvers.options import SamplerOptions
from mrs_numerics.solvers.protocols import Model, NoiseSource


class NonFiniteError(FloatingPointError):
    """The network output (or the state) became NaN/Inf; says at which step and time."""


class DivergenceError(AdvisedError, NonFiniteError):
    """The state diverged: a sample's RMS distance from μ exceeded ``DIVERGENCE_FACTOR``·Λ.

    Its advice names ``allow_divergence`` (``--allow-divergence`` on the command line)."""


class DivergenceWarning(RuntimeWarning):
    """A diverged state returned because ``allow_divergence`` asked for it."""


DIVERGENCE_FACTOR = 50.0
"""A run has diverged when a sample's RMS distance from μ exceeds this many Λ (``max_sigma``).

The MR marginal is x_t = μ + α_t(x₀ − μ) + σ_t ξ with σ_t ≤ Λ, so a healthy state stays within
RMS(x₀ − μ) + Λ·RMS(ξ) of μ: about 1 + Λ for images in [0, 1] with a noise level Λ ≥ 0.02 (5/255).
Fifty Λ (9.8 for the shipped networks' Λ = 50/255) leaves that band far behind; the noise-form SDE
at 3–5 NFE, the known case, reaches |x| ≈ 100."""

CHECK_EVERY = 8
"""On an accelerator the non-finite/divergence flags are read every this many steps."""


def check_interval(device: torch.device) -> int:
    """Steps between host reads of the non-finite/divergence flags: 1 on the CPU (a read is
    free there), ``CHECK_EVERY`` on an accelerator (no synchronisation per step)."""
    return 1 if device.type == "cpu" else CHECK_EVERY


def diverged(x: torch.Tensor, mu: torch.Tensor, max_sigma: float) -> torch.Tensor:
    """Per sample: RMS(x − μ) over all but the batch dimension > DIVERGENCE_FACTOR·Λ, or NaN/Inf.

    Computed as Σ(x − μ)² > (DIVERGENCE_FACTOR·Λ)²·n (n values per sample): one fused
    reduction, no square root. Returns a bool tensor ``[batch]`` on x's device (no host
    synchronisation).
    """
    difference = (x - mu).reshape(x.shape[0], -1)
    limit = (DIVERGENCE_FACTOR * max_sigma) ** 2 * difference.shape[1]
    return ~(torch.linalg.vecdot(difference, difference) <= limit)


def non_finite(values: torch.Tensor) -> torch.Tensor:
    """True (a 0-dim bool tensor, no host read) if ``values`` hold a NaN or an Inf.

    For float32/16 values one reduction: their float64 sum is finite exactly when they all are
    (float64 cannot overflow on a sum of float32 values, and +Inf with −Inf sum to NaN).
    float64 values (whose sum could overflow) and MPS tensors (no float64 there) are checked
    one by one.
    """
    if values.dtype == torch.float64 or values.device.type == "mps":
        return ~torch.isfinite(values).all()
    return ~torch.isfinite(values.sum(dtype=torch.float64))


def rms_distance(x: torch.Tensor, mu: torch.Tensor) -> float:
    """The largest per-sample RMS distance of x from μ (a host read, for messages)."""
    return float((x - mu).reshape(x.shape[0], -1).pow(2).mean(1).sqrt().max())


@dataclass
class Evaluation:
    """One network call at a stage's state (label, time, α and σ there)."""

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
    """One step t_from → t_to: m0, then stages.

    ``first`` evaluates m0 at (x_s, t_from); None takes the output the previous step carried.
    ``carry`` names the output (a stage's ``evaluate`` label) passed on as the next step's m0.
    """

    t_from: float
    t_to: float
    first: Evaluation | None
    stages: list[Stage]
    description: str = ""
    carry: str | None = None


@dataclass
class Plan:
    """A compiled sampler run.

    Attributes:
        timesteps: The grid t_0 > … > t_N (float64).
        steps: One [`Step`][mrs_numerics.solvers.engine.Step] per interval.
        history: How many earlier outputs the updates use (order − 1 for multistep).
        output_prediction: The form the stages consume (``"data"`` or ``"noise"``).
        max_sigma: Λ of the schedule (for prediction conversions).
        final: The ``denoise_last`` evaluation at the last time, or None.
    """

    timesteps: torch.Tensor
    steps: list[Step]
    history: int
    output_prediction: str
    max_sigma: float = 1.0
    final: Evaluation | None = None


@dataclass
class SampleResult:
    """What ``sample`` returns.

    Attributes:
        x: The final state, in the input dtype.
        nfe: The network calls made.
        timesteps: The grid used.
        trajectory: If asked for, x_T, x_1, …, x_N (and x̂₀ with ``denoise_last``).
    """

    x: torch.Tensor
    nfe: int
    timesteps: torch.Tensor
    trajectory: list[torch.Tensor] = field(default_factory=list)


class PlanCache:
    """Compiled plans by (steps or times, dtype, device): repeated sampling compiles once.

    A plan only holds read-only tensors, so it is safe to reuse across calls.
    """

    def __init__(self, compile_plan: Callable, size: int = 16):
        self.compile_plan = compile_plan
        self.size = size
        self.plans: dict = {}

    def get(self, steps, timesteps, device, dtype) -> Plan:
        """The plan of (steps or timesteps) on (device, dtype), compiled on first use."""
        times = (
            None
            if timesteps is None
            else tuple(float(t) for t in torch.as_tensor(timesteps).flatten())
        )
        key = (steps, times, str(device), dtype)
        if key not in self.plans:
            if len(self.plans) >= self.size:
                self.plans.pop(next(iter(self.plans)))
            # compiled as ordinary tensors even under torch.inference_mode(): a plan cached there
            # and reused outside it (with a network that has parameters) must not hold
            # inference tensors
            with torch.inference_mode(False):
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


@dataclass(frozen=True)
class Call:
    """A model output the loop needs: at state ``x`` for ``evaluation``, in step ``index``."""

    x: torch.Tensor
    evaluation: Evaluation
    index: int


@dataclass(frozen=True)
class StepEnd:
    """The loop finished step ``index`` of ``step``: its state ``x`` and its m0 ``output``."""

    index: int
    step: Step
    x: torch.Tensor
    output: torch.Tensor


Draw = Callable[[int, Step, torch.Tensor], torch.Tensor]
"""``draw(index, step, state)``: a stochastic stage's standard normals, shaped like the state."""

Reply = tuple[torch.Tensor, torch.Tensor | None]
"""What a driver sends back for a [`Call`][mrs_numerics.solvers.engine.Call]: the output,
converted to the plan's form and limited, and a replacement of the step's start state (at a
step's first evaluation only; None: keep it)."""


def walk(
    plan: Plan, x: torch.Tensor, mu: Callable[[], torch.Tensor], draw: Draw
) -> Generator[Call | StepEnd, Reply | None, None]:
    """The loop over a plan's steps (invariants 1, 3 and 4), as a coroutine.

    It yields a [`Call`][mrs_numerics.solvers.engine.Call] for every model output it needs
    (the driver sends back a [`Reply`][mrs_numerics.solvers.engine.Reply]) and a
    [`StepEnd`][mrs_numerics.solvers.engine.StepEnd] after every step (the driver sends None).
    [`run`][mrs_numerics.solvers.engine.run] drives it with the model; the diffusers scheduler
    drives it one user call at a time. ``plan.final`` (``denoise_last``) is the driver's.

    Args:
        plan: The compiled plan (checked with ``check_plan``).
        x: The start state, in the working dtype.
        mu: Returns the condition μ in the working dtype (read at every stage).
        draw: The Gaussian draws of stochastic stages, in stage order.
    """
    state = x
    history: list[torch.Tensor] = []
    carried: torch.Tensor | None = None
    for index, step in enumerate(plan.steps):
        if step.first is None:
            m0 = carried
        else:
            reply = yield Call(state, step.first, index)
            assert reply is not None
            m0, replaced = reply
            if replaced is not None:
                state = replaced
        assert m0 is not None
        outputs = {"m0": m0}
        outputs.update({f"m{j + 1}": h for j, h in enumerate(history)})
        y = state
        for stage in step.stages:
            z = None if stage.coefficients.noise is None else draw(index, step, state)
            inputs = [outputs[label] for label in stage.labels]
            y = linear_step(state, mu(), inputs, stage.coefficients, z)
            if stage.evaluate is not None:
                reply = yield Call(y, stage.evaluate, index)
                assert reply is not None
                outputs[stage.evaluate.label] = reply[0]
        state = y
        history = [m0, *history][: plan.history]
        carried = None if step.carry is None else outputs[step.carry]
        yield StepEnd(index, step, state, m0)


def _driven(
    program: Generator[Call | StepEnd, Reply | None, None],
    answer: Callable[[Call], torch.Tensor],
) -> Iterator[StepEnd]:
    """Run ``program``, answering every call with ``answer(call)``; yields the step ends."""
    request = next(program)
    while True:
        reply: Reply | None = None
        if isinstance(request, Call):
            reply = (answer(request), None)
        else:
            yield request
        try:
            request = program.send(reply)
        except StopIteration:
            return


def run(
    plan: Plan,
    model: Model,
    x: torch.Tensor,
    mu: torch.Tensor,
    options: SamplerOptions,
    noise: NoiseSource,
    callback: Callable | None = None,
    progress: bool = False,
    return_trajectory: bool = False,
    allow_divergence: bool = False,
) -> SampleResult:
    """Execute ``plan`` from state x (at ``plan.timesteps[0]``) with condition μ.

    See the module docstring for the loop's invariants. ``options`` supplies the model's
    prediction type and the x̂₀ limiters; ``noise`` the Gaussian draws of stochastic stages;
    ``allow_divergence`` turns a [`DivergenceError`][mrs_numerics.solvers.engine.DivergenceError]
    into a ``RuntimeWarning``.
    """
    out_dtype = x.dtype
    work = master_dtype(out_dtype)
    state, mu_work = x.to(work), mu.to(work)
    device = x.device
    batch_shape = (x.shape[0],)
    first_bad = torch.full((), -1, dtype=torch.long, device=device)
    first_diverged = torch.full((), -1, dtype=torch.long, device=device)
    check_every = check_interval(device)
    warned = False  # a divergence allowed by allow_divergence was warned about
    nfe = 0
    trajectory = [x.clone()] if return_trajectory else []

    def call(y: torch.Tensor, ev: Evaluation, target: str):
        """The model at (y, ev.t) converted to ``target`` (and limited), the state it saw."""
        nonlocal nfe
        t = torch.full(batch_shape, ev.t, dtype=torch.float64, device=device)
        seen = y.to(out_dtype)
        out = check_model_output(model(seen, t, mu), seen, ev)
        out = out.to(work)
        nfe += 1
        y = seen.to(work)
        converted = parameterization.convert(
            out, options.model_prediction, target, y, mu_work, ev.alpha, ev.sigma, plan.max_sigma
        )
        return out, limit_data(converted, target, y, mu_work, ev, options)

    def evaluate(y, ev: Evaluation, step_index: int):
        nonlocal first_bad
        out, limited = call(y, ev, plan.output_prediction)
        bad = non_finite(out)
        first_bad = torch.where(bad & (first_bad < 0), step_index, first_bad)
        return limited

    check_plan(plan)

    def draw(index: int, step: Step, y: torch.Tensor) -> torch.Tensor:
        z = noise(index, step.t_from, step.t_to, y.shape, work, device)
        return check_noise(z, y, index)

    program = walk(plan, state, lambda: mu_work, draw)
    with tqdm(total=len(plan.steps), disable=not progress, desc="sampling", leave=False) as bar:
        for request in _driven(
            program, lambda call_: evaluate(call_.x, call_.evaluation, call_.index)
        ):
            index, state = request.index, request.x
            if return_trajectory:
                trajectory.append(state.to(out_dtype))
            if callback is not None:
                step = request.step
                callback(
                    {
                        "i": index,
                        "t": step.t_from,
                        "t_next": step.t_to,
                        "x": state,
                        "output": request.output,
                    }
                )
            bad_state = diverged(state, mu_work, plan.max_sigma).any()
            first_diverged = torch.where(bad_state & (first_diverged < 0), index, first_diverged)
            if (index + 1) % check_every == 0 or index + 1 == len(plan.steps):
                flags = (first_bad, first_diverged)
                warned = _report(plan, *flags, state, mu_work, allow_divergence, warned)
            bar.update()
    if plan.final is not None:
        _, state = call(state, plan.final, "data")
        if not torch.isfinite(state).all():
            raise NonFiniteError(
                f"the model returned NaN/Inf in the denoise-last call at t = {plan.final.t:.6g}"
            )
        if bool(diverged(state, mu_work, plan.max_sigma).any()) and not warned:
            where = f"the denoise-last call at t = {plan.final.t:.6g}"
            _divergence(where, state, mu_work, plan.max_sigma, allow_divergence)
        if return_trajectory:
            trajectory.append(state.to(out_dtype))
    return SampleResult(state.to(out_dtype), nfe, plan.timesteps, trajectory)


def _report(
    plan: Plan, first_bad, first_diverged, state, mu, allow_divergence: bool, warned: bool
) -> bool:
    """Raise for the first bad step recorded so far; True once a divergence was warned about."""
    bad_step, diverged_step = int(first_bad), int(first_diverged)
    if bad_step >= 0 and (diverged_step < 0 or bad_step <= diverged_step):
        step = plan.steps[bad_step]
        raise NonFiniteError(
            f"the model returned NaN/Inf at step {bad_step} (t = {step.t_from:.6g} → "
            f"{step.t_to:.6g}, {step.description}); the result would be meaningless"
        )
    if diverged_step < 0:
        return warned
    step = plan.steps[diverged_step]
    where = f"step {diverged_step} (t = {step.t_from:.6g} → {step.t_to:.6g}, {step.description})"
    if not torch.isfinite(state).all():
        raise NonFiniteError(
            f"the sampler state became NaN/Inf at {where} although every model output was "
            "finite: the solver diverged (a noise-form SDE at low NFE is known to; use the data "
            "form or more steps)"
        )
    if not warned:
        _divergence(where, state, mu, plan.max_sigma, allow_divergence)
    return True


def _divergence(where: str, state, mu, max_sigma: float, allow_divergence: bool) -> None:
    """Raise DivergenceError for a diverged state, or warn with ``allow_divergence``."""
    message = (
        f"the sampler diverged at {where}: a sample's RMS distance from μ is "
        f"{rms_distance(state, mu):.3g}, more than {DIVERGENCE_FACTOR:g}·Λ = "
        f"{DIVERGENCE_FACTOR * max_sigma:.3g} (a noise-form SDE at low NFE is known to: use the "
        "data form or more steps; otherwise check the model's prediction type and scale)"
    )
    if not allow_divergence:
        raise DivergenceError(
            message, advice=Advice("allow_divergence", True, "to keep the diverged result anyway")
        )
    warn(message + "; returning the state as asked (allow_divergence)", DivergenceWarning)


def check_model_output(out, seen: torch.Tensor, ev: Evaluation) -> torch.Tensor:
    """The model's output if it is a float tensor of exactly the input's shape and device.

    Broadcastable shapes (``[B, 1]``, 0-dim, ``[1, D]``) are refused too: broadcasting would
    silently combine the wrong values.
    """
    return check_shaped_like(out, seen, f"the model output at t = {ev.t:.6g}", "the input")


def check_noise(z, state: torch.Tensor, step: int) -> torch.Tensor:
    """The noise draw if it is a float tensor of exactly the state's shape and device."""
    return check_shaped_like(z, state, f"the noise source's draw at step {step}", "the state")


def check_shaped_like(value, like: torch.Tensor, subject: str, reference: str) -> torch.Tensor:
    """``value`` if it is a floating tensor with ``like``'s shape and device, else an error
    that names ``subject``, the expected and the received shape (or type)."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(
            f"{subject} must be a torch.Tensor shaped like {reference} {tuple(like.shape)}, got "
            f"{_describe(value)}"
        )
    if value.shape != like.shape:
        raise ValueError(
            f"{subject} has shape {tuple(value.shape)}; expected exactly {reference}'s shape "
            f"{tuple(like.shape)}"
        )
    if value.device != like.device:
        raise ValueError(f"{subject} is on {value.device}, {reference} on {like.device}")
    if not value.is_floating_point():
        raise TypeError(f"{subject} has dtype {value.dtype}; need a float")
    return value


def _describe(value) -> str:
    """A short description of a non-tensor value for error messages."""
    if value is None:
        return "None"
    shape = getattr(value, "shape", None)
    kind = f"{type(value).__module__}.{type(value).__name__}".removeprefix("builtins.")
    return kind if shape is None else f"{kind} of shape {tuple(shape)}"


def check_plan(plan: Plan) -> None:
    """Refuse a plan whose step takes a carried m0 that its predecessor does not carry.

    A carried label must be the ``evaluate`` label of one of the step's stages.
    """
    carried = None
    for index, step in enumerate(plan.steps):
        if step.first is None and carried is None:
            raise ValueError(
                f"step {index} takes its m0 from the previous step, which carries no output"
            )
        labels = {stage.evaluate.label for stage in step.stages if stage.evaluate is not None}
        if step.carry is not None and step.carry not in labels:
            raise ValueError(
                f"step {index} carries {step.carry!r}, which none of its stages evaluates"
            )
        carried = step.carry


def limit_data(converted, prediction, y, mu, ev: Evaluation, options: SamplerOptions):
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
