"""k-diffusion's calling convention: EDM coordinates, the MR denoiser and ``sample_mrs``;
which real k-diffusion sampler equals which MR Sampler id.

The equality tests run k-diffusion 0.1.1.post1's own samplers (its ``sampling`` module loaded
alone by ``tests.kdiffusion_sampling``, which says how) through
``MRDenoiser`` on the exact Gaussian-mixture oracle in float64, against the MR Sampler on the same
grid from the same start with the same standard normals. Each row of the table in
``docs/interfaces.md`` (section k-diffusion) is one case here.
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
from tests import kdiffusion_sampling

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


# --- the real k-diffusion samplers against the MR Sampler ------------------------------------


@pytest.fixture(scope="module")
def k_sampling():
    """k-diffusion's ``sampling`` module; a missing install fails (it is part of the set-up)."""
    try:
        return kdiffusion_sampling.load()
    except ImportError as error:
        pytest.fail(str(error))


def _draws(count, shape):
    generator = torch.Generator().manual_seed(7)
    return [torch.randn(shape, generator=generator, dtype=torch.float64) for _ in range(count)]


def _compare(k_call, solver, steps, *, zero_end=False, **options):
    """max |k-diffusion − MR Sampler| in EDM coordinates: same grid, start and normals.

    The MR Sampler runs in MR coordinates on the oracle's data prediction, with a
    ``NoiseSource`` giving draw i to step i; k-diffusion runs on ``MRDenoiser`` over the oracle's
    *noise* prediction (so the conversion is exercised), with a ``noise_sampler(sigma,
    sigma_next)`` giving the draw of the step that starts at ``sigma``.
    """
    sampler = make_sampler(solver, SCHEDULE, "data", **options)
    times = sampler.timesteps(steps)
    if zero_end:
        times[-1] = SCHEDULE.t_min  # the cosine schedule's σ(0) = 0: σ_e = 0
    x_T = _start(times)
    draws = _draws(len(times) - 1, x_T.shape)
    expected = sampler.sample(
        ORACLE.data,
        MU,
        timesteps=times,
        x_T=x_T,
        noise=lambda step, t_from, t_to, shape, dtype, device: draws[step].to(dtype),
    ).x
    sigmas = sigmas_from_times(SCHEDULE, times)

    def noise_sampler(sigma, sigma_next):
        return draws[int((sigmas[:-1] - sigma).abs().argmin())].clone()

    denoiser = MRDenoiser(ORACLE.noise, SCHEDULE, "noise")
    x_e = to_edm(x_T, MU, SCHEDULE.alpha(times[0]))
    result = k_call(denoiser, x_e, sigmas, {"mu": MU}, noise_sampler)
    expected_e = to_edm(expected, MU, SCHEDULE.alpha(times[-1])) if not zero_end else expected
    return float((result - expected_e).abs().max())


def _kd(name, **kwargs):
    """A call of k-diffusion's sampler ``name`` with ``kwargs`` (and our noise sampler where it
    takes one)."""

    def call(module, denoiser, x, sigmas, extra_args, noise_sampler):
        function = getattr(module, name)
        extra = {"noise_sampler": noise_sampler} if "noise_sampler" in _params(function) else {}
        return function(denoiser, x, sigmas, extra_args=extra_args, disable=True, **kwargs, **extra)

    return call


def _params(function):
    import inspect

    return inspect.signature(function).parameters


EQUAL = [
    # (k-diffusion call, MR Sampler id, its options, grid ends at σ_e = 0)
    ("sample_euler", {}, "mrs-ode-1-data", {}, False),
    ("sample_euler", {}, "mrs-ode-1-data", {}, True),
    ("sample_euler", {}, "mrs-ode-1-noise", {}, False),
    ("sample_euler_ancestral", {"eta": 1.0}, "mrs-sde-1-data", {}, False),
    ("sample_euler_ancestral", {"eta": 1.0}, "mrs-sde-1-data", {}, True),
    ("sample_euler_ancestral", {"eta": 1.0}, "posterior", {}, False),
    ("sample_dpmpp_2m_sde", {"eta": 0.0, "solver_type": "heun"}, "mrs-ode-2-data", {}, False),
    ("sample_dpmpp_2m_sde", {"eta": 0.0, "solver_type": "heun"}, "mrs-ode-2-data", {}, True),
    (
        "sample_dpmpp_2m_sde",
        {"eta": 1.0, "solver_type": "heun"},
        "mrs-sde-2-data",
        {"lower_order_final": False},
        False,
    ),
    ("sample_dpmpp_2m_sde", {"eta": 1.0, "solver_type": "heun"}, "mrs-sde-2-data", {}, True),
]


