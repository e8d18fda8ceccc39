"""Baseline samplers (Euler–Maruyama, posterior sampling, Euler, Heun): proofs and generated code.

The numerical references below are written from docs/theory.md (the MR process, the reverse-time
equations) and the baselines (the reverse drifts and the MR marginal and transition), never from the
generated expressions.
"""

import inspect
from itertools import pairwise

import numpy as np
import pytest
import sympy as sp
import torch

from derivations import baselines, solutions
from mrs_numerics._generated import (
    baselines_numpy,
    baselines_registry,
    baselines_torch,
    updates_numpy,
)

REGISTRY = baselines_registry.BASELINES
STAGE_FUNCTIONS = [stage for info in REGISTRY.values() for stage in info.stages]


@pytest.mark.parametrize("name", sorted(baselines.checks()))
def test_every_baseline_check_is_zero(name):
    assert baselines.checks()[name]() == 0


@pytest.mark.parametrize(("baseline_id", "power"), [("euler-ode", 2), ("heun-ode", 3)])
def test_ode_baseline_local_error_matches_its_declared_order(baseline_id, power):
    found, coefficient = baselines.local_error(baseline_id)
    assert found == power == REGISTRY[baseline_id].order + 1
    assert coefficient != 0


def test_the_drift_check_can_fail():
    """The SDE step is not an Euler step of the PF-ODE: the check sees the doubled score term."""
    em = baselines.stage_coefficients(baselines.BASELINES["euler-maruyama"], "step")
    ode = baselines.stage_coefficients(baselines.BASELINES["euler-ode"], "step")
    assert sp.simplify(em.outputs[0] - 2 * ode.outputs[0]) == 0
    assert sp.simplify(em.outputs[0] - ode.outputs[0]) != 0


def test_posterior_is_not_the_noise_form_sde_step():
    """The equivalence is specific: the noise-form SDE-1 variance differs from the posterior's."""
    post = baselines.stage_coefficients(baselines.BASELINES["posterior"], "step")
    noise_form = solutions.step_solution("sde", "noise").noise_std ** 2
    gap = (post.noise**2 - noise_form.rewrite(sp.exp)).subs(baselines._in_lam())
    assert sp.simplify(gap) != 0


def _schedule_values(rng, n):
    """Random float64 schedule values with α = e^{−Θ}, σ = Λ sqrt(1 − α²) and s > t."""
    big_lambda = rng.uniform(0.1, 1.0, n)
    theta_s, theta_t = rng.uniform(0.2, 3.0, n), rng.uniform(0.2, 3.0, n)
    big_theta_t = rng.uniform(0.05, 2.0, n)
    big_theta_s = big_theta_t + rng.uniform(0.05, 1.0, n)
    alpha_s, alpha_t = np.exp(-big_theta_s), np.exp(-big_theta_t)
    return {
        "dt": rng.uniform(1e-3, 0.2, n),
        "theta_s": theta_s,
        "alpha_s": alpha_s,
        "sigma_s": big_lambda * np.sqrt(1.0 - alpha_s**2),
        "theta_t": theta_t,
        "alpha_t": alpha_t,
        "sigma_t": big_lambda * np.sqrt(1.0 - alpha_t**2),
        "max_sigma": big_lambda,
    }


def _call(module, stage, values):
    name, _, arguments = stage
    return getattr(module, name)(*(values[a] for a in arguments))


def _apply(c, x, mu, outputs, z=0.0):
    total = c.x * x + c.mu * mu + sum(w * m for w, m in zip(c.outputs, outputs, strict=True))
    return total if c.noise is None else total + c.noise * z


def _drift(x, eps, mu, theta, sigma, big_lambda, weight):
    """docs/theory.md#reverse-time-equations: θ(μ − x) − weight·g² s with s = −ε̂/σ and g² = 2Λ²θ."""
    return theta * (mu - x) + weight * 2.0 * big_lambda**2 * theta * eps / sigma


@pytest.mark.parametrize(("baseline_id", "weight"), [("euler-maruyama", 1.0), ("euler-ode", 0.5)])
def test_euler_steps_equal_the_reverse_drift_formula(baseline_id, weight):
    rng = np.random.default_rng(1)
    values = _schedule_values(rng, 50)
    x, mu, eps, z = (rng.normal(size=50) for _ in range(4))
    (stage,) = REGISTRY[baseline_id].stages
    v = values
    c = _call(baselines_numpy, stage, v)
    drift = _drift(x, eps, mu, v["theta_s"], v["sigma_s"], v["max_sigma"], weight)
    expected = x - v["dt"] * drift
    if baseline_id == "euler-maruyama":
        g = np.sqrt(2.0 * v["max_sigma"] ** 2 * v["theta_s"])
        expected = expected + g * np.sqrt(v["dt"]) * z
    np.testing.assert_allclose(_apply(c, x, mu, (eps,), z), expected, rtol=1e-13, atol=1e-13)


