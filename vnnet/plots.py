"""Figures for exploring station data, forecasts, errors, satellite frames and attention maps.

Every function returns a :class:`matplotlib.figure.Figure` drawn with the Agg canvas and
never touches pyplot's global state (no ``plt.show``, nothing left open), so figures can be
made in scripts, tests and worker processes alike; in a notebook the returned figure shows
itself, and :func:`save_figure` writes it as PNG.

Maps draw coastlines with cartopy when it is importable (``use_cartopy=None``, the default)
and fall back to plain longitude/latitude axes otherwise; ``use_cartopy=False`` forces the
plain axes. cartopy fetches its coastline data on first use, so offline machines may want
the plain axes.

Inputs follow the data contract of DESIGN.md: station datasets with dims ``(time, station)``
and ``lat``/``lon`` coordinates, forecasts with dims ``(init_time, lead_time, station)`` (as
written by :func:`vnnet.predict.forecasts_to_xarray`), satellite cubes with dims
``(time, channel, lat, lon)``. Bad inputs raise ``ValueError`` saying what is wrong.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeAlias

import matplotlib
import matplotlib.dates as mdates
import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Colormap
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

# Computed in vnnet.analysis (the analysis computes, this module draws); re-exported here.
from vnnet.analysis.attention import fusion_attention_maps
from vnnet.data.schema import validate_satellite

__all__ = [
    "attention_overlay",
    "error_by_lead",
    "forecast_vs_observation",
    "fusion_attention_maps",
    "satellite_frame",
    "save_figure",
    "station_error_map",
]

# Station positions: a station dataset (``station`` dim with ``lat``/``lon`` coords), a
# DataFrame with ``lat``/``lon`` columns (station ids in a ``station`` column or the index),
# or a mapping ``{station id: (lat, lon)}``.
StationsLike: TypeAlias = (
    xr.Dataset | xr.DataArray | pd.DataFrame | Mapping[str, tuple[float, float]]
)
TimeLike: TypeAlias = str | pd.Timestamp | np.datetime64

LON_LABEL = "longitude (deg E)"
LAT_LABEL = "latitude (deg N)"


# --------------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------------
def _new_figure(figsize: tuple[float, float]) -> Figure:
    """A figure with an Agg canvas and constrained layout, outside pyplot's figure manager."""
    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _as_numpy(values: Any) -> np.ndarray:
    """Array of floats from array-likes, including torch tensors (on any device)."""
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    return np.asarray(values, dtype=np.float64)


def _cartopy_crs(use_cartopy: bool | None) -> Any | None:
    """``cartopy.crs`` when maps should use cartopy, else None (imported lazily)."""
    if use_cartopy is False:
        return None
    try:
        import cartopy.crs as ccrs
    except ImportError:
        if use_cartopy:
            raise ValueError("use_cartopy=True but cartopy is not installed; install it or "
                             "pass use_cartopy=None for plain lat/lon axes") from None
        return None
    return ccrs


def _map_axes(fig: Figure, use_cartopy: bool | None) -> tuple[Axes, dict[str, Any]]:
    """One map axes: cartopy PlateCarree with coastlines, or plain labelled lon/lat axes.

    Returns the axes and the keyword arguments that place lon/lat data on it.
    """
    ccrs = _cartopy_crs(use_cartopy)
    if ccrs is None:
        ax = fig.add_subplot()
        ax.set_xlabel(LON_LABEL)
        ax.set_ylabel(LAT_LABEL)
        return ax, {}
    ax = fig.add_subplot(projection=ccrs.PlateCarree())
    ax.coastlines(resolution="50m", linewidth=0.8)
    ax.gridlines(draw_labels=True, linewidth=0.3, alpha=0.5)
    return ax, {"transform": ccrs.PlateCarree()}


