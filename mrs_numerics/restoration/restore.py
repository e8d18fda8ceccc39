"""Restore degraded images with a network and any registered sampler, under an NFE budget.

``restore_shipped(images, task="denoise", nfe=10)`` does it with the package's own network for a
task (see ``mrs-numerics models``);
``restore(images, model, model_prediction, schedule, sampler=…, nfe=…)`` pads the degraded
images (the MR process's mean μ) to the network's multiple, samples from the prior μ + σ_T ξ to
the clean end with ``sampler``, clamps to [0, 1] and crops back. The budget is counted in
network calls (NFE) and converted to steps with the solver registry's declared cost.

**Sampler and grid** ([`choose_sampling`][mrs_numerics.restoration.restore.choose_sampling]).
``sampler`` is a solver id or the name of a few-step variant
([`FEW_STEP_VARIANTS`][mrs_numerics.solvers.presets.FEW_STEP_VARIANTS]); by default the variant
[`DEFAULT_FEW_STEP_VARIANT`][mrs_numerics.solvers.presets.DEFAULT_FEW_STEP_VARIANT]. ``grid`` is
``"tuned"`` (a grid fitted to the network's converged output, shipped for a variant, a shipped
network and a budget), ``"lambda"``, ``"time"``, ``"karras"``, or the path of a grid file written
by ``mrs-numerics tune`` (its entry for the sampler with the most calls within the budget). By
default a variant on a shipped network uses its tuned grid where one ships for the budget, else
the uniform-λ grid; the choice made is reported in
[`Sampling.description`][mrs_numerics.restoration.restore.Sampling]. Every tuned grid is bound to
the run by [`bind_grid`][mrs_numerics.models.grid_binding.bind_grid]: on another schedule it is
re-mapped through λ (with a ``GridTransferWarning``) or refused, a sampler that needs more calls
on it than the budget is refused, and another sampler or network warns.

**Inputs** ([`check_images`][mrs_numerics.restoration.restore.check_images]) are refused before
anything runs when they cannot be degraded images in [0, 1]: integer tensors, NaN/Inf, a 0–255
image stored as floats, a wrong shape. **Large images** are restored in overlapping tiles under
a memory budget ([`plan_tiles`][mrs_numerics.restoration.restore.plan_tiles], mechanics in
[`tiling`][mrs_numerics.restoration.tiling]); each tile is one whole run whose noise is the crop
of the untiled run's. ``progress=True`` shows tqdm bars over the tiles and the steps. A
diverged run raises ``DivergenceError`` unless ``allow_divergence``.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from mrs_numerics import schedules
from mrs_numerics._checks import integer
from mrs_numerics._errors import InputError
from mrs_numerics.imaging.padding import pad_to_multiple, unpad
from mrs_numerics.models.grid_binding import BoundGrid, bind_grid
from mrs_numerics.models.network_identity import network_identity
from mrs_numerics.models.registry import shipped_network
from mrs_numerics.models.tuned_grids import (
    TunedGrid,
    entry_label,
    read_grid_file,
    select_grid,
    shipped_grid,
    shipped_grids,
)
from mrs_numerics.restoration.tiling import (
    Tile,
    choose_tile,
    default_overlap,
    estimate_bytes,
    network_bytes_per_pixel,
    parse_memory,
    sample_in_tiles,
    tile_grid,
)
from mrs_numerics.schedules.grids import SPACINGS
from mrs_numerics.solvers.base import SamplerBase, prior_sample
from mrs_numerics.solvers.configuration import describe_configuration, sampler_from_configuration
from mrs_numerics.solvers.factory import make_sampler
from mrs_numerics.solvers.presets import DEFAULT_FEW_STEP_VARIANT, FEW_STEP_VARIANTS
from mrs_numerics.solvers.registry import SOLVERS, solver_info

LOGGER = logging.getLogger(__name__)

GRIDS = ("tuned", *SPACINGS)
"""Grid names of ``restore`` and ``benchmark quality``: a shipped tuned grid or a spacing (any
other ``grid`` is the path of a grid file)."""

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
    nfe = integer(nfe, "the NFE budget")
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


@dataclass
class Sampling:
    """A sampler, its grid for one budget, and a sentence saying what was chosen.

    Attributes:
        sampler: The sampler (options applied).
        name: The solver id or variant name asked for.
        grid: ``"tuned"``, ``"lambda"``, ``"time"`` or ``"karras"``.
        steps: The steps of the run.
        nfe: The network calls of the run.
        timesteps: The tuned grid's times (None for a spacing).
        description: What was chosen, e.g. "ms3 (mrs-ode-3-data, start=warmup, …) on its
            tuned grid for denoise-data at 5 NFE (held-out fidelity 47.1 dB)".
    """

    sampler: SamplerBase
    name: str
    grid: str
    steps: int
    nfe: int
    timesteps: torch.Tensor | None
    description: str

    def sample(self, model, mu, **kwargs):
        """``sampler.sample`` on this grid."""
        if self.timesteps is not None:
            return self.sampler.sample(model, mu, timesteps=self.timesteps, **kwargs)
        return self.sampler.sample(model, mu, steps=self.steps, **kwargs)

    def prior(self, mu: torch.Tensor, generator) -> torch.Tensor:
        """The start ``sample`` draws itself: μ + σ(t_0)·ξ at this grid's first time."""
        steps = None if self.timesteps is not None else self.steps
        plan = self.sampler.prepare(steps, self.timesteps, mu.device, mu.dtype)
        return prior_sample(self.sampler.schedule, mu, plan.timesteps[0], generator)


