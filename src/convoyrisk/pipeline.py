"""The whole job in one call: roads, incidents, places and a route request to a briefing.

:func:`run` does what ``convoyrisk map``, ``routes`` and ``score`` do: load and
check every input first (so a bad one fails before any work), then build the
graph, read and merge the incidents, snap them, score the segments and find and
score the routes. The command line only parses options, calls it and prints.

Examples
--------
>>> import convoyrisk as cr
>>> b = cr.run(request=cr.RouteRequest("Kidal", "Gao", k=2))  # doctest: +SKIP
>>> [round(r.metrics["length_km"]) for r in b.routes]  # doctest: +SKIP
[350, 375]
"""

from __future__ import annotations

import dataclasses
import gc
import inspect
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import networkx as nx
import pandas as pd

from . import settings
from ._errors import InputError
from .density import split_segments
from .exposure import Trip
from .graphcache import load_graph_cached
from .incidents import (
    Filters,
    IncidentTable,
    concat_tables,
    merge_duplicates,
    read_incidents,
    validate_incidents,
)
from .network import name_nodes, nearest_node
from .osm import is_osm_file, read_osm_places
from .places import Place, extend_places, geocode, load_places
from .risk import RiskParams, RiskResult, score_segments
from .routing import (
    METHOD,
    Route,
    RoutingIndex,
    alternative_routes,
    chokepoints,
    pareto_routes,
    read_areas,
    roads_in_areas,
    roads_of_segments,
    route_through,
    score_routes,
)
from .snapping import EXACT_M, snap_incidents
from .sources import MergeRules, read_sources
from .tracks import read_tracks, snap_track
from .utils import Progress

Log = Callable[[str], None]
"""A callback that takes one line of progress text (the CLI prints it on stderr)."""

MAX_PLACE_DISTANCE_M = 25_000.0
"""A place farther than this (metres) from every road node cannot start or end a route."""

OBJECTIVES = ("shortest", "safest", "balanced", "minimax", "pareto")
"""What the alternatives minimise (see :class:`RouteRequest`)."""

RANK_BY = {
    "shortest": "length",
    "safest": "expected_incidents",
    "balanced": "expected_incidents",
    "minimax": "worst_rate",
    "pareto": "length",
}
"""How the scored routes are ranked under each objective (`rank_by` of score_routes)."""

ENGINES = ("local", "dask")
"""Where snapping and scoring run: in this process, or on a dask cluster."""


def default_of(func: Callable[..., Any], name: str) -> Any:  # noqa: ANN401 - any default
    """The default value of parameter `name` of `func` (one source for every default).

    Examples
    --------
    >>> def f(a, *, b=3): ...
    >>> default_of(f, "b")
    3
    """
    return inspect.signature(func).parameters[name].default


_DEFAULT_ORIGIN = "Kidal"
_DEFAULT_DESTINATION = "Gao"


_TRIP = Trip()


@dataclass(frozen=True)
class Pace:
    """How the convoy moves: passed as keyword arguments to :func:`routing.score_routes`.

    Attributes
    ----------
    speed_kph
        Speed while driving, km/h.
    driving_hours_per_day
        Hours on the road per day.
    travel_days
        Days from departure to arrival; None to derive it from speed and hours.
    halts
        ``(place, hours)`` of each halt on the route (names or ``lat,lon``).
    threat_lead_hours
        How long before the convoy passes a segment an incident there still
        threatens it (see :class:`convoyrisk.exposure.Trip`).
    convoy_length_m
        Road the convoy occupies, metres (about 50 m per vehicle).
    """

    speed_kph: float = _TRIP.speed_kph
    driving_hours_per_day: float = _TRIP.driving_hours_per_day
    travel_days: float | None = _TRIP.travel_days
    halts: tuple[tuple[str, float], ...] = ()
    threat_lead_hours: float = _TRIP.threat_lead_hours
    convoy_length_m: float = _TRIP.convoy_length_m

    def __post_init__(self) -> None:
        """Refuse values that are not finite and positive, naming the option."""
        checks = (
            ("speed_kph", "--speed-kph", self.speed_kph, math.inf),
            ("driving_hours_per_day", "--hours-per-day", self.driving_hours_per_day, 24.0),
            ("travel_days", "--travel-days", self.travel_days, math.inf),
            ("threat_lead_hours", "--threat-lead-hours", self.threat_lead_hours + 1.0, math.inf),
            ("convoy_length_m", "--convoy-length-m", self.convoy_length_m + 1.0, math.inf),
        )
        for name, option, value, top in checks:
            if value is None:
                continue
            if not (math.isfinite(value) and 0 < value <= top):
                upper = "" if math.isinf(top) else f" up to {top:g}"
                msg = (
                    f"`{name}` ({option}) is {value!r}: give a finite number above 0{upper}, "
                    "e.g. 30 km/h, 10 hours a day or 2 days."
                )
                raise InputError(msg)

    def as_kwargs(self) -> dict[str, Any]:
        """The fields but halts as keyword arguments for :func:`routing.score_routes`."""
        out = dataclasses.asdict(self)
        out.pop("halts")
        return out


