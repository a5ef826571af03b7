"""N-GCN encoder, GCN decoder and their graph building blocks (VN-Net, arXiv 2404.16037)."""

from __future__ import annotations

import math

import pytest
import torch

from vnnet.models.decoder import GCNDecoder, teacher_forcing_probability
from vnnet.models.ngcn import NGCNEncoder
from vnnet.nn import (
    AdaptiveAdjacency,
    DynamicAdjacency,
    GraphConv,
    GraphConvGRUCell,
    row_normalize,
)

N, B, T, F, D, H, C = 5, 2, 4, 3, 8, 3, 2  # stations, batch, history, inputs, hidden, horizon, out


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def time_index(b: int = B, t: int = T, hour0: int = 5) -> torch.Tensor:
    """(b t 3) consecutive hours of 3 March (month 2, day 2)."""
    idx = torch.zeros(b, t, 3, dtype=torch.long)
    idx[..., 0], idx[..., 1] = 2, 2
    idx[..., 2] = (hour0 + torch.arange(t)) % 24
    return idx


def static_graph(n: int = N) -> torch.Tensor:
    a = torch.rand(n, n)
    return 0.5 * (a + a.T)


def assert_row_stochastic(a: torch.Tensor) -> None:
    assert (a >= 0).all()
    torch.testing.assert_close(a.sum(-1), torch.ones(a.shape[:-1]))


def assert_all_grads(module: torch.nn.Module) -> None:
    for name, p in module.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert (p.grad != 0).any(), name


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


# ----------------------------------------------------------------------------- adjacencies


def test_adaptive_shapes_and_row_stochastic() -> None:
    adj = AdaptiveAdjacency(N, embed_dim=4, time_aware=True)
    a = adj(time_index()[:, 0])
    assert a.shape == (B, N, N)
    assert_row_stochastic(a)
    assert adj(time_index()).shape == (B, T, N, N)
    with pytest.raises(ValueError, match="time_index"):
        adj(None)
    plain = AdaptiveAdjacency(N, embed_dim=4, time_aware=False)
    assert plain().shape == (N, N)
    assert_row_stochastic(plain())
    assert n_params(plain) == N * 4
    assert n_params(adj) == (N + 12 + 31 + 24) * 4


def test_adaptive_changes_with_hour() -> None:
    adj = AdaptiveAdjacency(N, embed_dim=4)
    idx = time_index()[:, 0]
    other = idx.clone()
    other[:, 2] = (other[:, 2] + 7) % 24
    assert not torch.allclose(adj(idx), adj(other))
    # the same calendar time gives the same graph in every batch row
    torch.testing.assert_close(adj(idx)[0], adj(idx)[1])


def test_dynamic_row_stochastic_and_data_dependent() -> None:
    dyn = DynamicAdjacency(F + D, key_dim=4)
    z = torch.randn(B, N, F + D)
    a = dyn(z)
    assert a.shape == (B, N, N)
    assert_row_stochastic(a)
    assert not torch.allclose(a, dyn(z + torch.randn_like(z)))


def test_row_normalize() -> None:
    a = torch.tensor([[1.0, 3.0, 0.0], [0.0, 0.0, 0.0], [2.0, 2.0, 4.0]])
    r = row_normalize(a)
    torch.testing.assert_close(r[0], torch.tensor([0.25, 0.75, 0.0]))
    assert (r[1] == 0).all()  # isolated node stays zero, no NaN
    torch.testing.assert_close(r[2].sum(), torch.tensor(1.0))
    with pytest.raises(ValueError):
        row_normalize(-a)


# ----------------------------------------------------------------------------- conv / cell


