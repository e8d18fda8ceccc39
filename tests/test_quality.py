"""``mrs-numerics benchmark quality``: schema, fidelity convergence, coupled SDE references,
blow-ups recorded, option errors, and the command end to end."""

from __future__ import annotations

import itertools
import json
import math
import re

import pytest
import torch

from mrs_numerics import schedules
from mrs_numerics.cli import main
from mrs_numerics.imaging.metrics import psnr
from mrs_numerics.imaging.photos import HELDOUT_PHOTOS, center_crop, load_photo
from mrs_numerics.models import ConditionalUNet
from mrs_numerics.restoration.quality.options import (
    MIN_CROP,
    QualityOptions,
    entry_sampler,
    plan_runs,
)
from mrs_numerics.restoration.quality.report import write_report
from mrs_numerics.restoration.quality.run import (
    merged_grid,
    run_quality,
    sde_reference,
    seed_inputs,
)
from mrs_numerics.solvers import SOLVERS, make_sampler
from mrs_numerics.solvers.brownian import CoupledBrownian, family_for, nested_grid

CROP = 20
TINY_UNET = {
    "base_channels": 8,
    "channel_mults": (1, 2, 2),
    "time_embedding_dim": 16,
    "time_scale": 10.0,
}
MRS_ID = re.compile(r"^mrs-(ode|sde)-[1-9]-(data|noise)$")
BASELINE_IDS = {"posterior", "euler-maruyama", "euler-ode", "heun-ode"}


class Restorer:
    """A smooth, bounded data-prediction model near μ: μ + ½ tanh(random UNet).

    A random UNet alone predicts far-off data and its PF-ODE is a poor stand-in for a
    restoration network; this one is nonlinear in x and smooth in t, like a trained one.
    """

    def __init__(self, nan_near: float | None = None):
        self.net = ConditionalUNet.random_init_for_benchmarks(0, **TINY_UNET).eval()
        self.required_multiple = self.net.required_multiple
        self.nan_near = nan_near

    def __call__(self, x, t, mu):
        out = mu + 0.5 * torch.tanh(self.net(x, t, mu))
        if self.nan_near is not None and bool(((t - self.nan_near).abs() < 1e-9).any()):
            return out * math.nan
        return out


class FarOff:
    """A data prediction a thousand data ranges away from μ: every run diverges, finitely."""

    required_multiple = 1

    def __call__(self, x, t, mu):
        return mu + 1e3


class AlwaysNaN:
    required_multiple = 1

    def __call__(self, x, t, mu):
        return torch.full_like(x, math.nan)


@pytest.fixture(scope="module")
def schedule():
    return schedules.cosine()


@pytest.fixture(scope="module")
def model():
    return Restorer()


def _options(**overrides) -> QualityOptions:
    settings = {
        "crop": CROP,
        "seeds": 1,
        "photos": HELDOUT_PHOTOS[:1],
        "reference_steps": 160,
        "sde_refinement": 2,
    }
    return QualityOptions(**{**settings, **overrides})


# ---------------------------------------------------------------------------------------------
# Schema and naming
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mixed_result(model, schedule):
    samplers = ("mrs-ode-3-data", "mrs-sde-2-noise", "posterior", "heun-ode")
    return run_quality(model, "data", schedule, _options(samplers=samplers, nfes=(1, 3, 4, 5)))


def test_json_has_the_documented_rows_and_canonical_sampler_names(mixed_result, tmp_path):
    document = json.loads(json.dumps(mixed_result.as_json(), allow_nan=False))
    samplers = {"mrs-ode-3-data", "mrs-sde-2-noise", "posterior", "heun-ode"}
    assert set(document["nfe_to_fidelity"]) == samplers
    for name in samplers:
        assert MRS_ID.match(name) or name in BASELINE_IDS
        assert name in SOLVERS
    required = {"sampler", "nfe", "psnr", "ssim", "fidelity_db", "seconds", "status"}
    assert len(document["rows"]) == len(samplers) * 4
    for row in document["rows"]:
        assert required <= set(row)
        if row["status"] == "ok":
            assert all(isinstance(row[k], float) for k in ("psnr", "ssim", "fidelity_db"))
            assert row["seconds"] > 0
            assert row["nfe"] <= row["nfe_budget"]
    for kind in ("ode", "sde"):
        assert isinstance(document["metadata"]["references"][kind]["accuracy_db"], float)
    written = write_report(mixed_result, tmp_path)
    assert {p.name for p in written} == {"quality.md", "quality.json", "quality.png", "grid.png"}


def test_nfe_to_fidelity_is_the_smallest_nfe_reaching_the_threshold(mixed_result):
    for sampler, reached in mixed_result.nfe_to_fidelity.items():
        rows = [r for r in mixed_result.rows if r.sampler == sampler and r.status == "ok"]
        passing = [r.nfe for r in rows if r.fidelity_db >= mixed_result.metadata["threshold_db"]]
        assert reached == (min(passing) if passing else None)


