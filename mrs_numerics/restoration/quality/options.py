"""What ``benchmark quality`` measures: its options, their checks, and the planned runs."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from mrs_numerics import schedules
from mrs_numerics._checks import integer
from mrs_numerics.imaging import degradations
from mrs_numerics.imaging.metrics import METRIC_BORDER
from mrs_numerics.imaging.photos import HELDOUT_PHOTOS, PHOTOS
from mrs_numerics.models.tuned_grids import read_grid_file
from mrs_numerics.restoration.restore import (
    GRIDS,
    MAX_NFE,
    choose_sampling,
    grid_path,
    named_sampler,
    resolve_device,
)
from mrs_numerics.schedules.grids import SPACINGS
from mrs_numerics.solvers.base import SamplerBase
from mrs_numerics.solvers.factory import make_sampler
from mrs_numerics.solvers.presets import DEFAULT_FEW_STEP_VARIANT, FEW_STEP_VARIANTS
from mrs_numerics.solvers.registry import SOLVERS, solver_info

DEFAULT_NFES = (3, 5, 10, 20, 50, 100, 1000)
"""NFE budgets of the full benchmark."""
DEFAULT_SAMPLERS = (*SOLVERS, DEFAULT_FEW_STEP_VARIANT)
"""What the benchmark compares by default: every solver id on its default spacing, and what
``restore`` runs by default, the default few-step variant on the network's shipped tuned grid
where one ships for the budget (else on uniform λ, as ``restore`` does)."""
QUICK_MAX_NFE = 100
"""``--quick`` keeps the budgets up to this many calls."""
FIDELITY_THRESHOLD_DB = 40.0
"""``nfe_to_fidelity``: the smallest NFE whose mean fidelity reaches this."""
MIN_REFERENCE_STEPS = 1000
"""The references take at least this many steps ..."""
REFERENCE_STEPS_PER_NFE = 4
"""... and at least this many times the largest budget."""
SSIM_WINDOW = 11
"""Side of SSIM's Gaussian window (σ = 1.5): what is left after the border crop must fit it."""
MIN_CROP = 2 * METRIC_BORDER + SSIM_WINDOW
"""Smallest crop the metrics accept."""


