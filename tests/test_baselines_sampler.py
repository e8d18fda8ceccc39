"""Strided baselines and the solver registry."""

import re
import warnings

import numpy as np
import pytest
import torch

from mrs_numerics import MRSampler, schedules
from mrs_numerics.solvers import SOLVERS, make_sampler, solver_info
from mrs_numerics.solvers.baselines import BaselineSampler
from mrs_numerics.verification.oracles import GaussianData

SCHEDULE = schedules.cosine()


def _recorded_noise():
    def noise_fn(step, t_from, t_to, shape, dtype, device):
        gen = torch.Generator().manual_seed(1000 + step)
        return torch.randn(shape, generator=gen, dtype=dtype)

    return noise_fn


@pytest.mark.parametrize("steps", [3, 10, 37])
@pytest.mark.parametrize("schedule", [SCHEDULE, schedules.irsde(theta0_offset=True)], ids=repr)
def test_strided_posterior_is_the_first_order_data_sde(steps, schedule):
    problem = GaussianData.random(schedule)
    x_T = problem.marginal_sample(schedule.t_max)
    options = {"grid": "time", "t_end": schedule.t_min, "noise_fn": _recorded_noise()}
    posterior = BaselineSampler(schedule, "posterior", "data", **options)
    mrs = MRSampler(schedule, "sde", 1, "data", "data", **options)
    a = posterior.sample(problem.data, problem.mu, steps=steps, x_T=x_T)
    b = mrs.sample(problem.data, problem.mu, steps=steps, x_T=x_T)
    torch.testing.assert_close(a.x, b.x, rtol=0, atol=1e-13)
    assert a.nfe == b.nfe == steps


@pytest.mark.parametrize(("solver", "order"), [("euler-ode", 1), ("heun-ode", 2)])
def test_ode_baselines_show_their_order_on_a_moderate_lambda_range(solver, order):
    problem = GaussianData.random(SCHEDULE)
    t_end = float(SCHEDULE.t_of_lam(torch.tensor(3.0, dtype=torch.float64)))
    x_T = problem.marginal_sample(1.0)
    ns = [100, 200, 400]
    errors = []
    for n in ns:
        sampler = BaselineSampler(SCHEDULE, solver, "data", grid="time", t_end=t_end)
        result = sampler.sample(problem.data, problem.mu, steps=n, x_T=x_T)
        errors.append(float((result.x - problem.flow(x_T, 1.0, t_end)).abs().max()))
    slope = -np.polyfit(np.log(ns), np.log(errors), 1)[0]
    assert abs(slope - order) < 0.2, errors


def test_heun_costs_two_calls_and_takes_an_euler_last_step_to_sigma_zero():
    schedule = schedules.irsde(theta0_offset=True)
    problem = GaussianData.random(schedule)
    sampler = BaselineSampler(schedule, "heun-ode", "data", grid="time", t_end=0.0)
    result = sampler.sample(problem.data, problem.mu, steps=4)
    assert result.nfe == 2 * 3 + 1
    assert torch.isfinite(result.x).all()
    assert sampler.plan(4).steps[-1].description.endswith("Euler last step to σ = 0")


def test_euler_maruyama_is_strided_for_any_nfe():
    problem = GaussianData.random(SCHEDULE)
    sampler = BaselineSampler(SCHEDULE, "euler-maruyama", "data", noise_fn=_recorded_noise())
    for steps in (3, 7):
        result = sampler.sample(problem.data, problem.mu, steps=steps)
        assert result.nfe == steps
        times = result.timesteps
        assert len(times) == steps + 1 and float(times[0]) == SCHEDULE.t_max


def test_registry_ids_are_canonical_and_orders_declared():
    pattern = re.compile(
        r"^mrs-(ode-[123]|sde-[12])-(data|noise)$|^mrs-ode-[123]-(data|noise)-unic$"
    )
    baselines = {"euler-maruyama", "posterior", "euler-ode", "heun-ode"}
    assert {i for i in SOLVERS if not pattern.match(i)} == baselines
    for info in SOLVERS.values():
        if info.method == "ode":
            assert info.order in (1, 2, 3, 4) and info.strong_order is None
            assert info.order == 4 or info.corrector is None or info.start_extra_nfe == 0
        else:
            assert info.order is None and info.strong_order >= 1 and info.weak_order >= 1
    assert solver_info("mrs-ode-3-data").start_extra_nfe == 1
    corrected = solver_info("mrs-ode-3-data-unic")
    assert (corrected.order, corrected.start_extra_nfe, corrected.nfe(6)) == (4, 2, 8)
    assert solver_info("heun-ode").nfe_per_step == 2


@pytest.mark.filterwarnings("ignore::mrs_numerics.solvers.instability.InstabilityWarning")
def test_every_registered_solver_samples_through_make_sampler():
    problem = GaussianData.random(SCHEDULE)
    for solver_id, info in SOLVERS.items():
        sampler = make_sampler(solver_id, SCHEDULE, model_prediction="data")
        with warnings.catch_warnings():
            # the noise-form SDEs diverge at 6 steps (an InstabilityWarning; see test_reliability)
            warnings.simplefilter("ignore")
            result = sampler.sample(
                problem.data,
                problem.mu,
                steps=6,
                generator=torch.Generator(),
                allow_divergence=True,
            )
        assert torch.isfinite(result.x).all(), solver_id
        assert result.nfe == 6 * info.nfe_per_step + info.start_extra_nfe, solver_id


def test_unknown_solver_names_are_rejected():
    with pytest.raises(ValueError, match="unknown solver 'dpm'; known solvers: euler-maruyama"):
        solver_info("dpm")
    with pytest.raises(ValueError, match="unknown baseline 'ddim'; allowed: euler-maruyama"):
        BaselineSampler(SCHEDULE, "ddim")
