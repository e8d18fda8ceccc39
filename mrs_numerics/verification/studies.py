"""Convergence-order studies: step ladders, errors against exact or high-precision references,
least-squares log-log slopes over the asymptotic window, and verdicts.

Three kinds of order, each measured in float64 on non-uniform λ grids that end at a moderate λ
(explicit baselines are stiff near t → 0, see [Stiffness near t →
0](../theory.md#stiffness-near-t-0)):

- ``global`` (ODE solvers): error of x at the last time against a scipy reference of the PF-ODE
  ([`references`][mrs_numerics.verification.references]) that is many orders more accurate,
  vs the largest λ-step;
- ``strong`` (SDE solvers): root-mean-square pathwise error against the same SDE solved on a
  much finer nested grid with the SAME Brownian path
  ([`brownian`][mrs_numerics.solvers.brownian]);
- ``weak`` (SDE solvers): for Gaussian data every step is affine, so the exact mean and
  covariance of x_N are propagated through the sampler itself (no Monte Carlo); the mean is
  exact by construction and the error is the variance error.

Each ODE solver is run twice: ``run="full"`` through ``sample`` (start procedure included,
``lower_order_final`` off) and ``run="kernel"``: the multistep kernels alone (with their corrector
for ``…-unic`` ids) from an exact warm start (earlier outputs evaluated on the exact path). A
solver passes when its observed order is at least the declared one minus ``TOLERANCE`` (the bound
that protects users); one that converges more than ``TOLERANCE`` faster than declared passes too,
reported as "faster than declared" (e.g. a smooth problem where a leading error term vanishes).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from mrs_numerics.schedules.protocol import Schedule
from mrs_numerics.solvers import parameterization
from mrs_numerics.solvers.brownian import CoupledBrownian, family_for, nested_grid
from mrs_numerics.solvers.factory import make_sampler
from mrs_numerics.solvers.instability import InstabilityWarning
from mrs_numerics.solvers.kernels import coefficients, linear_step
from mrs_numerics.solvers.registry import (
    corrector_update,
    multistep_update,
    parse_mrs_id,
    solver_info,
)
from mrs_numerics.verification.oracles import GaussianData

TOLERANCE = 0.2
"""A pass needs observed ≥ declared − TOLERANCE; above declared + TOLERANCE it is reported as
faster than declared."""

ERROR_FLOOR = 1e-11
"""Errors below this are round-off dominated and left out of slope fits."""

LAM_RANGE = (-1.0, 2.0)
"""λ from the noisy start to a moderate end (explicit baselines are stiff near t → 0)."""
MIN_LAM_SPAN = 1.5
"""The studies need at least this much λ inside a schedule's time range."""


def lam_range(schedule: Schedule) -> tuple[float, float]:
    """LAM_RANGE clipped to the λ the schedule reaches: λ(t_max) ≤ λ ≤ λ(t_min).

    Built-in schedules reach λ(1) ≈ −3.7; a user θ(t) may not (e.g. Θ(t_max) ≈ 1 gives λ ≈ 0.4).
    """
    ends = schedule.lam(torch.tensor([schedule.t_max, schedule.t_min], dtype=torch.float64))
    low = max(LAM_RANGE[0], float(ends[0]) + 1e-6)
    high = min(LAM_RANGE[1], float(ends[1]) - 1e-6)
    if high - low < MIN_LAM_SPAN:
        raise ValueError(
            f"schedule {schedule.name!r} spans λ ∈ [{float(ends[0]):.3g}, {float(ends[1]):.3g}]; "
            f"the order studies need λ from {LAM_RANGE[0]} to {LAM_RANGE[1]} (at least "
            f"{MIN_LAM_SPAN} of it): scale θ(t) up or extend t_max"
        )
    return low, high


