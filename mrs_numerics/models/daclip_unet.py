"""DA-CLIP's context UNet, state-dict compatible with the published universal checkpoint.

Written for this package after ``ConditionalUNet`` in DA-CLIP's
``universal-image-restoration/config/daclip-sde/models/modules/DenoisingUNet_arch.py``
(repository Algolzw/daclip-uir). Two CLIP embeddings condition it:

- the degradation ("text") context ``c_d`` ``[batch, context_dim]`` enters the time embedding:
  ``temb += prompt_mlp(softmax(text_mlp(c_d)) ⊙ prompt)``, with ``prompt`` a learned
  ``[1, 4 nf]`` vector and ``text_mlp = Linear ─ SiLU ─ Linear``;
- the image context ``c_i`` ``[batch, context_dim]`` is one token that the
  [`SpatialTransformer`][mrs_numerics.models.daclip_attention.SpatialTransformer]s of the levels
  ≥ 4 (index ≥ 3) and of the middle cross-attend to; the other levels keep the
  [`LinearAttention`][mrs_numerics.models.irsde_blocks.LinearAttention].

Called as the original, ``net(xt, cond, time, text_context=…, image_context=…)``, predicting
the noise. Wrap it in [`IRSDEAdapter`][mrs_numerics.solvers.adapters.IRSDEAdapter] for
this package's samplers.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from mrs_numerics.models.daclip_attention import SpatialTransformer
from mrs_numerics.models.irsde_backbone import ConditionalUNetBackbone
from mrs_numerics.models.irsde_blocks import LinearAttention

HEAD_CHANNELS = 32
"""Channels per head of the spatial transformers (``channels // 32`` heads)."""
FIRST_TRANSFORMER_LEVEL = 3
"""Levels with this index or more (and the middle) get a spatial transformer."""


class DACLIPConditionalUNet(ConditionalUNetBackbone):
    """DA-CLIP's ``ConditionalUNet``: ``net(xt, cond, time, text_context, image_context)``.

    Level ``i`` has ``nf · m_i`` channels down and ``nf · m_{i+1}`` up, with
    ``[m_0, m_1, …] = [1, *ch_mult]``; the middle has ``nf · ch_mult[-1]``. The layout is
    described in [`irsde_backbone`][mrs_numerics.models.irsde_backbone]. The published universal
    network has ``nf=64, ch_mult=[1, 2, 4, 8], context_dim=512`` and both contexts.

    Args:
        in_nc: Image channels of ``xt`` and ``cond``.
        out_nc: Output channels.
        nf: Width of the first level.
        ch_mult: Width multipliers, one per level; the input is reflect-padded internally to
            multiples of ``2 ** len(ch_mult)``.
        context_dim: Width of the CLIP embeddings; None or ≤ 0: no context at all.
        use_degra_context: Add the degradation-context prompt to the time embedding
            (parameters ``prompt``, ``text_mlp``, ``prompt_mlp``).
        use_image_context: Spatial transformers with cross-attention on the image context at
            the levels of index ≥ 3 and in the middle (channels there must be multiples of 32).
        upscale: Accepted and stored, unused (as in the original).
    """

    def __init__(
        self,
        in_nc: int,
        out_nc: int,
        nf: int,
        ch_mult: Sequence[int] = (1, 2, 4, 4),
        context_dim: int | None = 512,
        use_degra_context: bool = True,
        use_image_context: bool = False,
        upscale: int = 1,
    ) -> None:
        if not ch_mult:
            raise ValueError("ch_mult must name at least one level")
        width = -1 if context_dim is None else int(context_dim)
        transformers = bool(use_image_context) and width > 0

        def attention(level: int, dim: int) -> nn.Module:
            if transformers and level >= FIRST_TRANSFORMER_LEVEL:
                if dim % HEAD_CHANNELS:
                    raise ValueError(
                        f"the image-context attention needs channels that are multiples of "
                        f"{HEAD_CHANNELS}, got {dim} at level {level}"
                    )
                return SpatialTransformer(dim, dim // HEAD_CHANNELS, HEAD_CHANNELS, 1, width)
            return LinearAttention(dim)

        widths = [nf * mult for mult in (1, *ch_mult)]
        super().__init__(in_nc, out_nc, nf, widths, attention)
        self.context_dim = width
        self.use_degra_context = bool(use_degra_context)
        self.use_image_context = bool(use_image_context)
        self.upscale = upscale
        self.prompt: nn.Parameter | None = None
        if width > 0 and self.use_degra_context:
            time_dim = 4 * nf
            self.prompt = nn.Parameter(torch.rand(1, time_dim))
            self.text_mlp = nn.Sequential(
                nn.Linear(width, time_dim), nn.SiLU(), nn.Linear(time_dim, time_dim)
            )
            self.prompt_mlp = nn.Linear(time_dim, time_dim)

    def forward(
        self,
        xt: torch.Tensor,
        cond: torch.Tensor,
        time: torch.Tensor | float,
        text_context: torch.Tensor | None = None,
        image_context: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The predicted noise for state ``xt`` at training index ``time``, condition ``cond``.

        Args:
            xt: The state, ``[batch, in_nc, H, W]`` (any H, W).
            cond: The condition μ (the degraded image), shaped like ``xt``.
            time: The time index: a number or a tensor ``[batch]`` (or ``[1]``), integer
                (as in training) or fractional.
            text_context: DA-CLIP's degradation embedding ``[batch, context_dim]``; None: no
                prompt is added (as in the original).
            image_context: DA-CLIP's image embedding ``[batch, context_dim]`` (one token), or
                tokens ``[batch, m, context_dim]``; None: the cross-attentions attend to the
                features themselves (as in the original).

        Returns:
            The network output, ``[batch, out_nc, H, W]``.
        """
        temb = self.embed_time(time, xt.shape[0])
        context = None
        if self.context_dim > 0:
            if self.prompt is not None and text_context is not None:
                weights = torch.softmax(self.text_mlp(text_context), dim=1)
                temb = temb + self.prompt_mlp(weights * self.prompt)
            if self.use_image_context and image_context is not None:
                context = image_context[:, None] if image_context.ndim == 2 else image_context
        return self.run(xt, cond, temb, context)
