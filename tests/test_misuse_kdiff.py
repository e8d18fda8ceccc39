"""Misuse of the k-diffusion front end: each case ends in a right answer or one clear error.

The table is ``docs/misuse/kdiff.md``. The k-diffusion samplers are the real ones (k-diffusion
0.1.1.post1, loaded by ``tests.kdiffusion_sampling``).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from mrs_numerics import schedules
from mrs_numerics._errors import InputError
from mrs_numerics.solvers import SOLVERS, make_sampler
from mrs_numerics.solvers.brownian import family_for
from mrs_numerics.solvers.kdiffusion import (
    FLOAT32_RTOL,
    MRDenoiser,
    sample_mrs,
    sigma_range,
    sigma_tolerance,
    sigmas_from_times,
    times_from_sigmas,
)
from mrs_numerics.verification.oracles import gmm_2d_diag
from tests import kdiffusion_sampling

DTYPES = [torch.float64, torch.float32, torch.bfloat16]
ORACLE = gmm_2d_diag(schedules.cosine())


@pytest.fixture(scope="module")
def k_sampling():
    """k-diffusion's ``sampling`` module; a missing install fails (it is part of the set-up)."""
    try:
        return kdiffusion_sampling.load()
    except ImportError as error:
        pytest.fail(str(error))


