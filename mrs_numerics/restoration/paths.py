"""Pairing input images with output paths for the ``degrade`` and ``restore`` commands.

The pairing is refused, before any image is read, where an output could destroy something:
an output that is one of the inputs (or lies inside the input folder), and two inputs that
map to one output name (``a.png`` and ``a.jpg`` both give ``a.png``). Whether an existing
output may be replaced is the caller's next question (see
[`plan_outputs`][mrs_numerics.restoration.folders.plan_outputs]); the output folders are
created only once the whole run has been accepted
([`create_output_folders`][mrs_numerics.restoration.paths.create_output_folders]).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from mrs_numerics.imaging.files import IMAGE_SUFFIXES, image_files

SHOWN = 3
"""How many paths a message lists before "…"."""


def shown(paths: Sequence[object]) -> str:
    """The first [`SHOWN`][mrs_numerics.restoration.paths.SHOWN] of ``paths``, comma-separated."""
    return ", ".join(map(str, paths[:SHOWN])) + (" …" if len(paths) > SHOWN else "")


def image_pairs(source: Path, out: Path) -> list[tuple[Path, Path]]:
    """(input, output) paths for IN and OUT; clear errors where they cannot be a safe run.

    IN is a file (OUT: a file, or an existing folder that receives ``<stem>.png``) or a folder
    (OUT: a folder, created later if needed, not inside IN; every PNG/JPEG inside IN or its
    subfolders becomes ``<stem>.png`` at the same relative place in OUT). Nothing is created.

    Raises:
        ValueError: For a missing IN, an IN folder without images, an OUT that is a file
            where a folder is needed, an OUT without an image suffix or whose folder is
            missing, an output that is an input or lies inside the input folder, and two inputs
            with one output (the message names both).
    """
    source, out = Path(source), Path(out)
    if not source.exists():
        raise ValueError(f"input {str(source)!r} does not exist")
    if source.is_dir():
        pairs = _folder_pairs(source, out, image_files(source, recursive=True))
    else:
        target = out / f"{source.stem}.png" if out.is_dir() else out
        if target.suffix.lower() not in IMAGE_SUFFIXES:
            raise ValueError(
                f"output {str(target)!r} needs an image suffix ({', '.join(IMAGE_SUFFIXES)})"
            )
        if not target.parent.is_dir():
            raise ValueError(f"output folder {str(target.parent)!r} does not exist")
        pairs = [(source, target)]
    _refuse_outputs_onto_inputs(source, pairs)
    return pairs


def create_output_folders(pairs: Sequence[tuple[Path, Path]]) -> None:
    """Create the folders the outputs of ``pairs`` go into (the run has been accepted)."""
    for folder in sorted({target.parent for _, target in pairs}):
        folder.mkdir(parents=True, exist_ok=True)


def _folder_pairs(source: Path, out: Path, files: list[Path]) -> list[tuple[Path, Path]]:
    if not files:
        raise ValueError(f"no PNG or JPEG images in {str(source)!r}")
    if out.exists() and not out.is_dir():
        raise ValueError(f"output {str(out)!r} exists and is not a folder (IN is a folder)")
    if out.resolve().is_relative_to(source.resolve()):
        raise ValueError(f"refusing to write into the input folder {str(source)!r}")
    targets = [out / path.relative_to(source).with_suffix(".png") for path in files]
    _refuse_collisions(list(zip(files, targets, strict=True)))
    return list(zip(files, targets, strict=True))


def _refuse_collisions(pairs: list[tuple[Path, Path]]) -> None:
    """Refuse two inputs with one output, naming them (a.png and a.jpg → a.png)."""
    first: dict[Path, Path] = {}
    clashes = []
    for source, target in pairs:
        if target in first:
            clashes.append(f"{first[target]} and {source} → {target}")
        else:
            first[target] = source
    if clashes:
        raise ValueError(
            f"{len(clashes)} output name(s) would be written twice ({shown(clashes)}): outputs"
            " are <stem>.png, so rename one of each pair"
        )


def _refuse_outputs_onto_inputs(source: Path, pairs: Sequence[tuple[Path, Path]]) -> None:
    """Refuse an output that is an input file (by name, a link or a hard link) or lies inside
    the input folder."""
    inputs = {_identity(path) for path, _ in pairs}
    folder = source.resolve() if source.is_dir() else None
    for path, target in pairs:
        if target.exists() and _identity(target) in inputs:
            raise ValueError(f"refusing to overwrite the input {str(path)!r} with an output")
        if folder is not None and target.resolve().is_relative_to(folder):
            raise ValueError(
                f"output {str(target)!r} would lie inside the input folder {str(source)!r};"
                " choose an OUT outside it"
            )


def _identity(path: Path) -> tuple[int, int]:
    """(device, inode): equal for two names of one file."""
    status = os.stat(path)
    return status.st_dev, status.st_ino
