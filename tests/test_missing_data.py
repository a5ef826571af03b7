"""Training with missing data: a non-finite loss skips its batch (counted, warned about, no
optimizer step), and heavy gaps in stations and frames still train to a finite, falling loss."""

from __future__ import annotations

import warnings

import lightning as L
import numpy as np
import pandas as pd
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import CSVLogger

from vnnet import Forecaster
from vnnet.data import WeatherDataModule
from vnnet.models import VNNet

TINY_VISION = {"stem_channels": 4, "downsample": 4, "scales": [1, 2], "n_heads": 2,
               "n_queries": 2}


def tiny_forecaster(dm: WeatherDataModule, **options) -> Forecaster:
    model = VNNet(dm.description(), hidden=8, n_layers=1, embed_dim=4, vision=TINY_VISION)
    return Forecaster(model, scheduled_sampling=False, **options)


def trainer(tmp_path, **options) -> L.Trainer:
    settings = {"max_epochs": 2, "accelerator": "cpu", "logger": CSVLogger(tmp_path, name="log"),
                "log_every_n_steps": 1, "gradient_clip_val": 1.0, "enable_checkpointing": False,
                "enable_progress_bar": False, "enable_model_summary": False,
                "num_sanity_val_steps": 0, "default_root_dir": tmp_path}
    return L.Trainer(**{**settings, **options})


def logged(trainer: L.Trainer) -> pd.DataFrame:
    trainer.logger.save()
    return pd.read_csv(f"{trainer.logger.log_dir}/metrics.csv")


class WeightWatcher(Callback):
    """Records, per (epoch, batch), whether the optimizer step changed any weight."""

    def __init__(self) -> None:
        self.changed: dict[tuple[int, int], bool] = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.before = [p.detach().clone() for p in pl_module.parameters()]

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        after = list(pl_module.parameters())
        self.changed[(trainer.current_epoch, batch_idx)] = any(
            not torch.equal(a, b) for a, b in zip(after, self.before, strict=True))


def test_a_non_finite_loss_is_skipped_and_counted(tmp_path, monkeypatch):
    L.seed_everything(0)
    dm = WeatherDataModule(synthetic={"n_stations": 4, "n_days": 3, "image_size": 16,
                                      "n_channels": 2},
                           n_his=6, n_pred=3, batch_size=8, split=(0.6, 0.2, 0.2))
    forecaster = tiny_forecaster(dm)
    model = forecaster.model
    forward, calls = model.forward, []
    poisoned = {2, 6}  # training calls: epoch 0 batch 1, epoch 1 batch 2 (3 batches / epoch)

    def nan_sometimes(batch, teacher_forcing=0.0):
        out = forward(batch, teacher_forcing)
        if model.training:
            calls.append(1)
            if len(calls) in poisoned:
                return out * float("nan")
        return out

    monkeypatch.setattr(model, "forward", nan_sometimes)
    watcher = WeightWatcher()
    fit = trainer(tmp_path, limit_train_batches=3, limit_val_batches=1, callbacks=[watcher])
    with pytest.warns(RuntimeWarning) as record:
        fit.fit(forecaster, dm)
    messages = [str(w.message) for w in record if "non-finite loss" in str(w.message)]
    assert len(messages) == 2
    assert messages[0].startswith("train batch 1 of epoch 0 gave a non-finite loss (nan)")
    assert "(1 batch(es) skipped so far)" in messages[0]
    assert messages[1].startswith("train batch 2 of epoch 1") and "(2 batch(es)" in messages[1]

    # The poisoned batches took no optimizer step (gradient clipping on); the others did.
    assert watcher.changed == {(0, 0): True, (0, 1): False, (0, 2): True,
                               (1, 0): True, (1, 1): True, (1, 2): False}
    assert all(torch.isfinite(p).all() for p in forecaster.parameters())
    assert forecaster.skipped_batches == 2
    assert fit.callback_metrics["train/skipped_batches"].item() == 2

    metrics = logged(fit)
    assert metrics["train/skipped_batches"].dropna().tolist() == [1.0, 2.0]  # cumulative
    # One row per step; a skipped step's row repeats Lightning's last logged loss, never NaN.
    assert np.isfinite(metrics["train/loss"].dropna()).all()


def test_training_with_heavy_gaps_stays_finite_and_learns(tmp_path):
    L.seed_everything(0)
    world = {"n_stations": 6, "n_days": 5, "image_size": 16, "n_channels": 2,
             "missing_fraction": 0.3, "missing_frame_fraction": 0.1}
    dm = WeatherDataModule(synthetic=world, n_his=6, n_pred=3, batch_size=8,
                           split=(0.7, 0.15, 0.15))
    dm.setup()
    # The world really has the gaps asked for (outages add a little more).
    assert 0.28 < float(dm.stations.air_temperature.isnull().mean()) < 0.4
    frames = dm.satellite.isnull().all(dim=("channel", "lat", "lon"))
    assert 0.05 < float(frames.mean()) < 0.2
    forecaster = tiny_forecaster(dm, lr=1e-2)
    fit = trainer(tmp_path, max_epochs=3, limit_val_batches=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a skipped batch would fail here
        warnings.filterwarnings("ignore", message=".*does not have many workers")
        fit.fit(forecaster, dm)

    metrics = logged(fit)
    steps = metrics.dropna(subset=["train/loss"])
    assert len(steps) == 3 * len(dm.train_dataloader())
    assert np.isfinite(steps["train/loss"]).all()
    per_epoch = steps.groupby("epoch")["train/loss"].mean()
    assert per_epoch.iloc[-1] < 0.8 * per_epoch.iloc[0], per_epoch.tolist()
    assert fit.callback_metrics["train/skipped_batches"].item() == 0
    assert np.isfinite(metrics["val/mae"].dropna()).all()
