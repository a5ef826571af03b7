"""Malformed inputs give a ValueError that names the problem (or, on the command line, a
non-zero exit and a one-line message on stderr), never a traceback from deep inside numpy,
xarray or torch, and never a silent acceptance.

Everything is built from a tiny synthetic world or hand-made arrays and files in tmp_path.
"""

from __future__ import annotations

import contextlib
import io
import re
import sys
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import xarray as xr

from vnnet.data import (
    WeatherDataModule,
    synthetic_world,
    validate_satellite,
    validate_stations,
    write_satellite,
    write_stations,
)
from vnnet.data.readers import (
    open_satellite,
    open_stations,
    read_himawari,
    read_vnnet_region,
    read_weather2k,
)

N_STATIONS, N_TIME = 4, 72  # synthetic_world(n_days=3): 72 hourly times


@pytest.fixture(scope="module")
def world() -> tuple[xr.Dataset, xr.DataArray]:
    return synthetic_world(n_stations=N_STATIONS, n_days=3, image_size=16, n_channels=2)


def setting(ds, var, index, value):
    """A deep copy of ``ds`` with ``ds[var][index] = value`` (whole variable for index ...)."""
    out = ds.copy(deep=True)
    values = out[var].values if var is not None else out.values
    values[index] = value
    return out


def moved(index, i, j):
    """``index`` with entries ``i`` and ``j`` swapped (times out of order)."""
    values = index.values.copy()
    values[[i, j]] = values[[j, i]]
    return values


# --- station validator -----------------------------------------------------------------------
STATION_CASES = [
    pytest.param(lambda s: s.expand_dims(level=2), r"dims must be \('time', 'station'\).*"
                 r"unexpected \['level'\]", id="extra-dim-cannot-be-fixed"),
    pytest.param(lambda s: s.rename(time="date"), r"missing \['time'\]", id="dim-renamed"),
    pytest.param(lambda s: s.drop_vars("lat"), "coordinate 'lat' is missing", id="no-lat"),
    pytest.param(lambda s: s.drop_vars("lon"), "coordinate 'lon' is missing", id="no-lon"),
    pytest.param(lambda s: s.drop_vars("time"), "coordinate 'time' is missing", id="no-time"),
    pytest.param(lambda s: s.assign_coords(time=np.arange(N_TIME)),
                 "coordinate 'time' must hold datetimes, got dtype int64", id="time-not-dates"),
    pytest.param(lambda s: s.assign_coords(time=moved(s.indexes["time"], 3, 4)),
                 "coordinate 'time' must be increasing", id="times-not-monotonic"),
    pytest.param(lambda s: s.assign_coords(time=np.r_[s.time.values[:5], s.time.values[4:-1]]),
                 "coordinate 'time' has duplicate value 2021-05-01 04:00", id="duplicate-time"),
    pytest.param(lambda s: s.assign_coords(time=np.r_[s.time.values[:5],
                                                      s.time.values[5:] + np.timedelta64(30, "m")]),
                 "coordinate 'time' must be regular; step 0 days 01:00:00 expected",
                 id="irregular-time-step"),
    pytest.param(lambda s: setting(s, "air_temperature", ..., np.nan),
                 "variable 'air_temperature' is entirely NaN", id="all-nan-variable"),
    pytest.param(lambda s: setting(s, "wind_speed", (5, 1), np.inf),
                 "variable 'wind_speed' contains infinite values", id="infinite-value"),
    pytest.param(lambda s: s.assign(visibility=s.visibility.assign_attrs(units="furlong")),
                 r"'visibility' has units 'furlong', expected 'm' \(or one of \['km'\]",
                 id="unknown-units"),
    pytest.param(lambda s: s.assign(visibility=s.visibility.drop_attrs()),
                 "'visibility' has no 'units' attribute", id="no-units"),
    pytest.param(lambda s: s.assign_coords(lat=s.lat + 80.0),
                 r"latitudes must be in \[-90, 90\] degrees", id="lat-out-of-range"),
    pytest.param(lambda s: s.assign_coords(station=["A", "B", "A", "C"]),
                 r"station ids must be unique; duplicated: \['A'\]", id="duplicate-station-ids"),
    pytest.param(lambda s: setting(s.reset_coords("lon"), "lon", 2, np.nan).set_coords("lon"),
                 r"coordinate 'lon' is missing \(NaN\) for stations \['S002'\]", id="nan-lon"),
    pytest.param(lambda s: s.isel(station=[]), "the dataset has no stations", id="no-stations"),
    pytest.param(lambda s: s.air_temperature, "got a DataArray", id="dataarray-not-dataset"),
    pytest.param(lambda s: s.assign(note=s.air_temperature.astype(str)),
                 "variable 'note' must be numeric", id="text-variable"),
]


