"""scipy PF-ODE references: exact on Gaussians, far beyond the samplers, reproducible."""

import warnings

import pytest
import torch

from mrs_numerics import MRSampler, schedules
from mrs_numerics.verification import oracles, references

F64 = torch.float64
SCHEDULES = {"cosine": schedules.cosine(), "constant": schedules.constant()}
LAM_START, LAM_END = -3.0, 3.0


def _t(schedule, lam):
    return float(schedule.t_of_lam(torch.tensor(lam, dtype=F64)))


def _single(name, schedule):
    if name == "gauss-1d":
        return oracles.builtin_problem(name, schedule)
    covariance = torch.tensor(oracles.GMM_3D_FULL_COVARIANCES[0], dtype=F64)
    return oracles.single_gaussian(schedule, [0.4, -0.2, 0.1], covariance)


def _start(oracle, t_start, batch=6, seed=0):
    gen = torch.Generator().manual_seed(seed)
    mu = torch.randn(batch, oracle.dim, generator=gen, dtype=F64)
    return oracle.sample_marginal(mu, t_start, gen), mu


def _exact(oracle, x, t_s, t_e, mu):
    offset, covariance = oracle.offsets[0], oracle.covariances[0]
    return oracles.gaussian_flow(oracle.schedule, x, t_s, t_e, mu, offset, covariance)


@pytest.mark.parametrize("schedule_name", sorted(SCHEDULES))
@pytest.mark.parametrize("name", ["gauss-1d", "gauss-3d-full"])
def test_reference_matches_the_closed_form_gaussian_flow(name, schedule_name):
    schedule = SCHEDULES[schedule_name]
    oracle = _single(name, schedule)
    t_s, t_e = _t(schedule, LAM_START), _t(schedule, LAM_END)
    x, mu = _start(oracle, t_s)
    reference = references.pf_ode_reference(oracle, schedule, x, mu, t_s, t_e)
    assert reference.success
    assert reference.x.dtype == F64 and reference.x.shape == x.shape
    assert float((reference.x - _exact(oracle, x, t_s, t_e, mu)).abs().max()) <= 1e-10


def test_reference_is_far_more_accurate_than_the_third_order_sampler():
    schedule = SCHEDULES["cosine"]
    oracle = _single("gauss-3d-full", schedule)
    t_s, t_e = _t(schedule, LAM_START), _t(schedule, LAM_END)
    x, mu = _start(oracle, t_s)
    exact = _exact(oracle, x, t_s, t_e, mu)
    sampler = MRSampler(
        schedule, "ode", 3, "data", "data", t_start=t_s, t_end=t_e, lower_order_final=False
    )
    sampled = sampler.sample(oracle.model("data"), mu, steps=50, x_T=x).x
    reference = references.pf_ode_reference(oracle, schedule, x, mu, t_s, t_e).x
    sampler_error = float((sampled - exact).abs().max())
    reference_error = float((reference - exact).abs().max())
    assert reference_error <= 1e-4 * sampler_error


def test_gmm_reference_is_reproducible_and_converged():
    schedule = SCHEDULES["cosine"]
    oracle = oracles.builtin_problem("gmm-3d-full", schedule)
    t_s, t_e = _t(schedule, LAM_START), _t(schedule, LAM_END)
    x, mu = _start(oracle, t_s, batch=8, seed=3)
    first = references.pf_ode_reference(oracle, schedule, x, mu, t_s, t_e)
    again = references.pf_ode_reference(oracle, schedule, x, mu, t_s, t_e)
    assert torch.equal(first.x, again.x) and first.nfev == again.nfev
    finer = references.pf_ode_reference(oracle, schedule, x, mu, t_s, t_e, rtol=1e-13, atol=1e-13)
    assert finer.nfev > first.nfev
    assert float((first.x - finer.x).abs().max()) <= 1e-10


@pytest.mark.parametrize("prediction", ["data", "velocity", "score"])
def test_any_model_prediction_gives_the_oracle_reference(prediction):
    schedule = SCHEDULES["constant"]
    oracle = oracles.builtin_problem("gmm-2d-diag", schedule)
    t_s, t_e = _t(schedule, -2.0), _t(schedule, 2.0)
    x, mu = _start(oracle, t_s, batch=4, seed=5)
    model = oracle.model(prediction)
    via_model = references.pf_ode_reference(
        model, schedule, x.float(), mu.float(), t_s, t_e, prediction=prediction
    )
    via_oracle = references.pf_ode_reference(oracle, schedule, x.float(), mu.float(), t_s, t_e)
    assert model.calls == via_model.nfev
    torch.testing.assert_close(via_model.x, via_oracle.x, rtol=0, atol=1e-10)
    declared = references.pf_ode_reference(model, schedule, x.float(), mu.float(), t_s, t_e)
    torch.testing.assert_close(declared.x, via_model.x, rtol=0, atol=0)
    with pytest.raises(ValueError, match="declares prediction"):
        references.pf_ode_reference(model, schedule, x, mu, t_s, t_e, prediction="noise")


@pytest.mark.parametrize("dense", [False, True])
def test_reference_times_follow_the_exact_trajectory(dense):
    schedule = SCHEDULES["cosine"]
    oracle = _single("gauss-3d-full", schedule)
    t_s = _t(schedule, LAM_START)
    times = [_t(schedule, lam) for lam in (-1.0, 0.0, 1.5, LAM_END)]
    x, mu = _start(oracle, t_s)
    trajectory = references.pf_ode_reference_times(oracle, schedule, x, mu, t_s, times, dense=dense)
    assert trajectory.success and trajectory.xs.shape == (len(times), *x.shape)
    exact = torch.stack([_exact(oracle, x, t_s, t, mu) for t in times])
    assert float((trajectory.xs - exact).abs().max()) <= 1e-10


def test_integrating_back_returns_to_the_start():
    schedule = SCHEDULES["constant"]
    oracle = oracles.builtin_problem("gmm-2d-diag", schedule)
    t_s, t_e = _t(schedule, LAM_START), _t(schedule, LAM_END)
    x, mu = _start(oracle, t_s, seed=9)
    forward = references.pf_ode_reference(oracle, schedule, x, mu, t_s, t_e)
    back = references.pf_ode_reference(oracle, schedule, forward.x, mu, t_e, t_s)
    assert float((back.x - x).abs().max()) <= 1e-10


def test_an_end_with_zero_sigma_is_refused():
    schedule = SCHEDULES["constant"]
    oracle = oracles.builtin_problem("gauss-1d", schedule)
    x, mu = _start(oracle, 0.5)
    with pytest.raises(ValueError, match="σ = 0"):
        references.pf_ode_reference(oracle, schedule, x, mu, 0.5, 0.0)
    with pytest.raises(ValueError, match="σ = 0"):
        references.pf_ode_reference_times(oracle, schedule, x, mu, 0.5, [0.2, 0.0])


def test_loose_tolerances_warn_and_non_monotone_times_are_refused():
    schedule = SCHEDULES["constant"]
    oracle = oracles.builtin_problem("gauss-1d", schedule)
    x, mu = _start(oracle, 0.5)
    with pytest.warns(UserWarning, match="do not make a reference"):
        references.pf_ode_reference(oracle, schedule, x, mu, 0.5, 0.2, rtol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        references.pf_ode_reference(oracle, schedule, x, mu, 0.5, 0.2)
    with pytest.raises(ValueError, match="monotone"):
        references.pf_ode_reference_times(oracle, schedule, x, mu, 0.5, [0.2, 0.3])
