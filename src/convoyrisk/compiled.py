"""The road graph compiled once into arrays, shared by snapping, risk, routing and the dask engine.

A graph that follows the contract (:func:`convoyrisk.convert.validate_graph`)
is read edge by edge once, by :func:`compile_graph`, into a
:class:`CompiledGraph`: node ids and coordinates, every edge's ends, key,
length, ``road_id``, direction and geometry, and a CSR adjacency of the
directed node pairs. Snapping (:mod:`convoyrisk.snapping`), the network
kernel density (:mod:`convoyrisk.density`), routing
(:mod:`convoyrisk.routing`) and the dask engine (:mod:`convoyrisk.engine`)
all start from it, so the graph is walked once per process, not once per
module and call.

The cache rule: the compiled form of a graph is kept (in a weak mapping keyed
by the graph object, so it goes with the graph) while the graph's number of
nodes and its CRS stay what they were when it was compiled: the rule
:func:`~convoyrisk.convert.validate_graph` uses for the graphs it has passed,
and a check that costs nothing (networkx counts edges by walking every node:
0.2 s on 200,000 edges, on every call). A graph edited in place without
changing those (an edge added, removed or re-measured) must be recompiled
with ``compile_graph(G, refresh=True)``; the builders and loaders of
:mod:`convoyrisk.network` return new graphs, and ``G.copy()`` is a new graph,
so both compile afresh.

Which edges are *forward* (one per road, drawn as digitised) is decided by
:func:`~convoyrisk.convert.is_forward`, the one definition; an edge's road
is its ``road_id``, which the contract requires on every edge (no default).
"""

from __future__ import annotations

import functools
import weakref
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import numpy as np
import numpy.typing as npt
import pandas as pd

from ._errors import InputError
from .convert import is_forward, validate_graph

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

__all__ = ["CompiledGraph", "compile_graph"]


@dataclass(frozen=True, eq=False)
class CompiledGraph:
    """A road graph as arrays (edges in ``G.edges`` order, nodes in ``G.nodes`` order).

    Built by :func:`compile_graph`; read-only by convention (the arrays are
    shared by every module that asks for the same graph).

    Attributes
    ----------
    crs
        The graph's CRS (``G.graph["crs"]``), metres.
    node_ids
        Node id of each node number.
    node_xy
        ``x``, ``y`` of each node (metres in `crs`), shape ``(n_nodes, 2)``.
    u, v, key
        Each edge's end node ids and key.
    eu, ev
        Each edge's end node numbers (positions in `node_ids`).
    length_m
        Each edge's ``length``, metres (geodesic).
    road_id
        Each edge's ``road_id`` (the two directions of a road share it).
    forward
        True for the forward edge of each road (see :func:`is_forward`).
    geoms
        Each edge's LineString geometry, from ``u`` to ``v``.
    road_name
        Each edge's ``name``, else ``ref``, else "" (stripped).
    pair_order, pair_start
        Edge positions sorted by ``(eu, ev)`` (ties in edge order), and where
        each distinct directed node pair starts in `pair_order`.
    indptr, indices
        CSR adjacency of the distinct directed node pairs: the pairs leaving
        node ``i`` are ``indptr[i]:indptr[i+1]``, ``indices`` their head nodes
        (sorted), in the order of `pair_start`.
    memo
        Arrays that modules derive from this graph and keep with it (keyed by
        the module's name, e.g. ``"density.network"``).
    """

    crs: Any
    node_ids: IntArray
    node_xy: FloatArray
    u: IntArray
    v: IntArray
    key: IntArray
    eu: IntArray
    ev: IntArray
    length_m: FloatArray
    road_id: IntArray
    forward: BoolArray
    geoms: npt.NDArray[np.object_]
    road_name: npt.NDArray[np.object_]
    pair_order: IntArray
    pair_start: IntArray
    indptr: IntArray
    indices: IntArray
    memo: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def n_nodes(self) -> int:
        """Number of nodes."""
        return len(self.node_ids)

    @property
    def n_edges(self) -> int:
        """Number of edges (both directions of two-way roads)."""
        return len(self.u)

    @functools.cached_property
    def forward_edges(self) -> IntArray:
        """Positions of the forward edges, in edge order."""
        return np.flatnonzero(self.forward).astype(np.int64)

    @functools.cached_property
    def _node_sorted(self) -> tuple[IntArray, IntArray]:
        sorter = np.argsort(self.node_ids, kind="stable").astype(np.int64)
        return self.node_ids[sorter], sorter

    def node_index(self, ids: npt.ArrayLike) -> IntArray:
        """Node numbers of node ids (−1 for an id not in the graph)."""
        ids = np.asarray(ids, dtype=np.int64)
        ordered, sorter = self._node_sorted
        at = np.clip(np.searchsorted(ordered, ids), 0, max(len(ordered) - 1, 0))
        found = ordered[at] == ids if len(ordered) else np.zeros(ids.shape, dtype=bool)
        return np.where(found, sorter[at], -1).astype(np.int64)

    @functools.cached_property
    def _edge_keys(self) -> pd.MultiIndex:
        return pd.MultiIndex.from_arrays([self.u, self.v, self.key])

    def edge_position(self, u: npt.ArrayLike, v: npt.ArrayLike, key: npt.ArrayLike) -> IntArray:
        """Position of each edge ``(u, v, key)`` (−1 where the graph has no such edge)."""
        rows = pd.MultiIndex.from_arrays(
            [np.asarray(u, dtype=np.int64), np.asarray(v, dtype=np.int64), np.asarray(key)]
        )
        return np.asarray(self._edge_keys.get_indexer(rows), dtype=np.int64)

    def edge_tuples(self) -> list[tuple[int, int, int]]:
        """``(u, v, key)`` of every edge, as Python ints, in edge order."""
        return list(zip(self.u.tolist(), self.v.tolist(), self.key.tolist(), strict=True))


