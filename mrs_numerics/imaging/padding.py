"""Padding a batch to a network's multiple and cropping it back."""

from __future__ import annotations

import torch
from torch.nn import functional


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
    """The top-left ``size = (H, W)`` of a batch padded by `pad_to_multiple`."""
    height, width = size
    return batch[..., :height, :width]