@pytest.mark.parametrize(("edit", "match"), STATION_CASES)
def test_bad_stations(world, edit, match):
    with pytest.raises(ValueError, match=match):
        validate_stations(edit(world[0]))


# --- satellite validator ---------------------------------------------------------------------
SATELLITE_CASES = [
    pytest.param(lambda a: a.isel(channel=0), r"dims must be \('time', 'channel', 'lat', "
                 r"'lon'\), got \('time', 'lat', 'lon'\) \(missing \['channel'\]\)",
                 id="no-channel-dim"),
    pytest.param(lambda a: a.rename(lat="y", lon="x"), r"unexpected \['y', 'x'\]",
                 id="projected-dims"),
    pytest.param(lambda a: a.drop_vars("lat"), "coordinate 'lat' is missing", id="no-lat"),
    pytest.param(lambda a: a.drop_vars("time"), "coordinate 'time' is missing", id="no-time"),
    pytest.param(lambda a: a.assign_coords(time=moved(a.indexes["time"], 10, 11)),
                 "'time' must be increasing", id="times-not-monotonic"),
    pytest.param(lambda a: a.assign_coords(time=np.r_[a.time.values[:3], a.time.values[2:-1]]),
                 "'time' has duplicate value", id="duplicate-time"),
    pytest.param(lambda a: a.assign_attrs(units="furlong"),
                 r"unknown units 'furlong'; expected one of \['K'", id="unknown-units"),
    pytest.param(lambda a: a.drop_attrs(), "has no 'units' attribute", id="no-units"),
    pytest.param(lambda a: setting(a, None, (7, 1, 3, 3), np.inf),
                 r"frame 7 \(2021-05-01 07:00:00\) contains infinite values", id="infinite-pixel"),
    pytest.param(lambda a: setting(a, None, ..., np.nan), "the image cube is entirely NaN",
                 id="all-nan-cube"),
    pytest.param(lambda a: a.assign_coords(lat=a.lat + 60.0),
                 r"latitudes must be in \[-90, 90\]", id="lat-out-of-range"),
    pytest.param(lambda a: a.assign_coords(lat=np.r_[a.lat.values[:-1], a.lat.values[-1] - 1]),
                 "coordinate 'lat' must be a regular grid", id="irregular-grid"),
    pytest.param(lambda a: a.isel(lon=slice(None, None, -1)),
                 r"'lon' must be increasing \(west to east\)", id="lon-descending"),
]


@pytest.mark.parametrize(("edit", "match"), SATELLITE_CASES)
def test_bad_satellite(world, edit, match):
    with pytest.raises(ValueError, match=match):
        validate_satellite(edit(world[1]))


# --- datamodule ------------------------------------------------------------------------------
def far_stations(world):
    stations, satellite = world
    return stations.assign_coords(lat=stations.lat + 20.0), satellite


def late_frames(world):
    stations, satellite = world
    return stations, satellite.isel(time=slice(48, None))  # the last day only


def train_nan(world):
    stations, satellite = world
    return setting(stations, "air_temperature", slice(0, 50), np.nan), satellite


