"""Calibration and held-out inputs of a tuning: the bundled photos, or the user's own images.

For a shipped network, calibration crops come only from
[`TRAIN_PHOTOS`][mrs_numerics.imaging.photos.TRAIN_PHOTOS] (random square crops); held-out crops
are the centre crops of [`HELDOUT_PHOTOS`][mrs_numerics.imaging.photos.HELDOUT_PHOTOS], as in
``benchmark quality``. Both are degraded with the network's task; one CPU generator seeded with
``seed`` draws the crops and then the degradation noise.

For a user's network (or a shipped one on the user's own inputs) the images are the user's
degraded inputs themselves ([`FolderImages`][mrs_numerics.tuning.calibration.FolderImages]):
no ground truth is needed, since the fit's target is the network's own converged output.
Calibration crops are random square crops of them (seeded), so that one batch can be formed;
held-out crops are the centre crops of a held-out folder or of a seeded split of the
calibration folder ([`split_folder`][mrs_numerics.tuning.calibration.split_folder]).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image

from mrs_numerics._errors import InputError
from mrs_numerics.imaging import degradations
from mrs_numerics.imaging.files import image_files, read_image
from mrs_numerics.imaging.photos import HELDOUT_PHOTOS, TRAIN_PHOTOS, center_crop, load_photo
from mrs_numerics.imaging.photos import random_crops as draw_random_crops

DEFAULT_CROPS = 8
"""Calibration crops of a shipped network's tuning."""
DEFAULT_CROP = 64
"""Side of the calibration and held-out crops."""


@dataclass
class Inputs:
    """Degraded crops for a fit or its check, and where they come from.

    Attributes:
        mu: The degraded crops ``[B, 3, crop, crop]`` (the MR process's mean).
        clean: The clean crops (None for the user's images: only degraded inputs are known).
        description: JSON-ready: photos or folder, crop count and size, seed.
        names: Row i's image (its path relative to its folder, or the photo's name): a
            checkpoint's per-image contexts are looked up by it.
    """

    mu: torch.Tensor
    clean: torch.Tensor | None
    description: dict
    names: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class FolderImages:
    """Some of the PNG/JPEG images of a folder (all of them, or one side of a split).

    Attributes:
        folder: The folder (names are relative to it).
        files: The images, sorted.
    """

    folder: Path
    files: tuple[Path, ...]

    def names(self, files) -> list[str]:
        """The paths of ``files`` relative to the folder (as POSIX text)."""
        return [path.relative_to(self.folder).as_posix() for path in files]


def calibration_inputs(
    task: str, crops: int = DEFAULT_CROPS, crop: int = DEFAULT_CROP, seed: int = 0
) -> Inputs:
    """``crops`` random training crops of side ``crop``, degraded by ``task``."""
    generator = torch.Generator().manual_seed(seed)
    clean = draw_random_crops(TRAIN_PHOTOS, crop, crops, generator)
    mu = degradations.degrade(task, clean, generator)
    description = {"photos": list(TRAIN_PHOTOS), "crops": crops, "crop": crop, "seed": seed}
    return Inputs(mu, clean, description, ["" for _ in range(crops)])


def heldout_inputs(task: str, crop: int = DEFAULT_CROP, seed: int = 0) -> Inputs:
    """The centre crops of side ``crop`` of the held-out photos, degraded by ``task``."""
    generator = torch.Generator().manual_seed(seed)
    clean = torch.stack([center_crop(load_photo(p), crop) for p in HELDOUT_PHOTOS])
    mu = degradations.degrade(task, clean, generator)
    description = {"photos": list(HELDOUT_PHOTOS), "crops": len(HELDOUT_PHOTOS), "crop": crop}
    description["seed"] = seed
    return Inputs(mu, clean, description, list(HELDOUT_PHOTOS))


def folder_images(
    folder, what: str, side: int, files: tuple[Path, ...] | None = None
) -> FolderImages:
    """The images of ``folder`` (or ``files`` of it), each readable and at least ``side`` wide.

    Only the file headers are read (PIL opens a file without decoding it), so a large folder is
    checked quickly.

    Raises:
        InputError: If ``folder`` is not a folder or holds no PNG/JPEG image, or an image is
            unreadable or smaller than ``side`` pixels on a side (naming it and its size).
    """
    folder = Path(folder)
    if not folder.is_dir():
        why = "is a file" if folder.exists() else "does not exist"
        raise InputError(f"{what} {folder} {why}; give a folder of PNG/JPEG images")
    found = tuple(image_files(folder, recursive=True)) if files is None else files
    if not found:
        raise InputError(f"{what} {folder} holds no PNG or JPEG image")
    for path in found:
        try:
            with Image.open(path) as opened:
                width, height = opened.size
        except (OSError, ValueError) as error:
            raise InputError(f"{what}: cannot read image {path}: {error}") from None
        if min(width, height) < side:
            raise InputError(
                f"{what}: image {path} is {height}×{width}, smaller than the crop of {side}"
                " pixels; give a smaller crop or leave the image out"
            )
    return FolderImages(folder, found)


def split_folder(images: FolderImages, fraction: float, seed: int):
    """(calibration, held-out): a seeded split of ``images``, ``fraction`` of them held out.

    The held-out side has round(fraction · n) images, at least one, and leaves at least one
    for the calibration; the same seed gives the same split.

    Raises:
        InputError: If the folder has fewer than two images.
    """
    count = len(images.files)
    if count < 2:
        raise InputError(
            f"calibration folder {images.folder} has {count} image: a held-out fraction needs"
            " at least two (one to fit, one to check)"
        )
    held = min(count - 1, max(1, round(fraction * count)))
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed)).tolist()
    chosen = set(order[:held])
    heldout = tuple(p for i, p in enumerate(images.files) if i in chosen)
    kept = tuple(p for i, p in enumerate(images.files) if i not in chosen)
    return FolderImages(images.folder, kept), FolderImages(images.folder, heldout)


def folder_calibration_inputs(images: FolderImages, crops: int, crop: int, seed: int) -> Inputs:
    """``crops`` random crops of side ``crop`` of the user's degraded ``images``.

    Each crop picks an image uniformly, then a top-left corner uniformly where the crop fits,
    from one CPU generator seeded with ``seed``; only the images picked are read, each once.
    """
    generator = torch.Generator().manual_seed(seed)
    picks = torch.randint(len(images.files), (crops,), generator=generator).tolist()
    corners = [
        (float(torch.rand((), generator=generator)), float(torch.rand((), generator=generator)))
        for _ in picks
    ]
    mu = torch.empty(crops, 3, crop, crop)
    for index in sorted(set(picks)):
        image = read_image(images.files[index])
        height, width = image.shape[-2:]
        for row, (pick, (down, across)) in enumerate(zip(picks, corners, strict=True)):
            if pick == index:
                top = min(int(down * (height - crop + 1)), height - crop)
                left = min(int(across * (width - crop + 1)), width - crop)
                mu[row] = image[:, top : top + crop, left : left + crop]
    names = images.names([images.files[i] for i in picks])
    description = {
        "folder": str(images.folder),
        "images": images.names(images.files),
        "crops": crops,
        "crop": crop,
        "seed": seed,
    }
    return Inputs(mu, None, description, names)


def folder_heldout_inputs(images: FolderImages, crop: int) -> Inputs:
    """The centre crops of side ``crop`` of the user's held-out degraded ``images``."""
    mu = torch.stack([center_crop(read_image(path), crop) for path in images.files])
    names = images.names(images.files)
    description = {"folder": str(images.folder), "images": names, "crop": crop}
    return Inputs(mu, None, description, names)
