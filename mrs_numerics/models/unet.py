"""A small conditional UNet with the IR-SDE input convention, for tests and benchmarks.

The network is called as ``model(x, t, mu)``, the signature every sampler in the package expects.
It follows IR-SDE's conditioning: the input is the channel concatenation of the residual
``x - mu`` and the condition ``mu`` (``2 * channels`` input channels), so the network sees the
state in the shifted coordinates in which the MR process is an ordinary Gaussian diffusion, and
sees the degraded image itself.

Architecture (``L = len(channel_mults)`` resolution levels)::

    t ─ rescale to [0, time_scale] ─ sinusoidal features ─ Linear ─ SiLU ─ Linear ─► temb
    [x − μ, μ] ─ conv3×3 ─┬─ level 0: num_res_blocks × ResBlock ─ strided conv3×3 (÷2)
                          ├─ level 1: ...                     ─ strided conv3×3 (÷2)
                          └─ level L−1: num_res_blocks × ResBlock
                             middle: ResBlock ─ [self-attention] ─ ResBlock
                             up, level L−1 … 0: (num_res_blocks + 1) × ResBlock on
                               [h, skip] concatenations ─ nearest ×2 + conv3×3 (except level 0)
                          ─ GroupNorm ─ SiLU ─ conv3×3 (zero-initialised) ─► output

Every ResBlock is ``GroupNorm → SiLU → conv3×3 → (+ Linear(SiLU(temb))) → GroupNorm → SiLU →
conv3×3`` with a (1×1-projected where the width changes) identity skip. Only smooth
nonlinearities are used (SiLU, softmax), so the probability-flow ODE driven by the network has a
smooth right-hand side in ``x`` and ``t`` and the convergence order of ODE solvers is observable.

The default configuration (``base_channels=32``, ``channel_mults=(1, 2, 2)``,
``num_res_blocks=1``, ``time_embedding_dim=128``) has 1,060,035 parameters with ``channels=3``
(1,076,803 with ``attention=True``).
"""

import math
from typing import cast

import torch
from torch import nn
from torch.nn import functional

_NORM_GROUPS = 8
_EMBEDDING_TIME_RANGE = 1000.0
_MAX_PERIOD = 10000.0


def _group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(_NORM_GROUPS, channels), channels)


def sinusoidal_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Return ``[sin(t ω_k), cos(t ω_k)]`` with geometric frequencies ω_k from 1 to 1/10000.

    ``t`` has shape ``[batch]``; the result has shape ``[batch, dim]`` (a trailing zero column
    pads an odd ``dim``).
    """
    half = dim // 2
    exponents = torch.arange(half, dtype=t.dtype, device=t.device) / half
    frequencies = torch.exp(-math.log(_MAX_PERIOD) * exponents)
    angles = t[:, None] * frequencies[None, :]
    embedding = torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)
    if dim % 2:
        embedding = functional.pad(embedding, (0, 1))
    return embedding


class ResBlock(nn.Module):
    """Two GroupNorm–SiLU–conv3×3 layers with the time embedding added in between."""

    def __init__(self, in_channels: int, out_channels: int, time_embedding_dim: int) -> None:
        super().__init__()
        self.norm1 = _group_norm(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.time_projection = nn.Linear(time_embedding_dim, out_channels)
        self.norm2 = _group_norm(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.skip = (
            nn.Identity()
            if in_channels == out_channels
            else nn.Conv2d(in_channels, out_channels, 1)
        )

    def forward(self, h: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        out = self.conv1(functional.silu(self.norm1(h)))
        out = out + self.time_projection(functional.silu(temb))[:, :, None, None]
        out = self.conv2(functional.silu(self.norm2(out)))
        return self.skip(h) + out


class SelfAttention(nn.Module):
    """Single-head spatial self-attention with a residual connection."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = _group_norm(channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.projection = nn.Conv2d(channels, channels, 1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = h.shape
        q, k, v = self.qkv(self.norm(h)).reshape(batch, 3, channels, height * width).unbind(1)
        weights = torch.softmax(torch.einsum("bci,bcj->bij", q, k) / math.sqrt(channels), dim=-1)
        out = torch.einsum("bij,bcj->bci", weights, v).reshape(batch, channels, height, width)
        return h + self.projection(out)


