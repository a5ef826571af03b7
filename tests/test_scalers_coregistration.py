import numpy as np
import pytest
import torch

from vnnet.data.scalers import MinMaxScaler, StandardScaler
from vnnet.graphs.coregistration import station_pixels


def test_standard_scaler_ignores_nan_and_inverts():
    values = np.array([[[1.0, 10.0]], [[3.0, np.nan]], [[np.nan, 30.0]], [[5.0, 20.0]]])
    scaler = StandardScaler(["a", "b"]).fit(values)
    np.testing.assert_allclose(scaler.mean, [3.0, 20.0])
    np.testing.assert_allclose(scaler.std, [np.sqrt(8 / 3), np.sqrt(200 / 3)])
    z = scaler.transform(values)
    assert np.isnan(z[1, 0, 1]) and np.isnan(z[2, 0, 0])  # missing stays missing
    np.testing.assert_allclose(scaler.inverse_transform(z), values)
    t = torch.tensor([[3.0]], dtype=torch.float32)
    assert scaler.transform(t, scaler.index(["a"])).item() == pytest.approx(0.0)
    back = StandardScaler.from_dict(scaler.to_dict())
    np.testing.assert_allclose(back.transform(values), z)


def test_standard_scaler_errors():
    with pytest.raises(ValueError, match="all NaN"):
        StandardScaler(["a"]).fit(np.full((3, 1), np.nan))
    with pytest.raises(ValueError, match="expected 2"):
        StandardScaler(["a", "b"]).fit(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="unknown variables"):
        StandardScaler(["a"]).fit(np.ones((2, 1))).index(["b"])
    constant = StandardScaler(["a"]).fit(np.ones((4, 1)))
    assert constant.std[0] == 1.0 and constant.transform(np.ones(1))[0] == 0.0


def test_minmax_scaler_streams_chunks_and_ignores_missing_frames():
    rng = np.random.default_rng(0)
    cube = rng.uniform(200, 300, size=(10, 2, 4, 4))
    cube[3] = np.nan  # a missing frame
    cube[0, 1, 0, 0] = 150.0
    cube[9, 0, 1, 1] = 400.0  # outside the fitted frames: must not count
    scaler = MinMaxScaler().fit(cube, np.arange(9), chunk=4)
    assert scaler.min[1] == 150.0
    assert scaler.max[0] == np.nanmax(cube[:9, 0])
    scaled = scaler.transform(cube[:9])
    assert np.nanmin(scaled) == pytest.approx(0.0) and np.nanmax(scaled) == pytest.approx(1.0)
    np.testing.assert_allclose(scaler.inverse_transform(scaled), cube[:9])
    torch_scaled = scaler.transform(torch.tensor(cube[:2], dtype=torch.float64))
    np.testing.assert_allclose(torch_scaled.numpy(), scaled[:2])
    assert MinMaxScaler.from_dict(scaler.to_dict()).max.tolist() == scaler.max.tolist()
    with pytest.raises(ValueError, match="no frames"):
        MinMaxScaler().fit(cube, np.array([], dtype=int))
    with pytest.raises(ValueError, match="maximum > minimum"):
        MinMaxScaler([1.0, 2.0], [3.0, 1.0])


def test_station_pixels_on_descending_lat_grid_and_feature_grid():
    # 160 px over the official NE box: 0.04 deg pixels, row 0 = north.
    lat = 44.7 - 0.02 - 0.04 * np.arange(160)
    lon = 117.3 + 0.02 + 0.04 * np.arange(160)
    stations_lat = np.array([44.69, 38.31, 41.48])
    stations_lon = np.array([117.31, 123.69, 120.52])
    pm = station_pixels(stations_lat, stations_lon, lat, lon)
    assert pm.rows.tolist() == [0, 159, 80] and pm.cols.tolist() == [0, 159, 80]
    rows40, cols40 = pm.on_grid(40, 40)
    assert rows40.tolist() == [0, 39, 20] and cols40.tolist() == [0, 39, 20]
    assert pm.flat_index(40, 40).tolist() == [0, 39 * 40 + 39, 20 * 40 + 20]
    # Ascending latitude: row 0 is the south edge.
    asc = station_pixels(stations_lat, stations_lon, lat[::-1], lon)
    assert asc.rows.tolist() == [159, 0, 79]


def test_station_outside_the_box_is_named():
    lat = np.linspace(30.05, 30.95, 10)
    lon = np.linspace(110.05, 110.95, 10)
    with pytest.raises(ValueError, match=r"outside the satellite image box.*S2 \(31.200N"):
        station_pixels(np.array([30.5, 31.2]), np.array([110.5, 110.5]), lat, lon,
                       np.array(["S1", "S2"]))