@pytest.fixture(scope="module")
def ramp(tmp_path_factory):
    """The user schedule θ(t) = 10·t of ``mrs-numerics codegen --theta "10*t" --name ramp``."""
    from derivations.emit import write_modules
    from derivations.schedule_codegen import render_user_schedule

    folder = Path(tmp_path_factory.mktemp("schedules"))
    write_modules(folder, render_user_schedule("10*t", "ramp"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(schedules.SCHEDULE_DIR_VARIABLE, str(folder))
        yield lambda **parameters: schedules.get("ramp", **parameters)


def _schedules(ramp):
    """The schedules whose largest σ_e float32 or bfloat16 rounds up (and the shipped Λ)."""
    found = {
        "cosine Λ=75/255": schedules.cosine(max_sigma=75 / 255),
        "cosine Λ=50/255": schedules.cosine(),
        "ramp 10*t Λ=50/255": ramp(),
        "ramp 10*t Λ=75/255": ramp(max_sigma=75 / 255),
        "official table Λ=75/255": schedules.irsde(max_sigma=75 / 255, theta0_offset=False),
    }
    for kind in ("cosine", "linear", "constant"):
        found[f"IR-SDE {kind} table Λ=75/255"] = schedules.irsde(kind, max_sigma=75 / 255)
    return found


class Recorder:
    """A data-prediction toy network (x̂₀ = 0.9μ) that records the times it is called at."""

    def __init__(self):
        self.times: list[float] = []

    def __call__(self, x, t, mu):
        self.times.append(float(t[0]))
        return 0.9 * mu


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_a_schedules_own_largest_sigma_is_accepted_in_every_dtype(k_sampling, ramp, dtype):
    """Rounded to float32 the largest σ_e of Λ = 75/255 (58.82279411) is 58.82279587, above
    it; bfloat16 rounds Λ = 50/255's 39.2152 up to 39.25. Both are that schedule's start: the
    real ``sample_euler`` and ``sample_dpmpp_2m`` run, and the network's first call is at t_max.
    The same for σ_e lists k-diffusion builds in float32 (``get_sigmas_karras``)."""
    rounded_up = set()
    for name, schedule in _schedules(ramp).items():
        smallest, largest = sigma_range(schedule)
        if float(torch.tensor(largest).to(dtype)) > largest:
            rounded_up.add(name)
        times = make_sampler("mrs-ode-2-data", schedule, "data").timesteps(3)
        karras = k_sampling.get_sigmas_karras(3, max(smallest, 0.05), largest)[:-1]
        for sigmas in (sigmas_from_times(schedule, times), karras):
            sigmas = sigmas.to(dtype)
            mu = torch.full((2, 3, 2, 2), 0.5, dtype=dtype)
            x = mu + sigmas[0] * torch.randn(mu.shape, generator=torch.Generator()).to(dtype)
            for sampler in (k_sampling.sample_euler, k_sampling.sample_dpmpp_2m):
                network = Recorder()
                denoiser = MRDenoiser(network, schedule, "data")
                out = sampler(denoiser, x, sigmas, extra_args={"mu": mu}, disable=True)
                assert torch.isfinite(out.float()).all(), name
                assert network.times[0] == pytest.approx(float(schedule.t_max), rel=1e-2), name
    if dtype != torch.float64:
        assert rounded_up, "the cases must include a largest σ_e that this dtype rounds up"


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_sample_mrs_runs_from_the_largest_sigma_rounded_to_the_states_dtype(dtype):
    schedule = schedules.irsde("linear", max_sigma=75 / 255)
    times = make_sampler("mrs-ode-2-data", schedule, "data").timesteps(3)
    sigmas = sigmas_from_times(schedule, times).to(dtype)
    mu = torch.full((1, 3, 2, 2), 0.5, dtype=dtype)
    network = Recorder()
    out = sample_mrs(
        MRDenoiser(network, schedule, "data"),
        mu + sigmas[0],
        sigmas,
        extra_args={"mu": mu},
        disable=True,
        schedule=schedule,
    )
    assert out.dtype == dtype and torch.isfinite(out.float()).all()
    assert network.times[0] == pytest.approx(float(schedule.t_max), rel=1e-2)


@pytest.mark.parametrize(
    ("dtype", "rtol"),
    [
        (torch.float64, 2**-20),
        (torch.float32, 2**-20),
        (torch.float16, 2**-9),
        (torch.bfloat16, 2**-7),
        (torch.int64, 2**-20),
        (None, 2**-20),
    ],
)
def test_the_tolerance_is_the_stated_one_and_no_wider(dtype, rtol):
    """Within a relative tolerance of the dtype a σ_e is the schedule's end (clamped to t_max);
    twice as far out it is refused, naming the schedule's largest σ_e and the tolerance."""
    assert sigma_tolerance(dtype) == rtol
    schedule = schedules.cosine(max_sigma=75 / 255)
    largest = sigma_range(schedule)[1]
    inside = torch.tensor([largest * (1 + 0.99 * rtol)], dtype=torch.float64)
    assert float(times_from_sigmas(schedule, inside, dtype=dtype)[0]) == float(schedule.t_max)
    outside = torch.tensor([largest * (1 + 2 * rtol)], dtype=torch.float64)
    with pytest.raises(InputError, match=r"noisier than the schedule reaches.*58\.8227941"):
        times_from_sigmas(schedule, outside, dtype=dtype)


def test_k_diffusions_default_sigma_max_is_refused_with_the_schedules_largest(k_sampling):
    """``get_sigmas_karras(n, 0.002, 80)`` (EDM's defaults) starts noisier than an MR schedule
    reaches (σ_e ≤ 39.2 for Λ = 50/255): refused at the first call, naming the largest σ_e."""
    schedule = schedules.cosine()
    sigmas = k_sampling.get_sigmas_karras(4, 0.002, 80.0)
    mu = torch.zeros(1, 3, 2, 2)
    denoiser = MRDenoiser(Recorder(), schedule, "data")
    with pytest.raises(InputError, match=r"sigma 80 is noisier.*largest σ_e .* is 39\.21519"):
        k_sampling.sample_euler(denoiser, mu + 80, sigmas, extra_args={"mu": mu}, disable=True)


def test_a_sigma_cleaner_than_the_schedule_reaches_is_refused_not_moved_to_t_min():
    """The official table (``theta0_offset=False``) has σ(0) > 0: its smallest σ_e is 0.00333.
    σ_e = 0.002 (EDM's sigma_min) was silently run at t_min; now it is refused. The smallest
    σ_e rounded to float32 (down, 0.0033260493) is accepted and maps to t_min."""
    schedule = schedules.irsde(max_sigma=75 / 255, theta0_offset=False)
    smallest = sigma_range(schedule)[0]
    assert smallest > 0
    with pytest.raises(InputError, match=r"cleaner than the schedule reaches.*0\.003326"):
        times_from_sigmas(schedule, torch.tensor([1.0, 0.002]))
    rounded = torch.tensor([smallest], dtype=torch.float32)
    assert float(rounded) < smallest
    assert float(times_from_sigmas(schedule, rounded)[0]) == float(schedule.t_min)


def test_sigma_zero_on_a_schedule_that_never_reaches_it_names_its_end():
    schedule = schedules.irsde(theta0_offset=False)
    with pytest.raises(InputError, match=r"sigma 0 is the clean end.*end at σ_e = 0\.00"):
        times_from_sigmas(schedule, torch.tensor([10.0, 0.0]))


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf])
def test_negative_or_non_finite_sigmas_are_refused(bad):
    with pytest.raises(InputError, match="sigmas must be finite and ≥ 0"):
        times_from_sigmas(schedules.cosine(), torch.tensor([1.0, bad]))
    with pytest.raises(InputError, match="sigmas is empty"):
        times_from_sigmas(schedules.cosine(), torch.tensor([]))


