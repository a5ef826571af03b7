"""Readers for Weather2K station data (VNNET-SPEC.md 1.1 and 1.2).

Two on-disk layouts, both with the 23 Weather2K features in file order
(:data:`WEATHER2K_FEATURES`):

- the raw Weather2K-R ``data.npy``: ``(station, feature=23, time)``, hourly;
- a VN-Net processed region file ``small_weather2K_split{60,96,139}.npy``:
  ``(time, station, feature=23)`` with a ``lonlat_*.npy`` of shape ``(station, 2)`` holding
  (lon, lat) per station.

Both return a station dataset with dims ``(time, station)`` (see :mod:`vnnet.data.schema`)
whose variables are dask arrays over a memory map: nothing is read until values are used.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from vnnet.data.readers.files import (
    LazyNpy,
    PathLike,
    block_length,
    finish_stations,
    hourly_times,
)
from vnnet.data.schema import CATALOGUE

__all__ = ["WEATHER2K_FEATURES", "read_vnnet_region", "read_weather2k"]

#: The 23 Weather2K features in file order (index -> name). The first three are station
#: constants and become the coordinates ``lat``, ``lon`` and ``elevation``; the other 20 are
#: ``schema.CATALOGUE`` variables.
WEATHER2K_FEATURES: tuple[str, ...] = (
    "lat",
    "lon",
    "altitude",
    "air_pressure",
    "air_temperature",
    "air_temperature_max",
    "air_temperature_min",
    "dew_point_temperature",
    "relative_humidity",
    "water_vapor_partial_pressure_in_air",
    "precipitation_amount",
    "precipitation_amount_3h",
    "precipitation_amount_6h",
    "precipitation_amount_12h",
    "precipitation_amount_24h",
    "wind_from_direction",
    "wind_speed",
    "wind_from_direction_max",
    "wind_speed_max",
    "surface_temperature",
    "visibility_1min",
    "visibility",
    "vertical_visibility",
)
N_FEATURES = len(WEATHER2K_FEATURES)
_COORD_FEATURES = 3  # lat, lon, altitude
# Station constants are read from the first steps of the record (robust to a few gaps).
_COORD_STEPS = 48


def _variable_attrs(name: str) -> dict[str, str]:
    var = CATALOGUE[name]
    attrs = {"units": var.units, "long_name": var.long_name}
    if var.standard_name:
        attrs["standard_name"] = var.standard_name
    return attrs


def _station_constants(
    read: Callable[[slice, np.ndarray], np.ndarray], n_stations: int, n_time: int
) -> np.ndarray:
    """Per-station constants as the median of their finite values over the first hours.

    ``read(time_slice, rows) -> (len(rows), k, steps)``. Where the first ``_COORD_STEPS``
    hours hold no finite value, later spans (growing 4x) are scanned until one is found, so a
    station that starts late still gets its coordinates; NaN remains only where a constant is
    never observed (the validator then names the station).
    """
    values = _nanmedian(read(slice(0, _COORD_STEPS), np.arange(n_stations)))
    t0, span = _COORD_STEPS, _COORD_STEPS
    while t0 < n_time and not np.isfinite(values).all():
        span *= 4
        rows = np.flatnonzero(~np.isfinite(values).all(axis=1))  # only the stations lacking one
        found = _nanmedian(read(slice(t0, t0 + span), rows))
        values[rows] = np.where(np.isfinite(values[rows]), values[rows], found)
        t0 += span
    return values


def _nanmedian(block: np.ndarray) -> np.ndarray:
    out = np.full(block.shape[:2], np.nan)
    finite = np.isfinite(block).any(axis=2)
    if finite.any():
        out[finite] = np.nanmedian(block[finite].astype(np.float64), axis=-1)
    return out


def _check_ndim(shape: tuple[int, ...], ndim: int, layout: str, path: PathLike) -> None:
    if len(shape) != ndim:
        raise ValueError(f"{path}: expected a {ndim}-d array {layout}, got shape {shape}")


def _check_features(n: int, layout: str, path: PathLike, hint: str = "") -> None:
    if n != N_FEATURES:
        if n == 13:
            hint = ("; the 13-feature, 3-hourly Hugging Face release of Weather2K lacks "
                    "visibility and is not supported")
        raise ValueError(f"{path}: expected {N_FEATURES} Weather2K features in layout {layout}, "
                         f"got {n}{hint}")


def _read_station_ids(path: PathLike, n_stations: int) -> dict[int, str]:
    """Parse ``idx2stat.txt``: one "numpy_index station_number" pair per line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such station-id file: {path}")
    mapping: dict[int, str] = {}
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        parts = line.replace(",", " ").split()
        if not parts or parts[0].startswith("#"):
            continue
        if len(parts) != 2 or not parts[0].lstrip("-").isdigit():
            raise ValueError(f"{path}:{lineno}: expected 'index station_number', got {line!r}")
        index = int(parts[0])
        if not 0 <= index < n_stations:
            raise ValueError(f"{path}:{lineno}: index {index} is outside 0..{n_stations - 1} "
                             f"(the data file has {n_stations} stations); wrong file?")
        if index in mapping:
            raise ValueError(f"{path}:{lineno}: index {index} is listed twice")
        mapping[index] = parts[1]
    numbers = pd.Index(list(mapping.values()))
    if numbers.has_duplicates:
        raise ValueError(f"{path}: station numbers {sorted(set(numbers[numbers.duplicated()]))[:5]}"
                         f" are given for more than one index")
    return mapping


