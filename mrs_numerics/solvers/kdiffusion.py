"""k-diffusion's calling convention for MR diffusion: EDM coordinates, ``sample_mrs``, a denoiser.

**EDM coordinates of the MR process.** With z = x − (1 − α)μ the MR marginal
x = μ + α(x₀ − μ) + σε reads z = αx₀ + σε, so

    x_e = z/α = x₀ + σ_e ε,    σ_e = σ/α = e^{−λ},

a variance-exploding process in x_e whose noise level is σ_e. The probability-flow ODE becomes
dx_e/dσ_e = (x_e − D(x_e, σ_e))/σ_e with the denoiser D = x̂₀ (the data prediction), the form
k-diffusion's samplers integrate. σ_e = 0 is the clean end (σ = 0, α = 1); the largest σ_e of a
schedule is e^{−λ(t_max)} (≈ 39 for the built-in ones, where α(t_max) = 0.005).

- [`MRDenoiser`][mrs_numerics.solvers.kdiffusion.MRDenoiser] wraps an MR network
  ``model(x, t, mu)`` of any prediction type as a k-diffusion denoiser
  ``denoiser(x_e, sigma, mu=…)``, so any k-diffusion-style sampler can drive it, with μ passed
  in ``extra_args``;
- [`sample_mrs`][mrs_numerics.solvers.kdiffusion.sample_mrs] is the MR Sampler (any solver id)
  called the k-diffusion way, ``sample_mrs(model, x, sigmas, extra_args, callback, disable)``,
  on a denoiser and EDM coordinates;
- [`sigmas_from_times`][mrs_numerics.solvers.kdiffusion.sigmas_from_times] and
  [`times_from_sigmas`][mrs_numerics.solvers.kdiffusion.times_from_sigmas] convert grids;
  a σ_e must lie in the schedule's [`sigma_range`][mrs_numerics.solvers.kdiffusion.sigma_range],
  up to the round-off of its dtype
  ([`sigma_tolerance`][mrs_numerics.solvers.kdiffusion.sigma_tolerance]), so a schedule's own
  ends are accepted in float64, float32 and bfloat16 alike.

The package does not depend on ``k-diffusion`` (its package imports torchvision); it follows its
convention, and the tests compare k-diffusion 0.1.1.post1's own samplers with the MR Sampler
(which equals which: ``docs/interfaces.md``, section k-diffusion):
``sigmas`` decreasing, usually ending at 0, ``model(x, sigma * s_in, **extra_args)`` returning
the denoised image, ``callback({"x", "i", "sigma", "sigma_hat", "denoised"})`` before each step's
update, ``disable`` for the progress bar.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import torch

from mrs_numerics._errors import Advice, InputError
from mrs_numerics.schedules.protocol import Schedule
from mrs_numerics.solvers import parameterization
from mrs_numerics.solvers.factory import make_sampler
from mrs_numerics.solvers.registry import SOLVERS

FLOAT32_RTOL = 2.0**-20
"""The least round-off tolerance of σ_e, 8 float32 ulps (≈ 9.5e-7), for every dtype: a σ_e
computed in float32 by a few operations is off by a few ulps (k-diffusion's
``get_sigmas_exponential`` gives ``exp(log(58.82279))`` 2.2e-7 too large), and k-diffusion
builds its σ lists in float32 (torch's default dtype) even for a float64 run, whose samplers
then pass them on as float64."""

SIGMA_RTOL: dict[torch.dtype, float] = {torch.float16: 2.0**-9, torch.bfloat16: 2.0**-7}
"""The tolerance of the dtypes coarser than float32: float16 2⁻⁹ (2 ulps), bfloat16 2⁻⁷ (1 ulp,
twice the worst rounding of an exact value); every other dtype has
[`FLOAT32_RTOL`][mrs_numerics.solvers.kdiffusion.FLOAT32_RTOL]. A σ_e this close (relative)
outside the schedule's range is that end of the range, rounded. Rounding can go *up*: the
largest σ_e of Λ = 75/255, 58.82279411, is 58.82279587 in float32."""


def sigma_tolerance(dtype: torch.dtype | None) -> float:
    """The relative round-off tolerance of σ_e given in ``dtype`` (None: float64):
    [`SIGMA_RTOL`][mrs_numerics.solvers.kdiffusion.SIGMA_RTOL], at least
    [`FLOAT32_RTOL`][mrs_numerics.solvers.kdiffusion.FLOAT32_RTOL]."""
    return SIGMA_RTOL.get(dtype, FLOAT32_RTOL) if dtype is not None else FLOAT32_RTOL


def sigma_range(schedule: Schedule) -> tuple[float, float]:
    """The schedule's EDM noise levels (σ_e(t_min), σ_e(t_max)) = (e^{−λ(t_min)}, e^{−λ(t_max)})
    in float64; the first is 0 where σ(t_min) = 0."""
    ends = torch.tensor([float(schedule.t_min), float(schedule.t_max)], dtype=torch.float64)
    smallest, largest = torch.exp(-schedule.lam(ends)).tolist()
    if float(schedule.sigma(ends[:1])[0]) == 0:
        smallest = 0.0
    return smallest, largest


def sigmas_from_times(schedule: Schedule, times) -> torch.Tensor:
    """σ_e = e^{−λ(t)} of a time grid (0 where σ(t) = 0), float64."""
    times = torch.as_tensor(times, dtype=torch.float64)
    return torch.exp(-schedule.lam(times))


def times_from_sigmas(schedule: Schedule, sigmas, *, dtype: torch.dtype | None = None):
    """The times t(λ = −log σ_e) of EDM noise levels, float64; σ_e = 0 maps to t_min.

    σ_e must lie in the schedule's range [σ_e(t_min), σ_e(t_max)]
    ([`sigma_range`][mrs_numerics.solvers.kdiffusion.sigma_range]), or be 0 where σ(t_min) = 0.
    A σ_e outside it by less than the round-off of its dtype
    ([`sigma_tolerance`][mrs_numerics.solvers.kdiffusion.sigma_tolerance]: a relative 2⁻²⁰ for
    float64 and float32, 2⁻⁹ for float16, 2⁻⁷ for bfloat16) is that end of the range, rounded:
    it is clamped to it. So the schedule's own ends, computed or rounded in any dtype, are
    accepted.

    Args:
        schedule: The MR schedule.
        sigmas: EDM noise levels σ_e (a number, a sequence or a tensor of any dtype).
        dtype: The precision ``sigmas`` were computed in, for the tolerance; default: their own
            dtype (float64 for Python numbers).

    Raises:
        InputError: For a negative or non-finite σ_e, one above the schedule's largest or below
            its smallest positive σ_e by more than the tolerance, or σ_e = 0 on a schedule whose
            σ(t_min) > 0.
    """
    if dtype is None and isinstance(sigmas, torch.Tensor):
        dtype = sigmas.dtype
    rtol = sigma_tolerance(dtype)
    sigmas = torch.as_tensor(sigmas, dtype=torch.float64)
    if sigmas.numel() == 0:
        raise InputError("sigmas is empty: give at least one noise level σ_e")
    if not bool(torch.isfinite(sigmas).all()) or bool((sigmas < 0).any()):
        raise InputError(f"sigmas must be finite and ≥ 0, got {sigmas.tolist()}")
    t_min, t_max = float(schedule.t_min), float(schedule.t_max)
    smallest, largest = sigma_range(schedule)
    within = f"(within a relative {rtol:.3g}, the round-off allowed for {_dtype_name(dtype)})"
    if float(sigmas.max()) > largest * (1 + rtol):
        raise InputError(
            f"sigma {float(sigmas.max()):.6g} is noisier than the schedule reaches: its largest "
            f"σ_e = σ/α = e^(−λ(t_max)) is {largest:.9g}; start at most there {within}"
        )
    zero = sigmas == 0
    if bool(zero.any()) and smallest > 0:
        raise InputError(
            f"sigma 0 is the clean end, but this schedule's σ(t_min) > 0: end at σ_e = "
            f"{smallest:.9g} (t_min) instead"
        )
    positive = torch.where(zero, torch.full_like(sigmas, largest), sigmas)
    if float(positive.min()) < smallest * (1 - rtol):
        raise InputError(
            f"sigma {float(positive.min()):.6g} is cleaner than the schedule reaches: its "
            f"smallest σ_e = e^(−λ(t_min)) is {smallest:.9g}; end at least there {within}"
        )
    positive = positive.clamp(smallest, largest)
    times = schedule.t_of_lam(-torch.log(positive))
    times = torch.where(zero, torch.full_like(times, t_min), times)
    return times.clamp(t_min, t_max)


def _dtype_name(dtype: torch.dtype | None) -> str:
    return str(dtype if dtype is not None else torch.float64).removeprefix("torch.")


def _coarser(first: torch.dtype, second: torch.dtype) -> torch.dtype:
    """The dtype of the two with the larger round-off tolerance (``SIGMA_RTOL``)."""
    return first if sigma_tolerance(first) >= sigma_tolerance(second) else second


def to_edm(x: torch.Tensor, mu: torch.Tensor, alpha) -> torch.Tensor:
    """x_e = (x − (1 − α)μ)/α."""
    return (x - (1 - alpha) * mu) / alpha


def from_edm(x_e: torch.Tensor, mu: torch.Tensor, alpha) -> torch.Tensor:
    """x = αx_e + (1 − α)μ."""
    return alpha * x_e + (1 - alpha) * mu


class MRDenoiser:
    """An MR network as a k-diffusion denoiser: ``denoiser(x_e, sigma, mu=…) → x̂₀``.

    Each call maps σ_e to t (``times_from_sigmas``), x_e to x = αx_e + (1 − α)μ, calls
    ``model(x, t, mu)`` and converts its output to the data prediction x̂₀ (which is the same in
    both coordinates). ``sigma`` may be a number or one value per sample (``sigma * s_in``).

    Args:
        model: ``model(x, t, mu)``, the MR network (t a float64 tensor ``[batch]``).
        schedule: The schedule the network was trained on.
        model_prediction: What ``model`` returns: noise, data, velocity or score.
    """

    def __init__(self, model: Callable, schedule: Schedule, model_prediction: str):
        self.model = model
        self.schedule = schedule
        self.model_prediction = parameterization.check_prediction(model_prediction)

    def __call__(self, x_e: torch.Tensor, sigma, mu: torch.Tensor | None = None, **kwargs):
        """x̂₀ at EDM state ``x_e`` and noise level ``sigma``; μ is required (``extra_args``).

        ``sigma`` is mapped to t by
        [`times_from_sigmas`][mrs_numerics.solvers.kdiffusion.times_from_sigmas] with the
        round-off tolerance of the coarser of its dtype and ``x_e``'s (a float32 run accepts
        the schedule's largest σ_e rounded up to float32, a bfloat16 one within 2⁻⁷).

        Raises:
            InputError: Without ``mu``; for a ``sigma`` that is neither one value nor one per
                sample; for a σ_e outside the schedule's range (``times_from_sigmas``).
        """
        if mu is None:
            raise InputError("MRDenoiser needs the condition: pass mu (extra_args={'mu': mu})")
        batch = x_e.shape[0]
        given = sigma.dtype if isinstance(sigma, torch.Tensor) else torch.float64
        sigmas = torch.as_tensor(sigma, dtype=torch.float64, device=x_e.device).reshape(-1)
        if sigmas.numel() not in (1, batch):
            raise InputError(
                f"sigma must be one noise level or one per sample ({batch}), got "
                f"{sigmas.numel()} values"
            )
        sigmas = sigmas.expand(batch) if sigmas.numel() == 1 else sigmas
        dtype = _coarser(given, x_e.dtype)
        t = times_from_sigmas(self.schedule, sigmas.cpu(), dtype=dtype).to(x_e.device)
        shape = (batch,) + (1,) * (x_e.dim() - 1)
        alpha = self.schedule.alpha(t).to(x_e.dtype).reshape(shape)
        sigma_t = self.schedule.sigma(t).to(x_e.dtype).reshape(shape)
        x = from_edm(x_e, mu, alpha)
        out = self.model(x, t, mu, **kwargs)
        max_sigma = float(self.schedule.max_sigma)
        return parameterization.convert(
            out, self.model_prediction, "data", x, mu, alpha, sigma_t, max_sigma
        )


def check_sigmas(sigmas, solver: str) -> None:
    """Refuse a ``sigmas`` list that k-diffusion's samplers would not take, in its own terms.

    ``sigmas`` must be one-dimensional, hold at least two values (start and end) and decrease
    strictly (noisy to clean); only a data-form solver can end at σ_e = 0 (its step there
    returns x̂₀; a noise-form step would divide by σ = 0).

    Raises:
        InputError: Naming the entry that breaks the rule (and, for a noise-form ``solver``
            ending at 0, its data-form twin where there is one).
    """
    values = torch.as_tensor(sigmas, dtype=torch.float64)
    if values.dim() != 1 or values.numel() < 2:
        raise InputError(
            "sigmas must be a one-dimensional list of at least 2 noise levels (start and "
            f"end), got shape {tuple(values.shape)}"
        )
    rising = (values[1:] >= values[:-1]).nonzero()
    if rising.numel():
        i = int(rising[0, 0])
        raise InputError(
            f"sigmas must decrease strictly (noisy to clean), as k-diffusion's do: sigmas[{i}] "
            f"= {float(values[i]):.6g} is followed by sigmas[{i + 1}] = "
            f"{float(values[i + 1]):.6g}"
        )
    info = SOLVERS.get(solver)
    if float(values[-1]) == 0 and info is not None and info.solver_prediction == "noise":
        twin = solver.replace("-noise", "-data")
        advice = Advice("solver", twin, "to end at σ_e = 0") if twin in SOLVERS else None
        raise InputError(
            f"sigmas end at 0 (σ = 0), where only a data-form solver can step (it returns x̂₀); "
            f"{solver!r} is noise-form: end sigmas above 0 or choose a data-form solver",
            advice=advice,
        )


def sample_mrs(
    model: Callable,
    x: torch.Tensor,
    sigmas,
    extra_args: dict | None = None,
    callback: Callable | None = None,
    disable: bool | None = None,
    *,
    schedule: Schedule,
    solver: str = "mrs-ode-2-data",
    noise_sampler: Callable | None = None,
    generator: torch.Generator | None = None,
    **solver_options,
) -> torch.Tensor:
    """The MR Sampler called the k-diffusion way, in EDM coordinates.

    Runs ``solver`` (any MR Sampler or baseline id, e.g. ``mrs-ode-3-data``) on the grid
    t_i = t(−log σ_i) from x_e = ``x`` at ``sigmas[0]`` and returns x_e at ``sigmas[-1]`` (x̂₀
    where it is 0). The network calls go through ``model(x_e, sigma * s_in, **extra_args)``, a
    denoiser (e.g. [`MRDenoiser`][mrs_numerics.solvers.kdiffusion.MRDenoiser]); μ must be
    ``extra_args["mu"]``. The result equals ``make_sampler(solver, schedule, "data",
    **solver_options).sample(...)`` on the same grid and start, to round-off.

    Args:
        model: The denoiser D(x_e, σ_e, **extra_args) → x̂₀.
        x: The start in EDM coordinates, x_e = x₀ + σ_0 ε (e.g. μ/… + sigmas[0]·ξ; from an MR
            prior sample x_T: ``to_edm(x_T, mu, α(t_0))``).
        sigmas: Decreasing EDM noise levels σ_e, usually ending at 0.
        extra_args: Keyword arguments of ``model``; must hold ``"mu"``.
        callback: Called before each step's update with ``{"x", "i", "sigma", "sigma_hat",
            "denoised"}`` (x_e at sigmas[i] and x̂₀ there), as k-diffusion's samplers do.
        disable: True hides the progress bar; None shows it when stderr is a terminal.
        schedule: The MR schedule (it maps σ_e to t).
        solver: A solver id of the registry.
        noise_sampler: For SDE solvers, ``noise_sampler(sigma, sigma_next)`` → standard
            normals shaped like x (k-diffusion's convention), asked once per step for its
            interval; which Gaussian a draw stands for in each solver family is in
            [`NoiseSource`][mrs_numerics.solvers.protocols.NoiseSource]. Default: drawn from
            ``generator``.
        generator: The generator of the SDE noise when no ``noise_sampler`` is given.
        **solver_options: Options of the sampler (e.g. ``start``, ``lower_order_final``).

    Returns:
        x_e at ``sigmas[-1]``.

    Raises:
        InputError: Without ``extra_args["mu"]``; for ``sigmas`` that are not a strictly
            decreasing 1-D list of at least 2 values (``check_sigmas``), that end at 0 with a
            noise-form ``solver``, or that leave the schedule's range (``times_from_sigmas``).
    """
    extra_args = dict(extra_args or {})
    if "mu" not in extra_args:
        raise InputError("sample_mrs needs the condition μ in extra_args['mu']")
    mu = extra_args["mu"]
    given = sigmas.dtype if isinstance(sigmas, torch.Tensor) else torch.float64
    check_sigmas(sigmas, solver)
    times = times_from_sigmas(schedule, sigmas, dtype=_coarser(given, x.dtype))
    sampler = make_sampler(solver, schedule, "data", **solver_options)
    form = sampler.prepare(timesteps=times, device=mu.device, dtype=mu.dtype).output_prediction
    alphas = schedule.alpha(times)
    s_in = x.new_ones([x.shape[0]])

    def network(x_mr, t, mu_):
        sigma_e = torch.exp(-schedule.lam(t[:1])).to(x_mr.dtype)
        alpha = schedule.alpha(t[:1]).to(x_mr.dtype)
        return model(to_edm(x_mr, mu_, alpha), float(sigma_e) * s_in, **extra_args)

    state = {"x": x}

    def report(info):
        """k-diffusion's callback from the engine's: x_e at sigmas[i] and x̂₀ there (only
        when the caller gave a callback: otherwise no per-step conversion is made)."""
        i = info["i"]
        x_mr = from_edm(state["x"], mu, alphas[i].to(x.dtype))
        alpha, sigma = alphas[i].to(x.dtype), schedule.sigma(times[i]).to(x.dtype)
        max_sigma = float(schedule.max_sigma)
        denoised = parameterization.convert(
            info["output"].to(x.dtype), form, "data", x_mr, mu, alpha, sigma, max_sigma
        )
        sigma_i = sigmas_from_times(schedule, times[i])
        step = {"x": state["x"], "i": i, "sigma": sigma_i, "sigma_hat": sigma_i}
        callback({**step, "denoised": denoised})
        state["x"] = to_edm(info["x"].to(x.dtype), mu, alphas[i + 1].to(x.dtype))

    noise = None
    if noise_sampler is not None:

        def noise(step, t_from, t_to, shape, dtype, device):
            pair = sigmas_from_times(schedule, torch.tensor([t_from, t_to], dtype=torch.float64))
            return noise_sampler(pair[0], pair[1]).to(dtype)

    progress = disable is False or (disable is None and sys.stderr.isatty())
    x_T = from_edm(x, mu, alphas[0].to(x.dtype))
    result = sampler.sample(
        network,
        mu,
        timesteps=times,
        x_T=x_T,
        generator=generator,
        callback=None if callback is None else report,
        progress=progress,
        noise=noise,
    )
    return to_edm(result.x, mu, alphas[-1].to(x.dtype))
