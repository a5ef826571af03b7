"""VN-Net, official-code version: DEGCN, MLVFEM, LGVNFM, AGCRN decoder, sizes, CLI."""

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from vnnet import Forecaster
from vnnet.cli import main
from vnnet.data import WeatherDataModule
from vnnet.models import VNNetOfficial
from vnnet.models.agcrn import chebyshev_supports
from vnnet.models.lgvnfm import LGVNFMFusion
from vnnet.models.official import (
    OFFICIAL_MODULES_D60,
    OFFICIAL_TOTALS,
    AGCRNDecoder,
    official_description,
    official_initialisation,
    official_parameter_count,
)
from vnnet.nn.degcn import (
    DEGCNEncoder,
    DEGRUCell,
    DGNNBlock,
    DynamicGraph,
    GraphDiffusionODE,
    StaticDynamicGraphConv,
    chebyshev_polynomials,
)
from vnnet.nn.r2plus1d import MLVFEM, intermediate_channels

TINY_WORLD = {"n_stations": 5, "n_days": 5, "image_size": 16, "n_channels": 2}
SMALL = {"hidden": 8, "dgnn_hidden": 8, "cheb_order": 3, "embed_dim": 4}


@pytest.fixture(scope="module")
def dm():
    dm = WeatherDataModule(synthetic=TINY_WORLD, target=["air_temperature", "visibility"],
                           n_his=4, n_pred=3, batch_size=3, seed=1)
    dm.setup()
    return dm


@pytest.fixture(scope="module")
def batch(dm):
    return next(iter(dm.train_dataloader()))


def calendar(b, t):
    return torch.stack([torch.randint(0, 12, (b, t)), torch.randint(0, 31, (b, t)),
                        torch.randint(0, 24, (b, t))], dim=-1)


# ---- DEGCN -------------------------------------------------------------------------------

def test_chebyshev_supports_follow_the_recursion():
    torch.manual_seed(0)
    a = torch.softmax(torch.randn(3, 5, 5), dim=-1)
    t = chebyshev_polynomials(a, 6)
    assert t.shape == (3, 6, 5, 5)
    eye = torch.eye(5).expand(3, 5, 5)
    torch.testing.assert_close(t[:, 0], eye)
    torch.testing.assert_close(t[:, 1], a)
    torch.testing.assert_close(t[:, 2], 2 * a @ a - eye)
    torch.testing.assert_close(t[:, 3], 4 * a @ a @ a - 3 * a)
    for k in range(2, 6):
        torch.testing.assert_close(t[:, k], 2 * a @ t[:, k - 1] - t[:, k - 2])
    # unbatched, the same as the AGCRN baseline's supports
    torch.testing.assert_close(chebyshev_polynomials(a[0], 6), chebyshev_supports(a[0], 6))
    with pytest.raises(ValueError, match="order"):
        chebyshev_polynomials(a, 1)
    with pytest.raises(ValueError, match="n n"):
        chebyshev_polynomials(torch.ones(3, 5, 4), 3)


def test_graph_diffusion_is_explicit_euler_on_a_two_node_graph():
    ode = GraphDiffusionODE(steps=4, step_size=0.25)
    a = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    h = torch.tensor([[[1.0], [0.0]]])  # (b n f)
    with torch.no_grad():
        ode.alpha.fill_(1.0)
    # each step halves h0 - h1 and keeps h0 + h1 = 1: after 4 steps h0 - h1 = 1/16
    torch.testing.assert_close(ode(h, a), torch.tensor([[[17 / 32], [15 / 32]]]))
    with torch.no_grad():
        ode.alpha.fill_(0.5)
    d = 0.75 ** 4  # each step multiplies h0 - h1 by 1 - 2 * 0.25 * 0.5
    torch.testing.assert_close(ode(h, a.expand(1, 2, 2)),
                               torch.tensor([[[(1 + d) / 2], [(1 - d) / 2]]]))
    ode(h, a).sum().backward()  # alpha is learnable
    assert ode.alpha.grad is not None
    assert torch.equal(GraphDiffusionODE(steps=0)(h, a), h)
    with pytest.raises(ValueError, match="adjacency"):
        ode(h, torch.eye(3))


