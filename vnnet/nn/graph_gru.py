"""Multi-support graph convolution and the graph-convolutional GRU cell of VN-Net.

VN-Net (arXiv 2404.16037, "VN-Net: Vision-Numerical Fusion Graph Convolutional Network for
Sparse Spatio-Temporal Meteorological Forecasting") runs a GRU at every station whose gate
and candidate transforms are graph convolutions over several graphs ("supports"): the static
distance graph, the adaptive graph and the dynamic graph (:mod:`vnnet.nn.adjacency`).

Supports follow the library's dense convention (:mod:`vnnet.graphs`): ``S[..., i, j]`` is the
weight of edge ``j -> i`` and aggregation is ``S @ x``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["GraphConv", "GraphConvGRUCell"]


class GraphConv(nn.Module):
    """``Linear(concat_k(S_k @ x))`` over an implicit identity plus the given supports.

    The identity (each node's own features) is always the first support, so ``n_supports``
    counts the supports passed to ``forward`` **plus one**; ``n_supports = 1`` is a per-node
    linear layer shared across stations.

    Args:
        in_dim: input feature size f.
        out_dim: output feature size.
        n_supports: 1 + number of supports given to ``forward``.
    """

    def __init__(self, in_dim: int, out_dim: int, n_supports: int) -> None:
        super().__init__()
        if n_supports < 1:
            raise ValueError(f"n_supports: expected >= 1 (identity included), got {n_supports}")
        self.in_dim, self.out_dim, self.n_supports = in_dim, out_dim, n_supports
        self.linear = nn.Linear(n_supports * in_dim, out_dim)

    def forward(self, x: torch.Tensor, supports: Sequence[torch.Tensor]) -> torch.Tensor:
        """Graph convolution.

        Args:
            x: ``(b n in_dim)``.
            supports: ``n_supports - 1`` tensors, each ``(n n)``, ``(1 n n)`` or ``(b n n)``.

        Returns:
            ``(b n out_dim)``.
        """
        if len(supports) != self.n_supports - 1:
            raise ValueError(f"supports: expected {self.n_supports - 1} (identity is implicit), "
                             f"got {len(supports)}")
        if x.shape[-1] != self.in_dim:
            raise ValueError(f"x: expected last dim {self.in_dim}, got {tuple(x.shape)}")
        # matmul broadcasts a shared (n n) support over the batch and pairs (b n n) with (b n f)
        mixed = [x] + [s @ x for s in supports]
        return self.linear(torch.cat(mixed, dim=-1))


class GraphConvGRUCell(nn.Module):
    """GRU cell whose transforms are :class:`GraphConv` over ``[x || h]``.

    ``r, u = sigmoid(GC_g([x || h]))`` (split), ``c = tanh(GC_c([x || r * h]))``,
    ``h' = u * h + (1 - u) * c``.

    Args:
        in_dim: input feature size f.
        hidden: state size d.
        n_supports: 1 + number of supports given to ``forward`` (identity is implicit).
    """

    def __init__(self, in_dim: int, hidden: int, n_supports: int) -> None:
        super().__init__()
        self.in_dim, self.hidden, self.n_supports = in_dim, hidden, n_supports
        self.gates = GraphConv(in_dim + hidden, 2 * hidden, n_supports)
        self.candidate = GraphConv(in_dim + hidden, hidden, n_supports)

    def init_state(self, batch: int, n_nodes: int, *, device: torch.device | str | None = None,
                   dtype: torch.dtype | None = None) -> torch.Tensor:
        """Zeros ``(b n d)`` initial state (on this cell's device/dtype unless given)."""
        ref = self.candidate.linear.weight
        return torch.zeros(batch, n_nodes, self.hidden, device=device or ref.device,
                           dtype=dtype or ref.dtype)

    def forward(self, x: torch.Tensor, h: torch.Tensor,
                supports: Sequence[torch.Tensor]) -> torch.Tensor:
        """One step: ``x (b n in_dim)``, ``h (b n d)`` -> ``h' (b n d)``."""
        r, u = torch.sigmoid(self.gates(torch.cat([x, h], dim=-1), supports)).chunk(2, dim=-1)
        c = torch.tanh(self.candidate(torch.cat([x, r * h], dim=-1), supports))
        return u * h + (1.0 - u) * c
