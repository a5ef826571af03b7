import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from vnnet.data import (
    Batch,
    WeatherDataModule,
    align_frames,
    synthetic_world,
    write_satellite,
    write_stations,
)

SMALL = {"n_stations": 8, "n_days": 8, "image_size": 32, "n_channels": 3}


@pytest.fixture(scope="module")
def world():
    return synthetic_world(seed=3, **SMALL)


def make_dm(world, **kwargs):
    stations, satellite = world
    options = {"target": ["air_temperature", "visibility"], "n_his": 6, "n_pred": 4,
               "batch_size": 5, "split": (0.6, 0.2, 0.2)}
    return WeatherDataModule(stations, satellite, **{**options, **kwargs})


def test_batch_layout_and_values(world):
    stations, satellite = world
    dm = make_dm(world)
    dm.setup()
    batch = next(iter(dm.val_dataloader()))
    assert isinstance(batch, Batch)
    b, t, h, n = 5, 6, 4, 8
    f = len(stations.data_vars)
    assert batch.x.shape == (b, t, n, f) and batch.x_mask.shape == (b, t, n, f)
    assert batch.y.shape == (b, h, n, 2) and batch.y_mask.dtype == torch.bool
    assert batch.images.shape == (b, t, 3, 32, 32) and batch.image_mask.shape == (b, t)
    assert batch.time.shape == (b, t, 4) and batch.time_index.shape == (b, t, 3)
    assert batch.time_pred.shape == (b, h, 4)
    assert torch.isfinite(batch.x).all() and torch.isfinite(batch.y).all()
    assert torch.isfinite(batch.images).all()

    # The first val window starts at the val boundary; its targets follow its inputs.
    start = dm.split_slices["val"].start
    assert batch.init_time[0].item() == start + t - 1
    temp = stations.air_temperature.values
    scaler = dm.station_scaler
    k = scaler.index(["air_temperature"])[0]
    expect_y = (temp[start + t:start + t + h] - scaler.mean[k]) / scaler.std[k]
    observed = np.isfinite(expect_y)
    np.testing.assert_array_equal(batch.y_mask[0, :, :, 0].numpy(), observed)
    np.testing.assert_allclose(batch.y[0, :, :, 0].numpy()[observed], expect_y[observed],
                               rtol=1e-5, atol=1e-5)
    assert (batch.y[0, :, :, 0].numpy()[~observed] == 0).all()

    # Images are the min-max scaled frames at the input hours.
    raw = satellite.isel(time=slice(start, start + t)).values
    present = ~np.isnan(raw).all(axis=(1, 2, 3))
    np.testing.assert_array_equal(batch.image_mask[0].numpy(), present)
    lo, hi = dm.image_scaler.min, dm.image_scaler.max
    expect = (raw - lo[None, :, None, None]) / (hi - lo)[None, :, None, None]
    got = batch.images[0].numpy()
    ok = np.isfinite(expect)
    np.testing.assert_allclose(got[ok], expect[ok], rtol=1e-4, atol=1e-5)
    assert (got[~ok] == 0).all()


def test_scalers_see_the_training_split_only(world):
    stations, satellite = world
    dm = make_dm(world)
    train = dm.split_slices["train"]
    temp = stations.air_temperature.values[train]
    k = dm.station_scaler.index(["air_temperature"])[0]
    assert dm.station_scaler.mean[k] == pytest.approx(np.nanmean(temp), rel=1e-6)
    assert dm.station_scaler.std[k] == pytest.approx(np.nanstd(temp), rel=1e-5)
    # Corrupting val/test data must not move the fitted statistics.
    poisoned = stations.copy(deep=True)
    poisoned["air_temperature"][train.stop:] += 100.0
    sat = satellite.copy(deep=True)
    sat[train.stop:] = 400.0
    dm2 = make_dm((poisoned, sat))
    assert dm2.station_scaler.mean[k] == dm.station_scaler.mean[k]
    np.testing.assert_array_equal(dm2.image_scaler.max, dm.image_scaler.max)


def test_masks_follow_missing_data(world):
    dm = make_dm(world, target="air_temperature")
    dm.setup()
    stations = world[0]
    arrays = dm._station_arrays()
    names = dm.input_variables
    for i, name in enumerate(names):
        np.testing.assert_array_equal(arrays["x_mask"][..., i], np.isfinite(stations[name].values))
    assert (~arrays["x_mask"]).any(), "the synthetic world injects gaps"
    assert (arrays["x"][~arrays["x_mask"]] == 0).all()
    # mask_zeros (official compatibility mode) also drops exact-zero targets.
    zero = stations.copy(deep=True)
    zero["air_temperature"][5, 2] = 0.0
    dm0 = make_dm((zero, world[1]), target="air_temperature", mask_zeros=True)
    dm0.setup()
    assert not dm0._station_arrays()["y_mask"][5, 2, 0]
    dm1 = make_dm((zero, world[1]), target="air_temperature")
    dm1.setup()
    assert dm1._station_arrays()["y_mask"][5, 2, 0]


