"""Station CSVs as published (aimsir17 layout: gzip, `date` with Z, knots) -> the contract,
through read_stations_csv's column mapping and pint unit conversion, read_aimsir17 and
`vnnet data convert / aimsir17`."""

import gzip
import time
from pathlib import Path

import numpy as np
import pytest

from vnnet.cli import main
from vnnet.data import open_stations, read_aimsir17, read_stations_csv, validate_stations
from vnnet.data.readers.aimsir17 import (
    AIMSIR17_ATTRIBUTION,
    AIMSIR17_STATION_COLUMNS,
    AIMSIR17_VARIABLES,
    aimsir17_folder,
)

KNOT = 1852 / 3600  # m s-1, exact by definition (pint: 0.514444...)
OBSERVATIONS = (
    "station,date,temp,rhum,msl,wdsp,wddir,rain\n"
    "ATHENRY,2017-01-01T00:00:00Z,5.2,89.0,1021.9,8.0,320.0,0.0\n"
    "ATHENRY,2017-01-01T01:00:00Z,4.7,89.0,1022.0,,320.0,0.1\n"  # wind speed missing
    "ATHENRY,2017-01-01T02:00:00Z,4.2,90.0,1022.1,0.0,0.0,0.0\n"  # calm
    "BELMULLET,2017-01-01T00:00:00Z,7.9,84.0,1020.0,15.0,270.0,0.3\n"
    "BELMULLET,2017-01-01T01:00:00Z,8.1,83.0,1019.5,17.0,280.0,0.0\n"
    "BELMULLET,2017-01-01T02:00:00Z,8.0,,1019.0,16.0,280.0,0.0\n"  # humidity missing
    "VALENTIA,2017-01-01T00:00:00Z,9.5,80.0,1018.0,20.0,250.0,1.2\n"
)
STATIONS = (
    "station,county,height,latitude,longitude\n"
    "ATHENRY,Galway,40.0,53.289,-8.786\n"
    "BELMULLET,Mayo,9.0,54.228,-10.007\n"
    "VALENTIA,Kerry,24.0,51.938,-10.241\n"
)
MAPPING = dict(variables=AIMSIR17_VARIABLES, units={"wdsp": "knots"}, time_column="date",
               station_columns=AIMSIR17_STATION_COLUMNS)


def write_pair(folder: Path, observations: str = OBSERVATIONS,
               stations: str = STATIONS) -> tuple[Path, Path]:
    """The two files under aimsir17's names, the observations gzip-compressed."""
    folder.mkdir(parents=True, exist_ok=True)
    obs, table = folder / "observations_2017_utc.csv.gz", folder / "stations.csv"
    with gzip.open(obs, "wt") as f:
        f.write(observations)
    table.write_text(stations)
    return obs, table


def test_aimsir17_layout_is_mapped_and_converted(tmp_path):
    obs, table = write_pair(tmp_path)
    ds = read_stations_csv(obs, table, **MAPPING)
    assert ds.sizes == {"time": 3, "station": 3}
    assert list(ds.data_vars) == list(AIMSIR17_VARIABLES.values())
    assert str(ds.time.values[0]) == "2017-01-01T00:00:00.000000000"  # Z -> naive UTC
    ws = ds.wind_speed
    assert ws.attrs["units"] == "m s-1" and ws.attrs["converted_from_units"] == "knots"
    assert ws.attrs["source_column"] == "wdsp"
    assert ws.sel(station="BELMULLET").values.tolist() == pytest.approx(
        [15 * KNOT, 17 * KNOT, 16 * KNOT], rel=1e-12)
    assert KNOT == pytest.approx(0.514444, abs=1e-6)
    assert np.isnan(ws.sel(station="ATHENRY").values[1])  # empty cell
    assert np.isnan(ds.relative_humidity.sel(station="BELMULLET").values[2])
    assert np.isnan(ds.air_temperature.sel(station="VALENTIA").values[1:]).all()  # no row
    # calm stays as published: direction 0 with speed 0
    assert ds.wind_from_direction.sel(station="ATHENRY").values[2] == 0.0
    assert ws.sel(station="ATHENRY").values[2] == 0.0
    # unconverted variables keep their values and take the catalogue's units
    assert ds.air_pressure_at_mean_sea_level.attrs["units"] == "hPa"
    assert "converted_from_units" not in ds.air_temperature.attrs
    assert ds.air_temperature.sel(station="ATHENRY").values[0] == 5.2
    np.testing.assert_allclose(ds.lat, [53.289, 54.228, 51.938])
    np.testing.assert_allclose(ds.elevation, [40.0, 9.0, 24.0])
    assert ds.county.values.tolist() == ["Galway", "Mayo", "Kerry"]  # extra table column kept
    validate_stations(ds)


