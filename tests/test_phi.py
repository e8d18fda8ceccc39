"""φ-functions: symbolic identities, and accuracy of the generated code against mpmath."""

import math

import mpmath
import numpy as np
import pytest
import sympy as sp
import torch

from derivations import phi as phi_derivation
from mrs_numerics._generated import phi_numpy, phi_torch

ORDERS = range(1, phi_derivation.MAX_ORDER + 1)


@pytest.mark.parametrize("k", ORDERS)
def test_closed_form_equals_integral_definition(k):
    assert phi_derivation.check_closed_form_matches_definition(k) == 0


@pytest.mark.parametrize("n", range(phi_derivation.MAX_ORDER))
def test_kernel_moment_is_phi_weight(n):
    assert phi_derivation.check_kernel_moment(n) == 0


@pytest.mark.parametrize("k", ORDERS)
def test_recurrence(k):
    assert phi_derivation.check_recurrence(k) == 0


@pytest.mark.parametrize("k", ORDERS)
def test_value_at_zero_is_inverse_factorial(k):
    z = sp.Symbol("z")
    assert sp.limit(phi_derivation.phi_closed_form(k, z), z, 0) == sp.Rational(1, sp.factorial(k))
    assert phi_derivation.Phi(k, sp.Integer(0)) == sp.Rational(1, sp.factorial(k))


def _grid():
    magnitudes = np.geomspace(1e-8, 30.0, 400)
    return np.concatenate([-magnitudes[::-1], magnitudes, [-2.0, 2.0, -1.9999999, 2.0000001]])


def _reference(k, z):
    mpmath.mp.dps = 50
    z = mpmath.mpf(float(z))
    head = sum(z**j / mpmath.factorial(j) for j in range(k))
    return float((mpmath.exp(z) - head) / z**k)


def _relative_errors(k, values, points):
    reference = np.array([_reference(k, z) for z in points])
    return np.abs(np.asarray(values, dtype=np.float64) - reference) / np.abs(reference)


@pytest.mark.parametrize("k", ORDERS)
@pytest.mark.parametrize("backend", ["torch", "numpy"])
def test_float64_accuracy_against_mpmath(k, backend):
    points = _grid()
    if backend == "torch":
        values = getattr(phi_torch, f"phi_{k}")(torch.tensor(points, dtype=torch.float64)).numpy()
    else:
        values = getattr(phi_numpy, f"phi_{k}")(points)
    assert values.dtype == np.float64
    assert _relative_errors(k, values, points).max() <= 1e-14


@pytest.mark.parametrize("k", ORDERS)
@pytest.mark.parametrize("backend", ["torch", "numpy"])
def test_float32_accuracy_against_mpmath(k, backend):
    points32 = _grid().astype(np.float32)
    if backend == "torch":
        values = getattr(phi_torch, f"phi_{k}")(torch.from_numpy(points32))
        assert values.dtype == torch.float32
        values = values.numpy()
    else:
        values = getattr(phi_numpy, f"phi_{k}")(points32)
        assert values.dtype == np.float32
    assert _relative_errors(k, values, points32.astype(np.float64)).max() <= 1e-6


@pytest.mark.parametrize("k", ORDERS)
def test_exact_zero_and_finite_everywhere(k):
    z = torch.tensor([0.0, -0.0, 1e-300, -1e-300, 30.0, -30.0], dtype=torch.float64)
    values = getattr(phi_torch, f"phi_{k}")(z)
    assert torch.isfinite(values).all()
    assert values[0].item() == pytest.approx(1 / math.factorial(k), rel=1e-15)


def test_series_truncation_bound_holds_on_the_disc():
    for k in ORDERS:
        terms = phi_derivation.series_terms(k)
        radius = phi_derivation.SERIES_RADIUS
        mpmath.mp.dps = 50
        tail = sum(
            mpmath.mpf(radius) ** j / mpmath.factorial(j + k) for j in range(terms, terms + 60)
        )
        assert float(tail) / _reference(k, -radius) < 1e-17
