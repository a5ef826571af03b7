"""Station and satellite data: the xarray contract, readers, the synthetic world, windows,
scalers, co-registration and the Lightning datamodule."""

from vnnet.data.batch import Batch, collate_windows
from vnnet.data.datamodule import WeatherDataModule, align_frames
from vnnet.data.readers import (
    REGION_BOXES,
    WEATHER2K_FEATURES,
    open_satellite,
    open_stations,
    read_aimsir17,
    read_himawari,
    read_stations_csv,
    read_vnnet_region,
    read_weather2k,
    write_satellite,
    write_stations,
)
from vnnet.data.scalers import MinMaxScaler, StandardScaler
from vnnet.data.schema import CATALOGUE, describe_stations, validate_satellite, validate_stations
from vnnet.data.synthetic import synthetic_world
from vnnet.data.windows import (
    calendar_index,
    chronological_splits,
    cyclic_features,
    window_starts,
)
from vnnet.graphs.coregistration import PixelMap, station_pixels

__all__ = [
    "CATALOGUE", "REGION_BOXES", "WEATHER2K_FEATURES", "Batch", "MinMaxScaler", "PixelMap",
    "StandardScaler", "WeatherDataModule", "align_frames", "calendar_index",
    "chronological_splits", "collate_windows", "cyclic_features", "describe_stations",
    "open_satellite", "open_stations", "read_aimsir17", "read_himawari", "read_stations_csv",
    "read_vnnet_region", "read_weather2k", "station_pixels", "synthetic_world",
    "validate_satellite", "validate_stations", "window_starts", "write_satellite",
    "write_stations",
]