def test_units_by_library_offsets_and_factors(tmp_path):
    obs, table = write_pair(tmp_path, (
        "station,date,tf,p,vis,ws,rh,gust\n"
        "ATHENRY,2017-06-01T00:00:00Z,32,101325,1.5,10,0.5,36\n"
        "ATHENRY,2017-06-01T01:00:00Z,212,98000,12,0,0.25,18\n"
    ))
    ds = read_stations_csv(obs, table, time_column="date",
                           station_columns=AIMSIR17_STATION_COLUMNS,
                           variables={"tf": "air_temperature", "p": "air_pressure",
                                      "vis": "visibility", "ws": "wind_speed",
                                      "rh": "relative_humidity", "gust": "wind_speed_max"},
                           # by column or by variable name
                           units={"tf": "degF", "air_pressure": "Pa", "vis": "km", "ws": "mph",
                                  "rh": "fraction", "gust": "km/h"})
    a = ds.sel(station="ATHENRY")
    np.testing.assert_allclose(a.air_temperature, [0.0, 100.0], atol=1e-9)
    np.testing.assert_allclose(a.air_pressure, [1013.25, 980.0], rtol=1e-12)
    np.testing.assert_allclose(a.visibility, [1500.0, 12000.0], rtol=1e-12)
    np.testing.assert_allclose(a.wind_speed, [4.4704, 0.0], rtol=1e-12)  # 1 mph = 0.44704 m/s
    np.testing.assert_allclose(a.relative_humidity, [50.0, 25.0], rtol=1e-12)
    np.testing.assert_allclose(a.wind_speed_max, [10.0, 5.0], rtol=1e-12)
    assert {ds[v].attrs["units"] for v in ("air_temperature", "visibility", "air_pressure")} \
        == {"degC", "m", "hPa"}
    assert ds.air_temperature.attrs["converted_from_units"] == "degF"
    assert np.isnan(ds.air_temperature.sel(station="VALENTIA")).all()  # table station, no rows


def test_default_call_pattern_and_old_import_path(tmp_path):
    from vnnet.data.readers.files import read_stations_csv as old

    assert old is read_stations_csv
    obs, table = tmp_path / "o.csv", tmp_path / "s.csv"
    obs.write_text("time,station,air_temperature,wind_speed\n2020-01-01,A,280,20\n")
    table.write_text("station,lat,lon,elevation,name\nA,50,10,5,Alpha\n")
    ds = read_stations_csv(obs, table, units={"air_temperature": "K", "wind_speed": "kt"})
    assert ds.air_temperature.values[0, 0] == pytest.approx(6.85)
    assert ds.wind_speed.values[0, 0] == pytest.approx(20 * KNOT, rel=1e-12)
    assert ds.name.values.tolist() == ["Alpha"]
    # Spellings of the catalogue unit are not conversions (kg m-2 of rain is mm).
    obs.write_text("time,station,precipitation_amount,air_pressure\n2020-01-01,A,2.5,1000\n")
    ds = read_stations_csv(obs, table, units={"precipitation_amount": "kg m-2",
                                              "air_pressure": "mbar"})
    assert ds.precipitation_amount.values[0, 0] == 2.5 and ds.air_pressure.values[0, 0] == 1000


@pytest.mark.parametrize(("kwargs", "match"), [
    (dict(units={"wdsp": "knts"}),
     r"column 'wdsp' \(wind_speed\): unknown unit 'knts'; expected 'm s-1'"),
    (dict(units={"temp": "knots"}),
     r"column 'temp' \(air_temperature\): unit 'knots' cannot be converted to 'degC'"),
    (dict(units={"rhum": "degree"}),  # pint calls both dimensionless; they are not the same
     r"column 'rhum' \(relative_humidity\): unit 'degree' cannot be converted to '%'"),
    (dict(variables={"temp": "air_temperature", "dewpt": "dew_point_temperature"}),
     r"columns \['dewpt'\] named in variables are not in the file; columns present: "
     r"\['station', 'date', 'temp'"),
    (dict(variables={"temp": "air_temperature"}, units={"wdsp": "knots"}),
     r"units given for \['wdsp'\], which are not columns of .*temp -> air_temperature"),
    (dict(variables={"temp": "air_temperature", "wdsp": "soil_moisture"}, units=None),
     r"variables \['soil_moisture'\] are not in the catalogue, so their units must be given"),
    (dict(station_columns={"latitude": "lat", "longitude": "lon", "height": "altitude"}),
     r"station_columns maps 'height' to 'altitude'; expected one of \['lat', 'lon', 'elevation'"),
    (dict(station_columns={"latitude": "lat"}),
     r"missing columns \['lon', 'elevation'\]"),
    (dict(time_column="time"), r"missing columns \['time'\]"),
])
def test_mapping_errors_name_the_column(tmp_path, kwargs, match):
    obs, table = write_pair(tmp_path)
    with pytest.raises(ValueError, match=match):
        read_stations_csv(obs, table, **{**MAPPING, **kwargs})


