"""MRSamplerScheduler (diffusers interface) replays MRSampler.sample to round-off."""

from __future__ import annotations

import inspect

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


def _compare(
    solver, prediction, steps=None, timesteps=None, seed=0, dtype=F64, calls=None, **config
):
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
    scheduler.set_timesteps(steps, timesteps=calls)
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
    # custom timesteps are the call times: the scheduler appends the end t_end = grid[-1]
    scheduler, reference = _compare(solver, "data", timesteps=grid, calls=grid[:-1])
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


# ---------------------------------------------------------------- the diffusers ecosystem

from diffusers import (  # noqa: E402
    DDIMScheduler,
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    DPMSolverSinglestepScheduler,
    UniPCMultistepScheduler,
)

from mrs_numerics.solvers.options import Thresholding  # noqa: E402
from mrs_numerics.solvers.parameterization import convert  # noqa: E402

MR = {"schedule": "cosine", "max_sigma": 0.2}


def _run(scheduler, model, x, mu, calls=None, generator=None):
    """A diffusers-style loop over ``calls`` (default all of ``timesteps``)."""
    for t in scheduler.timesteps if calls is None else calls:
        out = model(x, torch.full((x.shape[0],), float(t), dtype=x.dtype), mu)
        x = scheduler.step(out, t, x, mu=mu, generator=generator).prev_sample
    return x


def _oracle(prediction="noise"):
    schedule = schedules.get("cosine")
    torch.manual_seed(0)
    mu = torch.randn(3, 2, dtype=F64)
    return schedule, getattr(gmm_2d_diag(schedule), prediction), mu


def test_compatibles_build_from_this_config_and_back():
    """SchedulerCommonTest.test_compatibles: every listed class builds from the MR config,
    and the MR scheduler built from that one's config has the same configuration."""
    scheduler = MRSamplerScheduler(solver="mrs-sde-1-data", clip_x0=(-1.0, 1.0))
    names = {c.__name__ for c in scheduler.compatibles}
    assert names == {
        "DPMSolverMultistepScheduler",
        "DPMSolverSinglestepScheduler",
        "UniPCMultistepScheduler",
        "DDIMScheduler",
        "DDPMScheduler",
    }
    for compatible in scheduler.compatibles:
        other = compatible.from_config(scheduler.config)
        back = MRSamplerScheduler.from_config(other.config)
        assert {k: v for k, v in back.config.items() if k in scheduler.config} == dict(
            scheduler.config
        )


@pytest.mark.parametrize(
    "source, expected",
    [
        (DPMSolverMultistepScheduler(solver_order=3), {"solver": "mrs-ode-3-data"}),
        (
            DPMSolverMultistepScheduler(
                algorithm_type="dpmsolver", prediction_type="sample", final_sigmas_type="sigma_min"
            ),
            {"solver": "mrs-ode-2-noise", "prediction_type": "data"},
        ),
        (
            DPMSolverMultistepScheduler(algorithm_type="sde-dpmsolver++", solver_order=1),
            {"solver": "mrs-sde-1-data"},
        ),
        (
            DPMSolverSinglestepScheduler(use_karras_sigmas=True, lower_order_final=True),
            {"solver": "mrs-ode-2-data", "timestep_spacing": "karras", "lower_order_final": True},
        ),
        (
            UniPCMultistepScheduler(solver_order=3, timestep_spacing="trailing"),
            {"solver": "mrs-ode-3-data-unic", "timestep_spacing": "time"},
        ),
        (
            UniPCMultistepScheduler(predict_x0=False, use_exponential_sigmas=True),
            {"solver": "mrs-ode-2-noise-unic", "timestep_spacing": "lambda"},
        ),
        (
            DDIMScheduler(clip_sample=True, clip_sample_range=2.0, timestep_spacing="linspace"),
            {"solver": "mrs-ode-1-data", "clip_x0": (-2.0, 2.0), "timestep_spacing": "time"},
        ),
        (
            DDPMScheduler(
                thresholding=True,
                dynamic_thresholding_ratio=0.9,
                sample_max_value=2.0,
                timestep_spacing="trailing",
            ),
            {"solver": "mrs-sde-1-data", "thresholding": True},
        ),
    ],
    ids=lambda v: type(v).__name__ if not isinstance(v, dict) else "",
)
def test_from_config_maps_diffusers_options(source, expected, tmp_path):
    """A diffusers config (in memory, and saved as a scheduler folder whose every key is
    explicit) maps its solver and options; the MR schedule is named by the caller."""
    for config in (source.config, None):
        if config is None:
            source.save_pretrained(tmp_path)
            scheduler = MRSamplerScheduler.from_pretrained(tmp_path, **MR)
        else:
            scheduler = MRSamplerScheduler.from_config(config, **MR)
        for key, value in expected.items():
            assert scheduler.config[key] == value, key
        assert scheduler.schedule.max_sigma == 0.2
    if expected.get("thresholding"):
        assert scheduler.sampler.options.thresholding == Thresholding(0.9, 2.0)


