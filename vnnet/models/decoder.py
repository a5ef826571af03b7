"""GCN decoder of VN-Net: an autoregressive graph-conv GRU with scheduled sampling.

VN-Net (arXiv 2404.16037, "VN-Net: Vision-Numerical Fusion Graph Convolutional Network for
Sparse Spatio-Temporal Meteorological Forecasting") decodes the fused station states with
stacked graph-convolutional GRUs over the static distance graph and the decoder's own
adaptive graph (not time-aware, no dynamic graph). Each step feeds the previous prediction
back as input; during training, DCRNN-style scheduled sampling feeds the ground truth instead
with a probability that decays with the number of batches seen
(:func:`teacher_forcing_probability`).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from vnnet.nn.adjacency import AdaptiveAdjacency, static_support
from vnnet.nn.graph_gru import GraphConvGRUCell

__all__ = ["GCNDecoder", "teacher_forcing_probability"]

# exp(x) overflows a double past ~709.78; the probability is < 1e-300 long before that
_MAX_EXPONENT = 700.0


def teacher_forcing_probability(step: int, decay_steps: int = 2000) -> float:
    """Inverse-sigmoid decay ``c / (c + exp(step / c))`` with ``c = decay_steps``.

    ``step`` = batches seen so far. 2000/2001 at step 0, about 0.98 after 7,300 steps
    (5 epochs of 1,460 batches), 0.0 once ``exp`` would overflow.
    """
    if decay_steps <= 0:
        raise ValueError(f"decay_steps: expected > 0, got {decay_steps}")
    c = float(decay_steps)
    exponent = step / c
    if exponent > _MAX_EXPONENT:
        return 0.0
    return c / (c + math.exp(exponent))


class GCNDecoder(nn.Module):
    """Stacked graph-conv GRU decoder, autoregressive over the horizon.

    Args:
        n_nodes: number of stations n.
        out_dim: predicted features per station c (also the step input size).
        hidden: state size d of every layer.
        n_layers: number of stacked cells.
        embed_dim: node-embedding size of the decoder's adaptive graph.
        static_adjacency: ``(n n)`` non-negative distance graph (``A[i, j]`` = edge j -> i),
            row-normalised into a buffer; None: no static support.
        adaptive: use the decoder's own (time-free) adaptive graph.
        n_step_features: extra per-step inputs k (e.g. calendar features of the lead hour),
            given to ``forward`` as ``step_features``.
        residual: every step forecasts its departure from ``go`` (the last observation):
            ``y_s = go + W h_s``, so an untrained decoder is persistence. Not in the paper;
            on real stations, where the next hours are mostly the last one, a decoder that
            forecasts the value loses the first leads to persistence (benchmarks/RESULTS.md;
            a chained ``y_s = y_{s-1} + W h_s`` won +1 h but drifted at later leads).
    """

    static_adjacency: torch.Tensor | None

    def __init__(self, n_nodes: int, out_dim: int, hidden: int = 32, n_layers: int = 2,
                 embed_dim: int = 8, static_adjacency: torch.Tensor | None = None,
                 adaptive: bool = True, n_step_features: int = 0, residual: bool = False
                 ) -> None:
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"n_layers: expected >= 1, got {n_layers}")
        self.n_nodes, self.out_dim, self.hidden, self.n_layers = n_nodes, out_dim, hidden, n_layers
        self.register_buffer("static_adjacency", static_support(static_adjacency, n_nodes))
        self.adaptive = (AdaptiveAdjacency(n_nodes, embed_dim, time_aware=False)
                         if adaptive else None)
        n_supports = 1 + (static_adjacency is not None) + adaptive
        self.n_step_features = n_step_features
        dims = [out_dim + n_step_features] + [hidden] * (n_layers - 1)
        self.cells = nn.ModuleList(GraphConvGRUCell(d, hidden, n_supports) for d in dims)
        self.projection = nn.Linear(hidden, out_dim)
        self.residual = residual

    def forward(self, h0: torch.Tensor, go: torch.Tensor, n_pred: int,
                targets: torch.Tensor | None = None, target_mask: torch.Tensor | None = None,
                teacher_forcing: float = 0.0, step_features: torch.Tensor | None = None
                ) -> torch.Tensor:
        """Decode ``n_pred`` steps.

        Args:
            h0: ``(n_layers b n d)`` initial state of every layer.
            go: ``(b n c)`` input of the first step.
            n_pred: horizon h.
            targets: ``(b h n c)`` ground truth, used only for scheduled sampling.
            target_mask: ``(b h n c)`` bool, True where ``targets`` is observed; default:
                where ``targets`` is finite. Missing truth keeps the prediction.
            teacher_forcing: probability, per step and per batch (one coin), of feeding the
                truth of the previous step instead of the prediction; training mode only.
            step_features: ``(b h k)`` or ``(b h n k)`` extra inputs of each step (required
                when the decoder was built with ``n_step_features`` > 0).

        Returns:
            ``(b h n c)`` predictions.
        """
        b = go.shape[0]
        if h0.shape != (self.n_layers, b, self.n_nodes, self.hidden):
            raise ValueError(f"h0: expected {(self.n_layers, b, self.n_nodes, self.hidden)}, "
                             f"got {tuple(h0.shape)}")
        if go.shape != (b, self.n_nodes, self.out_dim):
            raise ValueError(f"go: expected (b {self.n_nodes} {self.out_dim}), "
                             f"got {tuple(go.shape)}")
        if n_pred < 1:
            raise ValueError(f"n_pred: expected >= 1, got {n_pred}")
        if self.n_step_features:
            if step_features is None or step_features.shape[:2] != (b, n_pred) \
                    or step_features.shape[-1] != self.n_step_features:
                got = None if step_features is None else tuple(step_features.shape)
                raise ValueError(f"step_features: expected (b {n_pred} [n] "
                                 f"{self.n_step_features}), got {got}")
            if step_features.dim() == 3:
                step_features = step_features.unsqueeze(2).expand(-1, -1, self.n_nodes, -1)
        sampling = self.training and teacher_forcing > 0.0 and n_pred > 1
        if sampling:
            if targets is None:
                raise ValueError("targets: required for teacher_forcing > 0 in training mode")
            if targets.shape[0] != b or targets.shape[1] < n_pred - 1 \
                    or targets.shape[2:] != go.shape[1:]:
                raise ValueError(f"targets: expected (b >={n_pred - 1} {self.n_nodes} "
                                 f"{self.out_dim}), got {tuple(targets.shape)}")
            if target_mask is None:
                target_mask = torch.isfinite(targets)
            elif target_mask.shape != targets.shape:
                raise ValueError(f"target_mask: expected {tuple(targets.shape)}, "
                                 f"got {tuple(target_mask.shape)}")

        supports = [] if self.static_adjacency is None else [self.static_adjacency]
        if self.adaptive is not None:
            supports.append(self.adaptive())  # (n n), the same at every step
        states = list(h0.unbind(0))
        inp = go
        preds = []
        for step in range(n_pred):
            if step > 0:
                inp = preds[-1]
                # one coin per batch and step, as in DCRNN's curriculum learning
                if sampling and bool(torch.rand(()) < teacher_forcing):
                    inp = torch.where(target_mask[:, step - 1], targets[:, step - 1], inp)
            if self.n_step_features:
                inp = torch.cat([inp, step_features[:, step]], dim=-1)
            for layer, cell in enumerate(self.cells):
                states[layer] = cell(inp, states[layer], supports)
                inp = states[layer]
            change = self.projection(inp)
            preds.append(go + change if self.residual else change)
        return torch.stack(preds, dim=1)
