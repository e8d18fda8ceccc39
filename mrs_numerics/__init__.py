"""Fast samplers (the MR Sampler) for Mean-Reverting diffusion, derived with SymPy and codegen'd.

The package is layered; each subpackage imports only the ones below it:

- [`schedules`][mrs_numerics.schedules]: the MR process (α, σ, λ, t(λ)) and step grids;
- [`solvers`][mrs_numerics.solvers]: the registry, the engine, the MR Sampler and baselines;
- [`imaging`][mrs_numerics.imaging], [`models`][mrs_numerics.models]: photos, files, metrics,
  degradations; networks and their training;
- [`verification`][mrs_numerics.verification], [`restoration`][mrs_numerics.restoration],
  [`tuning`][mrs_numerics.tuning]: how the orders are measured; restoring images and its
  benchmark; step grids fitted to a converged teacher;
- [`cli`][mrs_numerics.cli]: the ``mrs-numerics`` command.

Entry points: [`MRSampler`][mrs_numerics.solvers.mr_sampler.MRSampler],
[`schedules`][mrs_numerics.schedules],
[`solvers.make_sampler`][mrs_numerics.solvers.factory.make_sampler].
"""

from mrs_numerics import _moved, schedules, solvers
from mrs_numerics.solvers.engine import NonFiniteError, SampleResult
from mrs_numerics.solvers.mr_sampler import MRSampler
from mrs_numerics.solvers.options import Thresholding

__version__ = "0.2.0"

__all__ = ["MRSampler", "NonFiniteError", "SampleResult", "Thresholding", "schedules", "solvers"]

_moved.install()


def __getattr__(name: str):
    """Old top-level modules (e.g. ``from mrs_numerics import verify``), with a warning."""
    module = _moved.old_attribute(name)
    if module is None:
        raise AttributeError(f"module 'mrs_numerics' has no attribute {name!r}")
    return module
