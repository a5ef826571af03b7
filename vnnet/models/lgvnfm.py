"""LGVNFM: the local-global vision-numerical fusion of the official VN-Net code.

VN-Net (arXiv 2404.16037, "VN-Net: Vision-Numerical Fusion Graph Convolutional Network for
Sparse Spatio-Temporal Meteorological Forecasting") fuses station states with image features
through DQAM (:mod:`vnnet.models.fusion`); the official implementation (GitHub NoahRe1/VN-Net,
a later revision) uses this simpler module instead (VNNET-SPEC 2.4), written here from that
description (no code copied):

1. Local: each station gathers the feature of the pixel it sits on, repeated over the encoder
   layers, ``local = F_X + ReLU(Linear([F_X || pixel]))`` (Linear 2d -> d).
2. Global: one multi-head attention (d, 4 heads) with the ``L * n`` station/layer tokens of
   ``local`` as queries over the ``Hf * Wf`` image tokens as keys and values;
   ``fused = local + attention``. No layer norm, no feed-forward block, no positional
   encoding of the pixels (the pixel a station reads is known to it only through its local
   branch).

Deviation: the station -> pixel mapping is vnnet's co-registration
(:meth:`vnnet.models.base.DataSpec.pixels_on_grid`: the feature-grid cell that contains the
station on the satellite grid's own lat/lon axes) instead of the official rounding of
normalised coordinates against hard-coded region boxes (``round(H - (lat - lat_min) /
(lat_max - lat_min) H)``), which can put a station one cell off, and index 40 on a 40-cell grid
at the box edge.

Layouts: L encoder layers, b batch, n stations, d feature size, Hf x Wf feature grid.
"""

from __future__ import annotations

import torch
from torch import nn

from vnnet.models.fusion import _pixel_index

__all__ = ["LGVNFMFusion"]


class LGVNFMFusion(nn.Module):
    """Local-global fusion: ``(L b n d)`` states + ``(b d Hf Wf)`` image -> ``(L b n d)``.

    Args:
        dim: d, the state and image-feature size (a multiple of ``n_heads``).
        pixel_rows, pixel_cols: ``(n,)`` integer row / col of each station on the feature grid.
        feature_size: ``(Hf, Wf)``.
        n_heads: attention heads (official 4).

    With ``keep_attention = True`` the head-averaged station-over-pixel weights of the last
    call are kept in ``last_attention`` ``(b, L*n, Hf*Wf)`` (token ``l * n + i`` = layer l,
    station i; pixels row-major).
    """

    def __init__(self, dim: int, pixel_rows: torch.Tensor, pixel_cols: torch.Tensor,
                 feature_size: tuple[int, int], n_heads: int = 4) -> None:
        super().__init__()
        height, width = (int(v) for v in feature_size)
        if height < 1 or width < 1:
            raise ValueError(f"LGVNFMFusion: feature_size must be positive, got {feature_size}")
        if dim < 1 or n_heads < 1 or dim % n_heads:
            raise ValueError(f"LGVNFMFusion: dim ({dim}) must be a positive multiple of n_heads "
                             f"({n_heads})")
        rows = _pixel_index(pixel_rows, height, "pixel_rows")
        cols = _pixel_index(pixel_cols, width, "pixel_cols")
        if rows.shape != cols.shape:
            raise ValueError(f"LGVNFMFusion: pixel_rows and pixel_cols differ in length: "
                             f"{rows.numel()} vs {cols.numel()}")
        self.dim, self.feature_size, self.n_stations = dim, (height, width), rows.numel()
        self.register_buffer("pixel_rows", rows)
        self.register_buffer("pixel_cols", cols)
        self.local = nn.Sequential(nn.Linear(2 * dim, dim), nn.ReLU())
        self.attention = nn.MultiheadAttention(dim, n_heads, batch_first=True)
        self.keep_attention = False
        self.last_attention: torch.Tensor | None = None

    def forward(self, states: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """``states (L b n d)``, ``image (b d Hf Wf)`` -> fused ``(L b n d)``."""
        if states.dim() != 4 or states.shape[2:] != (self.n_stations, self.dim):
            raise ValueError(f"LGVNFMFusion: states: expected (L b {self.n_stations} "
                             f"{self.dim}), got {tuple(states.shape)}")
        n_layers, b = states.shape[:2]
        if image.shape != (b, self.dim, *self.feature_size):
            raise ValueError(f"LGVNFMFusion: image: expected (b d Hf Wf) = "
                             f"{(b, self.dim, *self.feature_size)}, got {tuple(image.shape)}")
        pixel = image[:, :, self.pixel_rows, self.pixel_cols].transpose(1, 2)  # (b n d)
        pixel = pixel.unsqueeze(0).expand(n_layers, -1, -1, -1)
        local = states + self.local(torch.cat([states, pixel], dim=-1))
        queries = local.permute(1, 0, 2, 3).reshape(b, n_layers * self.n_stations, self.dim)
        tokens = image.flatten(2).transpose(1, 2)  # (b Hf*Wf d)
        glob, weights = self.attention(queries, tokens, tokens, need_weights=self.keep_attention)
        self.last_attention = None if weights is None else weights.detach()
        glob = glob.reshape(b, n_layers, self.n_stations, self.dim).permute(1, 0, 2, 3)
        return local + glob
