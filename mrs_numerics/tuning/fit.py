"""Teacher-fitted step grids: the N − 1 interior times that bring a sampler closest to its
converged output in a fixed number of network calls.

**Problem.** A sampler (a solver id with its options) on N steps between its own first and last
time, t_0 > t_1 > … > t_N, run from prior samples x_T on calibration inputs μ, gives
Φ(t_1, …, t_{N−1}; x_T, μ). The converged output Φ* of the same equation from the same x_T
(and, for an SDE, the same Brownian path) is computed once on a fine grid
([`converged_output`][mrs_numerics.tuning.teacher.converged_output]). The fit maximises the
*solver fidelity*, the mean over the calibration images of PSNR(Φ, Φ*) on outputs clamped to
[0, 1], over the interior times. Every step time is also the time the network is evaluated at.

**Parameterisation.** Interior times are placed in λ (the solvers' natural variable): with
u_i = (λ_i − λ_0)/(λ_N − λ_0), the N increments u_{i+1} − u_i = softmax(θ, 0)_i are positive
and sum to one for every θ ∈ ℝ^{N−1}, so every θ is a valid, strictly decreasing grid and the
search is unconstrained.

**Method.** A derivative-free search: the best of a one-parameter family of warped λ grids,
u_i = (i/N)^ρ for ρ in [`WARPS`][mrs_numerics.tuning.fit.WARPS] (ρ = 1 is uniform in λ; ρ < 1
puts more steps near the clean end), plus the sampler's time and Karras grids, starts a
Nelder–Mead search over θ (SciPy, adaptive coefficients) that stops after ``max_evaluations``
runs in all. Why this method: it calls nothing but the sampler's own ``sample``, so it works
unchanged for every solver of [`SOLVERS`][mrs_numerics.solvers.registry.SOLVERS] (multistep with
any start, singlestep stages, correctors, baselines with two calls per step, SDEs), every
schedule and every model prediction, and it optimises the quantity reported (global fidelity,
not a proxy such as summed local errors). Its cost is one N-call run of the calibration batch
per evaluation; for N ≤ 10 a few hundred evaluations suffice. For SDE samplers the candidate
times are snapped to the teacher's fine grid, where the coupled path is defined.

**NFE.** The grid has the most steps whose run makes at most ``nfe`` network calls, counted by
running the compiled plan, so a start with an extra call (third-order ``start="singlestep"``),
two calls per step (``heun-ode``) and ``denoise_last`` are all counted as they happen.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch
from scipy.optimize import minimize
from tqdm.auto import tqdm

import mrs_numerics
from mrs_numerics._errors import Advice, InputError
from mrs_numerics.models.network_identity import UNKNOWN_NETWORK
from mrs_numerics.models.tuned_grids import TunedGrid
from mrs_numerics.schedules import grids
from mrs_numerics.schedules.identity import schedule_identity
from mrs_numerics.solvers.base import SamplerBase, prior_sample
from mrs_numerics.solvers.configuration import sampler_configuration
from mrs_numerics.solvers.engine import NonFiniteError
from mrs_numerics.solvers.protocols import Model
from mrs_numerics.tuning.teacher import (
    DEFAULT_TEACHER_STEPS,
    Teacher,
    converged_output,
    fidelity_db,
)

WARPS = (0.35, 0.45, 0.55, 0.7, 0.85, 1.0)
"""Exponents ρ of the warped λ grids u_i = (i/N)^ρ tried as starting points."""
SIMPLEX_STEP = 0.5
"""Initial Nelder–Mead simplex: each logit θ_i moved by this (increments change by ≈ 65 %)."""
FAILED_FIDELITY_DB = -100.0
"""Fidelity assigned to a grid whose run fails (non-finite output or divergence)."""


class TuningFailedError(FloatingPointError):
    """Every candidate grid of a fit failed (its run turned NaN/Inf or diverged): no grid."""


def default_max_evaluations(steps: int) -> int:
    """Runs of the calibration batch the fit makes by default: 30 + 10 (N − 1)."""
    return 30 + 10 * (steps - 1)


def warped_lams(lam_start: float, lam_end: float, steps: int, rho: float) -> torch.Tensor:
    """λ_i = λ_0 + (λ_N − λ_0)(i/N)^ρ, i = 0 … N (float64)."""
    ramp = torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64) ** rho
    return lam_start + (lam_end - lam_start) * ramp


def logits_of(lams: torch.Tensor) -> np.ndarray:
    """θ ∈ ℝ^{N−1} whose softmax increments (last logit 0) give the λ grid ``lams``."""
    increments = np.diff(lams.numpy())
    increments = increments / increments.sum()
    return np.log(increments[:-1]) - math.log(increments[-1])


def lams_of(theta: np.ndarray, lam_start: float, lam_end: float) -> torch.Tensor:
    """The λ grid of logits θ (see the module description)."""
    logits = np.append(np.asarray(theta, dtype=np.float64), 0.0)
    weights = np.exp(logits - logits.max())
    fractions = np.concatenate([[0.0], np.cumsum(weights / weights.sum())])
    fractions[-1] = 1.0
    return torch.as_tensor(lam_start + (lam_end - lam_start) * fractions, dtype=torch.float64)


class GridObjective:
    """Fidelity (dB) of ``sampler`` on a candidate λ grid, against the teacher; remembers the best.

    Args:
        sampler: The sampler being tuned.
        model: The network.
        mu: The calibration inputs.
        x_T: The prior samples (the teacher's start).
        teacher: The converged output.
        t_start: The grid's first time (kept).
        t_end: The grid's last time (kept).
    """

    def __init__(self, sampler, model, mu, x_T, teacher: Teacher, t_start, t_end):
        self.sampler, self.model, self.mu, self.x_T = sampler, model, mu, x_T
        self.teacher = teacher
        self.t_start, self.t_end = t_start, t_end
        self.snap = teacher.path is not None
        self.noise = teacher.noise_for(sampler)
        self.evaluations = 0
        self.best_db = -math.inf
        self.best_times: torch.Tensor | None = None
        self.bar: tqdm | None = None

    def times_of(self, lams: torch.Tensor) -> torch.Tensor | None:
        """The time grid of ``lams`` with the kept ends (snapped for SDEs); None if degenerate."""
        times = self.sampler.schedule.t_of_lam(lams).to(torch.float64)
        times[0], times[-1] = self.t_start, self.t_end
        if self.snap:
            fine = self.teacher.fine_times
            nearest = torch.argmin((fine[None, :] - times[:, None]).abs(), dim=1)
            times = fine[torch.unique(nearest)]
            if times.numel() != lams.numel():
                return None
        if not bool((times[1:] < times[:-1]).all()):
            return None
        return times

    def __call__(self, lams: torch.Tensor) -> float:
        """The fidelity of the grid with λ values ``lams`` (FAILED_FIDELITY_DB if it fails)."""
        times = self.times_of(lams)
        value = FAILED_FIDELITY_DB
        if times is not None:
            try:
                with torch.inference_mode():
                    out = self.sampler.sample(
                        self.model, self.mu, timesteps=times, x_T=self.x_T, noise=self.noise
                    ).x
                value = fidelity_db(out, self.teacher.output)
            except NonFiniteError:
                pass
            if math.isnan(value) or value == -math.inf:
                value = FAILED_FIDELITY_DB
        self.evaluations += 1
        if times is not None and value > self.best_db:
            self.best_db, self.best_times = value, times
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(best_db=f"{self.best_db:.2f}")
        return value


def check_finer_teacher(sampler: SamplerBase, nfe: int, teacher_steps: int) -> tuple[int, int]:
    """(steps, calls) of the grid ``tune_timesteps`` fits for ``nfe``, refused (InputError,
    before any teacher is computed) unless the teacher has more steps than the grid."""
    steps, calls = sampler.steps_within(nfe)
    if steps >= teacher_steps:
        raise InputError(
            f"a grid of {steps} steps ({calls} NFE) needs a finer teacher than {teacher_steps} "
            "steps: the teacher must have more steps than the grid it scores",
            advice=Advice("teacher_steps", 2 * max(steps, teacher_steps), "(or a smaller budget)"),
        )
    return steps, calls


def tune_timesteps(
    sampler: SamplerBase,
    model: Model,
    mu: torch.Tensor,
    nfe: int,
    *,
    seed: int = 0,
    teacher_steps: int = DEFAULT_TEACHER_STEPS,
    max_evaluations: int | None = None,
    warps: Sequence[float] = WARPS,
    teacher: Teacher | None = None,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
    network: dict | None = None,
) -> TunedGrid:
    """The step grid that brings ``sampler`` closest to its converged output in ``nfe`` calls.

    See the module description for the problem, the parameterisation and the method.

    Args:
        sampler: The sampler to tune, with its options (e.g.
            ``make_sampler("mrs-ode-3-data", schedule, "data", start="warmup")``).
        model: ``model(x, t, mu)`` returning the sampler's ``model_prediction``.
        mu: Calibration inputs ``[batch, ...]`` (degraded images), float.
        nfe: The budget of network calls of a run on the grid (counted as the run makes them:
            a third-order singlestep start spends one extra call, ``heun-ode`` two per step).
        seed: Seeds the prior samples x_T (and the Brownian path of an SDE sampler).
        teacher_steps: Fine uniform-λ steps of the converged output (even).
        max_evaluations: Runs of the calibration batch in all (default
            [`default_max_evaluations`][mrs_numerics.tuning.fit.default_max_evaluations]).
        warps: Exponents ρ of the warped λ grids tried as starting points.
        teacher: A converged output already computed for (sampler's equation, μ, seed), to
            share it between fits.
        progress: Show a progress bar over the evaluations.
        log: Called with one line per phase (e.g. ``print``).
        network: The network's identity ``{"name", "sha256"}`` for the record (see
            [`network_identity`][mrs_numerics.models.network_identity]); None: unknown.

    Returns:
        The [`TunedGrid`][mrs_numerics.models.tuned_grids.TunedGrid]: times (float64,
        decreasing, the sampler's own first and last time), λ, the NFE of a run, the calibration
        fidelity, the fit's settings, and what it was made for: the sampler's full
        configuration, the schedule's identity and the network's.

    Raises:
        ValueError: If ``nfe`` is too small for one step, the grid would have as many steps as
            the teacher or more (checked before the teacher is computed), or an argument is
            malformed.
        TuningFailedError: If the run of every candidate grid failed (NaN/Inf or divergence).
    """
    started = time.perf_counter()
    say = log or (lambda line: None)
    fine_steps = teacher_steps if teacher is None else int(teacher.fine_times.numel() - 1)
    steps, calls = check_finer_teacher(sampler, nfe, fine_steps)
    schedule = sampler.schedule
    ends = sampler.timesteps(1)
    t_start, t_end = float(ends[0]), float(ends[-1])
    lam_start, lam_end = (
        float(schedule.lam(torch.tensor(t, dtype=torch.float64))) for t in (t_start, t_end)
    )
    if not (math.isfinite(lam_start) and math.isfinite(lam_end)):
        raise ValueError(
            f"tuning needs a finite λ at both ends of the grid; λ = {lam_start}, {lam_end}: "
            "give the sampler a t_end where σ > 0"
        )
    generator = torch.Generator(mu.device).manual_seed(seed)
    x_T = prior_sample(schedule, mu, t_start, generator)
    if teacher is None:
        say(f"teacher: {teacher_steps} steps")
        teacher = converged_output(sampler, model, mu, x_T, teacher_steps, seed)
    objective = GridObjective(sampler, model, mu, x_T, teacher, t_start, t_end)
    budget = default_max_evaluations(steps) if max_evaluations is None else int(max_evaluations)
    with tqdm(total=budget, disable=not progress, desc=f"tuning {steps} steps", leave=False) as bar:
        objective.bar = bar
        starts = _starting_grids(sampler, steps, lam_start, lam_end, warps)
        scores = {name: objective(lams) for name, lams in starts.items()}
        best_start = max(scores, key=lambda name: scores[name])
        uniform_db = scores["warp-1"] if "warp-1" in scores else objective(starts["lambda"])
        say(f"start: {best_start} at {scores[best_start]:.2f} dB (uniform λ {uniform_db:.2f} dB)")
        remaining = budget - objective.evaluations
        if steps > 1 and remaining > 0:
            theta0 = logits_of(starts[best_start])
            simplex = np.vstack(
                [theta0] + [theta0 + SIMPLEX_STEP * row for row in np.eye(steps - 1)]
            )
            minimize(
                lambda theta: -objective(lams_of(theta, lam_start, lam_end)),
                theta0,
                method="Nelder-Mead",
                options={
                    "maxfev": remaining,
                    "initial_simplex": simplex,
                    "adaptive": steps > 3,
                    "xatol": 1e-3,
                    "fatol": 1e-3,
                },
            )
        objective.bar = None
    if objective.best_times is None or objective.best_db <= FAILED_FIDELITY_DB:
        raise TuningFailedError(
            f"every one of the {objective.evaluations} candidate grids of {steps} steps for "
            f"{sampler.solver_id} failed (NaN/Inf or divergence): no grid was tuned; try "
            "another sampler or a larger budget"
        )
    times = objective.best_times
    say(f"tuned: {objective.best_db:.2f} dB after {objective.evaluations} runs")
    return TunedGrid(
        timesteps=times,
        lams=schedule.lam(times).to(torch.float64),
        sampler=sampler_configuration(sampler),
        nfe=calls,
        fidelity_db=objective.best_db,
        network=dict(UNKNOWN_NETWORK) if network is None else dict(network),
        schedule=schedule_identity(schedule),
        baseline_fidelity_db={"calibration": uniform_db},
        calibration={"batch": int(mu.shape[0]), "shape": list(mu.shape[1:]), "seed": seed},
        settings={
            "method": "best warped λ grid, then Nelder-Mead over the interior λ logits",
            "evaluations": objective.evaluations,
            "max_evaluations": budget,
            "start": best_start,
            "start_fidelity_db": scores[best_start],
            "teacher_steps": int(teacher.fine_times.numel() - 1),
            "teacher_accuracy_db": teacher.accuracy_db,
            "seconds": round(time.perf_counter() - started, 1),
        },
        version=mrs_numerics.__version__,
    )


def _starting_grids(sampler, steps, lam_start, lam_end, warps) -> dict[str, torch.Tensor]:
    """The warped λ grids and the sampler's time and Karras grids, as λ values."""
    starts = {f"warp-{rho:g}": warped_lams(lam_start, lam_end, steps, rho) for rho in warps}
    o = sampler.options
    schedule = sampler.schedule
    for spacing in ("time", "karras", "lambda"):
        times = grids.timesteps(schedule, steps, spacing, o.t_start, o.t_end, o.lam_min, o.rho)
        lams = schedule.lam(times).to(torch.float64)
        lams[0], lams[-1] = lam_start, lam_end
        starts[spacing] = lams
    if "warp-1" in starts:
        del starts["lambda"]
    return starts
