"""Baseline samplers of the reverse MR equations, derived as linear step coefficients.

A step goes from s (noisier) to t (cleaner), Δ = s − t > 0. With the score s = −ε̂/σ and the MR
constraint g² = 2Λ²θ (see [Reverse-time equations](../../theory.md#reverse-time-equations)),
the reverse drifts in t are

    reverse SDE:  f_sde(x, τ) = θ(μ − x) + g² ε̂/σ,      PF-ODE:  f_ode(x, τ) = θ(μ − x) + ½ g² ε̂/σ,

and the baselines step backward in time by Δ (noise-prediction input ε̂):

    Euler–Maruyama  x_t = x_s − Δ f_sde(x_s, s) + g_s √Δ z
    Euler (ODE)     x_t = x_s − Δ f_ode(x_s, s)
    Heun (ODE)      x̃ = x_s − Δ f_ode(x_s, s)                              (predictor)
                    x_t = x_s − (Δ/2) [f_ode(x_s, s) + f_ode(x̃, t)]        (corrector)

The corrector's second output is ε̂_t = ε̂(x̃, t) and it divides by σ_t: where the last step ends at
σ_t = 0 (the −θ₀ convention at t = 0) Heun is undefined, and the runtime must take that step with
Euler instead (``Baseline.defined_at_sigma_zero``).

IR-SDE posterior sampling draws x_t from p(x_t | x_s, x_0 = x̂₀) (data-prediction input). From
the forward process ([`derivations.forward`][derivations.forward]), with y = x − μ and
a = α_s/α_t,

    y_t | y_0 ~ N(α_t y_0, σ_t²),        y_s | y_t ~ N(a y_t, Λ²(1 − a²)),

and conditioning these Gaussians (completing the square, checked against the joint-Gaussian
formula) gives, after Λ is eliminated through the marginal at s (σ_s² = a²σ_t² + Λ²(1 − a²)),

    E[y_t] = (α_s σ_t²/(α_t σ_s²)) y_s + α_t (1 − α_s²σ_t²/(α_t²σ_s²)) ŷ_0,
    Var    = σ_t² (1 − α_s²σ_t²/(α_t²σ_s²)).

With λ = log α − log σ and h = λ_t − λ_s, α_sσ_t/(α_tσ_s) = e^{−h}: strided posterior sampling is
the first-order data-form SDE update of the MR Sampler (``check_posterior_is_sde_data_step``).

Generated inputs are float64 schedule values (broadcastable tensors or arrays), always named and
ordered as in ``BASELINE_INPUTS``; each generated function takes the ones it uses:

    dt         Δ = s − t > 0, in the time unit of θ
    theta_s    θ(s)                     theta_t   θ(t)
    alpha_s    α(s)                     alpha_t   α(t)
    sigma_s    σ(s) > 0                 sigma_t   σ(t) (Heun's corrector needs σ_t > 0)
    max_sigma  Λ (IR-SDE ``max_sigma``); g = Λ sqrt(2θ) is computed, never passed

Declared orders (``BASELINES``) are proved here where marked, otherwise taken from the literature:
Euler and Heun local errors O(Δ²), O(Δ³) are proved by ``local_error`` (global orders 1, 2).
Euler–Maruyama has strong order 1/2 in general, but the MR noise is additive (g depends on t only),
where it coincides with the Milstein scheme: strong order 1, weak order 1 (Kloeden & Platen,
*Numerical Solution of SDEs*, 1992, §10.2–10.3 and §14.1). Posterior sampling is proved equal to
the SDE-1 data update, so it has that update's orders: strong 1, weak 1 (see
[Strong and weak order](../../theory.md#strong-and-weak-order)).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, partial

import sympy as sp

from derivations import forward, log_snr, solutions, updates
from derivations.solutions import alpha_s, alpha_t, sigma_s, sigma_t
from derivations.symbols import Lambda, lam, lam_s, mu, t, theta, x0
from derivations.updates import StageCoefficients

dt = sp.Symbol("dt", positive=True)
"""Δ = s − t > 0: the step length in time."""
theta_s, theta_t = sp.symbols("theta_s theta_t", positive=True)
"""θ at the two ends of a step."""
max_sigma = sp.Symbol("max_sigma", positive=True)
"""Λ under its generated argument name (IR-SDE ``max_sigma``)."""

BASELINE_INPUTS = (dt, theta_s, alpha_s, sigma_s, theta_t, alpha_t, sigma_t, max_sigma)
"""Argument order of every generated baseline function (each takes the subsequence it uses)."""

x_s = sp.Symbol("x_s", real=True)
"""The state at s."""
z = sp.Symbol("z", real=True)
"""A standard normal draw."""
y_0, y_s, y_t = sp.symbols("y_0 y_s y_t", real=True)
"""x_0 − μ, x_s − μ, x_t − μ."""


@dataclass(frozen=True)
class Baseline:
    """A baseline sampler: what it integrates, with which input, its declared orders and stages.

    ``order`` is the global order in Δ (ODE) or the strong order (SDE; ``strong_order`` and
    ``weak_order`` are None for ODEs); ``order_basis`` says whether it is proved here, inherited
    or taken from the literature. ``stages`` are stage names, the last one ``"step"``;
    ``node_labels[i]`` name the network outputs stage i consumes (``"m0"`` at (x_s, s), or an
    earlier stage's name for the output at that stage's state and time t).
    ``equivalent_update`` names an MR Sampler update that is the same step, and
    ``defined_at_sigma_zero`` is False where the step divides by σ_t (Heun's corrector).
    """

    id: str
    summary: str
    method: str
    prediction: str
    order: int
    strong_order: int | None
    weak_order: int | None
    stages: tuple[str, ...]
    node_labels: tuple[tuple[str, ...], ...]
    order_basis: str
    equivalent_update: str | None
    defined_at_sigma_zero: bool

    @property
    def model_calls(self) -> int:
        """Network evaluations per step: one per stage."""
        return len(self.stages)

    def function_name(self, stage: str) -> str:
        """Generated name: the id in snake case, with ``_<stage>`` for a stage before the last."""
        name = self.id.replace("-", "_")
        return name if stage == "step" else f"{name}_{stage}"


BASELINES = {
    "euler-maruyama": Baseline(
        id="euler-maruyama",
        summary="Euler–Maruyama step of the reverse SDE, backward in time by dt",
        method="sde",
        prediction="noise",
        order=1,
        strong_order=1,
        weak_order=1,
        stages=("step",),
        node_labels=(("m0",),),
        order_basis=(
            "literature: additive noise, where Euler-Maruyama is the Milstein scheme "
            "(Kloeden & Platen 1992, sec. 10.2-10.3 strong, 14.1 weak)"
        ),
        equivalent_update=None,
        defined_at_sigma_zero=True,
    ),
    "posterior": Baseline(
        id="posterior",
        summary="IR-SDE posterior sampling: x_t ~ p(x_t | x_s, x_0 = x̂₀)",
        method="sde",
        prediction="data",
        order=1,
        strong_order=1,
        weak_order=1,
        stages=("step",),
        node_labels=(("m0",),),
        order_basis=(
            "inherited: proved equal to sde_data_multistep_1 (check_posterior_is_sde_data_step), "
            "whose orders are those of docs/theory.md#strong-and-weak-order"
        ),
        equivalent_update="sde_data_multistep_1",
        defined_at_sigma_zero=True,
    ),
    "euler-ode": Baseline(
        id="euler-ode",
        summary="Euler step of the PF-ODE, backward in time by dt",
        method="ode",
        prediction="noise",
        order=1,
        strong_order=None,
        weak_order=None,
        stages=("step",),
        node_labels=(("m0",),),
        order_basis="proved: local error O(dt^2) (derivations.baselines.local_error)",
        equivalent_update=None,
        defined_at_sigma_zero=True,
    ),
    "heun-ode": Baseline(
        id="heun-ode",
        summary="Heun (explicit trapezoid) step of the PF-ODE, backward in time by dt",
        method="ode",
        prediction="noise",
        order=2,
        strong_order=None,
        weak_order=None,
        stages=("predictor", "step"),
        node_labels=(("m0",), ("m0", "predictor")),
        order_basis="proved: local error O(dt^3) (derivations.baselines.local_error)",
        equivalent_update=None,
        defined_at_sigma_zero=False,
    ),
}
"""Every baseline, by id."""


def output_symbol(label: str) -> sp.Symbol:
    """The network output named ``label`` (ε̂ or x̂₀ at that node) as a symbol."""
    return sp.Symbol(f"m_{label}", real=True)


def reverse_drift(x, eps, theta_value, sigma_value, method: str) -> sp.Expr:
    """θ(μ − x) − c g² s with s = −ε̂/σ, g² = 2Λ²θ, c = ½ (ODE) or 1 (SDE), at one time."""
    weight = sp.Rational(1, 2) if method == "ode" else 1
    g2 = forward.g_squared().subs(theta(t), theta_value)
    score = -eps / sigma_value
    return theta_value * (mu - x) - weight * g2 * score


def _euler(method: str) -> sp.Expr:
    return x_s - dt * reverse_drift(x_s, output_symbol("m0"), theta_s, sigma_s, method)


def stage_value(baseline: Baseline, stage: str) -> sp.Expr:
    """x at the end of ``stage`` as an expression in x_s, μ, the outputs, the inputs and z."""
    if baseline.id == "posterior":
        mean_x, mean_data, variance = posterior_in_schedule_values()
        data = output_symbol("m0") - mu
        return mu + mean_x * (x_s - mu) + mean_data * data + sp.sqrt(variance) * z
    if baseline.id == "euler-maruyama":
        g = sp.sqrt(forward.g_squared().subs(theta(t), theta_s))
        return _euler("sde") + g * sp.sqrt(dt) * z
    if baseline.id != "heun-ode" or stage == "predictor":
        return _euler("ode")
    at_s = reverse_drift(x_s, output_symbol("m0"), theta_s, sigma_s, "ode")
    predictor = _euler("ode")
    at_t = reverse_drift(predictor, output_symbol("predictor"), theta_t, sigma_t, "ode")
    return x_s - dt / 2 * (at_s + at_t)


@cache
def stage_coefficients(baseline: Baseline, stage: str) -> StageCoefficients:
    """The stage as x_e = c_x x_s + c_μ μ + Σ_j c_j m_j + c_z z (c_z = 0 for ODEs).

    Coefficients are derivatives of [`stage_value`][derivations.baselines.stage_value]; a non-linear
    remainder is an error.
    """
    value = sp.expand(stage_value(baseline, stage))
    labels = baseline.node_labels[baseline.stages.index(stage)]
    variables = (x_s, mu, *(output_symbol(label) for label in labels), z)
    coefficients = [sp.simplify(value.diff(v)) for v in variables]
    remainder = sp.simplify(
        value - sum(c * v for c, v in zip(coefficients, variables, strict=True))
    )
    if remainder != 0:
        raise ValueError(f"{baseline.id} stage {stage} is not linear in its inputs: {remainder}")
    return StageCoefficients(
        coefficients[0], coefficients[1], tuple(coefficients[2:-1]), coefficients[-1]
    )


def generated_coefficients(baseline: Baseline, stage: str) -> StageCoefficients:
    """`stage_coefficients` as the generated code takes it.

    Λ is written ``max_sigma``, and irrational constants such as √2 become float64 literals
    (``torch.sqrt`` takes tensors only).
    """
    c = stage_coefficients(baseline, stage)

    def generated(expr: sp.Expr) -> sp.Expr:
        expr = sp.sympify(expr).subs(Lambda, max_sigma)
        return expr.replace(lambda e: e.is_Pow and e.is_number, lambda e: e.evalf(17))

    return StageCoefficients(
        generated(c.x), generated(c.mu), tuple(map(generated, c.outputs)), generated(c.noise)
    )


def stage_arguments(baseline: Baseline, stage: str) -> tuple[sp.Symbol, ...]:
    """The entries of ``BASELINE_INPUTS`` that the generated stage function uses, in order."""
    c = generated_coefficients(baseline, stage)
    used = set().union(*(sp.sympify(e).free_symbols for e in (c.x, c.mu, *c.outputs, c.noise)))
    return tuple(a for a in BASELINE_INPUTS if a in used)


def transition() -> tuple[sp.Expr, sp.Expr]:
    """(a, v) of y_s | y_t ~ N(a y_t, v): the forward marginal restarted at t.

    The MR process is Markov with time-homogeneous structure in Θ, so from t to s it is the
    marginal of [`derivations.forward`][derivations.forward] with Θ replaced by
    Θ_s − Θ_t = log(α_t/α_s).
    """
    shift = {forward.Theta(): sp.log(alpha_t / alpha_s)}
    mean = sp.expand(forward.marginal_mean().subs(shift))
    gain = sp.simplify(mean.diff(x0))
    return gain, sp.simplify(forward.marginal_variance().subs(shift))


def _prior() -> tuple[sp.Expr, sp.Expr]:
    """(mean, variance) of y_t | y_0: the forward marginal at t (variance named σ_t²)."""
    mean = sp.expand(forward.marginal_mean().subs(forward.Theta(), -sp.log(alpha_t)))
    return mean.diff(x0) * y_0, sigma_t**2


def posterior_by_completing_the_square() -> tuple[sp.Expr, sp.Expr]:
    """(mean of y_t as a function of y_s, y_0; variance) from log p(y_t | y_0) + log p(y_s | y_t).

    The sum is quadratic in y_t, A y_t² + B y_t + C, so the posterior has precision −2A and mean
    B/(−2A).
    """
    prior_mean, prior_var = _prior()
    gain, noise_var = transition()
    log_density = -((y_t - prior_mean) ** 2) / (2 * prior_var) - (y_s - gain * y_t) ** 2 / (
        2 * noise_var
    )
    poly = sp.Poly(sp.expand(log_density), y_t)
    precision = -2 * poly.coeff_monomial(y_t**2)
    return sp.simplify(poly.coeff_monomial(y_t) / precision), sp.simplify(1 / precision)


def posterior_by_joint_gaussian() -> tuple[sp.Expr, sp.Expr]:
    """The same posterior from the joint law of (y_t, y_s): E[y_t] + C/V (y_s − E[y_s]), P − C²/V.

    y_t = m + √P ε₁ and y_s = a y_t + √v ε₂ with independent standard ε₁, ε₂; the moments are
    read off these linear forms.
    """
    prior_mean, prior_var = _prior()
    gain, noise_var = transition()
    e1, e2 = sp.symbols("e1 e2", real=True)
    path_t = prior_mean + sp.sqrt(prior_var) * e1
    path_s = gain * path_t + sp.sqrt(noise_var) * e2

    def centred(expr):
        return [sp.expand(expr).coeff(e) for e in (e1, e2)]

    def covariance(left, right):
        return sum(a * b for a, b in zip(centred(left), centred(right), strict=True))

    mean_s = path_s.subs({e1: 0, e2: 0})
    cov, var_s = covariance(path_t, path_s), covariance(path_s, path_s)
    mean = prior_mean + cov / var_s * (y_s - mean_s)
    return sp.simplify(mean), sp.simplify(covariance(path_t, path_t) - cov**2 / var_s)


def eliminated_max_sigma() -> sp.Expr:
    """Λ² solved from the marginal at s, σ_s² = a²σ_t² + v (Chapman–Kolmogorov for the variance)."""
    gain, noise_var = transition()
    square = sp.Symbol("Lambda_squared", positive=True)
    balance = gain**2 * sigma_t**2 + noise_var.subs(Lambda, sp.sqrt(square)) - sigma_s**2
    (root,) = sp.solve(balance, square)
    return root


@cache
def posterior_in_schedule_values() -> tuple[sp.Expr, sp.Expr, sp.Expr]:
    """(coefficient of y_s, coefficient of ŷ_0, variance) of the posterior in α_s, σ_s, α_t, σ_t."""
    mean, variance = posterior_by_completing_the_square()
    eliminate = {Lambda: sp.sqrt(eliminated_max_sigma())}
    mean = sp.expand(sp.simplify(mean.subs(eliminate)))
    return (
        sp.simplify(mean.coeff(y_s)),
        sp.simplify(mean.coeff(y_0)),
        sp.factor(sp.simplify(variance.subs(eliminate))),
    )


def check_posterior_two_ways() -> sp.Expr:
    """Completing the square − joint-Gaussian formula, mean and variance (zero when they agree)."""
    mean_a, var_a = posterior_by_completing_the_square()
    mean_b, var_b = posterior_by_joint_gaussian()
    return sp.simplify((mean_a - mean_b) ** 2 + (var_a - var_b) ** 2)


def _mr_sigmas() -> dict:
    """σ = Λ sqrt(1 − α²) at both ends (the MR marginal std)."""
    return {
        sigma_s: Lambda * sp.sqrt(1 - alpha_s**2),
        sigma_t: Lambda * sp.sqrt(1 - alpha_t**2),
    }


def check_transition_composes() -> sp.Expr:
    """(a α_t − α_s)² + (a²σ_t² + v − σ_s²)² with MR σ's: the transition maps the marginal at t
    onto the marginal at s (zero when it does), which is what licenses eliminating Λ."""
    gain, noise_var = transition()
    mean_gap = gain * alpha_t - alpha_s
    var_gap = (gain**2 * sigma_t**2 + noise_var - sigma_s**2).subs(_mr_sigmas())
    return sp.simplify(mean_gap**2 + var_gap**2)


def check_eliminated_max_sigma() -> sp.Expr:
    """Λ² solved from the marginal at s − Λ², with MR σ's (zero when the elimination is exact)."""
    return sp.simplify(eliminated_max_sigma().subs(_mr_sigmas()) - Lambda**2)


def check_posterior_preserves_marginal() -> sp.Expr:
    """With x̂₀ = x₀ and y_s ~ N(α_s y_0, σ_s²), the step yields y_t ~ N(α_t y_0, σ_t²).

    Returns (mean gap)² + (variance gap)² (zero when the posterior step keeps the marginal).
    """
    c = stage_coefficients(BASELINES["posterior"], "step")
    data = c.outputs[0]
    mean_gap = c.x * alpha_s + data - alpha_t
    var_gap = c.x**2 * sigma_s**2 + c.noise**2 - sigma_t**2
    return sp.simplify(mean_gap**2 + var_gap**2)


def _in_lam() -> dict:
    """α, σ at λ_s and λ_t = λ_s + h via σ(λ) = Λ/sqrt(1 + Λ²e^{2λ}), α = e^{λ}σ."""
    return {
        alpha_s: log_snr.alpha_of_lam().subs(lam, lam_s),
        sigma_s: log_snr.sigma_of_lam().subs(lam, lam_s),
        alpha_t: log_snr.alpha_of_lam().subs(lam, lam_s + solutions.h),
        sigma_t: log_snr.sigma_of_lam().subs(lam, lam_s + solutions.h),
    }


def check_posterior_is_sde_data_step() -> sp.Expr:
    """Posterior − first-order data-form SDE update, in λ (zero when they are the same step).

    Sums the squared gaps of the x, μ and x̂₀ coefficients and of the noise variance.
    """
    update = updates.multistep("sde", "data", 1)
    sde = updates.stage_coefficients(update, update.stages[0])
    at_t = {updates.alpha_e: alpha_t, updates.sigma_e: sigma_t}
    post = stage_coefficients(BASELINES["posterior"], "step")
    pairs = [
        (post.x, sde.x),
        (post.mu, sde.mu),
        (post.outputs[0], sde.outputs[0]),
        (post.noise**2, sde.noise**2),
    ]
    total = 0
    for mine, theirs in pairs:
        theirs = sp.sympify(theirs).subs(at_t).rewrite(sp.exp)
        gap = sp.simplify((mine - theirs).subs(_in_lam()))
        total += gap**2
    return sp.simplify(total)


def check_drift_is_reverse_drift(baseline_id: str) -> sp.Expr:
    """(x_s − first-stage mean)/Δ − ``solutions.reverse_drift_in_t`` at s, plus a noise gap.

    The noise gap is noise² − g²Δ for the SDE and the noise coefficient itself for an ODE; the sum
    is zero when the first stage is an Euler(–Maruyama) step of the solutions module's equation.
    """
    baseline = BASELINES[baseline_id]
    c = stage_coefficients(baseline, baseline.stages[0])
    eps = output_symbol("m0")
    drift = (x_s - (c.x * x_s + c.mu * mu + c.outputs[0] * eps)) / dt
    in_t = {
        theta_s: theta(t),
        sigma_s: forward.sigma(),
        eps: solutions.eps_hat(lam),
        x_s: solutions.x,
    }
    big_theta = sp.Symbol("Theta", positive=True)
    gap = (drift.subs(in_t) - solutions.reverse_drift_in_t(baseline.method)).subs(
        forward.Theta(), big_theta
    )
    if baseline.method == "sde":
        noise_gap = (c.noise**2 - forward.g_squared() * dt).subs(theta_s, theta(t))
    else:
        noise_gap = c.noise
    return sp.simplify(gap) + sp.simplify(noise_gap)


def check_heun_is_trapezoid() -> sp.Expr:
    """Heun's step − [x_s − (Δ/2)(f(x_s, s) + f(x̃, t))] (zero when Heun is the trapezoid rule).

    f is ``solutions.reverse_drift_in_t("ode")`` at each end, x̃ the derived predictor.
    """
    heun = BASELINES["heun-ode"]
    pred = stage_coefficients(heun, "predictor")
    step = stage_coefficients(heun, "step")
    m0, m1 = output_symbol("m0"), output_symbol("predictor")
    predictor = pred.x * x_s + pred.mu * mu + pred.outputs[0] * m0
    big_theta = sp.Symbol("Theta", positive=True)
    reference = solutions.reverse_drift_in_t("ode").subs(forward.Theta(), big_theta)
    sigma_of_theta = forward.sigma().subs(forward.Theta(), big_theta)

    def drift_at(state, eps, theta_value, sigma_value):
        # σ(Θ) = sigma_value is solved for Θ so the solutions module's drift sees that σ
        (theta_at,) = sp.solve(sp.Eq(sigma_of_theta, sigma_value), big_theta)
        return reference.subs(
            {
                theta(t): theta_value,
                solutions.eps_hat(lam): eps,
                solutions.x: state,
                big_theta: theta_at,
            }
        )

    trapezoid = x_s - dt / 2 * (
        drift_at(x_s, m0, theta_s, sigma_s) + drift_at(predictor, m1, theta_t, sigma_t)
    )
    mine = step.x * x_s + step.mu * mu + step.outputs[0] * m0 + step.outputs[1] * m1
    return sp.simplify(mine - trapezoid)


@cache
def local_error(baseline_id: str) -> tuple[int, sp.Expr]:
    """(p, c): one step of an ODE baseline minus the exact PF-ODE solution is c·Δ^p + O(Δ^{p+1}).

    In local coordinates X = x − x_s, T = τ − s, the functions θ(T), 1/σ(T) and the model
    ε̂(X, T) are generic quadratics, which fixes every Taylor coefficient of the exact solution up
    to Δ³; the exact path is x(s − Δ) = x_s + Σ_k (−Δ)^k/k! (D^{k−1} f)(0, 0), D = ∂_T + f ∂_X.
    Returns p = 4 if nothing up to Δ³ survives. Euler must give p = 2 and Heun p = 3 (global
    orders 1 and 2).
    """
    baseline = BASELINES[baseline_id]
    if baseline.method != "ode":
        raise ValueError(f"local_error is for ODE baselines; {baseline_id!r} is an SDE")
    X, T = sp.symbols("X T", real=True)
    theta_of = sum(c * T**k for k, c in enumerate(sp.symbols("theta0:3", real=True)))
    inv_sigma_of = sum(c * T**k for k, c in enumerate(sp.symbols("iota0:3", real=True)))
    monomials = (1, X, T, X**2, X * T, T**2)
    model_c = sp.symbols("e00 e10 e01 e20 e11 e02", real=True)
    model_of = sum(c * m for c, m in zip(model_c, monomials, strict=True))
    f = reverse_drift(x_s + X, model_of, theta_of, 1 / inv_sigma_of, "ode")

    origin = {X: 0, T: 0}
    exact, derivative = x_s, f
    for k in range(1, 4):
        exact += (-dt) ** k / sp.factorial(k) * derivative.subs(origin)
        derivative = derivative.diff(T) + f * derivative.diff(X)

    ends = {
        theta_s: theta_of.subs(T, 0),
        sigma_s: 1 / inv_sigma_of.subs(T, 0),
        theta_t: theta_of.subs(T, -dt),
        sigma_t: 1 / inv_sigma_of.subs(T, -dt),
    }
    values = {"m0": model_of.subs(origin)}
    for stage, labels in zip(baseline.stages, baseline.node_labels, strict=True):
        c = stage_coefficients(baseline, stage)
        outputs = zip(c.outputs, labels, strict=True)
        state = c.x * x_s + c.mu * mu + sum(w * values[label] for w, label in outputs)
        state = sp.expand(state.subs(ends))
        values[stage] = model_of.subs({X: state - x_s, T: -dt})
    poly = sp.Poly(sp.expand(state - exact), dt)
    for power in range(4):
        coefficient = sp.factor(poly.coeff_monomial(dt**power))
        if coefficient != 0:
            return power, coefficient
    return 4, sp.Integer(0)


def checks() -> dict[str, Callable[[], sp.Expr]]:
    """Every ``check_*`` of this module by name, as a callable that returns zero when it holds."""
    return {
        "posterior_two_ways": check_posterior_two_ways,
        "transition_composes": check_transition_composes,
        "eliminated_max_sigma": check_eliminated_max_sigma,
        "posterior_preserves_marginal": check_posterior_preserves_marginal,
        "posterior_is_sde_data_step": check_posterior_is_sde_data_step,
        "euler_maruyama_drift": partial(check_drift_is_reverse_drift, "euler-maruyama"),
        "euler_ode_drift": partial(check_drift_is_reverse_drift, "euler-ode"),
        "heun_predictor_drift": partial(check_drift_is_reverse_drift, "heun-ode"),
        "heun_is_trapezoid": check_heun_is_trapezoid,
    }
