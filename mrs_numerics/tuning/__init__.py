"""Few-step tuning: step grids fitted to a converged teacher (``mrs-numerics tune``).

[`tune_timesteps`][mrs_numerics.tuning.fit.tune_timesteps] fits the N − 1 interior times of a
sampler's grid so that its N-call output matches the converged output of the same equation;
[`converged_output`][mrs_numerics.tuning.teacher.converged_output] computes that teacher;
[`calibration`][mrs_numerics.tuning.calibration] draws the calibration and held-out inputs of a
shipped network. The grids are stored as [`TunedGrid`][mrs_numerics.models.tuned_grids.TunedGrid]
records (the grid files of the model registry).
"""

from __future__ import annotations

from mrs_numerics.tuning.fit import tune_timesteps
from mrs_numerics.tuning.teacher import Teacher, converged_output

__all__ = ["Teacher", "converged_output", "tune_timesteps"]
