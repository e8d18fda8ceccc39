"""A tuning run's request, checked whole before the first network call.

[`check_tuning`][mrs_numerics.tuning.request.check_tuning] is what ``mrs-numerics tune`` calls
first: it checks the network named, the sampler or variant and its options, every NFE budget
(a positive integer that the sampler can spend, in a grid coarser than its teacher), the counts
and sizes of the calibration and held-out crops, the folders of the user's own images, and the
grid file to write (see [`output`][mrs_numerics.tuning.output]). A mistake found after the
teacher's long computation would lose it; every rule that can be checked without the network is
checked here, and the rules that need the loaded network (the crop against the network's own
size multiple) are checked by [`tune_grids`][mrs_numerics.tuning.shipped.tune_grids] before its
first call. Keyword names are those of the ``tune`` command's flags, so errors that name a
parameter to fix (``mrs_numerics._errors.InputError``) read as flags there.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mrs_numerics import schedules
from mrs_numerics._checks import integer
from mrs_numerics._errors import Advice, InputError
from mrs_numerics.imaging.photos import HELDOUT_PHOTOS, TRAIN_PHOTOS, load_photo
from mrs_numerics.models.registry import available_model
from mrs_numerics.solvers.base import SamplerBase
from mrs_numerics.solvers.factory import make_sampler
from mrs_numerics.solvers.presets import FEW_STEP_VARIANTS, few_step_variant
from mrs_numerics.solvers.registry import solver_info
from mrs_numerics.tuning.calibration import (
    DEFAULT_CROP,
    DEFAULT_CROPS,
    FolderImages,
    folder_images,
    split_folder,
)
from mrs_numerics.tuning.output import check_grid_output
from mrs_numerics.tuning.teacher import DEFAULT_TEACHER_STEPS, teacher_step_count

MR_OPTIONS = ("start", "lower_order_final")
"""The MR Sampler options the ``tune`` command sets (the baselines have neither)."""

CHECKPOINT_ONLY = ("arch", "round_time", "text_context", "image_context")
"""Options that describe a checkpoint's network and mean nothing without one."""


@dataclass(frozen=True)
class TuningRequest:
    """A checked tuning request: what to tune, on what, and where the grids go.

    Attributes:
        solver_id: The solver to tune.
        options: Its sampler options.
        variant: The named few-step variant, if one was asked for ("" otherwise).
        nfes: The budgets of network calls, one grid each.
        steps: The steps of each budget's grid (the most the sampler runs within it).
        crops: Calibration crops.
        crop: Side of the calibration crops.
        heldout_crop: Side of the held-out crops.
        seed: Seeds the crops, the prior samples and any Brownian path.
        teacher_steps: Fine steps of the converged outputs.
        max_evaluations: Runs per fit (None: the fit's default).
        task: The shipped network's task, whose photos calibrate it ("" for a checkpoint).
        calibration: The user's calibration images (None: the task's training photos).
        heldout: The user's held-out images (None: the task's held-out photos, if checked).
        check_heldout: Whether grids are scored held out.
        out: The grid file to write (None: nothing is written).
        overwrite: Replace an existing grid file.
        merge: Keep the other grids of an existing grid file.
    """

    solver_id: str
    options: dict[str, Any]
    variant: str
    nfes: tuple[int, ...]
    steps: tuple[int, ...]
    crops: int = DEFAULT_CROPS
    crop: int = DEFAULT_CROP
    heldout_crop: int = DEFAULT_CROP
    seed: int = 0
    teacher_steps: int = DEFAULT_TEACHER_STEPS
    max_evaluations: int | None = None
    task: str = ""
    calibration: FolderImages | None = None
    heldout: FolderImages | None = None
    check_heldout: bool = True
    out: Path | None = None
    overwrite: bool = False
    merge: bool = False


