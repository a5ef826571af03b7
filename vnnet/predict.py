"""Forecasts to xarray / netCDF: dims (init_time, lead_time, station), physical units, CF."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
import torch
import xarray as xr
from lightning.pytorch.callbacks import BasePredictionWriter

import vnnet
from vnnet.data.schema import CATALOGUE


def forecasts_to_xarray(forecast: np.ndarray, init_times: pd.DatetimeIndex,
                        description: dict[str, Any]) -> xr.Dataset:
    """Wrap (init_time, lead, station, target) forecasts in physical units as a Dataset.

    ``init_time`` is the last observed hour of each window; ``lead_time`` is 1..n_pred steps
    after it; ``valid_time`` (init_time, lead_time) is their sum.
    """
    n_pred, targets = description["n_pred"], description["target_variables"]
    forecast = np.asarray(forecast, dtype=np.float32).reshape(
        len(init_times), n_pred, len(description["station_ids"]), len(targets))
    step = pd.Timedelta(description["time_step"])
    leads = pd.to_timedelta(np.arange(1, n_pred + 1) * step.value, unit="ns")
    init = pd.DatetimeIndex(init_times)
    valid = init.values[:, None] + leads.values[None, :]
    units = description.get("units", {})
    data_vars = {}
    for j, name in enumerate(targets):
        attrs = {"units": units.get(name) or "1", "long_name": f"forecast of {name}"}
        if name in CATALOGUE and CATALOGUE[name].standard_name:
            attrs["standard_name"] = CATALOGUE[name].standard_name
        data_vars[name] = (("init_time", "lead_time", "station"), forecast[..., j], attrs)
    return xr.Dataset(
        data_vars,
        coords={
            "init_time": ("init_time", init.values, {"long_name": "forecast reference time",
                                                     "standard_name": "forecast_reference_time"}),
            "lead_time": ("lead_time", leads.values, {"long_name": "forecast period",
                                                      "standard_name": "forecast_period"}),
            "station": ("station", np.asarray(description["station_ids"], dtype=object)),
            "lat": ("station", np.asarray(description["lat"]), {"units": "degrees_north",
                                                                 "standard_name": "latitude"}),
            "lon": ("station", np.asarray(description["lon"]), {"units": "degrees_east",
                                                                 "standard_name": "longitude"}),
            "elevation": ("station", np.asarray(description["elevation"]),
                          {"units": "m", "standard_name": "height_above_mean_sea_level"}),
            "valid_time": (("init_time", "lead_time"), valid, {"standard_name": "time"}),
        },
        attrs={"Conventions": "CF-1.8", "title": "vnnet station forecasts",
               "source": f"vnnet {vnnet.__version__}",
               "featureType": "timeSeries"},
    )


class NetCDFPredictionWriter(BasePredictionWriter):
    """Writes the forecasts of ``trainer.predict`` to one netCDF file.

    Args:
        output: the file to write; default ``predictions.nc`` in the trainer's log directory.
    """

    def __init__(self, output: str | None = None) -> None:
        super().__init__(write_interval="epoch")
        self.output = output
        self.written: Path | None = None

    def write_on_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule,
                           predictions: Any, batch_indices: Any) -> None:
        if not predictions:
            return
        batches = predictions[0] if isinstance(predictions[0], list) else predictions
        forecast = torch.cat([b["forecast"] for b in batches]).cpu().numpy()
        init_index = torch.cat([b["init_time"] for b in batches]).cpu().numpy()
        times = trainer.datamodule.times
        ds = forecasts_to_xarray(forecast, times[init_index], pl_module.spec.raw)
        path = Path(self.output or Path(trainer.log_dir or trainer.default_root_dir)
                    / "predictions.nc")
        path.parent.mkdir(parents=True, exist_ok=True)
        ds.to_netcdf(path)
        self.written = path
        print(f"wrote {ds.sizes['init_time']} forecasts x {ds.sizes['lead_time']} leads x "
              f"{ds.sizes['station']} stations to {path}")
