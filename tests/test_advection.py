"""Tests for the advection-aware upstream sampler (vnnet.nn.advection) and its use in DQAM and
VNNet: wind estimate by hand, sampled positions on a known feature map, the image orientation,
the edge flag, gradients, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vnnet.data.datamodule import WeatherDataModule
from vnnet.models.fusion import DQAMFusion
from vnnet.models.vnnet import VisionOptions, VNNet
from vnnet.nn.advection import UpstreamSampler

# A 0.1-degree, 40 x 40 image over 30-34 N, 110-114 E, lat descending (row 0 = north).
IMAGE_LAT = 34.0 - 0.05 - 0.1 * np.arange(40)
IMAGE_LON = 110.0 + 0.05 + 0.1 * np.arange(40)
ST_LAT, ST_LON = np.array([32.0, 33.0]), np.array([112.0, 111.0])
SPEED, DIRECTION = 0, 1  # input positions of the two wind variables


def sampler(hours=(0.0, 1.0, 2.0), image_lat=IMAGE_LAT, ratio=1.0) -> UpstreamSampler:
    return UpstreamSampler(ST_LAT, ST_LON, image_lat, IMAGE_LON, [SPEED, DIRECTION],
                           wind_mean=[0.0, 0.0], wind_std=[1.0, 1.0], hours=hours,
                           steering_ratio=ratio)


def wind_inputs(speed: float, from_deg: float, b: int = 1, t: int = 4, n: int = 2
                ) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.zeros(b, t, n, 2)
    x[..., SPEED], x[..., DIRECTION] = speed, from_deg
    return x, torch.ones_like(x, dtype=torch.bool)


def lat_lon_maps(image_lat=IMAGE_LAT) -> torch.Tensor:
    """(1 2 H W) feature map whose channels are each pixel's own lat and lon."""
    lat, lon = np.meshgrid(image_lat, IMAGE_LON, indexing="ij")
    return torch.tensor(np.stack([lat, lon])[None], dtype=torch.float32)


def test_steering_wind_by_hand() -> None:
    s = sampler(ratio=2.0)
    x, m = wind_inputs(5.0, 270.0)  # from the west: blows toward the east
    wind = s.steering_wind(x, m)[0]
    assert wind[0].item() == pytest.approx(2.0 * 5.0 * 3.6, rel=1e-5)
    assert abs(wind[1].item()) < 1e-4
    x, m = wind_inputs(4.0, 0.0)  # from the north: toward the south
    assert s.steering_wind(x, m)[0, 1].item() == pytest.approx(-2.0 * 4.0 * 3.6, rel=1e-5)
    # Unobserved entries do not count; only the last wind_hours (3) hours do.
    x, m = wind_inputs(5.0, 270.0)
    x[:, -1, 0, SPEED] = 100.0
    m[:, -1, 0, SPEED] = False
    x[:, 0, :, SPEED] = 100.0  # older than the 3 averaged hours
    assert s.steering_wind(x, m)[0, 0].item() == pytest.approx(2.0 * 5.0 * 3.6, rel=1e-5)
    # No wind observation at all: no motion rather than NaN.
    assert torch.equal(s.steering_wind(x, torch.zeros_like(m)), torch.zeros(1, 2))


@pytest.mark.parametrize("descending", [True, False])
def test_samples_lie_upstream_in_both_image_orientations(descending: bool) -> None:
    image_lat = IMAGE_LAT if descending else IMAGE_LAT[::-1].copy()
    s = sampler(hours=(0.0, 1.0, 3.0), image_lat=image_lat)
    # 10 m/s from the south-west (225 deg): the cloud arriving in tau hours is now tau * 36 km
    # to the south-west.
    x, m = wind_inputs(10.0, 225.0)
    samples, inside = s(lat_lon_maps(image_lat), x, m)
    assert samples.shape == (1, 2, 3, 2) and inside.all()
    step = 36.0 / math.sqrt(2)  # km east and north per hour
    for i in range(2):
        for k, tau in enumerate((0.0, 1.0, 3.0)):
            lat = ST_LAT[i] - tau * step / 111.2
            lon = ST_LON[i] - tau * step / (111.2 * math.cos(math.radians(ST_LAT.mean())))
            assert samples[0, i, k, 0].item() == pytest.approx(lat, abs=1e-4)
            assert samples[0, i, k, 1].item() == pytest.approx(lon, abs=1e-4)


def test_upstream_beyond_the_image_reads_zero_and_is_flagged() -> None:
    s = sampler(hours=(0.0, 10.0))
    x, m = wind_inputs(20.0, 270.0)  # 720 km to the west after 10 h: off the image
    samples, inside = s(lat_lon_maps() + 1.0, x, m)
    assert inside[0, :, 0].all() and not inside[0, :, 1].any()
    assert torch.equal(samples[0, :, 1], torch.zeros(2, 2))


def test_wind_parameters_get_gradients() -> None:
    s = sampler()
    x, m = wind_inputs(6.0, 240.0)
    samples, _ = s(lat_lon_maps(), x, m)
    (samples * torch.randn_like(samples)).sum().backward()
    assert s.log_steering_ratio.grad.abs() > 0 and s.turn.grad.abs() > 0


def test_bad_sampler_options() -> None:
    with pytest.raises(ValueError, match="upstream hours"):
        sampler(hours=())
    with pytest.raises(ValueError, match="upstream hours"):
        sampler(hours=(-1.0,))
    with pytest.raises(ValueError, match="steering_ratio"):
        sampler(ratio=0.0)


def test_fusion_reads_upstream_samples() -> None:
    rows, cols = torch.tensor([1, 2]), torch.tensor([3, 0])
    fusion = DQAMFusion(8, rows, cols, (4, 4), n_heads=2, n_queries=2, n_upstream=3)
    states, image = torch.randn(2, 1, 2, 8), torch.randn(1, 8, 4, 4)
    samples, inside = torch.randn(1, 2, 3, 8), torch.ones(1, 2, 3, dtype=torch.bool)
    out = fusion(states, image, (samples, inside))
    assert out.shape == states.shape
    changed = fusion(states, image, (samples + 1.0, inside))
    assert not torch.allclose(out, changed)  # the samples reach the output
    with pytest.raises(ValueError, match="upstream"):
        fusion(states, image)
    with pytest.raises(ValueError, match="upstream samples must be"):
        fusion(states, image, (samples[:, :, :2], inside[:, :, :2]))
    with pytest.raises(ValueError, match="n_upstream=0"):
        DQAMFusion(8, rows, cols, (4, 4), n_heads=2)(states, image, (samples, inside))


def test_vnnet_with_upstream_sampling_trains_and_needs_wind() -> None:
    dm = WeatherDataModule(synthetic={"n_days": 10, "n_stations": 6, "image_size": 16},
                           batch_size=4)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    model = VNNet(dm.description(), hidden=8, embed_dim=4, decoder_context=True,
                  vision=VisionOptions(stem_channels=4, n_heads=2, n_queries=2,
                                       upstream_hours=(1.0, 4.0)))
    out = model(batch)
    assert out.shape == batch.y.shape
    out.abs().mean().backward()
    assert model.upstream.log_steering_ratio.grad.abs() > 0
    assert model.config()["init_args"]["vision"]["upstream_hours"] == [1.0, 4.0]
    no_wind = WeatherDataModule(synthetic={"n_days": 10, "n_stations": 6, "image_size": 16},
                                inputs=["air_temperature", "relative_humidity"])
    no_wind.setup("fit")
    with pytest.raises(ValueError, match="wind_from_direction"):
        VNNet(no_wind.description(), vision=VisionOptions(upstream_hours=(1.0,)))
