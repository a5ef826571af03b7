"""Tests of vnnet's synthetic benchmark world (``vnnet.data.synthetic``).

The central test shows the property the library depends on: the satellite images carry
information about the stations' future that the stations' own history does not.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from vnnet.data.schema import CATALOGUE, validate_satellite, validate_stations
from vnnet.data.synthetic import STATION_VARIABLES, synthetic_world

BBOX = (30.0, 36.4, 110.0, 116.4)
SMALL = dict(n_stations=12, n_days=6, image_size=24, n_channels=3)


@pytest.fixture(scope="module")
def world() -> tuple[xr.Dataset, xr.DataArray]:
    """A mid-sized world, large enough for regressions: 40 stations x 60 days, 32 px."""
    return synthetic_world(seed=0, n_stations=40, n_days=60, image_size=32, n_channels=2)


@pytest.fixture(scope="module")
def small() -> tuple[xr.Dataset, xr.DataArray]:
    return synthetic_world(seed=3, **SMALL)


def _station_pixels(stations: xr.Dataset, satellite: xr.DataArray) -> tuple[np.ndarray, ...]:
    """Row/column of the pixel containing each station: (station,), (station,)."""
    lat, lon = satellite.lat.values, satellite.lon.values
    rows = np.abs(lat[None, :] - stations.lat.values[:, None]).argmin(axis=1)
    cols = np.abs(lon[None, :] - stations.lon.values[:, None]).argmin(axis=1)
    return rows, cols


# --- the property the library depends on ---------------------------------------------------

def test_images_predict_temperature_change_better_than_history(world) -> None:
    """Raw pixel values above and around a station predict T(t+4) - T(t) better than the
    station's own last 12 hourly temperatures.

    Image features use only frames up to the forecast start: the ir1 brightness temperature
    on a 5 x 5 grid of pixels spaced ~0.6 deg around the station at t (clouds on their way)
    and the station's own pixel at t-1 .. t-6 (cloud already overhead). History features:
    T(t-11) .. T(t). Both get hour-of-day sin/cos and the same learner (gradient-boosted
    trees, as the cloud response is multiplicative in the sun), pooled over stations, fitted
    on the first 70 % of times and scored on the rest; rows with NaN are dropped.
    """
    from sklearn.ensemble import HistGradientBoostingRegressor
    from threadpoolctl import threadpool_limits

    stations, satellite = world
    temp = stations.air_temperature.values.astype(float)  # (time, station)
    ir = satellite.sel(channel="ir1").values.astype(float)  # (time, lat, lon)
    n_time, n_station = temp.shape
    size = ir.shape[1]
    rows, cols = _station_pixels(stations, satellite)
    step = max(1, round(0.6 / abs(float(satellite.lat[0] - satellite.lat[1]))))
    offsets = [(dy * step, dx * step) for dy in range(-2, 3) for dx in range(-2, 3)]
    lead, n_his, n_past = 4, 12, 6

    t0 = np.arange(n_his - 1, n_time - lead)  # forecast start times
    hour = stations.time.dt.hour.values[t0]
    clock = np.stack([np.sin(2 * np.pi * hour / 24), np.cos(2 * np.pi * hour / 24)], axis=1)
    x_img, x_his, y = [], [], []
    for s in range(n_station):
        around = [ir[t0, np.clip(rows[s] + dy, 0, size - 1), np.clip(cols[s] + dx, 0, size - 1)]
                  for dy, dx in offsets]
        overhead = [ir[t0 - k, rows[s], cols[s]] for k in range(1, n_past + 1)]
        x_img.append(np.column_stack(around + overhead + [clock]))
        x_his.append(np.column_stack([temp[t0 - k, s] for k in range(n_his)] + [clock]))
        y.append(temp[t0 + lead, s] - temp[t0, s])
    x_img, x_his, y = np.vstack(x_img), np.vstack(x_his), np.concatenate(y)
    start = np.tile(t0, n_station)
    ok = np.isfinite(x_img).all(1) & np.isfinite(x_his).all(1) & np.isfinite(y)
    split = int(0.7 * n_time)
    train, test = ok & (start + lead < split), ok & (start >= split)
    assert train.sum() > 10_000 and test.sum() > 5_000

    def mae(x: np.ndarray) -> float:
        model = HistGradientBoostingRegressor(max_iter=100, learning_rate=0.15, random_state=0)
        with threadpool_limits(1):  # OpenMP spin-waiting on a busy 2-core runner costs 10x
            model.fit(x[train], y[train])
            return float(np.abs(model.predict(x[test]) - y[test]).mean())

    mae_img, mae_his = mae(x_img), mae(x_his)
    print(f"\nT(t+{lead}) - T(t) MAE: images {mae_img:.3f} K, station history {mae_his:.3f} K, "
          f"ratio {mae_img / mae_his:.3f}")
    assert mae_img < 0.85 * mae_his


# --- reproducibility --------------------------------------------------------------------------

def test_same_seed_gives_identical_world(small) -> None:
    stations, satellite = synthetic_world(seed=3, **SMALL)
    xr.testing.assert_identical(stations, small[0])
    xr.testing.assert_identical(satellite, small[1])


def test_different_seed_gives_different_world(small) -> None:
    stations, satellite = synthetic_world(seed=4, **SMALL)
    assert not np.allclose(stations.lat.values, small[0].lat.values)
    t = stations.air_temperature.values
    assert np.nanmean(np.abs(t - small[0].air_temperature.values)) > 0.1
    assert np.nanmean(np.abs(satellite.values - small[1].values)) > 0.5


def test_station_records_do_not_depend_on_image_size(small) -> None:
    """Independent random streams: changing the image grid leaves the stations alone."""
    stations, _ = synthetic_world(seed=3, **{**SMALL, "image_size": 16, "n_channels": 1})
    xr.testing.assert_equal(stations, small[0])  # values and coords; 'source' differs


def test_source_attribute_records_the_call(small) -> None:
    stations, satellite = small
    for obj in (stations, satellite):
        assert "vnnet synthetic world" in obj.attrs["title"]
        assert "seed=3" in obj.attrs["source"] and "n_days=6" in obj.attrs["source"]


# --- the data contract ------------------------------------------------------------------------

def test_shapes_dims_coords_and_units(small) -> None:
    stations, satellite = small
    n_time = 24 * SMALL["n_days"]
    assert dict(stations.sizes) == {"time": n_time, "station": SMALL["n_stations"]}
    assert list(stations.data_vars) == list(STATION_VARIABLES)
    assert stations.station.values[0] == "S000"
    for name, da in stations.data_vars.items():
        assert da.dims == ("time", "station")
        assert da.dtype == np.float32
        assert da.attrs["units"] == CATALOGUE[name].units
    times = stations.indexes["time"]
    assert str(times[0]) == "2021-05-01 00:00:00"
    assert (np.diff(times.asi8) == np.diff(times.asi8)[0]).all()

    size = SMALL["image_size"]
    assert satellite.dims == ("time", "channel", "lat", "lon")
    assert satellite.shape == (n_time, SMALL["n_channels"], size, size)
    assert satellite.dtype == np.float32
    assert satellite.attrs["units"] == "K"
    assert list(satellite.channel.values) == ["ir1", "ir2", "ir3"]
    assert (satellite.time.values == stations.time.values).all()
    lat, lon = satellite.lat.values, satellite.lon.values
    assert (np.diff(lat) < 0).all() and (np.diff(lon) > 0).all()  # row 0 = north
    half = (BBOX[1] - BBOX[0]) / size / 2  # pixel centres: half a pixel inside the box
    np.testing.assert_allclose([lat[0], lat[-1]], [BBOX[1] - half, BBOX[0] + half])
    np.testing.assert_allclose([lon[0], lon[-1]], [BBOX[2] + half, BBOX[3] - half])


def test_validators_pass(small) -> None:
    stations, satellite = small
    validate_stations(stations)
    validate_satellite(satellite)


def test_stations_inside_the_image_box_and_sparse(world) -> None:
    stations, _ = world
    lat, lon, elevation = (stations[c].values for c in ("lat", "lon", "elevation"))
    assert (lat > BBOX[0] + 0.2).all() and (lat < BBOX[1] - 0.2).all()
    assert (lon > BBOX[2] + 0.2).all() and (lon < BBOX[3] - 0.2).all()
    assert (elevation >= 0).all() and (elevation <= 2100).all() and elevation.std() > 100
    d = np.hypot(lat[:, None] - lat[None, :], lon[:, None] - lon[None, :])
    nearest = np.where(np.eye(lat.size, dtype=bool), np.inf, d).min(axis=1)
    assert 0.4 < np.median(nearest) < 1.5  # ~1 deg apart: sparse relative to a cloud


def test_physical_ranges_and_relations(world) -> None:
    stations, satellite = world
    v = {name: stations[name].values for name in STATION_VARIABLES}
    assert np.nanmin(v["visibility"]) >= 20 and np.nanmax(v["visibility"]) <= 50_000
    assert np.nanmin(v["visibility"]) < 2_000 < np.nanmedian(v["visibility"])
    assert np.nanmin(v["relative_humidity"]) >= 1 and np.nanmax(v["relative_humidity"]) <= 100
    assert np.nanmin(v["precipitation_amount"]) >= 0 and np.nanmax(v["precipitation_amount"]) > 1
    assert (np.nan_to_num(v["dew_point_temperature"] - v["air_temperature"]) <= 1e-3).all()
    assert 0 <= np.nanmin(v["wind_from_direction"]) and np.nanmax(v["wind_from_direction"]) < 360
    assert np.nanmin(v["wind_speed"]) >= 0
    assert 5 < np.nanmean(v["air_temperature"]) < 30
    # Pressure falls with elevation; temperature follows the lapse rate.
    elevation = stations.elevation.values
    assert np.corrcoef(elevation, np.nanmean(v["air_pressure"], axis=0))[0, 1] < -0.95
    slope = np.polyfit(elevation, np.nanmean(v["air_temperature"], axis=0), 1)[0] * 1000
    assert -8.0 < slope < -5.0
    # Infrared: warm clear sky, cold cloud tops.
    ir1 = satellite.sel(channel="ir1").values
    assert 205 < np.nanmin(ir1) < 230 and 295 < np.nanmax(ir1) < 320
    # Cloudy stations (cold pixel overhead) are more humid and see less far.
    rows, cols = _station_pixels(stations, satellite)
    cold = ir1[:, rows, cols] < 250  # (time, station)
    rh = v["relative_humidity"]
    assert np.nanmean(rh[cold]) > np.nanmean(rh[~cold]) + 10
    assert np.nanmedian(v["visibility"][cold]) < 0.5 * np.nanmedian(v["visibility"][~cold])


# --- missing data -----------------------------------------------------------------------------

def test_missing_fractions_roughly_as_requested() -> None:
    stations, satellite = synthetic_world(seed=1, n_stations=30, n_days=30, image_size=16,
                                          n_channels=1, missing_fraction=0.05,
                                          outage_fraction=0.04, missing_frame_fraction=0.1)
    values = np.stack([stations[n].values for n in STATION_VARIABLES], axis=-1)  # (t, s, v)
    missing = np.isnan(values)
    outage = missing.all(axis=-1)  # whole station down
    assert 0.03 < outage.mean() < 0.05
    assert 0.04 < missing[~outage].mean() < 0.06
    # Outages are contiguous blocks of about a day or more.
    starts = (outage[1:] & ~outage[:-1]).sum() + outage[0].sum()
    assert outage.sum() / starts >= 20
    for name in STATION_VARIABLES:
        assert np.isfinite(stations[name].values).any()

    frames = np.isnan(satellite.values).reshape(satellite.sizes["time"], -1)
    blank = frames.all(axis=1)
    assert blank.mean() == pytest.approx(0.1, abs=0.01)
    assert (frames.any(axis=1) & ~blank).any()  # small NaN pixel patches too
    assert not np.isinf(satellite.values).any()


def test_no_missing_data_when_fractions_are_zero() -> None:
    stations, satellite = synthetic_world(seed=2, n_stations=5, n_days=3, image_size=8,
                                          n_channels=1, missing_fraction=0.0,
                                          outage_fraction=0.0, missing_frame_fraction=0.0)
    for name in STATION_VARIABLES:
        assert np.isfinite(stations[name].values).all()
    assert not np.isnan(satellite.values).reshape(72, -1).all(axis=1).any()


def test_default_world_has_some_blank_frames(world) -> None:
    _, satellite = world
    blank = np.isnan(satellite.values).reshape(satellite.sizes["time"], -1).all(axis=1)
    assert 0.02 < blank.mean() < 0.04


# --- clouds move with the wind ----------------------------------------------------------------

def test_clouds_are_advected_by_the_station_wind(world) -> None:
    """The cold-cloud pattern moves: frame t+3 matches frame t best after a shift, the shift
    is a plausible 20-50 km/h, and it points the way the stations' mean wind blows."""
    stations, satellite = world
    cloud = np.clip(265.0 - satellite.sel(channel="ir1").values, 0, None)  # (time, lat, lon)
    n_time, size, _ = cloud.shape
    gap, max_shift = 3, 8
    t = np.arange(0, n_time - gap, 6)
    t = t[np.isfinite(cloud[t]).all(axis=(1, 2)) & np.isfinite(cloud[t + gap]).all(axis=(1, 2))]
    t = t[(cloud[t] > 5).mean(axis=(1, 2)) > 0.05]  # enough cloud to track
    a, b = cloud[t], cloud[t + gap]

    shifts = [(dy, dx) for dy in range(-max_shift, max_shift + 1)
              for dx in range(-max_shift, max_shift + 1)]
    corr = np.empty((len(shifts), t.size))
    n = size - max_shift
    for i, (dy, dx) in enumerate(shifts):  # cloud at (y, x) in a is at (y + dy, x + dx) in b
        pa = a[:, max(-dy, 0):max(-dy, 0) + n, max(-dx, 0):max(-dx, 0) + n].reshape(t.size, -1)
        pb = b[:, max(dy, 0):max(dy, 0) + n, max(dx, 0):max(dx, 0) + n].reshape(t.size, -1)
        pa = pa - pa.mean(1, keepdims=True)
        pb = pb - pb.mean(1, keepdims=True)
        corr[i] = (pa * pb).sum(1) / np.sqrt((pa**2).sum(1) * (pb**2).sum(1) + 1e-9)
    best = corr.argmax(axis=0)
    zero = shifts.index((0, 0))
    assert np.median(corr[best, np.arange(t.size)] - corr[zero]) > 0.05

    px_deg = abs(float(satellite.lat[0] - satellite.lat[1]))
    dy, dx = np.array([shifts[i] for i in best]).T
    north_km = -dy * px_deg * 111.2  # rows run north to south
    east_km = dx * px_deg * 111.2 * np.cos(np.deg2rad(33.2))
    speed = np.hypot(north_km, east_km) / gap
    assert 15 < np.median(speed) < 60

    # Wind blows toward (from + 180 deg); average the stations' vectors at each time.
    toward = np.deg2rad(stations.wind_from_direction.values[t] + 180.0)
    ws = stations.wind_speed.values[t]
    u, v = np.nanmean(ws * np.sin(toward), axis=1), np.nanmean(ws * np.cos(toward), axis=1)
    cosine = (u * east_km + v * north_km) / (np.hypot(u, v) * np.hypot(east_km, north_km) + 1e-9)
    assert np.mean(cosine > 0.7) > 0.7


