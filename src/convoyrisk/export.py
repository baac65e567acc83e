"""Field outputs: GPX for vehicle GPS, KML/KMZ for Google Earth and ATAK, GeoPackage, GeoParquet.

Every writer takes the explicit results of a run (the graph `G`, the scored
segments `risk`, the ranked `routes`, the `places`, the `rejects`) and writes
one file atomically: a failed write leaves no file behind and never a half one.
:func:`write_output` picks the writer from the file's extension (``.pdf`` goes
to :mod:`convoyrisk.briefing`).

GPX and KML are in WGS84 longitude/latitude (their standards allow nothing
else); GeoPackage and GeoParquet keep the graph's metric CRS.
"""

from __future__ import annotations

import html
import json
import math
import zipfile
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from xml.etree import ElementTree as ET

import geopandas as gpd
import networkx as nx
import numpy as np
import numpy.typing as npt
import pandas as pd
import pyogrio
import shapely

from . import settings
from ._errors import InputError
from .incidents import IncidentTable
from .maps import CLASS_COLOURS, INSUFFICIENT_COLOUR, ROUTE_COLOURS, risk_map, save_map
from .risk import RiskResult
from .routing import Route, route_geometry, routes_gdf
from .utils import atomic_path

GPX_NS = "http://www.topografix.com/GPX/1/1"
KML_NS = "http://www.opengis.net/kml/2.2"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"

OUTPUT_FORMATS = {
    ".gpx": "GPX 1.1",
    ".kml": "KML",
    ".kmz": "KMZ",
    ".pdf": "PDF briefing",
    ".gpkg": "GeoPackage",
    ".parquet": "GeoParquet",
}
"""File extensions :func:`write_output` writes, and what each holds."""

LAYERS = ("segments", "routes", "incidents", "rejects", "places", "parameters")
"""Layers (and the one attribute table, ``parameters``) of the GeoPackage."""

NO_CLASS_COLOUR = INSUFFICIENT_COLOUR
"""Colour of a segment in none of the four classes (e.g. "insufficient data"): the maps' grey."""

MAX_ROUTE_POINTS = 250
"""Most route points in a GPX ``<rte>`` (older Garmin units keep no more)."""


# --------------------------------------------------------------------------------------
# shared helpers
# --------------------------------------------------------------------------------------


def route_label(route: Route) -> str:
    """A route's name for a GPS or a layer list: rank and the places it passes.

    Examples
    --------
    >>> route_label(Route([], [], {"rank": 2, "via": ["Anéfis", "Bourem"]}))
    'Route 2 via Anéfis, Bourem'
    >>> route_label(Route([], [], {"rank": 1, "via": []}, name="convoy.gpx"))
    'Route 1 (convoy.gpx) direct'
    """
    m = route.metrics
    named = "" if route.name in {"alternative", "pareto"} else f" ({route.name})"
    via = ", ".join(m.get("via", []))
    return f"Route {m.get('rank', '?')}{named} " + (f"via {via}" if via else "direct")


def route_summary(route: Route, level: float = 0.9) -> str:
    """One line of a route's metrics for a driver: length, days, P(≥1 incident) and interval.

    `level` is the credible level of the interval (``RiskParams.credible_level``).
    """
    m = route.metrics
    return (
        f"{m['length_km']:.0f} km, {m['travel_days']:.1f} days; "
        f"P(≥1 incident) {m['p_incident']:.1%} "
        f"({level:.0%} interval {m['p_incident_low']:.1%}–{m['p_incident_high']:.1%}); "
        f"expected incidents {m['expected_incidents']:.3f}"
    )


def _lonlat(geoms: gpd.GeoSeries) -> gpd.GeoSeries:
    return geoms.to_crs(settings.display_crs)


def _segment_points(risk: RiskResult, segment_ids: Sequence[int]) -> dict[int, tuple[float, float]]:
    """Midpoint (lon, lat) of each listed segment."""
    segs = risk.segments.set_index("segment_id")
    wanted = [s for s in dict.fromkeys(segment_ids) if s in segs.index]
    if not wanted:
        return {}
    mids = gpd.GeoSeries(
        shapely.line_interpolate_point(segs.loc[wanted].geometry.to_numpy(), 0.5, normalized=True),
        crs=risk.segments.crs,
    )
    xy = shapely.get_coordinates(_lonlat(mids).to_numpy())
    return {int(s): (float(x), float(y)) for s, (x, y) in zip(wanted, xy, strict=True)}


