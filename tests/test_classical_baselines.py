"""Seasonal persistence (the target 24 h before the valid time) and closed-form ridge regression:
exact values on hand-made worlds, the fit's rules, checkpoints, and both through the CLI."""

import csv
import json

import lightning as L
import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr
import yaml

from vnnet.cli import main
from vnnet.data import WeatherDataModule
from vnnet.data.batch import collate_windows
from vnnet.forecaster import Forecaster
from vnnet.models import Persistence, Ridge, SeasonalPersistence
from vnnet.models.ridge import DEFAULT_ALPHAS, NotFittedError


def make_stations(n_days: int, n_stations: int = 3, seed: int = 0, noise: float = 0.0,
                  target_gaps: float = 0.0) -> xr.Dataset:
    """Humidity and pressure are white noise; temperature is exactly linear in their past:
    ``T(t) = 0.3 (rh(t-4) - 50) - 0.2 (p(t-5) - 1000) + 0.1 (rh(t-6) - 50) + 0.01 elev``
    (+ ``noise`` x N(0, 1)); a share ``target_gaps`` of temperatures is NaN. Hourly, from
    2021-03-01."""
    rng = np.random.default_rng(seed)
    hours, pad = 24 * n_days, 8
    rh = 50.0 + 10.0 * rng.standard_normal((hours + pad, n_stations))
    p = 1000.0 + 5.0 * rng.standard_normal((hours + pad, n_stations))
    elev = np.linspace(10.0, 400.0, n_stations)
    temp = (0.3 * (rh[pad - 4:-4] - 50) - 0.2 * (p[pad - 5:-5] - 1000)
            + 0.1 * (rh[pad - 6:-6] - 50) + 0.01 * elev)
    temp = temp + noise * rng.standard_normal(temp.shape)
    temp[rng.random(temp.shape) < target_gaps] = np.nan
    times = pd.date_range("2021-03-01", periods=hours, freq="h")
    dims = ("time", "station")
    return xr.Dataset(
        {"air_temperature": (dims, temp, {"units": "degC"}),
         "relative_humidity": (dims, rh[pad:], {"units": "%"}),
         "air_pressure": (dims, p[pad:], {"units": "hPa"})},
        coords={"time": times, "station": [f"s{i}" for i in range(n_stations)],
                "lat": ("station", 50.0 + 0.5 * np.arange(n_stations)),
                "lon": ("station", 5.0 + 0.3 * np.arange(n_stations) ** 2),
                "elevation": ("station", elev)})


# ---- seasonal persistence -------------------------------------------------------------------

def seasonal_dm(stations: xr.Dataset, **kwargs) -> WeatherDataModule:
    options = {"target": ["air_temperature", "relative_humidity"], "n_his": 3, "n_pred": 4,
               "split": (0.5, 0.25, 0.25), "batch_size": 500, "target_lag": "24h"}
    return WeatherDataModule(stations, **{**options, **kwargs})


