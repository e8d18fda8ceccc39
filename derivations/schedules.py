"""Continuous MR noise schedules from θ(t): Θ, α, σ, λ, g, their inverses, and the built-ins.

For a mean-reversion rate θ(t) > 0 and the stationary standard deviation Λ (``max_sigma``):

    Θ(t) = ∫₀ᵗ θ,   α = e^{−Θ},   σ = Λ sqrt(1 − e^{−2Θ}) = Λ sqrt(−expm1(−2Θ)),
    λ = log α − log σ = −Θ − log Λ − ½ log(−expm1(−2Θ)),   g = sqrt(2 Λ² θ),
    dλ/dt = −θ Λ²/σ² = θ / expm1(−2Θ),   Θ(λ) = ½ log1p(e^{−2λ}/Λ²).

Θ(λ) is derived ([`Theta_of_log_snr`][derivations.schedules.Theta_of_log_snr]), and t(λ) = t(Θ(λ))
comes from inverting Θ(t) with ``sympy.solve`` where that gives a real, cancellation-free root
([`inverse_candidates`][derivations.schedules.inverse_candidates]).

The built-in schedules live on t ∈ [0, 1] and are scaled so that α(1) = ε (the continuous
counterparts of [IR-SDE tables](../../theory.md#ir-sde-tables)):
constant θ = c, linear θ = c (β₀ + (β₁ − β₀) t) and cosine θ = c (1 − cos²(a (t + s))/cos²(a s)),
a = π/(2(1 + s)), s = 0.008, each c fixed by Θ(1) = −log ε.

The second half of the module is the *evaluation plan* of a schedule (like
[`derivations.phi.series_terms`][derivations.phi.series_terms] for φ): which closed forms are used,
where a closed form loses accuracy to cancellation (a first-order rounding-error bound, computed in
exact arithmetic at the default parameters), and how many Gauss–Legendre panels make the quadrature
of θ accurate to float64 round-off. Everything is computed with SymPy/mpmath, so the plan, and the
code printed from it, is the same on every machine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

import mpmath
import sympy as sp
from sympy.codegen.cfunctions import expm1, log1p
from sympy.integrals.quadrature import gauss_legendre
from sympy.simplify.fu import TR8

from derivations.printers import PRINTERS

t = sp.Symbol("t", positive=True)
"""Time (continuous; the built-ins use t ∈ [0, 1])."""
LAMBDA = sp.Symbol("Lambda", positive=True)
"""Λ = σ∞, IR-SDE's ``max_sigma``."""
EPS = sp.Symbol("epsilon", positive=True)
"""ε = α(t_max), IR-SDE's ``eps``."""
BETA_START = sp.Symbol("beta_0", positive=True)
BETA_END = sp.Symbol("beta_1", positive=True)
SCALE = sp.Symbol("c", positive=True)
"""The factor that scales a built-in θ so that α(1) = ε."""
LAM = sp.Symbol("lambda", real=True)
"""λ, the half log-SNR."""
THETA_VALUE = sp.Symbol("Theta", nonnegative=True)
"""A value of Θ (the argument of t(Θ) and the result of Θ(λ))."""
RATE_VALUE = sp.Symbol("theta", positive=True)
"""A value of θ (the argument of g and dλ/dt written in terms of θ and Θ)."""

DEFAULT_MAX_SIGMA = sp.Rational(50, 255)
DEFAULT_EPS = sp.Rational(5, 1000)
COSINE_S = sp.Rational(8, 1000)
DEFAULT_BETA_START = sp.Rational(1, 10**4)
DEFAULT_BETA_END = sp.Rational(2, 100)

ROUNDING_TOLERANCE = 1e-13
"""A closed form is used only where its rounding-error bound (relative) is below this."""
QUADRATURE_TOLERANCE = sp.Rational(1, 10**15)
"""Relative error allowed to the exact-arithmetic Gauss–Legendre rule (before round-off)."""
GAUSS_LEGENDRE_NODES = 16
"""Nodes per panel of the composite Gauss–Legendre rule used for Θ when needed."""
MAX_PANELS = 256