DATAMODULE_CASES = [
    pytest.param({"target": "snow_depth"}, r"target: unknown variable\(s\) \['snow_depth'\]",
                 id="unknown-target"),
    pytest.param({"inputs": ["air_temperature", "sunshine"]},
                 r"inputs: unknown variable\(s\) \['sunshine'\]", id="unknown-input"),
    pytest.param({"n_pred": 0}, "n_pred must be an integer >= 1, got 0", id="n_pred-zero"),
    pytest.param({"n_pred": -3}, "n_pred must be an integer >= 1, got -3", id="n_pred-negative"),
    pytest.param({"n_his": 0}, "n_his must be an integer >= 1, got 0", id="n_his-zero"),
    pytest.param({"n_his": -1}, "n_his must be an integer >= 1, got -1", id="n_his-negative"),
    pytest.param({"batch_size": 0}, "batch_size must be an integer >= 1, got 0",
                 id="batch_size-zero"),
    pytest.param({"eval_batch_size": -4}, "eval_batch_size must be an integer >= 1",
                 id="eval_batch_size-negative"),
    pytest.param({"split": (0.8, 0.3, 0.2)}, "fractions must be three non-negative numbers",
                 id="split-sums-over-one"),
    pytest.param({"split": (0.8, -0.1, 0.2)}, "fractions must be three non-negative numbers",
                 id="split-negative"),
    pytest.param({"split": (0.8, 0.2)}, r"\(train, val, test\).*got \[0\.8, 0\.2\]",
                 id="split-two-fractions"),
    pytest.param({"split": "weather2000"}, "split: unknown preset 'weather2000'",
                 id="split-unknown-preset"),
    pytest.param({"split": {"val_start": "2021-05-03", "test_start": "2021-05-02"}},
                 "val_start 2021-05-03 00:00:00 must come before test_start",
                 id="split-dates-reversed"),
    pytest.param({"satellite_tolerance": "soon"}, "satellite_tolerance: cannot parse 'soon'",
                 id="tolerance-unparsable"),
    pytest.param({"station_ids": ["S000", "S999"]}, r"station_ids: unknown stations \['S999'\]",
                 id="unknown-station-id"),
    pytest.param({"graph": {"method": "knn"}}, r"graph: unknown option\(s\) \['method'\]",
                 id="graph-option-typo"),
    pytest.param({"n_his": 48, "n_pred": 30}, r"stations: 72 time step\(s\) hold no complete "
                 r"window of n_his \+ n_pred = 48\+30 steps", id="record-shorter-than-a-window"),
    pytest.param(far_stations, "4 station.* lie outside the satellite image box",
                 id="stations-outside-image"),
    pytest.param(late_frames, r"satellite frames cover 33% of the station times \(need at "
                 "least 50%\\)", id="frames-do-not-cover-period"),
    pytest.param(train_nan, r"no observed value to fit variables \['air_temperature'\] \(all "
                 r"NaN in the training split\)", id="target-missing-in-training"),
    pytest.param(lambda w: (w[0].air_temperature, w[1]), "got a DataArray",
                 id="stations-as-dataarray"),
    pytest.param(lambda w: (w[0].air_temperature.values, w[1]),
                 "stations: expected an xarray.Dataset or a path, got ndarray",
                 id="stations-as-numpy"),
]


@pytest.mark.parametrize(("change", "match"), DATAMODULE_CASES)
def test_bad_datamodule_arguments(world, change, match):
    options = {"target": "air_temperature", "n_his": 6, "n_pred": 3, "batch_size": 4,
               "split": (0.6, 0.2, 0.2)}
    data = world
    if callable(change):
        data = change(world)
    else:
        options.update(change)
    with pytest.raises(ValueError, match=match):
        WeatherDataModule(*data, **options).setup()


def test_infinite_pixel_in_a_lazily_opened_cube(world, tmp_path):
    """Lazy cubes are not read by the validator: the bad pixel is found when the training
    frames are first read, and named."""
    stations, satellite = world
    bad = setting(satellite, None, (3, 0, 5, 5), np.inf)
    bad.to_dataset(name="bt").to_netcdf(tmp_path / "sat.nc")  # bypasses write_satellite's check
    dm = WeatherDataModule(stations, str(tmp_path / "sat.nc"), n_his=6, n_pred=3)
    with pytest.raises(ValueError, match=r"image scaler cannot be fitted on the \d+ training "
                                         r"frames.*infinite pixels"):
        dm.setup()


