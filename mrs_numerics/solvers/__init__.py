"""Integrating the MR process: the solver registry, the engine, the MR Sampler and baselines.

- registry: [`SOLVERS`][mrs_numerics.solvers.registry.SOLVERS] (canonical ids with declared
  orders and costs), [`solver_info`][mrs_numerics.solvers.registry.solver_info],
  [`make_sampler`][mrs_numerics.solvers.factory.make_sampler];
- samplers: [`MRSampler`][mrs_numerics.solvers.mr_sampler.MRSampler],
  [`BaselineSampler`][mrs_numerics.solvers.baselines.BaselineSampler], on the shared
  [`SamplerBase`][mrs_numerics.solvers.base.SamplerBase] with one validated
  [`SamplerOptions`][mrs_numerics.solvers.options.SamplerOptions];
- [`engine`][mrs_numerics.solvers.engine] (the one sampling loop) and
  [`kernels`][mrs_numerics.solvers.kernels] (stateless steps for your own loops);
- [`parameterization`][mrs_numerics.solvers.parameterization] (noise / data / velocity /
  score), [`randomness`][mrs_numerics.solvers.randomness] and
  [`brownian`][mrs_numerics.solvers.brownian] (noise, and the Brownian path coupled across
  step sizes), [`adapters`][mrs_numerics.solvers.adapters] (IR-SDE/DA-CLIP networks),
  [`presets`][mrs_numerics.solvers.presets] (the official MRS settings),
  [`kdiffusion`][mrs_numerics.solvers.kdiffusion] (k-diffusion's calling convention: EDM
  coordinates, ``sample_mrs``, ``MRDenoiser``);
- [`instability`][mrs_numerics.solvers.instability] (the measured unstable (solver, NFE)
  ranges and their [`InstabilityWarning`][mrs_numerics.solvers.instability.InstabilityWarning]);
- the interfaces a sampler calls: [`Model`][mrs_numerics.solvers.protocols.Model],
  [`NoiseSource`][mrs_numerics.solvers.protocols.NoiseSource].
"""

from __future__ import annotations

from mrs_numerics.solvers.adapters import IRSDEAdapter
from mrs_numerics.solvers.base import SamplerBase, prior_sample
from mrs_numerics.solvers.baselines import BASELINE_IDS, BaselineSampler
from mrs_numerics.solvers.brownian import CoupledBrownian, family_for, nested_grid
from mrs_numerics.solvers.engine import NonFiniteError, Plan, SampleResult
from mrs_numerics.solvers.factory import make_sampler
from mrs_numerics.solvers.instability import INSTABILITIES, InstabilityWarning
from mrs_numerics.solvers.kdiffusion import MRDenoiser, sample_mrs
from mrs_numerics.solvers.mr_sampler import MRSampler
from mrs_numerics.solvers.options import SamplerOptions, Thresholding
from mrs_numerics.solvers.presets import official_mrs, official_schedule
from mrs_numerics.solvers.protocols import Model, NoiseSource
from mrs_numerics.solvers.registry import (
    ORDERS,
    SOLVERS,
    SolverInfo,
    parse_mrs_id,
    solver_info,
)

__all__ = [
    "BASELINE_IDS",
    "INSTABILITIES",
    "ORDERS",
    "SOLVERS",
    "BaselineSampler",
    "CoupledBrownian",
    "IRSDEAdapter",
    "InstabilityWarning",
    "MRDenoiser",
    "MRSampler",
    "Model",
    "NoiseSource",
    "NonFiniteError",
    "Plan",
    "SampleResult",
    "SamplerBase",
    "SamplerOptions",
    "SolverInfo",
    "Thresholding",
    "family_for",
    "make_sampler",
    "nested_grid",
    "official_mrs",
    "official_schedule",
    "parse_mrs_id",
    "prior_sample",
    "sample_mrs",
    "solver_info",
]