# ---------------------------------------------------------------------------------------------
# The schedule formulas in terms of Θ (and θ)
# ---------------------------------------------------------------------------------------------


def Theta_integral(theta: sp.Expr) -> sp.Expr | None:
    """Θ(t) = ∫₀ᵗ θ(τ) dτ by ``sympy.integrate``; ``None`` when SymPy finds no closed form.

    A trigonometric polynomial in t is first written as a sum of sines and cosines
    (``fu.TR8``), which SymPy integrates much faster than products.
    """
    generators = _transcendental_generators(theta) - {t}
    if generators and all(isinstance(g, (sp.sin, sp.cos)) for g in generators):
        theta = TR8(theta)
    tau = sp.Dummy("tau", positive=True)
    try:
        result = sp.integrate(theta.subs(t, tau), (tau, 0, t))
    except (NotImplementedError, sp.PolynomialError):
        return None
    if result.has(sp.Integral):
        return None
    return stabilised(result)


def alpha(Theta: sp.Expr) -> sp.Expr:
    """α = exp(−Θ)."""
    return sp.exp(-Theta)


def sigma(Theta: sp.Expr, max_sigma: sp.Expr = LAMBDA) -> sp.Expr:
    """σ = Λ sqrt(1 − e^{−2Θ}), written Λ sqrt(−expm1(−2Θ)) so that small Θ keeps its digits."""
    return max_sigma * sp.sqrt(-expm1(-2 * Theta))


def log_snr(Theta: sp.Expr, max_sigma: sp.Expr = LAMBDA) -> sp.Expr:
    """λ = log α − log σ = −Θ − log Λ − ½ log(−expm1(−2Θ))."""
    return -Theta - sp.log(max_sigma) - sp.log(-expm1(-2 * Theta)) / 2


def diffusion(theta: sp.Expr, max_sigma: sp.Expr = LAMBDA) -> sp.Expr:
    """g = sqrt(2 Λ² θ), the MR constraint g² = 2Λ²θ."""
    return sp.sqrt(2 * max_sigma**2 * theta)


def log_snr_rate(theta: sp.Expr, Theta: sp.Expr) -> sp.Expr:
    """dλ/dt = −θ Λ²/σ² = θ / expm1(−2Θ) (Λ cancels)."""
    return theta / expm1(-2 * Theta)


@cache
def Theta_of_log_snr() -> sp.Expr:
    """Θ(λ), derived by solving λ = −Θ − log Λ − ½ log(1 − e^{−2Θ}) for Θ.

    With u = e^{−2Θ} the equation reads e^{2λ} = u / (Λ² (1 − u)), linear in u. Then
    Θ = −½ log u = ½ log1p(1/u − 1) = ½ log1p(e^{−2λ}/Λ²).
    """
    u = sp.Symbol("u", positive=True)
    (u_of_lam,) = sp.solve(sp.Eq(sp.exp(2 * LAM), u / (LAMBDA**2 * (1 - u))), u)
    return log1p(sp.simplify(1 / u_of_lam - 1)) / 2


def stabilised(expr: sp.Expr) -> sp.Expr:
    """Rewrite c·exp(x) − c as c·expm1(x) and log(1 + x) as log1p(x), which keep small x exact."""

    def fold_expm1(node: sp.Expr) -> sp.Expr:
        if not node.is_Add:
            return node
        for term in node.args:
            coefficient, factor = term.as_coeff_Mul()
            if isinstance(factor, sp.exp) and (-coefficient) in node.args:
                rest = node - term + coefficient
                return rest + coefficient * expm1(factor.args[0])
        return node

    def fold_log1p(node: sp.Expr) -> sp.Expr:
        if isinstance(node, sp.log) and node.args[0].is_Add and 1 in node.args[0].args:
            return log1p(node.args[0] - 1)
        return node

    return expr.replace(lambda e: e.is_Add, fold_expm1).replace(
        lambda e: isinstance(e, sp.log), fold_log1p
    )


