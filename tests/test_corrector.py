"""The UniC-style corrector in the engine: one call per step, the call at the predicted state.

A corrected run of N steps calls the model N times: at the start, then once per step but the last
at the predictor's (uncorrected) state, whose output is the next step's m0. The last step is the
predictor alone.
"""

import numpy as np
import pytest
import torch

from mrs_numerics import MRSampler, schedules
from mrs_numerics._generated.registry import UPDATES
from mrs_numerics.solvers import make_sampler, solver_info
from mrs_numerics.solvers.engine import NonFiniteError, Step, check_plan
from mrs_numerics.solvers.kernels import linear_step
from mrs_numerics.verification.oracles import GaussianData

SCHEDULE = schedules.constant()
PROBLEM = GaussianData.random(SCHEDULE)


class RecordingModel:
    """The exact data prediction of ``PROBLEM``, recording what it saw and returned."""

    def __init__(self):
        self.seen: list[tuple[float, torch.Tensor]] = []
        self.returned: list[torch.Tensor] = []

    def __call__(self, x, t, mu):
        self.seen.append((float(t[0]), x.clone()))
        out = PROBLEM.data(x, t, mu)
        self.returned.append(out)
        return out


def _corrected(order=2, prediction="data", **options):
    return MRSampler(SCHEDULE, "ode", order, prediction, "data", corrector="unic", **options)


@pytest.mark.parametrize("order", [1, 2, 3])
@pytest.mark.parametrize("steps", [1, 2, 3, 8])
@pytest.mark.parametrize("lower_order_final", [True, False])
def test_a_corrected_run_of_n_steps_calls_the_model_n_times(order, steps, lower_order_final):
    """N calls; order 3 adds the two inside its third-order singlestep start, when it is taken."""
    model = RecordingModel()
    sampler = _corrected(order, lower_order_final=lower_order_final)
    result = sampler.sample(model, PROBLEM.mu, steps=steps)
    started = "singlestep_3 start" in sampler.plan(steps).steps[0].description
    assert started == (order == 3 and steps > 1 and sampler.step_orders(steps)[0] == 3)
    assert result.nfe == len(model.seen) == steps + (2 if started else 0)
    if started and not lower_order_final:
        assert result.nfe == solver_info(sampler.solver_id).nfe(steps)


def test_the_order_4_run_starts_uncorrected_and_its_next_step_calls_at_its_own_state():
    """Step 0 is the third-order singlestep (calls at λ₀ + h/3 and λ₀ + 2h/3), uncorrected."""
    sampler = _corrected(3, lower_order_final=False)
    plan = sampler.plan(6, dtype=torch.float64)
    start, second, *rest = plan.steps
    assert "singlestep_3 start (+2 network calls)" in start.description and start.carry is None
    lams = SCHEDULE.lam(plan.timesteps).tolist()
    h = lams[1] - lams[0]
    stage_lams = [float(SCHEDULE.lam(torch.tensor(s.evaluate.t))) for s in start.stages[:2]]
    np.testing.assert_allclose(stage_lams, [lams[0] + h / 3, lams[0] + 2 * h / 3], atol=1e-6)
    assert second.first is not None and "corrector_3" in second.description
    assert all(s.first is None and "corrector_4" in s.description for s in rest[:-1])
    assert rest[-1].carry is None and "multistep_3" in rest[-1].description
    assert sampler.step_orders(6) == [3, 2, 3, 3, 3, 3]


@pytest.mark.parametrize("order", [1, 2])
def test_only_the_last_step_is_uncorrected(order):
    """Orders 1 and 2 (corrected 2, 3) start by the warm-up: every step but the last corrected."""
    plan = _corrected(order).plan(6, dtype=torch.float64)
    *corrected, last = plan.steps
    assert [len(s.stages) for s in corrected] == [2] * 5 and len(last.stages) == 1
    assert all(s.carry == "predictor" for s in corrected) and last.carry is None
    assert plan.steps[0].first is not None
    assert all(s.first is None for s in plan.steps[1:])
    assert "multistep" in last.description and "corrector" in corrected[-1].description


def test_the_reused_output_is_evaluated_at_the_predicted_uncorrected_state():
    model = RecordingModel()
    sampler = _corrected(1)
    steps = 5
    result = sampler.sample(model, PROBLEM.mu, steps=steps, return_trajectory=True)
    plan = sampler.plan(steps, dtype=torch.float64)
    states = result.trajectory
    for i in range(1, steps):
        t, seen = model.seen[i]
        assert t == plan.steps[i].t_from
        predictor = plan.steps[i - 1].stages[0]
        predicted = linear_step(
            states[i - 1], PROBLEM.mu, [model.returned[i - 1]], predictor.coefficients
        )
        torch.testing.assert_close(seen, predicted, rtol=0, atol=1e-14)
        assert (seen - states[i]).abs().max() > 1e-6, "the corrector changed nothing"
    (stage,) = plan.steps[-1].stages
    last = linear_step(states[-2], PROBLEM.mu, [model.returned[-1]], stage.coefficients)
    torch.testing.assert_close(result.x, last, rtol=0, atol=1e-14)


