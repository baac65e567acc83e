"""The ``convoyrisk`` command line: parse, call the library, write, map errors to exit 2."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click
import geopandas as gpd
import networkx as nx
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from . import __version__
from ._errors import ConvoyRiskError, InputError
from .incidents import read_incidents
from .maps import risk_map, save_map
from .network import (
    DEFAULT_HIGHWAYS,
    graph_info,
    load_graph,
    name_nodes,
    nearest_node,
    region_around,
    region_from_bbox,
    save_graph,
)
from .places import geocode, load_places
from .risk import RiskParams, RiskResult, score_segments
from .routing import Route, alternative_routes, score_routes
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
    nodes = []
    for place in ends:
        node, dist = nearest_node(G, place.lat, place.lon)
        if dist > MAX_PLACE_DISTANCE_M:
            msg = (
                f"{place.name} is {dist / 1000:.0f} km from the nearest road node: "
                "choose a place on the network or pass `--roads` that cover it."
            )
            raise InputError(msg)
        nodes.append(node)

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
    if want_routes:
        found = alternative_routes(
            G,
            nodes[0],
            nodes[1],
            k=opts["k"],
            max_share=opts["max_share"],
            max_stretch=opts["max_stretch"],
        )
        routes = score_routes(
            G,
            found,
            risk,
            speed_kph=opts["speed_kph"],
            driving_hours_per_day=opts["hours_per_day"],
            travel_days=opts["travel_days"],
        )
        if len(routes) < opts["k"]:
            say(f"only {len(routes)} genuinely different route(s) within the share/stretch limits")
        origin, destination = ends[0].name, ends[1].name
    sources = sorted({str(s) for s in risk.incidents.get("source", []) if str(s)})
    return _Job(G, places, risk, routes, origin, destination, sources)


def _route_record(r: Route, *, profile: bool) -> dict[str, Any]:
    keys = [
        "rank",
        "length_km",
        "travel_days",
        "expected_incidents",
        "p_incident",
        "p_incident_low",
        "p_incident_high",
        "via",
        "shared_fraction",
        "worst_segment",
    ]
    rec = {k: r.metrics[k] for k in keys}
    rec["worst_segments"] = [r.metrics["worst_segment"]]
    if profile:
        rec["profile"] = r.metrics["profile"]
    return rec


def _print_table(job: _Job) -> None:
    out = Console(highlight=False, width=None if sys.stdout.isatty() else 120)
    t = Table(title=f"Routes {job.origin} → {job.destination} (risk as of {job.risk.as_of.date()})")
    level = f"{job.risk.params.credible_level:.0%}"
    cols = (
        "#",
        "via",
        "km",
        "days",
        "E[incidents]",
        f"P(≥1 incident) [{level}]",
        "worst segment",
        "shared",
    )
    for col in cols:
        t.add_column(escape(col), justify="left" if col == "via" else "right")
    for r in job.routes:
        m = r.metrics
        w = m["worst_segment"]
        t.add_row(
            str(m["rank"]),
            escape(", ".join(m["via"]) or "direct"),
            f"{m['length_km']:.1f}",
            f"{m['travel_days']:.1f}",
            f"{m['expected_incidents']:.3f}",
            escape(f"{m['p_incident']:.1%} [{m['p_incident_low']:.1%}–{m['p_incident_high']:.1%}]"),
            f"km {w['chainage_km']:.0f} ({w['risk_class']})",
            f"{m['shared_fraction']:.0%}",
        )
    out.print(t)


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
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
@_handle_errors
def routes_cmd(fmt: str, **opts: Any) -> None:  # noqa: ANN401 - click passes options
    """Find genuinely different routes and score their risk."""
    job = _run(opts)
    if fmt == "json":
        doc = {
            "from": job.origin,
            "to": job.destination,
            "risk": job.risk.describe(),
            "routes": [_route_record(r, profile=True) for r in job.routes],
        }
        click.echo(json.dumps(doc, indent=2, ensure_ascii=False))
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


@main.group("network")
def network_group() -> None:
    """Build a clean routable road graph from OSM files, OSMnx GraphML or GIS layers."""


def _split_list(values: tuple[str, ...]) -> list[str]:
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


@network_group.command("build")
@click.argument("source", type=click.Path(path_type=Path))
@click.option(
    "--out",
    "out",
    type=click.Path(path_type=Path),
    required=True,
    help="Graph file to write: .gpkg (fast to load) or .graphml.",
)
@click.option(
    "--highway",
    "highways",
    multiple=True,
    help="OSM highway classes to keep (repeat or comma-separate); 'all' for every class. "
    "Default: motor roads, unclassified and track.",
)
@click.option("--bbox", help="Cut out min_lon,min_lat,max_lon,max_lat (degrees).")
@click.option(
    "--around", multiple=True, help="Cut out a corridor around these places (repeatable)."
)
@click.option(
    "--buffer-km",
    type=click.FloatRange(min=0.0, min_open=True),
    default=25.0,
    show_default=True,
    help="Corridor half-width around the --around places, km.",
)
@click.option("--places", type=click.Path(path_type=Path), help="Gazetteer CSV for --around.")
@click.option(
    "--tolerance",
    "tolerance_m",
    type=click.FloatRange(min=0.0),
    default=1.0,
    show_default=True,
    help="GIS layers: line ends this close (m) to another end or line are joined.",
)
@click.option(
    "--simplify/--no-simplify",
    default=None,
    help="Merge chains of degree-2 nodes. Default: on for OSM files, off for GIS layers.",
)
@click.option(
    "--keep",
    type=click.Choice(["all", "largest"]),
    default="all",
    show_default=True,
    help="Keep all connected components or only the largest.",
)
@click.option("--crs", help="Metric CRS to build in (default: UTM zone of the data).")
@click.option("--drop-invalid", is_flag=True, help="Drop invalid lines instead of failing.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors.")
@_handle_errors
def network_build_cmd(  # noqa: PLR0917 - click passes options as arguments
    source: Path,
    out: Path,
    highways: tuple[str, ...],
    bbox: str | None,
    around: tuple[str, ...],
    buffer_km: float,
    places: Path | None,
    tolerance_m: float,
    simplify: bool | None,
    keep: str,
    crs: str | None,
    drop_invalid: bool,
    quiet: bool,
) -> None:
    """Build a routable graph from SOURCE (.osm.pbf, .osm, .osm.bz2, GraphML, GIS layer)."""
    if out.suffix.lower() not in {".gpkg", ".graphml"}:
        msg = f"`--out` {out} must end in .gpkg or .graphml."
        raise InputError(msg)
    if bbox and around:
        msg = "Give `--bbox` or `--around`, not both."
        raise InputError(msg)
    region = None
    if bbox:
        try:
            numbers = [float(x) for x in bbox.split(",")]
        except ValueError as exc:
            msg = f"`--bbox` {bbox!r} must be four numbers min_lon,min_lat,max_lon,max_lat."
            raise InputError(msg) from exc
        region = region_from_bbox(numbers)
    elif around:
        region = region_around(
            _split_list(around), buffer_m=buffer_km * 1000.0, places=load_places(places)
        )
    classes = _split_list(highways)
    G = load_graph(
        source,
        highways=None if classes == ["all"] else (classes or DEFAULT_HIGHWAYS),
        region=region,
        node_tolerance_m=tolerance_m,
        simplify=simplify,
        keep="largest" if keep == "largest" else "all",
        drop_invalid=drop_invalid,
        crs=crs,
    )
    path = save_graph(G, out)
    if not quiet:
        _print_info(graph_info(G))
        click.echo(f"graph written to {path}")


@network_group.command("info")
@click.argument("path", type=click.Path(path_type=Path))
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
@_handle_errors
def network_info_cmd(path: Path, fmt: str) -> None:
    """Nodes, edges, km by class and surface, components, CRS and bounding box of a road file."""
    info = graph_info(load_graph(path))
    if fmt == "json":
        click.echo(json.dumps(info, indent=2, ensure_ascii=False))
    else:
        _print_info(info)


def _print_info(info: dict[str, Any]) -> None:
    lines = [
        (
            f"nodes {info['nodes']}, edges {info['edges']} ({info['roads']} roads), "
            f"{info['total_km']:.1f} km"
        ),
        f"components {info['components']} (largest: {info['largest_component_nodes']} nodes)",
        f"crs {info['crs']}",
        "bbox (lon/lat) " + ", ".join(f"{x:.5f}" for x in info["bbox_lonlat"]),
    ]
    for key, title in (("km_by_highway", "highway"), ("km_by_surface", "surface")):
        if info[key]:
            parts = ", ".join(f"{k} {km:.1f}" for k, km in info[key].items())
            lines.append(f"km by {title}: {parts}")
    build = info.get("build") or {}
    if build:
        lines.append("build: " + ", ".join(f"{k} {val}" for k, val in build.items()))
    click.echo("\n".join(lines))


# --------------------------------------------------------------------------------------
# `convoyrisk snap` (incidents onto the network, with rejects)
# --------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------
# `convoyrisk score` and `convoyrisk backtest` (the risk model)
# --------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------
# routing options and route input (`--route`, `--route-file`, `--avoid`)
# --------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------
# map options (`--no-heat`, `--time-slider`, ...)
# --------------------------------------------------------------------------------------
