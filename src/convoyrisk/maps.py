"""Folium maps of segment risk, incidents and route alternatives, that open offline.

This is the only module that reprojects to EPSG:4326, and only to draw. By
default every Leaflet asset (JavaScript, CSS) is embedded in the HTML from the
``folium-offline`` package, and no tile layer is added: the roads, places and
incidents themselves give the context, so the map works with no network.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import folium
import geopandas as gpd
import networkx as nx
import shapely
from branca.element import Element, MacroElement
from jinja2 import Template

from . import settings
from ._errors import InputError
from .risk import RISK_CLASSES, RiskResult
from .routing import Route
from .utils import write_text_atomic

CLASS_COLOURS = {"low": "#1a9850", "elevated": "#fee08b", "high": "#f46d43", "severe": "#a50026"}
"""Colour of each risk class on the map (ColorBrewer RdYlGn, colour-blind checked)."""

ROUTE_COLOURS = ("#2166ac", "#762a83", "#1b7837", "#e08214", "#4d4d4d")

_ASSET = re.compile(
    r'<script src="(?P<js>https?://[^"]+)"></script>'
    r'|<link rel="stylesheet" href="(?P<css>https?://[^"]+)"/?>'
)


def _esc(value: Any) -> str:  # noqa: ANN401 - any cell value
    """HTML-escape a value for popups and tooltips (data never becomes markup)."""
    return html.escape(str(value), quote=True)


class _Panel(MacroElement):
    """A fixed HTML panel (legend, comparison table, footer) on the map."""

    _template = Template(
        """{% macro html(this, kwargs) %}
