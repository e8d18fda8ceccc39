"""Training small conditional MR restoration networks on the bundled photos.

Two architectures (``arch``), each with the time convention and loss it was made for. Per
iteration: random crops x₀ of the training photos (the held-out photos are never used), their
degradation μ, a time t and the MR marginal x_t = μ + α_t(x₀ − μ) + σ_t ε.

``arch="unet"``, the package's [`ConditionalUNet`][mrs_numerics.models.unet.ConditionalUNet]:
continuous time on a continuous schedule (default: cosine, Λ = 50/255, eps = 0.005), t ~ U(t_low,
1), ``net(x_t, t, μ)``. Objectives:

- ``data`` prediction: L1 between x̂₀ and x₀ (IR-SDE uses L1);
- ``noise`` prediction: L1 between (σ_t/Λ)·ε̂ and (σ_t/Λ)·ε. Plain ε-matching weights every
  time alike, but along the reverse path an ε error moves the state by about σ_t times it, so
  the loss is weighted by σ_t/Λ ∈ (0, 1]: errors near the clean end (small σ), where plain
  ε-matching over-fits noise the sampler never sees, cost little; the state-space error is
  what is matched (the role of IR-SDE's loss on the reverse-step mean).

  The network embeds time over [0, ``time_scale``] (default 10, not the DDPM convention 1000):
  its sinusoids then vary on a time scale of about 1/10, so the PF-ODE the network drives is
  smooth in t and ODE solvers show their orders at practical step counts (with 1000 they do not
  until steps far below 1e-3 in t).

``arch="irsde"``, IR-SDE's
[`IRSDEConditionalUNet`][mrs_numerics.models.irsde_unet.IRSDEConditionalUNet], trained as
IR-SDE trains it: on IR-SDE's table schedule (``schedule`` names the θ table: cosine, linear or
constant; ``T`` indices, the −θ₀ convention α(0) = 1,
[`irsde_schedule`][mrs_numerics.models.checkpoints.irsde_schedule]) with the integer table index
as time, t ~ U{1, …, T}, ``ε̂ = net(x_t, μ, t)`` (noise prediction only). With Δ_t = Θ_t − Θ_{t−1}
(IR-SDE's θ_t·dt) and the score s = −ε̂/σ_t, the loss is the L1 distance between IR-SDE's
reverse-SDE step mean and the optimal (posterior) mean of x_{t−1} given x_t and x₀::

    m̂ = x_t − [Δ_t (μ − x_t) − 2Λ² Δ_t s]
    m* = μ + α_t/α_{t−1} · (1 − α_{t−1}²)/(1 − α_t²) · (x_t − μ)
           + α_{t−1} · (1 − α_t²/α_{t−1}²)/(1 − α_t²) · (x₀ − μ)

so m̂ − m* = −(2Λ²Δ_t/σ_t)(ε̂ − ε*) for the ε* that makes the step exact: noise matching
weighted by the step's own noise gain (IR-SDE's "maximum-likelihood" objective). The result
is exported in the original format: a ``.pth`` state dict and an option YAML in IR-SDE's layout
that [`read_options`][mrs_numerics.models.checkpoints.read_options] and
[`load_irsde_checkpoint`][mrs_numerics.models.checkpoints.load_irsde_checkpoint] read.

Both: Adam with cosine learning-rate decay, an exponential moving average of the weights (what
is shipped; its decay ramps up as (1 + step)/(10 + step) so that short runs are not dominated
by the zero-initialised start), seeded, resumable from a checkpoint, with a progress bar. Every
argument is checked before the first iteration ([`TrainConfig.check`], [`check_export`],
[`check_work`]).
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn
from tqdm.auto import tqdm

from mrs_numerics import __version__, schedules
from mrs_numerics._errors import Advice, InputError
from mrs_numerics._files import atomic_path, check_output, write_text
from mrs_numerics.imaging.degradations import TASKS, degrade
from mrs_numerics.imaging.metrics import psnr, ssim
from mrs_numerics.imaging.photos import HELDOUT_PHOTOS, TRAIN_PHOTOS, center_crop, load_photo
from mrs_numerics.models.checkpoints import irsde_schedule
from mrs_numerics.models.input_files import MAPPING, load_torch_file
from mrs_numerics.models.irsde_unet import IRSDEConditionalUNet
from mrs_numerics.models.unet import ConditionalUNet
from mrs_numerics.schedules.discrete import DiscreteSchedule
from mrs_numerics.solvers.adapters import IRSDEAdapter
from mrs_numerics.solvers.factory import make_sampler

TRAINED_PREDICTIONS = ("data", "noise")
"""What the networks are trained to predict (x̂₀ or ε̂; the samplers convert either)."""

TRAINED_ARCHITECTURES = ("unet", "irsde")
"""``unet``: the package's ConditionalUNet on a continuous schedule; ``irsde``: IR-SDE's
ConditionalUNet on IR-SDE's tables, time = index, exported in IR-SDE's format."""

IRSDE_TABLES = ("cosine", "linear", "constant")
"""The θ tables of IR-SDE's schedule (``schedule`` with ``arch="irsde"``)."""

