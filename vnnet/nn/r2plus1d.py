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

Fast path (``MLVFEM(fast=True)``, the default; ``fast=False`` is the plain reference): the same
weights and the same arithmetic, run as 2-D convolutions over views of a channels-last
``(b c t H W)`` tensor (physically ``(b t H W c)``): the ``1 x k x k`` conv is a 2-D conv over
``(b*t) c H W`` and the ``k x 1 x 1`` conv a ``k x 1`` 2-D conv over ``b c t (H*W)``, both views
without copies; on CPU the temporal conv's weight gradient is computed as matrix products
(:class:`_TemporalConv2d`), and each training-mode BatchNorm + ReLU pair is one fused kernel
(:func:`vnnet.nn.bn_relu.bn_relu`, fewer passes over memory). On CPU (oneDNN) the encoder's
forward + backward is then more than twice as fast as with ``Conv3d`` (``benchmarks/perf.py``);
``tests/test_performance_equivalence.py`` checks outputs, gradients and BatchNorm statistics.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vnnet.nn.bn_relu import bn_relu

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
        #: Run the two convs as 2-D convs over channels-last views (same math; see the module
        #: docstring). Set for a whole encoder by :attr:`MLVFEM.fast`.
        self.fast = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.fast:
            return super().forward(x)
        spatial, bn1, _, temporal, bn2, _ = self
        x = bn_relu(_spatial_conv(x, spatial), bn1)
        return bn_relu(_temporal_conv(x, temporal), bn2)


def _spatial_conv(x: torch.Tensor, conv: nn.Conv3d) -> torch.Tensor:
    """A ``1 x k x k`` Conv3d as a 2-D conv over ``(b*t) c H W`` (a view of channels-last x)."""
    stride = conv.stride[1:]
    if conv.kernel_size[1:] == (1, 1) and stride != (1, 1):
        # A strided 1 x 1 conv (no padding) reads every s-th pixel: slice, then convolve with
        # stride 1 (also avoids a crash in the CPU backward of strided 1 x 1 channels-last
        # convs, seen with torch 2.13).
        x, stride = x[..., ::stride[0], ::stride[1]], (1, 1)
    x = x.contiguous(memory_format=torch.channels_last_3d)
    b, t = x.shape[0], x.shape[2]
    y = F.conv2d(x.transpose(1, 2).flatten(0, 1), conv.weight[:, :, 0], None, stride,
                 conv.padding[1:])
    return y.unflatten(0, (b, t)).transpose(1, 2)


def _temporal_conv(x: torch.Tensor, conv: nn.Conv3d) -> torch.Tensor:
    """A ``k x 1 x 1`` Conv3d as a ``k x 1`` 2-D conv over ``b c t (H*W)``."""
    stride = conv.stride[0]
    if conv.kernel_size[0] == 1 and stride != 1:  # as in _spatial_conv
        x, stride = x[:, :, ::stride], 1
    x = x.contiguous(memory_format=torch.channels_last_3d)
    height, width = x.shape[3:]
    x, weight, padding = x.flatten(3, 4), conv.weight[..., 0], conv.padding[0]
    if x.device.type == "cpu" and torch.is_grad_enabled() and weight.requires_grad \
            and not torch.is_autocast_enabled("cpu"):
        y = _TemporalConv2d.apply(x, weight, stride, padding)
    else:
        y = F.conv2d(x, weight, None, (stride, 1), (padding, 0))
    return y.unflatten(3, (height, width))


class _TemporalConv2d(torch.autograd.Function):
    """``F.conv2d`` with a ``k x 1`` kernel over channels-last ``(b c t L)`` (L = H*W pixels),
    whose weight gradient is computed as per-sample matrix products: oneDNN's CPU weight
    gradient is slow for these shallow, very wide maps (3x its forward time, against about 1x
    this way). Forward and input gradient are oneDNN's."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, stride: int, padding: int
                ) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.stride, ctx.padding = stride, padding
        return F.conv2d(x, weight, None, (stride, 1), (padding, 0))

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        s, p = ctx.stride, ctx.padding
        grad = grad.contiguous(memory_format=torch.channels_last)
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.ops.aten.convolution_backward(
                grad, x, weight, None, [s, 1], [p, 0], [1, 1], False, [0, 0], 1,
                [True, False, False])[0]
        if ctx.needs_input_grad[1]:
            c_out, c_in, k = weight.shape[:3]
            t_in, t_out = x.shape[2], grad.shape[2]
            xt, gt = x.permute(0, 2, 3, 1), grad.permute(0, 2, 3, 1)  # (b t L c) views
            taps = []
            for j in range(k):  # output step o reads input step s*o + j - p
                lo = max(0, -(-(p - j) // s))
                hi = min(t_out, (t_in - 1 + p - j) // s + 1)
                tap = weight.new_zeros(c_out, c_in)
                for i in range(x.shape[0]):
                    if hi > lo:
                        g = gt[i, lo:hi].reshape(-1, c_out)
                        v = xt[i, s * lo + j - p:s * (hi - 1) + j - p + 1:s].reshape(-1, c_in)
                        tap = torch.addmm(tap, g.T, v)  # (addmm_ escapes FLOP counters)
                taps.append(tap)
            grad_w = torch.stack(taps, dim=-1).unsqueeze(-1)  # (c_out c_in k 1)
        return grad_x, grad_w, None, None


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
        res = self.conv1(x)
        res = bn_relu(res, self.bn1) if self.conv1.fast else torch.relu(self.bn1(res))
        res = self.bn2(self.conv2(res))
        return torch.relu(self.shortcut(x) + res)


class MLVFEM(nn.Module):
    """The official VN-Net image encoder: ``(b t c H W)`` frames -> ``(b d H/4 W/4)`` features.

    Args:
        in_channels: image channels c (official 6 infrared bands).
        out_channels: feature size d (official 32 = the state size of the encoder).
        stem_channels: output of InitConv and width of layer 1 (official 16).
        stem_mid: middle channels of InitConv (official 45).
        fast: the 2-D-conv channels-last path (same parameters and outputs); False runs plain
            ``Conv3d`` (the reference). Can be switched later through the ``fast`` attribute.

    With the official sizes (6 -> 32) it has 244,078 parameters. A frame of ``H x W`` pixels
    gives a ``ceil(ceil(H / 2) / 2)`` x ``ceil(ceil(W / 2) / 2)`` map (:meth:`feature_size`;
    160 -> 40).
    """

    def __init__(self, in_channels: int, out_channels: int = 32, stem_channels: int = 16,
                 stem_mid: int = 45, fast: bool = True) -> None:
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
        self.fast = fast

    @property
    def fast(self) -> bool:
        """True: the 2-D-conv channels-last path (module docstring); False: plain Conv3d."""
        return self._fast

    @fast.setter
    def fast(self, value: bool) -> None:
        self._fast = bool(value)
        for module in self.modules():
            if isinstance(module, FactorisedConv3d):
                module.fast = self._fast

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
        x = images.transpose(1, 2)  # (b c t H W)
        if self._fast:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        x = self.init_conv(x)
        x = self.layer3(self.layer2(self.layer1(x)))
        return x.mean(dim=2)  # adaptive average over time
