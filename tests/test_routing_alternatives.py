"""Alternatives, objectives, via and avoid on hand-built networks with known answers."""

from __future__ import annotations

import itertools
import math

import geopandas as gpd
import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import Point

import convoyrisk as cr
from convoyrisk.routing import (
    RoutingIndex,
    alternative_routes,
    pareto_routes,
    roads_in_areas,
    roads_of_segments,
    route_length_m,
    route_through,
    shared_fraction,
)

from .helpers.graphs import PLANE, lines_graph, node_at
from .helpers.routing import X0, Y0, fake_risk, hand_risk_integral, shift

A, B = (X0, Y0), (X0 + 10_000, Y0)
NORTH, SOUTH, FAR = (5_000, 3_000), (5_000, -4_000), (5_000, 8_000)
KM_DIRECT = 10.0
KM_NORTH = 2 * math.hypot(5, 3)  # 11.662
KM_SOUTH = 2 * math.hypot(5, 4)  # 12.806
KM_FAR = 2 * math.hypot(5, 8)  # 18.868, 89 % longer than the direct road


@pytest.fixture(scope="module")
def ladder() -> nx.MultiDiGraph:
    """A to B: direct 10 km, via north 11.66 km, via south 12.81 km, via far 18.87 km."""
    lines = [[(0, 0), (10_000, 0)]]
    for mid in (NORTH, SOUTH, FAR):
        lines += [[(0, 0), mid], [mid, (10_000, 0)]]
    return lines_graph(shift(lines))


def ends(G: nx.MultiDiGraph) -> tuple[int, int]:
    return node_at(G, *A), node_at(G, *B)


def km(G: nx.MultiDiGraph, routes: list[cr.routing.Route]) -> list[float]:
    return [round(route_length_m(G, r.edges) / 1000.0, 3) for r in routes]


def mid_node(G: nx.MultiDiGraph, r: cr.routing.Route) -> tuple[float, float]:
    n = r.nodes[1]
    return (round(G.nodes[n]["x"] - X0), round(G.nodes[n]["y"] - Y0))


def test_three_disjoint_alternatives_shortest_first(ladder) -> None:
    a, b = ends(ladder)
    routes = alternative_routes(ladder, a, b, k=3)
    assert km(ladder, routes) == [KM_DIRECT, round(KM_NORTH, 3), round(KM_SOUTH, 3)]
    # the far road is 89 % longer: refused at the default stretch 1.4, kept at 2.0
    assert len(alternative_routes(ladder, a, b, k=4)) == 3
    assert km(ladder, alternative_routes(ladder, a, b, k=4, max_stretch=2.0))[-1] == round(
        KM_FAR, 3
    )


def test_parallel_roads_between_the_same_nodes() -> None:
    """Two roads join the same two nodes: the CSR entry takes the lighter, then the other."""
    G = lines_graph(shift([[(0, 0), (10_000, 0)], [(0, 0), (5_000, 2_000), (10_000, 0)]]))
    a, b = node_at(G, *A), node_at(G, *B)
    routes = alternative_routes(G, a, b, k=2)
    assert km(G, routes) == [10.0, round(2 * math.hypot(5, 2), 3)]
    assert routes[0].edges[0][2] != routes[1].edges[0][2]  # different keys, same nodes
    assert shared_fraction(G, routes[1].edges, routes[0].edges) == 0.0


def test_safest_and_minimax_differ(ladder) -> None:
    """North: one 1-km segment at 0.05, the rest 1e-4; south 0.0045; direct 0.02; far 0.03."""
    G = ladder
    a, b = ends(G)
    north = {
        int(d["road_id"])
        for u, v, d in G.edges(data=True)
        if NORTH in {mid_node_xy(G, u), mid_node_xy(G, v)}
    }
    south = {
        int(d["road_id"])
        for u, v, d in G.edges(data=True)
        if SOUTH in {mid_node_xy(G, u), mid_node_xy(G, v)}
    }

    def rate(road: int, start: float) -> float:
        if road in north:
            return 0.05 if start == 0.0 and road == min(north) else 1e-4
        if road in south:
            return 0.0045
        return 0.02 if road == 0 else 0.03  # direct, far

    risk = fake_risk(G, rate)
    # by hand: each half of the north road (5.831 km) is cut into 6 segments of 0.972 km;
    # north 0.05·0.972 + 1e-4·(11.662 − 0.972) = 0.04966; south 0.0045·12.806 = 0.05763
    safest = alternative_routes(G, a, b, k=1, objective="safest", risk=risk)[0]
    assert mid_node(G, safest) == NORTH
    assert hand_risk_integral(G, risk, safest.edges) == pytest.approx(
        0.05 * (KM_NORTH / 12) + 1e-4 * (KM_NORTH - KM_NORTH / 12),
        rel=1e-7,  # lengths are geodesic: PLANE is true to 1e-7 this close to its equator
    )
    worst = alternative_routes(G, a, b, k=1, objective="minimax", risk=risk)[0]
    assert mid_node(G, worst) == SOUTH  # its worst segment 0.0045 < 0.02 < 0.05
    # balanced: weight 0 is the shortest; a large weight follows the risk
    assert km(
        G, alternative_routes(G, a, b, k=1, objective="balanced", risk=risk, risk_weight=0.0)
    ) == [10.0]
    heavy = alternative_routes(G, a, b, k=1, objective="balanced", risk=risk, risk_weight=1e6)[0]
    assert mid_node(G, heavy) == NORTH
    # the cost km + w·R/30 by hand for w = 300: direct 10 + 300·0.2/30 = 12.0,
    # north 11.662 + 300·0.04966/30 = 12.159, south 12.806 + 0.576 = 13.382 → direct
    mid = alternative_routes(G, a, b, k=1, objective="balanced", risk=risk, risk_weight=300.0)
    assert km(G, mid) == [10.0]
    # with w = 400: direct 12.667, north 12.324 → north
    mid = alternative_routes(G, a, b, k=1, objective="balanced", risk=risk, risk_weight=400.0)
    assert mid_node(G, mid[0]) == NORTH