def _set_map_extent(ax: Axes, lon: tuple[float, float], lat: tuple[float, float],
                    geo: dict[str, Any]) -> None:
    """Show ``lon``/``lat`` bounds; on plain axes, stretch so a degree of longitude and of
    latitude have their true length ratio at the box's middle latitude."""
    if geo:  # cartopy GeoAxes
        ax.set_extent([*lon, *lat], crs=geo["transform"])
        return
    ax.set_xlim(*lon)
    ax.set_ylim(*lat)
    mid = np.deg2rad(0.5 * (lat[0] + lat[1]))
    ax.set_aspect(1.0 / max(np.cos(mid), 0.1), adjustable="box")


def _padded(values: np.ndarray, fraction: float = 0.08, minimum: float = 0.1
            ) -> tuple[float, float]:
    lo, hi = float(np.min(values)), float(np.max(values))
    pad = max(fraction * (hi - lo), minimum)
    return lo - pad, hi + pad


def _station_table(stations: StationsLike) -> pd.DataFrame:
    """Station positions as a DataFrame indexed by station id (str), columns lat, lon."""
    if isinstance(stations, (xr.Dataset, xr.DataArray)):
        if "station" not in stations.dims:
            raise ValueError(f"stations: expected a 'station' dimension, got dims "
                             f"{tuple(stations.dims)}")
        missing = [c for c in ("station", "lat", "lon") if c not in stations.coords]
        if missing:
            raise ValueError(f"stations: coordinates {missing} are missing; expected station "
                             f"ids and lat/lon on the 'station' dimension")
        for c in ("lat", "lon"):
            if stations.coords[c].dims != ("station",):
                raise ValueError(f"stations: coordinate '{c}' must have dims ('station',), "
                                 f"got {stations.coords[c].dims}")
        ids = [str(s) for s in stations["station"].values]
        table = pd.DataFrame({"lat": stations["lat"].values, "lon": stations["lon"].values},
                             index=ids)
    elif isinstance(stations, pd.DataFrame):
        frame = stations.set_index("station") if "station" in stations.columns else stations
        missing = [c for c in ("lat", "lon") if c not in frame.columns]
        if missing:
            raise ValueError(f"stations: the DataFrame lacks columns {missing}; expected 'lat', "
                             f"'lon' and station ids in a 'station' column or the index")
        table = pd.DataFrame({"lat": frame["lat"].to_numpy(), "lon": frame["lon"].to_numpy()},
                             index=[str(s) for s in frame.index])
    elif isinstance(stations, Mapping):
        try:
            rows = {str(k): (float(v[0]), float(v[1])) for k, v in stations.items()}
        except (TypeError, ValueError, IndexError) as err:
            raise ValueError("stations: a mapping must be {station id: (lat, lon)}") from err
        table = pd.DataFrame.from_dict(rows, orient="index", columns=["lat", "lon"])
    else:
        raise ValueError(f"stations: expected an xarray Dataset/DataArray with a 'station' "
                         f"dimension, a DataFrame or a {{id: (lat, lon)}} mapping, got "
                         f"{type(stations).__name__}")
    if table.empty:
        raise ValueError("stations: no stations given")
    if table.index.has_duplicates:
        raise ValueError(f"stations: duplicated station ids "
                         f"{sorted(set(table.index[table.index.duplicated()]))[:5]}")
    table = table.astype(np.float64)
    if not np.isfinite(table.to_numpy()).all():
        raise ValueError("stations: lat/lon must be finite for every station")
    if (table["lat"].abs() > 90).any():
        raise ValueError("stations: latitudes must lie in [-90, 90] (are lat and lon swapped?)")
    return table


def _check_station(station: str, known: Sequence[str], where: str) -> str:
    station = str(station)
    if station not in known:
        shown = ", ".join(list(known)[:10]) + (", ..." if len(known) > 10 else "")
        raise ValueError(f"unknown station '{station}' in {where} (stations: {shown})")
    return station


