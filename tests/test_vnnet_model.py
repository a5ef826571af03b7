import pytest
import torch

from vnnet import Forecaster
from vnnet.data import WeatherDataModule
from vnnet.forecaster import teacher_forcing_probability
from vnnet.models import Persistence, VisionOptions, VNNet

TINY = {"n_stations": 6, "n_days": 6, "image_size": 16, "n_channels": 3}


@pytest.fixture(scope="module")
def dm():
    dm = WeatherDataModule(synthetic=TINY, target=["air_temperature", "relative_humidity"],
                           n_his=6, n_pred=4, batch_size=4, seed=1)
    dm.setup()
    return dm


@pytest.fixture(scope="module")
def batch(dm):
    return next(iter(dm.train_dataloader()))


def small_vnnet(dm, **kwargs):
    return VNNet(dm.description(), hidden=16, vision=VisionOptions(stem_channels=8, n_queries=4),
                 **kwargs)


def test_vnnet_shapes_and_gradients(dm, batch):
    torch.manual_seed(0)
    model = small_vnnet(dm)
    out = model(batch, teacher_forcing=0.5)
    assert out.shape == (4, 4, 6, 2)
    out.square().mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
    assert model.vision.feature_size == (4, 4)
    assert model.fusion.last_attention.shape[1] == 2 * 6  # L * n station tokens


def test_nnet_has_no_vision_branch_and_ignores_images(dm, batch):
    nnet = VNNet(dm.description(), hidden=16, vision=None)
    assert nnet.vision is None and nnet.fusion is None
    full = small_vnnet(dm)
    assert sum(p.numel() for p in nnet.parameters()) < sum(p.numel() for p in full.parameters())
    nnet.eval()
    a = nnet(batch)
    changed = type(batch)(**{**batch.__dict__, "images": torch.rand_like(batch.images)})
    torch.testing.assert_close(a, nnet(changed))


def test_images_reach_the_forecast_but_not_under_the_noise_control(dm, batch):
    model = small_vnnet(dm).eval()
    changed = type(batch)(**{**batch.__dict__, "images": torch.rand_like(batch.images)})
    assert not torch.allclose(model(batch), model(changed))
    noise = small_vnnet(dm, image_noise=True).eval()
    torch.manual_seed(5)
    a = noise(batch)
    torch.manual_seed(5)
    b = noise(changed)
    torch.testing.assert_close(a, b)  # the real frames are never read


def test_bad_model_configurations(dm):
    numerical = WeatherDataModule(synthetic=TINY, n_his=6, n_pred=4, use_satellite=False)
    with pytest.raises(ValueError, match="no satellite images"):
        VNNet(numerical.description())
    with pytest.raises(ValueError, match="image_noise needs"):
        VNNet(numerical.description(), vision=None, image_noise=True)
    with pytest.raises(ValueError, match="lacks"):
        VNNet({"station_ids": ["a"]})
    with pytest.raises(ValueError, match="ForecastModel"):
        Forecaster(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="loss"):
        Forecaster(Persistence(dm.description()), loss="l7")


def test_persistence_repeats_the_last_observed_value(dm, batch):
    model = Persistence(dm.description())
    out = model(batch)
    idx = dm.input_variables.index("air_temperature")
    x, m = batch.x[..., idx], batch.x_mask[..., idx]
    b, n = 1, 2
    observed = torch.nonzero(m[b, :, n]).flatten()
    expect = x[b, observed[-1], n] if len(observed) else torch.tensor(0.0)
    assert torch.allclose(out[b, :, n, 0], expect.expand(4))


