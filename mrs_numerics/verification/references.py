"""High-precision PF-ODE references (scipy, float64) to measure sampler errors against.

The MR PF-ODE dx/dt = θ(μ − x) + ½ g² ε̂/σ is integrated in the half log-SNR λ instead of t:
with θ dt = −(σ²/Λ²) dλ and g² dt = −2σ² dλ it reads

    dx/dλ = (σ²/Λ²)(x − μ) − σ ε̂(x, t(λ), μ),

whose coefficients are bounded and smooth in λ (σ²/Λ² = 1 − α² ∈ [0, 1], σ ≤ Λ). In t the equation
is stiff near t → 0: ½ g²/σ² ~ θ/(1 − α²) blows up as σ → 0 (see [Stiffness near t →
0](../theory.md#stiffness-near-t-0)), so an adaptive solver in t spends its steps there and loses
accuracy; in λ the same stretch is a smooth, slowly varying problem. σ(λ), α(λ) are evaluated from λ
in closed form (Θ(λ) = ½ log1p(e^{−2λ}/Λ²)), and the model gets t(λ) = ``schedule.t_of_lam(λ)`` as a
float64 tensor, never rounded to a Python float.

A whole batch is one state vector (the model is vectorised), so one solver run covers every
sample. A reference ends at finite λ: an end time with σ = 0 (λ = +∞) is refused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.integrate import solve_ivp

from mrs_numerics._generated import marginal_torch as _marginal
from mrs_numerics._warn import warn
from mrs_numerics.solvers import parameterization

REFERENCE_TOLERANCE = 1e-10
"""Tolerances above this give a solution not accurate enough to be called a reference (warns)."""


@dataclass
class Reference:
    """A PF-ODE reference: ``x`` at ``t_end`` (float64, x_start's shape) and solver statistics."""

    x: torch.Tensor
    nfev: int
    success: bool
    message: str
    lam_start: float
    lam_end: float


@dataclass
class ReferenceTrajectory:
    """PF-ODE reference at several ``times``: ``xs`` [len(times), *x_start.shape] (float64)."""

    times: torch.Tensor
    xs: torch.Tensor
    nfev: int
    success: bool
    message: str


def _noise_fn(oracle_or_model, schedule, prediction: str | None):
    """ε̂(x, t, μ) in float64: an oracle's ``noise``, or a model's output converted to noise."""
    if hasattr(oracle_or_model, "noise") and callable(oracle_or_model.noise):
        return oracle_or_model.noise
    declared = getattr(oracle_or_model, "prediction", None)
    if prediction is None:
        prediction = declared or "noise"
    elif declared is not None and declared != prediction:
        raise ValueError(f"the model declares prediction {declared!r} but {prediction!r} was given")
    parameterization.check_prediction(prediction)
    max_sigma = float(schedule.max_sigma)

    def noise(x, t, mu):
        out = oracle_or_model(x, t, mu).to(torch.float64)
        alpha = schedule.alpha(t).reshape((-1,) + (1,) * (x.dim() - 1))
        sigma = schedule.sigma(t).reshape((-1,) + (1,) * (x.dim() - 1))
        return parameterization.to_noise(out, prediction, x, mu, alpha, sigma, max_sigma)

    return noise


def _finite_lam(schedule, t: float | torch.Tensor, which: str) -> float:
    lam = float(schedule.lam(torch.as_tensor(t, dtype=torch.float64)))
    if not math.isfinite(lam):
        raise ValueError(
            f"the {which} time t = {t!r} has σ = 0 (λ = {lam}): PF-ODE references run between "
            "finite λ; choose a time with σ > 0"
        )
    return lam


def _check_tolerances(rtol: float, atol: float) -> None:
    if rtol > REFERENCE_TOLERANCE or atol > REFERENCE_TOLERANCE:
        warn(
            f"rtol = {rtol:g}, atol = {atol:g}: tolerances above {REFERENCE_TOLERANCE:g} do not "
            "make a reference solution"
        )


class _LambdaSystem:
    """The batch PF-ODE in λ as a flat float64 numpy right-hand side for scipy."""

    def __init__(self, noise, schedule, x_start: torch.Tensor, mu: torch.Tensor):
        self.noise, self.schedule = noise, schedule
        self.shape = x_start.shape
        self.mu = torch.broadcast_to(mu.to(torch.float64), self.shape)
        self.max_sigma = torch.tensor(float(schedule.max_sigma), dtype=torch.float64)

    def __call__(self, lam: float, state: np.ndarray) -> np.ndarray:
        lam_t = torch.tensor(lam, dtype=torch.float64)
        t = self.schedule.t_of_lam(lam_t).expand(self.shape[0])
        sigma = _marginal.sigma_of_Theta(
            _marginal.Theta_of_lam(lam_t, self.max_sigma), self.max_sigma
        )
        x = torch.from_numpy(state).reshape(self.shape)
        eps = self.noise(x, t, self.mu).to(torch.float64)
        drift = (sigma / self.max_sigma) ** 2 * (x - self.mu) - sigma * eps
        return drift.reshape(-1).numpy()


def _prepare(oracle_or_model, schedule, x_start, mu, rtol, atol, prediction):
    _check_tolerances(rtol, atol)
    x_start = torch.as_tensor(x_start, dtype=torch.float64).cpu()
    mu = torch.as_tensor(mu, dtype=torch.float64).cpu()
    if x_start.dim() < 1:
        raise ValueError("x_start must have shape [batch, ...]")
    noise = _noise_fn(oracle_or_model, schedule, prediction)
    return x_start, _LambdaSystem(noise, schedule, x_start, mu)


def pf_ode_reference(
    oracle_or_model,
    schedule,
    x_start,
    mu,
    t_start: float | torch.Tensor,
    t_end: float | torch.Tensor,
    rtol: float = 1e-12,
    atol: float = 1e-12,
    method: str = "DOP853",
    prediction: str | None = None,
) -> Reference:
    """x at ``t_end`` on the PF-ODE through (x_start, t_start), integrated in λ.

    See the module description for why λ. The model is called with float64 CPU tensors; both
    directions in time are allowed.

    Args:
        oracle_or_model: An object with ``noise(x, t, mu)`` (an oracle, e.g.
            [`GaussianMixtureOracle`][mrs_numerics.verification.oracles.GaussianMixtureOracle]),
            or a callable ``model(x, t, mu)`` returning the ``prediction``.
        schedule: The MR schedule.
        x_start: The state at ``t_start``, ``[batch, ...]`` (cast to float64).
        mu: The condition μ, broadcastable to ``x_start``.
        t_start: The start time (σ > 0).
        t_end: The end time (σ > 0: a reference ends at finite λ).
        rtol: scipy's relative tolerance (above ``REFERENCE_TOLERANCE`` it warns).
        atol: scipy's absolute tolerance (likewise).
        method: The ``scipy.integrate.solve_ivp`` method.
        prediction: What a model returns: ``"noise"``, ``"data"``, ``"velocity"`` or
            ``"score"``; default the model's own ``prediction`` attribute, else ``"noise"``.
            Ignored for an oracle.

    Returns:
        The [`Reference`][mrs_numerics.verification.references.Reference]: x at ``t_end``
        (float64, ``x_start``'s shape) and solver statistics; ``nfev`` counts right-hand-side
        evaluations, i.e. batched model calls.

    Raises:
        ValueError: If a time has σ = 0, ``x_start`` has no batch dimension, or ``prediction``
            contradicts the model's own.
    """
    x_start, system = _prepare(oracle_or_model, schedule, x_start, mu, rtol, atol, prediction)
    lam_start = _finite_lam(schedule, t_start, "start")
    lam_end = _finite_lam(schedule, t_end, "end")
    if lam_start == lam_end:
        return Reference(x_start.clone(), 0, True, "empty interval", lam_start, lam_end)
    solution = solve_ivp(
        system,
        (lam_start, lam_end),
        x_start.reshape(-1).numpy(),
        method=method,
        rtol=rtol,
        atol=atol,
    )
    if not solution.success:
        warn(f"the reference solver failed: {solution.message}")
    x = torch.from_numpy(solution.y[:, -1].copy()).reshape(x_start.shape)
    return Reference(
        x, int(solution.nfev), bool(solution.success), solution.message, lam_start, lam_end
    )


def pf_ode_reference_times(
    oracle_or_model,
    schedule,
    x_start,
    mu,
    t_start: float,
    times,
    rtol: float = 1e-12,
    atol: float = 1e-12,
    method: str = "DOP853",
    prediction: str | None = None,
    dense: bool = False,
) -> ReferenceTrajectory:
    """The PF-ODE solution through (x_start, t_start) at each of ``times`` (monotone, one side).

    ``dense=False`` (default) integrates segment by segment so that every time is a solver end point
    (each value as accurate as
    [`pf_ode_reference`][mrs_numerics.verification.references.pf_ode_reference]); ``dense=True``
    makes one run and reads the times off the solver's dense output (fewer evaluations; the
    interpolant of DOP853 is of order 7, so it is a little less accurate than the step end points).
    """
    x_start, system = _prepare(oracle_or_model, schedule, x_start, mu, rtol, atol, prediction)
    times = torch.as_tensor(times, dtype=torch.float64).flatten()
    lam_start = _finite_lam(schedule, t_start, "start")
    lams = [_finite_lam(schedule, float(t), "requested") for t in times]
    steps = np.diff([lam_start, *lams])
    if not (np.all(steps >= 0) or np.all(steps <= 0)):
        raise ValueError("times must be monotone and on one side of t_start")
    if dense:
        xs, nfev, success, message = _dense_run(
            system, x_start, lam_start, lams, rtol, atol, method
        )
    else:
        xs, nfev, success, message = _segment_runs(
            system, x_start, lam_start, lams, rtol, atol, method
        )
    if not success:
        warn(f"the reference solver failed: {message}")
    return ReferenceTrajectory(times, torch.stack(xs), nfev, success, message)


def _dense_run(system, x_start, lam_start, lams, rtol, atol, method):
    if lams[-1] == lam_start:
        return [x_start.clone() for _ in lams], 0, True, "empty interval"
    solution = solve_ivp(
        system,
        (lam_start, lams[-1]),
        x_start.reshape(-1).numpy(),
        method=method,
        t_eval=lams,
        rtol=rtol,
        atol=atol,
    )
    xs = [
        torch.from_numpy(solution.y[:, i].copy()).reshape(x_start.shape) for i in range(len(lams))
    ]
    return xs, int(solution.nfev), bool(solution.success), solution.message


def _segment_runs(system, x_start, lam_start, lams, rtol, atol, method):
    xs, nfev, messages = [], 0, []
    state, lam_now = x_start.reshape(-1).numpy(), lam_start
    for lam in lams:
        if lam != lam_now:
            solution = solve_ivp(system, (lam_now, lam), state, method=method, rtol=rtol, atol=atol)
            nfev += int(solution.nfev)
            if not solution.success:
                missing = torch.full(x_start.shape, math.nan, dtype=torch.float64)
                return xs + [missing] * (len(lams) - len(xs)), nfev, False, solution.message
            messages.append(solution.message)
            state, lam_now = solution.y[:, -1].copy(), lam
        xs.append(torch.from_numpy(state.copy()).reshape(x_start.shape))
    return xs, nfev, True, messages[-1] if messages else "empty interval"