def _draw_stations(ax: Axes, table: pd.DataFrame, geo: dict[str, Any], *, highlight: str | None,
                   label: bool) -> None:
    """Stations as markers (one collection; the ``highlight`` station as a second, a star)."""
    others = table.drop(index=highlight) if highlight is not None else table
    if not others.empty:
        ax.scatter(others["lon"], others["lat"], s=28, facecolors="white", edgecolors="black",
                   linewidths=1.0, zorder=3, label="stations", **geo)
    if highlight is not None:
        row = table.loc[highlight]
        ax.scatter([row["lon"]], [row["lat"]], s=180, marker="*", facecolors="cyan",
                   edgecolors="black", linewidths=1.0, zorder=4, label=highlight, **geo)
    if label:
        _label_stations(ax, table)


def _label_stations(ax: Axes, table: pd.DataFrame) -> None:
    # Data coordinates are lon/lat degrees on plain axes and on PlateCarree GeoAxes alike.
    for name, row in table.iterrows():
        ax.annotate(str(name), (row["lon"], row["lat"]), xytext=(4, 4),
                    textcoords="offset points", fontsize=8, zorder=5,
                    bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "alpha": 0.7,
                          "linewidth": 0})


def _grid_geometry(da: xr.DataArray, what: str) -> tuple[list[float], str]:
    """Image ``extent`` (left, right, bottom, top at the outer pixel edges) and ``origin`` of a
    regular lat/lon grid given by its pixel-centre coordinates.

    Row 0 is the first stored latitude: with latitude descending (north first) it is drawn at
    the top (``origin="upper"``), with latitude ascending at the bottom (``"lower"``), so north
    is always up.
    """
    axes = {}
    for name in ("lat", "lon"):
        if name not in da.coords or da.coords[name].dims != (name,):
            raise ValueError(f"{what}: needs a 1-D '{name}' coordinate of pixel centres")
        values = np.asarray(da.coords[name].values, dtype=np.float64)
        if values.size < 2:
            raise ValueError(f"{what}: at least 2 pixels are needed along '{name}'")
        steps = np.diff(values)
        if not ((steps > 0).all() or (steps < 0).all()):
            raise ValueError(f"{what}: coordinate '{name}' must be strictly monotonic")
        if not np.allclose(steps, steps[0], rtol=1e-3, atol=1e-9):
            raise ValueError(f"{what}: coordinate '{name}' must be a regular grid")
        axes[name] = values
    lat, lon = axes["lat"], axes["lon"]
    if lon[1] < lon[0]:
        raise ValueError(f"{what}: coordinate 'lon' must increase (west to east)")
    dlat, dlon = abs(lat[1] - lat[0]), lon[1] - lon[0]
    extent = [lon[0] - dlon / 2, lon[-1] + dlon / 2, lat.min() - dlat / 2, lat.max() + dlat / 2]
    return [float(e) for e in extent], ("upper" if lat[1] < lat[0] else "lower")


def _image_2d(da: xr.DataArray, what: str) -> xr.DataArray:
    if not isinstance(da, xr.DataArray):
        raise ValueError(f"{what}: expected an xarray.DataArray, got {type(da).__name__}")
    if set(da.dims) != {"lat", "lon"}:
        raise ValueError(f"{what}: dims must be ('lat', 'lon'), got {tuple(da.dims)}; select one "
                         f"map first, e.g. .sel(time=..., channel=...) or .mean('layer')")
    return da.transpose("lat", "lon")


def _colormap(name: str) -> Colormap:
    try:
        return matplotlib.colormaps[name]
    except KeyError:
        raise ValueError(f"unknown colour map {name!r}") from None


def _image_cmap(units: str | None) -> str:
    # Infrared brightness temperature: cold cloud tops white, as on weather-service images.
    return "gray_r" if units == "K" else "gray"


def _value_label(name: str, units: str | None) -> str:
    return f"{name} ({units})" if units else name