def choose_sampling(
    schedule,
    model_prediction: str,
    nfe: int,
    sampler: str | None = None,
    grid: str | os.PathLike | TunedGrid | None = None,
    model_name: str = "",
    network: dict | None = None,
) -> Sampling:
    """The sampler and grid of a run under a budget of ``nfe`` network calls.

    Every tuned grid (shipped, from a grid file, or given) is bound to the run by
    [`bind_grid`][mrs_numerics.models.grid_binding.bind_grid]: re-mapped through λ or refused
    on another schedule, refused when the sampler that runs needs more than ``nfe`` calls on
    it (counted on its plan), warned about for another sampler or network.

    Args:
        schedule: The network's schedule.
        model_prediction: What the network returns.
        nfe: The budget of network calls.
        sampler: A solver id or a few-step variant's name; None for the default variant (with
            a grid file or a ``TunedGrid``: the sampler the grid was tuned for).
        grid: ``"tuned"``, a spacing, a grid file's path (the entry for ``sampler`` with the
            most calls within ``nfe`` is used, see
            [`select_grid`][mrs_numerics.models.tuned_grids.select_grid]), a
            [`TunedGrid`][mrs_numerics.models.tuned_grids.TunedGrid], or None: the tuned grid
            where one ships for (``model_name``, variant, ``nfe``), else the sampler's own
            default spacing (uniform λ for the MR Sampler, uniform t for the baselines).
        model_name: The shipped network's name ("" for another network: no shipped grids).
        network: The network's identity ``{"name", "sha256"}`` (default: the shipped
            network's, from ``model_name``; None for an unknown network).

    Raises:
        InputError: For an unknown sampler or grid, a budget too small for one step,
            ``grid="tuned"`` where no tuned grid ships (the message lists those that do), a
            grid file that is malformed or has no entry that fits (the message lists what it
            holds), or a tuned grid refused by ``bind_grid``.
    """
    nfe = integer(nfe, "the NFE budget")
    if nfe > MAX_NFE:
        raise InputError(f"an NFE budget of {nfe} is absurd; at most {MAX_NFE} network calls")
    if network is None and model_name:
        network = network_identity(model_name)
    if isinstance(grid, TunedGrid):
        return _on_tuned_grid(schedule, model_prediction, nfe, sampler, grid, network, "")
    if grid is not None and grid not in GRIDS:
        path = grid_path(grid)
        index, entry = select_grid(
            read_grid_file(path), sampler, nfe, str(path), DEFAULT_FEW_STEP_VARIANT
        )
        where = f"grid file {path} entry {index} ({entry_label(entry)}, NFE {entry.nfe})"
        return _on_tuned_grid(schedule, model_prediction, nfe, sampler, entry, network, where)
    name = DEFAULT_FEW_STEP_VARIANT if sampler is None else sampler
    solver_id, options = named_sampler(name)
    label = name if name == solver_id else f"{name} ({_settings(solver_id, options)})"
    tuned = shipped_grid(model_name, name, nfe) if model_name else None
    if grid == "tuned" and tuned is None:
        raise InputError(_no_tuned_grid(model_name, name, nfe))
    if tuned is not None and grid in (None, "tuned"):
        built = make_sampler(solver_id, schedule, model_prediction, **options)
        where = f"its tuned grid for {model_name} at {nfe} NFE"
        bound = bind_grid(tuned, schedule, built, network, nfe, where)
        return _tuned_sampling(built, name, label, tuned, bound, where)
    if grid is not None:
        options["grid"] = grid
    built = make_sampler(solver_id, schedule, model_prediction, **options)
    steps, calls = built.steps_within(nfe)
    spacing = built.options.grid
    why = ""
    if grid is None and name in FEW_STEP_VARIANTS:
        why = f" (no tuned grid ships for {model_name or 'this network'} at {nfe} NFE)"
    own = "its default " if grid is None else "the "
    return Sampling(
        built, name, spacing, steps, calls, None, f"{label} on {own}{spacing} grid{why}"
    )