IRSDE_PREDICTION = "noise"
"""What IR-SDE's networks predict (the only prediction of ``arch="irsde"``)."""

DEFAULT_TIME_SCALE = 10.0
"""The embedded time range [0, S] of ``arch="unet"`` when not given."""

DEFAULT_T = 100
"""IR-SDE's table length (its option files say ``T: 100``) when not given."""

DEFAULT_EPS = 0.005
"""α at the end of the schedule when not given (IR-SDE's and the continuous schedules')."""

DEFAULT_DEPTH = 4
"""IR-SDE's network depth when not given (the published networks' depth)."""

MAX_SEED = 2**63 - 1
"""The largest seed torch's generators take."""

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_RESERVED_NAMES = ("index",)


@dataclass
class TrainConfig:
    """Everything that determines a training run (recorded with the shipped weights).

    Attributes:
        task: The restoration task (a key of
            [`TASKS`][mrs_numerics.imaging.degradations.TASKS]).
        prediction: What the network learns to predict: ``"data"`` (x̂₀) or ``"noise"`` (ε̂);
            ``arch="irsde"`` predicts noise only.
        iterations: Optimiser steps.
        batch: Random crops per step.
        crop: Side of the square training crops (a multiple of the network's down-sampling
            factor: 4 for the UNet, ``2**depth`` for IR-SDE's).
        lr: Adam's initial learning rate (decayed on a cosine to 0).
        ema: The largest decay of the weights' moving average (what is shipped).
        seed: Seeds the weights, the crops, the degradations and the noise.
        schedule: ``arch="unet"``: the continuous schedule by name (for
            [`schedules.get`][mrs_numerics.schedules.get]); ``arch="irsde"``: IR-SDE's θ table
            (one of [`IRSDE_TABLES`][mrs_numerics.models.training.IRSDE_TABLES]).
        max_sigma: Λ of the schedule (in (0, 1): 50/255, not 50).
        t_low: ``arch="unet"``: training times are drawn from U(t_low, 1).
        base_channels: Width of the network's first level (IR-SDE's ``nf``).
        time_scale: ``arch="unet"``: the UNet embeds time over [0, time_scale] (None:
            [`DEFAULT_TIME_SCALE`][mrs_numerics.models.training.DEFAULT_TIME_SCALE]); not for
            ``arch="irsde"``, whose time is the table index.
        arch: One of [`TRAINED_ARCHITECTURES`][mrs_numerics.models.training.TRAINED_ARCHITECTURES].
        depth: ``arch="irsde"``: the network's resolution levels (None: 4).
        T: ``arch="irsde"``: the table's last index (None: 100).
        eps: α at the schedule's end (None: 0.005).
    """

    task: str = "denoise"
    prediction: str = "data"
    iterations: int = 4000
    batch: int = 32
    crop: int = 64
    lr: float = 2e-4
    ema: float = 0.999
    seed: int = 0
    schedule: str = "cosine"
    max_sigma: float = 50 / 255
    t_low: float = 0.02
    base_channels: int = 32
    time_scale: float | None = None
    arch: str = "unet"
    depth: int | None = None
    T: int | None = None
    eps: float | None = None

    def check(self) -> None:
        """Refuse, with one line naming the parameter and what is allowed, what cannot train.

        Raises:
            InputError: For the first bad value (its message names the parameter; its advice
                names the parameter to change, which the command line shows as its flag).
        """
        if self.arch not in TRAINED_ARCHITECTURES:
            raise _bad("arch", self.arch, f"one of {', '.join(TRAINED_ARCHITECTURES)}", "unet")
        if self.task not in TASKS:
            raise InputError(
                f"unknown task {self.task!r}; allowed: {', '.join(TASKS)}",
                advice=Advice("task", "denoise"),
            )
        if self.prediction not in TRAINED_PREDICTIONS:
            raise _bad("prediction", self.prediction, "data or noise", "data")
        for name in ("iterations", "batch", "base_channels"):
            _positive_integer(name, getattr(self, name))
        _integer_in("seed", self.seed, 0, MAX_SEED)
        _number_in("lr", self.lr, "a finite number > 0", lambda v: v > 0, 2e-4)
        _number_in("ema", self.ema, "a number in [0, 1)", lambda v: 0 <= v < 1, 0.999)
        _number_in(
            "max_sigma",
            self.max_sigma,
            "Λ in (0, 1), e.g. 50/255 = 0.196 (not 50)",
            lambda v: 0 < v < 1,
            round(50 / 255, 4),
        )
        if self.eps is not None:
            _number_in("eps", self.eps, "a number in (0, 1)", lambda v: 0 < v < 1, DEFAULT_EPS)
        if self.arch == "irsde":
            self._check_irsde()
        else:
            self._check_unet()
        _integer_in("crop", self.crop, 1, max_crop())
        if self.crop % self.crop_multiple:
            nearest = max(
                self.crop_multiple, round(self.crop / self.crop_multiple) * self.crop_multiple
            )
            raise InputError(
                f"crop must be a multiple of {self.crop_multiple} ({self._multiple_reason()}), "
                f"got {self.crop}",
                advice=Advice("crop", min(nearest, max_crop()), "(a multiple)"),
            )

    def _check_unet(self) -> None:
        for name in ("depth", "T"):
            if getattr(self, name) is not None:
                raise _only_irsde(name, getattr(self, name))
        if self.time_scale is not None:
            _number_in(
                "time_scale",
                self.time_scale,
                "a finite number > 0",
                lambda v: v > 0,
                DEFAULT_TIME_SCALE,
            )
        _number_in("t_low", self.t_low, "a number in [0, 1)", lambda v: 0 <= v < 1, 0.02)
        try:
            self.schedule_object()
        except (ValueError, OSError, LookupError, TypeError) as error:
            raise InputError(
                f"schedule {self.schedule!r} cannot be used ({error}); allowed: "
                f"{', '.join(schedules.BUILTIN)} or a user schedule from mrs-numerics codegen",
                advice=Advice("schedule", "cosine"),
            ) from None

    def _check_irsde(self) -> None:
        if self.time_scale is not None:
            raise InputError(
                f"time_scale ({self.time_scale}) does not apply to arch 'irsde': its network "
                "is fed the table index 0…T, as IR-SDE trains it; leave time_scale out"
            )
        if self.prediction != IRSDE_PREDICTION:
            raise InputError(
                f"arch 'irsde' predicts noise, as IR-SDE's networks do; got prediction "
                f"{self.prediction!r}",
                advice=Advice("prediction", IRSDE_PREDICTION),
            )
        if self.schedule not in IRSDE_TABLES:
            raise _bad(
                "schedule", self.schedule, f"IR-SDE's tables {', '.join(IRSDE_TABLES)}", "cosine"
            )
        _integer_in("T", self.table_length, 2, 100_000)
        _integer_in("depth", self.network_depth, 1, 8)
        if self.base_channels < 4:
            raise _bad(
                "base_channels",
                self.base_channels,
                "≥ 4 (IR-SDE's time embedding needs nf ≥ 4)",
                16,
            )

    @property
    def table_length(self) -> int:
        """T of IR-SDE's table (``arch="irsde"``)."""
        return DEFAULT_T if self.T is None else self.T

    @property
    def network_depth(self) -> int:
        """Resolution levels of IR-SDE's network (``arch="irsde"``)."""
        return DEFAULT_DEPTH if self.depth is None else self.depth

    @property
    def crop_multiple(self) -> int:
        """What the crop side must be a multiple of: the network's down-sampling factor."""
        return 2**self.network_depth if self.arch == "irsde" else 4

    def _multiple_reason(self) -> str:
        if self.arch == "irsde":
            return f"2**depth, the down-sampling of IR-SDE's network at depth {self.network_depth}"
        return "the UNet's down-sampling"

    def sde_section(self) -> dict[str, Any]:
        """The ``sde`` section of IR-SDE's option file for this run (``arch="irsde"``).

        ``max_sigma`` in IR-SDE's pixel units (Λ·255) where that is a whole number, else Λ.
        """
        pixels = self.max_sigma * 255
        max_sigma: float | int = (
            round(pixels) if abs(pixels - round(pixels)) < 1e-9 else self.max_sigma
        )
        if isinstance(max_sigma, int) and max_sigma < 1:
            max_sigma = self.max_sigma
        return {
            "max_sigma": max_sigma,
            "T": self.table_length,
            "schedule": self.schedule,
            "eps": DEFAULT_EPS if self.eps is None else self.eps,
        }

    def schedule_object(self):
        """The schedule the network is trained on."""
        if self.arch == "irsde":
            return irsde_schedule(self.sde_section())
        parameters: dict[str, Any] = {"max_sigma": self.max_sigma}
        if self.eps is not None:
            parameters["eps"] = self.eps
        return schedules.get(self.schedule, **parameters)


