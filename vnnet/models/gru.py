"""``GRUBaseline``: a GRU encoder-decoder shared across stations (no graph).

Each station is an independent sequence through the same weights (the classic
sequence-to-sequence recurrent baseline of Sutskever et al. 2014 / Cho et al. 2014 applied per
station), so whatever it learns about space comes from its static location inputs only.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from vnnet.data.batch import CYCLIC_FEATURE_NAMES, Batch
from vnnet.models.base import ForecastModel, last_observed
from vnnet.models.baselines import check_inputs, n_station_inputs, station_inputs

__all__ = ["GRUBaseline"]


class GRUBaseline(ForecastModel):
    """GRU encoder-decoder per station: ``(b t n f)`` inputs -> ``(b h n c)`` scaled forecasts.

    Encoder: a stacked GRU over the ``t`` input hours of each station (``b n`` independent
    sequences), fed :func:`~vnnet.models.baselines.station_inputs` (scaled variables, their
    masks, the hour's calendar features, the static location). Decoder: a stacked GRU started
    from the encoder's final state, autoregressive over the ``h`` lead hours; its first input
    is each target's last observed value (:func:`~vnnet.models.base.last_observed`; 0 for a
    target that is not an input), then its own previous forecast, always with the lead hour's
    calendar features. With ``teacher_forcing`` > 0 in training mode, one coin per batch and
    step feeds the observed truth of the previous lead hour instead (scheduled sampling).

    Args:
        data: the datamodule description (``WeatherDataModule.description()``).
        hidden: GRU state size d.
        n_layers: stacked GRU layers of encoder and decoder.
        dropout: dropout between stacked layers (training only).
    """

    def __init__(self, data: dict[str, Any], hidden: int = 64, n_layers: int = 2,
                 dropout: float = 0.0) -> None:
        super().__init__(data)
        if hidden < 1 or n_layers < 1:
            raise ValueError(f"GRUBaseline: hidden and n_layers must be >= 1, got {hidden}, "
                             f"{n_layers}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"GRUBaseline: dropout must be in [0, 1), got {dropout}")
        spec = self.spec
        self.register_buffer("static_features", spec.static_features(), persistent=False)
        index = spec.target_input_index()
        self.register_buffer("target_index", torch.tensor([-1 if i is None else i for i in index]),
                             persistent=False)
        inner = dropout if n_layers > 1 else 0.0
        n_calendar = len(CYCLIC_FEATURE_NAMES)
        self.encoder = nn.GRU(n_station_inputs(spec), hidden, n_layers, batch_first=True,
                              dropout=inner)
        self.decoder = nn.GRU(spec.n_targets + n_calendar, hidden, n_layers, batch_first=True,
                              dropout=inner)
        self.projection = nn.Linear(hidden, spec.n_targets)

    def forward(self, batch: Batch, teacher_forcing: float = 0.0) -> torch.Tensor:
        spec = self.spec
        check_inputs(spec, batch, "GRUBaseline")
        b, t, n, _ = batch.x.shape
        h, c = spec.n_pred, spec.n_targets
        if tuple(batch.time_pred.shape) != (b, h, len(CYCLIC_FEATURE_NAMES)):
            raise ValueError(f"GRUBaseline: batch.time_pred: expected (b h k) = (b {h} "
                             f"{len(CYCLIC_FEATURE_NAMES)}), got {tuple(batch.time_pred.shape)}")
        sampling = self.training and teacher_forcing > 0.0 and h > 1
        if sampling and tuple(batch.y.shape) != (b, h, n, c):
            raise ValueError(f"GRUBaseline: batch.y: expected (b h n c) = (b {h} {n} {c}) for "
                             f"teacher forcing, got {tuple(batch.y.shape)}")

        seq = station_inputs(batch, self.static_features).permute(0, 2, 1, 3).reshape(b * n, t, -1)
        _, state = self.encoder(seq)  # (L bn d)
        index = self.target_index.clamp_min(0)
        observed = batch.x_mask[..., index] & (self.target_index >= 0)
        prev = last_observed(batch.x[..., index], observed).reshape(b * n, c)
        calendar = batch.time_pred.to(batch.x.dtype).unsqueeze(1).expand(b, n, h, -1)
        calendar = calendar.reshape(b * n, h, -1)
        truth = batch.y.permute(0, 2, 1, 3).reshape(b * n, h, c)
        known = batch.y_mask.permute(0, 2, 1, 3).reshape(b * n, h, c)
        preds = []
        for step in range(h):
            if step > 0:
                prev = preds[-1]
                if sampling and bool(torch.rand(()) < teacher_forcing):
                    prev = torch.where(known[:, step - 1], truth[:, step - 1], prev)
            out, state = self.decoder(torch.cat([prev, calendar[:, step]], -1).unsqueeze(1),
                                      state)
            preds.append(self.projection(out[:, 0]))
        return torch.stack(preds, dim=1).reshape(b, n, h, c).permute(0, 2, 1, 3)
