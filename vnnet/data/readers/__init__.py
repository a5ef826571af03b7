"""Readers and writers for station and satellite data.

Station data come back as ``xarray.Dataset`` with dims ``(time, station)``, satellite cubes as
``xarray.DataArray`` with dims ``(time, channel, lat, lon)``, both validated against
:mod:`vnnet.data.schema` and lazy (memory map / netCDF / zarr behind dask).
"""

from vnnet.data.readers.aimsir17 import AIMSIR17_ATTRIBUTION, read_aimsir17
from vnnet.data.readers.files import (
    open_satellite,
    open_stations,
    write_satellite,
    write_stations,
)
from vnnet.data.readers.himawari import REGION_BOXES, read_himawari
from vnnet.data.readers.nycflights import NYCFLIGHTS13_AIRPORTS, read_nycflights13
from vnnet.data.readers.stations_csv import read_stations_csv
from vnnet.data.readers.weather2k import WEATHER2K_FEATURES, read_vnnet_region, read_weather2k

__all__ = [
    "AIMSIR17_ATTRIBUTION",
    "NYCFLIGHTS13_AIRPORTS",
    "REGION_BOXES",
    "WEATHER2K_FEATURES",
    "open_satellite",
    "open_stations",
    "read_aimsir17",
    "read_himawari",
    "read_nycflights13",
    "read_stations_csv",
    "read_vnnet_region",
    "read_weather2k",
    "write_satellite",
    "write_stations",
]