def grid_path(grid: str | os.PathLike) -> Path:
    """The path of a ``grid`` that names no spacing: a grid file (refused if it is not one)."""
    path = Path(grid)
    if not path.exists() and path.suffix != ".json" and os.sep not in str(grid):
        raise InputError(
            f"unknown grid {str(grid)!r}; allowed: {', '.join(GRIDS)}, or the path of a grid "
            "file written by mrs-numerics tune"
        )
    if not path.is_file():
        why = "is a folder" if path.is_dir() else "does not exist"
        raise InputError(f"grid file {path} {why}")
    return path


def _on_tuned_grid(schedule, prediction, nfe, sampler, grid, network, where) -> Sampling:
    """The run on a given tuned grid: ``sampler`` (None: the one the grid was tuned for)."""
    if sampler is None:
        built = sampler_from_configuration(grid.sampler, schedule, prediction)
        name = entry_label(grid)
        label = describe_configuration(grid.sampler)
        label = label if name == grid.solver_id else f"{name} = {label}"
    else:
        solver_id, options = named_sampler(sampler)
        built = make_sampler(solver_id, schedule, prediction, **options)
        name = sampler
        label = name if name == solver_id else f"{name} ({_settings(solver_id, options)})"
    where = where or f"the given tuned grid ({entry_label(grid)}, NFE {grid.nfe})"
    bound = bind_grid(grid, schedule, built, network, nfe, where)
    return _tuned_sampling(built, name, label, grid, bound, where)


def _tuned_sampling(built, name, label, grid: TunedGrid, bound: BoundGrid, where) -> Sampling:
    heldout = grid.heldout_fidelity_db
    measured = "" if heldout is None else f" (held-out fidelity {heldout:.1f} dB)"
    remapped = ", re-mapped through λ to this schedule" if bound.remapped else ""
    return Sampling(
        built,
        name,
        "tuned",
        bound.timesteps.numel() - 1,
        bound.calls,
        bound.timesteps,
        f"{label} on {where}{measured}{remapped}",
    )


def named_sampler(name: str) -> tuple[str, dict]:
    """(solver id, options) of a solver id or a few-step variant's name."""
    if name in FEW_STEP_VARIANTS:
        variant = FEW_STEP_VARIANTS[name]
        return variant.solver_id, dict(variant.options)
    try:
        solver_info(name)
    except ValueError:
        raise InputError(
            f"unknown sampler {name!r}; known solvers: {', '.join(sorted(SOLVERS))}; few-step "
            f"variants: {', '.join(FEW_STEP_VARIANTS)}"
        ) from None
    return name, {}


