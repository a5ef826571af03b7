"""Where on the satellite image each station looks: DQAM attention as lat/lon maps.

VN-Net (arXiv 2404.16037) fuses station states with image features through a double query
attention module (DQAM, ``vnnet.models.fusion.DQAMFusion``); in this implementation every
station token attends to a learnable-query summary of the scene and to each pixel of the
encoder's feature grid. :func:`fusion_attention` runs a model on a batch and returns each
station's weights over the pixels on the feature grid's lat/lon, the "interpretation
analysis" of the visual branch the paper describes; :func:`vnnet.plots.attention_overlay`
draws them over a satellite frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import xarray as xr

from vnnet.data.batch import Batch, collate_windows
from vnnet.data.datamodule import WeatherDataModule

__all__ = ["fusion_attention", "fusion_attention_maps"]


def _as_numpy(values: Any) -> np.ndarray:
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    return np.asarray(values, dtype=np.float64)


def fusion_attention_maps(attention: Any, station_ids: Sequence[str], image_lat: Any,
                          image_lon: Any, feature_size: tuple[int, int], n_queries: int,
                          sample: int = 0) -> xr.DataArray:
    """Station-over-image attention of one sample as maps on the feature grid.

    ``attention`` is ``DQAMFusion.last_attention``: (b, L*n, n_queries + Hf*Wf), token
    ``l * n + i`` = layer l, station i; the first ``n_queries`` columns (the learnable-query
    summary) are dropped, the rest are pixels in row-major order. ``image_lat``/``image_lon``
    are the pixel-centre coordinates of the input image; the Hf x Wf feature grid covers the
    same box, so its cell centres become the ``lat``/``lon`` coordinates (row 0 = the image's
    first row, north for a north-up image).

    Returns a DataArray with dims ``(layer, station, lat, lon)``, ready for
    :func:`vnnet.plots.attention_overlay` after ``.sel(layer=...)`` or ``.mean("layer")``.
    Each station's pixel weights sum to at most 1 (the rest went to the query summary).
    """
    weights = _as_numpy(attention)
    height, width = (int(v) for v in feature_size)
    n = len(station_ids)
    if weights.ndim != 3 or weights.shape[2] != n_queries + height * width:
        raise ValueError(f"attention: expected (b, L*n, n_queries + Hf*Wf) = (b, L*{n}, "
                         f"{n_queries + height * width}), got {weights.shape}")
    if n == 0 or weights.shape[1] % n:
        raise ValueError(f"attention: {weights.shape[1]} station tokens are not a multiple of "
                         f"{n} stations")
    if not -weights.shape[0] <= sample < weights.shape[0]:
        raise ValueError(f"sample {sample} out of range for a batch of {weights.shape[0]}")
    maps = weights[sample, :, n_queries:].reshape(-1, n, height, width)
    coords = {}
    for name, centres, size in (("lat", image_lat, height), ("lon", image_lon, width)):
        centres = _as_numpy(centres)
        if centres.ndim != 1 or centres.size < 2:
            raise ValueError(f"image_{name}: expected 1-D pixel centres (at least 2)")
        step = centres[1] - centres[0]
        first_edge, span = centres[0] - step / 2, step * centres.size
        coords[name] = first_edge + (np.arange(size) + 0.5) * span / size
    return xr.DataArray(
        maps, dims=("layer", "station", "lat", "lon"),
        coords={"layer": np.arange(maps.shape[0]), "station": [str(s) for s in station_ids],
                **coords},
        name="attention", attrs={"long_name": "station-over-image attention weight",
                                 "units": "1"},
    )


def _fusion_module(model: torch.nn.Module) -> Any:
    """The model's image-fusion module: one with a station-over-pixel ``last_attention`` and a
    ``feature_size`` (``DQAMFusion``; the official code's ``LGVNFMFusion`` works the same way,
    with no query summary)."""
    found = [m for m in model.modules() if all(hasattr(m, name) for name in
                                               ("feature_size", "pixel_rows", "last_attention"))]
    if not found:
        raise ValueError(f"{type(model).__name__} has no fusion module with attention over the "
                         f"image (N-Net, vision=None, or a model without images)")
    if len(found) > 1:
        raise ValueError(f"{type(model).__name__} has {len(found)} image-fusion modules; "
                         f"expected one")
    return found[0]


def _nth_batch(datamodule: WeatherDataModule, split: str, batch_index: int) -> Batch:
    """Batch ``batch_index`` of ``split`` in window order (the eval batch size)."""
    dataset = datamodule.dataset(split)
    size = datamodule.eval_batch_size
    start = batch_index * size
    if not 0 <= start < len(dataset):
        raise ValueError(f"batch_index {batch_index} out of range for the {split} split "
                         f"({len(dataset)} windows, {size} per batch)")
    return collate_windows([dataset[i] for i in range(start, min(start + size, len(dataset)))])


def fusion_attention(forecaster: torch.nn.Module, batch_or_datamodule: Any,
                     split: str = "test", sample: int | None = 0,
                     batch_index: int = 0) -> xr.DataArray:
    """Each station's attention over the image for one forecast (or a batch's mean).

    Args:
        forecaster: a ``Forecaster`` or a bare model with an image-fusion module (``VNNet``
            with its vision branch: DQAM; ``VNNetOfficial``: LGVNFM, no query summary).
        batch_or_datamodule: a ``Batch``, or a ``WeatherDataModule`` whose ``split`` loader
            gives batch ``batch_index`` (in window order, the datamodule's eval batch size).
        sample: the window within the batch; None averages the maps over the batch.

    The model runs once in eval mode without gradients. Returns a DataArray with dims
    ``(layer, station, lat, lon)`` (layer = encoder layer whose state attends), lat/lon the
    cell centres of the fusion's feature grid over the image box, and the coordinate
    ``query_weight`` (layer, station): the weight each station put on the learnable-query
    summary instead of individual pixels (pixels + query weight = 1). With a datamodule,
    the attribute ``init_time`` names the forecast's init time (the last input hour).
    """
    model = getattr(forecaster, "model", forecaster)
    fusion = _fusion_module(model)
    datamodule = None
    if isinstance(batch_or_datamodule, Batch):
        batch = batch_or_datamodule
    elif isinstance(batch_or_datamodule, WeatherDataModule):
        datamodule = batch_or_datamodule
        batch = _nth_batch(datamodule, split, batch_index)
    else:
        raise ValueError(f"batch_or_datamodule: expected a Batch or a WeatherDataModule, got "
                         f"{type(batch_or_datamodule).__name__}")
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    was_training = model.training
    keep = getattr(fusion, "keep_attention", None)  # LGVNFM keeps weights only when asked
    model.eval()
    try:
        if keep is not None:
            fusion.keep_attention = True
        with torch.no_grad():
            model(batch.to(device))
    finally:
        model.train(was_training)
        if keep is not None:
            fusion.keep_attention = keep
    if fusion.last_attention is None:
        raise ValueError(f"{type(fusion).__name__} kept no attention weights")
    attention = fusion.last_attention.detach().cpu().double()
    if sample is None:
        attention, index = attention.mean(0, keepdim=True), 0
    else:
        index = int(sample)
    spec = model.spec
    n_queries = int(getattr(fusion, "n_queries", 0) or 0)
    maps = fusion_attention_maps(attention, spec.station_ids, spec.image_lat, spec.image_lon,
                                 fusion.feature_size, n_queries, sample=index)
    queries = attention[index, :, :n_queries].sum(-1).reshape(maps.shape[:2]).numpy()
    maps = maps.assign_coords(query_weight=(("layer", "station"), queries))
    if datamodule is not None and sample is not None:
        init = datamodule.times[int(batch.init_time[index])]
        maps.attrs["init_time"] = str(init)
    return maps