# compiled graphs, with the stamp they were compiled at (see the module docstring)
_compiled: weakref.WeakKeyDictionary[nx.MultiDiGraph, tuple[tuple[int, str], CompiledGraph]]
_compiled = weakref.WeakKeyDictionary()


def _stamp(G: nx.MultiDiGraph) -> tuple[int, str]:
    return (G.number_of_nodes(), str(G.graph.get("crs")))


def compile_graph(G: nx.MultiDiGraph, *, refresh: bool = False) -> CompiledGraph:
    """The graph's arrays (:class:`CompiledGraph`), built on first use and kept with the graph.

    The graph is checked against the contract first
    (:func:`~convoyrisk.convert.validate_graph`). The result is cached while
    the graph's node count and CRS stay the same (see the module docstring);
    pass ``refresh=True`` after editing the graph in place.

    Raises
    ------
    InputError
        If `G` breaks the graph contract, or has no edges.

    Examples
    --------
    >>> import shapely, networkx as nx
    >>> G = nx.MultiDiGraph(crs="EPSG:32631")
    >>> G.add_node(1, x=0.0, y=0.0)
    >>> G.add_node(2, x=100.0, y=0.0)
    >>> G.add_edge(1, 2, 0, geometry=shapely.LineString([(0, 0), (100, 0)]),
    ...            length=100.0, road_id=7, reversed=False)
    0
    >>> cg = compile_graph(G)
    >>> cg.eu.tolist(), cg.ev.tolist(), cg.road_id.tolist(), cg.forward.tolist()
    ([0], [1], [7], [True])
    >>> compile_graph(G) is cg
    True
    """
    validate_graph(G)
    stamp = _stamp(G)
    hit = None if refresh else _compiled.get(G)
    if hit is not None and hit[0] == stamp:
        return hit[1]
    compiled = _build(G)
    _compiled[G] = (stamp, compiled)
    return compiled


def _build(G: nx.MultiDiGraph) -> CompiledGraph:
    # G.edges, in its order, through the public adjacency dicts: a third of the time of
    # iterating the edge view (and networkx counts edges by walking every node)
    rows = [
        (u, v, k, d) for u, nbrs in G.adjacency() for v, kd in nbrs.items() for k, d in kd.items()
    ]
    m = len(rows)
    if m == 0:
        msg = "The graph has no edges: the road layer gave no usable lines."
        raise InputError(msg)
    u = np.fromiter((r[0] for r in rows), dtype=np.int64, count=m)
    v = np.fromiter((r[1] for r in rows), dtype=np.int64, count=m)
    key = np.fromiter((r[2] for r in rows), dtype=np.int64, count=m)
    data = [r[3] for r in rows]
    geoms = np.empty(m, dtype=object)
    geoms[:] = [d["geometry"] for d in data]
    names = np.empty(m, dtype=object)
    names[:] = [road_label(d.get("name"), d.get("ref")) for d in data]
    node_ids, node_xy = _nodes(G)
    return _from_arrays(
        G.graph["crs"],
        node_ids,
        node_xy,
        (u, v, key),
        np.fromiter((d["length"] for d in data), dtype=float, count=m),
        np.fromiter((d["road_id"] for d in data), dtype=np.int64, count=m),
        np.fromiter((is_forward(d) for d in data), dtype=bool, count=m),
        geoms,
        names,
    )


