"""Teacher-fitted step grids: the fit's contract on exact oracles, grid files, shipped grids."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mrs_numerics import schedules
from mrs_numerics.cli.common import GRID_CHOICES
from mrs_numerics.imaging.photos import HELDOUT_PHOTOS, TRAIN_PHOTOS
from mrs_numerics.models.registry import available_models
from mrs_numerics.models.tuned_grids import (
    TunedGrid,
    parse_grid_file,
    read_grid_file,
    shipped_grids,
    write_grid_file,
)
from mrs_numerics.restoration.restore import GRIDS, choose_sampling
from mrs_numerics.schedules import grids
from mrs_numerics.solvers.base import prior_sample
from mrs_numerics.solvers.factory import make_sampler
from mrs_numerics.solvers.parameterization import convert
from mrs_numerics.solvers.presets import DEFAULT_FEW_STEP_VARIANT, FEW_STEP_VARIANTS
from mrs_numerics.tuning import converged_output, tune_timesteps
from mrs_numerics.tuning.fit import lams_of, logits_of, warped_lams
from mrs_numerics.verification.oracles import GaussianData, gmm_2d_diag

SCHEDULE = schedules.get("cosine")


def _problem(batch=4, dim=3):
    return GaussianData.random(SCHEDULE, batch=batch, dim=dim, variance=0.1, seed=3)


def _counting(model):
    seen = []

    def counted(x, t, mu):
        seen.append(float(t[0]))
        return model(x, t, mu)

    return counted, seen


@pytest.fixture(scope="module")
def tuned_ms3():
    problem = _problem()
    variant = FEW_STEP_VARIANTS["ms3"]
    sampler = variant.make(SCHEDULE, "data")
    grid = tune_timesteps(sampler, problem.data, problem.mu, 4, teacher_steps=100, seed=1)
    return problem, sampler, grid


def test_tuned_grid_contract(tuned_ms3):
    problem, sampler, grid = tuned_ms3
    times = grid.timesteps
    assert times.dtype == torch.float64 and times.dim() == 1
    assert bool((times[1:] < times[:-1]).all())
    own = sampler.timesteps(1)
    assert float(times[0]) == float(own[0]) and float(times[-1]) == float(own[-1])
    assert torch.allclose(grid.lams, SCHEDULE.lam(times))
    model, seen = _counting(problem.data)
    by_grid = sampler.sample(model, problem.mu, timesteps=grid)
    assert by_grid.nfe == len(seen) == grid.nfe <= 4
    # every evaluation time is a step time (no decoupled evaluation times)
    assert set(seen) <= set(times.tolist())
    by_times = sampler.sample(problem.data, problem.mu, timesteps=grid.timesteps)
    assert torch.equal(by_grid.timesteps, by_times.timesteps)
    assert grid.settings["teacher_steps"] == 100 and grid.settings["evaluations"] > 0


def test_tuning_beats_the_uniform_grid_against_the_exact_flow(tuned_ms3):
    problem, sampler, grid = tuned_ms3
    x_T = prior_sample(SCHEDULE, problem.mu, grid.timesteps[0], torch.Generator().manual_seed(1))
    exact = problem.flow(x_T, grid.timesteps[0], grid.timesteps[-1])

    def error(**kwargs):
        return float(
            (sampler.sample(problem.data, problem.mu, x_T=x_T, **kwargs).x - exact).abs().max()
        )

    assert error(timesteps=grid) < 0.5 * error(steps=grid.steps)
    assert grid.fidelity_db > grid.baseline_fidelity_db["calibration"]


def test_the_teacher_is_the_converged_solution():
    problem = _problem()
    sampler = make_sampler("mrs-ode-2-data", SCHEDULE, "data")
    x_T = prior_sample(
        SCHEDULE, problem.mu, sampler.timesteps(1)[0], torch.Generator().manual_seed(0)
    )
    teacher = converged_output(sampler, problem.data, problem.mu, x_T, steps=200)
    times = sampler.timesteps(1)
    exact = problem.flow(x_T, times[0], times[-1])
    assert float((teacher.output - exact).abs().max()) < 1e-6
    assert teacher.accuracy_db > 100


@pytest.mark.parametrize(
    ("solver_id", "prediction", "options", "nfe"),
    [
        ("heun-ode", "noise", {}, 6),
        ("mrs-ode-3-noise", "noise", {}, 5),
        ("mrs-sde-2-data", "data", {}, 4),
        ("posterior", "noise", {}, 3),
    ],
)
def test_every_kind_of_solver_tunes_within_its_budget(solver_id, prediction, options, nfe):
    problem = _problem(batch=3, dim=2)
    model = GaussianDataModel(problem, prediction)
    sampler = make_sampler(solver_id, SCHEDULE, prediction, **options)
    grid = tune_timesteps(
        sampler, model, problem.mu, nfe, teacher_steps=64, max_evaluations=12, seed=2
    )
    counted, seen = _counting(model)
    noise = None
    if sampler.options.noise_fn is None and solver_id in ("mrs-sde-2-data", "posterior"):
        noise = _zero_noise
    result = sampler.sample(counted, problem.mu, timesteps=grid, noise=noise)
    assert result.nfe == len(seen) == grid.nfe <= nfe
    assert math.isfinite(grid.fidelity_db)
    if solver_id in ("mrs-sde-2-data", "posterior"):
        fine = set(grids.timesteps(SCHEDULE, 64).tolist())
        assert set(grid.timesteps.tolist()) <= fine


def _zero_noise(step, t_from, t_to, shape, dtype, device):
    return torch.zeros(shape, dtype=dtype, device=device)


class GaussianDataModel:
    """The exact oracle model in any prediction (through the data prediction)."""

    def __init__(self, problem: GaussianData, prediction: str):
        self.problem, self.prediction = problem, prediction

    def __call__(self, x, t, mu):
        data = self.problem.data(x, t, mu)
        alpha = SCHEDULE.alpha(t).reshape(-1, *([1] * (x.dim() - 1)))
        sigma = SCHEDULE.sigma(t).reshape(-1, *([1] * (x.dim() - 1)))
        return convert(data, "data", self.prediction, x, mu, alpha, sigma, SCHEDULE.max_sigma)


def test_the_softmax_parameterisation_round_trips_and_is_always_valid():
    lams = warped_lams(-3.0, 7.0, 6, 0.5)
    back = lams_of(logits_of(lams), -3.0, 7.0)
    assert torch.allclose(back, lams, atol=1e-12)
    rng = np.random.default_rng(0)
    for _ in range(20):
        grid = lams_of(rng.normal(scale=5.0, size=5), -3.0, 7.0)
        assert float(grid[0]) == -3.0 and float(grid[-1]) == 7.0
        assert bool((grid[1:] > grid[:-1]).all())


@pytest.mark.parametrize("name", sorted(FEW_STEP_VARIANTS))
def test_a_nested_refinement_of_a_tuned_grid_converges_at_the_declared_order(name):
    """Each interval of a tuned 4-call grid split in 2^k equal λ-parts: the error against a
    4096-step third-order solution falls at the variant's declared order (nonlinear oracle,
    λ from −1 to 2 as in the verification studies)."""
    variant = FEW_STEP_VARIANTS[name]
    t_start, t_end = (
        float(SCHEDULE.t_of_lam(torch.tensor(v, dtype=torch.float64))) for v in (-1.0, 2.0)
    )
    oracle = gmm_2d_diag(SCHEDULE)
    model = oracle.model("data")
    mu = torch.randn(6, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    sampler = variant.make(SCHEDULE, "data", t_start=t_start, t_end=t_end)
    grid = tune_timesteps(sampler, model, mu, 4, teacher_steps=64, max_evaluations=15)
    x_T = prior_sample(SCHEDULE, mu, grid.timesteps[0], torch.Generator().manual_seed(5))
    reference = converged_output(sampler, model, mu, x_T, steps=4096).output
    sizes, errors = [], []
    lams = grid.lams
    for level in range(4, 7):
        ramp = torch.linspace(0.0, 1.0, 2**level + 1, dtype=torch.float64)[:-1]
        pieces = [lams[i] + (lams[i + 1] - lams[i]) * ramp for i in range(lams.numel() - 1)]
        fine = torch.cat([*pieces, lams[-1:]])
        times = SCHEDULE.t_of_lam(fine)
        times[0], times[-1] = grid.timesteps[0], grid.timesteps[-1]
        out = sampler.sample(model, mu, timesteps=times, x_T=x_T).x
        sizes.append(float((fine[1:] - fine[:-1]).max()))
        errors.append(float((out - reference).abs().max()))
    slope = np.polyfit(np.log(sizes), np.log(errors), 1)[0]
    assert slope == pytest.approx(variant.order, abs=0.2), (name, slope, errors)


def test_grid_files_round_trip_and_refuse_other_json(tmp_path, tuned_ms3):
    _, _, grid = tuned_ms3
    path = tmp_path / "grids.json"
    write_grid_file(path, [grid])
    (back,) = read_grid_file(path)
    assert torch.equal(back.timesteps, grid.timesteps) and back.to_dict() == grid.to_dict()
    with pytest.raises(ValueError, match="not a tuned-grid file"):
        parse_grid_file('{"grids": []}')
    with pytest.raises(ValueError, match="not JSON"):
        parse_grid_file("{")
    with pytest.raises(ValueError, match="missing field lams"):
        TunedGrid.from_dict({"timesteps": [1.0, 0.5]})


SHIPPED = [(name, grid) for name in sorted(available_models()) for grid in shipped_grids(name)]


@pytest.mark.parametrize(
    ("model", "grid"), SHIPPED, ids=[f"{m}-{g.variant}-{g.nfe}" for m, g in SHIPPED]
)
def test_shipped_grids_are_valid_and_tuned_on_training_photos_only(model, grid):
    info = available_models()[model]
    schedule = schedules.get(info.schedule, max_sigma=info.max_sigma)
    variant = FEW_STEP_VARIANTS[grid.variant]
    assert grid.model == model and grid.solver_id == variant.solver_id
    assert {key: grid.options[key] for key in variant.options} == variant.options
    sampler = variant.make(schedule, info.prediction)
    own = sampler.timesteps(1)
    assert float(grid.timesteps[0]) == float(own[0]) and float(grid.timesteps[-1]) == float(own[-1])
    assert bool((grid.timesteps[1:] < grid.timesteps[:-1]).all())
    assert sampler.calls(grid.steps) == grid.nfe
    photos = set(grid.calibration["photos"])
    assert photos <= set(TRAIN_PHOTOS) and not photos & set(HELDOUT_PHOTOS)
    assert grid.heldout_fidelity_db is not None
    assert grid.heldout_fidelity_db >= grid.baseline_fidelity_db["heldout"] - 0.5


def test_every_data_network_ships_tuned_grids_for_the_default_variant():
    for name, info in available_models().items():
        if info.prediction != "data":
            continue
        nfes = {g.nfe for g in shipped_grids(name) if g.variant == DEFAULT_FEW_STEP_VARIANT}
        assert nfes == {3, 4, 5, 6, 8, 10}, name


def test_restore_chooses_the_shipped_tuned_grid_and_says_so():
    info = available_models()["denoise-data"]
    schedule = schedules.get(info.schedule, max_sigma=info.max_sigma)
    tuned = choose_sampling(schedule, "data", 5, model_name="denoise-data")
    assert tuned.grid == "tuned" and tuned.name == DEFAULT_FEW_STEP_VARIANT and tuned.nfe == 5
    assert "tuned grid for denoise-data at 5 NFE" in tuned.description
    shipped = [g for g in shipped_grids("denoise-data") if g.variant == tuned.name and g.nfe == 5]
    assert torch.equal(tuned.timesteps, shipped[0].timesteps)
    fallback = choose_sampling(schedule, "data", 7, model_name="denoise-data")
    assert fallback.grid == "lambda" and "no tuned grid ships" in fallback.description
    assert fallback.nfe == fallback.sampler.calls(fallback.steps) <= 7
    with pytest.raises(ValueError, match="no tuned grid ships for denoise-data with 'euler-ode'"):
        choose_sampling(schedule, "data", 5, "euler-ode", "tuned", "denoise-data")
    karras = choose_sampling(schedule, "data", 5, grid="karras", model_name="denoise-data")
    assert karras.grid == "karras" and karras.timesteps is None
    baseline = choose_sampling(schedule, "data", 5, "euler-ode", model_name="denoise-data")
    assert baseline.grid == "time" and "its default time grid" in baseline.description
    assert GRID_CHOICES == GRIDS  # the command line restates them to load no torch


def test_the_tune_command_writes_a_grid_file_and_merges(tmp_path, capsys):
    from mrs_numerics.cli import main

    out = tmp_path / "grids.json"
    common = ["tune", "--model", "denoise-data", "--crops", "2", "--crop", "16"]
    common += ["--teacher-steps", "8", "--max-evaluations", "6", "--no-progress", "-o", str(out)]
    assert (
        main([*common, "--sampler", "mrs-ode-2-data", "--no-lower-order-final", "--nfe", "2,3"])
        == 0
    )
    assert main([*common, "--variant", "ms3", "--nfe", "3", "--merge"]) == 0
    grids = read_grid_file(out)
    assert [(g.solver_id, g.variant, g.nfe) for g in grids] == [
        ("mrs-ode-2-data", "", 2),
        ("mrs-ode-2-data", "", 3),
        ("mrs-ode-3-data", "ms3", 3),
    ]
    first = grids[0]
    assert first.options["lower_order_final"] is False and first.model == "denoise-data"
    assert set(first.calibration["photos"]) <= set(TRAIN_PHOTOS) and first.calibration["crops"] == 2
    assert first.heldout_fidelity_db is not None and "heldout" in first.baseline_fidelity_db
    assert first.version and first.settings["teacher_steps"] == 8
    assert "NFE 3: calibration" in capsys.readouterr().out
    assert main([*common, "--sampler", "heun-ode", "--nfe", "1"]) == 2
    assert "needs at least 2 network calls" in capsys.readouterr().err