@dataclass
class OrderResult:
    """One measured order, in the JSON layout of ``mrs-numerics verify --json``.

    Attributes:
        solver: The solver id (a key of [`SOLVERS`][mrs_numerics.solvers.registry.SOLVERS]).
        problem: The test problem (a built-in oracle problem, ``"gauss-diag"`` for the weak
            study, or ``"real"``).
        schedule: The schedule's name.
        method: ``"ode"`` or ``"sde"``.
        declared_order: The order the solver declares for ``order_kind``.
        order_kind: ``"global"`` (ODE), ``"strong"`` or ``"weak"`` (SDE).
        run: ``"full"`` (through ``sample``, start included) or ``"kernel"`` (the multistep
            kernels from an exact warm start).
        solver_prediction: The form the solver integrates (``"data"`` or ``"noise"``).
        model_prediction: What the oracle returned.
        observed_order: The fitted slope
            ([`fit_order`][mrs_numerics.verification.studies.fit_order]; NaN if too few rungs
            qualify).
        passed: Whether ``observed_order`` ≥ ``declared_order`` − ``TOLERANCE`` (see
            [`verdict`][mrs_numerics.verification.studies.verdict]).
        steps: The step counts of the ladder.
        nfe: The network calls of each rung.
        h_max: The largest λ-step of each rung.
        errors: The error of each rung.
        window: The indices of the rungs the slope was fitted on.
    """

    solver: str
    problem: str
    schedule: str
    method: str
    declared_order: float
    order_kind: str
    run: str
    solver_prediction: str
    model_prediction: str
    observed_order: float
    passed: bool
    steps: list[int] = field(default_factory=list)
    nfe: list[int] = field(default_factory=list)
    h_max: list[float] = field(default_factory=list)
    errors: list[float] = field(default_factory=list)
    window: list[int] = field(default_factory=list)

    def summary(self) -> dict:
        """The fields of the public JSON results."""
        keys = (
            "solver",
            "problem",
            "schedule",
            "method",
            "declared_order",
            "order_kind",
            "run",
            "solver_prediction",
            "model_prediction",
            "observed_order",
            "passed",
        )
        return {**{key: getattr(self, key) for key in keys}, "verdict": self.verdict}

    @property
    def verdict(self) -> str:
        """``"pass"``, ``"faster than declared"`` or ``"FAIL"`` (see ``verdict_text``)."""
        return verdict_text(self.observed_order, self.declared_order)

    def as_dict(self) -> dict:
        """Everything, for reports."""
        return asdict(self)


def fit_order(h_max, errors, min_points: int = 3) -> tuple[float, list[int]]:
    """Least-squares slope of log error vs log h over the asymptotic window.

    The window is the ``min_points`` finest steps whose errors are above ERROR_FLOOR, have one
    sign (weak errors may change sign before the asymptotic regime) and decrease towards the
    finest step (fewer qualifying points gives NaN). Returns (slope, indices used).
    """
    h = np.asarray(h_max, dtype=float)
    e = np.asarray(errors, dtype=float)
    order = np.argsort(h)
    window: list[int] = []
    sign = None
    for i in order:
        value = e[i]
        if not np.isfinite(value) or abs(value) < ERROR_FLOOR:
            if window:
                break
            continue
        if sign is None:
            sign = np.sign(value)
        if np.sign(value) != sign:
            break
        if window and abs(value) <= abs(e[window[-1]]):
            break
        window.append(int(i))
    if len(window) < min_points:
        return float("nan"), sorted(window)
    window = window[:min_points]
    slope = np.polyfit(np.log(h[window]), np.log(np.abs(e[window])), 1)[0]
    return float(slope), sorted(window)


def verdict(observed: float, declared: float) -> bool:
    """A pass: the observed order is at least declared − TOLERANCE (NaN fails)."""
    return bool(np.isfinite(observed) and observed >= declared - TOLERANCE)


def verdict_text(observed: float, declared: float) -> str:
    """``"FAIL"`` below declared − TOLERANCE (or NaN), ``"faster than declared"`` above
    declared + TOLERANCE, else ``"pass"``."""
    if not verdict(observed, declared):
        return "FAIL"
    return "faster than declared" if observed > declared + TOLERANCE else "pass"


def wobbly_lambda_times(schedule, lam_start: float, lam_end: float, steps: int, wobble=0.3):
    """A smooth, clearly non-uniform λ grid: u ↦ u + wobble·u(1−u)·sin(7u) on [0, 1].

    The step ratios vary along the run, so uniform-step cancellations cannot hide errors.
    """
    u = torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64)
    u = u + wobble * u * (1 - u) * torch.sin(7 * u)
    lam = lam_start + (lam_end - lam_start) * u
    return schedule.t_of_lam(lam)


def h_max_of(schedule, times) -> float:
    """Largest λ-step of a grid."""
    return float(schedule.lam(times).diff().abs().max())


def geometric_ladder(first: int, levels: int) -> list[int]:
    """first, 2·first, 4·first, …"""
    return [first * 2**j for j in range(levels)]


def log_slope_reference(h_values, error_at_largest: float, order: float):
    """Errors of an exact order-``order`` line through the coarsest point (for plots)."""
    h = np.asarray(h_values, dtype=float)
    return error_at_largest * (h / h.max()) ** order