@dataclass(frozen=True)
class RouteRequest:
    """What routes to find or score; every place is a gazetteer name or ``"lat,lon"``.

    Attributes
    ----------
    origin, destination
        Ends of the alternatives.
    alternatives
        Find alternatives between `origin` and `destination`. None (the
        default): only when no `routes` or `route_files` are given.
    via
        Places every alternative must pass, in order.
    routes
        Given routes to score, each as a sequence of stops or one string:
        ``"Kidal,Anéfis,Gao"``; stops that are coordinates as
        ``"Kidal;16.27,-0.04;Gao"`` (``;`` between stops), ``"Kidal,16.27 -0.04,Gao"``
        or ``"Kidal,16.27,-0.04,Gao"`` (two numbers in a row are one stop).
    route_files
        GPX tracks or GeoJSON lines snapped onto the roads and scored.
    avoid
        Polygons (a file or a GeoDataFrame): roads that touch them are not used.
    avoid_segments
        Segment ids (``segment_id`` of the scored segments) whose roads are not used.
    k, max_share, max_stretch, risk_weight
        As in :func:`routing.alternative_routes`.
    objective
        One of :data:`OBJECTIVES`: length, expected incidents, length +
        risk_weight x risk, the worst segment's rate, or the Pareto front of
        length against expected incidents. Routes are ranked by it (:data:`RANK_BY`).
    max_track_offset_m
        A track point farther than this (metres) from every road rejects the track.
    pace
        Speed, hours and days on the road (:class:`Pace`).
    """

    origin: str = _DEFAULT_ORIGIN
    destination: str = _DEFAULT_DESTINATION
    alternatives: bool | None = None
    via: Sequence[str] = ()
    routes: Sequence[str | Sequence[str]] = ()
    route_files: Sequence[str | Path] = ()
    avoid: str | Path | gpd.GeoDataFrame | None = None
    avoid_segments: Sequence[int] = ()
    k: int = default_of(alternative_routes, "k")
    objective: str = default_of(alternative_routes, "objective")
    max_share: float = default_of(alternative_routes, "max_share")
    max_stretch: float = default_of(alternative_routes, "max_stretch")
    risk_weight: float = default_of(alternative_routes, "risk_weight")
    max_track_offset_m: float = default_of(snap_track, "max_offset_m")
    pace: Pace = field(default_factory=Pace)

    def __post_init__(self) -> None:
        """Refuse an unknown objective and non-finite weights with the option's name."""
        if self.objective not in OBJECTIVES:
            msg = f"`objective` {self.objective!r} is not one of {', '.join(OBJECTIVES)}."
            raise InputError(msg)
        if not (math.isfinite(self.risk_weight) and self.risk_weight >= 0):
            msg = (
                f"`risk_weight` (--risk-weight) is {self.risk_weight!r}: give a finite number "
                "of km, 0 or more (e.g. 1000)."
            )
            raise InputError(msg)
        if not (math.isfinite(self.max_stretch) and self.max_stretch >= 1):
            msg = f"`max_stretch` (--max-stretch) is {self.max_stretch!r}: give a number >= 1."
            raise InputError(msg)
        if not (0 <= self.max_share <= 1):
            msg = f"`max_share` (--max-share) is {self.max_share!r}: give a number in [0, 1]."
            raise InputError(msg)


