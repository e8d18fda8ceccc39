"""Restore degraded images with a network and any registered sampler, under an NFE budget.

``restore_shipped(images, task="denoise", nfe=10)`` does it with the package's own network for a
task (see ``mrs-numerics models``);
``restore(images, model, model_prediction, schedule, sampler=…, nfe=…)`` pads the degraded
images (the MR process's mean μ) to the network's multiple, samples from the prior μ + σ_T ξ to
the clean end with ``sampler``, clamps to [0, 1] and crops back. The budget is counted in
network calls (NFE) and converted to steps with the solver registry's declared cost.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from mrs_numerics import schedules
from mrs_numerics.imaging.padding import pad_to_multiple, unpad
from mrs_numerics.models.registry import shipped_network
from mrs_numerics.solvers.factory import make_sampler
from mrs_numerics.solvers.registry import solver_info

MAX_NFE = 10_000
"""Budgets above this many network calls are refused as a mistake."""


def minimum_nfe(sampler: str) -> int:
    """The fewest network calls one run of ``sampler`` can make (one step and its start)."""
    info = solver_info(sampler)
    return info.start_extra_nfe + info.nfe_per_step


def steps_for_nfe(sampler: str, nfe: int) -> int:
    """The most steps of ``sampler`` that fit in ``nfe`` network calls.

    steps = (nfe − start calls) // calls per step, e.g. ``mrs-ode-3-data`` spends one extra call
    on its start (nfe = 10 → 9 steps) and ``heun-ode`` two calls per step (nfe = 10 → 5 steps).
    """
    info = solver_info(sampler)
    if isinstance(nfe, bool) or not isinstance(nfe, int):
        raise ValueError(f"the NFE budget must be an integer, got {nfe!r}")
    if nfe > MAX_NFE:
        raise ValueError(f"an NFE budget of {nfe} is absurd; at most {MAX_NFE} network calls")
    least = minimum_nfe(sampler)
    if nfe < least:
        raise ValueError(
            f"{sampler} needs at least {least} network calls ({info.nfe_per_step} per step"
            f" + {info.start_extra_nfe} for its start), got an NFE budget of {nfe}"
        )
    return (nfe - info.start_extra_nfe) // info.nfe_per_step


def nfe_for_steps(sampler: str, steps: int) -> int:
    """The network calls ``steps`` steps of ``sampler`` (default options) make."""
    return solver_info(sampler).nfe(steps)


def resolve_device(name: str | torch.device) -> torch.device:
    """``name`` as a torch device, with a clear error where it is malformed or absent."""
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise ValueError(f"unknown device {str(name)!r}: {error}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(name)!r} asked for, but CUDA is not available here")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {str(name)!r} asked for, but MPS is not available here")
    return device


def restore(
    images: torch.Tensor,
    model: Callable,
    model_prediction: str,
    task_schedule,
    sampler: str = "mrs-ode-2-data",
    nfe: int = 10,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """Restored images, shaped like ``images`` (``[3, H, W]`` or ``[B, 3, H, W]``, any H, W).

    The images are reflect-padded to the model's ``required_multiple`` (1 if it has none),
    sampled from the prior μ + σ_T ξ to the clean end, clamped to [0, 1], cropped back and
    returned on the device of ``images``.

    Args:
        images: The degraded images μ, in [0, 1].
        model: ``model(x, t, mu)``, the network; an ``nn.Module`` is moved to ``device`` in
            place.
        model_prediction: What ``model`` returns: ``"noise"``, ``"data"``, ``"velocity"`` or
            ``"score"``.
        task_schedule: The schedule the network was trained on.
        sampler: A solver id of [`SOLVERS`][mrs_numerics.solvers.registry.SOLVERS].
        nfe: The budget of network calls, converted to steps with
            [`steps_for_nfe`][mrs_numerics.restoration.restore.steps_for_nfe].
        seed: Seeds the generator of the prior noise and any SDE noise.
        device: Where the sampling runs (and the generator lives).

    Returns:
        The restored images.

    Raises:
        ValueError: If the budget is too small for ``sampler`` (or above ``MAX_NFE``), the
            images are not ``[3, H, W]`` or ``[B, 3, H, W]``, or ``device`` is unavailable.
    """
    steps = steps_for_nfe(sampler, nfe)
    solver = make_sampler(sampler, task_schedule, model_prediction)
    if images.ndim not in (3, 4):
        raise ValueError(f"need a [C, H, W] image or [B, C, H, W] batch, got {tuple(images.shape)}")
    device = resolve_device(device)
    if isinstance(model, torch.nn.Module):
        model.to(device)
    batch = images.unsqueeze(0) if images.ndim == 3 else images
    mu, size = pad_to_multiple(
        batch.to(device, torch.float32), getattr(model, "required_multiple", 1)
    )
    generator = torch.Generator(device).manual_seed(seed)
    with torch.inference_mode():
        result = solver.sample(model, mu, steps=steps, generator=generator)
    restored = unpad(result.x, size).clamp(0.0, 1.0).to(images.device)
    return restored[0] if images.ndim == 3 else restored


def restore_shipped(
    images: torch.Tensor,
    task: str | None = None,
    model: str | None = None,
    sampler: str = "mrs-ode-2-data",
    nfe: int = 10,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """[`restore`][mrs_numerics.restoration.restore.restore] with a shipped network.

    The network's own prediction type and schedule are used (see ``mrs-numerics models``).

    Args:
        images: Degraded images in [0, 1], ``[3, H, W]`` or ``[B, 3, H, W]``.
        task: ``"denoise"``, ``"lowlight"`` or ``"blur"``: use the task's best shipped network
            (data-prediction networks first).
        model: A shipped network by name (e.g. ``"denoise-data"``); with ``task`` too, it must
            restore that task. Give ``task``, ``model`` or both.
        sampler: A solver id of [`SOLVERS`][mrs_numerics.solvers.registry.SOLVERS].
        nfe: The budget of network calls.
        seed: Seeds the prior noise and any SDE noise.
        device: Where the sampling runs.

    Returns:
        The restored images, shaped like ``images``.

    Raises:
        ValueError: If neither ``task`` nor ``model`` is given, they disagree, or an argument
            of [`restore`][mrs_numerics.restoration.restore.restore] is refused.
    """
    _, net, info = shipped_network(task, model)
    schedule = schedules.get(info.schedule, max_sigma=info.max_sigma)
    return restore(images, net, info.prediction, schedule, sampler, nfe, seed, device)
