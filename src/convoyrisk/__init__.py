"""convoyrisk: road-segment risk and route alternatives for convoys crossing contested ground.

The pipeline, one module per step: :mod:`~convoyrisk.places` (gazetteer),
:mod:`~convoyrisk.network` (roads to a graph; :mod:`~convoyrisk.osm` and
:mod:`~convoyrisk.graphio` read and write files, :mod:`~convoyrisk.convert` holds
the graph contract, :mod:`~convoyrisk.projection` true metres and lengths),
:mod:`~convoyrisk.incidents` (reading and checking incident tables),
:mod:`~convoyrisk.snapping` (incidents onto roads), :mod:`~convoyrisk.risk` (per-segment risk),
:mod:`~convoyrisk.routing` (alternatives and route risk) and
:mod:`~convoyrisk.maps` (offline Folium maps).
"""

from importlib.metadata import PackageNotFoundError, version

from ._errors import (
    ConvoyRiskError,
    ConvoyRiskWarning,
    InputError,
    NoRouteError,
    PlaceNotFoundError,
)
from .convert import validate_graph
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
from .places import geocode, load_places
from .risk import RiskParams, RiskResult, backtest, score_segments, write_segments
from .routing import (
    alternative_routes,
    chokepoints,
    pareto_routes,
    read_tracks,
    route_metrics,
    route_through,
    score_routes,
    snap_track,
)
from .simulate import simulate_incidents
from .snapping import snap_incidents

try:
    __version__ = version("convoyrisk")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "ConvoyRiskError",
    "ConvoyRiskWarning",
    "IncidentTable",
    "InputError",
    "NoRouteError",
    "PlaceNotFoundError",
    "RiskParams",
    "RiskResult",
    "__version__",
    "alternative_routes",
    "backtest",
    "chokepoints",
    "edges_gdf",
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
    "read_tracks",
    "risk_map",
    "route_metrics",
    "route_through",
    "save_graph",
    "save_map",
    "score_routes",
    "score_segments",
    "simulate_incidents",
    "snap_incidents",
    "snap_track",
    "validate_graph",
    "write_segments",
]