def test_dynamic_graph_is_a_relu_softmax_of_keys_and_queries():
    torch.manual_seed(0)
    g = DynamicGraph(6, key_dim=8)
    z = torch.randn(2, 5, 6)
    s = g(z)
    assert s.shape == (2, 5, 5)
    torch.testing.assert_close(s.sum(-1), torch.ones(2, 5))
    expect = torch.softmax(torch.relu(g.key(z) @ g.query(z).transpose(1, 2)), -1)
    torch.testing.assert_close(s, expect)
    with torch.no_grad():  # all scores negative -> ReLU zeroes them -> uniform rows
        for lin, sign in ((g.key, 1.0), (g.query, -1.0)):
            lin.weight.zero_()
            lin.bias.fill_(sign)
    torch.testing.assert_close(g(z), torch.full((2, 5, 5), 0.2))
    with pytest.raises(ValueError, match="last dim 6"):
        g(torch.randn(2, 5, 4))


def test_sdgc_is_a_node_adaptive_conv_over_chebyshev_and_dynamic_supports():
    torch.manual_seed(0)
    conv = StaticDynamicGraphConv(3, 4, embed_dim=2, cheb_order=3)
    assert conv.weight_pool.shape == (2, 4, 3, 4) and conv.bias_pool.shape == (2, 4)
    x, e = torch.randn(2, 5, 3), torch.randn(5, 2)
    a = torch.softmax(torch.randn(2, 5, 5), -1)
    supports = chebyshev_polynomials(a, 3)
    out = conv(x, supports, conv.node_parameters(e))
    assert out.shape == (2, 5, 4)
    graphs = [supports[:, k] for k in range(3)] + [conv.dynamic(x)]
    w = torch.einsum("nd,dkio->nkio", e, conv.weight_pool)
    expect = sum(torch.einsum("bni,nio->bno", g @ x, w[:, k]) for k, g in enumerate(graphs))
    torch.testing.assert_close(out, expect + e @ conv.bias_pool)
    with pytest.raises(ValueError, match="supports"):
        conv(x, supports[:, :2], conv.node_parameters(e))
    with pytest.raises(ValueError, match="x"):
        conv(torch.randn(2, 5, 4), supports, conv.node_parameters(e))


def test_dgnn_block_cell_and_encoder_shapes():
    torch.manual_seed(0)
    e = torch.randn(5, 2)
    supports = chebyshev_polynomials(torch.softmax(torch.randn(3, 5, 5), -1), 3)
    block = DGNNBlock(7, 6, embed_dim=2, cheb_order=3, dgnn_hidden=4)
    assert block(torch.randn(3, 5, 7), supports, block.node_parameters(e)).shape == (3, 5, 6)
    cell = DEGRUCell(3, 4, embed_dim=2, cheb_order=3, dgnn_hidden=4)
    h = cell(torch.randn(3, 5, 3), torch.zeros(3, 5, 4), supports, cell.node_parameters(e))
    assert h.shape == (3, 5, 4)
    with pytest.raises(ValueError, match="DEGRUCell"):
        cell(torch.randn(3, 5, 2), h, supports, cell.node_parameters(e))
    enc = DEGCNEncoder(5, 3, hidden=4, n_layers=2, embed_dim=2, cheb_order=3, dgnn_hidden=4)
    x = torch.randn(3, 6, 5, 3)
    states = enc(x, calendar(3, 6))
    assert states.shape == (2, 3, 5, 4)
    # time-aware graph: a different hour gives a different A_t, rows sum to 1
    ti = calendar(1, 1)[:, 0]
    other = ti.clone()
    other[:, 2] = (ti[:, 2] + 1) % 24
    assert enc.graph(ti).shape == (1, 5, 5)
    torch.testing.assert_close(enc.graph(ti).sum(-1), torch.ones(1, 5))
    assert not torch.allclose(enc.graph(ti), enc.graph(other))
    with pytest.raises(ValueError, match="time_index"):
        enc(x, calendar(3, 5))
    with pytest.raises(ValueError, match="x"):
        enc(torch.randn(3, 6, 4, 3), calendar(3, 6))


# ---- MLVFEM ------------------------------------------------------------------------------

