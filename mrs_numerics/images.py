"""Images for restoration: bundled photos, crops, PNG/JPEG files, padding, PSNR and SSIM.

An image is a float tensor in [0, 1], RGB, shape ``[3, H, W]``; a batch is ``[B, 3, H, W]``.

The photos ship inside installed wheels (scikit-image's ``skimage.data`` and matplotlib's sample
data), so nothing is downloaded. :data:`HELDOUT_PHOTOS` are reserved for evaluation and are never
part of :data:`TRAIN_PHOTOS`.

The metrics follow the MR Sampler and IR-SDE evaluations: PSNR and SSIM on RGB after cropping a
4-pixel border, data range 1. SSIM uses Wang et al.'s settings (Gaussian window σ = 1.5, 11×11,
population covariances), averaged over the three channels.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional

METRIC_BORDER = 4
"""Pixels cropped from every side before PSNR and SSIM."""
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
"""File suffixes :func:`read_image` and :func:`write_image` handle (case-insensitive)."""
JPEG_WRITE_QUALITY = 95
"""Quality of JPEG files written by :func:`write_image`."""


def from_uint8(array: np.ndarray) -> torch.Tensor:
    """An ``[H, W, 3]`` uint8 array as a float32 ``[3, H, W]`` tensor in [0, 1]."""
    return torch.tensor(array, dtype=torch.uint8).permute(2, 0, 1).float() / 255.0


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """A ``[3, H, W]`` image as an ``[H, W, 3]`` uint8 array (clamped to [0, 1], rounded)."""
    scaled = image.detach().to("cpu", torch.float64).clamp(0.0, 1.0) * 255.0
    return scaled.round().to(torch.uint8).permute(1, 2, 0).numpy()


# ---------------------------------------------------------------------------------------------
# Bundled photos
# ---------------------------------------------------------------------------------------------


def _skimage_photo(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from skimage import data

        return getattr(data, name)()

    return load


def _stereo_view(index: int) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from skimage import data

        return data.stereo_motorcycle()[index]

    return load


def _grace_hopper() -> np.ndarray:
    from matplotlib import cbook

    with cbook.get_sample_data("grace_hopper.jpg") as file:
        return _pil_rgb_array(file)


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


# ---------------------------------------------------------------------------------------------
# Crops
# ---------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------


def _pil_rgb_array(file) -> np.ndarray:
    from PIL import Image, ImageOps

    with Image.open(file) as opened:
        picture = ImageOps.exif_transpose(opened)
        if picture.mode == "I" or picture.mode.startswith("I;16"):
            grey = np.asarray(picture, dtype=np.float64) / 65535.0
            return np.repeat((grey * 255.0).round().astype(np.uint8)[..., None], 3, axis=2)
        return np.asarray(picture.convert("RGB"))


def read_image(path: str | Path) -> torch.Tensor:
    """A PNG or JPEG file as a ``[3, H, W]`` float32 tensor in [0, 1] (grey becomes RGB).

    Alpha is dropped; 16-bit grey PNGs are reduced to 8 bits; JPEG EXIF orientation is applied.
    An unreadable file raises ValueError naming the path.
    """
    try:
        return from_uint8(_pil_rgb_array(path))
    except FileNotFoundError:
        raise ValueError(f"cannot read image {str(path)!r}: no such file") from None
    except (OSError, ValueError) as error:  # PIL's UnidentifiedImageError is an OSError
        raise ValueError(f"cannot read image {str(path)!r}: {error}") from None


def write_image(path: str | Path, image: torch.Tensor) -> None:
    """Write a ``[3, H, W]`` image as 8-bit PNG or JPEG (by suffix; clamped to [0, 1])."""
    from PIL import Image

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise ValueError(
            f"cannot write {str(path)!r}: unknown image suffix; use {', '.join(IMAGE_SUFFIXES)}"
        )
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"write_image needs a [3, H, W] image, got {tuple(image.shape)}")
    options = {"quality": JPEG_WRITE_QUALITY} if suffix != ".png" else {}
    Image.fromarray(to_uint8(image)).save(path, **options)


def image_files(folder: str | Path) -> list[Path]:
    """The PNG and JPEG files directly inside ``folder``, sorted by name."""
    folder = Path(folder)
    return sorted(
        path
        for path in folder.iterdir()
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES
    )


# ---------------------------------------------------------------------------------------------
# Padding
# ---------------------------------------------------------------------------------------------


def pad_to_multiple(batch: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """``(padded, (H, W))``: H and W raised to multiples of ``multiple`` at the bottom and right.

    Reflect padding keeps the statistics of the border (a network sees no artificial edge);
    where the image is too small to reflect (padding ≥ size) the border is replicated.
    """
    if multiple < 1:
        raise ValueError(f"multiple must be ≥ 1, got {multiple}")
    height, width = batch.shape[-2:]
    pad_h, pad_w = -height % multiple, -width % multiple
    if pad_h == 0 and pad_w == 0:
        return batch, (height, width)
    mode = "reflect" if pad_h < height and pad_w < width else "replicate"
    return functional.pad(batch, (0, pad_w, 0, pad_h), mode=mode), (height, width)


def unpad(batch: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The top-left ``size = (H, W)`` of a batch padded by :func:`pad_to_multiple`."""
    height, width = size
    return batch[..., :height, :width]


# ---------------------------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------------------------


def _metric_pairs(
    a: torch.Tensor, b: torch.Tensor, border: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {tuple(a.shape)} and {tuple(b.shape)}")
    if a.ndim not in (3, 4):
        raise ValueError(f"need [C, H, W] images or [B, C, H, W] batches, got {tuple(a.shape)}")
    height, width = a.shape[-2:]
    if border < 0 or min(height, width) <= 2 * border:
        raise ValueError(f"a {height}×{width} image has nothing left after a {border}-px crop")
    cropped = (
        image.detach().to("cpu", torch.float64)[
            ..., border : height - border, border : width - border
        ]
        for image in (a, b)
    )
    a64, b64 = (image.reshape(-1, *image.shape[-3:]).numpy() for image in cropped)
    return list(zip(a64, b64, strict=True))


def _per_image(values: list[float], batched: bool) -> float | torch.Tensor:
    return torch.tensor(values, dtype=torch.float64) if batched else values[0]


def psnr(a: torch.Tensor, b: torch.Tensor, border: int = METRIC_BORDER) -> float | torch.Tensor:
    """PSNR in dB (data range 1) after a ``border`` crop: a float for one image, a float64
    tensor ``[B]`` for a batch; identical images give ``inf``."""
    values = []
    for x, y in _metric_pairs(a, b, border):
        mse = float(np.mean((x - y) ** 2))
        values.append(math.inf if mse == 0.0 else 10.0 * math.log10(1.0 / mse))
    return _per_image(values, a.ndim == 4)


def ssim(a: torch.Tensor, b: torch.Tensor, border: int = METRIC_BORDER) -> float | torch.Tensor:
    """SSIM on RGB (data range 1, Gaussian σ = 1.5 window, mean over channels) after a
    ``border`` crop: a float for one image, a float64 tensor ``[B]`` for a batch."""
    from skimage.metrics import structural_similarity

    values = [
        float(
            structural_similarity(
                x,
                y,
                channel_axis=0,
                data_range=1.0,
                gaussian_weights=True,
                sigma=1.5,
                use_sample_covariance=False,
            )
        )
        for x, y in _metric_pairs(a, b, border)
    ]
    return _per_image(values, a.ndim == 4)