def _node_lonlat(G: nx.MultiDiGraph, nodes: Sequence[int]) -> dict[int, tuple[float, float]]:
    pts = gpd.GeoSeries(
        gpd.points_from_xy([G.nodes[n]["x"] for n in nodes], [G.nodes[n]["y"] for n in nodes]),
        crs=G.graph["crs"],
    )
    xy = shapely.get_coordinates(_lonlat(pts).to_numpy())
    return {int(n): (float(x), float(y)) for n, (x, y) in zip(nodes, xy, strict=True)}


def _road_midpoints(G: nx.MultiDiGraph, road_ids: Sequence[int]) -> dict[int, tuple[float, float]]:
    geoms: dict[int, shapely.Geometry] = {}
    for _, _, d in G.edges(data=True):
        rid = int(d["road_id"])
        if rid in road_ids and rid not in geoms:
            geoms[rid] = shapely.line_interpolate_point(d["geometry"], 0.5, normalized=True)
    if not geoms:
        return {}
    pts = _lonlat(gpd.GeoSeries(list(geoms.values()), crs=G.graph["crs"]))
    xy = shapely.get_coordinates(pts.to_numpy())
    return {rid: (float(x), float(y)) for rid, (x, y) in zip(geoms, xy, strict=True)}


def _route_lines(G: nx.MultiDiGraph, routes: Sequence[Route]) -> list[np.ndarray]:
    """Each route as an array of (lon, lat) in travel order."""
    if not routes:
        return []
    lines = gpd.GeoSeries([route_geometry(G, r) for r in routes], crs=G.graph["crs"])
    return [np.asarray(g.coords) for g in _lonlat(lines)]


