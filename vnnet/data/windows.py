"""Chronological splits, forecast windows and calendar features.

A window starting at time index ``s`` takes inputs at ``s .. s+n_his-1`` and targets at
``s+n_his .. s+n_his+n_pred-1``; its forecast is issued at ``s+n_his-1`` (the init time,
lead hours 1..n_pred after it). Windows are cut inside each split, so none crosses a
split boundary (the Weather2K protocol of VNNET-SPEC 1.4 gives 8,737 test windows).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

SPLITS = ("train", "val", "test")
HOURS_PER_YEAR = 8760

SplitSpec = str | Sequence[float] | Mapping[str, str]


def chronological_splits(times: pd.DatetimeIndex, split: SplitSpec) -> dict[str, slice]:
    """Cut a regular time axis into consecutive train / val / test index ranges.

    ``split`` is one of:
    - fractions ``(train, val, test)`` summing to at most 1 (the remainder is unused);
    - dates ``{"val_start": ..., "test_start": ...}`` (optionally ``"test_end"``): train is
      everything before ``val_start``, val up to ``test_start``, test from there on;
    - ``"weather2k"``: the official VN-Net protocol, val and test the last two 8,760-hour
      years and train everything before (on the 40,896-hour record: train 2017-01-01 ..
      2019-09-01 23:00, val from 2019-09-02, test from 2020-09-01).
    Returns ``{"train": slice, "val": slice, "test": slice}`` over time indices.
    """
    n = len(times)
    if isinstance(split, str):
        if split != "weather2k":
            raise ValueError(f"split: unknown preset '{split}'; expected 'weather2k', fractions "
                             f"(train, val, test) or dates {{'val_start', 'test_start'}}")
        if n <= 2 * HOURS_PER_YEAR:
            raise ValueError(f"split 'weather2k' needs more than {2 * HOURS_PER_YEAR} hourly "
                             f"steps (two held-out years), got {n}")
        bounds = [0, n - 2 * HOURS_PER_YEAR, n - HOURS_PER_YEAR, n]
    elif isinstance(split, Mapping):
        unknown = set(split) - {"val_start", "test_start", "test_end"}
        if unknown or not {"val_start", "test_start"} <= set(split):
            raise ValueError(f"split: date keys must be 'val_start', 'test_start' and optionally "
                             f"'test_end', got {sorted(split)}")
        try:
            edges = [pd.Timestamp(split[k]) for k in ("val_start", "test_start")]
            end = pd.Timestamp(split["test_end"]) if "test_end" in split else None
        except ValueError as err:
            raise ValueError(f"split: cannot parse a split date: {err}") from None
        if not edges[0] < edges[1]:
            raise ValueError(f"split: val_start {edges[0]} must come before test_start "
                             f"{edges[1]}")
        stop = n if end is None else int(times.searchsorted(end, side="right"))
        bounds = [0, *(int(times.searchsorted(e)) for e in edges), stop]
    else:
        fractions = [float(f) for f in split]
        if len(fractions) != 3 or any(f < 0 for f in fractions) or sum(fractions) > 1 + 1e-9:
            raise ValueError(f"split: fractions must be three non-negative numbers (train, val, "
                             f"test) summing to at most 1, got {list(split)}")
        cum = np.cumsum([0.0, *fractions])
        bounds = [int(round(c * n)) for c in cum]
    slices = {name: slice(bounds[i], bounds[i + 1]) for i, name in enumerate(SPLITS)}
    if slices["train"].stop <= slices["train"].start:
        raise ValueError(f"split: the training split is empty ({split!r} on {n} time steps "
                         f"from {times[0]} to {times[-1]})")
    return slices


def window_starts(segment: slice, n_his: int, n_pred: int, stride: int = 1) -> np.ndarray:
    """Start indices of all windows of ``n_his + n_pred`` steps lying inside ``segment``."""
    for name, value, low in (("n_his", n_his, 1), ("n_pred", n_pred, 1), ("stride", stride, 1)):
        if int(value) != value or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    last = segment.stop - (n_his + n_pred)
    if last < segment.start:
        return np.zeros(0, dtype=np.int64)
    return np.arange(segment.start, last + 1, stride, dtype=np.int64)


def calendar_index(times: pd.DatetimeIndex) -> np.ndarray:
    """(time, 3) int64: zero-based month (0-11), day of month (0-30) and hour (0-23).

    These index the month/day/hour embeddings of time-aware models (VNNET-SPEC 2.2).
    """
    return np.stack([times.month - 1, times.day - 1, times.hour], axis=-1).astype(np.int64)


def cyclic_features(times: pd.DatetimeIndex) -> np.ndarray:
    """(time, 4) float32: sin/cos of the hour of day and of the day of year."""
    hour = (times.hour + times.minute / 60.0).to_numpy()
    doy = (times.day_of_year - 1 + hour / 24.0).to_numpy()
    year_len = np.where(times.is_leap_year, 366.0, 365.0)
    angles = [2 * np.pi * hour / 24.0, 2 * np.pi * doy / year_len]
    feats = [f(a) for a in angles for f in (np.sin, np.cos)]
    return np.stack(feats, axis=-1).astype(np.float32)




def lag_steps(lag: str | pd.Timedelta, times: pd.DatetimeIndex, n_pred: int) -> int:
    """``lag`` (a duration, e.g. ``"24h"``) in steps of the regular axis ``times``.

    A window's lagged targets are those at ``valid_time - lag``; for every lead hour
    ``1..n_pred`` that is at or before the init time only if ``lag >= n_pred`` steps, so a
    shorter lag (which would leak values from after the forecast start) is an error.
    """
    try:
        duration = pd.Timedelta(lag)
    except ValueError:
        raise ValueError(f"target_lag: cannot parse {lag!r} as a duration (e.g. '24h')") from None
    step = pd.Timedelta(times[1] - times[0]) if len(times) > 1 else duration
    steps = duration / step
    if steps != int(steps) or steps < 1:
        raise ValueError(f"target_lag {lag!r} is not a positive whole number of time steps "
                         f"({step})")
    if int(steps) < n_pred:
        raise ValueError(f"target_lag {lag!r} ({int(steps)} steps) is shorter than n_pred = "
                         f"{n_pred} lead steps: the lagged target of the later leads would come "
                         f"from after the init time")
    return int(steps)


def lagged_window(values: np.ndarray, mask: np.ndarray, start: int, length: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``start .. start+length-1`` of (time ...) ``values`` and ``mask``; rows before the
    record (negative indices) come back missing: value 0, mask False."""
    first = max(start, 0)  # rows before the record stay missing
    stop = max(start + length, first)
    out = np.zeros((length, *values.shape[1:]), values.dtype)
    out_mask = np.zeros((length, *mask.shape[1:]), bool)
    out[first - start:], out_mask[first - start:] = values[first:stop], mask[first:stop]
    return out, out_mask
