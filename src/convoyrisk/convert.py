"""The graph contract, and graphs to and from tables.

Every function that takes a road graph relies on one contract, checked by
:func:`validate_graph` (as OSMnx's ``convert.validate_graph``): a directed
:class:`networkx.MultiDiGraph` whose

- nodes have integer ids and ``x``, ``y`` (metres in the graph's CRS);
- edges have a LineString ``geometry`` from ``u`` to ``v``, ``length`` in metres
  (measured on the WGS84 ellipsoid) and an integer ``road_id`` shared by the two
  directions of a two-way road (``reversed`` marks the one drawn backwards);
- ``G.graph["crs"]`` is a projected CRS in metres whose distances are true to
  :data:`convoyrisk.projection.MAX_SCALE_ERROR` over the nodes.

The builders in :mod:`convoyrisk.network` make such graphs from any road data.
"""

from __future__ import annotations

import math
import weakref
from typing import Any

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import shapely
from pyproj.exceptions import CRSError

from ._errors import InputError
from .projection import (
    MAX_SCALE_ERROR,
    crs_name,
    is_metre_crs,
    parse_crs,
    scale_error,
    to_lonlat,
)
from .utils import without_gc

CREATED_WITH = "convoyrisk"
"""Value of ``G.graph["created_with"]`` on graphs built here."""

_FIX = (
    "pass it through `convoyrisk.load_graph(G)` (or `graph_from_osmnx(G)`), which projects it "
    "to true metres, measures geodesic lengths, numbers its nodes and pairs its directions"
)
_LENGTH_RATIO = 0.05  # `length` may differ this much from the planar length of `geometry`
_END_TOLERANCE_M = 1.0  # an edge's geometry must start and end this close to its nodes
_SHOWN = 3  # examples named per problem

# graphs that passed, with what they held when they did (a cheap check that they are unchanged)
_checked: weakref.WeakKeyDictionary[nx.MultiDiGraph, tuple[int, str]] = weakref.WeakKeyDictionary()


def graph_from_tables(
    nodes: pd.DataFrame,
    edges: pd.DataFrame,
    *,
    crs: str,
    graph_attrs: dict[str, Any] | None = None,
) -> nx.MultiDiGraph:
    """A graph from a node table (index = id; x, y, lon, lat) and a road table.

    `edges` has one row per road (u, v, oneway, length, road_id, geometry from
    u to v and attribute columns); two-way roads get a reversed twin.
    """
    G = nx.MultiDiGraph(crs=crs, created_with=CREATED_WITH, **(graph_attrs or {}))
    node_cols = list(nodes.columns)
    columns = [nodes[c].tolist() for c in node_cols]
    for n, vals in zip(nodes.index.tolist(), zip(*columns, strict=True), strict=True):
        G._succ[n] = {}  # noqa: SLF001 - as G.add_node does, without its per-call checks
        G._pred[n] = {}  # noqa: SLF001
        G._node[n] = dict(zip(node_cols, vals, strict=True))  # noqa: SLF001
    u = edges["u"].to_numpy()
    v = edges["v"].to_numpy()
    oneway = edges["oneway"].to_numpy(bool)
    geoms = np.asarray(edges["geometry"].to_numpy(), dtype=object)
    back = np.flatnonzero(~oneway)
    rgeoms = shapely.reverse(geoms[back])
    # keys: count of earlier edges with the same (u, v)
    du = np.r_[u, v[back]]
    dv = np.r_[v, u[back]]
    keys = pd.DataFrame({"u": du, "v": dv}).groupby(["u", "v"], sort=False).cumcount().to_numpy()
    cols = [c for c in edges.columns if c not in {"u", "v", "geometry"}]
    typed = {
        "length": edges["length"].to_numpy(float).tolist(),
        "road_id": edges["road_id"].to_numpy(np.int64).tolist(),
        "oneway": oneway.tolist(),
    }
    values = [typed[c] if c in typed else _shared_values(edges[c]) for c in cols]
    values.append(geoms.tolist())
    names = [*cols, "geometry", "reversed"]
    # one dict per edge, built once (a country has millions: no second copy of them)
    rows = [dict(zip(names, (*vals, False), strict=True)) for vals in zip(*values, strict=True)]
    del values
    rl = np.asarray(rgeoms, dtype=object).tolist()
    rows += [{**rows[i], "geometry": rl[j], "reversed": True} for j, i in enumerate(back.tolist())]
    _add_edges(G, du.tolist(), dv.tolist(), keys.tolist(), rows)
    # its compiled form, from these arrays rather than read back from the dicts
    from .compiled import compile_added_edges, road_label  # noqa: PLC0415 - compiled imports us

    m = len(edges)
    label = [
        road_label(a, b)
        for a, b in zip(
            edges["name"].tolist() if "name" in edges else [None] * m,
            edges["ref"].tolist() if "ref" in edges else [None] * m,
            strict=True,
        )
    ]
    labels = np.empty(m, dtype=object)
    labels[:] = label
    length = edges["length"].to_numpy(float)
    road_id = edges["road_id"].to_numpy(np.int64)
    all_geoms = np.empty(len(du), dtype=object)
    all_geoms[:m] = geoms
    all_geoms[m:] = rgeoms
    compile_added_edges(
        G,
        (du.astype(np.int64), dv.astype(np.int64), keys.astype(np.int64)),
        length=np.r_[length, length[back]],
        road_id=np.r_[road_id, road_id[back]],
        forward=np.r_[np.ones(m, dtype=bool), np.zeros(len(back), dtype=bool)],
        geoms=all_geoms,
        names=np.r_[labels, labels[back]],
    )
    return G


