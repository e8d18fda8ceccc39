"""Named configurations that reproduce published settings with our derived formulas.

[`official_mrs`][mrs_numerics.solvers.presets.official_mrs] reproduces the official MR Sampler
settings: IR-SDE's cosine table with T = 100, Λ = 50/255, eps = 0.005 and the MRS code's θ₀
convention (S_i = Σ_{j≤i} θ_j, finite λ(0) ≈ 6.11), a noise-prediction network, the second-order
data-form SDE solver, multistep with lower-order final steps, from t = T to t = 0. Steps are uniform
in λ (pass ``grid="time"`` for uniform index steps; which grid the official scripts default to was
not verified here). The formulas are always ours (derived in ``derivations/``). Known differences
from the official code: our third-order ODE starts with a singlestep step (+1 network call) so that
it keeps third order (``start="warmup"`` restores the classical warm-up), and between table indices
our schedule interpolates Θ linearly and derives α, σ and λ from it, so λ = log(α/σ) holds exactly
at every time.
"""

from __future__ import annotations

from mrs_numerics import schedules
from mrs_numerics.solvers.mr_sampler import MRSampler


def official_schedule() -> schedules.DiscreteSchedule:
    """IR-SDE cosine, T = 100, Λ = 50/255, eps = 0.005, the MRS code's θ₀ convention."""
    return schedules.irsde("cosine", T=100, max_sigma=50 / 255, eps=0.005, theta0_offset=False)


def official_mrs(
    method: str = "sde",
    order: int = 2,
    solver_prediction: str = "data",
    model_prediction: str = "noise",
    **options,
) -> MRSampler:
    """An `MRSampler` on the official settings (see the module docstring)."""
    schedule = official_schedule()
    defaults = {"grid": "lambda", "t_start": float(schedule.t_max), "t_end": 0.0}
    return MRSampler(
        schedule, method, order, solver_prediction, model_prediction, **{**defaults, **options}
    )
