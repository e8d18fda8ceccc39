"""Tuned step grids: the grid file format, its parser, and the grids that ship with the networks.

A tuned grid is a decreasing float64 time grid t_0 > … > t_N fitted (by
[`tune_timesteps`][mrs_numerics.tuning.fit.tune_timesteps]) so that one sampler, with its options,
reaches one network's converged output in few network calls. It is only meaningful for the
schedule, sampler and network it was fitted for; the record says which, and how well it did,
and [`bind_grid`][mrs_numerics.models.grid_binding.bind_grid] checks it against the run that
uses it.

A **grid file** is JSON::

    {"format": "mrs-numerics tuned grids", "format_version": 2, "grids": [ENTRY, ...]}

and every entry is a [`TunedGrid`][mrs_numerics.models.tuned_grids.TunedGrid] as a dict:

- ``timesteps`` (strictly decreasing) and ``lams`` (λ at those times, strictly increasing),
  lists of finite numbers of one length ≥ 2;
- ``sampler``: ``{"format_version": 1, "solver": ID, "options": {...every option...}}`` (see
  [`configuration`][mrs_numerics.solvers.configuration]);
- ``network``: ``{"name": ..., "sha256": ...}`` (see
  [`network_identity`][mrs_numerics.models.network_identity]);
- ``schedule``: the identity of the schedule it was fitted on (see
  [`identity`][mrs_numerics.schedules.identity]); the times lie in its time range;
- ``nfe`` (the calls of a run of the tuned sampler on the grid), ``fidelity_db``,
  ``heldout_fidelity_db`` (or null), ``baseline_fidelity_db``, ``variant``, ``calibration``,
  ``settings``, ``version``.

[`parse_grid_file`][mrs_numerics.models.tuned_grids.parse_grid_file] checks every field of every
entry and refuses a bad one with one line naming the file, the entry and the field. **Version 1**
files (0.2: sampler as ``solver_id`` and the non-default ``options``, network as ``model``, no
schedule) are still read: their sampler dict is rebuilt with every option; an entry whose
``model`` is a shipped network gets that network's identity and schedule (the only networks
version 1 could tune); any other entry keeps ``schedule`` unknown (``None``), and binding refuses
it (re-tune it with this version). The shipped grids of a network ``NAME`` live beside its
weights as ``NAME.grids.json`` (tuned on training photos only; see ``mrs-numerics models``).
"""

from __future__ import annotations

import functools
import json
import math
import os
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from mrs_numerics import schedules
from mrs_numerics._errors import InputError
from mrs_numerics._files import write_text
from mrs_numerics.models.network_identity import (
    UNKNOWN_NETWORK,
    check_network,
    describe_network,
    network_identity,
    shipped_network_identity,
)
from mrs_numerics.models.registry import WEIGHTS_PACKAGE, available_models
from mrs_numerics.schedules.identity import (
    IDENTITY_RTOL,
    check_identity,
    describe_identity,
    schedule_identity,
)
from mrs_numerics.solvers.configuration import (
    check_configuration,
    describe_configuration,
    sampler_configuration,
)
from mrs_numerics.solvers.factory import make_sampler

GRID_FILE_FORMAT = "mrs-numerics tuned grids"
"""The ``format`` field of every grid file."""
GRID_FILE_VERSION = 2
"""The ``format_version`` this package writes."""
READABLE_VERSIONS = (1, 2)
"""The ``format_version`` values this package reads (1 is upgraded on reading)."""
SHIPPED_SUFFIX = ".grids.json"
"""A shipped network ``NAME`` has its tuned grids in ``NAME`` + this suffix."""


