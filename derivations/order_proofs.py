"""Symbolic local-order proofs of every generated update, with the step ratios left symbolic.

Four statements are proved for an update whose final stage interpolates k outputs (order k):

1. **Polynomial exactness.** If the network output is a polynomial of degree k − 1 in λ, every
   stage reproduces the exact variation-of-constants integral ∫₀^E e^{κ(E−u)} m du: the residual,
   with φ written through exponentials and the integral done by SymPy, simplifies to 0.
2. **Local order (model along the exact path).** For a general smooth m(λ_s + u) = Σ d_n uⁿ/n!,
   the residual's series in h starts at h^{k+1}: local error O(h^{k+1}), global order k. For a
   multistep update this is the local truncation error (earlier outputs on the exact path).
3. **Local order with a state-dependent model (singlestep, corrector).** Intermediate stages
   call the model at approximate states, so (2) is not enough. In the variable
   v = y·F(λ_s)/F(λ) every MR equation reads v' = e^{−κu} m(v, u) and every stage
   v_e = v_s + e^{−κE} Σ_j W_j m(v_j, u_j) (the integrating factor drops out), so a generic
   polynomial model m(v, u) and a Picard series of the exact v(h) prove the order. This is
   where r₂ = 2/3 is derived for the third-order singlestep update: it is the root of the h³
   coefficient.
4. **Corrector with reused outputs.** A corrected step of order k (its predictor of order k − 1)
   calls the model once, at the predicted (uncorrected) state, and that output is the next
   step's m0: every output a step is given was evaluated off the exact path. In the machinery of
   (3) the given outputs are the model at v(a_j h) + e_j h^k (the exact path at the node, h → a_j
   h in its Picard series, plus a symbolic predictor error), the predictor's output is the model
   at its own state, and the corrected state must match the Picard series through h^k: local
   error O(h^{k+1}) with the ratios and the e_j symbolic.
   [`corrected_run`][derivations.order_proofs.corrected_run] also proves the start (outputs of
   lower-order predictors, off by e_j h^{k−1}: local error O(h^k) on a bounded number of steps)
   and the uncorrected last step.

The exact integrals here never use the φ-identity that builds the weights: they expand the kernel
exponential and integrate polynomials (statement 2, 3, 4) or call ``sympy.integrate`` (statement
1).
"""

from __future__ import annotations

from functools import cache
from typing import NamedTuple

import sympy as sp

from derivations.phi import Phi, phi_series
from derivations.solutions import step_solution
from derivations.symbols import h, u
from derivations.updates import (
    SINGLESTEP_THIRD_ORDER_R2,
    Stage,
    Update,
    corrector,
    kernel_weights,
    multistep,
    order_preserving_start,
    r2,
)


def _kappa(update: Update) -> sp.Integer:
    return step_solution(update.method, update.prediction).kappa


def truncate(expr: sp.Expr, var: sp.Symbol, degree: int) -> sp.Expr:
    """Drop every term of the expanded ``expr`` of degree > ``degree`` in ``var``."""
    poly = sp.Poly(sp.expand(expr), var)
    return sum(coeff * var**power for (power,), coeff in poly.terms() if power <= degree)


def _phi_as_series(expr: sp.Expr, degree: int) -> sp.Expr:
    """Replace every φ_k(z) by its Taylor polynomial, enough terms for ``degree`` in h."""
    return expr.replace(
        lambda e: isinstance(e, Phi), lambda e: phi_series(int(e.args[0]), e.args[1], degree + 1)
    )


