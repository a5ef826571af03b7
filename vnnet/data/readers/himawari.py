"""Reader for VN-Net's Himawari-8 image cubes (VNNET-SPEC.md 1.6).

On disk: ``H8_{NE,SW,SE}_160x160_*.npy`` of layout ``(time, H, W, channel)``, one frame per
hour, brightness temperature in K, row 0 = northern edge (lat_max), column 0 = western edge
(lon_min). Returned as a lazy ``xarray.DataArray`` with dims ``(time, channel, lat, lon)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr

from vnnet.data.readers.files import LazyNpy, PathLike, block_length, hourly_times
from vnnet.data.schema import validate_satellite

__all__ = ["REGION_BOXES", "read_himawari"]

#: Satellite boxes of the three VN-Net regions as (lat_min, lat_max, lon_min, lon_max) in
#: degrees: 6.4 x 6.4 deg at 160 px = 0.04 deg per pixel.
REGION_BOXES: dict[str, tuple[float, float, float, float]] = {
    "NE": (38.3, 44.7, 117.3, 123.7),
    "SW": (26.3, 32.7, 100.3, 106.7),
    "SE": (26.8, 33.2, 116.8, 123.2),
}
# The official code names the regions by station count.
_REGION_ALIASES = {"D60": "NE", "D96": "SW", "D139": "SE"}

# Frames per dask block: dask reads whole blocks, so a 12-frame window should not pull in
# much more than itself (about 13 float16 frames of 160 x 160 x 6 per block).
_BLOCK_BYTES = 4 * 2**20
#: The Himawari-8 AHI has 16 bands; more on the last axis means a channel-first cube.
MAX_CHANNELS = 16


def _box(region: str | None,
         bbox: Sequence[float] | None) -> tuple[float, float, float, float]:
    if (region is None) == (bbox is None):
        raise ValueError(f"give exactly one of region (one of {sorted(REGION_BOXES)}) or bbox "
                         f"(lat_min, lat_max, lon_min, lon_max); got region={region!r}, "
                         f"bbox={bbox!r}")
    if region is not None:
        key = _REGION_ALIASES.get(str(region).upper(), str(region).upper())
        if key not in REGION_BOXES:
            raise ValueError(f"unknown region {region!r}; expected one of {sorted(REGION_BOXES)} "
                             f"(or {sorted(_REGION_ALIASES)}), or pass bbox=")
        return REGION_BOXES[key]
    try:
        lat_min, lat_max, lon_min, lon_max = (float(v) for v in bbox)  # type: ignore[union-attr]
    except (TypeError, ValueError) as err:
        raise ValueError(f"bbox: expected four numbers (lat_min, lat_max, lon_min, lon_max), "
                         f"got {bbox!r}") from err
    if not lat_min < lat_max:
        raise ValueError(f"bbox: lat_min must be < lat_max in (lat_min, lat_max, lon_min, "
                         f"lon_max), got {lat_min} >= {lat_max}")
    if not lon_min < lon_max:
        raise ValueError(f"bbox: lon_min must be < lon_max in (lat_min, lat_max, lon_min, "
                         f"lon_max), got {lon_min} >= {lon_max}")
    return lat_min, lat_max, lon_min, lon_max


def pixel_centres(box: Sequence[float], height: int,
                  width: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre (lat, lon) of a ``height x width`` grid over ``box``, row 0 = north.

    ``lat`` descends from ``lat_max - dlat/2``; ``lon`` ascends from ``lon_min + dlon/2``.
    """
    lat_min, lat_max, lon_min, lon_max = box
    dlat = (lat_max - lat_min) / height
    dlon = (lon_max - lon_min) / width
    lat = lat_max - dlat * (np.arange(height) + 0.5)
    lon = lon_min + dlon * (np.arange(width) + 0.5)
    return lat, lon


def _check_layout(path: PathLike, shape: tuple[int, ...], region: str | None) -> None:
    """Catch a cube stored channel-first, (time, channel, H, W), which would otherwise be read
    as frames of ``channel`` x H pixels with W channels."""
    _, height, width, n_channel = shape
    hint = ("is it stored as (time, channel, H, W)? The layout must be (time, H, W, channel); "
            "convert with np.moveaxis(cube, 1, -1)")
    if n_channel > MAX_CHANNELS:
        raise ValueError(f"{path}: shape {shape} has {n_channel} channels on its last axis, more "
                         f"than the {MAX_CHANNELS} bands of the Himawari-8 imager; {hint}")
    if region is not None and height != width:
        raise ValueError(f"{path}: region {region!r} is a square box but the frames of shape "
                         f"{shape} are {height} x {width} pixels; {hint}")


def read_himawari(
    path: PathLike,
    *,
    region: str | None = None,
    bbox: Sequence[float] | None = None,
    start: str | pd.Timestamp = "2017-01-01 00:00",
    channels: Sequence[str] | None = None,
) -> xr.DataArray:
    """Read a Himawari cube ``.npy`` of layout ``(time, H, W, channel)`` (row 0 = north).

    Returns a dask-backed DataArray with dims ``(time, channel, lat, lon)`` over a memory map
    of the file, in the file's dtype (float16 stays float16): hourly UTC times from ``start``,
    pixel-centre ``lat`` (descending) and ``lon`` (ascending) over the box given by exactly one
    of ``region`` (a key of :data:`REGION_BOXES`) or ``bbox`` = (lat_min, lat_max, lon_min,
    lon_max), ``channel`` = 0..C-1 or the names in ``channels``, units "K". A cube that looks
    channel-first (more than :data:`MAX_CHANNELS` channels, or non-square frames for a square
    region preset) raises ``ValueError``.
    """
    box = _box(region, bbox)
    source = LazyNpy(path)
    if source.ndim != 4:
        raise ValueError(f"{path}: expected a 4-d array (time, H, W, channel), got shape "
                         f"{source.shape}")
    n_time, height, width, n_channel = source.shape
    _check_layout(path, source.shape, region)
    if channels is None:
        channel = np.arange(n_channel)
    else:
        channel = np.asarray(list(channels))
        if channel.shape != (n_channel,) or pd.Index(channel).has_duplicates:
            raise ValueError(f"channels: expected {n_channel} distinct names (the file has "
                             f"{n_channel} channels), got {list(channels)!r}")
    lat, lon = pixel_centres(box, height, width)

    frame_bytes = height * width * n_channel * source.dtype.itemsize
    t_block = block_length(frame_bytes, n_time, _BLOCK_BYTES)
    # Transposing a dask array is lazy: blocks are read (time, H, W, C) and reordered per block.
    array = source.to_dask((t_block, height, width, n_channel)).transpose(0, 3, 1, 2)
    da = xr.DataArray(
        array,
        dims=("time", "channel", "lat", "lon"),
        coords={"time": hourly_times(start, n_time).values, "channel": channel,
                "lat": lat, "lon": lon},
        name="brightness_temperature",
        attrs={"units": "K", "long_name": "Himawari-8 brightness temperature",
               "standard_name": "toa_brightness_temperature",
               "source_file": str(path),
               "bbox": [float(v) for v in box]},
    )
    try:
        return validate_satellite(da)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err