def _bad(name: str, value: Any, allowed: str, example: Any) -> InputError:
    return InputError(f"{name} must be {allowed}, got {value!r}", advice=Advice(name, example))


def _positive_integer(name: str, value: Any) -> None:
    _integer_in(name, value, 1, None)


def _integer_in(name: str, value: Any, least: int, most: int | None) -> None:
    allowed = f"an integer ≥ {least}" if most is None else f"an integer in [{least}, {most}]"
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(name, value, allowed, least)
    if value < least or (most is not None and value > most):
        raise _bad(name, value, allowed, least if value < least else most)


def _number_in(name: str, value: Any, allowed: str, ok, example: Any) -> None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number) or not ok(number):
        raise _bad(name, value, allowed, example)


def _only_irsde(name: str, value: Any) -> InputError:
    return InputError(
        f"{name} ({value}) applies to arch 'irsde' only (IR-SDE's network and tables)",
        advice=Advice("arch", "irsde", f"to train IR-SDE's network, or leave {name} out"),
    )


@functools.lru_cache(maxsize=1)
def max_crop() -> int:
    """The largest crop side every training photo holds (the smallest photo side)."""
    return min(min(load_photo(name).shape[-2:]) for name in TRAIN_PHOTOS)


def network_config(config: TrainConfig) -> dict:
    """The constructor arguments of the network a run trains (recorded with the weights).

    ``arch="unet"``: ``{base_channels, time_scale}`` of
    [`ConditionalUNet`][mrs_numerics.models.unet.ConditionalUNet]; ``arch="irsde"``: IR-SDE's
    ``network_G.setting`` ``{in_nc, out_nc, nf, depth}``.
    """
    if config.arch == "irsde":
        return {"in_nc": 3, "out_nc": 3, "nf": config.base_channels, "depth": config.network_depth}
    scale = DEFAULT_TIME_SCALE if config.time_scale is None else config.time_scale
    return {"base_channels": config.base_channels, "time_scale": scale}


