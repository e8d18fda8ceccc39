"""MRSamplerScheduler (diffusers interface) replays MRSampler.sample to round-off."""

from __future__ import annotations

import pytest

pytest.importorskip("diffusers")

import torch

from mrs_numerics import schedules
from mrs_numerics.solvers import make_sampler
from mrs_numerics.solvers.diffusers_scheduler import MRSamplerScheduler
from mrs_numerics.solvers.registry import SOLVERS
from mrs_numerics.verification.oracles import gmm_2d_diag

F64 = torch.float64
LOW_ORDER_IDS = [s for s in SOLVERS if s.startswith("mrs-") and int(s.split("-")[2]) in (1, 2)]
THIRD_ORDER = [s for s in SOLVERS if s.startswith("mrs-") and int(s.split("-")[2]) == 3]


def _steps(solver: str) -> int:
    return 20 if solver.startswith("mrs-sde") and "-noise" in solver else 8


def _loop(scheduler, model, x, mu, generator):
    for t in scheduler.timesteps:
        out = model(x, torch.full((x.shape[0],), float(t), dtype=F64), mu)
        x = scheduler.step(out, t, x, mu=mu, generator=generator).prev_sample
    return x


def _compare(solver, prediction, steps=None, timesteps=None, seed=0, dtype=F64, **config):
    schedule = schedules.get("cosine")
    oracle = gmm_2d_diag(schedule)
    model = getattr(oracle, prediction)
    torch.manual_seed(seed)
    mu = torch.randn(3, 2, dtype=F64).to(dtype)
    x_T = (mu + schedule.max_sigma * torch.randn(3, 2, dtype=F64)).to(dtype)
    options = dict(config)
    if "timestep_spacing" in options:
        options["grid"] = options.pop("timestep_spacing")
    sampler = make_sampler(solver, schedule, prediction, **options)
    reference = sampler.sample(
        model,
        mu,
        steps=steps,
        timesteps=timesteps,
        x_T=x_T,
        generator=torch.Generator().manual_seed(seed + 1),
    )
    scheduler = MRSamplerScheduler(solver=solver, prediction_type=prediction, **config)
    scheduler.set_timesteps(steps, timesteps=timesteps)
    assert scheduler.timesteps.dtype == F64
    assert len(scheduler.timesteps) == reference.nfe
    x = _loop(scheduler, model, x_T, mu, torch.Generator().manual_seed(seed + 1))
    torch.testing.assert_close(x, reference.x, rtol=0.0, atol=1e-10)
    return scheduler, reference


@pytest.mark.parametrize("prediction", ["noise", "data", "velocity"])
@pytest.mark.parametrize("solver", LOW_ORDER_IDS)
def test_reproduces_mr_sampler(solver, prediction):
    _compare(solver, prediction, steps=_steps(solver))


@pytest.mark.parametrize("start", ["singlestep", "warmup"])
@pytest.mark.parametrize("solver", THIRD_ORDER)
def test_third_order_start(solver, start):
    scheduler, _ = _compare(solver, "noise", steps=6, start=start)
    extra = SOLVERS[solver].start_extra_nfe if start == "singlestep" else 0
    assert extra == (2 if solver.endswith("-unic") else 1) or start == "warmup"
    assert len(scheduler.timesteps) == 6 + extra


@pytest.mark.parametrize(
    "solver", ["mrs-ode-2-data", "mrs-sde-2-data", "mrs-ode-2-noise-unic", "mrs-ode-3-data"]
)
def test_explicit_grid(solver):
    schedule = schedules.get("cosine")
    grid = make_sampler(solver, schedule, grid="time").timesteps(7)
    grid = grid + torch.linspace(0.0, 1.0, 8, dtype=F64) * (1 - torch.linspace(0.0, 1.0, 8)) * 0.03
    scheduler, reference = _compare(solver, "data", timesteps=grid)
    assert scheduler.num_inference_steps == 7
    torch.testing.assert_close(reference.timesteps, grid, rtol=0.0, atol=0.0)