def exactness_residual(update: Update, stage: Stage) -> sp.Expr:
    """Stage residual for a model polynomial of degree len(nodes) − 1 (zero when exact)."""
    kappa = _kappa(update)
    degree = len(stage.nodes) - 1
    d = sp.symbols(f"d0:{degree + 1}", real=True)
    poly = sum(d[n] * u**n for n in range(degree + 1))
    end = stage.end * h
    exact = sp.integrate(sp.exp(kappa * (end - u)) * poly, (u, 0, end))
    weights = kernel_weights(stage, kappa)
    approx = sum(w * poly.subs(u, a * h) for w, a in zip(weights, stage.nodes, strict=True))
    residual = sp.expand(exact - approx.rewrite(sp.exp))
    coefficients = [residual.coeff(dn) for dn in d]
    linear = sp.expand(residual - sum(c * dn for c, dn in zip(coefficients, d, strict=True))) == 0
    if linear and all(sp.expand(sp.numer(sp.together(c))) == 0 for c in coefficients):
        # The residual is Σ d_n c_n and every c_n, brought to one fraction N/D (D a product of
        # powers of h and of ratio factors, non-zero), has N expanding to 0: it is zero. Only
        # valid rewrites are used, so a false zero is impossible; a false "not zero" would only
        # fall through to simplify.
        return sp.Integer(0)
    return sp.simplify(residual)


def _kernel_integral_series(kappa: sp.Expr, end: sp.Expr, model: sp.Expr, degree: int) -> sp.Expr:
    """∫₀^E e^{κ(E−u)} model(u) du as a polynomial in h to ``degree`` (exponential expanded)."""
    w = sp.Symbol("w", real=True)
    kernel = sum((kappa * (end - w)) ** j / sp.factorial(j) for j in range(degree + 1))
    integrand = truncate(kernel * model.subs(u, w), h, degree)
    return truncate(sp.integrate(sp.expand(integrand), (w, 0, end)), h, degree)


@cache
def local_error(update: Update) -> tuple[int, sp.Expr]:
    """(p, c): the final stage's residual for a general smooth model along the path is c·h^p + …

    ``p`` is the lowest power of h with a non-zero coefficient (order k ⇔ p = k + 1). The exact
    integral is a polynomial in h and the d_n alone; the weights' ratios enter as in
    [`state_dependent_local_error`][derivations.order_proofs.state_dependent_local_error].
    """
    stage = update.stages[-1]
    degree = update.order + 2
    d = sp.symbols(f"d0:{degree + 1}", real=True)
    model = sum(d[n] * u**n / sp.factorial(n) for n in range(degree + 1))
    kappa = _kappa(update)
    exact = _kernel_integral_series(kappa, stage.end * h, model, degree)
    weights = _WeightFractions.of([stage], kappa, degree)
    ring, H, *generators = sp.ring([h, *d, *weights.ratios, weights.inverse], sp.QQ)
    D = generators[: len(d)]
    approx = ring.zero
    for w, node in zip(weights.in_ring(ring, stage.name), stage.nodes, strict=True):
        at_node = ring(node) * H
        approx += w * sum(
            (D[n] * _truncated_power(at_node, n, degree) * sp.Rational(1, sp.factorial(n)))
            for n in range(degree + 1)
        )
    residual = ring(exact) - _truncated(approx, degree)
    return _leading_with_inverse(residual, degree, ring(weights.denominator))


class _WeightFractions(NamedTuple):
    """Stage weights as numerator/denominator over one least common denominator D.

    ``fractions[stage name]`` lists (N_j, D_j) of each weight (φ as series, to ``degree`` in h);
    D = lcm(D_j) is a polynomial in ``ratios``; ``inverse`` the generator g standing for 1/D.
    """

    fractions: dict
    denominator: sp.Expr
    ratios: tuple
    inverse: sp.Symbol

    @classmethod
    def of(cls, stages: list[Stage], kappa: sp.Expr, degree: int) -> _WeightFractions:
        fractions = {
            stage.name: [
                sp.fraction(sp.cancel(sp.expand(_phi_as_series(w, degree))))
                for w in kernel_weights(stage, kappa)
            ]
            for stage in stages
        }
        denominator = sp.lcm([den for weights in fractions.values() for _, den in weights])
        ratios = sorted(
            {s for st in stages for e in (*st.nodes, st.end) for s in sp.sympify(e).free_symbols},
            key=str,
        )
        return cls(fractions, denominator, tuple(ratios), sp.Symbol("g", positive=True))

    def in_ring(self, ring, name: str) -> list:
        """The weights of stage ``name`` as ring elements N_j (D/D_j) g."""
        inverse = ring(self.inverse)
        return [
            ring(sp.expand(num * sp.cancel(self.denominator / den))) * inverse
            for num, den in self.fractions[name]
        ]