def test_unknown_station_and_bad_archive(tmp_path):
    obs, table = write_pair(tmp_path, stations=STATIONS.replace("VALENTIA,Kerry", "MALIN,Donegal"))
    with pytest.raises(ValueError, match=r"stations \['VALENTIA'\] are not in the station table"):
        read_stations_csv(obs, table, **MAPPING)
    obs.write_bytes(gzip.compress(OBSERVATIONS.encode())[:40])  # truncated archive
    with pytest.raises(ValueError, match="could not be read as CSV"):
        read_stations_csv(obs, table, **MAPPING)


def test_read_aimsir17_from_a_folder_and_env(tmp_path, monkeypatch):
    write_pair(tmp_path / "a17")
    ds = read_aimsir17(tmp_path / "a17")
    assert ds.attrs["attribution"] == AIMSIR17_ATTRIBUTION
    assert AIMSIR17_ATTRIBUTION.startswith("Copyright Met Éireann. Source www.met.ie. "
                                           "Licensed under CC BY 4.0.")
    assert "CC BY 4.0" in ds.attrs["license"] and "Met Éireann" in ds.attrs["source"]
    assert ds.wind_speed.attrs["units"] == "m s-1"
    monkeypatch.setenv("VNNET_AIMSIR17", str(tmp_path / "a17"))
    assert aimsir17_folder() == tmp_path / "a17"
    monkeypatch.setenv("VNNET_AIMSIR17", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match=r"looked in .*nowhere.*VNNET_AIMSIR17"):
        read_aimsir17()


def test_cli_convert_end_to_end(tmp_path, capsys):
    obs, table = write_pair(tmp_path / "src")
    out = tmp_path / "out" / "stations.nc"
    main(["data", "convert", "--observations", str(obs), "--stations", str(table),
          "--out", str(out), "--time_column", "date",
          "--variables", '{"temp": "air_temperature", "wdsp": "wind_speed"}',
          "--units", '{"wdsp": "knots"}',
          "--station_columns", '{"latitude": "lat", "longitude": "lon", "height": "elevation"}'])
    printed = capsys.readouterr().out
    assert "3 stations x 3 times" in printed and "wind_speed [m s-1]" in printed
    ds = open_stations(out)
    assert list(ds.data_vars) == ["air_temperature", "wind_speed"]
    np.testing.assert_allclose(ds.wind_speed.sel(station="VALENTIA").values[0], 20 * KNOT)
    assert ds.county.values.tolist() == ["Galway", "Mayo", "Kerry"]
    validate_stations(ds.load())

    config = tmp_path / "convert.yaml"
    config.write_text(f"observations: {obs}\nstations: {table}\nout: {tmp_path / 'c.nc'}\n"
                      f"time_column: date\nunits:\n  wdsp: kt\nvariables:\n  wdsp: wind_speed\n"
                      f"station_columns:\n  latitude: lat\n  longitude: lon\n"
                      f"  height: elevation\n")
    main(["data", "convert", "--config", str(config)])
    assert list(open_stations(tmp_path / "c.nc").data_vars) == ["wind_speed"]

    main(["data", "aimsir17", "--folder", str(tmp_path / "src"), "--out", str(tmp_path / "a.nc")])
    assert open_stations(tmp_path / "a.nc").attrs["attribution"] == AIMSIR17_ATTRIBUTION
    with pytest.raises(SystemExit):  # a bad unit is a message, not a traceback
        main(["data", "convert", "--observations", str(obs), "--stations", str(table),
              "--out", str(tmp_path / "x.nc"), "--time_column", "date",
              "--station_columns", '{"latitude": "lat", "longitude": "lon", "height": '
              '"elevation"}', "--variables", '{"temp": "air_temperature"}',
              "--units", '{"temp": "knots"}'])
    assert "cannot be converted to 'degC'" in capsys.readouterr().err


def test_real_aimsir17_folder():
    try:
        aimsir17_folder()
    except FileNotFoundError:
        pytest.skip("aimsir17 data not present (../shared/data/aimsir17)")
    start = time.perf_counter()
    ds = read_aimsir17()
    seconds = time.perf_counter() - start
    assert ds.sizes == {"time": 8760, "station": 25}
    assert ds.wind_speed.attrs["units"] == "m s-1"
    ws = ds.wind_speed.values
    assert 15 < np.nanmax(ws) < 40  # knots would reach ~60
    assert np.isnan(ws[:, ds.station.values.tolist().index("MARKREE")]).all()  # no wind sensor
    assert 950 < np.nanmean(ds.air_pressure_at_mean_sea_level) < 1050
    assert seconds < 10, f"reading aimsir17 took {seconds:.1f} s"