def mid_node_xy(G: nx.MultiDiGraph, n: int) -> tuple[float, float]:
    return (round(G.nodes[n]["x"] - X0), round(G.nodes[n]["y"] - Y0))


def test_via_and_avoid(ladder) -> None:
    G = ladder
    a, b = ends(G)
    south = node_at(G, X0 + SOUTH[0], Y0 + SOUTH[1])
    via = alternative_routes(G, a, b, k=1, via=[south])[0]
    assert south in via.nodes and km(G, [via]) == [round(KM_SOUTH, 3)]
    # a polygon over the middle of the direct road removes it (and only it)
    area = gpd.GeoDataFrame(geometry=[Point(X0 + 5_000, Y0).buffer(500)], crs=PLANE)
    avoid = roads_in_areas(G, area.to_crs("EPSG:4326"))
    assert avoid == {0}
    routes = alternative_routes(G, a, b, k=3, avoid_roads=avoid)
    assert km(G, routes) == [round(KM_NORTH, 3), round(KM_SOUTH, 3)]
    assert all(G.edges[e]["road_id"] != 0 for r in routes for e in r.edges)
    # segment ids name the roads to avoid too
    risk = fake_risk(G, lambda _r, _s: 1e-3)
    seg = int(risk.segments.loc[risk.segments["road_id"] == 0, "segment_id"].iloc[3])
    assert roads_of_segments(risk, [seg]) == {0}
    with pytest.raises(cr.InputError, match="Unknown segment"):
        roads_of_segments(risk, [10**6])
    # avoiding everything around A leaves no route, and says why
    around_a = gpd.GeoDataFrame(geometry=[Point(*A).buffer(100)], crs=PLANE)
    with pytest.raises(cr.NoRouteError, match="avoided"):
        alternative_routes(G, a, b, avoid_roads=roads_in_areas(G, around_a))


def test_route_through_places(ladder) -> None:
    G = ladder
    a, b = ends(G)
    north = node_at(G, X0 + NORTH[0], Y0 + NORTH[1])
    r = route_through(G, [a, north, b], name="A, N, B")
    expected = nx.shortest_path_length(G, a, north, weight="length") + nx.shortest_path_length(
        G, north, b, weight="length"
    )
    assert route_length_m(G, r.edges) == pytest.approx(expected)
    assert r.name == "A, N, B" and r.nodes[0] == a and r.nodes[-1] == b
    with pytest.raises(cr.InputError, match="two different places"):
        route_through(G, [a, a])


def test_unreachable_destination() -> None:
    G = lines_graph(shift([[(0, 0), (1000, 0)], [(5000, 0), (6000, 0)]]))
    with pytest.raises(cr.NoRouteError, match="No route joins"):
        alternative_routes(G, node_at(G, X0, Y0), node_at(G, X0 + 6000, Y0))


