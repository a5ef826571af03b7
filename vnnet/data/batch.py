"""The ``Batch`` every model receives: tensors with their layouts in their names."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np
import torch

# The calendar features of ``Batch.time`` / ``time_pred``, in order (last axis, k).
CYCLIC_FEATURE_NAMES = ("hour_sin", "hour_cos", "doy_sin", "doy_cos")


@dataclass
class Batch:
    """One mini-batch of forecast windows (DESIGN.md, "Batch").

    Layouts: b batch, t input hours (n_his), h lead hours (n_pred), n stations,
    f input variables, c target variables, k calendar features, H x W image pixels.

    - ``x`` (b t n f) scaled inputs, NaN filled with 0; ``x_mask`` (b t n f) True where observed.
    - ``y`` (b h n c) scaled targets, NaN filled with 0; ``y_mask`` (b h n c) True where the
      target is observed (and, with ``mask_zeros``, non-zero): loss and metrics use only these.
    - ``time`` (b t k) cyclic calendar features of the input hours (hour/day-of-year sin, cos);
      ``time_index`` (b t 3) int64 month (0-11), day (0-30), hour (0-23) of the input hours;
      ``time_pred`` (b h k) the same cyclic features for the lead hours.
    - ``init_time`` (b,) int64 index of the forecast's init hour (the last input hour) on the
      datamodule's time axis.
    - ``images`` (b t c H W) min-max scaled frames, NaN pixels filled with 0, or None;
      ``image_mask`` (b t) True where a frame was available (None without images).
    - ``y_lag`` (b h n c) the scaled targets ``target_lag`` before each valid time (at or
      before the init time), 0 where missing, and ``y_lag_mask`` (b h n c) True where
      observed; None unless the datamodule was asked for them (``target_lag``).
    """

    x: torch.Tensor
    x_mask: torch.Tensor
    y: torch.Tensor
    y_mask: torch.Tensor
    time: torch.Tensor
    time_index: torch.Tensor
    time_pred: torch.Tensor
    init_time: torch.Tensor
    images: torch.Tensor | None = None
    image_mask: torch.Tensor | None = None
    y_lag: torch.Tensor | None = None
    y_lag_mask: torch.Tensor | None = None

    @property
    def batch_size(self) -> int:
        return self.x.shape[0]

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        """A copy with every tensor on ``device``."""
        return Batch(**{
            f.name: None if (v := getattr(self, f.name)) is None
            else v.to(device, non_blocking=non_blocking)
            for f in fields(self)
        })

    def pin_memory(self) -> Batch:
        """Page-locked copy, used by DataLoader(pin_memory=True)."""
        return Batch(**{f.name: None if (v := getattr(self, f.name)) is None else v.pin_memory()
                        for f in fields(self)})


def collate_windows(samples: Sequence[dict[str, np.ndarray]]) -> Batch:
    """Stack per-window numpy dicts (from ``WindowDataset``) into a ``Batch``."""
    stacked = {}
    for f in fields(Batch):
        values = [s.get(f.name) for s in samples]
        stacked[f.name] = None if values[0] is None else torch.from_numpy(np.stack(values))
    return Batch(**stacked)
