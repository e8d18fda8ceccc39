"""Image files and tensors: PNG/JPEG reading and writing, 8-bit conversion, folder listing.

An image is a float tensor in [0, 1], RGB, shape ``[3, H, W]``; a batch is ``[B, 3, H, W]``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from mrs_numerics._files import TEMPORARY_MARK, atomic_path

LOGGER = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
"""File suffixes [`read_image`][mrs_numerics.imaging.files.read_image] and
[`write_image`][mrs_numerics.imaging.files.write_image] handle (case-insensitive)."""
JPEG_WRITE_QUALITY = 95
"""Quality of JPEG files written by [`write_image`][mrs_numerics.imaging.files.write_image]."""


def from_uint8(array: np.ndarray) -> torch.Tensor:
    """An ``[H, W, 3]`` uint8 array as a float32 ``[3, H, W]`` tensor in [0, 1]."""
    return torch.tensor(array, dtype=torch.uint8).permute(2, 0, 1).float() / 255.0


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """A ``[3, H, W]`` image as an ``[H, W, 3]`` uint8 array (clamped to [0, 1], rounded)."""
    scaled = image.detach().to("cpu", torch.float64).clamp(0.0, 1.0) * 255.0
    return scaled.round().to(torch.uint8).permute(1, 2, 0).numpy()


CONVERSION_NOTES = {
    "RGBA": "RGBA: the alpha channel was dropped",
    "LA": "grey with alpha: the alpha channel was dropped, grey copied to R, G and B",
    "PA": "palette with alpha: the palette was applied and the alpha channel dropped",
    "P": "a palette image: the palette was applied",
    "L": "grey: copied to R, G and B",
    "1": "black and white: copied to R, G and B",
    "I": "16/32-bit grey: reduced to 8 bits and copied to R, G and B",
    "I;16": "16-bit grey: reduced to 8 bits and copied to R, G and B",
    "CMYK": "CMYK: converted to RGB",
}
"""What [`read_image`][mrs_numerics.imaging.files.read_image] says when it converts a file mode."""


def conversion_note(mode: str) -> str | None:
    """The note for a PIL image mode that is not plain 8-bit RGB (None for RGB)."""
    if mode == "RGB":
        return None
    if mode.startswith("I;16"):
        return CONVERSION_NOTES["I;16"]
    return CONVERSION_NOTES.get(mode, f"mode {mode}: converted to 8-bit RGB")


def _pil_rgb_array(file) -> np.ndarray:
    with Image.open(file) as opened:
        picture = ImageOps.exif_transpose(opened)
        note = conversion_note(picture.mode)
        if note is not None:
            LOGGER.warning("note: %s is %s", file, note)
        if picture.mode == "I" or picture.mode.startswith("I;16"):
            grey = np.asarray(picture, dtype=np.float64) / 65535.0
            return np.repeat((grey * 255.0).round().astype(np.uint8)[..., None], 3, axis=2)
        return np.asarray(picture.convert("RGB"))


def read_image(path: str | Path) -> torch.Tensor:
    """A PNG or JPEG file as a ``[3, H, W]`` float32 tensor in [0, 1] (grey becomes RGB).

    Alpha is dropped; 16-bit grey PNGs are reduced to 8 bits; JPEG EXIF orientation is applied.
    Any conversion (RGBA, grey, 16-bit, palette, CMYK) is said in one line on stderr, through
    the ``mrs_numerics.imaging.files`` logger at WARNING level (see
    [`conversion_note`][mrs_numerics.imaging.files.conversion_note]). An unreadable file raises
    ValueError naming the path.
    """
    try:
        return from_uint8(_pil_rgb_array(path))
    except FileNotFoundError:
        raise ValueError(f"cannot read image {str(path)!r}: no such file") from None
    except (OSError, ValueError) as error:  # PIL's UnidentifiedImageError is an OSError
        raise ValueError(f"cannot read image {str(path)!r}: {error}") from None


def check_image_file(path: str | Path) -> tuple[int, int]:
    """(height, width) of an image file, from its header; a clear error if it cannot be one.

    A cheap check (the pixels are not decoded), made for every input of a folder run before the
    first network call, so that an unreadable 3rd file is refused at the start.

    Raises:
        ValueError: Naming the path, for a missing file, a suffix other than
            [`IMAGE_SUFFIXES`][mrs_numerics.imaging.files.IMAGE_SUFFIXES] or a file PIL cannot
            identify (a text file, a 0-byte file).
    """
    path = Path(path)
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise ValueError(f"cannot read image {str(path)!r}: not a {', '.join(IMAGE_SUFFIXES)} file")
    try:
        with Image.open(path) as opened:
            width, height = opened.size
    except FileNotFoundError:
        raise ValueError(f"cannot read image {str(path)!r}: no such file") from None
    except (OSError, ValueError) as error:  # PIL's UnidentifiedImageError is an OSError
        raise ValueError(f"cannot read image {str(path)!r}: {error}") from None
    return height, width


def write_image(path: str | Path, image: torch.Tensor, *, overwrite: bool = False) -> None:
    """Write a ``[3, H, W]`` image as 8-bit PNG or JPEG (by suffix; clamped to [0, 1]).

    Written atomically: to a temporary name beside ``path``, renamed once complete (see
    ``mrs_numerics._files.atomic_path``), so that a run killed mid-write leaves no
    partial image under ``path``.

    Raises:
        OutputExistsError: If ``path`` exists and ``overwrite`` is false.
        ValueError: For a suffix other than
            [`IMAGE_SUFFIXES`][mrs_numerics.imaging.files.IMAGE_SUFFIXES] or a tensor that is
            not ``[3, H, W]``.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise ValueError(
            f"cannot write {str(path)!r}: unknown image suffix; use {', '.join(IMAGE_SUFFIXES)}"
        )
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"write_image needs a [3, H, W] image, got {tuple(image.shape)}")
    picture = Image.fromarray(to_uint8(image))
    options = (
        {"format": "PNG"} if suffix == ".png" else {"format": "JPEG", "quality": JPEG_WRITE_QUALITY}
    )
    with atomic_path(path, overwrite=overwrite, what="image") as temporary:
        picture.save(temporary, **options)


def is_temporary(path: Path) -> bool:
    """Whether ``path`` is a temporary file of an unfinished write (``.<name>.tmp-…``)."""
    return path.name.startswith(".") and TEMPORARY_MARK in path.name


def image_files(folder: str | Path, recursive: bool = False) -> list[Path]:
    """The PNG and JPEG files inside ``folder`` (and its subfolders if ``recursive``), sorted.

    The temporary files a killed write can leave (see
    [`is_temporary`][mrs_numerics.imaging.files.is_temporary]) are not images of the folder.
    """
    folder = Path(folder)
    candidates = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(
        path
        for path in candidates
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not is_temporary(path)
    )
