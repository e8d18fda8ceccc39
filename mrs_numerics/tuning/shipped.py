"""Tune a shipped network's grids for one sampler at several budgets, and check them held out.

[`tune_network`][mrs_numerics.tuning.shipped.tune_network] is what ``mrs-numerics tune`` runs:
calibration crops from the training photos only
([`calibration_inputs`][mrs_numerics.tuning.calibration.calibration_inputs]), one teacher shared
by every budget, one [`tune_timesteps`][mrs_numerics.tuning.fit.tune_timesteps] per budget; each
tuned grid is then scored on the held-out crops against their own teacher, beside the uniform-λ
grid of the same budget.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from mrs_numerics import schedules
from mrs_numerics.models.registry import load_model
from mrs_numerics.models.tuned_grids import TunedGrid
from mrs_numerics.solvers.base import SamplerBase, prior_sample
from mrs_numerics.solvers.factory import make_sampler
from mrs_numerics.tuning.calibration import (
    DEFAULT_CROP,
    DEFAULT_CROPS,
    calibration_inputs,
    heldout_inputs,
)
from mrs_numerics.tuning.fit import tune_timesteps
from mrs_numerics.tuning.teacher import DEFAULT_TEACHER_STEPS, converged_output, fidelity_db


def tune_network(
    model: str,
    solver_id: str,
    options: dict,
    nfes: Sequence[int],
    *,
    variant: str = "",
    crops: int = DEFAULT_CROPS,
    crop: int = DEFAULT_CROP,
    seed: int = 0,
    teacher_steps: int = DEFAULT_TEACHER_STEPS,
    max_evaluations: int | None = None,
    heldout: bool = True,
    heldout_crop: int | None = None,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> list[TunedGrid]:
    """Tuned grids of the shipped network ``model`` for ``solver_id`` with ``options``.

    Args:
        model: A shipped network's name.
        solver_id: The solver to tune.
        options: Its sampler options (e.g. ``{"start": "warmup"}``).
        nfes: The budgets of network calls, one grid each.
        variant: The named few-step variant these settings are, if any (recorded).
        crops: Calibration crops (training photos only).
        crop: Side of the calibration and held-out crops.
        seed: Seeds the crops, their degradation, the prior samples (and any Brownian path).
        teacher_steps: Fine steps of the converged outputs.
        max_evaluations: Runs per fit (default: the fit's own).
        heldout: Also score every grid on the held-out crops.
        heldout_crop: Side of the held-out crops (default ``crop``).
        progress: Progress bars.
        log: Called with one line per phase.

    Returns:
        One [`TunedGrid`][mrs_numerics.models.tuned_grids.TunedGrid] per budget, in order.
    """
    say = log or (lambda line: None)
    torch.manual_seed(seed)
    net, info = load_model(model)
    schedule = schedules.get(info.schedule, max_sigma=info.max_sigma)
    sampler = make_sampler(solver_id, schedule, info.prediction, **options)
    calibration = calibration_inputs(info.task, crops, crop, seed)
    x_T = prior_sample(schedule, calibration.mu, sampler.timesteps(1)[0], _generator(seed))
    say(f"{model}: teacher on {crops} calibration crops of {crop}²")
    teacher = converged_output(sampler, net, calibration.mu, x_T, teacher_steps, seed)
    check = None
    if heldout:
        side = crop if heldout_crop is None else heldout_crop
        check = _HeldoutCheck(sampler, net, info.task, side, seed, teacher_steps)
    results = []
    for nfe in nfes:
        grid = tune_timesteps(
            sampler,
            net,
            calibration.mu,
            nfe,
            seed=seed,
            teacher=teacher,
            max_evaluations=max_evaluations,
            progress=progress,
        )
        grid.model, grid.variant = model, variant
        grid.calibration = {**calibration.description, "prior_seed": seed}
        line = (
            f"  NFE {grid.nfe}: calibration {grid.fidelity_db:.2f} dB "
            f"(uniform λ {grid.baseline_fidelity_db['calibration']:.2f} dB)"
        )
        if check is not None:
            grid.heldout_fidelity_db = check.fidelity(grid.timesteps)
            uniform = check.fidelity(sampler.timesteps(grid.steps))
            grid.baseline_fidelity_db["heldout"] = uniform
            line += f", held-out {grid.heldout_fidelity_db:.2f} dB (uniform λ {uniform:.2f} dB)"
        say(line + f", {grid.settings['evaluations']} runs, {grid.settings['seconds']} s")
        results.append(grid)
    return results


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class _HeldoutCheck:
    """Fidelity of grids on the held-out crops, against their own teacher."""

    def __init__(self, sampler: SamplerBase, net, task: str, crop: int, seed: int, steps: int):
        inputs = heldout_inputs(task, crop, seed)
        self.sampler, self.net, self.mu = sampler, net, inputs.mu
        self.x_T = prior_sample(
            sampler.schedule, self.mu, sampler.timesteps(1)[0], _generator(seed)
        )
        self.teacher = converged_output(sampler, net, self.mu, self.x_T, steps, seed)

    def fidelity(self, times: torch.Tensor) -> float:
        noise = self.teacher.noise_for(self.sampler)
        with torch.inference_mode():
            out = self.sampler.sample(self.net, self.mu, timesteps=times, x_T=self.x_T, noise=noise)
        return fidelity_db(out.x, self.teacher.output)
