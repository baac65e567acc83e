from __future__ import annotations

import math

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convoyrisk as cr
from convoyrisk.routing import Route, route_length_m, shared_fraction

from .helpers.graphs import lines_graph, node_at


def _node(G, name: str) -> int:
    return next(n for n, d in G.nodes(data=True) if d.get("name") == name)


def test_default_alternatives(default_graph, default_risk) -> None:
    routes = cr.alternative_routes(
        default_graph, _node(default_graph, "Kidal"), _node(default_graph, "Gao"), k=3
    )
    assert len(routes) == 2  # the main road, and the Bourem–Anéfis track then the river road
    main, bourem = routes
    assert "Tabankort" in [default_graph.nodes[n].get("name") for n in main.nodes]
    assert "Bourem" in [default_graph.nodes[n].get("name") for n in bourem.nodes]
    # lengths are sums of edges and equal networkx's own shortest-path length
    nx_len = nx.shortest_path_length(default_graph, main.nodes[0], main.nodes[-1], weight="length")
    assert route_length_m(default_graph, main.edges) == pytest.approx(nx_len, rel=1e-12)
    assert route_length_m(default_graph, main.edges) / 1000 == pytest.approx(350.0, abs=5.0)
    assert shared_fraction(default_graph, bourem.edges, main.edges) <= 0.6


def test_route_metrics_by_hand(default_graph, default_risk) -> None:
    route = cr.alternative_routes(
        default_graph, _node(default_graph, "Kidal"), _node(default_graph, "Gao"), k=1
    )[0]
    # by hand from the scored segments (not through route_segments): each route edge takes
    # the segments of its road edge, whichever way the route drives it
    segs = default_risk.segments
    by_edge = {edge: grp for edge, grp in segs.groupby(["u", "v", "key"])}  # noqa: C416
    parts = [by_edge.get(e, by_edge.get((e[1], e[0], e[2]))) for e in route.edges]
    assert all(p is not None for p in parts)
    for (u, v, k), p in zip(route.edges, parts, strict=True):
        assert p["length_m"].sum() == pytest.approx(default_graph.edges[u, v, k]["length"])
    days = 7.0
    # the week's hours spread along the route by length
    km = [p["length_m"].to_numpy() / 1000.0 for p in parts]
    total_km = sum(float(k.sum()) for k in km)
    # threat lead: each km within 24 h of passage; presence: the 2 km convoy for its hours
    by_hand = (
        sum(
            float((p["rate"].to_numpy() * (k * 24.0 + 2.0 * days * 24.0 * k / total_km)).sum())
            for p, k in zip(parts, km, strict=True)
        )
        / 720.0
    )
    m = cr.route_metrics(default_graph, route, default_risk, travel_days=days)
    assert m["expected_incidents"] == pytest.approx(by_hand, rel=1e-12)
    assert m["p_incident"] == pytest.approx(1 - math.exp(-by_hand), rel=1e-12)
    assert 0.0 <= m["p_incident_low"] <= m["p_incident"] <= m["p_incident_high"] <= 1.0
    one_day = cr.route_metrics(default_graph, route, default_risk, travel_days=1.0)
    assert one_day["p_incident"] < m["p_incident"]  # a week on the road exposes more than a day
    assert m["profile"][0][0] == 0.0 and m["profile"][-1][0] < m["length_km"]
    worst = max(float(p["rate"].max()) for p in parts)
    assert m["worst_segment"]["rate"] == worst


def test_square_with_a_detour() -> None:
    """A–B direct (10 km) and A–C–B (14 km): both routes, the direct one first."""
    G = lines_graph(
        [
            [(0, 0), (10_000, 0)],
            [(0, 0), (5_000, 5_000)],
            [(5_000, 5_000), (10_000, 0)],
        ]
    )
    a, b = node_at(G, 0, 0), node_at(G, 10_000, 0)
    routes = cr.alternative_routes(G, a, b, k=3, max_stretch=1.5)
    lengths = [round(route_length_m(G, r.edges)) for r in routes]
    assert lengths == [10_000, round(2 * math.hypot(5_000, 5_000))]
    # with a tighter stretch limit the detour (41 % longer) is refused
    assert len(cr.alternative_routes(G, a, b, k=3, max_stretch=1.3)) == 1


def test_tiny_detour_is_not_an_alternative() -> None:
    """A 20 km road with a 100 m bypass in the middle: the bypass shares ~99 %, refused."""
    G = lines_graph(
        [
            [(0, 0), (10_000, 0)],
            [(10_000, 0), (10_100, 0)],
            [(10_100, 0), (20_000, 0)],
            [(10_000, 0), (10_050, 50)],
            [(10_050, 50), (10_100, 0)],
        ]
    )
    assert len(cr.alternative_routes(G, node_at(G, 0, 0), node_at(G, 20_000, 0), k=3)) == 1


def test_unreachable() -> None:
    G = lines_graph([[(0, 0), (1000, 0)], [(5000, 0), (6000, 0)]])
    with pytest.raises(cr.NoRouteError, match="No route"):
        cr.alternative_routes(G, node_at(G, 0, 0), node_at(G, 6000, 0))


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), share=st.floats(0.2, 0.9), stretch=st.floats(1.05, 2.0))
def test_limits_hold_on_random_graphs(seed, share, stretch) -> None:
    rng = np.random.default_rng(seed)
    n = 5
    xs, ys = np.meshgrid(np.arange(n) * 1000.0, np.arange(n) * 1000.0)
    pts = np.c_[xs.ravel(), ys.ravel()] + rng.uniform(-200, 200, (n * n, 2))
    lines = []
    for i in range(n):
        for j in range(n):
            p = i * n + j
            if j + 1 < n and rng.random() < 0.85:
                lines.append([tuple(pts[p]), tuple(pts[p + 1])])
            if i + 1 < n and rng.random() < 0.85:
                lines.append([tuple(pts[p]), tuple(pts[p + n])])
    G = lines_graph(lines)
    nodes = list(G.nodes)
    o, d = nodes[0], nodes[-1]
    if not nx.has_path(G, o, d):
        return
    routes: list[Route] = cr.alternative_routes(G, o, d, k=4, max_share=share, max_stretch=stretch)
    shortest = nx.shortest_path_length(G, o, d, weight="length")
    assert route_length_m(G, routes[0].edges) == pytest.approx(shortest)
    lengths = [route_length_m(G, r.edges) for r in routes]
    assert lengths == sorted(lengths)
    for i, r in enumerate(routes):
        assert lengths[i] <= stretch * shortest + 1e-6
        for better in routes[:i]:
            assert shared_fraction(G, r.edges, better.edges) <= share + 1e-12