def test_seasonal_persistence_is_the_target_24h_before_the_valid_time():
    stations = make_stations(n_days=4)
    temp = stations.air_temperature.values.copy()
    temp[30, 1] = np.nan  # a gap 24 h before valid time 54: falls back to persistence there
    stations["air_temperature"] = stations.air_temperature.copy(data=temp)
    dm = seasonal_dm(stations)
    dm.setup()
    model = SeasonalPersistence(dm.description())
    windows = dm.dataset("all")
    batch = collate_windows([windows[i] for i in range(len(windows))])
    pred = model(batch)
    fallback = Persistence(dm.description())(batch)
    scaler = dm.station_scaler
    raw = np.stack([stations[v].values for v in dm.targets], axis=-1)  # (time n c)
    k = scaler.index(dm.targets)
    for i, init in enumerate(batch.init_time.tolist()):
        for lead in range(4):
            lagged = init + 1 + lead - 24
            # Never from after the forecast start.
            assert lagged <= init
            known = (raw[lagged] if lagged >= 0 else np.full_like(raw[0], np.nan))  # (n c)
            expect = np.where(np.isfinite(known), (known - scaler.mean[k]) / scaler.std[k],
                              fallback[i, lead].numpy())
            np.testing.assert_allclose(pred[i, lead].numpy(), expect, rtol=1e-5, atol=1e-5)
            np.testing.assert_array_equal(batch.y_lag_mask[i, lead].numpy(), np.isfinite(known))
    # The first windows (valid time - 24 h before the record) and the gap used the fallback.
    assert not batch.y_lag_mask[0].any() and batch.y_lag_mask[-1].all()
    init = 54 - 3  # valid time 54 at lead 3 (index 2): its lagged value is the gap at 30
    assert not batch.y_lag_mask[init - 2, 2, 1, 0] and batch.y_lag_mask[init - 2, 2, 0, 0]
    torch.testing.assert_close(pred[0], fallback[0])
    # predict_xarray on new data asks its own datamodule for the lagged targets.
    forecast = Forecaster(SeasonalPersistence(dm.description())).predict_xarray(stations)
    init = len(dm.times) - 5  # the last window's init time
    np.testing.assert_allclose(forecast.air_temperature.sel(init_time=dm.times[init]).values,
                               raw[init + 1 - 24:init + 5 - 24, :, 0], rtol=1e-5)


def test_lagged_targets_only_when_asked_and_never_from_the_future(tmp_path):
    stations = make_stations(n_days=4)
    dm = seasonal_dm(stations, target_lag=None)
    dm.setup()
    batch = next(iter(dm.test_dataloader()))
    assert batch.y_lag is None and batch.y_lag_mask is None  # other models' batches unchanged
    assert batch.to("cpu").y_lag is None
    if torch.cuda.is_available():  # pinning needs an accelerator
        assert batch.pin_memory().y_lag is None
    with pytest.raises(ValueError, match="target_lag='24h'"):
        SeasonalPersistence(dm.description())(batch)
    with pytest.raises(ValueError, match="SeasonalPersistence needs n_pred <= 24"):
        SeasonalPersistence(seasonal_dm(stations, n_pred=25).description())
    short = seasonal_dm(stations, target_lag="3h")  # 3 h < 4 lead hours: would leak
    short.setup()
    with pytest.raises(ValueError, match="shorter than n_pred"):
        short.test_dataloader()
    # A Trainer run sets the datamodule's target_lag for the model that needs it.
    trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_checkpointing=False,
                        default_root_dir=tmp_path)
    trainer.test(Forecaster(SeasonalPersistence(dm.description())), datamodule=dm,
                 verbose=False)
    assert dm.target_lag == "24h"


# ---- ridge ------------------------------------------------------------------------------------

def linear_dm(stations: xr.Dataset, inputs: list[str] | None = None,
              **kwargs) -> WeatherDataModule:
    dm = WeatherDataModule(stations, target="air_temperature", inputs=inputs, n_his=12,
                           n_pred=3, split=(0.6, 0.2, 0.2), batch_size=16, **kwargs)
    dm.setup()
    return dm


def fitted_ridge(dm: WeatherDataModule, **kwargs) -> Ridge:
    model = Ridge(dm.description(), **kwargs)
    model.fit_closed_form(dm.train_dataloader(), dm.val_dataloader())
    return model


def max_test_error(model: Ridge, dm: WeatherDataModule) -> float:
    worst = 0.0
    for batch in dm.test_dataloader():
        err = (model(batch) - batch.y).abs()[batch.y_mask]
        worst = max(worst, float(err.max()))
    return worst


def test_ridge_recovers_an_exact_linear_relation():
    dm = linear_dm(make_stations(n_days=6, n_stations=6))
    model = fitted_ridge(dm)
    assert model.n_features == 2 * 12 * 3 + 4 + 3 + 2 * 4 * 3
    assert max_test_error(model, dm) < 1e-4  # scaled units (temperature std ~3.6 degC)
    assert (model.alpha == DEFAULT_ALPHAS[0]).all()  # noiseless: the least penalty wins


