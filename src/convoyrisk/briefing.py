"""The one-page printed briefing: an A4 landscape PDF drawn with matplotlib (no browser).

The page holds the map (roads coloured by risk class, darker and wider as risk
rises so it reads printed in grey; the routes, incidents with their location
uncertainty, places, a scale bar, a true-north arrow and a latitude/longitude
grid), the alternatives table, route 1's risk profile, and the as-of date, the
sources and the limits of the data. A handling marking, when given, is printed
at the top and the bottom of the page.

The map is drawn in the graph's metric CRS (distances on it are true to scale
near its centre); the grid is labelled in WGS84 degrees.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import geopandas as gpd
import matplotlib as mpl
import networkx as nx
import numpy as np
import pandas as pd
import shapely
from matplotlib import patheffects
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection, PatchCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Circle
from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar  # type: ignore[import-untyped]
from pyproj import Transformer

from . import settings
from .bayes import RISK_CLASSES
from .export import route_label
from .maps import CLASS_COLOURS, INSUFFICIENT_COLOUR, ROUTE_COLOURS
from .risk import RiskResult
from .routing import Route, route_geometry, route_segments
from .utils import atomic_path

A4_LANDSCAPE_IN = (297 / 25.4, 210 / 25.4)
"""Page size, inches (width, height): A4 landscape, 297 × 210 mm."""

MAP_RECT = (0.045, 0.075, 0.5, 0.84)
"""Where the map sits on the page: left, bottom, width, height as fractions of the page."""

CLASS_WIDTHS = {"low": 0.8, "elevated": 1.3, "high": 2.2, "severe": 3.2}
"""Line width (points) of each risk class on the map: wider as risk rises."""

CASING_COLOUR = "#3a3a3a"
"""Thin dark outline drawn under every road line."""

OTHER_CLASS_COLOUR = INSUFFICIENT_COLOUR
"""Colour of a segment in none of the four classes (e.g. "insufficient data"): the maps' grey."""

LIMITS_TEXT = (
    "Limits: rates describe past reported incidents only (not what went unreported, "
    "nor intent). Incident positions carry the uncertainty shown by the dashed circles. "
    "With few incidents the intervals are wide: read the upper bound as seriously as "
    "the estimate."
)


def _nice(value: float) -> float:
    """The largest 1, 2 or 5 × 10ⁿ not above `value` (for scale bars and grid steps)."""
    if value <= 0:
        return 1.0
    exp = 10.0 ** math.floor(math.log10(value))
    return max(m * exp for m in (1.0, 2.0, 5.0) if m * exp <= value)


def _class_style(cls: str) -> tuple[str, float]:
    return CLASS_COLOURS.get(cls, OTHER_CLASS_COLOUR), CLASS_WIDTHS.get(cls, 0.8)


def _extent(
    risk: RiskResult, route_lines: Sequence[shapely.LineString], box_ratio: float
) -> tuple[float, float, float, float]:
    """Map limits: the routes (or all roads) padded, widened to the map box's shape."""
    geoms = list(route_lines) or list(risk.segments.geometry)
    x0, y0, x1, y1 = shapely.total_bounds(np.asarray(geoms, dtype=object))
    w, h = max(x1 - x0, 1.0), max(y1 - y0, 1.0)
    pad = 0.08 * max(w, h)
    x0, x1, y0, y1 = x0 - pad, x1 + pad, y0 - pad, y1 + pad
    w, h = x1 - x0, y1 - y0
    if w / h < box_ratio:
        grow = (h * box_ratio - w) / 2
        x0, x1 = x0 - grow, x1 + grow
    else:
        grow = (w / box_ratio - h) / 2
        y0, y1 = y0 - grow, y1 + grow
    return x0, x1, y0, y1


def _draw_roads(ax: Axes, risk: RiskResult) -> list[Line2D]:
    segs = risk.segments
    classes = [c for c in RISK_CLASSES if c in set(segs["risk_class"])]
    others = [c for c in segs["risk_class"].unique() if c not in RISK_CLASSES]
    handles = []
    for z, cls in enumerate([*others, *classes]):
        part = segs[segs["risk_class"] == cls]
        colour, width = _class_style(str(cls))
        lines = [np.asarray(g.coords)[:, :2] for g in part.geometry if g is not None]
        # a dark casing keeps every road distinct from the route bands, in colour and in grey
        ax.add_collection(
            LineCollection(
                lines, colors=CASING_COLOUR, linewidths=width + 1.0, zorder=2.5, capstyle="round"
            )
        )
        ax.add_collection(
            LineCollection(
                lines,
                colors=colour,
                linewidths=width,
                capstyle="round",
                zorder=3 + z * 0.1,
                linestyles="dashed" if cls in others else "solid",
                gid=f"roads-{cls}",
            )
        )
        casing = [patheffects.withStroke(linewidth=width + 1.0, foreground=CASING_COLOUR)]
        handles.append(
            Line2D([], [], color=colour, lw=width, label=f"risk: {cls}", path_effects=casing)
        )
    return handles