@pytest.mark.parametrize(
    ("name", "kwargs", "solver", "options", "zero_end"),
    EQUAL,
    ids=[f"{n}{k}-{s}{o}{'-to0' if z else ''}" for n, k, s, o, z in EQUAL],
)
def test_real_k_diffusion_samplers_equal_the_mr_sampler(
    k_sampling, name, kwargs, solver, options, zero_end
):
    """The table's equalities, to float64 round-off (measured ≤ 4e-15; |x_e| ≈ 2)."""
    call = _kd(name, **kwargs)
    difference = _compare(lambda *a: call(k_sampling, *a), solver, 8, zero_end=zero_end, **options)
    assert difference < 1e-13


DIFFERENT = [
    # (k-diffusion call, the nearest MR Sampler id, its options, least difference at 8 steps)
    ("sample_dpmpp_2m", {}, "mrs-ode-2-data", {}),
    ("sample_dpmpp_2m_sde", {"eta": 0.0, "solver_type": "midpoint"}, "mrs-ode-2-data", {}),
    (
        "sample_dpmpp_2m_sde",
        {"eta": 1.0, "solver_type": "midpoint"},
        "mrs-sde-2-data",
        {"lower_order_final": False},
    ),
    ("sample_dpmpp_3m_sde", {"eta": 0.0}, "mrs-ode-3-data", {"start": "warmup"}),
    ("sample_heun", {}, "heun-ode", {}),
    ("sample_euler", {}, "euler-ode", {}),
    ("sample_lms", {}, "mrs-ode-3-data", {}),
    ("sample_dpmpp_sde", {"eta": 0.0}, "mrs-ode-2-data", {}),
]


@pytest.mark.parametrize(
    ("name", "kwargs", "solver", "options"),
    DIFFERENT,
    ids=[f"{n}{k}-{s}" for n, k, s, _ in DIFFERENT],
)
def test_k_diffusion_samplers_without_an_mr_twin_differ_by_more_than_round_off(
    k_sampling, name, kwargs, solver, options
):
    """The table's 'no twin' rows: not the MR Sampler id next to them (measured 6e-3 to 0.3)."""
    call = _kd(name, **kwargs)
    assert _compare(lambda *a: call(k_sampling, *a), solver, 8, **options) > 1e-3


def test_dpmpp_2m_is_the_midpoint_weighting_both_second_order(k_sampling):
    """``sample_dpmpp_2m`` is ``sample_dpmpp_2m_sde(eta=0, solver_type="midpoint")``: its
    second-order term is ½(1 − e^{−h})·D₁/r, where ``mrs-ode-2-data`` (and ``solver_type="heun"``)
    has the exact integral of the linear interpolant, (1 − (1 − e^{−h})/h)·D₁/r. Both are second
    order, so their difference falls as h²: by about 4 per halving of the step."""
    two_m = _kd("sample_dpmpp_2m")
    midpoint = _kd("sample_dpmpp_2m_sde", eta=0.0, solver_type="midpoint")
    times = make_sampler("mrs-ode-2-data", SCHEDULE, "data").timesteps(8)
    sigmas = sigmas_from_times(SCHEDULE, times)
    x_e = to_edm(_start(times), MU, SCHEDULE.alpha(times[0]))
    denoiser = MRDenoiser(ORACLE.data, SCHEDULE, "data")
    a = two_m(k_sampling, denoiser, x_e, sigmas, {"mu": MU}, None)
    b = midpoint(k_sampling, denoiser, x_e, sigmas, {"mu": MU}, lambda s, sn: 0 * x_e)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-13)
    gaps = [_compare(lambda *a: two_m(k_sampling, *a), "mrs-ode-2-data", n) for n in (16, 32, 64)]
    assert all(3.0 < coarse / fine < 6.0 for coarse, fine in itertools.pairwise(gaps)), gaps


def test_dpmpp_3m_starts_as_the_warmup_and_differs_from_the_third_order_term_on(k_sampling):
    """``sample_dpmpp_3m_sde(eta=0)`` takes an order-1 then an order-2 step (the exact φ₂
    weighting) as ``mrs-ode-3-data`` with ``start="warmup"`` does, so on 2 steps they are equal;
    from the third step on its order-3 term is DPM-Solver++(3M)'s, not the MR Sampler's."""
    call = _kd("sample_dpmpp_3m_sde", eta=0.0)
    run = lambda *a: call(k_sampling, *a)  # noqa: E731
    assert _compare(run, "mrs-ode-3-data", 2, start="warmup") < 1e-13
    assert _compare(run, "mrs-ode-3-data", 3, start="warmup") > 1e-4
