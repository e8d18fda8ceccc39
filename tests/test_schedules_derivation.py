"""Symbolic checks of the schedule derivations and the IR-SDE tables.

Against docs/theory.md (the MR process; IR-SDE tables).
"""

from __future__ import annotations

import importlib.util
import math
from functools import cache

import mpmath
import numpy as np
import pytest
import sympy as sp
import torch
from sympy.codegen.cfunctions import log1p

from derivations import irsde, schedules
from derivations.emit import write_modules
from derivations.schedule_codegen import render_builtin_schedules

BUILTINS = list(schedules.BUILTIN_SCHEDULES)
CLOSED_INVERSES = ["constant", "linear"]


@cache
def builtin(name: str) -> schedules.Schedule:
    return schedules.BUILTIN_SCHEDULES[name]()


# ---------------------------------------------------------------------------------------------
# Continuous schedules: symbolic identities
# ---------------------------------------------------------------------------------------------


def test_Theta_of_lam_inverts_lam():
    assert schedules.check_Theta_of_log_snr() == 0


def test_Theta_of_lam_is_half_log1p_of_exp_minus_two_lam_over_Lambda_squared():
    expected = log1p(sp.exp(-2 * schedules.LAM) / schedules.LAMBDA**2) / 2
    difference = schedules.elementary(schedules.Theta_of_log_snr() - expected)
    assert sp.simplify(difference) == 0


@pytest.mark.parametrize("name", BUILTINS)
def test_dTheta_dt_is_theta(name):
    assert schedules.check_Theta_derivative(builtin(name)) == 0


@pytest.mark.parametrize("name", BUILTINS)
def test_Theta_vanishes_at_zero(name):
    assert schedules.check_Theta_at_zero(builtin(name)) == 0


@pytest.mark.parametrize("name", BUILTINS)
def test_alpha_at_one_is_eps(name):
    assert schedules.check_alpha_at_end(builtin(name)) == 0


@pytest.mark.parametrize("name", BUILTINS)
def test_dlam_dt_is_minus_theta_Lambda_squared_over_sigma_squared(name):
    assert schedules.check_log_snr_rate(builtin(name)) == 0


@pytest.mark.parametrize("name", CLOSED_INVERSES)
def test_closed_form_inverse_satisfies_lam_of_t_of_lam_equals_lam(name):
    assert schedules.check_t_of_log_snr(builtin(name)) == 0


def test_cosine_has_no_closed_form_inverse_and_says_why():
    derived = schedules.derive_cached(builtin("cosine"))
    assert derived.Theta is not None
    assert derived.inverse is None
    assert "no closed-form inverse" in derived.inverse_note


def test_cosine_cancellation_free_form_equals_the_definition():
    assert schedules.check_cosine_shape() == 0


def test_cosine_theta_is_the_theory_formula_with_c_fixed_by_alpha_one():
    schedule = builtin("cosine")
    t, eps = schedules.t, schedules.EPS
    s = sp.Rational(8, 1000)
    shape = 1 - sp.cos((t + s) / (1 + s) * sp.pi / 2) ** 2 / sp.cos(s / (1 + s) * sp.pi / 2) ** 2
    c = schedule.constants[0][1]
    assert sp.simplify(schedule.theta.subs(schedules.SCALE, c) - c * shape) == 0
    with mpmath.workdps(30):
        integral = mpmath.quad(sp.lambdify(t, shape, "mpmath"), [0, 1])
        value = sp.lambdify(eps, c, "mpmath")(mpmath.mpf("0.005"))
        assert abs(value * integral + mpmath.log(mpmath.mpf("0.005"))) < mpmath.mpf("1e-25")


def test_linear_theta_has_the_ir_sde_shape():
    schedule = builtin("linear")
    theta = schedule.numeric(schedule.theta)
    assert sp.simplify(theta.subs(schedules.t, 1) / theta.subs(schedules.t, 0)) == 200