def _draw_routes(ax: Axes, lines: Sequence[shapely.LineString]) -> list[Line2D]:
    handles = []
    for i, line in reversed(list(enumerate(lines))):
        xy = np.asarray(line.coords)
        colour = ROUTE_COLOURS[i % len(ROUTE_COLOURS)]
        width = max(11.0 - 3.0 * i, 5.0)
        ax.plot(
            xy[:, 0], xy[:, 1], color=colour, lw=width, alpha=0.3, zorder=2, solid_capstyle="round"
        )
        mid = line.interpolate(0.5 + 0.08 * i, normalized=True)
        ax.annotate(
            str(i + 1),
            (mid.x, mid.y),
            fontsize=8,
            fontweight="bold",
            color="white",
            ha="center",
            va="center",
            zorder=8,
            bbox={"boxstyle": "circle,pad=0.25", "fc": colour, "ec": "white", "lw": 0.8},
        )
        handles.append(Line2D([], [], color=colour, lw=6, alpha=0.4, label=f"route {i + 1}"))
    return handles[::-1]


def _draw_incidents(ax: Axes, incidents: gpd.GeoDataFrame, crs: Any) -> list[Line2D]:  # noqa: ANN401 - any pyproj CRS input
    has = ~(incidents.geometry.is_empty | incidents.geometry.isna())
    pts = incidents[has.to_numpy()].to_crs(crs)
    if pts.empty:
        return []
    xy = shapely.get_coordinates(pts.geometry.to_numpy())
    if "precision_m" in pts:
        radius = pts["precision_m"].fillna(0.0).astype(float).to_numpy()
        circles = [Circle((x, y), r) for (x, y), r in zip(xy, radius, strict=True) if r > 0]
        ax.add_collection(
            PatchCollection(
                circles,
                facecolor="none",
                edgecolor="#555555",
                linestyle=(0, (3, 3)),
                lw=0.5,
                zorder=4,
            )
        )
    ax.scatter(
        xy[:, 0],
        xy[:, 1],
        marker="X",
        s=42,
        c="#4a1060",
        edgecolors="white",
        linewidths=0.6,
        zorder=7,
    )
    return [
        Line2D([], [], marker="X", color="#4a1060", mec="white", ls="", ms=7, label="incident"),
        Line2D([], [], color="#555555", ls=(0, (3, 3)), lw=0.8, label="its location uncertainty"),
    ]


def _draw_places(ax: Axes, places: gpd.GeoDataFrame | None, crs: Any) -> None:  # noqa: ANN401 - any pyproj CRS input
    if places is None or places.empty:
        return
    pts = places[~(places.geometry.is_empty | places.geometry.isna()).to_numpy()].to_crs(crs)
    kinds = pts["kind"].astype(str).to_numpy() if "kind" in pts else np.array([""] * len(pts))
    xy = shapely.get_coordinates(pts.geometry.to_numpy())
    wells = kinds == "well"
    ax.scatter(xy[~wells, 0], xy[~wells, 1], s=18, c="black", zorder=9, edgecolors="white", lw=0.6)
    ax.scatter(xy[wells, 0], xy[wells, 1], s=10, marker="v", c="#2166ac", zorder=9)
    halo = [patheffects.withStroke(linewidth=2.5, foreground="white")]
    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    for (x, y), name, well in zip(xy, pts["name"].astype(str), wells, strict=True):
        if well or not (x0 <= x <= x1 and y0 <= y <= y1):
            continue
        ax.annotate(
            name,
            (x, y),
            xytext=(4, 3),
            textcoords="offset points",
            fontsize=7.5,
            zorder=10,
            path_effects=halo,
            annotation_clip=True,
        )


