"""The bundled photos (training and held-out) and crops of them.

The photos ship inside installed wheels (scikit-image's ``skimage.data`` and matplotlib's sample
data), so nothing is downloaded. [`HELDOUT_PHOTOS`][mrs_numerics.imaging.photos.HELDOUT_PHOTOS]
are reserved for evaluation and are never part of
[`TRAIN_PHOTOS`][mrs_numerics.imaging.photos.TRAIN_PHOTOS].
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import numpy as np
import torch
from matplotlib import cbook
from skimage import data

from mrs_numerics.imaging.files import _pil_rgb_array, from_uint8


def _skimage_photo(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        return getattr(data, name)()

    return load


def _stereo_view(index: int) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        return data.stereo_motorcycle()[index]

    return load


def _grace_hopper() -> np.ndarray:
    return _pil_rgb_array(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


_SOURCES: dict[str, Callable[[], np.ndarray]] = {
    "astronaut": _skimage_photo("astronaut"),
    "chelsea": _skimage_photo("chelsea"),
    "coffee": _skimage_photo("coffee"),
    "rocket": _skimage_photo("rocket"),
    "hubble_deep_field": _skimage_photo("hubble_deep_field"),
    "immunohistochemistry": _skimage_photo("immunohistochemistry"),
    "retina": _skimage_photo("retina"),
    "stereo_motorcycle_left": _stereo_view(0),
    "stereo_motorcycle_right": _stereo_view(1),
    "grace_hopper": _grace_hopper,
}


@functools.cache
def _photo_array(name: str) -> np.ndarray:
    return _SOURCES[name]()


def _photo_loader(name: str) -> Callable[[], torch.Tensor]:
    return lambda: from_uint8(_photo_array(name))


PHOTOS: dict[str, Callable[[], torch.Tensor]] = {name: _photo_loader(name) for name in _SOURCES}
"""Every bundled photo: name → loader returning a fresh ``[3, H, W]`` float32 tensor."""
HELDOUT_PHOTOS: tuple[str, ...] = ("coffee", "grace_hopper")
"""Photos kept for evaluation only."""
TRAIN_PHOTOS: tuple[str, ...] = tuple(name for name in PHOTOS if name not in HELDOUT_PHOTOS)
"""Photos training may use."""


def load_photo(name: str) -> torch.Tensor:
    """The bundled photo ``name`` as a ``[3, H, W]`` float32 tensor in [0, 1]."""
    if name not in PHOTOS:
        raise ValueError(f"unknown photo {name!r}; bundled photos: {', '.join(PHOTOS)}")
    return PHOTOS[name]()


def random_crops(
    photos: Sequence[str | torch.Tensor],
    size: int,
    count: int,
    generator: torch.Generator,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """``count`` square crops ``[count, 3, size, size]``, the same for the same generator state.

    ``photos`` are photo names or ``[3, H, W]`` images. Each crop picks a photo uniformly, then a
    top-left corner uniformly among the positions where the crop fits.
    """
    if not photos:
        raise ValueError("random_crops needs at least one photo")
    images = [load_photo(p) if isinstance(p, str) else p for p in photos]
    for image in images:
        if min(image.shape[-2:]) < size:
            raise ValueError(f"crop size {size} exceeds a photo of size {tuple(image.shape[-2:])}")
    crops = torch.empty(count, 3, size, size, dtype=dtype)
    choices = torch.randint(len(images), (count,), generator=generator)
    for i, choice in enumerate(choices.tolist()):
        image = images[choice]
        height, width = image.shape[-2:]
        top = int(torch.randint(height - size + 1, (), generator=generator))
        left = int(torch.randint(width - size + 1, (), generator=generator))
        crops[i] = image[:, top : top + size, left : left + size]
    return crops


def center_crop(image: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """The central ``size`` (an int for a square, or ``(h, w)``) of an image or batch."""
    crop_h, crop_w = (size, size) if isinstance(size, int) else size
    height, width = image.shape[-2:]
    if crop_h > height or crop_w > width:
        raise ValueError(f"crop {(crop_h, crop_w)} exceeds the image size {(height, width)}")
    top, left = (height - crop_h) // 2, (width - crop_w) // 2
    return image[..., top : top + crop_h, left : left + crop_w]
