"""V-LSTM: the satellite-image encoder of VN-Net (paper version).

VN-Net (arXiv 2404.16037, "VN-Net: Vision-Numerical Fusion Graph Convolutional Network for
Sparse Spatio-Temporal Meteorological Forecasting") encodes the input window's satellite frames
with a vision LSTM followed by a multi-scale channel-spatial module (MSCSM). Here:

1. a per-frame conv stem (log2(downsample) stride-2 3x3 convs, each + GroupNorm + ReLU) brings
   the frames to the feature grid (160 px -> 40 px for Weather2K crops, as in the official
   code's encoder), run on all frames at once with time folded into the batch;
2. a ConvLSTM runs over the frames on that grid; missing frames leave its state unchanged;
3. MSCSM refines the final hidden state.

Shared frames (``shared_frames=True``): windows that overlap in time carry the same frames (a
batch of consecutive hourly windows of 12 hours holds only b + 11 distinct frames among its
12 b). Such frames are found by content (exact equality), the stem runs once per distinct
frame and so does the input part of the ConvLSTM's gate convolution (its split gates);
the ConvLSTM itself still runs per window. Identical inputs give identical outputs, so this
changes nothing but the cost (gradients of the shared stem are summed over the windows, as
in the plain path); it is skipped when the images require gradients or no frame repeats.
``tests/test_performance_equivalence.py`` checks outputs and gradients against the plain path.

Layouts: b batch, t input hours, c image channels, H x W pixels, d hidden, Hf x Wf feature grid.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from vnnet.nn.attention import MultiScaleChannelSpatial
from vnnet.nn.convlstm import ConvLSTM

__all__ = ["VLSTM", "distinct_frames"]


def distinct_frames(images: torch.Tensor, probes: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """The distinct frames of a (b t c H W) batch and where each frame is among them.

    Frames are grouped by a few probe pixels, then each is compared exactly with its group's
    first frame; a frame that differs stays on its own. Returns ``(index (b t) int64,
    first (U,) int64)``: frame ``(i, s)`` equals flat frame ``first[index[i, s]]`` of
    ``images.flatten(0, 1)``, exactly.
    """
    b, t = images.shape[:2]
    flat = images.detach().flatten(0, 1).flatten(1)  # (b*t, c*H*W)
    n, size = flat.shape
    step = max(size // probes, 1)
    _, group = torch.unique(flat[:, ::step], dim=0, return_inverse=True)
    order = torch.arange(n, device=images.device)
    first = torch.full((int(group.max()) + 1,), n, dtype=torch.long, device=images.device)
    rep = first.scatter_reduce(0, group, order, reduce="amin")[group]  # (n,) group's first frame
    dup = (rep != order).nonzero().squeeze(1)  # frames that would be replaced: check them
    differ = dup[~(flat[dup] == flat[rep[dup]]).all(dim=1)]
    rep[differ] = differ
    first, index = torch.unique(rep, return_inverse=True)
    return index.view(b, t), first


class VLSTM(nn.Module):
    """Frame stem -> ConvLSTM -> MSCSM: (b t c H W) images -> (b d Hf Wf) features.

    GroupNorm rather than BatchNorm in the stem: statistics stay per frame, so zero-filled
    missing frames in a batch do not shift the normalisation of real ones, and train and eval
    behave the same.

    Args:
        in_channels: image channels c.
        image_size: (H, W) of the input frames.
        hidden: ConvLSTM hidden channels d (the fusion dimension).
        stem_channels: channels of the conv stem.
        downsample: total stride of the stem; a power of two dividing H and W (1 = no
            downsampling, a single stride-1 conv).
        scales: MSCSM pooling scales.
        stem_norm: GroupNorm after each stem conv. Off keeps each frame's absolute brightness
            (a cold cloud top stays cold whatever else the frame shows); the frames are
            already min-max scaled by the data pipeline.
        shared_frames: encode each distinct frame of a batch once (module docstring); the
            ConvLSTM then takes the distinct frames' input gates (its split-gate path).
        split_gates: the ConvLSTM's split-gate path also when no frame repeats (off by
            default: on a CPU it is slower than the plain cell there).
        channels_last: run the stem on channels-last frames (``(b*t) H W c`` in memory; about
            twice as fast on CPU, same values).
            All three are speed options with the same outputs, and attributes
            (``shared_frames``, ``lstm.split_gates``, ``channels_last``) that can be switched
            after construction.
    """

    def __init__(self, in_channels: int, image_size: tuple[int, int], hidden: int = 32,
                 stem_channels: int = 16, downsample: int = 4,
                 scales: Sequence[int] = (1, 2, 4), stem_norm: bool = True,
                 shared_frames: bool = True, split_gates: bool = False,
                 channels_last: bool = True) -> None:
        super().__init__()
        height, width = (int(v) for v in image_size)
        if downsample < 1 or downsample & (downsample - 1):
            raise ValueError(f"downsample must be a power of two, got {downsample}")
        if height % downsample or width % downsample:
            raise ValueError(f"downsample ({downsample}) must divide the image size "
                             f"{height} x {width}")
        self.in_channels = in_channels
        self.image_size = (height, width)
        self.hidden = hidden
        self.downsample = downsample
        n_down = int(math.log2(downsample))
        groups = math.gcd(4, stem_channels)
        layers: list[nn.Module] = []
        for k in range(max(n_down, 1)):
            layers += [nn.Conv2d(in_channels if k == 0 else stem_channels, stem_channels, 3,
                                 stride=2 if k < n_down else 1, padding=1, bias=not stem_norm),
                       nn.GroupNorm(groups, stem_channels) if stem_norm else nn.Identity(),
                       nn.ReLU(inplace=True)]
        self.stem = nn.Sequential(*layers)
        self.lstm = ConvLSTM(stem_channels, hidden, kernel_size=3, n_layers=1,
                             split_gates=split_gates)
        self.shared_frames = shared_frames
        self.channels_last = channels_last
        self.mscsm = MultiScaleChannelSpatial(hidden, scales=scales)

    @property
    def feature_size(self) -> tuple[int, int]:
        """(Hf, Wf) of the output feature grid."""
        return self.image_size[0] // self.downsample, self.image_size[1] // self.downsample

    def forward(self, images: torch.Tensor, image_mask: torch.Tensor | None = None
                ) -> torch.Tensor:
        """images (b t c H W), image_mask (b t) bool True = frame present -> (b d Hf Wf)."""
        if images.dim() != 5 or images.shape[2] != self.in_channels \
                or tuple(images.shape[-2:]) != self.image_size:
            raise ValueError(f"images must be (b t {self.in_channels} {self.image_size[0]} "
                             f"{self.image_size[1]}), got {tuple(images.shape)}")
        b, t = images.shape[:2]
        if self.shared_frames and not images.requires_grad and b > 1:
            index, first = distinct_frames(images)
            if first.numel() < b * t:
                feats = self.encode_frames(images.flatten(0, 1)[first])  # (U, s, Hf, Wf)
                # index_select, not feats[index]: the backward of advanced indexing with
                # repeated indices adds with parallel float atomics on a CPU (a different
                # sum order, so different weights, from run to run); index_add is ordered.
                gates = self.lstm.cells[0].input_gates(feats).index_select(
                    0, index.flatten()).unflatten(0, index.shape)  # (b t 4d Hf Wf)
                _, h = self.lstm.run_gates(gates.unbind(1), image_mask, sequence=False)
                return self.mscsm(h)
        feats = self.encode_frames(images.flatten(0, 1))  # all frames at once: (b*t s Hf Wf)
        _, h = self.lstm(feats.unflatten(0, (b, t)), image_mask, sequence=False)
        return self.mscsm(h)

    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """The stem: frames (N c H W) -> (N s Hf Wf)."""
        if self.channels_last:
            frames = frames.contiguous(memory_format=torch.channels_last)
        return self.stem(frames)
