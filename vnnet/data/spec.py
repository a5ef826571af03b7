"""The data contract a model is built for: stations, variables, scalers, graph, image grid.

Made by the datamodule (``WeatherDataModule.description()``), stored with every checkpoint,
and all that models and the Forecaster read of the data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from vnnet.graphs import StationGraph, distance_graph
from vnnet.graphs.coregistration import station_pixels

__all__ = ["DataSpec"]


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
