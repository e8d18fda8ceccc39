"""The interface every MR schedule implements (continuous, IR-SDE tables, user schedules)."""

from __future__ import annotations

import math
from typing import Protocol, runtime_checkable

import torch

from mrs_numerics._warn import warn


@runtime_checkable
class Schedule(Protocol):
    """An MR noise schedule: θ(t) and everything derived from it, on float64 tensors.

    The MR process dx = θ(t)(μ − x)dt + g(t)dw with g² = 2Λ²θ has the marginal
    x_t = (1 − α_t)μ + α_t x₀ + σ_t ε with α = exp(−Θ), Θ(t) = ∫₀ᵗ θ and σ² = Λ²(1 − α²)
    (see [the MR process](../theory.md#the-mr-process)). λ = log α − log σ is the half
    log-SNR, decreasing in t, +∞ where σ = 0.

    Attributes:
        name: A short name used in reports (``"cosine"``, ``"irsde-cosine"``, …).
        max_sigma: Λ, the standard deviation of the prior N(μ, Λ²I) reached as t → ∞.
        t_min: Start of the time range (the clean end).
        t_max: End of the time range (the noisy end).
    """

    name: str
    max_sigma: float
    t_min: float
    t_max: float

    def theta(self, t) -> torch.Tensor:
        """θ(t), the mean-reversion rate."""
        ...

    def Theta(self, t) -> torch.Tensor:
        """Θ(t) = ∫₀ᵗ θ."""
        ...

    def alpha(self, t) -> torch.Tensor:
        """α(t) = exp(−Θ(t))."""
        ...

    def sigma(self, t) -> torch.Tensor:
        """σ(t) = Λ √(1 − α(t)²)."""
        ...

    def lam(self, t) -> torch.Tensor:
        """λ(t) = log α(t) − log σ(t)."""
        ...

    def g(self, t) -> torch.Tensor:
        """g(t) = √(2Λ²θ(t))."""
        ...

    def t_of_lam(self, lam) -> torch.Tensor:
        """The time t at which λ(t) = ``lam`` (the inverse of `lam`)."""
        ...


PIXEL_UNITS_MAX_SIGMA = 2.0
"""A Λ (``max_sigma``) at or above this warns: it looks like pixel units (0–255).

The package works in the data's own units, [0, 1] for images, where Λ is a fraction of the
range (IR-SDE's 50/255 ≈ 0.196); Λ ≥ 2 is twice the whole range of an image."""

PRIOR_ALPHA_WARN = 0.02
"""Sampling from a schedule whose α(t_max) exceeds this warns (see ``check_prior``)."""


def check_max_sigma(max_sigma) -> float:
    """Λ as a float: finite and > 0 (ValueError), with a warning where it looks like pixel units."""
    value = float(max_sigma)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"max_sigma (Λ) must be a finite number > 0, got {max_sigma!r}")
    if value >= PIXEL_UNITS_MAX_SIGMA:
        warn(
            f"max_sigma = {value:g} looks like pixel units (0–255): Λ is in the data's units, "
            f"[0, 1] for images; for a noise level of {value:g}/255 pass max_sigma="
            f"{value:g}/255 = {value / 255:.4g}"
        )
    return value


def check_prior(schedule: Schedule, t0) -> None:
    """Warn when the prior μ + σ(t₀)ξ misses the marginal at t₀ = t_max by more than 2 %.

    The marginal is x_t = μ + α_t(x₀ − μ) + σ_t ξ; starting from μ + σ_t ξ leaves out
    α_t(x₀ − μ), which is negligible only where α_t ≈ 0 (the built-in schedules: 0.005).
    """
    t0 = float(t0)
    if t0 != float(schedule.t_max):
        return
    alpha = float(schedule.alpha(torch.tensor(t0, dtype=torch.float64)))
    if alpha > PRIOR_ALPHA_WARN:
        warn(
            f"schedule {schedule.name!r} has α(t_max) = {alpha:.3g}: the prior μ + σ(t_max)ξ "
            f"the sampler starts from leaves out α(t_max)(x₀ − μ), {100 * alpha:.3g}% of the "
            f"clean image, so samples are biased; scale θ so that α(t_max) ≤ {PRIOR_ALPHA_WARN:g}"
        )
