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
  [`times_from_sigmas`][mrs_numerics.solvers.kdiffusion.times_from_sigmas] convert grids.

The package does not depend on ``k-diffusion`` (it needs torchvision); it follows its convention:
``sigmas`` decreasing, usually ending at 0, ``model(x, sigma * s_in, **extra_args)`` returning
the denoised image, ``callback({"x", "i", "sigma", "sigma_hat", "denoised"})`` before each step's
update, ``disable`` for the progress bar.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable

import torch

from mrs_numerics.schedules.protocol import Schedule
from mrs_numerics.solvers import parameterization
from mrs_numerics.solvers.factory import make_sampler

TIME_ROUNDING = 1e-9
"""Relative slack for t(−log σ_e) landing just outside [t_min, t_max] by round-off."""


def sigmas_from_times(schedule: Schedule, times) -> torch.Tensor:
    """σ_e = e^{−λ(t)} of a time grid (0 where σ(t) = 0), float64."""
    times = torch.as_tensor(times, dtype=torch.float64)
    return torch.exp(-schedule.lam(times))


def times_from_sigmas(schedule: Schedule, sigmas) -> torch.Tensor:
    """The times t(λ = −log σ_e) of EDM noise levels, float64; σ_e = 0 maps to t_min.

    Raises:
        ValueError: For a negative or non-finite σ_e, one above the schedule's largest
            e^{−λ(t_max)}, or σ_e = 0 on a schedule whose σ(t_min) > 0.
    """
    sigmas = torch.as_tensor(sigmas, dtype=torch.float64)
    if not bool(torch.isfinite(sigmas).all()) or bool((sigmas < 0).any()):
        raise ValueError(f"sigmas must be finite and ≥ 0, got {sigmas.tolist()}")
    t_min, t_max = float(schedule.t_min), float(schedule.t_max)
    largest = math.exp(-float(schedule.lam(torch.tensor(t_max, dtype=torch.float64))))
    if float(sigmas.max()) > largest * (1 + TIME_ROUNDING):
        raise ValueError(
            f"sigma {float(sigmas.max()):.6g} is noisier than the schedule reaches: its largest "
            f"σ_e = σ/α = e^(−λ(t_max)) is {largest:.6g}"
        )
    zero = sigmas == 0
    if bool(zero.any()) and float(schedule.sigma(torch.tensor(t_min, dtype=torch.float64))) > 0:
        smallest = math.exp(-float(schedule.lam(torch.tensor(t_min, dtype=torch.float64))))
        raise ValueError(
            f"sigma 0 is the clean end, but this schedule's σ(t_min) > 0: end at σ_e = "
            f"{smallest:.6g} (t_min) instead"
        )
    positive = torch.where(zero, torch.ones_like(sigmas), sigmas)
    times = schedule.t_of_lam(-torch.log(positive))
    times = torch.where(zero, torch.full_like(times, t_min), times)
    return times.clamp(t_min, t_max)


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
        """x̂₀ at EDM state ``x_e`` and noise level ``sigma``; μ is required (``extra_args``)."""
        if mu is None:
            raise ValueError("MRDenoiser needs the condition: pass mu (extra_args={'mu': mu})")
        batch = x_e.shape[0]
        sigmas = torch.as_tensor(sigma, dtype=torch.float64, device=x_e.device).reshape(-1)
        sigmas = sigmas.expand(batch) if sigmas.numel() == 1 else sigmas
        t = times_from_sigmas(self.schedule, sigmas.cpu()).to(x_e.device)
        shape = (batch,) + (1,) * (x_e.dim() - 1)
        alpha = self.schedule.alpha(t).to(x_e.dtype).reshape(shape)
        sigma_t = self.schedule.sigma(t).to(x_e.dtype).reshape(shape)
        x = from_edm(x_e, mu, alpha)
        out = self.model(x, t, mu, **kwargs)
        max_sigma = float(self.schedule.max_sigma)
        return parameterization.convert(
            out, self.model_prediction, "data", x, mu, alpha, sigma_t, max_sigma
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
            normals shaped like x (k-diffusion's convention); default: drawn from ``generator``.
        generator: The generator of the SDE noise when no ``noise_sampler`` is given.
        **solver_options: Options of the sampler (e.g. ``start``, ``lower_order_final``).

    Returns:
        x_e at ``sigmas[-1]``.
    """
    extra_args = dict(extra_args or {})
    if "mu" not in extra_args:
        raise ValueError("sample_mrs needs the condition μ in extra_args['mu']")
    mu = extra_args["mu"]
    times = times_from_sigmas(schedule, sigmas)
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