def test_budgets_are_spent_as_declared_and_unspendable_ones_skipped():
    samplers = ("heun-ode", "mrs-ode-3-data", "mrs-sde-1-data", "ms3", "mrs-ode-2-data-unic")
    runs = plan_runs(_options(samplers=samplers, nfes=(1, 2, 3, 4, 10)))
    schedule = schedules.get("cosine")
    for run in runs:
        sampler = entry_sampler(run.sampler, None, schedule, "data")
        if run.steps is None:
            assert "at least" in run.reason or "same" in run.reason
            if "at least" in run.reason:
                assert sampler.calls(1) > run.budget
            continue
        # the most steps whose counted calls fit in the budget
        assert run.nfe == sampler.calls(run.steps) <= run.budget
        assert sampler.calls(run.steps + 1) > run.budget
    heun = {run.budget: run for run in runs if run.sampler == "heun-ode"}
    assert heun[1].steps is None and "at least 2" in heun[1].reason
    assert heun[3].steps is None and "same" in heun[3].reason
    ms3 = {run.budget: run for run in runs if run.sampler == "ms3"}
    assert ms3[4].steps == 4  # the warm-up start spends no extra call
    # an entry without @grid keeps the sampler's own default spacing
    assert entry_sampler("heun-ode", None, schedule, "data").options.grid == "time"
    assert entry_sampler("heun-ode@lambda", None, schedule, "data").options.grid == "lambda"


# ---------------------------------------------------------------------------------------------
# Fidelity
# ---------------------------------------------------------------------------------------------


def test_ode_fidelity_rises_with_nfe_and_is_high_at_large_nfe(model, schedule):
    nfes = (3, 10, 40, 160)
    options = _options(samplers=("mrs-ode-2-data",), nfes=nfes, reference_steps=640)
    result = run_quality(model, "data", schedule, options)
    fidelity = [result.row("mrs-ode-2-data", n).fidelity_db for n in nfes]
    assert all(a < b for a, b in itertools.pairwise(fidelity))
    assert fidelity[-1] > 60.0
    assert result.nfe_to_fidelity["mrs-ode-2-data"] is not None


def test_sde_fidelity_is_exact_when_the_reference_grid_is_the_samplers_own(model, schedule):
    # refinement 1 and 16 reference steps: the merged grid of the 4- and 16-step grids and the
    # reference floor is the 16-step grid, so the reference is the 16-step run on the same path
    options = _options(
        samplers=("mrs-sde-1-data",), nfes=(4, 16), sde_refinement=1, reference_steps=16
    )
    result = run_quality(model, "data", schedule, options)
    assert result.metadata["references"]["sde"]["fine_steps"] == 16
    assert result.row("mrs-sde-1-data", 16).fidelity_db > 100.0
    assert (
        result.row("mrs-sde-1-data", 4).fidelity_db < result.row("mrs-sde-1-data", 16).fidelity_db
    )


def test_coupled_sde_runs_approach_the_reference_far_closer_than_independent_noise(model, schedule):
    clean = center_crop(load_photo(HELDOUT_PHOTOS[0]), CROP)[None]
    batch = seed_inputs(clean, "denoise", schedule, 0, model.required_multiple)
    solver = "mrs-sde-2-data"
    times = make_sampler(solver, schedule, "data").timesteps(128)
    fine = nested_grid(schedule, times, 8)
    path = CoupledBrownian(schedule, fine, tuple(batch.mu.shape), seed=0)
    reference = sde_reference(model, "data", schedule, batch.mu, batch.x_start, path, fine)

    def run(**noise):
        sampler = make_sampler(solver, schedule, "data", **noise.pop("options", {}))
        return sampler.sample(model, batch.mu, timesteps=times, x_T=batch.x_start, **noise).x

    coupled = run(options={"noise_fn": path.noise_fn(family_for(solver), times)})
    independent = run(generator=torch.Generator().manual_seed(1))
    assert psnr(coupled[0], reference[0]) > psnr(independent[0], reference[0]) + 10.0


def test_merged_grid_identifies_the_shared_times_of_nested_grids(schedule):
    sampler = make_sampler("mrs-sde-1-data", schedule, "data")
    coarse, fine = sampler.timesteps(3), sampler.timesteps(6)
    assert torch.equal(merged_grid(schedule, [fine, coarse]), fine)
    other = make_sampler("posterior", schedule, "data").timesteps(3)
    assert merged_grid(schedule, [fine, other]).numel() == fine.numel() + other.numel() - 2


# ---------------------------------------------------------------------------------------------
# Blow-ups
# ---------------------------------------------------------------------------------------------