def test_mapped_unipc_runs_as_the_mr_sampler():
    """The scheduler mapped from a UniPC config replays the MR Sampler of the mapped id."""
    schedule, model, mu = _oracle("noise")
    x_T = mu + schedule.max_sigma * torch.randn(3, 2, dtype=F64)
    source = UniPCMultistepScheduler(solver_order=2, prediction_type="epsilon")
    scheduler = MRSamplerScheduler.from_config(source.config, schedule="cosine")
    scheduler.set_timesteps(6)
    reference = make_sampler("mrs-ode-2-data-unic", schedule, "noise").sample(
        model, mu, steps=6, x_T=x_T
    )
    torch.testing.assert_close(_run(scheduler, model, x_T, mu), reference.x, rtol=0, atol=1e-10)


def test_v_prediction_is_the_velocity_when_max_sigma_is_one():
    """At Λ = 1 the MR state minus μ is VP, and diffusers' v = αε − σ(x₀ − μ) there is the
    package's velocity: converting it as "velocity" recovers x₀."""
    scheduler = MRSamplerScheduler(prediction_type="v_prediction", max_sigma=1.0)
    assert scheduler.config["prediction_type"] == "velocity"
    schedule = scheduler.schedule
    torch.manual_seed(1)
    x0, eps, mu = (torch.randn(4, 3, dtype=F64) for _ in range(3))
    t = torch.tensor(0.6, dtype=F64)
    alpha, sigma = schedule.alpha(t), schedule.sigma(t)
    x = mu + alpha * (x0 - mu) + sigma * eps
    v = alpha * eps - sigma * (x0 - mu)
    data = convert(v, "velocity", "data", x, mu, float(alpha), float(sigma), 1.0)
    torch.testing.assert_close(data, x0, rtol=0, atol=1e-12)


def test_config_round_trip_keeps_values_and_types(tmp_path):
    """SchedulerCommonTest.test_from_pretrained, with types: save/load and from_config of its
    own config give the same config (clip_x0 stays a tuple of floats)."""
    scheduler = MRSamplerScheduler(
        clip_x0=[-1, 1], lower_order_final="official", max_sigma=1, thresholding=True
    )
    assert scheduler.config["clip_x0"] == (-1.0, 1.0)
    scheduler.save_pretrained(tmp_path)
    loaded = MRSamplerScheduler.from_pretrained(tmp_path)
    again = MRSamplerScheduler.from_config(loaded.config)
    original = {k: v for k, v in scheduler.config.items() if k != "_use_default_values"}
    for other in (loaded, again):
        copy = {k: v for k, v in other.config.items() if k != "_use_default_values"}
        assert copy == original
        assert {k: type(v) for k, v in copy.items()} == {k: type(v) for k, v in original.items()}


def _partial(solver, begin, implicit):
    """(scheduler result, reference result) of a run started at timesteps[begin]."""
    schedule, model, mu = _oracle("data")
    scheduler = MRSamplerScheduler(solver=solver, prediction_type="data")
    scheduler.set_timesteps(6)
    calls = scheduler.timesteps[begin:]
    if not implicit:
        scheduler.set_begin_index(begin)
        assert scheduler.begin_index == begin
    x0, noise = torch.randn(3, 2, dtype=F64), torch.randn(3, 2, dtype=F64)
    x = scheduler.add_noise(x0, noise, calls[:1], mu=mu)
    generator = torch.Generator().manual_seed(5)
    result = _run(scheduler, model, x, mu, calls, generator)
    assert scheduler.step_index == len(scheduler.timesteps)
    j = int((scheduler.plan.timesteps == calls[0]).nonzero())
    reference = make_sampler(solver, schedule, "data", start="warmup").sample(
        model,
        mu,
        timesteps=scheduler.plan.timesteps[j:],
        x_T=x,
        generator=torch.Generator().manual_seed(5),
    )
    assert reference.nfe == len(calls)
    return result, reference.x