def test_loss_is_masked_mae_in_physical_units(dm, batch):
    forecaster = Forecaster(Persistence(dm.description()))
    pred = torch.zeros_like(batch.y)
    loss = forecaster.compute_loss(pred, batch)
    phys_pred = forecaster.to_physical(pred)
    phys_y = forecaster.to_physical(batch.y)
    per_target = [(phys_pred - phys_y)[..., c].abs()[batch.y_mask[..., c]].mean()
                  for c in range(2)]
    assert loss.item() == pytest.approx(torch.stack(per_target).mean().item(), rel=1e-5)
    scaled = Forecaster(Persistence(dm.description()), loss_units="scaled")
    expect = torch.stack([batch.y[..., c].abs()[batch.y_mask[..., c]].mean() for c in range(2)])
    assert scaled.compute_loss(pred, batch).item() == pytest.approx(expect.mean().item(),
                                                                    rel=1e-5)


def test_scheduled_sampling_schedule_and_optimiser(dm):
    assert teacher_forcing_probability(0, 2000) == pytest.approx(2000 / 2001)
    assert teacher_forcing_probability(7300, 2000) == pytest.approx(0.981, abs=1e-3)
    assert teacher_forcing_probability(14600, 2000) == pytest.approx(0.575, abs=1e-3)
    assert teacher_forcing_probability(10**9, 2000) == 0.0
    forecaster = Forecaster(small_vnnet(dm))
    opt = forecaster.configure_optimizers()
    adam = opt["optimizer"]
    assert adam.defaults["lr"] == 5e-3 and adam.defaults["eps"] == 1e-3
    sched = opt["lr_scheduler"]["scheduler"]
    assert sorted(sched.milestones) == [10, 20, 30, 40, 50] and sched.gamma == 0.5
    lrs = []
    for _ in range(25):
        lrs.append(adam.param_groups[0]["lr"])
        adam.step()
        sched.step()
    assert lrs[9] == 5e-3 and lrs[10] == 2.5e-3 and lrs[20] == 1.25e-3
    with pytest.raises(ValueError, match="no trainable parameters"):
        Forecaster(Persistence(dm.description())).configure_optimizers()


def test_library_made_checkpoint_rebuilds_the_model(dm, batch, tmp_path):
    import lightning as L

    forecaster = Forecaster(small_vnnet(dm), lr=1e-3)
    trainer = L.Trainer(max_epochs=1, limit_train_batches=2, limit_val_batches=1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False)
    trainer.fit(forecaster, dm)
    trainer.save_checkpoint(tmp_path / "m.ckpt")
    loaded = Forecaster.load_from_checkpoint(tmp_path / "m.ckpt")
    assert isinstance(loaded.model, VNNet) and loaded.hparams.lr == 1e-3
    assert loaded.model.init_args["hidden"] == 16
    forecaster.eval()
    loaded.eval()
    torch.testing.assert_close(loaded(batch), forecaster(batch))


def test_decoder_context_feeds_the_fused_state_to_every_step(dm, batch):
    torch.manual_seed(0)
    plain = small_vnnet(dm)
    context = small_vnnet(dm, decoder_context=True)
    n_cal = plain.decoder.n_step_features
    assert context.decoder.n_step_features == n_cal + 16  # calendar + hidden
    out = context(batch)
    assert out.shape == (4, 4, 6, 2)
    out.square().mean().backward()
    assert all(p.grad is not None for p in context.parameters())


def test_gated_fusion_starts_as_nnet_and_learns_the_gate(dm, batch):
    torch.manual_seed(0)
    model = VNNet(dm.description(), hidden=16, decoder_context=True,
                  vision=VisionOptions(stem_channels=8, n_queries=4, gated=True))
    states, _ = model.encoder(
        torch.cat([batch.x, batch.x_mask.float(),
                   model.static_features.expand(*batch.x.shape[:3], -1)], -1),
        batch.time_index)
    torch.testing.assert_close(model.encode(batch), states)  # gate 0: exactly N-Net's states
    model(batch).square().mean().backward()
    assert model.fusion_gate.grad.abs().sum() > 0  # ... and the gate receives a gradient


