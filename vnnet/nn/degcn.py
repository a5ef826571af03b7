"""DEGCN, the numerical encoder of the official VN-Net code (VNNET-SPEC 2.2).

VN-Net (arXiv 2404.16037, "VN-Net: Vision-Numerical Fusion Graph Convolutional Network for
Sparse Spatio-Temporal Meteorological Forecasting") calls its station encoder N-GCN; the
official implementation (GitHub NoahRe1/VN-Net, a later revision of the method) replaces it by
a *Diffusion-Enhanced GCN*: stacked GRU cells ("DEGRU", the AGCRN cell layout) whose gate and
candidate transforms are "DGNN" blocks::

    SDGC (node-adaptive Chebyshev graph conv over the time-aware adaptive graph A_t and the
          dynamic attention graph S)
      -> CGD (continuous graph diffusion dH/dtau = alpha (A_t H - H), explicit Euler)
      -> dropout -> Linear(dgnn_hidden -> out)

Written from the description of the official code in VNNET-SPEC section 2 (no code copied).
Graphs follow the library's dense convention (:mod:`vnnet.graphs`): ``A[..., i, j]`` is the
weight of edge ``j -> i`` and aggregation is ``A @ x``. Layouts: b batch, t input hours,
n stations, f features, K supports, d_e embedding size.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from vnnet.nn.adjacency import AdaptiveAdjacency

__all__ = ["DEGCNEncoder", "DEGRUCell", "DGNNBlock", "DynamicGraph", "GraphDiffusionODE",
           "StaticDynamicGraphConv", "chebyshev_polynomials", "time_aware_graph"]

NodeParameters = tuple[torch.Tensor, torch.Tensor]


def chebyshev_polynomials(adjacency: torch.Tensor, order: int) -> torch.Tensor:
    """``(... K n n)`` Chebyshev supports ``T_0 = I, T_1 = A, T_k = 2 A T_{k-1} - T_{k-2}``.

    Args:
        adjacency: ``(n n)`` or batched ``(... n n)`` graph.
        order: number of supports K (>= 2; the official code uses ``max_view`` = 6).
    """
    if adjacency.dim() < 2 or adjacency.shape[-1] != adjacency.shape[-2]:
        raise ValueError(f"adjacency: expected (... n n), got {tuple(adjacency.shape)}")
    if order < 2:
        raise ValueError(f"order: expected >= 2 (identity and the graph), got {order}")
    eye = torch.eye(adjacency.shape[-1], dtype=adjacency.dtype, device=adjacency.device)
    supports = [eye.expand_as(adjacency), adjacency]
    for _ in range(2, order):
        supports.append(2 * adjacency @ supports[-1] - supports[-2])
    return torch.stack(supports, dim=-3)


def time_aware_graph(embeddings: torch.Tensor) -> torch.Tensor:
    """``softmax(relu(E E^T))`` row-wise: ``(... n d_e)`` embeddings -> ``(... n n)``."""
    return torch.softmax(torch.relu(embeddings @ embeddings.transpose(-1, -2)), dim=-1)


class DynamicGraph(nn.Module):
    """The official dynamic graph ``S = softmax(relu(k(z) q(z)^T))`` (row-wise).

    ``k`` and ``q`` are linear maps (with bias) of each station's cell input ``z`` (b n in_dim)
    to ``key_dim`` = 8 dims, recomputed at every step in every DGNN block. Row i (target)
    weighs sources j by ``relu(k_i . q_j)``.

    This is not :class:`vnnet.nn.adjacency.DynamicAdjacency` (the paper version's graph):
    that one is scaled dot-product attention ``softmax(q k^T / sqrt(key_dim))`` with no ReLU,
    so negative scores there still rank sources, while here every negative score becomes 0
    (weight ``exp(0)`` before normalising) and scores are not scaled.
    """

    def __init__(self, in_dim: int, key_dim: int = 8) -> None:
        super().__init__()
        if in_dim < 1 or key_dim < 1:
            raise ValueError(f"in_dim and key_dim must be >= 1, got {in_dim}, {key_dim}")
        self.in_dim, self.key_dim = in_dim, key_dim
        self.key = nn.Linear(in_dim, key_dim)
        self.query = nn.Linear(in_dim, key_dim)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``z (b n in_dim)`` -> row-stochastic ``(b n n)``."""
        if z.shape[-1] != self.in_dim:
            raise ValueError(f"DynamicGraph: z: expected last dim {self.in_dim}, got "
                             f"{tuple(z.shape)}")
        scores = self.key(z) @ self.query(z).transpose(-1, -2)
        return torch.softmax(torch.relu(scores), dim=-1)


class StaticDynamicGraphConv(nn.Module):
    """SDGC: node-adaptive graph convolution over ``K`` Chebyshev supports of ``A_t`` + ``S``.

    ``out[b, i] = sum_k (P_k x)[b, i] @ W[i, k] + bias[i]`` with the supports
    ``P = [T_0(A_t) .. T_{K-1}(A_t), S]`` (K + 1 of them), per-node weights
    ``W = E @ weight_pool`` (``weight_pool`` ``(d_e K+1 in out)``) and ``bias = E @ bias_pool``
    (``(d_e out)``), where ``E`` is the *static* node embedding (not ``E_t``), as in the
    official code (AGCRN's node-adaptive parameter learning).

    Args:
        in_dim, out_dim: feature sizes (official ``out_dim`` = ``dgnn.hidden_dim`` = 64).
        embed_dim: node-embedding size d_e (official 8).
        cheb_order: Chebyshev supports K of ``A_t`` (official ``max_view`` = 6).
        key_dim: size of the dynamic graph's keys and queries (official 8).
    """

    def __init__(self, in_dim: int, out_dim: int = 64, embed_dim: int = 8, cheb_order: int = 6,
                 key_dim: int = 8) -> None:
        super().__init__()
        if min(in_dim, out_dim, embed_dim) < 1 or cheb_order < 2:
            raise ValueError(f"SDGC: need in_dim, out_dim, embed_dim >= 1 and cheb_order >= 2, "
                             f"got {in_dim}, {out_dim}, {embed_dim}, {cheb_order}")
        self.in_dim, self.out_dim, self.cheb_order = in_dim, out_dim, cheb_order
        self.weight_pool = nn.Parameter(torch.empty(embed_dim, cheb_order + 1, in_dim, out_dim))
        self.bias_pool = nn.Parameter(torch.zeros(embed_dim, out_dim))
        nn.init.xavier_uniform_(self.weight_pool)
        self.dynamic = DynamicGraph(in_dim, key_dim)

    def node_parameters(self, embeddings: torch.Tensor) -> NodeParameters:
        """Per-node ``(n K+1 in out)`` weights and ``(n out)`` biases from ``E (n d_e)``.

        They depend only on the static embedding, so an encoder computes them once per
        forward and shares them over the time steps.
        """
        if embeddings.dim() != 2 or embeddings.shape[1] != self.weight_pool.shape[0]:
            raise ValueError(f"SDGC: embeddings: expected (n {self.weight_pool.shape[0]}), "
                             f"got {tuple(embeddings.shape)}")
        weights = torch.einsum("nd,dkio->nkio", embeddings, self.weight_pool)
        return weights, embeddings @ self.bias_pool

    def forward(self, x: torch.Tensor, supports: torch.Tensor,
                node_parameters: NodeParameters) -> torch.Tensor:
        """``x (b n in)``, ``supports (b K n n)`` of ``A_t`` -> ``(b n out)``."""
        weights, bias = node_parameters
        b, n = x.shape[:2]
        if x.dim() != 3 or x.shape[-1] != self.in_dim:
            raise ValueError(f"SDGC: x: expected (b n {self.in_dim}), got {tuple(x.shape)}")
        if supports.shape != (b, self.cheb_order, n, n):
            raise ValueError(f"SDGC: supports: expected (b K n n) = "
                             f"{(b, self.cheb_order, n, n)}, got {tuple(supports.shape)}")
        if weights.shape[0] != n:
            raise ValueError(f"SDGC: node parameters are for {weights.shape[0]} nodes, x has {n}")
        graphs = torch.cat([supports, self.dynamic(x).unsqueeze(1)], dim=1)  # (b K+1 n n)
        mixed = torch.einsum("bknm,bmi->bnki", graphs, x)
        return torch.einsum("bnki,nkio->bno", mixed, weights) + bias


class GraphDiffusionODE(nn.Module):
    """CGD: ``dH/dtau = alpha (A H - H)`` integrated by explicit Euler from ``tau = 0``.

    ``steps`` Euler steps of size ``step_size`` (official: 4 x 0.25 over [0, 1], which is what
    torchdiffeq's fixed-grid Euler does there): ``H <- H + step_size * alpha * (A H - H)``.
    ``alpha`` is one learnable scalar with no sigmoid (GREAD "diffusion" reaction term,
    ``alpha_dim: sc``, ``no_alpha_sigmoid: true``).

    Args:
        steps: number of Euler steps (official 4).
        step_size: Euler step (official 0.25).
        alpha: initial alpha (replaced by U(0, 1) under the official initialisation).
    """

    def __init__(self, steps: int = 4, step_size: float = 0.25, alpha: float = 0.5) -> None:
        super().__init__()
        if steps < 0 or step_size <= 0:
            raise ValueError(f"GraphDiffusionODE: need steps >= 0 and step_size > 0, got "
                             f"{steps}, {step_size}")
        self.steps, self.step_size = int(steps), float(step_size)
        self.alpha = nn.Parameter(torch.tensor(float(alpha)))

    def forward(self, h: torch.Tensor, adjacency: torch.Tensor) -> torch.Tensor:
        """``h (b n f)``, ``adjacency (b n n)`` or ``(n n)`` -> ``H(steps * step_size)``."""
        n = h.shape[-2]
        if adjacency.shape[-2:] != (n, n):
            raise ValueError(f"GraphDiffusionODE: adjacency: expected (b {n} {n}), got "
                             f"{tuple(adjacency.shape)}")
        for _ in range(self.steps):
            h = h + self.step_size * self.alpha * (adjacency @ h - h)
        return h


class DGNNBlock(nn.Module):
    """One gate / candidate transform of a DEGRU cell: SDGC -> CGD -> dropout -> Linear.

    Args:
        in_dim: cell input size (x and h concatenated).
        out_dim: 2 * hidden for the gates, hidden for the candidate.
        embed_dim, cheb_order: see :class:`StaticDynamicGraphConv`.
        dgnn_hidden: SDGC / CGD feature size (``dgnn.hidden_dim``, official 64).
        ode_steps, ode_step_size: see :class:`GraphDiffusionODE`.
        dropout: dropout before the output Linear (official 0.3, training only).
    """

    def __init__(self, in_dim: int, out_dim: int, embed_dim: int = 8, cheb_order: int = 6,
                 dgnn_hidden: int = 64, ode_steps: int = 4, ode_step_size: float = 0.25,
                 dropout: float = 0.3) -> None:
        super().__init__()
        self.conv = StaticDynamicGraphConv(in_dim, dgnn_hidden, embed_dim, cheb_order)
        self.diffusion = GraphDiffusionODE(ode_steps, ode_step_size)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(dgnn_hidden, out_dim)

    def node_parameters(self, embeddings: torch.Tensor) -> NodeParameters:
        return self.conv.node_parameters(embeddings)

    def forward(self, x: torch.Tensor, supports: torch.Tensor,
                node_parameters: NodeParameters) -> torch.Tensor:
        """``x (b n in)``, ``supports (b K n n)`` (``supports[:, 1]`` is A_t) -> ``(b n out)``."""
        h = self.conv(x, supports, node_parameters)
        h = self.diffusion(h, supports[:, 1])
        return self.out(self.dropout(h))


class DEGRUCell(nn.Module):
    """GRU cell with DGNN transforms, laid out as the AGCRN cell of the official code.

    ``z, r = split(sigmoid(G_g([x || h])))``, ``c = tanh(G_c([x || z * h]))``,
    ``h' = r * h + (1 - r) * c`` (the second half of the gates keeps the old state, as in
    the official code).
    """

    def __init__(self, in_dim: int, hidden: int, **dgnn: Any) -> None:
        super().__init__()
        self.in_dim, self.hidden = in_dim, hidden
        self.gates = DGNNBlock(in_dim + hidden, 2 * hidden, **dgnn)
        self.candidate = DGNNBlock(in_dim + hidden, hidden, **dgnn)

    def node_parameters(self, embeddings: torch.Tensor) -> tuple[NodeParameters, NodeParameters]:
        return self.gates.node_parameters(embeddings), self.candidate.node_parameters(embeddings)

    def forward(self, x: torch.Tensor, h: torch.Tensor, supports: torch.Tensor,
                node_parameters: tuple[NodeParameters, NodeParameters]) -> torch.Tensor:
        """One step: ``x (b n in)``, ``h (b n hidden)`` -> ``(b n hidden)``."""
        if x.shape[-1] != self.in_dim or h.shape[-1] != self.hidden or x.shape[:2] != h.shape[:2]:
            raise ValueError(f"DEGRUCell: expected x (b n {self.in_dim}) and h (b n "
                             f"{self.hidden}), got {tuple(x.shape)} and {tuple(h.shape)}")
        gate_params, candidate_params = node_parameters
        z, r = torch.sigmoid(self.gates(torch.cat([x, h], -1), supports, gate_params)).chunk(2, -1)
        c = torch.tanh(self.candidate(torch.cat([x, z * h], -1), supports, candidate_params))
        return r * h + (1.0 - r) * c


class DEGCNEncoder(nn.Module):
    """Stacked DEGRU cells over the input hours: ``(b t n f)`` -> final states ``(L b n d)``.

    The learnable embeddings (static ``E`` (n d_e) and month (12 d_e), day (31 d_e), hour
    (24 d_e) tables) belong to the encoder (the official layer 1, shared with layer 2 at the
    same step). At input hour t: ``E_t = E + M[month] + D[day] + H[hour]`` (via
    :class:`vnnet.nn.adjacency.AdaptiveAdjacency`, which builds exactly this sum),
    ``A_t = softmax(relu(E_t E_t^T))`` per sample, and its K Chebyshev supports feed every
    DGNN block of that step; node weights use the static ``E``. Hidden states start at zero.

    Not built (they never enter the official computation): the two ``BatchNorm1d(64 n)`` layers
    per DGNN block and the GREAD ODE-function parameters other than alpha, including a duplicated
    ODE-function object per block; :func:`vnnet.models.official.unused_official_parameters`
    counts them.

    Args:
        n_nodes: stations n.
        in_dim: input features f per station and hour (official 23).
        hidden: state size d (``rnn_units``, official 32).
        n_layers: stacked cells L (official 2).
        embed_dim, cheb_order, dgnn_hidden, ode_steps, ode_step_size, dropout: see
            :class:`DGNNBlock` (official 8, 6, 64, 4, 0.25, 0.3).
    """

    def __init__(self, n_nodes: int, in_dim: int, hidden: int = 32, n_layers: int = 2,
                 embed_dim: int = 8, cheb_order: int = 6, dgnn_hidden: int = 64,
                 ode_steps: int = 4, ode_step_size: float = 0.25, dropout: float = 0.3) -> None:
        super().__init__()
        if min(n_nodes, in_dim, hidden, n_layers) < 1:
            raise ValueError(f"DEGCNEncoder: n_nodes, in_dim, hidden, n_layers must be >= 1, got "
                             f"{n_nodes}, {in_dim}, {hidden}, {n_layers}")
        self.n_nodes, self.in_dim, self.hidden, self.cheb_order = (n_nodes, in_dim, hidden,
                                                                   cheb_order)
        self.embeddings = AdaptiveAdjacency(n_nodes, embed_dim, time_aware=True)
        dgnn = {"embed_dim": embed_dim, "cheb_order": cheb_order, "dgnn_hidden": dgnn_hidden,
                "ode_steps": ode_steps, "ode_step_size": ode_step_size, "dropout": dropout}
        dims = [in_dim] + [hidden] * (n_layers - 1)
        self.cells = nn.ModuleList(DEGRUCell(d, hidden, **dgnn) for d in dims)

    def graph(self, time_index: torch.Tensor) -> torch.Tensor:
        """Time-aware adaptive graph ``A_t``: ``time_index (... 3)`` -> ``(... n n)``."""
        return time_aware_graph(self.embeddings.embeddings(time_index))

    def forward(self, x: torch.Tensor, time_index: torch.Tensor) -> torch.Tensor:
        """Encode.

        Args:
            x: ``(b t n f)`` station inputs.
            time_index: ``(b t 3)`` int64 month (0-11), day of month (0-30), hour (0-23).

        Returns:
            ``(L b n d)`` the last hour's state of every layer.
        """
        if x.dim() != 4 or x.shape[2:] != (self.n_nodes, self.in_dim):
            raise ValueError(f"DEGCNEncoder: x: expected (b t {self.n_nodes} {self.in_dim}), "
                             f"got {tuple(x.shape)}")
        b, t = x.shape[:2]
        if time_index.shape != (b, t, 3):
            raise ValueError(f"DEGCNEncoder: time_index: expected (b t 3) = {(b, t, 3)}, got "
                             f"{tuple(time_index.shape)}")
        node = self.embeddings.node_embedding
        params = [cell.node_parameters(node) for cell in self.cells]
        states = [x.new_zeros(b, self.n_nodes, self.hidden) for _ in self.cells]
        for step in range(t):
            supports = chebyshev_polynomials(self.graph(time_index[:, step]).to(x.dtype),
                                             self.cheb_order)  # (b K n n)
            inp = x[:, step]
            for layer, cell in enumerate(self.cells):
                states[layer] = cell(inp, states[layer], supports, params[layer])
                inp = states[layer]
        return torch.stack(states)
