"""Great-circle geometry of station networks: haversine distances and coordinate checks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

EARTH_RADIUS_KM = 6371.0088  # IUGG mean Earth radius

__all__ = ["EARTH_RADIUS_KM", "as_1d", "haversine_km", "haversine_pair_km", "validate_coords"]

# ----------------------------------------------------------------------------- distances


def _haversine(
    lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray, lon2: np.ndarray
) -> np.ndarray:
    """Great-circle distance in km between broadcastable arrays of degrees."""
    phi1, phi2 = np.radians(lat1), np.radians(lat2)
    dphi = phi2 - phi1
    dlmb = np.radians(lon2 - lon1)
    a = np.sin(dphi / 2.0) ** 2 + np.cos(phi1) * np.cos(phi2) * np.sin(dlmb / 2.0) ** 2
    a = np.clip(a, 0.0, 1.0)  # rounding can push a a hair outside [0, 1]
    # atan2 form stays accurate near antipodes, where asin(sqrt(a)) loses precision
    return 2.0 * EARTH_RADIUS_KM * np.arctan2(np.sqrt(a), np.sqrt(1.0 - a))


def haversine_pair_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in km between two points given in degrees."""
    return float(_haversine(np.float64(lat1), np.float64(lon1), np.float64(lat2), np.float64(lon2)))


def haversine_km(
    lat: Sequence[float] | np.ndarray, lon: Sequence[float] | np.ndarray
) -> np.ndarray:
    """Pairwise great-circle distances.

    Args:
        lat, lon: station coordinates in degrees, shape ``(n,)`` each.

    Returns:
        float64 array ``(n, n)``, symmetric, zero diagonal, in km (Earth radius
        :data:`EARTH_RADIUS_KM`).
    """
    lat_a, lon_a = validate_coords(lat, lon, min_n=1)
    d = _haversine(lat_a[:, None], lon_a[:, None], lat_a[None, :], lon_a[None, :])
    d = 0.5 * (d + d.T)  # exact symmetry despite floating-point evaluation order
    np.fill_diagonal(d, 0.0)
    return d


# ----------------------------------------------------------------------------- validation


def as_1d(name: str, values: Any) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name}: expected a 1-D array of numbers ({err})") from None
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: expected finite values, got NaN or inf")
    return arr


def validate_coords(lat: Any, lon: Any, *, min_n: int = 2) -> tuple[np.ndarray, np.ndarray]:
    lat_a, lon_a = as_1d("lat", lat), as_1d("lon", lon)
    if lat_a.shape != lon_a.shape:
        raise ValueError(
            f"lat/lon: expected equal lengths, got {lat_a.shape[0]} and {lon_a.shape[0]}"
        )
    if lat_a.shape[0] < min_n:
        raise ValueError(f"lat/lon: expected at least {min_n} stations, got {lat_a.shape[0]}")
    if np.any((lat_a < -90.0) | (lat_a > 90.0)):
        raise ValueError("lat: expected degrees in [-90, 90]")
    if np.any((lon_a < -180.0) | (lon_a > 360.0)):
        raise ValueError("lon: expected degrees in [-180, 360]")
    return lat_a, lon_a

