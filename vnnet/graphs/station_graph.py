"""Station graphs: one graph in dense and PyG edge form, with its provenance.

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
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from vnnet.graphs.distances import validate_coords

HASH_DECIMALS = 5  # coordinates are hashed rounded to 1e-5 deg (~1 m)
EDGE_CONVENTION = (
    "dense[i, j] = weight of edge j -> i (source j, target i); "
    "edge_index[0] = source, edge_index[1] = target; aggregation = dense @ x"
)
_DICT_FORMAT = 1

__all__ = [
    "StationGraph",
    "dense_to_edges",
    "station_hash",
]



def validate_station_ids(station_ids: Any, n: int) -> list[str] | None:
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
    lat_a, lon_a = validate_coords(lat, lon, min_n=1)
    ids = validate_station_ids(station_ids, lat_a.shape[0])
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
        lat_a, lon_a = validate_coords(lat, lon, min_n=1)
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


