"""Folium briefing maps of segment risk, incidents and route alternatives, that open offline.

This is the only module that reprojects to EPSG:4326, and only to draw. The
map is a :class:`folium.Map` whose layers are drawn by a small script
(``data/briefing.js``, styled by ``data/briefing.css``) from one JSON block:
road segments (or merged runs of them) drawn risk first (lowest class first,
wider and darker with risk, high and severe over a dark casing), the worst
segments of each route labelled, incidents as hollow rings with their
uncertainty circles (where they crowd, one thin ring around them and their count
beside the road, so they never hide its colour), a heat layer under the roads, a time slider, the
alternatives as layers with their rank drawn along them, places, Natural Earth
borders or a user's MBTiles tiles (:mod:`convoyrisk.basemap`), the panels
(:mod:`convoyrisk.panels`), a minimap, a print layout (one A4 landscape page)
and a phone layout (a bottom sheet). Geometry is simplified for display and
coordinates are rounded and delta-encoded, which keeps a 100k-segment map small.

Safety: data never becomes markup. Values from the data reach the page as
JSON text (with ``<``, ``>`` and ``&`` escaped) and the script puts them into
the page with ``textContent``; the panels' HTML is built with every data
value escaped.

Offline: by default every Leaflet and plugin asset (JavaScript, CSS) is
embedded in the HTML from the ``folium-offline`` package, the Bootstrap and
Font Awesome files folium links by default are left out (nothing here uses
them), CSS references to other files are dropped, and no online tile layer is
shown.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from importlib import resources
from pathlib import Path
from typing import Any

import folium
import folium.plugins
import geopandas as gpd
import networkx as nx
import numpy as np
import numpy.typing as npt
import pandas as pd
import shapely
from branca.element import Element, MacroElement
from folium.elements import JSCSSMixin
from jinja2 import Template

from . import settings
from ._errors import InputError
from .compiled import compile_graph
from .convert import validate_graph
from .panels import (
    BACKGROUND,
    CALM_CLASSES,
    CASED_CLASSES,
    CASING_COLOUR,
    CLASS_COLOURS,
    CLASS_WEIGHTS,
    INCIDENT_COLOUR,
    INSUFFICIENT,
    INSUFFICIENT_COLOUR,
    MAP_CLASSES,
    ROUTE_COLOURS,
    briefing_panel_html,
    country_note,
    escape_html,
    footer_html,
    legend_html,
    map_title,
    profile_svg,
    rate_words,
    risk_colormap,
    worst_rows,
    worst_table_html,
)
from .risk import RiskResult
from .routing import Route, route_segments
from .utils import log, write_text_atomic

__all__ = [
    "BACKGROUND",
    "CASED_CLASSES",
    "CASING_COLOUR",
    "CLASS_COLOURS",
    "CLASS_WEIGHTS",
    "INCIDENT_COLOUR",
    "INSUFFICIENT",
    "INSUFFICIENT_COLOUR",
    "MAP_CLASSES",
    "ROUTE_COLOURS",
    "embed_assets",
    "encode_lines",
    "map_title",
    "profile_svg",
    "rate_words",
    "risk_colormap",
    "risk_map",
    "save_map",
    "segment_runs",
]

SVG_MAX_SEGMENTS = 20_000
"""Above this many segments the roads are drawn on a canvas instead of as SVG paths."""

MERGE_MIN_SEGMENTS = 5_000
"""From this many segments on, runs of a road's segments of one class are drawn as one line
(``merge=None``)."""

COUNTRY_MIN_SEGMENTS = 50_000
"""From this many segments on (``country=None``), the roads are drawn as a country map.

A country map draws the roads into map tiles from a spatial index (so a pan or a
zoom costs what is in view, not the whole country), leaves low-risk and
insufficient-data runs of minor roads out below :data:`DETAIL_ZOOM`, and packs
its data (:func:`varint_text`, :func:`encode_chain`). The embedded Kidal–Gao
network (about 1,600 segments) is far below it."""

DETAIL_ZOOM = 10
"""On country maps, runs of minor roads (not in :data:`OVERVIEW_HIGHWAYS`) that are low
risk or insufficient data are drawn from this zoom on (at 10, 1.5 km is about 10 px);
below it, the overview: the major roads and every elevated, high or severe run."""

OVERVIEW_HIGHWAYS = frozenset(
    {"motorway", "trunk", "primary", "secondary"}
    | {f"{h}_link" for h in ("motorway", "trunk", "primary", "secondary")}
)
"""OSM ``highway`` values drawn at every zoom on country maps, whatever their class."""

CELL_DEG = 0.25
"""Side of the spatial index's cells on country maps, degrees (about 28 km)."""