# --------------------------------------------------------------------------------------------
# Station error map
# --------------------------------------------------------------------------------------------
def _errors_per_station(errors: Any, ids: list[str]) -> tuple[np.ndarray, str | None]:
    """Error values in the order of ``ids`` (NaN where a station has none) and their units."""
    keys: list[str] | None = None
    units = None
    if isinstance(errors, xr.DataArray):
        if errors.dims != ("station",):
            raise ValueError(f"errors: a DataArray must have dims ('station',), got "
                             f"{errors.dims}; select one target first")
        units = errors.attrs.get("units")
        if "station" in errors.coords:
            keys = [str(s) for s in errors["station"].values]
        values = _as_numpy(errors.values)
    elif isinstance(errors, pd.Series):
        keys, values = [str(s) for s in errors.index], _as_numpy(errors.to_numpy())
    elif isinstance(errors, Mapping):
        keys = [str(k) for k in errors]
        values = np.array([float(_as_numpy(v)) for v in errors.values()])
    else:
        values = _as_numpy(errors)
        if values.ndim != 1:
            raise ValueError(f"errors: expected one value per station (1-D), got shape "
                             f"{values.shape}; for (station, target) errors pick a target, "
                             f"e.g. errors[:, 0]")
    if keys is None:
        if values.shape != (len(ids),):
            raise ValueError(f"errors: {values.size} values for {len(ids)} stations; give one "
                             f"per station in station order, or label them by station id")
        return values, units
    unknown = sorted(set(keys) - set(ids))
    if unknown:
        raise ValueError(f"errors: unknown station(s) {unknown[:5]}, not among the station "
                         f"positions given")
    return pd.Series(values, index=keys).reindex(ids).to_numpy(dtype=np.float64), units


def station_error_map(stations_or_coords: StationsLike, errors: Any, *,
                      error_name: str = "MAE", units: str | None = None,
                      title: str | None = None, label_stations: bool = False,
                      cmap: str = "viridis", vmin: float | None = None,
                      vmax: float | None = None, use_cartopy: bool | None = None,
                      figsize: tuple[float, float] = (6.0, 5.0)) -> Figure:
    """Stations on a map, coloured by one error value each.

    Args:
        stations_or_coords: station positions (see ``StationsLike``).
        errors: one value per station: a DataArray with dim ``station`` (its ``units``
            attribute is used), a Series or mapping keyed by station id, or a 1-D array /
            tensor in station order (e.g. one target column of
            :func:`vnnet.metrics.per_station_errors`). Stations without a value are drawn
            grey.
        error_name: what the values are, for the colour-bar label (e.g. ``"RMSE"``).
        units: units of the values (overrides a DataArray's ``units``); shown on the
            colour bar.
        label_stations: write each station id next to its marker.

    Returns a figure with the map axes and a colour-bar axes.
    """
    table = _station_table(stations_or_coords)
    values, found_units = _errors_per_station(errors, list(table.index))
    units = units or found_units
    if np.isnan(values).all():
        raise ValueError("errors: no finite error value for any station")

    fig = _new_figure(figsize)
    ax, geo = _map_axes(fig, use_cartopy)
    colours = _colormap(cmap).with_extremes(bad="lightgrey")
    points = ax.scatter(table["lon"], table["lat"], c=values, cmap=colours, vmin=vmin, vmax=vmax,
                        s=60, edgecolors="black", linewidths=0.6, plotnonfinite=True, zorder=3,
                        **geo)
    if label_stations:
        _label_stations(ax, table)
    _set_map_extent(ax, _padded(table["lon"].to_numpy()), _padded(table["lat"].to_numpy()), geo)
    fig.colorbar(points, ax=ax, label=_value_label(error_name, units), shrink=0.85)
    ax.set_title(title if title is not None else f"{error_name} per station")
    return fig


# --------------------------------------------------------------------------------------------
# Forecast trajectories against observations
# --------------------------------------------------------------------------------------------
def _require_variable(ds: Any, variable: str, dims: set[str], what: str) -> xr.DataArray:
    if not isinstance(ds, xr.Dataset):
        raise ValueError(f"{what}: expected an xarray.Dataset, got {type(ds).__name__}")
    if variable not in ds.data_vars:
        raise ValueError(f"{what}: no variable '{variable}' (variables: {list(ds.data_vars)})")
    da = ds[variable]
    if set(da.dims) != dims:
        raise ValueError(f"{what}: variable '{variable}' must have dims {sorted(dims)}, got "
                         f"{da.dims}")
    return da


