"""IR-SDE's single-task conditional UNet, state-dict compatible with the published checkpoints.

Written for this package after ``ConditionalUNet`` in IR-SDE's
``codes/config/deblurring/models/modules/DenoisingUNet_arch.py`` (repository
Algolzw/image-restoration-sde; the deraining, denoising, … configurations use the same file).
The constructor takes the original's arguments, so an option file's ``network_G.setting`` can be
passed as keyword arguments, and the network is called as the original, ``net(xt, cond, time)``,
with ``time`` the training index and the noise as output. To use it with this package's
samplers, wrap it in
[`IRSDEAdapter`][mrs_numerics.solvers.adapters.IRSDEAdapter]; to load a checkpoint, see
[`load_irsde_checkpoint`][mrs_numerics.models.checkpoints.load_irsde_checkpoint].
"""

from __future__ import annotations

import torch

from mrs_numerics.models.irsde_backbone import ConditionalUNetBackbone
from mrs_numerics.models.irsde_blocks import LinearAttention


class IRSDEConditionalUNet(ConditionalUNetBackbone):
    """IR-SDE's ``ConditionalUNet``: ``net(xt, cond, time) -> predicted noise``.

    Level ``i`` (of ``depth``) has ``nf · 2^i`` channels on the way down and ``nf · 2^(i+1)``
    on the way up, the middle ``nf · 2^depth``; every attention, the middle's included, is a
    [`LinearAttention`][mrs_numerics.models.irsde_blocks.LinearAttention] (the layout is
    described in [`irsde_backbone`][mrs_numerics.models.irsde_backbone]). The published
    deblurring and deraining networks have ``nf=64, depth=4``.

    Args:
        in_nc: Image channels of ``xt`` and ``cond``.
        out_nc: Output channels.
        nf: Width of the first level.
        depth: Number of resolution levels; the input is reflect-padded internally to multiples
            of ``2 ** depth``.
        upscale: Accepted and stored, unused (as in the original).
    """

    def __init__(self, in_nc: int, out_nc: int, nf: int, depth: int = 4, upscale: int = 1) -> None:
        if depth < 1:
            raise ValueError(f"depth must be at least 1, got {depth}")
        widths = [nf * 2**level for level in range(depth + 1)]
        super().__init__(in_nc, out_nc, nf, widths, lambda level, dim: LinearAttention(dim))
        self.upscale = upscale

    def forward(
        self, xt: torch.Tensor, cond: torch.Tensor, time: torch.Tensor | float
    ) -> torch.Tensor:
        """The predicted noise for state ``xt`` at training index ``time`` with condition ``cond``.

        Args:
            xt: The state, ``[batch, in_nc, H, W]`` (any H, W).
            cond: The condition μ (the degraded image), shaped like ``xt``.
            time: The time index: a number or a tensor ``[batch]`` (or ``[1]``), integer
                (as in training) or fractional.

        Returns:
            The network output, ``[batch, out_nc, H, W]``.
        """
        return self.run(xt, cond, self.embed_time(time, xt.shape[0]))