def hazard_points(
    G: nx.MultiDiGraph,
    risk: RiskResult,
    routes: Sequence[Route],
    chokepoints: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """The points a driver should be warned about, named for a GPS screen.

    Each route's worst segments (from its ``worst_segments`` metric) become
    ``"R1 km 112 SEVERE"`` at the segment's midpoint; a place every route must
    pass becomes ``"Anéfis: every route passes here"``, and a road every route
    must take ``"Kidal–Anéfis road: every route takes it"`` at its middle.

    Returns
    -------
    list of dict
        ``name``, ``lon``, ``lat`` (degrees, WGS84), ``desc``, ``kind``
        (``"worst segment"`` or ``"chokepoint"``) and ``risk_class`` (empty for
        chokepoints).
    """
    out: list[dict[str, Any]] = []
    wanted = [int(w["segment_id"]) for r in routes for w in r.metrics.get("worst_segments", [])]
    mids = _segment_points(risk, wanted)
    for r in routes:
        rank = r.metrics.get("rank", "?")
        for w in r.metrics.get("worst_segments", []):
            sid = int(w["segment_id"])
            if sid not in mids:
                continue
            lon, lat = mids[sid]
            cls = str(w["risk_class"])
            out.append(
                {
                    "name": f"R{rank} km {w['chainage_km']:.0f} {cls.upper()}",
                    "lon": lon,
                    "lat": lat,
                    "desc": (
                        f"{route_label(r)}: segment {sid} at km {w['chainage_km']:g}, risk "
                        f"{cls}, {w['rate']:.4f} incidents per km per 30 days"
                    ),
                    "kind": "worst segment",
                    "risk_class": cls,
                }
            )
    ch = chokepoints or {}
    nodes = [int(c["node"]) for c in ch.get("cut_nodes", [])]
    at = _node_lonlat(G, nodes) if nodes else {}
    for c in ch.get("cut_nodes", []):
        name = str(c.get("name") or f"node {c['node']}")
        lon, lat = at[int(c["node"])]
        out.append(
            {
                "name": f"{name}: every route passes here",
                "lon": lon,
                "lat": lat,
                "desc": f"Chokepoint: every route between the two ends passes {name}.",
                "kind": "chokepoint",
                "risk_class": "",
            }
        )
    roads = ch.get("cut_roads", [])
    mid = _road_midpoints(G, [int(c["road_id"]) for c in roads]) if roads else {}
    for c in roads:
        if int(c["road_id"]) not in mid:
            continue
        lon, lat = mid[int(c["road_id"])]
        between = "–".join(str(b) for b in c.get("between", []))
        out.append(
            {
                "name": f"{between} road: every route takes it",
                "lon": lon,
                "lat": lat,
                "desc": (
                    f"Chokepoint: every route takes {c.get('name') or 'the road'} "
                    f"{between} ({c['length_km']:.0f} km)."
                ),
                "kind": "chokepoint",
                "risk_class": "",
            }
        )
    return out


def _check_routes(routes: Sequence[Route], what: str) -> None:
    for r in routes:
        if "rank" not in r.metrics:
            msg = f"{what}: routes must be scored first (`score_routes`), a route has no rank."
            raise InputError(msg)


# --------------------------------------------------------------------------------------
# GPX 1.1
# --------------------------------------------------------------------------------------


def _gpx_point(parent: ET.Element, tag: str, lon: float, lat: float) -> ET.Element:
    return ET.SubElement(parent, tag, lat=f"{lat:.7f}", lon=f"{lon:.7f}")


def _sub(parent: ET.Element, tag: str, text: str) -> ET.Element:
    el = ET.SubElement(parent, tag)
    el.text = text
    return el


def route_points(
    G: nx.MultiDiGraph, route: Route, max_points: int = MAX_ROUTE_POINTS
) -> npt.NDArray[np.float64]:
    """At most `max_points` vertices of a route, (lon, lat), for a GPS ``<rte>``.

    The route's own vertices, thinned by Douglas–Peucker in the graph's metric
    CRS with a tolerance doubled from 10 m until few enough remain: bends are
    kept, straight runs lose their inner points, both ends stay.
    """
    line = route_geometry(G, route)
    tol = 10.0
    thin: shapely.Geometry = line
    while shapely.get_num_coordinates(thin) > max(max_points, 2):
        thin = line.simplify(tol, preserve_topology=False)
        tol *= 2.0
    pts = _lonlat(gpd.GeoSeries([thin], crs=G.graph["crs"]))
    return np.asarray(pts.iloc[0].coords, dtype=np.float64)


def gpx_document(
    G: nx.MultiDiGraph,
    risk: RiskResult,
    routes: Sequence[Route],
    *,
    chokepoints: Mapping[str, Any] | None = None,
    title: str = "convoyrisk routes",
    max_route_points: int = MAX_ROUTE_POINTS,
) -> bytes:
    """The routes and the points to watch as a GPX 1.1 document (UTF-8 bytes).

    Each route is written twice, as GPS tools expect: a ``<rte>`` of at most
    `max_route_points` points (for turn-by-turn navigation) and a ``<trk>`` with
    every vertex of its geometry (to follow exactly). Both are named by
    :func:`route_label`. The points of :func:`hazard_points` come first as
    ``<wpt>``.
    """
    _check_routes(routes, "GPX")
    ET.register_namespace("", GPX_NS)
    ET.register_namespace("xsi", XSI_NS)
    root = ET.Element(
        f"{{{GPX_NS}}}gpx",
        {
            "version": "1.1",
            "creator": f"convoyrisk {_version()}",
            f"{{{XSI_NS}}}schemaLocation": f"{GPX_NS} {GPX_NS}/gpx.xsd",
        },
    )
    q = f"{{{GPX_NS}}}"
    meta = ET.SubElement(root, q + "metadata")
    _sub(meta, q + "name", title)
    _sub(
        meta,
        q + "desc",
        f"Risk as of {risk.as_of.date().isoformat()}. Reported incidents only; "
        "positions and road geometry may be approximate.",
    )
    _sub(meta, q + "time", datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    lines = _route_lines(G, routes)
    if lines:
        allxy = np.vstack(lines)
        ET.SubElement(
            meta,
            q + "bounds",
            minlat=f"{allxy[:, 1].min():.7f}",
            minlon=f"{allxy[:, 0].min():.7f}",
            maxlat=f"{allxy[:, 1].max():.7f}",
            maxlon=f"{allxy[:, 0].max():.7f}",
        )
    for p in hazard_points(G, risk, routes, chokepoints):
        w = _gpx_point(root, q + "wpt", p["lon"], p["lat"])
        _sub(w, q + "name", p["name"])
        _sub(w, q + "desc", p["desc"])
        _sub(w, q + "sym", "Danger Area" if p["kind"] == "worst segment" else "Flag, Red")
        _sub(w, q + "type", p["kind"])
    for r in routes:
        rte = ET.SubElement(root, q + "rte")
        _sub(rte, q + "name", route_label(r))
        _sub(rte, q + "desc", route_summary(r, risk.params.credible_level))
        _sub(rte, q + "number", str(r.metrics["rank"]))
        for lon, lat in route_points(G, r, max_route_points):
            _gpx_point(rte, q + "rtept", lon, lat)
    for r, xy in zip(routes, lines, strict=True):
        trk = ET.SubElement(root, q + "trk")
        _sub(trk, q + "name", route_label(r))
        _sub(trk, q + "desc", route_summary(r, risk.params.credible_level))
        _sub(trk, q + "number", str(r.metrics["rank"]))
        seg = ET.SubElement(trk, q + "trkseg")
        for lon, lat in xy:
            _gpx_point(seg, q + "trkpt", lon, lat)
    ET.indent(root, space=" ")
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True)) + b"\n"