def _pick_init_times(available: pd.DatetimeIndex, init_times: Any, limit: int
                     ) -> pd.DatetimeIndex:
    if init_times is None:
        if limit < 1:
            raise ValueError(f"max_init_times must be >= 1, got {limit}")
        if len(available) <= limit:
            return available
        picks = np.unique(np.linspace(0, len(available) - 1, limit).round().astype(int))
        return available[picks]
    if isinstance(init_times, (str, pd.Timestamp, np.datetime64)):
        init_times = [init_times]
    try:
        wanted = pd.DatetimeIndex(pd.to_datetime(list(init_times)))
    except (TypeError, ValueError) as err:
        raise ValueError(f"init_times: could not read {init_times!r} as times") from err
    if wanted.tz is not None:
        wanted = wanted.tz_convert("UTC").tz_localize(None)
    if len(wanted) == 0:
        raise ValueError("init_times: empty; pass None for evenly spaced init times")
    absent = wanted[available.get_indexer(wanted) < 0]
    if len(absent):
        raise ValueError(f"init_times: {[str(t) for t in absent[:3]]} not in the forecast "
                         f"(init times {available[0]} .. {available[-1]}, {len(available)})")
    return wanted


def forecast_vs_observation(forecast_ds: xr.Dataset, observations_ds: xr.Dataset,
                            station: str | Sequence[str], variable: str,
                            init_times: Sequence[TimeLike] | TimeLike | None = None, *,
                            max_init_times: int = 6,
                            figsize: tuple[float, float] | None = None) -> Figure:
    """The observed series and forecast trajectories at one station, or one panel per station.

    Args:
        forecast_ds: forecasts with dims ``(init_time, lead_time, station)`` (lead times as
            timedeltas), e.g. from :func:`vnnet.predict.forecasts_to_xarray`.
        observations_ds: a station dataset with dims ``(time, station)``.
        station: a station id, or several for stacked panels sharing the time axis.
        variable: a variable present in both datasets.
        init_times: the forecasts to draw; None picks ``max_init_times`` evenly spaced ones.

    Each trajectory is drawn at its valid times (init time + lead time); the observed line
    spans from one forecast length before the first drawn init time to the last valid time.
    Returns a figure with one axes per station.
    """
    fc = _require_variable(forecast_ds, variable, {"init_time", "lead_time", "station"},
                           "forecast_ds")
    obs = _require_variable(observations_ds, variable, {"time", "station"}, "observations_ds")
    for ds, name in ((forecast_ds, "init_time"), (forecast_ds, "lead_time"),
                     (observations_ds, "time")):
        if name not in ds.indexes:
            which = "forecast_ds" if ds is forecast_ds else "observations_ds"
            raise ValueError(f"{which}: coordinate '{name}' is missing")
    if not np.issubdtype(forecast_ds["lead_time"].dtype, np.timedelta64):
        raise ValueError(f"forecast_ds: 'lead_time' must hold timedeltas, got dtype "
                         f"{forecast_ds['lead_time'].dtype}")
    stations = [station] if isinstance(station, str) else list(station)
    if not stations:
        raise ValueError("station: give at least one station id")
    fc_ids = [str(s) for s in forecast_ds["station"].values]
    obs_ids = [str(s) for s in observations_ds["station"].values]
    stations = [_check_station(s, fc_ids, "forecast_ds") for s in stations]
    for s in stations:
        _check_station(s, obs_ids, "observations_ds")
    available = pd.DatetimeIndex(forecast_ds.indexes["init_time"])
    chosen = _pick_init_times(available, init_times, max_init_times)
    leads = pd.TimedeltaIndex(forecast_ds.indexes["lead_time"])
    units = fc.attrs.get("units") or obs.attrs.get("units")

    start, end = chosen.min() - leads.max(), chosen.max() + leads.max()
    obs_time = pd.DatetimeIndex(observations_ds.indexes["time"])
    window = (obs_time >= start) & (obs_time <= end)
    fc_rows = available.get_indexer(chosen)
    palette = _colormap("plasma")(np.linspace(0.05, 0.85, len(chosen)))

    fig = _new_figure(figsize or (8.0, 2.6 * len(stations) + 0.6))
    axes = fig.subplots(len(stations), 1, sharex=True, squeeze=False)[:, 0]
    for ax, name in zip(axes, stations, strict=True):
        obs_values = obs.isel(station=obs_ids.index(name)).transpose("time").values[window]
        ax.plot(obs_time[window], obs_values, color="black", linewidth=1.3, label="observed")
        traj = fc.isel(station=fc_ids.index(name)).transpose("init_time", "lead_time").values
        traj = traj[fc_rows]
        for init, values, colour in zip(chosen, traj, palette, strict=True):
            ax.plot(init + leads, values, color=colour, linewidth=1.0, marker=".",
                    markersize=3, label=f"forecast from {init:%Y-%m-%d %H:%M}")
        ax.set_title(f"station {name}")
        ax.set_ylabel(_value_label(variable, units))
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("time (UTC)")
    locator = mdates.AutoDateLocator()
    axes[-1].xaxis.set_major_locator(locator)
    axes[-1].xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    axes[0].legend(fontsize=7, loc="best")
    fig.suptitle(f"{variable}: observed and forecast")
    return fig


