"""Grids (λ, t, Karras, explicit, λ_min clipping) and the IR-SDE network adapter."""

import pytest
import torch

from mrs_numerics import MRSampler, schedules
from mrs_numerics.schedules import grids
from mrs_numerics.solvers.adapters import IRSDEAdapter

SCHEDULE = schedules.cosine()


@pytest.mark.parametrize("spacing", grids.SPACINGS)
def test_grids_are_strictly_decreasing_with_the_requested_ends(spacing):
    t_end = float(SCHEDULE.t_of_lam(torch.tensor(4.0, dtype=torch.float64)))
    times = grids.timesteps(SCHEDULE, 12, spacing, t_start=0.9, t_end=t_end)
    assert times.numel() == 13 and (times.diff() < 0).all()
    assert float(times[0]) == 0.9 and float(times[-1]) == t_end


def test_lambda_grid_is_uniform_in_lambda_and_karras_is_not():
    lam = SCHEDULE.lam(grids.timesteps(SCHEDULE, 10, "lambda"))
    steps = lam.diff()
    torch.testing.assert_close(
        steps, torch.full_like(steps, float(steps.mean())), rtol=1e-9, atol=0
    )
    karras = SCHEDULE.lam(grids.timesteps(SCHEDULE, 10, "karras"))
    assert karras.diff().std() > 1e-3


def test_lambda_min_clipping_starts_later_and_from_the_prior_there():
    sampler = MRSampler(SCHEDULE, "ode", 2, "data", "data", lam_min=-1.0)
    times = sampler.timesteps(5)
    assert float(SCHEDULE.lam(times[0])) == pytest.approx(-1.0, abs=1e-10)
    mu = torch.zeros(4000, 1, dtype=torch.float64)
    x0 = torch.full_like(mu, 0.0)
    result = sampler.sample(
        lambda x, t, mu_: x0, mu, steps=1, generator=torch.Generator().manual_seed(0)
    )
    first = result.trajectory if result.trajectory else None
    assert first is None
    gen = torch.Generator().manual_seed(0)
    start = MRSampler(SCHEDULE, "ode", 1, "data", "data", lam_min=-1.0).sample(
        lambda x, t, mu_: x0, mu, steps=1, generator=gen, return_trajectory=True
    )
    prior = start.trajectory[0]
    assert float(prior.std()) == pytest.approx(float(SCHEDULE.sigma(times[0])), rel=0.05)


def test_explicit_times_are_validated():
    with pytest.raises(ValueError, match="at least 2 times"):
        grids.explicit(SCHEDULE, [0.5])
    with pytest.raises(ValueError, match="must be finite"):
        grids.explicit(SCHEDULE, [1.0, float("nan")])
    with pytest.raises(ValueError, match="unknown grid spacing 'cosine'"):
        grids.timesteps(SCHEDULE, 4, "cosine")


def test_device_mismatch_is_reported():
    mu = torch.zeros(2, 3, dtype=torch.float64)
    x_T = torch.zeros(2, 3, dtype=torch.float64, device="meta")
    sampler = MRSampler(SCHEDULE, "ode", 1, "data", "data")
    with pytest.raises(ValueError, match="x_T is on the meta device"):
        sampler.sample(lambda x, t, m: x, mu, steps=2, x_T=x_T)


def test_irsde_adapter_calls_net_with_mu_then_the_time_and_context():
    calls = []

    def net(x, mu, t, text_context=None):
        calls.append((t.dtype, t.clone(), text_context))
        return torch.zeros_like(x)

    schedule = schedules.irsde(theta0_offset=False)
    model = IRSDEAdapter(net, text_context="snow", round_time=True)
    sampler = MRSampler(schedule, "ode", 1, "noise", model.prediction, grid="time")
    mu = torch.zeros(2, 3, dtype=torch.float64)
    sampler.sample(model, mu, steps=4, x_T=mu)  # a zero ε keeps x_T = μ at μ
    assert [c[0] for c in calls] == [torch.long] * 4
    assert [int(c[1][0]) for c in calls] == [100, 75, 50, 25]
    assert all(c[2] == "snow" for c in calls)
    fractional = MRSampler(schedule, "ode", 1, "noise", "noise", grid="time")
    mu = torch.zeros(1, 3, dtype=torch.float64)
    with pytest.warns(UserWarning, match="rounds fractional times"):
        fractional.sample(IRSDEAdapter(net, round_time=True), mu, steps=3, x_T=mu)
    calls.clear()
    fractional.sample(IRSDEAdapter(net), mu, steps=3, x_T=mu)  # unrounded by default
    assert [c[0] for c in calls] == [torch.float64] * 3
    assert [float(c[1][0]) for c in calls] == pytest.approx([100, 200 / 3, 100 / 3])
