"""``Forecaster``: the LightningModule that trains and evaluates any vnnet model.

Loss and metrics are masked (only observed targets count) and computed in physical units
by default, as in the official VN-Net protocol (VNNET-SPEC 3). The default optimiser is that
protocol's: Adam (lr 5e-3, eps 1e-3), MultiStepLR x0.5 at epochs 10/20/30/40/50; gradient
clipping (1.0), early stopping and checkpointing are Trainer settings the CLI sets.
Scalers, variables, stations and graph parameters live in the model's data description,
which is saved with the checkpoint: ``Forecaster.load_from_checkpoint(path)`` needs nothing else.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Literal

import lightning as L
import numpy as np
import torch
import xarray as xr
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch import nn
from torchmetrics import MeanMetric

from vnnet import __version__
from vnnet.data.batch import Batch
from vnnet.data.scalers import StandardScaler
from vnnet.metrics import ForecastErrors, masked_mean
from vnnet.models.base import ForecastModel
from vnnet.models.decoder import teacher_forcing_probability

LossName = Literal["mae", "mse", "huber"]
INSTANTIATOR = "lightning.pytorch.cli.instantiate_module"


class IncompatibleCheckpointError(ValueError):
    """A checkpoint this version of vnnet cannot load; the message names both versions."""

    def __init__(self, written: str | None, reason: str) -> None:
        self.written = written
        super().__init__(f"checkpoint written by vnnet {written or '(unknown version)'} cannot be "
                         f"loaded by vnnet {__version__}: {reason}")


def checkpoint_version_problem(written: str | None) -> str | None:
    """Why a checkpoint written by vnnet ``written`` cannot be loaded here, or None.

    Checkpoints are compatible within a major version; whether the structure still fits is
    checked when the state dict is loaded.
    """
    if written is None:
        return ("it records no 'vnnet_version' (written by a development build before "
                "versions were recorded, or not by vnnet)")
    try:
        major = int(str(written).split(".")[0])
    except ValueError:
        return f"its 'vnnet_version' {written!r} is not a version number"
    if major != int(__version__.split(".")[0]):
        return (f"the major versions differ ({major} vs {__version__.split('.')[0]}); "
                f"checkpoints load only within a major version")
    return None


def _state_dict_mismatch(own: dict[str, Any], loaded: dict[str, Any]) -> str:
    """Which keys / shapes differ between the model's state dict and a loaded one."""

    def first(keys: list[str]) -> str:
        more = f" and {len(keys) - 5} more" if len(keys) > 5 else ""
        return f"{keys[:5]}{more}"

    missing = [k for k in own if k not in loaded]
    unexpected = [k for k in loaded if k not in own]
    shapes = [f"{k} {tuple(loaded[k].shape)} (model: {tuple(own[k].shape)})" for k in own
              if k in loaded and hasattr(loaded[k], "shape") and loaded[k].shape != own[k].shape]
    parts = ([f"missing state-dict keys {first(missing)}"] if missing else []) + \
        ([f"unexpected state-dict keys {first(unexpected)}"] if unexpected else []) + \
        ([f"changed shapes {first(shapes)}"] if shapes else [])
    return "; ".join(parts)


def _peek_version(checkpoint_path: Any, weights_only: bool | None) -> tuple[bool, str | None]:
    """(readable, the 'vnnet_version' of a checkpoint file), read as Lightning reads it."""
    from lightning.fabric.utilities.cloud_io import _load

    try:
        checkpoint = _load(checkpoint_path, map_location="cpu", weights_only=weights_only)
    except Exception:  # noqa: BLE001 - an unreadable file keeps its original error
        return False, None
    return True, checkpoint.get("vnnet_version") if isinstance(checkpoint, dict) else None


