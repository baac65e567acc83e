"""The ``convoyrisk`` command line: parse, call the library, write, map errors to exit 2."""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import datetime as dt
import functools
import io
import json
import math
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO, TypeVar

import click
import geopandas as gpd
import pandas as pd
import pyogrio
import pyproj
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
from .backtest import backtest
from .bayes import NO_DATA_CLASS, RISK_CLASSES
from .config import params_from_mapping, parse_overrides, read_config
from .export import OUTPUT_FORMATS, output_format, write_run
from .graphcache import load_graph_cached
from .incidents import Filters, merge_duplicates
from .maps import map_title, risk_map, save_map
from .network import (
    DEFAULT_HIGHWAYS,
    graph_info,
    load_graph,
    name_nodes,
    region_around,
    region_from_bbox,
    save_graph,
)
from .pipeline import (
    ENGINES,
    OBJECTIVES,
    Briefing,
    Pace,
    RouteRequest,
    default_of,
    engine_functions,
    placed_table,
    read_incident_sources,
    run,
)
from .places import load_places
from .risk import (
    SEGMENT_FORMATS,
    RiskParams,
    params_path,
    write_segments,
)
from .routing import Route, routes_gdf
from .snapping import EXACT_M, snap_incidents, status_counts
from .sources import write_merge_report
from .utils import Progress, atomic_paths, check_outputs, exit_on_sigterm

F = TypeVar("F", bound=Callable[..., Any])
EXIT_USAGE = 2

err = Console(stderr=True, highlight=False)


def _fail(message: str) -> None:
    click.echo(f"convoyrisk: error: {message}", err=True)
    sys.exit(EXIT_USAGE)


def _field_default(cls: type[Any], name: str) -> Any:  # noqa: ANN401 - any default
    """The default of dataclass field `name` (so click's defaults are the library's)."""
    found = {f.name: f for f in dataclasses.fields(cls)}[name]
    if found.default is not dataclasses.MISSING:
        return found.default
    factory: Any = found.default_factory
    return factory()


class _Group(click.Group):
    """A group that turns a ConvoyRiskError raised while parsing options into one line."""

    def invoke(self, ctx: click.Context) -> Any:  # noqa: ANN401 - any command's result
        exit_on_sigterm()
        try:
            return super().invoke(ctx)
        except ConvoyRiskError as exc:
            _fail(" ".join(str(exc).split()))
        return None


