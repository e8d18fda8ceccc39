"""Measured instabilities: the (solver, NFE) ranges the benchmarks saw fail, and their warning.

A row of [`INSTABILITIES`][mrs_numerics.solvers.instability.INSTABILITIES] names solvers and
the number of network calls below which a run of them was measured to **diverge** (the
benchmark's "blow-up", or ``DivergenceError`` in ``benchmarks/reliability.py``, float64 too) or
to **land near the input**: PSNR to the ground truth at most 2 dB above the degraded input's,
or below it, on a shipped data-prediction network whose converged output is well above the
input (``denoise-data``, ``blur-data``, ``lowlight-data``); or to stay **more than 10 dB of
solver fidelity below the data form** of the same solver at the same NFE (the noise-form
corrector, documented as unstable in the docs' "Few-step sampling" page). The bound of a row is
the least measured NFE at which none of its solvers failed; every row cites its measurement.

Building a plan in such a range warns once per plan
([`warn_if_unstable`][mrs_numerics.solvers.instability.warn_if_unstable], called by every plan
builder; the plan cache then reuses the plan without warning again) with one
[`InstabilityWarning`][mrs_numerics.solvers.instability.InstabilityWarning] subclass per row
kind, so that a filter names a class, never message text::

    warnings.filterwarnings("ignore", category=InstabilityWarning)

The warning changes nothing in the run. Not in the table: the noise-prediction network
``denoise-noise-ts30`` lands at or below its input at 3–5 NFE with every solver, data form
included; that is the network's weakness (its own PF-ODE converges to 16.3 dB against 15.3 dB
for the input), which no per-solver warning can state. Its divergences are in the table.
"""

from __future__ import annotations

from dataclasses import dataclass

from mrs_numerics._warn import warn
from mrs_numerics.solvers.engine import Plan


class InstabilityWarning(RuntimeWarning):
    """A run in a (solver, NFE) range measured to diverge or to return about its input."""


class NoiseFormSDEWarning(InstabilityWarning):
    """A noise-form SDE (``mrs-sde-*-noise``) at low NFE."""


class NoiseFormCorrectorWarning(InstabilityWarning):
    """The noise-form corrector (``mrs-ode-*-noise-unic``) at few calls."""


class NoiseFormODEWarning(InstabilityWarning):
    """The third-order noise-form ODE multistep at the fewest calls."""


class StiffBaselineWarning(InstabilityWarning):
    """An explicit baseline (Heun, Euler–Maruyama) whose last steps are stiff at low NFE."""


@dataclass(frozen=True)
class Instability:
    """One row: solvers that fail below ``below`` network calls, and the measurement.

    Attributes:
        solvers: The canonical solver ids the row covers.
        below: A run making fewer network calls than this warns.
        category: The warning class raised.
        measured: What the benchmarks measured, for the message.
        advice: What to use instead, for the message (no Python syntax: it is read on the
            command line too).
        source: The measurement: result files under ``benchmarks/results/`` and their numbers.
    """

    solvers: tuple[str, ...]
    below: int
    category: type[InstabilityWarning]
    measured: str
    advice: str
    source: str


