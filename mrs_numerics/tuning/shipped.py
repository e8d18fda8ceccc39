"""Tune a network's grids for one sampler at several budgets, and check them held out.

[`tune_grids`][mrs_numerics.tuning.shipped.tune_grids] is what ``mrs-numerics tune`` runs on a
request checked whole beforehand ([`check_tuning`][mrs_numerics.tuning.request.check_tuning]):
calibration crops (the training photos of a shipped network's task, or the user's own degraded
images: [`calibration`][mrs_numerics.tuning.calibration]), one teacher shared by every budget,
one [`tune_timesteps`][mrs_numerics.tuning.fit.tune_timesteps] per budget; each tuned grid is
then scored on the held-out crops against their own teacher, beside the uniform-λ grid of the
same budget. [`tune_network`][mrs_numerics.tuning.shipped.tune_network] does it for a shipped
network by name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import torch

from mrs_numerics import schedules
from mrs_numerics._errors import InputError
from mrs_numerics.models.network_identity import shipped_network_identity
from mrs_numerics.models.registry import load_model
from mrs_numerics.models.tuned_grids import TunedGrid
from mrs_numerics.schedules.protocol import Schedule
from mrs_numerics.solvers.base import SamplerBase, prior_sample
from mrs_numerics.solvers.engine import NonFiniteError
from mrs_numerics.solvers.factory import make_sampler
from mrs_numerics.solvers.protocols import Model
from mrs_numerics.tuning.calibration import (
    DEFAULT_CROP,
    DEFAULT_CROPS,
    Inputs,
    calibration_inputs,
    folder_calibration_inputs,
    folder_heldout_inputs,
    heldout_inputs,
)
from mrs_numerics.tuning.fit import tune_timesteps
from mrs_numerics.tuning.request import TuningRequest, budgets, check_tuning
from mrs_numerics.tuning.teacher import (
    DEFAULT_TEACHER_STEPS,
    Teacher,
    converged_output,
    fidelity_db,
)

ModelFor = Callable[[Sequence[str]], Model]
"""The model of a batch whose row i comes from image ``names[i]`` (per-image contexts)."""


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

    Raises:
        InputError: For a bad argument, before any network call.
    """
    request = check_tuning(
        nfe=nfes,
        model=model,
        sampler=solver_id,
        crops=crops,
        crop=crop,
        heldout_crop=heldout_crop,
        seed=seed,
        teacher_steps=teacher_steps,
        max_evaluations=max_evaluations,
        no_heldout=not heldout,
    )
    request = replace(request, options={**request.options, **options}, variant=variant)
    net, info = load_model(model)
    schedule = schedules.get(info.schedule, max_sigma=info.max_sigma)
    return tune_grids(
        net, info.prediction, schedule, request, shipped_network_identity(model), progress, log
    )


def tune_grids(
    model: Model,
    prediction: str,
    schedule: Schedule,
    request: TuningRequest,
    network: dict[str, str],
    progress: bool = False,
    log: Callable[[str], None] | None = None,
    model_for: ModelFor | None = None,
) -> list[TunedGrid]:
    """Tuned grids of the network ``model`` for the checked ``request``.

    The sampler is built on the network's own ``schedule`` and the budgets and crop are
    checked against it and the network before the first network call.

    Args:
        model: ``model(x, t, mu)`` returning ``prediction``.
        prediction: What ``model`` returns.
        schedule: The schedule the network was trained on.
        request: The checked request ([`check_tuning`][mrs_numerics.tuning.request.check_tuning]).
        network: The network's identity ``{"name", "sha256"}``, recorded in every grid.
        progress: Progress bars.
        log: Called with one line per phase.
        model_for: The model of a batch of named images (a checkpoint's per-image contexts);
            None: ``model`` for every batch.

    Returns:
        One [`TunedGrid`][mrs_numerics.models.tuned_grids.TunedGrid] per budget, in order.

    Raises:
        InputError: If a budget or the crop does not suit the network and its schedule.
    """
    say = log or (lambda line: None)
    sampler = make_sampler(request.solver_id, schedule, prediction, **request.options)
    budgets(sampler, request.nfes, request.teacher_steps)
    check_crop(model, request.crop, "crop")
    calibration = _calibration(request)
    heldout = _heldout(request)
    if heldout is not None:
        check_crop(model, request.heldout_crop, "heldout crop")
    # per-image models (and their context files) are made now: a missing one fails before a call
    batch_model = model if model_for is None else model_for(calibration.names)
    check_model = model
    if heldout is not None and model_for is not None:
        check_model = model_for(heldout.names)
    torch.manual_seed(request.seed)
    x_T = prior_sample(schedule, calibration.mu, sampler.timesteps(1)[0], _generator(request.seed))
    say(f"{network['name']}: teacher on {request.crops} calibration crops of {request.crop}²")
    teacher = _teacher(sampler, batch_model, calibration.mu, x_T, request, "calibration")
    check = None
    if heldout is not None:
        check = _HeldoutCheck(sampler, check_model, heldout, request)
    results = []
    for nfe in request.nfes:
        grid = tune_timesteps(
            sampler,
            batch_model,
            calibration.mu,
            nfe,
            seed=request.seed,
            teacher=teacher,
            max_evaluations=request.max_evaluations,
            progress=progress,
        )
        grid.model, grid.variant = network["name"], request.variant
        grid.network = dict(network)
        grid.calibration = {**calibration.description, "prior_seed": request.seed}
        if heldout is not None:
            grid.calibration["heldout"] = heldout.description
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


