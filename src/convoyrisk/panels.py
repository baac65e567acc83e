"""The briefing map's palette and panels: legend, worst segments, comparison, profile, footer.

The panels are HTML built here with every data value escaped
(:func:`escape_html`), for :func:`convoyrisk.maps.risk_map` to put on the map.
The palette is checked in ``tests/test_maps_style.py`` (lightness, colour-vision
deficiency, contrast).
"""

from __future__ import annotations

import html
import importlib.metadata
import math
from typing import Any

import branca.colormap
import networkx as nx
import numpy as np

from .bayes import NO_DATA_CLASS, RISK_CLASSES, classify
from .risk import RiskResult
from .routing import Route, route_segments

INSUFFICIENT = NO_DATA_CLASS
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


def version() -> str:
    """The installed convoyrisk version ("dev" in a source tree)."""
    try:
        return importlib.metadata.version("convoyrisk")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - source tree
        return "dev"


def escape_html(value: Any) -> str:  # noqa: ANN401 - any cell value
    """HTML-escape a value for the panels (data never becomes markup)."""
    return html.escape(str(value), quote=True)


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


def named_chainage(G: nx.MultiDiGraph, route: Route) -> list[tuple[float, str]]:
    """Named places along `route` with their km from the start."""
    out, km = [], 0.0
    for i, n in enumerate(route.nodes):
        if i > 0:
            km += float(G.edges[route.edges[i - 1]]["length"]) / 1000.0
        name = G.nodes[n].get("name")
        if name:
            out.append((km, str(name)))
    return out


def near_place(places: list[tuple[float, str]], km: float) -> str:
    """'near NAME' for the named place nearest to `km` along a route ('' if none)."""
    if not places:
        return ""
    d, name = min((abs(k - km), n) for k, n in places)
    return f"near {name}" if d <= 25 else f"{d:.0f} km from {name}"


CALM_CLASSES = ("low", INSUFFICIENT)
"""Classes that are not a hot spot: not labelled on the map."""


def worst_rows(
    G: nx.MultiDiGraph, routes: list[Route], *, above_low: bool = True
) -> list[dict[str, Any]]:
    """The listed worst segments of each route (rank, km, class, rate, place).

    With `above_low` (the map's labels) only those elevated or worse; without it
    (the briefing's table) every listed one, so that a route whose worst is low
    or insufficient data still shows where that is.
    """
    rows = []
    for r in routes:
        places = named_chainage(G, r)
        for w in r.metrics.get("worst_segments", []):
            if above_low and w["risk_class"] in CALM_CLASSES:
                continue
            rows.append(
                {
                    "rank": int(r.metrics["rank"]),
                    "segment_id": int(w["segment_id"]),
                    "km": float(w["chainage_km"]),
                    "cls": str(w["risk_class"]),
                    "rate": float(w["rate"]),
                    "near": near_place(places, float(w["chainage_km"])),
                }
            )
    return rows


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