def _shared_values(column: pd.Series) -> list[Any]:
    """The column's values as a list in which equal values are one object.

    A road table read from a file holds a string object per row (a country's
    million ``"track"``); each edge dict keeps its own, in both directions. One
    object per distinct value saves that memory. Only text columns; missing
    values are left as they are.
    """
    values = column.to_numpy()
    if values.dtype != object or pd.api.types.infer_dtype(values, skipna=True) != "string":
        return column.tolist()  # only text: 1 and 1.0 and True would be one value
    codes, uniques = pd.factorize(values)
    shared = values.copy()
    found = codes >= 0
    shared[found] = np.asarray(uniques, dtype=object)[codes[found]]
    return list(shared)


def _add_edges(
    G: nx.MultiDiGraph, u: list[Any], v: list[Any], keys: list[int], data: list[dict[str, Any]]
) -> None:
    """Add edges with distinct keys to a MultiDiGraph whose nodes exist, fast.

    Does what ``G.add_edge(u, v, key, **data)`` does (one key dict shared by
    ``G._succ[u][v]`` and ``G._pred[v][u]``) without its per-call overhead,
    which dominates building graphs of 100k+ edges.
    """
    succ, pred = G._succ, G._pred  # noqa: SLF001 - see the docstring
    for a, b, k, d in zip(u, v, keys, data, strict=True):
        keydict = succ[a].get(b)
        if keydict is None:
            keydict = G.edge_key_dict_factory()
            succ[a][b] = keydict
            pred[b][a] = keydict
        keydict[k] = d
    clear = getattr(nx, "_clear_cache", None)  # networkx >= 3.3 caches adjacency views
    if clear is not None:
        clear(G)


def is_forward(data: dict[str, Any]) -> bool:
    """Whether an edge (its attribute dict) is the forward one of its road: ``reversed`` false.

    The one definition of a forward edge (one per road, drawn as digitised);
    :class:`~convoyrisk.compiled.CompiledGraph` holds it per edge as ``forward``.

    Examples
    --------
    >>> is_forward({"reversed": False}), is_forward({"reversed": True}), is_forward({})
    (True, False, True)
    """
    return not data.get("reversed", False)


@without_gc
def edges_gdf(G: nx.MultiDiGraph, *, forward_only: bool = True) -> gpd.GeoDataFrame:
    """Edges as a GeoDataFrame indexed by ``(u, v, key)``, in the graph's CRS.

    Parameters
    ----------
    G
        Graph from :func:`graph_from_gdf` (or any builder here).
    forward_only
        Keep one edge per road (the one with ``reversed=False``), so each
        stretch of road appears once.
    """
    rows = [
        {"u": u, "v": v, "key": k, **data}
        for u, v, k, data in G.edges(keys=True, data=True)
        if not forward_only or is_forward(data)
    ]
    if not rows:
        msg = "The graph has no edges: the road layer gave no usable lines."
        raise InputError(msg)
    gdf = gpd.GeoDataFrame(pd.DataFrame(rows), geometry="geometry", crs=G.graph["crs"])
    return gdf.set_index(["u", "v", "key"])


@without_gc
def nodes_gdf(G: nx.MultiDiGraph) -> gpd.GeoDataFrame:
    """Nodes as a GeoDataFrame indexed by node id, in the graph's CRS."""
    df = pd.DataFrame.from_dict(dict(G.nodes(data=True)), orient="index")
    return gpd.GeoDataFrame(df, geometry=gpd.points_from_xy(df["x"], df["y"]), crs=G.graph["crs"])


def as_text(value: Any) -> str:  # noqa: ANN401 - attribute values vary
    """An attribute value as text: lists joined with "; ", missing values as "".

    Examples
    --------
    >>> as_text(["Route de Gao", "N16", "N16"])
    'Route de Gao; N16'
    >>> as_text(float("nan"))
    ''
    """
    if isinstance(value, (list, tuple, set)):
        return "; ".join(dict.fromkeys(str(x) for x in value))
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


