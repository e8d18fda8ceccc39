"""PSNR and SSIM as the MR Sampler and IR-SDE evaluations compute them.

RGB, data range 1, after cropping a 4-pixel border. SSIM uses Wang et al.'s settings (Gaussian
window σ = 1.5, 11×11, population covariances), averaged over the three channels.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from skimage.metrics import structural_similarity

METRIC_BORDER = 4
"""Pixels cropped from every side before PSNR and SSIM."""


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
