"""Coupled Brownian noise: normality, correlations, determinism, additivity, generated coefficients,
errors, and the same path at every step size (mrs_numerics.noise)."""

import itertools
import math
import warnings

import numpy as np
import pytest
import torch
from scipy import integrate

from mrs_numerics import MRSampler, schedules
from mrs_numerics._generated import baselines_torch, updates_torch
from mrs_numerics.schedules import grids
from mrs_numerics.solvers import make_sampler
from mrs_numerics.solvers.baselines import BaselineSampler
from mrs_numerics.solvers.brownian import FAMILIES, CoupledBrownian, family_for, nested_grid
from mrs_numerics.verification.oracles import GaussianData
from tests.helpers import draw

SCHEDULE = schedules.cosine()
LAM_END = 3.0
F64 = (torch.float64, "cpu")
SCHEDULES = [
    schedules.cosine(),
    schedules.constant(),
    schedules.linear(),
    schedules.irsde(theta0_offset=True),
]


def _t_end(schedule, lam_end=LAM_END) -> float:
    return float(schedule.t_of_lam(torch.tensor(lam_end, dtype=torch.float64)))


def _base_grid(schedule=SCHEDULE, steps=2, lam_end=LAM_END) -> torch.Tensor:
    return grids.timesteps(schedule, steps, "lambda", t_end=_t_end(schedule, lam_end))


def _closed_form_covariance(schedule, s, t) -> torch.Tensor:
    """The (time, data, noise) covariance of a step s → t from closed forms and scipy quadrature."""
    lam_s, lam_t = (float(schedule.lam(torch.tensor(v, dtype=torch.float64))) for v in (s, t))
    knots = list(range(math.floor(t) + 1, math.ceil(s))) if hasattr(schedule, "T") else None

    def quad(f):
        def value(x):
            return float(f(torch.tensor(x, dtype=torch.float64)))

        return integrate.quad(value, t, s, epsabs=0.0, epsrel=1e-13, limit=500, points=knots)[0]

    def g(x):
        return schedule.g(x)

    time_data = quad(lambda x: g(x) * schedule.alpha(x) / schedule.sigma(x) ** 2)
    time_noise = quad(lambda x: g(x) / schedule.alpha(x))
    var_data = math.exp(2 * lam_t) - math.exp(2 * lam_s)
    var_noise = math.exp(-2 * lam_s) - math.exp(-2 * lam_t)
    cross = 2 * (lam_t - lam_s)
    return torch.tensor(
        [
            [s - t, time_data, time_noise],
            [time_data, var_data, cross],
            [time_noise, cross, var_noise],
        ],
        dtype=torch.float64,
    )


def _correlation(cov: torch.Tensor) -> torch.Tensor:
    std = cov.diagonal().sqrt()
    return cov / (std[:, None] * std[None, :])


@pytest.mark.parametrize("schedule", SCHEDULES, ids=repr)
def test_step_covariance_matches_closed_forms_and_adaptive_quadrature(schedule):
    coarse = _base_grid(schedule, steps=3, lam_end=6.0)
    brownian = CoupledBrownian(schedule, nested_grid(schedule, coarse, 4), (1, 1))
    for s, t in zip(coarse[:-1].tolist(), coarse[1:].tolist(), strict=True):
        expected = _closed_form_covariance(schedule, s, t)
        torch.testing.assert_close(brownian.covariance(s, t), expected, rtol=1e-12, atol=0)


def test_coarse_noise_is_standard_normal_with_the_implied_correlations():
    coarse = _base_grid(steps=2)
    fine = nested_grid(SCHEDULE, coarse, 4)
    shape = (64, 400)
    brownian = CoupledBrownian(SCHEDULE, fine, shape, seed=7)
    n = math.prod(shape)
    for times in (coarse, fine):
        fns = {family: brownian.noise_fn(family, times) for family in FAMILIES}
        for step in range(times.numel() - 1):
            z = torch.stack([draw(fns[f], times, step, shape).flatten() for f in FAMILIES])
            assert z.mean(1).abs().max() < 5 / math.sqrt(n)
            assert (z.var(1) - 1).abs().max() < 5 * math.sqrt(2 / n)
            s, t = float(times[step]), float(times[step + 1])
            implied = _correlation(brownian.covariance(s, t))
            h = float(SCHEDULE.lam(times[step + 1]) - SCHEDULE.lam(times[step]))
            assert implied[1, 2] == pytest.approx(h / math.sinh(h), rel=1e-12)
            assert (torch.corrcoef(z) - implied).abs().max() < 5 / math.sqrt(n)