def _draw_grid(ax: Axes, crs: Any) -> None:  # noqa: ANN401 - any pyproj CRS input
    """A graticule in WGS84 degrees, labelled where it meets the map's bottom and left edges."""
    to_ll = Transformer.from_crs(crs, settings.display_crs, always_xy=True)
    to_xy = Transformer.from_crs(settings.display_crs, crs, always_xy=True)
    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    cx, cy = np.meshgrid(np.linspace(x0, x1, 12), np.linspace(y0, y1, 12))
    lon, lat = to_ll.transform(cx.ravel(), cy.ravel())
    lon0, lon1, lat0, lat1 = min(lon), max(lon), min(lat), max(lat)
    step = _nice(max(lon1 - lon0, lat1 - lat0) / 4)
    xt: list[tuple[float, str]] = []
    yt: list[tuple[float, str]] = []
    dense = np.linspace(0.0, 1.0, 60)
    for g in np.arange(math.floor(lon0 / step) * step, lon1 + step, step):
        lats = lat0 + dense * (lat1 - lat0)
        gx, gy = to_xy.transform(np.full_like(lats, g), lats)
        ax.plot(gx, gy, color="#bdbdbd", lw=0.4, zorder=1)
        if gy.min() <= y0 <= gy.max():
            xt.append((float(np.interp(y0, gy, gx)), f"{abs(g):g}°{'E' if g >= 0 else 'W'}"))
    for g in np.arange(math.floor(lat0 / step) * step, lat1 + step, step):
        lons = lon0 + dense * (lon1 - lon0)
        gx, gy = to_xy.transform(lons, np.full_like(lons, g))
        ax.plot(gx, gy, color="#bdbdbd", lw=0.4, zorder=1)
        if gx.min() <= x0 <= gx.max():
            yt.append((float(np.interp(x0, gx, gy)), f"{abs(g):g}°{'N' if g >= 0 else 'S'}"))
    ax.set_xticks([x for x, _ in xt if x0 <= x <= x1], [t for x, t in xt if x0 <= x <= x1])
    ax.set_yticks([y for y, _ in yt if y0 <= y <= y1], [t for y, t in yt if y0 <= y <= y1])
    ax.tick_params(labelsize=7, length=3)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)


def _draw_north(ax: Axes, crs: Any) -> None:  # noqa: ANN401 - any pyproj CRS input
    """An arrow pointing to true north (it differs from the grid's up by the convergence)."""
    to_ll = Transformer.from_crs(crs, settings.display_crs, always_xy=True)
    to_xy = Transformer.from_crs(settings.display_crs, crs, always_xy=True)
    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    lon, lat = to_ll.transform(cx, cy)
    nx_, ny_ = to_xy.transform(lon, lat + 0.05)
    angle = math.atan2(nx_ - cx, ny_ - cy)  # radians clockwise from grid up
    bx, by, length = 0.95, 0.12, 0.07
    tip = (bx + length * math.sin(angle) * 0.6, by + length * math.cos(angle))
    ax.annotate(
        "",
        xy=tip,
        xytext=(bx, by),
        xycoords="axes fraction",
        arrowprops={
            "arrowstyle": "-|>,head_width=0.4,head_length=0.8",
            "lw": 1.5,
            "color": "black",
        },
        zorder=11,
    )
    ax.text(
        tip[0],
        tip[1] + 0.012,
        "N",
        transform=ax.transAxes,
        ha="center",
        va="bottom",
        fontsize=11,
        fontweight="bold",
        zorder=11,
    )


def _draw_scale(ax: Axes) -> None:
    x0, x1 = ax.get_xlim()
    length = _nice((x1 - x0) / 4)
    label = f"{length / 1000:g} km" if length >= 1000 else f"{length:g} m"
    bar = AnchoredSizeBar(
        ax.transData,
        length,
        label,
        "lower right",
        pad=0.5,
        sep=3,
        frameon=True,
        size_vertical=(ax.get_ylim()[1] - ax.get_ylim()[0]) / 250,
        fontproperties={"size": 7.5},
    )
    bar.patch.set_alpha(0.85)
    bar.set_zorder(11)
    ax.add_artist(bar)


