"""Property-based tests: invariants of the samplers that hold for any grid, schedule and input.

Hypothesis draws the schedule (a built-in continuous one, its Λ = ``max_sigma`` and α(1) =
``eps``), the step grid (1–12 strictly decreasing times inside the schedule's range, ending
where σ > 0, or at σ = 0 for the data-form ODE), the solver id, the model's prediction type and
the inputs. The examples are derandomised, so a run is reproducible.

1. **Point mass** (docs/theory.md, "Semi-analytical solutions"). If the data is one point
   x₀, the exact data prediction is x₀ at every state and time, and the exact noise prediction
   is ε̂ = (x − μ − α(x₀ − μ))/σ. Along the PF-ODE this ε̂ is constant, so the exact solution
   from x_T at t_0 is x_t = μ + α_t(x₀ − μ) + σ_t ε_T with ε_T = (x_T − μ − α_0(x₀ − μ))/σ_0.
   Every MR Sampler ODE step integrates the linear part exactly and the network term exactly
   for a polynomial output of its degree, a constant among them; so every ``mrs-ode-*`` id, in
   either form, with or without the corrector, lands on that state for any grid and any x_T,
   to round-off. The data-form reverse SDE is exact too, pathwise: with z_i the Gaussian draw of
   step i, ε_{i+1} = e^{−h_i} ε_i + √(1 − e^{−2h_i}) z_i (h_i the step in λ) and the state is
   μ + α(x₀ − μ) + σ ε. IR-SDE's posterior step is that same step.
2. **Data and noise forms of the first-order ODE** are one update (DDIM) written two ways, for
   any model. With y = x − μ, d̂ = x̂₀ − μ and ε̂ = (y_s − α_s d̂)/σ_s, the noise form
   y_t = (α_t/α_s) y_s − σ_t(e^h − 1) ε̂ becomes, since σ_t e^h = α_t σ_s/α_s,
   y_t = (σ_t/σ_s) y_s + α_t(1 − e^{−h}) d̂: the data form. So ``mrs-ode-1-data`` and
   ``mrs-ode-1-noise`` agree to round-off for any grid and schedule, whatever the model returns.
3. **Batch independence** (docs/architecture.md, "Reproducibility"): with per-sample generators,
   a sample's result does not depend on the batch it is in, within the rule's 1e-12 in float64;
   reversing the batch reverses the results.

Each property was seen to fail with the library mutated in memory: a 1e-9·μ term added to every
stage (1), SDE noise 0.1 % too strong (1, SDE), the prediction converted at x·(1 + 1e-9) (1,
2), and per-sample generators replaced by the first one (3, for ODE and SDE ids alike: the
prior is drawn per sample too).
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mrs_numerics import schedules
from mrs_numerics.solvers import SOLVERS, make_sampler
from mrs_numerics.solvers.engine import NonFiniteError
from mrs_numerics.verification.oracles import builtin_problem


def property_settings(max_examples: int):
    """Derandomised (stable in CI), no deadline, at most ``max_examples`` examples."""
    return settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow],
    )


PER_SOLVER = 10
"""Examples per solver id in the tests parametrised over solvers."""
F64 = torch.float64

MRS_ODE = sorted(i for i, info in SOLVERS.items() if info.family == "mrs" and info.method == "ode")
DATA_SDE = sorted(
    i
    for i, info in SOLVERS.items()
    if info.family == "mrs" and info.method == "sde" and info.solver_prediction == "data"
)
POINT_MASS_SDE = [*DATA_SDE, "posterior"]
"""The SDE solvers whose step is the data-form semi-analytical step (posterior: proved equal)."""
NOISE_SDE = {
    i for i, info in SOLVERS.items() if info.method == "sde" and info.solver_prediction == "noise"
}
PREDICTIONS = ("data", "noise", "velocity", "score")

ROUND_OFF_TOL = 1e-11
"""Bound for float64 round-off in an exact solution. The noise form's c_x = α_t/α_s reaches
1/eps ≤ 1000 on a step across the whole range, so its terms reach about 10³ before they cancel to
an O(1) state, each with 1e-16 relative round-off: ≈ 1e-13 per step, ≤ 13 calls. Any
discretisation error is of the order of a power of the step (1e-3 and far more here)."""
BATCH_TOL = 1e-12
"""The reproducibility rule's float64 tolerance for a different batch composition."""


@st.composite
def schedule_strategy(draw):
    """A built-in continuous schedule with a drawn Λ and α(1)."""
    name = draw(st.sampled_from(sorted(schedules.BUILTIN)))
    max_sigma = draw(st.sampled_from([10 / 255, 30 / 255, 50 / 255, 0.5, 1.0]))
    eps = draw(st.floats(1e-3, 2e-2))  # α(t_max) ≤ 0.02, where the prior μ + σξ is accurate
    return schedules.get(name, max_sigma=max_sigma, eps=eps)


