"""Masked scalers fitted on the training split only (DESIGN.md, "Scalers").

Both scalers are invertible, work on numpy arrays and torch tensors alike (the statistics
are broadcast along the last axis for stations and along the channel axis for images), and
serialise to plain dicts so they can travel inside a checkpoint.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

ArrayLike = np.ndarray | torch.Tensor


def _like(stat: np.ndarray, x: ArrayLike) -> ArrayLike:
    if isinstance(x, torch.Tensor):
        return torch.as_tensor(stat, dtype=x.dtype, device=x.device)
    return stat.astype(x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64)


class StandardScaler:
    """Per-variable z-score ``(x - mean) / std`` that ignores NaN when fitting.

    Statistics are taken over every axis but the last, which indexes variables
    (e.g. values laid out (time, station, variable)). A variable with zero spread gets
    std 1 so that it maps to 0 instead of inf. Population std (ddof 0), as in the
    official VN-Net constants.
    """

    def __init__(self, names: Sequence[str], mean: Sequence[float] | None = None,
                 std: Sequence[float] | None = None) -> None:
        self.names = [str(n) for n in names]
        self.mean = None if mean is None else np.asarray(mean, dtype=np.float64)
        self.std = None if std is None else np.asarray(std, dtype=np.float64)
        if self.mean is not None and (len(self.mean) != len(self.names)
                                      or self.std is None or len(self.std) != len(self.names)):
            raise ValueError(f"StandardScaler: mean and std need one value per variable "
                             f"({len(self.names)})")
        if self.std is not None and not (self.std > 0).all():
            raise ValueError("StandardScaler: std must be positive")

    def fit(self, values: np.ndarray) -> StandardScaler:
        """Fit on (..., variable) values; NaN entries are ignored."""
        values = np.asarray(values, dtype=np.float64)
        if values.shape[-1] != len(self.names):
            raise ValueError(f"StandardScaler: last axis has {values.shape[-1]} variables, "
                             f"expected {len(self.names)} ({self.names})")
        flat = values.reshape(-1, values.shape[-1])
        counts = np.isfinite(flat).sum(axis=0)
        if (counts == 0).any():
            empty = [n for n, c in zip(self.names, counts, strict=True) if c == 0]
            raise ValueError(f"StandardScaler: no observed value to fit variables {empty} "
                             f"(all NaN in the training split)")
        self.mean = np.nanmean(flat, axis=0)
        std = np.nanstd(flat, axis=0)
        self.std = np.where(std > 0, std, 1.0)
        return self

    def _check(self) -> None:
        if self.mean is None:
            raise RuntimeError("StandardScaler used before fit()")

    def transform(self, x: ArrayLike, index: Sequence[int] | None = None) -> ArrayLike:
        """Scale (..., variable) values; ``index`` picks the variables the last axis holds."""
        self._check()
        mean, std = (self.mean, self.std) if index is None else (self.mean[index],
                                                                 self.std[index])
        return (x - _like(mean, x)) / _like(std, x)

    def inverse_transform(self, x: ArrayLike, index: Sequence[int] | None = None) -> ArrayLike:
        """Back to physical units; ``index`` picks the variables the last axis holds."""
        self._check()
        mean, std = (self.mean, self.std) if index is None else (self.mean[index],
                                                                 self.std[index])
        return x * _like(std, x) + _like(mean, x)

    def index(self, names: Sequence[str]) -> list[int]:
        """Positions of ``names`` among the fitted variables."""
        missing = [n for n in names if n not in self.names]
        if missing:
            raise ValueError(f"StandardScaler: unknown variables {missing}; have {self.names}")
        return [self.names.index(n) for n in names]

    def to_dict(self) -> dict[str, Any]:
        self._check()
        return {"type": "standard", "names": list(self.names), "mean": self.mean.tolist(),
                "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> StandardScaler:
        return cls(state["names"], state["mean"], state["std"])


class MinMaxScaler:
    """Per-channel min-max scaling of images to [0, 1], ignoring NaN pixels when fitting.

    Statistics are per channel of (time, channel, lat, lon) cubes; ``transform`` broadcasts
    over an array whose channel axis is ``channel_axis`` (default -3: (..., c, H, W)).
    """

    def __init__(self, minimum: Sequence[float] | None = None,
                 maximum: Sequence[float] | None = None) -> None:
        self.min = None if minimum is None else np.asarray(minimum, dtype=np.float64)
        self.max = None if maximum is None else np.asarray(maximum, dtype=np.float64)
        if (self.min is None) != (self.max is None):
            raise ValueError("MinMaxScaler: give both minimum and maximum, or neither")
        if self.min is not None and (self.min.shape != self.max.shape
                                     or not (self.max > self.min).all()):
            raise ValueError(f"MinMaxScaler: need maximum > minimum per channel, got min "
                             f"{self.min.tolist()} and max {self.max.tolist()}")

    def fit(self, frames: Any, indices: np.ndarray, chunk: int = 256,
            progress: bool = False) -> MinMaxScaler:
        """Fit on ``frames[indices]`` of a (time, channel, lat, lon) array, streamed in chunks.

        ``frames`` is anything indexable by an integer array along its first axis (numpy,
        memmap, dask, a lazily opened xarray variable's data); the cube is never loaded whole.
        """
        indices = np.asarray(indices, dtype=np.int64)
        if indices.size == 0:
            raise ValueError("MinMaxScaler: no frames to fit on (no satellite frame in the "
                             "training split)")
        lo = hi = None
        starts = range(0, indices.size, chunk)
        for s in tqdm(starts, desc="fitting image scaler", disable=not progress, leave=False):
            block = np.asarray(frames[indices[s:s + chunk]], dtype=np.float64)
            with warnings.catch_warnings():  # an all-NaN frame is a missing frame
                warnings.filterwarnings("ignore", message="All-NaN slice")
                block_lo = np.nanmin(block, axis=(0, 2, 3))
                block_hi = np.nanmax(block, axis=(0, 2, 3))
            lo = block_lo if lo is None else np.fmin(lo, block_lo)
            hi = block_hi if hi is None else np.fmax(hi, block_hi)
        if not (np.isfinite(lo).all() and np.isfinite(hi).all()):
            raise ValueError("MinMaxScaler: a channel has no observed pixel in the training "
                             "frames")
        self.min, self.max = lo, np.where(hi > lo, hi, lo + 1.0)
        return self

    def _stats(self, x: ArrayLike, channel_axis: int) -> tuple[ArrayLike, ArrayLike]:
        if self.min is None:
            raise RuntimeError("MinMaxScaler used before fit()")
        shape = [1] * x.ndim
        shape[channel_axis] = -1
        lo = _like(self.min, x).reshape(shape)
        span = _like(self.max - self.min, x).reshape(shape)
        return lo, span

    def transform(self, x: ArrayLike, channel_axis: int = -3) -> ArrayLike:
        lo, span = self._stats(x, channel_axis)
        return (x - lo) / span

    def inverse_transform(self, x: ArrayLike, channel_axis: int = -3) -> ArrayLike:
        lo, span = self._stats(x, channel_axis)
        return x * span + lo

    def to_dict(self) -> dict[str, Any]:
        if self.min is None:
            raise RuntimeError("MinMaxScaler used before fit()")
        return {"type": "minmax", "min": self.min.tolist(), "max": self.max.tolist()}

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> MinMaxScaler:
        return cls(state["min"], state["max"])