def legend_html(
    risk: RiskResult,
    *,
    incidents: bool,
    uncertain: bool,
    heat: bool,
    wells: bool,
    insufficient: bool,
    detail_zoom: int | None = None,
) -> str:
    """The legend: each class's line as drawn, its thresholds and chance in words, symbols.

    `detail_zoom`: a country map's, from which it draws each incident (no grouped counts).
    """
    cmap = risk_colormap(risk)
    t = risk.params.class_thresholds
    bounds = [f"&lt; {t[0]:g}", f"{t[0]:g} – {t[1]:g}", f"{t[1]:g} – {t[2]:g}", f"≥ {t[2]:g}"]

    def chance(rate: float) -> str:
        return rate_words(rate).split(" chance")[0].replace("about ", "≈")

    rows = "".join(
        f'<div data-colour="{CLASS_COLOURS[c]}">{_swatch(c)}<b>{c}</b> {b}: '
        f"{escape_html(chance(lo))}{'+' if lo else ''}</div>"
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
        extra += (
            '<div><span class="cr-legend-count">12</span>incidents close together, '
            "ringed (click the count to zoom in)</div>"
            if detail_zoom is None
            else f"<div>each incident drawn from zoom {detail_zoom} on (click one for its "
            "details)</div>"
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
        f"<div>{escape_html(cmap.caption)}: chance of an incident per 100 km driven in a day</div>"
        f"{rows}{extra}"
    )


def comparison_html(routes: list[Route]) -> str:
    """The alternatives side by side: km, days, expected incidents, P(≥1) with its interval."""
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
            via=escape_html(", ".join(r.metrics["via"]) or "direct"),
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


def worst_table_html(
    rows: list[dict[str, Any]],
    points: dict[int, tuple[float, float]],
    *,
    calm: list[int] | None = None,
) -> str:
    """The worst segments of each route as a table, each with a button that shows it.

    `rows` as :func:`worst_rows` gives them with ``above_low=False``; `calm`: the
    ranks of the routes with no segment elevated or worse, said so in words above
    the table (their low or insufficient-data worst segments are still listed).
    """
    calm = calm or []
    if not rows:
        return "<p>No worst segments listed for the routes.</p>"
    note = ""
    if calm:
        many = len(calm) > 1
        note = (
            f'<p class="cr-calm">No segment of {"routes" if many else "route"} '
            f"{', '.join(map(str, calm))} is elevated or worse: "
            f"{'their' if many else 'its'} worst segments below are low or insufficient data.</p>"
        )
    body = "".join(
        f"<tr><td>{w['rank']}</td><td>{w['km']:.0f}</td><td>{escape_html(w['near'])}</td>"
        f"<td>{escape_html(w['cls'])}</td><td>{w['rate']:.3g}</td>"
        f'<td><button type="button" class="cr-goto" data-lat="{points[w["segment_id"]][0]}" '
        f'data-lon="{points[w["segment_id"]][1]}">show</button></td></tr>'
        for w in rows
    )
    return (
        f"{note}"
        '<table class="cr-worst-table" id="cr-worst" tabindex="-1">'
        "<caption>Worst segments of each route</caption>"
        '<tr><th scope="col">route</th><th scope="col">km</th><th scope="col">where</th>'
        '<th scope="col">class</th><th scope="col">rate</th><th></th></tr>'
        f"{body}</table>"
    )


def _profile_classes(
    G: nx.MultiDiGraph, route: Route, risk: RiskResult, rate: np.ndarray
) -> np.ndarray:
    """The class of each profile bar: the segment's ``risk_class``, as the map draws it."""
    segs = route_segments(G, route, risk)
    if len(segs) == len(rate):
        return segs["risk_class"].astype(str).to_numpy()
    return np.asarray(classify(rate, risk.params.class_thresholds))


def profile_svg(
    G: nx.MultiDiGraph, route: Route, risk: RiskResult, *, width: int = 420, height: int = 150
) -> str:
    """The risk profile along `route` as an inline SVG bar chart on a log rate axis.

    One bar per segment, as wide as the segment, coloured by its class on the map
    (its ``risk_class``: grey for insufficient data; by its rate alone if the
    profile does not match the route's segments in `risk`), reaching
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
    classes = _profile_classes(G, route, risk, rate)
    bars = "".join(
        f'<rect x="{x(a):.1f}" y="{y(r):.1f}" width="{max(x(b) - x(a), 0.6):.1f}" '
        f'height="{max(top + h - y(r), 1.0):.1f}" '
        f'fill="{CLASS_COLOURS.get(str(c), INSUFFICIENT_COLOUR)}"/>'
        for a, b, r, c in zip(chain, ends, rate, classes, strict=True)
    )
    lines = "".join(
        f'<line class="cr-threshold" data-rate="{v:g}" x1="{left}" x2="{left + w}" '
        f'y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#555" stroke-dasharray="3 3"/>'
        f'<text x="{left - 3}" y="{y(v) + 3:.1f}" text-anchor="end">{v:g}</text>'
        for v in t
    )
    # named places along the route: both ends always, others where they have room
    places = named_chainage(G, route)
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
                f'text-anchor="{anchor}">{escape_html(name)}</text>'
            )
    peak = int(np.argmax(rate)) if len(rate) else 0
    if len(rate) and rate[peak] > 1.2 * float(np.median(rate)):
        pkm = float(chain[peak] + ends[peak]) / 2.0
        text = (
            f"peak: km {chain[peak]:.0f} {escape_html(near_place(places, pkm))} ({classes[peak]})"
        )
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


def briefing_panel_html(
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
    mark = f'<div class="cr-marking-inline"><b>{escape_html(marking)}</b></div>' if marking else ""
    parts = [
        (
            f'<div class="cr-sheet-head"><div class="cr-title">{escape_html(title)}</div>'
            '<button type="button" class="cr-sheet-toggle" aria-expanded="true">hide</button>'
            f"</div>{mark}<div>risk as of {risk.as_of.date().isoformat()}</div>"
        ),
    ]
    if routes:
        parts.append(f'<details open class="cr-worst-box"><summary>Worst segments</summary>'
                     f"{worst_table}</details>")  # fmt: skip
        parts.append(
            '<details open class="cr-comparison"><summary>Alternatives</summary>'
            f"{comparison_html(routes)}</details>"
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


def _record_text(risk: RiskResult) -> str:
    """How long the incident record the rates divide by is, and where that came from."""
    days = risk.observed_days
    if not math.isfinite(days):
        return f"rates per {risk.params.window_days:g}-day window"
    since = risk.params.observed_since
    how = {"auto": "from the incidents' dates", "window": "the whole window"}.get(
        since, f"since {since}"
    )
    return f"rates over a record of {days:.0f} days ({how})"


def country_note(detail_zoom: int, digits: int) -> str:
    """What a country map leaves out below `detail_zoom` and how it rounds (plain text).

    Examples
    --------
    >>> "each incident are drawn from zoom 10 on;" in country_note(10, 2)
    True
    """
    return (
        f"Country map: low-risk and insufficient-data minor roads and each incident are "
        f"drawn from zoom {detail_zoom} on; below it, the major roads, every elevated, high "
        f"or severe road and the incident heat; rates to {digits} significant digits; the "
        f"incidents that weigh most are named on elevated and worse roads"
    )


def footer_html(
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
    country: str | None = None,
) -> str:
    """The footer: as-of date, parameters, counts and what was left out, sources, the base.

    `country` is what a country map leaves out at low zoom (:func:`country_note`).
    """
    p = risk.params
    used = int((risk.incidents["used"] == "used").sum()) if "used" in risk.incidents else 0
    parts = [
        f"<b>As of {risk.as_of.date().isoformat()}</b>",
        (
            f"segments {p.segment_length_m:g} m, bandwidth {p.bandwidth_m:g} m, "
            f"half-life {p.half_life_days:g} d, window {p.window_days:g} d, "
            f"{p.credible_level:.0%} intervals"
        ),
        _record_text(risk),
        f"{len(risk.segments)} segments; {incidents_drawn} incidents drawn, {used} used",
        "Sources: " + ("; ".join(escape_html(s) for s in sources) or "not given"),
        f'<span class="cr-basemap-note">Base: {escape_html(base)}</span>',
    ]
    if merged:
        parts.append("consecutive segments of a road in one class drawn as one line")
    if country:
        parts.append(escape_html(country))
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
    parts.append(f"convoyrisk {escape_html(version())}")
    return " · ".join(parts)


def map_title(G: nx.MultiDiGraph, routes: list[Route]) -> str:
    """'convoyrisk: A → B' from the named ends of the first route ('convoyrisk' if none)."""
    if not routes or not routes[0].nodes:
        return "convoyrisk"
    ends = [G.nodes[routes[0].nodes[i]].get("name") for i in (0, -1)]
    if not all(ends):
        return "convoyrisk: " + (routes[0].name if routes[0].name != "alternative" else "routes")
    return f"convoyrisk: {ends[0]} → {ends[1]}"