RATE_DIGITS = 2
"""Significant digits of the rates in a country map's tooltips (three on other maps)."""

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


def _json_for_html(obj: Any) -> str:  # noqa: ANN401 - any JSON-able object
    """JSON that is safe inside a ``<script>`` element (no ``<``, ``>`` or ``&`` left).

    Nor ``{{``, ``{%`` or ``{#``: folium reads the page's HTML as a Jinja template
    once more. Outside strings JSON never has them, so the second character is
    always in a string, where its JSON escape (``u007b``, ``u0025``, ``u0023`` after a
    backslash) means the same.
    """
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    text = text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
    return text.replace("{{", "{\\u007b").replace("{%", "{\\u0025").replace("{#", "{\\u0023")


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
        colours = {"background": BACKGROUND, "incident": INCIDENT_COLOUR, **CLASS_COLOURS}
        style = resources.files("convoyrisk").joinpath("data/briefing.css")
        self.css = (
            ":root { "
            + " ".join(f"--cr-{k}: {v};" for k, v in colours.items())
            + " }\n"
            + style.read_text(encoding="utf-8")
        )
        self.script = (
            resources.files("convoyrisk").joinpath("data/briefing.js").read_text(encoding="utf-8")
        )


def _quantised(
    geoms: npt.NDArray[np.object_], decimals: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Vertices times ``10**decimals`` as integers, each part's repeats dropped.

    Returns the vertices, the part of each, and the geometry of each part. A
    vertex that rounding makes equal to the one before is dropped, except a
    part's first and last.
    """
    parts, owner = shapely.get_parts(geoms, return_index=True)
    coords, part_of = shapely.get_coordinates(parts, return_index=True)
    q = np.rint(coords * 10.0**decimals).astype(np.int64)
    first = np.ones(len(q), dtype=bool)
    first[1:] = part_of[1:] != part_of[:-1]
    last = np.ones(len(q), dtype=bool)
    last[:-1] = first[1:]
    same = np.zeros(len(q), dtype=bool)
    same[1:] = np.all(q[1:] == q[:-1], axis=1)
    keep = first | last | ~same
    return q[keep], part_of[keep], owner


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
    q, part_of, owner = _quantised(arr, decimals)
    first = np.r_[True, part_of[1:] != part_of[:-1]]
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
    compiled = compile_graph(G)
    label = pd.Series(compiled.road_name, index=compiled.road_id, dtype=object)
    named = label[(label != "") & (label.str.lower() != "nan")]
    # each road's name: that of its first named edge
    name_of: dict[Any, str] = named[~named.index.duplicated()].to_dict()
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


def _road_features(
    segs: gpd.GeoDataFrame, *, merge: bool
) -> tuple[pd.DataFrame, np.ndarray, gpd.GeoSeries, np.ndarray, list[list[int]] | None, bool]:
    """Features to draw: each segment, or each run of them (:func:`segment_runs`).

    Returns the row whose numbers each feature shows (a run's worst segment), the
    segments in each, the geometry, the first segment id, each run's segment ids
    (None when not merged) and whether runs were merged.
    """
    runs = segment_runs(segs) if merge else None
    if runs is not None and int(runs.max()) + 1 == len(segs):
        merge, runs = False, None  # nothing to merge: every run is one segment
    if runs is None:
        count = np.ones(len(segs), dtype=np.int64)
        return segs, count, segs.geometry, segs["segment_id"].to_numpy(), None, False
    rate = segs["rate"].to_numpy(float)
    # each run shows its worst segment's numbers
    worst = pd.Series(rate).groupby(runs).idxmax().to_numpy()
    rows = segs.iloc[worst].reset_index(drop=True)
    count = np.bincount(runs)
    order_in = np.lexsort((segs["start_m"].to_numpy(float), runs))
    lines = shapely.multilinestrings(segs.geometry.to_numpy()[order_in], indices=runs[order_in])
    geom = gpd.GeoSeries(shapely.line_merge(lines), crs=segs.crs)
    first = pd.Series(segs["segment_id"].to_numpy()[order_in]).groupby(runs[order_in]).first()
    ids = first.to_numpy()
    # each run's segment ids in row order: one stable sort, not a pandas group per run
    # (a country has a million runs: get_group on each took minutes)
    by_run = segs["segment_id"].astype(int).to_numpy()[np.argsort(runs, kind="stable")]
    bounds = np.r_[0, np.cumsum(count)].tolist()
    member_ids = by_run.tolist()
    members = [member_ids[bounds[r] : bounds[r + 1]] for r in range(len(count))]
    return rows, count, geom, ids, members, True


def _route_km(
    chain: dict[int, list[tuple[int, float, float]]], seg_ids: list[int]
) -> list[list[float]]:
    """``[rank, km from, km to]`` of each route passing any of `seg_ids` (empty: none)."""
    spans: dict[int, list[float]] = {}
    for s in seg_ids:
        for rank, a, b in chain.get(s, []):
            lo, hi = spans.get(rank, [a, b])
            spans[rank] = [min(lo, a), max(hi, b)]
    return [[rank, round(a, 1), round(b, 1)] for rank, (a, b) in sorted(spans.items())]


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
    rows, count, geom, ids, members, merge = _road_features(segs, merge=merge)
    row_codes = _class_codes(rows["risk_class"])
    draw = np.argsort(row_codes, kind="stable")  # severe last, so on top
    rows = rows.iloc[draw].reset_index(drop=True)
    shown = _display(gpd.GeoDataFrame(geometry=geom.to_numpy()[draw], crs=segs.crs), simplify_m)
    codes_top, uniques = pd.factorize(rows["top_contributors"].fillna("").astype(str))
    labels = np.asarray(uniques)
    empty = np.flatnonzero(labels == "")
    top = np.asarray(codes_top).copy()
    if len(empty):
        top[top == empty[0]] = -1
        top[top > empty[0]] -= 1
        labels = np.delete(labels, empty[0])
    names, name_index = _road_names(G, rows["road_id"].to_numpy())
    chain = _route_chainage(G, routes, risk)
    km: dict[str, list[list[float]]] = {}
    group_ids = (
        [members[r] for r in np.arange(len(count))[draw].tolist()]
        if members is not None and chain
        else None
    )
    for i, sid in enumerate(ids[draw].tolist()):
        spans = _route_km(chain, group_ids[i] if group_ids is not None else [int(sid)])
        if spans:
            km[str(i)] = spans
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


def varint_text(values: Any) -> str:  # noqa: ANN401 - array-like
    """Non-negative integers as text, five bits a character, for a map's data block.

    Each value is written low bits first, five at a time, as characters from
    ``?`` (63) on: 32 is added to every chunk but the last (the varint of the
    Google polyline format, without its zigzag step: see :func:`zigzag`).
    Values below 32 take one character, below 1,024 two.

    Examples
    --------
    >>> varint_text([0, 31, 32, 1000])
    '?^_@g^'
    """
    v = np.asarray(values, dtype=np.int64).ravel()
    if len(v) == 0:
        return ""
    if (v < 0).any():
        msg = "varint_text takes non-negative integers (zigzag signed ones first)."
        raise ValueError(msg)
    chunks = [v & 31]
    rest = v >> 5
    while (rest > 0).any():
        chunks.append(rest & 31)
        rest = rest >> 5
    digits = np.stack(chunks, axis=1)  # value x chunk, low bits first
    used = np.ones_like(digits, dtype=bool)
    for k in range(1, digits.shape[1]):
        used[:, k] = (v >> (5 * k)) > 0
    more = np.zeros_like(used)
    more[:, :-1] = used[:, 1:]
    codes = (digits + 32 * more + 63)[used]
    return str(codes.astype(np.uint8).tobytes().decode("ascii"))


def _delta_text(values: Any) -> str:  # noqa: ANN401 - array-like
    """Integers as the :func:`varint_text` of the zigzag of their differences (from 0 first)."""
    return varint_text(zigzag(np.diff(np.asarray(values, dtype=np.int64), prepend=0)))


def zigzag(values: Any) -> np.ndarray:  # noqa: ANN401 - array-like
    """Signed integers to non-negative ones (0, -1, 1, -2, ... to 0, 1, 2, 3, ...).

    Examples
    --------
    >>> zigzag([0, -1, 1, -2, 2]).tolist()
    [0, 1, 2, 3, 4]
    """
    v = np.asarray(values, dtype=np.int64)
    return np.where(v < 0, -2 * v - 1, 2 * v)


def encode_chain(geoms: Any, decimals: int) -> str:  # noqa: ANN401 - array-like
    """Lines as one text: every vertex a difference from the one before, in any line.

    Coordinates are multiplied by ``10**decimals`` and rounded (vertices that
    rounding makes equal to the previous one are dropped, as in
    :func:`encode_lines`); the first vertex is a difference from (0, 0) and each
    later one from the vertex before it, also across parts and geometries, as
    zigzag varints (:func:`varint_text`, x then y). A space starts a new part
    of the same geometry and a comma a new geometry (an empty geometry is an
    empty stretch between commas); a semicolon starts a new geometry whose first
    vertex is the vertex before (consecutive runs of a road share an end), which
    is then not written again. A single line is Google's encoded polyline of
    its (x, y).

    Examples
    --------
    >>> from shapely import LineString
    >>> encode_chain([LineString([(0.0, 0.0), (0.0001, 0.0)]), LineString([(0.0002, 0.0)] * 2)], 4)
    '??A?,A???'
    >>> a, b = LineString([(0.0, 0.0), (0.0001, 0.0)]), LineString([(0.0001, 0.0), (0.0002, 0.0)])
    >>> encode_chain([a, b], 4)
    '??A?;A?'
    """
    arr = np.asarray(geoms, dtype=object)
    if arr.size == 0:
        return ""
    q, part_of, owner = _quantised(arr, decimals)
    delta = np.diff(q, axis=0, prepend=np.zeros((1, 2), dtype=np.int64))
    text = _varint_items(zigzag(delta))
    # before the first vertex of each part: a space (a new part of the same geometry)
    # or one comma for each geometry begun since the part before
    starts = np.r_[0, np.flatnonzero(np.diff(part_of)) + 1]
    part_owner = owner[part_of[starts]]
    gap = np.diff(np.r_[0, part_owner])
    lead = np.where(gap == 0, " ", np.char.multiply(",", np.maximum(gap, 0)).astype(object))
    lead[0] = "," * int(part_owner[0])
    again = (gap == 1) & np.all(delta[starts] == 0, axis=1)
    lead[again] = ";"
    text[starts[again]] = ""
    text[starts] = lead + text[starts]
    return "".join(text.tolist()) + "," * (len(arr) - 1 - int(part_owner[-1]))


def _varint_items(values: np.ndarray) -> np.ndarray:
    """The :func:`varint_text` of each row of `values` (rows of non-negative integers)."""
    rows, cols = values.shape
    flat = varint_text(values.ravel())
    # length of each value's text: its count of 5-bit chunks
    bits = np.zeros(values.size, dtype=np.int64)
    rest = values.ravel().copy()
    bits += 1
    rest >>= 5
    while (rest > 0).any():
        bits += rest > 0
        rest >>= 5
    per_row = bits.reshape(rows, cols).sum(axis=1)
    ends = np.cumsum(per_row)
    starts = ends - per_row
    pairs = zip(starts.tolist(), ends.tolist(), strict=True)
    return np.array([flat[a:b] for a, b in pairs], dtype=object)


def sig_codes(values: Any, digits: int = RATE_DIGITS) -> np.ndarray:  # noqa: ANN401 - array-like
    """Non-negative numbers rounded to `digits` significant digits, as integer codes.

    Code 0 is zero; otherwise ``1 + (e + 12) * 9 * 10**(digits-1) + (m - 10**(digits-1))``
    for the value ``m * 10**(e - digits + 1)`` with ``m`` of `digits` digits, so
    that the browser reads ``m`` and ``e`` back exactly (values from 1e-12 on; smaller
    ones are written as zero).

    Examples
    --------
    >>> sig_codes([0.0, 1.0, 0.0123]).tolist()
    [0, 1081, 903]
    """
    v = np.asarray(values, dtype=float)
    out = np.zeros(len(v), dtype=np.int64)
    pos = np.isfinite(v) & (v >= 1e-12)
    lo = 10 ** (digits - 1)
    x = v[pos]
    e = np.floor(np.log10(x)).astype(np.int64)
    m = np.rint(x / 10.0 ** (e - digits + 1)).astype(np.int64)
    up = m >= 10 * lo  # rounding carried to one more digit (9.96 to 10.0)
    e[up] += 1
    m[up] = lo
    low = m < lo  # log10 rounding the other way
    e[low] -= 1
    m[low] = np.rint(x[low] / 10.0 ** (e[low] - digits + 1)).astype(np.int64)
    out[pos] = 1 + (e + 12) * 9 * lo + (m - lo)
    return out


_SHARE = re.compile(r"^(?P<label>.*) \((?P<pct>\d+)%\)$")


def _contributor_refs(texts: Any) -> tuple[list[str], str]:  # noqa: ANN401 - array-like
    """Each text of contributors ``"A (29%); B (8%)"`` as references into one list of labels.

    Returns the distinct labels and, for each text, its count of contributors then
    each one's label index and share in percent plus one (0: a label written
    without a share), as :func:`varint_text`.
    """
    labels: dict[str, int] = {}
    out: list[int] = []
    for text in texts:
        items = [t for t in str(text).split("; ") if t] if text else []
        out.append(len(items))
        for item in items:
            m = _SHARE.match(item)
            label, pct = (m["label"], int(m["pct"]) + 1) if m else (item, 0)
            out += [labels.setdefault(label, len(labels)), pct]
    return list(labels), varint_text(out)


def _highways(G: nx.MultiDiGraph, rows: pd.DataFrame) -> np.ndarray:
    """The OSM ``highway`` of each row's edge (``""`` where the graph has none)."""
    table = pd.DataFrame(
        [(u, v, k, str(h or "")) for u, v, k, h in G.edges(keys=True, data="highway")],
        columns=["u", "v", "key", "highway"],
    ).drop_duplicates(["u", "v", "key"])
    found = rows[["u", "v", "key"]].merge(table, on=["u", "v", "key"], how="left")
    return found["highway"].fillna("").to_numpy(dtype=object)


def country_cells(
    bounds: np.ndarray, origin: tuple[float, float], cell_deg: float = CELL_DEG
) -> tuple[np.ndarray, np.ndarray]:
    """Cell (column, row) of each feature: that of the centre of its lon/lat box.

    `bounds` is ``(n, 4)`` of ``minx, miny, maxx, maxy``; `origin` the lower-left
    corner of the grid. Every feature is in exactly one cell.
    """
    cx = np.floor(((bounds[:, 0] + bounds[:, 2]) / 2 - origin[0]) / cell_deg).astype(np.int64)
    cy = np.floor(((bounds[:, 1] + bounds[:, 3]) / 2 - origin[1]) / cell_deg).astype(np.int64)
    return np.maximum(cx, 0), np.maximum(cy, 0)


def _country_roads(
    G: nx.MultiDiGraph,
    risk: RiskResult,
    routes: list[Route],
    *,
    simplify_m: float,
    decimals: int,
) -> tuple[dict[str, Any], np.ndarray]:
    """The road features of a country map: runs in cells, overview first, packed as text.

    Features are ordered by level (the overview first: major roads and every run
    above :data:`CALM_CLASSES`; then the rest, drawn from :data:`DETAIL_ZOOM`),
    then by cell (:func:`country_cells`), then by first segment id. ``cells``
    lists ``[column, row, first feature, count]`` in that order.
    """
    segs = risk.segments.reset_index(drop=True)
    _class_codes(segs["risk_class"])
    rows, count, geom, ids, members, merged = _road_features(segs, merge=True)
    codes = _class_codes(rows["risk_class"])
    calm = np.isin(codes, [MAP_CLASSES.index(c) for c in CALM_CLASSES])
    major = np.isin(_highways(G, rows), list(OVERVIEW_HIGHWAYS))
    detail = calm & ~major
    shown = _display(gpd.GeoDataFrame(geometry=geom.to_numpy(), crs=segs.crs), simplify_m)
    bounds = shapely.bounds(shown.to_numpy())
    box = np.asarray(shown.total_bounds)
    origin = (float(box[0]), float(box[1]))
    cx, cy = country_cells(bounds, origin)
    order = np.lexsort((ids, cy, cx, detail))
    cell_key = np.stack([detail[order], cx[order], cy[order]], axis=1)
    new = np.ones(len(order), dtype=bool)
    new[1:] = np.any(cell_key[1:] != cell_key[:-1], axis=1)
    starts = np.flatnonzero(new)
    sizes = np.diff(np.r_[starts, len(order)])
    cells = [
        [int(cx[order][a]), int(cy[order][a]), int(a), int(n)]
        for a, n in zip(starts.tolist(), sizes.tolist(), strict=True)
    ]
    rows = rows.iloc[order].reset_index(drop=True)
    sorted_ids = ids[order].astype(np.int64)
    names, name_index = _road_names(G, rows["road_id"].to_numpy())
    chain = _route_chainage(G, routes, risk)
    km: dict[str, list[list[float]]] = {}
    if chain:
        # only the runs a route passes (a few thousand of a country's million)
        on_route = set(chain)
        position = np.empty(len(order), dtype=np.int64)
        position[order] = np.arange(len(order))
        for r in range(len(order)):
            seg_ids = members[r] if members is not None else [int(ids[r])]
            if on_route.isdisjoint(seg_ids):
                continue
            km[str(int(position[r]))] = _route_km(chain, seg_ids)
    sorted_codes = codes[order]
    named = ~calm[order]  # contributors named on elevated and worse runs only
    tops = rows["top_contributors"].fillna("").astype(str).to_numpy()
    items, top = _contributor_refs(tops[named])
    data: dict[str, Any] = {
        "canvas": True,
        "merged": merged,
        "country": True,
        "detailZoom": DETAIL_ZOOM,
        "overview": int((~detail).sum()),
        "cellDeg": CELL_DEG,
        "origin": [round(origin[0], 6), round(origin[1], 6)],
        "cells": cells,
        "size": len(order),
        "id": _delta_text(sorted_ids),
        "cls": "".join(map(str, sorted_codes.tolist())),
        "digits": RATE_DIGITS,
        "rate": _delta_text(sig_codes(rows["rate"])),
        "low": _delta_text(sig_codes(rows["rate_low"])),
        "high": _delta_text(sig_codes(rows["rate_high"])),
        "n": _delta_text(rows["incidents"].astype(int)) if "incidents" in rows else None,
        "count": varint_text(count[order]),
        "road": varint_text(np.asarray(name_index, dtype=np.int64) + 1),
        "names": names,
        "calm": [MAP_CLASSES.index(c) for c in CALM_CLASSES],
        "items": items,
        "top": top,
        "km": km,
        "geom": encode_chain(shown.to_numpy()[order], decimals),
    }
    return data, box


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


def _columns(rows: list[dict[str, Any]], decimals: int) -> dict[str, Any]:
    """Records as packed columns (:func:`varint_text`), for a country map.

    A text column is ``{"codes": ..., "values": [...]}`` (codes into its distinct
    values); ``lat`` and ``lon`` are ``{"fixed": decimals, "deltas": ...}`` (the
    zigzag differences of the rounded integers); another column of integers or
    None is ``{"ints": ...}`` (0 for None, else the zigzag plus one).
    """
    if not rows:
        return {}
    out: dict[str, Any] = {}
    for key in rows[0]:
        values = [r[key] for r in rows]
        if key in {"lat", "lon"}:
            scaled = np.rint(np.asarray(values, dtype=float) * 10.0**decimals)
            out[key] = {"fixed": decimals, "deltas": _delta_text(scaled.astype(np.int64))}
        elif all(v is None or (isinstance(v, int) and not isinstance(v, bool)) for v in values):
            ints = np.asarray([0 if v is None else v for v in values], dtype=np.int64)
            null = np.asarray([v is None for v in values])
            out[key] = {"ints": varint_text(np.where(null, 0, zigzag(ints) + 1))}
        else:
            codes, uniques = pd.factorize(pd.Series([str(v) for v in values], dtype=object))
            out[key] = {"codes": varint_text(codes), "values": [str(u) for u in uniques]}
    return out


def _route_line(G: nx.MultiDiGraph, route: Route) -> shapely.Geometry:
    return shapely.line_merge(shapely.union_all([G.edges[e]["geometry"] for e in route.edges]))


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
    hot = sorted(worst_rows(G, routes), key=lambda w: -w["rate"])
    where = _segment_points(risk, [w["segment_id"] for w in hot])
    mid = risk.segments.set_index("segment_id").geometry
    # one label per hot spot: worst rows within LABEL_GROUP_M of a label's join it
    groups: list[dict[str, Any]] = []
    for w in hot:
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


def _calm_ranks(G: nx.MultiDiGraph, routes: list[Route], risk: RiskResult) -> list[int]:
    """Ranks of the routes none of whose segments is elevated or worse."""
    return [
        int(r.metrics["rank"])
        for r in routes
        if route_segments(G, r, risk)["risk_class"].astype(str).isin(CALM_CLASSES).all()
    ]


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
    compiled = compile_graph(G)
    fwd = compiled.forward_edges
    rows = list(zip(compiled.geoms[fwd], compiled.length_m[fwd].tolist(), strict=True))
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
    root.header.add_child(Element(f"<title>{escape_html(title)}</title>"))
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
    from .basemap import context_layer, context_source, read_mbtiles  # noqa: PLC0415 - on use

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
            "rivers": encode_lines([shapely.LineString(a) for a in layer["rivers"]], 3),
            "region_lines": encode_lines([shapely.LineString(a) for a in layer["region_lines"]], 3),
            "regions": [
                [f"{n} {kind.lower()}".strip(), round(y, 3), round(x, 3), min_label]
                for n, x, y, kind, min_label in layer["regions"]
            ],
        }
        bases.append(context_source(layer))
    return tiles, ctx, "; ".join(bases) or "none (roads, places and incidents give the context)"


