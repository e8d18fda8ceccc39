"""The interfaces a sampler calls: the model and the noise source."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class Model(Protocol):
    """A network (or exact oracle) as the samplers call it: ``model(x, t, mu) -> Tensor``.

    ``x`` is the state ``[batch, ...]`` in the input dtype, ``t`` a float64 tensor ``[batch]``
    of times in the schedule's unit, ``mu`` the condition (the degraded image), shaped like
    ``x``. The output has exactly ``x``'s shape and is the prediction the sampler was told
    (``model_prediction``: noise, data, velocity or score; see
    [Parameterisations](../theory.md#parameterisations)).
    """

    def __call__(self, x: torch.Tensor, t: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
        """The model's prediction at (x, t, μ)."""
        ...


@runtime_checkable
class NoiseSource(Protocol):
    """Standard normal noise for the stochastic steps of a run, queried by interval.

    A sampler calls ``noise(step, t_from, t_to, shape, dtype, device)`` once per stochastic
    stage: ``step`` is the step index, ``(t_from, t_to)`` the interval the step integrates
    over (t_from > t_to: from noisy to clean), and the result is an ``N(0, I)`` tensor of
    ``shape``. Telling the source the interval (as diffrax's ``evaluate(t0, t1)`` and
    torchsde's ``BrownianInterval(ta, tb)`` are told) lets a source serve any grid from one
    Brownian path, like [`CoupledBrownian`][mrs_numerics.solvers.brownian.CoupledBrownian]
    on nested grids.
    """

    def __call__(
        self,
        step: int,
        t_from: float,
        t_to: float,
        shape: tuple[int, ...],
        dtype: torch.dtype,
        device: torch.device,
    ) -> torch.Tensor:
        """Standard normals of ``shape`` for step ``step`` over (t_from → t_to)."""
        ...