def test_the_denoiser_needs_mu_and_one_sigma_or_one_per_sample():
    denoiser = MRDenoiser(Recorder(), schedules.cosine(), "data")
    x = torch.zeros(3, 2)
    with pytest.raises(InputError, match=r"pass mu \(extra_args=\{'mu': mu\}\)"):
        denoiser(x, torch.tensor(1.0))
    with pytest.raises(InputError, match=r"one noise level or one per sample \(3\), got 2"):
        denoiser(x, torch.tensor([1.0, 2.0]), mu=x)
    assert denoiser(x, torch.tensor([1.0, 2.0, 3.0]), mu=x).shape == x.shape
    with pytest.raises(ValueError, match="unknown prediction 'epsilon'; allowed: noise, data"):
        MRDenoiser(Recorder(), schedules.cosine(), "epsilon")


@pytest.mark.parametrize(
    ("sigmas", "message"),
    [
        ([1.0, 2.0, 0.0], r"decrease strictly .* sigmas\[0\] = 1 is followed by sigmas\[1\] = 2"),
        ([5.0, 5.0, 1.0], r"decrease strictly .* sigmas\[0\] = 5 is followed by sigmas\[1\] = 5"),
        ([5.0], r"at least 2 noise levels .* got shape \(1,\)"),
        ([[5.0, 1.0]], r"one-dimensional .* got shape \(1, 2\)"),
    ],
)
def test_sample_mrs_refuses_a_sigmas_list_in_k_diffusions_terms(sigmas, message):
    """Before: 'times must be strictly decreasing; t[0] = 0.0029 …' or a shape traceback."""
    mu = torch.zeros(1, 2)
    denoiser = MRDenoiser(Recorder(), schedules.cosine(), "data")
    with pytest.raises(InputError, match=message):
        sample_mrs(
            denoiser, mu, sigmas, extra_args={"mu": mu}, schedule=schedules.cosine(), disable=True
        )


def test_sample_mrs_names_the_data_form_solver_for_a_grid_ending_at_zero():
    """Before: 'Use solver_prediction=…', a keyword ``sample_mrs`` does not have."""
    schedule = schedules.cosine()
    mu = torch.zeros(1, 2)
    common = {"extra_args": {"mu": mu}, "schedule": schedule, "disable": True}
    denoiser = MRDenoiser(Recorder(), schedule, "data")
    with pytest.raises(InputError, match=r"noise-form.*pass solver='mrs-ode-2-data-unic'"):
        sample_mrs(denoiser, mu, [5.0, 1.0, 0.0], solver="mrs-ode-2-noise-unic", **common)
    with pytest.raises(InputError, match=r"'euler-ode' is noise-form: end sigmas above 0"):
        sample_mrs(denoiser, mu, [5.0, 1.0, 0.0], solver="euler-ode", **common)
    with pytest.raises(InputError, match=r"extra_args\['mu'\]"):
        sample_mrs(denoiser, mu, [5.0, 1.0], schedule=schedule, disable=True)


@pytest.mark.parametrize("solver", sorted(s for s in SOLVERS if SOLVERS[s].method == "sde"))
def test_a_noise_source_is_asked_once_per_step_for_the_steps_interval(solver):
    """What ``NoiseSource``'s docstring promises a Brownian path (e.g. a torchsde
    ``BrownianInterval``): one query per step, for (t_from, t_to) = (t_i, t_{i+1}), of the
    state's shape, dtype and device; ODE solvers ask nothing."""
    sampler = make_sampler(solver, ORACLE.schedule, "data")
    times = sampler.timesteps(20)
    asked = []

    def source(step, t_from, t_to, shape, dtype, device):
        asked.append((step, t_from, t_to))
        return torch.zeros(shape, dtype=dtype, device=device)

    mu = torch.zeros(2, 2, dtype=torch.float64)
    sampler.sample(ORACLE.data, mu, timesteps=times, noise=source)
    assert family_for(solver) in ("data", "noise", "time")
    assert [step for step, _, _ in asked] == list(range(len(times) - 1))
    for (_, t_from, t_to), start, end in zip(asked, times[:-1], times[1:], strict=True):
        assert (float(t_from), float(t_to)) == (float(start), float(end))


def test_the_tolerance_covers_k_diffusions_float32_sigma_lists(k_sampling, ramp):
    """``get_sigmas_karras`` and ``get_sigmas_exponential`` compute in float32 (``pow`` with
    ρ = 7, ``exp`` of a ``log``): their first σ_e exceeds the σ_max they were given by more than
    the rounding of one value (2⁻²⁴; ``exp(log(58.8228))`` by 2.2e-7) on some of these
    schedules, and stays inside the stated 2⁻²⁰ on all."""
    excess = []
    for schedule in _schedules(ramp).values():
        largest = sigma_range(schedule)[1]
        for n in (3, 10):
            for sigmas in (
                k_sampling.get_sigmas_karras(n, 0.01, largest),
                k_sampling.get_sigmas_exponential(n, 0.01, largest),
            ):
                excess.append(float(sigmas.max()) / largest - 1)
    assert 2**-24 < max(excess) < FLOAT32_RTOL