class Forecaster(L.LightningModule):
    """Trains, evaluates and runs any model with the forward contract ``(b h n c)``.

    Args:
        model: a ``ForecastModel`` (e.g. ``vnnet.models.VNNet``), built for the data.
        loss: masked "mae" (default), "mse" or "huber", averaged over targets.
        loss_units: "physical" (de-normalise prediction and truth first, the official
            choice) or "scaled".
        lr, eps, weight_decay: Adam settings. milestones, gamma: MultiStepLR per epoch.
        scheduled_sampling: feed the decoder ground truth with a decaying probability.
        cl_decay_steps: the decay constant c of the schedule.
        channels_last: lay each batch's images out channels-last per frame (memory
            ``(b t H W c)``), the layout convolution kernels prefer on GPUs (Tensor Cores)
            and on CPU (oneDNN); the values and results are the same. See
            ``configs/gpu_example.yaml``.
        compile: ``torch.compile`` the model (``nn.Module.compile``: the state-dict keys and
            checkpoints stay the same). Pays off on GPUs; on CPU the compilation itself takes
            minutes. Mixed precision is a Trainer setting (``precision: bf16-mixed``).

    A training batch whose loss is not finite is skipped (no optimizer step), warned about
    and counted in ``skipped_batches`` (logged as ``train/skipped_batches``). Checkpoints
    record ``vnnet_version``; one that cannot be loaded raises ``IncompatibleCheckpointError``.

    Models fitted in closed form (a ``fit_closed_form(train, val)`` method and a ``fitted``
    flag, e.g. ``vnnet.models.Ridge``) are fitted at the start of ``Trainer.fit`` from the
    datamodule's training and validation loaders (all their batches, whatever the Trainer's
    ``limit_*_batches``); the fit then runs one epoch without optimizer steps (train metrics,
    validation, the val/mae checkpoint) and stops. A model with a ``target_lag`` attribute
    (``SeasonalPersistence``) gets the datamodule's ``target_lag`` set to it in ``setup``.
    """

    def __init__(
        self,
        model: nn.Module,
        loss: LossName = "mae",
        loss_units: Literal["physical", "scaled"] = "physical",
        lr: float = 5e-3,
        eps: float = 1e-3,
        weight_decay: float = 0.0,
        milestones: list[int] | None = None,
        gamma: float = 0.5,
        scheduled_sampling: bool = True,
        cl_decay_steps: int = 2000,
        channels_last: bool = False,
        compile: bool = False,  # noqa: A002 - the torch name, as a config key
    ) -> None:
        super().__init__()
        if not isinstance(model, ForecastModel):
            raise ValueError(f"model must be a vnnet ForecastModel, got {type(model).__name__}")
        if loss not in ("mae", "mse", "huber"):
            raise ValueError(f"loss must be 'mae', 'mse' or 'huber', got {loss!r}")
        if loss_units not in ("physical", "scaled"):
            raise ValueError(f"loss_units must be 'physical' or 'scaled', got {loss_units!r}")
        if lr <= 0 or eps <= 0 or weight_decay < 0 or not 0 < gamma <= 1:
            raise ValueError(f"need lr > 0, eps > 0, weight_decay >= 0 and 0 < gamma <= 1, got "
                             f"lr={lr}, eps={eps}, weight_decay={weight_decay}, gamma={gamma}")
        teacher_forcing_probability(0, cl_decay_steps)  # validates the decay constant
        self.model = model
        self.save_hyperparameters(ignore=["model"])
        # The model is stored as its class path and init args (incl. the data description),
        # the form LightningCLI uses, so load_from_checkpoint rebuilds it without the data.
        self.hparams["model"] = model.config()
        self.hparams["_instantiator"] = INSTANTIATOR
        self.milestones = [10, 20, 30, 40, 50] if milestones is None else list(milestones)
        if compile:
            model.compile()  # lazy: compiles at the first call

        spec = model.spec
        scaler = StandardScaler.from_dict(spec.raw["station_scaler"])
        idx = scaler.index(spec.target_variables)
        self.register_buffer("target_mean", torch.tensor(scaler.mean[idx], dtype=torch.float32))
        self.register_buffer("target_std", torch.tensor(scaler.std[idx], dtype=torch.float32))
        # One accumulator per split (a ModuleDict cannot hold the key "train").
        self.train_errors = ForecastErrors(spec.n_pred, spec.target_variables)
        self.val_errors = ForecastErrors(spec.n_pred, spec.target_variables)
        self.test_errors = ForecastErrors(spec.n_pred, spec.target_variables)
        # Mean evaluation loss weighted by windows; torchmetrics sums it over DDP processes
        # (Lightning's sync_dist mean truncates an odd total batch size; shares may differ).
        self.val_loss, self.test_loss = MeanMetric(), MeanMetric()
        #: Training batches skipped for a non-finite loss, over the whole run (all epochs).
        self.skipped_batches = 0

    @classmethod
    def load_from_checkpoint(cls, checkpoint_path: Any, *args: Any, **kwargs: Any
                             ) -> Forecaster:
        """``LightningModule.load_from_checkpoint``; a checkpoint of another vnnet version
        whose model cannot be rebuilt raises ``IncompatibleCheckpointError`` naming both."""
        try:
            return super().load_from_checkpoint(checkpoint_path, *args, **kwargs)
        except IncompatibleCheckpointError:
            raise
        except Exception as err:
            readable, written = _peek_version(checkpoint_path, kwargs.get("weights_only"))
            if not readable or written == __version__:
                raise
            reason = (f"the model cannot be rebuilt from the checkpoint's hyper-parameters "
                      f"({type(err).__name__}: {' '.join(str(err).split())})")
            raise IncompatibleCheckpointError(written, reason) from err

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["vnnet_version"] = __version__
        checkpoint["vnnet_skipped_batches"] = self.skipped_batches
        # Lightning does not checkpoint the random state; scheduled sampling (and dropout) draw
        # from it, so a resumed fit needs it to continue exactly as an uninterrupted one.
        checkpoint["vnnet_rng"] = {"torch": torch.get_rng_state(), "cuda": (
            torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None)}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        written = checkpoint.get("vnnet_version")
        problem = checkpoint_version_problem(written)
        if problem is not None:
            raise IncompatibleCheckpointError(written, problem)
        self._loading_version = written  # read by load_state_dict, called next
        self.skipped_batches = int(checkpoint.get("vnnet_skipped_batches", 0))
        if self._trainer is not None and self._trainer.state.fn == "fit":  # resuming a fit
            self._resume_rng = checkpoint.get("vnnet_rng")

    def on_train_start(self) -> None:
        rng = self.__dict__.pop("_resume_rng", None)
        if rng is not None:
            torch.set_rng_state(rng["torch"])
            if rng["cuda"] is not None and self.device.type == "cuda":
                torch.cuda.set_rng_state(rng["cuda"], self.device)

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False
                        ) -> Any:
        written = self.__dict__.pop("_loading_version", None)
        if written is None:  # not loading a checkpoint
            return super().load_state_dict(state_dict, strict=strict, assign=assign)
        try:
            return super().load_state_dict(state_dict, strict=strict, assign=assign)
        except RuntimeError as err:
            reason = _state_dict_mismatch(self.state_dict(), state_dict) or str(err)
            raise IncompatibleCheckpointError(
                written, f"its state dict does not fit the model rebuilt from its "
                f"hyper-parameters: {reason}") from err

    @property
    def closed_form(self) -> bool:
        """Whether the model is fitted in closed form (``fit_closed_form``), not by steps."""
        return callable(getattr(self.model, "fit_closed_form", None))

    def setup(self, stage: str) -> None:
        name, datamodule = type(self.model).__name__, self.trainer.datamodule
        if self.closed_form and stage == "fit" and self.trainer.world_size > 1:
            # Checked here: DDP refuses to wrap a model without trainable parameters later.
            raise ValueError(f"{name} is fitted in closed form in one process; fit it without "
                             f"a distributed strategy (trainer.devices: 1)")
        lag = getattr(self.model, "target_lag", None)
        if lag is None or datamodule is None:
            return
        if not hasattr(datamodule, "target_lag"):
            raise ValueError(f"{name} needs batches with y_lag; the datamodule "
                             f"{type(datamodule).__name__} cannot provide them")
        if datamodule.target_lag not in (None, lag):
            raise ValueError(f"{name} needs target_lag={lag!r}, the datamodule has "
                             f"target_lag={datamodule.target_lag!r}")
        datamodule.target_lag = lag  # read when the loaders are built, after this hook

    def on_fit_start(self) -> None:
        if not self.closed_form or bool(self.model.fitted):  # fitted: e.g. a resumed fit
            return
        datamodule = self.trainer.datamodule
        name = type(self.model).__name__
        if datamodule is None:
            raise ValueError(f"{name} is fitted in closed form from the datamodule's loaders; "
                             f"pass datamodule= to Trainer.fit")
        info = self.model.fit_closed_form(datamodule.train_dataloader(),
                                          datamodule.val_dataloader())
        alpha = np.asarray(info["alpha"])
        rank_zero_info(f"{name}: fitted in closed form on {info['rows']} rows x "
                       f"{info['features']} features in {info['seconds']:.1f} s; alpha per "
                       f"lead {np.round(alpha.mean(axis=-1), 6).tolist()}")

    @property
    def spec(self):  # noqa: ANN201 - DataSpec, re-exported for convenience
        return self.model.spec

    def errors(self, split: str) -> ForecastErrors:
        """The metric accumulator of ``split`` ("train", "val" or "test")."""
        return getattr(self, f"{split}_errors")

    def to_physical(self, scaled: torch.Tensor) -> torch.Tensor:
        """(... c) scaled target values to physical units."""
        return scaled * self.target_std + self.target_mean

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        if self.hparams.get("channels_last") and isinstance(batch, Batch) \
                and batch.images is not None and batch.images.dim() == 5:
            # (b t c H W) with c innermost: each frame (b*t c H W) is channels_last and the
            # (b c t H W) transpose is channels_last_3d, one copy for both kinds of encoder
            # (none for the datamodule's batches, which come in this layout).
            hwc = batch.images.permute(0, 1, 3, 4, 2)
            if not hwc.is_contiguous():
                batch = dataclasses.replace(batch, images=hwc.contiguous().permute(0, 1, 4, 2, 3))
        return batch

    def forward(self, batch: Batch) -> torch.Tensor:
        """(b h n c) forecast in physical units (free-running)."""
        return self.to_physical(self.model(batch))

    def compute_loss(self, pred: torch.Tensor, batch: Batch) -> torch.Tensor:
        target = batch.y
        if self.hparams.loss_units == "physical":
            pred, target = self.to_physical(pred), self.to_physical(target)
        mask = batch.y_mask
        diff = torch.where(mask, pred - target, torch.zeros_like(pred))
        if self.hparams.loss == "mae":
            per = diff.abs()
        elif self.hparams.loss == "mse":
            per = diff.square()
        else:
            per = nn.functional.huber_loss(diff, torch.zeros_like(diff), reduction="none")
        # Each target on its own scale, then averaged over targets.
        return torch.stack([masked_mean(per[..., c], mask[..., c])
                            for c in range(pred.shape[-1])]).mean()

    def teacher_forcing(self) -> float:
        if not self.hparams.scheduled_sampling:
            return 0.0
        return teacher_forcing_probability(self.global_step, self.hparams.cl_decay_steps)

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor | None:
        if self.closed_form:  # already fitted: score the fit, nothing to optimise
            with torch.no_grad():
                pred = self.model(batch)
            self.train_errors.update(self.to_physical(pred), self.to_physical(batch.y),
                                     batch.y_mask)
            return None
        p = self.teacher_forcing()
        pred = self.model(batch, teacher_forcing=p)
        loss = self.compute_loss(pred, batch)
        if not torch.isfinite(loss):
            return self._skip_batch(loss, batch_idx)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch.batch_size)
        # Train metrics score the training-mode forecasts (with scheduled sampling, dropout).
        self.train_errors.update(self.to_physical(pred.detach()), self.to_physical(batch.y),
                                 batch.y_mask)
        self.log("train/teacher_forcing", p, batch_size=batch.batch_size)
        return loss

    def _skip_batch(self, loss: torch.Tensor, batch_idx: int) -> torch.Tensor | None:
        """A batch with a non-finite loss: counted, warned about, and not optimised on."""
        self.skipped_batches += 1
        rank_zero_warn(f"train batch {batch_idx} of epoch {self.current_epoch} gave a "
                       f"non-finite loss ({loss.item()}); skipped it without an optimizer step "
                       f"({self.skipped_batches} batch(es) skipped so far)",
                       category=RuntimeWarning)
        if self.trainer.world_size > 1:
            # Lightning cannot skip a step on one rank only (returning None is refused): an
            # exactly-zero gradient keeps the ranks in step (Adam's momentum still moves).
            return sum(p.sum() for p in self.parameters() if p.requires_grad) * 0.0
        # With automatic optimisation, None skips backward: the gradients were zeroed (None)
        # just before, so clipping sees none and the optimizer step leaves every weight as is.
        return None

    def _evaluate(self, batch: Batch, split: str) -> None:
        pred = self.model(batch)
        loss = getattr(self, f"{split}_loss")
        loss.update(self.compute_loss(pred, batch), weight=batch.batch_size)
        self.log(f"{split}/loss", loss, batch_size=batch.batch_size)
        self.errors(split).update(self.to_physical(pred), self.to_physical(batch.y),
                                  batch.y_mask)

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def _log_metrics(self, split: str) -> dict[str, float]:
        values = self.errors(split).compute()
        self.errors(split).reset()
        # compute() already summed the errors of all processes (torchmetrics), so every rank
        # holds the global value; sync_dist averages these equal values (one all-reduce per
        # key and epoch) and tells Lightning the logged value is the same on every rank.
        for key, value in values.items():
            self.log(f"{split}/{key}", value, prog_bar=key == "mae", sync_dist=True)
        return {f"{split}/{k}": float(v) for k, v in values.items()}

    def on_train_epoch_end(self) -> None:
        self._log_metrics("train")
        self.log("train/skipped_batches", float(self.skipped_batches), sync_dist=True,
                 reduce_fx="sum")
        if self.closed_form:  # more epochs would repeat the same fit
            self.trainer.should_stop = True

    def on_validation_epoch_end(self) -> None:
        self._log_metrics("val")

    def on_test_epoch_end(self) -> None:
        metrics = self._log_metrics("test")
        self.test_results = metrics
        log_dir = self.trainer.log_dir or self.trainer.default_root_dir  # collective under DDP
        if self.trainer.is_global_zero:
            print(format_metrics_table(metrics, self.spec.n_pred, "test"))
            path = Path(log_dir) / "test_metrics.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            units = {v: self.spec.raw.get("units", {}).get(v) for v in self.spec.target_variables}
            path.write_text(json.dumps({**metrics, "units": units}, indent=2))
            print(f"test metrics written to {path}")

    def predict_step(self, batch: Batch, batch_idx: int) -> dict[str, torch.Tensor]:
        return {"forecast": self(batch), "init_time": batch.init_time}

    def configure_optimizers(self) -> dict[str, Any] | None:
        params = [p for p in self.parameters() if p.requires_grad]
        if not params and self.closed_form:
            return None  # Lightning runs the fit with no optimizer
        if not params:
            raise ValueError(f"{type(self.model).__name__} has no trainable parameters; use "
                             f"'vnnet test' to evaluate it without fitting")
        optimizer = torch.optim.Adam(params, lr=self.hparams.lr, eps=self.hparams.eps,
                                     weight_decay=self.hparams.weight_decay)
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, self.milestones,
                                                         gamma=self.hparams.gamma)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler,
                                                         "interval": "epoch"}}

    def _check_satellite(self, satellite: xr.DataArray | None) -> None:
        """Raise unless new images have the training images' channels, units and grid."""
        trained = self.spec.raw.get("satellite")
        if trained is None or satellite is None:
            return
        problems = []
        channels = [str(c) for c in satellite.channel.values]
        if channels != list(trained["channels"]):
            problems.append(f"channels {channels} (trained on {trained['channels']})")
        if satellite.attrs.get("units") != trained["units"]:
            problems.append(f"units {satellite.attrs.get('units')!r} (trained on "
                            f"{trained['units']!r})")
        for axis in ("lat", "lon"):
            new, old = satellite[axis].values, np.asarray(trained[axis], dtype=np.float64)
            if new.shape != old.shape or not np.allclose(new, old, atol=1e-4):
                problems.append(f"{axis} grid of {_grid_summary(new)} (trained on "
                                f"{_grid_summary(old)})")
        if problems:
            raise ValueError("satellite: the images differ from those the model was trained on: "
                             + "; ".join(problems) + "; regrid / select them to match")

    def predict_xarray(self, stations: xr.Dataset, satellite: xr.DataArray | None = None,
                       batch_size: int = 64) -> xr.Dataset:
        """Forecast every complete window of new station (+ satellite) data.

        Uses the scalers, variables and stations stored with the model, so a checkpoint
        loaded in a fresh process predicts on new xarray data without the training data.
        Returns a Dataset with dims (init_time, lead_time, station) in physical units.
        """
        from vnnet.data.datamodule import WeatherDataModule
        from vnnet.predict import forecasts_to_xarray

        dm = WeatherDataModule.for_inference(self.spec.raw, stations, satellite,
                                             batch_size=batch_size,
                                             target_lag=getattr(self.model, "target_lag", None))
        self._check_satellite(dm.satellite)
        dm.setup("predict")
        moved = ~(np.isclose(dm.stations.lat.values, self.spec.lat, atol=1e-5)
                  & np.isclose(dm.stations.lon.values, self.spec.lon, atol=1e-5))
        if moved.any():
            raise ValueError(f"stations {np.asarray(dm.station_ids)[moved][:5].tolist()} are not "
                             f"where they were in training (lat/lon differ); this model is "
                             f"tied to its station network")
        self.eval()
        chunks, inits = [], []
        with torch.no_grad():
            for batch in dm.predict_dataloader():
                batch = self.on_after_batch_transfer(batch.to(self.device), 0)
                chunks.append(self(batch).cpu())
                inits.append(batch.init_time.cpu())
        forecast = torch.cat(chunks).numpy() if chunks else np.zeros((0,))
        init_index = torch.cat(inits).numpy() if inits else np.zeros(0, dtype=np.int64)
        return forecasts_to_xarray(forecast, dm.times[init_index], self.spec.raw)


def _grid_summary(values: np.ndarray) -> str:
    return f"{len(values)} pixels {values[0]:.4f}..{values[-1]:.4f}" if len(values) else "empty"


def format_metrics_table(metrics: dict[str, float], n_pred: int, split: str) -> str:
    """A plain-text table: rows = lead hours 1..n_pred and the average, columns MAE / RMSE."""
    lines = [f"{'lead':>6} {'MAE':>10} {'RMSE':>10}"]
    for k in range(1, n_pred + 1):
        lines.append(f"{k:>5}h {metrics[f'{split}/mae_h{k}']:>10.4f} "
                     f"{metrics[f'{split}/rmse_h{k}']:>10.4f}")
    lines.append(f"{'all':>6} {metrics[f'{split}/mae']:>10.4f} {metrics[f'{split}/rmse']:>10.4f}")
    return "\n".join(lines)