def elementary(expr: sp.Expr) -> sp.Expr:
    """``expm1``/``log1p`` rewritten as exp(x) − 1 and log(1 + x), for simplification."""
    return expr.replace(expm1, lambda x: sp.exp(x) - 1).replace(log1p, lambda x: sp.log(1 + x))


def _transcendental_generators(expr: sp.Expr) -> set[sp.Expr]:
    """The t-dependent building blocks of ``expr``: t itself and the non-polynomial nodes."""
    generators: set[sp.Expr] = set()

    def visit(node: sp.Expr) -> None:
        if not node.has(t):
            return
        if node == t:
            generators.add(t)
        elif node.is_Add or node.is_Mul:
            for argument in node.args:
                visit(argument)
        elif node.is_Pow and node.exp.is_Integer:
            visit(node.base)
        else:
            generators.add(node)

    visit(expr)
    return generators


def inverse_candidates(Theta: sp.Expr) -> tuple[list[sp.Expr], str]:
    """Roots t(Θ) of Θ(t) = Θ from ``sympy.solve``, each also in cancellation-free form.

    An equation mixing t with a transcendental function of t (e.g. t and sin(πt)) is not sent to
    ``solve``: it has no elementary inverse and SymPy can search for a long time. Returns the
    candidates and, when there are none, the reason.
    """
    Theta = elementary(Theta)
    generators = _transcendental_generators(Theta)
    mixed = len(generators) > 1 and any(not g.is_Pow for g in generators if g != t)
    if mixed:
        shown = ", ".join(sorted(str(g) for g in generators))
        return [], f"Θ(t) mixes t with transcendental terms ({shown}): no closed-form inverse"
    try:
        roots = sp.solve(sp.Eq(Theta, THETA_VALUE), t)
    except NotImplementedError as error:
        return [], f"sympy.solve: {str(error).splitlines()[0]}"
    if not roots:
        return [], "sympy.solve found no root of Θ(t) = Θ"
    candidates = []
    for root in roots:
        candidates.append(stabilised(root))
        conjugated = conjugate_form(root)
        if conjugated is not None:
            candidates.append(conjugated)
    return candidates, ""


def conjugate_form(root: sp.Expr) -> sp.Expr | None:
    """(A + B)/D written as (A² − B²)/(D (A − B)), B the term with a square root of Θ.

    This is the cancellation-free form of a quadratic's small root, e.g.
    (−b + sqrt(b² + 4aΘ))/(2a) = 2Θ/(b + sqrt(b² + 4aΘ)).
    """
    numerator, denominator = sp.fraction(sp.together(root))
    if not numerator.is_Add:
        return None
    radical = [
        a
        for a in numerator.args
        if any(p.exp == sp.S.Half and p.base.has(THETA_VALUE) for p in a.atoms(sp.Pow))
    ]
    if len(radical) != 1:
        return None
    b = radical[0]
    a = numerator - b
    return sp.factor(sp.expand(a**2 - b**2)) / (denominator * (a - b))


# ---------------------------------------------------------------------------------------------
# Schedules
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Parameter:
    """A schedule parameter: SymPy symbol, keyword name in generated code, default value."""

    symbol: sp.Symbol
    name: str
    default: sp.Expr


MAX_SIGMA_PARAMETER = Parameter(LAMBDA, "max_sigma", DEFAULT_MAX_SIGMA)
EPS_PARAMETER = Parameter(EPS, "eps", DEFAULT_EPS)


