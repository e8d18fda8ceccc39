"""Images for restoration: bundled photos, image files, padding, metrics and degradations.

An image is a float tensor in [0, 1], RGB, shape ``[3, H, W]``; a batch is ``[B, 3, H, W]``.

- [`photos`][mrs_numerics.imaging.photos]: the photos that ship with scikit-image and
  matplotlib, split into training and held-out ones, and crops of them;
- [`files`][mrs_numerics.imaging.files]: reading and writing image files;
- [`padding`][mrs_numerics.imaging.padding]: reflect-padding to a network's multiple and back;
- [`metrics`][mrs_numerics.imaging.metrics]: PSNR and SSIM;
- [`degradations`][mrs_numerics.imaging.degradations]: the restoration tasks.
"""

from __future__ import annotations

from mrs_numerics.imaging.degradations import TASKS, Degradation, degrade, task
from mrs_numerics.imaging.files import (
    IMAGE_SUFFIXES,
    from_uint8,
    image_files,
    read_image,
    to_uint8,
    write_image,
)
from mrs_numerics.imaging.metrics import METRIC_BORDER, psnr, ssim
from mrs_numerics.imaging.padding import pad_to_multiple, unpad
from mrs_numerics.imaging.photos import (
    HELDOUT_PHOTOS,
    PHOTOS,
    TRAIN_PHOTOS,
    center_crop,
    load_photo,
    random_crops,
)

__all__ = [
    "HELDOUT_PHOTOS",
    "IMAGE_SUFFIXES",
    "METRIC_BORDER",
    "PHOTOS",
    "TASKS",
    "TRAIN_PHOTOS",
    "Degradation",
    "center_crop",
    "degrade",
    "from_uint8",
    "image_files",
    "load_photo",
    "pad_to_multiple",
    "psnr",
    "random_crops",
    "read_image",
    "ssim",
    "task",
    "to_uint8",
    "unpad",
    "write_image",
]