def make_network(config: TrainConfig) -> nn.Module:
    """A freshly initialised network of the run's architecture."""
    if config.arch == "irsde":
        return IRSDEConditionalUNet(**network_config(config))
    return ConditionalUNet(**network_config(config))


def check_device(device: str | torch.device) -> torch.device:
    """``device`` as a torch device, refused with one line where it is malformed or absent."""
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise InputError(
            f"device {str(device)!r} is not a device ({error}); allowed: cpu, cuda, cuda:N, mps",
            advice=Advice("device", "cpu"),
        ) from None
    missing = {
        "cuda": "CUDA" if not torch.cuda.is_available() else None,
        "mps": "MPS" if not torch.backends.mps.is_available() else None,
    }.get(resolved.type)
    if missing is not None:
        raise InputError(
            f"device {str(device)!r} asked for, but {missing} is not available here",
            advice=Advice("device", "cpu"),
        )
    count = torch.cuda.device_count() if resolved.type == "cuda" else 0
    if resolved.type == "cuda" and resolved.index is not None and resolved.index >= count:
        raise InputError(
            f"device {str(device)!r}: this machine has {count} CUDA devices (cuda:0 …)",
            advice=Advice("device", "cuda:0"),
        )
    return resolved


def checkpoint_path(out: Path) -> Path:
    """The rolling training checkpoint in the work folder ``out``."""
    return Path(out) / "checkpoint.pt"


