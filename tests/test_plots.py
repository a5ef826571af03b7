"""vnnet.plots: every figure is rendered with Agg and checked for what it drew."""

from __future__ import annotations

import importlib.util

import matplotlib
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure

from vnnet import plots
from vnnet.data.synthetic import synthetic_world
from vnnet.predict import forecasts_to_xarray

HAS_CARTOPY = importlib.util.find_spec("cartopy") is not None


@pytest.fixture(scope="module")
def world() -> tuple[xr.Dataset, xr.DataArray]:
    return synthetic_world(n_stations=5, n_days=3, image_size=16)


@pytest.fixture(scope="module")
def forecast(world: tuple[xr.Dataset, xr.DataArray]) -> xr.Dataset:
    """6-hour forecasts from 20 init times: the observed future plus 0.5 degC."""
    stations, _ = world
    n_pred, first = 6, 10
    inits = stations.indexes["time"][first:first + 20]
    obs = stations["air_temperature"].values
    values = np.stack([obs[i + 1:i + 1 + n_pred] for i in range(first, first + 20)]) + 0.5
    description = {
        "n_pred": n_pred, "target_variables": ["air_temperature"], "time_step": "1h",
        "station_ids": [str(s) for s in stations.station.values],
        "units": {"air_temperature": "degC"}, "lat": stations.lat.values,
        "lon": stations.lon.values, "elevation": stations.elevation.values,
    }
    return forecasts_to_xarray(values[..., None], inits, description)


def _draw(fig: Figure) -> Figure:
    assert isinstance(fig, Figure)
    fig.canvas.draw()  # Agg: a real rendering pass, so layout and artists must be valid
    return fig


def _scatters(ax: matplotlib.axes.Axes) -> list[PathCollection]:
    return [c for c in ax.collections if isinstance(c, PathCollection)]


def _colorbar_label(fig: Figure) -> str:
    bars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert len(bars) == 1
    return bars[0].get_ylabel()


# --------------------------------------------------------------------------------------------
def test_station_error_map(world: tuple[xr.Dataset, xr.DataArray]) -> None:
    stations, _ = world
    ids = [str(s) for s in stations.station.values]
    errors = xr.DataArray(np.arange(1.0, 6.0), dims="station", coords={"station": ids},
                          attrs={"units": "degC"})
    fig = _draw(plots.station_error_map(stations, errors, label_stations=True))
    assert len(fig.axes) == 2  # map + colour bar
    ax = fig.axes[0]
    assert ax.get_xlabel() == "longitude (deg E)" and ax.get_ylabel() == "latitude (deg N)"
    assert ax.get_title() == "MAE per station"
    assert _colorbar_label(fig) == "MAE (degC)"
    (points,) = _scatters(ax)
    np.testing.assert_allclose(points.get_offsets(), np.c_[stations.lon, stations.lat])
    np.testing.assert_allclose(points.get_array(), np.arange(1.0, 6.0))
    assert sorted(t.get_text() for t in ax.texts) == ids

    # A Series missing one station: that station is drawn (grey, masked), in station order.
    series = pd.Series([2.0, 1.0], index=[ids[3], ids[0]])
    fig = _draw(plots.station_error_map(stations, series, error_name="RMSE", units="K",
                                        title="t"))
    values = _scatters(fig.axes[0])[0].get_array()
    assert np.ma.getmaskarray(values).tolist() == [False, True, True, False, True]
    assert values[0] == 1.0 and values[3] == 2.0
    assert _colorbar_label(fig) == "RMSE (K)" and fig.axes[0].get_title() == "t"
    assert not fig.axes[0].texts

    # Plain arrays in station order, and a {id: (lat, lon)} mapping for the positions.
    coords = {i: (float(la), float(lo)) for i, la, lo in zip(ids, stations.lat.values,
                                                             stations.lon.values, strict=True)}
    fig = _draw(plots.station_error_map(coords, np.ones(5)))
    assert _colorbar_label(fig) == "MAE"  # no units known


def test_station_error_map_rejects_bad_input(world: tuple[xr.Dataset, xr.DataArray]) -> None:
    stations, _ = world
    with pytest.raises(ValueError, match="unknown station.*'XYZ'"):
        plots.station_error_map(stations, pd.Series([1.0], index=["XYZ"]))
    with pytest.raises(ValueError, match="3 values for 5 stations"):
        plots.station_error_map(stations, np.ones(3))
    with pytest.raises(ValueError, match="pick a target"):
        plots.station_error_map(stations, np.ones((5, 2)))
    with pytest.raises(ValueError, match="dims"):
        plots.station_error_map(stations, stations["air_temperature"])
    with pytest.raises(ValueError, match="no finite error"):
        plots.station_error_map(stations, np.full(5, np.nan))
    with pytest.raises(ValueError, match=r"coordinates \['lat'\] are missing"):
        plots.station_error_map(stations.drop_vars("lat"), np.ones(5))
    with pytest.raises(ValueError, match="lacks columns"):
        plots.station_error_map(pd.DataFrame({"station": ["a"], "lat": [1.0]}), [1.0])


