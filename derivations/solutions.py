"""The four semi-analytical solutions of the reverse MR equations, by variation of constants in λ.

Reverse-time equations (score s = −ε/σ):

    PF-ODE:  dx/dt = θ(μ − x) − ½ g² s,        reverse SDE:  dx = [θ(μ − x) − g² s] dt + g dw̄.

With dt = −σ²/(θΛ²) dλ ([`derivations.log_snr`][derivations.log_snr]) and y = x − μ they
become linear in y:

    ODE, noise:  dy/dλ = (σ²/Λ²) y − σ ε̂
    ODE, data:   dy/dλ = (σ²/Λ² − 1) y + α (x̂₀ − μ)
    SDE, noise:  dy = [(σ²/Λ²) y − 2σ ε̂] dλ + √2 σ dB_λ
    SDE, data:   dy = [(σ²/Λ² − 2) y + 2α (x̂₀ − μ)] dλ + √2 σ dB_λ

(the data forms substitute ε̂ = (y − α(x̂₀ − μ))/σ; B_λ is a Brownian motion in λ, since
|g² dt| = 2σ² dλ). For dy = (a y + b) dλ + γ dB, with F = exp ∫ a (the integrating factor),

    y_t = (F_t/F_s) y_s + F_t ∫_{λ_s}^{λ_t} b/F dλ + F_t ∫_{λ_s}^{λ_t} γ/F dB,

and the stochastic term is Gaussian with variance F_t² ∫ γ²/F² dλ (Itô isometry). Over a step
s → t with h = λ_t − λ_s and λ = λ_s + u, every network integral takes the form

    scale_t · ∫₀^h e^{κ(h − u)} m(λ_s + u) du,      m = ε̂ (noise form) or x̂₀ − μ (data form),

with (scale_t, κ) = (−σ_t, 1), (α_t, −1), (−2σ_t, 1), (2α_t, −2) for ODE-noise, ODE-data,
SDE-noise, SDE-data, and

    ODE-noise  x_t = μ + (α_t/α_s)(x_s − μ) − σ_t ∫₀^h e^{h−u} ε̂ du
    ODE-data   x_t = μ + (σ_t/σ_s)(x_s − μ) + α_t ∫₀^h e^{−(h−u)} (x̂₀ − μ) du
    SDE-noise  x_t = μ + (α_t/α_s)(x_s − μ) − 2σ_t ∫₀^h e^{h−u} ε̂ du + σ_t √(e^{2h} − 1) z
    SDE-data   x_t = μ + (σ_t/σ_s) e^{−h} (x_s − μ) + 2α_t ∫₀^h e^{−2(h−u)} (x̂₀ − μ) du
                                                                 + σ_t √(1 − e^{−2h}) z.

Each statement above is derived here and checked by the ``check_*`` functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import sympy as sp
from sympy.codegen.cfunctions import expm1

from derivations import forward, log_snr
from derivations.symbols import Lambda, h, lam, lam_s, mu, t, theta, u

METHODS = ("ode", "sde")
PREDICTIONS = ("noise", "data")

alpha_s, sigma_s, alpha_t, sigma_t = sp.symbols("alpha_s sigma_s alpha_t sigma_t", positive=True)
"""Schedule values at the two ends of a step: the generated step coefficients take these."""

x = sp.Symbol("x", real=True)
eps_hat = sp.Function("epsilon")
"""Noise prediction ε̂(λ) along the path."""
x0_hat = sp.Function("x0hat")
"""Data prediction x̂₀(λ) along the path."""
xi = sp.Function("xi")
"""A generic driving signal standing in for dB/dλ in the differentiation checks."""


@dataclass(frozen=True)
class LinearEquation:
    """dy/dλ = a(λ) y + b(λ) + γ(λ) ξ(λ), with y = x − μ (γ = 0 for the PF-ODE)."""

    a: sp.Expr
    b: sp.Expr
    gamma: sp.Expr


@dataclass(frozen=True)
class StepSolution:
    """Exact solution over one step s → t, written with α_s, σ_s, α_t, σ_t and h.

    x_t − μ = x_coefficient (x_s − μ) + scale ∫₀^h e^{κ(h−u)} m(λ_s + u) du + noise_std z.
    """

    method: str
    prediction: str
    x_coefficient: sp.Expr
    scale: sp.Expr
    kappa: sp.Integer
    noise_std: sp.Expr


def _sigma(at=lam):
    return log_snr.sigma_of_lam().subs(lam, at)


def _alpha(at=lam):
    return log_snr.alpha_of_lam().subs(lam, at)


def network_output(prediction: str, at=lam) -> sp.Expr:
    """m(λ): ε̂(λ) for the noise form, x̂₀(λ) − μ for the data form."""
    _check_names("ode", prediction)
    return eps_hat(at) if prediction == "noise" else x0_hat(at) - mu


def reverse_drift_in_t(method: str) -> sp.Expr:
    """Drift of the reverse equation in t with s = −ε̂/σ: θ(μ − x) − c g² s, c = ½ (ODE) or 1."""
    _check_names(method, "noise")
    weight = sp.Rational(1, 2) if method == "ode" else 1
    score = -eps_hat(lam) / forward.sigma()
    return theta(t) * (mu - x) - weight * forward.g_squared() * score


def drift_in_lam(method: str) -> sp.Expr:
    """Reverse drift divided by dλ/dt: the noise-form equation in λ (before simplification)."""
    return reverse_drift_in_t(method) / log_snr.dlam_dt()


@cache
def linear_equation(method: str, prediction: str) -> LinearEquation:
    """The λ-equation of (method, prediction) as a `LinearEquation` in y = x − μ.

    Read off from [`drift_in_lam`][derivations.solutions.drift_in_lam] (coefficient of x and the
    rest), expressed in λ through σ(λ), α(λ); the data form substitutes ε̂ = (y − α(x̂₀ − μ))/σ.
    """
    _check_names(method, prediction)
    y = sp.Symbol("y", real=True)
    big_theta = sp.Symbol("Theta", positive=True)
    drift = drift_in_lam(method).subs(forward.Theta(), big_theta).subs(x, y + mu)
    drift = sp.expand(sp.simplify(drift))
    a_t = drift.coeff(y)
    b_t = sp.simplify(drift - a_t * y)
    a = sp.simplify(_rewrite_in_lam(a_t, big_theta))
    b = sp.simplify(_rewrite_in_lam(b_t, big_theta))
    gamma = sp.sqrt(2) * _sigma() if method == "sde" else sp.Integer(0)
    if prediction == "data":
        eps_from_data = (y - _alpha() * (x0_hat(lam) - mu)) / _sigma()
        full = sp.expand(a * y + b.subs(eps_hat(lam), eps_from_data))
        a = sp.simplify(full.coeff(y))
        b = sp.simplify(full - full.coeff(y) * y)
    return LinearEquation(a=a, b=b, gamma=gamma)


def _rewrite_in_lam(expr: sp.Expr, big_theta: sp.Symbol) -> sp.Expr:
    """Express a function of Θ in λ, through e^{−Θ} = α(λ)."""
    return expr.subs(big_theta, -sp.log(_alpha()))


def integrating_factor(method: str, prediction: str) -> sp.Expr:
    """F(λ) = exp ∫ a(λ) dλ (any constant multiple: only ratios enter)."""
    return sp.simplify(sp.exp(sp.integrate(linear_equation(method, prediction).a, lam)))


def solution(method: str, prediction: str) -> sp.Expr:
    """y(λ) by variation of constants from y(λ_s) = y_s, noise written as ∫ γ/F ξ dλ."""
    eq = linear_equation(method, prediction)
    F = integrating_factor(method, prediction)
    y_s, v = sp.Symbol("y_s", real=True), sp.Symbol("v", real=True)
    ratio = F / F.subs(lam, lam_s)
    drift_part = F * sp.Integral((eq.b / F).subs(lam, v), (v, lam_s, lam))
    noise_part = F * sp.Integral((eq.gamma / F * xi(lam)).subs(lam, v), (v, lam_s, lam))
    return ratio * y_s + drift_part + noise_part


def check_solution_solves_equation(method: str, prediction: str) -> sp.Expr:
    """dy/dλ − (a y + b + γ ξ) for `solution`, plus y(λ_s) − y_s (zero when it solves)."""
    eq = linear_equation(method, prediction)
    y = solution(method, prediction)
    residual = sp.simplify(y.diff(lam) - (eq.a * y + eq.b + eq.gamma * xi(lam)))
    start = sp.simplify(y.subs(lam, lam_s).doit() - sp.Symbol("y_s", real=True))
    return residual + start


def check_lam_equation(method: str, prediction: str) -> sp.Expr:
    """a − stated a, b − stated b, γ² − 2σ²·[SDE], summed in squares (zero when as stated)."""
    eq = linear_equation(method, prediction)
    ratio = _sigma() ** 2 / Lambda**2
    factor = 1 if method == "ode" else 2
    if prediction == "noise":
        a, b = ratio, -factor * _sigma() * eps_hat(lam)
    else:
        a, b = ratio - factor, factor * _alpha() * (x0_hat(lam) - mu)
    gamma2 = 2 * _sigma() ** 2 if method == "sde" else 0
    return sp.simplify((eq.a - a) ** 2 + (eq.b - b) ** 2 + (eq.gamma**2 - gamma2) ** 2)


@cache
def step_solution(method: str, prediction: str) -> StepSolution:
    """The stated step form of the solution (see the module docstring)."""
    _check_names(method, prediction)
    if method == "ode" and prediction == "noise":
        return StepSolution(method, prediction, alpha_t / alpha_s, -sigma_t, sp.Integer(1), 0)
    if method == "ode":
        return StepSolution(method, prediction, sigma_t / sigma_s, alpha_t, sp.Integer(-1), 0)
    if prediction == "noise":
        std = sigma_t * sp.sqrt(expm1(2 * h))
        return StepSolution(method, prediction, alpha_t / alpha_s, -2 * sigma_t, sp.Integer(1), std)
    std = sigma_t * sp.sqrt(-expm1(-2 * h))
    coefficient = sigma_t / sigma_s * sp.exp(-h)
    return StepSolution(method, prediction, coefficient, 2 * alpha_t, sp.Integer(-2), std)


def _step_values() -> dict:
    """α, σ at λ_s and λ_t = λ_s + h, as functions of λ."""
    return {
        alpha_s: _alpha(lam_s),
        sigma_s: _sigma(lam_s),
        alpha_t: _alpha(lam_s + h),
        sigma_t: _sigma(lam_s + h),
    }


def check_step_x_coefficient(method: str, prediction: str) -> sp.Expr:
    """F(λ_t)/F(λ_s) − stated x coefficient (zero when they agree)."""
    F = integrating_factor(method, prediction)
    derived = F.subs(lam, lam_s + h) / F.subs(lam, lam_s)
    stated = step_solution(method, prediction).x_coefficient.subs(_step_values())
    return sp.simplify(derived - stated)


def check_step_kernel(method: str, prediction: str) -> sp.Expr:
    """F(λ_t)·(b/m)/F at λ_s + u − scale·e^{κ(h−u)} (zero when the kernel is as stated).

    b/m is the coefficient of the network output m in b(λ).
    """
    eq = linear_equation(method, prediction)
    F = integrating_factor(method, prediction)
    weight = sp.simplify(eq.b / network_output(prediction))
    derived = F.subs(lam, lam_s + h) * (weight / F).subs(lam, lam_s + u)
    step = step_solution(method, prediction)
    stated = step.scale.subs(_step_values()) * sp.exp(step.kappa * (h - u))
    return sp.simplify(derived - stated)


def ito_variance(method: str, prediction: str) -> sp.Expr:
    """F_t² ∫_{λ_s}^{λ_t} γ²/F² dλ: the variance of the stochastic term (Itô isometry)."""
    eq = linear_equation(method, prediction)
    F = integrating_factor(method, prediction)
    v = sp.Symbol("v", real=True)
    integral = sp.integrate(sp.simplify((eq.gamma**2 / F**2).subs(lam, v)), (v, lam_s, lam_s + h))
    return sp.simplify(F.subs(lam, lam_s + h) ** 2 * integral)


def check_noise_variance(method: str, prediction: str) -> sp.Expr:
    """Itô variance − stated noise_std² (zero when the closed-form variance is right)."""
    stated = (step_solution(method, prediction).noise_std ** 2).rewrite(sp.exp)
    return sp.simplify(ito_variance(method, prediction) - stated.subs(_step_values()))


def _check_names(method: str, prediction: str) -> None:
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; allowed: {', '.join(METHODS)}")
    if prediction not in PREDICTIONS:
        raise ValueError(f"unknown prediction {prediction!r}; allowed: {', '.join(PREDICTIONS)}")