@dataclass
class Briefing:
    """Everything one :func:`run` produced.

    Attributes
    ----------
    G
        The road graph (metric CRS, nodes named after the places they are at).
    places
        The gazetteer used.
    table
        The incidents read (``incidents``) and the rows not used (``rejects``).
    snapped
        The incidents on the roads (:func:`snapping.snap_incidents`).
    risk
        Segments with rates per km per 30 days, classes and intervals.
    routes
        Scored routes, best first under the request's objective (empty without
        a request).
    origin, destination
        Names of the alternatives' ends ("" when only given routes were scored).
    sources
        The incident sources (``source`` column), sorted.
    info
        Objective, method, limits, avoided roads and chokepoints.
    """

    G: nx.MultiDiGraph
    places: gpd.GeoDataFrame
    table: IncidentTable
    snapped: gpd.GeoDataFrame
    risk: RiskResult
    routes: list[Route] = field(default_factory=list)
    origin: str = ""
    destination: str = ""
    sources: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------
# incidents from several files or frames
# --------------------------------------------------------------------------------------


def _frame_points(frame: pd.DataFrame) -> pd.DataFrame:
    """A table with ``latitude``/``longitude`` columns (from a GeoDataFrame's points)."""
    if not isinstance(frame, gpd.GeoDataFrame) or "latitude" in frame.columns:
        return frame
    if frame.crs is None:
        msg = "The incidents GeoDataFrame has no CRS: set one (e.g. `gdf.set_crs(4326)`)."
        raise InputError(msg)
    wgs = frame.to_crs(settings.default_crs)
    out = pd.DataFrame(wgs.drop(columns=wgs.geometry.name))
    out["longitude"], out["latitude"] = wgs.geometry.x.to_numpy(), wgs.geometry.y.to_numpy()
    return out


def read_incident_sources(
    incidents: str | Path | pd.DataFrame | Sequence[str | Path | pd.DataFrame] | None = None,
    *,
    columns: Mapping[str, str] | None = None,
    filters: Filters | None = None,
    merge: bool = True,
    merge_distance_m: float = default_of(merge_duplicates, "distance_m"),
    merge_days: float = default_of(merge_duplicates, "days"),
    require_dates: bool = True,
    progress: Progress | None = None,
) -> IncidentTable:
    """Read one or more incident files or tables, concatenate them, merge duplicate reports.

    ``convoyrisk snap`` and :func:`run` both read incidents through this, so
    they use the same incidents.

    Parameters
    ----------
    incidents
        A path, a DataFrame (``latitude``, ``longitude``, ``date``, ...) or a
        GeoDataFrame of points, or a list of them; the embedded November 2023
        incidents if None.
    columns, filters
        As in :func:`incidents.read_incidents`.
    merge, merge_distance_m, merge_days
        Merge reports of one event from different sources
        (:func:`incidents.merge_duplicates`).
    require_dates
        Refuse a table without a date column (scoring needs dates; snapping
        does not).
    progress
        As in :func:`incidents.read_incidents`.

    Returns
    -------
    IncidentTable
        With more than one input (read by :func:`convoyrisk.sources.read_sources`),
        ``row`` numbers count within each input, named in ``input``; each
        incident lists every report of it in ``sources``, and merged reports
        name the input and row they were merged into.
    """
    items: list[Any]
    if incidents is None or isinstance(incidents, str | Path | pd.DataFrame):
        items = [incidents]
    else:
        items = list(incidents)
    if not items:
        items = [None]
    if len(items) > 1:
        # several sources: one incident per event across them, each listing its reports
        # (merging across sources needs dates, so every input must have them)
        return read_sources(
            [_frame_points(i) if isinstance(i, pd.DataFrame) else i for i in items],
            columns=columns,
            filters=filters,
            rules=MergeRules(distance_m=merge_distance_m, days=merge_days, merge=merge),
            progress=progress,
        )
    parts: list[IncidentTable] = []
    offset = 0
    for i, item in enumerate(items):
        if isinstance(item, pd.DataFrame):
            name = f"`incidents[{i}]`" if len(items) > 1 else "`incidents`"
            part = validate_incidents(
                _frame_points(item),
                source=name,
                columns=columns,
                filters=filters,
                first_row=1,
                require_dates=require_dates,
            )
        else:
            name = str(item) if item is not None else str(settings.default_incidents())
            part = read_incidents(
                item,
                columns=columns,
                filters=filters,
                require_dates=require_dates,
                progress=progress,
            )
        if len(items) > 1:
            part = _renumber(part, offset, name)
        offset += part.n_input
        parts.append(part)
    table = concat_tables(parts)
    if merge:
        table = merge_duplicates(table, distance_m=merge_distance_m, days=merge_days)
    return table