@pytest.mark.parametrize("implicit", [False, True], ids=["set_begin_index", "first_timestep"])
@pytest.mark.parametrize(
    "solver, begin",
    [
        ("mrs-ode-2-data", 2),
        ("mrs-sde-2-data", 3),
        ("mrs-ode-3-data", 3),
        ("mrs-ode-3-data-unic", 4),
        ("mrs-ode-2-data-unic", 1),
    ],
)
def test_partial_start_runs_the_remaining_grid(solver, begin, implicit):
    """img2img: from timesteps[k] (set_begin_index or the first step's time) the run is the
    solver, warmed up, on the remaining grid; its calls are exactly timesteps[k:]."""
    result, reference = _partial(solver, begin, implicit)
    torch.testing.assert_close(result, reference, rtol=0, atol=1e-10)


def test_partial_start_bookkeeping_matches_dpm_solver():
    """begin_index, step_index and set_timesteps' reset behave as DPMSolverMultistepScheduler's."""
    ours, theirs = MRSamplerScheduler(), DPMSolverMultistepScheduler()
    sample = torch.zeros(2, 3)
    mu = torch.zeros(2, 3)
    for scheduler in (ours, theirs):
        scheduler.set_timesteps(8)
        assert scheduler.begin_index is None and scheduler.step_index is None
        scheduler.set_begin_index(3)
    for scheduler, extra in ((ours, {"mu": mu}), (theirs, {})):
        t = scheduler.timesteps[3]
        scheduler.step(torch.zeros_like(sample), t, sample, **extra)
        assert scheduler.begin_index == 3 and scheduler.step_index == 4
        scheduler.set_timesteps(8)
        assert scheduler.begin_index is None and scheduler.step_index is None


@pytest.mark.parametrize("solver", ["mrs-ode-2-data", "mrs-sde-2-data", "mrs-ode-1-data-unic"])
def test_custom_timesteps_are_the_call_times(solver):
    """As in diffusers (and its test_custom_timesteps): k custom times are k network calls,
    and set_timesteps(timesteps=s.timesteps) repeats set_timesteps(N)."""
    _, model, mu = _oracle("noise")
    x_T = mu + 0.2 * torch.randn(3, 2, dtype=F64)
    first = MRSamplerScheduler(solver=solver)
    first.set_timesteps(7)
    second = MRSamplerScheduler(solver=solver)
    second.set_timesteps(timesteps=first.timesteps)
    assert len(second.timesteps) == len(first.timesteps) == 7
    torch.testing.assert_close(second.plan.timesteps, first.plan.timesteps, rtol=0, atol=0)
    g1, g2 = torch.Generator().manual_seed(2), torch.Generator().manual_seed(2)
    torch.testing.assert_close(
        _run(second, model, x_T, mu, generator=g2),
        _run(first, model, x_T, mu, generator=g1),
        rtol=0,
        atol=0,
    )
    dpm = DPMSolverMultistepScheduler()
    dpm.set_timesteps(timesteps=[900, 500, 100])
    ours = MRSamplerScheduler(solver=solver)
    ours.set_timesteps(timesteps=[0.9, 0.5, 0.1])
    assert len(dpm.timesteps) == len(ours.timesteps) == 3


# ------------------------------------------- the applicable checks of SchedulerCommonTest


