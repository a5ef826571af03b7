"""Which VN-Net variants let the satellite images help? One variant per call, test MAE printed.

Trains a variant on the synthetic world with a plain Lightning loop (lr 2e-3, free-running
decoder, no checkpointing, the final weights are tested) and prints one ``RESULT`` line:

    python -m benchmarks.vision_variants nnet_ctx --epochs 8
    python -m benchmarks.vision_variants vnnet_ctx --epochs 8 --world '{"start": "2021-06-15"}'

Variants (``VARIANTS``): the library's switches (``decoder_context``, ``VisionOptions.stem_norm``,
``VisionOptions.gated``, ``image_noise``) plus three experimental encoders kept here rather
than in the library because none of them helped (benchmarks/RESULTS.md):
``pixel``/``pixel_ctx`` (raw 5 x 5 pixel patch above each station into the encoder every hour),
``early`` (the V-LSTM's hourly feature at each station into the encoder) and ``anomaly``
(frames minus the window's mean brightness per channel).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from collections.abc import Callable
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F

from vnnet.data.batch import Batch
from vnnet.data.datamodule import WeatherDataModule
from vnnet.forecaster import Forecaster
from vnnet.models.ngcn import NGCNEncoder
from vnnet.models.vnnet import VisionOptions, VNNet


class PixelPatchNNet(VNNet):
    """N-Net whose encoder also reads the raw (2p+1)^2 pixel patch above each station."""

    def __init__(self, data: dict[str, Any], patch: int = 2, decoder_context: bool = True
                 ) -> None:
        super().__init__(data, vision=None, decoder_context=decoder_context)
        spec = self.spec
        rows, cols = spec.pixels_on_grid(*spec.image_size)
        self.register_buffer("rows", rows)
        self.register_buffer("cols", cols)
        self.patch = patch
        extra = (2 * patch + 1) ** 2 * spec.image_channels + 1
        self.encoder = NGCNEncoder(spec.n_stations, 2 * spec.n_inputs + 3 + extra, 32, 2, 8,
                                   spec.graph().dense)

    def encode(self, batch: Batch) -> torch.Tensor:
        b, t, n, _ = batch.x.shape
        p = self.patch
        padded = F.pad(batch.images.flatten(0, 1), (p, p, p, p), mode="replicate")
        offsets = torch.arange(-p, p + 1)
        rows = (self.rows[:, None, None] + p + offsets[None, :, None]).expand(-1, 2 * p + 1, -1)
        cols = (self.cols[:, None, None] + p + offsets[None, None, :]).expand(-1, -1, 2 * p + 1)
        patch = padded[:, :, rows, cols].permute(0, 2, 1, 3, 4).flatten(2).unflatten(0, (b, t))
        present = batch.image_mask.to(patch.dtype)[:, :, None, None].expand(-1, -1, n, 1)
        static = self.static_features.expand(b, t, n, -1)
        inputs = torch.cat([batch.x, batch.x_mask.to(batch.x.dtype), static, patch * present,
                            present], dim=-1)
        return self.encoder(inputs, batch.time_index)[0]


class EarlyPixelVNNet(VNNet):
    """VN-Net whose encoder also reads the V-LSTM's hourly feature at each station."""

    def __init__(self, data: dict[str, Any], k: int = 8) -> None:
        super().__init__(data, vision=VisionOptions(stem_norm=False), decoder_context=True)
        spec = self.spec
        self.encoder = NGCNEncoder(spec.n_stations, 2 * spec.n_inputs + 3 + k, 32, 2, 8,
                                   spec.graph().dense)
        self.pixel_projection = torch.nn.Linear(32, k)

    def encode(self, batch: Batch) -> torch.Tensor:
        b, t, n, _ = batch.x.shape
        vision, fusion = self.vision, self.fusion
        feats = vision.stem(batch.images.flatten(0, 1)).unflatten(0, (b, t))
        hourly, last = vision.lstm(feats, batch.image_mask)  # (b t d Hf Wf), (b d Hf Wf)
        per_station = hourly[:, :, :, fusion.pixel_rows, fusion.pixel_cols].transpose(2, 3)
        static = self.static_features.expand(b, t, n, -1)
        inputs = torch.cat([batch.x, batch.x_mask.to(batch.x.dtype), static,
                            torch.tanh(self.pixel_projection(per_station))], dim=-1)
        states, _ = self.encoder(inputs, batch.time_index)
        fused = fusion(states, vision.mscsm(last))
        return 0.5 * (states + torch.tanh(fused))