def write_gpx(
    path: str | Path,
    G: nx.MultiDiGraph,
    risk: RiskResult,
    routes: Sequence[Route],
    *,
    chokepoints: Mapping[str, Any] | None = None,
    title: str = "convoyrisk routes",
) -> Path:
    """Write :func:`gpx_document` to `path` atomically."""
    path = Path(path)
    doc = gpx_document(G, risk, routes, chokepoints=chokepoints, title=title)
    with atomic_path(path) as tmp:
        tmp.write_bytes(doc)
    return path


# --------------------------------------------------------------------------------------
# KML / KMZ
# --------------------------------------------------------------------------------------


def kml_colour(hex_rgb: str, alpha: float = 1.0) -> str:
    """A ``#rrggbb`` colour as KML's ``aabbggrr``.

    Examples
    --------
    >>> kml_colour("#a50026")
    'ff2600a5'
    >>> kml_colour("#1a9850", 0.5)
    '8050981a'
    """
    r, g, b = hex_rgb[1:3], hex_rgb[3:5], hex_rgb[5:7]
    return f"{round(alpha * 255):02x}{b}{g}{r}".lower()


def _style_id(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text)


def _kml_styles(doc: ET.Element, q: str, n_routes: int, classes: Sequence[str]) -> None:
    def style(sid: str) -> ET.Element:
        return ET.SubElement(doc, q + "Style", id=sid)

    for i, cls in enumerate(classes):
        ls = ET.SubElement(style("class_" + _style_id(cls)), q + "LineStyle")
        _sub(ls, q + "color", kml_colour(CLASS_COLOURS.get(cls, NO_CLASS_COLOUR)))
        _sub(ls, q + "width", f"{2 + i}")
    for i in range(n_routes):
        ls = ET.SubElement(style(f"route_{i + 1}"), q + "LineStyle")
        _sub(ls, q + "color", kml_colour(ROUTE_COLOURS[i % len(ROUTE_COLOURS)], 0.7))
        _sub(ls, q + "width", f"{max(10 - 2 * i, 4)}")
    for sid, colour, scale in (
        ("incident", "#7b3294", 1.0),
        ("town", "#333333", 0.8),
        ("well", "#2166ac", 0.6),
        ("hazard", "#a50026", 1.1),
        ("chokepoint", "#000000", 1.1),
    ):
        st = style(sid)
        icon = ET.SubElement(st, q + "IconStyle")
        _sub(icon, q + "color", kml_colour(colour))
        _sub(icon, q + "scale", f"{scale:g}")
        lab = ET.SubElement(st, q + "LabelStyle")
        _sub(lab, q + "scale", "0.8" if sid != "incident" else "0")


def _placemark(
    folder: ET.Element,
    q: str,
    name: str,
    style: str,
    *,
    description: str = "",
    data: Mapping[str, Any] | None = None,
) -> ET.Element:
    pm = ET.SubElement(folder, q + "Placemark")
    _sub(pm, q + "name", name)
    if description:
        _sub(pm, q + "description", description)
    _sub(pm, q + "styleUrl", "#" + style)
    if data:
        ext = ET.SubElement(pm, q + "ExtendedData")
        for k, v in data.items():
            d = ET.SubElement(ext, q + "Data", name=k)
            _sub(d, q + "value", "" if v is None else str(v))
    return pm


def _coords_text(xy: np.ndarray) -> str:
    return " ".join(f"{x:.7f},{y:.7f}" for x, y in xy)


def _line(pm: ET.Element, q: str, geom: shapely.Geometry) -> None:
    parts = list(shapely.get_parts(geom))
    parent = ET.SubElement(pm, q + "MultiGeometry") if len(parts) > 1 else pm
    for part in parts:
        ls = ET.SubElement(parent, q + "LineString")
        _sub(ls, q + "tessellate", "1")
        _sub(ls, q + "coordinates", _coords_text(np.asarray(part.coords)))


def _point(pm: ET.Element, q: str, lon: float, lat: float) -> None:
    pt = ET.SubElement(pm, q + "Point")
    _sub(pt, q + "coordinates", f"{lon:.7f},{lat:.7f}")


def _html_table(rows: Sequence[tuple[str, Any]]) -> str:
    """An HTML table of (label, value) rows, each value escaped (user text stays text)."""
    cells = "".join(
        f"<tr><th align='left'>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
        for k, v in rows
        if v is not None and str(v) != ""
    )
    return f"<table>{cells}</table>"


