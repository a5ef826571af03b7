"""Tests for vnnet.data.readers: small files in the real on-disk layouts, read back."""

from __future__ import annotations

import pickle
from pathlib import Path

import dask.array as dsa
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from vnnet.data.readers import (
    REGION_BOXES,
    WEATHER2K_FEATURES,
    open_satellite,
    open_stations,
    read_himawari,
    read_stations_csv,
    read_vnnet_region,
    read_weather2k,
    write_satellite,
    write_stations,
)

N_STATION, N_TIME = 5, 72


def feature(name: str) -> int:
    return WEATHER2K_FEATURES.index(name)


@pytest.fixture
def raw(tmp_path: Path) -> tuple[Path, np.ndarray]:
    """A Weather2K data.npy, layout (station, 23, time); value = 1000*s + 10*f + t/100."""
    s, f, t = np.meshgrid(np.arange(N_STATION), np.arange(23), np.arange(N_TIME), indexing="ij")
    data = (1000.0 * s + 10.0 * f + t / 100.0).astype(np.float32)
    data[:, 0] = 30.0 + np.arange(N_STATION)[:, None]  # lat
    data[:, 1] = 110.0 + np.arange(N_STATION)[:, None]  # lon
    data[:, 2] = 100.0 * np.arange(N_STATION)[:, None]  # altitude
    data[2, 0:3, :5] = np.nan  # coordinates missing in the first hours: still found
    data[1, 4, 10] = np.nan  # a missing observation stays NaN
    path = tmp_path / "data.npy"
    np.save(path, data)
    return path, data


@pytest.fixture
def region(tmp_path: Path) -> tuple[Path, Path, np.ndarray, np.ndarray]:
    """A VN-Net region file (time=48, station=4, 23) and its lonlat (4, 2) as (lon, lat)."""
    rng = np.random.default_rng(0)
    data = rng.normal(size=(48, 4, 23)).astype(np.float32)
    data[:, :, 2] = np.array([10.0, 20.0, 30.0, 40.0])  # altitude
    lonlat = np.array([[118.0, 39.0], [119.5, 40.0], [121.0, 41.5], [122.9, 43.8]])
    path, ll_path = tmp_path / "small_weather2K_split4.npy", tmp_path / "lonlat_d4.npy"
    np.save(path, data)
    np.save(ll_path, lonlat)
    return path, ll_path, data, lonlat


@pytest.fixture
def cube(tmp_path: Path) -> tuple[Path, np.ndarray]:
    """A Himawari cube (time=10, H=16, W=16, C=6) in float16; row 0 = north."""
    rng = np.random.default_rng(1)
    data = (200.0 + 100.0 * rng.random((10, 16, 16, 6))).astype(np.float16)
    path = tmp_path / "H8_NE_16x16.npy"
    np.save(path, data)
    return path, data


def is_dask(da: xr.DataArray) -> bool:
    return isinstance(da.data, dsa.Array)


# --- Weather2K raw -----------------------------------------------------------------------------
def test_weather2k_values_coords_units(raw):
    path, data = raw
    ds = read_weather2k(path)
    assert dict(ds.sizes) == {"time": N_TIME, "station": N_STATION}
    assert len(WEATHER2K_FEATURES) == 23 and len(ds.data_vars) == 20
    assert list(ds.data_vars) == list(WEATHER2K_FEATURES[3:])
    assert all(is_dask(ds[v]) for v in ds.data_vars)
    assert ds.air_temperature.dims == ("time", "station")
    # station 3, feature 16 (wind_speed), hour 7 = 2017-01-01 07:00
    value = ds.wind_speed.sel(station="3", time="2017-01-01 07:00").values.item()
    assert value == pytest.approx(data[3, 16, 7]) == pytest.approx(3000 + 160 + 0.07)
    assert ds.visibility.isel(time=-1, station=4).values.item() == pytest.approx(data[4, 21, -1])
    assert np.isnan(ds.air_temperature.sel(station="1").isel(time=10).values.item())
    assert ds.air_temperature.attrs["units"] == "degC"
    assert ds.visibility.attrs["units"] == "m"
    assert ds.wind_speed.attrs["units"] == "m s-1"
    np.testing.assert_allclose(ds.lat, 30.0 + np.arange(N_STATION))
    np.testing.assert_allclose(ds.lon, 110.0 + np.arange(N_STATION))
    np.testing.assert_allclose(ds.elevation, 100.0 * np.arange(N_STATION))
    assert ds.station.values.tolist() == ["0", "1", "2", "3", "4"]
    assert ds.source_index.values.tolist() == list(range(N_STATION))
    assert ds.indexes["time"][0] == pd.Timestamp("2017-01-01 00:00")
    assert (np.diff(ds.time.values) == np.timedelta64(1, "h")).all()