def _table(ax: Axes, routes: Sequence[Route], level: str) -> None:
    ax.set_axis_off()
    if not routes:
        ax.text(0, 0.9, "No routes asked for: risk only.", fontsize=9, transform=ax.transAxes)
        return
    header = ["#", "route", "km", "days", "E[inc.]", f"P(≥1) [{level}]", "worst"]
    rows = []
    lines = 1
    for r in routes[:6]:
        m = r.metrics
        via = textwrap.fill(route_label(r).split(" ", 2)[-1], 26)
        worst = "\n".join(
            f"km {w['chainage_km']:.0f} {w['risk_class']}" for w in m["worst_segments"][:2]
        )
        lines = max(lines, via.count("\n") + 1, worst.count("\n") + 1)
        rows.append(
            [
                str(m["rank"]),
                via,
                f"{m['length_km']:.0f}",
                f"{m['travel_days']:.1f}",
                f"{m['expected_incidents']:.3f}",
                f"{m['p_incident']:.1%}\n[{m['p_incident_low']:.1%}–{m['p_incident_high']:.1%}]",
                worst,
            ]
        )
    widths = [0.05, 0.36, 0.07, 0.07, 0.1, 0.17, 0.18]
    tab = ax.table(
        cellText=rows,
        colLabels=header,
        colWidths=widths,
        loc="upper left",
        cellLoc="left",
    )
    tab.auto_set_font_size(False)  # noqa: FBT003 - matplotlib's API
    tab.set_fontsize(7.5)
    row_h = 0.055 * max(lines, 2)
    for (row, col), cell in tab.get_celld().items():
        cell.set_height(0.07 if row == 0 else row_h)
        cell.set_linewidth(0.4)
        cell.PAD = 0.03
        if row == 0:
            cell.set_text_props(fontweight="bold")
            cell.set_facecolor("#e8e8e8")
        elif col == 0:
            cell.set_facecolor(ROUTE_COLOURS[(row - 1) % len(ROUTE_COLOURS)])
            cell.set_alpha(0.35)


def _profile(ax: Axes, G: nx.MultiDiGraph, route: Route | None, risk: RiskResult) -> None:
    """Rate of each segment along the route, coloured by the segment's own class."""
    if route is None or not route.edges:
        ax.set_axis_off()
        return
    segs = route_segments(G, route, risk)
    km = segs["chainage_m"].to_numpy(dtype=float) / 1000.0
    width = segs["length_m"].to_numpy(dtype=float) / 1000.0
    rate = segs["rate"].to_numpy(dtype=float)
    colours = [_class_style(str(c))[0] for c in segs["risk_class"]]
    ax.bar(km, rate, width=width, align="edge", color=colours, linewidth=0)
    t = tuple(getattr(risk.params, "class_thresholds", ()))
    top = max(float(rate.max()) * 1.15, t[1] * 1.2 if len(t) > 1 else 0.0, 1e-9)
    for v, name in zip(t, RISK_CLASSES[1:], strict=False):
        if v < top:
            ax.axhline(v, color="#444444", lw=0.5, ls="--")
            ax.text(km[-1] + width[-1], v, f" {name}", fontsize=6.5, va="center", ha="left")
    for w in route.metrics["worst_segments"][:1]:
        ax.annotate(
            f"km {w['chainage_km']:.0f}",
            (w["chainage_km"], w["rate"]),
            xytext=(0, 3),
            textcoords="offset points",
            fontsize=6.5,
            ha="center",
        )
    ax.set_xlim(0, km[-1] + width[-1])
    ax.set_ylim(0, top)
    ax.set_title("Route 1: risk along the road", fontsize=8.5, loc="left")
    ax.set_xlabel("km from the start", fontsize=7)
    ax.set_ylabel("incidents / km / 30 days", fontsize=7)
    ax.tick_params(labelsize=6.5)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _notes(
    risk: RiskResult,
    G: nx.MultiDiGraph,
    *,
    rejects: pd.DataFrame | None,
    info: Mapping[str, Any],
    sources: Sequence[str],
) -> str:
    inc = risk.incidents
    used = int((inc["used"] == "used").sum()) if "used" in inc else len(inc)
    n_rej = 0 if rejects is None else len(rejects)
    t = risk.params.class_thresholds
    approx = any(d.get("geometry_source") == "approximate" for _, _, d in G.edges(data=True))
    biggest = float(inc["precision_m"].max()) if "precision_m" in inc and len(inc) else 0.0
    parts = [
        (
            f"Risk as of {risk.as_of.date().isoformat()}: {used} incident(s) used of "
            f"{len(inc)} placed; {n_rej} input row(s) rejected."
        ),
        "Sources: " + ("; ".join(sources) if sources else "not recorded") + ".",
        (
            "Rates are expected incidents per km per 30 days; classes low / elevated / high / "
            f"severe start at 0 / {t[0]:g} / {t[1]:g} / {t[2]:g}. A route's P(≥1 incident) = "
            "1 − exp(−Σ rate·km·days/30); the bracket is the "
            f"{risk.params.credible_level:.0%} interval."
        ),
    ]
    choke = info.get("chokepoints") or {}
    names = [c.get("name") or f"node {c['node']}" for c in choke.get("cut_nodes", [])]
    roads = ["–".join(c.get("between", [])) for c in choke.get("cut_roads", [])]
    if names or roads:
        parts.append(
            "Chokepoints (every route passes): "
            + ", ".join([*names, *(f"road {r}" for r in roads)])
            + "."
        )
    limits = LIMITS_TEXT
    if biggest > 0:
        limits += f" The least precise position is good to about {biggest / 1000:.0f} km."
    if approx:
        limits += " Road geometry is approximate (digitised, not surveyed)."
    parts.append(limits)
    return "\n".join(textwrap.fill(p, 92) for p in parts)