def _renumber(table: IncidentTable, offset: int, name: str) -> IncidentTable:
    inc = table.incidents.copy()
    rejects = table.rejects.copy()
    inc["row"] = inc["row"] + offset
    rejects["row"] = rejects["row"] + offset
    if "merged_into" in rejects.columns:
        rejects["merged_into"] = rejects["merged_into"] + offset
    inc["file"] = name
    rejects["file"] = name
    return IncidentTable(inc, rejects, table.n_input, table.dataset)


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
    "file",
)
"""Columns of the placed-events table (:func:`placed_table`), in this order when present."""


def placed_table(
    G: nx.MultiDiGraph, table: IncidentTable, placed: gpd.GeoDataFrame
) -> gpd.GeoDataFrame:
    """The table ``convoyrisk snap`` writes: each incident with where it was placed.

    Parameters
    ----------
    G
        The graph the incidents were snapped onto.
    table
        The incidents read (:func:`read_incident_sources`).
    placed
        ``snap_incidents(G, table.incidents)``, row for row.

    Returns
    -------
    geopandas.GeoDataFrame
        :data:`SNAP_COLUMNS` (those present), ``longitude``, ``latitude``,
        ``snap_crs`` (the CRS of ``snap_x``/``snap_y``) and the incident points
        in EPSG:4326 as geometry.
    """
    wgs = table.incidents.geometry
    out = pd.DataFrame(placed).copy()
    out["longitude"], out["latitude"] = wgs.x.to_numpy(), wgs.y.to_numpy()
    if "file" in table.incidents.columns and "file" not in out.columns:
        out["file"] = table.incidents["file"].to_numpy()
    cols = [c for c in SNAP_COLUMNS if c in out.columns] + ["longitude", "latitude"]
    frame = gpd.GeoDataFrame(out[cols], geometry=wgs.to_numpy(), crs=wgs.crs)
    frame["snap_crs"] = G.graph["crs"]
    return frame


# --------------------------------------------------------------------------------------
# route requests: stops, plan, routes
# --------------------------------------------------------------------------------------

_NUMBER = re.compile(r"^[+-]?\d+(?:\.\d+)?$")
_SPACED = re.compile(r"^\s*([+-]?\d+(?:\.\d+)?)\s+([+-]?\d+(?:\.\d+)?)\s*$")


