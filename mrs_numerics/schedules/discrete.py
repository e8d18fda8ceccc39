"""IR-SDE's discrete schedules: the training tables, with time = the (fractional) index.

Time is the index t ∈ [0, T], also the network's time input in IR-SDE and DA-CLIP. Between
grid points ONE quantity is interpolated — Θ(t) = S(t)·dt, linearly — and α, σ, λ are derived
from it, so λ = log(α/σ) holds everywhere (interpolating α, σ and λ separately breaks it). The
tables are generated from [`derivations.irsde`][derivations.irsde] (see
[IR-SDE tables](../theory.md#ir-sde-tables)).
"""

from __future__ import annotations

import math

import torch

from mrs_numerics._generated import irsde_torch
from mrs_numerics._generated import marginal_torch as _marginal
from mrs_numerics.schedules.protocol import check_max_sigma


def _tensor(value) -> torch.Tensor:
    return torch.as_tensor(value, dtype=torch.float64)


class DiscreteSchedule:
    """IR-SDE's tables with time = index; Θ interpolated linearly, α, σ, λ derived from Θ.

    Made by [`irsde`][mrs_numerics.schedules.discrete.irsde], which has the defaults.

    Args:
        kind: The θ table: ``"cosine"``, ``"linear"`` or ``"constant"``.
        T: The last index (the time range is [0, T]).
        max_sigma: Λ, the stationary standard deviation.
        eps: α(T) = eps (the "dt trick").
        theta0_offset: ``True``: S_i = Σ_{j≤i} θ_j − θ₀, the IR-SDE/DA-CLIP training convention
            (α₀ = 1, σ₀ = 0); ``False``: S_i = Σ_{j≤i} θ_j, the official MRS code (finite λ₀).

    Raises:
        ValueError: If ``kind`` is unknown, ``T`` is not a positive integer, or
            ``max_sigma``, ``eps`` are out of range.
    """

    def __init__(self, kind: str, T: int, max_sigma: float, eps: float, theta0_offset: bool):
        if kind not in irsde_torch.THETA_TABLES:
            raise ValueError(
                f"unknown IR-SDE schedule {kind!r}; allowed: {', '.join(irsde_torch.THETA_TABLES)}"
            )
        if not isinstance(T, int) or T < 1:
            raise ValueError(f"T must be a positive integer, got {T!r}")
        check_max_sigma(max_sigma)
        if not 0 < eps < 1:
            raise ValueError(f"need 0 < eps < 1, got {eps}")
        self.name = f"irsde-{kind}"
        self.kind, self.T, self.eps, self.theta0_offset = kind, T, eps, theta0_offset
        self.max_sigma = float(max_sigma)
        self.tables = irsde_torch.irsde_tables(kind, T, max_sigma, eps, theta0_offset)
        self.Theta_table = self.tables["S"] * self.tables["dt"]
        self.t_min, self.t_max = 0.0, float(T)

    def __repr__(self) -> str:
        return (
            f"DiscreteSchedule({self.kind!r}, T={self.T}, max_sigma={self.max_sigma!r}, "
            f"eps={self.eps!r}, theta0_offset={self.theta0_offset})"
        )

    def _segment(self, t):
        t = _tensor(t).clamp(0.0, float(self.T))
        index = torch.clamp(t.floor().long(), max=self.T - 1)
        return t, index, t - index

    def Theta(self, t):
        """Θ(t): the table Θ_i = S_i·dt, linear between indices."""
        t, i, frac = self._segment(t)
        table = self.Theta_table.to(t.device)
        return table[i] + frac * (table[i + 1] - table[i])

    def theta(self, t):
        """θ(t) = dΘ/dt per unit index, constant on each [i, i + 1)."""
        t, i, _ = self._segment(t)
        table = self.Theta_table.to(t.device)
        return table[i + 1] - table[i]

    def _max_sigma(self, like: torch.Tensor) -> torch.Tensor:
        return torch.tensor(self.max_sigma, dtype=torch.float64, device=like.device)

    def alpha(self, t):
        """α(t) = exp(−Θ(t)); equals the table at integer t."""
        return _marginal.alpha_of_Theta(self.Theta(t))

    def sigma(self, t):
        """σ(t) = Λ sqrt(1 − α(t)²), from the same Θ(t)."""
        Theta = self.Theta(t)
        return _marginal.sigma_of_Theta(Theta, self._max_sigma(Theta))

    def lam(self, t):
        """λ(t) = log α − log σ, from the same Θ(t)."""
        Theta = self.Theta(t)
        return _marginal.lam_of_Theta(Theta, self._max_sigma(Theta))

    def g(self, t):
        """g(t) = sqrt(2Λ²θ(t))."""
        return math.sqrt(2.0) * self.max_sigma * torch.sqrt(self.theta(t))

    def t_of_lam(self, lam):
        """Invert λ(t): Θ(λ) from the generated inverse, then the piecewise-linear Θ(t)."""
        lam = _tensor(lam)
        target = _marginal.Theta_of_lam(lam, self._max_sigma(lam))
        table = self.Theta_table.to(lam.device)
        i = torch.clamp(torch.searchsorted(table, target, right=True) - 1, 0, self.T - 1)
        frac = (target - table[i]) / (table[i + 1] - table[i])
        return (i + frac.clamp(0.0, 1.0)).to(torch.float64)


def irsde(
    kind: str = "cosine",
    T: int = 100,
    max_sigma: float = 50 / 255,
    eps: float = 0.005,
    theta0_offset: bool = True,
) -> DiscreteSchedule:
    """IR-SDE's discrete schedule (time = index).

    Args:
        kind: The θ table: ``"cosine"``, ``"linear"`` or ``"constant"``.
        T: The last index (IR-SDE's configs use 100).
        max_sigma: Λ, the stationary standard deviation.
        eps: α(T) = eps.
        theta0_offset: ``True``: the IR-SDE/DA-CLIP training convention (α₀ = 1, σ₀ = 0);
            ``False``: the official MRS code (finite λ₀).

    Returns:
        The [`DiscreteSchedule`][mrs_numerics.schedules.discrete.DiscreteSchedule].
    """
    return DiscreteSchedule(kind, T, max_sigma, eps, theta0_offset)