def road_label(name: Any, ref: Any) -> str:  # noqa: ANN401 - attribute values vary
    """A road's label: its ``name``, else its ``ref``, else "" (stripped)."""
    return str(name or ref or "").strip()


def _nodes(G: nx.MultiDiGraph) -> tuple[IntArray, npt.NDArray[np.float64]]:
    node_ids = np.fromiter(G.nodes, dtype=np.int64, count=G.number_of_nodes())
    node_xy = np.array([(d["x"], d["y"]) for _, d in G.nodes(data=True)], dtype=float).reshape(
        len(node_ids), 2
    )
    return node_ids, node_xy


def _from_arrays(  # noqa: PLR0917 - the arrays of one graph
    crs: Any,  # noqa: ANN401 - any CRS form
    node_ids: IntArray,
    node_xy: npt.NDArray[np.float64],
    uvk: tuple[IntArray, IntArray, IntArray],
    length: npt.NDArray[np.float64],
    road_id: IntArray,
    forward: BoolArray,
    geoms: npt.NDArray[np.object_],
    names: npt.NDArray[np.object_],
) -> CompiledGraph:
    u, v, key = uvk
    ordered = np.argsort(node_ids, kind="stable")
    sorted_ids = node_ids[ordered]
    eu = ordered[np.searchsorted(sorted_ids, u)].astype(np.int64)
    ev = ordered[np.searchsorted(sorted_ids, v)].astype(np.int64)
    n = len(node_ids)
    # the directed node pairs, sorted: each run of equal (eu, ev) is one adjacency entry
    pair_order = np.lexsort((ev, eu)).astype(np.int64)
    su, sv = eu[pair_order], ev[pair_order]
    new = np.r_[True, (su[1:] != su[:-1]) | (sv[1:] != sv[:-1])]
    pair_start = np.flatnonzero(new).astype(np.int64)
    pu, pv = su[pair_start], sv[pair_start]
    indptr = np.r_[0, np.cumsum(np.bincount(pu, minlength=n))].astype(np.int64)
    return CompiledGraph(
        crs=crs,
        node_ids=node_ids,
        node_xy=node_xy,
        u=u,
        v=v,
        key=key,
        eu=eu,
        ev=ev,
        length_m=length,
        road_id=road_id,
        forward=forward,
        geoms=geoms,
        road_name=names,
        pair_order=pair_order,
        pair_start=pair_start,
        indptr=indptr,
        indices=pv.astype(np.int64),
    )


def compile_added_edges(
    G: nx.MultiDiGraph,
    uvk: tuple[IntArray, IntArray, IntArray],
    *,
    length: npt.NDArray[np.float64],
    road_id: IntArray,
    forward: BoolArray,
    geoms: npt.NDArray[np.object_],
    names: npt.NDArray[np.object_],
) -> CompiledGraph:
    """Compile a graph just built, from its edges' arrays in the order they were added.

    For the builders (:func:`convoyrisk.convert.graph_from_tables`): what
    :func:`compile_graph` would read back from the graph's dicts (a country's
    millions of them), taken from the arrays the graph was built from, in the
    graph's own edge order (nodes in their order, each node's successors in the
    order their first edge was added, keys in order), and kept as its
    compiled form.
    """
    u, v, key = uvk
    node_ids, node_xy = _nodes(G)
    ordered = np.argsort(node_ids, kind="stable")
    eu = ordered[np.searchsorted(node_ids[ordered], u)]
    ev = ordered[np.searchsorted(node_ids[ordered], v)]
    _, first, inverse = np.unique(
        eu.astype(np.int64) * len(node_ids) + ev, return_index=True, return_inverse=True
    )
    order = np.lexsort((np.arange(len(u)), first[inverse.ravel()], eu))
    compiled = _from_arrays(
        G.graph["crs"],
        node_ids,
        node_xy,
        (u[order], v[order], key[order]),
        length[order],
        road_id[order],
        forward[order],
        geoms[order],
        names[order],
    )
    _compiled[G] = (_stamp(G), compiled)
    return compiled