def test_weather2k_subset_order_ids_and_start(raw, tmp_path):
    path, data = raw
    ids = tmp_path / "idx2stat.txt"
    ids.write_text("".join(f"{i} {54000 + i}\n" for i in range(N_STATION)))
    ds = read_weather2k(path, stations=[4, 1], station_ids_path=ids, start="2020-06-01 12:00")
    assert ds.station.values.tolist() == ["54004", "54001"]
    assert ds.source_index.values.tolist() == [4, 1]
    assert ds.lat.values.tolist() == [34.0, 31.0]
    assert ds.indexes["time"][0] == pd.Timestamp("2020-06-01 12:00")
    np.testing.assert_array_equal(ds.air_pressure.values, data[[4, 1], 3, :].T)
    # a timezone-aware start is converted to UTC
    ds = read_weather2k(path, start="2017-01-01 08:00+08:00")
    assert ds.indexes["time"][0] == pd.Timestamp("2017-01-01 00:00")


def test_weather2k_is_picklable_without_data(raw):
    path, data = raw
    ds = read_weather2k(path, stations=[2])
    back = pickle.loads(pickle.dumps(ds))
    np.testing.assert_array_equal(back.air_temperature.values[:, 0], data[2, 4])


def test_weather2k_errors(raw, tmp_path):
    path, data = raw
    with pytest.raises(FileNotFoundError):
        read_weather2k(tmp_path / "missing.npy")
    np.save(tmp_path / "two_d.npy", data[:, :, 0])
    with pytest.raises(ValueError, match=r"3-d array \(station, feature=23, time\)"):
        read_weather2k(tmp_path / "two_d.npy")
    np.save(tmp_path / "region_layout.npy", data.transpose(2, 0, 1))
    with pytest.raises(ValueError, match="read by read_vnnet_region"):
        read_weather2k(tmp_path / "region_layout.npy")
    np.save(tmp_path / "22.npy", data[:, :22])
    with pytest.raises(ValueError, match="expected 23 Weather2K features"):
        read_weather2k(tmp_path / "22.npy")
    truncated = tmp_path / "truncated.npy"
    truncated.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(ValueError, match=r"truncated\.npy: could not be read as a \.npy"):
        read_weather2k(truncated)
    garbage = tmp_path / "garbage.npy"
    garbage.write_bytes(b"this is not numpy")
    with pytest.raises(ValueError, match="garbage.npy"):
        read_weather2k(garbage)
    with pytest.raises(ValueError, match=r"outside 0\.\.4"):
        read_weather2k(path, stations=[0, 5])
    with pytest.raises(ValueError, match="repeated"):
        read_weather2k(path, stations=[1, 1])
    bad_ids = tmp_path / "idx2stat.txt"
    bad_ids.write_text("0 54000\n1\n")
    with pytest.raises(ValueError, match="expected 'index station_number'"):
        read_weather2k(path, station_ids_path=bad_ids)
    bad_ids.write_text("0 54000\n1 54001\n")
    with pytest.raises(ValueError, match=r"no station number for numpy indices \[2, 3, 4\]"):
        read_weather2k(path, station_ids_path=bad_ids)
    no_coords = data.copy()
    no_coords[3, 0] = np.nan
    np.save(tmp_path / "no_coords.npy", no_coords)
    with pytest.raises(ValueError, match=r"'lat' is missing \(NaN\) for stations \['3'\]"):
        read_weather2k(tmp_path / "no_coords.npy")


