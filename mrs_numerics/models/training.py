"""Training small conditional MR restoration networks on the bundled photos.

Continuous time on a continuous schedule (default: cosine, Λ = 50/255, eps = 0.005). Per
iteration: random crops x₀ of the training photos (the held-out photos are never used), their
degradation μ, t ~ U(t_low, 1) and the MR marginal x_t = μ + α_t(x₀ − μ) + σ_t ε. Objectives:

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

Adam with cosine learning-rate decay, an exponential moving average of the weights (what is
shipped; its decay ramps up as (1 + step)/(10 + step) so that short runs are not dominated by
the zero-initialised start), seeded, resumable from a checkpoint, with a progress bar.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from mrs_numerics import schedules
from mrs_numerics._errors import InputError
from mrs_numerics._files import atomic_path, write_text
from mrs_numerics.imaging.degradations import TASKS, degrade
from mrs_numerics.imaging.metrics import psnr, ssim
from mrs_numerics.imaging.photos import HELDOUT_PHOTOS, TRAIN_PHOTOS, center_crop, load_photo
from mrs_numerics.models.input_files import MAPPING, load_torch_file
from mrs_numerics.models.unet import ConditionalUNet
from mrs_numerics.solvers.factory import make_sampler

TRAINED_PREDICTIONS = ("data", "noise")
"""What the networks are trained to predict (x̂₀ or ε̂; the samplers convert either)."""


@dataclass
class TrainConfig:
    """Everything that determines a training run (recorded with the shipped weights).

    Attributes:
        task: The restoration task (a key of
            [`TASKS`][mrs_numerics.imaging.degradations.TASKS]).
        prediction: What the network learns to predict: ``"data"`` (x̂₀) or ``"noise"`` (ε̂).
        iterations: Optimiser steps.
        batch: Random crops per step.
        crop: Side of the square training crops (a multiple of 4).
        lr: Adam's initial learning rate (decayed on a cosine to 0).
        ema: The largest decay of the weights' moving average (what is shipped).
        seed: Seeds the weights, the crops, the degradations and the noise.
        schedule: The continuous schedule by name (for
            [`schedules.get`][mrs_numerics.schedules.get]).
        max_sigma: Λ of the schedule.
        t_low: Training times are drawn from U(t_low, 1).
        base_channels: Width of the UNet's first level
            ([`ConditionalUNet`][mrs_numerics.models.unet.ConditionalUNet]).
        time_scale: The UNet embeds time over [0, time_scale].
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
    time_scale: float = 10.0

    def check(self) -> None:
        """Clear errors for values that cannot train."""
        if self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r}; allowed: {', '.join(TASKS)}")
        if self.prediction not in TRAINED_PREDICTIONS:
            raise ValueError(f"unknown prediction {self.prediction!r}; allowed: data, noise")
        for name in ("iterations", "batch", "crop"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be ≥ 1, got {getattr(self, name)}")
        if not self.time_scale > 0:
            raise ValueError(f"time_scale must be > 0, got {self.time_scale}")
        if self.crop % 4:
            raise ValueError(f"crop must be a multiple of 4 (the UNet's), got {self.crop}")


def network_config(config: TrainConfig) -> dict:
    """The UNet constructor arguments a training run uses (recorded with the weights)."""
    return {"base_channels": config.base_channels, "time_scale": config.time_scale}


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
    """The training loss of one batch (see the module docstring)."""
    shape = (-1, 1, 1, 1)
    alpha = schedule.alpha(t).to(x0.dtype).reshape(shape)
    sigma = schedule.sigma(t).to(x0.dtype).reshape(shape)
    x_t = mu + alpha * (x0 - mu) + sigma * eps
    out = net(x_t, t.to(x0.dtype), mu)
    if prediction == "data":
        return (out - x0).abs().mean()
    weight = sigma / max_sigma
    return (weight * (out - eps)).abs().mean()


def train(
    config: TrainConfig,
    out: Path,
    device="cpu",
    resume: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
):
    """Train, checkpointing to ``out/checkpoint.pt``; returns (EMA network, facts dict).

    ``stop_after`` ends this call after that many total steps (checkpointed); a later call with
    ``resume=True`` continues exactly where it stopped (same data, noise and learning rate).
    """
    config.check()
    device = torch.device(device)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    schedule = schedules.get(config.schedule, max_sigma=config.max_sigma)
    net = ConditionalUNet(**network_config(config)).to(device)
    ema = ConditionalUNet(**network_config(config)).to(device)
    ema.load_state_dict(net.state_dict())
    optimizer = torch.optim.Adam(net.parameters(), lr=config.lr)
    start, seconds = 0, 0.0
    checkpoint = out / "checkpoint.pt"
    if resume and checkpoint.exists():
        state = load_torch_file(checkpoint, MAPPING, "training checkpoint").content
        _check_resumable(state, checkpoint)
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
            }
            with atomic_path(checkpoint, overwrite=True, what="checkpoint") as temporary:
                torch.save(state, temporary)
    facts = {
        "config": asdict(config),
        "completed": end,
        "seconds": seconds + time.perf_counter() - began,
        "device": str(device),
    }
    write_text(out / "facts.json", json.dumps(facts, indent=2), overwrite=True)
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


def evaluate_heldout(net, config: TrainConfig, device="cpu", seed: int = 0) -> dict:
    """PSNR/SSIM of degraded input and of 100-NFE posterior sampling on the held-out photos.

    Center EVAL_CROP² crops of the held-out photos (never seen in training), one degradation
    and one sampling noise per image, seeded.
    """
    schedule = schedules.get(config.schedule, max_sigma=config.max_sigma)
    generator = torch.Generator().manual_seed(seed)
    clean = torch.stack([center_crop(load_photo(n).float(), EVAL_CROP) for n in HELDOUT_PHOTOS])
    degraded = degrade(config.task, clean, generator)
    sampler = make_sampler(EVAL_SAMPLER, schedule, config.prediction)
    steps = EVAL_NFE
    with torch.inference_mode():
        result = sampler.sample(
            lambda x, t, mu: net(x, t.to(x.dtype), mu),
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
    """Write ``name.pt`` (float32 EMA weights) and its entry in ``folder/index.json``.

    Both are written atomically; existing weights ``name.pt`` are replaced only with
    ``overwrite`` (``OutputExistsError`` otherwise), the index is updated in place.
    """
    folder.mkdir(parents=True, exist_ok=True)
    weights = f"{name}.pt"
    state = {k: v.detach().to("cpu", torch.float32) for k, v in net.state_dict().items()}
    with atomic_path(folder / weights, overwrite=overwrite, what="weights") as temporary:
        torch.save(state, temporary)
    index_path = folder / "index.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else {}
    index[name] = {
        "task": config.task,
        "prediction": config.prediction,
        "schedule": config.schedule,
        "max_sigma": config.max_sigma,
        "config": network_config(config),
        "weights": weights,
        "command": command,
        "seed": config.seed,
        "iterations": config.iterations,
        "seconds": round(facts["seconds"], 1),
        "device": facts["device"],
        "heldout": heldout,
    }
    text = json.dumps(index, indent=2, sort_keys=True) + "\n"
    write_text(index_path, text, overwrite=True, what="weights index")
    return folder / weights
