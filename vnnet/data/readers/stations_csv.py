"""CSV station tables -> the station contract (dims ``(time, station)``).

Two files: long-format observations (one row per station and time, one column per variable;
``.csv`` or compressed ``.csv.gz`` / ``.bz2`` / ``.zip`` / ``.xz``) and a station table (one row
per station). Column names, the variable each column holds and its source units are arguments,
so a file as published (e.g. Met Éireann's, wind in knots) is read without pandas code; values
are converted to the catalogue's units with ``pint`` (:mod:`vnnet.data.units`).
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from vnnet.data.readers.files import PathLike, finish_stations
from vnnet.data.schema import CATALOGUE, STATION_COORDS
from vnnet.data.units import convert_units

__all__ = ["read_stations_csv"]


def _read_csv(path: PathLike, what: str, id_column: str) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such {what} file: {path}")
    try:
        # Station ids as text: "00123" must not become 123. Compression from the suffix.
        return pd.read_csv(path, dtype={id_column: str}, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError,
            EOFError, zlib.error) as err:  # OSError/EOFError/zlib: a bad or truncated archive
        raise ValueError(f"{path}: could not be read as CSV ({err})") from err


def _require_columns(df: pd.DataFrame, columns: tuple[str, ...], path: PathLike) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}; expected columns {list(columns)}, "
                         f"got {list(df.columns)}")


def _numeric(column: pd.Series, name: str, path: PathLike) -> np.ndarray:
    values = pd.to_numeric(column, errors="coerce")
    bad = values.isna() & column.notna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise ValueError(f"{path}: column '{name}' must be numeric (empty for missing); "
                         f"got {column.iloc[row]!r} at data row {row + 1}")
    return values.to_numpy(dtype=np.float64)


def _parse_times(column: pd.Series, path: PathLike) -> pd.DatetimeIndex:
    try:
        times = pd.to_datetime(column, utc=True, format="ISO8601")
    except (ValueError, TypeError) as err:
        raise ValueError(f"{path}: could not parse column '{column.name}' ({err}); expected ISO "
                         f"8601 times such as '2017-01-01 00:00' (UTC), '2017-01-01T00:00:00Z' "
                         f"or '2017-01-01T08:00+08:00'") from err
    if times.isna().any():
        row = int(np.flatnonzero(times.isna().to_numpy())[0])
        raise ValueError(f"{path}: column '{column.name}' is empty at data row {row + 1}; every "
                         f"observation needs a time")
    # ns resolution: the grid arithmetic below works on integer nanoseconds (asi8).
    return pd.DatetimeIndex(times).tz_localize(None).as_unit("ns")


def _regular_grid(times: pd.DatetimeIndex, path: PathLike) -> pd.DatetimeIndex:
    unique = times.unique().sort_values()
    if len(unique) == 1:
        return unique
    step = int(np.diff(unique.asi8).min())
    offsets = unique.asi8 - unique.asi8[0]
    off_grid = offsets % step != 0
    if off_grid.any():
        bad = unique[int(np.flatnonzero(off_grid)[0])]
        raise ValueError(f"{path}: times are not on a regular grid; step {pd.Timedelta(step)} "
                         f"(the smallest gap) from {unique[0]} expected, but {bad} is off it")
    n_grid = int(offsets[-1] // step) + 1
    # A stray time a few seconds off would make the grid step seconds over years of data.
    if n_grid > max(10 * len(unique), 1_000_000):
        raise ValueError(f"{path}: the smallest gap between times, {pd.Timedelta(step)}, would "
                         f"give a grid of {n_grid} times for {len(unique)} distinct observation "
                         f"times; is a time slightly off the intended step?")
    return pd.date_range(unique[0], unique[-1], freq=pd.Timedelta(step)).as_unit("ns")


def _variable_columns(columns: list[str], variables: Mapping[str, str] | None,
                      reserved: tuple[str, str], path: PathLike) -> dict[str, str]:
    """Source column -> variable name: the mapping given, or every other column as named."""
    if variables is None:
        mapping = {c: c for c in columns if c not in reserved}
        if not mapping:
            raise ValueError(f"{path}: no variable columns; expected '{reserved[0]}', "
                             f"'{reserved[1]}' and one column per variable")
        return mapping
    mapping = {str(k): str(v) for k, v in variables.items()}
    if not mapping:
        raise ValueError("variables is empty; map at least one column to a variable name, "
                         "e.g. {'temp': 'air_temperature'}")
    absent = [c for c in mapping if c not in columns]
    if absent:
        raise ValueError(f"{path}: columns {absent} named in variables are not in the file; "
                         f"columns present: {columns}")
    clash = [c for c in mapping if c in reserved]
    if clash:
        raise ValueError(f"variables maps {clash}, the time / station id column; map only "
                         f"value columns")
    names = list(mapping.values())
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"variables maps several columns to {twice}; each variable needs one "
                         f"column")
    return mapping


def _column_units(units: Mapping[str, str], mapping: dict[str, str],
                  path: PathLike) -> dict[str, str]:
    """Source column -> source unit, from ``units`` keyed by column or by variable name."""
    column_of = {name: column for column, name in mapping.items()}
    out: dict[str, str] = {}
    unused = []
    for key, unit in units.items():
        column = key if key in mapping else column_of.get(key)
        if column is None:
            unused.append(key)
        elif out.setdefault(column, str(unit)) != str(unit):
            raise ValueError(f"units for column '{column}' given twice, as '{out[column]}' and "
                             f"'{unit}' (by column and by variable name)")
    if unused:
        read = list(mapping) if all(c == v for c, v in mapping.items()) else \
            [f"{c} -> {v}" for c, v in mapping.items()]
        raise ValueError(f"units given for {sorted(unused)}, which are not columns of {path} "
                         f"(columns: {read})")
    return out


def _station_table(table: pd.DataFrame, path: PathLike, station_column: str,
                   station_columns: Mapping[str, str] | None,
                   taken: set[str]) -> tuple[pd.Series, dict[str, tuple[str, np.ndarray]]]:
    """Station ids and the station coordinates (lat/lon/elevation, then the table's others)."""
    source = {name: name for name in STATION_COORDS}  # contract coordinate -> table column
    for column, name in (station_columns or {}).items():
        if name not in STATION_COORDS:
            raise ValueError(f"station_columns maps '{column}' to '{name}'; expected one of "
                             f"{list(STATION_COORDS)}")
        source[name] = str(column)
    _require_columns(table, (station_column, *source.values()), path)
    if table[station_column].isna().any():
        raise ValueError(f"{path}: column '{station_column}' has empty ids")
    ids = table[station_column].astype(str).str.strip()
    if ids.duplicated().any():
        raise ValueError(f"{path}: duplicated station ids {sorted(set(ids[ids.duplicated()]))[:5]}")
    coords = {name: ("station", _numeric(table[col], col, path)) for name, col in source.items()}
    # Other columns (e.g. county) ride along as station coordinates unless the name is taken.
    used = {station_column, *source.values()}
    for column in table.columns:
        name = str(column)
        if name in used or name in taken or name in coords:
            continue
        values = table[column]
        if pd.api.types.is_numeric_dtype(values):
            coords[name] = ("station", values.to_numpy(dtype=np.float64))
        else:
            coords[name] = ("station", values.fillna("").astype(str).str.strip().to_numpy(str))
    return ids, coords


def read_stations_csv(observations_path: PathLike, stations_path: PathLike, *,
                      units: Mapping[str, str] | None = None,
                      variables: Mapping[str, str] | None = None,
                      time_column: str = "time", station_column: str = "station",
                      station_columns: Mapping[str, str] | None = None) -> xr.Dataset:
    """Read station observations from a CSV pair into a dataset with dims ``(time, station)``.

    ``observations_path``: long format (``.csv``, or compressed such as ``.csv.gz``), one row per
    station and time: a time column (``time_column``), a station id column
    (``station_column``) and one column per variable; empty cells (and NA, NaN) are missing
    (NaN). Times are ISO 8601, taken as UTC when they carry no offset and converted to UTC
    when they do (``Z`` or ``+08:00``).

    ``stations_path``: one row per station with the id column ``station_column`` and
    latitude, longitude (degrees) and elevation (m) in columns ``lat``, ``lon``, ``elevation``,
    or as renamed by ``station_columns`` (table column -> ``lat`` / ``lon`` / ``elevation``,
    e.g. ``{"latitude": "lat", "longitude": "lon", "height": "elevation"}``). Its order is the
    station order; stations without observations are kept (all NaN). The table's other columns
    (e.g. ``county``) are kept as coordinates on ``station``: numeric ones as float (NaN when
    empty), others as str ("" when empty); one named like a variable or ``time`` is left out.

    ``variables``: source column -> variable name (CF standard names as in
    ``schema.CATALOGUE``, e.g. ``{"wdsp": "wind_speed"}``). With a mapping, only the mapped
    columns are read (the others are left out); a mapped column absent from the file is an
    error. Without one, every column other than the time and id columns is a variable named
    as the column.

    ``units``: the source unit of a column, keyed by column or by variable name (e.g.
    ``{"wdsp": "knots", "temp": "degF"}``). Catalogue variables are converted to the
    catalogue's units with ``pint`` (knots, mph, km/h -> m s-1; degF, K -> degC; Pa -> hPa;
    km -> m; fractions -> %; offsets handled), the source unit kept in the attribute
    ``converted_from_units``; without a unit they are taken to be in the catalogue's units
    already. Any other variable keeps the unit given, which it must have. An unknown unit, or
    one that measures something else (knots for a temperature), is a ``ValueError`` naming the
    column and both units. Values are not otherwise changed: e.g. a direction of 0 with a
    speed of 0 (how Met Éireann marks calm) stays 0.

    The time axis is the regular grid spanned by the observations with the smallest gap
    between distinct times as step; grid times without observations are NaN rows. A renamed
    column keeps its source name in the variable's ``source_column`` attribute.
    """
    obs = _read_csv(observations_path, "observations", station_column)
    table = _read_csv(stations_path, "station table", station_column)
    _require_columns(obs, (time_column, station_column), observations_path)
    if obs.empty:
        raise ValueError(f"{observations_path}: no observations (the file has a header only)")
    columns = [str(c) for c in obs.columns]
    mapping = _variable_columns(columns, variables, (time_column, station_column),
                                observations_path)
    column_units = _column_units(units or {}, mapping, observations_path)
    no_units = [v for c, v in mapping.items() if v not in CATALOGUE and c not in column_units]
    if no_units:
        raise ValueError(f"{observations_path}: variables {no_units} are not in the catalogue, so "
                         f"their units must be given, e.g. units={{'{no_units[0]}': '...'}}")
    table_ids, coords = _station_table(table, stations_path, station_column, station_columns,
                                       taken={"time", "station", *mapping.values()})

    # Observations: where each row goes on the (time, station) grid.
    if obs[station_column].isna().any():
        raise ValueError(f"{observations_path}: column '{station_column}' has empty ids")
    obs_ids = obs[station_column].astype(str).str.strip()
    unknown = sorted(set(obs_ids) - set(table_ids))
    if unknown:
        raise ValueError(f"{observations_path}: stations {unknown[:5]} are not in the station "
                         f"table {stations_path}")
    times = _parse_times(obs[time_column], observations_path)
    keys = pd.DataFrame({"time": times, "station": obs_ids.to_numpy()})
    dup = keys.duplicated()
    if dup.any():
        row = int(np.flatnonzero(dup.to_numpy())[0])
        raise ValueError(f"{observations_path}: duplicate rows for station "
                         f"'{keys.station.iloc[row]}' at {keys.time.iloc[row]}; expected one row "
                         f"per (time, station)")
    grid = _regular_grid(times, observations_path)
    t_idx = grid.get_indexer(times)
    s_idx = pd.Index(table_ids).get_indexer(obs_ids)

    data_vars = {}
    for column, name in mapping.items():
        values = _numeric(obs[column], column, observations_path)
        attrs = {"units": column_units.get(column, "")}
        if name in CATALOGUE:
            target = CATALOGUE[name].units
            given = column_units.get(column, target)
            try:
                converted = convert_units(values, given, target)
            except ValueError as err:
                raise ValueError(f"{observations_path}: column '{column}' ({name}): {err}") \
                    from None
            attrs = {"units": target}
            if converted is not values:  # a real conversion, not another spelling of target
                attrs["converted_from_units"] = given
            values = converted
        if column != name:
            attrs["source_column"] = column
        grid_values = np.full((len(grid), len(table_ids)), np.nan)
        grid_values[t_idx, s_idx] = values
        data_vars[name] = (("time", "station"), grid_values, attrs)
    ds = xr.Dataset(
        data_vars,
        coords={"time": grid.values, "station": table_ids.to_numpy(dtype=str), **coords},
        attrs={"source": f"CSV: {Path(observations_path).name} + {Path(stations_path).name}"},
    )
    return finish_stations(ds)
