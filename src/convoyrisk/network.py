"""Road data to a clean, routable networkx graph, with OSMnx's conventions.

The graph follows the contract of :mod:`convoyrisk.convert` (checked by
:func:`~convoyrisk.convert.validate_graph`): a :class:`networkx.MultiDiGraph`
drawn in a CRS whose metres are true over the data (:mod:`convoyrisk.projection`);
nodes carry ``x``, ``y`` (projected metres) and ``lon``, ``lat``; edges carry
``geometry`` (a projected LineString from ``u`` to ``v``), ``length`` (metres on
the WGS84 ellipsoid), ``road_id`` (shared by the two directions of one road),
``reversed`` and the road's attributes (``name``, ``ref``, ``highway``,
``surface``, ``tracktype``, ``smoothness``, ``oneway``...); ``G.graph["crs"]``
names the CRS. A two-way road is a pair of edges ``u→v`` and ``v→u``; the one
that follows the source line's direction has ``reversed=False``.

This module builds and cleans: from GIS line layers (:func:`graph_from_gdf`;
layers are read by :mod:`convoyrisk.roads` and noded by :mod:`convoyrisk.noding`),
OpenStreetMap files (:func:`graph_from_osm`, read by :mod:`convoyrisk.osm`),
OSMnx and momepy graphs (:func:`graph_from_osmnx`) and the files
:func:`~convoyrisk.graphio.save_graph` writes; :func:`load_graph` picks the
reader from the file. Every builder runs the same clean-up (``docs/network.md``):
node crossings and near misses (GIS layers), drop zero-length and duplicate
edges, merge chains of degree-2 nodes, and report connected components. The
public names of the modules it uses are re-exported here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS, Transformer
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from . import settings
from ._errors import InputError, MissingInputError
from .convert import (
    CREATED_WITH,
    as_text,
    edges_gdf,
    graph_from_tables,
    mark_checked,
    nodes_gdf,
    validate_graph,
)
from .graphio import GRAPH_LAYERS, is_built_gpkg, read_built_gpkg, read_graphml, save_graph
from .noding import EPS_M, node_lines
from .osm import DEFAULT_HIGHWAYS, NOT_ROADS, OSM_TAGS, is_osm_file, read_osm
from .projection import (
    MAX_SCALE_ERROR,
    check_metric_crs,
    crs_name,
    geodesic_lengths,
    is_metre_crs,
    parse_crs,
    scale_error,
    suitable_crs,
    to_lonlat,
)
from .roads import (
    SKIPPED,
    clip_roads,
    count_skipped,
    describe_skipped,
    read_roads,
    region_around,
    region_from_bbox,
    skipped_rows,
    validate_roads,
)
from .utils import Progress, without_gc

__all__ = [
    "CREATED_WITH",
    "DEFAULT_HIGHWAYS",
    "GRAPH_LAYERS",
    "NOT_ROADS",
    "OSM_TAGS",
    "ROAD_ATTRIBUTES",
    "SKIPPED",
    "Keep",
    "clip_roads",
    "edges_gdf",
    "graph_from_gdf",
    "graph_from_osm",
    "graph_from_osmnx",
    "graph_info",
    "is_osm_file",
    "load_graph",
    "name_nodes",
    "nearest_node",
    "nodes_gdf",
    "read_osm",
    "read_roads",
    "region_around",
    "region_from_bbox",
    "save_graph",
    "skipped_rows",
    "validate_graph",
    "validate_roads",
]

ROAD_ATTRIBUTES = (
    "name",
    "ref",
    "highway",
    "surface",
    "tracktype",
    "smoothness",
    "geometry_source",
)
"""Road attributes copied onto edges when the source has them."""

_EPS = EPS_M  # metres: two points closer than this along a line are the same point
_TRUE = frozenset({"yes", "true", "1"})
_REVERSE = frozenset({"-1", "reverse"})

Keep = Literal["all", "largest"]


# --------------------------------------------------------------------------------------
# building
# --------------------------------------------------------------------------------------


@dataclass
class _Pieces:
    """Road pieces from one node to another, before clean-up."""

    geoms: np.ndarray  # projected LineStrings, u -> v
    u: np.ndarray  # node labels (0..n-1)
    v: np.ndarray
    node_xy: np.ndarray  # (n, 2) projected
    attrs: pd.DataFrame  # one row per piece
    oneway: np.ndarray  # bool
    node_ids: np.ndarray | None = None  # external node ids (OSM), by label
    report: dict[str, Any] = field(default_factory=dict)


@without_gc
def graph_from_gdf(
    roads: gpd.GeoDataFrame,
    *,
    crs: str | CRS | None = None,
    node_tolerance_m: float = 1.0,
    oneway_column: str | None = "oneway",
    node_crossings: bool = True,
    simplify: bool = False,
    keep: Keep = "all",
    drop_invalid: bool = False,
    progress: Progress | None = None,
) -> nx.MultiDiGraph:
    """Build a routable graph from a road line layer.

    Lines are split where they cross or touch (`node_crossings`), line ends
    closer than `node_tolerance_m` to another line end or to another line are
    joined to it, zero-length and duplicate pieces are dropped, and (with
    `simplify`) chains of degree-2 nodes whose pieces share every attribute are
    merged into one edge keeping the full geometry.

    Parameters
    ----------
    roads
        Line layer with a CRS (see :func:`validate_roads`).
    crs
        Metric CRS to work in. If None: the layer's own CRS when it is projected
        in metres, else the UTM zone estimated from the data.
    node_tolerance_m
        Line ends within this distance of another end or of another line are joined.
    oneway_column
        Column whose values "yes", "true", "1" make a road one-way ("-1" one-way
        against the digitised direction).
    node_crossings
        Split lines where they cross without a shared vertex. Turn it off for
        layers whose bridges and tunnels cross other roads without a junction.
    simplify
        Merge degree-2 chains (by default each source line stays its own edge(s)).
    keep
        "all" connected components, or only the "largest".
    drop_invalid
        Drop invalid lines instead of raising.
    progress
        Called as ``progress("building network", step, steps)``.

    Returns
    -------
    networkx.MultiDiGraph
        With ``G.graph["crs"]`` set to the metric CRS and ``G.graph["build"]``
        a report of the clean-up (counts of pieces dropped, components...).
    """
    roads = validate_roads(roads, drop_invalid=drop_invalid)
    skipped = skipped_rows(roads)
    metric, scale = _metric_crs(shapely.get_coordinates(roads.geometry.to_numpy()), roads.crs, crs)
    projected = roads.to_crs(metric)
    geoms = projected.geometry.to_numpy()
    oneway, flip = _oneway_flags(projected, oneway_column)
    if flip.any():
        geoms = geoms.copy()
        geoms[flip] = shapely.reverse(geoms[flip])
    _tell(progress, 1)
    pieces = node_lines(geoms, max(float(node_tolerance_m), 0.0), crossings=node_crossings)
    _tell(progress, 2)
    src = pieces.pop("line")
    attrs = pd.DataFrame(
        {
            a: _clean_column(projected[a].to_numpy()[src])
            for a in ROAD_ATTRIBUTES
            if a in projected.columns
        }
    )
    attrs["source_row"] = projected["source_row"].to_numpy()[src]
    p = _Pieces(
        geoms=pieces["geoms"],
        u=pieces["u"],
        v=pieces["v"],
        node_xy=pieces["node_xy"],
        attrs=attrs,
        oneway=oneway[src],
        report={
            "source": "gis",
            "input_lines": len(roads),
            "skipped_rows": count_skipped(skipped),
            **({"skipped": describe_skipped(skipped)} if skipped else {}),
            "pieces_after_noding": len(src),
            "node_tolerance_m": float(node_tolerance_m),
            "max_scale_error": scale,
        },
    )
    return _assemble(
        p,
        metric,
        source_crs=str(roads.crs),
        simplify=simplify,
        keep=keep,
        tol=max(float(node_tolerance_m), _EPS),
        progress=progress,
    )


@without_gc
def graph_from_osm(
    path: str | Path,
    *,
    highways: Iterable[str] | None = DEFAULT_HIGHWAYS,
    region: shapely.Geometry | None = None,
    crs: str | CRS | None = None,
    simplify: bool = True,
    keep: Keep = "all",
    engine: Literal["auto", "pyrosm", "pyosmium"] = "auto",
    progress: Progress | None = None,
) -> nx.MultiDiGraph:
    """Build a routable graph from an OpenStreetMap file.

    Junctions come from OSM's shared node ids (a bridge over a road is not a
    junction); node ids are OSM node ids. ``oneway=yes/true/1``, ``-1`` and
    ``junction=roundabout`` make a way one-way.

    Parameters
    ----------
    path
        ``.osm.pbf``, ``.osm`` or ``.osm.bz2``.
    highways
        ``highway`` classes to keep (:data:`DEFAULT_HIGHWAYS`); all if None.
    region
        Polygon in EPSG:4326 to cut out (:func:`region_from_bbox`, :func:`region_around`).
    crs
        Metric CRS; the UTM zone estimated from the data if None.
    simplify
        Merge chains of degree-2 nodes (OSMnx's simplification) where the
        attributes do not change.
    keep
        "all" connected components, or only the "largest".
    engine
        See :func:`read_osm`.
    progress
        Called as ``progress("building network", step, steps)``.
    """
    _tell(progress, 0)
    # the pieces come from a function of their own: the OSM table and the two-point
    # lines it was cut into (millions at a country's size) are freed before assembly
    p, metric, node_lonlat = _osm_pieces(
        read_osm(path, highways=highways, region=region, engine=engine), crs, progress
    )
    return _assemble(
        p,
        metric,
        source_crs=settings.default_crs,
        simplify=simplify,
        keep=keep,
        tol=_EPS,
        node_lonlat=node_lonlat,
        progress=progress,
    )


def _osm_pieces(
    segs: gpd.GeoDataFrame, crs: str | CRS | None, progress: Progress | None
) -> tuple[_Pieces, CRS, np.ndarray]:
    """The node-to-node pieces of :func:`read_osm`'s table, their metric CRS, nodes' lon/lat."""
    _tell(progress, 1)
    coords = shapely.get_coordinates(segs.geometry.to_numpy()).reshape(-1, 2, 2)
    lonlat = coords.reshape(-1, 2)
    metric, scale = _metric_crs(lonlat, settings.default_crs, crs)
    ends = np.r_[segs["u"].to_numpy(np.int64), segs["v"].to_numpy(np.int64)]
    node_ids, first, inverse = np.unique(ends, return_index=True, return_inverse=True)
    n = len(segs)
    # segment i runs from coords[i, 0] (node u) to coords[i, 1] (node v)
    pt = np.r_[np.arange(n) * 2, np.arange(n) * 2 + 1]
    node_lonlat = lonlat[pt[first]]
    to_metric = Transformer.from_crs(settings.default_crs, metric, always_xy=True)
    x, y = to_metric.transform(lonlat[:, 0], lonlat[:, 1])
    seg_xy = np.c_[x, y]
    nx_, ny_ = to_metric.transform(node_lonlat[:, 0], node_lonlat[:, 1])
    geoms = shapely.linestrings(seg_xy, indices=np.repeat(np.arange(n), 2))
    _tell(progress, 2)
    u, v = inverse[:n], inverse[n:]
    oneway, flip = _oneway_flags(segs, "oneway")
    if "junction" in segs.columns:
        oneway |= (
            segs["junction"].astype(str).str.lower().isin(["roundabout", "circular"]).to_numpy()
        )
    if flip.any():
        geoms[flip] = shapely.reverse(geoms[flip])
        u, v = np.where(flip, v, u), np.where(flip, u, v)
    attrs = pd.DataFrame(
        {a: _clean_column(segs[a].to_numpy()) for a in ROAD_ATTRIBUTES if a in segs.columns}
    )
    attrs["osmid"] = segs["osmid"].to_numpy(np.int64)
    p = _Pieces(
        geoms=geoms,
        u=u,
        v=v,
        node_xy=np.c_[nx_, ny_],
        attrs=attrs,
        oneway=oneway,
        node_ids=node_ids,
        report={
            "source": "osm",
            "osm_segments": n,
            "osm_ways": int(segs["osmid"].nunique()),
            "max_scale_error": scale,
        },
    )
    return p, metric, node_lonlat


def _node_ids(G: nx.Graph) -> tuple[np.ndarray, bool]:
    """Node ids as an array, and whether they had to be numbered (not all integers)."""
    ids = np.fromiter(G.nodes, dtype=object, count=G.number_of_nodes())
    ints = all(
        isinstance(n, (int, np.integer)) and not isinstance(n, (bool, np.bool_)) for n in ids
    )
    return ids, not ints


def _node_xy(G: nx.Graph, ids: np.ndarray) -> np.ndarray:
    """(n, 2) node coordinates: ``x``, ``y``, else a node id that is an (x, y) pair (momepy)."""
    xy = np.full((len(ids), 2), np.nan)
    missing: list[Any] = []
    for i, (n, d) in enumerate(G.nodes(data=True)):
        if "x" in d and "y" in d:
            xy[i] = (float(d["x"]), float(d["y"]))
        elif isinstance(n, tuple) and len(n) >= 2 and all(isinstance(c, (int, float)) for c in n):
            xy[i] = (float(n[0]), float(n[1]))
        else:
            missing.append(n)
    if missing:
        shown = ", ".join(repr(n) for n in missing[:3])
        msg = (
            f"{len(missing)} node(s) of the graph have no `x` and `y` (e.g. {shown}): every "
            "node needs its coordinates in the graph's CRS (OSMnx and momepy graphs have them)."
        )
        raise InputError(msg)
    return xy


@without_gc
def graph_from_osmnx(  # noqa: PLR0915 - one vectorised step after another
    G: nx.Graph, *, crs: str | CRS | None = None
) -> nx.MultiDiGraph:
    """A graph that follows the contract (:func:`validate_graph`), from an OSMnx or momepy graph.

    Projects the graph to a CRS in true metres (or `crs`): its own when it is
    projected in metres and true to :data:`~convoyrisk.projection.MAX_SCALE_ERROR`,
    else the UTM zone of the data, or for a network spanning several zones a
    projection centred on it (:func:`~convoyrisk.projection.suitable_crs`). Gives
    straight edges without ``geometry`` one, makes each geometry run from ``u``
    to ``v``, measures ``length`` in metres on the WGS84 ellipsoid, pairs the two
    directions of a two-way road under one ``road_id`` (same OSM way(s), same
    length, opposite direction) with ``reversed=False`` on one of them, and turns
    list values left by OSMnx's simplification into "a; b" strings.

    An undirected graph (momepy's ``gdf_to_nx``) becomes a directed one with
    both directions of every edge. Node ids that are not all integers (momepy's
    ``(x, y)`` tuples) are numbered 0..n-1 in the graph's node order; the old id
    is kept as the node attribute ``source_id`` (text).

    Parameters
    ----------
    G
        A networkx graph with OSMnx's conventions (node ``x``, ``y``, or momepy's
        coordinate ids; edge ``geometry`` optional; ``G.graph["crs"]``).
    crs
        Metric CRS to use; refused if it is not in true metres over the data.

    Raises
    ------
    InputError
        If the graph has no edge, no CRS, nodes without coordinates, or `crs`
        is not in true metres.
    """
    if not isinstance(G, nx.Graph):
        msg = f"`G` must be a networkx graph, not {type(G).__name__}."
        raise InputError(msg)
    if G.number_of_edges() == 0:
        msg = "The OSMnx graph has no edges: load a graph with roads in it."
        raise InputError(msg)
    if G.graph.get("crs") in (None, ""):
        msg = "The OSMnx graph has no `crs` graph attribute: set `G.graph['crs'] = 'EPSG:4326'`."
        raise InputError(msg)
    if not G.is_directed():
        G = nx.MultiDiGraph(G)  # both directions of every edge, as OSMnx's two-way roads
    graph_crs = parse_crs(G.graph["crs"], what="The graph's `crs`")
    ids, renumber = _node_ids(G)
    xy = _node_xy(G, ids)
    index = {n: i for i, n in enumerate(ids)}
    if G.is_multigraph():
        rows = list(G.edges(keys=True, data=True))
    else:
        rows = [(a, b, 0, d) for a, b, d in G.edges(data=True)]
    u = np.fromiter((index[r[0]] for r in rows), dtype=np.int64, count=len(rows))
    v = np.fromiter((index[r[1]] for r in rows), dtype=np.int64, count=len(rows))
    data = [r[3] for r in rows]
    geoms = np.array([d.get("geometry") for d in data], dtype=object)
    missing = np.array([not isinstance(g, shapely.LineString) or g.is_empty for g in geoms])
    if missing.any():
        ends = np.stack([xy[u[missing]], xy[v[missing]]], axis=1).reshape(-1, 2)
        geoms[missing] = shapely.linestrings(ends, indices=np.repeat(np.arange(missing.sum()), 2))
    geoms = geoms.astype(object)
    metric, scale = _metric_crs(xy, graph_crs, crs)
    if metric != graph_crs:
        fwd = Transformer.from_crs(graph_crs, metric, always_xy=True)
        px, py = fwd.transform(xy[:, 0], xy[:, 1])
        node_xy = np.c_[px, py]
        geoms = shapely.transform(geoms, lambda c: np.c_[fwd.transform(c[:, 0], c[:, 1])])
    else:
        node_xy = xy
    # make every geometry run u -> v
    start = shapely.get_coordinates(shapely.get_point(geoms, 0))
    flip = np.hypot(*(start - node_xy[v]).T) < np.hypot(*(start - node_xy[u]).T)
    geoms[flip] = shapely.reverse(geoms[flip])
    length = geodesic_lengths(geoms, metric)
    osmid = [as_text(d.get("osmid", "")) for d in data]
    # pair the two directions of a two-way road
    lo, hi = np.minimum(u, v), np.maximum(u, v)
    frame = pd.DataFrame(
        {"lo": lo, "hi": hi, "osmid": osmid, "len": np.round(length, 1), "dir": u <= v}
    )
    frame["rank"] = frame.groupby(["lo", "hi", "osmid", "len", "dir"], sort=False).cumcount()
    road = frame.groupby(["lo", "hi", "osmid", "len", "rank"], sort=False).ngroup().to_numpy()
    given = np.array([_as_bool(d.get("reversed", False)) for d in data])
    pair_size = np.bincount(road)[road]
    # one False per road: OSMnx's flag where it is unambiguous, else the first edge
    n_false = np.bincount(road, weights=(~given).astype(float))[road]
    first = np.zeros(len(road), dtype=bool)
    first[np.unique(road, return_index=True)[1]] = True
    rev = np.where((pair_size == 2) & (n_false == 1), given, ~first)
    attr_names = [
        a
        for a in (*ROAD_ATTRIBUTES, "oneway", "osmid", "maxspeed", "lanes")
        if any(a in d for d in data[:1000])
    ]
    node_id = np.arange(len(ids)) if renumber else ids
    G2 = nx.MultiDiGraph(
        crs=crs_name(metric),
        source_crs=crs_name(graph_crs),
        created_with=CREATED_WITH,
        build={
            "source": "osmnx",
            "edges_in": len(rows),
            "renumbered_nodes": bool(renumber),
            "max_scale_error": scale,
        },
    )
    lon, lat = _lonlat(node_xy, metric)
    G2.add_nodes_from(
        (
            int(node_id[i]),
            {
                "x": float(node_xy[i, 0]),
                "y": float(node_xy[i, 1]),
                "lon": float(lon[i]),
                "lat": float(lat[i]),
                **({"source_id": str(ids[i])} if renumber else {}),
            },
        )
        for i in range(len(ids))
    )
    keys = pd.DataFrame({"u": u, "v": v}).groupby(["u", "v"], sort=False).cumcount().to_numpy()
    G2.add_edges_from(
        (
            int(node_id[u[i]]),
            int(node_id[v[i]]),
            rows[i][2] if isinstance(rows[i][2], (int, np.integer)) else int(keys[i]),
            {
                **{a: _edge_value(a, data[i].get(a, "")) for a in attr_names},
                "geometry": geoms[i],
                "length": float(length[i]),
                "road_id": int(road[i]),
                "reversed": bool(rev[i]),
            },
        )
        for i in range(len(rows))
    )
    return mark_checked(G2)  # follows the contract by construction


def _edge_value(name: str, value: Any) -> Any:  # noqa: ANN401 - attribute values vary
    if name == "oneway":
        return _as_bool(value)
    if name == "osmid":
        return value
    return as_text(value)


def _as_bool(value: Any) -> bool:  # noqa: ANN401 - attribute values vary
    if isinstance(value, (list, tuple)):
        return all(_as_bool(x) for x in value)
    return str(value).strip().lower() in _TRUE


def _metric_crs(
    coords: np.ndarray,
    source_crs: str | CRS,
    crs: str | CRS | None,
) -> tuple[CRS, float]:
    """The CRS to build in, and its largest distance error over the data.

    `crs` if given (refused when it is not true metres here, see
    :func:`~convoyrisk.projection.check_metric_crs`); else the data's own CRS when
    it is projected in metres and true to :data:`~convoyrisk.projection.MAX_SCALE_ERROR`;
    else :func:`~convoyrisk.projection.suitable_crs` (geographic, Web Mercator and
    foot-unit layers, or a metric CRS far from its area).
    """
    own = parse_crs(source_crs, what="The layer's CRS")
    pick = np.linspace(0, len(coords) - 1, min(len(coords), 20_000)).astype(np.int64)
    lon, lat = to_lonlat(coords[pick, 0], coords[pick, 1], own)
    if crs is not None:
        metric = check_metric_crs(crs, lon, lat)
    elif is_metre_crs(own) and scale_error(own, lon, lat) <= MAX_SCALE_ERROR:
        metric = own
    else:
        metric = suitable_crs(lon, lat)
    return metric, round(scale_error(metric, lon, lat), 6)


def _oneway_flags(df: pd.DataFrame, column: str | None) -> tuple[np.ndarray, np.ndarray]:
    """(one-way, one-way against the digitised direction) per row."""
    if not column or column not in df.columns:
        z = np.zeros(len(df), dtype=bool)
        return z, z.copy()
    col = df[column]
    if col.dtype == bool:
        values = col.to_numpy()
        return values.copy(), np.zeros(len(df), dtype=bool)
    text = col.astype(str).str.strip().str.lower()
    flip = text.isin(_REVERSE).to_numpy()
    return text.isin(_TRUE).to_numpy() | flip, flip


def _clean_column(values: np.ndarray) -> list[Any]:
    """Python values of a column, with "" for missing ones."""
    col = pd.Series(values)
    if col.dtype == object or isinstance(col.dtype, pd.StringDtype):
        return col.where(col.notna(), "").tolist()
    if col.dtype.kind == "f" and col.isna().any():
        return col.astype(object).where(col.notna(), "").tolist()
    return col.tolist()


def _lonlat(xy: np.ndarray, crs: CRS | str) -> tuple[np.ndarray, np.ndarray]:
    return to_lonlat(xy[:, 0], xy[:, 1], crs)


def _assemble(  # noqa: PLR0915 - one vectorised step after another reads best here
    p: _Pieces,
    metric: CRS,
    *,
    source_crs: str,
    simplify: bool,
    keep: Keep,
    tol: float,
    node_lonlat: np.ndarray | None = None,
    progress: Progress | None = None,
) -> nx.MultiDiGraph:
    """Clean pieces (zero length, duplicates, degree-2 chains, components) into a graph."""
    report = dict(p.report)
    geoms, u, v, attrs, oneway = p.geoms, p.u.copy(), p.v.copy(), p.attrs, p.oneway
    # the pieces are consumed: each filtering step below then frees the step before
    p.geoms, p.attrs = np.empty(0, dtype=object), pd.DataFrame()
    length = shapely.length(geoms)

    # zero-length pieces: their two ends are one node
    zero = length <= _EPS
    if zero.any():
        n = len(p.node_xy)
        adj = coo_matrix((np.ones(int(zero.sum())), (u[zero], v[zero])), shape=(n, n))
        _, rep = connected_components(adj, directed=False)
        # the label's first member stands for it
        first = np.full(rep.max() + 1, -1)
        order = np.arange(n)[::-1]
        first[rep[order]] = order
        u, v = first[rep[u]], first[rep[v]]
    tiny_loop = (u == v) & (length <= 2 * tol)
    drop = zero | tiny_loop
    report["dropped_zero_length"] = int(drop.sum())
    geoms, u, v, oneway, length = geoms[~drop], u[~drop], v[~drop], oneway[~drop], length[~drop]
    attrs = attrs[~drop].reset_index(drop=True)
    if len(u) == 0:
        msg = f"No road is left: a tolerance of {tol:g} m joins every line end into one node."
        raise InputError(msg)

    # duplicates: same ends, same direction rule, same line within the tolerance
    cls = _attribute_classes(attrs, oneway)
    dup = _duplicates(geoms, u, v, oneway, tol)
    report["dropped_duplicates"] = int(dup.sum())
    geoms, u, v, oneway, length, cls = (
        geoms[~dup],
        u[~dup],
        v[~dup],
        oneway[~dup],
        length[~dup],
        cls[~dup],
    )
    attrs = attrs[~dup].reset_index(drop=True)
    _tell(progress, 3)

    if not simplify and "source_row" in attrs.columns:
        # without simplification a GIS line keeps its own extent: a split point that
        # did not become a junction (two pieces of one line) is undone
        simplify = True
        row = attrs["source_row"].to_numpy(np.int64)
        cls = np.unique(cls.astype(np.int64) * (int(row.max()) + 1) + row, return_inverse=True)[1]
    if simplify:
        geoms, u, v, oneway, keep_rows, n_merged = _merge_chains(
            geoms, u, v, oneway, cls, p.node_xy
        )
        attrs = attrs.iloc[keep_rows].reset_index(drop=True)
        report["merged_pieces"] = n_merged
        # merged chains can duplicate each other (a road digitised twice, split differently)
        dup = _duplicates(geoms, u, v, oneway, tol)
        report["dropped_duplicates"] += int(dup.sum())
        geoms, u, v, oneway = geoms[~dup], u[~dup], v[~dup], oneway[~dup]
        attrs = attrs[~dup].reset_index(drop=True)

    # lengths on the ellipsoid, whatever the projection (as OSMnx's great-circle lengths)
    length = geodesic_lengths(geoms, metric)
    _tell(progress, 4)
    # connected components (weak)
    used, inv = np.unique(np.r_[u, v], return_inverse=True)
    m = len(u)
    adj = coo_matrix((np.ones(m), (inv[:m], inv[m:])), shape=(len(used), len(used)))
    n_comp, comp = connected_components(adj, directed=False)
    sizes = np.bincount(comp[inv[:m]], weights=length, minlength=n_comp)
    report["components"] = int(n_comp)
    report["largest_component_km"] = round(float(sizes.max()) / 1000.0, 3)
    if keep == "largest" and n_comp > 1:
        big = int(np.argmax(sizes))
        sel = comp[inv[:m]] == big
        report["dropped_other_components_edges"] = int((~sel).sum())
        geoms, u, v, oneway, length = geoms[sel], u[sel], v[sel], oneway[sel], length[sel]
        attrs = attrs[sel].reset_index(drop=True)
    elif keep not in ("all", "largest"):
        msg = f"`keep` must be 'all' or 'largest', not {keep!r}."
        raise InputError(msg)
    if len(u) == 0:
        msg = "No road is left after cleaning: check the layer and the tolerance."
        raise InputError(msg)

    # nodes: external ids (OSM) or compact labels
    used = np.unique(np.r_[u, v])
    if p.node_ids is not None:
        node_id = p.node_ids
    else:
        node_id = np.full(len(p.node_xy), -1, dtype=np.int64)
        node_id[used] = np.arange(len(used))
    if node_lonlat is not None:
        lon, lat = node_lonlat[used, 0], node_lonlat[used, 1]
    else:
        lon, lat = _lonlat(p.node_xy[used], metric)
    nodes = pd.DataFrame(
        {"x": p.node_xy[used, 0], "y": p.node_xy[used, 1], "lon": lon, "lat": lat},
        index=node_id[used],
    )
    edges = attrs.copy()
    edges["u"] = node_id[u]
    edges["v"] = node_id[v]
    edges["oneway"] = oneway
    edges["length"] = length
    edges["road_id"] = np.arange(len(u))
    edges["geometry"] = geoms
    report["nodes"] = len(nodes)
    report["roads"] = len(edges)
    G = graph_from_tables(
        nodes,
        edges,
        crs=crs_name(metric),
        graph_attrs={"source_crs": source_crs, "build": report},
    )
    _tell(progress, _BUILD_STEPS)
    return mark_checked(G)  # follows the contract by construction


_BUILD_STEPS = 5  # read, node, clean, merge chains, assemble the graph


def _tell(progress: Progress | None, step: int) -> None:
    """Report step `step` of building a network (0: started, _BUILD_STEPS: done)."""
    if progress is not None:
        progress("building network", step, _BUILD_STEPS)


def _duplicates(
    geoms: np.ndarray, u: np.ndarray, v: np.ndarray, oneway: np.ndarray, tol: float
) -> np.ndarray:
    """Pieces that repeat an earlier one: same end nodes (and direction if one-way), same line."""
    a = np.where(oneway, u, np.minimum(u, v))
    b = np.where(oneway, v, np.maximum(u, v))
    frame = pd.DataFrame({"a": a, "b": b, "ow": oneway})
    grp = frame.groupby(["a", "b", "ow"], sort=False).ngroup().to_numpy()
    order = np.argsort(grp, kind="stable")
    g = grp[order]
    dup = np.zeros(len(grp), dtype=bool)
    # compare each piece with every earlier one between the same nodes (few per pair)
    for k in range(1, len(g)):
        later = np.flatnonzero(g[k:] == g[:-k])
        if len(later) == 0:
            break
        i, j = order[later], order[later + k]
        h = shapely.hausdorff_distance(geoms[i], geoms[j])
        dup[j[h <= max(tol, 0.01)]] = True
    return dup


def _attribute_classes(attrs: pd.DataFrame, oneway: np.ndarray) -> np.ndarray:
    """One integer per piece: equal when every road attribute and `oneway` are equal."""
    cols = [c for c in ROAD_ATTRIBUTES if c in attrs.columns]
    frame = pd.DataFrame({c: attrs[c].astype(str).to_numpy() for c in cols})
    frame["__oneway"] = oneway
    return frame.groupby(list(frame.columns), sort=False).ngroup().to_numpy()


def _merge_chains(  # noqa: PLR0915, PLR0917 - vectorised steps over parallel arrays
    geoms: np.ndarray,
    u: np.ndarray,
    v: np.ndarray,
    oneway: np.ndarray,
    cls: np.ndarray,
    node_xy: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """Merge chains of pieces through degree-2 nodes whose two pieces have equal attributes.

    Returns the new pieces, their ends, one-way flags, the index of the piece
    whose attributes each new piece keeps, and how many pieces were merged away.
    """
    m = len(u)
    node = np.r_[u, v]
    piece = np.r_[np.arange(m), np.arange(m)]
    leaves = np.r_[np.ones(m, bool), np.zeros(m, bool)]
    order = np.argsort(node, kind="stable")
    node_s, piece_s, leaves_s = node[order], piece[order], leaves[order]
    starts = np.flatnonzero(np.r_[True, node_s[1:] != node_s[:-1]])
    deg = np.diff(np.r_[starts, len(node_s)])
    two = starts[deg == 2]
    p1, p2 = piece_s[two], piece_s[two + 1]
    ok = (p1 != p2) & (cls[p1] == cls[p2]) & (~oneway[p1] | (leaves_s[two] != leaves_s[two + 1]))
    merge_nodes = node_s[two][ok]
    p1, p2 = p1[ok], p2[ok]
    if len(merge_nodes) == 0:
        return geoms, u, v, oneway, np.arange(m), 0
    adj = coo_matrix((np.ones(len(p1)), (p1, p2)), shape=(m, m))
    _, comp = connected_components(adj, directed=False)
    size = np.bincount(comp)
    multi = size[comp] > 1
    idx = np.flatnonzero(multi)
    idx = idx[np.argsort(comp[idx], kind="stable")]
    comps, inv = np.unique(comp[idx], return_inverse=True)
    mls = np.asarray(shapely.multilinestrings(geoms[idx], indices=inv), dtype=object)
    comp_oneway = np.zeros(len(comps), dtype=bool)
    comp_oneway[inv] = oneway[idx]
    merged = np.empty(len(comps), dtype=object)
    merged[~comp_oneway] = shapely.line_merge(mls[~comp_oneway])
    if comp_oneway.any():
        merged[comp_oneway] = shapely.line_merge(mls[comp_oneway], directed=True)
    # a chain must come out as one line between its two end nodes (or a closed ring)
    is_merge_node = np.zeros(len(node_xy), dtype=bool)
    is_merge_node[merge_nodes] = True
    single = shapely.get_type_id(merged) == 1
    tree = cKDTree(node_xy)
    s_xy = shapely.get_coordinates(shapely.get_point(merged[single], 0))
    e_xy = shapely.get_coordinates(shapely.get_point(merged[single], -1))
    _, s_node = tree.query(s_xy)
    _, e_node = tree.query(e_xy)
    # boundary incidences of each component
    inc_node = np.r_[u[idx], v[idx]]
    inc_comp = np.r_[inv, inv]
    bnd = ~is_merge_node[inc_node]
    nb = np.bincount(inc_comp[bnd], minlength=len(comps))
    bsum = np.bincount(inc_comp[bnd], weights=inc_node[bnd], minlength=len(comps))
    bmin = np.full(len(comps), np.iinfo(np.int64).max)
    np.minimum.at(bmin, inc_comp[bnd], inc_node[bnd])
    good = np.zeros(len(comps), dtype=bool)
    sc = np.flatnonzero(single)
    lo, hi = np.minimum(s_node, e_node), np.maximum(s_node, e_node)
    chain_ok = (nb[sc] == 2) & (lo == bmin[sc]) & (lo + hi == bsum[sc])
    ring_ok = (nb[sc] == 0) & (s_node == e_node)
    good[sc] = chain_ok | ring_ok
    su = np.zeros(len(comps), dtype=np.int64)
    sv = np.zeros(len(comps), dtype=np.int64)
    su[sc], sv[sc] = s_node, e_node
    # keep unmerged: pieces not in a multi-piece component, or in one that failed the check
    keep_piece = ~multi
    keep_piece[idx[~good[inv]]] = True
    rep_piece = np.full(len(comps), m)
    np.minimum.at(rep_piece, inv, idx)
    gc = np.flatnonzero(good)
    new_geoms = np.r_[geoms[keep_piece], merged[gc]]
    new_u = np.r_[u[keep_piece], su[gc]]
    new_v = np.r_[v[keep_piece], sv[gc]]
    new_ow = np.r_[oneway[keep_piece], comp_oneway[gc]]
    rows = np.r_[np.flatnonzero(keep_piece), rep_piece[gc]]
    n_merged = int(size[comps[gc]].sum() - len(gc))
    return new_geoms, new_u, new_v, new_ow, rows, n_merged


# --------------------------------------------------------------------------------------
# graph <-> tables, files
# --------------------------------------------------------------------------------------


def load_graph(  # noqa: PLR0911 - one return per kind of input
    path: str | Path | nx.Graph | None = None,
    *,
    highways: Iterable[str] | None = DEFAULT_HIGHWAYS,
    region: shapely.Geometry | None = None,
    node_tolerance_m: float = 1.0,
    simplify: bool | None = None,
    keep: Keep = "all",
    drop_invalid: bool = False,
    crs: str | CRS | None = None,
    progress: Progress | None = None,
) -> nx.MultiDiGraph:
    """A graph from any supported road file, picking the reader from the file.

    - a graph written by :func:`save_graph` (``.gpkg`` with ``nodes``/``edges``
      layers, or ``.graphml`` from convoyrisk): read back as is, fast;
    - a GraphML saved by OSMnx: :func:`graph_from_osmnx`;
    - an OpenStreetMap file (``.osm.pbf``, ``.osm``, ``.osm.bz2``): :func:`graph_from_osm`;
    - any other GIS line layer: :func:`read_roads` then :func:`graph_from_gdf`.

    - an in-memory graph: returned as is if convoyrisk built it, else through
      :func:`graph_from_osmnx` (OSMnx and momepy graphs).

    Every graph returned follows the contract of :func:`validate_graph` (a graph
    read back as is is checked); `crs` applies to what is built or converted.
    `simplify` None means the builder's default (on for OSM, off for GIS layers).
    The embedded Kidal–Gao roads are used if `path` is None. `progress` is
    called as ``progress("building network", step, steps)`` while a graph is built.
    """
    if isinstance(path, nx.Graph):
        if str(path.graph.get("created_with", "")).startswith(CREATED_WITH):
            validate_graph(path)
            return path
        return graph_from_osmnx(path, crs=crs)
    if path is None:
        # the embedded legs are approximate meanders that cross where no junction
        # exists; they meet only at their shared end points
        _tell(progress, 0)
        return graph_from_gdf(
            read_roads(None),
            node_tolerance_m=node_tolerance_m,
            node_crossings=False,
            progress=progress,
        )
    path = Path(path)
    if not path.exists():
        msg = f"Road file {path} does not exist: pass an existing file with `--roads`."
        raise MissingInputError(msg)
    if path.is_file() and path.stat().st_size == 0:
        msg = f"Road file {path} is empty: pass a road layer, an OSM file or a built graph."
        raise InputError(msg)
    suffix = path.suffix.lower()
    if suffix == ".graphml":
        G = read_graphml(path)
        if str(G.graph.get("created_with", "")).startswith(CREATED_WITH):
            validate_graph(G)
            return G
        return graph_from_osmnx(G, crs=crs)
    if is_osm_file(path):
        return graph_from_osm(
            path,
            highways=highways,
            region=region,
            crs=crs,
            simplify=True if simplify is None else simplify,
            keep=keep,
            progress=progress,
        )
    if suffix == ".gpkg" and is_built_gpkg(path):
        G = read_built_gpkg(path)
        validate_graph(G)
        return G
    _tell(progress, 0)
    roads = read_roads(path, region=region, drop_invalid=drop_invalid)
    return graph_from_gdf(
        roads,
        crs=crs,
        node_tolerance_m=node_tolerance_m,
        simplify=bool(simplify),
        keep=keep,
        progress=progress,
    )


# --------------------------------------------------------------------------------------
# graph to tables, info, lookups
# --------------------------------------------------------------------------------------


@without_gc
def graph_info(G: nx.MultiDiGraph) -> dict[str, Any]:
    """Nodes, edges, roads, km by highway class and surface, components, CRS and bbox.

    ``total_km`` and the km tables sum the edges' ``length`` (geodesic metres);
    ``max_scale_error`` is the largest distance error of the CRS over the nodes.
    """
    validate_graph(G)
    edges = edges_gdf(G, forward_only=True)
    km = edges["length"].to_numpy(float) / 1000.0

    def by(col: str) -> dict[str, float]:
        if col not in edges.columns:
            return {}
        keys = edges[col].map(as_text).replace("", "(none)")
        s = pd.Series(km, index=keys.to_numpy()).groupby(level=0).sum().sort_values(ascending=False)
        return {str(k): round(float(x), 3) for k, x in s.items()}

    comps = sorted((len(c) for c in nx.weakly_connected_components(G)), reverse=True)
    xy = np.array([(d["x"], d["y"]) for _, d in G.nodes(data=True)], dtype=float)
    lon, lat = to_lonlat(xy[:, 0], xy[:, 1], G.graph["crs"])
    return {
        "nodes": G.number_of_nodes(),
        "edges": G.number_of_edges(),
        "roads": len(edges),
        "total_km": round(float(km.sum()), 3),
        "km_by_highway": by("highway"),
        "km_by_surface": by("surface"),
        "components": len(comps),
        "largest_component_nodes": comps[0] if comps else 0,
        "crs": G.graph["crs"],
        "max_scale_error": round(scale_error(G.graph["crs"], lon, lat), 6),
        "bbox_lonlat": [round(float(x), 6) for x in (lon.min(), lat.min(), lon.max(), lat.max())],
        "build": G.graph.get("build", {}),
    }


def nearest_node(G: nx.MultiDiGraph, lat: float, lon: float) -> tuple[int, float]:
    """The node nearest to a WGS84 point, and its distance in metres."""
    validate_graph(G)
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
    validate_graph(G)
    pts = places.to_crs(G.graph["crs"])
    pxy = shapely.get_coordinates(pts.geometry.to_numpy())
    tree = cKDTree(pxy)
    nodes = [data for _, data in G.nodes(data=True)]
    xy = np.array([(data["x"], data["y"]) for data in nodes], dtype=float).reshape(-1, 2)
    dist, nearest = tree.query(xy)  # all nodes at once (a country has a million)
    names = pts["name"].astype(str).to_numpy()
    for k in np.flatnonzero(dist <= within_m):
        nodes[k]["name"] = names[nearest[k]]
    return G
