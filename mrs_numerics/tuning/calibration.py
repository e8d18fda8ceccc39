"""Calibration and held-out inputs of a shipped network's tuning, from the bundled photos.

Calibration crops come only from [`TRAIN_PHOTOS`][mrs_numerics.imaging.photos.TRAIN_PHOTOS]
(random square crops); held-out crops are the centre crops of
[`HELDOUT_PHOTOS`][mrs_numerics.imaging.photos.HELDOUT_PHOTOS], as in ``benchmark quality``.
Both are degraded with the network's task; one CPU generator seeded with ``seed`` draws the
crops and then the degradation noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mrs_numerics.imaging import degradations
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
        clean: The clean crops.
        description: JSON-ready: photos, crop count and size, seed.
    """

    mu: torch.Tensor
    clean: torch.Tensor
    description: dict


def calibration_inputs(
    task: str, crops: int = DEFAULT_CROPS, crop: int = DEFAULT_CROP, seed: int = 0
) -> Inputs:
    """``crops`` random training crops of side ``crop``, degraded by ``task``."""
    generator = torch.Generator().manual_seed(seed)
    clean = draw_random_crops(TRAIN_PHOTOS, crop, crops, generator)
    mu = degradations.degrade(task, clean, generator)
    description = {"photos": list(TRAIN_PHOTOS), "crops": crops, "crop": crop, "seed": seed}
    return Inputs(mu, clean, description)


def heldout_inputs(task: str, crop: int = DEFAULT_CROP, seed: int = 0) -> Inputs:
    """The centre crops of side ``crop`` of the held-out photos, degraded by ``task``."""
    generator = torch.Generator().manual_seed(seed)
    clean = torch.stack([center_crop(load_photo(p), crop) for p in HELDOUT_PHOTOS])
    mu = degradations.degrade(task, clean, generator)
    description = {"photos": list(HELDOUT_PHOTOS), "crops": len(HELDOUT_PHOTOS), "crop": crop}
    description["seed"] = seed
    return Inputs(mu, clean, description)
