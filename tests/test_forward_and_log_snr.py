"""The forward MR process and the λ change of variables, checked symbolically."""

from derivations import forward, log_snr


def test_dsolve_mean_is_the_mr_marginal_mean():
    assert forward.check_solved_mean() == 0


def test_dsolve_variance_is_sigma_squared():
    assert forward.check_solved_variance() == 0


def test_marginal_mean_solves_its_ode_and_start():
    assert forward.check_mean_ode() == 0


def test_marginal_variance_solves_its_ode_and_start():
    assert forward.check_variance_ode() == 0


def test_sigma_of_lambda_is_the_derived_inverse():
    assert log_snr.check_sigma_of_lam() == 0


def test_lambda_inverse_recovers_alpha_and_sigma():
    assert log_snr.check_inverse() == 0


def test_g_squared_dt_equals_minus_two_sigma_squared_dlambda():
    assert log_snr.check_g2_dt_identity() == 0


def test_dlambda_dt_is_minus_theta_lambda_squared_over_sigma_squared():
    assert log_snr.check_dlam_dt() == 0


def test_log_derivatives_in_lambda():
    assert log_snr.check_log_derivatives() == 0
