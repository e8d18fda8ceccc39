"""The half log-SNR λ = log(α/σ), its inverse, and the change of variables t → λ.

From σ² = Λ²(1 − α²) and e^{2λ} = α²/σ²:

    σ(λ) = Λ / sqrt(1 + Λ² e^{2λ}),      α(λ) = e^{λ} σ(λ),
    dλ/dt = −θ Λ²/σ²,                    hence   g² dt = −2 σ² dλ,
    d log α / dλ = σ²/Λ² = 1 − α²,        d log σ / dλ = σ²/Λ² − 1.

λ decreases in t, so a reverse-time step s → t (s > t) has h = λ_t − λ_s > 0.
"""

from __future__ import annotations

from functools import cache

import sympy as sp

from derivations import forward
from derivations.symbols import Lambda, lam, t, theta


def lam_of_t() -> sp.Expr:
    """λ(t) = log α(t) − log σ(t) for a general θ."""
    return sp.log(forward.alpha()) - sp.log(forward.sigma())


@cache
def sigma_of_lam() -> sp.Expr:
    """σ(λ), solved from e^{2λ} = (1 − σ²/Λ²)/σ² for σ > 0."""
    s = sp.Symbol("sigma", positive=True)
    roots = sp.solve(sp.Eq(sp.exp(2 * lam), (1 - s**2 / Lambda**2) / s**2), s)
    (root,) = [r for r in roots if r.is_positive is not False]
    return sp.simplify(root)


def alpha_of_lam() -> sp.Expr:
    """α(λ) = e^{λ} σ(λ)."""
    return sp.exp(lam) * sigma_of_lam()


def dlog_alpha_dlam() -> sp.Expr:
    """d log α / dλ, computed from α(λ)."""
    return sp.simplify(sp.log(alpha_of_lam()).diff(lam))


def dlog_sigma_dlam() -> sp.Expr:
    """d log σ / dλ, computed from σ(λ)."""
    return sp.simplify(sp.log(sigma_of_lam()).diff(lam))


def dlam_dt() -> sp.Expr:
    """dλ/dt from λ(t), with the integral of θ left general."""
    return lam_of_t().diff(t)


def check_sigma_of_lam() -> sp.Expr:
    """σ(λ) − Λ/sqrt(1 + Λ² e^{2λ}) (zero when the stated inverse is the derived one)."""
    return sp.simplify(sigma_of_lam() - Lambda / sp.sqrt(1 + Lambda**2 * sp.exp(2 * lam)))


def check_inverse() -> sp.Expr:
    """(σ(λ(t))² − σ(t)²)² + (α(λ(t))² − α(t)²)² (zero when λ is inverted).

    Squares are compared because both sides are positive; Θ(t) is a positive symbol.
    """
    big_theta = sp.Symbol("Theta", positive=True)
    as_theta = {forward.Theta(): big_theta}
    at_t = {lam: lam_of_t().subs(as_theta)}
    d_sigma = sigma_of_lam().subs(at_t) ** 2 - forward.sigma().subs(as_theta) ** 2
    d_alpha = alpha_of_lam().subs(at_t) ** 2 - forward.alpha().subs(as_theta) ** 2
    return sp.simplify(d_sigma**2 + d_alpha**2)


def check_g2_dt_identity() -> sp.Expr:
    """g² + 2σ² dλ/dt (zero when g² dt = −2σ² dλ)."""
    return sp.simplify(forward.g_squared() + 2 * forward.sigma() ** 2 * dlam_dt())


def check_dlam_dt() -> sp.Expr:
    """dλ/dt + θ Λ²/σ² (zero when the stated rate holds)."""
    return sp.simplify(dlam_dt() + theta(t) * Lambda**2 / forward.sigma() ** 2)


def check_log_derivatives() -> sp.Expr:
    """(d log α/dλ − σ²/Λ²)² + (d log σ/dλ − σ²/Λ² + 1)² in terms of σ(λ)."""
    ratio = sigma_of_lam() ** 2 / Lambda**2
    da = sp.simplify(dlog_alpha_dlam() - ratio)
    ds = sp.simplify(dlog_sigma_dlam() - ratio + 1)
    return sp.simplify(da**2 + ds**2)
