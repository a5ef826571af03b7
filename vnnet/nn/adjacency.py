"""Learned station graphs of VN-Net's N-GCN encoder and GCN decoder.

VN-Net (arXiv 2404.16037, "VN-Net: Vision-Numerical Fusion Graph Convolutional Network for
Sparse Spatio-Temporal Meteorological Forecasting") mixes three graphs in its graph-recurrent
cells: the static distance graph, an *adaptive* graph learned from node embeddings (made
time-aware in the encoder) and a *dynamic* graph computed by attention from the current step.
This module builds the two learned ones.

Both follow the library's dense convention (:mod:`vnnet.graphs`): ``A[..., i, j]`` is the
weight of edge ``j -> i`` and aggregation is ``A @ x``. Both are row-stochastic: every row is
a softmax, so each target node takes a convex combination of its sources.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["AdaptiveAdjacency", "DynamicAdjacency", "row_normalize"]

N_MONTHS, N_DAYS, N_HOURS = 12, 31, 24


def row_normalize(adjacency: torch.Tensor) -> torch.Tensor:
    """``D^-1 A`` for a non-negative ``(n n)`` adjacency (D = row sums = in-degree).

    Rows of isolated nodes (degree 0) stay all-zero instead of NaN. Returns a float tensor
    of the default dtype; raises ``ValueError`` for a non-square, non-finite or negative input.
    """
    a = torch.as_tensor(adjacency).detach().to(torch.get_default_dtype())
    if a.dim() != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"adjacency: expected a square (n n) tensor, got {tuple(a.shape)}")
    if not torch.isfinite(a).all() or (a < 0).any():
        raise ValueError("adjacency: expected finite, non-negative weights")
    deg = a.sum(dim=1, keepdim=True)
    return torch.where(deg > 0, a / deg.clamp_min(torch.finfo(a.dtype).tiny), torch.zeros_like(a))


class AdaptiveAdjacency(nn.Module):
    """Adaptive graph ``softmax(relu(E_t E_t^T))`` from learnable node embeddings.

    With ``time_aware`` the node embeddings are shifted by month, day-of-month and hour
    embeddings: ``E_t = E + M[month] + D[day] + H[hour]`` (additive, as in the official
    VN-Net code; a shift keeps ``E`` meaningful on its own and cannot zero a node's embedding
    the way a multiplicative ``E * (1 + ...)`` can).

    Args:
        n_nodes: number of stations n.
        embed_dim: embedding size d_e.
        time_aware: add the month / day / hour embeddings (then ``forward`` needs
            ``time_index``).
    """

    def __init__(self, n_nodes: int, embed_dim: int = 8, time_aware: bool = True) -> None:
        super().__init__()
        if n_nodes < 1 or embed_dim < 1:
            raise ValueError(f"n_nodes and embed_dim must be >= 1, got {n_nodes}, {embed_dim}")
        self.n_nodes, self.embed_dim, self.time_aware = n_nodes, embed_dim, time_aware
        self.node_embedding = nn.Parameter(torch.empty(n_nodes, embed_dim))
        if time_aware:
            self.month_embedding = nn.Parameter(torch.empty(N_MONTHS, embed_dim))
            self.day_embedding = nn.Parameter(torch.empty(N_DAYS, embed_dim))
            self.hour_embedding = nn.Parameter(torch.empty(N_HOURS, embed_dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # Xavier for every embedding table (the official code's global re-init): keeps the
        # time shifts on the same scale as E instead of N(0, 1) which would swamp it.
        for p in self.parameters():
            nn.init.xavier_uniform_(p)

    def embeddings(self, time_index: torch.Tensor | None = None) -> torch.Tensor:
        """Node embeddings: ``(n d_e)`` without time, ``(... n d_e)`` for ``time_index (... 3)``.

        ``time_index[..., 0]`` = month 0-11, ``[..., 1]`` = day of month 0-30,
        ``[..., 2]`` = hour 0-23 (int64).
        """
        if not self.time_aware:
            return self.node_embedding
        if time_index is None:
            raise ValueError("time_index: required by a time-aware AdaptiveAdjacency")
        if time_index.shape[-1] != 3 or time_index.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"time_index: expected integer (... 3) [month, day, hour], got "
                             f"{tuple(time_index.shape)} {time_index.dtype}")
        # Embedding lookups whose backward sums repeated rows in a fixed order (advanced
        # indexing would add them with parallel atomics on a CPU: not run-to-run exact).
        shift = (F.embedding(time_index[..., 0], self.month_embedding)
                 + F.embedding(time_index[..., 1], self.day_embedding)
                 + F.embedding(time_index[..., 2], self.hour_embedding))  # (... d_e)
        return self.node_embedding + shift.unsqueeze(-2)  # (... n d_e)

    def forward(self, time_index: torch.Tensor | None = None) -> torch.Tensor:
        """Row-stochastic adjacency.

        Args:
            time_index: ``(b 3)`` or ``(b t 3)`` int64 [month, day, hour]; ignored (may be
                None) when not time-aware.

        Returns:
            ``(b n n)`` / ``(b t n n)`` when time-aware, else ``(n n)``; rows sum to 1.
        """
        e = self.embeddings(time_index)
        return torch.softmax(torch.relu(e @ e.transpose(-1, -2)), dim=-1)


class DynamicAdjacency(nn.Module):
    """Dynamic graph: scaled dot-product attention between stations at the current step.

    ``A = softmax(q k^T / sqrt(key_dim))`` with ``q = W_q z``, ``k = W_k z`` and ``z`` the
    cell input ``[x_t || h_{t-1}]``; row ``i`` (target) attends over sources ``j``, so
    ``A @ x`` follows the library's convention. Recomputed from the data at every step.

    Args:
        in_dim: feature size of ``z``.
        key_dim: query / key size.
    """

    def __init__(self, in_dim: int, key_dim: int = 16) -> None:
        super().__init__()
        if in_dim < 1 or key_dim < 1:
            raise ValueError(f"in_dim and key_dim must be >= 1, got {in_dim}, {key_dim}")
        self.in_dim, self.key_dim = in_dim, key_dim
        self.query = nn.Linear(in_dim, key_dim)
        self.key = nn.Linear(in_dim, key_dim)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``z (b n in_dim)`` -> row-stochastic ``(b n n)``."""
        if z.shape[-1] != self.in_dim:
            raise ValueError(f"z: expected last dim {self.in_dim}, got {tuple(z.shape)}")
        scores = self.query(z) @ self.key(z).transpose(-1, -2) / math.sqrt(self.key_dim)
        return torch.softmax(scores, dim=-1)


def static_support(adjacency: torch.Tensor | None, n_nodes: int) -> torch.Tensor | None:
    """Row-normalised ``(n n)`` static graph (``A[i, j]`` = edge j -> i), or None if absent."""
    if adjacency is None:
        return None
    static = row_normalize(adjacency)
    if static.shape != (n_nodes, n_nodes):
        raise ValueError(f"static_adjacency: expected {(n_nodes, n_nodes)}, "
                         f"got {tuple(static.shape)}")
    return static
