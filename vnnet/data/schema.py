"""The xarray data contract (DESIGN.md, "Data contract") and its validators.

Stations: an ``xarray.Dataset`` with dims ``(time, station)``; coords ``time`` (UTC
datetime64, regular, increasing), ``station`` (str, unique), ``lat``/``lon`` (deg) and
``elevation`` (m) on ``station``; numeric data variables with a ``units`` attribute,
named by CF standard names where one exists. Missing values are NaN.

Satellite: an ``xarray.DataArray`` with dims ``(time, channel, lat, lon)`` on a regular
lat/lon grid (lat ascending or descending, lon ascending), physical values, NaN for missing
pixels, an all-NaN frame for a missing frame.

The validators return a normalised copy (dims transposed to the canonical order, station
ids as str, coordinates as float64, known unit aliases converted) and raise ``ValueError``
naming the problem otherwise. They never drop or reorder data silently.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

STATION_DIMS = ("time", "station")
SATELLITE_DIMS = ("time", "channel", "lat", "lon")
STATION_COORDS = ("lat", "lon", "elevation")
#: Units a satellite cube may carry: brightness temperature, reflectance or radiance.
SATELLITE_UNITS = ("K", "kelvin", "1", "%", "percent", "fraction", "W m-2 sr-1 um-1")


@dataclass(frozen=True)
class Variable:
    """A station variable of the catalogue: canonical name, units, CF standard name."""

    name: str
    units: str
    standard_name: str | None
    long_name: str
    valid_min: float | None = None
    valid_max: float | None = None


_CATALOGUE = [
    Variable("air_pressure", "hPa", "air_pressure", "station air pressure", 300.0, 1100.0),
    Variable("air_pressure_at_mean_sea_level", "hPa", "air_pressure_at_mean_sea_level",
             "mean sea-level pressure", 850.0, 1100.0),
    Variable("air_temperature", "degC", "air_temperature", "air temperature", -90.0, 65.0),
    Variable("air_temperature_max", "degC", "air_temperature", "maximum air temperature",
             -90.0, 65.0),
    Variable("air_temperature_min", "degC", "air_temperature", "minimum air temperature",
             -90.0, 65.0),
    Variable("dew_point_temperature", "degC", "dew_point_temperature", "dew-point temperature",
             -100.0, 50.0),
    Variable("relative_humidity", "%", "relative_humidity", "relative humidity", 0.0, 100.5),
    Variable("water_vapor_partial_pressure_in_air", "hPa", "water_vapor_partial_pressure_in_air",
             "water-vapour pressure", 0.0, 120.0),
    Variable("precipitation_amount", "mm", "precipitation_amount", "1-hour precipitation",
             0.0, None),
    Variable("precipitation_amount_3h", "mm", "precipitation_amount", "3-hour precipitation",
             0.0, None),
    Variable("precipitation_amount_6h", "mm", "precipitation_amount", "6-hour precipitation",
             0.0, None),
    Variable("precipitation_amount_12h", "mm", "precipitation_amount", "12-hour precipitation",
             0.0, None),
    Variable("precipitation_amount_24h", "mm", "precipitation_amount", "24-hour precipitation",
             0.0, None),
    Variable("wind_from_direction", "degree", "wind_from_direction", "wind direction",
             0.0, 360.0),
    Variable("wind_speed", "m s-1", "wind_speed", "wind speed", 0.0, 120.0),
    Variable("wind_from_direction_max", "degree", "wind_from_direction",
             "direction of the maximum wind", 0.0, 360.0),
    Variable("wind_speed_max", "m s-1", "wind_speed", "maximum wind speed", 0.0, 120.0),
    Variable("surface_temperature", "degC", "surface_temperature", "land-surface temperature",
             -90.0, 90.0),
    Variable("visibility_1min", "m", "visibility_in_air", "1-minute horizontal visibility",
             0.0, None),
    Variable("visibility", "m", "visibility_in_air", "10-minute horizontal visibility",
             0.0, None),
    Variable("vertical_visibility", "m", None, "vertical visibility", 0.0, None),
]
CATALOGUE: dict[str, Variable] = {v.name: v for v in _CATALOGUE}

# Unit spellings that mean the same thing as the catalogue's unit (no conversion needed).
_SAME_UNITS = {
    "degC": {"degC", "°C", "C", "celsius", "degree_Celsius", "degrees_Celsius", "deg_C"},
    "%": {"%", "percent"},
    "hPa": {"hPa", "mbar", "mb", "millibar"},
    "m s-1": {"m s-1", "m/s", "m s**-1", "meter second-1", "m.s-1"},
    "degree": {"degree", "degrees", "deg", "°", "degrees_from_north"},
    "mm": {"mm", "kg m-2", "millimeter"},
    "m": {"m", "meter", "metre", "meters", "metres"},
}
# Unit spellings that convert linearly to the catalogue's unit: value * scale + offset.
_CONVERSIONS = {
    "degC": {"K": (1.0, -273.15), "kelvin": (1.0, -273.15)},
    "%": {"1": (100.0, 0.0), "fraction": (100.0, 0.0)},
    "hPa": {"Pa": (0.01, 0.0), "kPa": (10.0, 0.0)},
    "m": {"km": (1000.0, 0.0)},
    "mm": {"m": (1000.0, 0.0), "cm": (10.0, 0.0)},
}


def _as_utc_naive(index: pd.Index, what: str) -> pd.DatetimeIndex:
    if not isinstance(index, pd.DatetimeIndex):
        raise ValueError(f"{what}: coordinate 'time' must hold datetimes, got dtype {index.dtype}")
    if index.tz is not None:
        index = index.tz_convert("UTC").tz_localize(None)
    return index


def check_time(index: pd.Index, what: str, *, regular: bool) -> pd.DatetimeIndex:
    """Check a time index: datetimes, strictly increasing, no duplicates, optionally regular."""
    index = _as_utc_naive(index, what).as_unit("ns")
    if len(index) == 0:
        raise ValueError(f"{what}: coordinate 'time' is empty")
    if index.hasnans:
        raise ValueError(f"{what}: coordinate 'time' contains NaT")
    if index.has_duplicates:
        dup = index[index.duplicated()][0]
        raise ValueError(f"{what}: coordinate 'time' has duplicate value {dup}")
    if not index.is_monotonic_increasing:
        bad = int(np.flatnonzero(np.diff(index.asi8) < 0)[0])
        raise ValueError(
            f"{what}: coordinate 'time' must be increasing; {index[bad + 1]} follows {index[bad]}"
        )
    if regular and len(index) > 2:
        steps = np.diff(index.asi8)
        if not (steps == steps[0]).all():
            bad = int(np.flatnonzero(steps != steps[0])[0])
            raise ValueError(
                f"{what}: coordinate 'time' must be regular; step {pd.Timedelta(steps[0])} "
                f"expected, got {pd.Timedelta(steps[bad])} between {index[bad]} and "
                f"{index[bad + 1]} (reindex to a regular grid and leave gaps as NaN)"
            )
    return index


def _require_dims(obj: xr.DataArray | xr.Dataset, dims: tuple[str, ...], what: str) -> None:
    have = tuple(obj.dims)
    missing = [d for d in dims if d not in have]
    extra = [d for d in have if d not in dims]
    if missing or extra:
        raise ValueError(
            f"{what}: dims must be {dims}, got {have}"
            + (f" (missing {missing})" if missing else "")
            + (f" (unexpected {extra})" if extra else "")
        )


def _station_coord(ds: xr.Dataset, name: str) -> np.ndarray:
    if name not in ds.coords:
        raise ValueError(
            f"stations: coordinate '{name}' is missing; expected a float coordinate on 'station' "
            f"(lat/lon in degrees, elevation in metres)"
        )
    coord = ds.coords[name]
    if coord.dims != ("station",):
        raise ValueError(f"stations: coordinate '{name}' must have dims ('station',), got "
                         f"{coord.dims}")
    values = np.asarray(coord.values, dtype=np.float64)
    if not np.isfinite(values).all():
        bad = ds.station.values[~np.isfinite(values)][:5].tolist()
        raise ValueError(f"stations: coordinate '{name}' is missing (NaN) for stations {bad}")
    return values


def check_lat_lon(lat: np.ndarray, lon: np.ndarray, what: str) -> None:
    """Raise if latitudes are outside [-90, 90] or longitudes outside [-180, 360]."""
    if (np.abs(lat) > 90).any():
        raise ValueError(f"{what}: latitudes must be in [-90, 90] degrees, got {lat.min()}.."
                         f"{lat.max()} (are lat and lon swapped?)")
    if (lon < -180).any() or (lon > 360).any():
        raise ValueError(f"{what}: longitudes must be in [-180, 360] degrees, got {lon.min()}.."
                         f"{lon.max()}")


def _normalise_units(da: xr.DataArray, name: str) -> xr.DataArray:
    units = da.attrs.get("units")
    if units is None:
        raise ValueError(f"stations: variable '{name}' has no 'units' attribute")
    var = CATALOGUE.get(name)
    if var is None:
        return da
    attrs = {**da.attrs, "units": var.units, "long_name": da.attrs.get("long_name", var.long_name)}
    if var.standard_name:
        attrs.setdefault("standard_name", var.standard_name)
    if units in _SAME_UNITS.get(var.units, {var.units}):
        return da.assign_attrs(attrs)
    conversion = _CONVERSIONS.get(var.units, {}).get(units)
    if conversion is None:
        raise ValueError(
            f"stations: variable '{name}' has units '{units}', expected '{var.units}' "
            f"(or one of {sorted(_CONVERSIONS.get(var.units, {}))} to convert)"
        )
    scale, offset = conversion
    attrs["converted_from_units"] = units
    return (da * scale + offset).assign_attrs(attrs)


def validate_stations(ds: xr.Dataset) -> xr.Dataset:
    """Check a station dataset against the contract and return a normalised copy.

    Raises ``ValueError`` naming the first problem found: wrong type or dims, a missing
    ``lat``/``lon``/``elevation`` coordinate, out-of-range coordinates, duplicate station
    ids, an irregular / non-increasing / duplicated ``time`` coordinate, a non-numeric
    variable, a variable without ``units``, unknown units for a catalogue variable, infinite
    values, or an all-NaN variable (value checks run on in-memory data; dask-backed or lazily
    opened variables stay lazy and are checked when loaded). Known unit aliases (K, Pa, km,
    ...) are converted to the catalogue's units; the original is kept in
    ``converted_from_units``.
    """
    if isinstance(ds, xr.DataArray):
        raise ValueError("stations: expected an xarray.Dataset with one variable per quantity, "
                         "got a DataArray (use da.to_dataset(name=...))")
    if not isinstance(ds, xr.Dataset):
        raise ValueError(f"stations: expected an xarray.Dataset, got {type(ds).__name__}")
    _require_dims(ds, STATION_DIMS, "stations")
    if not ds.data_vars:
        raise ValueError("stations: the dataset has no data variables")
    if ds.sizes["station"] == 0:
        raise ValueError("stations: the dataset has no stations (dimension 'station' has size 0)")
    if "time" not in ds.indexes:
        raise ValueError("stations: coordinate 'time' is missing; expected UTC datetimes on "
                         "dimension 'time'")
    time = check_time(ds.indexes["time"], "stations", regular=True)
    if "station" not in ds.coords:
        raise ValueError("stations: coordinate 'station' (station ids) is missing")
    ids = pd.Index([str(s) for s in ds.station.values], dtype=object)
    if ids.has_duplicates:
        raise ValueError(f"stations: station ids must be unique; duplicated: "
                         f"{sorted(set(ids[ids.duplicated()]))[:5]}")
    lat, lon, elevation = (_station_coord(ds, c) for c in STATION_COORDS)
    check_lat_lon(lat, lon, "stations")

    out = xr.Dataset(
        coords={"time": time.values, "station": ids.values, "lat": ("station", lat),
                "lon": ("station", lon), "elevation": ("station", elevation)},
        attrs=dict(ds.attrs),
    )
    for name, coord in ds.coords.items():  # keep extra coordinates and coordinate attributes
        if name in out.coords and name not in ("time", "station"):
            out[name].attrs.update(coord.attrs)
        elif name not in out.coords and set(coord.dims) <= {"station"}:
            out = out.assign_coords({name: (coord.dims, coord.values, coord.attrs)})
    for name, da in ds.data_vars.items():
        if set(da.dims) != set(STATION_DIMS):
            raise ValueError(f"stations: variable '{name}' must have dims {STATION_DIMS}, got "
                             f"{da.dims}")
        if not np.issubdtype(da.dtype, np.number) or np.issubdtype(da.dtype, np.complexfloating):
            raise ValueError(f"stations: variable '{name}' must be numeric, got dtype {da.dtype}")
        da = da.transpose(*STATION_DIMS)
        if not np.issubdtype(da.dtype, np.floating):
            da = da.astype(np.float32)
        da = _normalise_units(da, str(name))
        if not is_lazy(da):
            check_values(da, f"stations: variable '{name}'")
        out[name] = (STATION_DIMS, da.data, da.attrs)
    return out


def is_lazy(da: xr.DataArray) -> bool:
    """True when the values are not in memory yet (dask-backed or a lazily opened file)."""
    return da.chunks is not None or not da._in_memory


def check_values(da: xr.DataArray, what: str) -> None:
    """Raise if the values contain infinities or are entirely NaN (missing data is NaN)."""
    values = np.asarray(da.values)
    if np.isinf(values).any():
        raise ValueError(f"{what} contains infinite values; mark missing data as NaN")
    if np.isnan(values).all():
        raise ValueError(f"{what} is entirely NaN")


def validate_satellite(da: xr.DataArray | xr.Dataset) -> xr.DataArray:
    """Check a satellite image cube against the contract and return a normalised view.

    Accepts a DataArray, or a Dataset with exactly one data variable. Requires dims
    ``(time, channel, lat, lon)`` (any order; transposed lazily), an increasing unique
    ``time``, a ``channel`` coordinate (added as 0..C-1 if absent), regular 1-D ``lat``
    (ascending or descending) and ``lon`` (ascending) coordinates, and a ``units`` attribute
    from :data:`SATELLITE_UNITS`. Pixel values of lazy (memory-mapped, dask, zarr) cubes are
    not read, so they stay lazy; in-memory cubes are checked for infinite values and for
    being entirely NaN.
    """
    if isinstance(da, xr.Dataset):
        if len(da.data_vars) != 1:
            raise ValueError(f"satellite: a Dataset must hold exactly one image variable, got "
                             f"{list(da.data_vars)}")
        da = da[next(iter(da.data_vars))]
    if not isinstance(da, xr.DataArray):
        raise ValueError(f"satellite: expected an xarray.DataArray, got {type(da).__name__}")
    _require_dims(da, SATELLITE_DIMS, "satellite")
    da = da.transpose(*SATELLITE_DIMS)
    if "time" not in da.indexes:
        raise ValueError("satellite: coordinate 'time' is missing")
    time = check_time(da.indexes["time"], "satellite", regular=False)
    if not np.issubdtype(da.dtype, np.number):
        raise ValueError(f"satellite: values must be numeric, got dtype {da.dtype}")
    if "units" not in da.attrs:
        raise ValueError("satellite: the image array has no 'units' attribute (expected 'K' for "
                         "brightness temperature or '1' for reflectance)")
    if da.attrs["units"] not in SATELLITE_UNITS:
        raise ValueError(f"satellite: unknown units {da.attrs['units']!r}; expected one of "
                         f"{list(SATELLITE_UNITS)} (brightness temperature in K, reflectance as "
                         f"'1' or '%', radiance); convert the values first")
    coords = {"time": time.values}
    for axis in ("lat", "lon"):
        if axis not in da.coords:
            raise ValueError(f"satellite: coordinate '{axis}' is missing; expected 1-D pixel "
                             f"centres in degrees")
        values = np.asarray(da.coords[axis].values, dtype=np.float64)
        if values.size < 2:
            raise ValueError(f"satellite: at least 2 pixels are needed along '{axis}'")
        steps = np.diff(values)
        if axis == "lon" and (steps <= 0).any():
            raise ValueError("satellite: coordinate 'lon' must be increasing (west to east)")
        if not ((steps > 0).all() or (steps < 0).all()):
            raise ValueError(f"satellite: coordinate '{axis}' must be monotonic")
        if not np.allclose(steps, steps[0], rtol=1e-3, atol=1e-6):
            raise ValueError(f"satellite: coordinate '{axis}' must be a regular grid; steps range "
                             f"{steps.min():.5f}..{steps.max():.5f} degrees")
        coords[axis] = (axis, values, da.coords[axis].attrs)
    check_lat_lon(coords["lat"][1], coords["lon"][1], "satellite")
    if "channel" not in da.coords:
        coords["channel"] = np.arange(da.sizes["channel"])
    if not is_lazy(da):
        _check_frames(da)
    return da.assign_coords(coords)


def _check_frames(da: xr.DataArray, block: int = 64) -> None:
    """In-memory cubes: raise on infinite pixels or an entirely NaN cube (frame blocks, so no
    cube-sized temporary is made)."""
    data = np.asarray(da.data)
    observed = False
    for start in range(0, data.shape[0], block):
        values = data[start:start + block]
        if np.isinf(values).any():
            frame = start + int(np.flatnonzero(np.isinf(values).any(axis=(1, 2, 3)))[0])
            when = pd.Timestamp(da.time.values[frame])
            raise ValueError(f"satellite: frame {frame} ({when}) contains infinite values; mark "
                             f"missing pixels as NaN")
        observed = observed or bool(np.isfinite(values).any())
    if not observed:
        raise ValueError("satellite: the image cube is entirely NaN (every frame missing)")


def describe_stations(ds: xr.Dataset) -> str:
    """A one-paragraph human summary of a station dataset (sizes, period, missing share)."""
    time = ds.indexes["time"]
    step = pd.Timedelta(time[1] - time[0]) if len(time) > 1 else "n/a"
    parts = [f"{ds.sizes['station']} stations x {ds.sizes['time']} times "
             f"({time[0]} .. {time[-1]}, step {step})"]
    for name, da in ds.data_vars.items():
        missing = float(da.isnull().mean())  # reduces chunk by chunk on lazy data
        parts.append(f"  {name} [{da.attrs.get('units', '?')}]: {missing:.1%} missing")
    return "\n".join(parts)