def _check_map_args(
    G: nx.MultiDiGraph, risk: RiskResult, *, renderer: str, decimals: int, simplify_m: float
) -> None:
    """Raise :class:`InputError` for a graph or an argument :func:`risk_map` cannot draw."""
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
    country: bool | None = None,
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
    country
        Draw the roads as a country map (map tiles drawn from a spatial index,
        minor low-risk roads from :data:`DETAIL_ZOOM` on, rates to
        :data:`RATE_DIGITS` digits, contributors named on elevated and worse
        roads); None: from :data:`COUNTRY_MIN_SEGMENTS` segments on. It
        merges runs whatever `merge` says and ignores `renderer`.

    Returns
    -------
    folium.Map
        Save it with :func:`save_map`.
    """
    _check_map_args(G, risk, renderer=renderer, decimals=decimals, simplify_m=simplify_m)
    routes = routes or []
    title = map_title(G, routes) if title is None else title
    tile_names = [tiles] if isinstance(tiles, str) else list(tiles or [])
    n_segments = len(risk.segments)
    canvas = renderer == "canvas" or (renderer == "auto" and n_segments > SVG_MAX_SEGMENTS)
    merged = n_segments >= MERGE_MIN_SEGMENTS if merge is None else merge
    tiled = n_segments >= COUNTRY_MIN_SEGMENTS if country is None else country

    if tiled:
        roads, bounds = _country_roads(G, risk, routes, simplify_m=simplify_m, decimals=decimals)
    else:
        roads, bounds = _roads_data(
            G, risk, routes, simplify_m=simplify_m, decimals=decimals, canvas=canvas, merge=merged
        )
    incidents, no_position, off_network = _incidents_data(risk.incidents, decimals)
    # a country map draws its incidents into tiles, never as clustered markers
    clustered = not tiled and (
        len(incidents) >= CLUSTER_MIN_INCIDENTS if cluster is None else cluster
    )
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
        title, tile_names, tiles_shown=tiles_shown, zoom_snap=1.0 if clustered or tiled else 0.25
    )

    place_rows = _places_data(places, decimals)
    legend = legend_html(
        risk,
        incidents=bool(incidents),
        uncertain=uncertain,
        heat=heat_on,
        wells=any(not p["town"] for p in place_rows),
        insufficient=bool((risk.segments["risk_class"].astype(str) == INSUFFICIENT).any()),
        detail_zoom=DETAIL_ZOOM if tiled else None,
    )
    listed = worst_rows(G, routes, above_low=False)
    worst_table = worst_table_html(
        listed,
        _segment_points(risk, [w["segment_id"] for w in listed]),
        calm=_calm_ranks(G, routes, risk),
    )
    footer = footer_html(
        risk,
        sources or [],
        approximate=approximate,
        uncertain=uncertain,
        no_position=no_position,
        off_network=off_network,
        incidents_drawn=len(incidents),
        merged=bool(roads["merged"]),
        base=base,
        country=country_note(DETAIL_ZOOM, RATE_DIGITS) if tiled else None,
    )
    panels = [
        [
            briefing_panel_html(
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
        "incidents": (
            {"cluster": clustered, "columns": _columns(incidents, decimals)}
            if tiled
            else {"cluster": clustered, "rows": incidents}
        ),
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
