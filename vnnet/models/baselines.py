"""Reference forecasts that every learned model must beat, and what learned baselines share.

``Persistence``, ``SeasonalPersistence`` and ``Climatology`` have no trainable parameters:
evaluate them with ``vnnet test`` (no fit); ``vnnet.models.Ridge`` is fitted in closed form.
The learned baselines (``GRUBaseline``, ``AGCRN``, ``GraphWaveNet``, ``STGCN``) read
their per-station inputs through :func:`station_inputs`.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import torch

from vnnet.data.batch import CYCLIC_FEATURE_NAMES, Batch
from vnnet.models.base import DataSpec, ForecastModel, last_observed

__all__ = ["Climatology", "Persistence", "SeasonalPersistence", "check_inputs",
           "n_station_inputs", "station_inputs", "valid_hours"]

N_HOURS = 24
_HOUR_SIN = CYCLIC_FEATURE_NAMES.index("hour_sin")
_HOUR_COS = CYCLIC_FEATURE_NAMES.index("hour_cos")


def check_inputs(spec: DataSpec, batch: Batch, name: str) -> None:
    """Raise ``ValueError`` unless ``batch.x``/``x_mask`` are ``(b n_his n f)`` and
    ``batch.time`` is ``(b n_his k)`` for the data ``spec`` the model ``name`` was built on."""
    b = batch.x.shape[0]
    expect = (b, spec.n_his, spec.n_stations, spec.n_inputs)
    if batch.x.dim() != 4 or tuple(batch.x.shape) != expect:
        raise ValueError(f"{name}: batch.x: expected (b t n f) = (b {spec.n_his} "
                         f"{spec.n_stations} {spec.n_inputs}), got {tuple(batch.x.shape)}")
    if tuple(batch.x_mask.shape) != expect:
        raise ValueError(f"{name}: batch.x_mask: expected {expect}, got "
                         f"{tuple(batch.x_mask.shape)}")
    k = len(CYCLIC_FEATURE_NAMES)
    if tuple(batch.time.shape) != (b, spec.n_his, k):
        raise ValueError(f"{name}: batch.time: expected (b t k) = (b {spec.n_his} {k}), got "
                         f"{tuple(batch.time.shape)}")


def n_station_inputs(spec: DataSpec) -> int:
    """Feature size of :func:`station_inputs`: ``2 f + k + 3``."""
    return 2 * spec.n_inputs + len(CYCLIC_FEATURE_NAMES) + 3


def station_inputs(batch: Batch, static: torch.Tensor) -> torch.Tensor:
    """``(b t n 2f+k+3)`` per-station inputs of the learned baselines.

    The scaled variables (0 where missing), their observed-masks (so a gap is visible, not
    silently imputed), the cyclic calendar features of each input hour (hour / day-of-year
    sin, cos; the same at every station) and the standardised static location ``static``
    ``(n 3)`` (lat, lon, elevation; as VN-Net's encoder sees it).
    """
    b, t, n, _ = batch.x.shape
    calendar = batch.time.to(batch.x.dtype).unsqueeze(2).expand(b, t, n, -1)
    return torch.cat([batch.x, batch.x_mask.to(batch.x.dtype), calendar,
                      static.to(batch.x.dtype).expand(b, t, n, -1)], dim=-1)


class Persistence(ForecastModel):
    """Tomorrow is today: each target's last observed input value, held for every lead hour.

    Looks back through the input window for the most recent observed value per station
    (inputs may have gaps); a station with no observation in the window forecasts the
    training mean (0 in scaled units). Needs each target among the input variables.
    """

    def __init__(self, data: dict[str, Any]) -> None:
        super().__init__(data)
        index = self.spec.target_input_index()
        missing = [t for t, i in zip(self.spec.target_variables, index, strict=True) if i is None]
        if missing:
            raise ValueError(f"Persistence needs the targets among the inputs; {missing} are not")
        self.register_buffer("target_index", torch.tensor(index, dtype=torch.long),
                             persistent=False)

    def forward(self, batch: Batch, teacher_forcing: float = 0.0) -> torch.Tensor:
        value = last_observed(batch.x[..., self.target_index],
                              batch.x_mask[..., self.target_index])  # (b n c)
        return value.unsqueeze(1).expand(-1, self.spec.n_pred, -1, -1)


class SeasonalPersistence(Persistence):
    """Yesterday at this hour: each target's value 24 h before the valid time.

    ``forecast[b, h] = y(init + h - 24 h)``, read from ``batch.y_lag`` (b h n c), the target
    24 h before each valid time, which the datamodule adds when its ``target_lag`` is "24h"
    (the Forecaster asks for it: ``target_lag`` below). For lead hours up to 24 that value is
    at or before the init time, so nothing from after the forecast start is used; longer
    leads are refused. Where it is missing (a gap, or before the record starts) the
    forecast falls back to :class:`Persistence` (the last observed value in the input window,
    0 = the training mean if none). Needs each target among the inputs (for that fallback).
    """

    #: What the datamodule must provide: ``y_lag`` this long before each valid time.
    target_lag = "24h"

    def __init__(self, data: dict[str, Any]) -> None:
        super().__init__(data)
        step = pd.Timedelta(data.get("time_step", "1h"))
        lag = pd.Timedelta(self.target_lag) / step
        if self.spec.n_pred > lag:
            raise ValueError(f"SeasonalPersistence needs n_pred <= {lag:g} (leads of at most "
                             f"{self.target_lag}: later valid times are more than "
                             f"{self.target_lag} after the init time); got n_pred = "
                             f"{self.spec.n_pred}")

    def forward(self, batch: Batch, teacher_forcing: float = 0.0) -> torch.Tensor:
        if batch.y_lag is None or batch.y_lag_mask is None:
            raise ValueError(f"SeasonalPersistence: the batch has no y_lag; build the datamodule "
                             f"with target_lag={self.target_lag!r} (a Trainer run through "
                             f"vnnet.Forecaster sets it)")
        expect = (batch.x.shape[0], self.spec.n_pred, self.spec.n_stations, self.spec.n_targets)
        if tuple(batch.y_lag.shape) != expect:
            raise ValueError(f"SeasonalPersistence: batch.y_lag: expected (b h n c) = {expect}, "
                             f"got {tuple(batch.y_lag.shape)}")
        fallback = super().forward(batch)
        return torch.where(batch.y_lag_mask, batch.y_lag.to(fallback.dtype), fallback)


def valid_hours(time_pred: torch.Tensor) -> torch.Tensor:
    """``(b h)`` int64 UTC hour of day (0-23) of each lead hour, from ``batch.time_pred``
    ``(b h k)`` (its hour sin/cos features; exact for any time step, minutes floored)."""
    angle = torch.atan2(time_pred[..., _HOUR_SIN].double(), time_pred[..., _HOUR_COS].double())
    hours = torch.remainder(angle * (N_HOURS / (2 * math.pi)), N_HOURS)
    # float32 sin/cos are exact to ~1e-5 h; the margin keeps 12:00 from reading 11:59.
    return torch.floor(hours + 1e-3).long() % N_HOURS


class Climatology(ForecastModel):
    """Station x hour-of-day climatology: the training-split mean of each target at each
    station for the lead hour's UTC hour of day, the same whatever the inputs.

    The table is the datamodule description's ``"climatology"`` entry, ``(c n 24)`` in scaled
    units, computed on the training split only (``WeatherDataModule.climatology``: masked; an
    hour never observed falls back to the station mean, a station never observed to 0).
    ``forward(batch) -> (b h n c)``; the valid hour of lead ``h`` is read from
    ``batch.time_pred`` (the calendar features of the lead hours). No trainable parameters:
    evaluate with ``vnnet test``.
    """

    table: torch.Tensor

    def __init__(self, data: dict[str, Any]) -> None:
        super().__init__(data)
        spec = self.spec
        if data.get("climatology") is None:
            raise ValueError("Climatology: the data description has no 'climatology' table (a "
                             "description or checkpoint from an older vnnet); rebuild it with "
                             "WeatherDataModule.description()")
        table = torch.tensor(data["climatology"], dtype=torch.float32)
        expect = (spec.n_targets, spec.n_stations, N_HOURS)
        if tuple(table.shape) != expect:
            raise ValueError(f"Climatology: 'climatology' in the description: expected (c n 24) "
                             f"= {expect}, got {tuple(table.shape)}")
        if not torch.isfinite(table).all():
            raise ValueError("Climatology: the 'climatology' table has non-finite values")
        # Rebuilt from the description (stored with the checkpoint), so not a state_dict entry.
        self.register_buffer("table", table.permute(2, 1, 0).contiguous(),  # (24 n c)
                             persistent=False)

    def forward(self, batch: Batch, teacher_forcing: float = 0.0) -> torch.Tensor:
        spec = self.spec
        if batch.time_pred.dim() != 3 or batch.time_pred.shape[1] != spec.n_pred \
                or batch.time_pred.shape[2] != len(CYCLIC_FEATURE_NAMES):
            raise ValueError(f"Climatology: batch.time_pred: expected (b h k) = (b {spec.n_pred} "
                             f"{len(CYCLIC_FEATURE_NAMES)}), got {tuple(batch.time_pred.shape)}")
        return self.table[valid_hours(batch.time_pred)].to(batch.x.dtype)  # (b h n c)