def test_stem_without_norm_keeps_absolute_brightness(dm, batch):
    model = VNNet(dm.description(), hidden=16,
                  vision=VisionOptions(stem_channels=8, n_queries=4, stem_norm=False))
    assert not any(isinstance(m, torch.nn.GroupNorm) for m in model.vision.stem.modules())
    brighter = type(batch)(**{**batch.__dict__, "images": batch.images + 0.2})
    model.eval()
    assert not torch.allclose(model(batch), model(brighter))


def test_brightness_jitter_one_offset_per_window_and_channel_in_training_only(dm, batch):
    from vnnet.models.vnnet import jitter_brightness

    images = torch.rand(3, 5, 2, 4, 4)
    mask = torch.ones(3, 5, dtype=torch.bool)
    mask[1, 2] = False
    images[1, 2] = 0.0  # a missing frame, filled with 0 by the datamodule
    torch.manual_seed(0)
    shifted = jitter_brightness(images, mask, 0.1)
    offset = shifted - images
    assert offset.abs().max() <= 0.1
    assert torch.all(offset[1, 2] == 0)  # missing frames stay 0
    present = offset[:, [0, 1, 3, 4]]
    # one offset per (window, channel): constant over hours and pixels, differs across both
    torch.testing.assert_close(present, present[:, :1, :, :1, :1].expand_as(present))
    assert not torch.allclose(offset[0, 0, 0], offset[0, 0, 1])
    assert not torch.allclose(offset[0, 0, 0], offset[2, 0, 0])

    torch.manual_seed(0)
    model = VNNet(dm.description(), hidden=16, vision=VisionOptions(
        stem_channels=8, n_queries=4, brightness_jitter=0.2))
    model.eval()
    torch.testing.assert_close(model(batch), model(batch))  # no jitter at evaluation
    model.train()
    assert not torch.allclose(model(batch), model(batch))  # a new offset every call
    with pytest.raises(ValueError, match="brightness_jitter"):
        VNNet(dm.description(), vision=VisionOptions(brightness_jitter=-0.1))


def test_local_only_fusion_reads_each_stations_own_pixel(dm, batch):
    torch.manual_seed(0)
    model = VNNet(dm.description(), hidden=16, vision=VisionOptions(
        stem_channels=8, n_queries=4, use_global=False)).eval()
    assert model.fusion.use_global is False
    states = torch.randn(2, 4, 6, 16)
    image = torch.randn(4, 16, 4, 4)
    fused = model.fusion(states, image)
    changed = image.clone()
    taken = set(zip(model.fusion.pixel_rows.tolist(), model.fusion.pixel_cols.tolist(),
                    strict=True))
    free = [(r, c) for r in range(4) for c in range(4) if (r, c) not in taken]
    for r, c in free:  # pixels under no station change nothing
        changed[:, :, r, c] += 5.0
    torch.testing.assert_close(model.fusion(states, changed), fused)
    assert model(batch).shape == (4, 4, 6, 2)


def test_encoder_context_keeps_the_images_in_h0_only(dm, batch):
    torch.manual_seed(0)
    model = small_vnnet(dm, decoder_context=True, context_source="encoder").eval()
    states = model.encode_stations(batch)
    seen = {}
    original = model.decoder.forward

    def spy(h0, *args, **kwargs):
        seen["h0"], seen["steps"] = h0, kwargs["step_features"]
        return original(h0, *args, **kwargs)

    model.decoder.forward = spy
    model(batch)
    n_cal = seen["steps"].shape[-1] - 16
    torch.testing.assert_close(seen["h0"], model.fuse(states, batch))  # images in h0
    context = seen["steps"][..., n_cal:]  # (b h n d): the unfused top-layer state, every lead
    torch.testing.assert_close(context, states[-1].unsqueeze(1).expand_as(context))
    with pytest.raises(ValueError, match="context_source"):
        small_vnnet(dm, decoder_context=True, context_source="pixels")
    with pytest.raises(ValueError, match="needs decoder_context=True"):
        small_vnnet(dm, context_source="encoder")