def test_a_run_that_turns_nan_is_recorded_and_the_others_measured(schedule):
    sampler = "mrs-ode-1-data"
    bad_time = float(make_sampler(sampler, schedule, "data").timesteps(3)[1])
    options = _options(samplers=(sampler,), nfes=(3, 5), reference_steps=100)
    result = run_quality(Restorer(nan_near=bad_time), "data", schedule, options)
    blown, fine = result.row(sampler, 3), result.row(sampler, 5)
    assert blown.status == "nonfinite" and blown.fidelity_db is None and blown.psnr is None
    assert "NaN" in blown.reason
    assert fine.status == "ok" and fine.fidelity_db > 20.0


def test_a_model_that_always_returns_nan_gives_a_report_not_an_exception(schedule, tmp_path):
    options = _options(samplers=("mrs-ode-2-data", "posterior"), nfes=(3,))
    result = run_quality(AlwaysNaN(), "noise", schedule, options)
    assert {row.status for row in result.rows} == {"nonfinite"}
    assert set(result.nfe_to_fidelity.values()) == {None}
    assert result.metadata["references"]["ode"]["nonfinite_runs"] == 1
    json.dumps(result.as_json(), allow_nan=False)
    assert (tmp_path / "quality.md") in write_report(result, tmp_path)


def test_a_run_that_diverges_without_overflow_is_recorded_as_diverged(schedule):
    options = _options(samplers=("mrs-ode-1-data", "mrs-sde-1-data"), nfes=(3,))
    result = run_quality(FarOff(), "data", schedule, options)
    assert {row.status for row in result.rows} == {"diverged"}
    assert all(row.psnr is None and "RMS distance" in row.reason for row in result.rows)


# ---------------------------------------------------------------------------------------------
# Options
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"samplers": ("mrs-ode-4-data",)}, "unknown sampler"),
        ({"samplers": ("ms3@sparse",)}, "unknown grid"),
        ({"grid": "cubic"}, "unknown grid"),
        ({"samplers": ()}, "no samplers"),
        ({"samplers": ("posterior", "posterior")}, "repeat"),
        ({"nfes": ()}, "no NFE"),
        ({"nfes": (0,)}, "an NFE budget must be an integer ≥ 1, got 0"),
        ({"nfes": (3.5,)}, r"an NFE budget must be an integer .*got 3\.5 \(float\)"),
        ({"seeds": 0}, "seeds must be an integer"),
        ({"crop": MIN_CROP - 1}, "crop must be an integer"),
        ({"task": "sharpen"}, "unknown task"),
        ({"photos": ("nowhere",)}, "unknown photo"),
        ({"reference_steps": 101}, "must be even"),
        ({"sde_refinement": 3}, "1 or even"),
        ({"device": "warp"}, "unknown device"),
    ],
)
def test_bad_options_are_refused_with_a_clear_message(overrides, message):
    with pytest.raises(ValueError, match=message):
        _options(**overrides).validate()


def test_an_unknown_model_prediction_is_refused(model, schedule):
    with pytest.raises(ValueError, match="unknown prediction"):
        run_quality(model, "epsilon", schedule, _options(samplers=("posterior",), nfes=(3,)))


def test_quick_options_keep_small_crops_and_budgets():
    quick = QualityOptions.quick().validate()
    assert quick.crop <= 64 and max(quick.nfes) <= 100
    assert quick.seeds < QualityOptions().seeds


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def test_benchmark_quality_runs_end_to_end_on_a_tiny_config(tmp_path, capsys):
    out, report = tmp_path / "report", tmp_path / "results.json"
    status = main(
        [
            "benchmark",
            "quality",
            "--task",
            "denoise",
            "--crop",
            str(CROP),
            "--nfe",
            "3,5",
            "--seeds",
            "1",
            "--samplers",
            "mrs-ode-2-data,posterior",
            "--reference-steps",
            "20",
            "--sde-refinement",
            "2",
            "--out",
            str(out),
            "--json",
            str(report),
            "--no-progress",
        ]
    )
    assert status == 0
    printed = capsys.readouterr().out
    assert "| mrs-ode-2-data |" in printed and "| posterior |" in printed
    document = json.loads(report.read_text())
    assert {(row["sampler"], row["nfe_budget"]) for row in document["rows"]} == {
        (s, n) for s in ("mrs-ode-2-data", "posterior") for n in (3, 5)
    }
    assert document["metadata"]["task"] == "denoise"
    for name in ("quality.md", "quality.json", "quality.png", "grid.png"):
        assert (out / name).is_file()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--nfe", "3,x"], "--nfe must be a comma-separated list"),
        (["--samplers", "mrs-ode-9-data"], "unknown sampler"),
        (["--task", "sharpen"], "unknown task"),
        (["--crop", "8"], "crop must be an integer"),
    ],
)
def test_benchmark_quality_reports_bad_input_in_one_line(arguments, message, capsys, tmp_path):
    status = main(["benchmark", "quality", "--out", str(tmp_path), *arguments])
    assert status == 2
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1