def parse_stops(text: str) -> list[str]:
    """Split a route given as text into its stops (place names or ``"lat,lon"``).

    ``;`` separates stops when present (``"Kidal;16.27,-0.04;Gao"``); otherwise
    commas do, and two numbers in a row (``"Kidal,16.27,-0.04,Gao"``) or two
    numbers separated by a space (``"16.27 -0.04"``) are one ``lat,lon`` stop.

    Raises
    ------
    InputError
        If a stop is empty (``"Kidal,,Gao"``), a number has no partner, or
        there are fewer than two stops.

    Examples
    --------
    >>> parse_stops("Kidal, Anéfis ,Gao")
    ['Kidal', 'Anéfis', 'Gao']
    >>> parse_stops("Kidal,16.27,-0.04")
    ['Kidal', '16.27,-0.04']
    >>> parse_stops("Kidal;16.27 -0.04")
    ['Kidal', '16.27,-0.04']
    """
    sep = ";" if ";" in text else ","
    tokens = [t.strip() for t in text.split(sep)]
    if any(not t for t in tokens):
        msg = (
            f"`--route` {text!r} has an empty stop: separate places by one comma, "
            "e.g. 'Kidal,Anéfis,Gao'."
        )
        raise InputError(msg)
    stops: list[str] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        spaced = _SPACED.match(token)
        if spaced:
            stops.append(f"{spaced.group(1)},{spaced.group(2)}")
        elif sep == "," and _NUMBER.match(token):
            if i + 1 >= len(tokens) or not _NUMBER.match(tokens[i + 1]):
                msg = (
                    f"`--route` {text!r}: the number {token} is not followed by a longitude: "
                    "give coordinates as 'lat,lon' (or 'lat lon'), e.g. 'Kidal,16.27,-0.04'."
                )
                raise InputError(msg)
            stops.append(f"{token},{tokens[i + 1]}")
            i += 1
        else:
            stops.append(token)
        i += 1
    if len(stops) < 2:
        msg = f"`--route` {text!r} needs at least two places, e.g. 'Kidal,Anéfis,Gao'."
        raise InputError(msg)
    return stops


def node_of(G: nx.MultiDiGraph, place: Place, *, max_m: float = MAX_PLACE_DISTANCE_M) -> int:
    """The road node nearest `place`; refuse a place more than `max_m` metres from any.

    Raises
    ------
    InputError
        If the nearest node is farther than `max_m`.
    """
    node, dist = nearest_node(G, place.lat, place.lon)
    if dist > max_m:
        msg = (
            f"{place.name} is {dist / 1000:.0f} km from the nearest road node: "
            "choose a place on the network or pass `--roads` that cover it."
        )
        raise InputError(msg)
    return node


@dataclass
class _Stops:
    """A request's places, resolved in the gazetteer (before any graph is read)."""

    ends: list[Place]
    via: list[Place]
    given: list[tuple[str, list[Place]]]
    tracks: list[tuple[str, Any]]
    areas: gpd.GeoDataFrame | None
    alternatives: bool
    halts: list[tuple[Place, float]]


def _resolve(request: RouteRequest, places: gpd.GeoDataFrame) -> _Stops:
    given = []
    for item in request.routes:
        stops = parse_stops(item) if isinstance(item, str) else [str(s) for s in item]
        given.append((", ".join(stops), [geocode(s, places) for s in stops]))
    tracks = [t for path in request.route_files for t in read_tracks(path)]
    alternatives = (
        request.alternatives
        if request.alternatives is not None
        else not (request.routes or request.route_files)
    )
    ends = [geocode(request.origin, places), geocode(request.destination, places)]
    areas: gpd.GeoDataFrame | None = None
    if isinstance(request.avoid, gpd.GeoDataFrame):
        areas = request.avoid
    elif request.avoid is not None:
        areas = read_areas(request.avoid)
    return _Stops(
        halts=[(geocode(name, places), hours) for name, hours in request.pace.halts],
        ends=ends if alternatives else [],
        via=[geocode(v, places) for v in request.via],
        given=given,
        tracks=tracks,
        areas=areas,
        alternatives=alternatives,
    )


@dataclass
class _Plan:
    """What can be worked out before the risk: avoid set, end and via nodes, given routes."""

    index: RoutingIndex
    ends: list[int]
    avoid: set[int]
    avoid_note: str
    via: list[int]
    given: list[Route]
    halts: dict[Any, float]