def _truncated(poly, degree: int):
    """Drop the terms of a ring element whose h-degree (first generator) exceeds ``degree``."""
    return poly.ring({m: c for m, c in poly.items() if m[0] <= degree})


def _integrate_in_h(poly):
    """∫₀^h of a ring element in its first generator h, term by term."""
    ring = poly.ring
    return ring({(m[0] + 1, *m[1:]): c / (m[0] + 1) for m, c in poly.items()})


def _power(poly, exponent: int):
    """poly**exponent with 0**0 = 1 (ring elements refuse it)."""
    return poly.ring.one if exponent == 0 else poly**exponent


def _by_h_degree(poly) -> dict[int, object]:
    """The parts of a ring element by h-degree (its first generator)."""
    parts: dict[int, dict] = {}
    for m, c in poly.items():
        parts.setdefault(m[0], {})[m] = c
    return {k: poly.ring(part) for k, part in parts.items()}


def _truncated_product(left, right, degree: int):
    """left·right to h-degree ``degree``, without forming the terms it drops."""
    ring = left.ring
    total = ring.zero
    right_parts = _by_h_degree(right)
    for i, part in _by_h_degree(left).items():
        for j, other in right_parts.items():
            if i + j <= degree:
                total += part * other
    return total


def _truncated_power(poly, exponent: int, degree: int):
    """poly**exponent to h-degree ``degree`` (0**0 = 1)."""
    result = poly.ring.one
    for _ in range(exponent):
        result = _truncated_product(result, poly, degree)
    return result


def _series_exp(ring, z, degree: int):
    """Truncated exponential Σ_{j≤degree} z^j/j! of a ring element z with no constant term."""
    total, term = ring.one, ring.one
    for j in range(1, degree + 1):
        term = _truncated(term * z, degree) * sp.Rational(1, j)
        total += term
    return total


def _rescaled(poly, factor):
    """poly with h → factor·h (factor a ring element): each h^k part times factor^k."""
    parts = _by_h_degree(poly)
    return sum((part * _power(factor, k) for k, part in parts.items()), poly.ring.zero)


def _inputs(stages: list[Stage]) -> dict[str, sp.Expr]:
    """Labels of the outputs a step is given (m0, m1, …), with their unit nodes a_j."""
    produced = {stage.name for stage in stages}
    inputs = {"m0": sp.Integer(0)}
    for stage in stages:
        for label, node in zip(stage.node_labels, stage.nodes, strict=True):
            if label not in produced:
                inputs[label] = sp.sympify(node)
    return inputs


