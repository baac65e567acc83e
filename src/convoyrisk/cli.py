"""The ``convoyrisk`` command line: parse, call the library, write, map errors to exit 2."""

from __future__ import annotations

import contextlib
import csv
import functools
import io
import json
import sys
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO, TypeVar

import click
import geopandas as gpd
import networkx as nx
import pandas as pd
import pyogrio
import shapely
from click.core import ParameterSource
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.progress import Progress as ProgressBar
from rich.table import Table

from . import __version__, settings
from ._errors import ConvoyRiskError, ConvoyRiskWarning, InputError
from .config import params_from_mapping, parse_overrides, read_config
from .incidents import Filters, merge_duplicates, read_incidents
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
from .places import Place, geocode, load_places
from .risk import (
    RISK_CLASSES,
    SEGMENT_FORMATS,
    RiskParams,
    RiskResult,
    backtest,
    score_segments,
    split_segments,
    write_segments,
)
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
from .snapping import snap_incidents, status_counts
from .utils import Progress, atomic_path

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
        with warnings.catch_warnings():
            # what the library left out or changed: one line each, as errors are
            warnings.simplefilter("always", ConvoyRiskWarning)
            shown = warnings.showwarning

            def show(  # noqa: PLR0917 - the signature of warnings.showwarning
                message: Warning | str,
                category: type[Warning],
                filename: str,
                lineno: int,
                file: TextIO | None = None,
                line: str | None = None,
            ) -> None:
                if issubclass(category, ConvoyRiskWarning):
                    click.echo(f"convoyrisk: warning: {' '.join(str(message).split())}", err=True)
                else:
                    shown(message, category, filename, lineno, file, line)

            warnings.showwarning = show
            try:
                return func(*args, **kwargs)
            except ConvoyRiskError as exc:
                _fail(" ".join(str(exc).split()))
        return None

    return wrapper  # type: ignore[return-value]


@contextlib.contextmanager
def _progress_bar(*, quiet: bool) -> Iterator[Progress | None]:
    """A progress callback that draws a bar per stage on stderr.

    None (nothing drawn) with `--quiet` or when stderr is not a terminal, so
    logs and pipes get no control characters. Bars vanish when the work ends.
    """
    if quiet or not err.is_terminal:
        yield None
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with ProgressBar(*columns, console=err, transient=True) as bar:
        tasks: dict[str, TaskID] = {}

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total or None)
            bar.update(tasks[stage], completed=done, total=total or None)

        yield update


def _filters(opts: dict[str, Any]) -> Filters:
    """The incident filters given on the command line (`--event-type`, `--date-from/-to`)."""
    return Filters.make(
        event_types=opts.get("event_types") or (),
        date_from=opts.get("date_from"),
        date_to=opts.get("date_to"),
    )