@dataclass
class TunedGrid:
    """A step grid fitted for one (schedule, network, sampler, NFE), and how well it does.

    ``sampler.sample(model, mu, timesteps=grid)`` accepts it directly (or its ``timesteps``);
    [`bind_grid`][mrs_numerics.models.grid_binding.bind_grid] checks it against a run first.

    Attributes:
        timesteps: The grid t_0 > … > t_N (float64), with the sampler's own first and last time.
        lams: λ at those times (on the schedule it was fitted on).
        sampler: The tuned sampler as its versioned dict (see
            [`sampler_configuration`][mrs_numerics.solvers.configuration.sampler_configuration]).
        nfe: The network calls a run of that sampler on this grid makes.
        fidelity_db: Mean PSNR (dB) between the run and the converged output on the
            calibration inputs (outputs clamped to [0, 1]).
        network: The network's identity ``{"name", "sha256"}``.
        schedule: The identity of the schedule it was fitted on
            ([`schedule_identity`][mrs_numerics.schedules.identity.schedule_identity]); None
            only for a version-1 record of a network that is not shipped (unknown).
        variant: The named few-step variant of the fit, if any.
        heldout_fidelity_db: The same on held-out inputs, if measured.
        baseline_fidelity_db: Fidelity of the uniform-λ grid of the same NFE (calibration, and
            held-out where measured), for comparison.
        calibration: What the fit was calibrated on (photos, crops, crop size, seed).
        settings: The fit's settings and diagnostics (method, evaluations, teacher steps and
            accuracy, the starting grid, seconds).
        version: The package version that wrote it.
    """

    timesteps: torch.Tensor
    lams: torch.Tensor
    sampler: dict[str, Any]
    nfe: int
    fidelity_db: float
    network: dict[str, Any] = field(default_factory=lambda: dict(UNKNOWN_NETWORK))
    schedule: dict[str, Any] | None = None
    variant: str = ""
    heldout_fidelity_db: float | None = None
    baseline_fidelity_db: dict[str, float] = field(default_factory=dict)
    calibration: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    version: str = ""

    @property
    def steps(self) -> int:
        """The number of steps N."""
        return self.timesteps.numel() - 1

    @property
    def solver_id(self) -> str:
        """The solver the grid was tuned for (``sampler["solver"]``)."""
        return self.sampler["solver"]

    @property
    def options(self) -> dict[str, Any]:
        """The options of the tuned sampler (``sampler["options"]``)."""
        return self.sampler["options"]

    @property
    def model(self) -> str:
        """The network's name (``network["name"]``)."""
        return self.network.get("name", "")

    @model.setter
    def model(self, name: str) -> None:
        """Name the network; a shipped network's name brings its weights' hash."""
        self.network = network_identity(name)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready record (times and λ as lists of floats)."""
        record = asdict(self)
        record["timesteps"] = [float(t) for t in self.timesteps]
        record["lams"] = [float(v) for v in self.lams]
        return record

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> TunedGrid:
        """The grid of a record written by ``to_dict`` (each field checked; a ValueError names
        the first bad one)."""
        return _record(record, GRID_FILE_VERSION)

    def describe(self) -> list[str]:
        """Lines for listings: sampler and options, NFE, network, schedule, calibration,
        fidelity."""
        name = f"{self.variant} = " if self.variant else ""
        heldout = self.heldout_fidelity_db
        baseline = self.baseline_fidelity_db.get("heldout")
        fidelity = f"calibration {self.fidelity_db:.2f} dB"
        if heldout is not None:
            fidelity += f", held-out {heldout:.2f} dB"
            if baseline is not None:
                fidelity += f" (uniform λ {baseline:.2f} dB)"
        calibration = self.calibration
        photos = calibration.get("photos")
        where = f"{len(photos)} photos" if isinstance(photos, list) else "inputs"
        crops = calibration.get("crops", calibration.get("batch"))
        side = calibration.get("crop", calibration.get("shape"))
        schedule = "unknown" if self.schedule is None else describe_identity(self.schedule)
        return [
            f"{name}{describe_configuration(self.sampler)}, NFE {self.nfe} ({self.steps} steps)",
            f"network {describe_network(self.network)}",
            f"schedule {schedule}",
            f"calibration {crops} crops ({side}) of {where}, seed {calibration.get('seed')}",
            f"fidelity {fidelity}",
        ]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _finite_number(record: dict, name: str, optional: bool = False) -> float | None:
    value: Any = record.get(name)
    if value is None and optional:
        return None
    if not (_is_number(value) and math.isfinite(value)):
        raise ValueError(f"field {name} must be a finite number, got {value!r}")
    return float(value)


def _numbers(record: dict, name: str) -> list[float]:
    values = record.get(name)
    if not isinstance(values, list) or len(values) < 2:
        raise ValueError(f"field {name} must be a list of at least 2 numbers, got {values!r}")
    for i, value in enumerate(values):
        if not (_is_number(value) and math.isfinite(value)):
            raise ValueError(f"field {name}[{i}] must be a finite number, got {value!r}")
    return [float(v) for v in values]


def _monotone(values: list[float], name: str, decreasing: bool) -> None:
    for i in range(len(values) - 1):
        ok = values[i + 1] < values[i] if decreasing else values[i + 1] > values[i]
        if not ok:
            order = "strictly decreasing" if decreasing else "strictly increasing"
            raise ValueError(
                f"field {name} must be {order}; {name}[{i}] = {values[i]} is followed by "
                f"{name}[{i + 1}] = {values[i + 1]}"
            )


def _text(record: dict, name: str) -> str:
    value = record.get(name, "")
    if not isinstance(value, str):
        raise ValueError(f"field {name} must be text, got {value!r}")
    return value


def _object(record: dict, name: str) -> dict:
    value = record.get(name, {})
    if not isinstance(value, dict):
        raise ValueError(f"field {name} must be an object, got {value!r}")
    return value


def _required(record: dict, names: tuple[str, ...]) -> None:
    missing = [name for name in names if name not in record]
    if missing:
        raise ValueError(f"missing field {', '.join(missing)}")


V2_FIELDS = ("timesteps", "lams", "sampler", "nfe", "fidelity_db", "network", "schedule")
"""The fields every version-2 entry must have."""
V1_FIELDS = ("timesteps", "lams", "solver_id", "options", "nfe", "fidelity_db")
"""The fields every version-1 entry had."""


def _record(record: Any, version: int) -> TunedGrid:
    """The grid of one entry of a file of ``version``; a ValueError names the bad field."""
    if not isinstance(record, dict):
        raise ValueError(f"an entry must be an object, got {type(record).__name__}")
    _required(record, V2_FIELDS if version == 2 else V1_FIELDS)
    times = _numbers(record, "timesteps")
    _monotone(times, "timesteps", decreasing=True)
    lams = _numbers(record, "lams")
    if len(lams) != len(times):
        raise ValueError(f"field lams has {len(lams)} values for {len(times)} timesteps")
    _monotone(lams, "lams", decreasing=False)
    nfe = record["nfe"]
    if isinstance(nfe, bool) or not isinstance(nfe, int) or nfe < len(times) - 1:
        raise ValueError(
            f"field nfe must be an integer ≥ the {len(times) - 1} steps (a call per step at "
            f"least), got {nfe!r}"
        )
    schedule: dict[str, Any] | None
    if version == 2:
        sampler = check_configuration(record["sampler"], "sampler")
        network = check_network(record["network"], "network")
        schedule = check_identity(record["schedule"], "schedule")
        _inside(times, schedule)
    else:
        sampler, network, schedule = _upgraded(record)
    baseline = _object(record, "baseline_fidelity_db")
    for key in baseline:
        _finite_number(baseline, key)
    return TunedGrid(
        timesteps=torch.tensor(times, dtype=torch.float64),
        lams=torch.tensor(lams, dtype=torch.float64),
        sampler=sampler,
        nfe=nfe,
        fidelity_db=_finite_number(record, "fidelity_db"),  # type: ignore[arg-type]
        network=network,
        schedule=schedule,
        variant=_text(record, "variant"),
        heldout_fidelity_db=_finite_number(record, "heldout_fidelity_db", optional=True),
        baseline_fidelity_db={key: float(value) for key, value in baseline.items()},
        calibration=_object(record, "calibration"),
        settings=_object(record, "settings"),
        version=_text(record, "version"),
    )


def _inside(times: list[float], schedule: dict) -> None:
    low, high = schedule["t_min"], schedule["t_max"]
    slack = IDENTITY_RTOL * max(abs(low), abs(high), 1.0)
    if times[0] > high + slack or times[-1] < low - slack:
        raise ValueError(
            f"field timesteps runs from {times[0]} to {times[-1]}, outside the time range "
            f"[{low}, {high}] of its schedule {schedule['name']!r}"
        )


def _upgraded(record: dict) -> tuple[dict, dict, dict | None]:
    """(sampler, network, schedule) of a version-1 entry (see the module description)."""
    solver_id, options = record["solver_id"], record["options"]
    if not isinstance(options, dict):
        raise ValueError(f"field options must be an object, got {options!r}")
    try:
        sampler = make_sampler(solver_id, schedules.cosine(), "noise", **options)
    except (TypeError, ValueError) as error:
        raise ValueError(f"field solver_id/options ({solver_id!r}, {options!r}): {error}") from None
    model = _text(record, "model")
    shipped = available_models()
    if model in shipped:
        info = shipped[model]
        schedule = schedule_identity(schedules.get(info.schedule, max_sigma=info.max_sigma))
        return sampler_configuration(sampler), dict(shipped_network_identity(model)), schedule
    return sampler_configuration(sampler), {"name": model, "sha256": None}, None


def grid_file_text(grids: list[TunedGrid]) -> str:
    """The text of a grid file holding ``grids`` (version
    [`GRID_FILE_VERSION`][mrs_numerics.models.tuned_grids.GRID_FILE_VERSION])."""
    content = {
        "format": GRID_FILE_FORMAT,
        "format_version": GRID_FILE_VERSION,
        "grids": [grid.to_dict() for grid in grids],
    }
    return json.dumps(content, indent=1, allow_nan=False) + "\n"


def write_grid_file(
    path: str | os.PathLike, grids: list[TunedGrid], *, overwrite: bool = False
) -> Path:
    """Write ``grids`` as one grid file, atomically; an existing file only with ``overwrite``."""
    return write_text(path, grid_file_text(grids), overwrite=overwrite, what="grid file")


def parse_grid_file(text: str, source: str = "grid file") -> list[TunedGrid]:
    """The grids of a grid file's text (``source`` names it in messages).

    Raises:
        InputError: One line naming ``source``, the entry and the field, for anything that is
            not a grid file of a readable version with well-formed entries.
    """
    try:
        content = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as error:
        raise InputError(f"{source} is not JSON: {error}") from None
    if not isinstance(content, dict) or content.get("format") != GRID_FILE_FORMAT:
        raise InputError(f"{source} is not a tuned-grid file (no format {GRID_FILE_FORMAT!r})")
    version = content.get("format_version")
    if isinstance(version, bool) or version not in READABLE_VERSIONS:
        raise InputError(
            f"{source} has format_version {version!r}; this package reads versions "
            f"{', '.join(map(str, READABLE_VERSIONS))}"
        )
    entries = content.get("grids")
    if not isinstance(entries, list):
        raise InputError(f"{source}: field grids must be a list of entries, got {entries!r}")
    grids = []
    for index, record in enumerate(entries):
        try:
            grids.append(_record(record, version))
        except ValueError as error:
            raise InputError(f"{source}: entry {index}: {error}") from None
    return grids


def read_grid_file(path: str | os.PathLike) -> list[TunedGrid]:
    """The grids of the grid file at ``path`` (refused with one line if it is not one)."""
    path = Path(path)
    if not path.is_file():
        why = "is a folder" if path.is_dir() else "does not exist"
        raise InputError(f"grid file {path} {why}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError(f"grid file {path} is not text (not UTF-8): not a grid file") from None
    return parse_grid_file(text, str(path))


@functools.cache
def _shipped(model: str) -> tuple[TunedGrid, ...]:
    resource = resources.files(WEIGHTS_PACKAGE) / f"{model}{SHIPPED_SUFFIX}"
    if not resource.is_file():
        return ()
    return tuple(parse_grid_file(resource.read_text(), f"{model}{SHIPPED_SUFFIX}"))


def shipped_grids(model: str) -> list[TunedGrid]:
    """The tuned grids shipped for the network ``model`` (empty if none ship)."""
    return list(_shipped(model))


def shipped_grid(model: str, variant: str, nfe: int) -> TunedGrid | None:
    """The shipped grid of ``model`` for the named ``variant`` at ``nfe`` calls, or None."""
    for grid in shipped_grids(model):
        if grid.variant == variant and grid.nfe == nfe:
            return grid
    return None


def entry_label(grid: TunedGrid) -> str:
    """The name an entry answers to: its variant, else its solver id."""
    return grid.variant or grid.solver_id


def holdings(grids: list[TunedGrid]) -> str:
    """What a grid file holds, e.g. ``ms3 at NFE 3, 4, 5; mrs-ode-2-data at NFE 2``."""
    by_label: dict[str, list[int]] = {}
    for grid in grids:
        by_label.setdefault(entry_label(grid), []).append(grid.nfe)
    return (
        "; ".join(
            f"{label} at NFE {', '.join(map(str, sorted(nfes)))}"
            for label, nfes in by_label.items()
        )
        or "no entries"
    )


def select_grid(
    grids: list[TunedGrid],
    sampler: str | None,
    nfe: int,
    source: str = "grid file",
    preferred: str = "",
) -> tuple[int, TunedGrid]:
    """(index, entry) of the grid file entry for ``sampler`` under a budget of ``nfe`` calls.

    An entry answers to its variant's name and to its solver id. Of the entries for
    ``sampler`` (every entry when it is None) whose recorded NFE fits the budget, the one with
    the most calls is chosen; where entries for several samplers tie and ``sampler`` is None,
    the one answering to ``preferred`` (the default variant) wins, else the choice is refused.

    Raises:
        InputError: If no entry fits, or the choice is ambiguous; the message lists what the
            file holds.
    """
    fitting = [
        (index, grid)
        for index, grid in enumerate(grids)
        if grid.nfe <= nfe and (sampler is None or sampler in (grid.variant, grid.solver_id))
    ]
    if not fitting:
        wanted = f"for {sampler} " if sampler else ""
        raise InputError(
            f"{source} has no grid {wanted}within {nfe} NFE; it holds {holdings(grids)}"
        )
    most = max(grid.nfe for _, grid in fitting)
    best = [(index, grid) for index, grid in fitting if grid.nfe == most]
    labels = {entry_label(grid) for _, grid in best}
    if len(labels) > 1:
        chosen = [(i, g) for i, g in best if preferred and preferred in (g.variant, g.solver_id)]
        if not chosen:
            raise InputError(
                f"{source} has grids for {', '.join(sorted(labels))} at {most} NFE; name the "
                f"sampler to use (it holds {holdings(grids)})"
            )
        best = chosen
    return best[0]


def grids_of(source: str | os.PathLike) -> tuple[str, list[TunedGrid]]:
    """(what it is, its grids): a grid file's path, or a shipped network's name (its shipped
    grids).

    Raises:
        InputError: If ``source`` is neither a grid file nor a shipped network's name.
    """
    text = str(source)
    if text in available_models() and not Path(text).exists():
        return f"shipped grids of {text}", shipped_grids(text)
    if not Path(text).exists():
        shipped = ", ".join(sorted(available_models())) or "none"
        raise InputError(
            f"no grid file {text}, and no shipped network of that name (shipped: {shipped})"
        )
    return f"grid file {text}", read_grid_file(text)


def listing(source: str | os.PathLike) -> list[str]:
    """The lines ``mrs-numerics grids SOURCE`` prints: per entry its sampler, options, NFE,
    network, schedule, calibration and fidelity."""
    what, grids = grids_of(source)
    lines = [f"{what}: {len(grids)} grid(s)"]
    for index, grid in enumerate(grids):
        first, *rest = grid.describe()
        lines.append(f"[{index}] {first}")
        lines += [f"    {line}" for line in rest]
    return lines
