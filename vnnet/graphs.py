"""Station graphs: haversine distances, a Gaussian kernel, sparsification, normalisation.

A :class:`StationGraph` holds the same graph in two forms plus its provenance:

* ``dense`` ``(n, n)`` float32, where ``dense[i, j]`` is the weight of the edge ``j -> i``
  (source ``j``, target ``i``): node ``i`` aggregates ``sum_j dense[i, j] * x[j]``, i.e.
  ``dense @ x`` for node features ``x`` ``(n, f)``.
* ``edge_index`` ``(2, E)`` int64 / ``edge_weight`` ``(E,)`` float32 in the PyG
  ``source_to_target`` convention: ``edge_index[0]`` = source ``j``, ``edge_index[1]`` =
  target ``i``, ``edge_weight[e] = dense[i, j]``. Message passing over this edge form
  (``SimpleConv``, ``GCNConv(normalize=False)``) equals ``dense @ x``.

Because ``torch_geometric.utils.to_dense_adj`` puts edge ``(s, t)`` at ``adj[s, t]``, it
returns ``dense.T``; the two agree for every symmetric graph (kernel, "sym", symmetric kNN).

The provenance dict (method, parameters actually used, station-list hash, vnnet version)
travels into checkpoints so that a graph, or a model trained on it, refuses a different
station list (:meth:`StationGraph.check_compatible`).
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

EARTH_RADIUS_KM = 6371.0088  # IUGG mean Earth radius
HASH_DECIMALS = 5  # coordinates are hashed rounded to 1e-5 deg (~1 m)
EDGE_CONVENTION = (
    "dense[i, j] = weight of edge j -> i (source j, target i); "
    "edge_index[0] = source, edge_index[1] = target; aggregation = dense @ x"
)
_NORMALIZATIONS = ("sym", "rw", None)
_DICT_FORMAT = 1

__all__ = [
    "EARTH_RADIUS_KM",
    "StationGraph",
    "dense_to_edges",
    "distance_graph",
    "haversine_km",
    "haversine_pair_km",
    "station_hash",
]


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
    lat_a, lon_a = _validate_coords(lat, lon, min_n=1)
    d = _haversine(lat_a[:, None], lon_a[:, None], lat_a[None, :], lon_a[None, :])
    d = 0.5 * (d + d.T)  # exact symmetry despite floating-point evaluation order
    np.fill_diagonal(d, 0.0)
    return d


# ----------------------------------------------------------------------------- validation


def _as_1d(name: str, values: Any) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name}: expected a 1-D array of numbers ({err})") from None
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: expected finite values, got NaN or inf")
    return arr


def _validate_coords(lat: Any, lon: Any, *, min_n: int = 2) -> tuple[np.ndarray, np.ndarray]:
    lat_a, lon_a = _as_1d("lat", lat), _as_1d("lon", lon)
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


def _validate_station_ids(station_ids: Any, n: int) -> list[str] | None:
    if station_ids is None:
        return None
    if isinstance(station_ids, str | bytes):
        raise ValueError("station_ids: expected a sequence of ids, got a single string")
    ids = [str(s) for s in np.asarray(station_ids, dtype=object).reshape(-1)]
    if len(ids) != n:
        raise ValueError(f"station_ids: expected {n} ids (one per station), got {len(ids)}")
    if len(set(ids)) != n:
        raise ValueError("station_ids: expected unique ids, got duplicates")
    return ids


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


# ----------------------------------------------------------------------------- hashing


def station_hash(
    lat: Sequence[float] | np.ndarray,
    lon: Sequence[float] | np.ndarray,
    station_ids: Sequence[Any] | None = None,
) -> str:
    """sha256 hex digest identifying an ordered station list.

    Hashes the station ids (when given, as str) and the coordinates rounded to 1e-5 deg;
    longitudes are wrapped to [-180, 180) first so 359 and -1 hash alike. Order matters:
    a permuted station list is a different list for node-indexed tensors.
    """
    lat_a, lon_a = _validate_coords(lat, lon, min_n=1)
    ids = _validate_station_ids(station_ids, lat_a.shape[0])
    lon_w = (lon_a + 180.0) % 360.0 - 180.0

    def fmt(x: np.ndarray) -> list[str]:
        # "+ 0.0" turns -0.0 into 0.0 so the text is unique per rounded value
        return [f"{v:.{HASH_DECIMALS}f}" for v in np.round(x, HASH_DECIMALS) + 0.0]

    payload = {"ids": ids, "lat": fmt(lat_a), "lon": fmt(lon_w)}
    text = json.dumps(payload, separators=(",", ":"), sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# ----------------------------------------------------------------------------- edges


def dense_to_edges(dense: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Convert a dense ``(n, n)`` adjacency to PyG edge form.

    Every non-zero ``dense[i, j]`` becomes the edge ``j -> i``.

    Returns:
        ``edge_index`` int64 ``(2, E)`` (row 0 = source ``j``, row 1 = target ``i``, sorted by
        target then source) and ``edge_weight`` ``(E,)`` with the dtype of ``dense``.
    """
    if not isinstance(dense, torch.Tensor) or dense.dim() != 2 or dense.shape[0] != dense.shape[1]:
        shape = tuple(dense.shape) if isinstance(dense, torch.Tensor) else type(dense).__name__
        raise ValueError(f"dense: expected a square (n, n) tensor, got {shape}")
    tgt, src = dense.nonzero(as_tuple=True)  # row-major order: sorted by target i
    edge_index = torch.stack([src, tgt]).to(torch.long)
    return edge_index, dense[tgt, src]


# ----------------------------------------------------------------------------- graph


