"""Paths of the repository and its real data, and small hand-built networks."""

from __future__ import annotations

import os
from pathlib import Path

import geopandas as gpd
import networkx as nx
import pytest
from shapely.geometry import LineString

import convoyrisk as cr

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("CONVOYRISK_SHARED", REPO.parent / "shared"))
REALDATA = SHARED / "realdata"
UTM31 = "EPSG:32631"


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