def test_ridge_leaves_out_rows_whose_target_is_missing():
    # 30 % of temperatures missing (0-filled in batch.y): fitted on, they would pull the
    # forecasts towards 0. Temperature is not an input, so the relation stays exactly linear.
    stations = make_stations(n_days=6, n_stations=6, target_gaps=0.3)
    dm = linear_dm(stations, inputs=["relative_humidity", "air_pressure"])
    model = fitted_ridge(dm, k_neighbours=2)
    assert max_test_error(model, dm) < 1e-4
    observed = sum(dm.dataset("train")[i]["y_mask"].sum(axis=(1, 2))
                   for i in range(len(dm.windows("train"))))  # (h,) observed targets per lead
    np.testing.assert_array_equal(model.rows[:, 0].numpy(), observed)
    assert observed.max() < len(dm.windows("train")) * 6  # some rows were left out


def test_ridge_penalty_is_chosen_on_validation_from_the_grid():
    clean = fitted_ridge(linear_dm(make_stations(n_days=5, n_stations=3, seed=1)))
    noisy_dm = linear_dm(make_stations(n_days=5, n_stations=3, seed=1, noise=3.0))
    noisy, again = fitted_ridge(noisy_dm), fitted_ridge(noisy_dm)
    grid = torch.tensor(DEFAULT_ALPHAS, dtype=torch.float64)
    assert torch.isin(noisy.alpha, grid).all()
    assert (noisy.alpha.log().mean() > clean.alpha.log().mean() + 2.0)
    best = noisy.val_mae.argmin(dim=-1)
    assert torch.equal(noisy.alpha, grid[best])
    # Deterministic: the same data gives the same penalties and weights.
    assert torch.equal(noisy.alpha, again.alpha) and torch.equal(noisy.weight, again.weight)


TINY_WORLD = {"n_stations": 8, "n_days": 20, "image_size": 8, "n_channels": 1}


@pytest.fixture(scope="module")
def synthetic_dm():
    dm = WeatherDataModule(synthetic=TINY_WORLD, target=["air_temperature", "relative_humidity"],
                           n_his=12, n_pred=3, batch_size=16, use_satellite=False, seed=1)
    dm.setup()
    return dm


def test_ridge_beats_persistence_on_the_synthetic_world(synthetic_dm):
    dm = synthetic_dm
    ridge, persistence = fitted_ridge(dm), Persistence(dm.description())
    errors = {"ridge": 0.0, "persistence": 0.0}
    for batch in dm.test_dataloader():
        for name, model in (("ridge", ridge), ("persistence", persistence)):
            errors[name] += float((model(batch) - batch.y).abs()[batch.y_mask].sum())
    assert errors["ridge"] < 0.8 * errors["persistence"]


def test_unfitted_ridge_is_a_clear_error(synthetic_dm):
    model = Ridge(synthetic_dm.description())
    with pytest.raises(NotFittedError, match="Ridge is not fitted: run vnnet fit"):
        model(next(iter(synthetic_dm.test_dataloader())))
    with pytest.raises(ValueError, match="k_neighbours"):
        Ridge(synthetic_dm.description(), k_neighbours=-1)
    with pytest.raises(ValueError, match="alphas"):
        Ridge(synthetic_dm.description(), alphas=[0.0])