# --------------------------------------------------------------------------------------------
def test_forecast_vs_observation(world: tuple[xr.Dataset, xr.DataArray],
                                 forecast: xr.Dataset) -> None:
    stations, _ = world
    fig = _draw(plots.forecast_vs_observation(forecast, stations, "S001", "air_temperature"))
    assert len(fig.axes) == 1
    ax = fig.axes[0]
    assert len(ax.lines) == 1 + 6  # observed + max_init_times evenly spaced trajectories
    assert ax.get_title() == "station S001"
    assert ax.get_ylabel() == "air_temperature (degC)" and ax.get_xlabel() == "time (UTC)"
    assert fig.get_suptitle() == "air_temperature: observed and forecast"
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend[0] == "observed" and legend[1] == "forecast from 2021-05-01 10:00"

    # Explicit init times; each trajectory sits at its valid times with the forecast values.
    inits = ["2021-05-01 12:00", "2021-05-01 15:00"]
    fig = _draw(plots.forecast_vs_observation(forecast, stations, ["S000", "S003"],
                                              "air_temperature", inits))
    assert len(fig.axes) == 2
    assert [ax.get_title() for ax in fig.axes] == ["station S000", "station S003"]
    assert fig.axes[0].get_xlabel() == "" and fig.axes[1].get_xlabel() == "time (UTC)"
    line = fig.axes[1].lines[2]  # S003, from 15:00
    expected_x = pd.date_range("2021-05-01 16:00", periods=6, freq="h")
    assert pd.DatetimeIndex(line.get_xdata()).equals(expected_x)
    expected_y = forecast["air_temperature"].sel(init_time=inits[1], station="S003").values
    np.testing.assert_allclose(line.get_ydata(), expected_y)
    observed = fig.axes[1].lines[0]
    # Observed from one forecast length before the first init to the last valid time.
    obs_x = pd.DatetimeIndex(observed.get_xdata())
    assert obs_x[0] == pd.Timestamp("2021-05-01 06:00")
    assert obs_x[-1] == pd.Timestamp("2021-05-01 21:00")


def test_forecast_vs_observation_rejects_bad_input(world: tuple[xr.Dataset, xr.DataArray],
                                                   forecast: xr.Dataset) -> None:
    stations, _ = world
    with pytest.raises(ValueError, match="unknown station 'S999' in forecast_ds"):
        plots.forecast_vs_observation(forecast, stations, "S999", "air_temperature")
    with pytest.raises(ValueError, match="unknown station 'S002' in observations_ds"):
        plots.forecast_vs_observation(forecast, stations.drop_sel(station="S002"), "S002",
                                      "air_temperature")
    with pytest.raises(ValueError, match="forecast_ds: no variable 'relative_humidity'"):
        plots.forecast_vs_observation(forecast, stations, "S000", "relative_humidity")
    with pytest.raises(ValueError, match="observations_ds: no variable"):
        plots.forecast_vs_observation(forecast, stations[["wind_speed"]], "S000",
                                      "air_temperature")
    with pytest.raises(ValueError, match="forecast_ds: variable 'air_temperature' must have dims"):
        plots.forecast_vs_observation(stations, stations, "S000", "air_temperature")
    with pytest.raises(ValueError, match="forecast_ds: coordinate 'lead_time' is missing"):
        plots.forecast_vs_observation(forecast.drop_vars(["lead_time", "valid_time"]), stations,
                                      "S000", "air_temperature")
    with pytest.raises(ValueError, match="not in the forecast"):
        plots.forecast_vs_observation(forecast, stations, "S000", "air_temperature",
                                      ["2021-06-01 00:00"])