# --------------------------------------------------------------------------------------------
# Error by lead time
# --------------------------------------------------------------------------------------------
def _per_lead(name: str, result: Any, metric: str, target: str | None
              ) -> tuple[np.ndarray, np.ndarray]:
    """(leads, values) from a per-lead array or a metrics dict with ``..{metric}_h{k}`` keys."""
    if isinstance(result, Mapping):
        middle = f"{re.escape(target)}_" if target else ""
        pattern = re.compile(rf"(?:^|/){re.escape(metric)}_{middle}h(\d+)$")
        found: dict[int, float] = {}
        for key, value in result.items():
            match = pattern.search(str(key))
            if match is None:
                continue
            lead = int(match.group(1))
            if lead in found:
                raise ValueError(f"results['{name}']: several keys for lead {lead} (e.g. "
                                 f"'{key}'); pass the metrics of one split only")
            found[lead] = float(_as_numpy(value))
        if not found:
            wanted = f"'{metric}_{target + '_' if target else ''}h<k>'"
            raise ValueError(f"results['{name}']: no keys like {wanted} (optionally prefixed, "
                             f"e.g. 'test/'); keys: {list(result)[:8]}")
        leads = np.array(sorted(found))
        return leads, np.array([found[k] for k in leads])
    values = _as_numpy(result)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"results['{name}']: expected a 1-D array with one value per lead "
                         f"(lead 1 first) or a metrics dict, got shape {values.shape}")
    return np.arange(1, values.size + 1), values


def error_by_lead(results: Mapping[str, Any], metric: str = "mae", *,
                  target: str | None = None, units: str | None = None,
                  lead_unit: str = "h", title: str | None = None,
                  figsize: tuple[float, float] = (6.5, 4.0)) -> Figure:
    """One line per model: the error at each lead time.

    Args:
        results: model name -> either a 1-D array of per-lead errors (lead 1, 2, ...) or a
            metrics dict such as ``Trainer.test`` returns, with keys like ``"test/mae_h3"``
            (any ``prefix/`` allowed; the keys of :class:`vnnet.metrics.ForecastErrors`).
        metric: the metric to read from metrics dicts (``"mae"``, ``"rmse"``); also the y label.
        target: with several targets, read ``"{metric}_{target}_h{k}"`` keys.
        units: units of the errors for the y label.
        lead_unit: the unit of one lead step for the x label (hourly data: ``"h"``).
    """
    if not isinstance(results, Mapping) or not results:
        raise ValueError("results: expected a non-empty dict of model name -> per-lead errors")
    curves = {str(name): _per_lead(str(name), r, metric, target) for name, r in results.items()}

    fig = _new_figure(figsize)
    ax = fig.add_subplot()
    for name, (leads, values) in curves.items():
        ax.plot(leads, values, marker="o", markersize=4, label=name)
    ax.set_xlabel(f"lead time ({lead_unit})")
    ax.set_ylabel(_value_label(metric.upper(), units))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    what = f" of {target}" if target else ""
    ax.set_title(title if title is not None else f"{metric.upper()}{what} by lead time")
    return fig