def test_ridge_fit_through_lightning_is_in_the_checkpoint(synthetic_dm, tmp_path):
    dm = synthetic_dm
    forecaster = Forecaster(Ridge(dm.description(), k_neighbours=3))
    trainer = L.Trainer(max_epochs=5, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=tmp_path,
                        num_sanity_val_steps=0, limit_train_batches=2)
    trainer.fit(forecaster, datamodule=dm)
    assert trainer.current_epoch == 1  # one epoch: nothing more to learn
    assert bool(forecaster.model.fitted)
    state = forecaster.state_dict()
    assert {"model.weight", "model.alpha", "model.val_mae", "model.fitted"} <= set(state)
    trainer.save_checkpoint(tmp_path / "ridge.ckpt")
    loaded = Forecaster.load_from_checkpoint(tmp_path / "ridge.ckpt").eval()
    batch = next(iter(dm.test_dataloader()))
    torch.testing.assert_close(loaded(batch), forecaster.eval()(batch), rtol=0, atol=0)
    # The fit used every training window, not the Trainer's limit_train_batches.
    alone = fitted_ridge(dm, k_neighbours=3)
    torch.testing.assert_close(alone.weight, forecaster.model.weight)


# ---- through the CLI ------------------------------------------------------------------------

CLI_TINY = ["--data.synthetic.n_stations", "5", "--data.synthetic.n_days", "6",
            "--data.synthetic.image_size", "8", "--data.split", "[0.6, 0.2, 0.2]",
            "--data.n_pred", "3", "--data.batch_size", "16",
            "--trainer.enable_progress_bar", "false", "--trainer.logger", "false"]


def test_cli_ridge_fit_then_test(tmp_path, capsys):
    args = ["--config", "configs/baselines/ridge.yaml", *CLI_TINY,
            "--model.model.init_args.k_neighbours", "2", "--trainer.default_root_dir",
            str(tmp_path)]
    with pytest.raises(SystemExit, match="Ridge is not fitted"):
        main(["test", *args])
    main(["fit", *args])  # fits, checkpoints, then tests the val/mae checkpoint
    out = capsys.readouterr().out
    assert "RMSE" in out and "3h" in out
    metrics = json.loads((tmp_path / "test_metrics.json").read_text())
    assert np.isfinite(metrics["test/mae"]) and metrics["test/mae"] > 0
    best = next(tmp_path.rglob("best*.ckpt"))
    (tmp_path / "test_metrics.json").unlink()
    main(["test", *args, "--ckpt_path", str(best)])
    again = json.loads((tmp_path / "test_metrics.json").read_text())
    assert again["test/mae"] == pytest.approx(metrics["test/mae"], rel=1e-6)


def test_cli_seasonal_persistence_test_without_fit(tmp_path, capsys):
    args = ["--config", "configs/baselines/seasonal_persistence.yaml", *CLI_TINY,
            "--trainer.default_root_dir", str(tmp_path)]
    main(["test", *args])
    assert "RMSE" in capsys.readouterr().out
    metrics = json.loads((tmp_path / "test_metrics.json").read_text())
    assert np.isfinite(metrics["test/mae"]) and metrics["test/mae"] > 0
    with pytest.raises(SystemExit, match="no trainable parameters"):
        main(["fit", *args, "--trainer.max_epochs", "1"])


def test_reproduce_grid_fits_ridge_and_tests_seasonal_persistence(tmp_path):
    grid = {"epochs": 3, "seeds": [0], "leads": [1, 3],
            "regions": {"tiny": CLI_TINY},
            "targets": {"temperature": ["--data.target", "air_temperature"]},
            "models": {"ridge": {"config": "configs/baselines/ridge.yaml"},
                       "seasonal persistence": {
                           "config": "configs/baselines/seasonal_persistence.yaml",
                           "fit": False}}}
    (tmp_path / "grid.yaml").write_text(yaml.safe_dump(grid))
    out = tmp_path / "out"
    main(["reproduce", "--grid", str(tmp_path / "grid.yaml"), "--out", str(out),
          "--progress", "false"])
    rows = {r["model"]: r for r in csv.DictReader((out / "results.csv").open())}
    assert set(rows) == {"ridge", "seasonal persistence"}
    assert all(np.isfinite(float(r["test/mae"])) for r in rows.values())
    # One epoch, however many the grid allows: the closed-form fit does not change.
    ckpts = sorted(p.name for p in (out / "cells").rglob("*.ckpt"))
    assert ckpts == ["best-epoch=000.ckpt", "last.ckpt"]