def test_a_nonexistent_path_is_named(tmp_path):
    """A missing file is a FileNotFoundError (an OSError, as Python does), naming the path."""
    missing = tmp_path / "nowhere" / "stations.nc"
    with pytest.raises(FileNotFoundError, match="stations: no such file or directory: .*"
                                                "nowhere/stations.nc"):
        WeatherDataModule(str(missing))
    with pytest.raises(FileNotFoundError, match="no such netCDF4 file: .*stations.nc"):
        open_stations(missing)


# --- files -----------------------------------------------------------------------------------
def weather2k_raw(n_station: int = 4, n_time: int = 24) -> np.ndarray:
    data = np.random.default_rng(0).normal(10, 2, (n_station, 23, n_time)).astype(np.float32)
    data[:, 0], data[:, 1], data[:, 2] = 35.0, 113.0, 100.0  # lat, lon, altitude
    data[:, 0] += np.arange(n_station)[:, None]
    return data


def vnnet_region(n_station: int = 4, n_time: int = 24) -> tuple[np.ndarray, np.ndarray]:
    data = np.random.default_rng(1).normal(10, 2, (n_time, n_station, 23)).astype(np.float32)
    lonlat = np.stack([113.0 + np.arange(n_station), 35.0 + np.arange(n_station)], axis=1)
    return data, lonlat


def save(tmp_path: Path, name: str, array: np.ndarray) -> Path:
    path = tmp_path / name
    np.save(path, array)
    return path


def truncated(tmp_path: Path, good: Path, keep: float = 0.5) -> Path:
    path = tmp_path / f"cut_{good.name}"
    data = good.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def nc_stations(tmp_path, world):
    write_stations(world[0], tmp_path / "stations.nc")
    open_stations(truncated(tmp_path, tmp_path / "stations.nc"))


def nc_satellite(tmp_path, world):
    write_satellite(world[1], tmp_path / "satellite.nc")
    open_satellite(truncated(tmp_path, tmp_path / "satellite.nc", keep=0.9))


def npy_garbage(tmp_path, world):
    (tmp_path / "data.npy").write_bytes(b"\x93NUMPY garbage, not an array header")
    read_weather2k(tmp_path / "data.npy")


def npy_truncated(tmp_path, world):
    read_weather2k(truncated(tmp_path, save(tmp_path, "data.npy", weather2k_raw())))


