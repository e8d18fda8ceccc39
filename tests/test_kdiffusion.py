"""k-diffusion's calling convention: EDM coordinates, the MR denoiser and ``sample_mrs``.

The k-diffusion samplers are not imported (the package needs torchvision); the Euler loop below
is written from its convention: d = (x − D(x, σ))/σ, x ← x + d·(σ_next − σ).
"""

from __future__ import annotations

import itertools

import pytest
import torch

from mrs_numerics import schedules
from mrs_numerics.solvers import SOLVERS, make_sampler
from mrs_numerics.solvers.kdiffusion import (
    MRDenoiser,
    from_edm,
    sample_mrs,
    sigmas_from_times,
    times_from_sigmas,
    to_edm,
)
from mrs_numerics.verification.oracles import gmm_2d_diag

SCHEDULE = schedules.cosine()
ORACLE = gmm_2d_diag(SCHEDULE)
MU = torch.randn(3, 2, generator=torch.Generator().manual_seed(11), dtype=torch.float64)


def _start(times):
    return ORACLE.sample_marginal(MU, times[0], torch.Generator().manual_seed(4))


def test_edm_coordinates_make_the_marginal_variance_exploding():
    """x_e = (x − (1 − α)μ)/α = x₀ + σ_e ε with σ_e = σ/α = e^{−λ}."""
    t = torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)
    alpha, sigma = SCHEDULE.alpha(t), SCHEDULE.sigma(t)
    torch.testing.assert_close(sigmas_from_times(SCHEDULE, t), sigma / alpha, rtol=1e-13, atol=0)
    x0 = torch.randn(3, 4, dtype=torch.float64)
    eps = torch.randn(3, 4, dtype=torch.float64)
    mu = torch.randn(3, 4, dtype=torch.float64)
    x = mu + alpha[:, None] * (x0 - mu) + sigma[:, None] * eps
    x_e = to_edm(x, mu, alpha[:, None])
    torch.testing.assert_close(x_e, x0 + (sigma / alpha)[:, None] * eps, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(from_edm(x_e, mu, alpha[:, None]), x, rtol=1e-12, atol=1e-12)


def test_times_and_sigmas_are_inverse_and_zero_is_the_clean_end():
    times = make_sampler("mrs-ode-2-data", SCHEDULE, "data").timesteps(7)
    sigmas = sigmas_from_times(SCHEDULE, times)
    assert bool((sigmas[1:] < sigmas[:-1]).all())
    torch.testing.assert_close(times_from_sigmas(SCHEDULE, sigmas), times, rtol=1e-10, atol=1e-12)
    assert float(times_from_sigmas(SCHEDULE, torch.tensor([0.0]))[0]) == SCHEDULE.t_min
    with pytest.raises(ValueError, match="noisier than the schedule reaches"):
        times_from_sigmas(SCHEDULE, torch.tensor([1e4]))
    with pytest.raises(ValueError, match="finite and ≥ 0"):
        times_from_sigmas(SCHEDULE, torch.tensor([-1.0]))


@pytest.mark.parametrize("prediction", ["noise", "data", "velocity", "score"])
def test_the_mr_denoiser_returns_the_data_prediction(prediction):
    denoiser = MRDenoiser(getattr(ORACLE, prediction), SCHEDULE, prediction)
    t = torch.full((3,), 0.4, dtype=torch.float64)
    x = ORACLE.sample_marginal(MU, t, torch.Generator().manual_seed(2))
    alpha = float(SCHEDULE.alpha(t[0]))
    sigma_e = sigmas_from_times(SCHEDULE, t)
    denoised = denoiser(to_edm(x, MU, alpha), sigma_e, mu=MU)
    torch.testing.assert_close(denoised, ORACLE.data(x, t, MU), rtol=1e-9, atol=1e-10)
    with pytest.raises(ValueError, match="needs the condition"):
        denoiser(x, sigma_e)


@pytest.mark.parametrize(
    "solver", sorted(s for s in SOLVERS if SOLVERS[s].method == "ode" or s.endswith("-data"))
)
def test_sample_mrs_equals_the_mr_sampler_on_the_same_grid(solver):
    """Same grid, same start, the same solver: equal to round-off (float64)."""
    sampler = make_sampler(solver, SCHEDULE, "data")
    times = sampler.timesteps(6)
    x_T = _start(times)
    generator = torch.Generator().manual_seed(5)
    expected = sampler.sample(ORACLE.data, MU, timesteps=times, x_T=x_T, generator=generator)
    denoiser = MRDenoiser(ORACLE.noise, SCHEDULE, "noise")
    sigmas = sigmas_from_times(SCHEDULE, times)
    alpha_0, alpha_n = SCHEDULE.alpha(times[0]), SCHEDULE.alpha(times[-1])
    result = sample_mrs(
        denoiser,
        to_edm(x_T, MU, alpha_0),
        sigmas,
        extra_args={"mu": MU},
        disable=True,
        schedule=SCHEDULE,
        solver=solver,
        generator=torch.Generator().manual_seed(5),
    )
    torch.testing.assert_close(from_edm(result, MU, alpha_n), expected.x, rtol=1e-9, atol=1e-10)


def _k_euler(denoiser, x, sigmas, extra_args):
    """k-diffusion's Euler sampler, written from its convention."""
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised = denoiser(x, sigmas[i] * s_in, **extra_args)
        d = (x - denoised) / sigmas[i]
        x = x + d * (sigmas[i + 1] - sigmas[i])
    return x


def test_an_euler_step_in_edm_coordinates_is_the_first_order_mr_ode():
    sampler = make_sampler("mrs-ode-1-data", SCHEDULE, "data")
    times = sampler.timesteps(9)
    x_T = _start(times)
    expected = sampler.sample(ORACLE.data, MU, timesteps=times, x_T=x_T).x
    denoiser = MRDenoiser(ORACLE.velocity, SCHEDULE, "velocity")
    sigmas = sigmas_from_times(SCHEDULE, times)
    x_e = _k_euler(denoiser, to_edm(x_T, MU, SCHEDULE.alpha(times[0])), sigmas, {"mu": MU})
    result = from_edm(x_e, MU, SCHEDULE.alpha(times[-1]))
    torch.testing.assert_close(result, expected, rtol=1e-9, atol=1e-10)


def test_sigmas_ending_at_zero_return_the_clean_estimate_and_call_back_each_step():
    times = make_sampler("mrs-ode-2-data", SCHEDULE, "data").timesteps(5)
    times[-1] = SCHEDULE.t_min  # the cosine schedule's σ(0) = 0
    sigmas = sigmas_from_times(SCHEDULE, times)
    assert float(sigmas[-1]) == 0.0
    seen = []
    x_e = to_edm(_start(times), MU, SCHEDULE.alpha(times[0]))
    result = sample_mrs(
        MRDenoiser(ORACLE.data, SCHEDULE, "data"),
        x_e,
        sigmas,
        extra_args={"mu": MU},
        callback=seen.append,
        disable=True,
        schedule=SCHEDULE,
    )
    assert torch.isfinite(result).all()
    assert [info["i"] for info in seen] == list(range(5))
    assert torch.equal(seen[0]["x"], x_e)
    first = seen[0]
    t0 = torch.full((3,), float(times[0]), dtype=torch.float64)
    x_mr = from_edm(first["x"], MU, SCHEDULE.alpha(times[0]))
    torch.testing.assert_close(first["denoised"], ORACLE.data(x_mr, t0, MU))
    assert float(first["sigma"]) == pytest.approx(float(sigmas[0]))


def test_sample_mrs_takes_k_diffusions_noise_sampler_for_sdes():
    times = make_sampler("mrs-sde-2-data", SCHEDULE, "data").timesteps(8)
    x_e = to_edm(_start(times), MU, SCHEDULE.alpha(times[0]))
    sigmas = sigmas_from_times(SCHEDULE, times)
    asked = []

    def zeros(sigma, sigma_next):
        asked.append((float(sigma), float(sigma_next)))
        return torch.zeros_like(x_e)

    common = {"extra_args": {"mu": MU}, "disable": True, "schedule": SCHEDULE}
    denoiser = MRDenoiser(ORACLE.data, SCHEDULE, "data")
    quiet = sample_mrs(
        denoiser, x_e, sigmas, solver="mrs-sde-2-data", noise_sampler=zeros, **common
    )
    expected = [float(v) for pair in itertools.pairwise(sigmas) for v in pair]
    assert [v for pair in asked for v in pair] == pytest.approx(expected, rel=1e-9)
    noisy = sample_mrs(
        denoiser, x_e, sigmas, solver="mrs-sde-2-data", generator=torch.Generator(), **common
    )
    assert not torch.allclose(quiet, noisy)
    with pytest.raises(ValueError, match=r"extra_args\['mu'\]"):
        sample_mrs(denoiser, x_e, sigmas, schedule=SCHEDULE, disable=True)