def _plan(G: nx.MultiDiGraph, request: RouteRequest, stops: _Stops, params: RiskParams) -> _Plan:
    """Resolve every route input on the graph, so bad ones fail before any scoring."""
    index = RoutingIndex(G)
    avoid: set[int] = set()
    if request.avoid_segments:
        segments = split_segments(G, params.segment_length_m)
        avoid |= roads_of_segments(segments, request.avoid_segments)
    note = ""
    if stops.areas is not None:
        hit = roads_in_areas(G, stops.areas)
        where = request.avoid if not isinstance(request.avoid, gpd.GeoDataFrame) else "`avoid`"
        note = f"avoid: {len(hit)} road(s) touch the areas in {where}"
        avoid |= hit
    ends = [node_of(G, p) for p in stops.ends]
    via = [node_of(G, p) for p in stops.via]
    given = [
        route_through(G, [node_of(G, p) for p in ps], name=name, avoid_roads=avoid, index=index)
        for name, ps in stops.given
    ]
    given += [
        snap_track(G, line, max_offset_m=request.max_track_offset_m, name=name, index=index)
        for name, line in stops.tracks
    ]
    if ends:  # fail now if the ends do not connect
        route_through(G, [ends[0], *via, ends[1]], avoid_roads=avoid, index=index)
    halts: dict[Any, float] = {}
    for place, hours in stops.halts:
        node = node_of(G, place)
        halts[node] = halts.get(node, 0.0) + hours
    return _Plan(index, ends, avoid, note, via, given, halts)


def plan_routes(
    G: nx.MultiDiGraph,
    risk: RiskResult,
    request: RouteRequest,
    *,
    places: gpd.GeoDataFrame | None = None,
    log: Log | None = None,
) -> tuple[list[Route], dict[str, Any]]:
    """Find and score the routes of `request` on a scored network.

    Parameters
    ----------
    G
        The road graph.
    risk
        Its scored segments (:func:`risk.score_segments`).
    request
        What to find and score.
    places
        Gazetteer; the embedded one if None.
    log
        Called with notes (roads avoided, fewer alternatives than asked).

    Returns
    -------
    routes, info
        Routes ranked best first under ``request.objective``, and a dict of
        ``objective``, ``method``, ``max_share``, ``max_stretch``,
        ``avoided_roads`` and (for alternatives) ``chokepoints``.
    """
    places = load_places() if places is None else places
    stops = _resolve(request, places)
    plan = _plan(G, request, stops, risk.params)
    return _routes(G, risk, request, plan, log=log or _quiet)


def _quiet(_message: str) -> None:
    """A log that says nothing."""


def _routes(
    G: nx.MultiDiGraph, risk: RiskResult, request: RouteRequest, plan: _Plan, *, log: Log
) -> tuple[list[Route], dict[str, Any]]:
    if plan.avoid_note:
        log(plan.avoid_note)
    objective = request.objective
    found: list[Route] = []
    if plan.ends:
        origin, destination = plan.ends
        if objective == "pareto":
            found = pareto_routes(
                G, origin, destination, risk, via=plan.via, avoid_roads=plan.avoid, index=plan.index
            )
        else:
            found = alternative_routes(
                G,
                origin,
                destination,
                k=request.k,
                max_share=request.max_share,
                max_stretch=request.max_stretch,
                objective=objective,
                risk=risk,
                risk_weight=request.risk_weight,
                via=plan.via,
                avoid_roads=plan.avoid,
                index=plan.index,
            )
            if len(found) < request.k:
                log(
                    f"only {len(found)} genuinely different route(s) within the share/stretch "
                    "limits"
                )
    routes = score_routes(
        G,
        found + plan.given,
        risk,
        rank_by=RANK_BY[objective],
        halts=plan.halts,
        **request.pace.as_kwargs(),
    )
    info: dict[str, Any] = {
        "objective": objective,
        "method": "dichotomic weighted sum" if objective == "pareto" else METHOD,
        "max_share": request.max_share,
        "max_stretch": request.max_stretch,
        "avoided_roads": sorted(plan.avoid),
    }
    if plan.ends:
        info["chokepoints"] = chokepoints(
            G,
            plan.ends[0],
            plan.ends[1],
            [r for r in routes if r.name in {"alternative", "pareto"}],
            avoid_roads=plan.avoid,
        )
    return routes, info


# --------------------------------------------------------------------------------------
# the engines
# --------------------------------------------------------------------------------------