INSTABILITIES: tuple[Instability, ...] = (
    Instability(
        ("mrs-sde-1-noise", "mrs-sde-2-noise"),
        20,
        NoiseFormSDEWarning,
        "noise-form SDEs diverge at 3-10 NFE on the shipped networks and the exact oracles",
        "use the data form (mrs-sde-1-data, mrs-sde-2-data) or at least 20 network calls",
        "quality_full_cpu_denoise-data.md (64², 3 seeds): mrs-sde-1-noise blow-up at 3 and 5 "
        "NFE, 26.3 dB fidelity at 10; mrs-sde-2-noise blow-up at 3, 5 and 10; at 20 both finite "
        "(37.7 and 32.1 dB fidelity, PSNR 23.68 and 22.95 dB against 15.33 dB for the input). "
        "reliability.md: mrs-sde-2-noise diverges at 10 NFE on every oracle, both at 3 on "
        "denoise-noise-ts30 (float64 too).",
    ),
    Instability(
        ("mrs-ode-1-noise-unic", "mrs-ode-2-noise-unic"),
        6,
        NoiseFormCorrectorWarning,
        "the noise-form corrector returns about its input at 3 NFE and stays more than 10 dB "
        "below the data form up to 5 (it diverges at 3 on a noise-prediction network)",
        "use the data-form corrector (e.g. mrs-ode-2-data-unic), no corrector, or at least 6 "
        "network calls",
        "noise_corrector_denoise-data.md (uniform λ, 64², 2 seeds): PSNR 14.61 and 16.88 dB at "
        "3 NFE (input 15.31 dB), fidelity 15.6-25.5 and 18.4-29.3 dB at 3-5 NFE against "
        "34.8-39.4 dB for mrs-ode-2-data-unic; 34.1 and 36.4 dB at 6. "
        "few_step_defaults_denoise-data.md: 13.2-24.2 and 15.6-28.0 dB at 3-5 NFE. "
        "reliability.md: both diverge at 3 NFE on denoise-noise-ts30 (float64 too).",
    ),
    Instability(
        ("mrs-ode-3-noise-unic",),
        8,
        NoiseFormCorrectorWarning,
        "the third-order noise-form corrector stays more than 10 dB below the data form at 5-6 NFE",
        "use the data-form corrector (e.g. mrs-ode-2-data-unic), no corrector, or at least 8 "
        "network calls",
        "noise_corrector_denoise-data.md (uniform λ, 64², 2 seeds): fidelity 22.2 and 23.4 dB "
        "at 5 and 6 NFE (PSNR 18.44 and 21.19 dB, input 15.31 dB) against 35.3 and 33.7 dB "
        "for mrs-ode-3-data-unic (corrector_order4_denoise-data.md); 39.5 dB at 8.",
    ),
    Instability(
        ("mrs-ode-3-noise",),
        5,
        NoiseFormODEWarning,
        "the third-order noise-form ODE diverges at 3 NFE on a noise-prediction network",
        "use the data form (mrs-ode-3-data) or at least 5 network calls",
        "reliability.md: mrs-ode-3-noise diverges at 3 NFE on denoise-noise-ts30 (float64 "
        "too); quality_quick_cpu_denoise-noise-ts30.md: at 3 NFE 4.7 dB fidelity and PSNR "
        "4.99 dB (input 15.33 dB), finite from 5 NFE (21.8 dB fidelity).",
    ),
    Instability(
        ("heun-ode",),
        100,
        StiffBaselineWarning,
        "Heun's explicit last steps are stiff: it diverges at 3-4 NFE and lands near or below "
        "the input up to 50",
        "use an MR Sampler ODE (e.g. mrs-ode-2-data) or at least 100 network calls",
        "few_step_quality_{denoise,blur,lowlight}-data.md (64², 3 seeds): blow-up at 3-4 NFE; "
        "PSNR 4.91-13.31 dB at 6-20 NFE on denoise-data (input 15.33 dB), 4.79-14.90 dB at "
        "4-20 on blur-data (input 26.41 dB), 4.37-6.96 dB at 6-15 on lowlight-data (input "
        "5.44 dB); at 50 NFE 26.97 dB on blur-data, 0.6 dB above its input (converged 29.5 "
        "dB); at 100: 23.94, 28.99, 21.26 dB. reliability.md: diverges at 3 and 5 NFE on "
        "denoise-data.",
    ),
    Instability(
        ("euler-maruyama",),
        20,
        StiffBaselineWarning,
        "Euler-Maruyama lands near or below the input below 20 NFE",
        "use an MR Sampler SDE (e.g. mrs-sde-2-data) or at least 20 network calls",
        "quality_full_cpu_denoise-data.md (64², 3 seeds): PSNR 5.19, 8.36 and 15.64 dB at 3, 5 "
        "and 10 NFE (input 15.33 dB; SSIM 0.007-0.181), 21.68 dB at 20 (converged SDE 23.06 "
        "dB); quality_quick_cpu_denoise-data.md: 5.13, 8.36, 15.68 and 21.84 dB.",
    ),
)
"""The measured instabilities (see the module docstring for what counts and the bounds)."""


def instability(solver_id: str, nfe: int) -> Instability | None:
    """The row a run of ``solver_id`` with ``nfe`` network calls falls in, or None."""
    for row in INSTABILITIES:
        if solver_id in row.solvers and nfe < row.below:
            return row
    return None


def plan_calls(plan: Plan) -> int:
    """The network calls of a plan's steps: each m0 evaluation and each stage's evaluation.

    A ``denoise_last`` call (``plan.final``) is not counted: it follows the integration and
    does not change its stability.
    """
    return sum(
        (step.first is not None) + sum(stage.evaluate is not None for stage in step.stages)
        for step in plan.steps
    )


def warn_if_unstable(solver_id: str, plan: Plan) -> None:
    """Warn (the row's class) if the plan's calls fall in a measured instability of the solver.

    Called once by each plan builder, so once per compiled plan; the run is unchanged.
    """
    nfe = plan_calls(plan)
    row = instability(solver_id, nfe)
    if row is not None:
        warn(
            f"{solver_id} with {nfe} network calls (< {row.below}): {row.measured}; {row.advice}",
            row.category,
        )