def test_heun_equals_the_trapezoid_of_reverse_drifts():
    """Predictor then corrector, with a model ε̂(x, t) that depends on the state."""
    rng = np.random.default_rng(2)
    v = _schedule_values(rng, 50)
    x, mu = rng.normal(size=50), rng.normal(size=50)

    def model(state, t_index):
        return np.tanh(state + 0.3 * t_index)

    f_s = _drift(x, model(x, 0), mu, v["theta_s"], v["sigma_s"], v["max_sigma"], 0.5)
    predicted = x - v["dt"] * f_s
    f_t = _drift(
        predicted, model(predicted, 1), mu, v["theta_t"], v["sigma_t"], v["max_sigma"], 0.5
    )
    expected = x - 0.5 * v["dt"] * (f_s + f_t)

    predictor_stage, step_stage = REGISTRY["heun-ode"].stages
    state = _apply(_call(baselines_numpy, predictor_stage, v), x, mu, (model(x, 0),))
    np.testing.assert_allclose(state, predicted, rtol=1e-13, atol=1e-13)
    c = _call(baselines_numpy, step_stage, v)
    result = _apply(c, x, mu, (model(x, 0), model(state, 1)))
    np.testing.assert_allclose(result, expected, rtol=1e-13, atol=1e-13)


def _strided_pairs(rng, n):
    """(s, t) index pairs with s > t on a 101-point grid of a constant-θ schedule, any stride."""
    big_lambda = rng.uniform(0.1, 1.0, n)
    t_index = rng.integers(1, 90, n)
    s_index = t_index + rng.integers(1, 101 - t_index)
    alpha = np.exp(-np.log(1.0 / 0.005) * np.arange(101) / 100)
    alpha_s, alpha_t = alpha[s_index], alpha[t_index]
    sigma_s = big_lambda * np.sqrt(1.0 - alpha_s**2)
    sigma_t = big_lambda * np.sqrt(1.0 - alpha_t**2)
    return alpha_s, sigma_s, alpha_t, sigma_t


def test_strided_posterior_equals_the_first_order_data_sde_step():
    rng = np.random.default_rng(3)
    alpha_s, sigma_s, alpha_t, sigma_t = _strided_pairs(rng, 200)
    h = (np.log(alpha_t) - np.log(sigma_t)) - (np.log(alpha_s) - np.log(sigma_s))
    post = baselines_numpy.posterior(alpha_s, sigma_s, alpha_t, sigma_t)
    sde = updates_numpy.sde_data_multistep_1(h, alpha_s, sigma_s, alpha_t, sigma_t)
    pairs = [(post.x, sde.x), (post.mu, sde.mu), (post.outputs[0], sde.outputs[0])]
    pairs.append((post.noise, sde.noise))
    for mine, theirs in pairs:
        np.testing.assert_allclose(mine, theirs, rtol=1e-13, atol=1e-15)


def test_posterior_is_the_gaussian_conditional_of_the_mr_process():
    """Condition the joint law of (x_t, x_s) | x_0 numerically (MR marginal and transition)."""
    rng = np.random.default_rng(4)
    for _ in range(20):
        big_lambda = rng.uniform(0.1, 1.0)
        alpha_t = rng.uniform(0.05, 0.99)
        alpha_s = alpha_t * rng.uniform(0.05, 0.95)
        a = alpha_s / alpha_t
        var_t = big_lambda**2 * (1.0 - alpha_t**2)
        var_transition = big_lambda**2 * (1.0 - a**2)
        cov = np.array([[var_t, a * var_t], [a * var_t, a**2 * var_t + var_transition]])
        gain = cov[0, 1] / cov[1, 1]
        variance = cov[0, 0] - gain * cov[0, 1]
        # E[y_t | y_s, y_0] = α_t y_0 + gain (y_s − α_s y_0): coefficients of y_s and y_0
        sigma_s, sigma_t = np.sqrt(cov[1, 1]), np.sqrt(var_t)
        c = baselines_numpy.posterior(alpha_s, sigma_s, alpha_t, sigma_t)
        assert c.x == pytest.approx(gain, rel=1e-12)
        assert c.outputs[0] == pytest.approx(alpha_t - gain * alpha_s, rel=1e-12)
        assert c.mu == pytest.approx(1.0 - c.x - c.outputs[0], abs=1e-13)
        assert c.noise**2 == pytest.approx(variance, rel=1e-12)