@dataclass(frozen=True)
class Schedule:
    """θ(t) on [0, t_max] with its parameters and the constants it is written with.

    ``constants`` are (symbol, definition) pairs, in order, that θ uses (e.g. the scale c);
    their definitions depend on parameters only. ``description`` is human-readable maths.
    """

    name: str
    theta: sp.Expr
    parameters: tuple[Parameter, ...]
    t_max: sp.Expr = sp.S.One
    constants: tuple[tuple[sp.Symbol, sp.Expr], ...] = ()
    description: str = ""

    def defaults(self) -> dict[sp.Symbol, sp.Expr]:
        """Substitution of every parameter by its default value."""
        return {p.symbol: p.default for p in self.parameters}

    def expanded(self, expr: sp.Expr) -> sp.Expr:
        """``expr`` with the constants replaced by their definitions."""
        for symbol, definition in reversed(self.constants):
            expr = expr.subs(symbol, definition)
        return expr

    def numeric(self, expr: sp.Expr) -> sp.Expr:
        """``expr`` with the constants expanded and the parameters at their defaults."""
        return self.expanded(expr).subs(self.defaults())


def scale_for_eps(shape: sp.Expr) -> sp.Expr:
    """c such that Θ(1) = −log ε for θ = c·shape: Θ(1) is linear in c, so solve for it."""
    (c,) = sp.solve(sp.Eq(Theta_integral(SCALE * shape).subs(t, 1), -sp.log(EPS)), SCALE)
    return c


def cosine_shape_definition(s: sp.Expr = COSINE_S) -> sp.Expr:
    """1 − cos²(((t + s)/(1 + s))·π/2) / cos²((s/(1 + s))·π/2), as in the theory.

    The cosine table of [IR-SDE tables](../../theory.md#ir-sde-tables), word for word.
    """
    return 1 - sp.cos((t + s) / (1 + s) * sp.pi / 2) ** 2 / sp.cos(s / (1 + s) * sp.pi / 2) ** 2


def cosine_shape(s: sp.Expr = COSINE_S) -> sp.Expr:
    """The same shape without cancellation near t = 0: sin(a t) sin(a (t + 2s)) / cos²(a s).

    cos²x₀ − cos²x = sin(x − x₀) sin(x + x₀) with x = a (t + s), x₀ = a s, a = π/(2(1 + s)).
    """
    a = sp.pi / (2 * (1 + s))
    return sp.sin(a * t) * sp.sin(a * (t + 2 * s)) / sp.cos(a * s) ** 2


def check_cosine_shape() -> sp.Expr:
    """Definition − cancellation-free form of the cosine shape, simplified (zero)."""
    return sp.simplify(cosine_shape_definition() - cosine_shape())


@cache
def constant_schedule() -> Schedule:
    """θ(t) = c with c = −log ε, so that α(1) = ε."""
    c = scale_for_eps(sp.Integer(1))
    return Schedule(
        name="constant",
        theta=SCALE,
        parameters=(MAX_SIGMA_PARAMETER, EPS_PARAMETER),
        constants=((SCALE, c),),
        description="θ(t) = c, c = −log(eps) so that α(1) = eps.",
    )


@cache
def linear_schedule() -> Schedule:
    """θ(t) = c (β₀ + (β₁ − β₀) t), IR-SDE's shape β₁/β₀ = 0.02/1e-4, c fixed by α(1) = ε."""
    shape = BETA_START + (BETA_END - BETA_START) * t
    return Schedule(
        name="linear",
        theta=SCALE * shape,
        parameters=(
            MAX_SIGMA_PARAMETER,
            EPS_PARAMETER,
            Parameter(BETA_START, "beta_start", DEFAULT_BETA_START),
            Parameter(BETA_END, "beta_end", DEFAULT_BETA_END),
        ),
        constants=((SCALE, scale_for_eps(shape)),),
        description=(
            "θ(t) = c·(beta_start + (beta_end − beta_start)·t), c = −2·log(eps)/(beta_start +"
            " beta_end) so that α(1) = eps (only the ratio beta_end/beta_start matters)."
        ),
    )