# --- arguments --------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs", [
    {"n_stations": 0}, {"n_days": 0}, {"image_size": 1}, {"n_channels": 0},
    {"missing_fraction": 0.9}, {"outage_fraction": -0.1}, {"bbox": (36.4, 30.0, 110.0, 116.4)},
])
def test_bad_arguments_raise(kwargs) -> None:
    with pytest.raises(ValueError):
        synthetic_world(**{**SMALL, **kwargs})


def test_progress_bar_runs() -> None:
    stations, _ = synthetic_world(seed=0, n_stations=3, n_days=1, image_size=4, n_channels=1,
                                  progress=True)
    assert stations.sizes["time"] == 24


def test_station_margin_keeps_stations_away_from_the_image_edges():
    bbox = (30.0, 36.4, 110.0, 116.4)
    for margin in (0.0, 0.3):
        stations, _ = synthetic_world(n_stations=12, n_days=1, image_size=8, bbox=bbox,
                                      station_margin=margin)
        edge = min(stations.lat.min() - 30.0, 36.4 - stations.lat.max(),
                   stations.lon.min() - 110.0, 116.4 - stations.lon.max())
        assert float(edge) >= margin * 6.4 - 1e-9
    with pytest.raises(ValueError, match="station_margin"):
        synthetic_world(n_days=1, station_margin=0.5)
