"""Conversions among noise, data, velocity and score predictions (runtime dispatch).

See [Parameterisations](../theory.md#parameterisations).

The formulas are generated from [`derivations.parameterization`][derivations.parameterization];
this module only picks one.
With x = μ + α(x₀ − μ) + σε on the MR marginal:

- noise ε̂,  data x̂₀,  score ŝ = −ε̂/σ,
- velocity v̂ = Λαε − (σ/Λ)(x₀ − μ) (the official MRS convention, Λ = ``max_sigma``).

``alpha`` and ``sigma`` must broadcast against ``x`` (e.g. shape [batch, 1, …, 1]).
"""

from __future__ import annotations

import torch

from mrs_numerics._generated import parameterization_torch as _generated

MODEL_PREDICTIONS = ("noise", "data", "velocity", "score")
"""What a model may return: every output type the samplers accept and convert."""

SOLVER_PREDICTIONS = ("noise", "data")
"""The forms in which the MR Sampler integrates (the semi-analytical solution's form)."""


def check_prediction(prediction: str, allowed: tuple[str, ...] = MODEL_PREDICTIONS) -> str:
    """Return ``prediction`` or raise a ValueError naming the allowed values."""
    if prediction not in allowed:
        raise ValueError(f"unknown prediction {prediction!r}; allowed: {', '.join(allowed)}")
    return prediction


def convert(
    out: torch.Tensor,
    source: str,
    target: str,
    x: torch.Tensor,
    mu: torch.Tensor,
    alpha: torch.Tensor | float,
    sigma: torch.Tensor | float,
    max_sigma: float,
) -> torch.Tensor:
    """Convert a ``source`` prediction ``out`` at state x into a ``target`` prediction.

    ``target`` is "noise" or "data" (what the solvers consume); ``source`` any of MODEL_PREDICTIONS.
    """
    check_prediction(source)
    check_prediction(target, SOLVER_PREDICTIONS)
    if source == target:
        return out
    function = getattr(_generated, f"{target}_from_{source}")
    return function(x, mu, out, alpha, sigma, max_sigma)


def to_data(out, source, x, mu, alpha, sigma, max_sigma):
    """x̂₀ from a ``source`` prediction (see `convert`)."""
    return convert(out, source, "data", x, mu, alpha, sigma, max_sigma)


def to_noise(out, source, x, mu, alpha, sigma, max_sigma):
    """ε̂ from a ``source`` prediction (see `convert`)."""
    return convert(out, source, "noise", x, mu, alpha, sigma, max_sigma)
