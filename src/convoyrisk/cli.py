"""The ``convoyrisk`` command line: parse, call the library, write, map errors to exit 2."""

from __future__ import annotations

import csv
import functools
import io
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import click
import geopandas as gpd
import networkx as nx
import shapely
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from . import __version__, settings
from ._errors import ConvoyRiskError, InputError
from .incidents import read_incidents
from .maps import risk_map, save_map
from .network import load_graph, name_nodes, nearest_node
from .places import Place, geocode, load_places
from .risk import RiskParams, RiskResult, score_segments, split_segments
from .routing import (
    METHOD,
    Route,
    RoutingIndex,
    alternative_routes,
    chokepoints,
    pareto_routes,
    read_areas,
    read_tracks,
    roads_in_areas,
    roads_of_segments,
    route_through,
    routes_gdf,
    score_routes,
    snap_track,
)
from .snapping import snap_incidents

F = TypeVar("F", bound=Callable[..., Any])
EXIT_USAGE = 2
MAX_PLACE_DISTANCE_M = 25_000.0

err = Console(stderr=True, highlight=False)


def _fail(message: str) -> None:
    click.echo(f"convoyrisk: error: {message}", err=True)
    sys.exit(EXIT_USAGE)


def _handle_errors(func: F) -> F:
    """Turn a ConvoyRiskError into one line on stderr and exit code 2."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:  # noqa: ANN401
        try:
            return func(*args, **kwargs)
        except ConvoyRiskError as exc:
            _fail(" ".join(str(exc).split()))
        return None

    return wrapper  # type: ignore[return-value]


def _data_options(func: F) -> F:
    options = [
        click.option(
            "--roads",
            type=click.Path(path_type=Path),
            help="Road line layer (GeoJSON, GeoPackage, Shapefile). Default: Kidal–Gao roads.",
        ),
        click.option(
            "--incidents",
            type=click.Path(path_type=Path),
            help="Incident table (CSV, GeoJSON, GeoPackage). Default: the six Nov 2023 incidents.",
        ),
        click.option(
            "--places",
            type=click.Path(path_type=Path),
            help="Gazetteer CSV. Default: the embedded one.",
        ),
        click.option(
            "--as-of",
            "as_of",
            help="Date the risk is estimated for (YYYY-MM-DD). Default: the latest incident.",
        ),
        click.option(
            "--segment-length",
            type=click.FloatRange(min=1.0),
            default=1000.0,
            show_default=True,
            help="Segment length, metres.",
        ),
        click.option(
            "--bandwidth",
            type=click.FloatRange(min=1.0),
            default=5000.0,
            show_default=True,
            help="Kernel bandwidth along the road, metres.",
        ),
        click.option(
            "--half-life",
            type=click.FloatRange(min=0.01),
            default=90.0,
            show_default=True,
            help="Time-decay half-life, days.",
        ),
        click.option(
            "--max-snap",
            type=click.FloatRange(min=1.0),
            default=5000.0,
            show_default=True,
            help="Incidents farther from every road than this (metres) are not used.",
        ),
        click.option("-q", "--quiet", is_flag=True, help="Print only the result."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _route_options(func: F) -> F:
    options = [
        click.option(
            "--from",
            "origin",
            default="Kidal",
            show_default=True,
            help="Start: a place name or 'lat,lon'.",
        ),
        click.option(
            "--to",
            "destination",
            default="Gao",
            show_default=True,
            help="End: a place name or 'lat,lon'.",
        ),
        click.option(
            "-k",
            "k",
            type=click.IntRange(min=1, max=20),
            default=3,
            show_default=True,
            help="Number of alternatives.",
        ),
        click.option(
            "--max-share",
            type=click.FloatRange(0.0, 1.0),
            default=0.6,
            show_default=True,
            help="Largest share of length an alternative may have in common with a better one.",
        ),
        click.option(
            "--max-stretch",
            type=click.FloatRange(min=1.0),
            default=1.4,
            show_default=True,
            help="Largest length ratio of an alternative to the shortest route.",
        ),
        click.option(
            "--speed-kph",
            type=click.FloatRange(min=0.1),
            default=30.0,
            show_default=True,
            help="Convoy speed while driving, km/h.",
        ),
        click.option(
            "--hours-per-day",
            type=click.FloatRange(0.1, 24.0),
            default=10.0,
            show_default=True,
            help="Driving hours per day.",
        ),
        click.option(
            "--travel-days",
            type=click.FloatRange(min=0.01),
            default=None,
            help="Days on the road (overrides speed and hours).",
        ),
        click.option(
            "--objective",
            type=click.Choice(["shortest", "safest", "balanced", "minimax", "pareto"]),
            default="shortest",
            show_default=True,
            help=(
                "What the alternatives minimise: length; expected incidents; length + "
                "risk-weight x risk; the worst segment's rate; or the Pareto front of "
                "length against expected incidents."
            ),
        ),
        click.option(
            "--risk-weight",
            type=click.FloatRange(min=0.0),
            default=1000.0,
            show_default=True,
            help="For --objective balanced: km worth driving to avoid one expected "
            "incident per day on the road.",
        ),
        click.option(
            "--via",
            multiple=True,
            help="A place every alternative must pass (repeatable, in order).",
        ),
        click.option(
            "--avoid",
            "avoid_file",
            type=click.Path(path_type=Path),
            help="GeoJSON of polygons: roads that touch them are not used.",
        ),
        click.option(
            "--avoid-segments",
            help="Comma-separated segment ids (see `segment_id`) whose roads are not used.",
        ),
        click.option(
            "--route",
            "given_routes",
            multiple=True,
            help="A route to score, as places in order: 'Kidal,Anéfis,Gao' (repeatable).",
        ),
        click.option(
            "--route-file",
            "route_files",
            multiple=True,
            type=click.Path(path_type=Path),
            help="GPX track or GeoJSON LineString to snap onto the roads and score (repeatable).",
        ),
        click.option(
            "--max-track-offset",
            type=click.FloatRange(min=1.0),
            default=2000.0,
            show_default=True,
            help="A --route-file point farther than this (metres) from every road rejects it.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@dataclass
class _Job:
    G: nx.MultiDiGraph
    places: gpd.GeoDataFrame
    risk: RiskResult
    routes: list[Route]
    origin: str
    destination: str
    sources: list[str]
    info: dict[str, Any] = field(default_factory=dict)


def _run(opts: dict[str, Any], *, want_routes: bool = True) -> _Job:
    """Load and check every input first (so a bad one fails before any output), then compute."""
    quiet = bool(opts["quiet"])

    def say(message: str) -> None:
        if not quiet:
            err.print(message)

    places = load_places(opts["places"])
    ends = (
        [geocode(opts["origin"], places), geocode(opts["destination"], places)]
        if want_routes
        else []
    )
    params = RiskParams(
        segment_length_m=opts["segment_length"],
        bandwidth_m=opts["bandwidth"],
        half_life_days=opts["half_life"],
    )
    G = name_nodes(load_graph(opts["roads"]), places)
    table = read_incidents(opts["incidents"])
    nodes = [_node_of(G, place) for place in ends]
    plan = _plan_routes(G, _read_route_request(opts, places), nodes, opts) if want_routes else None

    say(f"roads: {G.number_of_nodes()} nodes, {G.number_of_edges()} edges ({G.graph['crs']})")
    snapped = snap_incidents(G, table.incidents, max_distance_m=opts["max_snap"])
    risk = score_segments(G, snapped, params=params, as_of=opts["as_of"])
    used = risk.incidents["used"].value_counts().to_dict()
    counts = ", ".join(f"{n} {k}" for k, n in sorted(used.items()))
    say(f"incidents: {table.n_input} rows: {len(table.rejects)} rejected, {counts}")
    for row in table.rejects.head(5).itertuples(index=False):
        say(f"  rejected row {row.row}: {row.reason}")
    routes: list[Route] = []
    origin = destination = ""
    info: dict[str, Any] = {}
    if plan is not None:
        routes, info = _compute_routes(G, risk, plan, nodes, opts, say=say)
        origin, destination = ends[0].name, ends[1].name
        if not plan.alternatives:
            origin = destination = ""
    sources = sorted({str(s) for s in risk.incidents.get("source", []) if str(s)})
    return _Job(G, places, risk, routes, origin, destination, sources, info)


def _route_record(r: Route, *, profile: bool) -> dict[str, Any]:
    keys = [
        "rank",
        "name",
        "length_km",
        "travel_days",
        "driving_hours",
        "risk_integral",
        "expected_incidents",
        "p_incident",
        "p_incident_low",
        "p_incident_high",
        "via",
        "shared_fraction",
        "worst_segment",
        "worst_segments",
    ]
    rec = {k: r.metrics[k] for k in keys}
    if profile:
        rec["profile"] = r.metrics["profile"]
    return rec


def _print_table(job: _Job) -> None:
    out = Console(highlight=False, width=None if sys.stdout.isatty() else 120)
    objective = job.info.get("objective", "shortest")
    what = f"Routes {job.origin} → {job.destination}" if job.origin else "Given routes"
    t = Table(title=f"{what} (risk as of {job.risk.as_of.date()}, objective {objective})")
    level = f"{job.risk.params.credible_level:.0%}"
    cols = (
        "#",
        "route",
        "km",
        "days",
        "E[incidents]",
        f"P(≥1 incident) [{level}]",
        "worst segments",
        "shared",
    )
    for col in cols:
        t.add_column(escape(col), justify="left" if col == "route" else "right")
    for r in job.routes:
        m = r.metrics
        label = ", ".join(m["via"]) or "direct"
        if r.name not in {"alternative", "pareto"}:
            label = f"{r.name}: {label}"
        worst = ", ".join(
            f"km {w['chainage_km']:.0f} ({w['risk_class']})" for w in m["worst_segments"][:2]
        )
        t.add_row(
            str(m["rank"]),
            escape(label),
            f"{m['length_km']:.1f}",
            f"{m['travel_days']:.1f}",
            f"{m['expected_incidents']:.3f}",
            escape(f"{m['p_incident']:.1%} [{m['p_incident_low']:.1%}–{m['p_incident_high']:.1%}]"),
            escape(worst),
            f"{m['shared_fraction']:.0%}",
        )
    out.print(t)
    choke = _describe_chokepoints(job.info)
    if choke:
        out.print(escape(choke), soft_wrap=False)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="convoyrisk")
def main() -> None:
    """Road-segment risk and route alternatives for convoys.

    With no data options every command uses the embedded Kidal–Gao scenario
    (northern Mali, November 2023; road geometry approximate).
    """


@main.command("routes")
@_data_options
@_route_options
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "csv", "geojson"]),
    default="table",
    show_default=True,
    help="table for people; json, csv (one row per route) or geojson (EPSG:4326) for machines.",
)
@_handle_errors
def routes_cmd(fmt: str, **opts: Any) -> None:  # noqa: ANN401 - click passes options
    """Find genuinely different routes, or score given ones, and report their risk.

    Alternatives share at most --max-share of their length with a better route
    and are at most --max-stretch times as long as the best (penalty method).
    """
    job = _run(opts)
    if fmt == "json":
        doc = {
            "from": job.origin,
            "to": job.destination,
            "risk": job.risk.describe(),
            **job.info,
            "routes": [_route_record(r, profile=True) for r in job.routes],
        }
        click.echo(json.dumps(doc, indent=2, ensure_ascii=False))
    elif fmt == "csv":
        _emit_csv(job)
    elif fmt == "geojson":
        _emit_geojson(job)
    else:
        _print_table(job)


@main.command("map")
@_data_options
@_route_options
@click.option(
    "--out",
    "out",
    type=click.Path(path_type=Path),
    default=Path("out/kidal_gao_risk.html"),
    show_default=True,
    help="HTML file to write.",
)
@click.option(
    "--offline/--online",
    default=True,
    show_default=True,
    help="Embed Leaflet assets (offline) or link them from CDNs.",
)
@click.option(
    "--tiles", default=None, help="Background tiles (needs a network), e.g. OpenStreetMap."
)
@click.option("--no-routes", is_flag=True, help="Draw risk and incidents only.")
@_handle_errors
def map_cmd(
    out: Path,
    offline: bool,
    tiles: str | None,
    no_routes: bool,
    **opts: Any,  # noqa: ANN401 - click passes options
) -> None:
    """Write the risk map (HTML) and print the scored alternatives."""
    job = _run(opts, want_routes=not no_routes)
    m = risk_map(
        job.G,
        job.risk,
        routes=job.routes,
        places=job.places,
        sources=job.sources,
        tiles=tiles,
        title=f"convoyrisk: {job.origin} → {job.destination}" if job.routes else "convoyrisk",
    )
    path = save_map(m, out, offline=offline)
    if job.routes:
        _print_table(job)
    click.echo(f"map written to {path}")


# --------------------------------------------------------------------------------------
# `convoyrisk network build|info` (road networks from OSM, OSMnx and GIS layers)
# --------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------
# `convoyrisk snap` (incidents onto the network, with rejects)
# --------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------
# `convoyrisk score` and `convoyrisk backtest` (the risk model)
# --------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------
# routing options and route input (`--route`, `--route-file`, `--avoid`)
# --------------------------------------------------------------------------------------


@dataclass
class _RouteRequest:
    """Route inputs, all read and checked before any computing."""

    alternatives: bool
    via: list[Place]
    given: list[tuple[str, list[Place]]]
    tracks: list[tuple[str, shapely.LineString]]
    areas: gpd.GeoDataFrame | None
    segment_ids: list[int]


def _explicit(name: str) -> bool:
    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return True
    source = ctx.get_parameter_source(name)
    return source is not None and source.name not in {"DEFAULT", "DEFAULT_MAP"}


def _parse_segment_ids(text: str | None) -> list[int]:
    if not text:
        return []
    try:
        return [int(t) for t in text.replace(";", ",").split(",") if t.strip()]
    except ValueError as exc:
        msg = f"`--avoid-segments` {text!r} is not a list of integers: give e.g. '12,13,40'."
        raise InputError(msg) from exc


def _read_route_request(opts: dict[str, Any], places: gpd.GeoDataFrame) -> _RouteRequest:
    given: list[tuple[str, list[Place]]] = []
    for text in opts["given_routes"]:
        names = [t.strip() for t in str(text).split(",") if t.strip()]
        if len(names) < 2:
            msg = f"`--route` {text!r} needs at least two places separated by commas."
            raise InputError(msg)
        given.append((", ".join(names), [geocode(n, places) for n in names]))
    tracks = [t for path in opts["route_files"] for t in read_tracks(path)]
    user = bool(given or tracks)
    return _RouteRequest(
        alternatives=not user or _explicit("origin") or _explicit("destination"),
        via=[geocode(v, places) for v in opts["via"]],
        given=given,
        tracks=tracks,
        areas=read_areas(opts["avoid_file"]) if opts["avoid_file"] else None,
        segment_ids=_parse_segment_ids(opts["avoid_segments"]),
    )


def _node_of(G: nx.MultiDiGraph, place: Place) -> int:
    node, dist = nearest_node(G, place.lat, place.lon)
    if dist > MAX_PLACE_DISTANCE_M:
        msg = (
            f"{place.name} is {dist / 1000:.0f} km from the nearest road node: "
            "choose a place on the network or pass `--roads` that cover it."
        )
        raise InputError(msg)
    return node


@dataclass
class _Plan:
    """What can be worked out before the risk: avoid set, via nodes, given routes."""

    alternatives: bool
    index: RoutingIndex
    avoid: set[int]
    avoid_note: str
    via: list[int]
    given: list[Route]


def _plan_routes(
    G: nx.MultiDiGraph, request: _RouteRequest, ends: list[int], opts: dict[str, Any]
) -> _Plan:
    """Resolve every route input on the graph, so bad ones fail before any output."""
    index = RoutingIndex(G)
    avoid: set[int] = set()
    if request.segment_ids:
        avoid |= roads_of_segments(split_segments(G, opts["segment_length"]), request.segment_ids)
    note = ""
    if request.areas is not None:
        hit = roads_in_areas(G, request.areas)
        note = f"avoid: {len(hit)} road(s) touch the areas in {opts['avoid_file']}"
        avoid |= hit
    via = [_node_of(G, p) for p in request.via]
    given = [
        route_through(G, [_node_of(G, p) for p in stops], name=name, avoid_roads=avoid, index=index)
        for name, stops in request.given
    ]
    given += [
        snap_track(G, line, max_offset_m=opts["max_track_offset"], name=name, index=index)
        for name, line in request.tracks
    ]
    if request.alternatives:  # fail now if the ends do not connect
        route_through(G, [ends[0], *via, ends[1]], avoid_roads=avoid, index=index)
    return _Plan(request.alternatives, index, avoid, note, via, given)


def _compute_routes(
    G: nx.MultiDiGraph,
    risk: RiskResult,
    plan: _Plan,
    ends: list[int],
    opts: dict[str, Any],
    *,
    say: Callable[[str], None],
) -> tuple[list[Route], dict[str, Any]]:
    if plan.avoid_note:
        say(plan.avoid_note)
    objective = opts["objective"]
    found: list[Route] = []
    if plan.alternatives:
        if objective == "pareto":
            found = pareto_routes(
                G, ends[0], ends[1], risk, via=plan.via, avoid_roads=plan.avoid, index=plan.index
            )
        else:
            found = alternative_routes(
                G,
                ends[0],
                ends[1],
                k=opts["k"],
                max_share=opts["max_share"],
                max_stretch=opts["max_stretch"],
                objective=objective,
                risk=risk,
                risk_weight=opts["risk_weight"],
                via=plan.via,
                avoid_roads=plan.avoid,
                index=plan.index,
            )
            if len(found) < opts["k"]:
                say(
                    f"only {len(found)} genuinely different route(s) within the share/stretch "
                    "limits"
                )
    routes = score_routes(
        G,
        found + plan.given,
        risk,
        rank_by="worst_rate" if objective == "minimax" else "expected_incidents",
        speed_kph=opts["speed_kph"],
        driving_hours_per_day=opts["hours_per_day"],
        travel_days=opts["travel_days"],
    )
    info: dict[str, Any] = {
        "objective": objective,
        "method": "dichotomic weighted sum" if objective == "pareto" else METHOD,
        "max_share": opts["max_share"],
        "max_stretch": opts["max_stretch"],
        "avoided_roads": sorted(plan.avoid),
    }
    if plan.alternatives:
        info["chokepoints"] = chokepoints(
            G,
            ends[0],
            ends[1],
            [r for r in routes if r.name in {"alternative", "pareto"}],
            avoid_roads=plan.avoid,
        )
    return routes, info


def _flat_record(r: Route) -> dict[str, Any]:
    rec = _route_record(r, profile=False)
    worst = rec.pop("worst_segments")
    rec.pop("worst_segment")
    rec["via"] = "; ".join(rec["via"])
    rec["worst_segments"] = "; ".join(
        f"{w['segment_id']}@km{w['chainage_km']:g}:{w['risk_class']}" for w in worst
    )
    return rec


def _emit_csv(job: _Job) -> None:
    rows = [_flat_record(r) for r in job.routes]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else ["rank"])
    writer.writeheader()
    writer.writerows(rows)
    click.echo(buf.getvalue(), nl=False)


def _emit_geojson(job: _Job) -> None:
    gdf = routes_gdf(job.G, job.routes).to_crs(settings.display_crs)
    features = []
    for r, geom in zip(job.routes, gdf.geometry, strict=True):
        props = _route_record(r, profile=True)
        coords = [[round(x, 6), round(y, 6)] for x, y in geom.coords]
        features.append(
            {
                "type": "Feature",
                "properties": props,
                "geometry": {"type": "LineString", "coordinates": coords},
            }
        )
    doc = {
        "type": "FeatureCollection",
        "name": f"routes {job.origin} - {job.destination}",
        "features": features,
        "properties": {"risk": job.risk.describe(), **job.info},
    }
    click.echo(json.dumps(doc, ensure_ascii=False))


def _describe_chokepoints(info: dict[str, Any]) -> str:
    ch = info.get("chokepoints")
    if not ch:
        return ""
    parts = [
        f"{c['name'] or 'road'} {c['between'][0]}–{c['between'][1]} ({c['length_km']:.0f} km)"
        for c in ch["cut_roads"]
    ]
    nodes = [c["name"] or f"node {c['node']}" for c in ch["cut_nodes"]]
    text = []
    if parts:
        text.append("roads every route must take: " + "; ".join(parts))
    if nodes:
        text.append("places every route must pass: " + ", ".join(nodes))
    return "Chokepoints: " + (". ".join(text) if text else "none (the network has bypasses)")


# --------------------------------------------------------------------------------------
# map options (`--no-heat`, `--time-slider`, ...)
# --------------------------------------------------------------------------------------