@st.composite
def grid_strategy(draw, schedule, max_steps: int = 12, to_clean: bool = False):
    """1–``max_steps`` steps: strictly decreasing times inside the schedule.

    The start lies in the upper half of the range, the end in its lowest 30 %: at t_min (where
    σ = 0) only with ``to_clean``, else where σ > 0. Consecutive steps differ by at most a
    factor 20 in length, so no step is degenerate.
    """
    steps = draw(st.integers(1, max_steps))
    low, high = float(schedule.t_min), float(schedule.t_max)
    span = high - low
    start = low + span * draw(st.floats(0.5, 1.0))
    end = low if to_clean else low + span * draw(st.floats(1e-3, 0.3))
    weights = draw(st.lists(st.floats(0.05, 1.0), min_size=steps, max_size=steps))
    total = sum(weights)
    times, t = [start], start
    for w in weights[:-1]:
        t -= (start - end) * w / total
        times.append(t)
    times.append(end)
    return torch.tensor(times, dtype=F64)


def _column(value: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return value.reshape(-1, *([1] * (like.dim() - 1)))


class PointMass:
    """The exact model of data concentrated at x₀ (per sample), in any prediction type.

    x̂₀ = x₀; ε̂ = (x − μ − α(x₀ − μ))/σ; score −ε̂/σ; velocity Λαε̂ − (σ/Λ)(x₀ − μ) (the
    Λ-normalised MRS convention of the Concepts page).
    """

    def __init__(self, schedule, x0: torch.Tensor, prediction: str):
        self.schedule, self.x0, self.prediction = schedule, x0, prediction

    def __call__(self, x, t, mu):
        alpha = _column(self.schedule.alpha(t), x)
        sigma = _column(self.schedule.sigma(t), x)
        big = float(self.schedule.max_sigma)
        offset = self.x0 - mu
        noise = (x - mu - alpha * offset) / sigma
        return {
            "data": self.x0.expand_as(x).clone(),
            "noise": noise,
            "score": -noise / sigma,
            "velocity": big * alpha * noise - (sigma / big) * offset,
        }[self.prediction]


@st.composite
def point_mass_problem(draw, schedule):
    """μ and x₀ per sample (|x₀ − μ| ≤ 1) and the standardised start noise ε_T."""
    batch = draw(st.integers(1, 3))
    dim = draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**16))
    generator = torch.Generator().manual_seed(seed)
    mu = torch.rand(batch, dim, generator=generator, dtype=F64)
    x0 = mu + (2 * torch.rand(batch, dim, generator=generator, dtype=F64) - 1)
    eps_T = 3 * (2 * torch.rand(batch, dim, generator=generator, dtype=F64) - 1)
    return mu, x0, eps_T


def _state(schedule, t, mu, x0, eps) -> torch.Tensor:
    """μ + α_t(x₀ − μ) + σ_t ε: the MR marginal's state for noise ε (float64)."""
    t = torch.as_tensor(t, dtype=F64)
    return mu + schedule.alpha(t) * (x0 - mu) + schedule.sigma(t) * eps


class RecordingNoise:
    """Seeded standard normals for each stochastic stage, remembered by step."""

    def __init__(self, seed: int):
        self.generator = torch.Generator().manual_seed(seed)
        self.draws: dict[int, list[torch.Tensor]] = {}

    def __call__(self, step, t_from, t_to, shape, dtype, device):
        z = torch.randn(shape, generator=self.generator, dtype=F64).to(device=device, dtype=dtype)
        self.draws.setdefault(step, []).append(z)
        return z


@pytest.mark.parametrize("solver", MRS_ODE)
@property_settings(PER_SOLVER)
@given(data=st.data())
def test_every_mrs_ode_solver_is_exact_on_a_point_mass(solver, data):
    schedule = data.draw(schedule_strategy(), "schedule")
    # the data form may end where σ = 0 (its last step returns x̂₀); the noise form refuses to
    to_clean = SOLVERS[solver].solver_prediction == "data" and data.draw(st.booleans(), "σ=0 end")
    times = data.draw(grid_strategy(schedule, to_clean=to_clean), "grid")
    prediction = data.draw(st.sampled_from(PREDICTIONS), "model prediction")
    mu, x0, eps_T = data.draw(point_mass_problem(schedule), "problem")
    x_T = _state(schedule, times[0], mu, x0, eps_T)

    sampler = make_sampler(solver, schedule, prediction)
    result = sampler.sample(PointMass(schedule, x0, prediction), mu, timesteps=times, x_T=x_T)

    expected = _state(schedule, times[-1], mu, x0, eps_T)  # ε is constant along the PF-ODE
    if to_clean:
        assert float(schedule.sigma(times[-1])) == 0.0
        expected = x0
    assert result.x.dtype == F64
    torch.testing.assert_close(result.x, expected, rtol=0.0, atol=ROUND_OFF_TOL)