class WindowAnomalyVNNet(VNNet):
    """VN-Net fed each frame minus its window's mean brightness per channel."""

    def encode(self, batch: Batch) -> torch.Tensor:
        present = batch.image_mask.to(batch.images.dtype)[:, :, None, None, None]
        pixels = batch.images.shape[-2] * batch.images.shape[-1]
        count = present.sum(dim=1, keepdim=True).clamp_min(1.0) * pixels
        mean = (batch.images * present).sum(dim=(1, 3, 4), keepdim=True) / count
        return super().encode(dataclasses.replace(batch, images=(batch.images - mean) * present))


V = VisionOptions
VARIANTS: dict[str, Callable[[dict[str, Any]], VNNet]] = {
    "nnet": lambda d: VNNet(d, vision=None),
    "vnnet": lambda d: VNNet(d),
    "noise": lambda d: VNNet(d, image_noise=True),
    "nnet_ctx": lambda d: VNNet(d, vision=None, decoder_context=True),
    "vnnet_ctx": lambda d: VNNet(d, decoder_context=True, vision=V(stem_norm=False)),
    "gated": lambda d: VNNet(d, decoder_context=True, vision=V(stem_norm=False, gated=True)),
    "pixel": lambda d: PixelPatchNNet(d, decoder_context=False),
    "pixel_ctx": lambda d: PixelPatchNNet(d),
    "early": lambda d: EarlyPixelVNNet(d),
    "anomaly": lambda d: WindowAnomalyVNNet(d, decoder_context=True,
                                            vision=V(stem_norm=False)),
    "anomaly_gated": lambda d: WindowAnomalyVNNet(d, decoder_context=True,
                                                  vision=V(stem_norm=False, gated=True)),
}
#: Variants built from the library's VisionOptions given with ``--vision JSON`` (the quickstart
#: model: decoder context, library defaults otherwise), with real images and with noise.
OPTION_VARIANTS: dict[str, Callable[[dict[str, Any], dict[str, Any]], VNNet]] = {
    "vnnet_opts": lambda d, o: VNNet(d, decoder_context=True, vision=V(**o)),
    "noise_opts": lambda d, o: VNNet(d, decoder_context=True, vision=V(**o), image_noise=True),
    # The decoder's per-step context is the unfused encoder state: images only through h0.
    "vnnet_enc": lambda d, o: VNNet(d, decoder_context=True, context_source="encoder",
                                    vision=V(**o)),
    "noise_enc": lambda d, o: VNNet(d, decoder_context=True, context_source="encoder",
                                    vision=V(**o), image_noise=True),
}


def run(name: str, epochs: int, seed: int, world: dict[str, Any],
        vision: dict[str, Any] | None = None) -> dict[str, float]:
    L.seed_everything(seed, verbose=False)
    dm = WeatherDataModule(synthetic=world)
    dm.setup("fit")
    model = OPTION_VARIANTS[name](dm.description(), vision or {}) if name in OPTION_VARIANTS \
        else VARIANTS[name](dm.description())
    forecaster = Forecaster(model, lr=2e-3, scheduled_sampling=False)
    trainer = L.Trainer(max_epochs=epochs, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, gradient_clip_val=1.0,
                        enable_model_summary=False, default_root_dir="runs/vision_variants")
    start = time.perf_counter()
    trainer.fit(forecaster, dm)
    result = trainer.test(forecaster, dm, verbose=False)[0]
    result["seconds"] = time.perf_counter() - start
    return result


def _set_trainable(model: VNNet, vision_part: bool) -> None:
    """Train only the vision branch, fusion and gate (True) or only the rest (False)."""
    vision = {id(q) for m in (model.vision, model.fusion) for q in m.parameters()}
    vision.add(id(model.fusion_gate))
    for q in model.parameters():
        q.requires_grad_((id(q) in vision) == vision_part)


