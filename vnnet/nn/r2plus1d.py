"""MLVFEM, the image encoder of the official VN-Net code (VNNET-SPEC 2.3).

VN-Net (arXiv 2404.16037, "VN-Net: Vision-Numerical Fusion Graph Convolutional Network for
Sparse Spatio-Temporal Meteorological Forecasting") encodes the satellite sequence with a
V-LSTM; the official implementation (GitHub NoahRe1/VN-Net, a later revision) uses instead a
small residual 3-D CNN in the R(2+1)D style (Tran et al., CVPR 2018, "A Closer Look at
Spatiotemporal Convolutions for Action Recognition"): every 3-D convolution is factorised
into a spatial ``1 x k x k`` convolution and a temporal ``k x 1 x 1`` one, with
``M = floor(k^3 Cin Cout / (k^2 Cin + k Cout))`` channels in between (the count that keeps the
parameters of a full ``k x k x k`` convolution).

Written from the description of the official code in VNNET-SPEC 2.3 (no code copied):

- InitConv: a factorised conv ``C -> 16`` with 45 middle channels.
- Layer 1: 2 residual blocks 16 -> 16.
- Layer 2: a block 16 -> 32 that halves t, H, W (stride 2; projection shortcut), a block 32 -> 32.
- Layer 3: the same pattern 32 -> 32.
- Temporal average pool: ``(b 32 t' H/4 W/4)`` -> ``(b 32 H/4 W/4)``.

Each factorised conv is ``spatial -> BN -> ReLU -> temporal -> BN -> ReLU`` and a block adds its
own BN after each conv (conv1 -> BN -> ReLU -> conv2 -> BN -> + shortcut -> ReLU); this double
normalisation is what the official parameter count (244,078 for 6 channels) requires. Convs
have no bias. Layouts: b batch, t frames, c channels, H x W pixels.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["MLVFEM", "FactorisedConv3d", "R2Plus1DBlock", "intermediate_channels"]


def intermediate_channels(in_channels: int, out_channels: int, kernel: int = 3) -> int:
    """``floor(k^3 Cin Cout / (k^2 Cin + k Cout))``: the middle width of a factorised conv.

    36 for 16 -> 16, 57 for 16 -> 32, 72 for 32 -> 32 (k = 3); 10 for the 16 -> 32 and 16 for the
    32 -> 32 projection shortcuts (k = 1).
    """
    return (kernel ** 3 * in_channels * out_channels) // (kernel ** 2 * in_channels
                                                          + kernel * out_channels)


class FactorisedConv3d(nn.Sequential):
    """``(b Cin t H W)`` -> ``(b Cout t' H' W')``: spatial conv -> BN -> ReLU -> temporal conv
    -> BN -> ReLU (no conv bias).

    Args:
        in_channels, out_channels: Cin, Cout.
        kernel: k of the ``1 x k x k`` and ``k x 1 x 1`` convs (padding ``k // 2``).
        stride: stride of both (spatial ``(1 s s)``, temporal ``(s 1 1)``).
        mid_channels: channels between them; default :func:`intermediate_channels`.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int = 3, stride: int = 1,
                 mid_channels: int | None = None) -> None:
        mid = intermediate_channels(in_channels, out_channels, kernel) if mid_channels is None \
            else mid_channels
        if min(in_channels, out_channels, mid, kernel, stride) < 1:
            raise ValueError(f"FactorisedConv3d: sizes must be >= 1, got in {in_channels}, out "
                             f"{out_channels}, mid {mid}, kernel {kernel}, stride {stride}")
        pad = kernel // 2
        super().__init__(
            nn.Conv3d(in_channels, mid, (1, kernel, kernel), stride=(1, stride, stride),
                      padding=(0, pad, pad), bias=False),
            nn.BatchNorm3d(mid), nn.ReLU(inplace=True),
            nn.Conv3d(mid, out_channels, (kernel, 1, 1), stride=(stride, 1, 1),
                      padding=(pad, 0, 0), bias=False),
            nn.BatchNorm3d(out_channels), nn.ReLU(inplace=True),
        )


class R2Plus1DBlock(nn.Module):
    """Residual block: conv1 -> BN -> ReLU -> conv2 -> BN, + shortcut, ReLU.

    With ``downsample`` the first conv has stride 2 (t, H and W halve, rounding up) and the
    shortcut is a factorised ``1 x 1 x 1`` stride-2 conv + BN; otherwise it is the identity
    (then ``in_channels`` must equal ``out_channels``).
    """

    def __init__(self, in_channels: int, out_channels: int, downsample: bool = False) -> None:
        super().__init__()
        if not downsample and in_channels != out_channels:
            raise ValueError(f"R2Plus1DBlock: an identity shortcut needs in_channels == "
                             f"out_channels, got {in_channels} and {out_channels}")
        stride = 2 if downsample else 1
        self.conv1 = FactorisedConv3d(in_channels, out_channels, 3, stride)
        self.bn1 = nn.BatchNorm3d(out_channels)
        self.conv2 = FactorisedConv3d(out_channels, out_channels, 3)
        self.bn2 = nn.BatchNorm3d(out_channels)
        self.shortcut = (nn.Sequential(FactorisedConv3d(in_channels, out_channels, 1, stride),
                                       nn.BatchNorm3d(out_channels))
                         if downsample else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        res = torch.relu(self.bn1(self.conv1(x)))
        res = self.bn2(self.conv2(res))
        return torch.relu(self.shortcut(x) + res)


class MLVFEM(nn.Module):
    """The official VN-Net image encoder: ``(b t c H W)`` frames -> ``(b d H/4 W/4)`` features.

    Args:
        in_channels: image channels c (official 6 infrared bands).
        out_channels: feature size d (official 32 = the state size of the encoder).
        stem_channels: output of InitConv and width of layer 1 (official 16).
        stem_mid: middle channels of InitConv (official 45).

    With the official sizes (6 -> 32) it has 244,078 parameters. A frame of ``H x W`` pixels
    gives a ``ceil(ceil(H / 2) / 2)`` x ``ceil(ceil(W / 2) / 2)`` map (:meth:`feature_size`;
    160 -> 40).
    """

    def __init__(self, in_channels: int, out_channels: int = 32, stem_channels: int = 16,
                 stem_mid: int = 45) -> None:
        super().__init__()
        if min(in_channels, out_channels, stem_channels, stem_mid) < 1:
            raise ValueError(f"MLVFEM: channel counts must be >= 1, got in {in_channels}, out "
                             f"{out_channels}, stem {stem_channels}, stem_mid {stem_mid}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.init_conv = FactorisedConv3d(in_channels, stem_channels, 3, mid_channels=stem_mid)
        self.layer1 = nn.Sequential(R2Plus1DBlock(stem_channels, stem_channels),
                                    R2Plus1DBlock(stem_channels, stem_channels))
        self.layer2 = nn.Sequential(R2Plus1DBlock(stem_channels, out_channels, downsample=True),
                                    R2Plus1DBlock(out_channels, out_channels))
        self.layer3 = nn.Sequential(R2Plus1DBlock(out_channels, out_channels, downsample=True),
                                    R2Plus1DBlock(out_channels, out_channels))

    @staticmethod
    def feature_size(height: int, width: int) -> tuple[int, int]:
        """(Hf, Wf) of the feature map for ``height x width`` frames (two stride-2 stages)."""
        return tuple((((s + 1) // 2) + 1) // 2 for s in (height, width))

    def forward(self, images: torch.Tensor, image_mask: torch.Tensor | None = None
                ) -> torch.Tensor:
        """Encode a frame sequence.

        Args:
            images: ``(b t c H W)`` min-max scaled frames.
            image_mask: ``(b t)`` True where a frame exists; missing frames are zeroed (the
                datamodule already fills them with 0, the official data has none).

        Returns:
            ``(b d Hf Wf)`` features, averaged over the remaining frames.
        """
        if images.dim() != 5 or images.shape[2] != self.in_channels:
            raise ValueError(f"MLVFEM: images: expected (b t {self.in_channels} H W), got "
                             f"{tuple(images.shape)}")
        if image_mask is not None:
            if image_mask.shape != images.shape[:2]:
                raise ValueError(f"MLVFEM: image_mask: expected (b t) = "
                                 f"{tuple(images.shape[:2])}, got {tuple(image_mask.shape)}")
            images = images * image_mask.to(images.dtype)[..., None, None, None]
        x = self.init_conv(images.transpose(1, 2))  # (b c t H W)
        x = self.layer3(self.layer2(self.layer1(x)))
        return x.mean(dim=2)  # adaptive average over time
