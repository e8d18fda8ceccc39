"""The UNet body IR-SDE's and DA-CLIP's conditional UNets share: levels, middle, time MLP.

Both published networks are this body with different widths and attentions (see
[`IRSDEConditionalUNet`][mrs_numerics.models.irsde_unet.IRSDEConditionalUNet] and
[`DACLIPConditionalUNet`][mrs_numerics.models.daclip_unet.DACLIPConditionalUNet]). With
``widths = [w_0 = nf, w_1, …, w_L]`` (``L = depth`` levels)::

    t ─ sinusoidal(nf) ─ Linear(nf, 4nf) ─ GELU ─ Linear(4nf, 4nf) ─► temb (+ a context term)
    [xt − cond, cond] ─ reflect-pad to a multiple of 2^L ─ conv7×7 (2·in_nc → nf) ─► x₀
    level i = 0 … L−1 (downs.i):  ResBlock ─ skip ─ ResBlock ─ attention ─ skip ─
                                  conv4×4/2 (w_i → w_{i+1}; the last level: conv3×3, no ÷2)
    middle:                       ResBlock ─ attention ─ ResBlock
    level i = L−1 … 0 (ups.L−1−i): [x, skip] ResBlock ─ [x, skip] ResBlock ─ attention ─
                                  nearest ×2 + conv3×3 (w_{i+1} → w_i; level 0: conv3×3)
    [x, x₀] ─ ResBlock (2nf → nf) ─ conv3×3 (nf → out_nc) ─ crop to the input's size

Every attention sits in ``Residual(PreNorm(·))`` (keys ``….fn.norm.g``, ``….fn.fn.…``); the
ResBlocks are the normalisation-free ones of
[`irsde_blocks`][mrs_numerics.models.irsde_blocks].
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import cast

import torch
from torch import nn

from mrs_numerics.imaging.padding import pad_to_multiple, unpad
from mrs_numerics.models.irsde_blocks import (
    PreNorm,
    ResBlock,
    Residual,
    SinusoidalTimeEmbedding,
    downsample,
    plain_conv,
    upsample,
)

AttentionFactory = Callable[[int, int], nn.Module]
"""``attention(level, channels)``: the attention module of a level (level ``depth`` is the
middle)."""


class ConditionalUNetBackbone(nn.Module):
    """The shared body: ``run(xt, cond, temb, context)`` with the time embedding given.

    Args:
        in_nc: Image channels of ``xt`` and ``cond`` (the first convolution sees ``2 in_nc``).
        out_nc: Output channels.
        nf: The width of the first level; the time embedding has ``4 nf`` channels.
        widths: ``[nf, w_1, …, w_depth]``: the level widths, ``w_depth`` the middle's.
        attention: ``attention(level, channels)`` builds the attention of a level (called for
            the down path with ``w_level``, the up path with ``w_{level+1}``, and the middle
            with level ``depth``).
    """

    def __init__(
        self,
        in_nc: int,
        out_nc: int,
        nf: int,
        widths: Sequence[int],
        attention: AttentionFactory,
    ) -> None:
        super().__init__()
        if len(widths) < 2 or widths[0] != nf:
            raise ValueError(f"widths must be [nf, w_1, …] with nf = {nf}, got {list(widths)}")
        self.in_nc, self.out_nc, self.nf = in_nc, out_nc, nf
        self.depth = len(widths) - 1
        time_dim = 4 * nf

        self.init_conv = plain_conv(2 * in_nc, nf, 7)
        self.time_mlp = nn.Sequential(
            SinusoidalTimeEmbedding(nf),
            nn.Linear(nf, time_dim),
            nn.GELU(),
            nn.Linear(time_dim, time_dim),
        )

        self.downs = nn.ModuleList()
        self.ups = nn.ModuleList()
        for level in range(self.depth):
            dim_in, dim_out = widths[level], widths[level + 1]
            last = level == self.depth - 1
            self.downs.append(
                nn.ModuleList(
                    [
                        ResBlock(dim_in, dim_in, time_dim),
                        ResBlock(dim_in, dim_in, time_dim),
                        Residual(PreNorm(dim_in, attention(level, dim_in))),
                        plain_conv(dim_in, dim_out) if last else downsample(dim_in, dim_out),
                    ]
                )
            )
            self.ups.insert(
                0,
                nn.ModuleList(
                    [
                        ResBlock(dim_out + dim_in, dim_out, time_dim),
                        ResBlock(dim_out + dim_in, dim_out, time_dim),
                        Residual(PreNorm(dim_out, attention(level, dim_out))),
                        plain_conv(dim_out, dim_in) if level == 0 else upsample(dim_out, dim_in),
                    ]
                ),
            )

        middle = widths[-1]
        self.mid_block1 = ResBlock(middle, middle, time_dim)
        self.mid_attn = Residual(PreNorm(middle, attention(self.depth, middle)))
        self.mid_block2 = ResBlock(middle, middle, time_dim)

        self.final_res_block = ResBlock(2 * nf, nf, time_dim)
        self.final_conv = nn.Conv2d(nf, out_nc, 3, 1, 1)

    @property
    def pad_multiple(self) -> int:
        """``2 ** depth``: the network reflect-pads its input to multiples of this internally."""
        return 2**self.depth

    def embed_time(self, time: torch.Tensor | float, batch: int) -> torch.Tensor:
        """The time embedding ``[batch or 1, 4 nf]`` of ``time``.

        ``time`` is a number, a 0-dim tensor, or a tensor ``[batch]`` or ``[1]`` of integer
        training indices or fractional indices (see
        [`sinusoidal_time_embedding`][mrs_numerics.models.irsde_blocks.sinusoidal_time_embedding]
        for the precision).

        Raises:
            ValueError: If ``time`` has another shape.
        """
        linear = cast(nn.Linear, self.time_mlp[1])
        times = torch.as_tensor(time, device=linear.weight.device)
        if times.ndim == 0:
            times = times.reshape(1)
        if times.ndim != 1 or times.shape[0] not in (1, batch):
            raise ValueError(
                f"time must be a number or have shape [batch] = [{batch}], got {tuple(times.shape)}"
            )
        features = self.time_mlp[0](times).to(linear.weight.dtype)
        for layer in list(self.time_mlp)[1:]:
            features = layer(features)
        return features

    def run(
        self,
        xt: torch.Tensor,
        cond: torch.Tensor,
        temb: torch.Tensor,
        context: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The network output for state ``xt``, condition ``cond`` and time embedding ``temb``.

        ``xt`` and ``cond`` have shape ``[batch, in_nc, H, W]`` (any H, W: the input is padded
        to the ``pad_multiple`` and the output cropped back); ``context`` is passed to every
        attention (the linear attentions ignore it).
        """
        if xt.ndim != 4 or xt.shape[1] != self.in_nc or cond.shape != xt.shape:
            raise ValueError(
                f"xt and cond must both have shape [batch, {self.in_nc}, H, W], got "
                f"{tuple(xt.shape)} and {tuple(cond.shape)}"
            )
        x, size = pad_to_multiple(torch.cat([xt - cond, cond], dim=1), self.pad_multiple)
        x = self.init_conv(x)
        first = x

        skips = []
        for level in self.downs:
            block1, block2, attention, resize = cast(nn.ModuleList, level)
            x = block1(x, temb)
            skips.append(x)
            x = attention(block2(x, temb), context=context)
            skips.append(x)
            x = resize(x)

        x = self.mid_block1(x, temb)
        x = self.mid_attn(x, context=context)
        x = self.mid_block2(x, temb)

        for level in self.ups:
            block1, block2, attention, resize = cast(nn.ModuleList, level)
            x = block1(torch.cat([x, skips.pop()], dim=1), temb)
            x = block2(torch.cat([x, skips.pop()], dim=1), temb)
            x = resize(attention(x, context=context))

        x = self.final_res_block(torch.cat([x, first], dim=1), temb)
        return unpad(self.final_conv(x), size).contiguous()
