"""Alternative routes between two places, and the risk of each.

Alternatives come from the penalty method (as in GraphHopper's and ORS's
alternative routes): after each shortest path, the roads it used get longer by
a factor, and the search runs again. A candidate is kept only if it shares at
most `max_share` of its length with every better route and is at most
`max_stretch` times as long as the shortest route, so alternatives are
genuinely different, not the same road with a small detour.

Route risk: with segment rates λᵢ (incidents per km per 30 days), lengths Lᵢ
(km) and ``d`` days on the road, expected incidents ``E = Σ λᵢ·Lᵢ·d/30`` and
``P(at least one) = 1 − exp(−E)`` (a Poisson process). The convoy is assumed
exposed on every segment of its route for the whole transit: a week-long
transit exposes seven times more than a one-day one.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd

from ._errors import InputError, NoRouteError
from .risk import RiskResult

Edge = tuple[int, int, int]


@dataclass
class Route:
    """One route and its metrics.

    Attributes
    ----------
    nodes
        Node ids from origin to destination.
    edges
        ``(u, v, key)`` of each edge taken.
    metrics
        ``length_km``, ``expected_incidents``, ``p_incident`` and the rest, see
        :func:`route_metrics`.
    """

    nodes: list[int]
    edges: list[Edge]
    metrics: dict[str, Any] = field(default_factory=dict)


def path_edges(G: nx.MultiDiGraph, nodes: list[int], weight: str = "length") -> list[Edge]:
    """The lightest parallel edge between each pair of consecutive nodes."""
    out: list[Edge] = []
    for a, b in itertools.pairwise(nodes):
        key = min(G[a][b], key=lambda k: G[a][b][k].get(weight, math.inf))
        out.append((a, b, key))
    return out


def route_length_m(G: nx.MultiDiGraph, edges: list[Edge]) -> float:
    """Sum of the edges' ``length`` attributes, metres."""
    return float(sum(G.edges[e]["length"] for e in edges))


def _road_lengths(G: nx.MultiDiGraph, edges: list[Edge]) -> dict[int, float]:
    return {int(G.edges[e]["road_id"]): float(G.edges[e]["length"]) for e in edges}


def shared_fraction(G: nx.MultiDiGraph, route: list[Edge], other: list[Edge]) -> float:
    """Share of `route`'s length on roads that `other` also uses (either direction)."""
    mine, theirs = _road_lengths(G, route), _road_lengths(G, other)
    total = sum(mine.values())
    return sum(length for r, length in mine.items() if r in theirs) / total if total else 0.0


def _shortest(
    G: nx.MultiDiGraph, origin: int, destination: int, weight: Callable[..., float]
) -> list[int]:
    try:
        return list(nx.dijkstra_path(G, origin, destination, weight=weight))
    except nx.NetworkXNoPath as exc:
        msg = (
            f"No route joins node {origin} and node {destination}: they lie on parts of the "
            "network that no road connects. Check the road layer or choose other places."
        )
        raise NoRouteError(msg) from exc


def alternative_routes(  # noqa: C901 - argument checks, then one search loop
    G: nx.MultiDiGraph,
    origin: int,
    destination: int,
    *,
    k: int = 3,
    max_share: float = 0.6,
    max_stretch: float = 1.4,
    penalty: float = 0.5,
    max_iterations: int | None = None,
) -> list[Route]:
    """Up to `k` genuinely different routes, shortest first (penalty method).

    Parameters
    ----------
    G
        The road graph.
    origin, destination
        Node ids.
    k
        Number of routes wanted; fewer are returned when the network has no more
        that pass both limits.
    max_share
        Largest share of a route's length that it may have in common with any
        better route.
    max_stretch
        Largest ratio of a route's length to the shortest route's.
    penalty
        Each time a road is used, its search weight grows by this fraction.
    max_iterations
        Searches to run at most; ``4·k + 4`` if None.

    Raises
    ------
    NoRouteError
        If the destination cannot be reached.
    """
    if k < 1:
        msg = f"`k` must be at least 1, got {k}."
        raise InputError(msg)
    if not 0.0 <= max_share <= 1.0 or max_stretch < 1.0:
        msg = "`max_share` must be in [0, 1] and `max_stretch` at least 1."
        raise InputError(msg)
    if origin == destination:
        msg = (
            "Origin and destination are the same place on the network: choose two different places."
        )
        raise InputError(msg)
    uses: dict[int, int] = {}

    def weight(_u: int, _v: int, data: dict[Any, dict[str, Any]]) -> float:
        return min(
            float(d["length"]) * (1.0 + penalty) ** uses.get(d["road_id"], 0) for d in data.values()
        )

    routes: list[Route] = []
    seen: set[tuple[int, ...]] = set()
    shortest_m = math.inf
    for _ in range(max_iterations or 4 * k + 4):
        nodes = _shortest(G, origin, destination, weight)
        edges = path_edges(G, nodes)
        for e in edges:
            rid = int(G.edges[e]["road_id"])
            uses[rid] = uses.get(rid, 0) + 1
        if tuple(nodes) in seen:
            continue
        seen.add(tuple(nodes))
        length = route_length_m(G, edges)
        shortest_m = min(shortest_m, length)
        if length > max_stretch * shortest_m:
            continue
        if all(shared_fraction(G, edges, r.edges) <= max_share for r in routes):
            routes.append(Route(nodes=nodes, edges=edges))
            if len(routes) == k:
                break
    routes.sort(key=lambda r: route_length_m(G, r.edges))
    return routes