def segment_runs(risk: RiskResult) -> gpd.GeoDataFrame:
    """Consecutive segments of one road in one risk class, merged into one line.

    Keeps KML small (a placemark per run, not per 1 km segment) while every
    segment keeps its class. Columns ``road_id``, ``risk_class``, ``start_m``,
    ``end_m`` (metres along the road), ``rate_max`` (incidents per km per 30
    days) and ``n_segments``; geometry in the segments' CRS.
    """
    segs = risk.segments.sort_values(["road_id", "start_m"])
    cls = segs["risk_class"].astype(str).to_numpy()
    road = segs["road_id"].to_numpy()
    new = np.ones(len(segs), dtype=bool)
    new[1:] = (cls[1:] != cls[:-1]) | (road[1:] != road[:-1])
    run = np.cumsum(new) - 1
    groups = np.split(segs.geometry.to_numpy(), np.flatnonzero(new)[1:]) if len(segs) else []
    merged = [
        g[0] if len(g) == 1 else shapely.line_merge(shapely.multilinestrings(list(g)))
        for g in groups
    ]
    frame = pd.DataFrame(
        {
            "road_id": road,
            "risk_class": cls,
            "start_m": segs["start_m"].to_numpy(),
            "end_m": segs["end_m"].to_numpy() if "end_m" in segs else segs["start_m"].to_numpy(),
            "rate": segs["rate"].to_numpy(),
            "run": run,
        }
    )
    agg = frame.groupby("run").agg(
        road_id=("road_id", "first"),
        risk_class=("risk_class", "first"),
        start_m=("start_m", "min"),
        end_m=("end_m", "max"),
        rate_max=("rate", "max"),
        n_segments=("rate", "size"),
    )
    return gpd.GeoDataFrame(agg.reset_index(drop=True), geometry=merged, crs=risk.segments.crs)


def _class_order(classes: Sequence[str]) -> list[str]:
    known = [c for c in CLASS_COLOURS if c in classes]
    return [c for c in dict.fromkeys(classes) if c not in CLASS_COLOURS] + known


def kml_document(
    G: nx.MultiDiGraph,
    risk: RiskResult,
    routes: Sequence[Route] = (),
    *,
    places: gpd.GeoDataFrame | None = None,
    chokepoints: Mapping[str, Any] | None = None,
    title: str = "convoyrisk",
) -> bytes:
    """Routes, risk-coloured roads, incidents and places as a KML 2.2 document.

    Folders (layers in Google Earth, ATAK and QGIS): ``Routes``, ``Warnings``
    (:func:`hazard_points`), ``Risk: <class>`` (one per class, roads merged by
    :func:`segment_runs`), ``Incidents`` (each with an HTML description whose
    user-given text is escaped, and the fields as ``ExtendedData``) and
    ``Places``. Styles are shared, defined once in the document.
    """
    _check_routes(routes, "KML")
    ET.register_namespace("", KML_NS)
    q = f"{{{KML_NS}}}"
    root = ET.Element(q + "kml")
    doc = ET.SubElement(root, q + "Document")
    _sub(doc, q + "name", title)
    _sub(
        doc,
        q + "description",
        f"Risk as of {risk.as_of.date().isoformat()}, incidents per km per 30 days. "
        "Reported incidents only; positions and road geometry may be approximate.",
    )
    runs = segment_runs(risk)
    classes = _class_order(list(runs["risk_class"].unique()))
    _kml_styles(doc, q, len(routes), classes)

    folder = ET.SubElement(doc, q + "Folder") if routes else doc
    if routes:
        _sub(folder, q + "name", "Routes")
    for i, (r, xy) in enumerate(zip(routes, _route_lines(G, routes), strict=True)):
        m = r.metrics
        pm = _placemark(
            folder,
            q,
            route_label(r),
            f"route_{i + 1}",
            description=html.escape(route_summary(r, risk.params.credible_level)),
            data={
                "rank": m["rank"],
                "length_km": m["length_km"],
                "travel_days": m["travel_days"],
                "expected_incidents": f"{m['expected_incidents']:.5f}",
                "p_incident": f"{m['p_incident']:.4f}",
                "p_incident_low": f"{m['p_incident_low']:.4f}",
                "p_incident_high": f"{m['p_incident_high']:.4f}",
                "via": ", ".join(m.get("via", [])),
            },
        )
        _line(pm, q, shapely.LineString(xy))

    hazards = hazard_points(G, risk, routes, chokepoints)
    if hazards:
        folder = ET.SubElement(doc, q + "Folder")
        _sub(folder, q + "name", "Warnings")
        for p in hazards:
            pm = _placemark(
                folder,
                q,
                p["name"],
                "hazard" if p["kind"] == "worst segment" else "chokepoint",
                description=html.escape(p["desc"]),
            )
            _point(pm, q, p["lon"], p["lat"])

    runs_ll = runs.to_crs(settings.display_crs)
    road_names = {int(d["road_id"]): str(d.get("name") or "") for _, _, d in G.edges(data=True)}
    for cls in reversed(classes):
        folder = ET.SubElement(doc, q + "Folder")
        _sub(folder, q + "name", f"Risk: {cls}")
        part = runs_ll[runs_ll["risk_class"] == cls]
        for row in part.itertuples(index=False):
            rid = int(row.road_id)
            name = road_names.get(rid) or f"road {rid}"
            km = f"km {row.start_m / 1000:.0f}–{row.end_m / 1000:.0f}"
            pm = _placemark(
                folder,
                q,
                f"{name} {km}: {cls}",
                "class_" + _style_id(cls),
                data={
                    "road_id": rid,
                    "risk_class": cls,
                    "start_km": round(row.start_m / 1000, 3),
                    "end_km": round(row.end_m / 1000, 3),
                    "rate_max_per_km_30d": f"{row.rate_max:.5f}",
                },
            )
            _line(pm, q, row.geometry)

    _kml_incidents(doc, q, risk.incidents)
    _kml_places(doc, q, places)
    ET.indent(root, space=" ")
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True)) + b"\n"