class Downsample(nn.Module):
    """Halve the resolution with a stride-2 conv3×3."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.conv(h)


class Upsample(nn.Module):
    """Double the resolution by nearest-neighbour repetition followed by a conv3×3."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.conv(functional.interpolate(h, scale_factor=2.0, mode="nearest"))


class ConditionalUNet(nn.Module):
    """Conditional UNet ``model(x, t, mu) -> tensor shaped like x`` (IR-SDE conditioning).

    Args:
        channels: image channels of ``x`` and ``mu`` (and of the output).
        base_channels: width of the first level; level ``i`` has
            ``base_channels * channel_mults[i]`` channels.
        channel_mults: width multipliers, one per resolution level; each level after the first
            halves the resolution, so H and W must be multiples of
            ``2 ** (len(channel_mults) - 1)`` (``required_multiple``).
        num_res_blocks: residual blocks per level on the way down (one more on the way up).
        time_embedding_dim: width of the sinusoidal time features and of the time MLP.
        attention: add a self-attention layer in the middle (lowest-resolution) block.
        max_time: the largest time the schedule uses (1.0 for continuous schedules on [0, 1],
            ``T`` such as 100 for IR-SDE's index time); ``t`` is rescaled by
            ``time_scale / max_time`` before the embedding.
        zero_init_output: zero the output convolution (standard for diffusion networks, so an
            untrained model predicts 0). Benchmarks that need a non-trivial map use
            `random_init_for_benchmarks`.
        time_scale: the embedded time runs over [0, time_scale]. The sinusoid frequencies span
            1 … 1e-4, so the network varies in t on a scale of about ``max_time / time_scale``.
            The DDPM convention 1000 makes the network rough in t: ODE solvers then need steps
            far below that scale before their order shows. A small value (such as 10) gives a
            network that is smooth in t; the shipped networks record the value they use.
    """

    def __init__(
        self,
        channels: int = 3,
        base_channels: int = 32,
        channel_mults: tuple[int, ...] = (1, 2, 2),
        num_res_blocks: int = 1,
        time_embedding_dim: int = 128,
        attention: bool = False,
        max_time: float = 1.0,
        zero_init_output: bool = True,
        time_scale: float = _EMBEDDING_TIME_RANGE,
    ) -> None:
        super().__init__()
        if not channel_mults:
            raise ValueError("channel_mults must name at least one resolution level")
        if max_time <= 0:
            raise ValueError(f"max_time must be positive, got {max_time}")
        if not time_scale > 0:
            raise ValueError(f"time_scale must be positive, got {time_scale}")
        self.channels = channels
        self.channel_mults = tuple(channel_mults)
        self.time_embedding_dim = time_embedding_dim
        self.max_time = float(max_time)
        self.time_scale = float(time_scale)

        self.time_mlp = nn.Sequential(
            nn.Linear(time_embedding_dim, time_embedding_dim),
            nn.SiLU(),
            nn.Linear(time_embedding_dim, time_embedding_dim),
        )
        self.input_conv = nn.Conv2d(2 * channels, base_channels, 3, padding=1)

        widths = [base_channels * mult for mult in self.channel_mults]
        skip_widths = [base_channels]
        width = base_channels
        self.down_blocks = nn.ModuleList()
        self.downsamplers = nn.ModuleList()
        for level, level_width in enumerate(widths):
            blocks = nn.ModuleList()
            for _ in range(num_res_blocks):
                blocks.append(ResBlock(width, level_width, time_embedding_dim))
                width = level_width
                skip_widths.append(width)
            self.down_blocks.append(blocks)
            if level < len(widths) - 1:
                self.downsamplers.append(Downsample(width))
                skip_widths.append(width)

        self.middle_in = ResBlock(width, width, time_embedding_dim)
        self.middle_attention = SelfAttention(width) if attention else nn.Identity()
        self.middle_out = ResBlock(width, width, time_embedding_dim)

        self.up_blocks = nn.ModuleList()
        self.upsamplers = nn.ModuleList()
        for level in reversed(range(len(widths))):
            blocks = nn.ModuleList()
            for _ in range(num_res_blocks + 1):
                blocks.append(
                    ResBlock(width + skip_widths.pop(), widths[level], time_embedding_dim)
                )
                width = widths[level]
            self.up_blocks.append(blocks)
            if level > 0:
                self.upsamplers.append(Upsample(width))

        self.output_norm = _group_norm(width)
        self.output_conv = nn.Conv2d(width, channels, 3, padding=1)
        if zero_init_output:
            nn.init.zeros_(self.output_conv.weight)
            nn.init.zeros_(self.output_conv.bias)  # type: ignore[arg-type]  # Conv2d has a bias

    @classmethod
    def random_init_for_benchmarks(cls, seed: int, **config) -> "ConditionalUNet":
        """Return a model with all weights, the output layer included, drawn from ``seed``.

        The global RNG state is left untouched. ``config`` is passed to the constructor.
        """
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return cls(**config, zero_init_output=False)

    @property
    def required_multiple(self) -> int:
        """The number H and W must be multiples of: ``2 ** (len(channel_mults) - 1)``."""
        return 2 ** (len(self.channel_mults) - 1)

    def forward(self, x: torch.Tensor, t: torch.Tensor | float, mu: torch.Tensor) -> torch.Tensor:
        """Return the network output for state ``x`` at time ``t`` with condition ``mu``.

        ``x`` and ``mu`` have shape ``[batch, channels, H, W]``; ``t`` has shape ``[batch]`` or is
        a python number or a 0-dim / one-element tensor, which is broadcast to the batch.
        """
        self._check_inputs(x, mu)
        temb = self.time_mlp(sinusoidal_embedding(self._batch_times(t, x), self.time_embedding_dim))

        h = self.input_conv(torch.cat([x - mu, mu], dim=1))
        skips = [h]
        for level, blocks in enumerate(self.down_blocks):
            for block in cast(nn.ModuleList, blocks):
                h = block(h, temb)
                skips.append(h)
            if level < len(self.downsamplers):
                h = self.downsamplers[level](h)
                skips.append(h)

        h = self.middle_out(self.middle_attention(self.middle_in(h, temb)), temb)

        for level, blocks in enumerate(self.up_blocks):
            for block in cast(nn.ModuleList, blocks):
                h = block(torch.cat([h, skips.pop()], dim=1), temb)
            if level < len(self.upsamplers):
                h = self.upsamplers[level](h)

        return self.output_conv(functional.silu(self.output_norm(h)))

    def _check_inputs(self, x: torch.Tensor, mu: torch.Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != self.channels:
            raise ValueError(
                f"x must have shape [batch, {self.channels}, H, W], got {tuple(x.shape)}"
            )
        if mu.shape != x.shape:
            raise ValueError(f"mu must have x's shape {tuple(x.shape)}, got {tuple(mu.shape)}")
        multiple = self.required_multiple
        height, width = x.shape[-2:]
        if height % multiple or width % multiple:
            raise ValueError(
                f"H and W must be multiples of {multiple} (2 ** (len(channel_mults) - 1)) "
                f"for this UNet, got H={height}, W={width}"
            )

    def _batch_times(self, t: torch.Tensor | float, x: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t, device=x.device).to(x.dtype)
        if t.numel() == 1:
            t = t.reshape(1).expand(x.shape[0])
        elif t.shape != (x.shape[0],):
            raise ValueError(
                f"t must be a number or have shape [batch] = [{x.shape[0]}], got {tuple(t.shape)}"
            )
        return t * (self.time_scale / self.max_time)
