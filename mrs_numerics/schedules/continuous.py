"""Continuous MR schedules: the built-in closed forms and user schedules generated from θ(t).

The formulas are generated from [`derivations.schedules`][derivations.schedules] (built-in) or
by ``mrs-numerics codegen --theta … --name NAME`` (user schedules); this module only binds their
parameters. The built-in schedules live on t ∈ [0, 1] with θ scaled so that α(1) = eps
(see [IR-SDE tables](../theory.md#ir-sde-tables) for their discrete counterparts).
"""

from __future__ import annotations

import torch

from mrs_numerics._generated.schedules_torch import SCHEDULES as _BUILTIN
from mrs_numerics.schedules.protocol import check_max_sigma
from mrs_numerics.schedules.user import load_user_schedule


def _tensor(value) -> torch.Tensor:
    return torch.as_tensor(value, dtype=torch.float64)


class ContinuousSchedule:
    """A schedule given by a generated module and its parameters (see the module description).

    Made by [`constant`][mrs_numerics.schedules.continuous.constant],
    [`linear`][mrs_numerics.schedules.continuous.linear],
    [`cosine`][mrs_numerics.schedules.continuous.cosine] and
    [`load`][mrs_numerics.schedules.continuous.load].

    Args:
        name: The schedule's name (``"cosine"``, or a user schedule's).
        module: The generated module (torch backend) with the schedule's functions and its
            ``DEFAULTS``, ``T_MIN``, ``T_MAX``.
        **parameters (float): Values for the module's parameters (any of ``DEFAULTS``, e.g.
            ``max_sigma``, ``eps``); the rest keep their defaults.

    Raises:
        ValueError: If a parameter is unknown, ``max_sigma`` ≤ 0, or ``eps`` is outside (0, 1).
    """

    def __init__(self, name: str, module, **parameters):
        unknown = set(parameters) - set(module.DEFAULTS)
        if unknown:
            raise ValueError(
                f"unknown parameter(s) {sorted(unknown)} for schedule {name!r}; "
                f"allowed: {sorted(module.DEFAULTS)}"
            )
        self.name = name
        self.module = module
        self.parameters = {**module.DEFAULTS, **parameters}
        self.max_sigma = check_max_sigma(self.parameters["max_sigma"])
        if "eps" in self.parameters and not 0 < self.parameters["eps"] < 1:
            raise ValueError(f"eps must be in (0, 1), got {self.parameters['eps']}")
        self.t_min, self.t_max = float(module.T_MIN), float(module.T_MAX)

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.parameters.items())
        return f"{type(self).__name__}({self.name!r}, {params})"

    def _call(self, function: str, value):
        return getattr(self.module, function)(_tensor(value), **self.parameters)

    def theta(self, t):
        """θ(t)."""
        return self._call("theta", t)

    def Theta(self, t):
        """Θ(t) = ∫₀ᵗ θ."""
        return self._call("Theta", t)

    def alpha(self, t):
        """α(t) = exp(−Θ(t))."""
        return self._call("alpha", t)

    def sigma(self, t):
        """σ(t) = Λ sqrt(1 − α²)."""
        return self._call("sigma", t)

    def lam(self, t):
        """λ(t) = log α − log σ (+∞ where σ = 0)."""
        return self._call("lam", t)

    def g(self, t):
        """g(t) = sqrt(2Λ²θ(t))."""
        return self._call("g", t)

    def t_of_lam(self, lam):
        """The time at which λ(t) = lam."""
        return self._call("t_of_lam", lam)


def constant(max_sigma: float = 50 / 255, eps: float = 0.005) -> ContinuousSchedule:
    """Constant θ on [0, 1] with α(1) = eps.

    Args:
        max_sigma: Λ, the stationary standard deviation (IR-SDE's 50/255).
        eps: α(1) = eps: how much of the clean image is left at t = 1.
    """
    return ContinuousSchedule("constant", _BUILTIN["constant"], max_sigma=max_sigma, eps=eps)


def linear(
    max_sigma: float = 50 / 255,
    eps: float = 0.005,
    beta_start: float = 1e-4,
    beta_end: float = 0.02,
) -> ContinuousSchedule:
    """Linear θ(t) ∝ beta_start + (beta_end − beta_start)t on [0, 1] with α(1) = eps.

    Args:
        max_sigma: Λ, the stationary standard deviation (IR-SDE's 50/255).
        eps: α(1) = eps: how much of the clean image is left at t = 1.
        beta_start: θ's shape at t = 0 (before scaling).
        beta_end: θ's shape at t = 1 (before scaling).
    """
    return ContinuousSchedule(
        "linear",
        _BUILTIN["linear"],
        max_sigma=max_sigma,
        eps=eps,
        beta_start=beta_start,
        beta_end=beta_end,
    )


def cosine(max_sigma: float = 50 / 255, eps: float = 0.005) -> ContinuousSchedule:
    """The continuous counterpart of IR-SDE's cosine θ (s = 0.008) on [0, 1], α(1) = eps.

    Args:
        max_sigma: Λ, the stationary standard deviation (IR-SDE's 50/255).
        eps: α(1) = eps: how much of the clean image is left at t = 1.
    """
    return ContinuousSchedule("cosine", _BUILTIN["cosine"], max_sigma=max_sigma, eps=eps)


def load(name: str, **parameters) -> ContinuousSchedule:
    """A user schedule generated by ``mrs-numerics codegen --theta … --name NAME``.

    Args:
        name: The schedule's name (``--name``); it is looked up in the user schedule folder
            ([`user_schedule_dir`][mrs_numerics.schedules.user.user_schedule_dir]).
        **parameters (float): Values for the schedule's parameters (e.g. ``max_sigma``).

    Raises:
        FileNotFoundError: If no such schedule has been generated.
    """
    return ContinuousSchedule(name, load_user_schedule(name, "torch"), **parameters)
