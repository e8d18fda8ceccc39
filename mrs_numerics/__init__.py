"""Fast samplers (MR Sampler) for Mean-Reverting diffusion, derived with SymPy and codegen'd.

Entry points: :class:`MRSampler`, :mod:`mrs_numerics.schedules`, :mod:`mrs_numerics.solvers`
(the registry of solver ids and declared orders), :mod:`mrs_numerics.kernels` (stateless steps).
"""

from mrs_numerics import schedules
from mrs_numerics.samplers import MRSampler
from mrs_numerics.stepping import NonFiniteError, SampleResult, Thresholding

__version__ = "0.1.0"

__all__ = ["MRSampler", "NonFiniteError", "SampleResult", "Thresholding", "schedules"]
