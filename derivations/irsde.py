"""IR-SDE's discrete schedule tables as SymPy expressions in the table index.
The definitions are those of [IR-SDE tables](../../theory.md#ir-sde-tables).

Arrays of length T + 1, index i = 0 … T (T = 100, Λ = 50/255, ε = 0.005 in the published
configs):

- cosine (s = 0.008): n = T + 2, ā_k = cos²(((k/n) + s)/(1 + s)·π/2) / cos²((s/(1 + s))·π/2),
  θ_i = 1 − ā_{i+1};
- linear: θ = linspace(1e−4·c, 0.02·c, T + 1), c = 1000/(T + 1), i.e. θ_i = c (1e−4 + (0.02 −
  1e−4) i/T);
- constant: θ_i = 1;
- S_i = Σ_{j≤i} θ_j − θ₀ (IR-SDE and DA-CLIP training, ``theta0_offset=True``: α₀ = 1, σ₀ = 0,
  λ₀ = +∞) or Σ_{j≤i} θ_j (the official MRS code, ``theta0_offset=False``: λ₀ finite);
- dt = −log(ε)/S_T, α_i = exp(−S_i dt), σ_i = Λ sqrt(1 − α_i²), λ_i = log α_i − log σ_i.

The time unit is the index: θ per unit index is θ_i·dt, and Θ(i) = S_i·dt, so α, σ and λ are
the continuous formulas of `derivations.schedules` at Θ = S·dt.
"""

from __future__ import annotations

import sympy as sp

from derivations import schedules

i = sp.Symbol("i", integer=True, nonnegative=True)
"""Table index."""
T = sp.Symbol("T", integer=True, positive=True)
"""Last index (the number of training steps)."""
COSINE_S = schedules.COSINE_S
LINEAR_START = sp.Rational(1, 10**4)
LINEAR_END = sp.Rational(2, 100)

_j = sp.Symbol("j", integer=True, nonnegative=True)


def cosine_abar(k: sp.Expr, n: sp.Expr, s: sp.Expr = COSINE_S) -> sp.Expr:
    """ā_k = cos²(((k/n) + s)/(1 + s)·π/2) / ā₀-normalisation cos²((s/(1 + s))·π/2)."""
    return sp.cos((k / n + s) / (1 + s) * sp.pi / 2) ** 2 / sp.cos(s / (1 + s) * sp.pi / 2) ** 2


def cosine_theta_definition(index: sp.Expr = i, last: sp.Expr = T) -> sp.Expr:
    """θ_i = 1 − ā_{i+1} with n = T + 2, as the IR-SDE code defines it."""
    return 1 - cosine_abar(index + 1, last + 2)


def cosine_theta(index: sp.Expr = i, last: sp.Expr = T, s: sp.Expr = COSINE_S) -> sp.Expr:
    """θ_i without the cancellation of 1 − ā near i = 0: sin(a k/n) sin(a (k/n + 2s))/cos²(a s).

    Here k = i + 1, n = T + 2, a = π/(2(1 + s)), from cos²x₀ − cos²x = sin(x − x₀) sin(x + x₀).
    """
    a = sp.pi / (2 * (1 + s))
    u = (index + 1) / (last + 2)
    return sp.sin(a * u) * sp.sin(a * (u + 2 * s)) / sp.cos(a * s) ** 2


def linear_theta(index: sp.Expr = i, last: sp.Expr = T) -> sp.Expr:
    """θ_i = c (1e−4 + (0.02 − 1e−4) i/T), c = 1000/(T + 1): numpy.linspace's i-th point."""
    scale = sp.Integer(1000) / (last + 1)
    return scale * (LINEAR_START + (LINEAR_END - LINEAR_START) * index / last)


def constant_theta(index: sp.Expr = i, last: sp.Expr = T) -> sp.Expr:
    """θ_i = 1."""
    return sp.Integer(1)


THETA_TABLES = {"cosine": cosine_theta, "linear": linear_theta, "constant": constant_theta}
"""θ_i per IR-SDE schedule name (the generated tables use these, cosine in stable form)."""


def cumulative(theta: sp.Expr, theta0_offset: bool = True) -> sp.Expr:
    """S_i = Σ_{j≤i} θ_j − θ₀ (``theta0_offset``, IR-SDE/DA-CLIP) or Σ_{j≤i} θ_j (MRS code)."""
    total = sp.Sum(theta.subs(i, _j), (_j, 0, i))
    return total - theta.subs(i, 0) if theta0_offset else total


def time_step(S_last: sp.Expr) -> sp.Expr:
    """dt = −log(ε)/S_T, so that α_T = exp(−S_T dt) = ε."""
    return -sp.log(schedules.EPS) / S_last


def table_alpha(S: sp.Expr, dt: sp.Expr) -> sp.Expr:
    """α_i = exp(−S_i dt)."""
    return schedules.alpha(S * dt)


def table_sigma(S: sp.Expr, dt: sp.Expr) -> sp.Expr:
    """σ_i = Λ sqrt(1 − α_i²) = Λ sqrt(−expm1(−2 S_i dt))."""
    return schedules.sigma(S * dt)


def table_log_snr(S: sp.Expr, dt: sp.Expr) -> sp.Expr:
    """λ_i = log α_i − log σ_i (+∞ where S_i = 0)."""
    return schedules.log_snr(S * dt)


def check_cosine_theta() -> sp.Expr:
    """Definition − stable form of the cosine θ_i, simplified (zero)."""
    return sp.simplify(cosine_theta_definition() - cosine_theta())


def check_alpha_last() -> sp.Expr:
    """α_T − ε with dt = −log(ε)/S_T, for symbolic S_T (zero)."""
    S_last = sp.Symbol("S_T", positive=True)
    return sp.simplify(table_alpha(S_last, time_step(S_last)) - schedules.EPS)


def check_sigma_definition() -> sp.Expr:
    """σ_i − Λ sqrt(1 − α_i²), simplified (zero)."""
    S, dt = sp.symbols("S dt", positive=True)
    difference = table_sigma(S, dt) - schedules.LAMBDA * sp.sqrt(1 - table_alpha(S, dt) ** 2)
    return sp.simplify(schedules.elementary(difference))
