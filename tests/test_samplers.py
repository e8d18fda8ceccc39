"""The MR Sampler: exactness, orders through .sample, equivalences, options and bad input."""

import contextlib
import math
import warnings

import numpy as np
import pytest
import torch

from mrs_numerics import MRSampler, schedules
from mrs_numerics.solvers.engine import NonFiniteError
from mrs_numerics.solvers.instability import NoiseFormSDEWarning
from mrs_numerics.solvers.options import Thresholding
from mrs_numerics.verification.oracles import GaussianData

SCHEDULE = schedules.constant()


def _lam_times(schedule, lam0, lam1, n, wobble=0.3):
    """A smooth, clearly non-uniform λ grid (the step ratios vary along the run)."""
    u = torch.linspace(0, 1, n + 1, dtype=torch.float64)
    u = u + wobble * u * (1 - u) * torch.sin(7 * u)
    return schedule.t_of_lam(lam0 + (lam1 - lam0) * u)


def _point_mass(batch=4, dim=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    mu = torch.randn(batch, dim, generator=gen, dtype=torch.float64)
    m = torch.randn(batch, dim, generator=gen, dtype=torch.float64)
    return mu, m


@pytest.mark.parametrize("order", [1, 2, 3])
@pytest.mark.parametrize("steps", [1, 2, 3, 5, 10])
@pytest.mark.parametrize("grid", ["lambda", "time", "karras"])
def test_data_ode_reproduces_the_point_mass_marginal_for_any_nfe(order, steps, grid):
    mu, m = _point_mass()
    sampler = MRSampler(SCHEDULE, "ode", order, "data", "data", grid=grid)
    times = sampler.timesteps(steps)
    a0, s0 = SCHEDULE.alpha(times[0]), SCHEDULE.sigma(times[0])
    eps = torch.randn(mu.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    x_T = mu + a0 * (m - mu) + s0 * eps
    result = sampler.sample(lambda x, t, mu_: m, mu, steps=steps, x_T=x_T)
    a1, s1 = SCHEDULE.alpha(times[-1]), SCHEDULE.sigma(times[-1])
    torch.testing.assert_close(result.x, mu + a1 * (m - mu) + s1 * eps, rtol=0, atol=1e-13)


@pytest.mark.parametrize("steps", [1, 2, 5, 10])
def test_first_order_data_sde_reproduces_the_point_mass_marginal(steps):
    """Point mass x₀ = m: x_t = μ + α_t(m − μ) + σ_t ε_t, ε_t = e^{−h}ε_s + √(1−e^{−2h}) z."""
    mu, m = _point_mass()
    recorded = []

    def noise_fn(step, t_from, t_to, shape, dtype, device):
        z = torch.randn(shape, generator=torch.Generator().manual_seed(100 + step), dtype=dtype)
        recorded.append(z)
        return z

    sampler = MRSampler(SCHEDULE, "sde", 1, "data", "data", noise_fn=noise_fn)
    times = sampler.timesteps(steps)
    eps = torch.randn(mu.shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    x_T = mu + SCHEDULE.alpha(times[0]) * (m - mu) + SCHEDULE.sigma(times[0]) * eps
    result = sampler.sample(lambda x, t, mu_: m, mu, steps=steps, x_T=x_T)
    lams = SCHEDULE.lam(times)
    for i, z in enumerate(recorded):
        decay = math.exp(-float(lams[i + 1] - lams[i]))
        eps = decay * eps + math.sqrt(1 - decay**2) * z
    expected = mu + SCHEDULE.alpha(times[-1]) * (m - mu) + SCHEDULE.sigma(times[-1]) * eps
    torch.testing.assert_close(result.x, expected, rtol=0, atol=1e-13)


def _ode_errors(problem, order, prediction, start, ns, lam0=-2.0, lam1=3.0):
    errors = []
    t0 = problem.schedule.t_of_lam(torch.tensor(lam0, dtype=torch.float64))
    x_T = problem.marginal_sample(t0)
    for n in ns:
        sampler = MRSampler(
            problem.schedule, "ode", order, prediction, "data", lower_order_final=False, start=start
        )
        times = _lam_times(problem.schedule, lam0, lam1, n)
        result = sampler.sample(problem.data, problem.mu, timesteps=times, x_T=x_T)
        exact = problem.flow(x_T, times[0], times[-1])
        errors.append(float((result.x - exact).abs().max()))
    return errors


def _slope(ns, errors):
    return -np.polyfit(np.log(ns), np.log(errors), 1)[0]


@pytest.mark.parametrize("prediction", ["data", "noise"])
@pytest.mark.parametrize("order", [1, 2, 3])
def test_sample_shows_the_declared_ode_order_on_a_non_uniform_grid(order, prediction):
    problem = GaussianData.random(SCHEDULE)
    ns = [80, 160, 320, 640] if order == 3 else [40, 80, 160]
    errors = _ode_errors(problem, order, prediction, "singlestep", ns)
    assert abs(_slope(ns[-3:], errors[-3:]) - order) < 0.25, errors


def test_classical_warmup_caps_third_order_at_two():
    problem = GaussianData.random(SCHEDULE)
    ns = [160, 320, 640]
    warm = _ode_errors(problem, 3, "noise", "warmup", ns)
    assert _slope(ns, warm) < 2.4, warm


def test_first_order_ode_is_the_same_in_data_and_noise_form():
    problem = GaussianData.random(SCHEDULE)
    x_T = problem.marginal_sample(1.0)
    kwargs = {"steps": 7, "x_T": x_T}
    data = MRSampler(SCHEDULE, "ode", 1, "data", "data").sample(problem.data, problem.mu, **kwargs)
    noise = MRSampler(SCHEDULE, "ode", 1, "noise", "data").sample(
        problem.data, problem.mu, **kwargs
    )
    torch.testing.assert_close(data.x, noise.x, rtol=0, atol=1e-13)


def test_nfe_counts_network_calls_including_start_and_denoise_last():
    problem = GaussianData.random(SCHEDULE)
    calls = []

    def model(x, t, mu):
        calls.append(1)
        return problem.data(x, t, mu)

    for order, extra in ((1, 0), (2, 0), (3, 1)):
        for denoise in (False, True):
            calls.clear()
            sampler = MRSampler(SCHEDULE, "ode", order, "data", "data", denoise_last=denoise)
            result = sampler.sample(model, problem.mu, steps=6)
            assert result.nfe == len(calls) == 6 + extra + int(denoise)


def test_trajectory_callback_and_progress():
    problem = GaussianData.random(SCHEDULE)
    seen = []
    sampler = MRSampler(SCHEDULE, "sde", 2, "data", "data")
    result = sampler.sample(
        problem.data,
        problem.mu,
        steps=5,
        generator=torch.Generator().manual_seed(0),
        callback=seen.append,
        progress=True,
        return_trajectory=True,
    )
    assert [info["i"] for info in seen] == list(range(5))
    assert len(result.trajectory) == 6
    torch.testing.assert_close(result.trajectory[-1], result.x)
    assert all(seen[i]["t"] > seen[i]["t_next"] for i in range(5))


def test_per_sample_seeds_do_not_depend_on_the_batch():
    problem = GaussianData.random(SCHEDULE, batch=3)
    sampler = MRSampler(SCHEDULE, "sde", 1, "data", "data")

    def run(indices):
        sub = GaussianData(SCHEDULE, problem.mu[indices], problem.offset[indices], problem.variance)
        gens = [torch.Generator().manual_seed(10 + i) for i in indices]
        return sampler.sample(sub.data, sub.mu, steps=4, generator=gens).x

    full = run([0, 1, 2])
    alone = run([2])
    torch.testing.assert_close(full[2:], alone, rtol=0, atol=1e-14)


def test_clipping_and_thresholding_bound_the_denoised_output():
    problem = GaussianData.random(SCHEDULE)
    clipped = MRSampler(SCHEDULE, "ode", 2, "data", "data", clip_x0=(-0.1, 0.1), denoise_last=True)
    result = clipped.sample(problem.data, problem.mu, steps=5)
    assert result.x.min() >= -0.1 and result.x.max() <= 0.1
    thresholded = MRSampler(
        SCHEDULE, "ode", 2, "data", "data", thresholding=True, denoise_last=True
    )
    result = thresholded.sample(problem.data, problem.mu, steps=5)
    assert result.x.abs().max() <= 1.0 + 1e-12


def test_thresholding_scale_lies_between_max_value_and_the_cap():
    # per sample |x| is uniform on a grid: sample 0 reaches 4, sample 1 reaches 1.2, sample 2 0.5
    data = torch.stack([torch.linspace(-r, r, 2001, dtype=torch.float64) for r in (4.0, 1.2, 0.5)])
    quantiles = torch.quantile(data.abs().float(), 0.995, dim=1).double()
    for cap, expected in ((None, quantiles.clamp(min=1)), (1.5, quantiles.clamp(1, 1.5))):
        out = Thresholding(cap=cap)(data)
        scale = expected[:, None]
        torch.testing.assert_close(out, data.clamp(-scale, scale) / scale)
    assert float(Thresholding(cap=1.5)(data).abs().max()) == 1.0
    assert float(expected[0]) == 1.5 and float(expected[2]) == 1.0
    with pytest.raises(ValueError, match="cap must be ≥ max_value"):
        Thresholding(max_value=2.0, cap=1.5)


def test_mu_may_differ_per_sample_and_images_work():
    gen = torch.Generator().manual_seed(0)
    mu = torch.rand(2, 3, 8, 8, generator=gen, dtype=torch.float64)
    target = torch.rand(2, 3, 8, 8, generator=gen, dtype=torch.float64)
    sampler = MRSampler(SCHEDULE, "ode", 2, "data", "data")
    result = sampler.sample(lambda x, t, mu_: target, mu, steps=5)
    assert result.x.shape == mu.shape
    assert torch.isfinite(result.x).all()


LOW_PRECISION_TOLERANCE = {
    # (dtype, model prediction): max |x_low − x_float64| allowed. Data predictions carry only the
    # dtype's rounding (≈ 2^-8 for bfloat16, 2^-11 for float16, times |x| ≤ 3); a noise
    # prediction's rounding is amplified by σ/α (≈ 40 at the start) when the solver forms x̂₀.
    (torch.float16, "data"): 1e-2,
    (torch.bfloat16, "data"): 5e-2,
    (torch.float32, "data"): 1e-5,
    (torch.float16, "noise"): 5e-2,
    (torch.bfloat16, "noise"): 3e-1,
    (torch.float32, "noise"): 1e-4,
}


@pytest.mark.parametrize(("dtype", "prediction"), list(LOW_PRECISION_TOLERANCE))
@pytest.mark.parametrize("steps", [5, 1000])
def test_low_precision_agrees_with_float64(dtype, prediction, steps):
    """Half precisions run in a float32 master state: only the network's own rounding remains.

    The float64 reference starts from the same (rounded) μ and x_T; the model sees its input and
    returns its output in the low dtype, as a half-precision network would.
    """
    problem = GaussianData.random(SCHEDULE)
    mu, x_T = problem.mu.to(dtype), problem.marginal_sample(1.0).to(dtype)
    rounded = GaussianData(SCHEDULE, mu.double(), problem.mean_x0 - mu.double(), problem.variance)
    sampler = MRSampler(SCHEDULE, "ode", 2, "data", prediction)

    def model(x, t, mu_):
        x64 = x.double()
        data = rounded.data(x64, t, rounded.mu)
        if prediction == "data":
            return data.to(x.dtype)
        a, s = SCHEDULE.alpha(t)[:, None], SCHEDULE.sigma(t)[:, None]
        return ((x64 - rounded.mu - a * (data - rounded.mu)) / s).to(x.dtype)

    reference = sampler.sample(model, mu.double(), steps=steps, x_T=x_T.double()).x
    low = sampler.sample(model, mu, steps=steps, x_T=x_T).x
    assert low.dtype == dtype
    assert torch.isfinite(low).all()
    error = float((low.double() - reference).abs().max())
    assert error < LOW_PRECISION_TOLERANCE[(dtype, prediction)]


def test_nan_model_output_is_reported_with_its_step_and_stops_the_run():
    problem = GaussianData.random(SCHEDULE)
    calls = []

    def broken(x, t, mu):
        calls.append(1)
        out = problem.data(x, t, mu)
        return out * float("nan") if len(calls) == 3 else out

    with pytest.raises(NonFiniteError, match=r"NaN/Inf at step 2 \(t = "):
        MRSampler(SCHEDULE, "ode", 2, "data", "data").sample(broken, problem.mu, steps=6)
    assert len(calls) == 3  # on the CPU the run stops at the bad step: no further call


def test_bad_input_gets_clear_errors():
    problem = GaussianData.random(SCHEDULE)
    model = problem.data
    with pytest.raises(ValueError, match="order 3 is not available for method 'sde'"):
        MRSampler(SCHEDULE, "sde", 3)
    with pytest.raises(ValueError, match="order 4 is not available for method 'ode'"):
        MRSampler(SCHEDULE, "ode", 4)
    with pytest.raises(ValueError, match="unknown method 'pde'"):
        MRSampler(SCHEDULE, "pde", 1)
    with pytest.raises(ValueError, match="unknown prediction 'eps'"):
        MRSampler(SCHEDULE, "ode", 1, model_prediction="eps")
    with pytest.raises(ValueError, match="unknown grid 'log'"):
        MRSampler(SCHEDULE, "ode", 1, grid="log")
    sampler = MRSampler(SCHEDULE, "ode", 2, "data", "data")
    with pytest.raises(ValueError, match="steps must be an integer ≥ 1, got 0"):
        sampler.sample(model, problem.mu, steps=0)
    with pytest.raises(ValueError, match="strictly decreasing"):
        sampler.sample(model, problem.mu, timesteps=[1.0, 0.5, 0.6, 0.1])
    with pytest.raises(ValueError, match="outside the schedule's time range"):
        sampler.sample(model, problem.mu, timesteps=[1.5, 0.5])
    with pytest.raises(ValueError, match="exactly one of steps"):
        sampler.sample(model, problem.mu)
    with pytest.raises(ValueError, match="x_T has shape"):
        sampler.sample(model, problem.mu, steps=3, x_T=problem.mu[:, :2])
    with pytest.raises(ValueError, match="x_T has dtype"):
        sampler.sample(model, problem.mu, steps=3, x_T=problem.mu.float())
    with pytest.raises(TypeError, match=r"mu must be a torch\.Tensor"):
        sampler.sample(model, problem.mu.numpy(), steps=3)


def test_noise_form_sde_at_low_nfe_warns():
    problem = GaussianData.random(SCHEDULE)
    sampler = MRSampler(SCHEDULE, "sde", 1, "noise", "data")
    warned = pytest.warns(NoiseFormSDEWarning, match="mrs-sde-1-noise with 4 network calls")
    with warned, contextlib.suppress(NonFiniteError):
        sampler.sample(problem.data, problem.mu, steps=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sampler.sample(problem.data, problem.mu, steps=20)


def test_a_noise_source_is_told_each_steps_interval():
    problem = GaussianData.random(SCHEDULE)
    seen = []

    def noise(step, t_from, t_to, shape, dtype, device):
        seen.append((step, t_from, t_to))
        return torch.zeros(shape, dtype=dtype, device=device)

    sampler = MRSampler(SCHEDULE, "sde", 2, "data", "data", noise_fn=noise)
    sampler.sample(problem.data, problem.mu, steps=6)
    times = sampler.timesteps(6).tolist()
    assert seen == [(i, times[i], times[i + 1]) for i in range(6)]


def test_the_step_only_noise_function_of_version_0_1_still_gives_the_same_numbers():
    problem = GaussianData.random(SCHEDULE)

    def z(step, shape, dtype):
        return torch.randn(shape, generator=torch.Generator().manual_seed(7 + step), dtype=dtype)

    def legacy(step, shape, dtype, device):
        return z(step, shape, dtype)

    def current(step, t_from, t_to, shape, dtype, device):
        return z(step, shape, dtype)

    with pytest.warns(DeprecationWarning, match="t_from, t_to"):
        old = MRSampler(SCHEDULE, "sde", 2, "data", "data", noise_fn=legacy)
    new = MRSampler(SCHEDULE, "sde", 2, "data", "data", noise_fn=current)
    x_T = problem.marginal_sample(1.0)
    a = old.sample(problem.data, problem.mu, steps=5, x_T=x_T).x
    b = new.sample(problem.data, problem.mu, steps=5, x_T=x_T).x
    assert torch.equal(a, b)
