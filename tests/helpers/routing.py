"""Hand-built networks and risk for the routing tests."""

from __future__ import annotations

import math
from collections.abc import Callable

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd

import convoyrisk as cr
from convoyrisk.density import split_segments
from convoyrisk.risk import RiskParams, RiskResult

X0, Y0 = 500_000.0, 2_000_000.0  # on the equator of PLANE (true scale)


def shift(lines: list[list[tuple[float, float]]]) -> list[list[tuple[float, float]]]:
    return [[(X0 + x, Y0 + y) for x, y in line] for line in lines]


def fake_risk(
    G: nx.MultiDiGraph,
    rate_of_road: Callable[[int, float], float],
    *,
    segment_length_m: float = 1000.0,
    spread: float = 0.5,
) -> RiskResult:
    """Segments with rates set by hand: ``rate_of_road(road_id, start_m)``.

    The interval is ``rate·(1 ± spread)``.
    """
    segs = split_segments(G, segment_length_m)
    rate = np.array(
        [
            rate_of_road(int(r), float(s))
            for r, s in zip(segs["road_id"], segs["start_m"], strict=True)
        ]
    )
    segs["mass"] = 0.0
    segs["incidents"] = 0.0
    segs["rate"] = rate
    segs["rate_low"] = rate * (1 - spread)
    segs["rate_high"] = rate * (1 + spread)
    segs["risk_class"] = np.where(rate >= 0.005, "high", "low")
    segs["top_contributors"] = ""
    incidents = gpd.GeoDataFrame(
        {"used": pd.Series([], dtype=str)}, geometry=[], crs=G.graph["crs"]
    )
    return RiskResult(
        segments=segs,
        incidents=incidents,
        params=RiskParams(),
        as_of=pd.Timestamp("2023-11-04"),
        exposure_days=30.0,
    )


def road_of(G: nx.MultiDiGraph, a: int, b: int) -> int:
    return int(next(iter(G[a][b].values()))["road_id"])


def edge_km(G: nx.MultiDiGraph, e: tuple[int, int, int]) -> float:
    return float(G.edges[e]["length"]) / 1000.0


def hand_risk_integral(
    G: nx.MultiDiGraph, risk: RiskResult, edges: list[tuple[int, int, int]]
) -> float:
    """Σ rate·km over a route's edges, from the segment table directly."""
    segs = risk.segments
    total = 0.0
    for e in edges:
        part = segs[segs["road_id"] == G.edges[e]["road_id"]]
        total += float((part["rate"] * part["length_m"] / 1000.0).sum())
    return total


def hyp(a: tuple[float, float], b: tuple[float, float]) -> float:
    return math.hypot(b[0] - a[0], b[1] - a[1])


__all__ = [
    "X0",
    "Y0",
    "cr",
    "edge_km",
    "fake_risk",
    "hand_risk_integral",
    "hyp",
    "road_of",
    "shift",
]
