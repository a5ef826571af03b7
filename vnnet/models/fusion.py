"""DQAM: the double query attention fusion of station states with image features.

VN-Net (arXiv 2404.16037, "VN-Net: Vision-Numerical Fusion Graph Convolutional Network for
Sparse Spatio-Temporal Meteorological Forecasting") fuses the numerical encoder's station
states with the V-LSTM image features through a double query attention module with learnable
cross-modal queries. Here:

- Local branch: each station reads the feature of the pixel it sits on (rows/cols fixed at
  construction), concatenated with its state, Linear(2d -> d) + ReLU, added to the state.
  With ``n_upstream`` = K > 0 it also reads K features sampled upstream of it
  (``vnnet.nn.advection.UpstreamSampler``, a vnnet extension), each with an inside-the-image
  flag: Linear(2d + K (d + 1) -> d).
- Global branch, two query attentions:
  1. learnable cross-modal queries (n_queries x d) attend to the image tokens (pixel features +
     2-D sinusoidal position), giving a compact summary of the whole scene;
  2. the station tokens (all encoder layers, L*n tokens) attend to [summary || image tokens].
     Stations thus get both the region-wide context distilled by the queries and direct,
     position-aware access to individual pixels (e.g. weather upstream of the station), and
     ``last_attention`` stays readable per pixel. ``n_queries=0`` drops the summary (the
     "without learnable queries" ablation: stations attend to pixels only).
- Output ``LayerNorm(local + global)``, with ``global`` the second attention block's output.

Layouts: L encoder layers, b batch, n stations, d dimension, Hf x Wf feature grid.
"""

from __future__ import annotations

import torch
from torch import nn

from vnnet.nn.attention import CrossAttentionBlock, positional_encoding_2d

__all__ = ["DQAMFusion"]


def _pixel_index(values: torch.Tensor, size: int, name: str) -> torch.Tensor:
    values = torch.as_tensor(values)
    if values.dim() != 1:
        raise ValueError(f"{name} must be 1-D (n,), got shape {tuple(values.shape)}")
    if values.is_floating_point():
        if not torch.equal(values, values.round()):
            raise ValueError(f"{name} must hold integer pixel indices")
    elif values.dtype == torch.bool:
        raise ValueError(f"{name} must hold integer pixel indices, got bool")
    values = values.long()
    if values.numel() and (values.min() < 0 or values.max() >= size):
        raise ValueError(f"{name} must lie in [0, {size}) on the feature grid, "
                         f"got range [{int(values.min())}, {int(values.max())}]")
    return values