def test_linear_inverse_keeps_its_digits_for_tiny_Theta():
    """The small root of the quadratic, evaluated in float64 where the naive form cancels."""
    schedule = builtin("linear")
    inverse = schedule.numeric(schedules.derive_cached(schedule).inverse)
    Theta = schedule.numeric(schedules.derive_cached(schedule).Theta)
    function = sp.lambdify(schedules.THETA_VALUE, inverse, "numpy")
    for time in [1e-12, 1e-8, 1e-3, 0.5]:
        value = float(Theta.subs(schedules.t, sp.Float(time, 30)))
        assert abs(function(value) / time - 1) < 1e-14


def test_rounding_error_bound_flags_cancellation_only_where_it_happens():
    t = schedules.t
    assert schedules.rounding_error_bound(t - sp.sin(t), {t: 1e-4}) > 1e-9
    assert schedules.rounding_error_bound(t - sp.sin(t), {t: 1.0}) < 1e-14
    assert schedules.rounding_error_bound(t + t**2, {t: 1e-4}) < 1e-15


def test_conjugate_form_is_the_same_root():
    Th = schedules.THETA_VALUE
    a, b = sp.symbols("a b", positive=True)
    root = (-b + sp.sqrt(b**2 + 4 * a * Th)) / (2 * a)
    conjugated = schedules.conjugate_form(root)
    assert sp.simplify(conjugated - root) == 0
    assert sp.simplify(conjugated - 2 * Th / (b + sp.sqrt(b**2 + 4 * a * Th))) == 0


# ---------------------------------------------------------------------------------------------
# IR-SDE tables
# ---------------------------------------------------------------------------------------------


def test_irsde_cosine_stable_form_equals_one_minus_abar():
    assert irsde.check_cosine_theta() == 0


def test_irsde_dt_makes_alpha_last_eps():
    assert irsde.check_alpha_last() == 0


def test_irsde_sigma_is_Lambda_sqrt_one_minus_alpha_squared():
    assert irsde.check_sigma_definition() == 0