def test_options_denoise_last_clip_lower_order_final():
    _compare(
        "mrs-sde-2-data",
        "noise",
        steps=6,
        denoise_last=True,
        clip_x0=(-1.0, 1.0),
        lower_order_final=True,
        timestep_spacing="karras",
    )


@pytest.mark.parametrize(
    "solver", ["mrs-ode-2-noise-unic", "mrs-sde-2-data", "mrs-ode-3-data", "mrs-ode-3-data-unic"]
)
def test_float32_matches(solver):
    """In float32 the replay makes the same operations as the engine: the same numbers."""
    _compare(solver, "noise", steps=8, dtype=torch.float32)


def test_corrector_call_times():
    scheduler = MRSamplerScheduler(solver="mrs-ode-2-data-unic")
    scheduler.set_timesteps(5)
    plan = scheduler.plan
    assert plan is not None
    torch.testing.assert_close(scheduler.timesteps, plan.timesteps[:-1], rtol=0.0, atol=0.0)


def _plain(config) -> dict:
    """The config's public entries, tuples as lists (as JSON stores them)."""
    return {
        k: list(v) if isinstance(v, tuple) else v
        for k, v in dict(config).items()
        if not k.startswith("_")
    }


def test_save_and_load(tmp_path):
    scheduler = MRSamplerScheduler(
        solver="mrs-sde-1-data",
        prediction_type="velocity",
        timestep_spacing="time",
        max_sigma=0.1,
        eps=0.01,
        clip_x0=(-1.0, 1.0),
        start="warmup",
    )
    scheduler.save_pretrained(tmp_path)
    loaded = MRSamplerScheduler.from_pretrained(tmp_path)
    assert _plain(loaded.config) == _plain(scheduler.config)
    assert loaded.sampler.options == scheduler.sampler.options
    scheduler.set_timesteps(5)
    loaded.set_timesteps(5)
    torch.testing.assert_close(loaded.timesteps, scheduler.timesteps, rtol=0.0, atol=0.0)
    assert loaded.init_noise_sigma == scheduler.init_noise_sigma


def test_add_noise_and_init_noise_sigma():
    scheduler = MRSamplerScheduler()
    schedule = scheduler.schedule
    torch.manual_seed(3)
    x0, noise, mu = (torch.randn(4, 2, 3, dtype=F64) for _ in range(3))
    t = torch.tensor([0.1, 0.4, 0.7, 1.0], dtype=F64)
    alpha = schedule.alpha(t).reshape(-1, 1, 1)
    sigma = schedule.max_sigma * torch.sqrt(1 - alpha**2)
    expected = mu + alpha * (x0 - mu) + sigma * noise
    got = scheduler.add_noise(x0, noise, t, mu=mu)
    torch.testing.assert_close(got, expected, rtol=0.0, atol=1e-12)
    a_max = schedule.alpha(torch.tensor(schedule.t_max, dtype=F64))
    assert scheduler.init_noise_sigma == pytest.approx(
        schedule.max_sigma * float(torch.sqrt(1 - a_max**2)), rel=1e-12
    )
    assert torch.equal(scheduler.scale_model_input(x0, t[0]), x0)


def test_refusals():
    with pytest.raises(ValueError, match="MR Sampler"):
        MRSamplerScheduler(solver="posterior")
    scheduler = MRSamplerScheduler()
    x = torch.zeros(1, 2, dtype=F64)
    with pytest.raises(ValueError, match="set_timesteps"):
        scheduler.step(x, 1.0, x, mu=x)
    scheduler.set_timesteps(3)
    with pytest.raises(ValueError, match="expects the call"):
        scheduler.step(x, 0.5, x, mu=x)
    with pytest.raises(ValueError, match="mu"):
        scheduler.step(x, scheduler.timesteps[0], x)
