"""The contract every solver of the registry keeps: adding an id to ``SOLVERS`` covers it here.

For every id: it is built by ``make_sampler``, samples a tiny exact Gaussian problem in float64
and float32, makes exactly the network calls its registry entry declares, is deterministic under
a seed, and describes itself with the orders the registry declares for it.
"""

from __future__ import annotations

import warnings

import pytest
import torch

from mrs_numerics import schedules
from mrs_numerics.solvers import SOLVERS, make_sampler
from mrs_numerics.solvers.registry import ORDERS, parse_mrs_id
from mrs_numerics.verification.oracles import GaussianData

SCHEDULE = schedules.cosine()
PROBLEM = GaussianData.random(SCHEDULE, batch=3, dim=2, seed=5)
STEPS = (1, 2, 7)


class CountingModel:
    """The exact data prediction of ``PROBLEM``, counting its calls and checking its inputs."""

    def __init__(self):
        self.calls = 0

    def __call__(self, x, t, mu):
        self.calls += 1
        assert t.dtype == torch.float64 and t.shape == (x.shape[0],)
        assert x.shape == mu.shape
        return PROBLEM.data(x, t, mu)


def _run(solver, steps, dtype, seed=0):
    """One run; the noise-form SDEs diverge at 1–7 steps (warned, not raised, here)."""
    model = CountingModel()
    sampler = make_sampler(solver, SCHEDULE, "data", t_end=0.2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = sampler.sample(
            model,
            PROBLEM.mu.to(dtype),
            steps=steps,
            generator=torch.Generator().manual_seed(seed),
            allow_divergence=True,
        )
    return result, model.calls


@pytest.mark.parametrize("solver", sorted(SOLVERS))
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
def test_solver_samples_and_makes_its_declared_calls(solver, dtype):
    info = SOLVERS[solver]
    for steps in STEPS:
        result, calls = _run(solver, steps, dtype)
        assert result.x.dtype == dtype and result.x.shape == PROBLEM.mu.shape
        assert torch.isfinite(result.x).all()
        assert result.nfe == calls == info.nfe(steps), (steps, result.nfe, calls)
        assert result.timesteps.numel() == steps + 1


@pytest.mark.parametrize("solver", sorted(SOLVERS))
def test_solver_lands_near_the_exact_solution(solver):
    """A sanity bound, not an order: 40 steps end close to the exact answer at t_end.

    ODE solvers: within 0.05 of the exact flow map from the same start. SDE solvers: every
    sample within five standard deviations of the exact marginal mean at t_end.
    """
    sampler = make_sampler(solver, SCHEDULE, "data", t_end=0.2)
    times = sampler.timesteps(40)
    x_T = PROBLEM.marginal_sample(times[0], seed=9)
    generator = torch.Generator().manual_seed(1)
    x = sampler.sample(PROBLEM.data, PROBLEM.mu, steps=40, x_T=x_T, generator=generator).x
    if SOLVERS[solver].method == "ode":
        assert (x - PROBLEM.flow(x_T, times[0], times[-1])).abs().max() < 0.05
    else:
        mean, var = PROBLEM.moments(times[-1])
        assert ((x - mean).abs() / var.sqrt()).max() < 5.0


@pytest.mark.parametrize("solver", sorted(SOLVERS))
def test_solver_is_deterministic_under_a_seed(solver):
    first, _ = _run(solver, 5, torch.float32, seed=3)
    again, _ = _run(solver, 5, torch.float32, seed=3)
    assert torch.equal(first.x, again.x)
    if SOLVERS[solver].method == "sde":
        other, _ = _run(solver, 5, torch.float32, seed=4)
        assert not torch.equal(first.x, other.x)


@pytest.mark.parametrize("solver", sorted(SOLVERS))
def test_solver_reports_the_orders_the_registry_declares(solver):
    info = SOLVERS[solver]
    sampler = make_sampler(solver, SCHEDULE, "data")
    assert sampler.solver_id == solver
    if info.method == "ode":
        assert info.order is not None and info.order >= 1
        assert info.strong_order is None and info.weak_order is None
    else:
        assert info.order is None
        assert info.strong_order is not None and info.weak_order is not None
    if info.family == "mrs":
        method, order, prediction, corrector = parse_mrs_id(solver)
        assert (sampler.method, sampler.order, sampler.solver_prediction, sampler.corrector) == (
            method,
            order,
            prediction,
            corrector,
        )
        assert order in ORDERS[method] and info.corrector == corrector
        declared = info.order if method == "ode" else info.weak_order
        assert declared == order + (corrector is not None)


def _bad_outputs():
    """Model outputs that are not a tensor shaped exactly like the input, by name."""
    shape = tuple(PROBLEM.mu.shape)  # [3, 2]
    return {
        "per-sample [B, 1]": lambda x: torch.zeros(shape[0], 1, dtype=x.dtype),
        "0-dim": lambda x: torch.zeros((), dtype=x.dtype),
        "[1, D]": lambda x: torch.zeros(1, shape[1], dtype=x.dtype),
        "flattened": lambda x: torch.zeros(x.numel(), dtype=x.dtype),
        "tuple": lambda x: (torch.zeros_like(x),),
        "None": lambda x: None,
        "numpy array": lambda x: torch.zeros_like(x).numpy(),
        "integer tensor": lambda x: torch.zeros(x.shape, dtype=torch.long),
    }


@pytest.mark.parametrize("solver", sorted(SOLVERS))
@pytest.mark.parametrize("kind", sorted(_bad_outputs()))
def test_a_model_output_not_shaped_like_its_input_is_refused(solver, kind):
    """Broadcastable or non-tensor outputs would silently combine wrong values: refused."""
    make = _bad_outputs()[kind]
    sampler = make_sampler(solver, SCHEDULE, "data", t_end=0.2)
    message = r"model output at t = .*(expected exactly the input's shape \(3, 2\)|shaped like)"
    if kind == "integer tensor":
        message = r"model output at t = .* has dtype torch\.int64"
    with pytest.raises((TypeError, ValueError), match=message) as raised:
        sampler.sample(lambda x, t, mu: make(x), PROBLEM.mu, steps=3)
    if kind not in ("tuple", "None", "numpy array", "integer tensor"):
        received = tuple(make(PROBLEM.mu).shape)
        assert f"has shape {received}" in str(raised.value)


@pytest.mark.parametrize("solver", [s for s in sorted(SOLVERS) if SOLVERS[s].method == "sde"])
@pytest.mark.parametrize("kind", ["[B, 1]", "tuple", "None"])
def test_a_noise_source_not_shaped_like_the_state_is_refused(solver, kind):
    def noise(step, t_from, t_to, shape, dtype, device):
        z = torch.zeros(shape, dtype=dtype, device=device)
        return {"[B, 1]": z[:, :1], "tuple": (z,), "None": None}[kind]

    sampler = make_sampler(solver, SCHEDULE, "data", t_end=0.2)
    message = r"the noise source's draw at step 0 (must be|has shape)"
    with pytest.raises((TypeError, ValueError), match=message):
        sampler.sample(PROBLEM.data, PROBLEM.mu, steps=3, noise=noise)
