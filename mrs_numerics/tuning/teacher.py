"""The converged output a tuned grid is fitted to: the sampler's equation solved on a fine grid.

For an ODE sampler the teacher is the PF-ODE solved from the same x_T with
[`TEACHER_ODE_SOLVER`][mrs_numerics.tuning.teacher.TEACHER_ODE_SOLVER] on ``steps`` uniform-λ
steps between the sampler's own first and last time, with the sampler's model prediction and
x̂₀ limiters (they are part of the equation). Its accuracy is estimated by the fidelity of the
``steps/2`` solution to it: for a third-order method the ``steps`` solution is about 8 times
closer still, so the estimate is conservative.

For an SDE sampler the teacher is the reverse SDE on one Brownian path
([`CoupledBrownian`][mrs_numerics.solvers.brownian.CoupledBrownian], seeded with ``seed``)
simulated on the fine uniform-λ grid of ``steps`` steps, solved there by
[`TEACHER_SDE_SOLVER`][mrs_numerics.tuning.teacher.TEACHER_SDE_SOLVER]; every grid the fit tries
is a subset of that fine grid, so its noise is the exact integral of the same path and it
converges to the same strong solution. The accuracy estimate is the fidelity of the solution on
every other fine time (the same path).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mrs_numerics._checks import integer
from mrs_numerics.imaging.metrics import psnr
from mrs_numerics.schedules import grids
from mrs_numerics.solvers.base import SamplerBase
from mrs_numerics.solvers.brownian import CoupledBrownian, family_for
from mrs_numerics.solvers.factory import make_sampler
from mrs_numerics.solvers.protocols import Model, NoiseSource

TEACHER_ODE_SOLVER = "mrs-ode-3-data"
"""Solver of the PF-ODE teacher (third order, bounded data-form weights)."""
TEACHER_SDE_SOLVER = "mrs-sde-1-data"
"""Solver of the SDE teacher (single-step, so uneven fine grids are no stability concern)."""
DEFAULT_TEACHER_STEPS = 200
"""Fine steps of the teacher (uniform in λ)."""


@dataclass
class Teacher:
    """The converged output of a sampler's equation from a given x_T, and how it was made.

    Attributes:
        output: The converged output (the fit's target), in μ's dtype.
        accuracy_db: Mean fidelity (dB) of the half-resolution teacher to ``output``: a lower
            bound on the teacher's own accuracy.
        fine_times: The teacher's grid (SDE grids the fit tries are snapped to it).
        path: The Brownian path of an SDE teacher (None for the ODE).
    """

    output: torch.Tensor
    accuracy_db: float
    fine_times: torch.Tensor
    path: CoupledBrownian | None = None

    def noise_for(self, sampler: SamplerBase) -> NoiseSource | None:
        """The noise source of ``sampler`` on this teacher's path (None for ODE samplers)."""
        family = family_for(sampler.solver_id)
        if family is None or self.path is None:
            return None
        return self.path.noise_fn(family)


def fidelity_db(output: torch.Tensor, target: torch.Tensor) -> float:
    """Solver fidelity: the mean over the batch of PSNR (dB) between output and target.

    Image batches ``[B, 3, H, W]`` are measured as ``benchmark quality`` does: clamped to
    [0, 1], 4-px border crop, data range 1. Other tensors ``[B, ...]`` (e.g. the exact oracles)
    are not clamped: −10 log₁₀ of each sample's mean squared difference.
    """
    if output.dim() == 4 and output.shape[1] == 3:
        values = psnr(output.clamp(0.0, 1.0), target.clamp(0.0, 1.0))
        return float(torch.as_tensor(values, dtype=torch.float64).mean())
    error = (output.double() - target.double()).pow(2).flatten(1).mean(1)
    return float((-10.0 * torch.log10(error)).mean())


def teacher_step_count(steps) -> int:
    """``steps`` as the teacher's fine step count: an even integer ≥ 2 (its half-resolution
    solution, the accuracy estimate, takes every other time); a clear error otherwise."""
    steps = integer(steps, "teacher steps", least=2)
    if steps % 2:
        raise ValueError(f"teacher steps must be an even integer ≥ 2, got {steps!r}")
    return steps


def converged_output(
    sampler: SamplerBase,
    model: Model,
    mu: torch.Tensor,
    x_T: torch.Tensor,
    steps: int = DEFAULT_TEACHER_STEPS,
    seed: int = 0,
) -> Teacher:
    """The teacher of ``sampler`` from ``x_T`` (see the module description)."""
    steps = teacher_step_count(steps)
    o = sampler.options
    times = grids.timesteps(sampler.schedule, steps, "lambda", *_ends(sampler), o.lam_min, o.rho)
    limiters = {"clip_x0": o.clip_x0, "thresholding": o.thresholding}
    prediction = o.model_prediction
    path = None
    if family_for(sampler.solver_id) is None:
        teacher = make_sampler(TEACHER_ODE_SOLVER, sampler.schedule, prediction, **limiters)
        noise = half_noise = None
    else:
        path = CoupledBrownian(sampler.schedule, times, x_T.shape, seed, x_T.device)
        family = family_for(TEACHER_SDE_SOLVER)
        assert family is not None
        teacher = make_sampler(TEACHER_SDE_SOLVER, sampler.schedule, prediction, **limiters)
        noise = half_noise = path.noise_fn(family)
    with torch.inference_mode():
        output = teacher.sample(model, mu, timesteps=times, x_T=x_T, noise=noise).x
        half = teacher.sample(model, mu, timesteps=times[::2], x_T=x_T, noise=half_noise).x
    return Teacher(output, fidelity_db(half, output), times, path)


def _ends(sampler: SamplerBase) -> tuple[float, float]:
    """The sampler's own first and last time (those of its 1-step grid)."""
    times = sampler.timesteps(1)
    return float(times[0]), float(times[-1])