@dataclass(frozen=True, eq=False)
class StationGraph:
    """A static station graph in dense and PyG edge form, with provenance.

    Attributes:
        dense: float32 ``(n, n)``; ``dense[i, j]`` weights edge ``j -> i`` (target ``i``).
        edge_index: int64 ``(2, E)``; row 0 = source ``j``, row 1 = target ``i``.
        edge_weight: float32 ``(E,)``; ``edge_weight[e] = dense[target, source]``.
        distances_km: float32 ``(n, n)`` great-circle distances.
        provenance: plain-Python dict: ``method``, ``params`` (the keyword arguments of
            :func:`distance_graph` as resolved, e.g. the default ``sigma``), ``n_stations``,
            ``station_hash``, ``hash_includes_station_ids``, ``num_edges``, ``distance``,
            ``earth_radius_km``, ``edge_convention``, ``vnnet_version``.
    """

    dense: torch.Tensor
    edge_index: torch.Tensor
    edge_weight: torch.Tensor
    distances_km: torch.Tensor
    provenance: dict[str, Any]

    def __post_init__(self) -> None:
        n = self.dense.shape[0]
        if self.dense.dim() != 2 or self.dense.shape != (n, n):
            raise ValueError(f"dense: expected (n, n), got {tuple(self.dense.shape)}")
        if self.distances_km.shape != (n, n):
            raise ValueError(
                f"distances_km: expected {(n, n)}, got {tuple(self.distances_km.shape)}"
            )
        if self.edge_index.dim() != 2 or self.edge_index.shape[0] != 2:
            raise ValueError(f"edge_index: expected (2, E), got {tuple(self.edge_index.shape)}")
        if self.edge_weight.shape != (self.edge_index.shape[1],):
            raise ValueError(
                f"edge_weight: expected ({self.edge_index.shape[1]},), "
                f"got {tuple(self.edge_weight.shape)}"
            )

    @property
    def num_nodes(self) -> int:
        """Number of stations n."""
        return int(self.dense.shape[0])

    @property
    def num_edges(self) -> int:
        """Number of (directed) edges E, self-loops included."""
        return int(self.edge_index.shape[1])

    def to(self, device: torch.device | str) -> StationGraph:
        """A copy with all tensors on ``device`` (provenance is shared data, deep-copied)."""
        return replace(
            self,
            dense=self.dense.to(device),
            edge_index=self.edge_index.to(device),
            edge_weight=self.edge_weight.to(device),
            distances_km=self.distances_km.to(device),
            provenance=copy.deepcopy(self.provenance),
        )

    def to_dict(self) -> dict[str, Any]:
        """Checkpoint form: CPU tensors and plain Python values only (``torch.save``-able
        with ``weights_only=True``)."""
        return {
            "format": _DICT_FORMAT,
            "dense": self.dense.detach().cpu().clone(),
            "edge_index": self.edge_index.detach().cpu().clone(),
            "edge_weight": self.edge_weight.detach().cpu().clone(),
            "distances_km": self.distances_km.detach().cpu().clone(),
            "provenance": copy.deepcopy(self.provenance),
        }

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> StationGraph:
        """Rebuild from :meth:`to_dict` output; checks the edge form matches ``dense``."""
        missing = {"dense", "edge_index", "edge_weight", "distances_km", "provenance"} - set(state)
        if missing:
            raise ValueError(f"state: missing keys {sorted(missing)}")
        if state.get("format", _DICT_FORMAT) != _DICT_FORMAT:
            raise ValueError(f"state: expected format {_DICT_FORMAT}, got {state['format']}")
        graph = cls(
            dense=torch.as_tensor(state["dense"], dtype=torch.float32),
            edge_index=torch.as_tensor(state["edge_index"], dtype=torch.long),
            edge_weight=torch.as_tensor(state["edge_weight"], dtype=torch.float32),
            distances_km=torch.as_tensor(state["distances_km"], dtype=torch.float32),
            provenance=copy.deepcopy(dict(state["provenance"])),
        )
        ei, ew = dense_to_edges(graph.dense)
        if not (torch.equal(ei, graph.edge_index) and torch.equal(ew, graph.edge_weight)):
            raise ValueError("state: edge_index/edge_weight do not match dense")
        return graph

    def check_compatible(
        self,
        lat: Sequence[float] | np.ndarray,
        lon: Sequence[float] | np.ndarray,
        station_ids: Sequence[Any] | None = None,
    ) -> None:
        """Raise ``ValueError`` unless (lat, lon, station_ids) is the station list this graph
        was built on (same order; coordinates compared at 1e-5 deg)."""
        prov = self.provenance
        lat_a, lon_a = _validate_coords(lat, lon, min_n=1)
        if lat_a.shape[0] != self.num_nodes:
            raise ValueError(
                f"stations: graph was built for {self.num_nodes} stations, got {lat_a.shape[0]}"
            )
        with_ids = bool(prov.get("hash_includes_station_ids", False))
        if with_ids and station_ids is None:
            raise ValueError("station_ids: graph was built with station ids; pass them to check")
        if not with_ids and station_ids is not None:
            raise ValueError("station_ids: graph was built without station ids; pass None")
        got = station_hash(lat_a, lon_a, station_ids)
        if got != prov.get("station_hash"):
            raise ValueError(
                "stations: station list (ids/coordinates/order) differs from the one the graph "
                f"was built on (hash {got[:12]} != {str(prov.get('station_hash'))[:12]})"
            )


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
    lat_a, lon_a = _validate_coords(lat, lon)
    n = lat_a.shape[0]
    ids = _validate_station_ids(station_ids, n)
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
        elev = _as_1d("elevation", elevation)
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
