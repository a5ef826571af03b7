"""Convolutional LSTM used by the V-LSTM image encoder of VN-Net.

VN-Net (arXiv 2404.16037, "VN-Net: Vision-Numerical Fusion Graph Convolutional Network for
Sparse Spatio-Temporal Meteorological Forecasting") encodes the satellite frame sequence with
a vision LSTM; this module provides its recurrent core: an LSTM whose gates are 2-D
convolutions, so the state keeps the spatial layout of the frames (ConvLSTM, Shi et al. 2015).

Layouts: b batch, t time, c input channels, d hidden channels, H x W pixels.

Split gates (``ConvLSTM(split_gates=True)``): the gate convolution over ``[x || h]`` is the sum
of a convolution over x and one over h (the same weight, sliced), so the x part runs once for
all frames as one large convolution (and for each distinct frame only, see
:class:`vnnet.models.vlstm.VLSTM`), and the h part is skipped at the first step, where the
state is zero. Same parameters and outputs as the plain path (up to rounding; checked in
``tests/test_performance_equivalence.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ConvLSTMCell", "ConvLSTM"]


class ConvLSTMCell(nn.Module):
    """One ConvLSTM step: a single conv over ``[x || h]`` gives the i, f, o, g gates.

    ``c' = f * c + i * g``, ``h' = o * tanh(c')`` with i, f, o sigmoid and g tanh.

    Args:
        in_channels: channels of the input frame x.
        hidden_channels: channels d of the hidden and cell states.
        kernel_size: odd size of the square gate convolution ("same" padding).
    """

    def __init__(self, in_channels: int, hidden_channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd number, got {kernel_size}")
        if in_channels < 1 or hidden_channels < 1:
            raise ValueError("in_channels and hidden_channels must be positive")
        self.in_channels = in_channels
        self.hidden_channels = hidden_channels
        self.gates = nn.Conv2d(in_channels + hidden_channels, 4 * hidden_channels,
                               kernel_size, padding=kernel_size // 2)
        # Forget-gate bias 1: the cell starts out remembering, which eases learning over long
        # sequences (Jozefowicz et al. 2015). Gate order in the conv output: i, f, o, g.
        with torch.no_grad():
            self.gates.bias.zero_()
            self.gates.bias[hidden_channels:2 * hidden_channels].fill_(1.0)

    def init_state(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Zero ``(h, c)``, each (b d H W), matching the batch, size, dtype and device of x."""
        b, _, height, width = x.shape
        zeros = x.new_zeros(b, self.hidden_channels, height, width)
        return zeros, zeros.clone()

    def forward(self, x: torch.Tensor,
                state: tuple[torch.Tensor, torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """x (b c H W), state (h, c) each (b d H W) or None (zeros) -> new (h, c)."""
        h, c = self.init_state(x) if state is None else state
        i, f, o, g = self.gates(torch.cat([x, h], dim=1)).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, c

    def input_gates(self, x: torch.Tensor) -> torch.Tensor:
        """The x part of the gate conv, bias included: x (N c H W) -> (N 4d H W)."""
        conv = self.gates
        return F.conv2d(x, conv.weight[:, :self.in_channels], conv.bias, padding=conv.padding)

    def step(self, input_gates: torch.Tensor,
             state: tuple[torch.Tensor, torch.Tensor] | None = None
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """One step from precomputed :meth:`input_gates` (b 4d H W); state None = zeros (then
        the h part, zero, is not computed) -> new (h, c). Equals ``forward``."""
        conv = self.gates
        gates = input_gates if state is None else input_gates + F.conv2d(
            state[0], conv.weight[:, self.in_channels:], None, padding=conv.padding)
        i, f, o, g = gates.chunk(4, dim=1)
        c = torch.sigmoid(i) * torch.tanh(g)
        if state is not None:
            c = torch.sigmoid(f) * state[1] + c
        return torch.sigmoid(o) * torch.tanh(c), c


class ConvLSTM(nn.Module):
    """Stacked ConvLSTM over a frame sequence, skipping missing frames.

    Where ``frame_mask`` is False for a sample and step, every layer's ``(h, c)`` of that sample
    is carried over unchanged: a missing frame (zero-filled by the data pipeline) must not be
    read as a real all-zero observation. A sample with no frame at all keeps the zero state.

    Args:
        in_channels: channels c of each input frame.
        hidden_channels: channels d of every layer's state.
        kernel_size: odd gate-convolution size.
        n_layers: number of stacked cells (layer k > 0 reads the hidden state of layer k-1).
        split_gates: compute the first layer's input part of the gates for all frames at once
            and skip the zero state's part at the first step (module docstring); False is the
            plain reference path. An attribute, so it can be switched after construction.
    """

    def __init__(self, in_channels: int, hidden_channels: int, kernel_size: int = 3,
                 n_layers: int = 1, split_gates: bool = False) -> None:
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"n_layers must be >= 1, got {n_layers}")
        self.hidden_channels = hidden_channels
        self.split_gates = split_gates
        self.cells = nn.ModuleList(
            ConvLSTMCell(in_channels if k == 0 else hidden_channels, hidden_channels, kernel_size)
            for k in range(n_layers))

    def forward(self, x: torch.Tensor, frame_mask: torch.Tensor | None = None,
                sequence: bool = True) -> tuple[torch.Tensor | None, torch.Tensor]:
        """Run over time.

        Args:
            x: (b t c H W) frames.
            frame_mask: (b t) bool, True where the frame exists; None = all present.
            sequence: also return the per-step outputs (False: None in their place, which
                saves stacking them when only the final state is used).

        Returns:
            outputs (b t d H W): the last layer's hidden state after each step (at a missing
            step, the carried-over state), and the final hidden state h (b d H W).
        """
        if x.dim() != 5:
            raise ValueError(f"x must be (b t c H W), got shape {tuple(x.shape)}")
        b, t = x.shape[:2]
        frame_mask = self._check_mask(frame_mask, b, t, x.device)
        if self.split_gates:
            gates = self.cells[0].input_gates(x.flatten(0, 1)).unflatten(0, (b, t))
            return self.run_gates(gates.unbind(1), frame_mask, sequence)
        states = [cell.init_state(x[:, 0]) for cell in self.cells]
        outputs = []
        # unbind, not x[:, step]: one backward node for all steps instead of one zero-filled
        # full-size gradient per step.
        for step, inp in enumerate(x.unbind(1)):
            keep = None if frame_mask is None else frame_mask[:, step].view(b, 1, 1, 1)
            for k, cell in enumerate(self.cells):
                h, c = cell(inp, states[k])
                if keep is not None:
                    h = torch.where(keep, h, states[k][0])
                    c = torch.where(keep, c, states[k][1])
                states[k] = (h, c)
                inp = h
            outputs.append(inp)
        return torch.stack(outputs, dim=1) if sequence else None, states[-1][0]

    @staticmethod
    def _check_mask(frame_mask: torch.Tensor | None, b: int, t: int, device: torch.device
                    ) -> torch.Tensor | None:
        if frame_mask is None:
            return None
        if frame_mask.shape != (b, t):
            raise ValueError(f"frame_mask must be (b t) = {(b, t)}, got {tuple(frame_mask.shape)}")
        return frame_mask.to(device=device, dtype=torch.bool)

    def run_gates(self, input_gates: Sequence[torch.Tensor],
                  frame_mask: torch.Tensor | None = None, sequence: bool = True
                  ) -> tuple[torch.Tensor | None, torch.Tensor]:
        """:meth:`forward` from the first layer's precomputed input gates, one (b 4d H W)
        tensor per step (:meth:`ConvLSTMCell.input_gates` of each frame); same outputs."""
        t = len(input_gates)
        if t < 1:
            raise ValueError("run_gates needs at least one step")
        b = input_gates[0].shape[0]
        frame_mask = self._check_mask(frame_mask, b, t, input_gates[0].device)
        states: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * len(self.cells)
        outputs = []
        for step in range(t):
            keep = None if frame_mask is None else frame_mask[:, step].view(b, 1, 1, 1)
            inp = None
            for k, cell in enumerate(self.cells):
                prev = states[k]
                if k == 0:
                    h, c = cell.step(input_gates[step], prev)
                else:
                    h, c = cell.step(cell.input_gates(inp), prev)
                if keep is not None:
                    # A missing frame keeps the previous (or, before any frame, zero) state.
                    h = torch.where(keep, h, 0.0 if prev is None else prev[0])
                    c = torch.where(keep, c, 0.0 if prev is None else prev[1])
                states[k] = (h, c)
                inp = h
            outputs.append(inp)
        return torch.stack(outputs, dim=1) if sequence else None, states[-1][0]