<div class="convoyrisk-panel {{ this.css_class }}"
 style="position:fixed; {{ this.position }};
 z-index:9999; background:rgba(255,255,255,0.92); padding:6px 9px; border:1px solid #888;
 border-radius:4px; font:12px/1.35 sans-serif; max-width:{{ this.max_width }};">
{{ this.body }}</div>
{% endmacro %}"""
    )

    def __init__(self, body: str, position: str, css_class: str, max_width: str = "360px") -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._name = "ConvoyriskPanel"
        self.body = body
        self.position = position
        self.css_class = css_class
        self.max_width = max_width


def _legend(risk: RiskResult) -> str:
    t = risk.params.class_thresholds
    bounds = [f"&lt; {t[0]:g}", f"{t[0]:g} – {t[1]:g}", f"{t[1]:g} – {t[2]:g}", f"≥ {t[2]:g}"]
    rows = "".join(
        f'<div><span style="display:inline-block;width:22px;height:6px;margin-right:6px;'
        f'background:{CLASS_COLOURS[c]};vertical-align:middle"></span>{c} ({b})</div>'
        for c, b in zip(RISK_CLASSES, bounds, strict=True)
    )
    return f"<b>Risk</b> (incidents per km per 30 days)<br>{rows}"


def _comparison(routes: list[Route]) -> str:
    head = "<tr><th>#</th><th>via</th><th>km</th><th>E[incidents]</th><th>P(≥1)</th></tr>"
    body = "".join(
        "<tr><td>{rank}</td><td>{via}</td><td>{km:.0f}</td><td>{e:.2f}</td><td>{p:.0%}"
        " ({lo:.0%}–{hi:.0%})</td></tr>".format(
            rank=r.metrics["rank"],
            via=_esc(", ".join(r.metrics["via"]) or "direct"),
            km=r.metrics["length_km"],
            e=r.metrics["expected_incidents"],
            p=r.metrics["p_incident"],
            lo=r.metrics["p_incident_low"],
            hi=r.metrics["p_incident_high"],
        )
        for r in routes
    )
    days = ", ".join(f"{r.metrics['travel_days']:.1f}" for r in routes)
    return f"<b>Alternatives</b><table>{head}{body}</table><small>days on the road: {days}</small>"


def _footer(risk: RiskResult, sources: list[str], approximate: bool) -> str:
    p = risk.params
    parts = [
        f"As of {risk.as_of.date().isoformat()}",
        (
            f"segments {p.segment_length_m:g} m, bandwidth {p.bandwidth_m:g} m, "
            f"half-life {p.half_life_days:g} d, window {p.window_days:g} d, "
            f"{p.credible_level:.0%} intervals"
        ),
        "Sources: " + "; ".join(_esc(s) for s in sources),
    ]
    if approximate:
        parts.append(
            "<b>Road geometry approximate</b> (digitised from place positions; "
            "incident positions uncertain: circles show their radius)"
        )
    return " · ".join(parts)


def risk_map(
    G: nx.MultiDiGraph,
    risk: RiskResult,
    *,
    routes: list[Route] | None = None,
    places: gpd.GeoDataFrame | None = None,
    sources: list[str] | None = None,
    tiles: str | None = None,
    title: str = "convoyrisk",
) -> folium.Map:
    """Build the risk map.

    Parameters
    ----------
    G
        The road graph.
    risk
        Scored segments and the incidents behind them.
    routes
        Scored alternatives to draw as toggleable layers (best shown).
    places
        Gazetteer to label.
    sources
        Data sources for the footer.
    tiles
        A Folium/xyzservices tile name (needs a network), or None for none.
    title
        Map title, shown in the browser tab.

    Returns
    -------
    folium.Map
    """
    segs = risk.segments.to_crs(settings.display_crs)
    minx, miny, maxx, maxy = segs.total_bounds
    m = folium.Map(tiles=tiles, control_scale=True, prefer_canvas=False)
    root: Any = m.get_root()
    root.header.add_child(Element(f"<title>{_esc(title)}</title>"))
    m.fit_bounds([[miny, minx], [maxy, maxx]])

    seg_layer = _segments_layer(segs)
    seg_layer.add_to(m)

    for i, r in enumerate(routes or []):
        _route_layer(G, r, ROUTE_COLOURS[i % len(ROUTE_COLOURS)], show=(i == 0)).add_to(m)

    _incident_layer(risk.incidents).add_to(m)
    if places is not None:
        _places_layer(places).add_to(m)

    folium.LayerControl(collapsed=False).add_to(m)
    m.add_child(_Panel(_legend(risk), "bottom:40px; right:10px", "legend"))
    if routes:
        m.add_child(_Panel(_comparison(routes), "top:10px; left:60px", "comparison", "420px"))
    approximate = any(d.get("geometry_source") == "approximate" for *_, d in G.edges(data=True))
    m.add_child(
        _Panel(_footer(risk, sources or [], approximate), "bottom:4px; left:10px", "footer", "70%")
    )
    return m


def _round_geom(geom: shapely.Geometry) -> dict[str, Any]:
    """GeoJSON mapping of `geom` with coordinates rounded to 1e-5° (about 1 m)."""
    result: dict[str, Any] = shapely.geometry.mapping(shapely.set_precision(geom, 1e-5))  # type: ignore[arg-type]
    return result


def _segments_layer(segs: gpd.GeoDataFrame) -> folium.GeoJson:
    features = [
        {
            "type": "Feature",
            "geometry": _round_geom(row.geometry),
            "properties": {
                "segment": int(row.segment_id),
                "class": str(row.risk_class),
                "rate": f"{row.rate:.4f} ({row.rate_low:.4f}–{row.rate_high:.4f})",
                "incidents": int(row.incidents),
                "contributors": _esc(row.top_contributors) or "none",
                "colour": CLASS_COLOURS[str(row.risk_class)],
            },
        }
        for row in segs.itertuples(index=False)
    ]
    return folium.GeoJson(
        {"type": "FeatureCollection", "features": features},
        name="Road risk",
        style_function=lambda f: {"color": f["properties"]["colour"], "weight": 5, "opacity": 0.9},
        highlight_function=lambda _f: {"weight": 9},
        tooltip=folium.GeoJsonTooltip(
            fields=["segment", "class", "rate", "incidents", "contributors"],
            aliases=[
                "segment",
                "risk class",
                "rate /km/30 d (interval)",
                "incidents",
                "top contributors",
            ],
        ),
    )


def _route_layer(
    G: nx.MultiDiGraph, route: Route, colour: str, *, show: bool
) -> folium.FeatureGroup:
    mt = route.metrics
    label = f"Route {mt['rank']}: {mt['length_km']:.0f} km, P(≥1 incident) {mt['p_incident']:.0%}"
    group = folium.FeatureGroup(name=_esc(label), show=show)
    line = shapely.line_merge(shapely.union_all([G.edges[e]["geometry"] for e in route.edges]))
    geo = gpd.GeoSeries([line], crs=G.graph["crs"]).to_crs(settings.display_crs).iloc[0]
    popup = (
        f"<b>Route {mt['rank']}</b><br>via {_esc(', '.join(mt['via']) or 'direct')}<br>"
        f"{mt['length_km']:.1f} km, {mt['travel_days']:.1f} days on the road<br>"
        f"expected incidents {mt['expected_incidents']:.2f}<br>"
        f"P(≥1) {mt['p_incident']:.0%} ({mt['p_incident_low']:.0%}–{mt['p_incident_high']:.0%})<br>"
        f"worst segment {mt['worst_segment']['segment_id']} at km "
        f"{mt['worst_segment']['chainage_km']} ({_esc(mt['worst_segment']['risk_class'])})"
    )
    folium.GeoJson(
        _round_geom(geo),
        style_function=lambda _f: {"color": colour, "weight": 12, "opacity": 0.35},
        popup=folium.Popup(popup, max_width=320),  # type: ignore[arg-type]  # folium accepts a Popup
    ).add_to(group)
    return group


def _incident_layer(incidents: gpd.GeoDataFrame) -> folium.FeatureGroup:
    group = folium.FeatureGroup(name="Incidents")
    pts = incidents.to_crs(settings.display_crs)
    for row in pts.itertuples(index=False):
        lat, lon = row.geometry.y, row.geometry.x
        radius = float(getattr(row, "precision_m", 0.0) or 0.0)
        date = str(row.date)[:10]
        popup = (
            f"<b>{_esc(getattr(row, 'type', '') or 'incident')}</b> {_esc(date)}<br>"
            f"killed {_esc(int(row.killed))}, injured {_esc(int(row.injured))}<br>"
            f"location: {_esc(getattr(row, 'location', ''))} (±{radius / 1000:.0f} km)<br>"
            f"{_esc(getattr(row, 'notes', ''))}<br><i>{_esc(getattr(row, 'source', ''))}</i><br>"
            f"used: {_esc(row.used)}"
        )
        if radius > 0:
            folium.Circle(
                [lat, lon],
                radius=radius,
                color="#7b3294",
                weight=1,
                dash_array="4 4",
                fill=True,
                fill_opacity=0.04,
                interactive=False,
            ).add_to(group)
        folium.CircleMarker(
            [lat, lon],
            radius=6,
            color="#000",
            weight=1,
            fill=True,
            fill_color="#7b3294",
            fill_opacity=0.9,
            popup=folium.Popup(popup, max_width=300),
            tooltip=_esc(f"{getattr(row, 'type', 'incident')} {date}"),
            class_name="convoyrisk-incident",
        ).add_to(group)
    return group


def _places_layer(places: gpd.GeoDataFrame) -> folium.FeatureGroup:
    group = folium.FeatureGroup(name="Places")
    pts = places.to_crs(settings.display_crs)
    for row in pts.itertuples(index=False):
        kind = str(getattr(row, "kind", ""))
        folium.CircleMarker(
            [row.geometry.y, row.geometry.x],
            radius=3 if kind == "well" else 4,
            color="#333",
            fill=True,
            fill_color="#fff" if kind == "well" else "#333",
            fill_opacity=1,
            weight=1,
            tooltip=_esc(row.name),
        ).add_to(group)
        if kind != "well":
            folium.Marker(
                [row.geometry.y, row.geometry.x],
                icon=folium.DivIcon(
                    html=f'<div style="font:bold 12px sans-serif;color:#222;white-space:nowrap;'
                    f'text-shadow:0 0 3px #fff">{_esc(row.name)}</div>',
                    icon_size=(120, 16),
                    icon_anchor=(-6, 8),
                ),
            ).add_to(group)
    return group


def embed_assets(page: str) -> str:
    """Replace links to Leaflet's JS and CSS on CDNs by their content, from folium-offline.

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
        return f"<script>{body}</script>" if match.group("js") else f"<style>{body}</style>"

    return _ASSET.sub(inline, page)


def save_map(m: folium.Map, path: str | Path, *, offline: bool = True) -> Path:
    """Render `m` to HTML at `path` atomically; embed all assets when `offline`."""
    page = m.get_root().render()
    if offline:
        page = embed_assets(page)
    return write_text_atomic(path, page)