def _text(value: Any) -> str:  # noqa: ANN401 - any cell value
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return ""
    if isinstance(value, pd.Timestamp):
        return value.date().isoformat()
    return str(value)


def _kml_incidents(doc: ET.Element, q: str, incidents: gpd.GeoDataFrame) -> None:
    has = ~(incidents.geometry.is_empty | incidents.geometry.isna())
    pts = incidents[has.to_numpy()]
    if pts.empty:
        return
    folder = ET.SubElement(doc, q + "Folder")
    _sub(folder, q + "name", "Incidents")
    xy = shapely.get_coordinates(_lonlat(pts.geometry).to_numpy())
    fields = (
        *("event_id", "date", "type", "killed", "injured", "location", "precision_m"),
        *("source", "notes", "used"),
    )
    for (lon, lat), (_, row) in zip(xy, pts.iterrows(), strict=True):
        values = {f: _text(row.get(f)) for f in fields}
        name = f"{values['date']} {values['type'] or 'incident'}"
        rows = [(f.replace("_", " "), values[f]) for f in fields]
        pm = _placemark(folder, q, name, "incident", description=_html_table(rows), data=values)
        _point(pm, q, float(lon), float(lat))


def _kml_places(doc: ET.Element, q: str, places: gpd.GeoDataFrame | None) -> None:
    if places is None or places.empty:
        return
    folder = ET.SubElement(doc, q + "Folder")
    _sub(folder, q + "name", "Places")
    pts = places[~(places.geometry.is_empty | places.geometry.isna()).to_numpy()]
    xy = shapely.get_coordinates(_lonlat(pts.geometry).to_numpy())
    kinds = pts["kind"].astype(str) if "kind" in pts else pd.Series([""] * len(pts))
    for (lon, lat), name, kind in zip(xy, pts["name"].astype(str), kinds, strict=True):
        pm = _placemark(folder, q, name, "well" if kind == "well" else "town", data={"kind": kind})
        _point(pm, q, float(lon), float(lat))


def write_kml(
    path: str | Path,
    G: nx.MultiDiGraph,
    risk: RiskResult,
    routes: Sequence[Route] = (),
    *,
    places: gpd.GeoDataFrame | None = None,
    chokepoints: Mapping[str, Any] | None = None,
    title: str = "convoyrisk",
) -> Path:
    """Write :func:`kml_document` to `path` atomically: ``.kmz`` zips it as ``doc.kml``."""
    path = Path(path)
    doc = kml_document(G, risk, routes, places=places, chokepoints=chokepoints, title=title)
    with atomic_path(path) as tmp:
        if path.suffix.lower() == ".kmz":
            with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as z:
                z.writestr("doc.kml", doc)
        else:
            tmp.write_bytes(doc)
    return path


# --------------------------------------------------------------------------------------
# GeoPackage and GeoParquet
# --------------------------------------------------------------------------------------


def _flat(frame: pd.DataFrame) -> pd.DataFrame:
    """Columns GDAL can store: categories as text, lists and dicts as JSON text."""
    out = frame.copy()
    geometry = out.geometry.name if isinstance(out, gpd.GeoDataFrame) else None
    for col in out.columns:
        if col == geometry:
            continue
        s = out[col]
        if isinstance(s.dtype, pd.CategoricalDtype):
            out[col] = s.astype(str)
        elif s.dtype == object and s.map(lambda v: isinstance(v, list | dict | tuple)).any():
            out[col] = s.map(lambda v: json.dumps(v, ensure_ascii=False, default=str))
    return out