@cache
def cosine_schedule() -> Schedule:
    """θ(t) = c (1 − cos²(a (t + s))/cos²(a s)), s = 0.008, c fixed by α(1) = ε."""
    return Schedule(
        name="cosine",
        theta=SCALE * cosine_shape(),
        parameters=(MAX_SIGMA_PARAMETER, EPS_PARAMETER),
        constants=((SCALE, scale_for_eps(cosine_shape())),),
        description=(
            "θ(t) = c·(1 − cos²(((t + s)/(1 + s))·π/2)/cos²((s/(1 + s))·π/2)), s = 0.008, evaluated"
            " as c·sin(a·t)·sin(a·(t + 2s))/cos²(a·s), a = π/(2(1 + s)), which is the same"
            " function without cancellation near t = 0; c fixed so that α(1) = eps."
        ),
    )


BUILTIN_SCHEDULES = {
    "constant": constant_schedule,
    "linear": linear_schedule,
    "cosine": cosine_schedule,
}
"""Built-in continuous schedules by name (constructors; each result is cached)."""


# ---------------------------------------------------------------------------------------------
# Derivation: closed forms where they exist, checked; an evaluation plan where they do not
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DerivedSchedule:
    """A schedule with its closed forms (or ``None`` and the reason) and its evaluation plan.

    ``Theta`` is Θ(t) in closed form; it is evaluated for t ≥ ``quadrature_below`` and by
    composite Gauss–Legendre quadrature of θ (``panels`` panels of GAUSS_LEGENDRE_NODES nodes on
    [0, t]) below, where the closed form cancels. ``inverse`` is t(Θ) in closed form.
    """

    schedule: Schedule
    Theta: sp.Expr | None
    Theta_note: str
    inverse: sp.Expr | None
    inverse_note: str
    quadrature_below: float
    panels: int

    @property
    def needs_quadrature(self) -> bool:
        return self.Theta is None or self.quadrature_below > 0


def derive(schedule: Schedule) -> DerivedSchedule:
    """Closed forms of Θ(t) and t(Θ), verified numerically, and the evaluation plan."""
    theta_numeric = schedule.numeric(schedule.theta)
    Theta, Theta_note = _checked_Theta(schedule, theta_numeric)
    t_max = schedule.numeric(schedule.t_max)
    quadrature_below = 0.0
    if Theta is not None:
        quadrature_below = cancellation_threshold(schedule.numeric(Theta), t, t_max)
        if quadrature_below >= float(t_max):
            Theta_note = (
                "the closed form Θ(t) loses accuracy to cancellation on all of [0, t_max];"
                " quadrature is used"
            )
            Theta, quadrature_below = None, 0.0
    panels = 0
    if Theta is None or quadrature_below > 0:
        reach = float(t_max) if Theta is None else quadrature_below
        panels = quadrature_panels(theta_numeric, reach)
    t_of_Theta, inverse_note = _checked_inverse(schedule, Theta, theta_numeric)
    return DerivedSchedule(
        schedule, Theta, Theta_note, t_of_Theta, inverse_note, quadrature_below, panels
    )


@cache
def derive_cached(schedule: Schedule) -> DerivedSchedule:
    """[`derive`][derivations.schedules.derive], cached (derivations take seconds)."""
    return derive(schedule)


def _checked_Theta(schedule: Schedule, theta_numeric: sp.Expr) -> tuple[sp.Expr | None, str]:
    """Θ(t) from `Theta_integral`, kept only if printable, real and equal to ∫θ."""
    Theta = Theta_integral(schedule.theta)
    if Theta is None:
        return None, "sympy.integrate returns an unevaluated integral: no closed form"
    reason = unprintable_reason(Theta)
    if reason:
        return None, f"the closed form {Theta} is not usable ({reason}); quadrature is used"
    t_max = schedule.numeric(schedule.t_max)
    exact = _mp_function(schedule.numeric(Theta), t)
    rate = _mp_function(theta_numeric, t)
    with mpmath.workdps(30):
        for fraction in ("1", "0.5", "0.1"):
            point = mpmath.mpf(fraction) * _mpf(t_max)
            reference = mpmath.quad(rate, mpmath.linspace(0, point, 9))
            value = exact(point)
            if not _close(value, reference, mpmath.mpf("1e-20")):
                return None, f"sympy.integrate gave {Theta}, which does not match ∫θ numerically"
    return Theta, "closed form (sympy.integrate)"


