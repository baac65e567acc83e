"""The compiled graph against networkx itself, and its cache rule."""

from __future__ import annotations

import geopandas as gpd
import networkx as nx
import numpy as np
import pytest
from benchmarks.synthetic import grid_roads
from shapely.geometry import LineString

import convoyrisk as cr
from convoyrisk import density, routing, snapping
from convoyrisk.compiled import compile_graph

from .helpers.graphs import PLANE0


@pytest.fixture
def small() -> nx.MultiDiGraph:
    """Three roads: two two-way ones in parallel between the same ends, one one-way."""
    lines = [
        LineString([(0, 0), (1_000, 0)]),
        LineString([(0, 0), (500, 300), (1_000, 0)]),  # a second road between the same ends
        LineString([(1_000, 0), (1_000, 800)]),
    ]
    gdf = gpd.GeoDataFrame(
        {"oneway": [False, False, True], "name": ["A", "", "C"]}, geometry=lines, crs=PLANE0
    )
    return cr.graph_from_gdf(gdf, crs=PLANE0)


def test_arrays_are_the_graph(small: nx.MultiDiGraph) -> None:
    cg = compile_graph(small)
    edges = list(small.edges(keys=True, data=True))
    assert cg.n_edges == len(edges) == 5  # 2 + 2 + 1 directed edges
    assert cg.edge_tuples() == [(u, v, k) for u, v, k, _ in edges]
    assert cg.node_ids.tolist() == list(small.nodes)
    np.testing.assert_array_equal(cg.node_ids[cg.eu], cg.u)
    np.testing.assert_array_equal(cg.node_ids[cg.ev], cg.v)
    for i, (_, _, _, d) in enumerate(edges):
        assert cg.length_m[i] == d["length"]
        assert cg.road_id[i] == d["road_id"]
        assert cg.forward[i] == (not d["reversed"])
        assert cg.geoms[i] is d["geometry"]
    # one forward edge per road: three roads
    assert sorted(cg.road_id[cg.forward_edges].tolist()) == sorted(
        {d["road_id"] for *_, d in edges}
    )
    assert set(cg.road_name.tolist()) == {"A", "", "C"}
    for n, d in small.nodes(data=True):
        i = int(cg.node_index([n])[0])
        assert tuple(cg.node_xy[i]) == (d["x"], d["y"])
    assert cg.node_index([10**12]).tolist() == [-1]


def test_adjacency_holds_each_directed_node_pair_once(small: nx.MultiDiGraph) -> None:
    cg = compile_graph(small)
    for i, n in enumerate(cg.node_ids.tolist()):
        heads = cg.indices[cg.indptr[i] : cg.indptr[i + 1]]
        assert sorted(cg.node_ids[heads].tolist()) == sorted(set(small.successors(n)))
    # each pair's run in pair_order holds exactly its parallel edges
    ends = np.r_[cg.pair_start[1:], cg.n_edges]
    for a, b in zip(cg.pair_start, ends, strict=True):
        run = cg.pair_order[a:b]
        u, v = int(cg.u[run[0]]), int(cg.v[run[0]])
        assert sorted(cg.key[run].tolist()) == sorted(small[u][v])
    # the two parallel roads make one pair with two edges, each way
    assert sorted(np.diff(np.r_[cg.pair_start, cg.n_edges]).tolist()) == [1, 2, 2]


def test_edge_position_finds_every_edge_and_nothing_else(small: nx.MultiDiGraph) -> None:
    cg = compile_graph(small)
    pos = cg.edge_position(cg.u, cg.v, cg.key)
    np.testing.assert_array_equal(pos, np.arange(cg.n_edges))
    assert cg.edge_position([cg.u[0]], [cg.v[0]], [99]).tolist() == [-1]


def test_compiled_once_and_shared(small: nx.MultiDiGraph) -> None:
    cg = compile_graph(small)
    assert compile_graph(small) is cg
    assert routing.RoutingIndex(small).compiled is cg
    net = density.network_arrays(small)
    assert density.network_arrays(small) is net
    np.testing.assert_array_equal(net.road, cg.road_id[cg.forward_edges])
    index, keys = snapping.LineIndex.from_graph(small)
    assert index.n_lines == len(cg.forward_edges)
    assert list(keys) == [tuple(t) for t in np.column_stack([cg.u, cg.v, cg.key])[cg.forward]]


def test_cache_rule_a_copy_or_a_new_node_compiles_afresh(small: nx.MultiDiGraph) -> None:
    cg = compile_graph(small)
    copy = small.copy()
    assert compile_graph(copy) is not cg
    # an edit that keeps the node count is the caller's to announce (the documented rule)
    u, v, k = next(iter(small.edges(keys=True)))
    small.edges[u, v, k]["length"] *= 1.01
    assert compile_graph(small) is cg
    fresh = compile_graph(small, refresh=True)
    assert fresh is not cg
    assert fresh.length_m[0] == pytest.approx(cg.length_m[0] * 1.01)
    assert compile_graph(small) is fresh


def test_a_graph_that_breaks_the_contract_is_refused(small: nx.MultiDiGraph) -> None:
    bad = small.copy()
    for *_, d in bad.edges(data=True):
        del d["road_id"]
    with pytest.raises(cr.InputError, match="road_id"):
        compile_graph(bad)


def test_compiled_at_build_is_what_the_dicts_give() -> None:
    """The builders' compiled form (from their arrays) equals reading the graph's dicts back.

    Curved grid roads with random one-ways, names, refs and repeated node pairs.
    """
    roads = grid_roads(300, seed=11)
    # twenty second roads between the same ends as others, bent away from them
    twins = []
    for line in roads.geometry.iloc[:20]:
        (x0, y0), (x1, y1) = line.coords[0], line.coords[-1]
        twins.append(LineString([(x0, y0), ((x0 + x1) / 2 + 40, (y0 + y1) / 2 + 40), (x1, y1)]))
    roads = gpd.GeoDataFrame(
        geometry=np.r_[roads.geometry.to_numpy(), np.asarray(twins, dtype=object)], crs=roads.crs
    )
    rng = np.random.default_rng(2)
    roads["oneway"] = rng.random(len(roads)) < 0.2
    roads["name"] = np.where(rng.random(len(roads)) < 0.5, "", "Road ") + np.arange(
        len(roads)
    ).astype(str)
    roads["ref"] = np.where(rng.random(len(roads)) < 0.5, "", "N") + (
        np.arange(len(roads)) % 7
    ).astype(str)
    G = cr.graph_from_gdf(roads)
    assert len(G.edges) > len(set(G.edges(keys=False)))  # parallel edges
    built = compile_graph(G)
    read = compile_graph(G, refresh=True)
    assert read is not built
    for name in ("node_ids", "node_xy", "u", "v", "key", "eu", "ev", "length_m", "road_id"):
        np.testing.assert_array_equal(getattr(built, name), getattr(read, name))
    for name in ("forward", "pair_order", "pair_start", "indptr", "indices"):
        np.testing.assert_array_equal(getattr(built, name), getattr(read, name))
    assert built.road_name.tolist() == read.road_name.tolist()
    assert all(a is b for a, b in zip(built.geoms, read.geoms, strict=True))
