"""Shared fixtures: the embedded scenario, small hand-built networks, real data paths."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import networkx as nx
import pytest
from shapely.geometry import LineString

import convoyrisk as cr

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
REALDATA = SHARED / "realdata"
UTM31 = "EPSG:32631"


@pytest.fixture(scope="session")
def places() -> gpd.GeoDataFrame:
    return cr.load_places()


@pytest.fixture(scope="session")
def default_graph(places: gpd.GeoDataFrame) -> nx.MultiDiGraph:
    return cr.name_nodes(cr.load_graph(), places)


@pytest.fixture(scope="session")
def default_risk(default_graph: nx.MultiDiGraph) -> cr.RiskResult:
    table = cr.read_incidents()
    snapped = cr.snap_incidents(default_graph, table.incidents)
    return cr.score_segments(default_graph, snapped)


def lines_graph(lines: list[list[tuple[float, float]]], crs: str = UTM31) -> nx.MultiDiGraph:
    """A graph from projected line coordinates (metres)."""
    gdf = gpd.GeoDataFrame(geometry=[LineString(c) for c in lines], crs=crs)
    return cr.graph_from_gdf(gdf, crs=crs)


def realdata(name: str) -> Path:
    path = REALDATA / name
    if not path.exists():
        pytest.skip(f"{path} not present (shared/realdata sits beside the repository)")
    return path


def node_at(G: nx.MultiDiGraph, x: float, y: float) -> int:
    """The node at projected coordinates (x, y) (within 1 m)."""
    for n, d in G.nodes(data=True):
        if abs(d["x"] - x) < 1 and abs(d["y"] - y) < 1:
            return int(n)
    raise KeyError((x, y))
