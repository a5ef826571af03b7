"""vnnet.analysis: errors, vision contribution with paired bootstrap, skill, attention maps and
permutation importance, on hand-made errors and a tiny synthetic world."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from vnnet import analysis
from vnnet.data import WeatherDataModule, station_pixels, synthetic_world
from vnnet.forecaster import Forecaster
from vnnet.models import Persistence, VisionOptions, VNNet
from vnnet.predict import forecasts_to_xarray

LEADS = pd.to_timedelta([1, 2], unit="h")


def _errors(values: np.ndarray, name: str = "air_temperature") -> xr.Dataset:
    """Hand-made (init_time, lead_time, station) errors."""
    n_init, n_lead, n_station = values.shape
    return xr.Dataset(
        {name: (("init_time", "lead_time", "station"), values, {"units": "degC"})},
        coords={"init_time": pd.date_range("2021-01-01", periods=n_init, freq="h"),
                "lead_time": pd.to_timedelta(np.arange(1, n_lead + 1), unit="h"),
                "station": [f"S{i}" for i in range(n_station)]})


@pytest.fixture(scope="module")
def world() -> tuple[xr.Dataset, xr.DataArray]:
    return synthetic_world(n_stations=5, n_days=5, image_size=16, n_channels=2)


@pytest.fixture(scope="module")
def datamodule(world: tuple[xr.Dataset, xr.DataArray]) -> WeatherDataModule:
    stations, satellite = world
    dm = WeatherDataModule(stations, satellite, target="air_temperature", n_his=6, n_pred=3,
                           batch_size=8)
    dm.setup()
    return dm


@pytest.fixture(scope="module")
def vnnet_forecaster(datamodule: WeatherDataModule) -> Forecaster:
    torch.manual_seed(0)
    model = VNNet(datamodule.description(), hidden=8,
                  vision=VisionOptions(stem_channels=4, n_queries=2))
    return Forecaster(model)


# ---- absolute errors ---------------------------------------------------------------------
def test_absolute_errors_align_by_valid_time_with_nan_where_unobserved() -> None:
    times = pd.date_range("2021-01-01", periods=6, freq="h")
    obs = np.arange(12, dtype=float).reshape(6, 2) * 10  # (time, station)
    obs[3, 1] = np.nan
    observations = xr.Dataset(
        {"air_temperature": (("time", "station"), obs[:, ::-1], {"units": "degC"})},
        coords={"time": times, "station": ["B", "A"]})  # stations in the other order
    description = {"n_pred": 2, "target_variables": ["air_temperature"], "time_step": "1h",
                   "station_ids": ["A", "B"], "units": {"air_temperature": "degC"},
                   "lat": [30.0, 31.0], "lon": [110.0, 111.0], "elevation": [0.0, 5.0]}
    inits = times[[1, 4]]  # the second forecast's lead 2 (06:00) is after the last obs
    forecast = forecasts_to_xarray(np.ones((2, 2, 2, 1)), inits, description)
    errors = analysis.absolute_errors(forecast, observations)
    err = errors["air_temperature"]
    assert err.dims == ("init_time", "lead_time", "station")
    assert err.attrs["units"] == "degC"
    assert "valid_time" in errors.coords and list(errors.station.values) == ["A", "B"]
    # init 01:00: valid 02:00 and 03:00 -> obs rows 2, 3; station A is column 0 of `obs`.
    np.testing.assert_allclose(err.values[0], [[abs(1 - obs[2, 0]), abs(1 - obs[2, 1])],
                                               [abs(1 - obs[3, 0]), np.nan]])
    # init 04:00: valid 05:00 (row 5) and 06:00 (not observed).
    np.testing.assert_allclose(err.values[1], [[abs(1 - obs[5, 0]), abs(1 - obs[5, 1])],
                                               [np.nan, np.nan]])
    with pytest.raises(ValueError, match="no observations for forecast station"):
        analysis.absolute_errors(forecast, observations.sel(station=["B"]))
    with pytest.raises(ValueError, match="no variable"):
        analysis.absolute_errors(forecast, observations.rename(air_temperature="t"))


def test_common_support_masks_every_model_where_one_is_missing() -> None:
    a = _errors(np.ones((4, 2, 3)))
    b_values = 2 * np.ones((5, 2, 3))
    b_values[0, 1, 2] = np.nan
    b = _errors(b_values)  # one more init time than a
    out = analysis.common_support({"a": a, "b": b["air_temperature"]})
    assert out["a"].sizes["init_time"] == 4 and out["b"].sizes["init_time"] == 4
    assert np.isnan(out["a"]["air_temperature"].values[0, 1, 2])
    assert np.isfinite(out["a"]["air_temperature"].values).sum() == 4 * 2 * 3 - 1


# ---- vision contribution -----------------------------------------------------------------
def test_bootstrap_interval_contains_the_known_relative_change() -> None:
    rng = np.random.default_rng(1)
    shape = (2000, 2, 3)
    reference = _errors(rng.exponential(1.0, shape))
    model = _errors(rng.exponential(0.8, shape))  # true relative change: -0.2
    result = analysis.vision_contribution({"N-Net": reference, "VN-Net": model}, by=(),
                                          n_boot=500)
    change = result["relative_change"].sel(model="VN-Net", target="air_temperature")
    lower = float(result["ci_lower"].sel(model="VN-Net", target="air_temperature"))
    upper = float(result["ci_upper"].sel(model="VN-Net", target="air_temperature"))
    assert lower < -0.2 < upper
    assert lower < float(change) < upper and abs(float(change) + 0.2) < 0.03
    assert result["n_observed"].sel(model="VN-Net").item() == 2000 * 2 * 3
    assert result.attrs["reference"] == "N-Net"

    per_cell = analysis.vision_contribution({"N-Net": reference, "VN-Net": model}, n_boot=50)
    assert per_cell["relative_change"].dims == ("model", "target", "lead_time", "station")
    assert per_cell["relative_change"].shape == (1, 1, 2, 3)
    assert (per_cell["ci_lower"] <= per_cell["relative_change"]).all()
    assert (per_cell["relative_change"] <= per_cell["ci_upper"]).all()


def test_bootstrap_interval_narrows_with_more_init_times() -> None:
    def width(n_init: int) -> float:
        rng = np.random.default_rng(2)
        errors = {"N-Net": _errors(rng.exponential(1.0, (n_init, 1, 2))),
                  "VN-Net": _errors(rng.exponential(0.9, (n_init, 1, 2)))}
        result = analysis.vision_contribution(errors, by=(), n_boot=400, seed=3)
        return (result["ci_upper"] - result["ci_lower"]).item()

    small, large = width(200), width(3200)
    assert large < 0.5 * small  # ~1/sqrt(16) = 0.25 expected


def test_bootstrap_is_paired_across_models() -> None:
    # The model is exactly 10 % better at every point, while errors swing wildly between
    # init times: resampling both with the same windows gives a zero-width interval.
    rng = np.random.default_rng(4)
    scale = rng.lognormal(0.0, 1.5, size=(300, 1, 1)) * np.ones((300, 2, 2))
    reference = _errors(scale)
    result = analysis.vision_contribution(
        {"N-Net": reference, "VN-Net": _errors(0.9 * scale),
         "noise": _errors(scale * rng.uniform(0.5, 1.5, scale.shape))}, by=("lead_time",))
    vn = result.sel(model="VN-Net", target="air_temperature")
    np.testing.assert_allclose(vn["relative_change"], -0.1, atol=1e-12)
    np.testing.assert_allclose(vn["ci_lower"], -0.1, atol=1e-12)
    np.testing.assert_allclose(vn["ci_upper"], -0.1, atol=1e-12)
    assert list(result.model.values) == ["VN-Net", "noise"]
    noise = result.sel(model="noise")
    assert (noise["ci_upper"] - noise["ci_lower"] > 0.01).all()


def test_bootstrap_weights() -> None:
    rng = np.random.default_rng(0)
    w = analysis.bootstrap_weights(10, 7, rng)
    assert w.shape == (7, 10) and (w.sum(1) == 10).all()
    blocks = analysis.bootstrap_weights(10, 200, rng, block_length=4)
    assert (blocks.sum(1) == 10).all()
    with pytest.raises(ValueError, match="block_length"):
        analysis.bootstrap_weights(10, 5, rng, block_length=11)


def test_vision_contribution_rejects_bad_input() -> None:
    errors = {"N-Net": _errors(np.ones((3, 2, 2)))}
    with pytest.raises(ValueError, match="at least one other model"):
        analysis.vision_contribution(errors)
    with pytest.raises(ValueError, match="not among the models"):
        analysis.vision_contribution({"a": errors["N-Net"], "b": errors["N-Net"]})
    with pytest.raises(ValueError, match="by:"):
        analysis.vision_contribution({**errors, "b": errors["N-Net"]}, by=("init_time",))


# ---- skill -------------------------------------------------------------------------------
def test_skill_against_hand_values() -> None:
    per_lead = np.ones((4, 2, 3))
    model = _errors(per_lead * np.array([1.0, 2.0])[:, None])
    persistence = _errors(per_lead * np.array([2.0, 4.0])[:, None])
    climatology = _errors(per_lead * np.array([4.0, 4.0])[:, None])
    result = analysis.skill({"VN-Net": model, "Persistence": persistence,
                             "Climatology": climatology})
    vn = result["skill"].sel(model="VN-Net", target="air_temperature")
    np.testing.assert_allclose(vn.sel(reference="Persistence"), [0.5, 0.5])
    np.testing.assert_allclose(vn.sel(reference="Climatology"), [0.75, 0.5])
    overall = result["skill_all_leads"].sel(model="VN-Net", target="air_temperature")
    np.testing.assert_allclose(overall.sel(reference="Persistence"), 1 - 1.5 / 3.0)
    np.testing.assert_allclose(overall.sel(reference="Climatology"), 1 - 1.5 / 4.0)
    np.testing.assert_allclose(result["skill"].sel(model="Persistence",
                                                   reference="Persistence"), 0.0)
    np.testing.assert_allclose(result["mae"].sel(model="Climatology"), [[4.0, 4.0]])
    single = analysis.skill({"VN-Net": model, "Persistence": persistence}, "Persistence")
    assert list(single.reference.values) == ["Persistence"]
    with pytest.raises(ValueError, match="not among the models"):
        analysis.skill({"VN-Net": model}, "Persistence")


# ---- attention ---------------------------------------------------------------------------
def test_fusion_attention_maps_put_weights_under_the_station(
        world: tuple[xr.Dataset, xr.DataArray]) -> None:
    stations, satellite = world
    ids = [str(s) for s in stations.station.values]
    n, n_layers, n_queries, (hf, wf) = len(ids), 2, 3, (4, 8)
    pixels = station_pixels(stations.lat.values, stations.lon.values, satellite.lat.values,
                            satellite.lon.values)
    rows, cols = pixels.on_grid(hf, wf)
    attention = np.zeros((2, n_layers * n, n_queries + hf * wf))
    for i in range(n):  # layer 1, station i: all weight on its own feature cell
        attention[1, n + i, n_queries + rows[i] * wf + cols[i]] = 1.0
    maps = analysis.fusion_attention_maps(attention, ids, satellite.lat.values,
                                          satellite.lon.values, (hf, wf), n_queries, sample=1)
    assert maps.dims == ("layer", "station", "lat", "lon") and maps.shape == (2, n, hf, wf)
    assert maps.lat.values[0] > maps.lat.values[-1]  # north first, like the image
    for i, name in enumerate(ids):
        here = maps.sel(layer=1, station=name).sel(lat=stations.lat.values[i],
                                                   lon=stations.lon.values[i], method="nearest")
        assert float(here) == 1.0
    assert float(maps.sel(layer=0).sum()) == 0.0
    with pytest.raises(ValueError, match="n_queries"):
        analysis.fusion_attention_maps(attention, ids, satellite.lat.values,
                                       satellite.lon.values, (hf, wf), 0)


def test_fusion_attention_of_a_model(datamodule: WeatherDataModule,
                                     vnnet_forecaster: Forecaster) -> None:
    maps = analysis.fusion_attention(vnnet_forecaster, datamodule, split="test", sample=2)
    fusion = vnnet_forecaster.model.fusion
    hf, wf = fusion.feature_size
    assert maps.dims == ("layer", "station", "lat", "lon")
    assert maps.shape == (2, 5, hf, wf)
    assert list(maps.station.values) == datamodule.station_ids
    # Feature-grid cell centres inside the image box, north first.
    lat, lon = datamodule.satellite.lat.values, datamodule.satellite.lon.values
    step = abs(lat[1] - lat[0]) * len(lat) / hf
    np.testing.assert_allclose(maps.lat.values, lat[0] + abs(lat[1] - lat[0]) / 2
                               - step * (np.arange(hf) + 0.5))
    assert lon.min() < maps.lon.values.min() < maps.lon.values.max() < lon.max()
    pixel_sum = maps.sum(("lat", "lon"))
    assert (maps >= 0).all() and (pixel_sum <= 1 + 1e-6).all()
    np.testing.assert_allclose(pixel_sum + maps.query_weight, 1.0, atol=1e-5)
    first_test_init = datamodule.times[datamodule.windows("test")[2] + datamodule.n_his - 1]
    assert maps.attrs["init_time"] == str(first_test_init)

    batch = next(iter(datamodule.test_dataloader()))
    mean = analysis.fusion_attention(vnnet_forecaster.model, batch, sample=None)
    assert mean.shape == maps.shape and "init_time" not in mean.attrs
    assert (mean.sum(("lat", "lon")) <= 1 + 1e-6).all()

    nnet = VNNet(datamodule.description(), hidden=8, vision=None)
    with pytest.raises(ValueError, match="no fusion module"):
        analysis.fusion_attention(Forecaster(nnet), batch)
    with pytest.raises(ValueError, match="out of range"):
        analysis.fusion_attention(vnnet_forecaster, datamodule, batch_index=99)


# ---- permutation importance --------------------------------------------------------------
def test_permutation_importance_of_unseen_variables_is_zero(
        datamodule: WeatherDataModule) -> None:
    persistence = Forecaster(Persistence(datamodule.description()))
    others = [v for v in datamodule.input_variables if v != "air_temperature"][:2]
    with pytest.warns(UserWarning, match="static_features"):
        table = analysis.permutation_importance(persistence, datamodule,
                                                variables=["air_temperature", *others],
                                                n_repeats=2, seed=1)
    assert list(table.index) == ["air_temperature", *others, "location", "satellite_images"]
    assert list(table["kind"]) == ["variable"] * 3 + ["location", "images"]
    # Persistence reads only the target's own inputs: the rest cannot matter.
    assert (table.loc[others, "increase"] == 0).all()
    assert table.loc["satellite_images", "increase"] == 0
    assert table.loc["air_temperature", "increase"] > 0.1
    assert table.loc["air_temperature", "relative_increase"] == pytest.approx(
        table.loc["air_temperature", "increase"] / table.loc["air_temperature",
                                                               "baseline_mae"])
    assert np.isfinite(table.loc["air_temperature", "increase_std"])
    assert np.isnan(table.loc["location", "mae"])
    with pytest.raises(ValueError, match="not input variables"):
        analysis.permutation_importance(persistence, datamodule, variables=["nope"])


def test_permutation_importance_of_location_restores_the_model(
        datamodule: WeatherDataModule, vnnet_forecaster: Forecaster) -> None:
    batch = next(iter(datamodule.test_dataloader()))
    vnnet_forecaster.eval()
    with torch.no_grad():
        before = vnnet_forecaster(batch)
    static = vnnet_forecaster.model.static_features.clone()
    table = analysis.permutation_importance(vnnet_forecaster, datamodule, split="val",
                                            variables=["relative_humidity"])
    assert list(table.index) == ["relative_humidity", "location", "satellite_images"]
    assert np.isfinite(table["increase"]).all()
    assert table.loc["location", "increase"] != 0  # the encoder reads the location
    torch.testing.assert_close(vnnet_forecaster.model.static_features, static)
    with torch.no_grad():
        torch.testing.assert_close(vnnet_forecaster(batch), before)
    # The datamodule's arrays were not permuted in place either.
    again = next(iter(datamodule.test_dataloader()))
    torch.testing.assert_close(again.x, batch.x)


def test_cyclic_permutation_has_no_fixed_point() -> None:
    rng = np.random.default_rng(0)
    for n in (2, 3, 10):
        perm = analysis.cyclic_permutation(n, rng)
        assert sorted(perm) == list(range(n)) and (perm != np.arange(n)).all()
    with pytest.raises(ValueError):
        analysis.cyclic_permutation(1, rng)
