"""The generated step coefficients integrate polynomial models exactly (numerically, float64).

Independent of the derivation: the reference integrates the λ-form equation itself,
dy/dλ = a(λ) y + b(λ) with y = x − μ, by scipy's DOP853 at tight tolerances, and the SDE noise
variance from dV/dλ = 2a V + 2σ². The generated coefficients are applied to a model that is a
polynomial of degree k − 1 in λ (data form: x̂₀ − μ; noise form: ε̂), which a k-th order update
must reproduce exactly, on non-uniform steps.
"""

import numpy as np
import pytest
import torch

from mrs_numerics._generated import registry, updates_numpy, updates_torch
from tests.helpers import stage_errors

UPDATES = registry.UPDATES


CASES = [(name, seed) for name in UPDATES for seed in range(3)]


@pytest.mark.parametrize(("name", "seed"), CASES)
def test_generated_update_is_exact_for_polynomial_models(name, seed):
    for function_name, error, noise_error in stage_errors(name, seed):
        assert error < 1e-9, function_name
        if UPDATES[name].method == "sde":
            assert noise_error < 1e-9, function_name
        else:
            assert noise_error is None


@pytest.mark.parametrize("name", list(UPDATES))
def test_torch_and_numpy_coefficients_agree(name):
    info = UPDATES[name]
    rng = np.random.default_rng(7)
    args = (0.4, *rng.uniform(0.4, 0.8, size=len(info.parameters)), 0.3, 0.15, 0.5, 0.1)
    for function_name, _, _ in info.stages:
        cn = getattr(updates_numpy, function_name)(*args)
        ct = getattr(updates_torch, function_name)(
            *(torch.tensor(float(v), dtype=torch.float64) for v in args)
        )
        assert float(ct.x) == pytest.approx(cn.x, rel=1e-15)
        assert float(ct.mu) == pytest.approx(cn.mu, rel=1e-13, abs=1e-15)
        for wt, wn in zip(ct.outputs, cn.outputs, strict=True):
            assert float(wt) == pytest.approx(wn, rel=1e-13, abs=1e-15)


def test_generated_coefficients_broadcast_over_a_whole_grid():
    """Coefficients are computed once for every step of a grid: vector inputs, vector outputs."""
    h = torch.linspace(0.1, 0.5, 7, dtype=torch.float64)
    r1 = torch.full_like(h, 0.8)
    ones = torch.ones_like(h)
    c = updates_torch.ode_data_multistep_2(h, r1, 0.5 * ones, 0.2 * ones, 0.6 * ones, 0.1 * ones)
    assert c.x.shape == h.shape and c.mu.shape == h.shape
    assert all(w.shape == h.shape for w in c.outputs)
    assert c.x.dtype == torch.float64


def test_registry_declares_orders_calls_and_proved_local_error():
    for name, info in UPDATES.items():
        assert name == f"{info.method}_{info.prediction}_{info.scheme}_{info.order}"
        assert info.local_error_power == info.order + 1
        assert info.model_calls == (len(info.stages) if info.scheme == "singlestep" else 1)
    orders = {(i.method, i.scheme): set() for i in UPDATES.values()}
    for info in UPDATES.values():
        orders[(info.method, info.scheme)].add(info.order)
    assert orders[("ode", "multistep")] == {1, 2, 3}
    assert orders[("sde", "multistep")] == {1, 2}
    assert orders[("ode", "singlestep")] == {2, 3}
    assert orders[("ode", "corrector")] == {2, 3, 4}


def test_a_start_is_recorded_exactly_where_the_warm_up_loses_order():
    """A first step needs local error O(h^K): the singlestep update of order K − 1 when the
    warm-up's first step (first order, local O(h²); corrected, O(h³)) has less."""
    for name, info in UPDATES.items():
        warm_up_local_power = 3 if info.scheme == "corrector" else 2
        if info.scheme == "singlestep" or warm_up_local_power >= info.order:
            assert info.start is None, name
            continue
        start = UPDATES[info.start]
        assert (start.scheme, start.method, start.prediction) == (
            "singlestep",
            "ode",
            info.prediction,
        )
        assert start.local_error_power == info.order, name


@pytest.mark.parametrize("name", [n for n, i in UPDATES.items() if i.scheme == "corrector"])
def test_corrector_predicts_with_the_multistep_update_and_corrects_through_its_output(name):
    info = UPDATES[name]
    predictor, corrector = info.stages
    multistep = UPDATES[f"{info.method}_{info.prediction}_multistep_{info.order - 1}"]
    ((function, _, labels),) = multistep.stages
    assert predictor.labels == labels and predictor.end == corrector.end == "1"
    assert corrector.labels == ("predictor", *labels)
    args = (0.4, *[0.7] * len(info.parameters), 0.3, 0.15, 0.5, 0.1)
    assert getattr(updates_numpy, predictor.function)(*args) == getattr(updates_numpy, function)(
        *args
    )