# --- VN-Net region ------------------------------------------------------------------------------
def test_vnnet_region(region):
    path, ll_path, data, lonlat = region
    ds = read_vnnet_region(path, ll_path, start="2019-09-02 00:00")
    assert dict(ds.sizes) == {"time": 48, "station": 4}
    assert all(is_dask(ds[v]) for v in ds.data_vars)
    assert ds.station.values.tolist() == ["0", "1", "2", "3"]
    np.testing.assert_allclose(ds.lon, lonlat[:, 0])
    np.testing.assert_allclose(ds.lat, lonlat[:, 1])
    np.testing.assert_allclose(ds.elevation, [10.0, 20.0, 30.0, 40.0])
    # hour 5, station 2, feature 8 (relative humidity)
    assert ds.relative_humidity.isel(time=5).sel(station="2").values.item() == data[5, 2, 8]
    np.testing.assert_array_equal(ds.visibility.values, data[:, :, 21])
    assert ds.relative_humidity.attrs["units"] == "%"
    assert ds.indexes["time"][0] == pd.Timestamp("2019-09-02")


def test_vnnet_region_errors(region, tmp_path):
    path, ll_path, data, lonlat = region
    np.save(tmp_path / "ll3.npy", lonlat[:3])
    with pytest.raises(ValueError, match="has 3 stations but .* has 4"):
        read_vnnet_region(path, tmp_path / "ll3.npy")
    np.save(tmp_path / "ll_t.npy", lonlat.T)
    with pytest.raises(ValueError, match=r"expected shape \(station, 2\)"):
        read_vnnet_region(path, tmp_path / "ll_t.npy")
    np.save(tmp_path / "r2.npy", data[:, :, 0])
    with pytest.raises(ValueError, match=r"3-d array \(time, station, feature=23\)"):
        read_vnnet_region(tmp_path / "r2.npy", ll_path)
    np.save(tmp_path / "r24.npy", np.concatenate([data, data[:, :, :1]], axis=2))
    with pytest.raises(ValueError, match="expected 23 Weather2K features.*got 24"):
        read_vnnet_region(tmp_path / "r24.npy", ll_path)
    np.save(tmp_path / "swapped.npy", lonlat[:, ::-1])
    with pytest.raises(ValueError, match="latitudes must be in"):
        read_vnnet_region(path, tmp_path / "swapped.npy")


# --- Himawari -----------------------------------------------------------------------------------
def test_himawari_layout_and_coords(cube):
    path, data = cube
    da = read_himawari(path, bbox=(30.0, 31.6, 100.0, 101.6), start="2017-01-01 01:00")
    assert da.dims == ("time", "channel", "lat", "lon")
    assert is_dask(da) and da.dtype == np.float16
    assert da.attrs["units"] == "K"
    assert da.channel.values.tolist() == list(range(6))
    # frame 3, row 0 (north), column 5, channel 2
    assert da.isel(time=3, lat=0, lon=5, channel=2).values.item() == data[3, 0, 5, 2]
    np.testing.assert_array_equal(da.isel(time=7).values, data[7].transpose(2, 0, 1))
    dlat = 1.6 / 16
    assert da.lat.values[0] == pytest.approx(31.6 - dlat / 2)  # row 0 = north
    assert (np.diff(da.lat) < 0).all() and (np.diff(da.lon) > 0).all()
    assert da.lon.values[0] == pytest.approx(100.0 + dlat / 2)
    assert da.indexes["time"][0] == pd.Timestamp("2017-01-01 01:00")
    named = read_himawari(path, region="se", channels=[f"tir{i}" for i in range(1, 7)])
    assert named.channel.values.tolist()[0] == "tir1"


