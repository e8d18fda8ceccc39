"""The building blocks of the IR-SDE and DA-CLIP conditional UNets, state-dict compatible.

Written for this package after the definitions in IR-SDE's ``module_util.py`` (repository
Algolzw/image-restoration-sde, shared unchanged by DA-CLIP, Algolzw/daclip-uir). Each block
keeps the original's attribute names, so a block's ``state_dict`` keys are the original's, and
computes the same function:

- [`sinusoidal_time_embedding`][mrs_numerics.models.irsde_blocks.sinusoidal_time_embedding]:
  ``[sin(t ω_k), cos(t ω_k)]`` with ``ω_k = 10000^(−k/(half − 1))`` (the last frequency is
  exactly 1/10000);
- [`ChannelLayerNorm`][mrs_numerics.models.irsde_blocks.ChannelLayerNorm]: normalisation over
  the channels of every pixel, a gain and no bias (key ``g``);
- [`ResBlock`][mrs_numerics.models.irsde_blocks.ResBlock]: two normalisation-free
  conv3×3–SiLU [`Block`][mrs_numerics.models.irsde_blocks.Block]s, the first one modulated by
  the time embedding (scale and shift);
- [`LinearAttention`][mrs_numerics.models.irsde_blocks.LinearAttention]: 4 heads × 32 channels,
  queries normalised over their channels, keys over the pixels;
- [`PreNorm`][mrs_numerics.models.irsde_blocks.PreNorm] and
  [`Residual`][mrs_numerics.models.irsde_blocks.Residual]: the wrappers every attention sits
  in (keys ``fn.norm.g``, ``fn.fn.…``);
- [`downsample`][mrs_numerics.models.irsde_blocks.downsample],
  [`upsample`][mrs_numerics.models.irsde_blocks.upsample] and
  [`plain_conv`][mrs_numerics.models.irsde_blocks.plain_conv]: the resolution changes
  (strided conv4×4; nearest ×2 then conv3×3) and the bias-free "same" convolution.
"""

from __future__ import annotations

import math

import torch
from torch import nn

_MAX_PERIOD = 10000.0
_LINEAR_ATTENTION_HEADS = 4
_LINEAR_ATTENTION_HEAD_CHANNELS = 32