def check_crop(model: Model, side: int, what: str) -> None:
    """Refuse a crop side that the network cannot take, before it is called.

    A network with a ``required_multiple`` (the package's UNet) takes sides that are multiples
    of it; one that reflect-pads inside (IR-SDE/DA-CLIP, ``net.pad_multiple``) takes sides of
    at least its multiple (reflect padding needs more pixels than it adds).
    """
    multiple = int(getattr(model, "required_multiple", 1))
    padded = int(getattr(getattr(model, "net", None), "pad_multiple", 1))
    if side % multiple:
        raise InputError(f"{what} {side} must be a multiple of the network's {multiple}")
    if side < max(multiple, padded):
        raise InputError(
            f"{what} {side} is smaller than the network's size multiple"
            f" {max(multiple, padded)}; give at least that"
        )


class TeacherFailedError(NonFiniteError):
    """The teacher (the converged output every grid is fitted to) did not converge: its run
    diverged or returned NaN/Inf, so the network cannot be tuned on these inputs."""


def _teacher(sampler, model, mu, x_T, request: TuningRequest, which: str) -> Teacher:
    """The converged output, or one line saying that it could not be computed."""
    try:
        return converged_output(sampler, model, mu, x_T, request.teacher_steps, request.seed)
    except NonFiniteError:
        raise TeacherFailedError(
            f"the teacher ({request.teacher_steps} fine steps) diverged or became non-finite"
            f" on the {which} crops: this network does not sample these inputs on its"
            " schedule, so no grid can be fitted; check that the option file is the one the"
            " network was trained with and that the images are the degraded inputs it restores"
        ) from None


def _calibration(request: TuningRequest) -> Inputs:
    if request.calibration is None:
        return calibration_inputs(request.task, request.crops, request.crop, request.seed)
    return folder_calibration_inputs(request.calibration, request.crops, request.crop, request.seed)


def _heldout(request: TuningRequest) -> Inputs | None:
    if not request.check_heldout:
        return None
    if request.heldout is None:
        return heldout_inputs(request.task, request.heldout_crop, request.seed)
    return folder_heldout_inputs(request.heldout, request.heldout_crop)


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class _HeldoutCheck:
    """Fidelity of grids on the held-out crops, against their own teacher."""

    def __init__(self, sampler: SamplerBase, net, inputs: Inputs, request: TuningRequest):
        self.sampler, self.net, self.mu = sampler, net, inputs.mu
        self.x_T = prior_sample(
            sampler.schedule, self.mu, sampler.timesteps(1)[0], _generator(request.seed)
        )
        self.teacher = _teacher(sampler, net, self.mu, self.x_T, request, "held-out")

    def fidelity(self, times: torch.Tensor) -> float:
        noise = self.teacher.noise_for(self.sampler)
        with torch.inference_mode():
            out = self.sampler.sample(self.net, self.mu, timesteps=times, x_T=self.x_T, noise=noise)
        return fidelity_db(out.x, self.teacher.output)
