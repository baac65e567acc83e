"""Road layers to a routable networkx graph, with OSMnx's conventions.

The graph is a :class:`networkx.MultiDiGraph` in a metric CRS: nodes carry
``x``, ``y`` (projected metres) and ``lon``, ``lat``; edges carry ``geometry``
(a projected LineString from ``u`` to ``v``), ``length`` (metres), ``road_id``
(the source line both directions share) and the road's attributes;
``G.graph["crs"]`` names the CRS. A two-way road is a pair of edges ``u→v`` and
``v→u``; the one that follows the source line's digitised direction has
``reversed=False``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import pyogrio
import shapely
from pyproj import CRS
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from . import settings
from ._errors import InputError, MissingInputError

ROAD_ATTRIBUTES = (
    "name",
    "ref",
    "highway",
    "surface",
    "tracktype",
    "smoothness",
    "geometry_source",
)
"""Road attributes copied onto edges when the layer has them."""


def read_roads(path: str | Path | None = None) -> gpd.GeoDataFrame:
    """Read a GIS line layer (GeoJSON, GeoPackage, Shapefile, GeoParquet...).

    Parameters
    ----------
    path
        The layer; the embedded Kidal–Gao roads if None.

    Raises
    ------
    MissingInputError
        If the file does not exist.
    InputError
        If it cannot be read, is empty, has no CRS or holds no lines.
    """
    path = Path(path) if path is not None else settings.default_roads()
    if not path.exists():
        msg = f"Road layer {path} does not exist: pass an existing file with `--roads`."
        raise MissingInputError(msg)
    try:
        if path.suffix.lower() == ".parquet":
            roads = gpd.read_parquet(path)
        else:
            roads = gpd.read_file(path, engine="pyogrio")
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        msg = f"Cannot read road layer {path}: {first}. Pass a GeoJSON, GeoPackage or Shapefile."
        raise InputError(msg) from exc
    return validate_roads(roads, source=str(path))


def validate_roads(roads: gpd.GeoDataFrame, *, source: str = "`roads`") -> gpd.GeoDataFrame:
    """Check a road layer and keep its line geometries, exploded to single lines.

    Raises
    ------
    InputError
        If the layer is empty, has no CRS, or has no (Multi)LineString geometry.
    """
    if len(roads) == 0:
        msg = f"Road layer {source} is empty: it needs at least one LineString."
        raise InputError(msg)
    if roads.crs is None:
        msg = (
            f"Road layer {source} has no CRS: set one (e.g. `gdf.set_crs('EPSG:4326')`, or "
            "`ogr2ogr -a_srs EPSG:4326 out.gpkg in.shp`) and try again."
        )
        raise InputError(msg)
    types = roads.geom_type
    lines = roads[types.isin(["LineString", "MultiLineString"])]
    if len(lines) == 0:
        found = ", ".join(sorted({str(t) for t in types.unique()}))
        msg = f"Road layer {source} holds no lines (found {found}): pass a layer of LineStrings."
        raise InputError(msg)
    lines = lines.explode(index_parts=False, ignore_index=False)
    lines = lines[~lines.geometry.is_empty]
    if "source_row" not in lines.columns:
        lines = lines.reset_index(names="source_row")
    return lines.reset_index(drop=True)


def graph_from_gdf(
    roads: gpd.GeoDataFrame,
    *,
    crs: str | CRS | None = None,
    node_tolerance_m: float = 1.0,
    oneway_column: str | None = "oneway",
) -> nx.MultiDiGraph:
    """Build a routable graph from a road line layer.

    Line endpoints closer than `node_tolerance_m` become one node. Lines are
    not split where they cross: roads that meet must share an endpoint.

    Parameters
    ----------
    roads
        Line layer with a CRS (see :func:`validate_roads`).
    crs
        Metric CRS to work in; the UTM zone estimated from the data if None.
    node_tolerance_m
        Endpoints within this distance are merged into one node.
    oneway_column
        Column whose truthy values ("yes", "true", "1") make a road one-way.

    Returns
    -------
    networkx.MultiDiGraph
        With ``G.graph["crs"]`` set to the metric CRS.
    """
    roads = validate_roads(roads)
    metric = CRS.from_user_input(crs) if crs is not None else roads.estimate_utm_crs()
    if not metric.is_projected:
        msg = f"`crs` {metric.to_string()} is not projected: lengths need metres (e.g. a UTM zone)."
        raise InputError(msg)
    projected = roads.to_crs(metric)
    geoms = projected.geometry.to_numpy()
    starts = shapely.get_coordinates(shapely.get_point(geoms, 0))
    ends = shapely.get_coordinates(shapely.get_point(geoms, -1))
    endpoints = np.vstack([starts, ends])
    node_of = _cluster_points(endpoints, node_tolerance_m)
    n_lines = len(geoms)
    u_ids, v_ids = node_of[:n_lines], node_of[n_lines:]

    # a node sits at the mean of the endpoints merged into it
    n_nodes = int(node_of.max()) + 1
    counts = np.bincount(node_of, minlength=n_nodes)
    xs = np.bincount(node_of, weights=endpoints[:, 0], minlength=n_nodes) / counts
    ys = np.bincount(node_of, weights=endpoints[:, 1], minlength=n_nodes) / counts
    lonlat = gpd.GeoSeries(gpd.points_from_xy(xs, ys), crs=metric).to_crs(settings.default_crs)

    G = nx.MultiDiGraph(crs=metric.to_string(), source_crs=str(roads.crs))
    for i in range(n_nodes):
        G.add_node(
            i, x=float(xs[i]), y=float(ys[i]), lon=float(lonlat.x[i]), lat=float(lonlat.y[i])
        )

    attrs = [c for c in ROAD_ATTRIBUTES if c in projected.columns]
    oneway = (
        projected[oneway_column].astype(str).str.lower().isin(["yes", "true", "1"]).to_numpy()
        if oneway_column and oneway_column in projected.columns
        else np.zeros(n_lines, dtype=bool)
    )
    lengths = shapely.length(geoms)
    for i in range(n_lines):
        u, v = int(u_ids[i]), int(v_ids[i])
        length = float(lengths[i])
        if length <= 0.0:
            continue
        data: dict[str, Any] = {a: _clean(projected[a].iat[i]) for a in attrs}
        line = _pin_ends(geoms[i], (xs[u], ys[u]), (xs[v], ys[v]))
        G.add_edge(u, v, geometry=line, length=length, road_id=i, reversed=False, **data)
        if not oneway[i]:
            G.add_edge(
                v, u, geometry=line.reverse(), length=length, road_id=i, reversed=True, **data
            )
    G.remove_nodes_from([n for n in list(G.nodes) if G.degree(n) == 0])
    return G


def _clean(value: Any) -> Any:  # noqa: ANN401 - attribute values are whatever the layer holds
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    return value.item() if isinstance(value, np.generic) else value


def _pin_ends(
    line: shapely.LineString, start: tuple[float, float], end: tuple[float, float]
) -> shapely.LineString:
    """Move a line's first and last vertex onto its (merged) nodes."""
    coords = shapely.get_coordinates(line)
    coords[0] = start
    coords[-1] = end
    return shapely.LineString(coords)