def check_request(
    sampler: str | None, nfe: int, grid: str | os.PathLike | TunedGrid | None = None
) -> None:
    """Refuse an unknown sampler or grid, or a budget it cannot spend, before any network loads.

    A grid file is read and its entry for (``sampler``, ``nfe``) chosen now; binding it to the
    network's schedule waits for the network (still before any network call).
    """
    if isinstance(grid, TunedGrid) or (grid is not None and grid not in GRIDS):
        if sampler is not None:
            named_sampler(sampler)
        if not isinstance(grid, TunedGrid):
            path = grid_path(grid)
            select_grid(read_grid_file(path), sampler, nfe, str(path), DEFAULT_FEW_STEP_VARIANT)
        nfe = integer(nfe, "the NFE budget", least=1)
        if nfe > MAX_NFE:
            raise InputError(f"an NFE budget of {nfe} is absurd; at most {MAX_NFE} network calls")
        return
    choose_sampling(
        schedules.get("cosine"), "noise", nfe, sampler, "lambda" if grid == "tuned" else grid
    )


def _settings(solver_id: str, options: dict) -> str:
    return ", ".join([solver_id, *(f"{key}={value}" for key, value in options.items())])


def _no_tuned_grid(model_name: str, name: str, nfe: int) -> str:
    if not model_name:
        return "tuned grids ship only for the shipped networks; pass model_name or another grid"
    shipped = sorted({(g.variant, g.nfe) for g in shipped_grids(model_name) if g.variant})
    listing = ", ".join(f"{v}@{n}" for v, n in shipped) or "none"
    return (
        f"no tuned grid ships for {model_name} with {name!r} at {nfe} NFE; shipped "
        f"(variant@NFE): {listing}"
    )


INPUT_RANGE = (-1.0, 2.0)
"""The values [`restore`][mrs_numerics.restoration.restore.restore] accepts. Images are in
[0, 1]; a degraded image may overshoot by its noise (the denoise task's μ is not clipped, and
the shipped networks were trained on it so), so values in [−1, 2] pass and anything beyond is
refused as a mistake, such as a 0–255 image in float."""


def check_images(images: torch.Tensor, channels: int = 3) -> None:
    """Refuse what cannot be a batch of degraded images in [0, 1], saying how to fix it.

    Raises:
        TypeError: If ``images`` is not a tensor.
        ValueError: For a shape other than ``[C, H, W]`` or ``[B, C, H, W]`` with ``channels``
            channels (the message shows the shape given), an integer or boolean dtype (convert
            with ``images.float() / 255``), NaN/Inf values, or values outside
            [`INPUT_RANGE`][mrs_numerics.restoration.restore.INPUT_RANGE].
    """
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor, got {type(images).__name__}")
    shape = tuple(images.shape)
    if images.ndim not in (3, 4) or shape[-3] != channels or images.numel() == 0:
        raise ValueError(
            f"need a [{channels}, H, W] image or [B, {channels}, H, W] batch, got a tensor of "
            f"shape {shape}"
        )
    if not images.is_floating_point():
        scale = {torch.uint8: " / 255", torch.bool: ""}.get(images.dtype, " / its maximum")
        raise ValueError(
            f"images are {images.dtype}, but restore needs floats in [0, 1]: convert with "
            f"images.float(){scale} (8-bit images: images.float() / 255)"
        )
    bad = int((~torch.isfinite(images)).sum())
    if bad:
        raise ValueError(f"images contain {bad} NaN/Inf values; restore needs finite values")
    low, high = (float(v) for v in torch.aminmax(images))
    if low < INPUT_RANGE[0] or high > INPUT_RANGE[1]:
        raise ValueError(
            f"images have values in [{low:.4g}, {high:.4g}], but restore needs images in [0, 1]"
            f" (noise may overshoot to [{INPUT_RANGE[0]:g}, {INPUT_RANGE[1]:g}]): divide a "
            "0–255 image by 255 (images.float() / 255)"
        )