def _iso_day(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A `--as-of`-style option: only YYYY-MM-DD (04/11/2023 is ambiguous)."""
    del ctx
    if value is None:
        return None
    try:
        dt.date.fromisoformat(value)
        ok = len(value) == len("2023-11-04")
    except ValueError:
        ok = False
    if not ok:
        name = (param.opts or [str(param.name)])[0]
        msg = f"`{name}` {value!r} is not a date in YYYY-MM-DD form: give e.g. 2023-11-04."
        raise InputError(msg)
    return value


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
            "--no-cache",
            "no_cache",
            is_flag=True,
            help="Build the network from --roads even if it is in the cache of built networks "
            "(~/.cache/convoyrisk/networks, or $CONVOYRISK_CACHE_DIR), and do not keep it there.",
        ),
        click.option(
            "--incidents",
            type=click.Path(path_type=Path),
            multiple=True,
            help="Incident table (CSV, GeoJSON, GeoPackage); repeat for several (duplicate "
            "reports are merged). Default: the six Nov 2023 incidents.",
        ),
        click.option(
            "--places",
            type=click.Path(path_type=Path),
            help="Gazetteer CSV. Default: the embedded one.",
        ),
        click.option(
            "--as-of",
            "as_of",
            callback=_iso_day,
            help="Date the risk is estimated for (YYYY-MM-DD). Default: the latest incident.",
        ),
        click.option(
            "--segment-length",
            type=click.FloatRange(min=1.0),
            default=_field_default(RiskParams, "segment_length_m"),
            show_default=True,
            help="Segment length, metres.",
        ),
        click.option(
            "--bandwidth",
            type=click.FloatRange(min=1.0),
            default=_field_default(RiskParams, "bandwidth_m"),
            show_default=True,
            help="Kernel bandwidth along the road, metres.",
        ),
        click.option(
            "--half-life",
            type=click.FloatRange(min=0.01),
            default=_field_default(RiskParams, "half_life_days"),
            show_default=True,
            help="Time-decay half-life, days.",
        ),
        click.option(
            "--tune",
            type=click.Choice(["auto", "on", "off"]),
            default=_field_default(RiskParams, "tune"),
            show_default=True,
            help="Choose bandwidth, half-life, prior scale and k by held-out likelihood on the "
            "last 180 days (auto: with 300 to 20,000 episodes); the choice is in params.json.",
        ),
        click.option(
            "--max-snap",
            type=click.FloatRange(min=1.0),
            default=default_of(run, "max_snap_m"),
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
        click.option(
            "--date-from", callback=_iso_day, help="Use only incidents from this day (YYYY-MM-DD)."
        ),
        click.option(
            "--date-to", callback=_iso_day, help="Use only incidents up to this day (YYYY-MM-DD)."
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
            default=_field_default(RouteRequest, "origin"),
            show_default=True,
            help="Start: a place name or 'lat,lon'.",
        ),
        click.option(
            "--to",
            "destination",
            default=_field_default(RouteRequest, "destination"),
            show_default=True,
            help="End: a place name or 'lat,lon'.",
        ),
        click.option(
            "-k",
            "k",
            type=click.IntRange(min=1, max=20),
            default=_field_default(RouteRequest, "k"),
            show_default=True,
            help="Number of alternatives.",
        ),
        click.option(
            "--max-share",
            type=click.FloatRange(0.0, 1.0),
            default=_field_default(RouteRequest, "max_share"),
            show_default=True,
            help="Largest share of length an alternative may have in common with a better one.",
        ),
        click.option(
            "--max-stretch",
            type=click.FloatRange(min=1.0),
            default=_field_default(RouteRequest, "max_stretch"),
            show_default=True,
            help="Largest length ratio of an alternative to the shortest route.",
        ),
        click.option(
            "--speed-kph",
            type=click.FloatRange(min=0.1),
            default=_field_default(Pace, "speed_kph"),
            show_default=True,
            help="Convoy speed while driving, km/h.",
        ),
        click.option(
            "--hours-per-day",
            type=click.FloatRange(0.1, 24.0),
            default=_field_default(Pace, "driving_hours_per_day"),
            show_default=True,
            help="Driving hours per day.",
        ),
        click.option(
            "--travel-days",
            type=click.FloatRange(min=0.01),
            default=_field_default(Pace, "travel_days"),
            help="Days from departure to arrival; time not driven or halted is spread along "
            "the route (a slower pace).",
        ),
        click.option(
            "--halt",
            "halts",
            multiple=True,
            metavar="PLACE=HOURS",
            help="Hours stopped at a place on the route, e.g. `--halt Anéfis=24` (repeatable).",
        ),
        click.option(
            "--threat-lead-hours",
            type=click.FloatRange(min=0.0),
            default=_field_default(Pace, "threat_lead_hours"),
            show_default=True,
            help="An incident on a segment up to this long before the convoy passes still "
            "threatens it (a device laid in its path); 0 counts only the time spent there.",
        ),
        click.option(
            "--convoy-length-m",
            type=click.FloatRange(min=0.0),
            default=_field_default(Pace, "convoy_length_m"),
            show_default=True,
            help="Road the convoy occupies, metres (about 50 m per vehicle): while it drives "
            "or halts, an incident anywhere along it counts.",
        ),
        click.option(
            "--objective",
            type=click.Choice(OBJECTIVES),
            default=_field_default(RouteRequest, "objective"),
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
            default=_field_default(RouteRequest, "risk_weight"),
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
            help="A route to score, as places in order: 'Kidal,Anéfis,Gao'; coordinates as "
            "'Kidal;16.27,-0.04;Gao' or 'Kidal,16.27 -0.04,Gao' (repeatable).",
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
            default=_field_default(RouteRequest, "max_track_offset_m"),
            show_default=True,
            help="A --route-file point farther than this (metres) from every road rejects it.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _explicit(name: str) -> bool:
    """Whether option `name` was given on the command line (not its default)."""
    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return True
    source = ctx.get_parameter_source(name)
    return source is not None and source.name not in {"DEFAULT", "DEFAULT_MAP"}


def _avoid_segments(text: str | None) -> list[int]:
    if not text:
        return []
    try:
        return [int(t) for t in text.replace(";", ",").split(",") if t.strip()]
    except ValueError as exc:
        msg = f"`--avoid-segments` {text!r} is not a list of integers: give e.g. '12,13,40'."
        raise InputError(msg) from exc


def _route_request(opts: dict[str, Any]) -> RouteRequest:
    """The route options as a :class:`RouteRequest`."""
    given = bool(opts["given_routes"] or opts["route_files"])
    return RouteRequest(
        origin=opts["origin"],
        destination=opts["destination"],
        alternatives=not given or _explicit("origin") or _explicit("destination"),
        via=tuple(opts["via"]),
        routes=tuple(opts["given_routes"]),
        route_files=tuple(opts["route_files"]),
        avoid=opts["avoid_file"],
        avoid_segments=tuple(_avoid_segments(opts["avoid_segments"])),
        k=opts["k"],
        objective=opts["objective"],
        max_share=opts["max_share"],
        max_stretch=opts["max_stretch"],
        risk_weight=opts["risk_weight"],
        max_track_offset_m=opts["max_track_offset"],
        pace=Pace(
            speed_kph=opts["speed_kph"],
            driving_hours_per_day=opts["hours_per_day"],
            travel_days=opts["travel_days"],
            halts=tuple(_halt(text) for text in opts["halts"]),
            threat_lead_hours=opts["threat_lead_hours"],
            convoy_length_m=opts["convoy_length_m"],
        ),
    )


def _halt(text: str) -> tuple[str, float]:
    """``PLACE=HOURS`` of `--halt`."""
    place, sep, hours = str(text).rpartition("=")
    try:
        value = float(hours)
    except ValueError:
        value = math.nan
    if not sep or not place.strip() or not (math.isfinite(value) and value >= 0):
        msg = f"`--halt {text}` must be PLACE=HOURS with hours zero or more, e.g. Anéfis=24."
        raise InputError(msg)
    return place.strip(), value


def _run(opts: dict[str, Any], *, want_routes: bool = True) -> Briefing:
    """Options to :func:`pipeline.run` (every input checked before any computing)."""
    quiet = bool(opts["quiet"])

    def say(message: str) -> None:
        if not quiet:
            err.print(escape(message))

    with _progress_bar(quiet=quiet) as progress:
        return run(
            opts["roads"],
            list(opts["incidents"]) or None,
            places=opts["places"],
            request=_route_request(opts) if want_routes else None,
            params=_risk_params(opts),
            as_of=opts["as_of"],
            filters=_filters(opts),
            max_snap_m=opts["max_snap"],
            allow_empty=bool(opts.get("allow_empty")),
            engine=opts.get("engine") or "local",
            scheduler=opts.get("scheduler"),
            workers=opts.get("workers"),
            progress=progress,
            log=say,
            cache=not opts.get("no_cache"),
            freeze=True,  # one job per process: the network's objects stay to the end
        )


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
        "expected_incidents_low",
        "expected_incidents_high",
        "expected_incidents_now",
        "p_incident_now",
        "exposure_hours",
        "threat_lead_hours",
        "convoy_length_m",
        "km_insufficient_data",
        "via",
        "shared_fraction",
        "worst_segment",
        "worst_segments",
    ]
    rec = {k: r.metrics[k] for k in keys}
    if profile:
        rec["profile"] = r.metrics["profile"]
    return rec


def _print_table(job: Briefing) -> None:
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


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
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
@click.option(
    "--out",
    "out",
    type=click.Path(path_type=Path),
    help="Also write a file, in the format its extension names: "
    + ", ".join([".html (map)", *(f"{k} ({v})" for k, v in OUTPUT_FORMATS.items())])
    + ".",
)
@click.option(
    "--marking",
    default="",
    help='Handling marking printed on the PDF, e.g. "UNCLASSIFIED // FOR OFFICIAL USE".',
)
@_handle_errors
def routes_cmd(fmt: str, out: Path | None, marking: str, **opts: Any) -> None:  # noqa: ANN401 - click passes options
    """Find genuinely different routes, or score given ones, and report their risk.

    Alternatives share at most --max-share of their length with a better route
    and are at most --max-stretch times as long as the best (penalty method).
    """
    if out is not None:
        output_format(out)
        check_outputs({"`--out`": out}, inputs=_inputs(opts))
    job = _run(opts)
    if out is not None:
        path = write_run(out, job, marking=marking)
        if not opts["quiet"]:  # stdout keeps the --format output alone
            what = OUTPUT_FORMATS.get(path.suffix.lower(), "map")
            err.print(escape(f"{what} written to {path} ({_size(path)})"))
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


def _map_title(job: Briefing) -> str | None:
    """The map's title: the alternatives' ends, else (None) what `maps.map_title` makes."""
    title = f"convoyrisk: {job.origin} → {job.destination}" if job.origin else None
    if job.risk.describe()["incidents_used"] == 0:
        return f"{title or map_title(job.G, job.routes)} (0 incidents used)"
    return title


@main.command("map")
@_data_options
@_route_options
@click.option(
    "--out",
    "out",
    type=click.Path(path_type=Path),
    default=Path("out/kidal_gao_risk.html"),
    show_default=True,
    help="File to write: .html for the interactive map, or "
    + ", ".join(f"{k} ({v})" for k, v in OUTPUT_FORMATS.items())
    + ".",
)
@click.option(
    "--offline/--online",
    default=default_of(save_map, "offline"),
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
    """Write the risk map (HTML, or a PDF, GPX, KML... by extension); print the alternatives."""
    check_outputs({"`--out`": out}, inputs=_inputs(opts))
    look = _map_look(opts)
    if output_format(out) == ".gpx" and no_routes:
        msg = f"Cannot write {out}: GPX holds routes and there are none (drop --no-routes)."
        raise InputError(msg)
    job = _run(opts, want_routes=not no_routes)
    if out.suffix.lower() != ".html":
        path = write_run(out, job, marking=look["marking"] or "")
        if job.routes:
            _print_table(job)
        click.echo(f"{OUTPUT_FORMATS[path.suffix.lower()]} written to {path} ({_size(path)})")
        return
    m = risk_map(
        job.G,
        job.risk,
        routes=job.routes,
        places=job.places,
        sources=job.sources,
        tiles=list(tiles),
        tiles_shown=not offline,
        title=_map_title(job),
        **look,
    )
    path = save_map(m, out, offline=offline)
    if job.routes:
        _print_table(job)
    click.echo(f"map written to {path} ({path.stat().st_size / 1e6:.1f} MB)")


def _size(path: Path) -> str:
    size = path.stat().st_size
    return f"{size / 1e6:.1f} MB" if size >= 100_000 else f"{size / 1e3:.0f} kB"


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
    default=25.0,  # km; region_around takes metres and has no default
    show_default=True,
    help="Corridor half-width around the --around places, km.",
)
@click.option("--places", type=click.Path(path_type=Path), help="Gazetteer CSV for --around.")
@click.option(
    "--tolerance",
    "tolerance_m",
    type=click.FloatRange(min=0.0),
    default=default_of(load_graph, "node_tolerance_m"),
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
    default=default_of(load_graph, "keep"),
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
    check_outputs({"`--out`": out}, inputs=[source, places])
    _check_road_file(source)
    if crs is not None:
        try:
            pyproj.CRS.from_user_input(crs)
        except pyproj.exceptions.CRSError as exc:
            msg = (
                f"`--crs` {crs!r} is not a coordinate reference system: give an EPSG code of "
                "a metric CRS, e.g. EPSG:32631, or leave it out to have one chosen for the data."
            )
            raise InputError(msg) from exc
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
    _check_road_file(path)
    info = graph_info(load_graph(path))
    if fmt == "json":
        click.echo(json.dumps(info, indent=2, ensure_ascii=False))
    else:
        _print_info(info)


def _check_road_file(path: Path) -> None:
    """`network build|info` take the road file as an argument (not `--roads`)."""
    if not path.exists():
        msg = f"Road file {path} does not exist: give an existing road file as the argument."
        raise InputError(msg)


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


def _rejects_path(out: Path) -> Path:
    return out.with_name(f"{out.stem}_rejects{out.suffix}")


def _write_table(frame: pd.DataFrame, tmp: Path, path: Path) -> None:
    """CSV or GeoPackage by the extension of `path`, to `tmp` (GeoPackage: points if any)."""
    if path.suffix.lower() == ".csv":
        plain = frame.drop(columns="geometry", errors="ignore")
        plain.to_csv(tmp, index=False, date_format="%Y-%m-%d")
    elif isinstance(frame, gpd.GeoDataFrame):
        frame.to_file(tmp, driver="GPKG", layer=path.stem, engine="pyogrio")
    else:
        pyogrio.write_dataframe(frame, tmp, driver="GPKG", layer=path.stem)


def _inputs(opts: dict[str, Any]) -> list[Path | None]:
    """Every file a data command reads (an output must be none of them)."""
    return [
        opts.get("roads"),
        *opts.get("incidents", ()),
        opts.get("places"),
        opts.get("config"),
        *opts.get("route_files", ()),
        opts.get("avoid_file"),
        opts.get("basemap"),
    ]


@main.command("snap")
@click.option(
    "--incidents",
    type=click.Path(path_type=Path),
    multiple=True,
    help="ACLED or UCDP GED export, or a plain CSV/GeoJSON/GeoPackage; repeat for several "
    "(duplicate reports are merged). Default: the embedded.",
)
@click.option(
    "--roads",
    type=click.Path(path_type=Path),
    help="Roads: OSM .osm.pbf/.osm/.osm.bz2, OSMnx GraphML, GIS line layer, built .gpkg.",
)
@click.option(
    "--no-cache",
    "no_cache",
    is_flag=True,
    help="Build the network from --roads even if it is in the cache of built networks.",
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
    default=default_of(run, "max_snap_m"),
    show_default=True,
    help="Exact events farther than this (metres) from every road are too far.",
)
@click.option(
    "--exact-m",
    type=click.FloatRange(min=0.0),
    default=EXACT_M,
    show_default=True,
    help="Events with an uncertainty radius up to this (metres) snap; larger ones spread.",
)
@click.option(
    "--event-type",
    "event_types",
    multiple=True,
    help="Keep only this type (ACLED sub_event_type or event_type); repeatable.",
)
@click.option("--date-from", callback=_iso_day, help="Keep events from this day (YYYY-MM-DD).")
@click.option("--date-to", callback=_iso_day, help="Keep events up to this day (YYYY-MM-DD).")
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
    default=default_of(merge_duplicates, "distance_m"),
    show_default=True,
    help="Duplicate reports lie within this distance (metres)...",
)
@click.option(
    "--merge-days",
    type=click.FloatRange(min=0.0),
    default=default_of(merge_duplicates, "days"),
    show_default=True,
    help="... and within this many days.",
)
@click.option(
    "--merge-report",
    type=click.Path(path_type=Path),
    help="Also write the dedup report (CSV): every merged report and the incident it joined.",
)
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors.")
@_handle_errors
def snap_cmd(
    *,
    incidents: tuple[Path, ...],
    roads: Path | None,
    no_cache: bool,
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
    merge_report: Path | None,
    quiet: bool,
    engine: str = "local",
    scheduler: str | None = None,
) -> None:
    """Put incidents on the road network; write them and a rejects file; print the counts."""
    if out.suffix.lower() not in {".csv", ".gpkg"}:
        msg = f"`--out` {out} must end in .csv or .gpkg."
        raise InputError(msg)
    check_outputs(
        {
            "`--out`": out,
            "the rejects file": _rejects_path(out),
            "`--merge-report`": merge_report,
        },
        inputs=[roads, *incidents],
    )
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
    snap, _ = engine_functions(engine, scheduler=scheduler)
    with _progress_bar(quiet=quiet) as progress:
        G = load_graph_cached(roads, cache=not no_cache, progress=progress)
        table = read_incident_sources(
            list(incidents) or None,
            columns=columns or None,
            filters=filters,
            merge=merge,
            merge_distance_m=merge_distance,
            merge_days=merge_days,
            require_dates=False,
            progress=progress,
        )
        placed = snap(
            G, table.incidents, max_distance_m=max_snap, exact_m=exact_m, progress=progress
        )
    frame = placed_table(G, table, placed)
    if merge_report is not None:
        write_merge_report(table, merge_report)
    rejects = table.rejects.sort_values("row", kind="stable")
    with atomic_paths(out, _rejects_path(out)) as (tmp, tmp_rejects):
        _write_table(frame, tmp, out)
        _write_table(rejects, tmp_rejects, _rejects_path(out))
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
    "tune": "tune",
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
    check_outputs({"`--out`": out, "the parameters file": params_path(out)}, inputs=_inputs(opts))
    job = _run(opts, want_routes=False)
    path = write_segments(job.risk, out)
    risk = job.risk
    if not opts["quiet"]:
        counts = risk.segments["risk_class"].value_counts()
        classes = ", ".join(f"{counts.get(c, 0)} {c}" for c in (*RISK_CLASSES, NO_DATA_CLASS))
        p = risk.params
        err.print(
            escape(
                f"as of {risk.as_of.date()}: {risk.episodes} episodes; "
                f"{len(risk.segments)} segments ({classes}); "
                f"{p.kernel} kernel, {p.junction}, bandwidth {p.bandwidth_m:g} m, "
                f"half-life {p.half_life_days:g} d, overdispersion k {risk.overdispersion:.3g}"
            )
        )
    click.echo(f"segments written to {path} (parameters in {path.stem}.params.json)")


@main.command("backtest")
@_data_options
@_config_options
@click.option(
    "--split",
    "split",
    required=True,
    callback=_iso_day,
    help="Fit before this date, test from it (YYYY-MM-DD).",
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
    """Hit rate, PAI and calibration on a time split, against raw counts and a planar KDE."""
    if opts.get("as_of"):
        msg = "`backtest` fits the model as of `--split`: leave out `--as-of`."
        raise InputError(msg)
    params = _risk_params(opts)
    places = load_places(opts["places"])
    with _progress_bar(quiet=bool(opts["quiet"])) as progress:
        G = name_nodes(
            load_graph_cached(opts["roads"], cache=not opts["no_cache"], progress=progress), places
        )
        table = read_incident_sources(
            list(opts["incidents"]) or None, filters=_filters(opts), progress=progress
        )
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
            "test_days": result.test_days,
            "calibration": result.calibration.to_dict(orient="records"),
            "interval_level": result.level,
            "interval_coverage": result.interval_coverage,
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
    cal = Table(
        title=(
            f"Calibration over the {result.test_days:g} test days: expected against observed "
            "incidents, by decile of predicted rate (1 = lowest)"
        )
    )
    level = f"{result.level:.0%}"
    for col in ("decile", "road", "expected", f"{level} interval", f"Poisson {level}", "observed"):
        cal.add_column(col, justify="right")
    cal.add_column("obs/exp", justify="right")
    for row in result.calibration.itertuples(index=False):
        mark = ("" if row.inside else " ✗") + ("" if row.inside_poisson else " ·")
        cal.add_row(
            str(row.group),
            f"{row.length_share:.0%}",
            f"{row.expected:.2f}",
            f"{row.interval_low:.0f}–{row.interval_high:.0f}",
            f"{row.poisson_low:.0f}–{row.poisson_high:.0f}",
            f"{row.observed:.0f}{mark}",
            f"{row.ratio:.2f}",
        )
    out.print(cal)
    cov = result.interval_coverage
    out.print(
        f"Observed counts inside their {level} predictive interval (from the rate interval): "
        f"{cov['all']:.1%} of road, {cov['top_decile']:.1%} of the top decile; deciles "
        f"inside it: {cov['bins']:.0%} (✗ outside), inside the Poisson {level} interval of "
        f"their expected count: {cov['bins_poisson']:.0%} (· outside)."
    )


def _flat_record(r: Route) -> dict[str, Any]:
    rec = _route_record(r, profile=False)
    worst = rec.pop("worst_segments")
    rec.pop("worst_segment")
    rec["via"] = "; ".join(rec["via"])
    rec["worst_segments"] = "; ".join(
        f"{w['segment_id']}@km{w['chainage_km']:g}:{w['risk_class']}" for w in worst
    )
    return rec


def _emit_csv(job: Briefing) -> None:
    rows = [_flat_record(r) for r in job.routes]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else ["rank"])
    writer.writeheader()
    writer.writerows(rows)
    click.echo(buf.getvalue(), nl=False)


def _emit_geojson(job: Briefing) -> None:
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
        default=default_of(risk_map, "heat"),
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
        ["--minimap/--no-minimap"],
        default=default_of(risk_map, "minimap"),
        show_default=True,
        help="Add an overview map.",
    ),
    click.Option(
        ["--simplify", "simplify_m"],
        type=click.FloatRange(min=0.0),
        default=default_of(risk_map, "simplify_m"),
        show_default=True,
        help="Simplify road geometry for display with this tolerance, metres (0: keep all).",
    ),
    click.Option(
        ["--decimals"],
        type=click.IntRange(0, 7),
        default=default_of(risk_map, "decimals"),
        show_default=True,
        help="Decimals kept in longitude and latitude (5 is about 1 m).",
    ),
    click.Option(
        ["--renderer"],
        type=click.Choice(["auto", "svg", "canvas"]),
        default=default_of(risk_map, "renderer"),
        show_default=True,
        help="Draw roads as SVG paths or on a canvas (auto: canvas above 20,000 segments).",
    ),
    click.Option(
        ["--marking"],
        help="Handling marking shown on the map, at the top and bottom of its printed page "
        "and on a PDF briefing, e.g. RESTRICTED.",
    ),
    click.Option(
        ["--basemap"],
        type=click.Path(path_type=Path),
        help="MBTiles file of raster tiles (PNG/JPEG) embedded under the risk for the map's "
        "extent (offline imagery or OSM tiles).",
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
        "marking": opts.pop("marking"),
        "basemap": opts.pop("basemap"),
    }


# --------------------------------------------------------------------------------------
# engine options (`--engine dask`, `--scheduler ADDRESS` on `snap` and `score`)
# --------------------------------------------------------------------------------------


_ENGINE_OPTIONS = [
    click.Option(
        ["--engine"],
        type=click.Choice(ENGINES),
        default=default_of(run, "engine"),
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

# `routes`, `map` and `score` refuse to run on no usable incident unless told
for _cmd in (routes_cmd, map_cmd, score_cmd):
    _cmd.params.append(
        click.Option(
            ["--allow-empty"],
            is_flag=True,
            help="Go on when no incident is usable (the risk is then the prior alone).",
        )
    )


# --- fetch: ACLED and UCDP APIs to CSV files that read like their exports -------------------


@main.group("fetch")
def fetch_group() -> None:
    """Download incidents from ACLED or UCDP GED into a CSV that reads like an export.

    Credentials come from the environment only: ACLED_USERNAME and ACLED_PASSWORD
    (ACLED), UCDP_TOKEN (UCDP). ACLED's terms forbid redistributing its rows: the
    file is yours, not to be shared.
    """


def _fetch_options(func: F) -> F:
    for option in reversed(
        [
            click.option("--country", required=True, help="Country name, e.g. Mali."),
            click.option("--since", required=True, help="First event date, YYYY-MM-DD."),
            click.option("--until", default=None, help="Last event date, YYYY-MM-DD (today)."),
            click.option(
                "--out",
                required=True,
                type=click.Path(dir_okay=False, path_type=Path),
                help="CSV to write (atomically, once every page is in).",
            ),
            click.option("--api-url", default=None, help="Another API root (a mirror)."),
            click.option(
                "--update",
                is_flag=True,
                help="Fetch only what changed since --out was written, and apply deletions.",
            ),
            click.option(
                "--no-cache", is_flag=True, help="Download even if this query is in the cache."
            ),
            click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors."),
        ]
    ):
        func = option(func)
    return func


def _fetch(source: str, opts: dict[str, Any], **extra: Any) -> None:  # noqa: ANN401
    from .fetch import fetch_to_file  # noqa: PLC0415 - only this command needs it

    quiet = bool(opts.get("quiet"))
    check_outputs({"`--out`": opts["out"]})  # before any download

    def page_done(page: int, events: int, total: int | None) -> None:
        of = f"/{total}" if total else ""
        click.echo(f"{source}: page {page}{of}, {events} events so far", err=True)

    summary = fetch_to_file(
        source,
        country=opts["country"],
        since=opts["since"],
        until=opts["until"],
        out=opts["out"],
        update=opts["update"],
        api_url=opts["api_url"],
        cache=not opts["no_cache"],
        progress=None if quiet else page_done,
        **extra,
    )
    if quiet:
        return
    how = "from the cache" if summary.from_cache else f"{summary.pages} page(s) downloaded"
    change = (
        f"; {summary.added} added, {summary.changed} changed, {summary.deleted} deleted"
        if opts["update"]
        else ""
    )
    click.echo(f"{summary.events} {source} events ({how}{change}) written to {summary.path}")


@fetch_group.command("acled")
@_fetch_options
@_handle_errors
def fetch_acled_cmd(**opts: Any) -> None:  # noqa: ANN401 - click passes options
    """ACLED events (OAuth login with ACLED_USERNAME / ACLED_PASSWORD)."""
    _fetch("acled", opts)


@fetch_group.command("ucdp")
@_fetch_options
@click.option("--ged-version", default=None, help="GED release (default: the library's, 25.1).")
@_handle_errors
def fetch_ucdp_cmd(ged_version: str | None, **opts: Any) -> None:  # noqa: ANN401 - click options
    """UCDP GED events (token in UCDP_TOKEN); --country takes a name or a Gleditsch–Ward code."""
    _fetch("ucdp", opts, **({"version": ged_version} if ged_version else {}))
