"""Misuse of the diffusers front end: each case ends in a right answer or one clear line."""

from __future__ import annotations

import pytest

pytest.importorskip("diffusers")

import torch
from diffusers import (
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    PNDMScheduler,
    UniPCMultistepScheduler,
)

from mrs_numerics._errors import InputError
from mrs_numerics.solvers.diffusers_scheduler import MRSamplerScheduler

MR = {"schedule": "cosine", "max_sigma": 0.2}


def test_hub_folder_without_mr_schedule_is_refused_then_maps(tmp_path):
    """A saved DPMSolver folder: refused without the MR schedule (naming what it needs);
    with it, 'epsilon' maps to noise (the old 'unknown prediction' failure)."""
    DPMSolverMultistepScheduler().save_pretrained(tmp_path)
    with pytest.raises(InputError, match=r"not an MR process.*schedule=.*max_sigma="):
        MRSamplerScheduler.from_pretrained(tmp_path)
    scheduler = MRSamplerScheduler.from_pretrained(tmp_path, **MR)
    assert scheduler.config["prediction_type"] == "noise"
    assert scheduler.config["solver"] == "mrs-ode-2-data"


def test_v_prediction_refused_unless_max_sigma_is_one():
    with pytest.raises(InputError, match=r"v_prediction.*prediction_type='velocity'"):
        MRSamplerScheduler(prediction_type="v_prediction")
    source = DPMSolverMultistepScheduler(prediction_type="v_prediction")
    with pytest.raises(InputError, match="no single MR meaning"):
        MRSamplerScheduler.from_config(source.config, **MR)
    assert (
        MRSamplerScheduler(prediction_type="v_prediction", max_sigma=1.0).config["prediction_type"]
        == "velocity"
    )


@pytest.mark.parametrize(
    "options, message",
    [
        ({"prediction_type": "flow_prediction"}, "flow matching"),
        ({"prediction_type": "eps"}, "unknown prediction_type 'eps'; allowed"),
        ({"timestep_spacing": "leading"}, "pass timestep_spacing='time'"),
        ({"timestep_spacing": "uniform"}, "unknown timestep_spacing 'uniform'"),
        ({"thresholding": "yes"}, "thresholding must be True or False"),
        ({"clip_x0": 1.0}, r"clip_x0 must be a \(low, high\) pair"),
    ],
)
def test_constructor_refuses_bad_values(options, message):
    with pytest.raises(InputError, match=message):
        MRSamplerScheduler(**options)


def test_unmapped_scheduler_config_is_refused(tmp_path):
    """PNDM (saved, or in memory without _class_name) does not map: one line, listing those
    that do."""
    PNDMScheduler().save_pretrained(tmp_path)
    with pytest.raises(InputError, match=r"PNDMScheduler does not map.*DPMSolverMultistep"):
        MRSamplerScheduler.from_pretrained(tmp_path, **MR)
    with pytest.raises(InputError, match=r"unnamed scheduler.*does not map"):
        MRSamplerScheduler.from_config(PNDMScheduler().config, **MR)


@pytest.mark.parametrize(
    "source, message",
    [
        (
            DPMSolverMultistepScheduler(algorithm_type="sde-dpmsolver++", solver_order=3),
            r"solver_order 3 has no MR Sampler SDE \(its orders: 1, 2\)",
        ),
        (UniPCMultistepScheduler(solver_order=4), "solver_order 4 has no MR Sampler ODE"),
        (DPMSolverMultistepScheduler(euler_at_final=True), "euler_at_final=True cannot map"),
        (DDPMScheduler(variance_type="learned_range"), "learned variance"),
        (DPMSolverMultistepScheduler(use_flow_sigmas=True), "not an MR process"),
        (DPMSolverMultistepScheduler(lambda_min_clipped=-5.1), "set lam_min"),
        (UniPCMultistepScheduler(disable_corrector=[0]), "disable_corrector"),
    ],
    ids=["sde-order-3", "unipc-order-4", "euler_at_final", "learned", "flow", "lambda_min", "dc"],
)
def test_diffusers_options_that_cannot_map_are_refused(source, message):
    with pytest.raises(InputError, match=message):
        MRSamplerScheduler.from_config(source.config, **MR)


