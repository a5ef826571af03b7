"""The distance graph: a Gaussian kernel on great-circle distance (and optionally elevation
difference), sparsified by threshold and/or kNN, with self-loops and normalisation.

The result is a :class:`~vnnet.graphs.station_graph.StationGraph` whose provenance records
every parameter actually used, so a checkpoint can rebuild or refuse it.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from vnnet.graphs.distances import EARTH_RADIUS_KM, as_1d, haversine_km, validate_coords
from vnnet.graphs.station_graph import (
    EDGE_CONVENTION,
    StationGraph,
    dense_to_edges,
    station_hash,
    validate_station_ids,
)

_NORMALIZATIONS = ("sym", "rw", None)

__all__ = ["distance_graph"]


def _positive(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name}: expected a positive number, got {value!r}")
    value = float(value)
    if not (math.isfinite(value) and value > 0.0):
        raise ValueError(f"{name}: expected a finite number > 0, got {value}")
    return value


def _off_diagonal_std(m: np.ndarray) -> float:
    # the upper triangle has the same mean/std as the full off-diagonal (each pair twice)
    iu = np.triu_indices(m.shape[0], k=1)
    return float(np.std(m[iu]))



def _normalize(a: np.ndarray, normalization: str | None) -> np.ndarray:
    """``"sym"``: D^-1/2 A D^-1/2, ``"rw"``: D^-1 A, with D = row sums (weighted in-degree of
    each target). Isolated nodes (degree 0) keep zero rows/columns instead of NaN."""
    if normalization is None:
        return a
    deg = a.sum(axis=1)
    nz = deg > 0.0
    if normalization == "rw":
        inv = np.zeros_like(deg)
        inv[nz] = 1.0 / deg[nz]
        return inv[:, None] * a
    inv_sqrt = np.zeros_like(deg)
    inv_sqrt[nz] = 1.0 / np.sqrt(deg[nz])
    return inv_sqrt[:, None] * a * inv_sqrt[None, :]


def _knn_mask(w: np.ndarray, k: int) -> np.ndarray:
    """Boolean (n, n): row i keeps its k largest off-diagonal weights (ties -> lower index)."""
    n = w.shape[0]
    off = w.copy()
    np.fill_diagonal(off, -np.inf)  # never pick the node itself
    order = np.argsort(-off, axis=1, kind="stable")[:, :k]
    mask = np.zeros((n, n), dtype=bool)
    np.put_along_axis(mask, order, True, axis=1)
    return mask


def distance_graph(
    lat: Sequence[float] | np.ndarray,
    lon: Sequence[float] | np.ndarray,
    *,
    sigma: float | None = None,
    threshold: float | None = None,
    k: int | None = None,
    self_loops: bool = True,
    normalization: str | None = "sym",
    elevation: Sequence[float] | np.ndarray | None = None,
    elevation_sigma: float | None = None,
    symmetric_knn: bool = True,
    station_ids: Sequence[Any] | None = None,
) -> StationGraph:
    """Gaussian-kernel graph on great-circle distance between stations.

    ``w[i, j] = exp(-d_ij^2 / sigma^2) * exp(-dh_ij^2 / elevation_sigma^2)`` (the elevation
    factor only when ``elevation`` is given), then sparsified, self-loops set, normalised.

    Args:
        lat, lon: degrees, ``(n,)`` each, n >= 2; lat in [-90, 90], lon in [-180, 360].
        sigma: kernel width in km; default = std of the off-diagonal distances.
        threshold: in [0, 1); off-diagonal kernel weights below it become 0.
        k: in [1, n); each target node keeps its k largest off-diagonal weights (its k
            nearest stations when no elevation term is used). Combined with ``threshold``,
            an edge must pass both.
        self_loops: diagonal weight 1 if True, else 0.
        normalization: ``"sym"`` (D^-1/2 A D^-1/2), ``"rw"`` (D^-1 A, rows sum to 1) or
            ``None`` (raw weights); D = row sums, isolated nodes stay all-zero.
        elevation: station heights in m, ``(n,)``; adds the elevation-difference factor.
        elevation_sigma: width of that factor in m; default = std of off-diagonal ``|dh|``.
        symmetric_knn: with ``k``, keep ``j -> i`` if either endpoint picked the other
            (union), so the graph stays symmetric.
        station_ids: ``(n,)`` unique ids, included in the station hash.

    Returns:
        A :class:`StationGraph` (``dense`` ``(n, n)``, ``edge_index`` ``(2, E)``).

    Raises:
        ValueError: naming the offending parameter, for any invalid input, or when a default
        width would be 0 (all pairwise distances / height differences equal, e.g. n = 2):
        pass ``sigma`` / ``elevation_sigma`` explicitly then.
    """
    lat_a, lon_a = validate_coords(lat, lon)
    n = lat_a.shape[0]
    ids = validate_station_ids(station_ids, n)
    if sigma is not None:
        sigma = _positive("sigma", sigma)
    if threshold is not None:
        if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real):
            raise ValueError(f"threshold: expected a number in [0, 1), got {threshold!r}")
        threshold = float(threshold)
        if not 0.0 <= threshold < 1.0:
            raise ValueError(f"threshold: expected a number in [0, 1), got {threshold}")
    if k is not None:
        if isinstance(k, bool) or not isinstance(k, numbers.Integral):
            raise ValueError(f"k: expected an integer in [1, {n - 1}], got {k!r}")
        k = int(k)
        if not 1 <= k < n:
            raise ValueError(f"k: expected an integer in [1, {n - 1}] (1 <= k < n), got {k}")
    if normalization not in _NORMALIZATIONS:
        raise ValueError(f"normalization: expected 'sym', 'rw' or None, got {normalization!r}")
    if not isinstance(self_loops, bool | np.bool_):
        raise ValueError(f"self_loops: expected a bool, got {self_loops!r}")
    if not isinstance(symmetric_knn, bool | np.bool_):
        raise ValueError(f"symmetric_knn: expected a bool, got {symmetric_knn!r}")
    if elevation is None and elevation_sigma is not None:
        raise ValueError("elevation_sigma: given without elevation; pass elevation too")

    dist = haversine_km(lat_a, lon_a)
    sigma_source = "given"
    if sigma is None:
        sigma, sigma_source = _off_diagonal_std(dist), "std_of_distances"
        if sigma <= 0.0:
            raise ValueError(
                "sigma: the default (std of off-diagonal distances) is 0 because all pairwise "
                "distances are equal (e.g. n = 2); pass sigma > 0 explicitly"
            )
    w = np.exp(-((dist / sigma) ** 2))

    elevation_sigma_source = None
    if elevation is not None:
        elev = as_1d("elevation", elevation)
        if elev.shape[0] != n:
            raise ValueError(
                f"elevation: expected {n} values (one per station), got {elev.shape[0]}"
            )
        dh = np.abs(elev[:, None] - elev[None, :])
        if elevation_sigma is None:
            elevation_sigma = _off_diagonal_std(dh)
            elevation_sigma_source = "std_of_abs_differences"
            if elevation_sigma <= 0.0:
                raise ValueError(
                    "elevation_sigma: the default (std of off-diagonal |dh|) is 0 because all "
                    "height differences are equal; pass elevation_sigma > 0 or elevation=None"
                )
        else:
            elevation_sigma = _positive("elevation_sigma", elevation_sigma)
            elevation_sigma_source = "given"
        w = w * np.exp(-((dh / elevation_sigma) ** 2))

    # sparsify: an off-diagonal edge survives only if it passes every requested test
    keep = np.ones((n, n), dtype=bool)
    if threshold is not None:
        keep &= w >= threshold
    if k is not None:
        knn = _knn_mask(w, k)
        keep &= (knn | knn.T) if symmetric_knn else knn
    a = np.where(keep, w, 0.0)
    np.fill_diagonal(a, 1.0 if self_loops else 0.0)

    dense = torch.from_numpy(_normalize(a, normalization)).to(torch.float32)
    edge_index, edge_weight = dense_to_edges(dense)

    from vnnet import __version__  # lazy: avoids a cycle if vnnet/__init__ imports graphs

    provenance: dict[str, Any] = {
        "method": "gaussian_kernel",
        "params": {
            "sigma": float(sigma),
            "threshold": threshold,
            "k": k,
            "self_loops": bool(self_loops),
            "normalization": normalization,
            "elevation_sigma": None if elevation_sigma is None else float(elevation_sigma),
            "symmetric_knn": bool(symmetric_knn),
        },
        "sigma_source": sigma_source,
        "elevation_sigma_source": elevation_sigma_source,
        "uses_elevation": elevation is not None,
        "distance": "haversine",
        "earth_radius_km": EARTH_RADIUS_KM,
        "n_stations": n,
        "num_edges": int(edge_index.shape[1]),
        "station_hash": station_hash(lat_a, lon_a, ids),
        "hash_includes_station_ids": ids is not None,
        "edge_convention": EDGE_CONVENTION,
        "vnnet_version": __version__,
    }
    return StationGraph(
        dense=dense,
        edge_index=edge_index,
        edge_weight=edge_weight,
        distances_km=torch.from_numpy(dist).to(torch.float32),
        provenance=provenance,
    )