@cache
def state_dependent_local_error(
    update: Update, fixed: tuple = (), perturbed: tuple = ()
) -> tuple[int, sp.Expr]:
    """(p, c): residual c·h^p + … of the whole update for a generic state-dependent model.

    The model m(v, u) = Σ_{a+b<k} c_ab (v − v_s)^a u^b is generic up to the degree that can reach
    h^k (any polynomial of that degree in v is one in v − v_s, and v − v_s = O(h) on every state
    of the step, which keeps the products short); the residual is computed to h^k (a k-th
    order update must cancel h^0 … h^k). ``fixed`` is a tuple of (symbol, value) pairs
    substituted into the stage positions; p = k + 1 means "no residual up to h^k", i.e. local
    error O(h^{k+1}).

    The outputs the step is given (m0 at node 0, earlier m_j at a_j h) are the model on the
    exact path, v(a_j h) being the Picard series with h → a_j h. ``perturbed`` is a tuple of
    (label, q) pairs: that output is the model at v(a_j h) + e_j h^q with e_j a free symbol:
    an output evaluated at an approximate state, as a corrector reuses its predictor's.

    Exact arithmetic: sparse polynomials over Q in h, the model's coefficients, the e_j, the
    ratios and one more generator g standing for 1/D, D the least common denominator of the
    weights (a polynomial in the ratios). Each power of h in the residual is brought back to a
    single fraction N/D^k and is zero exactly when its numerator N is the zero polynomial.
    """
    degree = update.order
    fixed_values = dict(fixed)
    stages = [_substituted(stage, fixed_values) for stage in update.stages]
    kappa = _kappa(update)
    weights = _WeightFractions.of(stages, kappa, degree)
    exponents = [(a, b) for a in range(degree) for b in range(degree - a)]
    coefficients = [sp.Symbol(f"c_{a}{b}", real=True) for a, b in exponents]
    errors = [sp.Symbol(f"e_{label}", real=True) for label, _ in perturbed]
    v0 = sp.Symbol("v0", real=True)
    ring, H, V0, *generators = sp.ring(
        [h, v0, *coefficients, *errors, *weights.ratios, weights.inverse], sp.QQ
    )
    C = generators[: len(coefficients)]
    E = generators[len(coefficients) : len(coefficients) + len(errors)]

    def model(state, position):
        """Σ_a (v − v_s)^a Σ_b c_ab u^b, each power of v − v_s computed once, truncated."""
        inner = [ring.zero] * degree
        for (a, b), c in zip(exponents, C, strict=True):
            inner[a] += c * _truncated_power(position, b, degree)
        total, power, deviation = ring.zero, ring.one, state - V0
        for a in range(degree):
            total += _truncated_product(power, inner[a], degree)
            power = _truncated_product(power, deviation, degree)
        return total

    path = V0
    damping = _series_exp(ring, -kappa * H, degree)
    for _ in range(degree + 1):
        path = V0 + _integrate_in_h(_truncated_product(damping, model(path, H), degree - 1))
    shifts = {label: e * H**power for (label, power), e in zip(perturbed, E, strict=True)}
    values = {}
    for label, node in _inputs(stages).items():
        seen = _rescaled(path, ring(node)) + shifts.get(label, ring.zero)
        values[label] = model(_truncated(seen, degree), ring(node) * H)
    state = V0
    for stage in stages:
        end = ring(stage.end) * H
        damping = _series_exp(ring, -kappa * end, degree)
        pairs = zip(weights.in_ring(ring, stage.name), stage.node_labels, strict=True)
        total = sum((w * values[label] for w, label in pairs), ring.zero)
        state = V0 + _truncated_product(damping, total, degree)
        values[stage.name] = model(state, end)
    return _leading_with_inverse(path - state, degree, ring(weights.denominator))


def _leading_with_inverse(residual, degree: int, denominator) -> tuple[int, sp.Expr]:
    """(p, c) of a ring residual whose last generator g stands for 1/``denominator``.

    The h^p part Σ_k P_k g^k equals (Σ_k P_k D^{K−k}) / D^K, K its highest power of g.
    """
    ring = residual.ring
    parts = _by_h_degree(residual)
    for power in range(degree + 1):
        terms = parts.get(power, ring.zero)
        highest = max((m[-1] for m in terms), default=0)
        numerator = ring.zero
        for m, c in terms.items():
            plain = ring({(0, *m[1:-1], 0): c})
            numerator += plain * _power(denominator, highest - m[-1])
        if numerator:
            coefficient = numerator.as_expr() / denominator.as_expr() ** highest
            return power, sp.factor(coefficient)
    return degree + 1, sp.Integer(0)


def reused_outputs(update: Update, power: int) -> tuple:
    """``perturbed`` with every output the step is given (m0, m1, …) off the path by e_j h^power.

    In a corrected run of order K, m0, m1, … were evaluated at the predicted (uncorrected) states
    of the earlier steps, off the exact path by O(h^K) once the predictors have order K − 1.
    """
    return tuple((label, power) for label in _inputs(list(update.stages)))


class StepProof(NamedTuple):
    """The state-dependent local error of one step of a corrected run.

    ``step`` is the step index of the start, ``"steady"`` for every later step but the last, or
    ``"last"``; ``update`` the update it takes; ``perturbed`` the (label, q) pairs of its reused
    outputs (off the exact path by e_j h^q); local error O(h^``power``), at least ``needed``.
    """

    step: str
    update: Update
    perturbed: tuple
    power: int
    needed: int