def test_mlvfem_intermediate_channels_and_output_layout():
    assert [intermediate_channels(*c) for c in ((16, 16), (16, 32), (32, 32))] == [36, 57, 72]
    assert intermediate_channels(16, 32, 1) == 10 and intermediate_channels(32, 32, 1) == 16
    torch.manual_seed(0)
    net = MLVFEM(3, 8, stem_channels=4, stem_mid=5)
    images = torch.rand(2, 5, 3, 16, 12)
    out = net(images, torch.tensor([[True] * 5, [True, False, True, True, True]]))
    assert out.shape == (2, 8, 4, 3)  # (b d H/4 W/4)
    assert MLVFEM.feature_size(16, 12) == (4, 3) and MLVFEM.feature_size(160, 160) == (40, 40)
    assert MLVFEM.feature_size(15, 9) == net(torch.rand(1, 3, 3, 15, 9)).shape[-2:]
    with pytest.raises(ValueError, match="images"):
        net(torch.rand(2, 5, 4, 16, 16))
    with pytest.raises(ValueError, match="image_mask"):
        net(images, torch.ones(2, 4, dtype=torch.bool))
    # a missing frame counts as a zero frame
    net.eval()
    mask = torch.tensor([[True, True, False, True, True]] * 2)
    zeroed = images.clone()
    zeroed[:, 2] = 0
    torch.testing.assert_close(net(images, mask), net(zeroed))


# ---- LGVNFM ------------------------------------------------------------------------------

def test_lgvnfm_local_and_global_residuals():
    torch.manual_seed(0)
    rows, cols = torch.tensor([0, 2, 3]), torch.tensor([1, 1, 0])
    fusion = LGVNFMFusion(8, rows, cols, (4, 2), n_heads=4)
    states, image = torch.randn(2, 3, 3, 8), torch.randn(3, 8, 4, 2)
    assert fusion(states, image).shape == (2, 3, 3, 8)
    with torch.no_grad():  # no global branch: output = states + ReLU(Linear([states, pixel]))
        fusion.attention.out_proj.weight.zero_()
        fusion.attention.out_proj.bias.zero_()
    pixel = image[:, :, rows, cols].transpose(1, 2).expand(2, -1, -1, -1)
    local = states + fusion.local(torch.cat([states, pixel], -1))
    torch.testing.assert_close(fusion(states, image), local)
    changed = image.clone()
    changed[:, :, 2, 1] += 1.0  # station 1's pixel only
    diff = (fusion(states, changed) - fusion(states, image)).abs().sum((0, 1, 3))
    assert diff[1] > 0 and diff[0] == 0 and diff[2] == 0
    with torch.no_grad():  # no local branch either: the identity
        fusion.local[0].weight.zero_()
        fusion.local[0].bias.zero_()
    torch.testing.assert_close(fusion(states, image), states)
    fusion = LGVNFMFusion(8, rows, cols, (4, 2))
    fusion.keep_attention = True
    glob = fusion(states, image) - (states + fusion.local(torch.cat([states, pixel], -1)))
    queries = (states + fusion.local(torch.cat([states, pixel], -1))).permute(1, 0, 2, 3)
    tokens = image.flatten(2).transpose(1, 2)
    expect, _ = fusion.attention(queries.reshape(3, 6, 8), tokens, tokens)
    torch.testing.assert_close(glob, expect.reshape(3, 2, 3, 8).permute(1, 0, 2, 3))
    assert fusion.last_attention.shape == (3, 6, 8)
    with pytest.raises(ValueError, match="states"):
        fusion(torch.randn(2, 3, 4, 8), image)
    with pytest.raises(ValueError, match="image"):
        fusion(states, torch.randn(3, 8, 4, 4))
    with pytest.raises(ValueError, match="pixel_rows"):
        LGVNFMFusion(8, torch.tensor([4, 0, 0]), cols, (4, 2))


# ---- decoder -----------------------------------------------------------------------------

def test_agcrn_decoder_starts_from_zeros_and_samples_the_truth():
    torch.manual_seed(0)
    dec = AGCRNDecoder(5, 2, hidden=4, n_layers=2, embed_dim=2, cheb_order=3)
    h0 = torch.randn(2, 3, 5, 4)
    out = dec(h0, 4)
    assert out.shape == (3, 4, 5, 2)
    targets = torch.randn(3, 4, 5, 2)
    dec.train()
    torch.manual_seed(1)
    forced = dec(h0, 4, targets, teacher_forcing=1.0)
    torch.manual_seed(1)
    other = dec(h0, 4, targets + 1.0, teacher_forcing=1.0)
    torch.testing.assert_close(forced[:, 0], other[:, 0])  # step 0 reads the GO zeros
    assert not torch.allclose(forced[:, 1:], other[:, 1:])
    dec.eval()  # evaluation is free-running whatever the targets
    torch.testing.assert_close(dec(h0, 4, targets, teacher_forcing=1.0), dec(h0, 4))
    dec.train()
    mask = torch.zeros_like(targets, dtype=torch.bool)  # nothing observed: nothing fed
    torch.testing.assert_close(dec(h0, 4, targets, mask, teacher_forcing=1.0), dec(h0, 4))
    with pytest.raises(ValueError, match="targets"):
        dec(h0, 4, targets[:, :2], teacher_forcing=0.5)
    with pytest.raises(ValueError, match="h0"):
        dec(h0[:1], 4)