def sinusoidal_time_embedding(time: torch.Tensor, dim: int) -> torch.Tensor:
    """``[sin(t ω_0), …, sin(t ω_{h−1}), cos(t ω_0), …, cos(t ω_{h−1})]``, ``h = dim // 2``.

    The frequencies are ``ω_k = exp(−k · log(10000) / (h − 1))``, from 1 down to exactly
    1/10000 (the ``h − 1`` of IR-SDE's ``SinusoidalPosEmb``). ``time`` has shape ``[batch]``;
    integer times are embedded in float32 (as the original's integer-times-float32 product),
    floating times in their own precision, at least float32. The result has shape
    ``[batch, 2 h]``.
    """
    half = dim // 2
    if half < 2:
        raise ValueError(f"the time embedding needs dim ≥ 4, got {dim}")
    dtype = torch.float32
    if time.is_floating_point():
        dtype = torch.promote_types(time.dtype, torch.float32)
    step = math.log(_MAX_PERIOD) / (half - 1)
    frequencies = torch.exp(torch.arange(half, device=time.device, dtype=dtype) * -step)
    angles = time.to(dtype)[:, None] * frequencies[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


class SinusoidalTimeEmbedding(nn.Module):
    """The sinusoidal time embedding as a module without parameters (the time MLP's first layer).

    See [`sinusoidal_time_embedding`][mrs_numerics.models.irsde_blocks.sinusoidal_time_embedding].

    Args:
        dim: The embedding width (``nf`` in the UNets).
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, time: torch.Tensor) -> torch.Tensor:
        """The ``[batch, dim]`` embedding of the times ``[batch]``."""
        return sinusoidal_time_embedding(time, self.dim)


class ChannelLayerNorm(nn.Module):
    """``(x − mean_c x) / sqrt(var_c x + eps) · g`` over the channels of each pixel.

    The variance is the biased one; ``eps`` is 1e-5 for float32 inputs and 1e-3 otherwise (as
    in the original). The gain ``g`` has shape ``[1, C, 1, 1]``; there is no bias.

    Args:
        dim: The number of channels C.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.g = nn.Parameter(torch.ones(1, dim, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The normalised ``[batch, C, H, W]`` tensor."""
        eps = 1e-5 if x.dtype == torch.float32 else 1e-3
        variance = torch.var(x, dim=1, unbiased=False, keepdim=True)
        mean = torch.mean(x, dim=1, keepdim=True)
        return (x - mean) * (variance + eps).rsqrt() * self.g


class PreNorm(nn.Module):
    """``fn(ChannelLayerNorm(x), **kwargs)``: the normalisation before an attention.

    Args:
        dim: The number of channels.
        fn: The wrapped module (an attention); extra keyword arguments such as ``context``
            are passed on to it.
    """

    def __init__(self, dim: int, fn: nn.Module) -> None:
        super().__init__()
        self.fn = fn
        self.norm = ChannelLayerNorm(dim)

    def forward(self, x: torch.Tensor, **kwargs) -> torch.Tensor:
        """``fn`` applied to the normalised input."""
        return self.fn(self.norm(x), **kwargs)


class Residual(nn.Module):
    """``fn(x, **kwargs) + x``.

    Args:
        fn: The wrapped module.
    """

    def __init__(self, fn: nn.Module) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor, **kwargs) -> torch.Tensor:
        """The wrapped module's output plus its input."""
        return self.fn(x, **kwargs) + x


def plain_conv(dim_in: int, dim_out: int, kernel_size: int = 3, bias: bool = False) -> nn.Conv2d:
    """A stride-1 convolution that keeps the size (padding ``kernel_size // 2``), no bias."""
    return nn.Conv2d(dim_in, dim_out, kernel_size, padding=kernel_size // 2, bias=bias)


def downsample(dim_in: int, dim_out: int) -> nn.Conv2d:
    """Halve the resolution: a conv4×4 with stride 2 and padding 1 (with bias)."""
    return nn.Conv2d(dim_in, dim_out, 4, 2, 1)


def upsample(dim_in: int, dim_out: int) -> nn.Sequential:
    """Double the resolution: nearest-neighbour ×2, then a conv3×3 (with bias; key ``1.*``)."""
    return nn.Sequential(
        nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(dim_in, dim_out, 3, 1, 1)
    )


class Block(nn.Module):
    """``SiLU(conv3×3(x) · (scale + 1) + shift)``; without ``scale_shift``, ``SiLU(conv3×3(x))``.

    No normalisation layer (the original's "Block" has none); the convolution has no bias.

    Args:
        dim_in: Input channels.
        dim_out: Output channels.
    """

    def __init__(self, dim_in: int, dim_out: int) -> None:
        super().__init__()
        self.proj = plain_conv(dim_in, dim_out)
        self.act = nn.SiLU()

    def forward(
        self, x: torch.Tensor, scale_shift: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> torch.Tensor:
        """The block's output; ``scale_shift`` are ``[batch, dim_out, 1, 1]`` tensors."""
        x = self.proj(x)
        if scale_shift is not None:
            scale, shift = scale_shift
            x = x * (scale + 1) + shift
        return self.act(x)


class ResBlock(nn.Module):
    """``block2(block1(x, scale_shift(temb))) + res_conv(x)``.

    ``scale_shift`` is ``Linear(SiLU(temb))`` (key ``mlp.1``) split into scale and shift;
    ``res_conv`` is a bias-free conv1×1 where the width changes, else the identity.

    Args:
        dim_in: Input channels.
        dim_out: Output channels.
        time_emb_dim: The width of the time embedding (``4 nf``).
    """

    def __init__(self, dim_in: int, dim_out: int, time_emb_dim: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.SiLU(), nn.Linear(time_emb_dim, dim_out * 2))
        self.block1 = Block(dim_in, dim_out)
        self.block2 = Block(dim_out, dim_out)
        self.res_conv: nn.Module = (
            plain_conv(dim_in, dim_out, 1) if dim_in != dim_out else nn.Identity()
        )

    def forward(self, x: torch.Tensor, time_emb: torch.Tensor) -> torch.Tensor:
        """The block's output for features ``x`` and the time embedding ``[batch, dim]``."""
        scale_shift = self.mlp(time_emb)[:, :, None, None].chunk(2, dim=1)
        h = self.block2(self.block1(x, scale_shift=(scale_shift[0], scale_shift[1])))
        return h + self.res_conv(x)


class LinearAttention(nn.Module):
    """Linear ("efficient") attention over the pixels: 4 heads × 32 channels.

    Per head, with q, k, v of shape ``[32, N]`` (N pixels): q is soft-maxed over its 32
    channels and scaled by 32^(−1/2), k is soft-maxed over the pixels, v is divided by N; the
    output is ``(k vᵀ)ᵀ q``, projected back by a conv1×1 (with bias) and a
    [`ChannelLayerNorm`][mrs_numerics.models.irsde_blocks.ChannelLayerNorm] (keys ``to_out.0``,
    ``to_out.1``). The queries, keys and values come from one bias-free conv1×1 (``to_qkv``).

    Args:
        dim: The number of channels.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.heads = _LINEAR_ATTENTION_HEADS
        self.scale = _LINEAR_ATTENTION_HEAD_CHANNELS**-0.5
        hidden = _LINEAR_ATTENTION_HEADS * _LINEAR_ATTENTION_HEAD_CHANNELS
        self.to_qkv = nn.Conv2d(dim, hidden * 3, 1, bias=False)
        self.to_out = nn.Sequential(nn.Conv2d(hidden, dim, 1), ChannelLayerNorm(dim))

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """The attention's output, shaped like ``x``; ``context`` is accepted and ignored."""
        batch, _, height, width = x.shape
        q, k, v = (
            part.reshape(batch, self.heads, -1, height * width)
            for part in self.to_qkv(x).chunk(3, dim=1)
        )
        q = q.softmax(dim=-2) * self.scale
        k = k.softmax(dim=-1)
        v = v / (height * width)
        summary = torch.einsum("bhdn,bhen->bhde", k, v)
        out = torch.einsum("bhde,bhdn->bhen", summary, q)
        return self.to_out(out.reshape(batch, -1, height, width))
