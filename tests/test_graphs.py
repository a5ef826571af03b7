"""Tests for vnnet.graphs: hand-computed distances/weights, graph properties, provenance,
and agreement of the dense and PyG edge forms."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from torch_geometric.nn import GCNConv, SimpleConv
from torch_geometric.utils import spmm, to_dense_adj, to_torch_csr_tensor

import vnnet
from vnnet.graphs import (
    EARTH_RADIUS_KM,
    StationGraph,
    dense_to_edges,
    distance_graph,
    haversine_km,
    haversine_pair_km,
    station_hash,
)

# One degree of arc on a great circle: 2 * pi * 6371.0088 / 360 km.
DEG_KM = 111.1950802
# Three stations on the equator at lon 0, 1, 2 deg: d01 = d12 = DEG_KM, d02 = 2 * DEG_KM.
EQ_LAT = [0.0, 0.0, 0.0]
EQ_LON = [0.0, 1.0, 2.0]
E1 = math.exp(-1.0)  # 0.36787944: kernel weight at d = sigma
E4 = math.exp(-4.0)  # 0.01831564: kernel weight at d = 2 sigma


def _random_stations(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(30.0, 40.0, n), rng.uniform(110.0, 122.0, n)


# ----------------------------------------------------------------------------- distances


def test_haversine_hand_values() -> None:
    assert DEG_KM == pytest.approx(2 * math.pi * EARTH_RADIUS_KM / 360, abs=1e-6)
    d = haversine_km(EQ_LAT, EQ_LON)
    expected = np.array(
        [[0.0, DEG_KM, 2 * DEG_KM], [DEG_KM, 0.0, DEG_KM], [2 * DEG_KM, DEG_KM, 0.0]]
    )
    np.testing.assert_allclose(d, expected, atol=1e-6)
    # pole to equator is a quarter meridian: pi * R / 2 = 10007.5572 km
    assert haversine_pair_km(90.0, 0.0, 0.0, 0.0) == pytest.approx(10007.5572, abs=1e-3)
    # Paris (48.8566 N, 2.3522 E) - London (51.5074 N, 0.1278 W): ~343.5 km
    assert haversine_pair_km(48.8566, 2.3522, 51.5074, -0.1278) == pytest.approx(343.5, abs=0.5)
    # Beijing (39.9042 N, 116.4074 E) - Shanghai (31.2304 N, 121.4737 E): ~1067 km
    assert haversine_pair_km(39.9042, 116.4074, 31.2304, 121.4737) == pytest.approx(1067, abs=1)
    # longitude wraps: 359 E and 1 E are 2 deg apart on the equator
    assert haversine_pair_km(0.0, 359.0, 0.0, 1.0) == pytest.approx(2 * DEG_KM, abs=1e-6)


def test_haversine_matrix_symmetric_zero_diagonal() -> None:
    lat, lon = _random_stations(7)
    d = haversine_km(lat, lon)
    assert d.shape == (7, 7)
    assert np.array_equal(d, d.T)
    assert np.all(np.diag(d) == 0.0)
    assert np.all(d[~np.eye(7, dtype=bool)] > 0.0)
    assert d[2, 5] == pytest.approx(haversine_pair_km(lat[2], lon[2], lat[5], lon[5]), rel=1e-12)


# ----------------------------------------------------------------------------- hand-computed


def test_default_sigma_and_kernel_hand_computed() -> None:
    # off-diagonal distances {a, a, 2a}: mean 4a/3, population std = a * sqrt(2) / 3
    g = distance_graph(EQ_LAT, EQ_LON, normalization=None)
    sigma = g.provenance["params"]["sigma"]
    assert sigma == pytest.approx(52.4178635, abs=1e-6)
    assert g.provenance["sigma_source"] == "std_of_distances"
    # w = exp(-d^2 / sigma^2): exp(-9/2) at d = a, exp(-18) at d = 2a
    d = g.dense
    assert d[0, 1].item() == pytest.approx(0.011108997, rel=1e-6)
    assert d[0, 2].item() == pytest.approx(1.5229980e-08, rel=1e-6)
    assert torch.all(torch.diagonal(d) == 1.0)


def test_raw_sym_rw_hand_computed() -> None:
    # sigma = 1 deg of arc -> A = [[1, e^-1, e^-4], [e^-1, 1, e^-1], [e^-4, e^-1, 1]]
    raw = distance_graph(EQ_LAT, EQ_LON, sigma=DEG_KM, normalization=None).dense
    expected_raw = torch.tensor([[1.0, E1, E4], [E1, 1.0, E1], [E4, E1, 1.0]])
    torch.testing.assert_close(raw, expected_raw, atol=1e-7, rtol=0)

    # row sums: r0 = r2 = 1 + e^-1 + e^-4 = 1.3861951, r1 = 1 + 2 e^-1 = 1.7357589
    # rw = A / r_i:  e.g. 1 / 1.3861951 = 0.7213992, e^-1 / 1.7357589 = 0.2119416
    rw = distance_graph(EQ_LAT, EQ_LON, sigma=DEG_KM, normalization="rw").dense
    expected_rw = torch.tensor(
        [
            [0.7213992, 0.2653879, 0.0132129],
            [0.2119416, 0.5761169, 0.2119416],
            [0.0132129, 0.2653879, 0.7213992],
        ]
    )
    torch.testing.assert_close(rw, expected_rw, atol=1e-6, rtol=0)

    # sym = A_ij / sqrt(r_i r_j):  e^-1 / sqrt(1.3861951 * 1.7357589) = 0.2371639
    sym = distance_graph(EQ_LAT, EQ_LON, sigma=DEG_KM, normalization="sym").dense
    expected_sym = torch.tensor(
        [
            [0.7213992, 0.2371639, 0.0132129],
            [0.2371639, 0.5761169, 0.2371639],
            [0.0132129, 0.2371639, 0.7213992],
        ]
    )
    torch.testing.assert_close(sym, expected_sym, atol=1e-6, rtol=0)


def test_threshold_hand_computed() -> None:
    # threshold 0.02 removes exactly e^-4 = 0.0183 (the 0 <-> 2 pair), keeps e^-1 = 0.368
    g = distance_graph(EQ_LAT, EQ_LON, sigma=DEG_KM, threshold=0.02, normalization="rw")
    # row 0 = [1, e^-1, 0] / (1 + e^-1) = [0.7310586, 0.2689414, 0]
    expected = torch.tensor(
        [
            [0.7310586, 0.2689414, 0.0],
            [0.2119416, 0.5761169, 0.2119416],
            [0.0, 0.2689414, 0.7310586],
        ]
    )
    torch.testing.assert_close(g.dense, expected, atol=1e-6, rtol=0)
    assert g.num_edges == 7  # 3 self-loops + 0<->1 + 1<->2


# ----------------------------------------------------------------------------- properties


def test_kernel_and_sym_are_symmetric_rw_rows_sum_to_one() -> None:
    lat, lon = _random_stations(12)
    for norm in (None, "sym"):
        d = distance_graph(lat, lon, normalization=norm).dense
        torch.testing.assert_close(d, d.T, atol=0, rtol=0)
    rw = distance_graph(lat, lon, normalization="rw", threshold=0.1).dense
    torch.testing.assert_close(rw.sum(dim=1), torch.ones(12), atol=1e-6, rtol=0)


def test_sym_eigenvalues_in_unit_interval() -> None:
    lat, lon = _random_stations(15, seed=3)
    for kwargs in ({}, {"threshold": 0.3}, {"k": 3}, {"self_loops": False}):
        d = distance_graph(lat, lon, normalization="sym", **kwargs).dense.double()
        ev = torch.linalg.eigvalsh(d)
        assert ev.min() >= -1.0 - 1e-6 and ev.max() <= 1.0 + 1e-6, kwargs
    # connected graph: the largest eigenvalue is exactly 1 (eigenvector sqrt(degree))
    ev = torch.linalg.eigvalsh(distance_graph(lat, lon).dense.double())
    assert ev.max().item() == pytest.approx(1.0, abs=1e-6)


def test_threshold_removes_exactly_small_weights() -> None:
    lat, lon = _random_stations(10, seed=1)
    raw = distance_graph(lat, lon, normalization=None).dense
    thr = distance_graph(lat, lon, normalization=None, threshold=0.4).dense
    off = ~torch.eye(10, dtype=torch.bool)
    small = (raw < 0.4) & off
    assert small.any() and (~small & off).any()  # the test cuts something and keeps something
    assert torch.all(thr[small] == 0.0)
    torch.testing.assert_close(thr[~small], raw[~small], atol=0, rtol=0)


def test_knn_keeps_k_nearest_per_row() -> None:
    lat, lon = _random_stations(9, seed=2)
    dist = haversine_km(lat, lon)
    k = 3
    g = distance_graph(
        lat, lon, k=k, symmetric_knn=False, self_loops=False, normalization=None
    )
    nz = g.dense != 0
    assert torch.all(nz.sum(dim=1) == k)
    for i in range(9):
        order = [j for j in np.argsort(dist[i]) if j != i][:k]
        assert set(torch.nonzero(nz[i]).flatten().tolist()) == set(order)
    # edge form: every target has exactly k incoming edges
    assert torch.all(torch.bincount(g.edge_index[1], minlength=9) == k)

    sym = distance_graph(lat, lon, k=k, self_loops=False, normalization=None).dense
    torch.testing.assert_close(sym, sym.T, atol=0, rtol=0)
    assert torch.all((sym != 0).sum(dim=1) >= k)
    # union: an edge exists iff either endpoint chose the other
    torch.testing.assert_close((sym != 0), nz | nz.T, atol=0, rtol=0)


def test_knn_and_threshold_combine() -> None:
    lat, lon = _random_stations(10, seed=4)
    kw = {"self_loops": False, "normalization": None, "symmetric_knn": False}
    both = distance_graph(lat, lon, k=4, threshold=0.5, **kw).dense != 0
    knn = distance_graph(lat, lon, k=4, **kw).dense != 0
    thr = distance_graph(lat, lon, threshold=0.5, **kw).dense != 0
    torch.testing.assert_close(both, knn & thr, atol=0, rtol=0)


def test_self_loops_on_off() -> None:
    lat, lon = _random_stations(6)
    on = distance_graph(lat, lon, normalization=None)
    off = distance_graph(lat, lon, normalization=None, self_loops=False)
    assert torch.all(torch.diagonal(on.dense) == 1.0)
    assert torch.all(torch.diagonal(off.dense) == 0.0)
    assert not torch.any(off.edge_index[0] == off.edge_index[1])
    assert on.num_edges == off.num_edges + 6


def test_isolated_node_gives_no_nan() -> None:
    # station 2 is 50 deg away: no neighbour survives the threshold, and no self-loop
    lat, lon = [0.0, 0.0, 0.0], [0.0, 1.0, 50.0]
    for norm in ("sym", "rw"):
        g = distance_graph(lat, lon, sigma=DEG_KM, threshold=0.1, self_loops=False,
                           normalization=norm)
        assert torch.isfinite(g.dense).all()
        assert torch.all(g.dense[2] == 0) and torch.all(g.dense[:, 2] == 0)
        assert g.dense[0, 1] > 0


def test_elevation_lowers_weights_between_different_heights() -> None:
    elev = [0.0, 0.0, 100.0]
    base = distance_graph(EQ_LAT, EQ_LON, sigma=DEG_KM, normalization=None).dense
    g = distance_graph(EQ_LAT, EQ_LON, sigma=DEG_KM, normalization=None, elevation=elev,
                       elevation_sigma=100.0)
    # equal heights: unchanged; dh = 100 m = elevation_sigma -> factor e^-1
    assert g.dense[0, 1].item() == pytest.approx(base[0, 1].item(), rel=1e-6)
    assert g.dense[1, 2].item() == pytest.approx(E1 * E1, rel=1e-6)
    assert g.dense[0, 2].item() == pytest.approx(E4 * E1, rel=1e-6)
    assert g.dense[1, 2] < base[1, 2] and g.dense[0, 2] < base[0, 2]
    assert g.provenance["uses_elevation"] is True
    # default elevation_sigma: std of off-diagonal |dh| = std{0, 100, 100} = 47.1404521
    d = distance_graph(EQ_LAT, EQ_LON, sigma=DEG_KM, elevation=elev)
    assert d.provenance["params"]["elevation_sigma"] == pytest.approx(47.1404521, abs=1e-6)
    assert d.provenance["elevation_sigma_source"] == "std_of_abs_differences"


# ----------------------------------------------------------------------------- edge form vs PyG


def _asymmetric_graph() -> StationGraph:
    lat, lon = _random_stations(8, seed=5)
    return distance_graph(lat, lon, k=2, symmetric_knn=False, normalization="rw")


def test_dense_to_edges_matches_to_dense_adj() -> None:
    g = _asymmetric_graph()
    n = g.num_nodes
    assert not torch.equal(g.dense, g.dense.T)  # direction matters for this graph
    assert g.edge_index.dtype == torch.long and g.edge_index.shape == (2, g.num_edges)
    assert g.edge_weight.dtype == torch.float32
    # to_dense_adj puts edge (source, target) at adj[source, target], i.e. dense.T
    adj = to_dense_adj(g.edge_index, edge_attr=g.edge_weight, max_num_nodes=n)[0]
    torch.testing.assert_close(adj, g.dense.T, atol=0, rtol=0)
    adj_t = to_dense_adj(g.edge_index.flip(0), edge_attr=g.edge_weight, max_num_nodes=n)[0]
    torch.testing.assert_close(adj_t, g.dense, atol=0, rtol=0)
    # symmetric graph: no flip needed
    s = distance_graph(*_random_stations(6), threshold=0.2)
    adj_s = to_dense_adj(s.edge_index, edge_attr=s.edge_weight, max_num_nodes=6)[0]
    torch.testing.assert_close(adj_s, s.dense, atol=0, rtol=0)


# torch's beta/invariant notices about sparse CSR tensors are not what this test checks
@pytest.mark.filterwarnings("ignore:Sparse:UserWarning")
def test_message_passing_equals_dense_matmul() -> None:
    g = _asymmetric_graph()
    n = g.num_nodes
    x = torch.randn(n, 5, generator=torch.Generator().manual_seed(0))
    expected = g.dense @ x
    # SimpleConv: sum over edges j -> i of w * x_j, aggregated at the target i
    out = SimpleConv(aggr="sum")(x, g.edge_index, g.edge_weight)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    # spmm with a (target, source)-indexed sparse matrix
    adj = to_torch_csr_tensor(g.edge_index.flip(0), g.edge_weight, size=n)
    torch.testing.assert_close(spmm(adj, x), expected, atol=1e-5, rtol=1e-5)
    # GCNConv without its own normalisation and identity weights is the same propagation
    conv = GCNConv(5, 5, normalize=False, bias=False)
    with torch.no_grad():
        conv.lin.weight.copy_(torch.eye(5))
    torch.testing.assert_close(conv(x, g.edge_index, g.edge_weight), expected, atol=1e-5,
                               rtol=1e-5)


def test_gcn_normalisation_matches_sym() -> None:
    # GCNConv's D^-1/2 (A + I) D^-1/2 on the raw kernel == our "sym" with self-loops
    lat, lon = _random_stations(7, seed=6)
    raw = distance_graph(lat, lon, threshold=0.2, self_loops=False, normalization=None)
    sym = distance_graph(lat, lon, threshold=0.2)
    x = torch.randn(7, 4, generator=torch.Generator().manual_seed(1))
    conv = GCNConv(4, 4, normalize=True, add_self_loops=True, bias=False)
    with torch.no_grad():
        conv.lin.weight.copy_(torch.eye(4))
    out = conv(x, raw.edge_index, raw.edge_weight)
    torch.testing.assert_close(out, sym.dense @ x, atol=1e-5, rtol=1e-5)


def test_dense_to_edges_basic_and_validation() -> None:
    dense = torch.tensor([[0.0, 2.0], [3.0, 0.5]])
    ei, ew = dense_to_edges(dense)
    # dense[0, 1] = 2 is edge 1 -> 0; dense[1, 0] = 3 is edge 0 -> 1
    assert ei.tolist() == [[1, 0, 1], [0, 1, 1]]
    assert ew.tolist() == [2.0, 3.0, 0.5]
    with pytest.raises(ValueError, match="dense"):
        dense_to_edges(torch.zeros(2, 3))


# ----------------------------------------------------------------------------- provenance


def test_provenance_contents() -> None:
    lat, lon = _random_stations(5)
    ids = ["a", "b", "c", "d", "e"]
    g = distance_graph(lat, lon, k=2, threshold=0.01, station_ids=ids, normalization="rw")
    p = g.provenance
    assert p["method"] == "gaussian_kernel"
    assert p["params"] == {
        "sigma": pytest.approx(float(np.std(haversine_km(lat, lon)[np.triu_indices(5, 1)]))),
        "threshold": 0.01,
        "k": 2,
        "self_loops": True,
        "normalization": "rw",
        "elevation_sigma": None,
        "symmetric_knn": True,
    }
    assert p["n_stations"] == 5 and p["num_edges"] == g.num_edges
    assert p["vnnet_version"] == vnnet.__version__
    assert p["station_hash"] == station_hash(lat, lon, ids)
    assert len(p["station_hash"]) == 64 and p["hash_includes_station_ids"] is True
    assert p["distance"] == "haversine" and p["earth_radius_km"] == EARTH_RADIUS_KM
    assert "source" in p["edge_convention"]
    # the recorded params rebuild the identical graph
    again = distance_graph(lat, lon, station_ids=ids, **p["params"])
    assert torch.equal(again.dense, g.dense)


def test_hash_changes_when_station_moves() -> None:
    lat, lon = _random_stations(4)
    h = station_hash(lat, lon)
    moved = lat.copy()
    moved[1] += 1e-3
    assert station_hash(moved, lon) != h
    assert distance_graph(moved, lon).provenance["station_hash"] != h
    tiny = lat.copy()
    tiny[1] = round(tiny[1], 5) + 1e-8  # below the 1e-5 deg rounding
    assert station_hash(tiny, lon) == station_hash(np.round(lat, 5), lon)
    assert station_hash(lat[::-1], lon[::-1]) != h  # order is part of the identity
    assert station_hash(lat, lon, ["1", "2", "3", "4"]) != h
    assert station_hash([0.0, 0.0], [-1.0, 10.0]) == station_hash([0.0, 0.0], [359.0, 10.0])


def test_to_dict_round_trip_and_device() -> None:
    lat, lon = _random_stations(6)
    g = distance_graph(lat, lon, k=2, elevation=[0, 10, 50, 200, 30, 5], station_ids=list("abcdef"))
    buf = io.BytesIO()
    torch.save(g.to_dict(), buf)
    buf.seek(0)
    g2 = StationGraph.from_dict(torch.load(buf, weights_only=True))
    for name in ("dense", "edge_index", "edge_weight", "distances_km"):
        assert torch.equal(getattr(g2, name), getattr(g, name)), name
    assert g2.provenance == g.provenance and g2.num_nodes == 6
    g2.check_compatible(lat, lon, list("abcdef"))

    bad = g.to_dict()
    bad["edge_weight"] = bad["edge_weight"] * 2
    with pytest.raises(ValueError, match="edge_index/edge_weight"):
        StationGraph.from_dict(bad)
    with pytest.raises(ValueError, match="missing keys"):
        StationGraph.from_dict({"dense": g.dense})

    m = g.to("meta")
    assert m.dense.device.type == "meta" and m.edge_index.device.type == "meta"
    assert m.edge_index.dtype == torch.long and m.num_nodes == 6
    assert g.dense.device.type == "cpu"  # the original is untouched


def test_check_compatible_raises() -> None:
    lat, lon = _random_stations(5)
    ids = ["s1", "s2", "s3", "s4", "s5"]
    g = distance_graph(lat, lon, station_ids=ids)
    g.check_compatible(lat, lon, ids)  # the same stations pass
    g.check_compatible(lat, lon + 1e-7, ids)  # within the 1e-5 deg rounding
    moved = lon.copy()
    moved[3] += 0.01
    with pytest.raises(ValueError, match="differs"):
        g.check_compatible(lat, moved, ids)
    with pytest.raises(ValueError, match="differs"):
        g.check_compatible(lat, lon, ["s1", "s2", "s3", "s4", "X"])
    with pytest.raises(ValueError, match="differs"):
        g.check_compatible(lat[[1, 0, 2, 3, 4]], lon[[1, 0, 2, 3, 4]], ids)
    with pytest.raises(ValueError, match="5 stations"):
        g.check_compatible(lat[:4], lon[:4], ids[:4])
    with pytest.raises(ValueError, match="station_ids"):
        g.check_compatible(lat, lon)
    no_ids = distance_graph(lat, lon)
    no_ids.check_compatible(lat, lon)
    with pytest.raises(ValueError, match="station_ids"):
        no_ids.check_compatible(lat, lon, ids)


# ----------------------------------------------------------------------------- bad inputs

_LAT3, _LON3 = [10.0, 11.0, 12.5], [100.0, 101.0, 103.0]


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        (([[1.0, 2.0]], [[1.0, 2.0]]), {}, "lat: expected a 1-D"),
        ((["a", "b"], [1.0, 2.0]), {}, "lat: expected a 1-D array of numbers"),
        (([1.0, 2.0], [1.0, 2.0, 3.0]), {}, "lat/lon: expected equal lengths"),
        (([1.0], [1.0]), {}, "at least 2"),
        (([1.0, float("nan")], [1.0, 2.0]), {}, "lat: expected finite"),
        (([1.0, 2.0], [1.0, float("inf")]), {}, "lon: expected finite"),
        (([91.0, 2.0], [1.0, 2.0]), {}, r"lat: expected degrees in \[-90, 90\]"),
        (([1.0, 2.0], [-181.0, 2.0]), {}, r"lon: expected degrees in \[-180, 360\]"),
        (([1.0, 2.0], [1.0, 361.0]), {}, r"lon: expected degrees in \[-180, 360\]"),
        ((_LAT3, _LON3), {"sigma": 0.0}, "sigma: expected a finite number > 0"),
        ((_LAT3, _LON3), {"sigma": -5.0}, "sigma: expected a finite number > 0"),
        ((_LAT3, _LON3), {"sigma": float("nan")}, "sigma: expected a finite number > 0"),
        ((_LAT3, _LON3), {"sigma": "10"}, "sigma: expected a positive number"),
        ((_LAT3, _LON3), {"threshold": 1.0}, r"threshold: expected a number in \[0, 1\)"),
        ((_LAT3, _LON3), {"threshold": -0.1}, r"threshold: expected a number in \[0, 1\)"),
        ((_LAT3, _LON3), {"k": 0}, r"k: expected an integer in \[1, 2\]"),
        ((_LAT3, _LON3), {"k": 3}, r"k: expected an integer in \[1, 2\]"),
        ((_LAT3, _LON3), {"k": 1.5}, r"k: expected an integer"),
        ((_LAT3, _LON3), {"normalization": "l2"}, "normalization: expected 'sym', 'rw' or None"),
        ((_LAT3, _LON3), {"self_loops": 1}, "self_loops: expected a bool"),
        ((_LAT3, _LON3), {"symmetric_knn": "yes"}, "symmetric_knn: expected a bool"),
        ((_LAT3, _LON3), {"elevation": [1.0, 2.0]}, "elevation: expected 3 values"),
        ((_LAT3, _LON3), {"elevation": [1.0, 2.0, float("nan")]}, "elevation: expected finite"),
        ((_LAT3, _LON3), {"elevation": [0, 1, 5], "elevation_sigma": 0.0}, "elevation_sigma"),
        ((_LAT3, _LON3), {"elevation_sigma": 10.0}, "elevation_sigma: given without elevation"),
        ((_LAT3, _LON3), {"elevation": [5.0, 5.0, 5.0]}, "elevation_sigma: the default"),
        ((_LAT3, _LON3), {"station_ids": ["a", "b"]}, "station_ids: expected 3 ids"),
        ((_LAT3, _LON3), {"station_ids": ["a", "b", "a"]}, "station_ids: expected unique"),
        ((_LAT3, _LON3), {"station_ids": "abc"}, "station_ids: expected a sequence"),
        (([0.0, 0.0], [0.0, 1.0]), {}, "sigma: the default"),
    ],
)
def test_bad_inputs_raise(args: tuple, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        distance_graph(*args, **kwargs)


def test_two_stations_with_explicit_sigma() -> None:
    g = distance_graph([0.0, 0.0], [0.0, 1.0], sigma=DEG_KM, normalization=None)
    assert g.dense[0, 1].item() == pytest.approx(E1, rel=1e-6)