def corrected_run(prediction: str, order: int) -> tuple[StepProof, ...]:
    """Local errors of every kind of step of a corrected ODE run of ``order`` K = p + 1.

    Without an order-preserving start (K ≤ 3), step i ≥ 0 predicts with order
    p_i = min(p, i + 1) (the warm-up; no extra call) and corrects with ``corrector(p_i + 1)``.
    With one (K = 4, see [`order_preserving_start`][derivations.updates.order_preserving_start])
    step 0 is the singlestep update of order K − 1 without corrector, so step 1 evaluates its own
    m0, and the corrected steps i ≥ 1 follow the same rule. Step i is given m0 from grid point i,
    m1 from i − 1, …: the output at grid point j was evaluated at step j − 1's predicted state,
    off the exact path by that predictor's local error O(h^{p_{j−1} + 1}), or at a state the run
    computed (j = 0, or after an uncorrected step): exact here, the difference being global
    error, which the usual stability argument carries. Every step up to the first whose inputs
    all come from order-p predictors is listed: local error O(h^K), enough on a bounded number of
    steps; from there on (``"steady"``) O(h^{K+1}) is needed. The last step is the predictor
    alone (its call would be an extra one): O(h^K) on one step. Global order K follows.
    """
    p = order - 1
    steady = corrector("ode", prediction, order)
    start = order_preserving_start(steady)
    rows: list[tuple[str, Update, tuple, tuple, int]] = []
    error_powers: list[int | None] = [None]
    if start is not None:
        rows.append(("0", start, singlestep_fixed_parameters(start), (), order))
        error_powers.append(None)
    i = len(rows)
    while True:
        p_i = min(p, i + 1)
        inputs = [(f"m{j}", error_powers[i - j]) for j in range(p_i)]
        if p_i == p and all(q == order for _, q in inputs):
            break
        update = corrector("ode", prediction, p_i + 1)
        perturbed = tuple((label, q) for label, q in inputs if q is not None)
        rows.append((str(i), update, (), perturbed, order))
        error_powers.append(p_i + 1)
        i += 1
    rows.append(("steady", steady, (), reused_outputs(steady, order), order + 1))
    last = multistep("ode", prediction, p)
    rows.append(("last", last, (), reused_outputs(last, order), order))
    return tuple(
        StepProof(
            step,
            update,
            perturbed,
            state_dependent_local_error(update, fixed, perturbed)[0],
            needed,
        )
        for step, update, fixed, perturbed, needed in rows
    )


def _substituted(stage: Stage, values: dict) -> Stage:
    return Stage(
        stage.name,
        tuple(sp.sympify(n).subs(values) for n in stage.nodes),
        stage.node_labels,
        sp.sympify(stage.end).subs(values),
    )


def third_order_singlestep_condition(update: Update) -> list[sp.Expr]:
    """Values of r₂ that cancel the h³ term of the state-dependent residual (for any r₁, model)."""
    power, coeff = state_dependent_local_error(update)
    if power != update.order:
        raise ValueError(f"expected an h^3 leading residual before fixing r2, got h^{power}")
    numerator = sp.numer(sp.together(coeff))
    polynomial = sp.Poly(numerator, *sorted(numerator.free_symbols - {r2}, key=str))
    conditions = set()
    for c in polynomial.coeffs():
        conditions |= set(sp.solve(c, r2))
    common = [
        root
        for root in conditions
        if all(sp.simplify(c.subs(r2, root)) == 0 for c in polynomial.coeffs())
    ]
    return sorted(common, key=sp.default_sort_key)


def singlestep_fixed_parameters(update: Update) -> tuple:
    """Stage positions fixed by the order conditions: ((r₂, 2/3),) for third order, else ()."""
    return ((r2, SINGLESTEP_THIRD_ORDER_R2),) if update.order == 3 else ()