# ---- the assembled model -----------------------------------------------------------------

def test_vnnet_official_forward_and_gradients_reach_every_parameter(dm, batch):
    torch.manual_seed(0)
    model = VNNetOfficial(dm.description(), **SMALL)
    out = model(batch, teacher_forcing=0.5)
    assert out.shape == (3, 3, 5, 2)  # (b h n c)
    out.square().mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
    assert model.vision(batch.images).shape == (3, 8, 4, 4)  # 16 px -> 4 x 4
    assert model.fusion.feature_size == (4, 4)
    rebuilt = VNNetOfficial(**model.config()["init_args"])
    rebuilt.load_state_dict(model.state_dict())
    model.eval(), rebuilt.eval()
    torch.testing.assert_close(model(batch), rebuilt(batch))
    assert model.config()["class_path"] == "vnnet.models.official.VNNetOfficial"


def test_images_matter_unless_vision_is_off(dm, batch):
    torch.manual_seed(0)
    model = VNNetOfficial(dm.description(), **SMALL).eval()
    changed = replace(batch, images=torch.rand_like(batch.images))
    assert not torch.allclose(model(batch), model(changed))
    numerical = VNNetOfficial(dm.description(), **SMALL, vision=False).eval()
    assert numerical.vision is None and numerical.fusion is None
    torch.testing.assert_close(numerical(batch), numerical(changed))
    noise = VNNetOfficial(dm.description(), **SMALL, image_noise=True).eval()
    torch.manual_seed(3)
    a = noise(batch)
    torch.manual_seed(3)
    torch.testing.assert_close(a, noise(changed))  # the frames themselves are never read
    with pytest.raises(ValueError, match="no images"):
        model(replace(batch, images=None))
    with pytest.raises(ValueError, match="image_noise"):
        VNNetOfficial(dm.description(), vision=False, image_noise=True)
    with pytest.raises(ValueError, match="batch.x"):
        model(replace(batch, x=batch.x[..., :3], x_mask=batch.x_mask[..., :3]))


def test_official_initialisation_distributions(dm):
    torch.manual_seed(0)
    model = VNNetOfficial(dm.description(), **SMALL)
    kinds = set()
    for name, p in model.named_parameters():
        if p.dim() > 1:
            fan_in, fan_out = torch.nn.init._calculate_fan_in_and_fan_out(p)
            bound = math.sqrt(6.0 / (fan_in + fan_out))
            assert p.abs().max() <= bound + 1e-6, name
            kinds.add("xavier")
        else:
            assert (p >= 0).all() and (p < 1).all(), name
            kinds.add("uniform")
    assert kinds == {"xavier", "uniform"}
    bn = model.vision.init_conv[1]
    assert not torch.allclose(bn.weight, torch.ones_like(bn.weight))  # BN's own init overridden
    plain = VNNetOfficial(dm.description(), **SMALL, official_init=False)
    torch.testing.assert_close(plain.vision.init_conv[1].weight, torch.ones_like(bn.weight))
    # the helper alone: a 2-D weight within its Xavier bound, a bias in [0, 1)
    lin = torch.nn.Linear(30, 10)
    official_initialisation(lin)
    assert lin.weight.abs().max() <= math.sqrt(6 / 40) and (lin.bias >= 0).all()


def test_parameter_counts_reconcile_with_the_official_model():
    d60 = official_parameter_count(60)
    ours = d60["ours"]
    assert ours["mlvfem"] == OFFICIAL_MODULES_D60["mlvfem"] == 244_078
    assert ours["lgvnfm"] == OFFICIAL_MODULES_D60["lgvnfm"] == 6_304
    assert ours["decoder"] == OFFICIAL_MODULES_D60["decoder"] == 449_025
    assert ours["encoder"] == 872_412
    assert d60["unused"] == {"batch_norm": 8 * 2 * 64 * 60, "ode_functions": 4 * 263}
    assert d60["encoder_official"] == OFFICIAL_MODULES_D60["encoder"] == 934_904
    for n, total in OFFICIAL_TOTALS.items():
        count = d60 if n == 60 else official_parameter_count(n)
        assert count["total_official"] == count["reported"] == total, n
        # per station: 8 encoder + 8 decoder embedding rows (+ 8 unused BatchNorm pairs)
        assert count["ours"]["total"] - ours["total"] == 16 * (n - 60)
    desc = official_description(60)
    assert len(desc["input_variables"]) + 3 == 23


