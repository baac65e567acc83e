"""Route metrics by hand, and chokepoints against brute force with networkx."""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
import pytest

import convoyrisk as cr
from convoyrisk.routing import Route, chokepoints, path_edges, route_metrics, score_routes

from .helpers.graphs import lines_graph, node_at
from .helpers.routing import X0, Y0, fake_risk, shift


@pytest.fixture(scope="module")
def line10() -> nx.MultiDiGraph:
    """One straight 10 km road A→B: 10 segments of exactly 1 km."""
    return lines_graph(shift([[(0, 0), (10_000, 0)]]))


def direct(G: nx.MultiDiGraph) -> Route:
    a, b = node_at(G, X0, Y0), node_at(G, X0 + 10_000, Y0)
    return Route(nodes=[a, b], edges=path_edges(G, [a, b]))


def test_p_incident_by_hand(line10) -> None:
    risk = fake_risk(line10, lambda _r, _s: 0.01, spread=0.5)
    m = route_metrics(line10, direct(line10), risk, travel_days=3.0)
    # Σλ·L = 0.01·10 = 0.1 per 30 days. Exposure: the 10 km within the 24 h threat lead,
    # plus the 2 km convoy for its 72 h on the road: E = 0.01·(10·24 + 2·72)/720
    assert m["risk_integral"] == pytest.approx(0.1)
    assert m["expected_incidents"] == pytest.approx(0.01 * (240 + 144) / 720)
    assert m["p_incident"] == pytest.approx(1 - math.exp(-0.01 * (240 + 144) / 720))
    # rates given without a posterior carry no uncertainty into the draws
    assert m["p_incident_low"] == pytest.approx(m["p_incident"])
    assert m["p_incident_high"] == pytest.approx(m["p_incident"])
    # from the pace: 10 km at 20 km/h is 0.5 h of driving and no night
    paced = route_metrics(line10, direct(line10), risk, speed_kph=20.0, driving_hours_per_day=10.0)
    assert paced["travel_days"] == pytest.approx(0.5 / 24, abs=1e-3)
    assert paced["driving_hours"] == pytest.approx(0.5)
    assert paced["expected_incidents"] == pytest.approx(0.01 * (240 + 2 * 0.5) / 720)
    # a week exposes more than a day, but not seven times: the threat lead counts once
    week = route_metrics(line10, direct(line10), risk, travel_days=7.0)
    day = route_metrics(line10, direct(line10), risk, travel_days=1.0)
    assert week["expected_incidents"] == pytest.approx(0.01 * (240 + 2 * 168) / 720)
    assert day["expected_incidents"] == pytest.approx(0.01 * (240 + 2 * 24) / 720)
    # the lead can be set to 0 (only where the convoy is), and the convoy's length too
    bare = route_metrics(line10, direct(line10), risk, travel_days=7.0, threat_lead_hours=0.0)
    assert bare["expected_incidents"] == pytest.approx(0.01 * 2 * 168 / 720)
    long = route_metrics(line10, direct(line10), risk, travel_days=7.0, convoy_length_m=7_500.0)
    assert long["expected_incidents"] == pytest.approx(0.01 * (240 + 7.5 * 168) / 720)


def test_worst_segments_and_profile(line10) -> None:
    hot = {3000.0: 0.05, 4000.0: 0.04, 8000.0: 0.03}
    risk = fake_risk(line10, lambda _r, s: hot.get(round(s), 0.001))
    m = route_metrics(line10, direct(line10), risk, travel_days=1.0)
    # the segment at km 4 is next to km 3's hot spot: the list moves on to km 8 (5 km away)
    # and no third: every other segment lies within 5 km of km 3 or km 8
    assert [w["chainage_km"] for w in m["worst_segments"]] == [3.0, 8.0]
    assert m["worst_segment"]["chainage_km"] == 3.0 and m["worst_segment"]["rate"] == 0.05
    total = (0.05 + 0.04 + 0.03 + 7 * 0.001) * 1.0 / 30
    assert m["worst_segments"][0]["share_of_route"] == pytest.approx(0.05 / 30 / total, abs=1e-4)
    close = route_metrics(line10, direct(line10), risk, travel_days=1.0, min_gap_km=0.0)
    assert [w["chainage_km"] for w in close["worst_segments"]] == [3.0, 4.0, 8.0]
    assert [p[0] for p in m["profile"]] == [float(i) for i in range(10)]
    assert [p[1] for p in m["profile"]][3] == 0.05
    # travelled backwards, the chainage runs from B: km 3 from A is km 6 from B
    back = Route(
        nodes=direct(line10).nodes[::-1], edges=path_edges(line10, direct(line10).nodes[::-1])
    )
    mb = route_metrics(line10, back, risk, travel_days=1.0)
    assert mb["worst_segment"]["chainage_km"] == 6.0


