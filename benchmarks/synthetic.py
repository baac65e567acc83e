"""Synthetic road networks and incidents for benchmarks and simulation, with a fixed seed.

The network follows ../shared/PERFORMANCE.md: a perturbed grid of 200 m cells
whose edges are curved 6-vertex LineStrings, in EPSG:32631 (UTM 31N, metres).
Incidents cluster around a few hotspots and lie up to `max_offset_m` off the
roads.

Usage::

    from benchmarks.synthetic import grid_roads, clustered_points
    roads = grid_roads(100_000)          # GeoDataFrame of about 100k lines
    pts = clustered_points(roads, 1_000_000)
"""

from __future__ import annotations

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import shapely

import convoyrisk as cr

CRS = "EPSG:32631"
ORIGIN = (400_000.0, 1_900_000.0)  # near the Kidal–Gao corridor, in UTM 31N


def grid_roads(n_edges: int, *, cell_m: float = 200.0, seed: int = 0) -> gpd.GeoDataFrame:
    """About `n_edges` curved lines on a perturbed square grid (nodes shared exactly).

    Returns
    -------
    geopandas.GeoDataFrame
        Columns ``name``, ``highway``, ``surface`` and LineString geometry in EPSG:32631.
    """
    rng = np.random.default_rng(seed)
    side = int(np.ceil(np.sqrt(n_edges / 2.0))) + 1
    ii, jj = np.meshgrid(np.arange(side), np.arange(side), indexing="ij")
    nodes = np.c_[ii.ravel() * cell_m, jj.ravel() * cell_m] + rng.uniform(
        -0.3 * cell_m, 0.3 * cell_m, (side * side, 2)
    )
    nodes += ORIGIN
    idx = ii * side + jj
    a = np.r_[idx[:-1, :].ravel(), idx[:, :-1].ravel()]
    b = np.r_[idx[1:, :].ravel(), idx[:, 1:].ravel()]
    keep = rng.permutation(len(a))[:n_edges]
    a, b = a[keep], b[keep]
    p, q = nodes[a], nodes[b]
    t = np.linspace(0.0, 1.0, 6)[None, :, None]
    straight = p[:, None, :] + t * (q - p)[:, None, :]
    normal = np.c_[-(q - p)[:, 1], (q - p)[:, 0]] / np.hypot(*(q - p).T)[:, None]
    bend = rng.uniform(-0.1, 0.1, len(a))[:, None, None] * cell_m
    curve = straight + np.sin(np.pi * t) * bend * normal[:, None, :]
    lines = shapely.linestrings(curve.reshape(-1, 2), indices=np.repeat(np.arange(len(a)), 6))
    hw = rng.choice(
        ["track", "unclassified", "secondary", "primary"], len(a), p=[0.5, 0.3, 0.15, 0.05]
    )
    return gpd.GeoDataFrame(
        {
            "name": pd.Series([f"road {i}" for i in range(len(a))]),
            "highway": hw,
            "surface": np.where(hw == "primary", "paved", "unpaved"),
        },
        geometry=lines,
        crs=CRS,
    )


def graph_of(roads: gpd.GeoDataFrame) -> nx.MultiDiGraph:
    """The routable graph of `roads` (convoyrisk.graph_from_gdf, in the roads' CRS), not timed."""
    return cr.graph_from_gdf(roads, crs=roads.crs)


def clustered_points(
    roads: gpd.GeoDataFrame,
    n: int,
    *,
    hotspots: int = 20,
    spread_m: float = 3_000.0,
    max_offset_m: float = 2_000.0,
    seed: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """`n` points clustered around random hotspots, at most `max_offset_m` off the roads.

    Returns
    -------
    (x, y)
        Coordinates in EPSG:32631 (arrays, to avoid creating a million shapely points).
    """
    rng = np.random.default_rng(seed)
    minx, miny, maxx, maxy = roads.total_bounds
    centres = rng.uniform([minx, miny], [maxx, maxy], (hotspots, 2))
    which = rng.integers(0, hotspots, n)
    xy = centres[which] + rng.normal(0.0, spread_m, (n, 2))
    # inside the grid every point is within a cell (200 m) of a road; the margin around
    # the grid puts some points up to `max_offset_m` off the roads
    lo = np.array([minx, miny]) - max_offset_m
    hi = np.array([maxx, maxy]) + max_offset_m
    xy = np.clip(xy, lo, hi)
    return xy[:, 0], xy[:, 1]


def dated(
    n: int, *, start: str = "2015-01-01", days: int = 3650, seed: int = 2
) -> pd.DatetimeIndex:
    """`n` dates uniformly spread over `days` from `start`."""
    rng = np.random.default_rng(seed)
    return pd.Timestamp(start) + pd.to_timedelta(rng.integers(0, days, n), unit="D")