def test_himawari_ne_preset_at_160px(tmp_path):
    path = tmp_path / "H8_NE_160x160_60.npy"
    np.save(path, np.zeros((2, 160, 160, 6), dtype=np.float16))
    da = read_himawari(path, region="NE")
    lat_min, lat_max, lon_min, lon_max = REGION_BOXES["NE"]
    np.testing.assert_allclose(np.diff(da.lat), -0.04, atol=1e-9)
    np.testing.assert_allclose(np.diff(da.lon), 0.04, atol=1e-9)
    assert da.lat.values[0] == pytest.approx(44.68) and da.lat.values[-1] == pytest.approx(38.32)
    assert da.lon.values[0] == pytest.approx(117.32) and da.lon.values[-1] == pytest.approx(123.68)


def test_himawari_errors(cube, tmp_path):
    path, data = cube
    with pytest.raises(ValueError, match="unknown region 'NW'"):
        read_himawari(path, region="NW")
    with pytest.raises(ValueError, match="exactly one of region"):
        read_himawari(path, region="NE", bbox=(1, 2, 3, 4))
    with pytest.raises(ValueError, match="exactly one of region"):
        read_himawari(path)
    with pytest.raises(ValueError, match="lat_min must be < lat_max"):
        read_himawari(path, bbox=(40.0, 40.0, 100.0, 110.0))
    np.save(tmp_path / "h3.npy", data[..., 0])
    with pytest.raises(ValueError, match=r"4-d array \(time, H, W, channel\)"):
        read_himawari(tmp_path / "h3.npy", region="NE")
    with pytest.raises(ValueError, match="expected 6 distinct names"):
        read_himawari(path, region="NE", channels=["a", "b"])
    truncated = tmp_path / "cut.npy"
    truncated.write_bytes(path.read_bytes()[:500])
    with pytest.raises(ValueError, match="cut.npy: could not be read"):
        read_himawari(truncated, region="NE")


# --- netCDF / zarr ------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_stations_round_trip(raw, tmp_path, suffix):
    path, data = raw
    ds = read_weather2k(path, stations=[3, 0])
    out = tmp_path / f"stations{suffix}"
    write_stations(ds, out)
    back = open_stations(out)
    assert all(is_dask(back[v]) for v in back.data_vars)
    assert back.station.values.tolist() == ["3", "0"]
    assert back.source_index.values.tolist() == [3, 0]
    assert back.air_temperature.attrs["units"] == "degC"
    assert back.lat.attrs["units"] == "degrees_north"
    xr.testing.assert_allclose(back.reset_coords(drop=False).load(),
                               ds.reset_coords(drop=False).load())
    assert back.indexes["time"].equals(ds.indexes["time"])


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_satellite_round_trip(cube, tmp_path, suffix):
    path, data = cube
    da = read_himawari(path, region="NE")
    out = tmp_path / f"sat{suffix}"
    write_satellite(da, out)
    back = open_satellite(out)
    assert is_dask(back) and back.dims == ("time", "channel", "lat", "lon")
    assert back.data.chunksize == (1, 6, 16, 16)  # one frame per chunk
    assert back.attrs["units"] == "K"
    np.testing.assert_array_equal(back.values.astype(np.float16), data.transpose(0, 3, 1, 2))
    np.testing.assert_allclose(back.lat, da.lat)
    if suffix == ".nc":
        import netCDF4

        with netCDF4.Dataset(out) as nc:
            assert nc[back.name].filters()["zlib"]
    else:
        assert back.dtype == np.float16


def test_open_errors(raw, tmp_path):
    path, _ = raw
    ds = read_weather2k(path)
    good = tmp_path / "good.nc"
    write_stations(ds, good)
    bad = tmp_path / "bad.nc"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    with pytest.raises(ValueError, match="bad.nc: could not be opened as a netCDF4 file"):
        open_stations(bad)
    with pytest.raises(ValueError, match="bad.nc: could not be opened as a netCDF4 file"):
        open_satellite(bad)
    junk = tmp_path / "junk.zarr"
    junk.mkdir()
    with pytest.raises(ValueError, match="junk.zarr: could not be opened as a zarr store"):
        open_satellite(junk)
    with pytest.raises(FileNotFoundError):
        open_stations(tmp_path / "missing.nc")
    with pytest.raises(ValueError, match="unknown file type '.h5'"):
        open_stations(tmp_path / "x.h5")


