"""What every forecast model shares: the data spec it is built for and its forward contract.

A model is built from the datamodule's ``description()`` (station list and coordinates,
variables, scalers, graph parameters, satellite grid) plus its own hyper-parameters, and
records its constructor arguments so a checkpoint can rebuild it without the datamodule.
Forward contract: ``model(batch, teacher_forcing=0.0) -> (b h n c)`` in scaled units.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from vnnet.data.batch import Batch
from vnnet.data.coregistration import station_pixels
from vnnet.graphs import StationGraph, distance_graph


@dataclass(frozen=True)
class DataSpec:
    """What a model needs of a datamodule description (``WeatherDataModule.description()``)."""

    station_ids: list[str]
    lat: np.ndarray
    lon: np.ndarray
    elevation: np.ndarray
    input_variables: list[str]
    target_variables: list[str]
    n_his: int
    n_pred: int
    graph_params: dict[str, Any]
    image_channels: int | None = None
    image_lat: np.ndarray | None = None
    image_lon: np.ndarray | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_description(cls, description: dict[str, Any]) -> DataSpec:
        required = ("station_ids", "lat", "lon", "elevation", "input_variables",
                    "target_variables", "n_his", "n_pred")
        missing = [k for k in required if k not in description]
        if missing:
            raise ValueError(f"data description lacks {missing}; build it with "
                             f"WeatherDataModule.description()")
        sat = description.get("satellite")
        graph = description.get("graph") or {}
        return cls(
            station_ids=list(description["station_ids"]),
            lat=np.asarray(description["lat"], dtype=np.float64),
            lon=np.asarray(description["lon"], dtype=np.float64),
            elevation=np.asarray(description["elevation"], dtype=np.float64),
            input_variables=list(description["input_variables"]),
            target_variables=list(description["target_variables"]),
            n_his=int(description["n_his"]), n_pred=int(description["n_pred"]),
            graph_params=dict(graph.get("params", {})),
            image_channels=None if sat is None else len(sat["channels"]),
            image_lat=None if sat is None else np.asarray(sat["lat"], dtype=np.float64),
            image_lon=None if sat is None else np.asarray(sat["lon"], dtype=np.float64),
            raw=description,
        )

    @property
    def n_stations(self) -> int:
        return len(self.station_ids)

    @property
    def n_inputs(self) -> int:
        return len(self.input_variables)

    @property
    def n_targets(self) -> int:
        return len(self.target_variables)

    @property
    def has_images(self) -> bool:
        return self.image_channels is not None

    @property
    def image_size(self) -> tuple[int, int] | None:
        return None if self.image_lat is None else (len(self.image_lat), len(self.image_lon))

    def target_input_index(self) -> list[int | None]:
        """For each target, its position among the inputs (None if it is not an input)."""
        return [self.input_variables.index(t) if t in self.input_variables else None
                for t in self.target_variables]

    def graph(self) -> StationGraph:
        """The station distance graph, rebuilt from the recorded parameters."""
        return distance_graph(self.lat, self.lon, station_ids=self.station_ids,
                              **self.graph_params)

    def static_features(self) -> torch.Tensor:
        """(n 3) float32 standardised lat, lon, elevation (static location inputs)."""
        coords = np.stack([self.lat, self.lon, self.elevation], axis=-1)
        std = coords.std(axis=0)
        return torch.tensor((coords - coords.mean(axis=0)) / np.where(std > 0, std, 1.0),
                            dtype=torch.float32)

    def pixels_on_grid(self, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(n,) int64 rows and cols of each station on a ``height`` x ``width`` feature grid."""
        if not self.has_images:
            raise ValueError("this data has no satellite images")
        pm = station_pixels(self.lat, self.lon, self.image_lat, self.image_lon,
                            np.asarray(self.station_ids))
        rows, cols = pm.on_grid(height, width)
        return torch.from_numpy(rows), torch.from_numpy(cols)


def last_observed(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(b n c) most recent observed value in a (b t n c) window; 0 (the mean) if none."""
    t = x.shape[1]
    steps = torch.arange(t, device=x.device).view(1, t, 1, 1).expand_as(x)
    last = torch.where(mask, steps, -1).amax(dim=1, keepdim=True)
    value = torch.gather(x, 1, last.clamp_min(0))
    return torch.where(last >= 0, value, torch.zeros_like(value)).squeeze(1)


class ForecastModel(nn.Module):
    """Base class of vnnet models: records constructor arguments in ``init_args``.

    Subclasses take ``data`` (a datamodule description dict) as their first argument and
    implement ``forward(batch, teacher_forcing=0.0) -> (b h n c)`` in scaled units.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        init = cls.__init__

        @functools.wraps(init)
        def recording_init(self: ForecastModel, *args: Any, **kw: Any) -> None:
            if not hasattr(self, "_recording"):  # only the outermost __init__ records
                self._recording = True
                bound = inspect.signature(init).bind(self, *args, **kw)
                bound.apply_defaults()
                arguments = dict(bound.arguments)
                arguments.pop("self")
                init(self, *args, **kw)
                self.init_args = arguments
            else:
                init(self, *args, **kw)

        cls.__init__ = recording_init

    def __init__(self, data: dict[str, Any]) -> None:
        super().__init__()
        self.spec = DataSpec.from_description(data)

    def config(self) -> dict[str, Any]:
        """``{"class_path", "init_args"}``: how to rebuild this model (LightningCLI form)."""
        cls = type(self)
        return {"class_path": f"{cls.__module__}.{cls.__qualname__}",
                "init_args": dict(self.init_args)}

    def forward(self, batch: Batch, teacher_forcing: float = 0.0) -> torch.Tensor:
        raise NotImplementedError
