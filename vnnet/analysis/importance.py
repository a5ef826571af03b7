"""Permutation importance of the input factors: variables, static location, images.

VN-Net (arXiv 2404.16037) quantifies the contributions of the meteorological factors and of
the static location information. Here a factor's importance is how much the test MAE grows
when the factor is made uninformative by shuffling it while everything else stays as it was
(permutation importance): a model that ignores a factor loses nothing.

- A variable: its input values (and its observed-mask, so a gap travels with its value) are
  taken from another forecast window, the same pairing for every variable; the targets the
  forecast is scored against are never touched.
- The static location: models see each station's standardised lat, lon and elevation
  through their ``static_features`` buffer (n 3), concatenated to the station's inputs at
  every hour. Its rows are permuted across stations for the evaluation and restored after,
  so every station is handed another station's location. The station graph and the
  station-to-pixel co-registration are structure fixed at construction, not inputs, and
  stay as trained: the score measures what the model reads from the location values.
- The satellite images: each window's frame sequence (and frame mask) is taken from another
  window.

Permutations are cyclic (no window or station keeps its own values).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from vnnet.data.batch import collate_windows
from vnnet.data.datamodule import WeatherDataModule, WindowDataset
from vnnet.metrics import ForecastErrors

__all__ = ["cyclic_permutation", "permutation_importance"]

LOCATION = "location"
IMAGES = "satellite_images"


def cyclic_permutation(n: int, rng: np.random.Generator) -> np.ndarray:
    """A random permutation of ``range(n)`` with no fixed point (one n-cycle)."""
    if n < 2:
        raise ValueError(f"cannot permute fewer than 2 items without a fixed point, got {n}")
    order = rng.permutation(n)
    perm = np.empty(n, dtype=np.int64)
    perm[order] = np.roll(order, -1)
    return perm


class _PermutedWindows(Dataset):
    """Windows of ``base`` with some inputs taken from window ``partner[i]`` instead."""

    def __init__(self, base: WindowDataset, partner: np.ndarray, columns: Sequence[int] = (),
                 images: bool = False) -> None:
        self.base, self.partner = base, partner
        self.columns, self.images = list(columns), images

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        sample = dict(self.base[i])
        start = int(self.base.starts[int(self.partner[i])])
        inputs = slice(start, start + self.base.n_his)
        if self.columns:
            for key in ("x", "x_mask"):  # copies: the base arrays are shared views
                values = sample[key].copy()
                values[..., self.columns] = self.base.arrays[key][inputs][..., self.columns]
                sample[key] = values
        if self.images:
            sample["images"], sample["image_mask"] = self.base.read_images(
                self.base.frame_of_time[inputs])
        return sample


@contextmanager
def _permuted_location(model: torch.nn.Module, perm: np.ndarray) -> Iterator[bool]:
    """Rows of every ``static_features`` buffer permuted across stations; False if none."""
    buffers = [buf for module in model.modules()
               for name, buf in module.named_buffers(recurse=False) if name == "static_features"]
    saved = [buf.clone() for buf in buffers]
    try:
        for buf in buffers:
            buf.copy_(buf[torch.as_tensor(perm, device=buf.device)])
        yield bool(buffers)
    finally:
        for buf, original in zip(buffers, saved, strict=True):
            buf.copy_(original)


def _mae(forecaster: Any, dataset: Dataset, batch_size: int, seed: int) -> float:
    """Masked MAE in physical units over ``dataset`` (mean over targets)."""
    spec = forecaster.spec
    errors = ForecastErrors(spec.n_pred, spec.target_variables)
    device = forecaster.device
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False,
                        collate_fn=collate_windows)
    # Seeded per evaluation: a model drawing random numbers (the noise-image control) sees
    # the same draws in every evaluation, so only the permutation differs.
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        for batch in loader:
            batch = batch.to(device)
            errors.update(forecaster(batch).cpu(), forecaster.to_physical(batch.y).cpu(),
                          batch.y_mask.cpu())
    return float(errors.compute()["mae"])


def _as_forecaster(forecaster: Any) -> Any:
    from vnnet.forecaster import Forecaster
    from vnnet.models.base import ForecastModel

    if isinstance(forecaster, Forecaster):
        return forecaster
    if isinstance(forecaster, ForecastModel):
        return Forecaster(forecaster)
    raise ValueError(f"forecaster: expected a vnnet Forecaster or ForecastModel, got "
                     f"{type(forecaster).__name__}")


def permutation_importance(forecaster: Any, datamodule: WeatherDataModule,
                           split: str = "test", variables: Sequence[str] | None = None,
                           include_location: bool = True, n_repeats: int = 1, seed: int = 0,
                           include_images: bool | None = None) -> pd.DataFrame:
    """MAE increase when one input factor is shuffled (see the module docstring for how).

    Args:
        forecaster: a trained ``Forecaster`` (or a bare ``ForecastModel``) for the data of
            ``datamodule``.
        datamodule: the data; its ``split`` windows are scored.
        split: "train", "val", "test" or "all".
        variables: input variables to permute (default: every input variable).
        include_location: also permute the static location across stations.
        n_repeats: permutations per factor; the table reports their mean and spread.
        seed: seed of the permutations (and of any random numbers the model draws).
        include_images: also permute the image sequences across windows; default: when the
            data has images.

    Returns a DataFrame indexed by ``factor`` with columns ``kind`` (variable, location or
    images), ``baseline_mae`` (unpermuted), ``mae`` (permuted, mean over repeats),
    ``increase`` (mae - baseline_mae), ``increase_std`` (over repeats) and
    ``relative_increase`` (increase / baseline_mae). MAEs are masked, in physical units and
    averaged over targets, as ``Forecaster``'s ``test/mae``. The location row is NaN, with a
    warning, for a model without a ``static_features`` buffer.
    """
    forecaster = _as_forecaster(forecaster)
    if n_repeats < 1:
        raise ValueError(f"n_repeats must be >= 1, got {n_repeats}")
    names = list(datamodule.input_variables)
    chosen = names if variables is None else [str(v) for v in variables]
    unknown = [v for v in chosen if v not in names]
    if unknown:
        raise ValueError(f"variables: {unknown} are not input variables of the data {names}")
    base = datamodule.dataset(split)
    if len(base) < 2:
        raise ValueError(f"the {split} split has {len(base)} window(s); permuting needs 2")
    if include_images is None:
        include_images = base.frames is not None
    elif include_images and base.frames is None:
        raise ValueError("include_images: the data has no satellite images")
    size = datamodule.eval_batch_size
    rng = np.random.default_rng(seed)

    was_training = forecaster.training
    forecaster.eval()
    try:
        baseline = _mae(forecaster, base, size, seed)
        results: dict[str, list[float]] = {v: [] for v in chosen}
        if include_location:
            results[LOCATION] = []
        if include_images:
            results[IMAGES] = []
        for _ in range(n_repeats):
            partner = cyclic_permutation(len(base), rng)
            for v in chosen:
                permuted = _PermutedWindows(base, partner, columns=[names.index(v)])
                results[v].append(_mae(forecaster, permuted, size, seed))
            if include_images:
                permuted = _PermutedWindows(base, partner, images=True)
                results[IMAGES].append(_mae(forecaster, permuted, size, seed))
            if include_location:
                stations = cyclic_permutation(datamodule.n_stations, rng)
                with _permuted_location(forecaster.model, stations) as found:
                    results[LOCATION].append(_mae(forecaster, base, size, seed) if found
                                             else np.nan)
    finally:
        forecaster.train(was_training)
    if include_location and np.isnan(results[LOCATION]).all():
        warnings.warn(f"{type(forecaster.model).__name__} has no 'static_features' buffer: the "
                      f"importance of the static location is not measured (NaN)", stacklevel=2)

    kinds = {LOCATION: "location", IMAGES: "images"}
    rows = []
    for factor, values in results.items():
        values = np.asarray(values, dtype=np.float64)
        increase = values - baseline
        rows.append({"factor": factor, "kind": kinds.get(factor, "variable"),
                     "baseline_mae": baseline, "mae": values.mean(),
                     "increase": increase.mean(),
                     "increase_std": increase.std(ddof=1) if len(values) > 1 else np.nan,
                     "relative_increase": increase.mean() / baseline if baseline else np.nan})
    return pd.DataFrame(rows).set_index("factor")