def run_staged(noise: bool, epochs: int, vision_epochs: int, seed: int, world: dict[str, Any],
               vision: dict[str, Any] | None = None) -> dict[str, float]:
    """N-Net first, then images as a residual on it: the clean test of whether frames add
    information the stations lack.

    A gated VN-Net (ReZero gate at 0: exactly N-Net with the context decoder) trains for
    ``epochs`` with its vision branch frozen; then the station parts are frozen and only the
    vision branch, fusion and gate train for ``vision_epochs``. The weights with the best
    validation MAE over both stages are tested (the N-Net of stage 1 included), so the images
    are kept only as far as they help on unseen days.
    """
    L.seed_everything(seed, verbose=False)
    dm = WeatherDataModule(synthetic=world)
    dm.setup("fit")
    model = VNNet(dm.description(), decoder_context=True, image_noise=noise,
                  vision=V(**{**(vision or {}), "gated": True}))
    forecaster = Forecaster(model, lr=2e-3, scheduled_sampling=False)
    quiet = dict(logger=False, enable_progress_bar=False, gradient_clip_val=1.0,
                 enable_model_summary=False, default_root_dir="runs/vision_variants")
    start = time.perf_counter()
    _set_trainable(model, vision_part=False)
    L.Trainer(max_epochs=epochs, enable_checkpointing=False, **quiet).fit(forecaster, dm)
    trainer = L.Trainer(max_epochs=vision_epochs, enable_checkpointing=False, **quiet)
    stage1_val = trainer.validate(forecaster, dm, verbose=False)[0]["val/mae"]
    stage1_test = trainer.test(forecaster, dm, verbose=False)[0]
    _set_trainable(model, vision_part=True)
    best = L.pytorch.callbacks.ModelCheckpoint(monitor="val/mae", save_top_k=1,
                                               dirpath=f"runs/vision_variants/staged{noise:d}")
    trainer = L.Trainer(max_epochs=vision_epochs, callbacks=[best], **quiet)
    trainer.fit(Forecaster(model, lr=2e-3, scheduled_sampling=False), dm)
    stage2_val = float(best.best_model_score)
    if stage2_val < stage1_val:
        result = trainer.test(ckpt_path="best", datamodule=dm, verbose=False)[0]
    else:
        result = stage1_test
    result.update(seconds=time.perf_counter() - start, stage1_val=stage1_val,
                  stage2_val=stage2_val, stage1_test=stage1_test["test/mae"],
                  gate=float(model.fusion_gate.detach().abs().mean()))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variant", choices=sorted(VARIANTS) + sorted(OPTION_VARIANTS)
                        + ["staged", "staged_noise"])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=2023)
    parser.add_argument("--world", default="{}", help="synthetic_world options as JSON")
    parser.add_argument("--vision", default="{}", help="VisionOptions as JSON (the *_opts "
                        "variants)")
    parser.add_argument("--vision-epochs", type=int, default=6,
                        help="second-stage epochs of the staged variants")
    args = parser.parse_args()
    world, vision = json.loads(args.world), json.loads(args.vision)
    if args.variant.startswith("staged"):
        r = run_staged(args.variant == "staged_noise", args.epochs, args.vision_epochs,
                       args.seed, world, vision)
        print(f"STAGES val {r['stage1_val']:.3f} -> {r['stage2_val']:.3f}, test of stage 1 "
              f"{r['stage1_test']:.3f}, mean |gate| {r['gate']:.4f}")
    else:
        r = run(args.variant, args.epochs, args.seed, world, vision)
    print(f"RESULT {args.variant} vision={args.vision} seed={args.seed} epochs={args.epochs} "
          f"world={args.world} "
          f"test_mae={r['test/mae']:.3f} h1={r['test/mae_h1']:.3f} h6={r['test/mae_h6']:.3f} "
          f"h12={r['test/mae_h12']:.3f} seconds={r['seconds']:.0f}")


if __name__ == "__main__":
    main()