# --------------------------------------------------------------------------------------------
def test_error_by_lead() -> None:
    results = {
        "persistence": np.array([1.0, 1.5, 2.0, 2.4]),
        "VN-Net": {"test/mae": 0.9, "test/mae_h2": 1.1, "test/mae_h1": 0.8,
                   "test/rmse_h1": 9.0, "test/mae_h3": 1.3, "test/mae_h4": 1.4},
    }
    fig = _draw(plots.error_by_lead(results, units="degC"))
    assert len(fig.axes) == 1
    ax = fig.axes[0]
    assert len(ax.lines) == 2
    assert ax.get_xlabel() == "lead time (h)" and ax.get_ylabel() == "MAE (degC)"
    assert ax.get_title() == "MAE by lead time"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["persistence", "VN-Net"]
    np.testing.assert_array_equal(ax.lines[0].get_xdata(), [1, 2, 3, 4])
    np.testing.assert_allclose(ax.lines[1].get_ydata(), [0.8, 1.1, 1.3, 1.4])  # sorted by lead

    per_target = {"m": {"rmse_air_temperature_h1": 2.0, "rmse_air_temperature_h2": 3.0,
                        "rmse_h1": 7.0}}
    fig = _draw(plots.error_by_lead(per_target, "rmse", target="air_temperature"))
    assert fig.axes[0].get_ylabel() == "RMSE"
    np.testing.assert_allclose(fig.axes[0].lines[0].get_ydata(), [2.0, 3.0])


def test_error_by_lead_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="non-empty dict"):
        plots.error_by_lead({})
    with pytest.raises(ValueError, match="no keys like 'mae_h<k>'"):
        plots.error_by_lead({"m": {"test/rmse_h1": 1.0}})
    with pytest.raises(ValueError, match="several keys for lead 1"):
        plots.error_by_lead({"m": {"val/mae_h1": 1.0, "test/mae_h1": 2.0}})
    with pytest.raises(ValueError, match="1-D array"):
        plots.error_by_lead({"m": np.ones((2, 3))})


# --------------------------------------------------------------------------------------------
def test_satellite_frame(world: tuple[xr.Dataset, xr.DataArray]) -> None:
    stations, satellite = world
    fig = _draw(plots.satellite_frame(satellite, "2021-05-01 05:00", "ir2", stations,
                                      label_stations=True))
    assert len(fig.axes) == 2
    ax = fig.axes[0]
    assert len(ax.images) == 1
    image = ax.images[0]
    lat, lon = satellite.lat.values, satellite.lon.values  # lat descending, 0.4 deg pixels
    np.testing.assert_allclose(image.get_extent(), [lon[0] - 0.2, lon[-1] + 0.2,
                                                    lat[-1] - 0.2, lat[0] + 0.2])
    assert image.origin == "upper"
    np.testing.assert_allclose(image.get_array(),
                               satellite.sel(time="2021-05-01 05:00", channel="ir2").values)
    (points,) = _scatters(ax)
    assert len(points.get_offsets()) == 5 and len(ax.texts) == 5
    assert ax.get_title() == "ir2, 2021-05-01 05:00 UTC"
    assert ax.get_xlabel() == "longitude (deg E)" and ax.get_ylabel() == "latitude (deg N)"
    assert _colorbar_label(fig) == "infrared brightness temperature (K)"

    fig = _draw(plots.satellite_frame(satellite, 0, 3))  # frame and channel indices
    assert fig.axes[0].get_title() == "ir4, 2021-05-01 00:00 UTC"
    assert not fig.axes[0].collections


@pytest.mark.parametrize("lat_descending", [True, False])
def test_satellite_frame_is_north_up(lat_descending: bool) -> None:
    # Northern half bright (1), southern half dark (0): rendered pixels must agree.
    lat = np.arange(40.5, 30.0, -1.0) if lat_descending else np.arange(30.5, 41.0, 1.0)
    values = (lat > 35.0).astype(float)[:, None] * np.ones(8)
    cube = xr.DataArray(values[None, None], dims=("time", "channel", "lat", "lon"),
                        coords={"time": [np.datetime64("2020-01-01T00:00", "ns")],
                                "channel": ["vis"], "lat": lat,
                                "lon": np.arange(100.5, 108.0, 1.0)},
                        attrs={"units": "1"})
    fig = _draw(plots.satellite_frame(cube, 0, "vis", cmap="gray", vmin=0, vmax=1))
    ax = fig.axes[0]
    rgba = np.asarray(fig.canvas.buffer_rgba())
    height = rgba.shape[0]

    def brightness(lon: float, lat_: float) -> int:
        x, y = ax.transData.transform((lon, lat_))
        return int(rgba[int(height - y), int(x), 0])

    assert brightness(104.0, 39.0) > 200  # north: white
    assert brightness(104.0, 32.0) < 50  # south: black
    assert ax.get_ylim() == pytest.approx((30.0, 41.0))


def test_satellite_frame_rejects_bad_input(world: tuple[xr.Dataset, xr.DataArray]) -> None:
    stations, satellite = world
    with pytest.raises(ValueError, match="not a satellite time"):
        plots.satellite_frame(satellite, "2030-01-01", "ir1")
    with pytest.raises(ValueError, match="out of range"):
        plots.satellite_frame(satellite, 500, "ir1")
    with pytest.raises(ValueError, match="unknown channel 'vis'"):
        plots.satellite_frame(satellite, 0, "vis")
    with pytest.raises(ValueError, match="dims must be"):
        plots.satellite_frame(satellite.isel(channel=0), 0, 0)
    with pytest.raises(ValueError, match="'station' dimension"):
        plots.satellite_frame(satellite, 0, 0, stations=satellite)
    with pytest.raises(ValueError, match="unknown colour map"):
        plots.satellite_frame(satellite, 0, 0, cmap="no-such-map")


