"""The grid file a tuning writes: checked before the work, merged by what a grid is for.

- [`check_grid_output`][mrs_numerics.tuning.output.check_grid_output] refuses, before any
  network call, a grid file that could not be written or would replace something unasked: an
  existing file without ``overwrite``, a file that is not a grid file with ``merge`` (named for
  what it is: an image, a checkpoint, other JSON, …), a name without ``.json``.
- [`grid_key`][mrs_numerics.tuning.output.grid_key] is what a grid is *for*: every field of its
  record except the results of the fit (times, fidelities, calibration, settings, version), so
  the network, the schedule, the sampler with all its options and the NFE all enter it, and so
  does any identity field the record gains later.
- [`save_grids`][mrs_numerics.tuning.output.save_grids] writes the grids atomically; with
  ``merge`` it keeps the existing file's grids of every other key and replaces those of the
  same key, and says how many of each.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from mrs_numerics._errors import Advice, InputError
from mrs_numerics._files import check_output
from mrs_numerics.models.tuned_grids import (
    GRID_FILE_FORMAT,
    TunedGrid,
    read_grid_file,
    write_grid_file,
)

GRID_SUFFIX = ".json"
"""A grid file's suffix (it is JSON)."""

RESULT_FIELDS = frozenset(
    {
        "timesteps",
        "lams",
        "fidelity_db",
        "heldout_fidelity_db",
        "baseline_fidelity_db",
        "calibration",
        "settings",
        "version",
    }
)
"""The fields of a grid record that a fit produces; every other field says what it is for."""

_MAGIC = (
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"PK\x03\x04", "a zip archive (such as a torch checkpoint)"),
    (b"\x80", "a pickle (such as an old torch checkpoint)"),
)


def grid_key(grid: TunedGrid) -> str:
    """What ``grid`` is for, as one comparable text: its record without
    [`RESULT_FIELDS`][mrs_numerics.tuning.output.RESULT_FIELDS] (JSON, keys sorted)."""
    record = {k: v for k, v in grid.to_dict().items() if k not in RESULT_FIELDS}
    return json.dumps(record, sort_keys=True, default=str)


def describe_file(path: Path) -> str:
    """What the file at ``path`` is, in words ("a PNG image", "a tuned-grid file", …)."""
    data = path.read_bytes()
    if not data:
        return "an empty file"
    for magic, kind in _MAGIC:
        if data.startswith(magic):
            return kind
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return "a binary file"
    try:
        content = json.loads(text)
    except json.JSONDecodeError:
        return "a text file"
    if isinstance(content, dict) and content.get("format") == GRID_FILE_FORMAT:
        return "a tuned-grid file"
    return f"a JSON file that is not a tuned-grid file (no format {GRID_FILE_FORMAT!r})"


def check_grid_output(
    out: str | os.PathLike, *, overwrite: bool = False, merge: bool = False
) -> Path:
    """``out`` as a grid file that may be written; refuses it before any work otherwise.

    Raises:
        InputError: If ``out`` does not end in ``.json``, both ``overwrite`` and ``merge`` are
            asked for, ``out`` is a folder or its folder is missing, ``out`` exists without
            ``overwrite`` or ``merge``
            (``mrs_numerics._files.OutputExistsError``), or ``merge`` is
            asked for and ``out`` is not a readable grid file.
    """
    path = Path(out)
    if path.suffix.lower() != GRID_SUFFIX:
        raise InputError(f"grid file {path} must end in {GRID_SUFFIX}: a grid file is JSON")
    if overwrite and merge:
        raise InputError(
            "replacing the grid file and merging into it both asked for: merge keeps its other"
            " grids, overwrite discards them; give one"
        )
    merging = merge and path.is_file()
    check_output(path, overwrite=overwrite or merging, what="grid file")
    if merging:
        existing_grids(path)
    return path


def existing_grids(path: Path) -> list[TunedGrid]:
    """The grids of the existing grid file ``path``, to merge into.

    Raises:
        InputError: If ``path`` is not a grid file (naming what it is) or cannot be read.
    """
    kind = describe_file(path)
    if kind != "a tuned-grid file":
        raise InputError(
            f"grid file {path} is {kind}: grids are merged only into a tuned-grid file, and"
            " this one is neither merged into nor replaced; choose another output"
        )
    try:
        return read_grid_file(path)
    except ValueError as error:
        raise InputError(
            f"cannot merge into grid file {path}: {error}",
            advice=Advice("overwrite", True, "to replace it (its grids are lost)"),
        ) from None


def save_grids(
    out: str | os.PathLike,
    grids: list[TunedGrid],
    *,
    overwrite: bool = False,
    merge: bool = False,
) -> dict[str, Any]:
    """Write ``grids`` to the grid file ``out`` atomically; merge into it if asked.

    With ``merge``, an existing grid file's grids are read now (a run beside this one may have
    written it since the check) and kept unless one of ``grids`` has the same
    [`grid_key`][mrs_numerics.tuning.output.grid_key], which replaces it.

    Returns:
        ``{"path", "written", "replaced", "kept"}``: the file and the counts of grids.

    Raises:
        InputError: As [`check_grid_output`][mrs_numerics.tuning.output.check_grid_output],
            and if ``out`` appeared meanwhile without ``overwrite`` or ``merge``.
    """
    path = check_grid_output(out, overwrite=overwrite, merge=merge)
    merging = merge and path.is_file()
    existing = existing_grids(path) if merging else []
    new = {grid_key(grid) for grid in grids}
    kept = [grid for grid in existing if grid_key(grid) not in new]
    write_grid_file(path, kept + grids, overwrite=overwrite or merging)
    return {
        "path": path,
        "written": len(grids),
        "replaced": len(existing) - len(kept),
        "kept": len(kept),
    }