def test_missing_frames_and_nearest_earlier_alignment(world):
    stations, satellite = world
    # Frames every 2 hours, shifted by 30 min: each station hour takes the latest earlier frame.
    sparse = satellite.isel(time=slice(0, None, 2))
    sparse = sparse.assign_coords(time=sparse.time.values + np.timedelta64(30, "m"))
    dm = WeatherDataModule(stations, sparse, target="air_temperature", n_his=6, n_pred=4,
                           satellite_tolerance="2h", min_image_coverage=0.5)
    frame = dm.frame_of_time
    assert frame[0] == -1  # 00:00 precedes the first frame (00:30): never a later frame
    assert frame[1] == 0 and frame[2] == 0 and frame[3] == 1
    ds = dm.dataset("train")
    dm.setup()
    images, present = ds.read_images(np.array([-1, 0, 1]))
    assert not present[0] and (images[0] == 0).all()

    times = pd.DatetimeIndex(["2021-01-01 00:00", "2021-01-01 01:00", "2021-01-01 05:00"])
    frames = pd.DatetimeIndex(["2021-01-01 00:00", "2021-01-01 02:00"])
    assert align_frames(times, frames, pd.Timedelta("1h")).tolist() == [0, 0, -1]


def test_numerical_only_and_graph_and_pixels(world):
    dm = make_dm(world, use_satellite=False)
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    assert batch.images is None and batch.image_mask is None
    assert dm.image_shape is None and dm.pixel_map is None
    assert dm.graph.num_nodes == 8 and dm.coords.shape == (8, 3)
    dm_img = make_dm(world)
    rows, cols = dm_img.pixel_map.on_grid(8, 8)
    assert rows.max() < 8 and cols.max() < 8
    description = dm_img.description()
    assert description["target_variables"] == ["air_temperature", "visibility"]
    assert description["satellite"]["channels"] == ["ir1", "ir2", "ir3"]
    assert description["graph"]["station_hash"] == dm_img.graph.provenance["station_hash"]


def test_paths_and_worker_processes_give_the_same_batches(world, tmp_path):
    stations, satellite = world
    write_stations(stations, tmp_path / "stations.nc")
    write_satellite(satellite, tmp_path / "satellite.zarr")
    in_memory = make_dm(world)
    from_files = make_dm((str(tmp_path / "stations.nc"), str(tmp_path / "satellite.zarr")),
                         num_workers=2)
    for dm in (in_memory, from_files):
        dm.setup()
    a = next(iter(in_memory.test_dataloader()))
    b = next(iter(from_files.test_dataloader()))
    for name in ("x", "x_mask", "y", "y_mask", "images", "image_mask", "init_time"):
        torch.testing.assert_close(getattr(a, name), getattr(b, name))


def test_training_windows_stay_inside_the_training_split(world):
    dm = make_dm(world)
    dm.setup()
    train, val = dm.split_slices["train"], dm.split_slices["val"]
    last_hour = max(int(s) + 6 + 4 - 1 for s in dm.windows("train"))
    assert last_hour < train.stop
    assert min(dm.windows("val")) == val.start
    seen = torch.cat([b.init_time for b in dm.train_dataloader()])
    assert len(seen) == len(dm.windows("train")) and len(set(seen.tolist())) == len(seen)


def test_synthetic_default_and_bad_arguments(world):
    dm = WeatherDataModule(synthetic=SMALL, n_his=4, n_pred=2)
    assert dm.n_stations == 8 and dm.image_shape == (3, 32, 32)
    stations, satellite = world
    with pytest.raises(ValueError, match="unknown variable.*snow_depth"):
        _ = make_dm(world, target="snow_depth").input_variables
    with pytest.raises(ValueError, match="n_pred"):
        make_dm(world, n_pred=0)
    with pytest.raises(ValueError, match="batch_size"):
        make_dm(world, batch_size=0)
    with pytest.raises(ValueError, match="satellite_tolerance"):
        make_dm(world, satellite_tolerance="soon")
    with pytest.raises(ValueError, match="without station data"):
        WeatherDataModule(None, satellite)
    late = satellite.assign_coords(time=satellite.time.values + np.timedelta64(30, "D"))
    with pytest.raises(ValueError, match="satellite frames cover 0%"):
        _ = make_dm((stations, late)).frame_of_time
    far = stations.assign_coords(lat=stations.lat + 20.0)
    with pytest.raises(ValueError, match="outside the satellite image box"):
        _ = make_dm((far, satellite)).pixel_map
    with pytest.raises(ValueError, match="station_ids: unknown"):
        _ = make_dm(world, station_ids=["S000", "nope"]).stations
    with pytest.raises(ValueError, match="no complete window"):
        make_dm(world, n_his=200, n_pred=12).setup()
    with pytest.raises(ValueError, match="image_range"):
        _ = make_dm(world, image_range=([0.0], [1.0])).image_scaler


def test_frames_are_read_lazily(world, tmp_path):
    """A window reads only its own frames, not the whole cube."""
    stations, satellite = world
    write_satellite(satellite, tmp_path / "sat.nc")
    lazy = xr.open_dataarray(tmp_path / "sat.nc")
    dm = make_dm((stations, lazy), image_range=([150.0] * 3, [330.0] * 3))
    dm.setup()
    assert not dm.satellite.variable._in_memory
    _ = dm.dataset("train")[0]
    assert not dm.satellite.variable._in_memory
