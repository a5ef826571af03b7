"""STGCN: Yu, Yin & Zhu, "Spatio-Temporal Graph Convolutional Networks: A Deep Learning
Framework for Traffic Forecasting", IJCAI 2018 (arXiv 1709.04875). Implemented from the paper.

Spatio-temporal convolutional ("ST-Conv") blocks, each a "sandwich": a gated temporal
convolution (GLU), a Chebyshev graph convolution on the scaled graph Laplacian, and a second
gated temporal convolution, then layer normalisation. Fully convolutional: no recurrence.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from vnnet.data.batch import Batch
from vnnet.models.base import ForecastModel
from vnnet.models.baselines import check_inputs, n_station_inputs, station_inputs

__all__ = ["STGCN", "ChebGraphConv", "STConvBlock", "TemporalGLU", "scaled_laplacian"]


def scaled_laplacian(adjacency: torch.Tensor) -> torch.Tensor:
    """``2 L / lambda_max - I`` for the normalised Laplacian ``L = I - D^-1/2 W D^-1/2``.

    ``W`` is the symmetrised ``(n n)`` weight matrix without self-loops; isolated nodes keep
    ``L_ii = 1``. Returns float32 ``(n n)``; eigenvalues of the result lie in ``[-1, 1]``.
    """
    a = torch.as_tensor(adjacency, dtype=torch.float64)
    if a.dim() != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"adjacency: expected a square (n n) matrix, got {tuple(a.shape)}")
    if not torch.isfinite(a).all() or (a < 0).any():
        raise ValueError("adjacency: expected finite, non-negative weights")
    w = 0.5 * (a + a.T)
    w.fill_diagonal_(0.0)
    degree = w.sum(dim=1)
    inv_sqrt = torch.where(degree > 0, degree.clamp_min(1e-300).rsqrt(), torch.zeros_like(degree))
    eye = torch.eye(a.shape[0], dtype=a.dtype)
    laplacian = eye - inv_sqrt[:, None] * w * inv_sqrt[None, :]
    lambda_max = float(torch.linalg.eigvalsh(laplacian).max())
    return (2.0 * laplacian / max(lambda_max, 1e-8) - eye).float()


class TemporalGLU(nn.Module):
    """Gated temporal convolution on ``(b C n t)``: ``(P + x) * sigmoid(Q)``, ``[P, Q] =
    conv_{1 x kt}(x)``; ``t`` shrinks by ``kt - 1``. The residual ``x`` is cropped to the
    last ``t - kt + 1`` steps and matched to ``out_channels`` by a 1x1 convolution (fewer
    channels) or zero padding (more)."""

    def __init__(self, in_channels: int, out_channels: int, kt: int) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.kt = in_channels, out_channels, kt
        self.conv = nn.Conv2d(in_channels, 2 * out_channels, kernel_size=(1, kt))
        self.align = (nn.Conv2d(in_channels, out_channels, kernel_size=1)
                      if in_channels > out_channels else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p, q = self.conv(x).chunk(2, dim=1)
        residual = x[..., self.kt - 1:]
        if self.align is not None:
            residual = self.align(residual)
        elif self.in_channels < self.out_channels:
            residual = nn.functional.pad(residual, (0, 0, 0, 0, 0,
                                                    self.out_channels - self.in_channels))
        return (p + residual) * torch.sigmoid(q)


class ChebGraphConv(nn.Module):
    """Chebyshev graph convolution ``sum_k T_k(L~) x W_k + b`` on ``(b C n t)`` features.

    ``T_0 = I``, ``T_1 = L~``, ``T_k = 2 L~ T_{k-1} - T_{k-2}`` (order ``ks`` terms).
    """

    def __init__(self, in_channels: int, out_channels: int, ks: int) -> None:
        super().__init__()
        if ks < 1:
            raise ValueError(f"ks: expected >= 1, got {ks}")
        self.ks = ks
        self.weight = nn.Parameter(torch.empty(ks, in_channels, out_channels))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        nn.init.xavier_uniform_(self.weight.view(ks * in_channels, out_channels))

    def forward(self, x: torch.Tensor, laplacian: torch.Tensor) -> torch.Tensor:
        terms = [x]
        if self.ks > 1:
            terms.append(torch.einsum("nm,bcmt->bcnt", laplacian, x))
        for _ in range(2, self.ks):
            terms.append(2 * torch.einsum("nm,bcmt->bcnt", laplacian, terms[-1]) - terms[-2])
        out = torch.einsum("kbcnt,kco->bont", torch.stack(terms), self.weight)
        return out + self.bias[:, None, None]


class STConvBlock(nn.Module):
    """ST-Conv block: TemporalGLU -> ChebGraphConv + ReLU -> TemporalGLU -> LayerNorm over
    (n, C) -> dropout. ``(b C_in n t)`` -> ``(b C_t n t - 2 (kt - 1))``."""

    def __init__(self, in_channels: int, temporal_channels: int, spatial_channels: int,
                 n_nodes: int, kt: int, ks: int, dropout: float) -> None:
        super().__init__()
        self.temporal1 = TemporalGLU(in_channels, temporal_channels, kt)
        self.spatial = ChebGraphConv(temporal_channels, spatial_channels, ks)
        self.temporal2 = TemporalGLU(spatial_channels, temporal_channels, kt)
        self.norm = nn.LayerNorm([n_nodes, temporal_channels])
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, laplacian: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.spatial(self.temporal1(x), laplacian))
        x = self.temporal2(x)
        x = self.norm(x.permute(0, 3, 2, 1)).permute(0, 3, 2, 1)  # normalise over (n, C)
        return self.dropout(x)


class STGCN(ForecastModel):
    """STGCN (Yu et al., IJCAI 2018): ``(b t n f)`` -> ``(b h n c)`` scaled forecasts.

    Inputs per station and hour: :func:`~vnnet.models.baselines.station_inputs` (scaled
    variables, masks, calendar, static location), laid out ``(b F n t)``. ``n_blocks``
    ST-Conv blocks (channels ``temporal_channels`` - ``spatial_channels`` -
    ``temporal_channels``, paper: 64-16-64) on the scaled Laplacian of the distance graph
    (``A[i, j]`` = edge j -> i, symmetrised) shrink time from ``t`` to ``t - 2 n_blocks
    (kt - 1)`` (12 -> 4 for the defaults). Output layer: a gated temporal convolution over
    those remaining steps, LayerNorm over (n, C), a 1x1 convolution with sigmoid and a linear
    map per station to all ``h x c`` outputs at once.

    Args:
        data: the datamodule description (``WeatherDataModule.description()``).
        temporal_channels, spatial_channels: block widths (paper: 64, 16).
        n_blocks: ST-Conv blocks (paper: 2).
        kt: temporal kernel size (paper: 3).
        ks: Chebyshev order, number of polynomial terms (paper: 3).
        dropout: dropout after each block.
    """

    def __init__(self, data: dict[str, Any], temporal_channels: int = 64,
                 spatial_channels: int = 16, n_blocks: int = 2, kt: int = 3, ks: int = 3,
                 dropout: float = 0.0) -> None:
        super().__init__(data)
        spec = self.spec
        if min(temporal_channels, spatial_channels, n_blocks, kt, ks) < 1 \
                or not 0.0 <= dropout < 1.0:
            raise ValueError(f"STGCN: channels, n_blocks, kt, ks must be >= 1 and dropout in "
                             f"[0, 1), got {temporal_channels}, {spatial_channels}, {n_blocks}, "
                             f"{kt}, {ks}, {dropout}")
        self.remaining = spec.n_his - 2 * n_blocks * (kt - 1)
        if self.remaining < 1:
            raise ValueError(f"STGCN: {n_blocks} blocks with kt={kt} consume "
                             f"{2 * n_blocks * (kt - 1)} input hours but n_his={spec.n_his}; "
                             f"lower n_blocks or kt, or raise n_his")
        n = spec.n_stations
        self.register_buffer("static_features", spec.static_features(), persistent=False)
        self.register_buffer("laplacian", scaled_laplacian(spec.graph().dense),
                             persistent=False)
        channels = [n_station_inputs(spec)] + [temporal_channels] * n_blocks
        self.blocks = nn.ModuleList(
            STConvBlock(channels[i], temporal_channels, spatial_channels, n, kt, ks, dropout)
            for i in range(n_blocks))
        self.out_temporal = TemporalGLU(temporal_channels, temporal_channels, self.remaining)
        self.out_norm = nn.LayerNorm([n, temporal_channels])
        self.out_conv = nn.Conv2d(temporal_channels, temporal_channels, kernel_size=1)
        self.head = nn.Linear(temporal_channels, spec.n_pred * spec.n_targets)

    def forward(self, batch: Batch, teacher_forcing: float = 0.0) -> torch.Tensor:
        spec = self.spec
        check_inputs(spec, batch, "STGCN")
        b, _, n, _ = batch.x.shape
        x = station_inputs(batch, self.static_features).permute(0, 3, 2, 1)  # (b F n t)
        laplacian = self.laplacian.to(x.dtype)
        for block in self.blocks:
            x = block(x, laplacian)
        x = self.out_temporal(x)[..., -1]  # (b C n), one step left
        x = self.out_norm(x.transpose(1, 2)).transpose(1, 2)
        x = torch.sigmoid(self.out_conv(x.unsqueeze(-1)))[..., 0].transpose(1, 2)  # (b n C)
        return self.head(x).reshape(b, n, spec.n_pred, spec.n_targets).permute(0, 2, 1, 3)
