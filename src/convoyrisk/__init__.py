"""convoyrisk: road-segment risk and route alternatives for convoys crossing contested ground.

The pipeline, one module per step: :mod:`~convoyrisk.places` (gazetteer),
:mod:`~convoyrisk.network` (roads to a graph; :mod:`~convoyrisk.osm` and
:mod:`~convoyrisk.graphio` read and write files, :mod:`~convoyrisk.convert` holds
the graph contract, :mod:`~convoyrisk.projection` true metres and lengths),
:mod:`~convoyrisk.incidents`
(reading and checking incident tables), :mod:`~convoyrisk.fieldreports`
(KoBo/ODK geopoints), :mod:`~convoyrisk.sources` (several sources merged),
:mod:`~convoyrisk.fetch` (ACLED and UCDP API clients),
:mod:`~convoyrisk.snapping` (incidents onto roads), :mod:`~convoyrisk.risk`
(per-segment risk), :mod:`~convoyrisk.routing` (alternatives and route risk),
:mod:`~convoyrisk.maps` (offline Folium maps), :mod:`~convoyrisk.briefing` (the one-page
PDF) and :mod:`~convoyrisk.export` (GPX, KML/KMZ, GeoPackage, GeoParquet);
:mod:`~convoyrisk.pipeline` does them all in one call (:func:`run`);
:mod:`~convoyrisk.backtest` (hit rate, PAI and calibration) and :mod:`~convoyrisk.simulate`
(worlds with a known truth) judge the risk model.
"""

from importlib.metadata import PackageNotFoundError, version

from . import fetch, sources
from ._errors import (
    ConvoyRiskError,
    ConvoyRiskWarning,
    FetchError,
    InputError,
    NoRouteError,
    PlaceNotFoundError,
)
from .backtest import backtest
from .compiled import CompiledGraph, compile_graph
from .convert import validate_graph
from .export import write_output
from .incidents import IncidentTable, read_incidents
from .maps import risk_map, save_map
from .network import (
    edges_gdf,
    graph_from_gdf,
    graph_from_osm,
    graph_from_osmnx,
    graph_info,
    load_graph,
    name_nodes,
    nearest_node,
    nodes_gdf,
    read_osm,
    read_roads,
    save_graph,
)
from .pipeline import Briefing, Pace, RouteRequest, run
from .places import geocode, load_places
from .risk import RiskParams, RiskResult, score_segments, write_segments
from .routing import (
    alternative_routes,
    chokepoints,
    pareto_routes,
    route_metrics,
    route_through,
    score_routes,
)
from .simulate import desert_network, simulate_world
from .snapping import snap_incidents
from .sources import MergeRules, read_sources
from .tracks import read_tracks, snap_track

try:
    __version__ = version("convoyrisk")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "Briefing",
    "CompiledGraph",
    "ConvoyRiskError",
    "ConvoyRiskWarning",
    "FetchError",
    "IncidentTable",
    "InputError",
    "MergeRules",
    "NoRouteError",
    "Pace",
    "PlaceNotFoundError",
    "RiskParams",
    "RiskResult",
    "RouteRequest",
    "__version__",
    "alternative_routes",
    "backtest",
    "chokepoints",
    "compile_graph",
    "desert_network",
    "edges_gdf",
    "fetch",
    "geocode",
    "graph_from_gdf",
    "graph_from_osm",
    "graph_from_osmnx",
    "graph_info",
    "load_graph",
    "load_places",
    "name_nodes",
    "nearest_node",
    "nodes_gdf",
    "pareto_routes",
    "read_incidents",
    "read_osm",
    "read_roads",
    "read_sources",
    "read_tracks",
    "risk_map",
    "route_metrics",
    "route_through",
    "run",
    "save_graph",
    "save_map",
    "score_routes",
    "score_segments",
    "simulate_world",
    "snap_incidents",
    "snap_track",
    "sources",
    "validate_graph",
    "write_output",
    "write_segments",
]
