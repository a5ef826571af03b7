"""Graph WaveNet: Wu, Pan, Long, Jiang & Zhang, "Graph WaveNet for Deep Spatial-Temporal Graph
Modeling", IJCAI 2019 (arXiv 1906.00121). Implemented from the paper, with dense operations
(station graphs are small).

Stacked layers of a gated, dilated causal temporal convolution (``tanh(conv) * sigmoid(conv)``,
kernel 2, dilations 1, 2, 1, 2, ...) followed by a diffusion graph convolution over the forward
and backward transition matrices of the distance graph and a self-adaptive adjacency
``softmax(relu(E1 E2^T))``; residual connections around each layer, skip connections from
every layer summed into a two-layer output head that emits all lead hours at once.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from vnnet.data.batch import Batch
from vnnet.models.base import ForecastModel
from vnnet.models.baselines import check_inputs, n_station_inputs, station_inputs
from vnnet.nn.adjacency import row_normalize

__all__ = ["DiffusionGraphConv", "GraphWaveNet"]


def _propagate(support: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``support (n n)`` applied over the node axis of ``x (b C n t)``."""
    return torch.einsum("nm,bcmt->bcnt", support, x)


class DiffusionGraphConv(nn.Module):
    """``1x1 conv(concat[x, P x, P^2 x, ... for each support P])`` on ``(b C n t)`` features.

    Args:
        in_channels, out_channels: channels C before and after.
        n_supports: number of supports given to ``forward`` (0: a plain 1x1 convolution).
        order: diffusion steps K per support.
        dropout: dropout on the output (training only).
    """

    def __init__(self, in_channels: int, out_channels: int, n_supports: int, order: int = 2,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.n_supports, self.order = n_supports, order
        self.mix = nn.Conv2d((1 + n_supports * order) * in_channels, out_channels,
                             kernel_size=1)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, supports: list[torch.Tensor]) -> torch.Tensor:
        if len(supports) != self.n_supports:
            raise ValueError(f"DiffusionGraphConv: expected {self.n_supports} supports, got "
                             f"{len(supports)}")
        terms = [x]
        for support in supports:
            step = x
            for _ in range(self.order):
                step = _propagate(support, step)
                terms.append(step)
        return self.dropout(self.mix(torch.cat(terms, dim=1)))


