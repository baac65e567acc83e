"""Incidents onto road edges: nearest edge, distance to it, offset along it."""

from __future__ import annotations

import geopandas as gpd
import networkx as nx
import numpy as np
import shapely

from ._errors import InputError
from .network import edges_gdf


def snap_incidents(
    G: nx.MultiDiGraph,
    incidents: gpd.GeoDataFrame,
    *,
    max_distance_m: float = 5_000.0,
) -> gpd.GeoDataFrame:
    """Snap each incident to the nearest road edge within `max_distance_m`.

    Parameters
    ----------
    G
        Graph from :func:`convoyrisk.network.graph_from_gdf`.
    incidents
        Points with a CRS (e.g. :attr:`IncidentTable.incidents`).
    max_distance_m
        Incidents farther than this from every road get ``status="too_far"``.

    Returns
    -------
    geopandas.GeoDataFrame
        The incidents, aligned on the input's index, in the graph's CRS, with
        ``status`` ("snapped" or "too_far"), ``u``, ``v``, ``key`` (the forward
        edge), ``snap_distance_m``, ``offset_m`` (metres from ``u`` along the
        edge geometry) and ``snap_x``, ``snap_y`` (the point on the edge).
        Unsnapped rows have ``u = v = key = -1`` and NaN distances.
    """
    if incidents.crs is None:
        msg = "`incidents` has no CRS: set one (e.g. `gdf.set_crs('EPSG:4326')`)."
        raise InputError(msg)
    if max_distance_m <= 0:
        msg = f"`max_distance_m` must be positive, got {max_distance_m}."
        raise InputError(msg)
    edges = edges_gdf(G)
    lines = edges.geometry.to_numpy()
    points = incidents.to_crs(G.graph["crs"])
    pts = points.geometry.to_numpy()
    tree = shapely.STRtree(lines)
    (pi, ei), dist = tree.query_nearest(
        pts, max_distance=max_distance_m, return_distance=True, all_matches=False
    )
    n = len(points)
    u = np.full(n, -1, dtype=np.int64)
    v = np.full(n, -1, dtype=np.int64)
    key = np.full(n, -1, dtype=np.int64)
    snap_distance = np.full(n, np.nan)
    offset = np.full(n, np.nan)
    snap_xy = np.full((n, 2), np.nan)
    index = edges.index.to_numpy()
    if len(pi):
        uvk = np.array([index[e] for e in ei], dtype=np.int64).reshape(-1, 3)
        u[pi], v[pi], key[pi] = uvk[:, 0], uvk[:, 1], uvk[:, 2]
        snap_distance[pi] = dist
        offset[pi] = shapely.line_locate_point(lines[ei], pts[pi])
        snap_xy[pi] = shapely.get_coordinates(shapely.line_interpolate_point(lines[ei], offset[pi]))
    out = points.copy()
    out["status"] = np.where(u >= 0, "snapped", "too_far")
    out["u"], out["v"], out["key"] = u, v, key
    out["snap_distance_m"] = snap_distance
    out["offset_m"] = offset
    out["snap_x"], out["snap_y"] = snap_xy[:, 0], snap_xy[:, 1]
    return out
