"""Generated schedule modules (built-in and user θ(t)) against direct quadrature and brentq."""

from __future__ import annotations

import hashlib
import importlib.util
import math
import os
import subprocess
import sys
from functools import cache
from pathlib import Path

import mpmath
import numpy as np
import pytest
import torch
from scipy.integrate import quad
from scipy.optimize import brentq

from derivations.emit import write_modules
from derivations.schedule_codegen import render_builtin_schedules, render_user_schedule

REPO = Path(__file__).resolve().parents[1]
LAMBDA, EPS, S = 50 / 255, 0.005, 0.008
BUILTINS = ["constant", "linear", "cosine"]
BACKENDS = ["numpy", "torch"]


def load_module(alias: str, path: Path):
    spec = importlib.util.spec_from_file_location(alias, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_package(alias: str, folder: Path):
    spec = importlib.util.spec_from_file_location(
        alias, folder / "__init__.py", submodule_search_locations=[str(folder)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[alias] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """{(name, backend): module} of the built-in schedules, rendered into a temporary folder."""
    root = tmp_path_factory.mktemp("generated")
    write_modules(root, render_builtin_schedules())
    modules = {}
    for backend in BACKENDS:
        package = load_package(f"_test_schedules_{backend}", root / f"schedules_{backend}")
        for name in BUILTINS:
            modules[name, backend] = package.SCHEDULES[name]
    return modules


def evaluate(module, function: str, values, **params) -> np.ndarray:
    """Call ``module.function`` on float64 ``values`` and return a numpy array."""
    result = getattr(module, function)(
        torch.as_tensor(np.asarray(values, dtype=np.float64)), **params
    )
    if isinstance(result, torch.Tensor):
        return result.numpy()
    return np.asarray(result)


# ---------------------------------------------------------------------------------------------
# Independent references, from the words of docs/theory.md#ir-sde-tables
# ---------------------------------------------------------------------------------------------


def shape(name: str, t: float, beta_start=1e-4, beta_end=0.02) -> float:
    if name == "constant":
        return 1.0
    if name == "linear":
        return beta_start + (beta_end - beta_start) * t
    return (
        1
        - math.cos((t + S) / (1 + S) * math.pi / 2) ** 2 / math.cos(S / (1 + S) * math.pi / 2) ** 2
    )


@cache
def scale(name: str, eps: float = EPS) -> float:
    """c with ∫₀¹ c·shape = −log ε."""
    return -math.log(eps) / quad(lambda u: shape(name, u), 0, 1, epsabs=0, epsrel=1e-13)[0]


def reference_Theta(name: str, t: float) -> float:
    return scale(name) * quad(lambda u: shape(name, u), 0, t, epsabs=0, epsrel=1e-13, limit=200)[0]


def reference_lam(name: str, t: float) -> float:
    Theta = reference_Theta(name, t)
    return -Theta - math.log(LAMBDA * math.sqrt(-math.expm1(-2 * Theta)))


def mp_Theta(name: str, t: float):
    """Θ(t) at 30 digits (the cosine shape cancels near 0 in float64)."""
    with mpmath.workdps(30):
        s = mpmath.mpf(S)

        def mp_shape(u):
            if name == "constant":
                return mpmath.mpf(1)
            if name == "linear":
                return mpmath.mpf("1e-4") + (mpmath.mpf("0.02") - mpmath.mpf("1e-4")) * u
            a = mpmath.pi / 2 / (1 + s)
            return 1 - mpmath.cos(a * (u + s)) ** 2 / mpmath.cos(a * s) ** 2

        c = -mpmath.log(mpmath.mpf(EPS)) / mpmath.quad(mp_shape, [0, 1])
        return c * mpmath.quad(mp_shape, [0, mpmath.mpf(t)])


def assert_relative(got, want, tolerance, what=""):
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    error = np.max(np.abs(got - want) / np.abs(want))
    assert error <= tolerance, f"{what}: relative error {error:.3g} > {tolerance:g}"


# ---------------------------------------------------------------------------------------------
# Built-in schedules
# ---------------------------------------------------------------------------------------------

TIMES = [0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 1.0]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", BUILTINS)
def test_alpha_sigma_lam_match_direct_quadrature(generated, name, backend):
    module = generated[name, backend]
    Theta = np.array([reference_Theta(name, t) for t in TIMES])
    alpha = np.exp(-Theta)
    sigma = LAMBDA * np.sqrt(-np.expm1(-2 * Theta))
    assert_relative(evaluate(module, "Theta", TIMES), Theta, 1e-12, "Θ")
    assert_relative(evaluate(module, "alpha", TIMES), alpha, 1e-12, "α")
    assert_relative(evaluate(module, "sigma", TIMES), sigma, 1e-12, "σ")
    lam = evaluate(module, "lam", TIMES)
    assert np.all(
        np.abs(lam - (np.log(alpha) - np.log(sigma))) <= 1e-12 * np.maximum(1, np.abs(lam))
    )


@pytest.mark.parametrize("name", BUILTINS)
def test_Theta_and_sigma_keep_their_digits_near_t_zero(generated, name):
    times = [1e-9, 1e-6, 1e-4, 1e-2, 0.06, 0.12, 0.13]
    Theta = [mp_Theta(name, t) for t in times]
    sigma = [float(LAMBDA * mpmath.sqrt(-mpmath.expm1(-2 * v))) for v in Theta]
    module = generated[name, "numpy"]
    assert_relative(evaluate(module, "Theta", times), [float(v) for v in Theta], 1e-12, "Θ")
    assert_relative(evaluate(module, "sigma", times), sigma, 1e-12, "σ")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", BUILTINS)
def test_t_of_lam_inverts_lam(generated, name, backend):
    module = generated[name, backend]
    times = np.geomspace(1e-6, 1.0, 40)
    back = evaluate(module, "t_of_lam", evaluate(module, "lam", times))
    assert_relative(back, times, 1e-12, "t(λ(t))")


@pytest.mark.parametrize("name", BUILTINS)
def test_t_of_lam_matches_brentq_on_the_quadrature_lam(generated, name):
    module = generated[name, "numpy"]
    targets = [reference_lam(name, t) for t in (0.03, 0.25, 0.6, 0.97)]
    want = [
        brentq(lambda t, v=v: reference_lam(name, t) - v, 1e-3, 1.0, xtol=1e-16, rtol=1e-15)
        for v in targets
    ]
    assert_relative(evaluate(module, "t_of_lam", targets), want, 1e-12, "t(λ)")


@pytest.mark.parametrize("name", BUILTINS)
def test_dlam_dt_matches_finite_differences(generated, name):
    module = generated[name, "numpy"]
    times = np.array([0.05, 0.2, 0.5, 0.8, 0.99])
    h = 1e-4
    # fourth-order central difference: truncation O(h⁴), round-off O(1e-16/h)
    lam = [evaluate(module, "lam", times + k * h) for k in (-2, -1, 1, 2)]
    difference = (lam[0] - 8 * lam[1] + 8 * lam[2] - lam[3]) / (12 * h)
    assert_relative(evaluate(module, "dlam_dt", times), difference, 1e-9, "dλ/dt")


@pytest.mark.parametrize("name", BUILTINS)
def test_lam_is_log_alpha_over_sigma_on_a_dense_grid(generated, name):
    module = generated[name, "numpy"]
    times = np.geomspace(1e-10, 1.0, 300)
    lam = evaluate(module, "lam", times)
    ratio = np.log(evaluate(module, "alpha", times)) - np.log(evaluate(module, "sigma", times))
    assert np.all(np.abs(lam - ratio) <= 1e-13 * np.maximum(1, np.abs(lam)))
    assert np.all(np.diff(lam) < 0)


@pytest.mark.parametrize("name", BUILTINS)
def test_Theta_of_lam_and_g_satisfy_their_definitions(generated, name):
    module = generated[name, "numpy"]
    times = np.geomspace(1e-5, 1.0, 30)
    lam = evaluate(module, "lam", times)
    assert_relative(evaluate(module, "Theta_of_lam", lam), evaluate(module, "Theta", times), 1e-12)
    g = evaluate(module, "g", times)
    assert_relative(g**2, 2 * LAMBDA**2 * evaluate(module, "theta", times), 1e-14, "g²")


@pytest.mark.parametrize("name", BUILTINS)
def test_alpha_one_is_eps_for_any_eps_and_sigma_scales_with_max_sigma(generated, name):
    module = generated[name, "numpy"]
    for eps in (0.005, 0.02, 1e-4):
        assert abs(module.alpha(1.0, eps=eps) / eps - 1) < 1e-13
    times = np.array([0.1, 0.5, 1.0])
    ratio = module.sigma(times, max_sigma=1.0) / module.sigma(times)
    assert_relative(ratio, np.full(3, 1 / LAMBDA), 1e-15)


def test_linear_shape_parameters_are_respected(generated):
    module = generated["linear", "numpy"]
    params = {"beta_start": 1e-3, "beta_end": 1e-2, "eps": 0.01}
    assert abs(module.theta(1.0, **params) / module.theta(0.0, **params) - 10) < 1e-12
    assert abs(module.alpha(1.0, **params) / 0.01 - 1) < 1e-13
    lam = module.lam(np.array([1e-3, 0.4]), **params)
    assert_relative(module.t_of_lam(lam, **params), [1e-3, 0.4], 1e-12)


def test_builtin_constants_declare_interval_defaults_and_closed_forms(generated):
    for name in BUILTINS:
        module = generated[name, "numpy"]
        assert (module.T_MIN, module.T_MAX) == (0.0, 1.0)
        assert module.DEFAULTS["max_sigma"] == LAMBDA and module.DEFAULTS["eps"] == EPS
        assert module.CLOSED_FORM_THETA_INTEGRAL is True
    assert generated["constant", "numpy"].CLOSED_FORM_INVERSE is True
    assert generated["linear", "numpy"].CLOSED_FORM_INVERSE is True
    assert generated["cosine", "numpy"].CLOSED_FORM_INVERSE is False
    assert generated["linear", "numpy"].DEFAULTS["beta_end"] / 0.02 == 1


FUNCTIONS = ["theta", "Theta", "alpha", "sigma", "lam", "g", "dlam_dt"]


@pytest.mark.parametrize("name", BUILTINS)
def test_torch_and_numpy_modules_agree(generated, name):
    times = np.geomspace(1e-6, 1.0, 25)
    for function in FUNCTIONS:
        a = evaluate(generated[name, "numpy"], function, times)
        b = evaluate(generated[name, "torch"], function, times)
        np.testing.assert_allclose(b, a, rtol=1e-14, atol=1e-300, err_msg=function)
    lam = evaluate(generated[name, "numpy"], "lam", times)
    np.testing.assert_allclose(
        evaluate(generated[name, "torch"], "t_of_lam", lam),
        evaluate(generated[name, "numpy"], "t_of_lam", lam),
        rtol=1e-14,
    )


def test_functions_compute_in_float64_and_keep_shapes(generated):
    torch_module = generated["cosine", "torch"]
    out = torch_module.alpha(torch.rand(3, 4, dtype=torch.float32))
    assert out.dtype == torch.float64 and out.shape == (3, 4)
    assert torch_module.t_of_lam(torch.zeros(2, 1)).shape == (2, 1)
    numpy_module = generated["cosine", "numpy"]
    assert np.ndim(numpy_module.sigma(0.5)) == 0
    assert numpy_module.lam(np.ones((2, 5), dtype=np.float32)).dtype == np.float64


def test_numerical_inverse_maps_out_of_range_Theta_to_the_interval_ends(generated):
    module = generated["cosine", "numpy"]
    t = module.t_of_Theta(np.array([0.0, module.Theta(1.0) * 2]))
    assert t.tolist() == [0.0, 1.0]


def test_schedule_packages_list_the_builtins(generated):
    assert sorted(sys.modules["_test_schedules_numpy"].SCHEDULES) == sorted(BUILTINS)


# ---------------------------------------------------------------------------------------------
# Rendering: deterministic, lint-clean
# ---------------------------------------------------------------------------------------------


def _digest(files: dict[str, str]) -> str:
    return hashlib.sha256(repr(sorted(files.items())).encode()).hexdigest()


def test_rendering_is_the_same_text_in_a_fresh_process():
    script = (
        "from derivations.schedule_codegen import render_builtin_schedules as r\n"
        "import hashlib\n"
        "print(hashlib.sha256(repr(sorted(r().items())).encode()).hexdigest())\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == _digest(render_builtin_schedules())


def _ruff(path: str, text: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "ruff",
            "check",
            "--config",
            str(REPO / "pyproject.toml"),
            "--stdin-filename",
            path,
            "-",
        ],
        input=text,
        capture_output=True,
        text=True,
        cwd=REPO,
    )


def test_generated_builtin_modules_pass_ruff():
    for relative, text in render_builtin_schedules().items():
        result = _ruff(f"mrs_numerics/_generated/{relative}", text)
        assert result.returncode == 0, f"{relative}:\n{result.stdout}"


# ---------------------------------------------------------------------------------------------
# User schedules
# ---------------------------------------------------------------------------------------------


@cache
def user_files(source: str, name: str, t_max: float = 1.0) -> dict[str, str]:
    return render_user_schedule(source, name, t_max)


def load_user(tmp_path: Path, source: str, name: str, t_max: float = 1.0) -> dict[str, object]:
    write_modules(tmp_path, user_files(source, name, t_max))
    return {b: load_module(f"_test_user_{name}_{b}", tmp_path / b / f"{name}.py") for b in BACKENDS}


NO_CLOSED_FORM = [
    (
        "1 + exp(-t**2)*sin(3*t)**2",
        "wiggle",
        1.0,
        lambda t: 1 + math.exp(-t * t) * math.sin(3 * t) ** 2,
    ),
    ("exp(sin(t))", "expsin", 2.0, lambda t: math.exp(math.sin(t))),
]


@pytest.mark.parametrize(("source", "name", "t_max", "theta"), NO_CLOSED_FORM)
def test_user_theta_without_closed_form_integral_uses_accurate_quadrature(
    tmp_path, source, name, t_max, theta
):
    modules = load_user(tmp_path, source, name, t_max)
    times = t_max * np.array([1e-7, 1e-3, 0.1, 0.37, 0.8, 1.0])
    want = [quad(theta, 0, t, epsabs=0, epsrel=1e-13)[0] for t in times]
    for backend, module in modules.items():
        assert module.CLOSED_FORM_THETA_INTEGRAL is False
        assert module.CLOSED_FORM_INVERSE is False
        assert t_max == module.T_MAX
        assert_relative(evaluate(module, "Theta", times), want, 1e-12, f"Θ ({backend})")
        grid = t_max * np.geomspace(1e-6, 1.0, 30)
        back = evaluate(module, "t_of_lam", evaluate(module, "lam", grid))
        assert_relative(back, grid, 1e-12, f"t(λ(t)) ({backend})")
    assert "Gauss–Legendre" in modules["numpy"].__doc__
    assert "Newton" in modules["numpy"].__doc__


def test_user_closed_forms_are_found_and_cancellation_free(tmp_path):
    modules = load_user(tmp_path, "exp(t)", "growth")
    module = modules["numpy"]
    assert module.CLOSED_FORM_THETA_INTEGRAL is True and module.CLOSED_FORM_INVERSE is True
    times = np.array([1e-12, 1e-6, 0.5, 1.0])
    # Θ = e^t − 1: written naively it would lose all but a few digits at t = 1e-12
    assert_relative(module.Theta(times), np.expm1(times), 1e-15, "Θ")
    assert_relative(module.t_of_Theta(np.expm1(times)), times, 1e-15, "t(Θ)")
    assert_relative(evaluate(modules["torch"], "t_of_lam", module.lam(times)), times, 1e-12)


def test_user_quadratic_Theta_gets_the_small_root_on_a_longer_interval(tmp_path):
    module = load_user(tmp_path, "1 + t", "ramp", 5.0)["numpy"]
    assert module.CLOSED_FORM_INVERSE is True and module.T_MAX == 5.0
    times = np.geomspace(1e-9, 5.0, 20)
    assert_relative(module.Theta(times), times + times**2 / 2, 1e-15, "Θ")
    assert_relative(module.t_of_lam(module.lam(times)), times, 1e-12, "t(λ(t))")


def test_user_theta_may_vanish_at_t_zero_only(tmp_path):
    module = load_user(tmp_path, "sin(t)", "sine", 3.0)["numpy"]
    assert_relative(module.Theta(np.array([0.5, 3.0])), 1 - np.cos([0.5, 3.0]), 1e-14)
    with pytest.raises(ValueError, match=r"≤ 0 for t in \[3\.14"):
        render_user_schedule("sin(t)", "sine", 4.0)


def test_user_module_passes_ruff():
    for relative, text in user_files(*NO_CLOSED_FORM[1][:3]).items():
        result = _ruff(f"mrs_numerics/_generated/{relative}", text)
        assert result.returncode == 0, f"{relative}:\n{result.stdout}"


BAD_INPUTS = [
    ("1 + (t", "ok", 1.0, r"cannot parse θ\(t\) = '1 \+ \(t'"),
    ("t +* 2", "ok", 1.0, "cannot parse"),
    ("a*t + b", "ok", 1.0, r"unknown symbol\(s\) a, b .*only the symbol t"),
    ("f(t) + 1", "ok", 1.0, r"unknown function\(s\) f"),
    ("__import__('os')", "ok", 1.0, r"unknown function\(s\) __import__"),
    ("-1", "ok", 1.0, "≤ 0 for every t > 0"),
    ("t - 0.5", "ok", 1.0, r"negative at t = 0"),
    ("0.5 - t", "ok", 1.0, r"≤ 0 for t in \[0\.5, 1\] .*must be > 0 on \(0, t_max\]"),
    ("1/(t - 0.5)**2", "ok", 1.0, r"not a finite real number at t = 0\.5"),
    ("1 + sqrt(t - 0.5)", "ok", 1.0, "not a finite real number at t = "),
    ("1 + I*t", "ok", 1.0, "not real at t = "),
    ("1 + t", "1abc", 1.0, "must be a Python identifier"),
    ("1 + t", "class", 1.0, "Python keyword"),
    ("1 + t", "print", 1.0, "shadow a Python built-in"),
    ("1 + t", "cosine", 1.0, "is a built-in schedule"),
    ("1 + t", "ok", 0.0, "t_max must be a finite number > 0"),
    ("1 + t", "ok", -2.0, "t_max must be a finite number > 0"),
    ("1 + t", "ok", math.inf, "t_max must be a finite number > 0"),
]


@pytest.mark.parametrize(("source", "name", "t_max", "message"), BAD_INPUTS)
def test_bad_user_input_is_rejected_with_a_clear_message(source, name, t_max, message):
    with pytest.raises(ValueError, match=message):
        render_user_schedule(source, name, t_max)
