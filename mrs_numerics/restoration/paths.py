"""Pairing input images with output paths for the ``degrade`` and ``restore`` commands."""

from __future__ import annotations

from pathlib import Path

from mrs_numerics.imaging.files import IMAGE_SUFFIXES, image_files


def image_pairs(source: Path, out: Path) -> list[tuple[Path, Path]]:
    """(input, output) paths for IN and OUT, with OUT's folder created; clear errors otherwise.

    IN is a file (OUT: a file, or an existing folder that receives ``<stem>.png``) or a folder
    (OUT: a folder, created if needed, not inside IN; every PNG/JPEG inside IN or its subfolders
    becomes ``<stem>.png`` at the same relative place in OUT).
    """
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
        if target.resolve() == source.resolve():
            raise ValueError(f"refusing to overwrite the input {str(source)!r}")
        pairs = [(source, target)]
    for folder in sorted({target.parent for _, target in pairs}):
        folder.mkdir(parents=True, exist_ok=True)
    return pairs


def _folder_pairs(source: Path, out: Path, files: list[Path]) -> list[tuple[Path, Path]]:
    if not files:
        raise ValueError(f"no PNG or JPEG images in {str(source)!r}")
    if out.exists() and not out.is_dir():
        raise ValueError(f"output {str(out)!r} exists and is not a folder (IN is a folder)")
    if out.resolve().is_relative_to(source.resolve()):
        raise ValueError(f"refusing to write into the input folder {str(source)!r}")
    targets = [out / path.relative_to(source).with_suffix(".png") for path in files]
    if len(set(targets)) < len(targets):
        raise ValueError(
            f"images in {str(source)!r} share a name stem in one folder; outputs would collide"
        )
    return list(zip(files, targets, strict=True))