def engine_functions(
    engine: str = "local", *, scheduler: str | None = None, workers: int | None = None
) -> tuple[Callable[..., gpd.GeoDataFrame], Callable[..., RiskResult]]:
    """Snapping and scoring functions for `engine` ("local" or "dask"), same results.

    Raises
    ------
    InputError
        If `engine` is unknown, `scheduler` is given without "dask", or
        `workers` with "dask".
    """
    if engine not in ENGINES:
        msg = f"`engine` {engine!r} is not one of {', '.join(ENGINES)}."
        raise InputError(msg)
    if scheduler is not None and engine != "dask":
        msg = f"`--scheduler {scheduler}` needs `--engine dask`: add it, or drop `--scheduler`."
        raise InputError(msg)
    if workers is not None and engine == "dask":
        msg = "`--workers` sets threads in this process: drop it with `--engine dask`."
        raise InputError(msg)
    if engine != "dask":

        def score_local(*args: Any, **kwargs: Any) -> RiskResult:  # noqa: ANN401
            return score_segments(*args, workers=workers, **kwargs)

        return snap_incidents, score_local
    from . import engine as dask_engine  # noqa: PLC0415 - dask is slow to import

    if scheduler is not None:
        dask_engine.check_address(scheduler)

    def snap_dask(*args: Any, **kwargs: Any) -> gpd.GeoDataFrame:  # noqa: ANN401
        return dask_engine.snap_incidents_dask(*args, scheduler=scheduler, **kwargs)

    def score_dask(*args: Any, **kwargs: Any) -> RiskResult:  # noqa: ANN401
        return dask_engine.score_segments_dask(*args, scheduler=scheduler, **kwargs)

    return snap_dask, score_dask


# --------------------------------------------------------------------------------------
# run
# --------------------------------------------------------------------------------------


def _graph(
    roads: str | Path | nx.MultiDiGraph | None,
    places: gpd.GeoDataFrame,
    progress: Progress | None,
    *,
    cache: bool,
) -> nx.MultiDiGraph:
    G = (
        roads
        if isinstance(roads, nx.MultiDiGraph)
        else load_graph_cached(roads, cache=cache, progress=progress)
    )
    return name_nodes(G, places)


def _lookup(
    gazetteer: gpd.GeoDataFrame, roads: str | Path | nx.MultiDiGraph | None
) -> gpd.GeoDataFrame:
    """The gazetteer, then the named place nodes of `roads` when it is an OSM file."""
    if isinstance(roads, str | Path) and is_osm_file(roads) and Path(roads).is_file():
        return extend_places(gazetteer, read_osm_places(roads))
    return gazetteer


def _incident_summary(table: IncidentTable, risk: RiskResult) -> str:
    used = risk.incidents["used"].value_counts().to_dict() if len(risk.incidents) else {}
    counts = ", ".join(f"{n} {k}" for k, n in sorted(used.items())) or "0 used"
    left = table.counts()
    left_out = "".join(f"{left[k]} {k}, " for k in ("rejected", "excluded", "merged") if left[k])
    return f"{table.n_input} rows: {left_out}{counts}"


