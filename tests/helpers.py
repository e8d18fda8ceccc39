"""Helpers shared by the test modules (no test module imports another)."""

from __future__ import annotations

import torch


def draw(noise, times, step: int, shape, dtype=torch.float64, device="cpu") -> torch.Tensor:
    """The z a noise source gives step ``step`` of the grid ``times`` (t_from → t_to)."""
    t_from, t_to = float(times[step]), float(times[step + 1])
    return noise(step, t_from, t_to, tuple(shape), dtype, torch.device(device))
