"""Forecast errors as xarray: the input of the vision-contribution and skill analyses.

VN-Net (arXiv 2404.16037) quantifies what the satellite images add by comparing masked MAEs
of models that differ only in their inputs (VN-Net, N-Net, the noise-image control). Those
comparisons need the errors of every model at the same points: :func:`absolute_errors`
turns a forecast Dataset (``Forecaster.predict_xarray``, dims ``(init_time, lead_time,
station)``) into absolute errors against observations, NaN where nothing was observed, and
:func:`common_support` keeps only the points every model has, so MAEs are compared on the
same set.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import xarray as xr

__all__ = ["ERROR_DIMS", "absolute_errors", "common_support"]

ERROR_DIMS = ("init_time", "lead_time", "station")
"""The dims of a forecast or error Dataset, in this order."""


def _check_forecast(ds: xr.Dataset, what: str) -> None:
    if not isinstance(ds, xr.Dataset):
        raise ValueError(f"{what}: expected an xarray.Dataset, got {type(ds).__name__}")
    for name in ERROR_DIMS:
        if name not in ds.indexes:
            raise ValueError(f"{what}: coordinate '{name}' is missing; expected dims "
                             f"{ERROR_DIMS} as written by Forecaster.predict_xarray")
    for name, da in ds.data_vars.items():
        if set(da.dims) != set(ERROR_DIMS):
            raise ValueError(f"{what}: variable '{name}' must have dims {ERROR_DIMS}, got "
                             f"{da.dims}")
    if not ds.data_vars:
        raise ValueError(f"{what}: no data variables")


def _valid_times(forecast_ds: xr.Dataset) -> np.ndarray:
    """(init_time, lead_time) datetime64 valid times: the ``valid_time`` coordinate or
    ``init_time + lead_time``."""
    if "valid_time" in forecast_ds.coords:
        return forecast_ds["valid_time"].transpose("init_time", "lead_time").values
    lead = forecast_ds["lead_time"].values
    if not np.issubdtype(lead.dtype, np.timedelta64):
        raise ValueError(f"forecast_ds: without a 'valid_time' coordinate, 'lead_time' must "
                         f"hold timedeltas, got dtype {lead.dtype}")
    return forecast_ds["init_time"].values[:, None] + lead[None, :]


def absolute_errors(forecast_ds: xr.Dataset, observations_ds: xr.Dataset,
                    variables: Sequence[str] | None = None) -> xr.Dataset:
    """``|forecast - observation|`` per (init_time, lead_time, station), NaN where unobserved.

    Args:
        forecast_ds: forecasts with dims ``(init_time, lead_time, station)`` in physical
            units, as ``Forecaster.predict_xarray`` returns; each forecast is matched to the
            observation at its ``valid_time`` (or ``init_time + lead_time``).
        observations_ds: a station dataset with dims ``(time, station)`` holding the same
            variables and (at least) the forecast's stations.
        variables: the variables to score (default: every forecast variable).

    A valid time outside the observed period, or a NaN observation, gives NaN (a masked
    point, never a sentinel); so does a NaN forecast. Returns a Dataset with the forecast's
    dims and coordinates and one error variable per forecast variable (same units).
    """
    _check_forecast(forecast_ds, "forecast_ds")
    if not isinstance(observations_ds, xr.Dataset):
        raise ValueError(f"observations_ds: expected an xarray.Dataset, got "
                         f"{type(observations_ds).__name__}")
    for name in ("time", "station"):
        if name not in observations_ds.indexes:
            raise ValueError(f"observations_ds: coordinate '{name}' is missing; expected a "
                             f"station dataset with dims (time, station)")
    names = list(forecast_ds.data_vars) if variables is None else list(variables)
    missing = [v for v in names if v not in forecast_ds.data_vars]
    if missing:
        raise ValueError(f"forecast_ds: no variable(s) {missing}")
    missing = [v for v in names if v not in observations_ds.data_vars]
    if missing:
        raise ValueError(f"observations_ds: no variable(s) {missing} to score the forecast "
                         f"against (variables: {list(observations_ds.data_vars)})")
    obs_times = pd.DatetimeIndex(observations_ds.indexes["time"])
    if not obs_times.is_unique:
        raise ValueError("observations_ds: duplicated times")
    fc_ids = [str(s) for s in forecast_ds["station"].values]
    obs_ids = pd.Index([str(s) for s in observations_ds["station"].values])
    station_index = obs_ids.get_indexer(fc_ids)
    if (station_index < 0).any():
        absent = [s for s, i in zip(fc_ids, station_index, strict=True) if i < 0]
        raise ValueError(f"observations_ds: no observations for forecast station(s) "
                         f"{absent[:5]}")
    valid = _valid_times(forecast_ds)
    time_index = obs_times.get_indexer(pd.DatetimeIndex(valid.ravel()))
    observed_time = time_index >= 0
    shape = (forecast_ds.sizes["init_time"], forecast_ds.sizes["lead_time"], len(fc_ids))

    data_vars = {}
    for name in names:
        obs_da = observations_ds[name]
        if set(obs_da.dims) != {"time", "station"}:
            raise ValueError(f"observations_ds: variable '{name}' must have dims "
                             f"('time', 'station'), got {obs_da.dims}")
        obs = np.asarray(obs_da.transpose("time", "station").values, dtype=np.float64)
        truth = np.full((valid.size, len(fc_ids)), np.nan)
        truth[observed_time] = obs[time_index[observed_time]][:, station_index]
        forecast = np.asarray(forecast_ds[name].transpose(*ERROR_DIMS).values, dtype=np.float64)
        error = np.abs(forecast - truth.reshape(shape))
        units = forecast_ds[name].attrs.get("units") or obs_da.attrs.get("units")
        attrs = {"long_name": f"absolute error of {name}", "units": units or "1"}
        data_vars[name] = (ERROR_DIMS, error, attrs)
    coords = {k: v for k, v in forecast_ds.coords.items()
              if set(v.dims) <= set(ERROR_DIMS)}
    return xr.Dataset(data_vars, coords=coords,
                      attrs={"title": "absolute forecast errors", "comment":
                             "NaN where the observation at the valid time is missing"})


def _as_errors(errors: xr.Dataset | xr.DataArray, name: str) -> xr.Dataset:
    if isinstance(errors, xr.DataArray):
        errors = errors.to_dataset(name=errors.name or "error")
    _check_forecast(errors, f"errors_by_model['{name}']")
    return errors.transpose(*ERROR_DIMS, ...)


def common_support(errors_by_model: Mapping[str, xr.Dataset | xr.DataArray]
                   ) -> dict[str, xr.Dataset]:
    """The models' error Datasets on their shared points, NaN wherever any model has NaN.

    Init times, lead times and stations are intersected (inner join) and sorted by init
    time; only variables every model has are kept. An error DataArray counts as a one-
    variable Dataset named after it. MAEs computed on the result compare the models on
    exactly the same (init_time, lead_time, station) points.
    """
    if not isinstance(errors_by_model, Mapping) or not errors_by_model:
        raise ValueError("errors_by_model: expected a non-empty dict of model name -> errors")
    datasets = {str(k): _as_errors(v, str(k)) for k, v in errors_by_model.items()}
    names = [set(ds.data_vars) for ds in datasets.values()]
    first = list(next(iter(datasets.values())).data_vars)
    shared = [v for v in first if all(v in n for n in names)]
    if not shared:
        raise ValueError(f"errors_by_model: the models share no variable "
                         f"({ {k: list(ds.data_vars) for k, ds in datasets.items()} })")
    aligned = xr.align(*(ds[shared] for ds in datasets.values()), join="inner")
    if any(aligned[0].sizes[d] == 0 for d in ERROR_DIMS):
        raise ValueError("errors_by_model: the models share no (init_time, lead_time, "
                         "station) point")
    out = {}
    for name in shared:
        observed = np.logical_and.reduce([np.isfinite(ds[name].values) for ds in aligned])
        for key, ds in zip(datasets, aligned, strict=True):
            out.setdefault(key, {})[name] = ds[name].where(observed)
    return {key: xr.Dataset(variables).sortby("init_time") for key, variables in out.items()}