def run(
    roads: str | Path | nx.MultiDiGraph | None = None,
    incidents: str | Path | pd.DataFrame | Sequence[str | Path | pd.DataFrame] | None = None,
    *,
    places: str | Path | gpd.GeoDataFrame | None = None,
    request: RouteRequest | None = None,
    params: RiskParams | None = None,
    as_of: str | pd.Timestamp | None = None,
    filters: Filters | None = None,
    columns: Mapping[str, str] | None = None,
    merge: bool = True,
    max_snap_m: float = default_of(snap_incidents, "max_distance_m"),
    exact_m: float = EXACT_M,
    allow_empty: bool = False,
    engine: str = "local",
    scheduler: str | None = None,
    workers: int | None = None,
    progress: Progress | None = None,
    log: Log | None = None,
    cache: bool = False,
    freeze: bool = False,
) -> Briefing:
    """Roads, incidents, places and a route request to scored segments and routes.

    Every input is read and checked before any scoring, so a bad one fails
    fast and nothing is written.

    Parameters
    ----------
    roads
        A road file (:func:`network.load_graph`) or a graph; the embedded
        Kidal–Gao roads if None.
    incidents
        A file, a (Geo)DataFrame or a list of them (read, concatenated and
        merged as ``convoyrisk snap`` does: :func:`read_incident_sources`);
        the embedded November 2023 incidents if None.
    places
        A gazetteer CSV or GeoDataFrame; the embedded one if None. When `roads`
        is an OSM file, its named ``place=*`` nodes are looked up after it
        (:func:`osm.read_osm_places`), so route ends and stops resolve from the
        extract alone; a name the gazetteer knows resolves to the gazetteer's place.
    request
        Routes to find and score; None for the risk alone.
    params
        Risk model parameters; the defaults if None.
    as_of
        Date the risk is estimated for; the latest incident date if None.
    filters, columns, merge
        Which rows to use, column names, and whether to merge duplicate
        reports (:func:`read_incident_sources`).
    max_snap_m, exact_m
        As in :func:`snapping.snap_incidents` (metres).
    allow_empty
        Go on when no incident is usable (the risk is then the prior alone);
        otherwise raise.
    engine, scheduler, workers
        Compute in this process ("local", `workers` threads) or on dask (a
        local cluster, or the scheduler at `scheduler`).
    progress
        Progress callback for the long steps.
    log
        Called with one line per step (roads, incidents, notes).
    cache
        Keep the network built from a road file in the cache of built networks,
        and read it from there next time (:mod:`convoyrisk.graphcache`; the
        command line does, unless ``--no-cache``).
    freeze
        Once the network is built, take every object then alive out of the
        cyclic garbage collector's sight (:func:`gc.freeze`). A country's network
        is millions of Python objects, and each full collection walked them all
        (16 s a pass on the full synthetic country, several passes a run). For a
        process that runs one job, as the command line does; a program that
        drops briefings and runs again should call :func:`gc.unfreeze` between.

    Returns
    -------
    Briefing

    Raises
    ------
    InputError
        For any unusable input, and when no incident is usable and
        `allow_empty` is False.
    """
    say = log or _quiet
    gazetteer = places if isinstance(places, gpd.GeoDataFrame) else load_places(places)
    params = params or RiskParams()
    if roads is None and not params.base_rates:
        # the embedded scenario comes with its published 1997–2020 base rates
        params = params.replace(base_rates=str(settings.default_base_rates()))
    stops = _resolve(request, _lookup(gazetteer, roads)) if request is not None else None
    snap, score = engine_functions(engine, scheduler=scheduler, workers=workers)
    G = _graph(roads, gazetteer, progress, cache=cache)
    if freeze:
        gc.freeze()
    table = read_incident_sources(
        incidents, columns=columns, filters=filters, merge=merge, progress=progress
    )
    plan = _plan(G, request, stops, params) if request is not None and stops is not None else None
    say(f"roads: {G.number_of_nodes()} nodes, {G.number_of_edges()} edges ({G.graph['crs']})")
    snapped = snap(
        G, table.incidents, max_distance_m=max_snap_m, exact_m=exact_m, progress=progress
    )
    risk = score(G, snapped, params=params, as_of=as_of, progress=progress)
    summary = _incident_summary(table, risk)
    say(f"incidents: {summary}")
    for row in table.rejects.head(5).itertuples(index=False):
        say(f"  {row.kind} row {row.row}: {row.reason}")
    if len(table.rejects) > 5:
        say(
            f"  ... and {len(table.rejects) - 5} more (`convoyrisk snap` writes them all to a file)"
        )
    n_used = int((risk.incidents["used"] == "used").sum()) if len(risk.incidents) else 0
    if n_used == 0 and not allow_empty:
        msg = (
            f"No usable incidents ({summary}): check the incident file(s), `--max-snap`, "
            "`--as-of` and the filters, or pass `--allow-empty` for the prior alone."
        )
        raise InputError(msg)
    routes: list[Route] = []
    info: dict[str, Any] = {}
    origin = destination = ""
    if request is not None and plan is not None and stops is not None:
        routes, info = _routes(G, risk, request, plan, log=say)
        if stops.alternatives:
            origin, destination = stops.ends[0].name, stops.ends[1].name
    sources = sorted({str(s) for s in risk.incidents.get("source", []) if str(s)})
    return Briefing(G, gazetteer, table, snapped, risk, routes, origin, destination, sources, info)