def route_metrics(
    G: nx.MultiDiGraph,
    route: Route,
    risk: RiskResult,
    *,
    speed_kph: float = 30.0,
    driving_hours_per_day: float = 10.0,
    travel_days: float | None = None,
) -> dict[str, Any]:
    """Length, exposure and risk of a route.

    Parameters
    ----------
    G
        The road graph.
    route
        A route from :func:`alternative_routes`.
    risk
        Scored segments from :func:`convoyrisk.risk.score_segments`.
    speed_kph, driving_hours_per_day
        Convoy pace, used when `travel_days` is None.
    travel_days
        Days the convoy spends on the road (overrides the pace).

    Returns
    -------
    dict
        ``length_km``, ``travel_days``, ``expected_incidents``, ``p_incident``,
        ``p_incident_low``, ``p_incident_high``, ``worst_segment`` (id, rate,
        class and chainage), ``via`` (named places passed) and ``profile``
        (chainage km and rate of each segment in travel order).
    """
    if speed_kph <= 0 or driving_hours_per_day <= 0:
        msg = "`speed_kph` and `driving_hours_per_day` must be positive."
        raise InputError(msg)
    segs = route_segments(G, route, risk)
    length_km = route_length_m(G, route.edges) / 1000.0
    days = (
        travel_days if travel_days is not None else length_km / (speed_kph * driving_hours_per_day)
    )
    if days <= 0:
        msg = f"`travel_days` must be positive, got {days}."
        raise InputError(msg)
    km = segs["length_m"].to_numpy() / 1000.0
    expected = float(np.sum(segs["rate"].to_numpy() * km) * days / 30.0)
    low = float(np.sum(segs["rate_low"].to_numpy() * km) * days / 30.0)
    high = float(np.sum(segs["rate_high"].to_numpy() * km) * days / 30.0)
    worst = segs.iloc[int(np.argmax(segs["rate"].to_numpy()))]
    via = [G.nodes[n]["name"] for n in route.nodes[1:-1] if G.nodes[n].get("name")]
    return {
        "length_km": round(length_km, 3),
        "travel_days": round(days, 3),
        "expected_incidents": expected,
        "p_incident": 1.0 - math.exp(-expected),
        "p_incident_low": 1.0 - math.exp(-low),
        "p_incident_high": 1.0 - math.exp(-high),
        "worst_segment": {
            "segment_id": int(worst["segment_id"]),
            "rate": float(worst["rate"]),
            "risk_class": str(worst["risk_class"]),
            "chainage_km": round(float(worst["chainage_m"]) / 1000.0, 1),
        },
        "via": via,
        "profile": [
            [round(float(c) / 1000.0, 3), float(r)]
            for c, r in zip(segs["chainage_m"], segs["rate"], strict=True)
        ],
    }


def route_segments(G: nx.MultiDiGraph, route: Route, risk: RiskResult) -> pd.DataFrame:
    """The route's segments in travel order, with ``chainage_m`` at each segment's start."""
    segs = risk.segments
    by_road = {rid: part for rid, part in segs.groupby("road_id", sort=False)}  # noqa: C416 - dict(groupby) would call GroupBy.keys
    parts = []
    for e in route.edges:
        data = G.edges[e]
        part = by_road[data["road_id"]].sort_values("start_m", ascending=not data["reversed"])
        parts.append(part)
    out = pd.DataFrame(pd.concat(parts, ignore_index=True))
    out["chainage_m"] = np.concatenate([[0.0], np.cumsum(out["length_m"].to_numpy())[:-1]])
    return out


def score_routes(
    G: nx.MultiDiGraph,
    routes: list[Route],
    risk: RiskResult,
    *,
    rank_by: str = "expected_incidents",
    **pace: float | None,
) -> list[Route]:
    """Compute each route's metrics and rank them best first.

    Parameters
    ----------
    rank_by
        ``"expected_incidents"`` (least risk first, then shortest) or ``"length"``.
    **pace
        ``speed_kph``, ``driving_hours_per_day``, ``travel_days`` for
        :func:`route_metrics`.
    """
    if rank_by not in {"expected_incidents", "length"}:
        msg = f"`rank_by` must be 'expected_incidents' or 'length', got {rank_by!r}."
        raise InputError(msg)
    for r in routes:
        r.metrics = route_metrics(G, r, risk, **{k: v for k, v in pace.items() if v is not None})
    key = ("expected_incidents", "length_km") if rank_by == "expected_incidents" else ("length_km",)
    routes = sorted(routes, key=lambda r: tuple(r.metrics[k] for k in key))
    best = routes[0] if routes else None
    for rank, r in enumerate(routes, start=1):
        r.metrics["rank"] = rank
        r.metrics["shared_fraction"] = (
            round(shared_fraction(G, r.edges, best.edges), 4) if best else 0.0
        )
    return routes