def test_irsde_cumulative_sum_drops_theta0_only_with_offset():
    theta = irsde.constant_theta()
    with_offset = irsde.cumulative(theta, True).subs(irsde.i, 5).doit()
    without = irsde.cumulative(theta, False).subs(irsde.i, 5).doit()
    assert (with_offset, without) == (5, 6)


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    """The generated ``irsde_tables`` of both backends, rendered into a temporary folder."""
    root = tmp_path_factory.mktemp("generated")
    files = {k: v for k, v in render_builtin_schedules().items() if k.startswith("irsde_")}
    write_modules(root, files)
    loaded = {}
    for backend in ("numpy", "torch"):
        path = root / f"irsde_{backend}.py"
        spec = importlib.util.spec_from_file_location(f"irsde_test_{backend}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        loaded[backend] = module.irsde_tables
    return loaded


def transcription(kind, T, max_sigma, eps, theta0_offset, dtype):
    """The IR-SDE table definitions of docs/theory.md#ir-sde-tables, word for word, in ``dtype``."""
    one = dtype(1)
    if kind == "cosine":
        s = dtype(0.008)
        n = T + 2
        k = np.arange(n + 1, dtype=dtype)
        abar = np.cos(((k / dtype(n)) + s) / (one + s) * dtype(np.pi) / dtype(2)) ** 2
        abar = abar / abar[0]
        theta = one - abar[1 : T + 2]
    elif kind == "linear":
        c = dtype(1000) / dtype(T + 1)
        theta = np.linspace(dtype(1e-4) * c, dtype(0.02) * c, T + 1, dtype=dtype)
    else:
        theta = np.ones(T + 1, dtype=dtype)
    S = np.cumsum(theta)
    if theta0_offset:
        S = S - theta[0]
    dt = -np.log(dtype(eps)) / S[-1]
    alpha = np.exp(-S * dt)
    sigma = dtype(max_sigma) * np.sqrt(one - alpha**2)
    with np.errstate(divide="ignore"):
        lam = np.log(alpha) - np.log(sigma)
    return {"theta": theta, "S": S, "dt": dt, "alpha": alpha, "sigma": sigma, "lam": lam}


KINDS = ["cosine", "linear", "constant"]
LAMBDA, EPS = 50 / 255, 0.005


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("offset", [True, False])
def test_irsde_tables_equal_the_float64_transcription(tables, kind, offset):
    got = tables["numpy"](kind, 100, LAMBDA, EPS, offset)
    want = transcription(kind, 100, LAMBDA, EPS, offset, np.float64)
    for key in ("theta", "S", "alpha"):
        np.testing.assert_allclose(got[key], want[key], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(got["dt"], want["dt"], rtol=1e-13)
    # 1 − α² cancels in the transcription at i = 1 (σ small): compare σ² with an absolute bound
    np.testing.assert_allclose(got["sigma"] ** 2, want["sigma"] ** 2, rtol=1e-12, atol=1e-15)
    finite = np.isfinite(want["lam"])
    assert np.array_equal(finite, np.isfinite(got["lam"]))
    slack = 1e-15 / (want["sigma"][finite] ** 2 / LAMBDA**2)
    assert np.all(np.abs(got["lam"][finite] - want["lam"][finite]) <= 1e-12 + slack)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("offset", [True, False])
def test_irsde_tables_reproduce_the_float32_tables_to_float32_round_off(tables, kind, offset):
    T = 100
    got = tables["numpy"](kind, T, LAMBDA, EPS, offset)
    want = transcription(kind, T, LAMBDA, EPS, offset, np.float32)
    u = 2.0**-24
    # θ: one rounding of ā ≈ 1 per entry; S: a cumulative sum of T + 1 terms
    assert np.all(np.abs(got["theta"] - want["theta"]) <= 8 * u * (1 + got["theta"]))
    summed = (T + 1) * u * np.cumsum(got["theta"])
    assert np.all(np.abs(got["S"] - want["S"]) <= summed + 8 * u * (T + 1))
    relative_dt = abs(got["dt"] / want["dt"] - 1)
    assert relative_dt <= (T + 1) * u
    # α = exp(−S·dt): the relative error of α is the absolute error of S·dt
    exponent_error = got["S"] * got["dt"] * 2 * (T + 1) * u + 4 * u
    assert np.all(np.abs(got["alpha"] / want["alpha"] - 1) <= exponent_error + 4 * u)
    one_minus_alpha2 = np.abs(got["sigma"] ** 2 - want["sigma"].astype(np.float64) ** 2) / LAMBDA**2
    assert np.all(one_minus_alpha2 <= 2 * (exponent_error + 4 * u) + 8 * u)


@pytest.mark.parametrize("kind", KINDS)
def test_irsde_alpha0_is_one_and_alphaT_is_eps_with_theta0_offset(tables, kind):
    got = tables["numpy"](kind, 100, LAMBDA, EPS, True)
    assert got["alpha"][0] == 1.0
    assert got["sigma"][0] == 0.0
    assert got["lam"][0] == math.inf
    assert abs(got["alpha"][-1] / EPS - 1) < 1e-14
    assert got["alpha"].shape == got["theta"].shape == (101,)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("offset", [True, False])
def test_irsde_lam_strictly_decreases(tables, kind, offset):
    lam = tables["numpy"](kind, 100, LAMBDA, EPS, offset)["lam"]
    assert np.all(np.diff(lam) < 0)


def test_irsde_lam0_without_offset_is_finite_near_6_1(tables):
    """docs/theory.md#ir-sde-tables: without −θ₀ (MRS code) λ(0) ≈ 6.11 for the default cosine."""
    lam0 = tables["numpy"]("cosine", 100, LAMBDA, EPS, False)["lam"][0]
    assert math.isfinite(lam0)
    assert abs(lam0 - 6.11) < 0.02


@pytest.mark.parametrize("kind", KINDS)
def test_irsde_torch_and_numpy_tables_agree(tables, kind):
    a = tables["numpy"](kind, 37, LAMBDA, 0.01, True)
    b = tables["torch"](kind, 37, LAMBDA, 0.01, True)
    for key, value in a.items():
        other = b[key]
        assert isinstance(other, torch.Tensor) and other.dtype == torch.float64
        np.testing.assert_allclose(other.numpy(), value, rtol=1e-14, atol=1e-14)


def test_irsde_tables_reject_unknown_kind_and_bad_T(tables):
    with pytest.raises(ValueError, match="unknown IR-SDE schedule 'quadratic'"):
        tables["numpy"]("quadratic", 100)
    with pytest.raises(ValueError, match="positive integer"):
        tables["torch"]("cosine", 0)
