"""The forward MR SDE and its Gaussian marginal, for a general θ(t).

    dx = θ(t) (μ − x) dt + g(t) dw,     g(t)² = 2 Λ² θ(t)          (MR constraint)

The mean m and variance v of x_t | x_0 obey the moment ODEs

    m' = θ (μ − m),  m(0) = x_0;          v' = −2θ v + g²,  v(0) = 0,

whose solutions, with Θ(t) = ∫₀ᵗ θ and α = e^{−Θ}, are m = (1 − α) μ + α x_0 and
v = Λ² (1 − α²) = σ². Hence x_t = (1 − α_t) μ + α_t x_0 + σ_t ε with ε ~ N(0, I), and
x_t → N(μ, Λ² I) as Θ → ∞.
"""

from __future__ import annotations

from functools import cache

import sympy as sp

from derivations.symbols import Lambda, mu, t, tau, theta, x0


def g_squared() -> sp.Expr:
    """g(t)² = 2 Λ² θ(t)."""
    return 2 * Lambda**2 * theta(t)


def Theta() -> sp.Expr:
    """Θ(t) = ∫₀ᵗ θ(τ) dτ (unevaluated: θ is general)."""
    return sp.Integral(theta(tau), (tau, 0, t))


def alpha() -> sp.Expr:
    """α(t) = exp(−Θ(t))."""
    return sp.exp(-Theta())


def sigma() -> sp.Expr:
    """σ(t) = Λ sqrt(1 − α(t)²)."""
    return Lambda * sp.sqrt(1 - alpha() ** 2)


def marginal_mean() -> sp.Expr:
    """E[x_t | x_0] = (1 − α_t) μ + α_t x_0."""
    return (1 - alpha()) * mu + alpha() * x0


def marginal_variance() -> sp.Expr:
    """Var[x_t | x_0] = σ_t² = Λ² (1 − α_t²)."""
    return sigma() ** 2


@cache
def solve_moment_odes() -> tuple[sp.Expr, sp.Expr]:
    """Solve the mean and variance ODEs with ``dsolve``; return (m(t), v(t)).

    ``dsolve`` returns antiderivatives of θ; they are rewritten as the definite Θ(t) so the result
    can be compared with [`marginal_mean`][derivations.forward.marginal_mean] and
    [`marginal_variance`][derivations.forward.marginal_variance].
    """
    m, v = sp.Function("m"), sp.Function("v")
    mean = sp.dsolve(sp.Eq(m(t).diff(t), theta(t) * (mu - m(t))), m(t), ics={m(0): x0}).rhs
    var = sp.dsolve(
        sp.Eq(v(t).diff(t), -2 * theta(t) * v(t) + g_squared()), v(t), ics={v(0): 0}
    ).rhs
    return _definite(mean), _definite(var)


def _definite(expr: sp.Expr) -> sp.Expr:
    """Replace dsolve's antiderivative A(t) and its value A(0) by Θ(t) + A(0) and A(0)."""
    antiderivative = sp.Function("A")
    expr = expr.replace(
        lambda e: isinstance(e, sp.Integral) and e.limits[0] == (t, 0),
        lambda e: antiderivative(0),
    )
    expr = expr.replace(
        lambda e: isinstance(e, sp.Integral) and e.limits[0] == (t,),
        lambda e: Theta() + antiderivative(0),
    )
    return sp.simplify(expr)


def check_solved_mean() -> sp.Expr:
    """dsolve's mean − the claimed marginal mean (zero when they agree)."""
    return sp.simplify(solve_moment_odes()[0] - marginal_mean())


def check_solved_variance() -> sp.Expr:
    """dsolve's variance − the claimed σ² (zero when they agree)."""
    return sp.simplify(sp.expand(solve_moment_odes()[1] - marginal_variance()))


def check_mean_ode() -> sp.Expr:
    """m' − θ(μ − m) for the claimed mean, plus m(0) − x_0 (zero when both hold)."""
    m = marginal_mean()
    residual = sp.simplify(m.diff(t) - theta(t) * (mu - m))
    return residual + sp.simplify(m.subs(t, 0).doit() - x0)


def check_variance_ode() -> sp.Expr:
    """v' + 2θ v − g², plus v(0) (zero when both hold)."""
    v = marginal_variance()
    residual = sp.simplify(v.diff(t) + 2 * theta(t) * v - g_squared())
    return residual + sp.simplify(v.subs(t, 0).doit())