def plan_tiles(
    shape: Sequence[int],
    model: Callable,
    tile: int | None = None,
    overlap: int | None = None,
    max_memory: int | str | None = None,
) -> list[Tile] | None:
    """The tiles a restoration of images of ``shape`` runs in; None for one untiled run.

    Args:
        shape: ``[C, H, W]`` or ``[B, C, H, W]`` (unpadded).
        model: The network (its ``required_multiple`` and memory estimate, see
            [`network_bytes_per_pixel`][mrs_numerics.restoration.tiling.network_bytes_per_pixel]).
        tile: The tile side in pixels (rounded down to the network's multiple); None or 0:
            none, unless ``max_memory`` asks for tiles.
        overlap: Pixels shared by neighbouring tiles (rounded up to the multiple); None: a
            quarter of the tile.
        max_memory: A memory budget (bytes, or text such as ``"4GB"``); without ``tile``, the
            largest tile whose estimated peak fits (no tiles if the whole image fits).

    Raises:
        ValueError: For a negative tile or overlap, an overlap not shorter than the tile, or
            a budget too small for the smallest tile.
    """
    if tile is not None:
        tile = integer(tile, "the tile side (pixels)", least=0)
    if overlap is not None:
        overlap = integer(overlap, "the tile overlap (pixels)")
    if overlap is not None and overlap < 0:
        raise ValueError(f"the tile overlap must be a number of pixels ≥ 0, got {overlap!r}")
    multiple = getattr(model, "required_multiple", 1)
    batch = shape[0] if len(shape) == 4 else 1
    height, width = (-(-size // multiple) * multiple for size in shape[-2:])
    budget = None if max_memory is None else parse_memory(max_memory)
    if tile:
        side: int | None = max(tile // multiple, 1) * multiple
    elif budget is not None:
        side = choose_tile(height, width, batch, multiple, network_bytes_per_pixel(model), budget)
    else:
        side = None
    if side is None or (side >= height and side >= width):
        return None
    overlap = default_overlap(side, multiple) if overlap is None else overlap
    tiles = tile_grid(height, width, side, overlap, multiple)
    _warn_over_budget(tiles, batch, height * width, model, budget)
    LOGGER.info("restore in %d tiles of %d px (overlap ≥ %d px)", len(tiles), side, overlap)
    return tiles


def _warn_over_budget(tiles: list[Tile], batch: int, pixels: int, model, budget) -> None:
    """Log a warning where an explicit tile's estimated peak exceeds the memory budget."""
    if budget is None:
        return
    need = estimate_bytes(batch, pixels, math.prod(tiles[0].size), network_bytes_per_pixel(model))
    if need > budget:
        LOGGER.warning(
            "tiles of %s px need about %.0f MB, above the budget of %.0f MB",
            tiles[0].size,
            need / 1e6,
            budget / 1e6,
        )


def restore(
    images: torch.Tensor,
    model: Callable,
    model_prediction: str,
    task_schedule,
    sampler: str | None = None,
    nfe: int = 10,
    seed: int | Sequence[int] = 0,
    device: str | torch.device = "cpu",
    grid: str | os.PathLike | TunedGrid | None = None,
    model_name: str = "",
    tile: int | None = None,
    overlap: int | None = None,
    max_memory: int | str | None = None,
    progress: bool = False,
    allow_divergence: bool = False,
    network: dict | None = None,
) -> torch.Tensor:
    """Restored images, shaped like ``images`` (``[3, H, W]`` or ``[B, 3, H, W]``, any H, W).

    The images are reflect-padded to the model's ``required_multiple`` (1 if it has none),
    sampled from the prior μ + σ_T ξ to the clean end, clamped to [0, 1], cropped back and
    returned on the device of ``images``. With ``tile`` or ``max_memory`` a large image is
    restored in overlapping tiles, each a whole run, blended with a raised-cosine window; the
    prior and SDE noise of every tile are crops of the untiled run's draws (see
    [`tiling`][mrs_numerics.restoration.tiling]).

    Args:
        images: The degraded images μ, floats in [0, 1] (see
            [`check_images`][mrs_numerics.restoration.restore.check_images]).
        model: ``model(x, t, mu)``, the network; an ``nn.Module`` is moved to ``device`` in
            place.
        model_prediction: What ``model`` returns: ``"noise"``, ``"data"``, ``"velocity"`` or
            ``"score"``.
        task_schedule: The schedule the network was trained on.
        sampler: A solver id of [`SOLVERS`][mrs_numerics.solvers.registry.SOLVERS] or a
            few-step variant's name; None for the default variant.
        nfe: The budget of network calls (the most steps whose run fits in it); each tile
            makes that many.
        seed: Seeds the generator of the prior noise and any SDE noise; a list with one seed
            per image gives each image its own generator (see
            [`generators`][mrs_numerics.restoration.restore.generators]), so that an image's
            noise does not depend on which images share its batch.
        device: Where the sampling runs (and the generators live).
        grid: ``"tuned"``, ``"lambda"``, ``"time"``, ``"karras"``, the path of a grid file
            (written by ``mrs-numerics tune``), a
            [`TunedGrid`][mrs_numerics.models.tuned_grids.TunedGrid], or None (see
            [`choose_sampling`][mrs_numerics.restoration.restore.choose_sampling]: a tuned grid
            is bound to the run, re-mapped or refused on another schedule, refused when the
            sampler needs more than ``nfe`` calls on it).
        model_name: The shipped network's name, for its tuned grids.
        tile: Restore in tiles of this side (pixels); None or 0: untiled unless
            ``max_memory`` asks for tiles (see
            [`plan_tiles`][mrs_numerics.restoration.restore.plan_tiles]).
        overlap: Pixels neighbouring tiles share; None: a quarter of the tile.
        max_memory: A memory budget (bytes or text such as ``"4GB"``): without ``tile``, the
            largest tile whose estimated peak fits is used.
        progress: Show tqdm bars over the tiles and the steps (with their ETA).
        allow_divergence: Return a diverged run's image (clamped, after the sampler's
            ``RuntimeWarning``) instead of raising ``DivergenceError``.
        network: The network's identity ``{"name", "sha256"}``, compared with a tuned grid's
            (default: the shipped network's of ``model_name``; None: unknown).

    Returns:
        The restored images.

    Raises:
        ValueError: If the budget is too small for ``sampler`` (or above ``MAX_NFE``), the
            images are refused by ``check_images``, the tiling is impossible or ``device`` is
            unavailable.
        TypeError: If ``images`` is not a tensor.
        NonFiniteError: If the model returned NaN/Inf or (``DivergenceError``) the sampler
            diverged, unless ``allow_divergence``.
    """
    chosen = choose_sampling(
        task_schedule, model_prediction, nfe, sampler, grid, model_name, network
    )
    LOGGER.info("restore: %s", chosen.description)
    check_images(images, getattr(model, "channels", 3))
    tiles = plan_tiles(images.shape, model, tile, overlap, max_memory)
    device = resolve_device(device)
    if isinstance(model, torch.nn.Module):
        model.to(device)
    mu, size = _padded(images, device, getattr(model, "required_multiple", 1))
    generator = generators(seed, mu.shape[0], device)
    options = {"progress": progress, "allow_divergence": allow_divergence}
    with torch.inference_mode():
        if tiles is None:
            restored = chosen.sample(model, mu, generator=generator, **options).x
        else:
            restored = _sample_tiled(chosen, model, mu, generator, tiles, options)
    return _picture(restored, size, images)


def generators(
    seed: int | Sequence[int], batch: int, device: torch.device
) -> torch.Generator | list[torch.Generator]:
    """The generator(s) of a run on ``batch`` images: one seeded with ``seed``, or one per image.

    With one seed the batch draws from one stream (image i's noise then depends on the images
    before it); with a list, image i draws only from ``torch.Generator(device).manual_seed(
    seed[i])`` (row i of every draw, see [`randn`][mrs_numerics.solvers.randomness.randn]).

    Raises:
        ValueError: If a list does not hold one integer seed per image.
    """
    if isinstance(seed, Sequence) and not isinstance(seed, str):
        if len(seed) != batch:
            raise ValueError(f"got {len(seed)} seeds for {batch} image(s); give one per image")
        return [torch.Generator(device).manual_seed(integer(s, "a seed")) for s in seed]
    return torch.Generator(device).manual_seed(integer(seed, "the seed"))


def _padded(images: torch.Tensor, device: torch.device, multiple: int):
    """(μ, (H, W)): the images as a float32 batch on ``device``, padded to ``multiple``."""
    batch = images.unsqueeze(0) if images.ndim == 3 else images
    return pad_to_multiple(batch.to(device, torch.float32), multiple)


def _sample_tiled(chosen: Sampling, model, mu, generator, tiles, options) -> torch.Tensor:
    """One run per tile from the crops of one full-size prior and noise stream, blended."""
    x_start = chosen.prior(mu, generator)

    def run_tile(mu_tile, x_tile, noise):
        return chosen.sample(model, mu_tile, x_T=x_tile, noise=noise, **options).x

    return sample_in_tiles(run_tile, mu, x_start, generator, tiles, options["progress"])


def _picture(restored: torch.Tensor, size: tuple[int, int], images: torch.Tensor):
    """Cropped back, clamped to [0, 1], on the device of ``images`` and shaped like them.

    The sampler never returns a NaN/Inf state, and a diverged one only with
    ``allow_divergence`` (after its warning), so clamping hides no failure.
    """
    picture = unpad(restored, size).clamp(0.0, 1.0).to(images.device)
    return picture[0] if images.ndim == 3 else picture


def restore_shipped(
    images: torch.Tensor,
    task: str | None = None,
    model: str | None = None,
    sampler: str | None = None,
    nfe: int = 10,
    seed: int | Sequence[int] = 0,
    device: str | torch.device = "cpu",
    grid: str | os.PathLike | TunedGrid | None = None,
    tile: int | None = None,
    overlap: int | None = None,
    max_memory: int | str | None = None,
    progress: bool = False,
    allow_divergence: bool = False,
) -> torch.Tensor:
    """[`restore`][mrs_numerics.restoration.restore.restore] with a shipped network.

    The network's own prediction type, schedule and tuned grids are used (see ``mrs-numerics
    models``).

    Args:
        images: Degraded images in [0, 1], ``[3, H, W]`` or ``[B, 3, H, W]``.
        task: ``"denoise"``, ``"lowlight"`` or ``"blur"``: use the task's best shipped network
            (data-prediction networks first).
        model: A shipped network by name (e.g. ``"denoise-data"``); with ``task`` too, it must
            restore that task. Give ``task``, ``model`` or both.
        sampler: A solver id or a few-step variant's name; None for the default variant.
        nfe: The budget of network calls.
        seed: Seeds the prior noise and any SDE noise (a list: one seed per image).
        device: Where the sampling runs.
        grid: ``"tuned"``, ``"lambda"``, ``"time"``, ``"karras"``, a grid file's path, a
            ``TunedGrid``, or None (the tuned grid where one ships for the budget, else uniform
            in λ).
        tile: Restore in tiles of this side (pixels); None or 0: untiled unless ``max_memory``
            asks for tiles.
        overlap: Pixels neighbouring tiles share; None: a quarter of the tile.
        max_memory: A memory budget (bytes or text such as ``"4GB"``).
        progress: Show tqdm bars over the tiles and the steps.
        allow_divergence: Return a diverged run's image (after a ``RuntimeWarning``) instead of
            raising ``DivergenceError``.

    Returns:
        The restored images, shaped like ``images``.

    Raises:
        ValueError: If neither ``task`` nor ``model`` is given, they disagree, or an argument
            of [`restore`][mrs_numerics.restoration.restore.restore] is refused.
    """
    check_images(images)
    name, net, info = shipped_network(task, model)
    schedule = schedules.get(info.schedule, max_sigma=info.max_sigma)
    return restore(
        images,
        net,
        info.prediction,
        schedule,
        sampler,
        nfe,
        seed,
        device,
        grid,
        name,
        tile=tile,
        overlap=overlap,
        max_memory=max_memory,
        progress=progress,
        allow_divergence=allow_divergence,
    )