def _checked_inverse(
    schedule: Schedule, Theta: sp.Expr | None, theta_numeric: sp.Expr
) -> tuple[sp.Expr | None, str]:
    """The first candidate t(Θ) that is real, inverts Θ on [0, t_max] and does not cancel."""
    if Theta is None:
        return None, "no closed form of Θ(t) to invert: numerical inverse"
    candidates, reason = inverse_candidates(Theta)
    if not candidates:
        return None, reason + ": numerical inverse"
    t_max = float(schedule.numeric(schedule.t_max))
    times = [t_max * 2.0 ** (-k / 2) for k in range(0, 41)]
    Theta_numeric = _mp_function(schedule.numeric(Theta), t)
    with mpmath.workdps(30):
        values = [Theta_numeric(mpmath.mpf(time)) for time in times]
    for candidate in candidates:
        if unprintable_reason(candidate):
            continue
        inverse = schedule.numeric(candidate)
        if not _inverts(inverse, times, values):
            continue
        bounds = [rounding_error_bound(inverse, {THETA_VALUE: v}) for v in values]
        if max(bounds) <= ROUNDING_TOLERANCE:
            return candidate, "closed form (sympy.solve; branch checked on [0, t_max])"
    return None, "sympy.solve gave no real, accurate root on [0, t_max]: numerical inverse"


def _inverts(inverse: sp.Expr, times: list[float], values: list) -> bool:
    """Whether ``inverse`` maps each Θ value back to its time (at 30 digits)."""
    function = _mp_function(inverse, THETA_VALUE)
    with mpmath.workdps(30):
        for time, value in zip(times, values, strict=True):
            try:
                result = function(value)
            except (ValueError, ZeroDivisionError, TypeError):
                return False
            if isinstance(result, mpmath.mpc):
                if abs(result.imag) > mpmath.mpf("1e-25") * abs(result):
                    return False
                result = result.real
            if not _close(result, mpmath.mpf(time), mpmath.mpf("1e-20")):
                return False
    return True


def unprintable_reason(expr: sp.Expr) -> str:
    """Why ``expr`` cannot become float64 torch/numpy code ('' when it can)."""
    if expr.has(sp.I):
        return "it involves complex numbers"
    if expr.has(sp.zoo, sp.oo, sp.nan):
        return "it involves infinities"
    for backend, printer in PRINTERS.items():
        try:
            printer(expr)
        except Exception as error:  # printers raise several types for unsupported nodes
            return f"the {backend} printer cannot print it: {str(error).splitlines()[0]}"
    return ""