def test_graph_conv_identity_is_implicit() -> None:
    conv = GraphConv(F, 6, n_supports=3)
    assert conv.linear.in_features == 3 * F
    x = torch.randn(B, N, F)
    shared, batched = torch.rand(N, N), torch.rand(B, N, N)
    out = conv(x, [shared, batched])
    assert out.shape == (B, N, 6)
    # by hand: [x, S1 x, S2 x] -> linear
    manual = conv.linear(torch.cat([x, shared @ x, torch.bmm(batched, x)], dim=-1))
    torch.testing.assert_close(out, manual)
    with pytest.raises(ValueError, match="supports"):
        conv(x, [shared])


def test_gru_cell_shapes_and_update() -> None:
    cell = GraphConvGRUCell(F, D, n_supports=2)
    h = cell.init_state(B, N)
    assert h.shape == (B, N, D) and (h == 0).all()
    h1 = cell(torch.randn(B, N, F), h, [torch.eye(N)])
    assert h1.shape == (B, N, D)
    assert (h1.abs() < 1).all()  # convex mix of h = 0 and tanh candidate


# ----------------------------------------------------------------------------- encoder


def test_encoder_shapes_gradients_and_records() -> None:
    enc = NGCNEncoder(N, F, hidden=D, n_layers=2, embed_dim=4, static_adjacency=static_graph())
    x = torch.randn(B, T, N, F)
    states, outputs = enc(x, time_index())
    assert states.shape == (2, B, N, D)
    assert outputs.shape == (B, T, N, D)
    torch.testing.assert_close(outputs[:, -1], states[-1])
    (states.square().sum() + outputs.sum()).backward()
    assert_all_grads(enc)
    rec = enc.last_adjacency
    assert set(rec) == {"static", "adaptive", "dynamic"}
    assert rec["static"].shape == (N, N)
    assert rec["adaptive"].shape == (B, N, N)
    assert rec["dynamic"].shape == (2, B, N, N)
    for a in rec.values():
        assert not a.requires_grad
        assert_row_stochastic(a)


def test_encoder_dynamic_graph_follows_input() -> None:
    enc = NGCNEncoder(N, F, hidden=D, embed_dim=4)
    x = torch.randn(B, T, N, F)
    enc(x, time_index())
    first = enc.last_adjacency["dynamic"].clone()
    enc(x + torch.randn_like(x), time_index())
    assert not torch.allclose(first, enc.last_adjacency["dynamic"])


def test_encoder_time_aware_output_changes_with_hour() -> None:
    enc = NGCNEncoder(N, F, hidden=D, embed_dim=4, dynamic=False)
    x = torch.randn(B, T, N, F)
    s1, _ = enc(x, time_index(hour0=0))
    a1 = enc.last_adjacency["adaptive"]
    s2, _ = enc(x, time_index(hour0=12))
    assert not torch.allclose(a1, enc.last_adjacency["adaptive"])
    assert not torch.allclose(s1, s2)
    # without time awareness the calendar is ignored (and not even required)
    plain = NGCNEncoder(N, F, hidden=D, embed_dim=4, dynamic=False, time_aware=False)
    torch.testing.assert_close(plain(x, time_index(hour0=0))[0], plain(x, None)[0])


def test_encoder_uses_static_graph() -> None:
    x = torch.randn(B, T, N, F)
    outs = []
    for graph in (torch.eye(N), torch.ones(N, N)):  # disconnected vs fully connected
        torch.manual_seed(1)  # identical weights; only the buffer differs
        enc = NGCNEncoder(N, F, hidden=D, static_adjacency=graph, adaptive=False, dynamic=False)
        outs.append(enc(x)[0])
        assert_row_stochastic(enc.static_adjacency)
    assert not torch.allclose(outs[0], outs[1])
    assert "static_adjacency" in enc.state_dict()


