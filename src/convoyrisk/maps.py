"""Folium briefing maps of segment risk, incidents and route alternatives, that open offline.

This is the only module that reprojects to EPSG:4326, and only to draw. The
map is a :class:`folium.Map` whose layers are drawn by a small script
(``data/briefing.js``) from one JSON block: road segments coloured by risk
class, incidents with their uncertainty circles, a heat layer and a time
slider, the alternatives as layers with a comparison panel and the risk
profile of the best route, places as labels, a legend, a minimap and a
footer. Geometry is simplified for display and coordinates are rounded and
delta-encoded, which keeps a 100k-segment map small.

Safety: data never becomes markup. Values from the data reach the page as
JSON text (with ``<``, ``>`` and ``&`` escaped) and the script puts them into
the page with ``textContent``; the panels' HTML is built here with every data
value escaped.

Offline: by default every Leaflet and plugin asset (JavaScript, CSS) is
embedded in the HTML from the ``folium-offline`` package, the Bootstrap and
Font Awesome files folium links by default are left out (nothing here uses
them), CSS references to other files are dropped, and no tile layer is shown:
the roads, places and incidents themselves give the context.
"""

from __future__ import annotations

import html
import importlib.metadata
import itertools
import json
import math
import re
from importlib import resources
from pathlib import Path
from typing import Any

import branca.colormap
import folium
import folium.plugins
import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import shapely
from branca.element import Element, MacroElement
from folium.elements import JSCSSMixin
from jinja2 import Template

from . import settings
from ._errors import InputError
from .convert import validate_graph
from .risk import RISK_CLASSES, RiskResult, classify
from .routing import Route
from .utils import write_text_atomic

CLASS_COLOURS = {"low": "#1a9850", "elevated": "#e6b400", "high": "#f46d43", "severe": "#a50026"}
"""Colour of each risk class on the map: green, dark yellow, orange, dark red (lightness
falls with risk, so the order reads in grey scale and for colour-blind readers too)."""

ROUTE_COLOURS = ("#2166ac", "#762a83", "#35978f", "#e08214", "#4d4d4d")
"""Colours of the alternatives' bands, best route first."""

BACKGROUND = "#f3f0e8"
"""Map background where no tile layer is shown (a light sand colour)."""

INCIDENT_COLOUR = "#7b3294"

SVG_MAX_SEGMENTS = 20_000
"""Above this many segments the roads are drawn on a canvas instead of as SVG paths."""

CLUSTER_MIN_INCIDENTS = 200
"""From this many incidents on, markers are clustered (``cluster=None``)."""

MINIMAP_MAX_ROADS = 3_000

_ASSET = re.compile(
    r'<script src="(?P<js>https?://[^"]+)"></script>'
    r'|<link rel="stylesheet" href="(?P<css>https?://[^"]+)"/?>'
)
_CSS_URL = re.compile(r"url\((?!\s*['\"]?(?:data:|#))[^)]*\)")

_GEO_PRECISION = {
    1: "the named place itself",
    2: "near the named place",
    3: "a larger region, placed at its centre",
}

_CSS = """
.leaflet-container { background: %(background)s; font: 12px/1.35 sans-serif; }
.convoyrisk-panel { background: rgba(255,255,255,0.94); padding: 6px 9px;
  border: 1px solid #888; border-radius: 4px; font: 12px/1.35 sans-serif; color: #222;
  box-shadow: 0 1px 4px rgba(0,0,0,0.25); }
.convoyrisk-panel table { border-collapse: collapse; margin-top: 2px; }
.convoyrisk-panel th, .convoyrisk-panel td { padding: 1px 5px; text-align: right;
  white-space: nowrap; }
.convoyrisk-panel td.cr-via, .convoyrisk-panel th.cr-via { text-align: left;
  white-space: normal; max-width: 190px; }
.convoyrisk-panel .cr-title { font-size: 14px; font-weight: bold; }
.cr-briefing { max-width: 440px; max-height: calc(100vh - 120px); overflow-y: auto; }
.cr-briefing summary { font-weight: bold; cursor: pointer; margin-top: 3px; }
.cr-footer { max-width: 62vw; font-size: 11px; }
.cr-swatch { display: inline-block; width: 22px; height: 6px; margin-right: 6px;
  vertical-align: middle; }
.cr-band { display: inline-block; width: 14px; height: 8px; opacity: 0.6; }
.convoyrisk-incident { background: %(incident)s; border: 1.5px solid #111;
  border-radius: 50%%; box-sizing: border-box; }
.convoyrisk-incident.cr-unused { background: #fff; border-color: #666; }
.cr-dot { display: inline-block; width: 11px; height: 11px; border-radius: 50%%;
  box-sizing: border-box; vertical-align: middle; margin-right: 5px; }
.cr-ring { display: inline-block; width: 13px; height: 13px; border-radius: 50%%;
  border: 1px dashed %(incident)s; vertical-align: middle; margin-right: 4px; }
.cr-label-icon { background: none; border: none; }
.cr-label { font: bold 12px sans-serif; color: #222; white-space: nowrap;
  text-shadow: 0 0 3px #fff, 0 0 3px #fff, 0 0 2px #fff; }
.cr-popup .cr-row, .cr-tip .cr-row { max-width: 300px; white-space: normal; }
.cr-slider input { width: 220px; display: block; }
.leaflet-heatmap-layer { opacity: 0.65; }
.marker-cluster-small, .marker-cluster-medium, .marker-cluster-large {
  background-color: rgba(123, 50, 148, 0.3); }
.marker-cluster-small div, .marker-cluster-medium div, .marker-cluster-large div {
  background-color: rgba(123, 50, 148, 0.8); color: #fff; font-weight: bold; }
.leaflet-control-minimap { border: 1px solid #888; background: %(background)s; }
"""


