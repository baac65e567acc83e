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
from .risk import RISK_CLASSES, RiskResult, classify
from .routing import Route, route_segments
from .utils import log, write_text_atomic

INSUFFICIENT = "insufficient data"
"""The class of a segment whose data cannot tell it from the prior (drawn grey and dashed)."""

MAP_CLASSES = (INSUFFICIENT, *RISK_CLASSES)
"""Classes the map draws, in drawing order (each above the ones before it)."""

CLASS_COLOURS = {"low": "#0ab08b", "elevated": "#a76e00", "high": "#b5032f", "severe": "#65032d"}
"""Colour of each risk class: teal, ochre, crimson, dark wine.

CIELAB lightness falls with risk (L* 64, 51, 38, 20: each class darker, so heavier on
the light background, than the one below), every pair stays apart under simulated
protanopia, deuteranopia and tritanopia and in grey, and each has at least 2.4:1
contrast on the background (elevated and above 3.7:1). Width is the second cue
(:data:`CLASS_WEIGHTS`); high and severe also get a dark casing."""

INSUFFICIENT_COLOUR = "#8c8c8c"
"""Colour of "insufficient data" segments (grey, dashed, thin: no claim either way)."""

CLASS_WEIGHTS = {INSUFFICIENT: 2.5, "low": 3.0, "elevated": 4.5, "high": 6.5, "severe": 8.5}
"""Line width (px) of each class: wider with risk."""

CASED_CLASSES = ("high", "severe")
"""Classes drawn over a dark casing (a line 3 px wider beneath)."""

CASING_COLOUR = "#1a1a1a"

ROUTE_COLOURS = ("#2166ac", "#4d4d4d", "#3fa0d8", "#8c6d31", "#000000")
"""Colours of the alternatives' bands, best route first (none purple: purple means incidents)."""

BACKGROUND = "#f3f0e8"
"""Map background where no tile layer is shown (a light sand colour)."""

INCIDENT_COLOUR = "#7b3294"
"""Purple: incidents (markers, clusters, their position uncertainty) and nothing else."""

SVG_MAX_SEGMENTS = 20_000
"""Above this many segments the roads are drawn on a canvas instead of as SVG paths."""

MERGE_MIN_SEGMENTS = 5_000
"""From this many segments on, runs of a road's segments of one class are drawn as one line
(``merge=None``)."""

CLUSTER_MIN_INCIDENTS = 200
"""From this many incidents on, markers are clustered (``cluster=None``)."""

MINIMAP_MAX_ROADS = 3_000

LABEL_GROUP_M = 20_000.0
"""Worst segments closer than this (metres) share one label on the map."""

WARN_BYTES = 50_000_000
"""A saved map larger than this logs a warning (browsers slow down on such pages)."""

OFF_NETWORK = "not on the network"
"""The ``used`` reason of incidents off the network: they are left out of the map (counted)."""

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
.convoyrisk-panel { background: rgba(255,255,255,0.96); padding: 6px 9px;
  border: 1px solid #888; border-radius: 4px; font: 12px/1.35 sans-serif; color: #222;
  box-shadow: 0 1px 4px rgba(0,0,0,0.25); }
.convoyrisk-panel table { border-collapse: collapse; margin-top: 2px; }
.convoyrisk-panel th, .convoyrisk-panel td { padding: 1px 5px; text-align: right;
  white-space: nowrap; }
.convoyrisk-panel td.cr-via, .convoyrisk-panel th.cr-via { text-align: left;
  white-space: normal; max-width: 190px; }