def check_work(out: Path, config: TrainConfig, resume: bool, overwrite: bool = False) -> None:
    """Refuse a work folder that cannot take this run, before any training.

    The folder must be a folder (or not exist yet: it is created). Without ``resume`` an
    existing checkpoint there (a previous run's) is kept unless ``overwrite``; with ``resume``
    the checkpoint must exist and record the same configuration.

    Raises:
        InputError: With the parameter that fixes it (``resume``, ``overwrite``, ``work``).
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(
            f"work folder {out} is a file; give a folder", advice=Advice("work", "DIR")
        )
    checkpoint = checkpoint_path(out)
    if not resume:
        if checkpoint.exists() and not overwrite:
            raise InputError(
                f"checkpoint {checkpoint} exists (an earlier run's) and would be replaced",
                advice=Advice("resume", True, "to continue it, or --overwrite to start again"),
            )
        return
    if not checkpoint.is_file():
        raise InputError(
            f"resume: no checkpoint {checkpoint} to continue (a run checkpoints every 500 steps "
            "and at --stop-after); start without resume"
        )
    recorded = _load_checkpoint(checkpoint).get("config")
    if isinstance(recorded, dict):
        differing = sorted(
            key for key, value in asdict(config).items() if recorded.get(key, value) != value
        )
        if differing:
            shown = ", ".join(
                f"{k} {recorded.get(k)!r} → {getattr(config, k)!r}" for k in differing
            )
            raise InputError(
                f"resume: checkpoint {checkpoint} was made with other settings ({shown}); "
                "resume with the same settings, or start a new run in another work folder"
            )


def _load_checkpoint(path: Path) -> dict:
    """The training checkpoint at ``path``, read by the one loader of users' torch files."""
    state = load_torch_file(path, MAPPING, "training checkpoint").content
    _check_resumable(state, path)
    return state


def _photos() -> list[torch.Tensor]:
    return [load_photo(name).float() for name in TRAIN_PHOTOS]


def _crops(photos, size: int, count: int, generator: torch.Generator) -> torch.Tensor:
    """``count`` random size×size crops (uniform photo, uniform position, random flips)."""
    out = []
    choice = torch.randint(len(photos), (count,), generator=generator)
    for k in choice.tolist():
        photo = photos[k]
        _, h, w = photo.shape
        top = int(torch.randint(h - size + 1, (1,), generator=generator))
        left = int(torch.randint(w - size + 1, (1,), generator=generator))
        crop = photo[:, top : top + size, left : left + size]
        if bool(torch.rand(1, generator=generator) < 0.5):
            crop = crop.flip(-1)
        out.append(crop)
    return torch.stack(out)


def loss_terms(net, schedule, x0, mu, t, eps, prediction: str, max_sigma: float):
    """The training loss of one batch of the package's UNet (see the module docstring)."""
    shape = (-1, 1, 1, 1)
    alpha = schedule.alpha(t).to(x0.dtype).reshape(shape)
    sigma = schedule.sigma(t).to(x0.dtype).reshape(shape)
    x_t = mu + alpha * (x0 - mu) + sigma * eps
    out = net(x_t, t.to(x0.dtype), mu)
    if prediction == "data":
        return (out - x0).abs().mean()
    weight = sigma / max_sigma
    return (weight * (out - eps)).abs().mean()


def irsde_loss(net, schedule: DiscreteSchedule, x0, mu, index, eps):
    """IR-SDE's training loss of one batch: L1 between the reverse-step means (module docstring).

    Args:
        net: ``net(x_t, μ, index) -> ε̂``.
        schedule: IR-SDE's tables (time = index).
        x0: Clean crops ``[batch, C, H, W]``.
        mu: Their degradations, shaped like ``x0``.
        index: Integer indices ``[batch]`` in 1 … T.
        eps: The noise, shaped like ``x0``.

    Returns:
        The mean absolute difference between m̂ (the reverse-SDE step mean with the network's
        score) and m* (the posterior mean of x_{t−1} given x_t and x₀).
    """
    shape = (-1, 1, 1, 1)
    now = index.to(torch.float64)

    def table(values):
        return values.to(x0.dtype).reshape(shape)

    alpha_t, alpha_s = table(schedule.alpha(now)), table(schedule.alpha(now - 1))
    sigma_t = table(schedule.sigma(now))
    step = table(schedule.Theta(now) - schedule.Theta(now - 1))  # Δ_t = θ_t·dt
    x_t = mu + alpha_t * (x0 - mu) + sigma_t * eps
    noise = net(x_t, mu, index)
    score = -noise / sigma_t
    predicted = x_t - (step * (mu - x_t) - 2 * schedule.max_sigma**2 * step * score)
    ratio = alpha_t / alpha_s
    denominator = 1 - alpha_t**2
    optimum = (
        mu
        + ratio * (1 - alpha_s**2) / denominator * (x_t - mu)
        + alpha_s * (1 - ratio**2) / denominator * (x0 - mu)
    )
    return (predicted - optimum).abs().mean()