def test_same_seeds_give_identical_noise_and_sample_i_does_not_depend_on_the_batch():
    fine = nested_grid(SCHEDULE, _base_grid(steps=3), 4)
    coarse = fine[::4]
    shape = (3, 5)
    one = CoupledBrownian(SCHEDULE, fine, shape, seed=[11, 22, 33])
    two = CoupledBrownian(SCHEDULE, fine, shape, seed=[11, 22, 33], max_cache_bytes=0)
    alone = CoupledBrownian(SCHEDULE, fine, (1, 5), seed=[22])
    by_int = CoupledBrownian(SCHEDULE, fine, shape, seed=5)
    by_int_alone = CoupledBrownian(SCHEDULE, fine, (1, 5), seed=[by_int.seeds[2]])
    for family in FAMILIES:
        a, b = one.noise_fn(family, coarse), two.noise_fn(family, coarse)
        c, d = alone.noise_fn(family, coarse), by_int.noise_fn(family, coarse)
        e = by_int_alone.noise_fn(family, coarse)
        for step in reversed(range(3)):
            z = draw(a, coarse, step, shape)
            assert torch.equal(z, draw(b, coarse, step, shape))
            assert torch.equal(z[1:2], draw(c, coarse, step, (1, 5)))
            assert torch.equal(draw(d, coarse, step, shape)[2:], draw(e, coarse, step, (1, 5)))
    assert len(set(by_int.seeds)) == 3


@pytest.mark.parametrize("family", FAMILIES)
def test_coarse_integral_is_the_sum_of_the_half_step_integrals(family):
    fine = nested_grid(SCHEDULE, _base_grid(steps=1), 8)
    brownian = CoupledBrownian(SCHEDULE, fine, (4, 3), seed=1)
    t0, t1, t2 = (float(fine[i]) for i in (0, 4, 8))
    whole = brownian.integral(family, t0, t2)
    halves = brownian.integral(family, t0, t1) + brownian.integral(family, t1, t2)
    torch.testing.assert_close(whole, halves, rtol=1e-13, atol=1e-13 * float(whole.abs().max()))
    coarse_z = brownian.noise_fn(family, fine[::4])
    fine_z = brownian.noise_fn(family, fine)
    coarse_sum = draw(coarse_z, fine[::4], 0, (4, 3)) * math.sqrt(brownian.variance(family, t0, t1))
    fine_sum = sum(
        draw(fine_z, fine, k, (4, 3)) * math.sqrt(brownian.variance(family, fine[k], fine[k + 1]))
        for k in range(4)
    )
    torch.testing.assert_close(coarse_sum, fine_sum, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "schedule", [SCHEDULE, schedules.constant(), schedules.irsde(theta0_offset=False)], ids=repr
)
def test_generated_noise_coefficients_times_z_are_the_prefactor_times_the_path_integral(schedule):
    coarse = _base_grid(schedule, steps=3)
    fine = nested_grid(schedule, coarse, 4)
    shape = (4, 2)
    brownian = CoupledBrownian(schedule, fine, shape, seed=2)
    fns = {family: brownian.noise_fn(family, coarse) for family in FAMILIES}
    for step in range(3):
        s, t = coarse[step], coarse[step + 1]
        a_s, a_t, sig_s, sig_t = (
            schedule.alpha(s),
            schedule.alpha(t),
            schedule.sigma(s),
            schedule.sigma(t),
        )
        lam_t = schedule.lam(t)
        h = lam_t - schedule.lam(s)
        r1 = torch.tensor(0.7, dtype=torch.float64)
        lam_max = torch.tensor(schedule.max_sigma, dtype=torch.float64)
        generated = {
            "data": [
                updates_torch.sde_data_multistep_1(h, a_s, sig_s, a_t, sig_t).noise,
                updates_torch.sde_data_multistep_2(h, r1, a_s, sig_s, a_t, sig_t).noise,
                baselines_torch.posterior(a_s, sig_s, a_t, sig_t).noise,
            ],
            "noise": [
                updates_torch.sde_noise_multistep_1(h, a_s, sig_s, a_t, sig_t).noise,
                updates_torch.sde_noise_multistep_2(h, r1, a_s, sig_s, a_t, sig_t).noise,
            ],
            "time": [
                baselines_torch.euler_maruyama(s - t, schedule.theta(s), sig_s, lam_max).noise
            ],
        }
        prefactor = {"data": sig_t * torch.exp(-lam_t), "noise": a_t, "time": schedule.g(s)}
        for family, coefficients in generated.items():
            integral = brownian.integral(family, float(s), float(t))
            std = math.sqrt(brownian.variance(family, float(s), float(t)))
            z = draw(fns[family], coarse, step, shape)
            for coefficient in coefficients:
                assert float(coefficient) == pytest.approx(
                    float(prefactor[family]) * std, rel=1e-11
                )
                torch.testing.assert_close(
                    coefficient * z, prefactor[family] * integral, rtol=1e-11, atol=1e-14
                )