# --- CSV ----------------------------------------------------------------------------------------
STATIONS_CSV = (
    "station,lat,lon,elevation\nA01,40.0,116.0,50\nB02,41.0,117.5,120\nC03,39.5,118.0,10\n"
)


def write_csv(tmp_path: Path, observations: str, stations: str = STATIONS_CSV) -> tuple[Path, Path]:
    obs, table = tmp_path / "obs.csv", tmp_path / "stations.csv"
    obs.write_text(observations)
    table.write_text(stations)
    return obs, table


def test_csv_grid_gaps_and_timezones(tmp_path):
    obs, table = write_csv(tmp_path, (
        "time,station,air_temperature,soil_moisture\n"
        "2020-01-01 00:00,A01,1.5,0.2\n"
        "2020-01-01T09:00+08:00,B02,2.5,\n"  # = 01:00 UTC
        "2020-01-01 03:00,A01,-3.0,0.3\n"  # 02:00 missing for everyone -> NaN row
    ))
    ds = read_stations_csv(obs, table, units={"soil_moisture": "m3 m-3"})
    assert ds.indexes["time"].tolist() == list(pd.date_range("2020-01-01", periods=4, freq="h"))
    assert ds.station.values.tolist() == ["A01", "B02", "C03"]  # table order, C03 kept (all NaN)
    t = ds.air_temperature
    assert t.sel(station="B02", time="2020-01-01 01:00").values.item() == 2.5
    assert t.sel(station="A01", time="2020-01-01 03:00").values.item() == -3.0
    assert np.isnan(t.sel(time="2020-01-01 02:00")).all()
    assert np.isnan(t.sel(station="C03")).all()
    assert np.isnan(ds.soil_moisture.sel(station="B02", time="2020-01-01 01:00").values.item())
    assert t.attrs["units"] == "degC" and ds.soil_moisture.attrs["units"] == "m3 m-3"
    np.testing.assert_allclose(ds.elevation, [50, 120, 10])


def test_csv_units_override_converts(tmp_path):
    obs, table = write_csv(tmp_path, "time,station,air_temperature\n2020-01-01,A01,273.15\n")
    ds = read_stations_csv(obs, table, units={"air_temperature": "K"})
    assert ds.air_temperature.values[0, 0] == pytest.approx(0.0)


@pytest.mark.parametrize(("observations", "match"), [
    ("time,air_temperature\n2020-01-01,1\n", r"missing columns \['station'\]"),
    ("time,station,air_temperature\n2020-01-01,A01,1\n2020-01-01,A01,2\n",
     "duplicate rows for station 'A01'"),
    ("time,station,air_temperature\n2020-01-01,Z99,1\n", r"stations \['Z99'\] are not in"),
    ("time,station,air_temperature\n2020-01-01 00:00,A01,1\n2020-01-01 01:00,A01,1\n"
     "2020-01-01 02:30,A01,1\n", "not on a regular grid"),
    ("time,station,air_temperature\nyesterday,A01,1\n", "could not parse column 'time'"),
    ("time,station,air_temperature\n2020-01-01 00:00:00,A01,1\n2020-01-01 00:00:01,B02,1\n"
     "2020-03-01 00:00:00,A01,1\n", "would give a grid of"),
    ("time,station,soil_moisture\n2020-01-01,A01,1\n",
     r"variables \['soil_moisture'\] are not in the catalogue, so their units must be given"),
    ("time,station,air_temperature\n2020-01-01,A01,warm\n", "must be numeric"),
])
def test_csv_errors(tmp_path, observations, match):
    obs, table = write_csv(tmp_path, observations)
    with pytest.raises(ValueError, match=match):
        read_stations_csv(obs, table)


def test_csv_station_table_errors(tmp_path):
    obs, table = write_csv(tmp_path, "time,station,air_temperature\n2020-01-01,A01,1\n",
                           "station,lat,lon\nA01,40,116\n")
    with pytest.raises(ValueError, match=r"missing columns \['elevation'\]"):
        read_stations_csv(obs, table)
