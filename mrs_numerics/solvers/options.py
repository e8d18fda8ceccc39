"""The options every grid sampler shares, validated once, and the x̂₀ limiters."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from mrs_numerics.schedules import grids
from mrs_numerics.solvers.parameterization import check_prediction
from mrs_numerics.solvers.protocols import NoiseSource
from mrs_numerics.solvers.randomness import as_noise_source


@dataclass(frozen=True)
class Thresholding:
    """Dynamic thresholding of x̂₀ (Imagen's, as in DPM-Solver).

    Per sample, s = clamp(quantile(|x̂₀|, ratio), max_value, cap); x̂₀ ← clamp(x̂₀, −s, s)/s.
    Without ``cap`` (the default, as in DPM-Solver) s has no upper bound; the official MR
    Sampler code caps it at its ``threshold_max`` = 1.5 (``Thresholding(cap=1.5)``).

    Attributes:
        ratio: The quantile of |x̂₀| taken per sample, in (0, 1].
        max_value: The least threshold s (values within [−max_value, max_value] are kept).
        cap: The largest threshold s (None: no bound); at least ``max_value``.
    """

    ratio: float = 0.995
    max_value: float = 1.0
    cap: float | None = None

    def __post_init__(self):
        if not 0.0 < self.ratio <= 1.0:
            raise ValueError(f"thresholding ratio must be in (0, 1], got {self.ratio!r}")
        if not self.max_value > 0.0:
            raise ValueError(f"thresholding max_value must be > 0, got {self.max_value!r}")
        if self.cap is not None and not self.cap >= self.max_value:
            raise ValueError(
                f"thresholding cap must be ≥ max_value = {self.max_value!r}, got {self.cap!r}"
            )

    def __call__(self, data: torch.Tensor) -> torch.Tensor:
        """The thresholded x̂₀ (same shape and dtype)."""
        flat = data.abs().reshape(data.shape[0], -1).float()
        s = torch.quantile(flat, self.ratio, dim=1).clamp(min=self.max_value, max=self.cap)
        s = s.to(data.dtype).reshape(-1, *([1] * (data.dim() - 1)))
        return torch.maximum(torch.minimum(data, s), -s) / s


@dataclass(frozen=True)
class SamplerOptions:
    """What every sampler on a time grid shares, checked once when it is built.

    Attributes:
        model_prediction: What the model returns: ``"noise"``, ``"data"``, ``"velocity"``
            or ``"score"`` (converted at every call; see
            [Parameterisations](../theory.md#parameterisations)).
        grid: Step spacing for ``steps=N``: ``"lambda"`` (uniform in λ), ``"time"`` or
            ``"karras"`` (see [`timesteps`][mrs_numerics.schedules.grids.timesteps]).
        t_start: First (noisiest) time of the grid; default the schedule's ``t_max``.
        t_end: Last time; default ``t_min``, or where σ/Λ = 2e-3 if σ(t_min) = 0.
        lam_min: Start no noisier than λ = lam_min (clips ``t_start`` to t(lam_min)).
        rho: The Karras spacing's ρ (> 0).
        denoise_last: After the last step, one more network call returns x̂₀ there.
        clip_x0: Clamp every x̂₀ to ``(low, high)`` (through the data form for noise solvers).
        thresholding: Dynamic thresholding of x̂₀ (``True`` for the defaults).
        noise_fn: The noise source of stochastic steps
            (a [`NoiseSource`][mrs_numerics.solvers.protocols.NoiseSource]); default: draws
            from the ``generator`` given to ``sample``.
    """

    model_prediction: str = "noise"
    grid: str = "lambda"
    t_start: float | None = None
    t_end: float | None = None
    lam_min: float | None = None
    rho: float = 7.0
    denoise_last: bool = False
    clip_x0: tuple[float, float] | None = None
    thresholding: Thresholding | None = None
    noise_fn: NoiseSource | None = None

    def __post_init__(self):
        check_prediction(self.model_prediction)
        if self.grid not in grids.SPACINGS:
            raise ValueError(f"unknown grid {self.grid!r}; allowed: {', '.join(grids.SPACINGS)}")
        for name in ("t_start", "t_end", "lam_min"):
            value = getattr(self, name)
            if value is not None and not _finite_real(value):
                raise ValueError(f"{name} must be a finite number or None, got {value!r}")
        if not (_finite_real(self.rho) and self.rho > 0):
            raise ValueError(f"rho must be a finite number > 0, got {self.rho!r}")
        clip = self.clip_x0
        if clip is not None:
            if not (len(clip) == 2 and all(map(_finite_real, clip)) and clip[0] < clip[1]):
                raise ValueError(
                    f"clip_x0 must be a (low, high) pair with low < high, got {clip!r}"
                )
            object.__setattr__(self, "clip_x0", (float(clip[0]), float(clip[1])))
        threshold = self.thresholding
        if threshold is True:
            object.__setattr__(self, "thresholding", Thresholding())
        elif threshold is False:
            object.__setattr__(self, "thresholding", None)
        elif threshold is not None and not isinstance(threshold, Thresholding):
            raise TypeError(
                f"thresholding must be True, False, None or a Thresholding, got {threshold!r}"
            )
        object.__setattr__(self, "noise_fn", as_noise_source(self.noise_fn))


def _finite_real(value) -> bool:
    try:
        return math.isfinite(float(value)) and not isinstance(value, bool)
    except (TypeError, ValueError):
        return False