def briefing_figure(
    G: nx.MultiDiGraph,
    risk: RiskResult,
    routes: Sequence[Route] = (),
    *,
    places: gpd.GeoDataFrame | None = None,
    rejects: pd.DataFrame | None = None,
    info: Mapping[str, Any] | None = None,
    sources: Sequence[str] = (),
    marking: str = "",
    title: str = "",
) -> Figure:
    """The briefing page as a matplotlib Figure (A4 landscape, not yet saved).

    The map axes has ``gid="map"``, in the graph's CRS (metres), so a caller
    can find where a point of the network lands on the page.

    Parameters
    ----------
    G, risk, routes, places, rejects
        What the run produced (routes ranked by
        :func:`convoyrisk.routing.score_routes`; only the first six are tabled).
    info
        Routing information (its ``chokepoints`` are listed).
    sources
        Names of the incident sources.
    marking
        Handling marking printed at the top and bottom (empty: none).
    title
        Page title (default ``"convoyrisk briefing"``).
    """
    info = info or {}
    crs = G.graph["crs"]
    fig = Figure(figsize=A4_LANDSCAPE_IN)
    if marking:
        for y, va in ((0.992, "top"), (0.006, "bottom")):
            fig.text(0.5, y, marking, ha="center", va=va, fontsize=10, fontweight="bold")
    fig.text(0.015, 0.955, title or "convoyrisk briefing", fontsize=14, fontweight="bold")
    fig.text(
        0.015,
        0.935,
        f"risk as of {risk.as_of.date().isoformat()} · printed "
        f"{datetime.now(UTC).strftime('%Y-%m-%d %H:%M')} UTC · convoyrisk {_version()}",
        fontsize=8,
        color="#444444",
    )
    ax = fig.add_axes(MAP_RECT, gid="map")
    box_ratio = (MAP_RECT[2] * A4_LANDSCAPE_IN[0]) / (MAP_RECT[3] * A4_LANDSCAPE_IN[1])
    lines = [route_geometry(G, r) for r in routes]
    x0, x1, y0, y1 = _extent(risk, lines, box_ratio)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_facecolor("white")
    _draw_grid(ax, crs)
    handles = _draw_roads(ax, risk)
    handles = _draw_routes(ax, lines) + handles
    handles += _draw_incidents(ax, risk.incidents, crs)
    _draw_places(ax, places, crs)
    _draw_north(ax, crs)
    _draw_scale(ax)
    ax.legend(handles=handles, loc="upper left", fontsize=6.5, framealpha=0.9)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)

    level = f"{risk.params.credible_level:.0%}"
    tab_ax = fig.add_axes((0.565, 0.6, 0.42, 0.33), gid="table")
    shown = f" (first 6 of {len(routes)})" if len(routes) > 6 else ""
    tab_ax.set_title(
        f"Alternatives, best ranked first{shown}", fontsize=9, loc="left", fontweight="bold"
    )
    _table(tab_ax, routes, level)
    _profile(
        fig.add_axes((0.6, 0.42, 0.34, 0.19), gid="profile"),
        G,
        routes[0] if routes else None,
        risk,
    )
    fig.text(
        0.565,
        0.345,
        _notes(risk, G, rejects=rejects, info=info, sources=sources),
        fontsize=6.8,
        va="top",
        ha="left",
        linespacing=1.35,
    )
    return fig


def write_briefing(
    path: str | Path,
    G: nx.MultiDiGraph,
    risk: RiskResult,
    routes: Sequence[Route] = (),
    *,
    places: gpd.GeoDataFrame | None = None,
    rejects: pd.DataFrame | None = None,
    info: Mapping[str, Any] | None = None,
    sources: Sequence[str] = (),
    marking: str = "",
    title: str = "",
) -> Path:
    """Write the one-page A4 landscape PDF briefing (:func:`briefing_figure`) atomically."""
    path = Path(path)
    fig = briefing_figure(
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
    meta = {"Title": title or "convoyrisk briefing", "Creator": f"convoyrisk {_version()}"}
    if marking:
        meta["Subject"] = marking
    with atomic_path(path) as tmp, mpl.rc_context({"pdf.fonttype": 42}):
        fig.savefig(tmp, format="pdf", metadata=meta)
    return path


def _version() -> str:
    from . import __version__  # noqa: PLC0415 - the package imports this module

    return __version__