@dataclass(frozen=True)
class QualityOptions:
    """What [`run_quality`][mrs_numerics.restoration.quality.run.run_quality] measures.

    See [`quality.run`][mrs_numerics.restoration.quality.run] for the method;
    [`validate`][mrs_numerics.restoration.quality.options.QualityOptions.validate] checks the
    values and [`quick`][mrs_numerics.restoration.quality.options.QualityOptions.quick] gives
    the ``--quick`` settings.

    Attributes:
        task: The restoration task (its shipped network is used).
        samplers: What to compare (default
            [`DEFAULT_SAMPLERS`][mrs_numerics.restoration.quality.options.DEFAULT_SAMPLERS]:
            every id of [`SOLVERS`][mrs_numerics.solvers.registry.SOLVERS] and the default
            few-step variant, what ``restore`` uses): solver ids or few-step variant names
            ([`FEW_STEP_VARIANTS`][mrs_numerics.solvers.presets.FEW_STEP_VARIANTS]), each
            optionally with ``@grid`` (e.g. ``ms3@tuned``, ``ms3@lambda``, ``ms3@grids.json``);
            see [`parse_sampler`][mrs_numerics.restoration.quality.options.parse_sampler].
        nfes: NFE budgets, each in [1, ``MAX_NFE``].
        seeds: How many seeds (seeds 0 … seeds − 1).
        crop: Side of the centre crops of the photos.
        photos: Bundled photos to restore (default: the held-out ones).
        reference_steps: Steps R of the references; None picks
            max([`MIN_REFERENCE_STEPS`][mrs_numerics.restoration.quality.options.MIN_REFERENCE_STEPS],
            [`REFERENCE_STEPS_PER_NFE`][mrs_numerics.restoration.quality.options.REFERENCE_STEPS_PER_NFE]
            × largest budget). Must be even (its half is the accuracy check).
        sde_refinement: How many times the SDE reference refines each merged interval: 1 (no
            accuracy estimate of the SDE reference) or even.
        device: Where the networks and samplers run.
        threshold_db: The fidelity (dB) that ``nfe_to_fidelity`` asks for.
        grid: The grid of entries without ``@grid``: None (default: each sampler's own default
            spacing, uniform λ for the MR Sampler and uniform t for the baselines),
            ``"lambda"``, ``"time"``, ``"karras"``, ``"tuned"`` (the network's shipped tuned
            grids; budgets without one are skipped) or the path of a grid file written by
            ``mrs-numerics tune`` (per entry and budget, its grid for that sampler with the most
            calls within the budget; budgets and samplers without one are skipped).
    """

    task: str = "denoise"
    samplers: tuple[str, ...] = DEFAULT_SAMPLERS
    nfes: tuple[int, ...] = DEFAULT_NFES
    seeds: int = 3
    crop: int = 64
    photos: tuple[str, ...] = HELDOUT_PHOTOS
    reference_steps: int | None = None
    sde_refinement: int = 2
    device: str = "cpu"
    threshold_db: float = FIDELITY_THRESHOLD_DB
    grid: str | None = None

    @classmethod
    def quick(cls, **overrides) -> QualityOptions:
        """The ``--quick`` settings (48² crops, budgets ≤ 100, 2 seeds), then ``overrides``."""
        quick = {
            "crop": 48,
            "seeds": 2,
            "nfes": tuple(n for n in DEFAULT_NFES if n <= QUICK_MAX_NFE),
        }
        return cls(**{**quick, **overrides})

    def reference_step_count(self) -> int:
        """R: steps of the PF-ODE reference, least steps of the SDE reference."""
        if self.reference_steps is not None:
            return self.reference_steps
        return max(MIN_REFERENCE_STEPS, REFERENCE_STEPS_PER_NFE * max(self.nfes))

    def validate(self) -> QualityOptions:
        """Return self, or raise a ValueError that names the bad option."""
        degradations.task(self.task)
        if not self.samplers:
            raise ValueError("no samplers given")
        if self.grid is not None:
            _check_grid(self.grid)
        for sampler in self.samplers:
            parse_sampler(sampler, self.grid)
        _check_unique("samplers", self.samplers)
        if not self.nfes:
            raise ValueError("no NFE budgets given")
        for nfe in self.nfes:
            if integer(nfe, "an NFE budget", least=1) > MAX_NFE:
                raise ValueError(f"NFE budgets must be integers in [1, {MAX_NFE}], got {nfe!r}")
        _check_unique("NFE budgets", self.nfes)
        _check_count("seeds", self.seeds, 1)
        _check_count("crop", self.crop, MIN_CROP)
        if not self.photos:
            raise ValueError("no photos given")
        for photo in self.photos:
            if photo not in PHOTOS:
                raise ValueError(f"unknown photo {photo!r}; bundled photos: {', '.join(PHOTOS)}")
        _check_count("reference_steps", self.reference_step_count(), 2)
        if self.reference_step_count() % 2:
            raise ValueError(
                f"reference_steps must be even (its half is the accuracy check), "
                f"got {self.reference_step_count()}"
            )
        _check_count("sde_refinement", self.sde_refinement, 1)
        if self.sde_refinement > 1 and self.sde_refinement % 2:
            raise ValueError(
                f"sde_refinement must be 1 or even (its half is the accuracy check), "
                f"got {self.sde_refinement}"
            )
        resolve_device(self.device)
        if not math.isfinite(self.threshold_db):
            raise ValueError(f"threshold_db must be finite, got {self.threshold_db}")
        return self


def _check_count(name: str, value, least: int) -> None:
    integer(value, name, least)


def _check_unique(name: str, values: Sequence) -> None:
    repeated = sorted({str(v) for v in values if list(values).count(v) > 1})
    if repeated:
        raise ValueError(f"{name} repeat: {', '.join(repeated)}")


