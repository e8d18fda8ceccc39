"""Reliability: every input that used to give a silent wrong result, a misleading message or a
traceback now gives a clear error or an explicit warning. One row per case, table-driven.

Each row names the case, runs it, and states what must happen: an exception of a type whose
message matches, or a warning of a category whose message matches (and points at this file).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from PIL import Image

from mrs_numerics import MRSampler, schedules
from mrs_numerics.cli import main
from mrs_numerics.imaging.files import read_image
from mrs_numerics.solvers import make_sampler
from mrs_numerics.solvers.engine import (
    DIVERGENCE_FACTOR,
    DivergenceError,
    NonFiniteError,
    diverged,
    non_finite,
)
from mrs_numerics.solvers.instability import NoiseFormSDEWarning
from mrs_numerics.verification import studies
from mrs_numerics.verification.oracles import GaussianData

SCHEDULE = schedules.cosine()
PROBLEM = GaussianData.random(SCHEDULE, batch=3, dim=2, seed=5)


@dataclass(frozen=True)
class Case:
    """What running ``action`` must do: raise ``error`` or warn ``warning``, matching ``match``."""

    action: Callable[[], object]
    match: str
    error: type[BaseException] | tuple | None = None
    warning: type[Warning] | None = None


def _sampler(solver="mrs-ode-2-data", **options):
    return make_sampler(solver, SCHEDULE, "data", **options)


def _noise_sde(steps, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NoiseFormSDEWarning)
        return _sampler("mrs-sde-1-noise").sample(PROBLEM.data, PROBLEM.mu, steps=steps, **kwargs)


def _nan_mu():
    mu = PROBLEM.mu.clone()
    mu[0, 0] = float("nan")
    return _sampler().sample(PROBLEM.data, mu, steps=3)


def _nan_x_T():
    x_T = PROBLEM.mu.clone()
    x_T[1, 1] = float("inf")
    return _sampler().sample(PROBLEM.data, PROBLEM.mu, steps=3, x_T=x_T)


def _user_schedule(theta: str, t_max: float = 1.0):
    from derivations.schedule_codegen import user_schedule

    return user_schedule(theta, "reliability_case", t_max)


CASES = {
    # 1. silent wrong results
    "a diverging noise-form SDE raises DivergenceError with its step": Case(
        lambda: _noise_sde(4), r"diverged at step \d+ \(t = .*50·Λ", DivergenceError
    ),
    "allow_divergence returns the state with a RuntimeWarning": Case(
        lambda: _noise_sde(4, allow_divergence=True),
        r"diverged at step .*allow_divergence",
        warning=RuntimeWarning,
    ),
    "a noise-form SDE below 20 steps warns": Case(
        lambda: _sampler("mrs-sde-2-noise").plan(19),
        r"mrs-sde-2-noise with 19 network calls \(< 20\)",
        warning=NoiseFormSDEWarning,
    ),
    "max_sigma in pixel units warns with the conversion": Case(
        lambda: schedules.cosine(max_sigma=50),
        r"max_sigma = 50 looks like pixel units.*0\.1961",
        warning=UserWarning,
    ),
    "a user schedule with α(t_max) = 0.26 warns": Case(
        lambda: _user_schedule("1 + t**2"), r"α\(t_max\) = 0\.264.*prior", warning=UserWarning
    ),
    "a user schedule that hardly moves is refused": Case(
        lambda: _user_schedule("1e-6"), r"hardly moves", ValueError
    ),
    "a user schedule stationary long before t_max is refused": Case(
        lambda: _user_schedule("1e6"), r"Θ\(t_max\) = 1e\+06.*Keep Θ\(t_max\) ≤ 50", ValueError
    ),
    "t_max = 1e6 is refused": Case(
        lambda: _user_schedule("1", 1e6), r"Θ\(t_max\) = 1e\+06", ValueError
    ),
    # 2. misleading messages
    "a NaN in mu is bad input, not divergence": Case(
        _nan_mu, r"mu contains NaN/Inf.*bad input", ValueError
    ),
    "an Inf in x_T is bad input, not divergence": Case(
        _nan_x_T, r"x_T contains NaN/Inf \(1 of 6 values\)", ValueError
    ),
    "lam_min out of range names lam_min": Case(
        lambda: _sampler(lam_min=100.0).timesteps(3),
        r"lam_min = 100 .*λ at the end time",
        ValueError,
    ),
    "a float number of steps is refused, naming what was passed": Case(
        lambda: _sampler().timesteps(3.0),
        r"steps must be an integer .*got 3\.0 \(float\)",
        ValueError,
    ),
    "an integer mu says how to convert": Case(
        lambda: _sampler().sample(PROBLEM.data, (PROBLEM.mu * 255).to(torch.uint8), steps=2),
        r"mu must be a floating-point tensor, got torch\.uint8 .*divide 8-bit images by 255",
        TypeError,
    ),
    # 3. tracebacks that became clear errors
    "generator=0 says how to make a generator": Case(
        lambda: _sampler().sample(PROBLEM.data, PROBLEM.mu, steps=2, generator=0),
        r"generator must be a torch\.Generator.*torch\.Generator\(\)\.manual_seed",
        TypeError,
    ),
    "a list holding a seed is refused": Case(
        lambda: _sampler().sample(PROBLEM.data, PROBLEM.mu, steps=2, generator=[0, 1, 2]),
        r"the list holds int",
        TypeError,
    ),
    "a meta-device mu is refused": Case(
        lambda: _sampler().sample(PROBLEM.data, PROBLEM.mu.to("meta"), steps=2),
        r"mu is on the meta device",
        ValueError,
    ),
    "a Piecewise θ is refused, with a smooth alternative": Case(
        lambda: _user_schedule("Piecewise((1, t < 0.5), (2, True))"),
        r"piecewise θ is not supported.*exp\(-50\*\(t - t0\)\)",
        ValueError,
    ),
    "a Heaviside θ is refused": Case(
        lambda: _user_schedule("3 + Heaviside(t - 0.5)"), r"uses Heaviside", ValueError
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_reliability_case(name):
    case = CASES[name]
    if case.error is not None:
        with pytest.raises(case.error, match=case.match):
            case.action()
        return
    assert case.warning is not None
    with pytest.warns(case.warning, match=case.match) as record:
        case.action()
    matching = [w for w in record if issubclass(w.category, case.warning)]
    assert any(w.filename == __file__ for w in matching), [w.filename for w in matching]


@pytest.mark.parametrize(
    "steps", [3, np.int64(3), np.int32(3), torch.tensor(3)], ids=["int", "np64", "np32", "torch"]
)
def test_integer_scalars_of_numpy_and_torch_are_accepted(steps):
    result = _sampler().sample(PROBLEM.data, PROBLEM.mu, steps=steps)
    assert result.timesteps.numel() == 4
    assert _sampler().steps_within(np.int64(5)) == _sampler().steps_within(5)


def test_divergence_is_one_definition_of_rms_distance_over_lambda():
    mu = torch.zeros(2, 4, dtype=torch.float64)
    bound = DIVERGENCE_FACTOR * 0.5
    x = torch.stack([torch.full((4,), bound * 0.999), torch.full((4,), bound * 1.001)]).double()
    assert diverged(x, mu, 0.5).tolist() == [False, True]
    assert diverged(torch.full_like(mu, float("nan")), mu, 0.5).all()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_non_finite_finds_any_nan_or_inf_and_no_large_finite_value(dtype):
    big = torch.finfo(dtype).max
    finite = torch.full((3, 1000), big, dtype=dtype)  # its float32 sum would overflow
    assert not bool(non_finite(finite)) and not bool(non_finite(-finite))
    for bad in (float("nan"), float("inf"), -float("inf")):
        values = torch.zeros(3, 1000, dtype=dtype)
        values[2, 517] = bad
        assert bool(non_finite(values))
    opposite = torch.zeros(4, dtype=dtype)
    opposite[0], opposite[1] = float("inf"), -float("inf")
    assert bool(non_finite(opposite))


def test_divergence_stops_the_run_at_its_step_on_cpu():
    """On the CPU the flags are read after every step: no call is made after the bad step."""
    calls = []

    def exploding(x, t, mu):
        calls.append(float(t[0]))
        out = PROBLEM.data(x, t, mu)
        return out + 1e3 if len(calls) == 2 else out

    with pytest.raises(DivergenceError, match=r"diverged at step 1 "):
        _sampler("mrs-ode-1-data").sample(exploding, PROBLEM.mu, steps=8)
    assert len(calls) == 2


def test_the_prior_of_a_schedule_that_misses_it_is_reported_when_sampling():
    class Shifted:
        """The cosine schedule with α(t_max) forced to 0.3: its prior misses the marginal."""

        name, max_sigma, t_min, t_max = "shifted", SCHEDULE.max_sigma, 0.0, 1.0

        def __getattr__(self, attribute):
            return getattr(SCHEDULE, attribute)

        def alpha(self, t):
            return torch.maximum(SCHEDULE.alpha(t), torch.as_tensor(0.3, dtype=torch.float64))

    sampler = MRSampler(SCHEDULE, "ode", 1, "data", "data")
    sampler.schedule = Shifted()
    with pytest.warns(UserWarning, match=r"α\(t_max\) = 0\.3: the prior") as record:
        sampler.sample(PROBLEM.data, PROBLEM.mu, steps=2)
    assert any(w.filename == __file__ for w in record)


@pytest.mark.parametrize(
    ("mode", "note"),
    [
        ("RGBA", "the alpha channel was dropped"),
        ("LA", "the alpha channel was dropped"),
        ("L", "grey: copied to R, G and B"),
        ("P", "a palette image"),
        ("I;16", "16-bit grey: reduced to 8 bits"),
    ],
)
def test_converted_image_files_are_noted_in_one_line(tmp_path, caplog, mode, note):
    path = tmp_path / "picture.png"
    size = (6, 5)
    if mode == "I;16":
        Image.fromarray(np.full(size[::-1], 40000, dtype=np.uint16)).save(path)
    else:
        Image.new(mode, size).save(path)
    with caplog.at_level(logging.WARNING, logger="mrs_numerics.imaging.files"):
        image = read_image(path)
    assert image.shape == (3, 5, 6)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and note in lines[0] and str(path) in lines[0]
    caplog.clear()
    Image.new("RGB", size).save(path)
    with caplog.at_level(logging.WARNING, logger="mrs_numerics.imaging.files"):
        read_image(path)
    assert not caplog.records


@pytest.mark.parametrize(
    ("observed", "declared", "text"),
    [
        (3.27, 3.0, "faster than declared"),
        (3.15, 3.0, "pass"),
        (2.85, 3.0, "pass"),
        (2.79, 3.0, "FAIL"),
        (float("nan"), 3.0, "FAIL"),
    ],
)
def test_a_solver_faster_than_declared_passes_and_says_so(observed, declared, text):
    assert studies.verdict_text(observed, declared) == text
    assert studies.verdict(observed, declared) == (text != "FAIL")


def test_cli_train_on_a_missing_device_is_a_one_line_error(capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the refusal cannot be observed")
    status = main(["train", "--device", "cuda", "--iterations", "1"])
    err = capsys.readouterr().err
    assert status == 2
    assert err.strip().count("\n") == 0 and "CUDA is not available" in err


def test_cli_codegen_warns_about_the_prior_and_refuses_piecewise(tmp_path, capsys):
    status = main(["codegen", "--theta", "1 + t**2", "--name", "quad", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert status == 0 and "warning: θ(t) = '1 + t**2'" in err and "α(t_max) = 0.264" in err
    status = main(["codegen", "--theta", "Piecewise((1, t < 0.5), (2, True))", "--name", "pw"])
    err = capsys.readouterr().err
    assert status == 2 and "piecewise θ is not supported" in err and "Traceback" not in err


def test_a_plan_compiled_under_inference_mode_is_reusable_outside_it():
    """Cached plans hold ordinary tensors: a network with parameters can be sampled again."""

    class Scaled(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.ones((), dtype=torch.float64))

        def forward(self, x, t, mu):
            return self.weight * PROBLEM.data(x, t, mu)

    net = Scaled()
    sampler = _sampler()
    with torch.inference_mode():
        inside = sampler.sample(net, PROBLEM.mu, steps=3, x_T=PROBLEM.mu).x
    outside = sampler.sample(net, PROBLEM.mu, steps=3, x_T=PROBLEM.mu).x
    assert torch.equal(inside, outside.detach())


@pytest.mark.parametrize("solver", ["mrs-ode-3-data", "mrs-ode-2-data-unic", "heun-ode"])
def test_plan_evaluates_each_coefficient_function_once_whatever_the_steps(solver, monkeypatch):
    """Compiling is linear in the steps: one vectorised call per generated function."""
    from mrs_numerics.solvers import kernels

    calls: list[int] = []
    original = kernels.CoefficientBatch.evaluate

    def counting(self, dtype, device):
        calls.append(len(self.rows))
        return original(self, dtype, device)

    monkeypatch.setattr(kernels.CoefficientBatch, "evaluate", counting)
    sampler = _sampler(solver)
    small, large = sampler.plan(6), sampler.plan(600)
    assert len(calls) == 2 and calls[0] == calls[1]  # same functions, each evaluated once
    assert len(large.steps) == 600 and len(small.steps) == 6
    again = sampler.plan(600)
    for step, same in zip(large.steps, again.steps, strict=True):
        for stage, twin in zip(step.stages, same.stages, strict=True):
            assert torch.equal(stage.coefficients.x, twin.coefficients.x)


def test_on_an_accelerator_the_run_stops_within_check_every_steps(monkeypatch):
    """The accelerator schedule of flag reads, exercised on the CPU: the run goes on to the next
    read (at most CHECK_EVERY steps), and the error still names the first bad step."""
    from mrs_numerics.solvers import engine

    monkeypatch.setattr(engine, "check_interval", lambda device: engine.CHECK_EVERY)
    calls = []

    def broken(x, t, mu):
        calls.append(1)
        out = PROBLEM.data(x, t, mu)
        return out * float("nan") if len(calls) == 2 else out

    with pytest.raises(NonFiniteError, match=r"NaN/Inf at step 1 "):
        _sampler("mrs-ode-1-data").sample(broken, PROBLEM.mu, steps=3 * engine.CHECK_EVERY)
    assert len(calls) == engine.CHECK_EVERY  # steps 0 … CHECK_EVERY − 1, one call each