def _finite(values) -> list[float]:
    return [float(v) if math.isfinite(float(v)) else float("nan") for v in values]


def affine_moments(solver_id: str, problem: GaussianData, times) -> tuple:
    """Exact mean and variance of the sampler's x_N for Gaussian data, through ``sample`` itself.

    The state is carried as an affine function of independent standard normals: row 0 holds the
    constant part, row 1 the start noise ξ, row 2 + i the noise z_i of step i. μ lives in row 0
    only, the exact data prediction is affine (gain·x + offset in row 0), and ``noise_fn``
    returns the unit vector of step i's row; so every linear step of the sampler acts on the
    rows exactly. Returns (mean, variance) per coordinate.
    """
    schedule = problem.schedule
    steps = len(times) - 1
    rows, dim = steps + 2, problem.mu.numel()
    f64 = torch.float64
    mean_T, var_T = problem.moments(times[0])
    x_T = torch.zeros(rows, dim, dtype=f64)
    x_T[0], x_T[1] = mean_T, var_T.sqrt()
    mu = torch.zeros(rows, dim, dtype=f64)
    mu[0] = problem.mu
    m = problem.mean_x0

    def model(x, t, mu_rows):
        t0 = t[:1]
        a, s = schedule.alpha(t0), schedule.sigma(t0)
        gain = problem.gain(a, s)
        out = gain * x
        out[0] = out[0] + m - gain * (problem.mu + a * problem.offset)
        return out

    def noise_fn(step, t_from, t_to, shape, dtype, device):
        z = torch.zeros(shape, dtype=dtype, device=device)
        z[2 + step] = 1.0
        return z

    info = solver_info(solver_id)
    options = {"lower_order_final": False} if info.family == "mrs" else {}
    sampler = make_sampler(solver_id, schedule, "data", noise_fn=noise_fn, **options)
    result = sampler.sample(model, mu, timesteps=times, x_T=x_T)
    x = result.x
    return x[0], (x[1:] ** 2).sum(dim=0)


def weak_study(solver_id: str, problem: GaussianData, ladder, lam_span: tuple[float, float]):
    """Weak errors max(|mean error|, |variance error|) of an SDE solver on a ladder of non-uniform
    λ grids, from exact moments. The MR Sampler's mean is exact (to round-off) for Gaussian data,
    so its weak error is the variance error; Euler–Maruyama's mean is not."""
    schedule = problem.schedule
    info = solver_info(solver_id)
    errors, mean_errors, h_values, nfes = [], [], [], []
    for steps in ladder:
        times = wobbly_lambda_times(schedule, *lam_span, steps)
        mean, var = affine_moments(solver_id, problem, times)
        exact_mean, exact_var = problem.moments(times[-1])
        var_error = float((var - exact_var).abs().max())
        mean_error = float((mean - exact_mean).abs().max())
        errors.append(max(var_error, mean_error))
        mean_errors.append(mean_error)
        h_values.append(h_max_of(schedule, times))
        nfes.append(info.nfe(steps))
    return h_values, errors, mean_errors, nfes


def ode_full_errors(
    solver_id, schedule, model, mu, x_T, ladder, lam_span, exact_end, model_prediction="data"
):
    """Global errors of ``sample`` (start included, lower_order_final off) on wobbly λ grids.

    ``model(x, t, mu)`` returns ``model_prediction`` ("data" for the oracles' models).
    """
    info = solver_info(solver_id)
    options = {"lower_order_final": False} if info.family == "mrs" else {}
    errors, h_values, nfes = [], [], []
    for steps in ladder:
        times = wobbly_lambda_times(schedule, *lam_span, steps)
        sampler = make_sampler(solver_id, schedule, model_prediction, **options)
        result = sampler.sample(model, mu, timesteps=times, x_T=x_T)
        errors.append(float((result.x - exact_end).abs().max()))
        h_values.append(h_max_of(schedule, times))
        nfes.append(result.nfe)
    return h_values, errors, nfes