def test_encoder_switches_reduce_parameters() -> None:
    kw = dict(hidden=D, embed_dim=4, static_adjacency=static_graph())
    full = n_params(NGCNEncoder(N, F, **kw))
    no_time = n_params(NGCNEncoder(N, F, time_aware=False, **kw))
    no_adaptive = n_params(NGCNEncoder(N, F, adaptive=False, **kw))
    no_dynamic = n_params(NGCNEncoder(N, F, dynamic=False, **kw))
    no_static = n_params(NGCNEncoder(N, F, hidden=D, embed_dim=4))
    assert full - no_time == (12 + 31 + 24) * 4
    assert no_adaptive < no_time < full
    assert no_dynamic < full and no_static < full
    bare = NGCNEncoder(N, F, hidden=D, adaptive=False, dynamic=False)
    assert bare(torch.randn(B, T, N, F))[0].shape == (2, B, N, D)
    assert bare.last_adjacency == {}
    with pytest.raises(ValueError, match="time_index"):
        NGCNEncoder(N, F, hidden=D)(torch.randn(B, T, N, F))


# ----------------------------------------------------------------------------- decoder


def make_decoder(**kw: object) -> GCNDecoder:
    return GCNDecoder(N, C, hidden=D, n_layers=2, embed_dim=4, **kw)


def decoder_inputs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return torch.randn(2, B, N, D), torch.zeros(B, N, C), torch.randn(B, H, N, C)


def test_decoder_shapes_and_gradients() -> None:
    dec = make_decoder(static_adjacency=static_graph())
    h0, go, y = decoder_inputs()
    out = dec(h0, go, H)
    assert out.shape == (B, H, N, C)
    (out - y).abs().mean().backward()
    assert_all_grads(dec)
    assert n_params(make_decoder(adaptive=False)) < n_params(make_decoder())
    assert n_params(make_decoder()) < n_params(make_decoder(static_adjacency=static_graph()))


def test_decoder_teacher_forcing_feeds_truth() -> None:
    dec = make_decoder().train()
    h0, go, y = decoder_inputs()
    k = 2
    y2 = y.clone()
    y2[:, k - 1] += 1.0
    with torch.no_grad():
        a = dec(h0, go, H, targets=y, teacher_forcing=1.0)
        b = dec(h0, go, H, targets=y2, teacher_forcing=1.0)
        torch.testing.assert_close(a[:, :k], b[:, :k])  # earlier steps untouched
        assert not torch.allclose(a[:, k], b[:, k])  # step k reads targets[k - 1]
        # teacher forcing off, or eval mode: targets are never read
        torch.testing.assert_close(dec(h0, go, H, targets=y, teacher_forcing=0.0),
                                   dec(h0, go, H, targets=y2, teacher_forcing=0.0))
        dec.eval()
        torch.testing.assert_close(dec(h0, go, H, targets=y, teacher_forcing=1.0),
                                   dec(h0, go, H, targets=y2, teacher_forcing=1.0))
        torch.testing.assert_close(dec(h0, go, H, targets=y, teacher_forcing=1.0),
                                   dec(h0, go, H))


def test_decoder_missing_truth_keeps_prediction() -> None:
    dec = make_decoder().train()
    h0, go, y = decoder_inputs()
    with torch.no_grad():
        free = dec(h0, go, H)
        none_observed = torch.zeros_like(y, dtype=torch.bool)
        torch.testing.assert_close(
            dec(h0, go, H, targets=y, target_mask=none_observed, teacher_forcing=1.0), free)
        # NaN truth counts as missing when no mask is given
        nan_y = torch.full_like(y, float("nan"))
        torch.testing.assert_close(dec(h0, go, H, targets=nan_y, teacher_forcing=1.0), free)
        # partial mask: perturbing only the missing entries changes nothing
        mask = torch.rand(y.shape) < 0.5
        y2 = torch.where(mask, y, y + 5.0)
        torch.testing.assert_close(
            dec(h0, go, H, targets=y, target_mask=mask, teacher_forcing=1.0),
            dec(h0, go, H, targets=y2, target_mask=mask, teacher_forcing=1.0))
    with pytest.raises(ValueError, match="targets"):
        dec(h0, go, H, teacher_forcing=0.5)


