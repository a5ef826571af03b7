"""AGCRN: Bai, Yao, Li, Wang & Wang, "Adaptive Graph Convolutional Recurrent Network for
Traffic Forecasting", NeurIPS 2020 (arXiv 2007.02842). Implemented from the paper.

Two ideas replace a predefined graph: *node-adaptive parameter learning* (each node's graph
convolution weights are its node embedding times shared weight pools, ``W_n = E_n W_pool``,
``b_n = E_n b_pool``) and a *data-adaptive graph* ``A = softmax(relu(E E^T))`` learned from
the same embeddings. GRU cells use that graph convolution for their gates and candidate; a
linear head maps the last hidden state to every lead hour at once (not autoregressive).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from vnnet.data.batch import Batch
from vnnet.models.base import ForecastModel
from vnnet.models.baselines import check_inputs, n_station_inputs, station_inputs

__all__ = ["AGCRN", "AGCRNCell", "NodeAdaptiveGraphConv", "chebyshev_supports"]


def chebyshev_supports(adjacency: torch.Tensor, order: int) -> torch.Tensor:
    """``(order n n)`` Chebyshev polynomials ``T_0 = I, T_1 = A, T_k = 2 A T_{k-1} - T_{k-2}``
    of an ``(n n)`` adjacency (``A[i, j]`` = edge j -> i)."""
    if order < 2:
        raise ValueError(f"order: expected >= 2 (identity and the graph), got {order}")
    eye = torch.eye(adjacency.shape[-1], dtype=adjacency.dtype, device=adjacency.device)
    supports = [eye, adjacency]
    for _ in range(2, order):
        supports.append(2 * adjacency @ supports[-1] - supports[-2])
    return torch.stack(supports)


class NodeAdaptiveGraphConv(nn.Module):
    """Graph convolution with node-adaptive parameters (AGCRN "NAPL" + "DAGG").

    ``out[b, n] = sum_k (T_k x)[b, n] @ W[n, k] + bias[n]`` with ``W = E W_pool``
    (``(n K in out)``) and ``bias = E b_pool`` (``(n out)``).

    Args:
        in_dim, out_dim: feature sizes.
        embed_dim: node-embedding size d_e (rows of the weight pools).
        order: number of Chebyshev supports K (2: ``[I, A]``).
    """

    def __init__(self, in_dim: int, out_dim: int, embed_dim: int, order: int = 2) -> None:
        super().__init__()
        self.in_dim, self.out_dim, self.order = in_dim, out_dim, order
        self.weight_pool = nn.Parameter(torch.empty(embed_dim, order, in_dim, out_dim))
        self.bias_pool = nn.Parameter(torch.zeros(embed_dim, out_dim))
        # Node embeddings are ~N(0, 1): W_n has variance embed_dim * var(pool) = 1 / (K in).
        bound = math.sqrt(3.0 / (embed_dim * order * in_dim))
        nn.init.uniform_(self.weight_pool, -bound, bound)

    def forward(self, x: torch.Tensor, supports: torch.Tensor,
                embeddings: torch.Tensor) -> torch.Tensor:
        """``x (b n in)``, ``supports (K n n)``, ``embeddings (n d_e)`` -> ``(b n out)``."""
        if x.shape[-1] != self.in_dim or supports.shape[0] != self.order:
            raise ValueError(f"NodeAdaptiveGraphConv: expected x (b n {self.in_dim}) and "
                             f"{self.order} supports, got {tuple(x.shape)} and "
                             f"{tuple(supports.shape)}")
        mixed = torch.einsum("knm,bmi->bnki", supports, x)
        weights = torch.einsum("nd,dkio->nkio", embeddings, self.weight_pool)
        return torch.einsum("bnki,nkio->bno", mixed, weights) + embeddings @ self.bias_pool


class AGCRNCell(nn.Module):
    """GRU cell with node-adaptive graph convolutions (AGCRN eq. 6).

    ``z, r = sigmoid(G_g([x || h]))``, ``c = tanh(G_c([x || r * h]))``,
    ``h' = z * h + (1 - z) * c``.
    """

    def __init__(self, in_dim: int, hidden: int, embed_dim: int, order: int = 2) -> None:
        super().__init__()
        self.hidden = hidden
        self.gates = NodeAdaptiveGraphConv(in_dim + hidden, 2 * hidden, embed_dim, order)
        self.candidate = NodeAdaptiveGraphConv(in_dim + hidden, hidden, embed_dim, order)

    def forward(self, x: torch.Tensor, h: torch.Tensor, supports: torch.Tensor,
                embeddings: torch.Tensor) -> torch.Tensor:
        """One step: ``x (b n in)``, ``h (b n d)`` -> ``(b n d)``."""
        z, r = torch.sigmoid(self.gates(torch.cat([x, h], -1), supports, embeddings)).chunk(2, -1)
        c = torch.tanh(self.candidate(torch.cat([x, r * h], -1), supports, embeddings))
        return z * h + (1.0 - z) * c


class AGCRN(ForecastModel):
    """AGCRN (Bai et al., NeurIPS 2020): ``(b t n f)`` inputs -> ``(b h n c)`` scaled forecasts.

    Inputs per station and hour: :func:`~vnnet.models.baselines.station_inputs` (scaled
    variables, masks, calendar, static location). ``n_layers`` stacked :class:`AGCRNCell` run
    over the ``t`` input hours with the learned graph ``softmax(relu(E E^T))`` and its
    Chebyshev supports ``[I, A, ...]``; the last layer's final state ``(b n d)`` goes through
    the paper's output convolution (a 1 x d convolution, i.e. a linear map shared by the
    stations) to all ``h x c`` outputs at once. No distance graph is used.

    Args:
        data: the datamodule description (``WeatherDataModule.description()``).
        hidden: GRU state size d (paper: 64).
        n_layers: stacked recurrent layers (paper: 2).
        embed_dim: node-embedding size (paper: 10 on PEMS04, 2 on PEMS08).
        cheb_order: number of supports K (paper: 2, i.e. ``[I, A]``).
    """

    def __init__(self, data: dict[str, Any], hidden: int = 64, n_layers: int = 2,
                 embed_dim: int = 10, cheb_order: int = 2) -> None:
        super().__init__(data)
        if min(hidden, n_layers, embed_dim) < 1 or cheb_order < 2:
            raise ValueError(f"AGCRN: need hidden, n_layers, embed_dim >= 1 and cheb_order >= 2, "
                             f"got {hidden}, {n_layers}, {embed_dim}, {cheb_order}")
        spec = self.spec
        self.hidden, self.cheb_order = hidden, cheb_order
        self.register_buffer("static_features", spec.static_features(), persistent=False)
        self.node_embeddings = nn.Parameter(torch.randn(spec.n_stations, embed_dim))
        dims = [n_station_inputs(spec)] + [hidden] * (n_layers - 1)
        self.cells = nn.ModuleList(AGCRNCell(d, hidden, embed_dim, cheb_order) for d in dims)
        self.head = nn.Linear(hidden, spec.n_pred * spec.n_targets)

    def adjacency(self) -> torch.Tensor:
        """The learned ``(n n)`` row-stochastic graph ``softmax(relu(E E^T))``."""
        e = self.node_embeddings
        return torch.softmax(torch.relu(e @ e.T), dim=-1)

    def forward(self, batch: Batch, teacher_forcing: float = 0.0) -> torch.Tensor:
        spec = self.spec
        check_inputs(spec, batch, "AGCRN")
        b, t, n, _ = batch.x.shape
        sequence = station_inputs(batch, self.static_features)  # (b t n F)
        supports = chebyshev_supports(self.adjacency(), self.cheb_order).to(sequence.dtype)
        for cell in self.cells:
            state = sequence.new_zeros(b, n, self.hidden)
            outputs = []
            for step in range(t):
                state = cell(sequence[:, step], state, supports, self.node_embeddings)
                outputs.append(state)
            sequence = torch.stack(outputs, dim=1)
        out = self.head(sequence[:, -1])  # (b n h*c)
        return out.reshape(b, n, spec.n_pred, spec.n_targets).permute(0, 2, 1, 3)