def npy_objects(tmp_path, world):
    np.save(tmp_path / "data.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    read_weather2k(tmp_path / "data.npy")


def w2k_two_d(tmp_path, world):
    read_weather2k(save(tmp_path, "data.npy", weather2k_raw()[:, :, 0]))


def w2k_region_layout(tmp_path, world):
    read_weather2k(save(tmp_path, "data.npy", weather2k_raw().transpose(2, 0, 1)))


def w2k_13_features(tmp_path, world):
    read_weather2k(save(tmp_path, "data.npy", weather2k_raw()[:, :13]))


def w2k_no_stations(tmp_path, world):
    read_weather2k(save(tmp_path, "data.npy", weather2k_raw()[:0]))


def region_lonlat_count(tmp_path, world):
    data, lonlat = vnnet_region()
    read_vnnet_region(save(tmp_path, "r.npy", data), save(tmp_path, "ll.npy", lonlat[:3]))


def region_lonlat_transposed(tmp_path, world):
    data, lonlat = vnnet_region()
    read_vnnet_region(save(tmp_path, "r.npy", data), save(tmp_path, "ll.npy", lonlat.T))


def region_lonlat_swapped(tmp_path, world):
    data, lonlat = vnnet_region()
    lonlat[:, 1] += 60.0  # latitudes 95..98
    read_vnnet_region(save(tmp_path, "r.npy", data), save(tmp_path, "ll.npy", lonlat))


def himawari_three_d(tmp_path, world):
    read_himawari(save(tmp_path, "h8.npy", np.zeros((4, 16, 16), np.float16)), region="NE")


def himawari_channel_first(tmp_path, world):
    cube = np.full((4, 6, 32, 32), 250.0, np.float16)  # (time, channel, H, W)
    read_himawari(save(tmp_path, "h8.npy", cube), region="NE")


def himawari_channel_first_small(tmp_path, world):
    cube = np.full((4, 6, 16, 16), 250.0, np.float16)  # 16 "channels" would be plausible
    read_himawari(save(tmp_path, "h8.npy", cube), region="SE")


def unknown_suffix(tmp_path, world):
    (tmp_path / "stations.h5").write_bytes(b"")
    open_stations(tmp_path / "stations.h5")


FILE_CASES = [
    pytest.param(nc_stations, r"cut_stations.nc: could not be opened as a netCDF4 file.*"
                 "truncated or corrupt", id="truncated-netcdf-stations"),
    pytest.param(nc_satellite, "cut_satellite.nc: could not be opened as a netCDF4 file",
                 id="truncated-netcdf-satellite"),
    pytest.param(npy_garbage, r"data.npy: could not be read as a \.npy array",
                 id="corrupt-npy"),
    pytest.param(npy_truncated, r"cut_data.npy: could not be read as a \.npy array.*truncated",
                 id="truncated-npy"),
    pytest.param(npy_objects, r"could not be read as a \.npy array", id="object-npy"),
    pytest.param(w2k_two_d, r"expected a 3-d array \(station, feature=23, time\), got shape "
                 r"\(4, 23\)", id="weather2k-2d"),
    pytest.param(w2k_region_layout, "got 4 .*read by read_vnnet_region",
                 id="weather2k-given-region-layout"),
    pytest.param(w2k_13_features, "13-feature, 3-hourly Hugging Face release",
                 id="weather2k-13-features"),
    pytest.param(w2k_no_stations, "the dataset has no stations", id="weather2k-no-stations"),
    pytest.param(region_lonlat_count, "ll.npy: has 3 stations but .*r.npy has 4",
                 id="lonlat-station-count"),
    pytest.param(region_lonlat_transposed, r"expected shape \(station, 2\) holding \(lon, lat\)",
                 id="lonlat-transposed"),
    pytest.param(region_lonlat_swapped, r"latitudes must be in \[-90, 90\]",
                 id="lonlat-lat-out-of-range"),
    pytest.param(himawari_three_d, r"expected a 4-d array \(time, H, W, channel\)",
                 id="himawari-3d"),
    pytest.param(himawari_channel_first, r"32 channels on its last axis.*\(time, channel, H, "
                 r"W\)\?", id="himawari-channel-first"),
    pytest.param(himawari_channel_first_small, r"region 'SE' is a square box but the frames .* "
                 r"are 6 x 16 pixels", id="himawari-channel-first-16px"),
    pytest.param(unknown_suffix, "unknown file type '.h5'", id="unknown-file-type"),
]


@pytest.mark.parametrize(("make", "match"), FILE_CASES)
def test_bad_files(tmp_path, world, make, match):
    with pytest.raises(ValueError, match=match):
        make(tmp_path, world)


# --- model and trained model -----------------------------------------------------------------
@pytest.mark.parametrize(("options", "match"), [
    pytest.param({"loss": "mea"}, "loss must be 'mae', 'mse' or 'huber', got 'mea'",
                 id="loss-name"),
    pytest.param({"loss_units": "kelvin"}, "loss_units must be 'physical' or 'scaled'",
                 id="loss-units"),
    pytest.param({"lr": 0.0}, "need lr > 0", id="lr-zero"),
])
def test_bad_forecaster_options(world, options, match):
    from vnnet import Forecaster
    from vnnet.models import Persistence

    dm = WeatherDataModule(*world, n_his=6, n_pred=3, use_satellite=False)
    with pytest.raises(ValueError, match=match):
        Forecaster(Persistence(dm.description()), **options)


def test_new_images_must_match_the_training_images():
    from vnnet import Forecaster

    fixtures = Path(__file__).parent / "fixtures"
    forecaster = Forecaster.load_from_checkpoint(fixtures / "vnnet_tiny.ckpt")
    stations = open_stations(fixtures / "vnnet_tiny_stations.nc")
    satellite = open_satellite(fixtures / "vnnet_tiny_satellite.nc")
    with pytest.raises(ValueError, match=r"channels \['a', 'b'\] \(trained on \['ir1', 'ir2'\]"):
        forecaster.predict_xarray(stations, satellite.assign_coords(channel=["a", "b"]))
    with pytest.raises(ValueError, match=r"lat grid of 16 pixels 35\.7.* \(trained on 16 pixels "
                                         r"36\.2"):
        forecaster.predict_xarray(stations, satellite.assign_coords(lat=satellite.lat - 0.5))


# --- command line ----------------------------------------------------------------------------
TINY = ["--data.synthetic.n_stations", "4", "--data.synthetic.n_days", "3",
        "--data.synthetic.image_size", "16", "--data.synthetic.n_channels", "2",
        "--data.n_his", "4", "--data.n_pred", "2", "--model.model.init_args.hidden", "8",
        "--trainer.max_epochs", "1", "--trainer.logger", "false",
        "--trainer.enable_progress_bar", "false"]


def run_cli(args: list[str]) -> tuple[int, str]:
    """(exit status, stderr) of ``vnnet ARGS`` run in this process."""
    from vnnet.cli import main

    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), mock.patch.object(sys, "argv", ["vnnet"]), \
            pytest.raises(SystemExit) as exit_info:
        main(args)
    code = exit_info.value.code
    if isinstance(code, str):  # sys.exit("message"): Python prints it and exits with 1
        return 1, stderr.getvalue() + code
    return int(code or 0), stderr.getvalue()


