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


def plane(equator_y: float) -> str:
    """Mercator on the WGS84 ellipsoid with scale 1 on the equator, where y = `equator_y`.

    Graph lengths are geodesic (measured on the ellipsoid). Along the equator
    the geodesic is the equator and Mercator's x is ``a·λ``: planar and geodesic
    lengths agree exactly; within 2 km of it, to 1e-7. Hand calculations in
    the plane are then true lengths, in a CRS that passes the graph contract.
    """
    return f"+proj=merc +lon_0=0 +k=1 +x_0=0 +y_0={equator_y} +ellps=WGS84 +units=m +no_defs"


PLANE = plane(2_000_000)
"""CRS of the hand-built networks drawn around y = 2,000,000 m."""

PLANE0 = plane(0)
"""CRS of the hand-built networks drawn around the origin."""


def lines_graph(lines: list[list[tuple[float, float]]], crs: str | None = None) -> nx.MultiDiGraph:
    """A graph from projected line coordinates (metres).

    In `crs`; by default :data:`PLANE0` for lines drawn near y = 0 and
    :data:`PLANE` for lines drawn near y = 2,000,000 m (true scale either way).
    """
    if crs is None:
        crs = PLANE0 if max(abs(y) for line in lines for _, y in line) < 1e6 else PLANE
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