@pytest.mark.parametrize("solver", POINT_MASS_SDE)
@property_settings(PER_SOLVER)
@given(data=st.data())
def test_data_form_sde_steps_are_exact_transitions_on_a_point_mass(solver, data):
    schedule = data.draw(schedule_strategy(), "schedule")
    times = data.draw(grid_strategy(schedule), "grid")
    prediction = data.draw(st.sampled_from(PREDICTIONS), "model prediction")
    mu, x0, eps_T = data.draw(point_mass_problem(schedule), "problem")
    noise = RecordingNoise(data.draw(st.integers(0, 2**16), "noise seed"))
    x_T = _state(schedule, times[0], mu, x0, eps_T)

    sampler = make_sampler(solver, schedule, prediction)
    model = PointMass(schedule, x0, prediction)
    result = sampler.sample(model, mu, timesteps=times, x_T=x_T, noise=noise)

    assert sorted(noise.draws) == list(range(len(times) - 1))
    assert all(len(draws) == 1 for draws in noise.draws.values())
    lam = schedule.lam(times)
    eps = eps_T
    for i in range(len(times) - 1):  # the exact Ornstein–Uhlenbeck transition of ε in λ
        decay = math.exp(-float(lam[i + 1] - lam[i]))
        eps = decay * eps + math.sqrt(1.0 - decay**2) * noise.draws[i][0]
    expected = _state(schedule, times[-1], mu, x0, eps)
    torch.testing.assert_close(result.x, expected, rtol=0.0, atol=ROUND_OFF_TOL)


@property_settings(25)
@given(data=st.data())
def test_data_and_noise_form_first_order_odes_agree_for_any_model(data):
    schedule = data.draw(schedule_strategy(), "schedule")
    times = data.draw(grid_strategy(schedule), "grid")
    problem = data.draw(st.sampled_from(["gauss-1d", "gmm-2d-diag", "gmm-3d-full"]), "problem")
    prediction = data.draw(st.sampled_from(PREDICTIONS), "model prediction")
    seed = data.draw(st.integers(0, 2**16), "seed")
    oracle = builtin_problem(problem, schedule)
    generator = torch.Generator().manual_seed(seed)
    mu = torch.rand(3, oracle.dim, generator=generator, dtype=F64)
    x_T = oracle.sample_marginal(mu, times[0], generator)
    model = oracle.model(prediction)

    results = {
        form: make_sampler(f"mrs-ode-1-{form}", schedule, prediction)
        .sample(model, mu, timesteps=times, x_T=x_T)
        .x
        for form in ("data", "noise")
    }

    scale = 1.0 + float(results["data"].abs().max())
    torch.testing.assert_close(
        results["noise"], results["data"], rtol=0.0, atol=ROUND_OFF_TOL * scale
    )


@pytest.mark.parametrize("solver", sorted(SOLVERS))
@property_settings(PER_SOLVER // 2)
@given(data=st.data())
def test_a_sample_does_not_depend_on_its_batch(solver, data):
    schedule = data.draw(schedule_strategy(), "schedule")
    if solver in NOISE_SDE:  # it blows up on few or uneven steps: its default grid, ≥ 20 steps
        grid = {"steps": data.draw(st.integers(20, 24), "steps")}
    else:
        grid = {"timesteps": data.draw(grid_strategy(schedule), "grid")}
    problem = data.draw(st.sampled_from(["gauss-1d", "gmm-2d-diag", "gmm-3d-full"]), "problem")
    prediction = data.draw(st.sampled_from(PREDICTIONS), "model prediction")
    batch = data.draw(st.integers(2, 4), "batch")
    index = data.draw(st.integers(0, batch - 1), "index")
    seeds = data.draw(st.lists(st.integers(0, 2**16), min_size=batch, max_size=batch), "seeds")
    oracle = builtin_problem(problem, schedule)
    mu = torch.rand(batch, oracle.dim, generator=torch.Generator().manual_seed(seeds[0]), dtype=F64)
    model = oracle.model(prediction)
    sampler = make_sampler(solver, schedule, prediction)

    def generators(chosen):
        return [torch.Generator().manual_seed(seeds[i]) for i in chosen]

    try:
        together = sampler.sample(model, mu, generator=generators(range(batch)), **grid).x
        alone = sampler.sample(
            model, mu[index : index + 1], generator=generators([index]), **grid
        ).x
        reverse = list(reversed(range(batch)))
        reversed_batch = sampler.sample(model, mu[reverse], generator=generators(reverse), **grid).x
    except NonFiniteError as error:  # not the property under test; say which example
        pytest.fail(f"{solver} did not finish: {error}")

    torch.testing.assert_close(together[index : index + 1], alone, rtol=0.0, atol=BATCH_TOL)
    torch.testing.assert_close(reversed_batch.flip(0), together, rtol=0.0, atol=BATCH_TOL)
