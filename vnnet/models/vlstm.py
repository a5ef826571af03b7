"""V-LSTM: the satellite-image encoder of VN-Net (paper version).

VN-Net (arXiv 2404.16037, "VN-Net: Vision-Numerical Fusion Graph Convolutional Network for
Sparse Spatio-Temporal Meteorological Forecasting") encodes the input window's satellite frames
with a vision LSTM followed by a multi-scale channel-spatial module (MSCSM). Here:

1. a per-frame conv stem (log2(downsample) stride-2 3x3 convs, each + GroupNorm + ReLU) brings
   the frames to the feature grid (160 px -> 40 px for Weather2K crops, as in the official
   code's encoder), run on all frames at once with time folded into the batch;
2. a ConvLSTM runs over the frames on that grid; missing frames leave its state unchanged;
3. MSCSM refines the final hidden state.

Layouts: b batch, t input hours, c image channels, H x W pixels, d hidden, Hf x Wf feature grid.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from vnnet.nn.attention import MultiScaleChannelSpatial
from vnnet.nn.convlstm import ConvLSTM

__all__ = ["VLSTM"]


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
    """

    def __init__(self, in_channels: int, image_size: tuple[int, int], hidden: int = 32,
                 stem_channels: int = 16, downsample: int = 4,
                 scales: Sequence[int] = (1, 2, 4)) -> None:
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
                                 stride=2 if k < n_down else 1, padding=1, bias=False),
                       nn.GroupNorm(groups, stem_channels), nn.ReLU(inplace=True)]
        self.stem = nn.Sequential(*layers)
        self.lstm = ConvLSTM(stem_channels, hidden, kernel_size=3, n_layers=1)
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
        feats = self.stem(images.flatten(0, 1))  # all frames in one pass: (b*t, s, Hf, Wf)
        feats = feats.unflatten(0, (b, t))
        _, h = self.lstm(feats, image_mask)
        return self.mscsm(h)
