"""Exponential-integrator φ-functions: definition, identities and a stable evaluation plan.

    φ_k(z) = ∫₀¹ e^{(1−τ) z} τ^{k−1}/(k−1)! dτ = (e^z − Σ_{j<k} z^j/j!) / z^k,   φ_k(0) = 1/k!

They are the exact weights of a Taylor expansion under an exponential kernel:

    ∫₀^E e^{a (E − u)} u^n/n! du = E^{n+1} φ_{n+1}(a E)                      (``kernel_moment``)

The closed form cancels catastrophically for small |z| (φ_3(1e-8) loses every digit), so the
generated code evaluates a truncated Taylor series Σ_j z^j/(j+k)! for |z| < ``SERIES_RADIUS``
and the closed form with ``expm1`` elsewhere. ``series_terms`` picks the number of terms so the
truncation is below float64 round-off on the whole disc.
"""

from __future__ import annotations

import math
from functools import cache

import sympy as sp
from sympy.codegen.cfunctions import expm1

MAX_ORDER = 4
"""φ_1 … φ_MAX_ORDER are generated: enough for fourth-order updates (the order-3 multistep
predictor with its corrector interpolates four outputs)."""

SERIES_RADIUS = 2
"""|z| below which the Taylor series is used; at |z| = 2 the stable closed form cancels at most a
factor ≈ 2.7 for φ_3 and ≈ 6 for φ_4 (at z = +2), so both branches stay within a few ulp (float64)
and ≤ 1e-6 (float32)."""

TRUNCATION_TOLERANCE = sp.Rational(1, 10**18)
"""Relative bound on the dropped tail of the series on |z| ≤ SERIES_RADIUS."""


class Phi(sp.Function):
    """φ_k(z), the k-th exponential-integrator function (k ≥ 1 an integer)."""

    nargs = 2

    @classmethod
    def eval(cls, k, z):
        if k.is_Integer and z.is_zero:
            return sp.Rational(1, sp.factorial(k))
        return None

    def _eval_rewrite_as_exp(self, k, z, **kwargs):
        return phi_closed_form(int(k), z)

    def _latex(self, printer):
        k, z = self.args
        return rf"\varphi_{{{printer._print(k)}}}\left({printer._print(z)}\right)"


def phi_closed_form(k: int, z: sp.Expr) -> sp.Expr:
    """(e^z − Σ_{j<k} z^j/j!) / z^k."""
    return (sp.exp(z) - sum(z**j / sp.factorial(j) for j in range(k))) / z**k


def phi_integral_form(k: int, z: sp.Expr) -> sp.Expr:
    """∫₀¹ e^{(1−τ)z} τ^{k−1}/(k−1)! dτ, the definition."""
    tau = sp.Symbol("tau", positive=True)
    return sp.Integral(sp.exp((1 - tau) * z) * tau ** (k - 1) / sp.factorial(k - 1), (tau, 0, 1))


def phi_series(k: int, z: sp.Expr, terms: int) -> sp.Expr:
    """Σ_{j<terms} z^j/(j+k)!: the Taylor polynomial of φ_k (exact as a formal series)."""
    return sum(z**j / sp.factorial(j + k) for j in range(terms))


def phi_stable_closed_form(k: int, z: sp.Expr) -> sp.Expr:
    """(expm1(z) − Σ_{1≤j<k} z^j/j!) / z^k: the closed form without the leading cancellation."""
    return (expm1(z) - sum(z**j / sp.factorial(j) for j in range(1, k))) / z**k


def kernel_moment(a: sp.Expr, end: sp.Expr, n: int) -> sp.Expr:
    """E^{n+1} φ_{n+1}(aE) = ∫₀^E e^{a(E−u)} u^n/n! du."""
    return end ** (n + 1) * Phi(n + 1, a * end)


@cache
def series_terms(k: int) -> int:
    """Number of series terms whose dropped tail is below TRUNCATION_TOLERANCE · φ_k on the disc.

    The tail Σ_{j≥N} |z|^j/(j+k)! is bounded by R^N/(N+k)! · 1/(1 − R/(N+k+1)), and φ_k is
    smallest on the disc at z = −R.
    """
    radius = SERIES_RADIUS
    smallest = float(phi_closed_form(k, sp.Integer(-radius)))
    n = 1
    while True:
        tail = radius**n / math.factorial(n + k) / (1 - radius / (n + k + 1))
        if tail < float(TRUNCATION_TOLERANCE) * smallest:
            return n
        n += 1


def check_closed_form_matches_definition(k: int) -> sp.Expr:
    """Closed form − integral definition, simplified (zero when the identity holds)."""
    z = sp.Symbol("z", nonzero=True)
    return sp.simplify(phi_integral_form(k, z).doit() - phi_closed_form(k, z))


def check_kernel_moment(n: int) -> sp.Expr:
    """∫₀^E e^{a(E−u)} u^n/n! du − E^{n+1} φ_{n+1}(aE), simplified (zero when it holds)."""
    a = sp.Symbol("a", nonzero=True)
    end = sp.Symbol("E", positive=True)
    u = sp.Symbol("u", positive=True)
    exact = sp.integrate(sp.exp(a * (end - u)) * u**n / sp.factorial(n), (u, 0, end))
    moment = kernel_moment(a, end, n).rewrite(sp.exp)
    return sp.simplify(exact - moment)


def check_recurrence(k: int) -> sp.Expr:
    """φ_{k+1}(z) − (φ_k(z) − 1/k!)/z, simplified (zero when the recurrence holds)."""
    z = sp.Symbol("z", nonzero=True)
    lhs = phi_closed_form(k + 1, z)
    rhs = (phi_closed_form(k, z) - sp.Rational(1, sp.factorial(k))) / z
    return sp.simplify(lhs - rhs)