@pytest.mark.parametrize("steps", [1, 2, 5])
def test_corrected_data_ode_reproduces_the_point_mass_marginal(steps):
    gen = torch.Generator().manual_seed(0)
    mu, m = (torch.randn(4, 3, generator=gen, dtype=torch.float64) for _ in range(2))
    sampler = _corrected(2)
    times = sampler.timesteps(steps)
    eps = torch.randn(mu.shape, generator=gen, dtype=torch.float64)
    x_T = mu + SCHEDULE.alpha(times[0]) * (m - mu) + SCHEDULE.sigma(times[0]) * eps
    result = sampler.sample(lambda x, t, mu_: m, mu, steps=steps, x_T=x_T)
    expected = mu + SCHEDULE.alpha(times[-1]) * (m - mu) + SCHEDULE.sigma(times[-1]) * eps
    torch.testing.assert_close(result.x, expected, rtol=0, atol=1e-13)


def _errors(order, prediction, ns, lam0=-2.0, lam1=3.0):
    t0 = SCHEDULE.t_of_lam(torch.tensor(lam0, dtype=torch.float64))
    x_T = PROBLEM.marginal_sample(t0)
    errors = []
    for n in ns:
        u = torch.linspace(0, 1, n + 1, dtype=torch.float64)
        u = u + 0.3 * u * (1 - u) * torch.sin(7 * u)
        times = SCHEDULE.t_of_lam(lam0 + (lam1 - lam0) * u)
        sampler = _corrected(order, prediction, lower_order_final=False)
        x = sampler.sample(PROBLEM.data, PROBLEM.mu, timesteps=times, x_T=x_T).x
        errors.append(float((x - PROBLEM.flow(x_T, times[0], times[-1])).abs().max()))
    return errors


@pytest.mark.parametrize("prediction", ["data", "noise"])
@pytest.mark.parametrize("order", [1, 2, 3])
def test_the_corrector_adds_one_order_on_a_non_uniform_grid(order, prediction):
    ns = [40, 80, 160]
    errors = _errors(order, prediction, ns)
    slope = -np.polyfit(np.log(ns), np.log(errors), 1)[0]
    assert abs(slope - (order + 1)) < 0.25, errors


def test_a_bad_output_at_a_predicted_state_is_charged_to_the_step_that_called():
    calls = []

    def broken(x, t, mu):
        calls.append(1)
        out = PROBLEM.data(x, t, mu)
        return out * float("nan") if len(calls) == 3 else out

    with pytest.raises(NonFiniteError, match=r"NaN/Inf at step 1 \(t = .*ode_data_corrector_3"):
        _corrected(2).sample(broken, PROBLEM.mu, steps=6)


def test_the_corrector_is_named_in_the_id_and_refused_where_not_derived(monkeypatch):
    sampler = _corrected(2)
    assert sampler.solver_id == "mrs-ode-2-data-unic" and "mrs-ode-2-data-unic" in repr(sampler)
    assert make_sampler("mrs-ode-1-noise-unic", SCHEDULE).corrector == "unic"
    with pytest.raises(ValueError, match="derived and proved for the ODE only"):
        MRSampler(SCHEDULE, "sde", 1, corrector="unic")
    assert make_sampler("mrs-ode-3-data-unic", SCHEDULE).corrector == "unic"
    with monkeypatch.context() as patch:
        patch.delitem(UPDATES, "ode_data_corrector_4")
        with pytest.raises(ValueError, match="not derived for ODE order 3"):
            MRSampler(SCHEDULE, "ode", 3, corrector="unic")
    with pytest.raises(ValueError, match="unknown corrector 'unipc'"):
        MRSampler(SCHEDULE, "ode", 2, corrector="unipc")
    with pytest.raises(ValueError, match="the corrector is part of the solver id"):
        make_sampler("mrs-ode-2-data", SCHEDULE, corrector="unic")


def test_a_plan_that_takes_an_output_nobody_carries_is_refused():
    plan = _corrected(2).plan(4, dtype=torch.float64)
    plan.steps[1] = Step(**{**vars(plan.steps[1]), "carry": "nothing"})
    with pytest.raises(ValueError, match="step 1 carries 'nothing', which none of its stages"):
        check_plan(plan)
    plan.steps[0] = Step(**{**vars(plan.steps[0]), "carry": None})
    with pytest.raises(ValueError, match="step 1 takes its m0 from the previous step"):
        check_plan(plan)