def test_posterior_variance_is_positive_and_the_step_shrinks_to_identity_as_t_nears_s():
    rng = np.random.default_rng(5)
    alpha_s, sigma_s, alpha_t, sigma_t = _strided_pairs(rng, 200)
    c = baselines_numpy.posterior(alpha_s, sigma_s, alpha_t, sigma_t)
    assert np.all(c.noise > 0.0)
    big_lambda, alpha_s = 0.4, 0.3
    gaps = np.array([1e-2, 1e-4, 1e-6])
    alpha_t = alpha_s * np.exp(gaps)
    c = baselines_numpy.posterior(
        alpha_s,
        big_lambda * np.sqrt(1.0 - alpha_s**2),
        alpha_t,
        big_lambda * np.sqrt(1.0 - alpha_t**2),
    )
    assert np.all(np.diff(np.abs(c.x - 1.0)) < 0) and abs(c.x[-1] - 1.0) < 1e-5
    assert np.all(np.diff(np.abs(c.outputs[0])) < 0) and abs(c.outputs[0][-1]) < 1e-5
    assert np.all(np.diff(c.noise) < 0) and c.noise[-1] < 1e-2


def test_posterior_landing_on_sigma_zero_returns_the_data_prediction():
    c = baselines_numpy.posterior(0.5, 0.4 * np.sqrt(0.75), 1.0, 0.0)
    assert (c.x, c.mu, c.outputs[0], c.noise) == (0.0, 0.0, 1.0, 0.0)


@pytest.mark.parametrize("stage", STAGE_FUNCTIONS, ids=lambda stage: stage[0])
def test_torch_and_numpy_baselines_agree_in_float64(stage):
    values = _schedule_values(np.random.default_rng(6), 16)
    cn = _call(baselines_numpy, stage, values)
    ct = _call(baselines_torch, stage, {k: torch.from_numpy(v) for k, v in values.items()})
    assert ct.x.dtype == torch.float64
    for mine, theirs in zip((ct.x, ct.mu, *ct.outputs), (cn.x, cn.mu, *cn.outputs), strict=True):
        np.testing.assert_allclose(mine.numpy(), theirs, rtol=1e-14, atol=1e-15)
    if cn.noise is None:
        assert ct.noise is None
    else:
        np.testing.assert_allclose(ct.noise.numpy(), cn.noise, rtol=1e-14)


def _exact_pf_ode_path(n_steps, method_id, t_start=1.0, t_end=0.3):
    """Point-mass data, constant θ: the PF-ODE path keeps ε fixed, x_t = μ + α_t(x₀ − μ) + σ_t ε."""
    theta, big_lambda, x0, mu, eps = 1.5, 0.6, 0.8, -0.2, 0.7

    def alpha(t):
        return np.exp(-theta * t)

    def sigma(t):
        return big_lambda * np.sqrt(1.0 - alpha(t) ** 2)

    def model(x, t):
        return (x - mu - alpha(t) * (x0 - mu)) / sigma(t)

    times = np.linspace(t_start, t_end, n_steps + 1)
    x = mu + alpha(t_start) * (x0 - mu) + sigma(t_start) * eps
    for s, t in pairwise(times):
        values = {
            "dt": np.float64(s - t),
            "theta_s": np.float64(theta),
            "sigma_s": sigma(s),
            "theta_t": np.float64(theta),
            "sigma_t": sigma(t),
            "max_sigma": np.float64(big_lambda),
        }
        outputs = {"m0": model(x, s)}
        for stage in REGISTRY[method_id].stages:
            name, labels, _ = stage
            c = _call(baselines_numpy, stage, values)
            state = _apply(c, x, mu, [outputs[label] for label in labels])
            outputs[name.rsplit("_", 1)[-1]] = model(state, t)
        x = state
    return abs(x - (mu + alpha(t_end) * (x0 - mu) + sigma(t_end) * eps))


@pytest.mark.parametrize("method_id", ["euler-ode", "heun-ode"])
def test_ode_baselines_converge_at_their_declared_order(method_id):
    steps = np.array([100, 200, 400, 800])
    errors = np.array([_exact_pf_ode_path(n, method_id) for n in steps])
    slope = -np.polyfit(np.log(steps), np.log(errors), 1)[0]
    assert slope == pytest.approx(REGISTRY[method_id].order, abs=0.1)


def test_registry_describes_every_generated_function():
    assert set(REGISTRY) == {"euler-maruyama", "posterior", "euler-ode", "heun-ode"}
    inputs = [str(a) for a in baselines.BASELINE_INPUTS]
    for baseline_id, info in REGISTRY.items():
        assert info.id == baseline_id
        assert info.model_calls == len(info.stages)
        assert (info.strong_order is None) == (info.method == "ode")
        for name, _, arguments in info.stages:
            for module in (baselines_numpy, baselines_torch):
                assert tuple(inspect.signature(getattr(module, name)).parameters) == arguments
            assert list(arguments) == [a for a in inputs if a in arguments]
    assert REGISTRY["posterior"].prediction == "data"
    assert REGISTRY["posterior"].equivalent_update == "sde_data_multistep_1"
    assert REGISTRY["heun-ode"].model_calls == 2
    assert not REGISTRY["heun-ode"].defined_at_sigma_zero