def _is_int(value: Any) -> bool:  # noqa: ANN401 - node ids may be anything hashable
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _examples(values: list[Any], shown: int = _SHOWN) -> str:
    text = ", ".join(repr(v) for v in values[:shown])
    return text + (", ..." if len(values) > shown else "")


def _numbers(values: list[Any]) -> np.ndarray:
    """Floats of `values`, NaN where a value is missing or not a number (bools are not)."""
    try:
        arr = np.asarray(values)
    except ValueError:  # ragged values
        arr = np.empty(0)
    if len(arr) == len(values) and arr.dtype.kind in "iuf":
        return arr.astype(float)
    out = np.full(len(values), np.nan)
    for i, x in enumerate(values):
        if isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool):
            out[i] = float(x)
    return out


def _integers(values: list[Any]) -> np.ndarray:
    """Whether each value is an integer (bools are not)."""
    try:
        arr = np.asarray(values)
    except ValueError:  # ragged values
        arr = np.empty(0)
    if len(arr) == len(values) and arr.dtype.kind in "iu":
        return np.ones(len(values), dtype=bool)
    return np.array([_is_int(x) for x in values], dtype=bool)


def _crs_problems(  # noqa: PLR0911 - one return per kind of problem
    G: nx.MultiDiGraph, x: np.ndarray, y: np.ndarray
) -> list[str]:
    if "crs" not in G.graph or G.graph["crs"] in (None, ""):
        return ['it has no `crs` graph attribute (e.g. `G.graph["crs"] = "EPSG:32631"`)']
    try:
        crs = parse_crs(G.graph["crs"])
    except (InputError, CRSError):
        return [f"its `crs` {G.graph['crs']!r} is not a CRS PROJ knows"]
    name = crs_name(crs)
    if not crs.is_projected:
        return [f"its `crs` {name} is geographic: x and y are degrees, not metres"]
    if not is_metre_crs(crs):
        return [f"its `crs` {name} measures in {crs.axis_info[0].unit_name}, not metres"]
    ok = np.isfinite(x) & np.isfinite(y)
    if not ok.any():
        return []
    lon, lat = to_lonlat(x[ok], y[ok], crs)
    err = scale_error(crs, lon, lat)
    if err > MAX_SCALE_ERROR:
        msg = (
            f"its `crs` {name} stretches distances by up to {err:.1%} over the nodes "
            f"(more than {MAX_SCALE_ERROR:.0%}: not true metres)"
        )
        return [msg]
    return []


