"""The four semi-analytical solutions (ODE/SDE × noise/data), checked symbolically."""

import pytest
import sympy as sp

from derivations import solutions

FORMS = [(m, p) for m in solutions.METHODS for p in solutions.PREDICTIONS]


@pytest.mark.parametrize(("method", "prediction"), FORMS)
def test_lambda_equation_is_as_stated(method, prediction):
    assert solutions.check_lam_equation(method, prediction) == 0


@pytest.mark.parametrize(("method", "prediction"), FORMS)
def test_variation_of_constants_solves_the_equation(method, prediction):
    assert solutions.check_solution_solves_equation(method, prediction) == 0


@pytest.mark.parametrize(("method", "prediction"), FORMS)
def test_step_coefficient_of_x_is_the_integrating_factor_ratio(method, prediction):
    assert solutions.check_step_x_coefficient(method, prediction) == 0


@pytest.mark.parametrize(("method", "prediction"), FORMS)
def test_network_kernel_is_scale_times_exponential(method, prediction):
    assert solutions.check_step_kernel(method, prediction) == 0


@pytest.mark.parametrize("prediction", solutions.PREDICTIONS)
def test_sde_noise_variance_by_ito_isometry(prediction):
    assert solutions.check_noise_variance("sde", prediction) == 0


def test_a_wrong_noise_variance_is_detected():
    """The Itô check can fail: the noise-form variance is not the data-form one."""
    ito = solutions.ito_variance("sde", "noise")
    data_form = (solutions.step_solution("sde", "data").noise_std ** 2).rewrite(sp.exp)
    assert sp.simplify(ito - data_form.subs(solutions._step_values())) != 0


def test_dropping_the_mu_term_breaks_the_equation():
    """With μ removed from the data-form drift the stated equation no longer holds."""
    eq = solutions.linear_equation("ode", "data")
    assert sp.simplify(eq.b.subs(solutions.mu, 0) - eq.b) != 0


def test_data_and_noise_forms_describe_the_same_ode():
    """Substituting ε̂ = (y − α(x̂₀ − μ))/σ into the noise form gives the data form."""
    y = sp.Symbol("y", real=True)
    noise = solutions.linear_equation("ode", "noise")
    data = solutions.linear_equation("ode", "data")
    eps = (
        y - solutions._alpha() * (solutions.x0_hat(solutions.lam) - solutions.mu)
    ) / solutions._sigma()
    drift_noise = noise.a * y + noise.b.subs(solutions.eps_hat(solutions.lam), eps)
    assert sp.simplify(drift_noise - (data.a * y + data.b)) == 0


def test_unknown_names_are_rejected():
    with pytest.raises(ValueError, match="unknown method 'pde'; allowed: ode, sde"):
        solutions.step_solution("pde", "data")
    with pytest.raises(ValueError, match="unknown prediction 'velocity'; allowed: noise, data"):
        solutions.step_solution("ode", "velocity")
