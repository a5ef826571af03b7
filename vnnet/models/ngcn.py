"""N-GCN: the numerical (station) encoder of VN-Net, paper version.

VN-Net (arXiv 2404.16037, "VN-Net: Vision-Numerical Fusion Graph Convolutional Network for
Sparse Spatio-Temporal Meteorological Forecasting") encodes the station history with stacked
graph-convolutional GRUs (:class:`vnnet.nn.GraphConvGRUCell`). At each input hour the graph
convolution mixes, besides each node's own features (the implicit identity support):

* the static distance graph, row-normalised, kept as a buffer;
* the adaptive graph learned from node embeddings, time-aware with that hour's month / day /
  hour (:class:`vnnet.nn.AdaptiveAdjacency`, one shared by all layers);
* the dynamic graph, attention over ``[x_t || h_{t-1}]`` of that layer
  (:class:`vnnet.nn.DynamicAdjacency`, one per layer, shared by its gate and candidate).

Each graph can be switched off for ablations. All supports are row-stochastic, so they act
on the same scale (weighted means over neighbours).
"""

from __future__ import annotations

import torch
from torch import nn

from vnnet.nn.adjacency import AdaptiveAdjacency, DynamicAdjacency, static_support
from vnnet.nn.graph_gru import GraphConvGRUCell

__all__ = ["NGCNEncoder"]


class NGCNEncoder(nn.Module):
    """Stacked graph-conv GRU encoder over static, adaptive (time-aware) and dynamic graphs.

    Args:
        n_nodes: number of stations n.
        in_dim: input features per station f.
        hidden: state size d of every layer.
        n_layers: number of stacked cells (layer 1 takes f, the others d).
        embed_dim: size of the adaptive graph's node / time embeddings.
        static_adjacency: ``(n n)`` non-negative distance graph (``A[i, j]`` = edge j -> i);
            row-normalised into the ``static_adjacency`` buffer. None: no static support.
        adaptive: use the learned adaptive graph.
        time_aware: make the adaptive graph depend on month / day / hour.
        dynamic: use the per-step attention graph.
        key_dim: query / key size of the dynamic graph.

    Attributes:
        last_adjacency: detached graphs of the last forward's final step: ``"static"``
            ``(n n)``, ``"adaptive"`` ``(b n n)`` (or ``(n n)`` when not time-aware),
            ``"dynamic"`` ``(n_layers b n n)``; only the enabled ones.
    """

    static_adjacency: torch.Tensor | None

    def __init__(self, n_nodes: int, in_dim: int, hidden: int = 32, n_layers: int = 2,
                 embed_dim: int = 8, static_adjacency: torch.Tensor | None = None,
                 adaptive: bool = True, time_aware: bool = True, dynamic: bool = True,
                 key_dim: int = 16) -> None:
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"n_layers: expected >= 1, got {n_layers}")
        self.n_nodes, self.in_dim, self.hidden, self.n_layers = n_nodes, in_dim, hidden, n_layers
        self.time_aware = adaptive and time_aware
        self.register_buffer("static_adjacency", static_support(static_adjacency, n_nodes))
        self.adaptive = (AdaptiveAdjacency(n_nodes, embed_dim, time_aware=time_aware)
                         if adaptive else None)
        dims = [in_dim] + [hidden] * (n_layers - 1)
        self.dynamic = (nn.ModuleList(DynamicAdjacency(d + hidden, key_dim) for d in dims)
                        if dynamic else None)
        n_supports = 1 + (static_adjacency is not None) + adaptive + dynamic
        self.cells = nn.ModuleList(GraphConvGRUCell(d, hidden, n_supports) for d in dims)
        self.last_adjacency: dict[str, torch.Tensor] = {}

    def forward(self, x: torch.Tensor,
                time_index: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode a history window.

        Args:
            x: ``(b t n f)`` station inputs.
            time_index: ``(b t 3)`` int64 [month 0-11, day 0-30, hour 0-23] of each input
                hour; needed only by a time-aware adaptive graph.

        Returns:
            ``states`` ``(n_layers b n d)``: final hidden state of every layer, and
            ``outputs`` ``(b t n d)``: the last layer's state at every hour.
        """
        if x.dim() != 4 or x.shape[2:] != (self.n_nodes, self.in_dim):
            raise ValueError(f"x: expected (b t {self.n_nodes} {self.in_dim}), "
                             f"got {tuple(x.shape)}")
        b, t = x.shape[:2]
        if self.time_aware:
            if time_index is None or time_index.shape != (b, t, 3):
                got = None if time_index is None else tuple(time_index.shape)
                raise ValueError(f"time_index: expected ({b} {t} 3), got {got}")
        # the adaptive graph does not depend on the states: build all hours at once
        adaptive = None if self.adaptive is None else self.adaptive(time_index)  # (b t n n)|(n n)

        states = [cell.init_state(b, self.n_nodes, device=x.device, dtype=x.dtype)
                  for cell in self.cells]
        outputs = []
        dynamic_last: list[torch.Tensor] = []
        for step in range(t):
            shared = [] if self.static_adjacency is None else [self.static_adjacency]
            if adaptive is not None:
                shared.append(adaptive[:, step] if self.time_aware else adaptive)
            inp = x[:, step]
            dynamic_last = []
            for layer, cell in enumerate(self.cells):
                supports = list(shared)
                if self.dynamic is not None:
                    a_dyn = self.dynamic[layer](torch.cat([inp, states[layer]], dim=-1))
                    supports.append(a_dyn)
                    dynamic_last.append(a_dyn)
                states[layer] = cell(inp, states[layer], supports)
                inp = states[layer]
            outputs.append(inp)

        self._record(adaptive, dynamic_last)
        return torch.stack(states), torch.stack(outputs, dim=1)

    @torch.no_grad()
    def _record(self, adaptive: torch.Tensor | None, dynamic: list[torch.Tensor]) -> None:
        # kept for interpretation; detached so holding them keeps no autograd graph alive
        record: dict[str, torch.Tensor] = {}
        if self.static_adjacency is not None:
            record["static"] = self.static_adjacency.detach()
        if adaptive is not None:
            record["adaptive"] = (adaptive[:, -1] if self.time_aware else adaptive).detach()
        if dynamic:
            record["dynamic"] = torch.stack(dynamic).detach()
        self.last_adjacency = record