def test_score_routes_ranks_and_shares(line10) -> None:
    G = lines_graph(
        shift([[(0, 0), (10_000, 0)], [(0, 0), (5_000, 3_000)], [(5_000, 3_000), (10_000, 0)]])
    )
    risk = fake_risk(G, lambda r, _s: 0.02 if r == 0 else 0.001)
    a, b = node_at(G, X0, Y0), node_at(G, X0 + 10_000, Y0)
    routes = cr.alternative_routes(G, a, b, k=2)
    ranked = score_routes(G, routes, risk, travel_days=1.0)
    assert [round(r.metrics["length_km"], 3) for r in ranked] == [
        round(2 * math.hypot(5, 3), 3),
        10.0,
    ]
    assert [r.metrics["rank"] for r in ranked] == [1, 2]
    assert (
        ranked[0].metrics["shared_fraction"] == 1.0 and ranked[1].metrics["shared_fraction"] == 0.0
    )
    by_length = score_routes(G, routes, risk, rank_by="length", travel_days=1.0)
    assert by_length[0].metrics["length_km"] == 10.0
    with pytest.raises(cr.InputError, match="rank_by"):
        score_routes(G, routes, risk, rank_by="fun")


def _mandatory(G: nx.MultiDiGraph, o: int, d: int) -> tuple[set[int], set[int]]:
    """Brute force: roads and nodes whose removal disconnects o from d."""
    U = nx.MultiGraph()
    for u, v, data in G.edges(data=True):
        if not data["reversed"]:
            U.add_edge(u, v, key=data["road_id"])
    roads, nodes = set(), set()
    for u, v, r in list(U.edges(keys=True)):
        H = U.copy()
        H.remove_edge(u, v, key=r)
        if not nx.has_path(H, o, d):
            roads.add(int(r))
    for n in list(U.nodes):
        if n in {o, d}:
            continue
        H = U.copy()
        H.remove_node(n)
        if not nx.has_path(H, o, d):
            nodes.add(int(n))
    return roads, nodes


def test_chokepoints_hand_built() -> None:
    """A–B (bridge), B to C by two roads, C–D (bridge), and a spur B–E that no route needs."""
    G = lines_graph(
        shift(
            [
                [(0, 0), (1000, 0)],
                [(1000, 0), (2000, 500)],
                [(2000, 500), (3000, 0)],
                [(1000, 0), (2000, -500)],
                [(2000, -500), (3000, 0)],
                [(3000, 0), (4000, 0)],
                [(1000, 0), (1000, 1000)],
            ]
        )
    )
    a, d = node_at(G, X0, Y0), node_at(G, X0 + 4000, Y0)
    b, c = node_at(G, X0 + 1000, Y0), node_at(G, X0 + 3000, Y0)
    ch = chokepoints(G, a, d)
    assert {r["road_id"] for r in ch["cut_roads"]} == {0, 5}
    assert {n["node"] for n in ch["cut_nodes"]} == {b, c}
    routes = cr.alternative_routes(G, a, d, k=2, max_share=0.9)
    assert len(routes) == 2
    common = chokepoints(G, a, d, routes)["common_roads"]
    assert [r["road_id"] for r in common] == [0, 5]
    # avoiding the northern pair of roads B–C leaves the southern pair as cut roads
    avoided = chokepoints(G, a, d, avoid_roads={1})
    assert {r["road_id"] for r in avoided["cut_roads"]} == {0, 3, 4, 5}


@pytest.mark.parametrize("seed", range(24))
def test_chokepoints_match_brute_force(seed) -> None:
    """Cut roads and nodes against removing each one and asking networkx for a path."""
    rng = np.random.default_rng(seed)
    n = 5 + seed % 4  # up to 8 x 8: spurs, loops beside the path, chains of cuts
    lines = []
    for i in range(n):
        for j in range(n):
            p = (i * 1000.0, j * 1000.0)
            if i + 1 < n and rng.random() < 0.6:
                lines.append([p, (p[0] + 1000.0, p[1])])
            if j + 1 < n and rng.random() < 0.6:
                lines.append([p, (p[0], p[1] + 1000.0)])
    G = lines_graph(shift(lines))
    part = max(nx.weakly_connected_components(G), key=len)
    nodes = sorted(part, key=lambda k: G.nodes[k]["x"] + G.nodes[k]["y"])
    o, d = nodes[0], nodes[-1]
    roads, cut_nodes = _mandatory(G, o, d)
    ch = chokepoints(G, o, d)
    assert {r["road_id"] for r in ch["cut_roads"]} == roads
    assert {c["node"] for c in ch["cut_nodes"]} == cut_nodes