def train(
    config: TrainConfig,
    out: Path,
    device="cpu",
    resume: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
    overwrite: bool = False,
):
    """Train, checkpointing to ``out/checkpoint.pt``; returns (EMA network, facts dict).

    ``stop_after`` ends this call after that many total steps (checkpointed); a later call with
    ``resume=True`` continues exactly where it stopped (same data, noise and learning rate).
    Everything is checked before the first step: the configuration
    ([`TrainConfig.check`][mrs_numerics.models.training.TrainConfig.check]), the device, the
    work folder ([`check_work`][mrs_numerics.models.training.check_work]: an earlier run's
    checkpoint is not replaced unless ``overwrite``).

    Raises:
        InputError: For a bad configuration, device, ``stop_after`` or work folder.
    """
    config.check()
    device = check_device(device)
    if stop_after is not None:
        _positive_integer("stop_after", stop_after)
    out = Path(out)
    check_work(out, config, resume, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    schedule = config.schedule_object()
    net = make_network(config).to(device)
    ema = make_network(config).to(device)
    ema.load_state_dict(net.state_dict())
    optimizer = torch.optim.Adam(net.parameters(), lr=config.lr)
    start, seconds = 0, 0.0
    checkpoint = checkpoint_path(out)
    if resume:
        state = _load_checkpoint(checkpoint)
        net.load_state_dict(state["net"])
        ema.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        start, seconds = int(state["step"]), float(state["seconds"])
    photos = _photos()
    began = time.perf_counter()
    end = config.iterations if stop_after is None else min(stop_after, config.iterations)
    bar = tqdm(range(start, end), disable=not progress, desc=f"train {config.task}")
    for step in bar:
        lr = config.lr * 0.5 * (1 + math.cos(math.pi * step / config.iterations))
        for group in optimizer.param_groups:
            group["lr"] = lr
        x0 = _crops(photos, config.crop, config.batch, generator)
        mu = degrade(config.task, x0, generator).to(device)
        x0 = x0.to(device)
        if config.arch == "irsde":
            index = torch.randint(1, config.table_length + 1, (config.batch,), generator=generator)
            eps = torch.randn(x0.shape, generator=generator).to(device)
            loss = irsde_loss(net, schedule, x0, mu, index.to(device), eps)
        else:
            t = config.t_low + (1 - config.t_low) * torch.rand(config.batch, generator=generator)
            eps = torch.randn(x0.shape, generator=generator).to(device)
            t = t.to(device, torch.float64)
            loss = loss_terms(net, schedule, x0, mu, t, eps, config.prediction, config.max_sigma)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        decay = min(config.ema, (1 + step) / (10 + step))
        with torch.no_grad():
            for p_ema, p in zip(ema.parameters(), net.parameters(), strict=True):
                p_ema.lerp_(p, 1 - decay)
        if step % 50 == 0:
            bar.set_postfix(loss=f"{float(loss.detach()):.4f}")
        if (step + 1) % 500 == 0 or step + 1 == end:
            state = {
                "net": net.state_dict(),
                "ema": ema.state_dict(),
                "optimizer": optimizer.state_dict(),
                "generator": generator.get_state(),
                "step": step + 1,
                "seconds": seconds + time.perf_counter() - began,
                "config": asdict(config),
            }
            with atomic_path(checkpoint, overwrite=True, what="training checkpoint") as path:
                torch.save(state, path)
    facts = {
        "config": asdict(config),
        "completed": end,
        "seconds": seconds + time.perf_counter() - began,
        "device": str(device),
    }
    write_text(out / "facts.json", json.dumps(facts, indent=2), overwrite=True, what="facts")
    return ema.eval(), facts


RESUME_KEYS = ("net", "ema", "optimizer", "generator", "step", "seconds")
"""What a training checkpoint (``out/checkpoint.pt``) holds."""


def _check_resumable(state, path: Path) -> None:
    """Refuse a training checkpoint that ``train`` did not write (it lacks a key to resume)."""
    missing = [key for key in RESUME_KEYS if key not in state]
    if missing:
        raise InputError(
            f"training checkpoint {path} lacks {', '.join(missing)}: it was not written by "
            "mrs-numerics train; move it away or train into another folder"
        )


EVAL_CROP = 128
EVAL_SAMPLER, EVAL_NFE = "posterior", 100


def sampling_model(net: nn.Module, config: TrainConfig):
    """``model(x, t, mu)`` for the samplers: the UNet as it is, IR-SDE's network adapted."""
    if config.arch == "irsde":
        return IRSDEAdapter(net, prediction=IRSDE_PREDICTION)
    return lambda x, t, mu: net(x, t.to(x.dtype), mu)


def evaluate_heldout(net, config: TrainConfig, device="cpu", seed: int = 0) -> dict:
    """PSNR/SSIM of degraded input and of 100-NFE posterior sampling on the held-out photos.

    Center EVAL_CROP² crops of the held-out photos (never seen in training), one degradation
    and one sampling noise per image, seeded.
    """
    schedule = config.schedule_object()
    generator = torch.Generator().manual_seed(seed)
    clean = torch.stack([center_crop(load_photo(n).float(), EVAL_CROP) for n in HELDOUT_PHOTOS])
    degraded = degrade(config.task, clean, generator)
    sampler = make_sampler(EVAL_SAMPLER, schedule, config.prediction)
    steps = EVAL_NFE
    with torch.inference_mode():
        result = sampler.sample(
            sampling_model(net, config),
            degraded.to(device),
            steps=steps,
            generator=torch.Generator(device=device).manual_seed(seed),
        )
    restored = result.x.clamp(0, 1).cpu()
    rows = {}
    for i, name in enumerate(HELDOUT_PHOTOS):
        rows[name] = {
            "input_psnr": float(psnr(degraded[i].clamp(0, 1), clean[i])),
            "restored_psnr": float(psnr(restored[i], clean[i])),
            "input_ssim": float(ssim(degraded[i].clamp(0, 1), clean[i])),
            "restored_ssim": float(ssim(restored[i], clean[i])),
        }
    return {"sampler": EVAL_SAMPLER, "nfe": result.nfe, "crop": EVAL_CROP, "images": rows}


def export_paths(config: TrainConfig, name: str, folder: Path) -> list[Path]:
    """The files an export writes: ``name.pt`` (and the index) for the UNet, ``name.pth`` and
    ``name.yml`` (IR-SDE's format) for ``arch="irsde"``."""
    folder = Path(folder)
    if config.arch == "irsde":
        return [folder / f"{name}.pth", folder / f"{name}.yml"]
    return [folder / f"{name}.pt"]


def check_export(config: TrainConfig, name: str, folder: Path, overwrite: bool = False) -> None:
    """Refuse an export that cannot be written, before any training.

    ``name`` is a file stem (letters, digits, ``_ . -``, not starting with a dot; not
    ``index``); ``folder`` is a writable folder or does not exist yet (it is then created,
    its parent must exist); no file of [`export_paths`] exists, and for the UNet no network of
    that name is in the folder's ``index.json``, unless ``overwrite``.

    Raises:
        InputError: Naming ``export``, ``export_dir`` or ``overwrite``.
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name in _RESERVED_NAMES:
        raise InputError(
            f"export name {name!r} is not a file stem: use letters, digits, '_', '.', '-' (not "
            "starting with '.' or '-', no folders: use export_dir), not "
            f"{', '.join(_RESERVED_NAMES)}",
            advice=Advice("export", "denoise-irsde"),
        )
    folder = Path(folder)
    if folder.exists():
        if not folder.is_dir():
            raise InputError(
                f"export folder {folder} is a file; give a folder",
                advice=Advice("export_dir", "DIR"),
            )
        if not os.access(folder, os.W_OK | os.X_OK):
            raise InputError(
                f"export folder {folder} is not writable",
                advice=Advice("export_dir", "DIR", "(a folder you can write)"),
            )
    elif not folder.parent.is_dir():
        raise InputError(
            f"export folder {folder}: its parent {folder.parent} does not exist; create it first"
        )
    for path in export_paths(config, name, folder):
        if folder.exists():
            check_output(path, overwrite=overwrite, what="exported network")
    index = folder / "index.json"
    if config.arch == "unet" and index.is_file() and not overwrite:
        try:
            entries = json.loads(index.read_text())
        except (OSError, ValueError):
            entries = {}
        if isinstance(entries, dict) and name in entries:
            raise InputError(
                f"network {name!r} is already in {index} and would be replaced",
                advice=Advice("overwrite", True, "to replace it"),
            )


def export(
    net,
    config: TrainConfig,
    facts: dict,
    heldout: dict,
    name: str,
    folder: Path,
    command: str,
    overwrite: bool = False,
):
    """Write the trained EMA weights (float32) and their training facts; returns the weights' path.

    ``arch="unet"``: ``name.pt`` and its entry in ``folder/index.json`` (what
    [`registry`][mrs_numerics.models.registry] lists and loads). ``arch="irsde"``: IR-SDE's
    format, ``name.pth`` (a bare state dict) and ``name.yml`` (the option file, written by
    [`irsde_options`][mrs_numerics.models.training.irsde_options]). Every file is written
    atomically; an existing one is replaced only with ``overwrite``.
    """
    check_export(config, name, folder, overwrite)
    folder = Path(folder)
    folder.mkdir(exist_ok=True)
    state = {k: v.detach().to("cpu", torch.float32) for k, v in net.state_dict().items()}
    weights_path = export_paths(config, name, folder)[0]
    with atomic_path(weights_path, overwrite=overwrite, what="exported network") as path:
        torch.save(state, path)
    if config.arch == "irsde":
        text = irsde_options(config, facts, heldout, name, command)
        write_text(folder / f"{name}.yml", text, overwrite=overwrite, what="option file")
        return weights_path
    index_path = folder / "index.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else {}
    index[name] = {
        "task": config.task,
        "prediction": config.prediction,
        "schedule": config.schedule,
        "max_sigma": config.max_sigma,
        "config": network_config(config),
        "weights": weights_path.name,
        "command": command,
        "seed": config.seed,
        "iterations": config.iterations,
        "seconds": round(facts["seconds"], 1),
        "device": facts["device"],
        "heldout": heldout,
    }
    text = json.dumps(index, indent=2, sort_keys=True) + "\n"
    write_text(index_path, text, overwrite=True, what="network index")
    return weights_path


def irsde_options(config: TrainConfig, facts: dict, heldout: dict, name: str, command: str) -> str:
    """The option YAML of an ``arch="irsde"`` export, in IR-SDE's layout.

    ``name``, ``model``, ``sde``, ``network_G: {which_model_G: ConditionalUNet, setting}``,
    ``datasets.train`` and ``train`` as IR-SDE's own ``options/train/ir-sde.yml`` spell them
    (``read_options`` reads ``network_G`` and ``sde``); the training facts of this package
    (task, command, seed, wall time, held-out PSNR) under ``mrs_numerics``.
    """
    options = {
        "name": name,
        "model": "denoising",
        "distortion": config.task,
        "gpu_ids": [],
        "sde": config.sde_section(),
        "datasets": {
            "train": {
                "name": "mrs-numerics training photos",
                "GT_size": config.crop,
                "batch_size": config.batch,
            }
        },
        "network_G": {"which_model_G": "ConditionalUNet", "setting": network_config(config)},
        "train": {
            "optimizer": "Adam",
            "lr_G": config.lr,
            "lr_scheme": "cosine",
            "niter": config.iterations,
            "ema_decay": config.ema,
            "loss_type": "l1",
            "weight": 1.0,
            "is_weighted": False,
            "manual_seed": config.seed,
        },
        "mrs_numerics": {
            "version": __version__,
            "task": config.task,
            "prediction": IRSDE_PREDICTION,
            "command": command,
            "seed": config.seed,
            "iterations": config.iterations,
            "seconds": round(float(facts["seconds"]), 1),
            "device": facts["device"],
            "heldout": heldout,
        },
    }
    header = (
        f"# {name}: IR-SDE's ConditionalUNet trained by mrs-numerics train (option file in "
        "IR-SDE's layout;\n# load with mrs_numerics.models.load_irsde_checkpoint or "
        "restore --checkpoint/--config)\n"
    )
    return header + yaml.safe_dump(options, sort_keys=False, allow_unicode=True)
