"""Tuned step grids: the grid file format and the grids that ship with the networks.

A tuned grid is a decreasing float64 time grid t_0 > … > t_N fitted (by
[`tune_timesteps`][mrs_numerics.tuning.fit.tune_timesteps]) so that one sampler, with its options,
reaches one network's converged output in few network calls. It is only meaningful for the
(network, sampler, options, NFE) it was fitted for; the record says which, and how well it did.

A **grid file** is JSON::

    {"format": "mrs-numerics tuned grids", "format_version": 1, "grids": [ENTRY, ...]}

and every entry is a [`TunedGrid`][mrs_numerics.models.tuned_grids.TunedGrid] as a dict: the
times and their λ, the sampler id and options, the network, the NFE, the calibration set and
seed, the fidelity reached on the calibration and held-out inputs, the settings of the fit and
the package version. The shipped grids of a network ``NAME`` live beside its weights as
``NAME.grids.json`` (tuned on training photos only; see ``mrs-numerics models``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from mrs_numerics._files import write_text
from mrs_numerics.models.registry import WEIGHTS_PACKAGE

GRID_FILE_FORMAT = "mrs-numerics tuned grids"
"""The ``format`` field of every grid file."""
GRID_FILE_VERSION = 1
"""The ``format_version`` this package writes and reads."""
SHIPPED_SUFFIX = ".grids.json"
"""A shipped network ``NAME`` has its tuned grids in ``NAME`` + this suffix."""


@dataclass
class TunedGrid:
    """A step grid fitted for one (network, sampler, options, NFE), and how well it does.

    ``sampler.sample(model, mu, timesteps=grid)`` accepts it directly (or its ``timesteps``).

    Attributes:
        timesteps: The grid t_0 > … > t_N (float64), with the sampler's own first and last time.
        lams: λ at those times.
        solver_id: The solver the grid was fitted for.
        options: The sampler options of the fit (start, lower_order_final, …).
        nfe: The network calls a run on this grid makes.
        fidelity_db: Mean PSNR (dB) between the run and the converged output on the
            calibration inputs (outputs clamped to [0, 1]).
        model: The network's name ("" for a model that is not shipped).
        network: The network's identity ``{"name", "sha256"}``: the shipped network's or the
            checkpoint file's name, and the SHA-256 of its weights file's bytes.
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
    solver_id: str
    options: dict[str, Any]
    nfe: int
    fidelity_db: float
    model: str = ""
    network: dict[str, str] = field(default_factory=dict)
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

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready record (times and λ as lists of floats)."""
        record = asdict(self)
        record["timesteps"] = [float(t) for t in self.timesteps]
        record["lams"] = [float(v) for v in self.lams]
        return record

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> TunedGrid:
        """The grid of a record written by ``to_dict`` (a clear error names a missing field)."""
        required = ("timesteps", "lams", "solver_id", "options", "nfe", "fidelity_db")
        missing = [name for name in required if name not in record]
        if missing:
            raise ValueError(f"a tuned grid record lacks {', '.join(missing)}")
        known = set(cls.__dataclass_fields__)
        values = {key: value for key, value in record.items() if key in known}
        values["timesteps"] = torch.tensor(record["timesteps"], dtype=torch.float64)
        values["lams"] = torch.tensor(record["lams"], dtype=torch.float64)
        return cls(**values)


def write_grid_file(path: str | Path, grids: list[TunedGrid], *, overwrite: bool = False) -> None:
    """Write ``grids`` as one grid file (see the module description), atomically; an existing
    file is replaced only with ``overwrite`` (``mrs_numerics._files``)."""
    content = {
        "format": GRID_FILE_FORMAT,
        "format_version": GRID_FILE_VERSION,
        "grids": [grid.to_dict() for grid in grids],
    }
    text = json.dumps(content, indent=1) + "\n"
    write_text(path, text, overwrite=overwrite, what="grid file")


def parse_grid_file(text: str, source: str = "grid file") -> list[TunedGrid]:
    """The grids of a grid file's text; a clear error if it is not one."""
    try:
        content = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{source} is not JSON: {error}") from None
    if not isinstance(content, dict) or content.get("format") != GRID_FILE_FORMAT:
        raise ValueError(f"{source} is not a tuned-grid file (no format {GRID_FILE_FORMAT!r})")
    if content.get("format_version") != GRID_FILE_VERSION:
        raise ValueError(
            f"{source} has format_version {content.get('format_version')!r}; this package "
            f"reads version {GRID_FILE_VERSION}"
        )
    return [TunedGrid.from_dict(record) for record in content["grids"]]


def read_grid_file(path: str | Path) -> list[TunedGrid]:
    """The grids of the grid file at ``path``."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no grid file at {path}")
    return parse_grid_file(path.read_text(), str(path))


def shipped_grids(model: str) -> list[TunedGrid]:
    """The tuned grids shipped for the network ``model`` (empty if none ship)."""
    resource = resources.files(WEIGHTS_PACKAGE) / f"{model}{SHIPPED_SUFFIX}"
    if not resource.is_file():
        return []
    return parse_grid_file(resource.read_text(), f"{model}{SHIPPED_SUFFIX}")


def shipped_grid(model: str, variant: str, nfe: int) -> TunedGrid | None:
    """The shipped grid of ``model`` for the named ``variant`` at ``nfe`` calls, or None."""
    for grid in shipped_grids(model):
        if grid.variant == variant and grid.nfe == nfe:
            return grid
    return None
