"""Step-time selection: uniform in λ, uniform in t, Karras-ρ, or explicit times.

A grid is a strictly decreasing float64 tensor t_0 > t_1 > … > t_N of N + 1 times in the
schedule's time unit (N steps). Spacings:

- ``"lambda"``  uniform in the half log-SNR λ (the exponential integrators' natural variable);
- ``"time"``    uniform in t (IR-SDE's and most baselines' convention);
- ``"karras"``  Karras et al. ρ-spacing of the noise-to-signal ratio e^{−λ} = σ/α:
                 s_i = (s_0^{1/ρ} + i/N (s_N^{1/ρ} − s_0^{1/ρ}))^ρ;
- explicit times given by the user ([`explicit`][mrs_numerics.schedules.grids.explicit]).

λ_min clipping (``lam_min``): the grid starts no noisier than λ_min, i.e. at
t_start = min(t_start, t(λ_min)); the sampler then starts from the prior at that time.
A grid may end where σ = 0 (λ = +∞, e.g. t = 0 for IR-SDE's α_0 = 1 tables) only with
``"time"`` spacing or explicit times: λ-based spacings need a finite λ at both ends.
"""

from __future__ import annotations

import math

import torch

from mrs_numerics._checks import integer

SPACINGS = ("lambda", "time", "karras")

DEFAULT_END_SIGMA_RATIO = 2e-3
"""Default end of a grid when σ(t_min) = 0: the time where σ/Λ = 2e-3 (λ ≈ 7.8 for Λ = 50/255).
At that noise level (≈ 0.1/255 for Λ = 50/255) the state is visually clean."""


def _as_time(schedule, value) -> torch.Tensor:
    return torch.as_tensor(value, dtype=torch.float64)


def default_t_end(schedule) -> float:
    """t_min when λ(t_min) is finite, else the time where σ = DEFAULT_END_SIGMA_RATIO · Λ."""
    t_min = _as_time(schedule, schedule.t_min)
    if torch.isfinite(schedule.lam(t_min)):
        return float(t_min)
    ratio = DEFAULT_END_SIGMA_RATIO
    alpha = math.sqrt(1.0 - ratio**2)
    lam_end = math.log(alpha / (ratio * schedule.max_sigma))
    return float(schedule.t_of_lam(torch.tensor(lam_end, dtype=torch.float64)))


def timesteps(
    schedule,
    steps: int,
    spacing: str = "lambda",
    t_start: float | None = None,
    t_end: float | None = None,
    lam_min: float | None = None,
    rho: float = 7.0,
) -> torch.Tensor:
    """N + 1 decreasing times for ``steps`` = N steps with the given ``spacing``."""
    steps = integer(steps, "steps", least=1)
    if spacing not in SPACINGS:
        raise ValueError(f"unknown grid spacing {spacing!r}; allowed: {', '.join(SPACINGS)}")
    t_start = float(schedule.t_max) if t_start is None else float(t_start)
    t_end = default_t_end(schedule) if t_end is None else float(t_end)
    if lam_min is not None:
        t_clip = float(schedule.t_of_lam(torch.tensor(float(lam_min), dtype=torch.float64)))
        lam_end = float(schedule.lam(_as_time(schedule, t_end)))
        if not t_clip > t_end:
            raise ValueError(
                f"lam_min = {lam_min:g} starts the grid at or after its end: λ at the end time "
                f"{t_end:.6g} is {lam_end:.4g}, so lam_min must be below it (lam_min caps the "
                f"noisiest λ; λ at t_max is {float(schedule.lam(_as_time(schedule, t_start))):.4g})"
            )
        t_start = min(t_start, t_clip)
    _check_range(schedule, t_start, t_end)
    if spacing == "time":
        times = torch.linspace(t_start, t_end, steps + 1, dtype=torch.float64)
    else:
        lam_start, lam_end = (float(schedule.lam(_as_time(schedule, v))) for v in (t_start, t_end))
        if not (math.isfinite(lam_start) and math.isfinite(lam_end)):
            raise ValueError(
                f"{spacing!r} spacing needs a finite λ at both ends; λ({t_start}) = {lam_start}, "
                f"λ({t_end}) = {lam_end}. Choose t_end > {schedule.t_min} or spacing='time'."
            )
        if spacing == "lambda":
            lams = torch.linspace(lam_start, lam_end, steps + 1, dtype=torch.float64)
        else:
            lams = _karras_lams(lam_start, lam_end, steps, rho)
        times = schedule.t_of_lam(lams)
        times[0], times[-1] = t_start, t_end
    return _strictly_decreasing(times)


def _karras_lams(lam_start: float, lam_end: float, steps: int, rho: float) -> torch.Tensor:
    if rho <= 0:
        raise ValueError(f"rho must be > 0, got {rho}")
    s_max, s_min = math.exp(-lam_start), math.exp(-lam_end)
    ramp = torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64)
    s = (s_max ** (1 / rho) + ramp * (s_min ** (1 / rho) - s_max ** (1 / rho))) ** rho
    return -torch.log(s)


def explicit(schedule, times) -> torch.Tensor:
    """Validate user times: strictly decreasing, ≥ 2 finite times inside the schedule."""
    times = torch.as_tensor(times, dtype=torch.float64).flatten().clone()
    if times.numel() < 2:
        raise ValueError(f"timesteps needs at least 2 times (start and end), got {times.numel()}")
    if not torch.isfinite(times).all():
        raise ValueError("timesteps must be finite")
    _check_range(schedule, float(times.max()), float(times.min()))
    return _strictly_decreasing(times)


def _check_range(schedule, t_start: float, t_end: float) -> None:
    low, high = float(schedule.t_min), float(schedule.t_max)
    for name, value in (("start", t_start), ("end", t_end)):
        if not low <= value <= high:
            raise ValueError(
                f"grid {name} time {value} is outside the schedule's time range [{low}, {high}]"
            )
    if not t_start > t_end:
        raise ValueError(f"grid start time {t_start} must be greater than end time {t_end}")


def _strictly_decreasing(times: torch.Tensor) -> torch.Tensor:
    steps = times[1:] - times[:-1]
    if not (steps < 0).all():
        bad = int(torch.nonzero(steps >= 0)[0])
        raise ValueError(
            f"times must be strictly decreasing; t[{bad}] = {float(times[bad])} is followed by "
            f"t[{bad + 1}] = {float(times[bad + 1])}"
        )
    return times