def typo_config(tmp_path: Path) -> list[str]:
    config = Path("configs/quickstart.yaml").read_text()
    assert "  batch_size: 16" in config
    (tmp_path / "typo.yaml").write_text(config.replace("  batch_size: 16", "  batch_szie: 16"))
    return ["fit", "--config", str(tmp_path / "typo.yaml")]


@pytest.mark.parametrize(("args", "match"), [
    pytest.param(typo_config, r"^error: Subcommand 'fit' does not accept option "
                 r"'data\.batch_szie'", id="yaml-typo"),
    pytest.param(["--model.loss", "mea"], r"^error: Parser key \"model\.loss\":\s+Expected a "
                 r"typing\.Literal\['mae', 'mse', 'huber'\]\. Got value: mea", id="loss-name"),
    pytest.param(["--data.split", "[0.8, 0.5, 0.2]"], r"^vnnet: error: split: fractions must "
                 r"be three non-negative numbers", id="split"),
    pytest.param(["--data.target", "snow_depth"], r"^vnnet: error: target: unknown "
                 r"variable\(s\) \['snow_depth'\]", id="unknown-target"),
    pytest.param(["--data.stations", "/nonexistent/stations.nc"], r"^vnnet: error: stations: "
                 "no such file or directory: /nonexistent/stations.nc", id="nonexistent-path"),
    pytest.param(["--data.n_pred", "0"], r"^vnnet: error: n_pred must be an integer >= 1",
                 id="n_pred-zero"),
    pytest.param(["--data.batch_size", "0"], r"^vnnet: error: batch_size must be an integer",
                 id="batch_size-zero"),
])
def test_bad_command_lines(tmp_path, args, match):
    if callable(args):
        args = args(tmp_path)
    else:
        args = ["fit", "--config", "configs/quickstart.yaml", *TINY, *args]
    code, stderr = run_cli([*args, "--trainer.default_root_dir", str(tmp_path)])
    assert code != 0
    assert "Traceback" not in stderr
    assert re.search(match, stderr, flags=re.MULTILINE), stderr


def test_data_describe_of_a_corrupt_file(tmp_path):
    (tmp_path / "broken.nc").write_bytes(b"CDF\x01 this is not a netCDF file")
    code, stderr = run_cli(["data", "describe", str(tmp_path / "broken.nc")])
    assert code == 2
    assert "broken.nc: could not be opened as a netCDF4 file" in stderr