def run_parameters(
    risk: RiskResult, info: Mapping[str, Any] | None = None, sources: Sequence[str] = ()
) -> pd.DataFrame:
    """The run's parameters as a two-column table (``key``, ``value`` as JSON text)."""
    meta = risk.describe()
    params = meta.pop("params")
    rows = [(k, v) for k, v in meta.items()]
    rows += [(f"params.{k}", v) for k, v in params.items()]
    rows += [(f"routing.{k}", v) for k, v in (info or {}).items() if k != "chokepoints"]
    rows += [("sources", list(sources)), ("convoyrisk_version", _version())]
    return pd.DataFrame(
        {
            "key": [k for k, _ in rows],
            "value": [json.dumps(v, ensure_ascii=False, default=str) for _, v in rows],
        }
    )


def output_layers(
    G: nx.MultiDiGraph,
    risk: RiskResult,
    routes: Sequence[Route] = (),
    *,
    places: gpd.GeoDataFrame | None = None,
    rejects: pd.DataFrame | None = None,
    info: Mapping[str, Any] | None = None,
    sources: Sequence[str] = (),
) -> dict[str, pd.DataFrame]:
    """The layers of a run's GeoPackage, by name (see :data:`LAYERS`).

    ``segments``, ``routes`` (flat metrics; ``profile`` left out),
    ``incidents`` (as placed, with why each was or was not used) and
    ``places`` are GeoDataFrames in the graph's CRS; ``rejects`` (input rows
    that could not be used, with the reason) and ``parameters`` are tables.
    """
    crs = G.graph["crs"]
    layers: dict[str, pd.DataFrame] = {"segments": _flat(risk.segments)}
    if routes:
        rg = routes_gdf(G, list(routes))
        ws = [
            "; ".join(
                f"{w['segment_id']}@km{w['chainage_km']:g}:{w['risk_class']}"
                for w in r.metrics.get("worst_segments", [])
            )
            for r in routes
        ]
        rg["worst_segments"] = ws
        rg["label"] = [route_label(r) for r in routes]
        layers["routes"] = _flat(rg)
    layers["incidents"] = _flat(risk.incidents.to_crs(crs))
    if rejects is not None:
        layers["rejects"] = _flat(pd.DataFrame(rejects))
    if places is not None and not places.empty:
        layers["places"] = _flat(places.to_crs(crs))
    layers["parameters"] = run_parameters(risk, info, sources)
    return layers


def write_geopackage(
    path: str | Path,
    G: nx.MultiDiGraph,
    risk: RiskResult,
    routes: Sequence[Route] = (),
    *,
    places: gpd.GeoDataFrame | None = None,
    rejects: pd.DataFrame | None = None,
    info: Mapping[str, Any] | None = None,
    sources: Sequence[str] = (),
) -> Path:
    """Write every layer of :func:`output_layers` into one GeoPackage, atomically.

    Read a layer back with ``pyogrio.read_dataframe(path, layer="routes")``;
    tables without geometry (``rejects``, ``parameters``) come back as plain
    DataFrames.
    """
    path = Path(path)
    layers = output_layers(
        G, risk, routes, places=places, rejects=rejects, info=info, sources=sources
    )
    with atomic_path(path) as tmp:
        for name, frame in layers.items():  # tables without geometry go in as attribute tables
            pyogrio.write_dataframe(frame, tmp, layer=name, driver="GPKG")
    return path


