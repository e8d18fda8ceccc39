"""Named configurations that reproduce published settings with our derived formulas.

[`official_mrs`][mrs_numerics.solvers.presets.official_mrs] uses the official MR Sampler
settings: IR-SDE's cosine table with T = 100, Λ = 50/255, eps = 0.005 and the MRS code's θ₀
convention (S_i = Σ_{j≤i} θ_j, finite λ(0) ≈ 6.11), a noise-prediction network, the second-order
data-form SDE solver, multistep, from t = T to t = 0, steps uniform in λ (the official test
options' ``linear-lambda``; ``grid="time"`` is the official constructor's ``linspace``). The
formulas are always ours (derived in ``derivations/``). With the same grid, prior and noise, and
no lowered orders, the first- and second-order samplers agree with the official code to float32
round-off (≤ 1e-5 at 20 steps on integer times). Known differences from the official code:

- **Lower-order final steps.** The official loop lowers orders only below 10 steps, on the steps
  before the last, and takes the last step at full order (order 2, 5 steps: 1, 2, 2, 1, 2). The
  preset reproduces that rule (``lower_order_final="official"``); the package's own
  ``lower_order_final=True`` lowers below 15 steps, the last step included (1, 2, 2, 2, 1).
- **Third order.** The official third-order ODE weights the second divided difference by φ₃ (the
  DPM-Solver++(3M) form); ours by 2φ₃, the exact integral of the quadratic interpolant (proved
  in ``derivations/``). Our default start is a singlestep step (+1 network call) so that the
  method keeps third order; ``start="warmup"`` is the official warm-up.
- **Between table indices** the official code interpolates α, σ and λ separately; ours
  interpolates Θ linearly and derives α, σ and λ from it, so λ = log(α/σ) holds at every time.
  Fractional times (uniform-λ and Karras grids) therefore differ slightly.
- **Thresholding**: ``official_mrs(thresholding=True)`` is the official thresholding of x̂₀
  ([`OFFICIAL_THRESHOLDING`][mrs_numerics.solvers.presets.OFFICIAL_THRESHOLDING]: ratio 0.995,
  scale clamped to [1, 1.5]); in the noise form the official code thresholds the predicted
  noise instead, ours always x̂₀.
- **denoise_last** replaces the official last step at no extra call; ours adds one call.
- **Prior**: the official code starts from μ + Λξ at any first time; ours from μ + σ(t₀)ξ.

[`FEW_STEP_VARIANTS`][mrs_numerics.solvers.presets.FEW_STEP_VARIANTS] names the (solver, options)
pairs that are best at ≤ 10 network calls, measured with ``mrs-numerics benchmark quality``; the
shipped networks carry step grids tuned for them (``mrs-numerics tune``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mrs_numerics import schedules
from mrs_numerics.schedules.protocol import Schedule
from mrs_numerics.solvers.base import SamplerBase
from mrs_numerics.solvers.factory import make_sampler
from mrs_numerics.solvers.mr_sampler import MRSampler
from mrs_numerics.solvers.options import Thresholding
from mrs_numerics.solvers.registry import SOLVERS, solver_info

OFFICIAL_THRESHOLDING = Thresholding(ratio=0.995, max_value=1.0, cap=1.5)
"""The official code's dynamic thresholding: ``threshold_ratio`` 0.995, scale in [1,
``threshold_max`` = 1.5]; what ``official_mrs(thresholding=True)`` uses."""


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
            ``grid``, ``t_start``, ``t_end`` and ``lower_order_final`` (``"official"``: the
            official code's rule, see the module description; the package default is measured, see
            [`LOWER_ORDER_FINAL_DEFAULTS`][mrs_numerics.solvers.mr_sampler.LOWER_ORDER_FINAL_DEFAULTS]).
            ``thresholding=True`` means
            [`OFFICIAL_THRESHOLDING`][mrs_numerics.solvers.presets.OFFICIAL_THRESHOLDING].

    Returns:
        The sampler.
    """
    schedule = official_schedule()
    if options.get("thresholding") is True:
        options["thresholding"] = OFFICIAL_THRESHOLDING
    defaults = {
        "grid": "lambda",
        "t_start": float(schedule.t_max),
        "t_end": 0.0,
        "lower_order_final": "official",
    }
    return MRSampler(
        schedule, method, order, solver_prediction, model_prediction, **{**defaults, **options}
    )


@dataclass(frozen=True)
class FewStepVariant:
    """A named few-step sampler: a solver id and the options it runs with.

    Attributes:
        name: The variant's name (used by ``--variant``, grid files and reports).
        solver_id: A canonical id of [`SOLVERS`][mrs_numerics.solvers.registry.SOLVERS].
        options: Keyword options of the sampler (e.g. ``start``, ``lower_order_final``).
        description: One line for listings.
    """

    name: str
    solver_id: str
    options: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    @property
    def order(self) -> int:
        """The global order the variant keeps: the solver's, capped at 2 by ``start="warmup"``.

        The warm-up's first step is first order (local error O(h²)), which caps any order above
        2 (see [Order-preserving start](../theory.md#order-preserving-start)).
        """
        order = solver_info(self.solver_id).order
        if order is None:
            raise ValueError(f"{self.solver_id} is an SDE solver: it has strong and weak orders")
        return min(order, 2) if self.options.get("start") == "warmup" else order

    def make(self, schedule: Schedule, model_prediction: str = "noise", **options) -> SamplerBase:
        """The sampler of this variant on ``schedule`` (``options`` add to the variant's)."""
        return make_sampler(
            self.solver_id, schedule, model_prediction, **{**self.options, **options}
        )


def _variants(*variants: FewStepVariant) -> dict[str, FewStepVariant]:
    return {v.name: v for v in variants if v.solver_id in SOLVERS}


FEW_STEP_VARIANTS: dict[str, FewStepVariant] = _variants(
    FewStepVariant(
        "ms3",
        "mrs-ode-3-data",
        {"start": "warmup", "lower_order_final": False},
        "third-order data-form multistep, classical warm-up (no extra call), full order to the end",
    ),
    FewStepVariant(
        "ms2",
        "mrs-ode-2-data",
        {"lower_order_final": False},
        "second-order data-form multistep, full order to the end",
    ),
    FewStepVariant(
        "unic2",
        "mrs-ode-2-data-unic",
        {"lower_order_final": False},
        "second-order data-form multistep with the UniC-style corrector (order 3, no extra call)",
    ),
)
"""The named few-step variants, by name."""

DEFAULT_FEW_STEP_VARIANT = "ms3"
"""The variant ``restore`` uses when no sampler is named (see the docs' few-step table)."""


def few_step_variant(name: str) -> FewStepVariant:
    """The variant ``name`` (a clear error lists the known ones)."""
    if name not in FEW_STEP_VARIANTS:
        known = ", ".join(FEW_STEP_VARIANTS)
        raise ValueError(f"unknown few-step variant {name!r}; known variants: {known}")
    return FEW_STEP_VARIANTS[name]