def _ends(geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First and last vertex of each line, (n, 2) each."""
    coords, idx = shapely.get_coordinates(geoms, return_index=True)
    count = np.bincount(idx, minlength=len(geoms))
    last = np.cumsum(count) - 1
    return coords[last - count + 1], coords[last]


def _edge_problems(
    edges: tuple[list[Any], ...], node_xy: dict[Any, tuple[float, float]]
) -> list[str]:
    us, vs, ks, geometry, lengths, road = edges
    keys = list(zip(us, vs, ks, strict=True))
    problems: list[str] = []
    geoms = np.empty(len(geometry), dtype=object)
    geoms[:] = geometry
    try:
        is_line = (shapely.get_type_id(geoms) == 1) & ~shapely.is_empty(geoms)
    except TypeError:  # something that is not a geometry at all
        is_line = np.array(
            [isinstance(g, shapely.LineString) and not g.is_empty for g in geometry], dtype=bool
        )
    if not is_line.all():
        bad = [keys[i] for i in np.flatnonzero(~is_line)]
        problems.append(
            f"{len(bad)} edge(s) have no LineString `geometry` (e.g. {_examples(bad, 1)})"
        )
    length = _numbers(lengths)
    bad_len = ~(np.isfinite(length) & (length >= 0))
    if bad_len.any():
        bad = [keys[i] for i in np.flatnonzero(bad_len)]
        problems.append(f"{len(bad)} edge(s) have no `length` in metres (e.g. {_examples(bad, 1)})")
    bad_road = np.flatnonzero(~_integers(road))
    if len(bad_road):
        problems.append(
            f"{len(bad_road)} edge(s) have no integer `road_id` "
            f"(e.g. {_examples([keys[i] for i in bad_road], 1)})"
        )
    good = np.flatnonzero(is_line & ~bad_len)
    if len(good) == 0:
        return problems
    lines = geoms[good]
    planar = shapely.length(lines)
    long_enough = planar > 10.0
    ratio = np.divide(length[good], planar, out=np.ones(len(good)), where=long_enough)
    off = np.flatnonzero(long_enough & (np.abs(ratio - 1.0) > _LENGTH_RATIO))
    if len(off):
        i = good[off[0]]
        problems.append(
            f"{len(off)} edge(s) have a `length` that is not the length of their geometry in "
            f"metres (e.g. {keys[i]}: length {length[i]:.1f} for a {planar[off[0]]:.1f} m line)"
        )
    nan = (math.nan, math.nan)
    uxy = np.array([node_xy.get(us[i], nan) for i in good.tolist()], dtype=float)
    vxy = np.array([node_xy.get(vs[i], nan) for i in good.tolist()], dtype=float)
    start, end = _ends(lines)
    with np.errstate(invalid="ignore"):
        far = (np.hypot(*(start - uxy).T) > _END_TOLERANCE_M) | (
            np.hypot(*(end - vxy).T) > _END_TOLERANCE_M
        )
    if far.any():
        bad = [keys[i] for i in good[far].tolist()]
        problems.append(
            f"{len(bad)} edge geometries do not run from node u to node v "
            f"(e.g. {_examples(bad, 1)})"
        )
    return problems


def graph_problems(G: Any) -> list[str]:  # noqa: ANN401 - anything may be passed as a graph
    """Every way `G` breaks the graph contract (see :func:`validate_graph`); empty if none."""
    if not isinstance(G, nx.Graph):
        return [f"it is a {type(G).__name__}, not a networkx graph"]
    problems: list[str] = []
    if not isinstance(G, nx.MultiDiGraph):
        problems.append(
            f"it is a {type(G).__name__}, not a directed networkx.MultiDiGraph "
            "(one edge per direction of travel)"
        )
    ids = list(G.nodes)
    bad_ids = [ids[i] for i in np.flatnonzero(~_integers(ids))]
    if bad_ids:
        problems.append(f"{len(bad_ids)} node id(s) are not integers (e.g. {_examples(bad_ids)})")
    data = [G.nodes[n] for n in ids]
    x = _numbers([d.get("x") for d in data])
    y = _numbers([d.get("y") for d in data])
    no_xy = ~(np.isfinite(x) & np.isfinite(y))
    if no_xy.any():
        bad = [ids[i] for i in np.flatnonzero(no_xy)]
        problems.append(f"{len(bad)} node(s) have no numeric `x` and `y` (e.g. {_examples(bad)})")
    problems += _crs_problems(G, x, y)
    node_xy = {
        n: (float(a), float(b)) for n, a, b, m in zip(ids, x, y, no_xy, strict=True) if not m
    }
    if G.is_multigraph():
        rows = [
            (a, b, k, d.get("geometry"), d.get("length"), d.get("road_id"))
            for a, nbrs in G.adj.items()
            for b, keyed in nbrs.items()
            for k, d in keyed.items()
        ]
    else:
        rows = [
            (a, b, 0, d.get("geometry"), d.get("length"), d.get("road_id"))
            for a, b, d in G.edges(data=True)
        ]
    if not rows:
        problems.append("it has no edges")
        return problems
    columns = tuple(list(c) for c in zip(*rows, strict=True))
    problems += _edge_problems(columns, node_xy)
    return problems


def mark_checked(G: nx.MultiDiGraph) -> nx.MultiDiGraph:
    """Record that `G` follows the contract without checking it; return `G`.

    For the builders of :mod:`convoyrisk.network`, whose graphs follow the
    contract by construction (the tests check them with :func:`graph_problems`):
    :func:`validate_graph` then costs nothing on them.
    """
    _checked[G] = _stamp(G)
    return G


def _stamp(G: nx.Graph) -> tuple[int, str]:
    """What must stay the same for a graph that passed to be taken as still passing."""
    return (G.number_of_nodes(), str(G.graph.get("crs")))


@without_gc
def validate_graph(G: Any) -> None:  # noqa: ANN401 - anything may be passed as a graph
    """Check that `G` follows the graph contract; raise one error listing every problem.

    The contract (this module's docstring): a directed ``MultiDiGraph``, integer
    node ids with ``x``, ``y``; edges with a LineString ``geometry`` from ``u`` to
    ``v``, ``length`` in metres and an integer ``road_id``; ``G.graph["crs"]``
    projected, in metres and true to :data:`~convoyrisk.projection.MAX_SCALE_ERROR`
    over the nodes. Every public function that takes a graph calls this first.
    The check is one pass over the edges (about 2 s for 200,000 edges); a
    graph that passed, or that a builder here made, is not checked again while
    its number of nodes and its CRS stay the same.

    Raises
    ------
    InputError
        One line listing every problem found, and how to get a graph that
        follows the contract (:func:`convoyrisk.load_graph` converts OSMnx and
        momepy graphs).
    """
    if isinstance(G, nx.MultiDiGraph) and _checked.get(G) == _stamp(G):
        return
    problems = graph_problems(G)
    if problems:
        listed = "; ".join(f"({i}) {p}" for i, p in enumerate(problems, start=1))
        msg = f"The road graph does not follow convoyrisk's graph contract: {listed}. Fix: {_FIX}."
        raise InputError(msg)
    mark_checked(G)
