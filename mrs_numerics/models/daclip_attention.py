"""DA-CLIP's spatial transformer: self-attention, cross-attention on a context, gated MLP.

Written for this package after DA-CLIP's ``attention.py`` (repository Algolzw/daclip-uir,
itself after Latent Diffusion), with the original's attribute names so that the ``state_dict``
keys match, computing the same function (dropout 0; the original's gradient checkpointing only
trades memory for compute and is left out):

    SpatialTransformer(x) = x + proj_out(tokens⁻¹(block(tokens(proj_in(GroupNorm₃₂(x))))))
    block(u) = u + attn1(LN₁ u);  u + attn2(LN₂ u, context);  u + ff(LN₃ u)

with ``ff(u) = Linear(a · GELU(g))``, ``[a, g] = Linear(u)`` (GEGLU, inner width 4 × dim).
In DA-CLIP's UNet the context is the CLIP image embedding, one token of width 512.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional

_GROUP_NORM_GROUPS = 32
_GROUP_NORM_EPS = 1e-6
_FEED_FORWARD_MULT = 4


class CrossAttention(nn.Module):
    """Multi-head attention of ``x`` on ``context`` (on ``x`` itself where ``context`` is None).

    ``softmax(q kᵀ / sqrt(dim_head)) v`` per head, with bias-free projections ``to_q``,
    ``to_k``, ``to_v`` and an output Linear with bias (key ``to_out.0``).

    Args:
        query_dim: The width of the tokens of ``x``.
        context_dim: The width of the context tokens; None: ``query_dim`` (self-attention).
        heads: The number of heads.
        dim_head: The width of one head.
    """

    def __init__(
        self, query_dim: int, context_dim: int | None = None, heads: int = 8, dim_head: int = 64
    ) -> None:
        super().__init__()
        inner = heads * dim_head
        context_dim = query_dim if context_dim is None else context_dim
        self.heads = heads
        self.scale = dim_head**-0.5
        self.to_q = nn.Linear(query_dim, inner, bias=False)
        self.to_k = nn.Linear(context_dim, inner, bias=False)
        self.to_v = nn.Linear(context_dim, inner, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, query_dim))

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """Tokens ``x`` ``[batch, n, query_dim]`` attending to ``context`` ``[batch, m, dim]``."""
        context = x if context is None else context
        q, k, v = (
            self._split(projection(source))
            for projection, source in ((self.to_q, x), (self.to_k, context), (self.to_v, context))
        )
        out = functional.scaled_dot_product_attention(q, k, v, scale=self.scale)
        batch, _, tokens, _ = out.shape
        return self.to_out(out.transpose(1, 2).reshape(batch, tokens, -1))

    def _split(self, tokens: torch.Tensor) -> torch.Tensor:
        batch, count, _ = tokens.shape
        return tokens.reshape(batch, count, self.heads, -1).transpose(1, 2)


class GEGLU(nn.Module):
    """``a · GELU(g)`` with ``[a, g] = proj(x)`` (exact GELU).

    Args:
        dim_in: Input width.
        dim_out: Output width (``proj`` has ``2 dim_out`` outputs).
    """

    def __init__(self, dim_in: int, dim_out: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out * 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The gated activation."""
        value, gate = self.proj(x).chunk(2, dim=-1)
        return value * functional.gelu(gate)


class FeedForward(nn.Module):
    """``Linear(GEGLU(x))`` with inner width ``4 dim`` (keys ``net.0.proj``, ``net.2``).

    Args:
        dim: Input and output width.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        inner = dim * _FEED_FORWARD_MULT
        self.net = nn.Sequential(GEGLU(dim, inner), nn.Dropout(0.0), nn.Linear(inner, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The feed-forward output, shaped like ``x``."""
        return self.net(x)


class BasicTransformerBlock(nn.Module):
    """Pre-LayerNorm self-attention, cross-attention on the context, and feed-forward.

    Args:
        dim: The token width.
        n_heads: Heads of both attentions.
        d_head: Width of one head.
        context_dim: Width of the context tokens (the cross-attention's keys and values).
    """

    def __init__(self, dim: int, n_heads: int, d_head: int, context_dim: int | None) -> None:
        super().__init__()
        self.attn1 = CrossAttention(dim, heads=n_heads, dim_head=d_head)
        self.ff = FeedForward(dim)
        self.attn2 = CrossAttention(dim, context_dim=context_dim, heads=n_heads, dim_head=d_head)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """The tokens after the three residual sub-layers."""
        x = self.attn1(self.norm1(x)) + x
        x = self.attn2(self.norm2(x), context=context) + x
        return self.ff(self.norm3(x)) + x


class SpatialTransformer(nn.Module):
    """Transformer blocks on the pixels of a feature map, with a residual connection.

    GroupNorm (32 groups, eps 1e-6), a conv1×1 to ``n_heads · d_head`` channels, the pixels as
    tokens through ``depth`` transformer blocks (each a
    [`BasicTransformerBlock`][mrs_numerics.models.daclip_attention.BasicTransformerBlock]), and
    a zero-initialised conv1×1 back to ``in_channels``, added to the input.

    Args:
        in_channels: Channels of the feature map (a multiple of 32).
        n_heads: Heads of the attentions.
        d_head: Width of one head.
        depth: Number of transformer blocks.
        context_dim: Width of the context tokens; None: the cross-attention attends to the
            feature map itself.
    """

    def __init__(
        self,
        in_channels: int,
        n_heads: int,
        d_head: int,
        depth: int = 1,
        context_dim: int | None = None,
    ) -> None:
        super().__init__()
        inner = n_heads * d_head
        self.in_channels = in_channels
        self.norm = nn.GroupNorm(_GROUP_NORM_GROUPS, in_channels, eps=_GROUP_NORM_EPS)
        self.proj_in = nn.Conv2d(in_channels, inner, 1)
        self.transformer_blocks = nn.ModuleList(
            BasicTransformerBlock(inner, n_heads, d_head, context_dim) for _ in range(depth)
        )
        self.proj_out = nn.Conv2d(inner, in_channels, 1)
        nn.init.zeros_(self.proj_out.weight)
        nn.init.zeros_(self.proj_out.bias)  # type: ignore[arg-type]  # Conv2d has a bias

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """The feature map ``[batch, C, H, W]`` after attention; ``context`` ``[batch, m, dim]``."""
        batch, _, height, width = x.shape
        tokens = self.proj_in(self.norm(x)).flatten(2).transpose(1, 2)
        for block in self.transformer_blocks:
            tokens = block(tokens, context=context)
        features = tokens.transpose(1, 2).reshape(batch, -1, height, width)
        return self.proj_out(features) + x