def _data_options(func: F) -> F:
    options = [
        click.option(
            "--roads",
            type=click.Path(path_type=Path),
            help="Roads: OSM .osm.pbf/.osm/.osm.bz2, OSMnx GraphML, GIS line layer, built .gpkg.",
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
        click.option(
            "--event-type",
            "event_types",
            multiple=True,
            help="Use only incidents of this type, e.g. 'Remote explosive/landmine/IED' "
            "(ACLED sub_event_type or event_type; repeatable).",
        ),
        click.option("--date-from", help="Use only incidents from this day (YYYY-MM-DD)."),
        click.option("--date-to", help="Use only incidents up to this day (YYYY-MM-DD)."),
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
    params = _risk_params(opts)
    snap, score = _engines(opts)
    with _progress_bar(quiet=quiet) as progress:
        G = name_nodes(load_graph(opts["roads"], progress=progress), places)
        table = read_incidents(opts["incidents"], filters=_filters(opts), progress=progress)
        nodes = [_node_of(G, place) for place in ends]
        plan = (
            _plan_routes(G, _read_route_request(opts, places), nodes, opts) if want_routes else None
        )
        say(f"roads: {G.number_of_nodes()} nodes, {G.number_of_edges()} edges ({G.graph['crs']})")
        snapped = snap(G, table.incidents, max_distance_m=opts["max_snap"], progress=progress)
        risk = score(G, snapped, params=params, as_of=opts["as_of"], progress=progress)
    used = risk.incidents["used"].value_counts().to_dict()
    counts = ", ".join(f"{n} {k}" for k, n in sorted(used.items()))
    left = table.counts()
    left_out = "".join(f"{left[k]} {k}, " for k in ("rejected", "excluded", "merged") if left[k])
    say(f"incidents: {table.n_input} rows: {left_out}{counts}")
    for row in table.rejects.head(5).itertuples(index=False):
        say(f"  {row.kind} row {row.row}: {row.reason}")
    if len(table.rejects) > 5:
        say(
            f"  ... and {len(table.rejects) - 5} more (`convoyrisk snap` writes them all to a file)"
        )
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
    help="Embed Leaflet and plugin assets in the HTML (offline) or link them from CDNs.",
)
@click.option(
    "--tiles",
    multiple=True,
    help="Background tile layer offered in the layer control (needs a network), e.g. "
    "OpenStreetMap or 'CartoDB Positron'; repeat for several. Shown on opening with "
    "--online, left off until picked with --offline.",
)
@click.option("--no-routes", is_flag=True, help="Draw risk and incidents only.")
@_handle_errors
def map_cmd(
    out: Path,
    offline: bool,
    tiles: tuple[str, ...],
    no_routes: bool,
    **opts: Any,  # noqa: ANN401 - click passes options
) -> None:
    """Write the risk map (HTML) and print the scored alternatives."""
    look = _map_look(opts)
    job = _run(opts, want_routes=not no_routes)
    m = risk_map(
        job.G,
        job.risk,
        routes=job.routes,
        places=job.places,
        sources=job.sources,
        tiles=list(tiles),
        tiles_shown=not offline,
        title=f"convoyrisk: {job.origin} → {job.destination}" if job.routes else "convoyrisk",
        **look,
    )
    path = save_map(m, out, offline=offline)
    if job.routes:
        _print_table(job)
    click.echo(f"map written to {path} ({path.stat().st_size / 1e6:.1f} MB)")


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
@click.option(
    "--crs",
    help="CRS in true metres to draw the graph in (default: the data's UTM zone, or a "
    "projection centred on the data when it spans several zones). Lengths are geodesic.",
)
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
    with _progress_bar(quiet=quiet) as progress:
        G = load_graph(
            source,
            highways=None if classes == ["all"] else (classes or DEFAULT_HIGHWAYS),
            region=region,
            node_tolerance_m=tolerance_m,
            simplify=simplify,
            keep="largest" if keep == "largest" else "all",
            drop_invalid=drop_invalid,
            crs=crs,
            progress=progress,
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


SNAP_COLUMNS = (
    "row",
    "status",
    "u",
    "v",
    "key",
    "snap_distance_m",
    "offset_m",
    "road",
    "chainage_m",
    "snap_x",
    "snap_y",
    "precision_m",
    "road_in_radius_m",
    "at_capital",
    "date",
    "type",
    "event_type",
    "killed",
    "injured",
    "source",
    "merged_rows",
    "location",
    "admin1",
    "event_id",
    "dataset",
    "notes",
)


def _rejects_path(out: Path) -> Path:
    return out.with_name(f"{out.stem}_rejects{out.suffix}")


def _write_table(frame: pd.DataFrame, path: Path) -> None:
    """CSV or GeoPackage by extension, atomically (GeoPackage: points if there is geometry)."""
    suffix = path.suffix.lower()
    with atomic_path(path) as tmp:
        if suffix == ".csv":
            plain = frame.drop(columns="geometry", errors="ignore")
            plain.to_csv(tmp, index=False, date_format="%Y-%m-%d")
        elif isinstance(frame, gpd.GeoDataFrame):
            frame.to_file(tmp, driver="GPKG", layer=path.stem, engine="pyogrio")
        else:
            pyogrio.write_dataframe(frame, tmp, driver="GPKG", layer=path.stem)


@main.command("snap")
@click.option(
    "--incidents",
    type=click.Path(path_type=Path),
    help="ACLED or UCDP GED export, or a plain CSV/GeoJSON/GeoPackage. Default: the embedded.",
)
@click.option(
    "--roads",
    type=click.Path(path_type=Path),
    help="Roads: OSM .osm.pbf/.osm/.osm.bz2, OSMnx GraphML, GIS line layer, built .gpkg.",
)
@click.option(
    "--out",
    "out",
    type=click.Path(path_type=Path),
    required=True,
    help="Placed events, .csv or .gpkg; the rejects go beside it as <name>_rejects.<ext>.",
)
@click.option(
    "--max-snap",
    type=click.FloatRange(min=1.0),
    default=5000.0,
    show_default=True,
    help="Exact events farther than this (metres) from every road are too far.",
)
@click.option(
    "--exact-m",
    type=click.FloatRange(min=0.0),
    default=2000.0,
    show_default=True,
    help="Events with an uncertainty radius up to this (metres) snap; larger ones spread.",
)
@click.option(
    "--event-type",
    "event_types",
    multiple=True,
    help="Keep only this type (ACLED sub_event_type or event_type); repeatable.",
)
@click.option("--date-from", help="Keep events from this day (YYYY-MM-DD).")
@click.option("--date-to", help="Keep events up to this day (YYYY-MM-DD).")
@click.option(
    "--max-precision-m",
    type=click.FloatRange(min=0.0),
    default=None,
    help="Exclude events whose uncertainty radius is larger (metres).",
)
@click.option(
    "--column",
    "column_map",
    multiple=True,
    metavar="OURS=THEIRS",
    help="Read our column OURS from the file's column THEIRS, e.g. latitude=lat; repeatable.",
)
@click.option(
    "--merge/--no-merge",
    default=True,
    show_default=True,
    help="Merge reports of one event from different sources.",
)
@click.option(
    "--merge-distance",
    type=click.FloatRange(min=0.0),
    default=2000.0,
    show_default=True,
    help="Duplicate reports lie within this distance (metres)...",
)
@click.option(
    "--merge-days",
    type=click.FloatRange(min=0.0),
    default=1.0,
    show_default=True,
    help="... and within this many days.",
)
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors.")
@_handle_errors
def snap_cmd(
    *,
    incidents: Path | None,
    roads: Path | None,
    out: Path,
    max_snap: float,
    exact_m: float,
    event_types: tuple[str, ...],
    date_from: str | None,
    date_to: str | None,
    max_precision_m: float | None,
    column_map: tuple[str, ...],
    merge: bool,
    merge_distance: float,
    merge_days: float,
    quiet: bool,
    engine: str = "local",
    scheduler: str | None = None,
) -> None:
    """Put incidents on the road network; write them and a rejects file; print the counts."""
    if out.suffix.lower() not in {".csv", ".gpkg"}:
        msg = f"`--out` {out} must end in .csv or .gpkg."
        raise InputError(msg)
    columns = {}
    for item in column_map:
        ours, sep, theirs = item.partition("=")
        if not sep or not ours.strip() or not theirs.strip():
            msg = f"`--column {item}` must be OURS=THEIRS, e.g. `--column latitude=lat`."
            raise InputError(msg)
        columns[ours.strip()] = theirs.strip()
    filters = Filters.make(
        event_types=event_types,
        date_from=date_from,
        date_to=date_to,
        max_precision_m=max_precision_m,
    )
    with _progress_bar(quiet=quiet) as progress:
        G = load_graph(roads, progress=progress)
        table = read_incidents(
            incidents, columns=columns or None, filters=filters, progress=progress
        )
        if merge:
            table = merge_duplicates(table, distance_m=merge_distance, days=merge_days)
        placed = _snap(
            G,
            table.incidents,
            max_distance_m=max_snap,
            exact_m=exact_m,
            engine=engine,
            scheduler=scheduler,
            progress=progress,
        )
    wgs = table.incidents.geometry
    placed["longitude"], placed["latitude"] = wgs.x.to_numpy(), wgs.y.to_numpy()
    cols = [c for c in SNAP_COLUMNS if c in placed.columns] + ["longitude", "latitude"]
    frame = gpd.GeoDataFrame(placed[cols], geometry=wgs.to_numpy(), crs=wgs.crs)
    frame["snap_crs"] = G.graph["crs"]
    rejects = table.rejects.sort_values("row", kind="stable")
    _write_table(frame, out)
    _write_table(rejects, _rejects_path(out))
    status = status_counts(placed)
    kinds = table.counts()
    total = sum(status.values()) + kinds["rejected"] + kinds["excluded"] + kinds["merged"]
    if total != table.n_input:  # pragma: no cover - a bug, not a user error
        msg = f"counts add up to {total}, not the {table.n_input} rows read"
        raise RuntimeError(msg)
    if not quiet:
        click.echo(
            f"{table.n_input} rows ({table.dataset}): {status['snapped']} snapped, "
            f"{status['spread']} spread, {status['too_far']} too far, "
            f"{kinds['excluded']} excluded, {kinds['rejected']} rejected, "
            f"{kinds['merged']} merged"
        )
        for row in rejects[rejects["kind"] == "rejected"].head(5).itertuples(index=False):
            click.echo(f"  rejected row {row.row}: {row.reason}")
        click.echo(f"placed events written to {out}")
        click.echo(f"rejects written to {_rejects_path(out)}")


# --------------------------------------------------------------------------------------
# `convoyrisk score` and `convoyrisk backtest` (the risk model)
# --------------------------------------------------------------------------------------

_PARAM_OPTIONS = {
    "segment_length": "segment_length_m",
    "bandwidth": "bandwidth_m",
    "half_life": "half_life_days",
}


def _risk_params(opts: dict[str, Any]) -> RiskParams:
    """Defaults, then `--config`, then the options given on the command line, then `--set`."""
    params = read_config(opts["config"]) if opts.get("config") else RiskParams()
    ctx = click.get_current_context(silent=True)
    given = {}
    for option, name in _PARAM_OPTIONS.items():
        if option not in opts:
            continue
        source = ctx.get_parameter_source(option) if ctx is not None else None
        if source is not ParameterSource.DEFAULT or not opts.get("config"):
            given[name] = opts[option]
    params = params.replace(**given)
    if opts.get("overrides"):
        params = params_from_mapping(
            parse_overrides(opts["overrides"]), base=params, where="`--set`"
        )
    return params


_CONFIG_HELP = "TOML file with a [risk] table of model parameters (see docs/risk-model.md)."
_SET_HELP = "Set a risk parameter, e.g. `--set kernel=triangular` (repeatable; wins over --config)."


def _config_options(func: F) -> F:
    func = click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=_SET_HELP)(
        func
    )
    return click.option("--config", type=click.Path(path_type=Path), help=_CONFIG_HELP)(func)


# `routes` and `map` read the same model parameters (see `_run`)
for _cmd in (routes_cmd, map_cmd):
    _cmd.params.append(
        click.Option(["--config"], type=click.Path(path_type=Path), help=_CONFIG_HELP)
    )
    _cmd.params.append(
        click.Option(["--set", "overrides"], multiple=True, metavar="KEY=VALUE", help=_SET_HELP)
    )


@main.command("score")
@_data_options
@_config_options
@click.option(
    "--out",
    "out",
    type=click.Path(path_type=Path),
    required=True,
    help="Segments file: .gpkg, .parquet, .geojson or .csv (by extension).",
)
@_handle_errors
def score_cmd(out: Path, **opts: Any) -> None:  # noqa: ANN401 - click passes options
    """Score every road segment and write the segments with their rates."""
    if out.suffix.lower() not in SEGMENT_FORMATS:
        msg = f"Cannot write segments to {out}: use one of {', '.join(SEGMENT_FORMATS)}."
        raise InputError(msg)
    job = _run(opts, want_routes=False)
    path = write_segments(job.risk, out)
    risk = job.risk
    if not opts["quiet"]:
        counts = risk.segments["risk_class"].value_counts()
        classes = ", ".join(f"{counts.get(c, 0)} {c}" for c in RISK_CLASSES)
        p = risk.params
        err.print(
            escape(
                f"as of {risk.as_of.date()}: {len(risk.segments)} segments ({classes}); "
                f"baseline {risk.baseline_rate:.4g} per km per 30 days; "
                f"{p.kernel} kernel, {p.junction}, bandwidth {p.bandwidth_m:g} m, "
                f"half-life {p.half_life_days:g} d, k {p.overdispersion_k:g} "
                f"(moments estimate from these data: {risk.overdispersion_moments:.3g})"
            )
        )
    click.echo(f"segments written to {path} (parameters in {path.stem}.params.json)")


@main.command("backtest")
@_data_options
@_config_options
@click.option(
    "--split", "split", required=True, help="Fit before this date, test from it (YYYY-MM-DD)."
)
@click.option(
    "--horizon",
    type=click.FloatRange(min=1.0),
    default=None,
    help="Days after the split to test on. Default: every later incident.",
)
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
@_handle_errors
def backtest_cmd(split: str, horizon: float | None, fmt: str, **opts: Any) -> None:  # noqa: ANN401
    """Hit rate and PAI of the model against raw counts and a planar KDE on a time split."""
    if opts.get("as_of"):
        msg = "`backtest` fits the model as of `--split`: leave out `--as-of`."
        raise InputError(msg)
    params = _risk_params(opts)
    places = load_places(opts["places"])
    with _progress_bar(quiet=bool(opts["quiet"])) as progress:
        G = name_nodes(load_graph(opts["roads"], progress=progress), places)
        table = read_incidents(opts["incidents"], filters=_filters(opts), progress=progress)
        snapped = snap_incidents(
            G, table.incidents, max_distance_m=opts["max_snap"], progress=progress
        )
        result = backtest(G, snapped, split, params=params, horizon_days=horizon)
    if fmt == "json":
        doc = {
            "split": result.split.date().isoformat(),
            "horizon_days": horizon,
            "n_train": result.n_train,
            "n_test": result.n_test,
            "risk": result.risk.describe(),
            "results": result.table.to_dict(orient="records"),
        }
        click.echo(json.dumps(doc, indent=2, ensure_ascii=False, default=str))
        return
    out = Console(highlight=False, width=None if sys.stdout.isatty() else 120)
    t = Table(
        title=(
            f"Backtest: fit before {result.split.date()} on {result.n_train} incidents, "
            f"test on {result.n_test}"
        )
    )
    for col in ("method", "flagged", "hit rate", "PAI"):
        t.add_column(col, justify="left" if col == "method" else "right")
    for row in result.table.itertuples(index=False):
        t.add_row(
            str(row.method),
            f"{row.coverage:.0%}",
            f"{row.hit_rate:.1%}",
            f"{row.pai:.2f}",
        )
    out.print(t)


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


_MAP_OPTIONS = [
    click.Option(
        ["--heat/--no-heat"],
        default=True,
        show_default=True,
        help="Add the incident heat layer (toggleable in the map).",
    ),
    click.Option(
        ["--time-slider"],
        is_flag=True,
        help="Add a slider that shows the incidents up to a date (and their heat).",
    ),
    click.Option(
        ["--cluster/--no-cluster"],
        default=None,
        help="Cluster incident markers. Default: when there are 200 or more.",
    ),
    click.Option(
        ["--minimap/--no-minimap"], default=True, show_default=True, help="Add an overview map."
    ),
    click.Option(
        ["--simplify", "simplify_m"],
        type=click.FloatRange(min=0.0),
        default=10.0,
        show_default=True,
        help="Simplify road geometry for display with this tolerance, metres (0: keep all).",
    ),
    click.Option(
        ["--decimals"],
        type=click.IntRange(0, 7),
        default=5,
        show_default=True,
        help="Decimals kept in longitude and latitude (5 is about 1 m).",
    ),
    click.Option(
        ["--renderer"],
        type=click.Choice(["auto", "svg", "canvas"]),
        default="auto",
        show_default=True,
        help="Draw roads as SVG paths or on a canvas (auto: canvas above 20,000 segments).",
    ),
]
map_cmd.params.extend(_MAP_OPTIONS)


def _map_look(opts: dict[str, Any]) -> dict[str, Any]:
    """Take the map options out of `opts`, as keyword arguments of `risk_map`."""
    return {
        "heat": opts.pop("heat"),
        "time_slider": opts.pop("time_slider"),
        "cluster": opts.pop("cluster"),
        "minimap": opts.pop("minimap"),
        "simplify_m": opts.pop("simplify_m"),
        "decimals": opts.pop("decimals"),
        "renderer": opts.pop("renderer"),
    }


# --------------------------------------------------------------------------------------
# engine options (`--engine dask`, `--scheduler ADDRESS` on `snap` and `score`)
# --------------------------------------------------------------------------------------


_ENGINE_OPTIONS = [
    click.Option(
        ["--engine"],
        type=click.Choice(["local", "dask"]),
        default="local",
        show_default=True,
        help="Compute in this process, or on a dask cluster (same results; see docs/scale.md).",
    ),
    click.Option(
        ["--scheduler"],
        metavar="ADDRESS",
        default=None,
        help="With --engine dask: a running dask scheduler, e.g. tcp://10.0.0.5:8786. "
        "Default: a local cluster of two workers.",
    ),
]
snap_cmd.params.extend(_ENGINE_OPTIONS)
score_cmd.params.extend(_ENGINE_OPTIONS)
score_cmd.params.append(
    click.Option(
        ["--workers"],
        type=click.IntRange(min=1),
        default=None,
        help="Threads for the kernel density (in this process). Default: one per core, up to 8.",
    )
)


def _engine_choice(engine: str, scheduler: str | None) -> str | None:
    """The scheduler to use (None: a local cluster), or raise if `--scheduler` is misplaced."""
    if scheduler is not None and engine != "dask":
        msg = f"`--scheduler {scheduler}` needs `--engine dask`: add it, or drop `--scheduler`."
        raise InputError(msg)
    return scheduler


def _snap(
    G: nx.MultiDiGraph,
    incidents: gpd.GeoDataFrame,
    *,
    engine: str,
    scheduler: str | None,
    max_distance_m: float,
    exact_m: float,
    progress: Progress | None,
) -> gpd.GeoDataFrame:
    """`snap_incidents` in this process or on dask."""
    scheduler = _engine_choice(engine, scheduler)
    if engine == "dask":
        from .engine import snap_incidents_dask  # noqa: PLC0415 - dask is slow to import

        return snap_incidents_dask(
            G,
            incidents,
            max_distance_m=max_distance_m,
            exact_m=exact_m,
            scheduler=scheduler,
            progress=progress,
        )
    return snap_incidents(
        G, incidents, max_distance_m=max_distance_m, exact_m=exact_m, progress=progress
    )


def _engines(opts: dict[str, Any]) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """Snapping and scoring functions for `--engine` (in this process, or on dask)."""
    engine = opts.get("engine") or "local"
    scheduler = _engine_choice(engine, opts.get("scheduler"))
    workers = opts.get("workers")
    if workers is not None and engine == "dask":
        msg = "`--workers` sets threads in this process: drop it with `--engine dask`."
        raise InputError(msg)
    if engine != "dask":
        return snap_incidents, functools.partial(score_segments, workers=workers)
    from . import engine as dask_engine  # noqa: PLC0415 - dask is slow to import

    return (
        functools.partial(dask_engine.snap_incidents_dask, scheduler=scheduler),
        functools.partial(dask_engine.score_segments_dask, scheduler=scheduler),
    )