def check_tuning(
    *,
    nfe: Sequence[int],
    model: str | None = None,
    checkpoint: str | os.PathLike | None = None,
    config: str | os.PathLike | None = None,
    arch: str | None = None,
    round_time: bool = False,
    text_context: str | os.PathLike | None = None,
    image_context: str | os.PathLike | None = None,
    sampler: str | None = None,
    variant: str | None = None,
    start: str | None = None,
    lower_order_final: bool | None = None,
    crops: int = DEFAULT_CROPS,
    crop: int = DEFAULT_CROP,
    heldout_crop: int | None = None,
    seed: int = 0,
    teacher_steps: int = DEFAULT_TEACHER_STEPS,
    max_evaluations: int | None = None,
    calibration: str | os.PathLike | None = None,
    heldout: str | os.PathLike | None = None,
    heldout_fraction: float | None = None,
    no_heldout: bool = False,
    out: str | os.PathLike | None = None,
    overwrite: bool = False,
    merge: bool = False,
) -> TuningRequest:
    """The checked request of a tuning run; one clear error for the first thing wrong.

    Args:
        nfe: The budgets of network calls, one grid each (positive integers, each once).
        model: A shipped network (or give ``checkpoint``).
        checkpoint: A user's IR-SDE/DA-CLIP weights (with ``config``); checked to exist here,
            loaded by the caller (``restoration.checkpoint.checkpoint_network``).
        config: The checkpoint's option file.
        arch: The checkpoint's architecture (checked by the loader).
        round_time: Pass integer indices to the checkpoint's network (checkpoints only).
        text_context: DA-CLIP's degradation embedding (checkpoints only).
        image_context: DA-CLIP's image embedding (checkpoints only).
        sampler: A solver id (or give ``variant``).
        variant: A named few-step variant.
        start: The MR Sampler's start (``"singlestep"`` or ``"warmup"``).
        lower_order_final: The MR Sampler's lower-order final steps.
        crops: Calibration crops (≥ 1).
        crop: Side of the calibration crops (≥ 1, within every calibration image).
        heldout_crop: Side of the held-out crops (default ``crop``).
        seed: Seeds the crops, the priors and any Brownian path.
        teacher_steps: Fine steps of the converged output: even, ≥ 2, and more than the steps
            of every budget's grid (a grid cannot be finer than its teacher).
        max_evaluations: Runs per fit (≥ 1; None: the fit's default).
        calibration: A folder of the user's degraded images (needed for a checkpoint).
        heldout: A folder of held-out degraded images.
        heldout_fraction: Hold out this fraction of the calibration folder's images instead.
        no_heldout: Skip the held-out check.
        out: The grid file to write (``.json``; None: nothing is written).
        overwrite: Replace an existing ``out``.
        merge: Keep the other grids of an existing grid file ``out``.

    Returns:
        The [`TuningRequest`][mrs_numerics.tuning.request.TuningRequest].

    Raises:
        InputError: For the first input that is wrong, naming it and what is allowed.
    """
    task, schedule, prediction = _network(
        model, checkpoint, config, arch, round_time, text_context, image_context
    )
    solver_id, options, name = _sampler_settings(sampler, variant, start, lower_order_final)
    try:
        built = make_sampler(solver_id, schedule, prediction, **options)
    except (TypeError, ValueError) as error:
        raise InputError(f"sampler {solver_id} with {options}: {error}") from None
    teacher = teacher_step_count(teacher_steps)
    nfes, steps = budgets(built, nfe, teacher)
    crops = integer(crops, "crops (calibration crops)", least=1)
    crop = integer(crop, "crop (side of the calibration crops)", least=1)
    side = crop if heldout_crop is None else integer(heldout_crop, "heldout crop", least=1)
    seed = integer(seed, "seed")
    if max_evaluations is not None:
        max_evaluations = integer(max_evaluations, "max evaluations (runs per fit)", least=1)
    calibration_images, heldout_images, check = _sources(
        task, calibration, heldout, heldout_fraction, no_heldout, crop, side, seed
    )
    target = None if out is None else check_grid_output(out, overwrite=overwrite, merge=merge)
    return TuningRequest(
        solver_id=solver_id,
        options=options,
        variant=name,
        nfes=nfes,
        steps=steps,
        crops=crops,
        crop=crop,
        heldout_crop=side,
        seed=seed,
        teacher_steps=teacher,
        max_evaluations=max_evaluations,
        task=task,
        calibration=calibration_images,
        heldout=heldout_images,
        check_heldout=check,
        out=target,
        overwrite=overwrite,
        merge=merge,
    )


