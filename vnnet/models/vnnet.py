"""VN-Net, the paper version (arXiv 2404.16037, "VN-Net: Vision-Numerical Fusion Graph
Convolutional Network for Sparse Spatio-Temporal Meteorological Forecasting").

N-GCN encodes the station inputs (static distance graph + time-aware adaptive graph +
dynamic attention graph), V-LSTM encodes the satellite frames, DQAM fuses each station's
encoder state with its own pixel and with the whole image, and a graph-conv GRU decoder rolls
out the lead hours with scheduled sampling. ``vision=None`` gives N-Net, the numerical-only
ablation; ``image_noise=True`` replaces the frames with uniform noise at train and test time
(the control that shows whether real images carry information).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
from torch import nn

from vnnet.data.batch import CYCLIC_FEATURE_NAMES, Batch
from vnnet.models.base import ForecastModel, last_observed
from vnnet.models.decoder import GCNDecoder
from vnnet.models.fusion import DQAMFusion
from vnnet.models.ngcn import NGCNEncoder
from vnnet.models.vlstm import VLSTM
from vnnet.nn.advection import WIND_VARIABLES, UpstreamSampler


@dataclass
class VisionOptions:
    """Sizes and switches of the vision branch (V-LSTM + DQAM fusion).

    ``brightness_jitter``: in training only, each window's frames get one random offset per
    channel, uniform in ``[-a, a]`` in scaled (min-max) units, so that the branch cannot key on
    the absolute brightness level, which drifts between periods (season, sensor calibration),
    and must use the spatial and temporal contrasts (clouds). 0 switches it off.
    ``use_global``: False keeps only DQAM's local branch (each station reads its own pixel of
    the V-LSTM features, whose receptive field covers the surroundings), an ablation with far
    less capacity to fit image patterns.
    ``upstream_hours``: look-back times (hours) at which each station also reads the V-LSTM
    features upstream of it along the steering wind estimated from the stations' own wind
    observations (``vnnet.nn.advection``, a vnnet extension; needs ``wind_speed`` and
    ``wind_from_direction`` among the inputs). Empty (the default) is the paper's local branch.
    """

    stem_channels: int = 16
    downsample: int = 4
    scales: tuple[int, ...] = (1, 2, 4)
    n_heads: int = 4
    n_queries: int = 16
    dropout: float = 0.0
    stem_norm: bool = True
    gated: bool = False
    brightness_jitter: float = 0.0
    use_global: bool = True
    upstream_hours: tuple[float, ...] = ()


def jitter_brightness(images: torch.Tensor, image_mask: torch.Tensor, amplitude: float
                      ) -> torch.Tensor:
    """``(b t c H W)`` frames plus one uniform ``[-amplitude, amplitude]`` offset per window and
    channel, on present frames only (missing frames stay 0)."""
    b, _, c = images.shape[:3]
    offset = (torch.rand(b, 1, c, 1, 1, device=images.device, dtype=images.dtype) * 2 - 1)
    present = image_mask.to(images.dtype)[:, :, None, None, None]
    return images + amplitude * offset * present


class VNNet(ForecastModel):
    """VN-Net: (b t n f) station inputs + (b t c H W) frames -> (b h n c) scaled forecasts.

    Encoder inputs per station and hour: the scaled variables, their observed-masks and the
    standardised static location (lat, lon, elevation), so missing values are visible to the
    model rather than imputed silently. The decoder starts from each target's last observed
    value and feeds back its own forecasts.

    Args:
        data: the datamodule description (``WeatherDataModule.description()``).
        hidden: state size of encoder, decoder and fusion (official: 32).
        n_layers: recurrent layers of encoder and decoder (official: 2).
        embed_dim: node / calendar embedding size (official: 8).
        adaptive, dynamic, time_aware, static_graph: graph switches for ablations.
        vision: V-LSTM / DQAM sizes; None gives N-Net (no images).
        image_noise: replace frames by uniform noise (the random-image control).
        decoder_context: each decoder step also reads each station's top-layer encoder state
            (not in the paper, whose decoder sees the encoder only through ``h0``).
        context_source: which state that is: ``"fused"`` (with the images) or ``"encoder"``
            (the N-GCN state before fusion, so the images reach the decoder through ``h0``
            only, and their effect can fade with lead time).
        residual: the decoder forecasts each lead's departure from the last observation
            instead of the value (``GCNDecoder``; not in the paper, off by default; on in
            the aimsir17 configs).
    """

    def __init__(
        self,
        data: dict[str, Any],
        hidden: int = 32,
        n_layers: int = 2,
        embed_dim: int = 8,
        adaptive: bool = True,
        dynamic: bool = True,
        time_aware: bool = True,
        static_graph: bool = True,
        vision: VisionOptions | None = VisionOptions(),  # noqa: B008 - immutable in practice
        image_noise: bool = False,
        decoder_context: bool = False,
        context_source: Literal["fused", "encoder"] = "fused",
        residual: bool = False,
    ) -> None:
        super().__init__(data)
        spec = self.spec
        if context_source not in ("fused", "encoder"):
            raise ValueError(f"context_source must be 'fused' or 'encoder', got "
                             f"{context_source!r}")
        if context_source == "encoder" and not decoder_context:
            raise ValueError("context_source='encoder' chooses the decoder's per-step context, "
                             "which needs decoder_context=True")
        self.context_source = context_source
        if isinstance(vision, dict):  # rebuilt from a checkpoint's plain hyper-parameters
            vision = VisionOptions(**vision)
        if vision is not None and not spec.has_images:
            raise ValueError("VNNet has a vision branch but the data has no satellite images; "
                             "set vision: null (N-Net) or give the datamodule a satellite")
        if image_noise and vision is None:
            raise ValueError("image_noise needs the vision branch (vision is None)")
        adjacency = spec.graph().dense if static_graph else None
        self.register_buffer("static_features", spec.static_features(), persistent=False)
        index = spec.target_input_index()
        self.register_buffer("target_index", torch.tensor([-1 if i is None else i for i in index]),
                             persistent=False)
        self.encoder = NGCNEncoder(spec.n_stations, 2 * spec.n_inputs + 3, hidden, n_layers,
                                   embed_dim, adjacency, adaptive=adaptive,
                                   time_aware=time_aware, dynamic=dynamic)
        self.vision = self.fusion = self.fusion_gate = self.upstream = None
        self.image_noise = image_noise
        self.brightness_jitter = 0.0 if vision is None else float(vision.brightness_jitter)
        if not 0.0 <= self.brightness_jitter < float("inf"):
            raise ValueError(f"VisionOptions.brightness_jitter must be a finite number >= 0, "
                             f"got {self.brightness_jitter}")
        if vision is not None:
            self.vision = VLSTM(spec.image_channels, spec.image_size, hidden,
                                vision.stem_channels, vision.downsample, vision.scales,
                                vision.stem_norm)
            rows, cols = spec.pixels_on_grid(*self.vision.feature_size)
            if vision.upstream_hours:
                self.upstream = _upstream_sampler(spec, vision.upstream_hours)
            self.fusion = DQAMFusion(hidden, rows, cols, self.vision.feature_size,
                                     vision.n_heads, vision.n_queries, vision.dropout,
                                     vision.use_global, len(vision.upstream_hours))
            # ReZero-style gate (Bachlechner et al. 2021): zero at the start, so training
            # begins from N-Net and lets the image features in as far as they help.
            self.fusion_gate = nn.Parameter(torch.zeros(hidden)) if vision.gated else None
        # The decoder also sees the calendar (hour/day-of-year sin, cos) of each lead hour and,
        # with ``decoder_context``, each station's (fused) top-layer state at every step.
        self.decoder_context = decoder_context
        n_step = len(CYCLIC_FEATURE_NAMES) + (hidden if decoder_context else 0)
        self.decoder = GCNDecoder(spec.n_stations, spec.n_targets, hidden, n_layers, embed_dim,
                                  adjacency, adaptive=adaptive, n_step_features=n_step,
                                  residual=residual)

    def config(self) -> dict[str, Any]:
        config = super().config()
        vision = config["init_args"]["vision"]
        if isinstance(vision, VisionOptions):  # plain types only in checkpoints
            config["init_args"]["vision"] = {**asdict(vision), "scales": list(vision.scales),
                                             "upstream_hours": list(vision.upstream_hours)}
        return config

    def encode(self, batch: Batch) -> torch.Tensor:
        """(L b n d) encoder states, fused with the images when the vision branch is on."""
        return self.fuse(self.encode_stations(batch), batch)

    def encode_stations(self, batch: Batch) -> torch.Tensor:
        """(L b n d) N-GCN states of the station inputs alone."""
        b, t, n, _ = batch.x.shape
        static = self.static_features.expand(b, t, n, -1)
        inputs = torch.cat([batch.x, batch.x_mask.to(batch.x.dtype), static], dim=-1)
        return self.encoder(inputs, batch.time_index)[0]

    def fuse(self, states: torch.Tensor, batch: Batch) -> torch.Tensor:
        """(L b n d) station states fused with the batch's images (unchanged for N-Net)."""
        if self.vision is None:
            return states
        if batch.images is None:
            raise ValueError("this VNNet has a vision branch but the batch carries no images")
        images = torch.rand_like(batch.images) if self.image_noise else batch.images
        if self.training and self.brightness_jitter > 0 and not self.image_noise:
            images = jitter_brightness(images, batch.image_mask, self.brightness_jitter)
        features = self.vision(images, batch.image_mask)
        upstream = None if self.upstream is None else self.upstream(features, batch.x,
                                                                    batch.x_mask)
        fused = self.fusion(states, features, upstream)
        if self.fusion_gate is not None:
            return states + self.fusion_gate * torch.tanh(fused)
        # The fusion ends in a LayerNorm, which discards each state's own scale and offset;
        # averaging with the encoder state keeps that information on a residual path and
        # keeps the decoder's GRU state within (-1, 1).
        return 0.5 * (states + torch.tanh(fused))

    def forward(self, batch: Batch, teacher_forcing: float = 0.0) -> torch.Tensor:
        if self.context_source == "encoder":
            unfused = self.encode_stations(batch)
            states, context = self.fuse(unfused, batch), unfused[-1]
        else:
            states = self.encode(batch)
            context = states[-1]
        x_t = batch.x[..., self.target_index.clamp_min(0)]
        m_t = batch.x_mask[..., self.target_index.clamp_min(0)] & (self.target_index >= 0)
        go = last_observed(x_t, m_t)
        steps = batch.time_pred  # (b h k)
        if self.decoder_context:
            b, h = steps.shape[:2]
            n = states.shape[2]
            steps = torch.cat([steps.unsqueeze(2).expand(-1, -1, n, -1),
                               context.unsqueeze(1).expand(-1, h, -1, -1)], dim=-1)
        return self.decoder(states, go, self.spec.n_pred, targets=batch.y,
                            target_mask=batch.y_mask, teacher_forcing=teacher_forcing,
                            step_features=steps)


def _upstream_sampler(spec: Any, hours: tuple[float, ...]) -> UpstreamSampler:
    """The advection sampler for ``spec``'s stations, image grid and wind inputs."""
    missing = [v for v in WIND_VARIABLES if v not in spec.input_variables]
    if missing:
        raise ValueError(f"VisionOptions.upstream_hours needs the inputs {list(WIND_VARIABLES)} "
                         f"to estimate the cloud motion; the data lacks {missing} (inputs: "
                         f"{spec.input_variables}). Add them or set upstream_hours: []")
    scaler = spec.raw["station_scaler"]
    where = [scaler["names"].index(v) for v in WIND_VARIABLES]
    return UpstreamSampler(spec.lat, spec.lon, spec.image_lat, spec.image_lon,
                           [spec.input_variables.index(v) for v in WIND_VARIABLES],
                           [scaler["mean"][i] for i in where], [scaler["std"][i] for i in where],
                           hours)