# ---- configs and CLI ---------------------------------------------------------------------

def test_weather2k_official_configs_share_the_paper_configs_data_section():
    files = sorted(Path("configs/weather2k_official").glob("*.yaml"))
    assert len(files) == 12
    for path in files:
        config = yaml.safe_load(path.read_text())
        paper = yaml.safe_load((Path("configs/weather2k") / path.name).read_text())
        assert config["data"] == paper["data"], path
        model = config["model"]["model"]
        assert model["class_path"] == "vnnet.models.VNNetOfficial"
        assert model["init_args"] == {"hidden": 32, "n_layers": 2, "embed_dim": 8,
                                      "cheb_order": 6, "dgnn_hidden": 64, "ode_steps": 4,
                                      "ode_step_size": 0.25, "dropout": 0.3, "vision": True,
                                      "image_noise": False, "official_init": True}
        assert config["model"]["lr"] == 0.005 and config["model"]["cl_decay_steps"] == 2000


TINY_CLI = ["--data.synthetic.n_stations", "5", "--data.synthetic.n_days", "5",
            "--data.synthetic.image_size", "16", "--data.synthetic.n_channels", "2",
            "--data.n_his", "4", "--data.n_pred", "3", "--data.batch_size", "8",
            "--model.model.init_args.hidden", "8", "--model.model.init_args.dgnn_hidden", "8",
            "--model.model.init_args.cheb_order", "3",
            "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "3",
            "--trainer.limit_val_batches", "2", "--trainer.limit_test_batches", "2",
            "--trainer.enable_progress_bar", "false", "--trainer.logger", "false"]


def test_official_quickstart_fits_and_tests_through_the_cli(tmp_path):
    args = ["--config", "configs/official_quickstart.yaml", *TINY_CLI,
            "--trainer.default_root_dir", str(tmp_path)]
    main(["fit", *args])
    best = next(p for p in sorted(tmp_path.rglob("*.ckpt")) if p.name.startswith("best"))
    main(["test", *args, "--ckpt_path", str(best)])
    metrics = json.loads((tmp_path / "test_metrics.json").read_text())
    assert np.isfinite(metrics["test/mae"]) and metrics["test/mae"] > 0
    loaded = Forecaster.load_from_checkpoint(best)
    assert isinstance(loaded.model, VNNetOfficial)
    assert loaded.model.init_args["hidden"] == 8 and loaded.model.init_args["official_init"]


def test_weather2k_official_config_trains_on_files_in_the_real_layout(tmp_path):
    """VN-Net region file (time, N, 23), lon/lat file and a 6-channel Himawari cube."""
    rng = np.random.default_rng(0)
    n, hours = 4, 120
    lon, lat = rng.uniform(118.5, 122.5, n), rng.uniform(39.5, 43.5, n)
    region = rng.normal(10.0, 5.0, size=(hours, n, 23)).astype(np.float32)
    region[:, :, 0], region[:, :, 1], region[:, :, 2] = lat, lon, 100.0
    region[:, :, 8] = rng.uniform(20, 90, size=(hours, n))
    region[:, :, 16] = rng.uniform(0, 8, size=(hours, n))
    region[:, :, 20:22] = rng.uniform(1000, 30000, size=(hours, n, 2))
    np.save(tmp_path / "region.npy", region)
    np.save(tmp_path / "lonlat.npy", np.stack([lon, lat], axis=1))
    np.save(tmp_path / "h8.npy", rng.uniform(190, 340, size=(hours, 32, 32, 6)).astype(np.float16))
    main(["fit", "--config", "configs/weather2k_official/d60_ws.yaml",
          "--data.stations", str(tmp_path / "region.npy"),
          "--data.stations_lonlat", str(tmp_path / "lonlat.npy"),
          "--data.satellite", str(tmp_path / "h8.npy"), "--data.split", "[0.6, 0.2, 0.2]",
          "--data.num_workers", "0", "--data.n_his", "4", "--data.n_pred", "3",
          "--data.batch_size", "4", "--model.model.init_args.hidden", "8",
          "--model.model.init_args.dgnn_hidden", "8", "--trainer.fast_dev_run", "true",
          "--trainer.default_root_dir", str(tmp_path / "run")])