def ode_kernel_errors(solver_id, schedule, model, mu, x_T, ladder, lam_span, exact_at):
    """Global errors of the multistep kernels alone, from an exact warm start.

    The first k − 1 states come from the exact path (``exact_at(times)`` gives x at each time);
    outputs there are the model on the exact path; then the k-step update runs to the end with
    the generated coefficients and [`linear_step`][mrs_numerics.solvers.kernels.linear_step].
    With a corrector (``…-unic``) every step but the last is the generated corrector update: the
    predictor, the model at the predicted state (the next step's m0) and the corrector.
    """
    method, order, prediction, corrector = parse_mrs_id(solver_id)
    ((function, _, _),) = multistep_update(method, prediction, order).stages
    corrected = corrector_update(method, prediction, order) if corrector else None
    errors, h_values, nfes = [], [], []
    for steps in ladder:
        times = wobbly_lambda_times(schedule, *lam_span, steps)
        lams, alphas, sigmas = schedule.lam(times), schedule.alpha(times), schedule.sigma(times)
        exact = exact_at(times)

        def output(x, i, alphas=alphas, sigmas=sigmas, times=times):
            t = torch.full((mu.shape[0],), float(times[i]), dtype=torch.float64)
            data = model(x, t, mu)
            a, s = alphas[i], sigmas[i]
            return parameterization.convert(
                data, "data", prediction, x, mu, a, s, schedule.max_sigma
            )

        history = [output(exact[i], i) for i in range(order - 1)][::-1]
        x = exact[order - 1]
        carried = None
        for i in range(order - 1, steps):
            history = [output(x, i) if carried is None else carried, *history][:order]
            h = lams[i + 1] - lams[i]
            ratios = [(lams[i - j + 1] - lams[i - j]) / h for j in range(1, order)]
            ends = (alphas[i], sigmas[i], alphas[i + 1], sigmas[i + 1])
            if corrected is None or i == steps - 1:
                x = linear_step(x, mu, history, coefficients(function, h, ratios, *ends))
                continue
            predictor, corrector_stage = corrected.stages
            c = coefficients(predictor.function, h, ratios, *ends)
            outputs = {f"m{j}": m for j, m in enumerate(history)}
            predicted = linear_step(x, mu, [outputs[label] for label in predictor.labels], c)
            carried = outputs[corrector_stage.labels[0]] = output(predicted, i + 1)
            c = coefficients(corrector_stage.function, h, ratios, *ends)
            x = linear_step(x, mu, [outputs[label] for label in corrector_stage.labels], c)
        errors.append(float((x - exact[-1]).abs().max()))
        h_values.append(h_max_of(schedule, times))
        nfes.append(steps - order + 1)
    return h_values, errors, nfes


REFERENCE_SOLVER = "mrs-sde-2-data"
"""The strong reference: this solver on a grid REFERENCE_REFINEMENT × finer than the finest rung."""
REFERENCE_REFINEMENT = 16


def strong_study(
    solver_ids,
    schedule,
    model,
    mu,
    x_T,
    coarsest: int,
    levels: int,
    lam_span: tuple[float, float],
    seed=0,
):
    """Root-mean-square pathwise errors of SDE solvers on nested grids sharing one Brownian path.

    Rung j refines a wobbly λ grid of ``coarsest`` steps 2^j times (uniformly in λ inside each
    coarse interval), so every rung is a subset of the reference grid and every coarse step's noise
    is the exact integral of the same fine path
    ([`CoupledBrownian`][mrs_numerics.solvers.brownian.CoupledBrownian]). Returns {solver: (h_max
    list, errors, nfe list, steps list)}.
    """
    base = wobbly_lambda_times(schedule, *lam_span, coarsest)
    rungs = [nested_grid(schedule, base, 2**j) for j in range(levels)]
    finest = nested_grid(schedule, base, 2 ** (levels - 1) * REFERENCE_REFINEMENT)
    path = CoupledBrownian(schedule, finest, tuple(x_T.shape), seed=seed)

    def run(solver_id, times):
        family = family_for(solver_id)
        options = {"lower_order_final": False} if solver_info(solver_id).family == "mrs" else {}
        sampler = make_sampler(
            solver_id, schedule, "data", noise_fn=path.noise_fn(family, times), **options
        )
        with warnings.catch_warnings():  # a ladder's coarse rungs are meant to be coarse
            warnings.simplefilter("ignore", InstabilityWarning)
            return sampler.sample(model, mu, timesteps=times, x_T=x_T)

    reference = run(REFERENCE_SOLVER, finest).x
    studies = {}
    for solver_id in solver_ids:
        h, errors, nfes, steps = [], [], [], []
        for times in rungs:
            result = run(solver_id, times)
            errors.append(float(((result.x - reference) ** 2).mean().sqrt()))
            h.append(h_max_of(schedule, times))
            nfes.append(result.nfe)
            steps.append(times.numel() - 1)
        studies[solver_id] = (h, errors, nfes, steps)
    return studies
