"""Stateless step kernels: one step of any MR Sampler update or baseline.

Every step the package takes — MR Sampler (ODE/SDE, noise/data, any order, multistep or
singlestep stage) and every baseline — is linear in its inputs once its coefficients are known:

    x_e = c.x · x_s + c.mu · μ + Σ_j c.outputs[j] · m_j + c.noise · z,

with m_j the network outputs (newest first, in the solver's prediction form) and z ~ N(0, I). The
coefficients are computed once per step, in float64, by the generated functions in
``mrs_numerics._generated`` (see [`coefficients`][mrs_numerics.solvers.kernels.coefficients]); the
kernel itself has no Python branching on tensor values and no host synchronisation, and broadcasts
over the batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from mrs_numerics._generated import registry, updates_torch
from mrs_numerics._generated.types import StepCoefficients

__all__ = [
    "StepCoefficients",
    "coefficients",
    "data_step_to_clean",
    "linear_step",
    "update_names",
]


def linear_step(
    x: torch.Tensor,
    mu: torch.Tensor,
    outputs: Sequence[torch.Tensor],
    coefficients: StepCoefficients,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """x_e = c.x·x + c.mu·μ + Σ_j c.outputs[j]·outputs[j] (+ c.noise·noise for SDE steps).

    Coefficients are scalars or tensors broadcastable against x (e.g. per-sample [batch, 1, …]).
    """
    if len(outputs) != len(coefficients.outputs):
        raise ValueError(
            f"this step combines {len(coefficients.outputs)} model outputs, got {len(outputs)}"
        )
    result = coefficients.x * x + coefficients.mu * mu
    for weight, output in zip(coefficients.outputs, outputs, strict=True):
        result = result + weight * output
    if coefficients.noise is not None:
        if noise is None:
            raise ValueError("this is a stochastic step: pass the Gaussian noise z")
        result = result + coefficients.noise * noise
    return result


def update_names() -> tuple[str, ...]:
    """Names of every generated update (e.g. ``ode_data_multistep_3``)."""
    return tuple(registry.UPDATES)


def coefficients(
    function_name: str,
    h: torch.Tensor,
    ratios: Sequence[torch.Tensor],
    alpha_s: torch.Tensor,
    sigma_s: torch.Tensor,
    alpha_e: torch.Tensor,
    sigma_e: torch.Tensor,
) -> StepCoefficients:
    """Float64 coefficients of a generated stage function (see ``UPDATES[name].stages``).

    h = λ_t − λ_s; ``ratios`` the update's parameters (multistep r_i = h_{−i}/h, singlestep
    stage positions); α, σ at the step start (s) and at the stage end (e). Inputs may be
    vectors: the coefficients of a whole grid are computed at once.
    """
    function = getattr(updates_torch, function_name, None)
    if function is None:
        raise ValueError(f"unknown generated stage function {function_name!r}")
    return function(h, *ratios, alpha_s, sigma_s, alpha_e, sigma_e)


def data_step_to_clean() -> StepCoefficients:
    """The exact limit of the first-order data-form step at σ_t = 0: x_t = x̂₀."""
    return updates_torch.data_step_to_clean()