class GraphWaveNet(ForecastModel):
    """Graph WaveNet (Wu et al., IJCAI 2019): ``(b t n f)`` -> ``(b h n c)`` scaled forecasts.

    Inputs per station and hour: :func:`~vnnet.models.baselines.station_inputs` (scaled
    variables, masks, calendar, static location), laid out ``(b F n t)`` for the convolutions
    and left-padded with zeros to the receptive field ``1 + n_blocks * sum_l (kernel_size - 1)
    * 2^l`` (13 for the defaults, one more than the 12 input hours). Graph supports: the
    forward ``D^-1 A`` and backward ``D^-1 A^T`` transition matrices of the distance graph
    ``A`` (``A[i, j]`` = edge j -> i; ``static_graph``) and the self-adaptive adjacency
    ``softmax(relu(E1 E2^T))`` (``adaptive``). The last layer's graph convolution would feed
    nothing (only its skip output is used) and is omitted.

    Args:
        data: the datamodule description (``WeatherDataModule.description()``).
        residual_channels, dilation_channels, skip_channels, end_channels: widths (paper:
            32, 32, 256, 512).
        n_blocks, n_layers: blocks of layers with dilations 1, 2, ..., 2^(n_layers-1)
            (paper: 4 blocks x 2 layers).
        kernel_size: temporal kernel (paper: 2).
        diffusion_order: diffusion steps K per support (paper: 2).
        embed_dim: size of the adaptive node embeddings E1, E2 (paper: 10).
        adaptive: use the self-adaptive adjacency.
        static_graph: use the distance graph's forward / backward transitions.
        dropout: dropout after each graph convolution (paper: 0.3).
    """

    def __init__(self, data: dict[str, Any], residual_channels: int = 32,
                 dilation_channels: int = 32, skip_channels: int = 256, end_channels: int = 512,
                 n_blocks: int = 4, n_layers: int = 2, kernel_size: int = 2,
                 diffusion_order: int = 2, embed_dim: int = 10, adaptive: bool = True,
                 static_graph: bool = True, dropout: float = 0.3) -> None:
        super().__init__(data)
        sizes = {"residual_channels": residual_channels, "dilation_channels": dilation_channels,
                 "skip_channels": skip_channels, "end_channels": end_channels,
                 "n_blocks": n_blocks, "n_layers": n_layers, "diffusion_order": diffusion_order,
                 "embed_dim": embed_dim}
        bad = {k: v for k, v in sizes.items() if v < 1}
        if bad or kernel_size < 2 or not 0.0 <= dropout < 1.0:
            raise ValueError(f"GraphWaveNet: sizes must be >= 1 (got {bad or 'ok'}), "
                             f"kernel_size >= 2 (got {kernel_size}), dropout in [0, 1) "
                             f"(got {dropout})")
        spec = self.spec
        self.register_buffer("static_features", spec.static_features(), persistent=False)
        if static_graph:
            dense = torch.as_tensor(spec.graph().dense)
            self.register_buffer("forward_transition", row_normalize(dense), persistent=False)
            self.register_buffer("backward_transition", row_normalize(dense.T),
                                 persistent=False)
        self.static_graph, self.adaptive = static_graph, adaptive
        if adaptive:
            self.source_embeddings = nn.Parameter(torch.randn(spec.n_stations, embed_dim))
            self.target_embeddings = nn.Parameter(torch.randn(spec.n_stations, embed_dim))
        n_supports = 2 * static_graph + adaptive

        self.dilations = [2 ** layer for _ in range(n_blocks) for layer in range(n_layers)]
        self.kernel_size = kernel_size
        self.receptive_field = 1 + sum((kernel_size - 1) * d for d in self.dilations)
        self.start = nn.Conv2d(n_station_inputs(spec), residual_channels, kernel_size=1)
        self.filters, self.gates, self.skips = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        self.graph_convs, self.norms = nn.ModuleList(), nn.ModuleList()
        for i, d in enumerate(self.dilations):
            for convs in (self.filters, self.gates):
                convs.append(nn.Conv2d(residual_channels, dilation_channels,
                                       kernel_size=(1, kernel_size), dilation=(1, d)))
            self.skips.append(nn.Conv2d(dilation_channels, skip_channels, kernel_size=1))
            if i < len(self.dilations) - 1:  # the last layer feeds only the skip path
                self.graph_convs.append(DiffusionGraphConv(
                    dilation_channels, residual_channels, n_supports, diffusion_order, dropout))
                self.norms.append(nn.BatchNorm2d(residual_channels))
        self.end = nn.Sequential(nn.ReLU(), nn.Conv2d(skip_channels, end_channels, 1), nn.ReLU(),
                                 nn.Conv2d(end_channels, spec.n_pred * spec.n_targets, 1))

    def supports(self) -> list[torch.Tensor]:
        """The ``(n n)`` graph supports: forward, backward transitions, adaptive adjacency."""
        out = [self.forward_transition, self.backward_transition] if self.static_graph else []
        if self.adaptive:
            scores = self.source_embeddings @ self.target_embeddings.T
            out.append(torch.softmax(torch.relu(scores), dim=-1))
        return out

    def forward(self, batch: Batch, teacher_forcing: float = 0.0) -> torch.Tensor:
        spec = self.spec
        check_inputs(spec, batch, "GraphWaveNet")
        b, t, n, _ = batch.x.shape
        x = station_inputs(batch, self.static_features).permute(0, 3, 2, 1)  # (b F n t)
        if t < self.receptive_field:
            x = nn.functional.pad(x, (self.receptive_field - t, 0))
        x = self.start(x)
        supports = [s.to(x.dtype) for s in self.supports()]
        skip = None
        for i in range(len(self.dilations)):
            residual = x
            x = torch.tanh(self.filters[i](x)) * torch.sigmoid(self.gates[i](x))
            s = self.skips[i](x)
            skip = s if skip is None else s + skip[..., -s.shape[-1]:]
            if i < len(self.graph_convs):
                x = self.graph_convs[i](x, supports) + residual[..., -x.shape[-1]:]
                x = self.norms[i](x)
        out = self.end(skip)[..., -1]  # (b h*c n), the last time step
        return out.reshape(b, spec.n_pred, spec.n_targets, n).permute(0, 1, 3, 2)