def parse_sampler(entry: str, default_grid: str | None = None) -> tuple[str, str | None]:
    """(solver id or variant name, grid) of a ``samplers`` entry ``NAME[@GRID]``.

    The grid is None where neither the entry nor ``default_grid`` names one: the sampler's own
    default spacing (for a few-step variant on a shipped network: its tuned grid where one
    ships, as ``restore`` chooses). A grid that names no spacing is a grid file's path, read
    now (a malformed file is refused before any network runs).
    """
    name, _, given = str(entry).partition("@")
    grid = given or default_grid
    if name not in FEW_STEP_VARIANTS:
        try:
            solver_info(name)
        except ValueError:
            variants = ", ".join(FEW_STEP_VARIANTS)
            raise ValueError(
                f"unknown sampler {name!r}: neither a solver id ({', '.join(sorted(SOLVERS))}) "
                f"nor a few-step variant ({variants})"
            ) from None
    if grid is not None:
        _check_grid(grid, entry)
    return name, grid


def _check_grid(grid: str, entry: str = "") -> None:
    """Refuse a grid that is neither a name of ``GRIDS`` nor a readable grid file."""
    if grid in GRIDS:
        return
    try:
        read_grid_file(grid_path(grid))
    except ValueError as error:
        where = f" in {entry!r}" if entry else ""
        raise ValueError(f"{error}{where}") from None


@dataclass(frozen=True)
class PlannedRun:
    """One (sampler, budget): its grid, steps and network calls, or why it is skipped.

    Attributes:
        sampler: The ``samplers`` entry (a solver id or variant, with its ``@grid``).
        budget: The NFE budget.
        steps: The steps that fit in the budget (None if skipped).
        nfe: The network calls those steps make (None if skipped).
        reason: Why the run is skipped (empty if it runs).
        solver_id: The solver the entry runs.
        timesteps: The tuned grid's times (None for a spacing).
    """

    sampler: str
    budget: int
    steps: int | None
    nfe: int | None
    reason: str = ""
    solver_id: str = ""
    timesteps: tuple[float, ...] | None = None

    @property
    def kind(self) -> str:
        """``"ode"`` or ``"sde"``."""
        return solver_info(self.solver_id or self.sampler).method


def plan_runs(options: QualityOptions, schedule=None, model_name: str = "") -> list[PlannedRun]:
    """Every (sampler, budget) of ``options``, in order, with skips decided (module docstring).

    ``schedule`` (default: the cosine schedule) and ``model_name`` (for tuned grids) are the
    network's; the steps and calls are counted on the sampler as configured.
    """
    schedule = schedule if schedule is not None else schedules.get("cosine")
    runs = []
    for entry in options.samplers:
        name, grid = parse_sampler(entry, options.grid)
        seen: dict[int, int] = {}
        for budget in sorted(options.nfes):
            try:
                chosen = choose_sampling(schedule, "data", budget, name, grid, model_name)
            except ValueError as error:
                runs.append(PlannedRun(entry, budget, None, None, str(error), _solver(name)))
                continue
            times = None if chosen.timesteps is None else tuple(chosen.timesteps.tolist())
            if times is None and chosen.steps in seen:
                reason = f"same {chosen.steps} steps as the budget of {seen[chosen.steps]}"
                runs.append(PlannedRun(entry, budget, None, None, reason, _solver(name)))
                continue
            seen[chosen.steps] = budget
            solver_id = chosen.sampler.solver_id
            runs.append(PlannedRun(entry, budget, chosen.steps, chosen.nfe, "", solver_id, times))
    return runs


def entry_sampler(entry: str, default_grid: str | None, schedule, prediction: str) -> SamplerBase:
    """The sampler of a ``samplers`` entry (a tuned entry's times come with each run)."""
    name, grid = parse_sampler(entry, default_grid)
    solver_id, options = named_sampler(name)
    if grid in SPACINGS:
        options["grid"] = grid
    return make_sampler(solver_id, schedule, prediction, **options)


def _solver(name: str) -> str:
    return FEW_STEP_VARIANTS[name].solver_id if name in FEW_STEP_VARIANTS else name


def with_overrides(options: QualityOptions, **overrides) -> QualityOptions:
    """``options`` with the non-None ``overrides`` applied."""
    return replace(options, **{k: v for k, v in overrides.items() if v is not None})
