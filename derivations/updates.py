"""Exponential-integrator updates of the MR Sampler: Taylor/φ weights, multistep and singlestep.

Every step integrates the network term of a semi-analytical solution
([`derivations.solutions`][derivations.solutions]) over [λ_s, λ_s + E] with E = c·h,

    scale_E · ∫₀^E e^{κ(E − u)} m(λ_s + u) du,

by replacing m with the polynomial interpolating the available outputs m_j at nodes u_j = a_j h.
Taylor-expanding that polynomial at λ_s (m ≈ Σ_n D_n u^n/n!) and integrating term by term gives the
φ-function weights of [`derivations.phi.kernel_moment`][derivations.phi.kernel_moment]:

    ∫₀^E e^{κ(E−u)} u^n/n! du = E^{n+1} φ_{n+1}(κE),     D_n = Σ_j L_j^{(n)}(0) m_j / h^n,

with L_j the Lagrange basis on the unit nodes a_j. The weight of output m_j is therefore

    w_j = scale_E · h · Σ_n L_j^{(n)}(0) c^{n+1} φ_{n+1}(κ c h).

Multistep (one new network call per step): nodes 0, −r₁, −(r₁ + r₂), … with
r_i = (λ_{s−i+1} − λ_{s−i})/h the earlier step sizes in units of h (left symbolic).
Singlestep (extra calls inside the step): stages end at λ_s + c h with c ∈ (0, 1), each a
lower-order update whose output becomes a node of the next.

- order 2: stage at r (first order), final on nodes {0, r};
- order 3: stage at r₁ (first order), stage at r₂ on nodes {0, r₁}, final on nodes {0, r₁, r₂}.
  Third order for a state-dependent model requires r₂ = 2/3 (derived in
  [`derivations.order_proofs`][derivations.order_proofs]); r₁ stays free.

Corrector (ODE; UniC-style, one network call per step like multistep): the multistep predictor of
order k gives x̃_t; the model is called once there, m̃ = m(x̃_t, λ_t), and the step is recomputed
from the same x_s through the k + 1 nodes {1, 0, −r₁, …}: an exponential Adams–Moulton step of
order k + 1 with the exact φ-weights above. UniPC's B(h) variants (B(h) = h or e^h − 1)
approximate these weights: they keep the φ₁ term and fit the higher ones through a Vandermonde
system scaled by B(h), exact only to the order needed; here the weights are the exact integrals
of the interpolating polynomial, which the polynomial-exactness proof checks. m̃ was evaluated at
the uncorrected state and becomes the next step's m0, so the correction costs no call.

A step of any kind is linear in its inputs:

    x_e = c_x x_s + c_μ μ + Σ_j c_j m_j (+ c_z z for SDEs),   c_μ = 1 − c_x − [data form] Σ_j c_j,

and these coefficients are what the generated functions return.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import sympy as sp

from derivations.phi import kernel_moment
from derivations.solutions import (
    METHODS,
    PREDICTIONS,
    alpha_s,
    alpha_t,
    sigma_s,
    sigma_t,
    step_solution,
)
from derivations.symbols import h, u

r, r1, r2 = sp.symbols("r r1 r2", positive=True)
"""Step-size ratios: multistep r_i = h_{−i}/h; singlestep stage positions r, r₁, r₂ in (0, 1)."""

alpha_e, sigma_e = sp.symbols("alpha_e sigma_e", positive=True)
"""α and σ at the end of a stage (λ_s + c h); equal to α_t, σ_t for the final stage."""

MULTISTEP_ORDERS = {"ode": (1, 2, 3), "sde": (1, 2)}
SINGLESTEP_ORDERS = (2, 3)
CORRECTOR_ORDERS = (2, 3, 4)
"""Orders of the corrected ODE updates (predictor of order one less)."""
PREDICTOR_LABEL = "predictor"
"""Label of a corrector's model output at the predicted state (the predictor stage's name)."""
SINGLESTEP_THIRD_ORDER_R2 = sp.Rational(2, 3)
"""Stage position r₂ that makes the third-order singlestep update third order (see order_proofs)."""


@dataclass(frozen=True)
class Stage:
    """One exponential-integrator stage: integrate over [0, end·h] through the unit ``nodes``.

    ``node_labels`` name the outputs at the nodes (``"m0"`` at λ_s, ``"m1"`` one step back, …,
    or the label of an earlier stage's output).
    """

    name: str
    nodes: tuple[sp.Expr, ...]
    node_labels: tuple[str, ...]
    end: sp.Expr


@dataclass(frozen=True)
class Update:
    """A named update: method, solver prediction, scheme, order, its stages and parameters."""

    method: str
    prediction: str
    scheme: str
    order: int
    stages: tuple[Stage, ...]
    parameters: tuple[sp.Symbol, ...]

    @property
    def name(self) -> str:
        """Identifier used in generated function names, e.g. ``ode_data_multistep_3``."""
        return f"{self.method}_{self.prediction}_{self.scheme}_{self.order}"

    @property
    def model_calls(self) -> int:
        """Network evaluations per step: the number of stages for singlestep, else 1.

        A corrector's call at the predicted state is the next step's m0: one call per step.
        """
        return len(self.stages) if self.scheme == "singlestep" else 1


def multistep(method: str, prediction: str, order: int) -> Update:
    """The k-step exponential Adams update of the given order (nodes 0, −r₁, −(r₁+r₂))."""
    _check(method, prediction)
    if order not in MULTISTEP_ORDERS[method]:
        raise ValueError(
            f"multistep order {order} is not derived for {method}; "
            f"allowed: {MULTISTEP_ORDERS[method]}"
        )
    ratios = (r1, r2)[: order - 1]
    nodes = [sp.Integer(0)]
    for ratio in ratios:
        nodes.append(nodes[-1] - ratio)
    labels = tuple(f"m{j}" for j in range(order))
    stage = Stage("step", tuple(nodes), labels, sp.Integer(1))
    return Update(method, prediction, "multistep", order, (stage,), ratios)


def singlestep(method: str, prediction: str, order: int) -> Update:
    """The singlestep update of order 2 (stage at r) or 3 (stages at r₁, r₂); ODE only."""
    _check(method, prediction)
    if method != "ode" or order not in SINGLESTEP_ORDERS:
        raise ValueError(
            f"singlestep updates are derived for method 'ode' with orders {SINGLESTEP_ORDERS}; "
            f"got method {method!r}, order {order}"
        )
    zero = sp.Integer(0)
    if order == 2:
        stages = (
            Stage("stage1", (zero,), ("m0",), r),
            Stage("step", (zero, r), ("m0", "stage1"), sp.Integer(1)),
        )
        return Update(method, prediction, "singlestep", 2, stages, (r,))
    stages = (
        Stage("stage1", (zero,), ("m0",), r1),
        Stage("stage2", (zero, r1), ("m0", "stage1"), r2),
        Stage("step", (zero, r1, r2), ("m0", "stage1", "stage2"), sp.Integer(1)),
    )
    return Update(method, prediction, "singlestep", 3, stages, (r1, r2))


def corrector(method: str, prediction: str, order: int) -> Update:
    """The corrected update of ``order`` k + 1: multistep-k predictor, then nodes {1, 0, −r₁, …}.

    Stage ``predictor`` is the k-step update to λ_s + h (its output, labelled ``predictor``, is
    the model at the predicted state); stage ``step`` integrates from x_s again through that
    output and the predictor's nodes: the exponential Adams–Moulton step of order k + 1.
    """
    _check(method, prediction)
    if method != "ode" or order not in CORRECTOR_ORDERS:
        raise ValueError(
            f"correctors are derived for method 'ode' with orders {CORRECTOR_ORDERS}; "
            f"got method {method!r}, order {order}"
        )
    predictor = multistep(method, prediction, order - 1)
    (stage,) = predictor.stages
    stages = (
        Stage(PREDICTOR_LABEL, stage.nodes, stage.node_labels, sp.Integer(1)),
        Stage(
            "step",
            (sp.Integer(1), *stage.nodes),
            (PREDICTOR_LABEL, *stage.node_labels),
            sp.Integer(1),
        ),
    )
    return Update(method, prediction, "corrector", order, stages, predictor.parameters)


def order_preserving_start(update: Update) -> Update | None:
    """The first step a run of ``update`` takes to keep its global order K, or None.

    The first step has only m0. One step of local error O(h^K) costs O(h^K) globally, so the first
    step needs local order K, not K + 1. A first-order step (local O(h²)) is enough for a
    multistep run of order K ≤ 2; a corrected first-order step (local O(h³), no extra call) for a
    corrected run of order K ≤ 3 (its warm-up is proved in
    [`corrected_run`][derivations.order_proofs.corrected_run]). Beyond, the run starts with the
    singlestep update of order K − 1 (local O(h^K)): multistep order 3 with singlestep 2 (+1
    call), corrected order 4 with singlestep 3 (+2 calls, and no corrector on that step, so the
    next step evaluates its own m0).
    """
    warm_up_keeps = 3 if update.scheme == "corrector" else 2
    if update.scheme == "singlestep" or update.order <= warm_up_keeps:
        return None
    return singlestep(update.method, update.prediction, update.order - 1)


def all_updates() -> tuple[Update, ...]:
    """Every update that is derived, proved and generated."""
    updates = [
        multistep(method, prediction, order)
        for method in METHODS
        for prediction in PREDICTIONS
        for order in MULTISTEP_ORDERS[method]
    ]
    updates += [singlestep("ode", p, k) for p in PREDICTIONS for k in SINGLESTEP_ORDERS]
    updates += [corrector("ode", p, k) for p in PREDICTIONS for k in CORRECTOR_ORDERS]
    return tuple(updates)


@cache
def lagrange_derivatives(nodes: tuple[sp.Expr, ...]) -> tuple[tuple[sp.Expr, ...], ...]:
    """L_j^{(n)}(0) for the Lagrange basis on ``nodes``: rows j, columns n = 0..len−1."""
    a = sp.Symbol("a", real=True)
    rows = []
    for j, node in enumerate(nodes):
        basis = sp.Integer(1)
        for i, other in enumerate(nodes):
            if i != j:
                basis *= (a - other) / (node - other)
        rows.append(tuple(sp.simplify(basis.diff(a, n).subs(a, 0)) for n in range(len(nodes))))
    return tuple(rows)


def kernel_weights(stage: Stage, kappa: sp.Expr) -> tuple[sp.Expr, ...]:
    """Unscaled weights W_j = h Σ_n L_j^{(n)}(0) c^{n+1} φ_{n+1}(κ c h) of a stage's outputs.

    The integral ∫₀^{ch} e^{κ(ch−u)} P(u) du of the interpolating polynomial P equals Σ_j W_j m_j.
    """
    end = stage.end * h
    weights = []
    for row in lagrange_derivatives(stage.nodes):
        weight = sum(
            derivative / h**n * kernel_moment(kappa, end, n) for n, derivative in enumerate(row)
        )
        weights.append(sp.factor_terms(sp.expand(weight)))
    return tuple(weights)


@dataclass(frozen=True)
class StageCoefficients:
    """The linear coefficients of one stage: x_e = c_x x_s + c_μ μ + Σ c_j m_j + c_z z."""

    x: sp.Expr
    mu: sp.Expr
    outputs: tuple[sp.Expr, ...]
    noise: sp.Expr


def stage_coefficients(update: Update, stage: Stage) -> StageCoefficients:
    """Coefficients of ``stage`` in terms of h, the ratios and α_s, σ_s, α_e, σ_e."""
    solved = step_solution(update.method, update.prediction)
    at_end = {alpha_t: alpha_e, sigma_t: sigma_e, h: stage.end * h}
    x_coefficient = sp.sympify(solved.x_coefficient).subs(at_end, simultaneous=True)
    scale = sp.sympify(solved.scale).subs(at_end, simultaneous=True)
    noise = sp.sympify(solved.noise_std).subs(at_end, simultaneous=True)
    outputs = tuple(scale * w for w in kernel_weights(stage, solved.kappa))
    output_sum = sp.simplify(sum(outputs)) if update.prediction == "data" else 0
    mu = 1 - x_coefficient - output_sum
    return StageCoefficients(x_coefficient, mu, outputs, noise)


def taylor_expansion(method: str, prediction: str, order: int) -> sp.Expr:
    """Σ_{n<order} scale h^{n+1} φ_{n+1}(κh) m^{(n)}(λ_s): the truncated Taylor-φ integral."""
    solved = step_solution(method, prediction)
    m = sp.Function("m")
    return sum(
        solved.scale * kernel_moment(solved.kappa, h, n) * sp.Derivative(m(u), (u, n)).subs(u, 0)
        for n in range(order)
    )


def clean_limit(method: str) -> StageCoefficients:
    """First-order data-form step landing on σ = 0 (α = 1, λ = +∞): the limit h → ∞.

    x_t → x̂₀: the coefficients of x_s and μ vanish, the data prediction's tends to 1 and the
    SDE noise to 0. Higher orders have no such limit (their ratios r_i = h_{−i}/h → 0).
    """
    update = multistep(method, "data", 1)
    stage = update.stages[0]
    c = stage_coefficients(update, stage)
    at_clean = {sigma_e: 0, alpha_e: 1}

    def limit(expr):
        return sp.limit(sp.sympify(expr).subs(at_clean).rewrite(sp.exp), h, sp.oo)

    return StageCoefficients(
        limit(c.x), limit(c.mu), tuple(limit(w) for w in c.outputs), limit(c.noise)
    )


UPDATE_INPUTS = (alpha_s, sigma_s, alpha_e, sigma_e)
"""Schedule values every generated stage function takes after h and the ratios."""


def _check(method: str, prediction: str) -> None:
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; allowed: {', '.join(METHODS)}")
    if prediction not in PREDICTIONS:
        raise ValueError(f"unknown prediction {prediction!r}; allowed: {', '.join(PREDICTIONS)}")