def test_unknown_key_of_a_mapped_config_is_refused():
    config = {**DPMSolverMultistepScheduler().config, "future_option": 3}
    config.pop("_use_default_values")
    config["_class_name"] = "DPMSolverMultistepScheduler"
    with pytest.raises(InputError, match="'future_option' has no MR meaning"):
        MRSamplerScheduler.from_config(config, **MR)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"solver_order": 3}, "pass solver="),
        ({"use_karras_sigmas": True}, "pass timestep_spacing="),
        ({"beta_schedule": "linear"}, "schedule=, max_sigma= and eps="),
    ],
)
def test_diffusers_keys_on_an_mr_config_are_refused(overrides, message):
    """diffusers would drop them in silence."""
    config = MRSamplerScheduler().config
    with pytest.raises(InputError, match=f"is a diffusers option.*{message}"):
        MRSamplerScheduler.from_config(config, **overrides)


def test_custom_timesteps_that_include_the_end_or_are_indices_are_refused():
    scheduler = MRSamplerScheduler()
    scheduler.set_timesteps(4)
    grid = scheduler.plan.timesteps
    with pytest.raises(InputError, match=r"not above the run's end t_end.*appends"):
        scheduler.set_timesteps(timesteps=grid)
    with pytest.raises(InputError, match="not diffusers' integer indices"):
        scheduler.set_timesteps(timesteps=[999, 500, 100])
    with pytest.raises(InputError, match="empty"):
        scheduler.set_timesteps(timesteps=[])
    scheduler.set_timesteps(timesteps=grid[:-1])
    assert len(scheduler.timesteps) == 4


@pytest.mark.parametrize(
    "steps, message", [(0, "must be an integer ≥ 1"), (2.5, "must be an integer")]
)
def test_bad_num_inference_steps_is_named(steps, message):
    with pytest.raises(ValueError, match=f"num_inference_steps {message}"):
        MRSamplerScheduler().set_timesteps(steps)


def test_set_begin_index_misuse_is_refused():
    scheduler = MRSamplerScheduler(solver="mrs-ode-3-data")
    with pytest.raises(InputError, match="set_timesteps first"):
        scheduler.set_begin_index(1)
    scheduler.set_timesteps(5)
    with pytest.raises(InputError, match=r"call inside a step.*start at the entries \[0, 2,"):
        scheduler.set_begin_index(1)  # the order-3 start's midpoint
    with pytest.raises(InputError, match="past the last"):
        scheduler.set_begin_index(6)
    x = torch.zeros(1, 2)
    scheduler.step(x, scheduler.timesteps[0], x, mu=x)
    with pytest.raises(InputError, match="during a run"):
        scheduler.set_begin_index(2)


def test_first_step_at_a_time_that_is_no_start_is_refused():
    scheduler = MRSamplerScheduler()
    scheduler.set_timesteps(4)
    x = torch.zeros(1, 2)
    with pytest.raises(InputError, match=r"step 0 expects the call .* partial start"):
        scheduler.step(x, 0.123, x, mu=x)
    scheduler.set_begin_index(2)
    with pytest.raises(InputError, match=r"starts at timesteps\[2\]"):
        scheduler.step(x, scheduler.timesteps[1], x, mu=x)


def test_add_noise_misuse_is_refused():
    scheduler = MRSamplerScheduler()
    x = torch.zeros(4, 2)
    with pytest.raises(InputError, match="needs the condition mu"):
        scheduler.add_noise(x, x, 0.5)
    with pytest.raises(InputError, match=r"one time or one per sample \(4\), got 2"):
        scheduler.add_noise(x, x, [0.5, 0.4], mu=x)
    with pytest.raises(InputError, match="not diffusers' integer indices"):
        scheduler.add_noise(x, x, torch.tensor([999]), mu=x)
    with pytest.raises(InputError, match="noise must be a tensor shaped like"):
        scheduler.add_noise(x, torch.zeros(4, 3), 0.5, mu=x)
