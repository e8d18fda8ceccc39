"""Synthetic degradations for the restoration tasks: clean images in, degraded images (μ) out.

``degrade(task, clean, generator)`` maps a ``[3, H, W]`` image or ``[B, 3, H, W]`` batch in
[0, 1] to its degraded version, the same for the same generator state. The tasks:

- ``denoise``: y = x + σ·ε with σ = 50/255, **not clipped**: IR-SDE's synthetic denoising data
  adds the noise to the float image and keeps values outside [0, 1], and the MR process's mean μ
  is that unclipped image. (Writing it to an 8-bit file clips and quantises it.)
- ``lowlight``: y = clip((0.25·x)^1.5 + σ·ε) with σ = 5/255: a quarter of the exposure, a
  gamma-1.5 tone curve that crushes the shadows, and mild sensor noise.
- ``jpeg``: 8-bit JPEG compression at quality 10 with 4:2:0 chroma subsampling (PIL), per image.
- ``blur``: y = clip(k * x + σ·ε): a Gaussian blur of σ_blur = 2 px (13×13 kernel, reflect
  padding) and noise of σ = 2/255.

Every task but ``denoise`` is clipped to [0, 1]: they model captured photographs, which IR-SDE
trains on as 8-bit images (LOL, GoPro, JPEG-compressed files).
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch.nn import functional

from mrs_numerics.imaging.files import from_uint8, to_uint8

DENOISE_SIGMA = 50 / 255
LOWLIGHT_EXPOSURE = 0.25
LOWLIGHT_GAMMA = 1.5
LOWLIGHT_SIGMA = 5 / 255
JPEG_QUALITY = 10
BLUR_SIGMA_PX = 2.0
BLUR_NOISE_SIGMA = 2 / 255


@dataclass(frozen=True)
class Degradation:
    """One task's degradation: ``apply(batch, generator)`` on ``[B, 3, H, W]``.

    Attributes:
        name: The task's name (its key in
            [`TASKS`][mrs_numerics.imaging.degradations.TASKS]).
        description: One line for listings.
        apply: ``apply(batch, generator)``: the degraded batch, a function of the batch and the
            generator state (``None``: torch's global RNG).
        clipped: Whether the result is clipped to [0, 1].
    """

    name: str
    description: str
    apply: Callable[[torch.Tensor, torch.Generator | None], torch.Tensor]
    clipped: bool


def _noise(like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    device = generator.device if generator is not None else like.device
    noise = torch.randn(like.shape, generator=generator, dtype=like.dtype, device=device)
    return noise.to(like.device)


def _denoise(batch: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return batch + DENOISE_SIGMA * _noise(batch, generator)


def _lowlight(batch: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    dark = (LOWLIGHT_EXPOSURE * batch.clamp(0.0, 1.0)) ** LOWLIGHT_GAMMA
    return (dark + LOWLIGHT_SIGMA * _noise(batch, generator)).clamp(0.0, 1.0)


def _jpeg(batch: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    compressed = []
    for image in batch:
        buffer = io.BytesIO()
        Image.fromarray(to_uint8(image)).save(
            buffer, format="JPEG", quality=JPEG_QUALITY, subsampling=2
        )
        buffer.seek(0)
        with Image.open(buffer) as decoded:
            compressed.append(from_uint8(np.asarray(decoded.convert("RGB"))))
    return torch.stack(compressed).to(batch.device, batch.dtype)


def gaussian_kernel(sigma: float, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The normalised 1-D Gaussian of standard deviation ``sigma`` px, radius ⌈3σ⌉."""
    radius = math.ceil(3 * sigma)
    offsets = torch.arange(-radius, radius + 1, dtype=dtype)
    weights = torch.exp(-(offsets**2) / (2 * sigma**2))
    return weights / weights.sum()


def gaussian_blur(batch: torch.Tensor, sigma: float) -> torch.Tensor:
    """A separable Gaussian blur of each channel with reflect padding (replicate if tiny)."""
    kernel = gaussian_kernel(sigma, batch.dtype).to(batch.device)
    radius = kernel.numel() // 2
    channels = batch.shape[1]
    mode = "reflect" if min(batch.shape[-2:]) > radius else "replicate"
    padded = functional.pad(batch, (radius, radius, radius, radius), mode=mode)
    rows = kernel.reshape(1, 1, 1, -1).expand(channels, 1, 1, -1)
    columns = kernel.reshape(1, 1, -1, 1).expand(channels, 1, -1, 1)
    blurred = functional.conv2d(padded, rows, groups=channels)
    return functional.conv2d(blurred, columns, groups=channels)


def _blur(batch: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    blurred = gaussian_blur(batch, BLUR_SIGMA_PX)
    return (blurred + BLUR_NOISE_SIGMA * _noise(batch, generator)).clamp(0.0, 1.0)


TASKS: dict[str, Degradation] = {
    "denoise": Degradation(
        "denoise", "additive Gaussian noise σ = 50/255, unclipped (IR-SDE)", _denoise, False
    ),
    "lowlight": Degradation(
        "lowlight", "(0.25·x)^1.5 plus Gaussian noise σ = 5/255, clipped", _lowlight, True
    ),
    "jpeg": Degradation("jpeg", "JPEG at quality 10, 4:2:0 chroma (PIL)", _jpeg, True),
    "blur": Degradation(
        "blur", "Gaussian blur σ = 2 px plus Gaussian noise σ = 2/255, clipped", _blur, True
    ),
}
"""Every restoration task by name."""


def task(name: str) -> Degradation:
    """The degradation of task ``name`` (a clear error listing the tasks otherwise)."""
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; allowed: {', '.join(TASKS)}") from None


def degrade(
    name: str, clean: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """The degraded version of a ``[3, H, W]`` image or ``[B, 3, H, W]`` batch for task ``name``.

    The result is a function of ``clean`` and the generator state (``None``: torch's global RNG).
    """
    degradation = task(name)
    if clean.ndim not in (3, 4) or clean.shape[-3] != 3:
        raise ValueError(f"need a [3, H, W] image or [B, 3, H, W] batch, got {tuple(clean.shape)}")
    batch = clean.unsqueeze(0) if clean.ndim == 3 else clean
    degraded = degradation.apply(batch, generator)
    return degraded[0] if clean.ndim == 3 else degraded
