"""Given routes from GPS tracks: GPX and vector files read, and matched to the road graph.

:func:`read_tracks` reads the lines of a GPX file (tracks and routes) or any
vector layer; :func:`snap_track` follows one along the graph as a
:class:`~convoyrisk.routing.Route` that the route metrics score like any other.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import pyogrio
import shapely

from . import settings
from ._errors import InputError, MissingInputError
from .routing import Route, RoutingIndex, no_route_error, routing_index
from .utils import first_line


def read_tracks(path: str | Path) -> list[tuple[str, shapely.LineString]]:
    """Lines from a GPX file (tracks and routes) or a GeoJSON/vector file, in EPSG:4326.

    GPX is read with the standard library (``xml.etree``): each ``<trk>`` (its
    segments joined) and each ``<rte>`` is one line. Other files are read with
    GeoPandas; each LineString feature is one line, MultiLineStrings are joined
    part after part.

    Returns
    -------
    list of (name, LineString)
        The name is the track's ``<name>`` or ``name`` property, else
        ``"<file> #i"``.

    Raises
    ------
    MissingInputError
        If the file does not exist.
    InputError
        If it cannot be parsed or holds no line of two points or more.
    """
    path = Path(path)
    if not path.exists():
        msg = f"Route file {path} does not exist: pass an existing GPX or GeoJSON file."
        raise MissingInputError(msg)
    out = _read_gpx(path) if path.suffix.lower() == ".gpx" else _read_vector_lines(path)
    out = [(n, g) for n, g in out if len(g.coords) >= 2]
    if not out:
        msg = (
            f"Route file {path} holds no track or line of two points or more: "
            "pass a GPX track (<trkpt>) or a GeoJSON LineString."
        )
        raise InputError(msg)
    return out


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _read_gpx(path: Path) -> list[tuple[str, shapely.LineString]]:
    try:
        root = ET.parse(path).getroot()  # noqa: S314 - a local file the user chose
    except ET.ParseError as exc:
        msg = f"Cannot parse GPX file {path}: {exc}. Export the track again as GPX 1.1."
        raise InputError(msg) from exc
    out = []
    for i, item in enumerate(e for e in root if _local(e.tag) in {"trk", "rte"}):
        pts = []
        for n, p in enumerate(
            q
            for q in item.iter()
            if _local(q.tag) in {"trkpt", "rtept"} and {"lat", "lon"} <= q.attrib.keys()
        ):
            try:
                lon, lat = float(p.attrib["lon"]), float(p.attrib["lat"])
            except ValueError as exc:
                msg = (
                    f"GPX file {path}: point {n + 1} of track {i + 1} has lat={p.attrib['lat']!r} "
                    f"lon={p.attrib['lon']!r}, not numbers: fix or remove that point."
                )
                raise InputError(msg) from exc
            if not (abs(lat) <= 90 and abs(lon) <= 180):
                msg = (
                    f"GPX file {path}: point {n + 1} of track {i + 1} (lat={lat}, lon={lon}) "
                    "is out of range: fix or remove that point."
                )
                raise InputError(msg)
            pts.append((lon, lat))
        name = next((c.text for c in item if _local(c.tag) == "name" and c.text), None)
        if len(pts) >= 2:
            out.append((name or f"{path.name} #{i + 1}", shapely.LineString(pts)))
    return out


def _read_vector_lines(path: Path) -> list[tuple[str, shapely.LineString]]:
    try:
        gdf = gpd.read_file(path, engine="pyogrio")
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError, ValueError) as exc:
        msg = f"Cannot read route file {path}: {first_line(exc)}. Pass a GPX or GeoJSON file."
        raise InputError(msg) from exc
    if gdf.crs is None:
        gdf = gdf.set_crs(settings.default_crs)  # GeoJSON without crs member is WGS84
    gdf = gdf.to_crs(settings.default_crs)
    out = []
    for i, (geom, name) in enumerate(
        zip(gdf.geometry, gdf.get("name", pd.Series([None] * len(gdf))), strict=True)
    ):
        if geom is None or geom.is_empty:
            continue
        if geom.geom_type == "LineString":
            line = geom
        elif geom.geom_type == "MultiLineString":
            line = shapely.LineString(np.vstack([np.asarray(p.coords) for p in geom.geoms]))
        else:
            continue
        label = str(name) if isinstance(name, str) and name else f"{path.name} #{i + 1}"
        out.append((label, line))
    return out


def snap_track(
    G: nx.MultiDiGraph,
    track: shapely.LineString,
    *,
    crs: str = settings.default_crs,
    max_offset_m: float = 2000.0,
    spacing_m: float = 100.0,
    name: str = "track",
    index: RoutingIndex | None = None,
) -> Route:
    """Map-match a drawn or recorded track onto the network.

    The track is resampled every `spacing_m`; each point goes to its nearest
    road (shapely STRtree). Consecutive points on one road form a run, driven
    in the direction the points advance along it; a run that only touches a
    road's end within ``spacing_m/2`` (a junction) is dropped. Runs are joined
    by shortest paths. Routes run from node to node: a track that starts or
    ends part-way along a road is extended to that road's end.

    Parameters
    ----------
    track
        The line, in `crs`.
    max_offset_m
        A point farther than this from every road rejects the track.

    Raises
    ------
    InputError
        If the track lies farther than `max_offset_m` from the network, or
        touches too little of it to make a route.
    """
    ix = routing_index(G, index)
    if max_offset_m <= 0 or spacing_m <= 0:
        msg = "`max_offset_m` and `spacing_m` must be positive."
        raise InputError(msg)
    line = gpd.GeoSeries([track], crs=crs).to_crs(G.graph["crs"]).iloc[0]
    n_pts = max(2, math.ceil(line.length / spacing_m) + 1)
    pts = shapely.line_interpolate_point(line, np.linspace(0.0, line.length, n_pts))
    forward = ix.compiled.forward_edges
    geoms = ix.compiled.geoms[forward]
    tree = shapely.STRtree(geoms)
    (pi, gi), dist = tree.query_nearest(
        pts, max_distance=max_offset_m, return_distance=True, all_matches=False
    )
    if len(pi) < n_pts:
        missed = np.setdiff1d(np.arange(n_pts), pi)
        first_km = float(missed[0]) / (n_pts - 1) * line.length / 1000.0
        far = shapely.distance(pts[missed], shapely.MultiLineString(list(geoms)))
        msg = (
            f"Route {name!r} lies off the road network: {len(missed)} of {n_pts} track points "
            f"(the first at km {first_km:.1f} of the track) are more than {max_offset_m:g} m "
            f"from any road, up to {float(np.max(far)) / 1000:.1f} km. Check the file's "
            "coordinates, pass `--roads` that cover it, or raise `--max-track-offset`."
        )
        raise InputError(msg)
    order = np.argsort(pi, kind="stable")
    edge_pos = forward[gi[order]]
    offset = shapely.line_locate_point(geoms[gi[order]], pts[pi[order]])
    del dist
    runs = _runs(ix.road_id[edge_pos], offset, edge_pos, ix.length_m, tol=spacing_m / 2.0)
    if not runs:
        msg = (
            f"Route {name!r} touches the network only at junctions ({line.length:.0f} m long): "
            "draw it along the roads it follows."
        )
        raise InputError(msg)
    return _join_runs(ix, runs, pts_xy=shapely.get_coordinates(pts), name=name)


@dataclass
class _Run:
    edge: int  # forward edge position
    first: float  # offsets (m from u) of the first and last points on it
    last: float
    start: int  # index of the first and last track point of the run
    stop: int


def _runs(
    roads: np.ndarray, offset: np.ndarray, edge_pos: np.ndarray, lengths: np.ndarray, tol: float
) -> list[_Run]:
    runs: list[_Run] = []
    i = 0
    n = len(roads)
    while i < n:
        j = i
        while j + 1 < n and roads[j + 1] == roads[i]:
            j += 1
        e = int(edge_pos[i])
        seg = offset[i : j + 1]
        length = float(lengths[e])
        at_end = bool(seg.max() <= tol or seg.min() >= length - tol)
        if not at_end or (length <= 2 * tol and j > i):
            if runs and runs[-1].edge == e:
                runs[-1].last, runs[-1].stop = float(seg[-1]), j
            else:
                runs.append(_Run(e, float(seg[0]), float(seg[-1]), i, j))
        i = j + 1
    return runs


def _join_runs(ix: RoutingIndex, runs: list[_Run], pts_xy: np.ndarray, name: str) -> Route:
    G = ix.G
    by_road: dict[tuple[int, bool], int] = {
        (int(ix.road_id[i]), bool(ix.reversed[i])): i for i in range(len(ix.edges))
    }
    weight = ix.length_m / 1000.0
    positions: list[int] = []
    here: int | None = None
    for r in runs:
        u, v, _ = ix.edges[r.edge]
        if abs(r.last - r.first) > 1e-6:
            backwards = r.last < r.first
        else:  # one point: the end nearer the track point before it is where we enter
            ref = pts_xy[r.start - 1] if r.start > 0 else None
            if ref is None:
                ref = pts_xy[min(r.stop + 1, len(pts_xy) - 1)]
                nearer_u = _dist(G, u, ref) < _dist(G, v, ref)
                backwards = nearer_u  # the next point is near u: we leave at u
            else:
                backwards = _dist(G, v, ref) < _dist(G, u, ref)
        key = (int(ix.road_id[r.edge]), backwards)
        e = by_road.get(key, r.edge)  # a one-way road is kept in its own direction
        entry = ix.node_index(ix.edges[e][0])
        if here is not None and here != entry:
            leg = ix.shortest(weight, here, entry)
            if leg is None:
                raise no_route_error(G, int(ix.nodes[here]), int(ix.nodes[entry]), avoided=False)
            positions.extend(leg)
        positions.append(e)
        here = ix.node_index(ix.edges[e][1])
    return ix.route(positions, name=name)


def _dist(G: nx.MultiDiGraph, node: int, xy: np.ndarray) -> float:
    return math.hypot(G.nodes[node]["x"] - xy[0], G.nodes[node]["y"] - xy[1])


# --------------------------------------------------------------------------------------
# metrics
# --------------------------------------------------------------------------------------