def test_step_shape_and_output_equivalence():
    """test_step_shape (two consecutive calls) and test_scheduler_outputs_equivalence."""
    sample = torch.rand(4, 3, 8, 8)
    mu = torch.rand(4, 3, 8, 8)
    outputs = []
    for return_dict in (True, False):
        scheduler = MRSamplerScheduler(solver="mrs-sde-2-data")
        scheduler.set_timesteps(10)
        first = scheduler.step(
            0.1 * sample,
            scheduler.timesteps[0],
            sample,
            mu=mu,
            generator=torch.manual_seed(0),
            return_dict=return_dict,
        )
        first = first.prev_sample if return_dict else first[0]
        second = scheduler.step(
            0.1 * sample,
            scheduler.timesteps[1],
            first,
            mu=mu,
            generator=torch.manual_seed(0),
            return_dict=return_dict,
        )
        second = second.prev_sample if return_dict else second[0]
        assert first.shape == second.shape == sample.shape
        outputs.append(second)
    torch.testing.assert_close(outputs[0], outputs[1], rtol=0, atol=0)


def test_public_api_order_init_noise_sigma_and_scale_model_input():
    """test_scheduler_public_api, test_deprecated_kwargs; order 1; scale_model_input identity."""
    scheduler = MRSamplerScheduler()
    assert scheduler.order == 1
    assert 0 < scheduler.init_noise_sigma <= scheduler.schedule.max_sigma
    sample = torch.rand(2, 3, 4, 4)
    assert scheduler.scale_model_input(sample, 0.0) is sample
    assert "kwargs" not in inspect.signature(MRSamplerScheduler.__init__).parameters
    assert MRSamplerScheduler._deprecated_kwargs == []
    scheduler.set_timesteps(
        5,
    )
    assert scheduler.init_noise_sigma == pytest.approx(
        float(scheduler.schedule.sigma(scheduler.plan.timesteps[0]))
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
def test_add_noise_keeps_shape_device_and_dtype(dtype):
    """test_add_noise_device (with μ): the samples' shape, device and dtype."""
    scheduler = MRSamplerScheduler()
    scheduler.set_timesteps(10)
    sample = torch.rand(4, 3, 8, 8).to(dtype)
    noised = scheduler.add_noise(
        sample,
        torch.randn(4, 3, 8, 8).to(dtype),
        scheduler.timesteps[5][None],
        mu=torch.rand(4, 3, 8, 8).to(dtype),
    )
    assert noised.shape == sample.shape and noised.dtype == dtype
    assert noised.device == sample.device


@pytest.mark.parametrize("steps", [1, 2, 5, 11])
def test_timesteps_dtype_device_and_counts(steps):
    """set_timesteps(N, device=...): float64 times on that device, N calls for order ≤ 2;
    a full loop of any N ends with every call made."""
    scheduler = MRSamplerScheduler()
    scheduler.set_timesteps(steps, device="cpu")
    assert scheduler.timesteps.dtype == F64 and scheduler.timesteps.device.type == "cpu"
    assert len(scheduler.timesteps) == steps == scheduler.num_inference_steps
    assert (scheduler.timesteps[1:] < scheduler.timesteps[:-1]).all()
    _, model, mu = _oracle("noise")
    _run(scheduler, model, mu.clone(), mu)
    assert scheduler.step_index == steps


def test_sde_step_is_deterministic_with_a_generator():
    """The same seed gives the same step; another seed another one."""
    sample, mu = torch.rand(2, 3, 4, 4), torch.rand(2, 3, 4, 4)
    results = []
    for seed in (0, 0, 1):
        scheduler = MRSamplerScheduler(solver="mrs-sde-1-data")
        scheduler.set_timesteps(4)
        results.append(
            scheduler.step(
                0.1 * sample,
                scheduler.timesteps[0],
                sample,
                mu=mu,
                generator=torch.Generator().manual_seed(seed),
            ).prev_sample
        )
    assert torch.equal(results[0], results[1]) and not torch.equal(results[0], results[2])


def test_getattr_is_correct():
    """test_getattr_is_correct: attributes without warnings, config entries with diffusers'
    FutureWarning, and the plain AttributeError message."""
    scheduler = MRSamplerScheduler()
    scheduler.dummy_attribute = 5
    scheduler.register_to_config(test_attribute=5)
    assert scheduler.dummy_attribute == 5
    with pytest.warns(FutureWarning):
        assert scheduler.test_attribute == 5
    with pytest.raises(AttributeError, match="'MRSamplerScheduler' object has no attribute 'nope'"):
        scheduler.nope  # noqa: B018