# --------------------------------------------------------------------------------------------
def test_fusion_attention_maps_is_the_analysis_function() -> None:
    # Computed in vnnet.analysis (tested in tests/test_analysis.py); kept in the plots API.
    from vnnet import analysis

    assert plots.fusion_attention_maps is analysis.fusion_attention_maps


def test_attention_overlay(world: tuple[xr.Dataset, xr.DataArray]) -> None:
    stations, satellite = world
    ids = [str(s) for s in stations.station.values]
    rng = np.random.default_rng(0)
    maps = plots.fusion_attention_maps(rng.random((1, 5, 16)), ids, satellite.lat.values,
                                       satellite.lon.values, (4, 4), 0)
    frame = satellite.isel(time=3, channel=0)
    fig = _draw(plots.attention_overlay(maps.isel(layer=0), stations, "S002", frame))
    assert len(fig.axes) == 2
    ax = fig.axes[0]
    assert len(ax.images) == 2  # satellite frame + attention
    background, weights = ax.images
    assert background.get_array().shape == (16, 16) and weights.get_array().shape == (4, 4)
    assert weights.get_alpha() == 0.6
    np.testing.assert_allclose(weights.get_extent(), background.get_extent())  # same box
    np.testing.assert_allclose(weights.get_array(), maps.sel(layer=0, station="S002").values)
    others, star = _scatters(ax)
    assert len(others.get_offsets()) == 4
    np.testing.assert_allclose(star.get_offsets(), [[stations.lon.values[2],
                                                     stations.lat.values[2]]])
    assert ax.get_title() == "attention of station S002"
    assert ax.get_xlabel() == "longitude (deg E)" and ax.get_ylabel() == "latitude (deg N)"
    assert _colorbar_label(fig) == "attention weight"

    averaged = maps.isel(layer=0).mean("station")  # a plain (lat, lon) map, no frame
    fig = _draw(plots.attention_overlay(averaged, stations))
    assert len(fig.axes[0].images) == 1 and fig.axes[0].images[0].get_alpha() is None
    assert len(_scatters(fig.axes[0])) == 1 and fig.axes[0].get_title() == "attention map"


def test_attention_overlay_rejects_bad_input(world: tuple[xr.Dataset, xr.DataArray]) -> None:
    stations, satellite = world
    ids = [str(s) for s in stations.station.values]
    maps = plots.fusion_attention_maps(np.ones((1, 10, 16)), ids, satellite.lat.values,
                                       satellite.lon.values, (4, 4), 0)
    with pytest.raises(ValueError, match=r"dims must be \('lat', 'lon'\)"):
        plots.attention_overlay(maps.isel(station=0), stations)  # still has 'layer'
    with pytest.raises(ValueError, match="pass station="):
        plots.attention_overlay(maps.isel(layer=0), stations)
    with pytest.raises(ValueError, match="unknown station 'S9'"):
        plots.attention_overlay(maps.isel(layer=0), stations, "S9")
    with pytest.raises(ValueError, match="frame: dims must be"):
        plots.attention_overlay(maps.isel(layer=0), stations, "S000", satellite.isel(time=0))
    with pytest.raises(ValueError, match="expected an xarray.DataArray"):
        plots.attention_overlay(np.ones((4, 4)), stations)


# --------------------------------------------------------------------------------------------
def test_save_figure(tmp_path, world: tuple[xr.Dataset, xr.DataArray]) -> None:
    stations, _ = world
    fig = plots.station_error_map(stations, np.ones(5))
    path = plots.save_figure(fig, tmp_path / "sub" / "map", dpi=40)
    assert path == tmp_path / "sub" / "map.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="writes PNG"):
        plots.save_figure(fig, tmp_path / "map.pdf")
    with pytest.raises(ValueError, match="Figure"):
        plots.save_figure("not a figure", tmp_path / "x.png")


@pytest.mark.skipif(HAS_CARTOPY, reason="checks the fallback without cartopy")
def test_plain_axes_without_cartopy(world: tuple[xr.Dataset, xr.DataArray]) -> None:
    stations, _ = world
    assert plots._cartopy_crs(None) is None
    with pytest.raises(ValueError, match="cartopy is not installed"):
        plots.station_error_map(stations, np.ones(5), use_cartopy=True)