class DQAMFusion(nn.Module):
    """Double query attention fusion: (L b n d) states + (b d Hf Wf) image -> (L b n d).

    Args:
        dim: d, the state and image-feature dimension (multiple of 4 and of ``n_heads``).
        pixel_rows, pixel_cols: (n,) integer row/col of each station on the Hf x Wf grid.
        feature_size: (Hf, Wf) of the image features.
        n_heads: attention heads of both query attentions.
        n_queries: learnable cross-modal queries; 0 = none (stations attend to pixels only).
        dropout: dropout inside the attention blocks.
        use_global: False disables the global branch (output ``LayerNorm(local)``), an
            ablation and a check that the local branch is local.
        n_upstream: K, the upstream samples per station the local branch also reads (0: the
            paper's local branch).

    ``last_attention`` (b, L*n, n_queries + Hf*Wf): the station-over-image attention of the
    last call, averaged over heads; columns are the query summary first, then the pixels in
    row-major order. Station token ``l * n + i`` is layer l, station i.
    """

    def __init__(self, dim: int, pixel_rows: torch.Tensor, pixel_cols: torch.Tensor,
                 feature_size: tuple[int, int], n_heads: int = 4, n_queries: int = 16,
                 dropout: float = 0.0, use_global: bool = True, n_upstream: int = 0) -> None:
        super().__init__()
        height, width = (int(v) for v in feature_size)
        if height < 1 or width < 1:
            raise ValueError(f"feature_size must be positive, got {feature_size}")
        if n_queries < 0:
            raise ValueError(f"n_queries must be >= 0, got {n_queries}")
        if n_upstream < 0:
            raise ValueError(f"n_upstream must be >= 0, got {n_upstream}")
        rows = _pixel_index(pixel_rows, height, "pixel_rows")
        cols = _pixel_index(pixel_cols, width, "pixel_cols")
        if rows.shape != cols.shape:
            raise ValueError(f"pixel_rows and pixel_cols differ in length: "
                             f"{rows.numel()} vs {cols.numel()}")
        self.dim = dim
        self.feature_size = (height, width)
        self.n_stations = rows.numel()
        self.n_queries = n_queries
        self.use_global = use_global
        self.n_upstream = n_upstream
        self.register_buffer("pixel_rows", rows)
        self.register_buffer("pixel_cols", cols)
        # Deterministic from the grid, so not saved in checkpoints.
        self.register_buffer("pos", positional_encoding_2d(height, width, dim), persistent=False)
        self.local = nn.Sequential(nn.Linear(2 * dim + n_upstream * (dim + 1), dim), nn.ReLU())
        if n_queries:
            # Small init: the queries start near-equal, attention starts near-uniform.
            self.queries = nn.Parameter(0.02 * torch.randn(n_queries, dim))
            self.query_attention = CrossAttentionBlock(dim, n_heads, dropout)
        else:
            self.register_parameter("queries", None)
            self.query_attention = None
        self.station_attention = CrossAttentionBlock(dim, n_heads, dropout)
        self.norm = nn.LayerNorm(dim)

    @property
    def last_attention(self) -> torch.Tensor | None:
        """(b, L*n, n_queries + Hf*Wf) station-over-image attention of the last call."""
        return self.station_attention.last_attention

    def forward(self, states: torch.Tensor, image: torch.Tensor,
                upstream: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """states (L b n d), image (b d Hf Wf) -> fused states (L b n d).

        ``upstream``: (samples (b n K d), inside (b n K)) when ``n_upstream`` = K > 0.
        """
        if states.dim() != 4 or states.shape[2:] != (self.n_stations, self.dim):
            raise ValueError(f"states must be (L b {self.n_stations} {self.dim}), "
                             f"got {tuple(states.shape)}")
        n_layers, b = states.shape[:2]
        if image.shape != (b, self.dim, *self.feature_size):
            raise ValueError(f"image must be (b d Hf Wf) = {(b, self.dim, *self.feature_size)}, "
                             f"got {tuple(image.shape)}")
        # Local: the feature of each station's own pixel, (b d n) -> (L b n d).
        pixel = image[:, :, self.pixel_rows, self.pixel_cols].transpose(1, 2)
        if self.n_upstream:
            if upstream is None:
                raise ValueError(f"this fusion reads {self.n_upstream} upstream samples per "
                                 f"station; pass upstream=(samples, inside)")
            samples, inside = upstream
            if samples.shape != (b, self.n_stations, self.n_upstream, self.dim) \
                    or inside.shape != samples.shape[:3]:
                raise ValueError(f"upstream samples must be (b n K d) = "
                                 f"{(b, self.n_stations, self.n_upstream, self.dim)} with an "
                                 f"inside flag (b n K), got {tuple(samples.shape)} and "
                                 f"{tuple(inside.shape)}")
            flag = inside.to(samples.dtype).unsqueeze(-1)
            pixel = torch.cat([pixel, torch.cat([samples, flag], -1).flatten(2)], dim=-1)
        elif upstream is not None:
            raise ValueError("upstream samples given to a fusion built with n_upstream=0")
        pixel = pixel.unsqueeze(0).expand(n_layers, -1, -1, -1)
        local = states + self.local(torch.cat([states, pixel], dim=-1))
        if not self.use_global:
            return self.norm(local)
        tokens = image.flatten(2).transpose(1, 2) + self.pos  # (b Hf*Wf d)
        memory = tokens
        if self.query_attention is not None:
            summary = self.query_attention(self.queries.expand(b, -1, -1), tokens)
            memory = torch.cat([summary, tokens], dim=1)
        stations = local.permute(1, 0, 2, 3).reshape(b, n_layers * self.n_stations, self.dim)
        glob = self.station_attention(stations, memory)
        glob = glob.reshape(b, n_layers, self.n_stations, self.dim).permute(1, 0, 2, 3)
        return self.norm(local + glob)
