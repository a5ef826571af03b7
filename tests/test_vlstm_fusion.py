"""Tests for the VN-Net vision branch and fusion: ConvLSTM, MSCSM, positional encoding,
cross-attention, V-LSTM and DQAM fusion (shapes, gradients, masking, locality, errors)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vnnet.models.fusion import DQAMFusion
from vnnet.models.vlstm import VLSTM
from vnnet.nn import (
    ConvLSTM,
    ConvLSTMCell,
    CrossAttentionBlock,
    MultiScaleChannelSpatial,
    positional_encoding_2d,
)

B, T, C, HW, DS, N, L, D = 2, 4, 3, 32, 4, 5, 2, 32
HF = HW // DS  # 8x8 feature grid
ROWS = torch.tensor([0, 1, 3, 5, 7])
COLS = torch.tensor([0, 6, 3, 2, 7])


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def assert_all_grads(module: nn.Module, out: torch.Tensor) -> None:
    """Backward a random projection of ``out``; every parameter gets a finite, non-zero grad.

    A random projection, not ``out.sum()``: the sum of a LayerNorm output has zero gradient.
    """
    module.zero_grad()
    (out * torch.randn_like(out)).sum().backward()
    for name, p in module.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{name} has a non-finite gradient"
        assert p.grad.abs().sum() > 0, f"{name} has an all-zero gradient"


def make_fusion(**kw) -> DQAMFusion:
    return DQAMFusion(D, ROWS, COLS, (HF, HF), **kw)


# ---------------------------------------------------------------- ConvLSTM
def test_convlstm_cell_shapes_and_kernel_error() -> None:
    cell = ConvLSTMCell(C, 8)
    h, c = cell(torch.randn(B, C, 6, 7))
    assert h.shape == c.shape == (B, 8, 6, 7)
    h2, _ = cell(torch.randn(B, C, 6, 7), (h, c))
    assert h2.shape == h.shape
    with pytest.raises(ValueError, match="kernel_size"):
        ConvLSTMCell(C, 8, kernel_size=4)


def test_convlstm_shapes_and_grads() -> None:
    lstm = ConvLSTM(C, 8, n_layers=2)
    x = torch.randn(B, T, C, HF, HF)
    out, h = lstm(x)
    assert out.shape == (B, T, 8, HF, HF) and h.shape == (B, 8, HF, HF)
    torch.testing.assert_close(out[:, -1], h)
    assert_all_grads(lstm, out)


def test_convlstm_missing_frame_leaves_state_unchanged() -> None:
    lstm = ConvLSTM(C, 8, n_layers=2)  # two layers: every layer's state must be carried
    x = torch.randn(B, T, C, HF, HF)
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[0, 2] = False
    out, h = lstm(x, mask)
    # Sample 0 == the same sequence with frame 2 removed.
    _, h_skip = lstm(x[:1, [0, 1, 3]])
    torch.testing.assert_close(h[:1], h_skip)
    torch.testing.assert_close(out[0, 2], out[0, 1])  # no update at the missing step
    # Sample 1 (all frames present) is unaffected by sample 0's mask.
    _, h_full = lstm(x)
    torch.testing.assert_close(h[1], h_full[1])
    assert not torch.allclose(h[0], h_full[0])
    # A missing frame's content is irrelevant: zeros or noise give the same state.
    x_noise = x.clone()
    x_noise[0, 2] = 100 * torch.randn_like(x_noise[0, 2])
    torch.testing.assert_close(lstm(x_noise, mask)[1], h)
    with pytest.raises(ValueError, match="frame_mask"):
        lstm(x, mask[:, :2])


# ---------------------------------------------------------------- MSCSM
@pytest.mark.parametrize("size", [(8, 8), (7, 9), (3, 5)])
def test_mscsm_shapes_any_size(size: tuple[int, int]) -> None:
    m = MultiScaleChannelSpatial(D)
    x = torch.randn(B, D, *size)
    assert m(x).shape == x.shape


def test_mscsm_grads_and_errors() -> None:
    m = MultiScaleChannelSpatial(D, scales=(1, 2, 4), reduction=4)
    assert_all_grads(m, m(torch.randn(B, D, HF, HF)))
    with pytest.raises(ValueError, match="scales"):
        MultiScaleChannelSpatial(D, scales=(0, 2))
    with pytest.raises(ValueError, match="scales"):
        MultiScaleChannelSpatial(D, scales=(2, 2))


# ---------------------------------------------------------------- positional encoding
def test_positional_encoding_2d() -> None:
    pe = positional_encoding_2d(6, 9, 16)
    assert pe.shape == (54, 16) and pe.dtype == torch.float32
    assert torch.unique(pe, dim=0).shape[0] == 54  # distinct per pixel
    grid = pe.reshape(6, 9, 16)
    torch.testing.assert_close(grid[:, :1, :8].expand(6, 9, 8), grid[..., :8])  # rows half
    torch.testing.assert_close(grid[:1, :, 8:].expand(6, 9, 8), grid[..., 8:])  # cols half
    assert pe.abs().max() <= 1.0
    for bad in (6, 2, 0):
        with pytest.raises(ValueError, match="multiple of 4"):
            positional_encoding_2d(4, 4, bad)


# ---------------------------------------------------------------- cross-attention
def test_cross_attention_block() -> None:
    block = CrossAttentionBlock(D, n_heads=4)
    q, mem = torch.randn(B, 7, D), torch.randn(B, 11, D)
    out = block(q, mem)
    assert out.shape == (B, 7, D)
    assert block.last_attention.shape == (B, 7, 11)
    assert not block.last_attention.requires_grad
    torch.testing.assert_close(block.last_attention.sum(-1), torch.ones(B, 7))
    assert_all_grads(block, out)
    pad = torch.zeros(B, 11, dtype=torch.bool)
    pad[:, -3:] = True
    block(q, mem, key_padding_mask=pad)
    assert block.last_attention[..., -3:].abs().max() == 0
    torch.testing.assert_close(block.last_attention.sum(-1), torch.ones(B, 7))
    with pytest.raises(ValueError, match="n_heads"):
        CrossAttentionBlock(30, n_heads=4)


# ---------------------------------------------------------------- V-LSTM
def test_vlstm_shapes_grads_and_mask() -> None:
    model = VLSTM(C, (HW, HW), hidden=D, stem_channels=8, downsample=DS)
    assert model.feature_size == (HF, HF)
    images = torch.randn(B, T, C, HW, HW)
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[1, -1] = False
    out = model(images, mask)
    assert out.shape == (B, D, HF, HF)
    assert_all_grads(model, out)
    # Missing last frame of sample 1 == that sample without the frame (GroupNorm is per frame).
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(images, mask)[1:], model(images[1:, :-1]))
    assert VLSTM(C, (64, 48), downsample=16).feature_size == (4, 3)
    assert VLSTM(C, (10, 10), downsample=1)(torch.randn(1, 2, C, 10, 10)).shape == (1, 32, 10, 10)


def test_vlstm_errors() -> None:
    for bad in (3, 6, 0):
        with pytest.raises(ValueError, match="downsample"):
            VLSTM(C, (HW, HW), downsample=bad)
    with pytest.raises(ValueError, match="downsample"):
        VLSTM(C, (36, 32), downsample=8)  # 8 does not divide 36
    with pytest.raises(ValueError, match="images"):
        VLSTM(C, (HW, HW))(torch.randn(B, T, C, HW, HW + 4))


# ---------------------------------------------------------------- DQAM fusion
def test_dqam_shapes_attention_and_grads() -> None:
    fusion = make_fusion(n_queries=16)
    states, image = torch.randn(L, B, N, D), torch.randn(B, D, HF, HF)
    out = fusion(states, image)
    assert out.shape == (L, B, N, D)
    assert fusion.last_attention.shape == (B, L * N, 16 + HF * HF)
    torch.testing.assert_close(fusion.last_attention.sum(-1), torch.ones(B, L * N))
    q_attn = fusion.query_attention.last_attention
    assert q_attn.shape == (B, 16, HF * HF)
    torch.testing.assert_close(q_attn.sum(-1), torch.ones(B, 16))
    assert_all_grads(fusion, out)
    assert fusion.queries.grad.abs().sum() > 0  # the learnable queries do learn


def test_dqam_without_queries() -> None:
    fusion = make_fusion(n_queries=0)
    assert fusion.queries is None
    out = fusion(torch.randn(L, B, N, D), torch.randn(B, D, HF, HF))
    assert out.shape == (L, B, N, D)
    assert fusion.last_attention.shape == (B, L * N, HF * HF)
    assert_all_grads(fusion, out)


def test_dqam_end_to_end_grads_through_vlstm() -> None:
    vlstm = VLSTM(C, (HW, HW), hidden=D, stem_channels=8, downsample=DS)
    fusion = make_fusion()
    both = nn.ModuleList([vlstm, fusion])
    out = fusion(torch.randn(L, B, N, D), vlstm(torch.randn(B, T, C, HW, HW)))
    assert_all_grads(both, out)


def test_dqam_local_branch_is_local() -> None:
    fusion = make_fusion().eval()
    states, image = torch.randn(L, B, N, D), torch.randn(B, D, HF, HF)
    station = 2
    changed = image.clone()
    changed[:, :, ROWS[station], COLS[station]] += 3 * torch.randn(B, D)
    with torch.no_grad():
        # Global branch off: only that station (in every layer) changes.
        fusion.use_global = False
        diff = (fusion(states, changed) - fusion(states, image)).abs().sum(-1)  # (L b n)
        others = [i for i in range(N) if i != station]
        assert (diff[..., station] > 1e-3).all()
        assert diff[..., others].max() == 0
        # Global branch on: every station may change, but that station the most.
        fusion.use_global = True
        diff = (fusion(states, changed) - fusion(states, image)).abs().sum(-1)
        assert (diff[..., station] > diff[..., others].amax(-1)).all()


def test_dqam_bad_pixels() -> None:
    with pytest.raises(ValueError, match="pixel_rows"):
        DQAMFusion(D, torch.tensor([0, HF]), torch.tensor([0, 1]), (HF, HF))
    with pytest.raises(ValueError, match="pixel_cols"):
        DQAMFusion(D, torch.tensor([0, 1]), torch.tensor([-1, 1]), (HF, HF))
    with pytest.raises(ValueError, match="pixel_cols"):
        DQAMFusion(D, torch.tensor([0, 1]), torch.tensor([0, 4]), (HF, 4))  # non-square grid
    with pytest.raises(ValueError, match="length"):
        DQAMFusion(D, torch.tensor([0, 1]), torch.tensor([0]), (HF, HF))
    with pytest.raises(ValueError, match="integer"):
        DQAMFusion(D, torch.tensor([0.5, 1.0]), torch.tensor([0, 1]), (HF, HF))
    fusion = make_fusion()
    assert fusion.pixel_rows.dtype == torch.long and "pixel_rows" in fusion.state_dict()
    with pytest.raises(ValueError, match="states"):
        fusion(torch.randn(L, B, N + 1, D), torch.randn(B, D, HF, HF))
    with pytest.raises(ValueError, match="image"):
        fusion(torch.randn(L, B, N, D), torch.randn(B, D, HF, HF + 1))
