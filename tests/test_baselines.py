"""Baselines: climatology from the training split, learned baselines' shapes and gradients,
and every baseline through the CLI (fit -> test, or test alone for the parameter-free ones)."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from vnnet.cli import main
from vnnet.data import WeatherDataModule
from vnnet.models import AGCRN, STGCN, Climatology, GraphWaveNet, GRUBaseline
from vnnet.models.baselines import valid_hours
from vnnet.models.stgcn import scaled_laplacian

# ---- climatology on a hand-made world ---------------------------------------------------

N_DAYS, SPLIT = 4, (0.5, 0.25, 0.25)  # train = days 0-1, val = day 2, test = day 3


def hand_stations(later_shift: float = 0.0) -> xr.Dataset:
    """3 stations x 4 days. Temperature = 10 s + hour + 2 day (+ ``later_shift`` after the
    training days); station 1 never reports 05 UTC in training, station 2 has no training
    temperature at all. Humidity = 50 + s + hour / 2 every day."""
    times = pd.date_range("2021-01-01", periods=24 * N_DAYS, freq="h")
    hour, day = times.hour.to_numpy()[:, None], (np.arange(len(times)) // 24)[:, None]
    s = np.arange(3)[None, :]
    temp = (10.0 * s + hour + 2.0 * day + np.where(day >= 2, later_shift, 0.0)).astype(float)
    train = day[:, 0] < 2
    temp[train & (hour[:, 0] == 5), 1] = np.nan
    temp[train, 2] = np.nan
    rh = np.broadcast_to(50.0 + s + hour / 2.0, temp.shape).copy()
    return xr.Dataset(
        {"air_temperature": (("time", "station"), temp, {"units": "degC"}),
         "relative_humidity": (("time", "station"), rh, {"units": "%"})},
        coords={"time": times, "station": ["a", "b", "c"], "lat": ("station", [30.0, 30.5, 31.5]),
                "lon": ("station", [110.0, 111.0, 110.2]),
                "elevation": ("station", [10.0, 200.0, 50.0])})


def hand_dm(stations: xr.Dataset) -> WeatherDataModule:
    return WeatherDataModule(stations, target=["air_temperature", "relative_humidity"],
                             n_his=3, n_pred=4, split=SPLIT, batch_size=32)


def test_climatology_is_the_train_mean_per_station_and_hour():
    dm = hand_dm(hand_stations())
    hours = np.arange(24.0)
    temp = np.stack([hours + 1.0,  # mean of days 0 and 1 at each hour
                     np.where(hours == 5, 11.0 + (hours.sum() - 5) / 23, hours + 11.0),
                     np.full(24, np.nan)])  # never observed in training: 0 in scaled units
    rh = np.stack([50.0 + s + hours / 2 for s in range(3)])
    scaler = dm.station_scaler
    expect = np.stack([(phys - scaler.mean[k]) / scaler.std[k] for phys, k in
                       zip((temp, rh), scaler.index(["air_temperature", "relative_humidity"]),
                           strict=True)])
    expect[0, 2] = 0.0
    assert dm.climatology.shape == (2, 3, 24)
    np.testing.assert_allclose(dm.climatology, expect, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.array(dm.description()["climatology"]), expect, atol=1e-5)
    # Validation and test data never enter it.
    shifted = hand_dm(hand_stations(later_shift=10.0))
    np.testing.assert_array_equal(shifted.climatology, dm.climatology)


def test_climatology_forecasts_the_valid_hour():
    dm = hand_dm(hand_stations())
    dm.setup()
    model = Climatology(dm.description())
    assert not list(model.parameters())
    batch = next(iter(dm.test_dataloader()))
    pred = model(batch)
    assert pred.shape == (batch.batch_size, 4, 3, 2) and torch.isfinite(pred).all()
    table = torch.from_numpy(dm.climatology)
    for i, init in enumerate(batch.init_time.tolist()):
        for lead in range(4):
            hour = dm.times[init + 1 + lead].hour
            torch.testing.assert_close(pred[i, lead], table[:, :, hour].T)
    ref = torch.tensor([dm.times[i + 1 + k].hour for i in batch.init_time.tolist()
                        for k in range(4)]).view(-1, 4)
    assert torch.equal(valid_hours(batch.time_pred), ref)
    # Temperature at station "a": forecast = train mean at that hour (hour + 1 degC).
    physical = pred[..., 0] * dm.station_scaler.std[0] + dm.station_scaler.mean[0]
    torch.testing.assert_close(physical[:, :, 0], ref.float() + 1.0)


def test_climatology_needs_the_table():
    description = hand_dm(hand_stations()).description()
    with pytest.raises(ValueError, match=r"WeatherDataModule\.description"):
        Climatology({k: v for k, v in description.items() if k != "climatology"})
    with pytest.raises(ValueError, match="expected"):
        Climatology({**description, "climatology": [[[0.0] * 24] * 3]})


# ---- learned baselines -------------------------------------------------------------------

TINY_WORLD = {"n_stations": 5, "n_days": 8, "image_size": 8, "n_channels": 1}
TINY_MODELS = {
    GRUBaseline: {"hidden": 8},
    AGCRN: {"hidden": 8, "embed_dim": 3},
    GraphWaveNet: {"residual_channels": 4, "dilation_channels": 4, "skip_channels": 8,
                   "end_channels": 8},
    STGCN: {"temporal_channels": 8, "spatial_channels": 4},
}


@pytest.fixture(scope="module")
def dm():
    dm = WeatherDataModule(synthetic=TINY_WORLD, target=["air_temperature", "relative_humidity"],
                           n_his=12, n_pred=3, batch_size=4, use_satellite=False, seed=1)
    dm.setup()
    return dm


@pytest.fixture(scope="module")
def batch(dm):
    return next(iter(dm.train_dataloader()))


@pytest.mark.parametrize("cls", list(TINY_MODELS), ids=lambda c: c.__name__)
def test_shapes_and_gradients(cls, dm, batch):
    torch.manual_seed(0)
    model = cls(dm.description(), **TINY_MODELS[cls])
    # Gaps in the inputs (x is 0 there, the mask says so) must not leak NaN.
    gappy = type(batch)(**{**batch.__dict__, "x_mask": batch.x_mask & (torch.rand(
        batch.x_mask.shape) > 0.3)})
    gappy.x = torch.where(gappy.x_mask, gappy.x, torch.zeros_like(gappy.x))
    out = model(gappy, teacher_forcing=0.5)
    assert out.shape == (4, 3, 5, 2)
    assert torch.isfinite(out).all()
    out.square().mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
    model.eval()
    torch.testing.assert_close(model(batch), model(batch))  # deterministic in eval mode
    assert model.config()["init_args"]["data"] is not None  # rebuildable from a checkpoint


@pytest.mark.parametrize("cls", list(TINY_MODELS), ids=lambda c: c.__name__)
def test_wrong_input_shapes_are_clear_errors(cls, dm, batch):
    model = cls(dm.description(), **TINY_MODELS[cls])
    short = type(batch)(**{**batch.__dict__, "x": batch.x[:, 1:], "x_mask": batch.x_mask[:, 1:]})
    with pytest.raises(ValueError, match=r"\(b t n f\)"):
        model(short)


def test_size_checks_and_graph_operators(dm):
    with pytest.raises(ValueError, match="n_his"):
        STGCN(dm.description(), n_blocks=3)  # 3 blocks x 4 hours > 12 input hours
    with pytest.raises(ValueError, match="hidden"):
        GRUBaseline(dm.description(), hidden=0)
    laplacian = scaled_laplacian(dm.graph.dense)
    eig = torch.linalg.eigvalsh(laplacian.double())
    assert eig.max() == pytest.approx(1.0, abs=1e-5) and eig.min() >= -1 - 1e-5
    gwn = GraphWaveNet(dm.description(), **TINY_MODELS[GraphWaveNet])
    assert gwn.receptive_field == 13 and len(gwn.supports()) == 3
    for support in gwn.supports():
        torch.testing.assert_close(support.sum(-1), torch.ones(5))
    agcrn = AGCRN(dm.description(), **TINY_MODELS[AGCRN])
    torch.testing.assert_close(agcrn.adjacency().sum(-1), torch.ones(5))


@pytest.mark.parametrize(("static_graph", "adaptive"), [(True, False), (False, True),
                                                        (False, False)])
def test_graph_wavenet_graph_switches(static_graph, adaptive, dm, batch):
    model = GraphWaveNet(dm.description(), static_graph=static_graph, adaptive=adaptive,
                         **TINY_MODELS[GraphWaveNet])
    assert len(model.supports()) == 2 * static_graph + adaptive
    assert model(batch).shape == (4, 3, 5, 2)


# ---- through the CLI ---------------------------------------------------------------------

CLI_TINY = ["--data.synthetic.n_stations", "4", "--data.synthetic.n_days", "4",
            "--data.synthetic.image_size", "8", "--data.split", "[0.5, 0.25, 0.25]",
            "--data.n_pred", "3", "--data.batch_size", "8",
            "--trainer.limit_val_batches", "1", "--trainer.limit_test_batches", "2",
            "--trainer.enable_progress_bar", "false", "--trainer.logger", "false"]
CLI_MODELS = {
    "gru": {"hidden": 8},
    "agcrn": {"hidden": 8, "embed_dim": 3},
    "graph_wavenet": {"residual_channels": 4, "dilation_channels": 4, "skip_channels": 8,
                      "end_channels": 8},
    "stgcn": {"temporal_channels": 8, "spatial_channels": 4},
}


def read_metrics(root):
    metrics = json.loads((root / "test_metrics.json").read_text())
    for key in ("test/mae", "test/rmse", "test/mae_h1", "test/rmse_h3"):
        assert np.isfinite(metrics[key]) and metrics[key] > 0, key
    return metrics


@pytest.mark.parametrize("name", list(CLI_MODELS))
def test_cli_fit_then_test(name, tmp_path):
    sizes = [arg for key, value in CLI_MODELS[name].items()
             for arg in (f"--model.model.init_args.{key}", str(value))]
    args = ["--config", f"configs/baselines/{name}.yaml", *CLI_TINY, *sizes,
            "--trainer.default_root_dir", str(tmp_path)]
    main(["fit", *args, "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2",
          "--test_after_fit", "false"])
    best = next(p for p in tmp_path.rglob("best*.ckpt"))
    main(["test", *args, "--ckpt_path", str(best)])
    read_metrics(tmp_path)


@pytest.mark.parametrize("name", ["climatology", "persistence"])
def test_cli_test_without_fit(name, tmp_path, capsys):
    args = ["--config", f"configs/baselines/{name}.yaml", *CLI_TINY,
            "--trainer.default_root_dir", str(tmp_path)]
    main(["test", *args])
    assert "RMSE" in capsys.readouterr().out
    read_metrics(tmp_path)
    with pytest.raises(SystemExit, match="no trainable parameters"):
        main(["fit", *args, "--trainer.max_epochs", "1"])
