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
PLANE = "+proj=tmerc +lat_0=0 +lon_0=0 +k_0=1 +x_0=0 +y_0=0 +ellps=WGS84 +units=m +no_defs"
"""CRS of the hand-built networks: a transverse Mercator with scale 1 at (0, 0).

Graph lengths are geodesic (measured on the WGS84 ellipsoid); within a few km
of the origin this projection's distortion is below 1e-7, so a hand
calculation in the plane is the geodesic length to that precision."""


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


def lines_graph(lines: list[list[tuple[float, float]]], crs: str = PLANE) -> nx.MultiDiGraph:
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
