"""aimsir17: Met Éireann hourly observations at 25 Irish stations, 2017 (CC BY 4.0).

The files live outside the repository, in ``../shared/data/aimsir17/`` next to the checkout
(see its README); they are read from there through the generic CSV reader
(:func:`vnnet.data.readers.stations_csv.read_stations_csv`) with a fixed column mapping, and
never copied. Wind speed is published in knots and converted to m s-1.
"""

from __future__ import annotations

import os
from pathlib import Path

import xarray as xr

import vnnet
from vnnet.data.readers.files import PathLike
from vnnet.data.readers.stations_csv import read_stations_csv

__all__ = [
    "AIMSIR17_ATTRIBUTION",
    "AIMSIR17_STATION_COLUMNS",
    "AIMSIR17_UNITS",
    "AIMSIR17_VARIABLES",
    "aimsir17_folder",
    "read_aimsir17",
]

#: Environment variable naming the aimsir17 folder when it is not at the default place.
AIMSIR17_ENV = "VNNET_AIMSIR17"
OBSERVATIONS_FILE = "observations_2017_utc.csv.gz"
STATIONS_FILE = "stations.csv"

#: Source column -> CF variable name.
AIMSIR17_VARIABLES = {
    "temp": "air_temperature",
    "rhum": "relative_humidity",
    "msl": "air_pressure_at_mean_sea_level",
    "wdsp": "wind_speed",
    "wddir": "wind_from_direction",
    "rain": "precipitation_amount",
}
#: Source units where they differ from the catalogue's (the others already match).
AIMSIR17_UNITS = {"wdsp": "knots"}
#: Station table column -> contract coordinate.
AIMSIR17_STATION_COLUMNS = {"latitude": "lat", "longitude": "lon", "height": "elevation"}
#: The licence's attribution, to carry wherever results or derived data are shown.
AIMSIR17_ATTRIBUTION = (
    "Copyright Met Éireann. Source www.met.ie. Licensed under CC BY 4.0. Met Éireann does not "
    "accept any liability whatsoever for any error or omission in the data, their "
    "availability, or for any loss or damage arising from their use."
)


def aimsir17_folder(folder: PathLike | None = None) -> Path:
    """The aimsir17 folder: ``folder``, else ``$VNNET_AIMSIR17``, else ``shared/data/aimsir17``
    beside the repository checkout (``../shared/data/aimsir17`` from the repository root).

    Raises ``FileNotFoundError`` saying where it looked and how to point elsewhere when the
    folder or one of its two files is missing.
    """
    if folder is not None:
        path, how = Path(folder), "the folder given"
    elif os.environ.get(AIMSIR17_ENV):
        path, how = Path(os.environ[AIMSIR17_ENV]), f"${AIMSIR17_ENV}"
    else:
        # vnnet/__init__.py -> vnnet/ -> checkout -> its parent, which holds shared/.
        path = Path(vnnet.__file__).resolve().parents[2] / "shared" / "data" / "aimsir17"
        how = "the default beside the repository checkout"
    missing = [name for name in (OBSERVATIONS_FILE, STATIONS_FILE) if not (path / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"aimsir17 data not found: looked in {path} ({how}) for {missing}; pass the folder "
            f"(read_aimsir17(folder=...), vnnet data aimsir17 --folder PATH) or set "
            f"{AIMSIR17_ENV}=/path/to/aimsir17")
    return path


def read_aimsir17(folder: PathLike | None = None) -> xr.Dataset:
    """The aimsir17 observations as a contract station dataset, dims ``(time, station)``.

    25 stations (the order of ``stations.csv``) x 8,760 hourly UTC times of 2017. Variables:
    ``air_temperature`` (degC), ``relative_humidity`` (%), ``air_pressure_at_mean_sea_level``
    (hPa), ``wind_speed`` (m s-1, converted from knots), ``wind_from_direction`` (degree; 0
    with a speed of 0 is calm, as published), ``precipitation_amount`` (mm in the hour).
    Coordinates ``lat``/``lon`` (deg), ``elevation`` (m) and ``county`` (str). Missing is NaN:
    MARKREE and PHOENIX PARK have no wind at all. The dataset's ``source``, ``license`` and
    ``attribution`` attributes carry the CC BY 4.0 attribution.

    ``folder``: see :func:`aimsir17_folder` (default ``$VNNET_AIMSIR17`` or
    ``../shared/data/aimsir17``); ``FileNotFoundError`` if the data are not there.
    """
    path = aimsir17_folder(folder)
    ds = read_stations_csv(path / OBSERVATIONS_FILE, path / STATIONS_FILE,
                           variables=AIMSIR17_VARIABLES, units=AIMSIR17_UNITS,
                           time_column="date", station_columns=AIMSIR17_STATION_COLUMNS)
    ds.attrs.update({
        "title": "aimsir17: hourly observations at 25 Met Éireann stations, 2017",
        "source": "Met Éireann hourly station observations (www.met.ie), as packaged by the R "
                  "data package aimsir17 (J. Duggan); wind speed converted from knots to m s-1",
        "license": "CC BY 4.0 (https://creativecommons.org/licenses/by/4.0/)",
        "attribution": AIMSIR17_ATTRIBUTION,
        "comment": "wind_from_direction 0 with wind_speed 0 means calm (as published)",
    })
    return ds