def test_noise_has_the_requested_dtype_and_device():
    fine = _base_grid(steps=2)
    brownian = CoupledBrownian(SCHEDULE, fine, (2, 3))
    z = draw(brownian.noise_fn("data", fine), fine, 1, (2, 3), torch.float32)
    assert z.dtype == torch.float32 and z.device.type == "cpu" and z.shape == (2, 3)


def test_clear_errors():
    fine = nested_grid(SCHEDULE, _base_grid(steps=2), 2)
    brownian = CoupledBrownian(SCHEDULE, fine, (2, 3))
    off = fine[::2].clone()
    off[1] += 1e-6
    with pytest.raises(ValueError, match=r"t\[1\] = .* is not on the fine grid"):
        brownian.noise_fn("data", off)
    with pytest.raises(ValueError, match="unknown noise family 'x0'"):
        brownian.noise_fn("x0", fine)
    with pytest.raises(ValueError, match="strictly decreasing"):
        CoupledBrownian(SCHEDULE, fine.flip(0), (2, 3))
    with pytest.raises(ValueError, match="2 per-sample seeds for a batch of 3"):
        CoupledBrownian(SCHEDULE, fine, (3, 3), seed=[1, 2])
    noise = brownian.noise_fn("time", fine)
    with pytest.raises(ValueError, match="shape"):
        draw(noise, fine, 0, (3, 3))
    with pytest.raises(ValueError, match="not on the fine grid"):
        noise(0, float(fine[0]), float(fine[1]) + 1e-6, (2, 3), *F64)
    with pytest.raises(ValueError, match="need t_from > t_to"):
        noise(0, float(fine[1]), float(fine[0]), (2, 3), *F64)
    with pytest.raises(ValueError, match="refinement"):
        nested_grid(SCHEDULE, fine, 0)


def test_posterior_runs_down_to_sigma_zero_on_coupled_noise():
    schedule = schedules.irsde(theta0_offset=True)
    coarse = torch.tensor([100.0, 50.0, 0.0], dtype=torch.float64)
    problem = GaussianData.random(schedule, batch=4, dim=3)
    brownian = CoupledBrownian(schedule, nested_grid(schedule, coarse, 2), problem.mu.shape)
    shape = problem.mu.shape
    assert torch.isfinite(draw(brownian.noise_fn("time", coarse), coarse, 1, shape)).all()
    assert torch.isfinite(draw(brownian.noise_fn("data", coarse), coarse, 1, shape)).all()
    with pytest.raises(ValueError, match="reaches σ = 0"):
        draw(brownian.noise_fn("noise", coarse), coarse, 1, shape)
    with pytest.raises(ValueError, match="reaches σ = 0"):
        brownian.integral("data", 50.0, 0.0)
    x_T = problem.marginal_sample(100.0)
    results = [
        sampler.sample(problem.data, problem.mu, timesteps=coarse, x_T=x_T).x
        for sampler in (
            BaselineSampler(
                schedule, "posterior", "data", noise_fn=brownian.noise_fn("data", coarse)
            ),
            MRSampler(
                schedule, "sde", 1, "data", "data", noise_fn=brownian.noise_fn("data", coarse)
            ),
        )
    ]
    torch.testing.assert_close(results[0], results[1], rtol=0, atol=1e-13)


def test_family_for_maps_solver_ids():
    assert family_for("mrs-sde-1-data") == family_for("mrs-sde-2-data") == "data"
    assert family_for("posterior") == "data"
    assert family_for("mrs-sde-2-noise") == "noise"
    assert family_for("euler-maruyama") == "time"
    assert family_for("mrs-ode-3-data") is None and family_for("heun-ode") is None
    with pytest.raises(ValueError, match="unknown solver"):
        family_for("ddim")


def test_nested_grids_are_nested_and_uniform_in_lambda():
    coarse = _base_grid(steps=3)
    ladder = [nested_grid(SCHEDULE, coarse, 2**j) for j in range(4)]
    for coarser, finer in itertools.pairwise(ladder):
        torch.testing.assert_close(finer[::2], coarser, rtol=1e-13, atol=0)
    lam = SCHEDULE.lam(ladder[-1]).reshape(-1)
    steps = (lam[1:] - lam[:-1]).reshape(3, 8)
    torch.testing.assert_close(steps, steps[:, :1].expand(3, 8), rtol=1e-10, atol=0)
    by_time = nested_grid(SCHEDULE, coarse, 4, spacing="time")
    torch.testing.assert_close(by_time[:5], torch.linspace(*coarse[:2].tolist(), 5).double())


