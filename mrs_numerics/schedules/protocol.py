"""The interface every MR schedule implements (continuous, IR-SDE tables, user schedules)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch


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