# --------------------------------------------------------------------------------------------
# Satellite frames and attention maps
# --------------------------------------------------------------------------------------------
def _time_position(index: pd.DatetimeIndex, time: TimeLike | int) -> int:
    if isinstance(time, (int, np.integer)) and not isinstance(time, bool):
        if not -len(index) <= int(time) < len(index):
            raise ValueError(f"time: frame index {time} out of range for {len(index)} frames")
        return int(time) % len(index)
    try:
        stamp = pd.Timestamp(time)
    except (TypeError, ValueError) as err:
        raise ValueError(f"time: could not read {time!r} as a time or a frame index") from err
    if stamp.tz is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    position = int(index.get_indexer([stamp])[0])
    if position < 0:
        raise ValueError(f"time: {stamp} is not a satellite time ({index[0]} .. {index[-1]}, "
                         f"{len(index)} frames)")
    return position


def _channel_position(channels: np.ndarray, channel: str | int) -> int:
    labels = [str(c) for c in channels]
    if str(channel) in labels:
        return labels.index(str(channel))
    if isinstance(channel, (int, np.integer)) and not isinstance(channel, bool):
        if 0 <= int(channel) < len(labels):
            return int(channel)
    raise ValueError(f"channel: unknown channel {channel!r}; channels are {labels}")


def satellite_frame(satellite: xr.DataArray, time: TimeLike | int, channel: str | int,
                    stations: StationsLike | None = None, *, label_stations: bool = False,
                    cmap: str | None = None, vmin: float | None = None,
                    vmax: float | None = None, use_cartopy: bool | None = None,
                    figsize: tuple[float, float] = (6.0, 5.0)) -> Figure:
    """One satellite image (one time, one channel), north up, with the stations on it.

    Args:
        satellite: a cube with dims ``(time, channel, lat, lon)`` (lat descending or
            ascending; pixel-centre coordinates); only the chosen frame is loaded.
        time: a time present in the cube (str / Timestamp / datetime64) or a frame index.
        channel: a channel label (e.g. ``"ir1"``) or a channel index.
        stations: station positions to mark (see ``StationsLike``); optional.
        cmap: colour map; default grey with cold (K) values white.

    The image covers its pixel edges (``extent`` from the centres +- half a pixel). Returns a
    figure with the image axes and a colour-bar axes.
    """
    sat = validate_satellite(satellite)
    t = _time_position(pd.DatetimeIndex(sat.indexes["time"]), time)
    c = _channel_position(sat["channel"].values, channel)
    frame = sat.isel(time=t, channel=c)
    extent, origin = _grid_geometry(frame, "satellite")
    table = _station_table(stations) if stations is not None else None
    units = sat.attrs.get("units")

    fig = _new_figure(figsize)
    ax, geo = _map_axes(fig, use_cartopy)
    values = np.asarray(frame.values, dtype=np.float64)
    image = ax.imshow(values, origin=origin, extent=extent,
                      cmap=_colormap(cmap or _image_cmap(units)), vmin=vmin, vmax=vmax,
                      interpolation="nearest", **geo)
    if table is not None:
        _draw_stations(ax, table, geo, highlight=None, label=label_stations)
    _set_map_extent(ax, (extent[0], extent[1]), (extent[2], extent[3]), geo)
    name = sat.attrs.get("long_name") or sat.name or "value"
    fig.colorbar(image, ax=ax, label=_value_label(str(name), units), shrink=0.85)
    stamp = pd.Timestamp(sat.indexes["time"][t])
    missing = " (missing frame)" if np.isnan(values).all() else ""
    ax.set_title(f"{sat['channel'].values[c]}, {stamp:%Y-%m-%d %H:%M} UTC{missing}")
    return fig