def _select(stations: Sequence[int] | None, n_stations: int) -> np.ndarray:
    if stations is None:
        return np.arange(n_stations)
    index = np.asarray(stations)
    if index.ndim != 1 or index.size == 0 or not np.issubdtype(index.dtype, np.integer):
        raise ValueError(f"stations: expected a non-empty list of integer numpy indices, got "
                         f"{stations!r}")
    bad = index[(index < 0) | (index >= n_stations)]
    if bad.size:
        raise ValueError(f"stations: indices {bad[:5].tolist()} are outside 0..{n_stations - 1}")
    dup = pd.Index(index)
    if dup.has_duplicates:
        raise ValueError(f"stations: indices {sorted(set(dup[dup.duplicated()]))[:5]} are "
                         f"repeated")
    return index.astype(np.int64)


def read_weather2k(
    path: PathLike,
    *,
    start: str | pd.Timestamp = "2017-01-01 00:00",
    stations: Sequence[int] | None = None,
    station_ids_path: PathLike | None = None,
) -> xr.Dataset:
    """Read the raw Weather2K ``data.npy`` of layout ``(station, feature=23, time)``.

    Returns a station dataset with dims ``(time, station)``: hourly UTC times from ``start``;
    coordinates ``lat``, ``lon``, ``elevation`` (features 0-2, median of their finite values
    over the first 48 hours) and ``source_index`` (the numpy station index); the other 20
    features as dask-backed variables named as in :data:`WEATHER2K_FEATURES` with catalogue
    units. The file is memory-mapped, never read whole.

    ``stations``: numpy station indices to keep, in the order given. Station ids are the
    numpy indices as text, or the original station numbers from ``station_ids_path``
    (Weather2K's ``idx2stat.txt``: one "index station_number" pair per line).
    """
    layout = "(station, feature=23, time)"
    source = LazyNpy(path)
    _check_ndim(source.shape, 3, layout, path)
    n_stations, n_features, n_time = source.shape
    _check_features(n_features, layout, path,
                    f" (shape {source.shape}; a VN-Net region file (time, station, 23) is "
                    f"read by read_vnnet_region)" if source.shape[2] == N_FEATURES else "")
    index = _select(stations, n_stations)
    if station_ids_path is not None:
        mapping = _read_station_ids(station_ids_path, n_stations)
        missing = [int(i) for i in index if int(i) not in mapping]
        if missing:
            raise ValueError(f"{station_ids_path}: no station number for numpy indices "
                             f"{missing[:5]}")
        ids = np.array([mapping[int(i)] for i in index], dtype=str)
    else:
        ids = index.astype(str)

    # Blocks: the selected stations x one feature x a span of hours. Each station's row of a
    # feature is contiguous on disk, so a block reads one run of t_block values per station;
    # the selection happens inside the reader, so unselected stations are never read.
    selected = source if stations is None else source.take(index)
    t_block = block_length(len(index) * source.dtype.itemsize, n_time)
    array = selected.to_dask((len(index), 1, t_block))

    # Small eager read of the station constants (a few hundred bytes per station).
    constants = _station_constants(
        lambda span, rows: selected[rows, :_COORD_FEATURES, span], len(index), n_time)

    times = hourly_times(start, n_time)
    data_vars = {
        name: (("time", "station"), array[:, f, :].T, _variable_attrs(name))
        for f, name in enumerate(WEATHER2K_FEATURES)
        if f >= _COORD_FEATURES
    }
    ds = xr.Dataset(
        data_vars,
        coords={
            "time": times.values,
            "station": ids,
            "lat": ("station", constants[:, 0]),
            "lon": ("station", constants[:, 1]),
            "elevation": ("station", constants[:, 2]),
            "source_index": ("station", index,
                             {"long_name": "station index in the Weather2K data.npy"}),
        },
        attrs={"source": f"Weather2K data.npy {layout}", "source_file": str(Path(path))},
    )
    try:
        return finish_stations(ds)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err