def _grid(seed: int, n: int = 5, p: float = 0.85) -> nx.MultiDiGraph:
    rng = np.random.default_rng(seed)
    xs, ys = np.meshgrid(np.arange(n) * 1000.0, np.arange(n) * 1000.0)
    pts = np.c_[xs.ravel(), ys.ravel()] + rng.uniform(-200, 200, (n * n, 2))
    lines = []
    for i in range(n):
        for j in range(n):
            q = i * n + j
            if j + 1 < n and rng.random() < p:
                lines.append([tuple(pts[q]), tuple(pts[q + 1])])
            if i + 1 < n and rng.random() < p:
                lines.append([tuple(pts[q]), tuple(pts[q + n])])
    return lines_graph(shift(lines))


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    share=st.floats(0.1, 0.9),
    stretch=st.floats(1.05, 2.0),
    objective=st.sampled_from(["shortest", "safest", "balanced", "minimax"]),
)
def test_limits_and_optimum_on_random_graphs(seed, share, stretch, objective) -> None:
    G = _grid(seed)
    nodes = list(G.nodes)
    o, d = nodes[0], nodes[-1]
    if not nx.has_path(G, o, d):
        return
    rng = np.random.default_rng(seed + 1)
    road_rate = {int(r): float(rng.gamma(0.5, 0.002)) + 1e-5 for *_, r in G.edges(data="road_id")}
    risk = fake_risk(G, lambda r, _s: road_rate[r])
    routes = alternative_routes(
        G, o, d, k=4, max_share=share, max_stretch=stretch, objective=objective, risk=risk
    )
    lengths = [route_length_m(G, r.edges) for r in routes]

    # the first route is the optimum, checked with networkx on independent weights
    def integral(u, v, data):
        return min(road_rate[int(e["road_id"])] * e["length"] / 1000.0 for e in data.values())

    if objective == "shortest":
        assert lengths[0] == pytest.approx(nx.shortest_path_length(G, o, d, weight="length"))
    elif objective == "safest":
        best = nx.shortest_path_length(G, o, d, weight=integral)
        assert hand_risk_integral(G, risk, routes[0].edges) == pytest.approx(best, rel=1e-4)
    for i, r in enumerate(routes):
        assert r.nodes[0] == o and r.nodes[-1] == d
        assert lengths[i] <= stretch * lengths[0] * (1 + 1e-9)
        for better in routes[:i]:
            assert shared_fraction(G, r.edges, better.edges) <= share + 1e-12


def test_pareto_front_matches_brute_force() -> None:
    """Every route returned is Pareto-optimal among all simple paths; both ends are found."""
    G = _grid(7, n=4, p=1.0)
    rng = np.random.default_rng(3)
    road_rate = {int(r): float(rng.choice([1e-4, 5e-3, 2e-2])) for *_, r in G.edges(data="road_id")}
    risk = fake_risk(G, lambda r, _s: road_rate[r])
    o, d = node_at(G, *(G.nodes[0]["x"], G.nodes[0]["y"])), max(G.nodes)
    points = []
    for path in nx.all_simple_paths(nx.Graph(G), o, d):
        length = sum(
            min(e["length"] for e in G[a][b].values()) for a, b in itertools.pairwise(path)
        )
        r = sum(
            road_rate[int(next(iter(G[a][b].values()))["road_id"])] * length_ab / 1000.0
            for a, b, length_ab in (
                (a, b, min(e["length"] for e in G[a][b].values()))
                for a, b in itertools.pairwise(path)
            )
        )
        points.append((length, r))
    pts = np.array(points)
    front = pareto_routes(G, o, d, risk, max_routes=20)
    got = np.array(
        [(route_length_m(G, r.edges), hand_risk_integral(G, risk, r.edges)) for r in front]
    )
    assert np.all(np.diff(got[:, 0]) > 0) and np.all(np.diff(got[:, 1]) < 0)
    for length, r in got:
        dominated = (pts[:, 0] <= length - 1e-6) & (pts[:, 1] <= r - 1e-12)
        assert not dominated.any()
    assert got[0, 0] == pytest.approx(pts[:, 0].min())
    assert got[-1, 1] == pytest.approx(pts[:, 1].min(), rel=1e-4)


def test_index_is_reused_and_checked(ladder) -> None:
    a, b = ends(ladder)
    ix = RoutingIndex(ladder)
    assert km(ladder, alternative_routes(ladder, a, b, k=1, index=ix)) == [10.0]
    other = lines_graph(shift([[(0, 0), (1000, 0)]]))
    with pytest.raises(cr.InputError, match="another graph"):
        alternative_routes(other, 0, 1, index=ix)
    with pytest.raises(cr.InputError, match="objective"):
        alternative_routes(ladder, a, b, objective="fastest")
    with pytest.raises(cr.InputError, match="needs `risk`"):
        alternative_routes(ladder, a, b, objective="safest")


def test_against_yen_on_the_benchmark_grid() -> None:
    """Smoke size of benchmarks/bench_routing.py: same shortest route as OSMnx's Yen, far
    less overlap between the alternatives."""
    ox = pytest.importorskip("osmnx")
    from benchmarks.bench_routing import build, far_pair, overlap

    G = build(2_000)
    o, d = far_pair(G)
    ours = [r.edges for r in alternative_routes(G, o, d, k=3)]
    yen = [
        cr.routing.path_edges(G, p)
        for p in ox.routing.k_shortest_paths(G, o, d, 3, weight="length")
    ]
    assert route_length_m(G, ours[0]) == pytest.approx(route_length_m(G, yen[0]))
    share_ours, stretch_ours = overlap(G, ours)
    share_yen, _ = overlap(G, yen)
    assert len(ours) == 3 and share_ours <= 0.6 and stretch_ours <= 1.4
    assert share_yen > 0.6  # Yen's next-shortest paths are one-block detours