def test_decoder_coin_is_per_batch() -> None:
    # with p = 0.5 each step is either all-truth or all-prediction across the batch
    dec = GCNDecoder(N, C, hidden=D, embed_dim=4).train()
    b = 6
    h0, go, y = torch.randn(2, b, N, D), torch.zeros(b, N, C), torch.randn(b, H, N, C)
    seen = set()
    with torch.no_grad():
        for seed in range(8):
            torch.manual_seed(seed)
            out = dec(h0, go, H, targets=y, teacher_forcing=0.5)
            torch.manual_seed(seed)  # same coins, shifted truth
            out2 = dec(h0, go, H, targets=y + 1.0, teacher_forcing=0.5)
            changed = (out != out2).flatten(2).any(-1)  # (b h)
            assert (changed == changed[:1]).all()  # the same decision for every sample
            seen.add(bool(changed[0, 1]))
    assert seen == {True, False}  # both outcomes of the step-1 coin occur


# ----------------------------------------------------------------------------- schedule


def test_teacher_forcing_schedule() -> None:
    assert teacher_forcing_probability(0) == pytest.approx(2000 / 2001)
    assert teacher_forcing_probability(2000) == pytest.approx(2000 / (2000 + math.e))
    assert teacher_forcing_probability(5 * 1460) == pytest.approx(0.981, abs=1e-3)
    assert teacher_forcing_probability(10 * 1460) == pytest.approx(0.575, abs=1e-3)
    assert teacher_forcing_probability(15 * 1460) == pytest.approx(0.034, abs=1e-3)
    assert teacher_forcing_probability(100, decay_steps=10) == pytest.approx(
        10 / (10 + math.exp(10)))
    values = [teacher_forcing_probability(s) for s in range(0, 60_000, 1000)]
    assert all(a > b for a, b in zip(values[:-1], values[1:], strict=True))
    assert values[-1] < 1e-6
    assert teacher_forcing_probability(10**9) == 0.0  # no OverflowError
    with pytest.raises(ValueError):
        teacher_forcing_probability(0, decay_steps=0)


def test_decoder_step_features_reach_each_step() -> None:
    dec = make_decoder(n_step_features=2).eval()
    h0, go, _ = decoder_inputs()
    feats = torch.zeros(B, 3, 2)
    base = dec(h0, go, 3, step_features=feats)
    bumped = feats.clone()
    bumped[:, 1] = 1.0  # only the second lead hour's features change
    out = dec(h0, go, 3, step_features=bumped)
    torch.testing.assert_close(out[:, 0], base[:, 0])
    assert not torch.allclose(out[:, 1], base[:, 1])
    per_station = feats.unsqueeze(2).expand(-1, -1, N, -1)
    torch.testing.assert_close(dec(h0, go, 3, step_features=per_station), base)
    with pytest.raises(ValueError, match="step_features"):
        dec(h0, go, 3)


def test_residual_decoder_forecasts_departure_from_last_observation() -> None:
    """``residual``: y_s = go + W h_s at every lead; with W = 0 and bias 0 it is persistence,
    and otherwise it differs from the plain decoder by exactly ``go``."""
    torch.manual_seed(0)
    n, c, b, h = 5, 2, 3, 4
    plain = GCNDecoder(n, c, hidden=8, n_layers=2, embed_dim=4)
    residual = GCNDecoder(n, c, hidden=8, n_layers=2, embed_dim=4, residual=True)
    h0 = torch.randn(2, b, n, 8)
    go = torch.randn(b, n, c)
    with torch.no_grad():
        residual.projection.weight.zero_()
        residual.projection.bias.zero_()
    persistence = go.unsqueeze(1).expand(b, h, n, c)
    assert torch.equal(residual(h0, go, h), persistence)
    # One step: the plain decoder's first output plus go (same cells and projection).
    residual.load_state_dict(plain.state_dict())
    first_plain = plain(h0, go, 1)
    assert torch.allclose(residual(h0, go, 1), first_plain + go.unsqueeze(1))