def cancellation_threshold(Theta_numeric: sp.Expr, variable: sp.Symbol, t_max) -> float:
    """Smallest t_max·2^{−j} above which the closed form Θ(t) is accurate (0.0: everywhere).

    The rounding-error bound of the closed form is evaluated on t_max·2^{−k/4}, k = 0, 1, …;
    if it first exceeds ROUNDING_TOLERANCE at k, the closed form is trusted on the points before
    it, and the threshold is the power-of-two multiple of t_max at or above the last of them.
    Returns t_max when even t_max fails, and 0.0 when the bound holds down to 2^{−52}·t_max.
    """
    t_max = float(t_max)
    for k in range(0, 4 * 52 + 1):
        point = t_max * 2.0 ** (-k / 4)
        if rounding_error_bound(Theta_numeric, {variable: point}) > ROUNDING_TOLERANCE:
            return t_max if k == 0 else t_max * 2.0 ** (-((k - 1) // 4))
    return 0.0


@cache
def gauss_legendre_rule(nodes: int = GAUSS_LEGENDRE_NODES) -> tuple[tuple[str, ...], ...]:
    """Nodes and weights of the Gauss–Legendre rule on [−1, 1], as 30-digit decimal strings."""
    xs, ws = gauss_legendre(nodes, 30)
    return tuple(str(x) for x in xs), tuple(str(w) for w in ws)


def composite_gauss_legendre(function, end, panels: int):
    """∫₀^end f by ``panels`` equal panels of the Gauss–Legendre rule (mpmath arithmetic)."""
    xs, ws = gauss_legendre_rule()
    total = mpmath.mpf(0)
    width = end / panels
    for p in range(panels):
        for x, w in zip(xs, ws, strict=True):
            total += mpmath.mpf(w) * function(width * (p + (1 + mpmath.mpf(x)) / 2))
    return total * width / 2


def quadrature_panels(theta_numeric: sp.Expr, reach) -> int:
    """Fewest panels (a power of two) for which Gauss–Legendre Θ is within QUADRATURE_TOLERANCE.

    Checked, in exact arithmetic, at reach, reach/2 and reach/8 against mpmath's adaptive
    quadrature (the quadrature always spans [0, t], so shorter t only get easier).
    """
    rate = _mp_function(theta_numeric, t)
    with mpmath.workdps(30):
        ends = [_mpf(reach) / d for d in (1, 2, 8)]
        references = [mpmath.quad(rate, mpmath.linspace(0, end, 17)) for end in ends]
        panels = 1
        while panels <= MAX_PANELS:
            if all(
                _close(composite_gauss_legendre(rate, end, panels), ref, QUADRATURE_TOLERANCE)
                for end, ref in zip(ends, references, strict=True)
            ):
                return panels
            panels *= 2
    raise ValueError(f"θ(t) varies too fast for {MAX_PANELS} Gauss–Legendre panels on [0, {reach}]")


# ---------------------------------------------------------------------------------------------
# Rounding-error bound of an expression evaluated as written, in float64
# ---------------------------------------------------------------------------------------------

UNIT_ROUNDOFF = mpmath.mpf(2) ** -53


def rounding_error_bound(expr: sp.Expr, values: dict[sp.Symbol, object]) -> float:
    """First-order bound on the relative float64 rounding error of ``expr`` as written.

    Each operation adds one unit roundoff u; errors propagate by the exact condition numbers:
    Σ|aᵢ|eᵢ/|Σaᵢ| for sums, Σeᵢ for products, |x f′(x)/f(x)| for functions. Inputs are exact.
    Evaluated with mpmath at 40 digits, so the result does not depend on the machine.
    """
    with mpmath.workdps(40):
        substitution = {symbol: _mpf(value) for symbol, value in values.items()}
        try:
            _, error = _value_and_error(expr, substitution)
        except (ZeroDivisionError, ValueError, TypeError):
            return math.inf
        if isinstance(error, mpmath.mpc) or not mpmath.isfinite(error):
            return math.inf
        return float(error)


def _value_and_error(node: sp.Expr, values: dict):
    if node in values:
        return values[node], mpmath.mpf(0)
    if node.is_Integer:
        return mpmath.mpf(int(node)), mpmath.mpf(0)
    if node.is_number and not node.free_symbols and node.is_Atom:
        return _mpf(node), UNIT_ROUNDOFF
    parts = [_value_and_error(argument, values) for argument in node.args]
    args = [value for value, _ in parts]
    errors = [error for _, error in parts]
    if node.is_Add:
        value = mpmath.fsum(args)
        magnitude = mpmath.fsum(
            abs(a) * (e + UNIT_ROUNDOFF) for a, e in zip(args, errors, strict=True)
        )
        return value, magnitude / abs(value)
    if node.is_Mul:
        return mpmath.fprod(args), mpmath.fsum(errors) + UNIT_ROUNDOFF * (len(args) - 1)
    if node.is_Pow:
        base, exponent = args
        error = abs(exponent) * errors[0] + UNIT_ROUNDOFF
        if errors[1]:
            error += abs(exponent * mpmath.log(base)) * errors[1]
        return mpmath.power(base, exponent), error
    if len(args) == 1:
        function, derivative = _mp_function_and_derivative(node.func)
        value = function(args[0])
        condition = abs(args[0] * derivative(args[0]) / value)
        return value, condition * errors[0] + UNIT_ROUNDOFF
    value = _mp_function(node.func(*_symbols(len(args))), *_symbols(len(args)))(*args)
    return value, max(errors) + UNIT_ROUNDOFF


@cache
def _symbols(count: int) -> tuple[sp.Symbol, ...]:
    return sp.symbols(f"x0:{count}", real=True)


@cache
def _mp_function_and_derivative(func):
    x = sp.Symbol("x", real=True)
    return _mp_function(func(x), x), _mp_function(sp.diff(func(x), x), x)


def _mp_function(expr: sp.Expr, *variables: sp.Symbol):
    """An mpmath-evaluated function of ``variables`` (expm1/log1p kept: mpmath has both)."""
    return sp.lambdify(variables, expr, modules="mpmath")


def _mpf(value) -> mpmath.mpf:
    if isinstance(value, sp.Basic):
        return mpmath.mpf(sp.Float(value, mpmath.mp.dps + 5))
    if isinstance(value, float):
        return mpmath.mpf(value)
    return value


def _close(value, reference, tolerance) -> bool:
    if isinstance(value, mpmath.mpc):
        return False
    return abs(value - reference) <= tolerance * abs(reference)


# ---------------------------------------------------------------------------------------------
# Symbolic checks (each returns an expression that simplifies to zero)
# ---------------------------------------------------------------------------------------------


def _closed_Theta(schedule: Schedule) -> sp.Expr:
    Theta = derive_cached(schedule).Theta
    if Theta is None:
        raise ValueError(f"schedule {schedule.name!r} has no closed-form Θ(t)")
    return Theta


def check_Theta_derivative(schedule: Schedule) -> sp.Expr:
    """dΘ/dt − θ."""
    Theta = _closed_Theta(schedule)
    return sp.simplify(sp.expand_trig(elementary(sp.diff(Theta, t) - schedule.theta)))


def check_Theta_at_zero(schedule: Schedule) -> sp.Expr:
    """Θ(0)."""
    return sp.simplify(elementary(_closed_Theta(schedule).subs(t, 0)))


def check_alpha_at_end(schedule: Schedule) -> sp.Expr:
    """α(1) − ε (for the built-ins, whose θ is scaled so that α(1) = ε)."""
    Theta_end = schedule.expanded(_closed_Theta(schedule)).subs(t, 1)
    return sp.simplify(alpha(Theta_end) - EPS)


def check_log_snr_rate(schedule: Schedule) -> sp.Expr:
    """dλ/dt + θΛ²/σ², with λ = λ(Θ(t)) differentiated directly."""
    Theta = _closed_Theta(schedule)
    lam = log_snr(Theta)
    expected = -schedule.theta * LAMBDA**2 / sigma(Theta) ** 2
    difference = elementary(sp.diff(lam, t) - expected)
    return sp.simplify(difference.subs(sp.exp(-2 * Theta), sp.Symbol("q", positive=True)))


def check_Theta_of_log_snr() -> sp.Expr:
    """λ(Θ(λ)) − λ."""
    lam = elementary(log_snr(Theta_of_log_snr()))
    return sp.simplify(sp.expand_log(sp.simplify(lam - LAM), force=True))


def check_t_of_log_snr(schedule: Schedule) -> sp.Expr:
    """λ(t(λ)) − λ for a closed-form inverse: Θ(t(Θ)) − Θ, then λ(Θ(λ)) − λ.

    Θ(t(Θ)) = Θ is shown for a symbolic Θ; λ ↦ Θ(λ) then closes the loop.
    """
    inverse = derive_cached(schedule).inverse
    if inverse is None:
        raise ValueError(f"schedule {schedule.name!r} has no closed-form inverse")
    Theta_round_trip = sp.simplify(elementary(_closed_Theta(schedule).subs(t, inverse)))
    lam = elementary(log_snr(Theta_round_trip.subs(THETA_VALUE, Theta_of_log_snr())))
    return sp.simplify(sp.expand_log(sp.simplify(lam - LAM), force=True))