def _version() -> str:
    try:
        return importlib.metadata.version("convoyrisk")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - source tree
        return "dev"


def _esc(value: Any) -> str:  # noqa: ANN401 - any cell value
    """HTML-escape a value for the panels (data never becomes markup)."""
    return html.escape(str(value), quote=True)


def _json_for_html(obj: Any) -> str:  # noqa: ANN401 - any JSON-able object
    """JSON that is safe inside a ``<script>`` element (no ``<``, ``>`` or ``&`` left)."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def risk_colormap(risk: RiskResult) -> branca.colormap.StepColormap:
    """The risk classes as a branca step colormap over the rate (per km per 30 days)."""
    t = risk.params.class_thresholds
    top = max(float(risk.segments["rate"].max()) if len(risk.segments) else 0.0, t[2]) * 1.5
    return branca.colormap.StepColormap(
        [CLASS_COLOURS[c] for c in RISK_CLASSES],
        index=[0.0, *t, top],
        vmin=0.0,
        vmax=top,
        caption="Road risk (incidents per km per 30 days)",
    )


class _Briefing(JSCSSMixin, MacroElement):
    """The data block, the drawing script and its stylesheet."""

    _template = Template(
        """{% macro header(this, kwargs) %}<style>{{ this.css }}</style>
<script>{{ this.script }}</script>{% endmacro %}
{% macro html(this, kwargs) %}<script type="application/json" id="{{ this.get_name() }}">
{{- this.data -}}</script>{% endmacro %}
{% macro script(this, kwargs) %}
convoyriskBriefing({{ this._parent.get_name() }},
    JSON.parse(document.getElementById("{{ this.get_name() }}").textContent));
{% endmacro %}"""
    )

    def __init__(self, data: str, *, js: list[tuple[str, str]], css: list[tuple[str, str]]) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._name = "ConvoyriskBriefing"
        self.data = data
        self.default_js = js
        self.default_css = css
        self.css = _CSS % {"background": BACKGROUND, "incident": INCIDENT_COLOUR}
        self.script = (
            resources.files("convoyrisk").joinpath("data/briefing.js").read_text(encoding="utf-8")
        )


def encode_lines(geoms: Any, decimals: int) -> list[list[list[int]]]:  # noqa: ANN401 - array-like
    """Delta-encode line coordinates as integers, for the map's data block.

    Each geometry becomes a list of parts; each part a flat list
    ``[x0, y0, dx1, dy1, ...]`` of coordinates times ``10**decimals``, rounded,
    the first absolute and the rest as differences from the previous vertex.
    Vertices that rounding makes equal to the previous one are dropped (the
    last vertex of a part is always kept).

    Examples
    --------
    >>> from shapely import LineString
    >>> encode_lines([LineString([(1.0, 2.0), (1.000004, 2.0), (1.5, 2.25)])], 5)
    [[[100000, 200000, 50000, 25000]]]
    """
    arr = np.asarray(geoms, dtype=object)
    parts, owner = shapely.get_parts(arr, return_index=True)
    coords, part_of = shapely.get_coordinates(parts, return_index=True)
    q = np.rint(coords * 10.0**decimals).astype(np.int64)
    first = np.ones(len(q), dtype=bool)
    first[1:] = part_of[1:] != part_of[:-1]
    last = np.ones(len(q), dtype=bool)
    last[:-1] = first[1:]
    same = np.zeros(len(q), dtype=bool)
    same[1:] = np.all(q[1:] == q[:-1], axis=1)
    keep = first | last | ~same
    q, part_of, first = q[keep], part_of[keep], first[keep]
    delta = q.copy()
    delta[1:] -= q[:-1]
    delta[first] = q[first]
    flat = delta.ravel().tolist()
    bounds = np.r_[0, np.flatnonzero(np.diff(part_of)) + 1, len(part_of)] * 2
    part_lists = [flat[a:b] for a, b in itertools.pairwise(bounds.tolist())]
    out: list[list[list[int]]] = [[] for _ in range(len(arr))]
    for i, part in zip(owner.tolist(), part_lists, strict=True):
        out[i].append(part)
    return out


def _sig(values: Any, digits: int = 3) -> list[float]:  # noqa: ANN401 - array-like
    """Floats rounded to `digits` significant digits (for compact JSON)."""
    return [float(f"{v:.{digits}g}") for v in np.asarray(values, dtype=float).tolist()]


def _display(gdf: gpd.GeoDataFrame, simplify_m: float) -> gpd.GeoSeries:
    """Geometry simplified in its own (metric) CRS, then in EPSG:4326."""
    geo = gdf.geometry
    if simplify_m > 0 and gdf.crs is not None and not gdf.crs.is_geographic:
        geo = gpd.GeoSeries(
            shapely.simplify(geo.to_numpy(), simplify_m, preserve_topology=False),
            index=gdf.index,
            crs=gdf.crs,
        )
    return geo.to_crs(settings.display_crs)


def _roads_data(
    risk: RiskResult, simplify_m: float, decimals: int, canvas: bool
) -> tuple[dict[str, Any], np.ndarray]:
    segs = risk.segments
    geo = _display(segs, simplify_m)
    class_index = {c: i for i, c in enumerate(RISK_CLASSES)}
    codes, labels = pd.factorize(segs["top_contributors"].fillna("").astype(str))
    empty = np.flatnonzero(np.asarray(labels) == "")
    top = np.asarray(codes).copy()
    if len(empty):
        top[top == empty[0]] = -1
        top[top > empty[0]] -= 1
        labels = np.delete(np.asarray(labels), empty[0])
    data = {
        "canvas": canvas,
        "weight": 5,
        "id": segs["segment_id"].astype(int).tolist(),
        "cls": [class_index[str(c)] for c in segs["risk_class"]],
        "rate": _sig(segs["rate"]),
        "low": _sig(segs["rate_low"]),
        "high": _sig(segs["rate_high"]),
        "n": segs["incidents"].astype(int).tolist(),
        "top": top.tolist(),
        "labels": [str(s) for s in labels],
        "parts": encode_lines(geo.to_numpy(), decimals),
    }
    return data, np.asarray(geo.total_bounds)


def _offsets(lat: np.ndarray, lon: np.ndarray, pixels: float = 8.0) -> tuple[list[int], list[int]]:
    """Screen offsets (px) that fan out markers sharing one position (positions stay true)."""
    dx = np.zeros(len(lat), dtype=int)
    dy = np.zeros(len(lat), dtype=int)
    keys = pd.Series(list(zip(lat.tolist(), lon.tolist(), strict=True)))
    for idx in keys.groupby(keys).indices.values():
        if len(idx) < 2:
            continue
        angle = 2 * np.pi * np.arange(len(idx)) / len(idx) - np.pi / 2
        dx[idx] = np.rint(pixels * np.cos(angle)).astype(int)
        dy[idx] = np.rint(pixels * np.sin(angle)).astype(int)
    return dx.tolist(), dy.tolist()


def _count(value: Any) -> int | None:  # noqa: ANN401 - any cell value
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else int(number)


def _precision_text(radius: float, code: Any) -> str:  # noqa: ANN401 - any cell value
    text = f"within about {radius / 1000:.3g} km" if radius > 0 else "exact point given"
    level = _count(code)
    if level is not None:
        text += f" (geo precision {level}: {_GEO_PRECISION.get(level, 'coarse')})"
    return text


def _incidents_data(incidents: gpd.GeoDataFrame, decimals: int) -> tuple[list[dict[str, Any]], int]:
    """One record per incident with a position, and the number left out for lack of one."""
    has_pos = ~(incidents.geometry.is_empty | incidents.geometry.isna())
    pts = incidents[has_pos.to_numpy()].to_crs(settings.display_crs)
    if pts.empty:
        return [], int((~has_pos).sum())
    lat = np.round(pts.geometry.y.to_numpy(), decimals)
    lon = np.round(pts.geometry.x.to_numpy(), decimals)
    dates = pd.to_datetime(pts["date"])
    start = dates.min().normalize()
    day = ((dates.dt.normalize() - start).dt.days).to_numpy()
    dx, dy = _offsets(lat, lon)

    def col(name: str) -> list[Any]:
        if name in pts:
            return ["" if pd.isna(v) else str(v) for v in pts[name]]
        return [""] * len(pts)

    radius = (
        pts["precision_m"].fillna(0.0).astype(float).to_numpy()
        if "precision_m" in pts
        else np.zeros(len(pts))
    )
    codes = pts["geo_precision"].tolist() if "geo_precision" in pts else [None] * len(pts)
    ids = col("event_id")
    rows = col("row")
    out = [
        {
            "lat": float(lat[i]),
            "lon": float(lon[i]),
            "date": dates.iloc[i].date().isoformat(),
            "day": int(day[i]),
            "type": t or "incident",
            "killed": _count(k),
            "injured": _count(j),
            "radius": round(float(radius[i])),
            "precision": _precision_text(float(radius[i]), codes[i]),
            "location": loc,
            "notes": note,
            "source": src,
            "id": ids[i] or f"row {rows[i]}",
            "used": used,
            "dx": dx[i],
            "dy": dy[i],
        }
        for i, (t, k, j, loc, note, src, used) in enumerate(
            zip(
                col("type"),
                pts["killed"] if "killed" in pts else [None] * len(pts),
                pts["injured"] if "injured" in pts else [None] * len(pts),
                col("location"),
                col("notes"),
                col("source"),
                col("used"),
                strict=True,
            )
        )
    ]
    return out, int((~has_pos).sum())


def _route_line(G: nx.MultiDiGraph, route: Route) -> shapely.Geometry:
    return shapely.line_merge(shapely.union_all([G.edges[e]["geometry"] for e in route.edges]))


def _route_label(route: Route) -> str:
    mt = route.metrics
    return f"Route {mt['rank']}: {mt['length_km']:.0f} km, P(≥1 incident) {mt['p_incident']:.0%}"


def _routes_data(
    G: nx.MultiDiGraph, routes: list[Route], simplify_m: float, decimals: int
) -> list[dict[str, Any]]:
    if not routes:
        return []
    lines = gpd.GeoDataFrame(geometry=[_route_line(G, r) for r in routes], crs=G.graph["crs"])
    parts = encode_lines(_display(lines, simplify_m).to_numpy(), decimals)
    out = []
    for i, (r, p) in enumerate(zip(routes, parts, strict=True)):
        mt = r.metrics
        worst = mt["worst_segment"]
        out.append(
            {
                "label": _route_label(r),
                "colour": ROUTE_COLOURS[i % len(ROUTE_COLOURS)],
                "weight": max(18 - 5 * i, 6),
                "show": True,
                "parts": p,
                "lines": [
                    ["via", ", ".join(mt["via"]) or "direct"],
                    ["length", f"{mt['length_km']:.1f} km"],
                    ["days on the road", f"{mt['travel_days']:.1f}"],
                    ["expected incidents", f"{mt['expected_incidents']:.3f}"],
                    [
                        "P(≥1 incident)",
                        (
                            f"{mt['p_incident']:.1%} ({mt['p_incident_low']:.1%}–"
                            f"{mt['p_incident_high']:.1%})"
                        ),
                    ],
                    [
                        "worst segment",
                        (
                            f"{worst['segment_id']} at km {worst['chainage_km']} "
                            f"({worst['risk_class']})"
                        ),
                    ],
                    ["shared with route 1", f"{mt.get('shared_fraction', 0.0):.0%}"],
                ],
            }
        )
    return out


def _places_data(places: gpd.GeoDataFrame | None, decimals: int) -> list[dict[str, Any]]:
    if places is None or places.empty:
        return []
    pts = places.to_crs(settings.display_crs)
    kinds = pts["kind"].fillna("").astype(str) if "kind" in pts else pd.Series([""] * len(pts))
    return [
        {
            "lat": round(float(g.y), decimals),
            "lon": round(float(g.x), decimals),
            "name": str(name),
            "kind": kind,
            "town": kind != "well",
        }
        for g, name, kind in zip(pts.geometry, pts["name"], kinds, strict=True)
        if g is not None and not g.is_empty
    ]


def _minimap_data(G: nx.MultiDiGraph, decimals: int) -> dict[str, Any]:
    """The roads, strongly simplified, for the minimap (the longest few thousand)."""
    rows = [
        (d["geometry"], float(d.get("length", d["geometry"].length)))
        for *_, d in G.edges(data=True)
        if not d.get("reversed", False) and d.get("geometry") is not None
    ]
    decimals = min(decimals, 4)
    if not rows:
        return {"decimals": decimals, "lines": []}
    rows.sort(key=lambda t: -t[1])
    gdf = gpd.GeoDataFrame(geometry=[g for g, _ in rows[:MINIMAP_MAX_ROADS]], crs=G.graph["crs"])
    minx, miny, maxx, maxy = gdf.total_bounds
    tolerance = max(maxx - minx, maxy - miny) / 300.0
    return {
        "decimals": decimals,
        "lines": encode_lines(_display(gdf, tolerance).to_numpy(), decimals),
    }


def _legend(risk: RiskResult, *, incidents: bool, uncertain: bool, heat: bool, wells: bool) -> str:
    cmap = risk_colormap(risk)
    t = risk.params.class_thresholds
    bounds = [f"&lt; {t[0]:g}", f"{t[0]:g} – {t[1]:g}", f"{t[1]:g} – {t[2]:g}", f"≥ {t[2]:g}"]
    rows = "".join(
        f'<div><span class="cr-swatch" style="background:{cmap.rgb_hex_str(lo)}"></span>'
        f"{c} ({b})</div>"
        for c, b, lo in zip(RISK_CLASSES, bounds, [0.0, *t], strict=True)
    )
    extra = ""
    if incidents:
        extra += (
            '<div><span class="cr-dot convoyrisk-incident"></span>incident (used in the risk)</div>'
            '<div><span class="cr-dot convoyrisk-incident cr-unused"></span>incident not used '
            "(off the roads, too old or after the as-of date)</div>"
        )
    if uncertain:
        extra += '<div><span class="cr-ring"></span>uncertainty of its position</div>'
    if heat:
        extra += "<div>heat: where incidents are dense (not the risk)</div>"
    if wells:
        extra += (
            '<div><span class="cr-dot" style="background:#333"></span>town or village '
            '<span class="cr-dot" style="background:#6baed6;border:1px solid #08519c;'
            'margin-left:8px"></span>well</div>'
        )
    return f"<div>{_esc(cmap.caption)}</div>{rows}{extra}"


def _comparison(routes: list[Route]) -> str:
    head = (
        '<tr><th></th><th>#</th><th class="cr-via">via</th><th>km</th><th>days</th>'
        "<th>E[inc.]</th><th>P(≥1)</th></tr>"
    )
    body = "".join(
        '<tr><td><span class="cr-band" style="background:{colour}"></span></td>'
        '<td>{rank}</td><td class="cr-via">{via}</td><td>{km:.0f}</td><td>{days:.1f}</td>'
        "<td>{e:.3f}</td><td>{p:.1%} ({lo:.1%}–{hi:.1%})</td></tr>".format(
            colour=ROUTE_COLOURS[i % len(ROUTE_COLOURS)],
            rank=r.metrics["rank"],
            via=_esc(", ".join(r.metrics["via"]) or "direct"),
            km=r.metrics["length_km"],
            days=r.metrics["travel_days"],
            e=r.metrics["expected_incidents"],
            p=r.metrics["p_incident"],
            lo=r.metrics["p_incident_low"],
            hi=r.metrics["p_incident_high"],
        )
        for i, r in enumerate(routes)
    )
    return f"<table>{head}{body}</table>"


def profile_svg(
    G: nx.MultiDiGraph, route: Route, risk: RiskResult, *, width: int = 420, height: int = 130
) -> str:
    """The risk profile along `route` as an inline SVG bar chart.

    One bar per segment, as wide as the segment and as high as its rate,
    coloured by its risk class; dashed lines at the class thresholds that fall
    in range; named places along the route as ticks; the worst segment marked.
    """
    profile = np.asarray(route.metrics["profile"], dtype=float).reshape(-1, 2)
    total_km = float(route.metrics["length_km"])
    left, right, top, bottom = 44, 8, 16, 30
    w, h = width - left - right, height - top - bottom
    chain, rate = profile[:, 0], profile[:, 1]
    ends = np.r_[chain[1:], total_km]
    t = risk.params.class_thresholds
    ymax = max(float(rate.max()) if len(rate) else 0.0, t[0]) * 1.15

    def x(km: float) -> float:
        return left + w * km / total_km if total_km > 0 else left

    def y(r: float) -> float:
        return top + h * (1.0 - r / ymax)

    classes = classify(rate, t)
    bars = "".join(
        f'<rect x="{x(a):.1f}" y="{y(r):.1f}" width="{max(x(b) - x(a), 0.6):.1f}" '
        f'height="{top + h - y(r):.1f}" fill="{CLASS_COLOURS[str(c)]}"/>'
        for a, b, r, c in zip(chain, ends, rate, classes, strict=True)
    )
    lines = "".join(
        f'<line x1="{left}" x2="{left + w}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#888" '
        f'stroke-dasharray="3 3"/><text x="{left + w}" y="{y(v) - 2:.1f}" text-anchor="end">'
        f"{name}</text>"
        for v, name in zip(t, RISK_CLASSES[1:], strict=True)
        if v < ymax
    )
    # named places along the route, at their chainage
    ticks = ""
    km, last = 0.0, -math.inf
    for i, n in enumerate(route.nodes):
        if i > 0:
            km += float(G.edges[route.edges[i - 1]]["length"]) / 1000.0
        name = G.nodes[n].get("name")
        if name and x(km) - last >= 46:
            last = x(km)
            ticks += (
                f'<line x1="{x(km):.1f}" x2="{x(km):.1f}" y1="{top + h}" y2="{top + h + 4}" '
                f'stroke="#333"/><text x="{x(km):.1f}" y="{top + h + 14}" text-anchor="middle">'
                f"{_esc(name)}</text>"
            )
    worst = route.metrics["worst_segment"]
    wkm = float(worst["chainage_km"])
    mark = (
        f'<path d="M{x(wkm):.1f} {top - 1} l-4 -6 h8 z" fill="#000"/>'
        f'<text x="{min(x(wkm) + 6, left + w - 60):.1f}" y="{top - 5}">worst: km {wkm:g}</text>'
    )
    axes = (
        f'<line x1="{left}" x2="{left}" y1="{top}" y2="{top + h}" stroke="#333"/>'
        f'<line x1="{left}" x2="{left + w}" y1="{top + h}" y2="{top + h}" stroke="#333"/>'
        f'<text x="{left - 3}" y="{top + 4}" text-anchor="end">{ymax:.2g}</text>'
        f'<text x="{left - 3}" y="{top + h}" text-anchor="end">0</text>'
        f'<text x="{left + w}" y="{height - 2}" text-anchor="end">{total_km:.0f} km</text>'
        f'<text x="{left}" y="{height - 2}">0 km</text>'
        f'<text x="10" y="{top + h / 2:.0f}" transform="rotate(-90 10 {top + h / 2:.0f})" '
        f'text-anchor="middle">rate</text>'
    )
    return (
        f'<svg class="cr-profile" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" font-size="9" font-family="sans-serif">{bars}{lines}{axes}{ticks}'
        f"{mark}</svg>"
    )


def _briefing_panel(
    G: nx.MultiDiGraph,
    risk: RiskResult,
    routes: list[Route],
    title: str,
    legend: str,
    *,
    profile: bool,
) -> str:
    """Title, legend, comparison of the alternatives and the profile, in foldable sections."""
    parts = [
        (
            f'<div class="cr-title">{_esc(title)}</div>'
            f"<div>risk as of {risk.as_of.date().isoformat()}</div>"
        ),
        f'<details open class="cr-legend"><summary>Legend</summary>{legend}</details>',
    ]
    if routes:
        parts.append(
            '<details open class="cr-comparison"><summary>Alternatives</summary>'
            f"{_comparison(routes)}</details>"
        )
        if profile:
            best = routes[0]
            parts.append(
                f'<details open class="cr-profile-box"><summary>Risk along route '
                f"{best.metrics['rank']} (per km per 30 days, by km from the start)</summary>"
                f"{profile_svg(G, best, risk)}</details>"
            )
    return "".join(parts)


def _footer(
    risk: RiskResult,
    sources: list[str],
    *,
    approximate: bool,
    uncertain: bool,
    no_position: int,
    incidents_drawn: int,
) -> str:
    p = risk.params
    used = int((risk.incidents["used"] == "used").sum()) if "used" in risk.incidents else 0
    parts = [
        f"<b>As of {risk.as_of.date().isoformat()}</b>",
        (
            f"segments {p.segment_length_m:g} m, bandwidth {p.bandwidth_m:g} m, "
            f"half-life {p.half_life_days:g} d, window {p.window_days:g} d, "
            f"{p.credible_level:.0%} intervals"
        ),
        f"{len(risk.segments)} segments; {incidents_drawn} incidents drawn, {used} used",
        "Sources: " + ("; ".join(_esc(s) for s in sources) or "not given"),
    ]
    if no_position:
        parts.append(f"{no_position} incident(s) without a position are not drawn")
    if approximate:
        parts.append(
            "<b>Road geometry approximate</b> (digitised from place positions, not surveyed)"
        )
    if uncertain:
        parts.append("incident positions uncertain: dashed circles show their radius")
    parts.append(f"convoyrisk {_esc(_version())}")
    return " · ".join(parts)


def _base_map(
    title: str, tile_names: list[str], *, tiles_shown: bool, zoom_snap: float
) -> tuple[folium.Map, list[list[str]]]:
    """The folium map with its controls, Leaflet alone as its default asset, and the tiles."""
    m = folium.Map(
        tiles=None,
        control_scale=False,
        zoom_start=6,
        location=[0.0, 0.0],
        zoom_snap=zoom_snap,
        zoom_control="topright",
    )
    m.default_js = [(n, u) for n, u in folium.Map.default_js if n == "leaflet"]
    m.default_css = [(n, u) for n, u in folium.Map.default_css if n == "leaflet_css"]
    root: Any = m.get_root()
    root.header.add_child(Element(f"<title>{_esc(title)}</title>"))
    tile_vars = []
    for i, name in enumerate(tile_names):
        try:
            layer = folium.TileLayer(
                name, show=tiles_shown and i == 0, overlay=False, control=False
            )
        except ValueError as exc:
            msg = (
                f"Unknown tiles {name!r}: give a provider name such as OpenStreetMap or "
                f"'CartoDB Positron' (xyzservices), or leave `--tiles` out ({exc})."
            )
            raise InputError(msg) from exc
        layer.add_to(m)
        tile_vars.append([str(layer.layer_name), layer.get_name()])
    folium.plugins.Fullscreen(position="topright").add_to(m)  # type: ignore[no-untyped-call]
    folium.plugins.MeasureControl(  # type: ignore[no-untyped-call]
        position="topright",
        primary_length_unit="kilometers",
        secondary_length_unit="meters",
        primary_area_unit="hectares",
        secondary_area_unit="sqmeters",
    ).add_to(m)
    return m, tile_vars


def risk_map(
    G: nx.MultiDiGraph,
    risk: RiskResult,
    *,
    routes: list[Route] | None = None,
    places: gpd.GeoDataFrame | None = None,
    sources: list[str] | None = None,
    tiles: str | list[str] | None = None,
    tiles_shown: bool = False,
    title: str = "convoyrisk",
    heat: bool = True,
    time_slider: bool = False,
    cluster: bool | None = None,
    minimap: bool = True,
    profile: bool = True,
    simplify_m: float = 10.0,
    decimals: int = 5,
    renderer: str = "auto",
) -> folium.Map:
    """Build the briefing map.

    Parameters
    ----------
    G
        The road graph.
    risk
        Scored segments and the incidents behind them.
    routes
        Scored alternatives to draw as layers, best first, with a comparison
        panel and the risk profile of the best.
    places
        Gazetteer to label (wells as small open dots without labels).
    sources
        Data sources for the footer.
    tiles
        Folium/xyzservices tile names (e.g. ``"OpenStreetMap"``) offered as
        background layers; they need a network.
    tiles_shown
        Show the first tile layer on opening; otherwise the map opens on the
        plain background and loads no tile until the reader picks one.
    title
        Map title, shown in the briefing panel and the browser tab.
    heat
        Add the incident heat layer (toggleable, shown on opening).
    time_slider
        Add a slider that shows the incidents up to a date (and the heat of those).
    cluster
        Cluster incident markers; None clusters from ``CLUSTER_MIN_INCIDENTS`` on.
    minimap
        Add an overview minimap of the roads.
    profile
        Draw the risk profile of the best route.
    simplify_m
        Simplify geometry for display with this tolerance, metres (0: keep all vertices).
    decimals
        Decimals kept in longitude and latitude (5: about 1 m).
    renderer
        ``"svg"`` (a DOM path per segment), ``"canvas"`` (faster for large maps) or
        ``"auto"`` (canvas above ``SVG_MAX_SEGMENTS`` segments).

    Returns
    -------
    folium.Map
        Save it with :func:`save_map`.
    """
    validate_graph(G)
    if renderer not in {"auto", "svg", "canvas"}:
        msg = f"`renderer` must be 'auto', 'svg' or 'canvas', got {renderer!r}."
        raise InputError(msg)
    if not 0 <= decimals <= 7:
        msg = f"`decimals` must be between 0 and 7, got {decimals}."
        raise InputError(msg)
    if simplify_m < 0:
        msg = f"`simplify_m` must be 0 or more metres, got {simplify_m}."
        raise InputError(msg)
    if risk.segments.empty:
        msg = "There are no road segments to draw: check the road layer."
        raise InputError(msg)
    routes = routes or []
    tile_names = [tiles] if isinstance(tiles, str) else list(tiles or [])
    canvas = renderer == "canvas" or (renderer == "auto" and len(risk.segments) > SVG_MAX_SEGMENTS)

    roads, bounds = _roads_data(risk, simplify_m, decimals, canvas)
    incidents, no_position = _incidents_data(risk.incidents, decimals)
    clustered = len(incidents) >= CLUSTER_MIN_INCIDENTS if cluster is None else cluster
    uncertain = any(r["radius"] > 0 for r in incidents)
    approximate = any(d.get("geometry_source") == "approximate" for *_, d in G.edges(data=True))
    heat_on = heat and bool(incidents)
    slider = time_slider and bool(incidents)

    # Leaflet.markercluster 1.1.0 (the one folium-offline ships) needs whole zoom levels
    m, tile_vars = _base_map(
        title, tile_names, tiles_shown=tiles_shown, zoom_snap=1.0 if clustered else 0.25
    )

    place_rows = _places_data(places, decimals)
    legend = _legend(
        risk,
        incidents=bool(incidents),
        uncertain=uncertain,
        heat=heat_on,
        wells=any(not p["town"] for p in place_rows),
    )
    panels = [
        [
            _briefing_panel(G, risk, routes, title, legend, profile=profile),
            "topleft",
            "cr-briefing",
        ],
        [
            _footer(
                risk,
                sources or [],
                approximate=approximate,
                uncertain=uncertain,
                no_position=no_position,
                incidents_drawn=len(incidents),
            ),
            "bottomleft",
            "cr-footer",
        ],
    ]
    minx, miny, maxx, maxy = bounds
    dates = [r["date"] for r in incidents]
    data = {
        "decimals": decimals,
        "background": BACKGROUND,
        "level": f"{risk.params.credible_level:.0%}",
        "classes": [{"name": c, "colour": CLASS_COLOURS[c]} for c in RISK_CLASSES],
        "roads": roads,
        "routes": _routes_data(G, routes, simplify_m, decimals),
        "incidents": {"cluster": clustered, "rows": incidents},
        "heat": {"show": True} if heat_on else None,
        "slider": (
            {"start": min(dates), "days": max(r["day"] for r in incidents)} if slider else None
        ),
        "places": place_rows,
        "tiles": tile_vars,
        "tilesShown": bool(tile_vars) and tiles_shown,
        "collapseLayers": False,
        "panels": panels,
        "minimap": _minimap_data(G, decimals) if minimap else None,
        "bounds": [[float(miny), float(minx)], [float(maxy), float(maxx)]],
    }
    js: list[tuple[str, str]] = []
    css: list[tuple[str, str]] = []
    if clustered:
        js += folium.plugins.MarkerCluster.default_js
        css += folium.plugins.MarkerCluster.default_css
    if heat_on:
        js += folium.plugins.HeatMap.default_js
    if minimap:
        js += folium.plugins.MiniMap.default_js
        css += folium.plugins.MiniMap.default_css
    m.add_child(_Briefing(_json_for_html(data), js=js, css=css))
    return m


def embed_assets(page: str) -> str:
    """Replace links to Leaflet's JS and CSS on CDNs by their content, from folium-offline.

    CSS references to other files (``url(images/...)``) are dropped, so that
    the page asks for nothing, not even a missing local file.

    Raises
    ------
    InputError
        If the page links an asset that folium-offline does not ship.
    """
    from offlinefolium.elements import _res as assets  # noqa: PLC0415 - loaded on use

    def inline(match: re.Match[str]) -> str:
        url = match.group("js") or match.group("css")
        if url not in assets:
            msg = f"No offline copy of {url}: use `--online`, or drop the layer that needs it."
            raise InputError(msg)
        body = str(assets[url]).replace("</script", "<\\/script").replace("</style", "<\\/style")
        if match.group("js"):
            return f"<script>{body}</script>"
        return f"<style>{_CSS_URL.sub('none', body)}</style>"

    return _ASSET.sub(inline, page)


def save_map(m: folium.Map, path: str | Path, *, offline: bool = True) -> Path:
    """Render `m` to HTML at `path` atomically; embed all assets when `offline`."""
    page = m.get_root().render()
    if offline:
        page = embed_assets(page)
    return write_text_atomic(path, page)
