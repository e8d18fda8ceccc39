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
    """An [`MRSampler`][mrs_numerics.solvers.mr_sampler.MRSampler] on the official settings.

    The schedule is [`official_schedule`][mrs_numerics.solvers.presets.official_schedule]; the
    grid is uniform in λ from t = T to t = 0 unless ``options`` say otherwise (see the module
    description for the known differences from the official code).

    Args:
        method: ``"sde"`` (the official default) or ``"ode"``.
        order: The multistep order (1, 2 for the SDE; 1, 2, 3 for the ODE).
        solver_prediction: The form integrated: ``"data"`` (official) or ``"noise"``.
        model_prediction: What the network returns (IR-SDE networks: ``"noise"``).
        **options (Any): Further keyword options of
            [`MRSampler`][mrs_numerics.solvers.mr_sampler.MRSampler]; they override the preset's
            ``grid``, ``t_start`` and ``t_end``.

    Returns:
        The sampler.
    """
    schedule = official_schedule()
    defaults = {"grid": "lambda", "t_start": float(schedule.t_max), "t_end": 0.0}
    return MRSampler(
        schedule, method, order, solver_prediction, model_prediction, **{**defaults, **options}
    )
