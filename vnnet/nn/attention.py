"""Attention building blocks of VN-Net's vision branch and fusion.

From VN-Net (arXiv 2404.16037, "VN-Net: Vision-Numerical Fusion Graph Convolutional Network for
Sparse Spatio-Temporal Meteorological Forecasting"):

- ``MultiScaleChannelSpatial``: the multi-scale channel-spatial module (MSCSM) that refines the
  V-LSTM's final hidden state: multi-scale context, then channel and spatial attention.
- ``positional_encoding_2d``: sinusoidal pixel positions for the image tokens.
- ``CrossAttentionBlock``: the query attention used twice by the double query attention module
  (DQAM): learnable queries over image tokens, and station tokens over the image.

Layouts: b batch, c channels, H x W pixels, q queries, m memory tokens, d model dimension.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MultiScaleChannelSpatial", "positional_encoding_2d", "CrossAttentionBlock"]


class MultiScaleChannelSpatial(nn.Module):
    """MSCSM: multi-scale context + channel attention + spatial attention, residual.

    1. For each scale s, average-pool the map to about H/s x W/s (s = 1: the map itself),
       apply a 3x3 conv + ReLU, and resize back to H x W; concatenate the scales and mix
       them with a 1x1 conv. Pooling is adaptive and resizing targets the exact input size,
       so H and W need not be divisible by s.
    2. Channel attention: a shared MLP (1x1 convs, bottleneck ``channels // reduction``) on
       the spatially avg- and max-pooled descriptors, summed, sigmoid, scales each channel.
    3. Spatial attention: a ``spatial_kernel`` conv over the channel-mean and channel-max maps,
       sigmoid, scales each pixel.
    4. Output = input + refined features, so the module starts close to an identity-plus.

    Args:
        channels: c, unchanged by the module.
        scales: positive pooling factors, 1 = full resolution.
        reduction: channel-attention bottleneck ratio.
        spatial_kernel: odd kernel size of the spatial-attention conv.

    Shape: (b c H W) -> (b c H W).
    """

    def __init__(self, channels: int, scales: Sequence[int] = (1, 2, 4), reduction: int = 4,
                 spatial_kernel: int = 7) -> None:
        super().__init__()
        scales = tuple(int(s) for s in scales)
        if not scales or any(s < 1 for s in scales) or len(set(scales)) != len(scales):
            raise ValueError(f"scales must be distinct positive integers, got {scales}")
        if reduction < 1:
            raise ValueError(f"reduction must be >= 1, got {reduction}")
        if spatial_kernel < 1 or spatial_kernel % 2 == 0:
            raise ValueError(f"spatial_kernel must be odd, got {spatial_kernel}")
        self.channels = channels
        self.scales = scales
        self.branches = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=1)
                                      for _ in scales)
        self.mix = nn.Conv2d(len(scales) * channels, channels, 1)
        bottleneck = max(channels // reduction, 1)
        self.channel_mlp = nn.Sequential(nn.Conv2d(channels, bottleneck, 1), nn.ReLU(),
                                         nn.Conv2d(bottleneck, channels, 1))
        self.spatial = nn.Conv2d(2, 1, spatial_kernel, padding=spatial_kernel // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (b c H W) -> (b c H W)."""
        height, width = x.shape[-2:]
        parts = []
        for s, conv in zip(self.scales, self.branches, strict=True):
            if s == 1:
                parts.append(F.relu(conv(x)))
                continue
            pooled = F.adaptive_avg_pool2d(x, (math.ceil(height / s), math.ceil(width / s)))
            parts.append(F.interpolate(F.relu(conv(pooled)), size=(height, width),
                                       mode="bilinear", align_corners=False))
        y = self.mix(torch.cat(parts, dim=1))
        # Channel attention: which feature maps matter (shared MLP on two descriptors).
        weights = self.channel_mlp(F.adaptive_avg_pool2d(y, 1)) + \
            self.channel_mlp(F.adaptive_max_pool2d(y, 1))
        y = y * torch.sigmoid(weights)
        # Spatial attention: where on the grid the (re-weighted) features matter.
        maps = torch.cat([y.mean(dim=1, keepdim=True), y.amax(dim=1, keepdim=True)], dim=1)
        y = y * torch.sigmoid(self.spatial(maps))
        return x + y


def positional_encoding_2d(height: int, width: int, dim: int) -> torch.Tensor:
    """Sinusoidal 2-D positional encoding of a height x width grid, row-major.

    The first ``dim // 2`` channels encode the row, the last ``dim // 2`` the column, each as
    ``[sin(p * w_k), cos(p * w_k)]`` with ``w_k = 10000 ** (-k / (dim // 4))``,
    ``k = 0 .. dim // 4 - 1`` (the transformer encoding, one per axis).

    Returns:
        (height * width, dim) float32; token ``r * width + col`` is pixel (r, col).
    """
    if dim < 4 or dim % 4 != 0:
        raise ValueError(f"dim must be a positive multiple of 4, got {dim}")
    if height < 1 or width < 1:
        raise ValueError(f"height and width must be positive, got {height} x {width}")
    quarter = dim // 4
    freqs = torch.exp(-math.log(10000.0) * torch.arange(quarter, dtype=torch.float64) / quarter)

    def axis(n: int) -> torch.Tensor:  # (n, dim // 2)
        angles = torch.arange(n, dtype=torch.float64)[:, None] * freqs[None, :]
        return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)

    rows = axis(height)[:, None, :].expand(height, width, dim // 2)
    cols = axis(width)[None, :, :].expand(height, width, dim // 2)
    return torch.cat([rows, cols], dim=-1).reshape(height * width, dim).float()


class CrossAttentionBlock(nn.Module):
    """Post-norm cross-attention block: queries read a memory of tokens.

    ``x = LN(query + Dropout(MHA(query, memory, memory)))``;
    ``out = LN(x + Dropout(FFN(x)))`` with FFN = Linear(d, ffn_mult*d) - GELU - Linear.
    Post-norm (as in the original transformer) keeps the output on a fixed scale, which suits
    the fusion where the result becomes a GRU decoder state; the blocks here are shallow, so the
    pre-norm advantage for deep stacks does not apply.

    After each call, ``last_attention`` (b q m) holds the attention weights averaged over heads,
    detached, for interpretation; each row sums to 1 over the non-padded memory tokens
    (in training with ``dropout > 0`` they are the dropped-out weights, as MHA returns them).

    Args:
        dim: model dimension d (divisible by ``n_heads``).
        n_heads: attention heads.
        dropout: dropout on attention weights and both residual branches.
        ffn_mult: FFN hidden width as a multiple of d.
    """

    def __init__(self, dim: int, n_heads: int = 4, dropout: float = 0.0,
                 ffn_mult: int = 2) -> None:
        super().__init__()
        if dim % n_heads != 0:
            raise ValueError(f"dim ({dim}) must be divisible by n_heads ({n_heads})")
        self.attn = nn.MultiheadAttention(dim, n_heads, dropout=dropout, batch_first=True)
        self.norm1 = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_mult * dim), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(ffn_mult * dim, dim))
        self.norm2 = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)
        self.last_attention: torch.Tensor | None = None

    def forward(self, query: torch.Tensor, memory: torch.Tensor,
                key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        """query (b q d), memory (b m d), key_padding_mask (b m) bool True = ignore -> (b q d)."""
        out, weights = self.attn(query, memory, memory, key_padding_mask=key_padding_mask,
                                 need_weights=True, average_attn_weights=True)
        self.last_attention = weights.detach()
        x = self.norm1(query + self.dropout(out))
        return self.norm2(x + self.dropout(self.ffn(x)))
