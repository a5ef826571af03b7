"""Station-to-pixel co-registration on a regular lat/lon image grid.

Each station maps to the pixel whose cell contains it on the full-resolution image, and to
the cell of a downsampled feature grid (e.g. the 40 x 40 map an image encoder makes of a
160 x 160 crop), which is where a fusion module gathers the pixel feature under a station.
Row 0 is the first latitude of the grid as stored (north when lat is descending).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PixelMap:
    """Where the stations fall on an image grid.

    ``rows``/``cols``: (n,) int64 pixel indices on the full image of ``height`` x ``width``
    pixels. ``frac_rows``/``frac_cols``: (n,) float positions in [0, 1) from the first
    row / column edge, used to place stations on coarser grids.
    """

    rows: np.ndarray
    cols: np.ndarray
    frac_rows: np.ndarray
    frac_cols: np.ndarray
    height: int
    width: int

    def on_grid(self, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        """(rows, cols) of each station on a ``height`` x ``width`` grid over the same box."""
        if height < 1 or width < 1:
            raise ValueError(f"feature grid must be at least 1 x 1, got {height} x {width}")
        rows = np.minimum((self.frac_rows * height).astype(np.int64), height - 1)
        cols = np.minimum((self.frac_cols * width).astype(np.int64), width - 1)
        return rows, cols

    def flat_index(self, height: int | None = None, width: int | None = None) -> np.ndarray:
        """(n,) row-major pixel index on the full image, or on a ``height`` x ``width`` grid."""
        if height is None:
            return self.rows * self.width + self.cols
        rows, cols = self.on_grid(height, width)
        return rows * width + cols


def _edges(centres: np.ndarray) -> tuple[float, float, float]:
    """First edge, signed step and number of cells of a regular axis of pixel centres."""
    step = float(centres[1] - centres[0])
    return float(centres[0]) - step / 2, step, len(centres)


def station_pixels(lat: np.ndarray, lon: np.ndarray, grid_lat: np.ndarray,
                   grid_lon: np.ndarray, station_ids: np.ndarray | None = None) -> PixelMap:
    """Map stations to the image cells that contain them.

    ``grid_lat``/``grid_lon`` are the 1-D pixel-centre coordinates of a regular grid
    (lat ascending or descending, lon ascending). A station outside the image box (beyond
    the outer pixel edges) raises ``ValueError`` naming it.
    """
    lat = np.asarray(lat, dtype=np.float64)
    lon = np.asarray(lon, dtype=np.float64)
    grid_lat = np.asarray(grid_lat, dtype=np.float64)
    grid_lon = np.asarray(grid_lon, dtype=np.float64)
    if lat.shape != lon.shape or lat.ndim != 1:
        raise ValueError(f"station lat/lon must be 1-D of equal length, got {lat.shape} and "
                         f"{lon.shape}")
    if grid_lat.size < 2 or grid_lon.size < 2:
        raise ValueError("the image grid needs at least 2 pixels along lat and lon")
    fracs = []
    for values, centres in ((lat, grid_lat), (lon, grid_lon)):
        edge, step, n = _edges(centres)
        fracs.append((values - edge) / (step * n))
    frac_rows, frac_cols = fracs
    outside = ~((frac_rows >= 0) & (frac_rows < 1) & (frac_cols >= 0) & (frac_cols < 1))
    if outside.any():
        ids = station_ids if station_ids is not None else np.arange(lat.size)
        bad = [f"{ids[i]} ({lat[i]:.3f}N, {lon[i]:.3f}E)" for i in np.flatnonzero(outside)[:5]]
        lat_lo, lat_hi = sorted(_box(grid_lat))
        lon_lo, lon_hi = _box(grid_lon)
        raise ValueError(
            f"{int(outside.sum())} station(s) lie outside the satellite image box "
            f"{lat_lo:.3f}..{lat_hi:.3f}N x {lon_lo:.3f}..{lon_hi:.3f}E: {', '.join(bad)}; "
            f"crop a larger image or drop these stations"
        )
    height, width = grid_lat.size, grid_lon.size
    rows = np.minimum((frac_rows * height).astype(np.int64), height - 1)
    cols = np.minimum((frac_cols * width).astype(np.int64), width - 1)
    return PixelMap(rows, cols, frac_rows, frac_cols, height, width)


def _box(centres: np.ndarray) -> tuple[float, float]:
    edge, step, n = _edges(centres)
    return edge, edge + step * n