def _data_sde(order=1, noise_fn=None):
    return MRSampler(
        SCHEDULE, "sde", order, "data", "data", lower_order_final=False, noise_fn=noise_fn
    )


def test_posterior_and_first_order_data_sde_take_the_same_coupled_step():
    problem = GaussianData.random(SCHEDULE, batch=8, dim=3)
    fine = nested_grid(SCHEDULE, _base_grid(steps=2), 8)
    coarse = fine[::2]
    brownian = CoupledBrownian(SCHEDULE, fine, problem.mu.shape, seed=4)
    x_T = problem.marginal_sample(SCHEDULE.t_max)
    mrs = _data_sde(noise_fn=brownian.noise_fn(family_for("mrs-sde-1-data"), coarse))
    posterior = BaselineSampler(
        SCHEDULE, "posterior", "data", noise_fn=brownian.noise_fn(family_for("posterior"), coarse)
    )
    a = mrs.sample(problem.data, problem.mu, timesteps=coarse, x_T=x_T).x
    b = posterior.sample(problem.data, problem.mu, timesteps=coarse, x_T=x_T).x
    torch.testing.assert_close(a, b, rtol=0, atol=1e-13)


def test_point_mass_data_sde_gives_the_fine_path_exactly_at_every_step_size():
    problem = GaussianData.random(SCHEDULE, batch=8, dim=3)
    fine = nested_grid(SCHEDULE, _base_grid(steps=1), 32)
    brownian = CoupledBrownian(SCHEDULE, fine, problem.mu.shape, seed=5)
    x_T = problem.marginal_sample(SCHEDULE.t_max)

    def point_mass(x, t, mu):
        return problem.mean_x0.to(x.dtype)

    results = []
    for refinement in (1, 2, 8, 32):
        times = fine[:: 32 // refinement]
        sampler = _data_sde(noise_fn=brownian.noise_fn("data", times))
        results.append(sampler.sample(point_mass, problem.mu, timesteps=times, x_T=x_T).x)
    for x in results[:-1]:
        torch.testing.assert_close(x, results[-1], rtol=0, atol=1e-12)


def _coupled_errors(brownian, problem, base, levels, make, family):
    x_T = problem.marginal_sample(SCHEDULE.t_max)
    fine = brownian.fine_times
    reference = _data_sde(noise_fn=brownian.noise_fn("data", fine))
    ref = reference.sample(problem.data, problem.mu, timesteps=fine, x_T=x_T).x
    errors = []
    for refinement in levels:
        times = nested_grid(SCHEDULE, base, refinement)
        sampler = make(brownian.noise_fn(family, times))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            x = sampler.sample(problem.data, problem.mu, timesteps=times, x_T=x_T).x
        errors.append(float((x - ref).pow(2).mean().sqrt()))
    return errors


@pytest.fixture(scope="module")
def coupled_study():
    problem = GaussianData.random(SCHEDULE, batch=64, dim=2, seed=3)
    base = _base_grid(steps=1)
    brownian = CoupledBrownian(SCHEDULE, nested_grid(SCHEDULE, base, 256), problem.mu.shape, 9)
    return brownian, problem, base


def test_data_sde_converges_to_its_fine_grid_solution_on_the_same_path(coupled_study):
    levels = [4, 8, 16, 32]
    errors = _coupled_errors(*coupled_study, levels, lambda fn: _data_sde(noise_fn=fn), "data")
    assert all(b < a for a, b in itertools.pairwise(errors)), errors
    slope = -np.polyfit(np.log(levels), np.log(errors), 1)[0]
    # strong order 1 against a reference that is itself 1/256 of a step off
    assert 0.7 < slope < 1.4, (errors, slope)


def test_fresh_normals_at_each_step_size_do_not_converge(coupled_study):
    def fresh(step, t_from, t_to, shape, dtype, device):
        gen = torch.Generator().manual_seed(100 + step)
        return torch.randn(shape, generator=gen, dtype=dtype)

    errors = _coupled_errors(*coupled_study, [4, 32], lambda fn: _data_sde(noise_fn=fresh), "data")
    assert errors[1] > 0.5 * errors[0], errors


@pytest.mark.parametrize(
    ("solver", "family"),
    [("mrs-sde-1-noise", "noise"), ("euler-maruyama", "time"), ("mrs-sde-2-data", "data")],
)
def test_every_sde_family_converges_to_the_same_path(coupled_study, solver, family):
    options = {} if solver == "euler-maruyama" else {"lower_order_final": False}

    def make(noise_fn):
        return make_sampler(solver, SCHEDULE, "data", noise_fn=noise_fn, **options)

    assert family_for(solver) == family
    errors = _coupled_errors(*coupled_study, [8, 16, 32], make, family)
    assert all(b < 0.75 * a for a, b in itertools.pairwise(errors)), errors