.convoyrisk-panel caption { text-align: left; font-weight: bold; }
.cr-sheet-head { display: flex; align-items: baseline; gap: 6px; }
.cr-sheet-head .cr-title { flex: 1; font-size: 14px; font-weight: bold; }
.cr-sheet-toggle { font: 12px sans-serif; border: 1px solid #888; border-radius: 3px;
  background: #fff; cursor: pointer; padding: 1px 6px; }
.cr-briefing.cr-collapsed > :not(.cr-sheet-head) { display: none; }
.cr-briefing { width: 440px; max-width: calc(100vw - 90px); max-height: calc(100vh - 120px);
  overflow-y: auto; overflow-x: auto; box-sizing: border-box; }
.cr-briefing summary { font-weight: bold; cursor: pointer; margin-top: 3px; }
.cr-briefing svg.cr-profile { width: 100%%; height: auto; display: block; }
.cr-footer { max-width: 62vw; font-size: 11px; }
.cr-swatch { display: inline-block; width: 26px; height: 10px; margin-right: 6px;
  vertical-align: middle; }
.cr-band { display: inline-block; width: 14px; height: 8px; opacity: 0.6; }
.convoyrisk-incident { background: transparent; border: 2.5px solid %(incident)s;
  border-radius: 50%%; box-sizing: border-box; box-shadow: 0 0 0 1px #fff; }
.convoyrisk-incident.cr-unused { border: 2px dashed #666; }
.cr-dot { display: inline-block; width: 12px; height: 12px; border-radius: 50%%;
  box-sizing: border-box; vertical-align: middle; margin-right: 5px; }
.cr-ring { display: inline-block; width: 13px; height: 13px; border-radius: 50%%;
  border: 1px dashed %(incident)s; vertical-align: middle; margin-right: 4px; }
.cr-label-icon, .cr-worst-icon, .cr-rank-icon, .cr-grid-icon, .cr-country-icon {
  background: none; border: none; }
.cr-label { font: bold 12px sans-serif; color: #222; white-space: nowrap;
  text-shadow: 0 0 3px #fff, 0 0 3px #fff, 0 0 2px #fff; }
.cr-worst { font: bold 11px sans-serif; color: #fff; background: %(severe)s;
  border: 1px solid #000; border-radius: 3px; padding: 1px 4px; white-space: nowrap;
  box-shadow: 0 1px 3px rgba(0,0,0,0.4); }
.cr-worst.cr-high { background: %(high)s; }
.cr-worst.cr-elevated { background: %(elevated)s; }
.cr-worst.cr-low { background: %(low)s; }
.cr-rank { font: bold 11px sans-serif; color: #fff; border: 2px solid #fff; border-radius: 50%%;
  width: 18px; height: 18px; line-height: 18px; text-align: center; box-sizing: content-box;
  box-shadow: 0 0 2px #000; }
.cr-country { font: italic 13px sans-serif; color: #8a7f6a; letter-spacing: 0.3em;
  text-transform: uppercase; white-space: nowrap; }
.cr-grid-label { font: 10px sans-serif; color: #555; white-space: nowrap;
  text-shadow: 0 0 2px #fff, 0 0 2px #fff; }
.cr-popup .cr-row, .cr-tip .cr-row { max-width: 300px; white-space: normal; }
.cr-slider input { width: 220px; max-width: 60vw; display: block; }
.cr-slider .cr-note { font-size: 11px; color: #444; max-width: 240px; }
.marker-cluster-small, .marker-cluster-medium, .marker-cluster-large {
  background-color: rgba(123, 50, 148, 0.3); }
.marker-cluster-small div, .marker-cluster-medium div, .marker-cluster-large div {
  background-color: rgba(123, 50, 148, 0.8); color: #fff; font-weight: bold; }
.leaflet-control-minimap { border: 1px solid #888; background: %(background)s; }
.cr-skip { position: absolute; left: -9999px; top: 0; z-index: 3000; background: #fff;
  padding: 4px 8px; border: 2px solid #000; font: bold 13px sans-serif; }
.cr-skip:focus { left: 8px; top: 8px; }
.cr-worst-table button { font: 11px sans-serif; cursor: pointer; }
.cr-marking { position: absolute; left: 50%%; transform: translateX(-50%%); z-index: 1001;
  background: #fff; border: 2px solid #000; padding: 1px 10px; font: bold 12px sans-serif;
  letter-spacing: 0.08em; text-transform: uppercase; pointer-events: none; }
.cr-marking-top { top: 4px; }
.cr-marking-bottom { bottom: 4px; display: none; }
.cr-north { display: none; font: bold 12px sans-serif; text-align: center; }
.cr-basemap-note { font-style: italic; }
@media (max-width: 600px) {
  .leaflet-top.leaflet-left .cr-briefing { position: fixed; left: 0; right: 0; bottom: 0;
    top: auto; margin: 0; width: auto; max-width: none; max-height: 55vh;
    border-radius: 10px 10px 0 0; z-index: 1001; }
  .cr-briefing table { font-size: 11px; }
  .cr-footer, .leaflet-control-minimap, .leaflet-control-measure { display: none; }
  .cr-briefing .cr-footer-copy { display: block; }
  .leaflet-bottom.leaflet-left, .leaflet-bottom.leaflet-right { bottom: 40px; }
  .cr-marking { font-size: 10px; }
}
.cr-footer-copy { display: none; font-size: 11px; margin-top: 4px; }
@page { size: A4 landscape; margin: 7mm; }
@media print {
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  html, body { width: 283mm; height: 196mm; margin: 0; overflow: hidden; }
  .leaflet-control-zoom, .leaflet-control-layers, .leaflet-control-zoom-fullscreen,
  .leaflet-control-fullscreen, .leaflet-control-measure, .leaflet-control-minimap,
  .cr-slider, .cr-skip, .cr-sheet-toggle, .leaflet-popup, .leaflet-tooltip {
    display: none !important; }
  .leaflet-top.leaflet-left .cr-briefing { position: fixed; right: 0; top: 0; left: auto;
    bottom: auto; width: 88mm; max-width: none; max-height: 196mm; overflow: hidden;
    margin: 0; font-size: 9px; box-shadow: none; border-radius: 0; }
  .cr-briefing.cr-collapsed > * { display: revert; }
  .cr-briefing details > :not(summary) { display: block; }
  .cr-briefing table { font-size: 9px; }
  .cr-footer { max-width: 190mm; font-size: 8px; }
  .cr-north { display: block; }
  .cr-marking-bottom { display: block; }
}
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
        self.css = _CSS % {"background": BACKGROUND, "incident": INCIDENT_COLOUR, **CLASS_COLOURS}
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
    if arr.size == 0:
        return []
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


def _class_codes(classes: pd.Series) -> np.ndarray:
    """Index of each segment's class in :data:`MAP_CLASSES` (an unknown class is an error)."""
    index = {c: i for i, c in enumerate(MAP_CLASSES)}
    codes = classes.astype(str).map(index)
    if codes.isna().any():
        bad = sorted(set(classes.astype(str)[codes.isna()]))
        msg = (
            f"Unknown `risk_class` value(s) {', '.join(map(repr, bad[:3]))} in the segments: "
            f"the map draws {', '.join(MAP_CLASSES)}."
        )
        raise InputError(msg)
    return codes.to_numpy(dtype=np.int64)


def segment_runs(segments: pd.DataFrame) -> np.ndarray:
    """Run number of each segment: consecutive segments of one road and one class share one.

    Segments are taken in order of ``road_id`` and ``start_m``; a run ends where
    the road, the class or the continuity (``end_m`` of one = ``start_m`` of the
    next, to 1 mm) changes. Aligned on `segments`.

    Examples
    --------
    >>> df = pd.DataFrame({"road_id": [0, 0, 0, 1], "start_m": [0.0, 10.0, 20.0, 0.0],
    ...                    "end_m": [10.0, 20.0, 30.0, 5.0],
    ...                    "risk_class": ["low", "low", "high", "high"]})
    >>> segment_runs(df).tolist()
    [0, 0, 1, 2]
    """
    order = np.lexsort((segments["start_m"].to_numpy(float), segments["road_id"].to_numpy()))
    road = segments["road_id"].to_numpy()[order]
    cls = segments["risk_class"].astype(str).to_numpy()[order]
    start = segments["start_m"].to_numpy(float)[order]
    end = segments["end_m"].to_numpy(float)[order] if "end_m" in segments else start
    new = np.ones(len(order), dtype=bool)
    new[1:] = (road[1:] != road[:-1]) | (cls[1:] != cls[:-1])
    if "end_m" in segments:
        new[1:] |= np.abs(start[1:] - end[:-1]) > 1e-3
    runs = np.empty(len(order), dtype=np.int64)
    runs[order] = np.cumsum(new) - 1
    return runs


def _road_names(G: nx.MultiDiGraph, road_ids: np.ndarray) -> tuple[list[str], list[int]]:
    """Distinct road names and each road's index into them (-1: no name)."""
    name_of: dict[Any, str] = {}
    for *_, d in G.edges(data=True):
        rid = d.get("road_id")
        if rid is not None and rid not in name_of:
            label = str(d.get("name") or d.get("ref") or "").strip()
            if label and label.lower() != "nan":
                name_of[rid] = label
    names = sorted(set(name_of.values()))
    pos = {n: i for i, n in enumerate(names)}
    return names, [pos.get(name_of.get(r, ""), -1) for r in road_ids.tolist()]


def _route_chainage(
    G: nx.MultiDiGraph, routes: list[Route], risk: RiskResult
) -> dict[int, list[tuple[int, float, float]]]:
    """Segment id to ``(rank, km at start, km at end)`` along each route passing it."""
    out: dict[int, list[tuple[int, float, float]]] = {}
    for r in routes:
        segs = route_segments(G, r, risk)
        a = segs["chainage_m"].to_numpy(float) / 1000.0
        b = a + segs["length_m"].to_numpy(float) / 1000.0
        rank = int(r.metrics.get("rank", 0))
        for sid, x, y in zip(segs["segment_id"].astype(int).tolist(), a, b, strict=True):
            out.setdefault(sid, []).append((rank, float(x), float(y)))
    return out


def _roads_data(
    G: nx.MultiDiGraph,
    risk: RiskResult,
    routes: list[Route],
    *,
    simplify_m: float,
    decimals: int,
    canvas: bool,
    merge: bool,
) -> tuple[dict[str, Any], np.ndarray]:
    """The road features (segments, or merged runs of them), drawn lowest class first."""
    segs = risk.segments.reset_index(drop=True)
    _class_codes(segs["risk_class"])  # every class known, or one clear error
    rate = segs["rate"].to_numpy(float)
    runs = segment_runs(segs) if merge else None
    if runs is not None and int(runs.max()) + 1 == len(segs):
        merge, runs = False, None  # nothing to merge: every run is one segment
    if runs is not None:
        # each run shows its worst segment's numbers
        worst = pd.Series(rate).groupby(runs).idxmax().to_numpy()
        rows = segs.iloc[worst].reset_index(drop=True)
        count = np.bincount(runs)
        order_in = np.lexsort((segs["start_m"].to_numpy(float), runs))
        lines = shapely.multilinestrings(segs.geometry.to_numpy()[order_in], indices=runs[order_in])
        geom = gpd.GeoSeries(shapely.line_merge(lines), crs=segs.crs)
        first = pd.Series(segs["segment_id"].to_numpy()[order_in]).groupby(runs[order_in]).first()
        ids = first.to_numpy()
        members = pd.Series(segs["segment_id"].astype(int).to_numpy()).groupby(runs)
    else:
        rows = segs
        count = np.ones(len(segs), dtype=np.int64)
        geom = segs.geometry
        ids = segs["segment_id"].to_numpy()
        members = None
    row_codes = _class_codes(rows["risk_class"])
    draw = np.argsort(row_codes, kind="stable")  # severe last, so on top
    rows = rows.iloc[draw].reset_index(drop=True)
    shown = _display(gpd.GeoDataFrame(geometry=geom.to_numpy()[draw], crs=segs.crs), simplify_m)
    codes_top, labels = pd.factorize(rows["top_contributors"].fillna("").astype(str))
    empty = np.flatnonzero(np.asarray(labels) == "")
    top = np.asarray(codes_top).copy()
    if len(empty):
        top[top == empty[0]] = -1
        top[top > empty[0]] -= 1
        labels = np.delete(np.asarray(labels), empty[0])
    names, name_index = _road_names(G, rows["road_id"].to_numpy())
    chain = _route_chainage(G, routes, risk)
    km: dict[str, list[list[float]]] = {}
    group_ids = (
        [members.get_group(int(r)).tolist() for r in np.arange(len(count))[draw]]
        if members is not None and chain
        else None
    )
    for i, sid in enumerate(ids[draw].tolist()):
        seg_ids = group_ids[i] if group_ids is not None else [int(sid)]
        spans: dict[int, list[float]] = {}
        for s in seg_ids:
            for rank, a, b in chain.get(s, []):
                lo, hi = spans.get(rank, [a, b])
                spans[rank] = [min(lo, a), max(hi, b)]
        if spans:
            km[str(i)] = [
                [rank, round(a, 1), round(b, 1)] for rank, (a, b) in sorted(spans.items())
            ]
    data: dict[str, Any] = {
        "canvas": canvas,
        "merged": merge,
        "id": [int(v) for v in ids[draw]],
        "cls": row_codes[draw].tolist(),
        "rate": _sig(rows["rate"]),
        "low": _sig(rows["rate_low"]),
        "high": _sig(rows["rate_high"]),
        "n": rows["incidents"].astype(int).tolist() if "incidents" in rows else None,
        "top": top.tolist(),
        "labels": [str(v) for v in labels],
        "road": name_index,
        "names": names,
        "km": km,
        "parts": encode_lines(shown.to_numpy(), decimals),
    }
    if merge:
        data["count"] = count[draw].tolist()
    return data, np.asarray(shown.total_bounds)


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


def _incidents_data(
    incidents: gpd.GeoDataFrame, decimals: int
) -> tuple[list[dict[str, Any]], int, int]:
    """One record per incident drawn, and the numbers left out.

    Left out: incidents without a position, and those off the network (:data:`OFF_NETWORK`).
    """
    has_pos = ~(incidents.geometry.is_empty | incidents.geometry.isna()).to_numpy()
    off = (
        (incidents["used"].astype(str) == OFF_NETWORK).to_numpy()
        if "used" in incidents
        else np.zeros(len(incidents), dtype=bool)
    )
    pts = incidents[has_pos & ~off].to_crs(settings.display_crs)
    n_off = int((has_pos & off).sum())
    if pts.empty:
        return [], int((~has_pos).sum()), n_off
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
    return out, int((~has_pos).sum()), n_off


def _route_line(G: nx.MultiDiGraph, route: Route) -> shapely.Geometry:
    return shapely.line_merge(shapely.union_all([G.edges[e]["geometry"] for e in route.edges]))


def rate_words(rate: float, *, km: float = 100.0, days: float = 1.0) -> str:
    """A rate (incidents per km per 30 days) in words, as a chance for `km` driven in `days`.

    The chance of at least one incident is ``1 − exp(−rate · km · days / 30)``.

    Examples
    --------
    >>> rate_words(0.02)
    'about 6.4% chance of an incident per 100 km driven in a day'
    >>> rate_words(0.00001)
    'under 0.1% chance of an incident per 100 km driven in a day'
    """
    p = 1.0 - math.exp(-max(rate, 0.0) * km * days / 30.0)
    when = "in a day" if days == 1 else f"in {days:g} days"
    if p < 0.001:
        share = "under 0.1%"
    elif p < 0.1:
        share = f"about {100 * p:.2g}%"
    else:
        share = f"about {p:.0%}"
    return f"{share} chance of an incident per {km:g} km driven {when}"


def _route_label(route: Route) -> str:
    mt = route.metrics
    return f"Route {mt['rank']}: {mt['length_km']:.0f} km, P(≥1 incident) {mt['p_incident']:.0%}"


def _segment_points(risk: RiskResult, ids: list[int]) -> dict[int, tuple[float, float]]:
    """Lat/lon of the middle of each segment in `ids`."""
    if not ids:
        return {}
    segs = risk.segments.set_index("segment_id")
    geom = segs.geometry.loc[sorted(set(ids))]
    mid = gpd.GeoSeries(
        shapely.line_interpolate_point(geom.to_numpy(), 0.5, normalized=True),
        index=geom.index,
        crs=segs.crs,
    ).to_crs(settings.display_crs)
    return {int(i): (float(g.y), float(g.x)) for i, g in mid.items()}


def _named_chainage(G: nx.MultiDiGraph, route: Route) -> list[tuple[float, str]]:
    """Named places along `route` with their km from the start."""
    out, km = [], 0.0
    for i, n in enumerate(route.nodes):
        if i > 0:
            km += float(G.edges[route.edges[i - 1]]["length"]) / 1000.0
        name = G.nodes[n].get("name")
        if name:
            out.append((km, str(name)))
    return out


def _near(places: list[tuple[float, str]], km: float) -> str:
    """'near NAME' for the named place nearest to `km` along a route ('' if none)."""
    if not places:
        return ""
    d, name = min((abs(k - km), n) for k, n in places)
    return f"near {name}" if d <= 25 else f"{d:.0f} km from {name}"


def _worst_rows(G: nx.MultiDiGraph, routes: list[Route]) -> list[dict[str, Any]]:
    """The listed worst segments of each route above 'low' (rank, km, class, rate, place)."""
    rows = []
    for r in routes:
        places = _named_chainage(G, r)
        for w in r.metrics.get("worst_segments", []):
            if w["risk_class"] in {"low", INSUFFICIENT}:
                continue
            rows.append(
                {
                    "rank": int(r.metrics["rank"]),
                    "segment_id": int(w["segment_id"]),
                    "km": float(w["chainage_km"]),
                    "cls": str(w["risk_class"]),
                    "rate": float(w["rate"]),
                    "near": _near(places, float(w["chainage_km"])),
                }
            )
    return rows


def _routes_data(
    G: nx.MultiDiGraph,
    routes: list[Route],
    risk: RiskResult,
    simplify_m: float,
    decimals: int,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], np.ndarray | None]:
    """The route layers, the worst-segment labels, and the routes' lon/lat bounds."""
    if not routes:
        return [], [], None
    lines = gpd.GeoDataFrame(geometry=[_route_line(G, r) for r in routes], crs=G.graph["crs"])
    shown = _display(lines, simplify_m)
    parts = encode_lines(shown.to_numpy(), decimals)
    out = []
    for i, (r, p, line) in enumerate(zip(routes, parts, shown.to_numpy(), strict=True)):
        mt = r.metrics
        worst = mt["worst_segment"]
        flat = max(float(v) for _, v in mt["profile"]) <= 1.2 * min(
            float(v) for _, v in mt["profile"]
        )
        rows = [
            ["via", ", ".join(mt["via"]) or "direct"],
            ["length", f"{mt['length_km']:.1f} km"],
            ["days on the road", f"{mt['travel_days']:.1f}"],
            ["expected incidents", f"{mt['expected_incidents']:.3f}"],
            [
                "P(≥1 incident)",
                f"{mt['p_incident']:.1%} ({mt['p_incident_low']:.1%}–{mt['p_incident_high']:.1%})",
            ],
            [
                "worst segment",
                "none stands out (the risk is even along the route)"
                if flat
                else f"km {worst['chainage_km']:g} ({worst['risk_class']}, segment "
                f"{worst['segment_id']})",
            ],
        ]
        if int(mt["rank"]) != 1 and "shared_fraction" in mt:
            rows.append(["shared with route 1", f"{mt['shared_fraction']:.0%}"])
        # the rank, drawn along the route at two places (staggered between routes)
        marks = []
        merged = shapely.line_merge(line) if line.geom_type == "MultiLineString" else line
        for frac in (0.45 + 0.07 * (i % 5), 0.8 + 0.04 * (i % 5)):
            pt = shapely.line_interpolate_point(merged, frac, normalized=True)
            marks.append([round(float(pt.y), decimals), round(float(pt.x), decimals)])
        out.append(
            {
                "label": _route_label(r),
                "rank": int(mt["rank"]),
                "colour": ROUTE_COLOURS[i % len(ROUTE_COLOURS)],
                "weight": max(18 - 5 * i, 6),
                "show": True,
                "parts": p,
                "lines": rows,
                "marks": marks,
            }
        )
    worst_rows = sorted(_worst_rows(G, routes), key=lambda w: -w["rate"])
    where = _segment_points(risk, [w["segment_id"] for w in worst_rows])
    mid = risk.segments.set_index("segment_id").geometry
    # one label per hot spot: worst rows within LABEL_GROUP_M of a label's join it
    groups: list[dict[str, Any]] = []
    for w in worst_rows:
        at = mid.loc[w["segment_id"]].interpolate(0.5, normalized=True)
        group = next((g for g in groups if g["at"].distance(at) <= LABEL_GROUP_M), None)
        if group is None:
            group = {"at": at, "row": w, "ranks": {}}
            groups.append(group)
        group["ranks"].setdefault(w["rank"], w["km"])
    worst = []
    for g in groups:
        w = g["row"]
        kms = [
            f"km {km:.0f}" + (f" (route {rank})" if len(routes) > 1 else "")
            for rank, km in sorted(g["ranks"].items())
        ]
        lat, lon = where[w["segment_id"]]
        worst.append(
            {"lat": lat, "lon": lon, "cls": w["cls"], "text": f"{', '.join(kms)} {w['cls']}"}
        )
    return out, worst, np.asarray(shown.total_bounds)


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


def _swatch(name: str) -> str:
    """A legend swatch: the class's line as drawn (colour, width, dash, casing)."""
    colour = CLASS_COLOURS.get(name, INSUFFICIENT_COLOUR)
    w = CLASS_WEIGHTS[name]
    dash = ' stroke-dasharray="3 4"' if name == INSUFFICIENT else ""
    casing = (
        f'<line x1="2" x2="24" y1="6" y2="6" stroke="{CASING_COLOUR}" stroke-width="{w + 3:g}"/>'
        if name in CASED_CLASSES
        else ""
    )
    return (
        f'<svg class="cr-swatch" width="26" height="12" aria-hidden="true">{casing}'
        f'<line x1="2" x2="24" y1="6" y2="6" stroke="{colour}" stroke-width="{w:g}"{dash}/>'
        "</svg>"
    )


def _legend(
    risk: RiskResult,
    *,
    incidents: bool,
    uncertain: bool,
    heat: bool,
    wells: bool,
    insufficient: bool,
) -> str:
    cmap = risk_colormap(risk)
    t = risk.params.class_thresholds
    bounds = [f"&lt; {t[0]:g}", f"{t[0]:g} – {t[1]:g}", f"{t[1]:g} – {t[2]:g}", f"≥ {t[2]:g}"]

    def chance(rate: float) -> str:
        return rate_words(rate).split(" chance")[0].replace("about ", "≈")

    rows = "".join(
        f'<div data-colour="{CLASS_COLOURS[c]}">{_swatch(c)}<b>{c}</b> {b}: '
        f"{_esc(chance(lo))}{'+' if lo else ''}</div>"
        for c, b, lo in reversed(list(zip(RISK_CLASSES, bounds, [0.0, *t], strict=True)))
    )
    if insufficient:
        rows += (
            f"<div>{_swatch(INSUFFICIENT)}insufficient data (the data cannot tell this road "
            "from the prior)</div>"
        )
    extra = ""
    if incidents:
        extra += (
            '<div><span class="cr-dot convoyrisk-incident"></span>incident (used in the risk)</div>'
            '<div><span class="cr-dot convoyrisk-incident cr-unused"></span>incident not used '
            "(too old, too imprecise or after the as-of date)</div>"
        )
    if uncertain:
        extra += '<div><span class="cr-ring"></span>uncertainty of its position</div>'
    if heat:
        extra += "<div>grey haze: where incidents are dense (not the risk)</div>"
    if wells:
        extra += (
            '<div><span class="cr-dot" style="background:#333"></span>town or village '
            '<span class="cr-dot" style="background:#6baed6;border:1px solid #08519c;'
            'margin-left:8px"></span>well</div>'
        )
    return (
        f"<div>{_esc(cmap.caption)}: chance of an incident per 100 km driven in a day</div>"
        f"{rows}{extra}"
    )


def _comparison(routes: list[Route]) -> str:
    head = (
        '<tr><th></th><th scope="col">#</th><th class="cr-via" scope="col">via</th>'
        '<th scope="col">km</th><th scope="col">days</th><th scope="col">E[inc.]</th>'
        '<th scope="col">P(≥1)</th></tr>'
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


def _worst_table(rows: list[dict[str, Any]], points: dict[int, tuple[float, float]]) -> str:
    """The worst segments of each route as a table, each with a button that shows it."""
    if not rows:
        return "<p>No segment above 'low' on the routes.</p>"
    body = "".join(
        f"<tr><td>{w['rank']}</td><td>{w['km']:.0f}</td><td>{_esc(w['near'])}</td>"
        f"<td>{_esc(w['cls'])}</td><td>{w['rate']:.3g}</td>"
        f'<td><button type="button" class="cr-goto" data-lat="{points[w["segment_id"]][0]}" '
        f'data-lon="{points[w["segment_id"]][1]}">show</button></td></tr>'
        for w in rows
    )
    return (
        '<table class="cr-worst-table" id="cr-worst" tabindex="-1">'
        "<caption>Worst segments of each route</caption>"
        '<tr><th scope="col">route</th><th scope="col">km</th><th scope="col">where</th>'
        '<th scope="col">class</th><th scope="col">rate</th><th></th></tr>'
        f"{body}</table>"
    )


def profile_svg(
    G: nx.MultiDiGraph, route: Route, risk: RiskResult, *, width: int = 420, height: int = 150
) -> str:
    """The risk profile along `route` as an inline SVG bar chart on a log rate axis.

    One bar per segment, as wide as the segment, coloured by its class, reaching
    its rate on a logarithmic axis whose range always holds the class thresholds
    (from a tenth of the first to ten times the last, widened only for rates
    beyond): the same rate sits at the same height on every map. The classes'
    bands are named in the right margin; named places along the route mark the
    x axis (the two ends always); the peak is named by its nearest place, or the
    profile is said to be even when no segment stands out.
    """
    profile = np.asarray(route.metrics["profile"], dtype=float).reshape(-1, 2)
    total_km = float(route.metrics["length_km"])
    left, right, top, bottom = 40, 56, 18, 30
    w, h = width - left - right, height - top - bottom
    chain, rate = profile[:, 0], profile[:, 1]
    ends = np.r_[chain[1:], total_km]
    t = risk.params.class_thresholds
    lo = t[0] / 10.0
    hi = max(t[-1] * 10.0, float(rate.max()) * 1.2 if len(rate) else 0.0)
    span = math.log10(hi) - math.log10(lo)

    def x(km: float) -> float:
        return left + w * km / total_km if total_km > 0 else left

    def y(r: float) -> float:
        return top + h * (1.0 - (math.log10(max(r, lo)) - math.log10(lo)) / span)

    edges = [lo, *t, hi]
    bands = "".join(
        f'<rect x="{left}" y="{y(b):.1f}" width="{w}" height="{y(a) - y(b):.1f}" '
        f'fill="{CLASS_COLOURS[c]}" fill-opacity="0.1"/>'
        f'<text x="{left + w + 4}" y="{(y(a) + y(b)) / 2 + 3:.1f}" fill="#222">{c}</text>'
        for a, b, c in zip(edges[:-1], edges[1:], RISK_CLASSES, strict=True)
    )
    classes = classify(rate, t)
    bars = "".join(
        f'<rect x="{x(a):.1f}" y="{y(r):.1f}" width="{max(x(b) - x(a), 0.6):.1f}" '
        f'height="{max(top + h - y(r), 1.0):.1f}" fill="{CLASS_COLOURS[str(c)]}"/>'
        for a, b, r, c in zip(chain, ends, rate, classes, strict=True)
    )
    lines = "".join(
        f'<line class="cr-threshold" data-rate="{v:g}" x1="{left}" x2="{left + w}" '
        f'y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#555" stroke-dasharray="3 3"/>'
        f'<text x="{left - 3}" y="{y(v) + 3:.1f}" text-anchor="end">{v:g}</text>'
        for v in t
    )
    # named places along the route: both ends always, others where they have room
    places = _named_chainage(G, route)
    ticks = ""
    if places:
        first, last = places[0], places[-1]
        keep = [first]
        for km, name in places[1:-1]:
            if x(km) - x(keep[-1][0]) >= 60 and x(last[0]) - x(km) >= 60:
                keep.append((km, name))
        if last is not first:
            keep.append(last)
        for km, name in keep:
            anchor = "start" if km == first[0] else "end" if km == last[0] else "middle"
            ticks += (
                f'<line x1="{x(km):.1f}" x2="{x(km):.1f}" y1="{top + h}" y2="{top + h + 4}" '
                f'stroke="#333"/><text x="{x(km):.1f}" y="{top + h + 14}" '
                f'text-anchor="{anchor}">{_esc(name)}</text>'
            )
    peak = int(np.argmax(rate)) if len(rate) else 0
    if len(rate) and rate[peak] > 1.2 * float(np.median(rate)):
        pkm = float(chain[peak] + ends[peak]) / 2.0
        text = f"peak: km {chain[peak]:.0f} {_esc(_near(places, pkm))} ({classes[peak]})"
        anchor = "start" if x(pkm) < left + w / 2 else "end"
        tx = x(pkm) + (6 if anchor == "start" else -6)
        mark = (
            f'<path d="M{x(pkm):.1f} {top - 1} l-4 -6 h8 z" fill="#000"/>'
            f'<text class="cr-peak" x="{tx:.1f}" y="{top - 6}" text-anchor="{anchor}">{text}</text>'
        )
    else:
        mark = f'<text class="cr-peak" x="{left}" y="{top - 6}">no peak: the risk is even</text>'
    axes = (
        f'<line x1="{left}" x2="{left}" y1="{top}" y2="{top + h}" stroke="#333"/>'
        f'<line x1="{left}" x2="{left + w}" y1="{top + h}" y2="{top + h}" stroke="#333"/>'
        f'<text x="{left + w}" y="{height - 2}" text-anchor="end">{total_km:.0f} km</text>'
        f'<text x="{left}" y="{height - 2}">0 km</text>'
        f'<text x="10" y="{top + h / 2:.0f}" transform="rotate(-90 10 {top + h / 2:.0f})" '
        f'text-anchor="middle">rate (log)</text>'
    )
    return (
        f'<svg class="cr-profile" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} '
        f'{height}" width="{width}" height="{height}" font-size="10" font-family="sans-serif" '
        f'role="img" aria-label="Risk along route {route.metrics["rank"]}">'
        f"{bands}{bars}{lines}{axes}{ticks}{mark}</svg>"
    )


def _briefing_panel(
    G: nx.MultiDiGraph,
    risk: RiskResult,
    routes: list[Route],
    title: str,
    *,
    legend: str,
    worst_table: str,
    profile: bool,
    marking: str | None,
) -> str:
    """Title, legend, worst segments, comparison of the alternatives and the profile."""
    mark = f'<div class="cr-marking-inline"><b>{_esc(marking)}</b></div>' if marking else ""
    parts = [
        (
            f'<div class="cr-sheet-head"><div class="cr-title">{_esc(title)}</div>'
            '<button type="button" class="cr-sheet-toggle" aria-expanded="true">hide</button>'
            f"</div>{mark}<div>risk as of {risk.as_of.date().isoformat()}</div>"
        ),
    ]
    if routes:
        parts.append(f'<details open class="cr-worst-box"><summary>Worst segments</summary>'
                     f"{worst_table}</details>")  # fmt: skip
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
    parts.append(f'<details open class="cr-legend"><summary>Legend</summary>{legend}</details>')
    return "".join(parts)


def _footer(
    risk: RiskResult,
    sources: list[str],
    *,
    approximate: bool,
    uncertain: bool,
    no_position: int,
    off_network: int,
    incidents_drawn: int,
    merged: bool,
    base: str,
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
        f'<span class="cr-basemap-note">Base: {_esc(base)}</span>',
    ]
    if merged:
        parts.append("consecutive segments of a road in one class drawn as one line")
    if no_position:
        parts.append(f"{no_position} incident(s) without a position are not drawn")
    if off_network:
        parts.append(f"{off_network} incident(s) off the road network are not drawn")
    if approximate:
        parts.append(
            "<b>Road geometry approximate</b> (digitised from place positions, not surveyed)"
        )
    if uncertain:
        parts.append("incident positions uncertain: dashed circles show their radius")
    parts.append(f"convoyrisk {_esc(_version())}")
    return " · ".join(parts)


def map_title(G: nx.MultiDiGraph, routes: list[Route]) -> str:
    """'convoyrisk: A → B' from the named ends of the first route ('convoyrisk' if none)."""
    if not routes or not routes[0].nodes:
        return "convoyrisk"
    ends = [G.nodes[routes[0].nodes[i]].get("name") for i in (0, -1)]
    if not all(ends):
        return "convoyrisk: " + (routes[0].name if routes[0].name != "alternative" else "routes")
    return f"convoyrisk: {ends[0]} → {ends[1]}"


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


def _base_layers(
    bounds: tuple[float, float, float, float], *, basemap: str | Path | None, context: bool
) -> tuple[dict[str, Any] | None, dict[str, Any] | None, str]:
    """The embedded MBTiles tiles, the Natural Earth context, and what the base is, in words."""
    from .basemap import CONTEXT_SOURCE, context_layer, read_mbtiles  # noqa: PLC0415 - on use

    bases, tiles, ctx = [], None, None
    if basemap is not None:
        tileset = read_mbtiles(basemap, bounds)
        tiles = {
            "name": tileset.name,
            "format": tileset.format,
            "minzoom": tileset.minzoom,
            "maxzoom": tileset.maxzoom,
            "tiles": tileset.tiles,
        }
        bases.append(
            f"{tileset.name} (MBTiles, zoom {tileset.minzoom}–{tileset.maxzoom}"
            + (f", {tileset.attribution}" if tileset.attribution else "")
            + ")"
        )
    if context:
        layer = context_layer(bounds)
        ctx = {
            "borders": encode_lines([shapely.LineString(a) for a in layer["borders"]], 3),
            "coasts": encode_lines([shapely.LineString(a) for a in layer["coasts"]], 3),
            "names": [[n, round(y, 3), round(x, 3)] for n, x, y in layer["names"]],
        }
        bases.append(CONTEXT_SOURCE)
    return tiles, ctx, "; ".join(bases) or "none (roads, places and incidents give the context)"


def risk_map(
    G: nx.MultiDiGraph,
    risk: RiskResult,
    *,
    routes: list[Route] | None = None,
    places: gpd.GeoDataFrame | None = None,
    sources: list[str] | None = None,
    tiles: str | list[str] | None = None,
    tiles_shown: bool = False,
    title: str | None = None,
    heat: bool = True,
    time_slider: bool = False,
    cluster: bool | None = None,
    minimap: bool = True,
    profile: bool = True,
    simplify_m: float = 10.0,
    decimals: int = 5,
    renderer: str = "auto",
    merge: bool | None = None,
    marking: str | None = None,
    basemap: str | Path | None = None,
    context: bool = True,
) -> folium.Map:
    """Build the briefing map.

    Parameters
    ----------
    G
        The road graph.
    risk
        Scored segments and the incidents behind them.
    routes
        Scored alternatives to draw as layers, best first, with their worst
        segments labelled on the map and listed in a table, a comparison panel
        and the risk profile of the best.
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
        Map title, shown in the briefing panel and the browser tab; None: from
        the named ends of the first route (:func:`map_title`).
    heat
        Add the incident heat layer (toggleable, shown on opening, drawn under
        the roads and routes and never taking clicks).
    time_slider
        Add a slider that shows the incidents up to a date (and the heat of those);
        road colours stay those of the as-of date.
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
    merge
        Draw each run of consecutive segments of a road in one class as one line
        (:func:`segment_runs`); None merges from ``MERGE_MIN_SEGMENTS`` segments on.
    marking
        A handling marking (e.g. ``"RESTRICTED"``) shown at the top of the map and
        at the top and bottom of the printed page.
    basemap
        An MBTiles file of raster tiles (PNG or JPEG) to embed under the risk, for
        the map's extent (see :func:`convoyrisk.basemap.read_mbtiles`).
    context
        Draw country borders and names around the roads, offline, from Natural
        Earth (:func:`convoyrisk.basemap.context_layer`).

    Returns
    -------
    folium.Map
        Save it with :func:`save_map`.
    """
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
    title = map_title(G, routes) if title is None else title
    tile_names = [tiles] if isinstance(tiles, str) else list(tiles or [])
    n_segments = len(risk.segments)
    canvas = renderer == "canvas" or (renderer == "auto" and n_segments > SVG_MAX_SEGMENTS)
    merged = n_segments >= MERGE_MIN_SEGMENTS if merge is None else merge

    roads, bounds = _roads_data(
        G, risk, routes, simplify_m=simplify_m, decimals=decimals, canvas=canvas, merge=merged
    )
    incidents, no_position, off_network = _incidents_data(risk.incidents, decimals)
    clustered = len(incidents) >= CLUSTER_MIN_INCIDENTS if cluster is None else cluster
    uncertain = any(r["radius"] > 0 for r in incidents)
    approximate = any(d.get("geometry_source") == "approximate" for *_, d in G.edges(data=True))
    heat_on = heat and bool(incidents)
    slider = time_slider and bool(incidents)
    route_rows, worst_labels, route_bounds = _routes_data(G, routes, risk, simplify_m, decimals)
    minx, miny, maxx, maxy = bounds
    tiles_data, ctx, base = _base_layers(
        (float(minx), float(miny), float(maxx), float(maxy)), basemap=basemap, context=context
    )

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
        insufficient=MAP_CLASSES.index(INSUFFICIENT) in roads["cls"],
    )
    worst_rows = _worst_rows(G, routes)
    worst_table = _worst_table(
        worst_rows, _segment_points(risk, [w["segment_id"] for w in worst_rows])
    )
    footer = _footer(
        risk,
        sources or [],
        approximate=approximate,
        uncertain=uncertain,
        no_position=no_position,
        off_network=off_network,
        incidents_drawn=len(incidents),
        merged=bool(roads["merged"]),
        base=base,
    )
    panels = [
        [
            _briefing_panel(
                G,
                risk,
                routes,
                title,
                legend=legend,
                worst_table=worst_table,
                profile=profile,
                marking=marking,
            ),
            "topleft",
            "cr-briefing",
        ],
        [footer, "bottomleft", "cr-footer"],
    ]
    dates = [r["date"] for r in incidents]
    fit = route_bounds if route_bounds is not None else bounds
    data = {
        "decimals": decimals,
        "background": BACKGROUND,
        "level": f"{risk.params.credible_level:.0%}",
        "asOf": risk.as_of.date().isoformat(),
        "classes": [
            {
                "name": c,
                "colour": CLASS_COLOURS.get(c, INSUFFICIENT_COLOUR),
                "weight": CLASS_WEIGHTS[c],
                "dash": "3 6" if c == INSUFFICIENT else None,
                "casing": c in CASED_CLASSES,
            }
            for c in MAP_CLASSES
        ],
        "casing": CASING_COLOUR,
        "incidentColour": INCIDENT_COLOUR,
        "roads": roads,
        "routes": route_rows,
        "worst": worst_labels,
        "incidents": {"cluster": clustered, "rows": incidents},
        "heat": {"show": True} if heat_on else None,
        "slider": (
            {"start": min(dates), "days": max(r["day"] for r in incidents)} if slider else None
        ),
        "places": place_rows,
        "tiles": tile_vars,
        "tilesShown": bool(tile_vars) and tiles_shown,
        "basemap": tiles_data,
        "context": ctx,
        "collapseLayers": False,
        "panels": panels,
        "footer": footer,
        "marking": marking or None,
        "minimap": _minimap_data(G, decimals) if minimap else None,
        "bounds": [[float(miny), float(minx)], [float(maxy), float(maxx)]],
        "fit": [[float(fit[1]), float(fit[0])], [float(fit[3]), float(fit[2])]],
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
    """Render `m` to HTML at `path` atomically; embed all assets when `offline`.

    A page over :data:`WARN_BYTES` logs a warning on the ``convoyrisk`` logger
    (browsers slow down on it): draw fewer incidents, merge segments, or raise
    ``simplify_m``.
    """
    page = m.get_root().render()
    if offline:
        page = embed_assets(page)
    out = write_text_atomic(path, page)
    size = out.stat().st_size
    if size > WARN_BYTES:
        log.warning(
            "The map %s is %.0f MB (over %.0f MB): browsers may be slow to open it; "
            "leave out incidents (`--no-heat`, fewer rows), or raise `--simplify`.",
            out,
            size / 1e6,
            WARN_BYTES / 1e6,
        )
    return out
