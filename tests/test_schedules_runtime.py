"""Runtime schedule objects: consistency of α, σ, λ, t(λ) on continuous and discrete schedules."""

import numpy as np
import pytest
import torch

from mrs_numerics import MRSampler, schedules
from mrs_numerics.solvers import presets
from mrs_numerics.solvers.options import Thresholding

CONTINUOUS = [schedules.constant(), schedules.linear(), schedules.cosine()]
DISCRETE = [
    schedules.irsde(kind, theta0_offset=offset)
    for kind in ("cosine", "linear", "constant")
    for offset in (True, False)
]
ALL = CONTINUOUS + DISCRETE


def _times(schedule, n=301):
    return torch.linspace(schedule.t_min, schedule.t_max, n, dtype=torch.float64)[1:]


@pytest.mark.parametrize("schedule", ALL, ids=repr)
def test_lambda_is_log_alpha_over_sigma_everywhere(schedule):
    t = _times(schedule)
    expected = torch.log(schedule.alpha(t)) - torch.log(schedule.sigma(t))
    torch.testing.assert_close(schedule.lam(t), expected, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("schedule", ALL, ids=repr)
def test_mr_constraint_alpha_sigma(schedule):
    t = _times(schedule)
    alpha, sigma = schedule.alpha(t), schedule.sigma(t)
    torch.testing.assert_close(alpha**2 + (sigma / schedule.max_sigma) ** 2, torch.ones_like(t))
    torch.testing.assert_close(schedule.g(t) ** 2, 2 * schedule.max_sigma**2 * schedule.theta(t))


@pytest.mark.parametrize("schedule", ALL, ids=repr)
def test_t_of_lam_inverts_lam(schedule):
    t = _times(schedule)
    torch.testing.assert_close(schedule.t_of_lam(schedule.lam(t)), t, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("schedule", ALL, ids=repr)
def test_alpha_at_the_end_is_eps_and_lambda_decreases(schedule):
    t_max = torch.tensor(schedule.t_max, dtype=torch.float64)
    assert float(schedule.alpha(t_max)) == pytest.approx(0.005, rel=1e-12)
    assert (schedule.lam(_times(schedule)).diff() < 0).all()


def test_discrete_schedule_matches_its_tables_at_integer_times():
    schedule = schedules.irsde("cosine", T=100)
    idx = torch.arange(0, 101, dtype=torch.float64)
    torch.testing.assert_close(schedule.alpha(idx), schedule.tables["alpha"], rtol=1e-14, atol=0)
    torch.testing.assert_close(schedule.sigma(idx), schedule.tables["sigma"], rtol=1e-14, atol=0)


def test_theta0_conventions_differ_only_at_the_clean_end():
    with_offset = schedules.irsde(theta0_offset=True)
    without = schedules.irsde(theta0_offset=False)
    zero = torch.tensor(0.0, dtype=torch.float64)
    assert float(with_offset.alpha(zero)) == 1.0 and float(with_offset.sigma(zero)) == 0.0
    assert np.isinf(float(with_offset.lam(zero)))
    assert 6.0 < float(without.lam(zero)) < 6.2


def test_point_mass_on_irsde_tables_lands_exactly_on_the_data_at_sigma_zero():
    schedule = schedules.irsde(theta0_offset=True)
    gen = torch.Generator().manual_seed(0)
    mu, m = (
        torch.randn(3, 4, generator=gen, dtype=torch.float64),
        torch.randn(3, 4, dtype=torch.float64),
    )
    for method, order in (("ode", 1), ("ode", 2), ("ode", 3), ("sde", 1), ("sde", 2)):
        sampler = MRSampler(schedule, method, order, "data", "data", grid="time", t_end=0.0)
        result = sampler.sample(lambda x, t, mu_: m, mu, steps=5, generator=gen)
        torch.testing.assert_close(result.x, m, rtol=0, atol=1e-14)


def test_noise_form_cannot_land_on_sigma_zero():
    schedule = schedules.irsde(theta0_offset=True)
    sampler = MRSampler(schedule, "ode", 1, "noise", "noise", grid="time", t_end=0.0)
    with pytest.raises(ValueError, match="only a data-form step can land there"):
        sampler.sample(lambda x, t, mu: x, torch.zeros(1, 2, dtype=torch.float64), steps=3)


def test_lambda_spacing_refuses_an_infinite_end():
    schedule = schedules.irsde(theta0_offset=True)
    sampler = MRSampler(schedule, "ode", 1, "data", "data", grid="lambda", t_end=0.0)
    with pytest.raises(ValueError, match="needs a finite λ at both ends"):
        sampler.timesteps(4)


@pytest.mark.parametrize(
    ("order", "start", "steps", "expected"),
    [
        (2, "singlestep", 5, [1, 2, 2, 1, 2]),  # the official loop's sequences
        (3, "warmup", 5, [1, 2, 2, 1, 3]),
        (2, "singlestep", 2, [1, 2]),
        (2, "singlestep", 9, [1, 2, 2, 2, 2, 2, 2, 1, 2]),
        (2, "singlestep", 10, [1] + [2] * 9),  # no lowering from 10 steps on
        (3, "warmup", 12, [1, 2] + [3] * 10),
    ],
)
def test_official_lower_order_rule_keeps_the_last_step_at_full_order(order, start, steps, expected):
    sampler = MRSampler(
        presets.official_schedule(), "ode", order, start=start, lower_order_final="official"
    )
    assert sampler.step_orders(steps) == expected
    assert presets.official_mrs("ode", order, start=start).step_orders(steps) == expected
    ours = MRSampler(presets.official_schedule(), "ode", order, start=start, lower_order_final=True)
    assert ours.step_orders(5)[-1] == 1  # the package's own rule lowers the last step


def test_a_bad_lower_order_final_is_refused():
    with pytest.raises(ValueError, match="lower_order_final must be True, False, None or"):
        MRSampler(presets.official_schedule(), "ode", 2, lower_order_final="yes")


def test_official_preset_thresholds_with_the_official_cap():
    assert presets.official_mrs(thresholding=True).options.thresholding.cap == 1.5
    assert presets.official_mrs().options.thresholding is None
    mine = Thresholding(ratio=0.9)
    assert presets.official_mrs(thresholding=mine).options.thresholding is mine


def test_official_preset_uses_the_mrs_table_from_index_t_to_zero():
    sampler = presets.official_mrs()
    assert sampler.solver_id == "mrs-sde-2-data" and sampler.model_prediction == "noise"
    assert not sampler.schedule.theta0_offset and sampler.schedule.T == 100
    times = sampler.timesteps(5)
    assert float(times[0]) == 100.0 and float(times[-1]) == 0.0
    mu = torch.zeros(2, 3, dtype=torch.float64)

    def exact_noise(x, t, mu_):
        """The exact ε for data x₀ = μ: x_t = μ + σ_t ξ, so ε = (x − μ)/σ_t."""
        return (x - mu_) / sampler.schedule.sigma(t)[:, None]

    result = sampler.sample(exact_noise, mu, steps=5)
    assert torch.isfinite(result.x).all() and result.nfe == 5


def test_unknown_schedule_parameters_are_rejected():
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['s'\] for schedule 'cosine'"):
        schedules.ContinuousSchedule("cosine", schedules.cosine().module, s=0.01)
    with pytest.raises(ValueError, match="unknown IR-SDE schedule 'sigmoid'"):
        schedules.irsde("sigmoid")
    with pytest.raises(ValueError, match="eps must be in"):
        schedules.constant(eps=1.5)