def write_geoparquet(path: str | Path, frame: gpd.GeoDataFrame) -> Path:
    """Write one layer as GeoParquet, atomically (needs pyarrow)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        try:
            frame.to_parquet(tmp)
        except ImportError as exc:
            msg = f"Writing {path} needs pyarrow: `pip install pyarrow`, or choose .gpkg."
            raise InputError(msg) from exc
    return path


# --------------------------------------------------------------------------------------
# one dispatch for the command line
# --------------------------------------------------------------------------------------


def output_format(path: str | Path) -> str:
    """The extension of `path` in lower case, if convoyrisk can write it (``.html`` too).

    Raises
    ------
    InputError
        For any other extension, naming the ones that work.

    Examples
    --------
    >>> output_format("out/Briefing.PDF")
    '.pdf'
    """
    ext = Path(path).suffix.lower()
    if ext != ".html" and ext not in OUTPUT_FORMATS:
        msg = (
            f"Cannot write {path}: the extension must be one of "
            f"{', '.join(['.html', *OUTPUT_FORMATS])}."
        )
        raise InputError(msg)
    return ext


def write_output(
    path: str | Path,
    *,
    G: nx.MultiDiGraph,
    risk: RiskResult,
    routes: Sequence[Route] = (),
    places: gpd.GeoDataFrame | None = None,
    rejects: pd.DataFrame | None = None,
    info: Mapping[str, Any] | None = None,
    sources: Sequence[str] = (),
    layer: str | None = None,
    marking: str = "",
    title: str = "",
) -> Path:
    """Write a run's results in the format that `path`'s extension names.

    Parameters
    ----------
    path
        Ends in one of :data:`OUTPUT_FORMATS` (``.gpx``, ``.kml``, ``.kmz``,
        ``.pdf``, ``.gpkg``, ``.parquet``).
    G, risk, routes, places, rejects
        What the run produced (routes ranked by
        :func:`convoyrisk.routing.score_routes`).
    info
        Routing information; its ``chokepoints`` become GPX/KML warnings.
    sources
        Names of the incident sources, for the PDF and the parameters table.
    layer
        For ``.parquet``: which layer of :data:`LAYERS` (default ``routes``
        when there are routes, else ``segments``).
    marking
        Handling marking printed at the top and bottom of the PDF (e.g.
        ``"UNCLASSIFIED // FOR OFFICIAL USE"``).
    title
        Document title (default: from the routes' ends).

    Raises
    ------
    InputError
        For an extension not in :data:`OUTPUT_FORMATS`, a GPX without routes,
        or a `layer` that the run did not produce.
    """
    path = Path(path)
    ext = output_format(path)
    if ext == ".html":
        msg = f"Cannot write {path} here: save the HTML map with `convoyrisk.maps.save_map`."
        raise InputError(msg)
    info = info or {}
    chokes = info.get("chokepoints")
    title = title or "convoyrisk"
    if ext == ".gpx":
        if not routes:
            msg = f"Cannot write {path}: GPX holds routes and there are none (drop --no-routes)."
            raise InputError(msg)
        return write_gpx(path, G, risk, routes, chokepoints=chokes, title=title)
    if ext in {".kml", ".kmz"}:
        return write_kml(path, G, risk, routes, places=places, chokepoints=chokes, title=title)
    if ext == ".pdf":
        from .briefing import write_briefing  # noqa: PLC0415 - matplotlib loads only for PDFs

        return write_briefing(
            path,
            G,
            risk,
            routes,
            places=places,
            rejects=rejects,
            info=info,
            sources=sources,
            marking=marking,
            title=title,
        )
    if ext == ".gpkg":
        return write_geopackage(
            path, G, risk, routes, places=places, rejects=rejects, info=info, sources=sources
        )
    layers = output_layers(
        G, risk, routes, places=places, rejects=rejects, info=info, sources=sources
    )
    name = layer or ("routes" if routes else "segments")
    frame = layers.get(name)
    if not isinstance(frame, gpd.GeoDataFrame):
        have = [k for k, v in layers.items() if isinstance(v, gpd.GeoDataFrame)]
        msg = f"Cannot write layer {name!r} to {path}: choose one of {', '.join(have)}."
        raise InputError(msg)
    return write_geoparquet(path, frame)


def _version() -> str:
    from . import __version__  # noqa: PLC0415 - the package imports this module

    return __version__


class RunResult(Protocol):
    """What one run produced, as :func:`write_run` reads it.

    ``convoyrisk.pipeline.Briefing`` has these attributes (so has the command
    line's own record of a run).
    """

    G: nx.MultiDiGraph
    places: gpd.GeoDataFrame
    table: IncidentTable
    risk: RiskResult
    routes: list[Route]
    origin: str
    destination: str
    sources: list[str]
    info: dict[str, Any]


def run_title(run: RunResult) -> str:
    """``"Kidal → Gao"`` for alternatives between two places, else ``"convoyrisk"``."""
    return f"{run.origin} → {run.destination}" if run.routes and run.origin else "convoyrisk"


def write_run(
    path: str | Path, run: RunResult, *, marking: str = "", layer: str | None = None
) -> Path:
    """Write what a run produced, in the format `path`'s extension names.

    ``.html`` is the interactive map with its default look
    (:func:`convoyrisk.maps.risk_map`); every other extension goes to
    :func:`write_output`.
    """
    path = Path(path)
    title = run_title(run)
    if output_format(path) == ".html":
        m = risk_map(
            run.G,
            run.risk,
            routes=run.routes,
            places=run.places,
            sources=run.sources,
            title=f"convoyrisk: {title}" if run.routes else "convoyrisk",
        )
        return save_map(m, path)
    return write_output(
        path,
        G=run.G,
        risk=run.risk,
        routes=run.routes,
        places=run.places,
        rejects=run.table.rejects,
        info=run.info,
        sources=run.sources,
        layer=layer,
        marking=marking,
        title=title,
    )