def attention_overlay(attention_map: xr.DataArray, stations: StationsLike,
                      station: str | None = None, frame: xr.DataArray | None = None, *,
                      alpha: float = 0.6, cmap: str = "magma", label_stations: bool = False,
                      use_cartopy: bool | None = None,
                      figsize: tuple[float, float] = (6.0, 5.0)) -> Figure:
    """An attention map over the image grid, with the stations marked.

    Args:
        attention_map: weights with dims ``(lat, lon)`` on a regular grid of pixel centres
            (e.g. the encoder's feature grid), or ``(station, lat, lon)`` with ``station``
            choosing the map (see :func:`vnnet.analysis.fusion_attention`).
        stations: station positions (see ``StationsLike``).
        station: the attending station, drawn as a star; the others as circles.
        frame: an optional satellite image with dims ``(lat, lon)`` drawn underneath (its own
            grid may be finer than the attention grid); the attention is then drawn with
            transparency ``alpha``.

    Returns a figure with the map axes and a colour-bar axes for the attention weights.
    """
    if not isinstance(attention_map, xr.DataArray):
        raise ValueError(f"attention_map: expected an xarray.DataArray, got "
                         f"{type(attention_map).__name__}")
    table = _station_table(stations)
    if station is not None:
        station = _check_station(station, list(table.index), "stations")
    if "station" in attention_map.dims:
        if station is None:
            raise ValueError("attention_map has a 'station' dimension: pass station=... to "
                             "choose whose attention to draw")
        ids = [str(s) for s in attention_map["station"].values] \
            if "station" in attention_map.coords else []
        attention_map = attention_map.isel(station=ids.index(
            _check_station(station, ids, "attention_map")))
    attention = _image_2d(attention_map, "attention_map")
    extent, origin = _grid_geometry(attention, "attention_map")
    if not 0.0 < alpha <= 1.0:
        raise ValueError(f"alpha must be in (0, 1], got {alpha}")

    fig = _new_figure(figsize)
    ax, geo = _map_axes(fig, use_cartopy)
    if frame is not None:
        background = _image_2d(frame, "frame")
        bg_extent, bg_origin = _grid_geometry(background, "frame")
        units = background.attrs.get("units")
        ax.imshow(np.asarray(background.values, dtype=np.float64), origin=bg_origin,
                  extent=bg_extent, cmap=_image_cmap(units), interpolation="nearest", **geo)
    weights = ax.imshow(np.asarray(attention.values, dtype=np.float64), origin=origin,
                        extent=extent, cmap=_colormap(cmap), interpolation="nearest",
                        alpha=alpha if frame is not None else None, **geo)
    _draw_stations(ax, table, geo, highlight=station, label=label_stations)
    _set_map_extent(ax, (extent[0], extent[1]), (extent[2], extent[3]), geo)
    fig.colorbar(weights, ax=ax, label="attention weight", shrink=0.85)
    ax.set_title(f"attention of station {station}" if station is not None else "attention map")
    return fig


# --------------------------------------------------------------------------------------------
# Saving
# --------------------------------------------------------------------------------------------
def save_figure(fig: Figure, path: str | os.PathLike, dpi: int = 150) -> Path:
    """Write ``fig`` as a PNG file (parent folders created) and return its path.

    A path without a suffix gets ``.png``; any other suffix raises ``ValueError``.
    """
    if not isinstance(fig, Figure):
        raise ValueError(f"fig: expected a matplotlib Figure, got {type(fig).__name__}")
    path = Path(path)
    if path.suffix == "":
        path = path.with_suffix(".png")
    if path.suffix.lower() != ".png":
        raise ValueError(f"save_figure writes PNG; got a '{path.suffix}' path: {path}")
    if dpi <= 0:
        raise ValueError(f"dpi must be positive, got {dpi}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, format="png")
    return path
