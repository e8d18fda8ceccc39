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
    "CoefficientBatch",
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


def stage_function(stage):
    """The generated torch function of an update stage (``UPDATES[name].stages[k]``)."""
    function = getattr(updates_torch, stage.function, None)
    if function is None:
        raise ValueError(f"unknown generated stage function {stage.function!r}")
    return function


def data_step_to_clean() -> StepCoefficients:
    """The exact limit of the first-order data-form step at σ_t = 0: x_t = x̂₀."""
    return updates_torch.data_step_to_clean()


class PendingCoefficients:
    """A placeholder for one stage's coefficients until its batch is evaluated."""

    __slots__ = ("function", "index")

    def __init__(self, function, index: int):
        self.function = function
        self.index = index


class CoefficientBatch:
    """Generated coefficients of a whole plan, each generated function evaluated once.

    A plan asks for the coefficients of every stage (``request``, with float64 scalar
    arguments) and gets a placeholder; ``evaluate`` then evaluates each function once on the
    stacked arguments (the generated functions are elementwise) and casts each coefficient
    vector once to the working dtype and device; ``resolve`` hands each placeholder its 0-dim
    coefficients. This keeps compiling a plan linear in the steps with a small constant (tens
    of µs per step instead of a few ms of 0-dim tensor arithmetic).
    """

    def __init__(self) -> None:
        self.rows: dict = {}
        self.values: dict = {}

    def request(self, function, *arguments: float) -> PendingCoefficients:
        """Ask for ``function(*arguments)``; returns the placeholder to resolve later."""
        rows = self.rows.setdefault(function, [])
        rows.append([float(a) for a in arguments])
        return PendingCoefficients(function, len(rows) - 1)

    def evaluate(self, dtype: torch.dtype, device) -> None:
        """Evaluate every requested function once, in float64, and cast the results once."""
        for function, rows in self.rows.items():
            columns = torch.tensor(rows, dtype=torch.float64).T
            result = function(*columns)
            count = len(rows)
            self.values[function] = StepCoefficients(
                _as_vector(result.x, count, dtype, device),
                _as_vector(result.mu, count, dtype, device),
                tuple(_as_vector(w, count, dtype, device) for w in result.outputs),
                None if result.noise is None else _as_vector(result.noise, count, dtype, device),
            )

    def resolve(self, pending: PendingCoefficients) -> StepCoefficients:
        """The coefficients of one request (0-dim tensors of the working dtype)."""
        c = self.values[pending.function]
        i = pending.index
        return StepCoefficients(
            c.x[i],
            c.mu[i],
            tuple(w[i] for w in c.outputs),
            None if c.noise is None else c.noise[i],
        )


def _as_vector(value, count: int, dtype, device) -> tuple[torch.Tensor, ...]:
    """A coefficient (a constant, a 0-dim or a [count] tensor) as ``count`` 0-dim tensors."""
    vector = torch.as_tensor(value, dtype=torch.float64)
    return vector.expand(count).to(dtype=dtype, device=device).unbind(0)