def _cluster_points(points: np.ndarray, tolerance: float) -> np.ndarray:
    """Label points so that points within `tolerance` (transitively) share a label."""
    tree = cKDTree(points)
    pairs = tree.query_pairs(tolerance, output_type="ndarray")
    n = len(points)
    adjacency = coo_matrix(
        (np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1]) if len(pairs) else ([], [])), shape=(n, n)
    )
    _, labels = connected_components(adjacency, directed=False)
    return np.asarray(labels, dtype=np.int64)


def load_graph(path: str | Path | None = None) -> nx.MultiDiGraph:
    """Read a road layer and build its graph (see :func:`graph_from_gdf`)."""
    return graph_from_gdf(read_roads(path))


def edges_gdf(G: nx.MultiDiGraph, *, forward_only: bool = True) -> gpd.GeoDataFrame:
    """Edges as a GeoDataFrame indexed by ``(u, v, key)``, in the graph's CRS.

    Parameters
    ----------
    G
        Graph from :func:`graph_from_gdf`.
    forward_only
        Keep one edge per road line (the one with ``reversed=False``), so each
        stretch of road appears once.
    """
    rows = [
        {"u": u, "v": v, "key": k, **data}
        for u, v, k, data in G.edges(keys=True, data=True)
        if not (forward_only and data.get("reversed", False))
    ]
    if not rows:
        msg = "The graph has no edges: the road layer gave no usable lines."
        raise InputError(msg)
    gdf = gpd.GeoDataFrame(pd.DataFrame(rows), geometry="geometry", crs=G.graph["crs"])
    return gdf.set_index(["u", "v", "key"])


def nodes_gdf(G: nx.MultiDiGraph) -> gpd.GeoDataFrame:
    """Nodes as a GeoDataFrame indexed by node id, in the graph's CRS."""
    df = pd.DataFrame.from_dict(dict(G.nodes(data=True)), orient="index")
    return gpd.GeoDataFrame(df, geometry=gpd.points_from_xy(df["x"], df["y"]), crs=G.graph["crs"])


def nearest_node(G: nx.MultiDiGraph, lat: float, lon: float) -> tuple[int, float]:
    """The node nearest to a WGS84 point, and its distance in metres."""
    point = gpd.GeoSeries(gpd.points_from_xy([lon], [lat]), crs=settings.default_crs)
    x, y = shapely.get_coordinates(point.to_crs(G.graph["crs"]).to_numpy())[0]
    ids = np.fromiter(G.nodes, dtype=np.int64, count=G.number_of_nodes())
    xy = np.array([(G.nodes[n]["x"], G.nodes[n]["y"]) for n in ids])
    d = np.hypot(xy[:, 0] - x, xy[:, 1] - y)
    i = int(np.argmin(d))
    return int(ids[i]), float(d[i])


def name_nodes(
    G: nx.MultiDiGraph, places: gpd.GeoDataFrame, *, within_m: float = 2000.0
) -> nx.MultiDiGraph:
    """Set node attribute ``name`` to the nearest gazetteer place within `within_m`."""
    pts = places.to_crs(G.graph["crs"])
    pxy = shapely.get_coordinates(pts.geometry.to_numpy())
    tree = cKDTree(pxy)
    for _n, data in G.nodes(data=True):
        d, i = tree.query((data["x"], data["y"]))
        if d <= within_m:
            data["name"] = str(pts["name"].iat[int(i)])
    return G