def budgets(
    sampler: SamplerBase, nfe: Sequence[int], teacher_steps: int
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(NFEs, steps): each budget and the steps of its grid, checked against ``sampler``.

    Every budget is a positive integer that the sampler can spend on at least one step, given
    once, whose grid is coarser than the teacher's ``teacher_steps`` steps and differs from the
    other budgets' grids (two budgets that give the same grid would write the same record).

    Raises:
        InputError: For the first budget that breaks a rule.
    """
    if isinstance(nfe, (str, bytes)) or not isinstance(nfe, Sequence) or not nfe:
        raise InputError(f"NFE must be one or more budgets of network calls, got {nfe!r}")
    info = solver_info(sampler.solver_id)
    nfes: list[int] = []
    steps: list[int] = []
    seen: dict[int, int] = {}
    for value in nfe:
        try:
            budget = integer(value, "NFE (a budget of network calls)", least=1)
        except ValueError as error:
            raise InputError(str(error)) from None
        if budget in nfes:
            raise InputError(f"NFE {budget} is given twice; give each budget once")
        # a budget far beyond the teacher is refused before its plan is built (and counted)
        rough = (budget - info.start_extra_nfe) // info.nfe_per_step
        if rough > teacher_steps:
            raise InputError(_finer(sampler, budget, f"about {rough}", teacher_steps))
        try:
            count, calls = sampler.steps_within(budget)
        except ValueError as error:
            raise InputError(str(error)) from None
        if count >= teacher_steps:
            raise InputError(_finer(sampler, budget, str(count), teacher_steps))
        if count in seen:
            raise InputError(
                f"NFE {seen[count]} and {budget} both give {count} steps ({calls} network calls)"
                f" with {sampler.solver_id}: the same grid twice; give one of them"
            )
        seen[count] = budget
        nfes.append(budget)
        steps.append(count)
    return tuple(nfes), tuple(steps)


def _finer(sampler: SamplerBase, budget: int, count: str, teacher_steps: int) -> str:
    return (
        f"NFE {budget} gives {sampler.solver_id} {count} steps, not fewer than the teacher's"
        f" {teacher_steps}: a tuned grid must be coarser than its teacher; give a smaller NFE"
        " or more teacher steps"
    )


def _network(model, checkpoint, config, arch, round_time, text_context, image_context):
    """(task, reference schedule, prediction) of the network named; refuses two or none."""
    if checkpoint is None:
        given = {
            "an option file": config,
            "an architecture": arch,
            "integer times": round_time or None,
            "a text context": text_context,
            "an image context": image_context,
        }
        stray = [name for name, value in given.items() if value is not None]
        if stray:
            raise InputError(
                f"{' and '.join(stray)} given, which describe a checkpoint's network, but no"
                " checkpoint",
                advice=Advice("checkpoint", "FILE", "(an IR-SDE/DA-CLIP .pth) with them"),
            )
        if model is None:
            raise InputError(
                "no network: name a shipped network, or give a checkpoint with its option file",
                advice=Advice("model", "NAME", "(see mrs-numerics models)"),
            )
        info = available_model(model)
        return info.task, schedules.get(info.schedule, max_sigma=info.max_sigma), info.prediction
    if model is not None:
        raise InputError(f"a checkpoint and the shipped model {model!r} given: give one network")
    _existing_file(checkpoint, "checkpoint")
    if config is None:
        raise InputError(
            "a checkpoint needs the option file of its training run (its network_G and sde"
            " sections)",
            advice=Advice("config", "FILE", "(the option YAML or JSON)"),
        )
    _existing_file(config, "option file")
    # the checkpoint's own schedule is read with its weights; the budgets do not depend on it
    return "", schedules.get("cosine"), "noise"


def _existing_file(path, what: str) -> None:
    if not Path(path).is_file():
        why = "is a folder" if Path(path).is_dir() else "does not exist"
        raise InputError(f"{what} {path} {why}; give the file")


def _sampler_settings(sampler, variant, start, lower_order_final):
    """(solver id, options, variant name) of a sampler id or a named variant, with overrides."""
    if (sampler is None) == (variant is None):
        raise InputError(
            "give one sampler: a solver id or a named few-step variant"
            + (f", not both ({sampler!r}, {variant!r})" if sampler is not None else ""),
            advice=None if sampler is not None else Advice("variant", "NAME", "(e.g. ms3)"),
        )
    if variant is not None:
        chosen = few_step_variant(variant)
        solver_id, options, name = chosen.solver_id, dict(chosen.options), chosen.name
    else:
        if sampler in FEW_STEP_VARIANTS:
            raise InputError(
                f"{sampler!r} is a few-step variant, not a solver id",
                advice=Advice("variant", sampler, "to tune it"),
            )
        solver_info(sampler)
        solver_id, options, name = sampler, {}, ""
    overrides = {"start": start, "lower_order_final": lower_order_final}
    overrides = {key: value for key, value in overrides.items() if value is not None}
    if overrides and solver_info(solver_id).family != "mrs":
        words = " or ".join(key.replace("_", "-") for key in overrides)
        raise InputError(
            f"{solver_id} is a baseline sampler: it has no {words} option (an option of the MR"
            " Sampler, mrs-* ids)"
        )
    options.update(overrides)
    return solver_id, options, name


def _sources(task, calibration, heldout, fraction, no_heldout, crop, side, seed):
    """(calibration images, held-out images, whether to check held out), checked."""
    if fraction is not None and not (isinstance(fraction, (int, float)) and 0 < fraction < 1):
        raise InputError(f"heldout fraction must be a number in (0, 1), got {fraction!r}")
    chosen = [
        name for name, value in (("folder", heldout), ("fraction", fraction)) if value is not None
    ]
    if no_heldout and chosen:
        raise InputError(
            f"the held-out check is skipped and given a {chosen[0]}: skip it or give it"
        )
    if len(chosen) == 2:
        raise InputError("a held-out folder and a held-out fraction given: give one")
    if calibration is None:
        if fraction is not None:
            raise InputError(
                "a held-out fraction splits the calibration folder, and none is given",
                advice=Advice("calibration", "DIR", "(your degraded images)"),
            )
        if not task:
            raise InputError(
                "a checkpoint is calibrated on your own degraded images (the package degrades"
                " only for its own tasks)",
                advice=Advice("calibration", "DIR", "(a folder of PNG/JPEG inputs)"),
            )
        _photos_fit(TRAIN_PHOTOS, crop, "crop", "training photo")
        held = None
        if heldout is not None:
            held = folder_images(heldout, "held-out folder", side)
        elif not no_heldout:
            _photos_fit(HELDOUT_PHOTOS, side, "heldout crop", "held-out photo")
        return None, held, not no_heldout
    images = folder_images(calibration, "calibration folder", crop)
    if heldout is not None:
        held = folder_images(heldout, "held-out folder", side)
        if {path.resolve() for path in held.files} & {path.resolve() for path in images.files}:
            raise InputError(
                "the held-out folder shares images with the calibration folder: a held-out"
                " check needs images the fit has not seen"
            )
        return images, held, True
    if fraction is not None:
        images, held = split_folder(images, fraction, seed)
        folder_images(held.folder, "held-out images", side, held.files)
        return images, held, True
    if no_heldout:
        return images, None, False
    raise InputError(
        "with your own calibration folder the held-out check needs your own held-out images:"
        " a held-out folder, a held-out fraction of the calibration folder, or no check",
        advice=Advice("heldout_fraction", 0.25, "to hold out a quarter of the images"),
    )


def _photos_fit(photos: Sequence[str], side: int, what: str, kind: str) -> None:
    """Refuse a crop side larger than one of the bundled ``photos``."""
    sizes = {name: tuple(load_photo(name).shape[-2:]) for name in photos}
    largest = min(min(size) for size in sizes.values())
    for name, (height, width) in sizes.items():
        if side > min(height, width):
            raise InputError(
                f"{what} {side} exceeds the {kind} {name!r} ({height}×{width}); allowed: 1 to"
                f" {largest} pixels"
            )