def read_vnnet_region(
    path: PathLike,
    lonlat_path: PathLike,
    *,
    start: str | pd.Timestamp = "2017-01-01 00:00",
) -> xr.Dataset:
    """Read a VN-Net processed region file of layout ``(time, station, feature=23)``.

    ``lonlat_path`` is the matching ``lonlat_*.npy`` of shape ``(station, 2)`` holding
    (lon, lat) per station, in station order. Returns a station dataset with dims
    ``(time, station)``: hourly UTC times from ``start``, station ids ``"0".."N-1"``,
    ``lat``/``lon`` from the lonlat file, ``elevation`` from feature 2, and the 20 Weather2K
    variables as dask arrays over a memory map of ``path``.
    """
    layout = "(time, station, feature=23)"
    source = LazyNpy(path)
    _check_ndim(source.shape, 3, layout, path)
    n_time, n_stations, n_features = source.shape
    _check_features(n_features, layout, path,
                    f" (shape {source.shape}; a raw Weather2K data.npy (station, 23, time) is "
                    f"read by read_weather2k)" if source.shape[1] == N_FEATURES else "")

    lonlat = np.array(LazyNpy(lonlat_path)[...], dtype=np.float64)
    if lonlat.ndim != 2 or lonlat.shape[1] != 2:
        raise ValueError(f"{lonlat_path}: expected shape (station, 2) holding (lon, lat), got "
                         f"{lonlat.shape}")
    if lonlat.shape[0] != n_stations:
        raise ValueError(f"{lonlat_path}: has {lonlat.shape[0]} stations but {path} has "
                         f"{n_stations}; are they from the same region?")

    # Blocks: a span of hours x all stations x one feature; sized by the bytes a block spans
    # on disk (features are interleaved), not by the values it returns.
    t_block = block_length(n_stations * n_features * source.dtype.itemsize, n_time)
    array = source.to_dask((t_block, n_stations, 1))

    elevation = _station_constants(
        lambda span, rows: source[span, rows, 2:3].transpose(1, 2, 0), n_stations, n_time
    )[:, 0]

    data_vars = {
        name: (("time", "station"), array[:, :, f], _variable_attrs(name))
        for f, name in enumerate(WEATHER2K_FEATURES)
        if f >= _COORD_FEATURES
    }
    ds = xr.Dataset(
        data_vars,
        coords={
            "time": hourly_times(start, n_time).values,
            "station": np.arange(n_stations).astype(str),
            "lat": ("station", lonlat[:, 1]),
            "lon": ("station", lonlat[:, 0]),
            "elevation": ("station", elevation),
        },
        attrs={"source": f"VN-Net region file {layout}", "source_file": str(Path(path))},
    )
    try:
        return finish_stations(ds)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err

