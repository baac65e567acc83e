"""Alternative routes between two places, user-given routes, and the risk of each.

Alternatives come from the **penalty method** (as in GraphHopper's and ORS's
alternative routes): after each best path under the objective, the roads it
used get heavier by a factor ``1 + penalty`` and the search runs again. Every
search is one :func:`scipy.sparse.csgraph.dijkstra` call on a CSR matrix built
once (:class:`RoutingIndex`); only its data array is re-weighted between
searches. The paths found form a pool; routes are then picked from the pool in
order of objective cost, and a route is kept only if

* it shares at most `max_share` of its length with every better route kept,
  and
* it is at most `max_stretch` times as long as the best route for the
  objective (for ``"shortest"``: the shortest route),

so alternatives are genuinely different, not the same road with a small detour.

Objectives (edge weights the search minimises):

``shortest``
    length.
``safest``
    the route's risk integral ``Σ λᵢ·Lᵢ`` (least expected incidents for a given
    number of days on the road), ties broken by length.
``balanced``
    ``length_km + risk_weight · Σ λᵢ·Lᵢ / 30``: `risk_weight` is the number of
    km a planner would drive to avoid one expected incident per day on the road.
``minimax``
    least worst-segment rate (the bottleneck), then shortest: the smallest
    threshold ``t`` for which a path uses only segments with rate ≤ ``t``, and
    the shortest paths on the roads under ``t``.

:func:`pareto_routes` gives the supported Pareto front of length against risk
(weighted-sum dichotomic search, Aneja & Nair 1979).

Route risk: with segment rates λᵢ (incidents per km per 30 days), lengths Lᵢ
(km) and ``d`` days on the road, expected incidents ``E = Σ λᵢ·Lᵢ·d/30`` and
``P(at least one) = 1 − exp(−E)`` (a Poisson process). The convoy is assumed
exposed on every segment of its route for the whole transit: a week-long
transit exposes seven times more than a one-day one.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import networkx as nx
import numpy as np
import numpy.typing as npt
import pandas as pd
import pyogrio
import shapely
from scipy.sparse import coo_matrix, csr_matrix
from scipy.sparse.csgraph import breadth_first_order, connected_components, dijkstra

from ._errors import InputError, MissingInputError, NoRouteError
from .bayes import NO_DATA_CLASS
from .compiled import CompiledGraph, compile_graph
from .convert import is_forward, validate_graph
from .exposure import Trip, route_exposure
from .risk import RiskResult
from .utils import first_line

Edge = tuple[int, int, int]

OBJECTIVES = ("shortest", "safest", "balanced", "minimax")
"""Objectives :func:`alternative_routes` can optimise."""

METHOD = "penalty"
"""How alternatives are found (reported by the command line)."""

_TIE = 1e-6  # relative weight of the tie-breaking term in the objectives


@dataclass
class Route:
    """One route and its metrics.

    Attributes
    ----------
    nodes
        Node ids from origin to destination.
    edges
        ``(u, v, key)`` of each edge taken.
    metrics
        ``length_km``, ``expected_incidents``, ``p_incident`` and the rest, see
        :func:`route_metrics`.
    name
        Where the route comes from: ``"alternative"``, ``"pareto"``, or the
        places or file a user gave.
    """

    nodes: list[int]
    edges: list[Edge]
    metrics: dict[str, Any] = field(default_factory=dict)
    name: str = "alternative"


# --------------------------------------------------------------------------------------
# the compiled graph
# --------------------------------------------------------------------------------------


class RoutingIndex:
    """The graph as arrays and a CSR matrix for :func:`scipy.sparse.csgraph.dijkstra`.

    Expensive to build (one pass over the edges) and reused by every search:
    parallel edges share one matrix entry, whose weight is the lightest of them
    under the weights of each search.

    Parameters
    ----------
    G
        The road graph (see :mod:`convoyrisk.network`).

    Attributes
    ----------
    nodes
        Node ids, in matrix order.
    edges
        ``(u, v, key)`` of every edge, in array order.
    length_m, road_id
        Per edge.
    """

    def __init__(self, G: nx.MultiDiGraph) -> None:
        compiled = compile_graph(G)
        self.G = G
        self.compiled = compiled
        self.nodes = compiled.node_ids
        self.edges: list[Edge] = compiled.edge_tuples()
        self.length_m = compiled.length_m
        self.road_id = compiled.road_id
        self.reversed = ~compiled.forward
        self.eu, self.ev = compiled.eu, compiled.ev
        n = compiled.n_nodes
        # edges sorted by (u, v): each run of equal pairs is one matrix entry
        self._order = compiled.pair_order
        self._pair_start = compiled.pair_start
        self._matrix = csr_matrix(
            (
                np.ones(len(compiled.pair_start)),
                compiled.indices.astype(np.int32),
                compiled.indptr.astype(np.int32),
            ),
            shape=(n, n),
        )
        self._sorted_w = np.ones(compiled.n_edges)
        self._edge_position: dict[Edge, int] | None = None

    @property
    def edge_position(self) -> dict[Edge, int]:
        """Array position of each ``(u, v, key)``."""
        if self._edge_position is None:
            self._edge_position = {e: i for i, e in enumerate(self.edges)}
        return self._edge_position

    def node_index(self, node: int) -> int:
        """Matrix row of a node id."""
        i = int(self.compiled.node_index([int(node)])[0])
        if i < 0:
            msg = f"Node {node} is not in the road graph: pass a node id of the graph."
            raise InputError(msg)
        return i

    def _set_weights(self, weight: np.ndarray) -> None:
        sorted_w = weight[self._order]
        self._sorted_w = sorted_w
        self._matrix.data = np.minimum.reduceat(sorted_w, self._pair_start)

    def _best_edge(self, a: int, b: int) -> int:
        """Array position of the lightest edge a → b under the current weights."""
        start, stop = self._matrix.indptr[a], self._matrix.indptr[a + 1]
        pair = start + int(np.searchsorted(self._matrix.indices[start:stop], b))
        lo = self._pair_start[pair]
        hi = self._pair_start[pair + 1] if pair + 1 < len(self._pair_start) else len(self._order)
        return int(self._order[lo + int(np.argmin(self._sorted_w[lo:hi]))])

    def shortest(self, weight: np.ndarray, source: int, target: int) -> list[int] | None:
        """Edge positions of the lightest path between two matrix rows; None if unreachable.

        Parameters
        ----------
        weight
            One non-negative weight per edge (``inf`` removes the edge).
        source, target
            Matrix rows (see :meth:`node_index`).
        """
        if source == target:
            return []
        self._set_weights(weight)
        dist, pred = dijkstra(self._matrix, directed=True, indices=source, return_predecessors=True)
        if not np.isfinite(dist[target]):
            return None
        hops = [target]
        while hops[-1] != source:
            hops.append(int(pred[hops[-1]]))
        hops.reverse()
        return [self._best_edge(a, b) for a, b in itertools.pairwise(hops)]

    def route(self, positions: Sequence[int], name: str = "alternative") -> Route:
        """A :class:`Route` from edge positions."""
        edges = [self.edges[i] for i in positions]
        nodes = [edges[0][0], *(e[1] for e in edges)] if edges else []
        return Route(nodes=nodes, edges=edges, name=name)

    def positions(self, route: Route) -> np.ndarray:
        """Edge positions of a route's edges."""
        return np.array([self.edge_position[e] for e in route.edges], dtype=np.int64)


def routing_index(G: nx.MultiDiGraph, index: RoutingIndex | None = None) -> RoutingIndex:
    """`index` if it belongs to `G`, else a new :class:`RoutingIndex` of `G` (checked once)."""
    if index is None:
        return RoutingIndex(G)
    if index.G is not G:
        msg = "`index` was built for another graph: build it with `RoutingIndex(G)`."
        raise InputError(msg)
    return index


# --------------------------------------------------------------------------------------
# lengths and overlap
# --------------------------------------------------------------------------------------


def path_edges(G: nx.MultiDiGraph, nodes: list[int], weight: str = "length") -> list[Edge]:
    """The lightest parallel edge between each pair of consecutive nodes."""
    out: list[Edge] = []
    for a, b in itertools.pairwise(nodes):
        key = min(G[a][b], key=lambda k: G[a][b][k].get(weight, math.inf))
        out.append((a, b, key))
    return out


def route_length_m(G: nx.MultiDiGraph, edges: list[Edge]) -> float:
    """Sum of the edges' ``length`` attributes, metres."""
    return float(sum(G.edges[e]["length"] for e in edges))


def _road_lengths(G: nx.MultiDiGraph, edges: list[Edge]) -> dict[int, float]:
    return {int(G.edges[e]["road_id"]): float(G.edges[e]["length"]) for e in edges}


def shared_fraction(G: nx.MultiDiGraph, route: list[Edge], other: list[Edge]) -> float:
    """Share of `route`'s length on roads that `other` also uses (either direction).

    A road driven twice counts once.
    """
    mine, theirs = _road_lengths(G, route), _road_lengths(G, other)
    total = sum(mine.values())
    return sum(length for r, length in mine.items() if r in theirs) / total if total else 0.0


@dataclass
class _Candidate:
    positions: list[int]
    length_m: float
    cost: float
    roads: np.ndarray  # unique road ids
    road_m: np.ndarray  # their lengths

    def share_with(self, other: _Candidate) -> float:
        total = float(self.road_m.sum())
        if total == 0.0:
            return 0.0
        return float(self.road_m[np.isin(self.roads, other.roads)].sum()) / total


def _candidate(ix: RoutingIndex, positions: list[int], cost_w: np.ndarray) -> _Candidate:
    pos = np.asarray(positions, dtype=np.int64)
    roads, first = np.unique(ix.road_id[pos], return_index=True)
    return _Candidate(
        positions=list(positions),
        length_m=float(ix.length_m[pos].sum()),
        cost=float(cost_w[pos].sum()),
        roads=roads,
        road_m=ix.length_m[pos][first],
    )


# --------------------------------------------------------------------------------------
# objectives
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EdgeRisk:
    """Per-edge risk from scored segments, aligned with a :class:`RoutingIndex`.

    Attributes
    ----------
    integral
        ``Σ λᵢ·Lᵢ`` over the edge's segments (incidents per 30 days on the road).
    max_rate
        Highest segment rate on the edge (incidents per km per 30 days).
    """

    integral: np.ndarray
    max_rate: np.ndarray


def edge_risk(index: RoutingIndex, risk: RiskResult) -> EdgeRisk:
    """Sum and maximum of segment risk per edge (both directions of a road alike)."""
    segs = risk.segments
    km = segs["length_m"].to_numpy(dtype=float) / 1000.0
    per_road = pd.DataFrame(
        {"road_id": segs["road_id"].to_numpy(), "i": segs["rate"].to_numpy() * km}
    )
    per_road["m"] = segs["rate"].to_numpy()
    agg = per_road.groupby("road_id").agg(i=("i", "sum"), m=("m", "max"))
    integral = agg["i"].reindex(index.road_id).to_numpy(dtype=float)
    max_rate = agg["m"].reindex(index.road_id).to_numpy(dtype=float)
    if np.isnan(integral).any():
        msg = "`risk` was scored on another graph: some roads have no segments. Re-score it on G."
        raise InputError(msg)
    return EdgeRisk(integral=integral, max_rate=max_rate)


def _objective_weights(
    ix: RoutingIndex,
    objective: str,
    risk: RiskResult | None,
    risk_weight: float,
) -> tuple[np.ndarray, EdgeRisk | None]:
    if objective not in OBJECTIVES:
        msg = f"`objective` must be one of {', '.join(OBJECTIVES)}; got {objective!r}."
        raise InputError(msg)
    km = ix.length_m / 1000.0
    if objective == "shortest":
        return km.copy(), None
    if risk is None:
        msg = f"The {objective!r} objective needs `risk` (from `score_segments`)."
        raise InputError(msg)
    er = edge_risk(ix, risk)
    if objective == "safest":
        scale = float(np.mean(er.integral / np.maximum(km, 1e-12))) or 1.0
        return er.integral + _TIE * scale * km, er
    if objective == "balanced":
        if risk_weight < 0:
            msg = f"`risk_weight` must be non-negative, got {risk_weight}."
            raise InputError(msg)
        return km + risk_weight * er.integral / 30.0, er
    return km.copy(), er  # minimax: lengths on the roads under the bottleneck threshold


def _stops_reachable(ix: RoutingIndex, weight: np.ndarray, stops: Sequence[int]) -> bool:
    return all(ix.shortest(weight, a, b) is not None for a, b in itertools.pairwise(stops))


def _bottleneck(ix: RoutingIndex, weight: np.ndarray, er: EdgeRisk, stops: Sequence[int]) -> float:
    """Smallest rate ``t`` such that the stops connect on edges whose max rate is ≤ ``t``."""
    usable = np.isfinite(weight)
    levels = np.unique(er.max_rate[usable])
    lo, hi = 0, len(levels) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        trial = np.where(er.max_rate <= levels[mid], weight, np.inf)
        if _stops_reachable(ix, trial, stops):
            hi = mid
        else:
            lo = mid + 1
    return float(levels[lo])


def no_route_error(G: nx.MultiDiGraph, a: int, b: int, *, avoided: bool) -> NoRouteError:
    """The one-line error for nodes `a` and `b` that no route joins (given the avoided roads)."""

    def label(n: int) -> str:
        name = G.nodes[n].get("name")
        return f"{name} (node {n})" if name else f"node {n}"

    why = (
        "once the avoided roads and areas are left out"
        if avoided
        else "they lie on parts of the network that no road connects"
    )
    msg = (
        f"No route joins {label(a)} and {label(b)}: {why}. "
        "Check the road layer, avoid less, or choose other places."
    )
    return NoRouteError(msg)


def _path_through(
    ix: RoutingIndex, weight: np.ndarray, stops: Sequence[int], *, avoided: bool
) -> list[int]:
    out: list[int] = []
    for a, b in itertools.pairwise(stops):
        leg = ix.shortest(weight, a, b)
        if leg is None:
            raise no_route_error(ix.G, int(ix.nodes[a]), int(ix.nodes[b]), avoided=avoided)
        out.extend(leg)
    return out


def _check_limits(k: int, max_share: float, max_stretch: float, penalty: float) -> None:
    if k < 1:
        msg = f"`k` must be at least 1, got {k}."
        raise InputError(msg)
    if not 0.0 <= max_share <= 1.0 or max_stretch < 1.0:
        msg = "`max_share` must be in [0, 1] and `max_stretch` at least 1."
        raise InputError(msg)
    if penalty <= 0.0:
        msg = f"`penalty` must be positive, got {penalty}."
        raise InputError(msg)


def _stops(ix: RoutingIndex, origin: int, destination: int, via: Sequence[int]) -> list[int]:
    stops = [ix.node_index(n) for n in (origin, *via, destination)]
    if any(a == b for a, b in itertools.pairwise(stops)) or origin == destination:
        msg = (
            "Origin and destination (or two consecutive via places) are the same place on "
            "the network: choose different places."
        )
        raise InputError(msg)
    return stops


def _avoid_weights(ix: RoutingIndex, weight: np.ndarray, avoid_roads: Collection[int]) -> None:
    if avoid_roads:
        weight[np.isin(ix.road_id, np.fromiter(avoid_roads, dtype=np.int64))] = np.inf


def _select(
    pool: list[_Candidate], k: int, max_share: float, max_stretch: float
) -> list[_Candidate]:
    """Greedy pick in cost order: the best, then each one within both limits."""
    if not pool:
        return []
    best = pool[0]
    picked = [best]
    for c in sorted(pool[1:], key=lambda c: (c.cost, c.length_m)):
        if len(picked) == k:
            break
        if c.length_m > max_stretch * best.length_m * (1 + 1e-12):
            continue
        if all(c.share_with(p) <= max_share for p in picked):
            picked.append(c)
    return picked


def alternative_routes(
    G: nx.MultiDiGraph,
    origin: int,
    destination: int,
    *,
    k: int = 3,
    max_share: float = 0.6,
    max_stretch: float = 1.4,
    penalty: float = 0.5,
    max_iterations: int | None = None,
    objective: str = "shortest",
    risk: RiskResult | None = None,
    risk_weight: float = 1000.0,
    via: Sequence[int] = (),
    avoid_roads: Collection[int] = (),
    index: RoutingIndex | None = None,
) -> list[Route]:
    """Up to `k` genuinely different routes, best first (penalty method).

    Parameters
    ----------
    G
        The road graph.
    origin, destination
        Node ids.
    k
        Number of routes wanted; fewer are returned when the network has no more
        that pass both limits.
    max_share
        Largest share of a route's length that it may have in common with any
        better route (roads count in either direction).
    max_stretch
        Largest ratio of a route's length to the length of the best route for
        the objective (for ``"shortest"``: the shortest route).
    penalty
        Each time a road is used, its search weight grows by this fraction.
    max_iterations
        Searches to run at most; ``4·k + 4`` if None.
    objective
        ``"shortest"``, ``"safest"``, ``"balanced"`` or ``"minimax"`` (see the
        module docstring). All but ``"shortest"`` need `risk`.
    risk
        Scored segments from :func:`convoyrisk.risk.score_segments`.
    risk_weight
        For ``"balanced"``: km a planner would drive to avoid one expected
        incident per day on the road.
    via
        Node ids the routes must pass, in order.
    avoid_roads
        ``road_id`` values of roads no route may use (see :func:`roads_in_areas`
        and :func:`roads_of_segments`).
    index
        A :class:`RoutingIndex` of `G` to reuse; built if None.

    Returns
    -------
    list of Route
        Best first under the objective; the first is the optimum.

    Raises
    ------
    NoRouteError
        If the destination (or a via place) cannot be reached.
    """
    _check_limits(k, max_share, max_stretch, penalty)
    ix = routing_index(G, index)
    stops = _stops(ix, origin, destination, via)
    base, er = _objective_weights(ix, objective, risk, risk_weight)
    _avoid_weights(ix, base, avoid_roads)
    if objective == "minimax" and er is not None:
        _path_through(ix, base, stops, avoided=bool(avoid_roads))  # reachable at all?
        level = _bottleneck(ix, base, er, stops)
        base = np.where(er.max_rate <= level, base, np.inf)
    road_uses = np.zeros(int(ix.road_id.max()) + 1 if len(ix.road_id) else 0)
    pool: list[_Candidate] = []
    seen: set[tuple[int, ...]] = set()
    for _ in range(max_iterations or 4 * k + 4):
        weight = base * (1.0 + penalty) ** road_uses[ix.road_id]
        positions = _path_through(ix, weight, stops, avoided=bool(avoid_roads))
        road_uses[np.unique(ix.road_id[positions])] += 1
        key = tuple(positions)
        if key in seen:
            continue
        seen.add(key)
        pool.append(_candidate(ix, positions, base))
        if len(_select(pool, k, max_share, max_stretch)) == k:
            break
    return [ix.route(c.positions) for c in _select(pool, k, max_share, max_stretch)]


def pareto_routes(
    G: nx.MultiDiGraph,
    origin: int,
    destination: int,
    risk: RiskResult,
    *,
    max_routes: int = 8,
    via: Sequence[int] = (),
    avoid_roads: Collection[int] = (),
    index: RoutingIndex | None = None,
) -> list[Route]:
    """The supported Pareto front of length against risk, shortest first.

    Each route minimises ``length + w·Σλᵢ·Lᵢ`` for some ``w ≥ 0``; the weights
    are found by dichotomic search (Aneja & Nair 1979): between two front
    routes ``a`` and ``b``, ``w = (L_b − L_a)/(R_a − R_b)``, and a route found
    there that beats both on the weighted sum lies on the front between them.
    Pareto-optimal routes inside the convex hull (unsupported) are not found.

    Parameters
    ----------
    max_routes
        Stop once this many routes are on the front.

    Returns
    -------
    list of Route
        Lengths increase and risk integrals decrease along the list.
    """
    ix = routing_index(G, index)
    stops = _stops(ix, origin, destination, via)
    km = ix.length_m / 1000.0
    er = edge_risk(ix, risk)
    integral = er.integral.copy()
    avoided = bool(avoid_roads)
    mask = np.zeros(len(km))
    _avoid_weights(ix, mask, avoid_roads)

    def solve(w_len: float, w_risk: float) -> _Candidate:
        weight = w_len * km + w_risk * integral + mask
        pos = _path_through(ix, weight, stops, avoided=avoided)
        return _candidate(ix, pos, integral)  # cost = risk integral

    scale = float(km.sum() / max(integral.sum(), 1e-300))
    short = solve(1.0, _TIE * scale)
    safe = solve(_TIE, scale)
    front = {tuple(short.positions): short, tuple(safe.positions): safe}
    todo = [(short, safe)]
    while todo and len(front) < max_routes:
        a, b = todo.pop()
        if b.cost >= a.cost or b.length_m <= a.length_m:
            continue
        w = (b.length_m - a.length_m) / 1000.0 / (a.cost - b.cost)
        c = solve(1.0, w)
        tol = 1e-9 * (a.length_m / 1000.0 + w * a.cost)
        if c.length_m / 1000.0 + w * c.cost < a.length_m / 1000.0 + w * a.cost - tol:
            front.setdefault(tuple(c.positions), c)
            todo.extend([(a, c), (c, b)])
    ordered = sorted(front.values(), key=lambda c: (c.length_m, c.cost))
    kept: list[_Candidate] = []
    for c in ordered:  # drop dominated ties
        if not kept or c.cost < kept[-1].cost:
            kept.append(c)
    return [ix.route(c.positions, name="pareto") for c in kept]


# --------------------------------------------------------------------------------------
# avoid lists and user-given routes
# --------------------------------------------------------------------------------------


def roads_in_areas(G: nx.MultiDiGraph, areas: gpd.GeoDataFrame | gpd.GeoSeries) -> set[int]:
    """``road_id`` of every road that touches one of the (multi)polygons.

    Raises
    ------
    InputError
        If `areas` has no CRS or holds no polygon.
    """
    if areas.crs is None:
        msg = "The areas to avoid have no CRS: set one (GeoJSON is EPSG:4326)."
        raise InputError(msg)
    compiled = compile_graph(G)
    geoms = areas.geometry if isinstance(areas, gpd.GeoDataFrame) else areas
    polys = geoms[geoms.geom_type.isin(["Polygon", "MultiPolygon"])]
    if len(polys) == 0:
        msg = "The areas to avoid hold no Polygon or MultiPolygon: draw areas, not lines or points."
        raise InputError(msg)
    polys = polys.to_crs(G.graph["crs"])
    fwd = compiled.forward_edges  # a road's two directions share its geometry
    tree = shapely.STRtree(compiled.geoms[fwd])
    _, hit = tree.query(polys.to_numpy(), predicate="intersects")
    return {int(r) for r in compiled.road_id[fwd][np.unique(hit)]}


def read_areas(path: str | Path) -> gpd.GeoDataFrame:
    """Read polygons to avoid from a GeoJSON (or any vector file GDAL reads)."""
    path = Path(path)
    if not path.exists():
        msg = f"Areas file {path} does not exist: pass an existing GeoJSON with `--avoid`."
        raise MissingInputError(msg)
    try:
        return gpd.read_file(path, engine="pyogrio")
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError, ValueError) as exc:
        msg = f"Cannot read areas file {path}: {first_line(exc)}. Pass a GeoJSON of polygons."
        raise InputError(msg) from exc


def roads_of_segments(risk: RiskResult | gpd.GeoDataFrame, segment_ids: Iterable[int]) -> set[int]:
    """``road_id`` of the roads that hold the given segments.

    `risk` is a :class:`~convoyrisk.risk.RiskResult` or its segment table
    (:func:`convoyrisk.density.split_segments` numbers segments the same way).

    Raises
    ------
    InputError
        If a segment id is unknown.
    """
    ids = [int(s) for s in segment_ids]
    table = risk.segments if isinstance(risk, RiskResult) else risk
    segs = table.set_index("segment_id")
    unknown = sorted(set(ids) - set(segs.index.tolist()))
    if unknown:
        msg = (
            f"Unknown segment id(s) {unknown[:5]}: ids run from {int(segs.index.min())} to "
            f"{int(segs.index.max())}; see `segment_id` in the risk output."
        )
        raise InputError(msg)
    return {int(r) for r in segs.loc[ids, "road_id"]}


def route_through(
    G: nx.MultiDiGraph,
    stops: Sequence[int],
    *,
    name: str = "",
    avoid_roads: Collection[int] = (),
    index: RoutingIndex | None = None,
) -> Route:
    """The shortest route through the given nodes in order (legs joined end to end).

    Raises
    ------
    InputError
        If fewer than two distinct stops are given.
    NoRouteError
        If a leg cannot be driven.
    """
    ix = routing_index(G, index)
    rows = [ix.node_index(n) for n in stops]
    rows = [r for i, r in enumerate(rows) if i == 0 or r != rows[i - 1]]
    if len(rows) < 2:
        msg = "A route needs at least two different places on the network."
        raise InputError(msg)
    weight = ix.length_m / 1000.0
    _avoid_weights(ix, weight, avoid_roads)
    positions = _path_through(ix, weight, rows, avoided=bool(avoid_roads))
    return ix.route(positions, name=name or "given")


def route_metrics(
    G: nx.MultiDiGraph,
    route: Route,
    risk: RiskResult,
    *,
    trip: Trip | None = None,
    n_worst: int = 3,
    min_gap_km: float = 5.0,
    **pace: Any,  # noqa: ANN401 - Trip fields
) -> dict[str, Any]:
    """Length, exposure and risk of a route.

    Parameters
    ----------
    G
        The road graph.
    route
        A route from :func:`alternative_routes` or another route function.
    risk
        Scored segments from :func:`convoyrisk.risk.score_segments`.
    trip
        Pace, halts (graph node → hours), total time and threat lead (see
        :class:`convoyrisk.exposure.Trip`); defaults if None.
    n_worst
        How many of the worst segments to list.
    min_gap_km
        The listed worst segments lie at least this far apart along the route
        (so they name different hot spots, not neighbouring segments of one).
    **pace
        Fields of :class:`~convoyrisk.exposure.Trip` to set on `trip`
        (``speed_kph``, ``travel_days``...); None values keep the default.

    Returns
    -------
    dict
        ``length_km``; ``travel_days`` (departure to arrival) and
        ``driving_hours``; ``exposure_hours`` by kind; ``expected_incidents``
        (expected incident episodes on the convoy's path while it is on the
        road or about to pass, from the long-run rates), ``p_incident`` =
        ``1 − exp(−E)`` with its interval ``p_incident_low`` /
        ``p_incident_high`` from joint posterior draws; ``..._now`` with the
        near-repeat multiplier; ``km_insufficient_data``; ``worst_segment`` and
        ``worst_segments`` (id, rate, class, chainage, expected incidents on it
        and their share of the route's); ``via`` (named places passed) and
        ``profile`` (chainage km and rate of each segment in travel order).
    """
    validate_graph(G)
    trip = dataclasses.replace(trip or Trip(), **{k: v for k, v in pace.items() if v is not None})
    if not route.edges:
        msg = "The route has no edges: origin and destination are the same node."
        raise InputError(msg)
    segs = route_segments(G, route, risk)
    length_km = route_length_m(G, route.edges) / 1000.0
    # chainage of each node of the route, for its halts
    node_km = np.r_[0.0, np.cumsum([G.edges[e]["length"] for e in route.edges])] / 1000.0
    node_km *= float(segs["length_m"].sum()) / 1000.0 / max(float(node_km[-1]), 1e-12)
    halts = []
    for node, hours in trip.halts.items():
        if node not in route.nodes:
            name = G.nodes[node].get("name", node) if node in G else node
            msg = f"Halt at {name}: the route does not pass there; choose a place on the route."
            raise InputError(msg)
        at = float(node_km[route.nodes.index(node)])
        halts.append((str(G.nodes[node].get("name", node)), at, float(hours)))
    params = risk.params
    exp = route_exposure(
        segs,
        trip,
        halt_chainage_km=halts,
        credible_level=params.credible_level,
        local_km=params.bandwidth_m / 1000.0,
        regional_km=params.prior_scale_m / 1000.0,
    )
    km = segs["length_m"].to_numpy() / 1000.0
    rate = segs["rate"].to_numpy()
    share = exp.pop("segment_expected")
    expected = exp["expected_incidents"]
    order = _separated_peaks(rate, segs["chainage_m"].to_numpy(dtype=float), n_worst, min_gap_km)
    seg_ids = segs["segment_id"].to_numpy(dtype=np.int64)
    chainage = segs["chainage_m"].to_numpy(dtype=float)
    worst = [
        {
            "segment_id": int(seg_ids[i]),
            "rate": float(rate[i]),
            "risk_class": str(segs["risk_class"].iat[i]),
            "chainage_km": round(float(chainage[i]) / 1000.0, 1),
            "expected_incidents": float(share[i]),
            "share_of_route": round(float(share[i]) / expected, 4) if expected else 0.0,
        }
        for i in order
    ]
    via = [G.nodes[n]["name"] for n in route.nodes[1:-1] if G.nodes[n].get("name")]
    no_data = (segs["risk_class"].astype(str) == NO_DATA_CLASS).to_numpy()
    return {
        "length_km": round(length_km, 3),
        "travel_days": round(exp["exposure_hours"]["total"] / 24.0, 3),
        "driving_hours": round(length_km / trip.speed_kph, 2),
        "risk_integral": float(np.sum(rate * km)),
        **exp,
        "km_insufficient_data": round(float(km[no_data].sum()), 1),
        "worst_segment": {
            k: worst[0][k] for k in ("segment_id", "rate", "risk_class", "chainage_km")
        },
        "worst_segments": worst,
        "via": list(dict.fromkeys(via)),
        "profile": [
            [round(float(c) / 1000.0, 3), float(r)]
            for c, r in zip(segs["chainage_m"], segs["rate"], strict=True)
        ],
    }


def _separated_peaks(rate: np.ndarray, chainage_m: np.ndarray, n: int, gap_km: float) -> list[int]:
    """Indices of the highest rates, each at least `gap_km` from those already taken."""
    taken: list[int] = []
    for i in np.argsort(-rate, kind="stable"):
        if all(abs(chainage_m[i] - chainage_m[j]) >= gap_km * 1000.0 for j in taken):
            taken.append(int(i))
            if len(taken) >= max(1, n):
                break
    return taken


def route_segments(G: nx.MultiDiGraph, route: Route, risk: RiskResult) -> pd.DataFrame:
    """The route's segments in travel order, with ``chainage_m`` at each segment's start.

    Each edge of the route contributes its road's segments, by ``start_m``
    along the road's direction of travel: one sort of the route's rows (a
    country's route passes thousands of edges; a pandas sort per edge took
    seconds per call).
    """
    segs = risk.segments
    data = [G.edges[e] for e in route.edges]
    edge_road = np.fromiter((d["road_id"] for d in data), dtype=np.int64, count=len(data))
    edge_fwd = np.fromiter((is_forward(d) for d in data), dtype=bool, count=len(data))
    road = segs["road_id"].to_numpy(np.int64)
    mine = np.flatnonzero(np.isin(road, edge_road))
    by_road = mine[np.argsort(road[mine], kind="stable")]
    sorted_road = road[by_road]
    lo = np.searchsorted(sorted_road, edge_road, side="left")
    hi = np.searchsorted(sorted_road, edge_road, side="right")
    count = hi - lo
    step = np.repeat(np.arange(len(data)), count)
    within = np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)
    rows = by_road[np.repeat(lo, count) + within]
    start = segs["start_m"].to_numpy(float)[rows]
    order = np.lexsort((np.where(edge_fwd[step], start, -start), step))
    out = pd.DataFrame(segs.iloc[rows[order]].reset_index(drop=True))
    out["chainage_m"] = np.concatenate([[0.0], np.cumsum(out["length_m"].to_numpy())[:-1]])
    return out


RANK_KEYS: dict[str, tuple[str, ...]] = {
    "expected_incidents": ("expected_incidents", "length_km"),
    "length": ("length_km", "expected_incidents"),
    "worst_rate": ("worst_rate", "length_km"),
}
"""How :func:`score_routes` can rank, and the tie-breakers."""


def score_routes(
    G: nx.MultiDiGraph,
    routes: list[Route],
    risk: RiskResult,
    *,
    rank_by: str = "expected_incidents",
    trip: Trip | None = None,
    **pace: Any,  # noqa: ANN401 - Trip fields
) -> list[Route]:
    """Compute each route's metrics and rank them best first.

    Parameters
    ----------
    rank_by
        ``"expected_incidents"`` (least risk first, then shortest),
        ``"length"`` or ``"worst_rate"`` (least worst-segment rate first).
    trip
        How the convoy moves (:class:`convoyrisk.exposure.Trip`).
    **pace
        Fields of :class:`~convoyrisk.exposure.Trip` to set (``speed_kph``,
        ``driving_hours_per_day``, ``travel_days``, ``halts``...); None
        values keep the default.

    Returns
    -------
    list of Route
        Ranked; each route's metrics also hold ``rank``, ``name`` and
        ``shared_fraction`` (share of its length on roads of rank 1).
    """
    validate_graph(G)
    if rank_by not in RANK_KEYS:
        msg = f"`rank_by` must be one of {', '.join(RANK_KEYS)}; got {rank_by!r}."
        raise InputError(msg)
    trip = dataclasses.replace(trip or Trip(), **{k: v for k, v in pace.items() if v is not None})
    for r in routes:
        r.metrics = route_metrics(G, r, risk, trip=trip)
        r.metrics["worst_rate"] = r.metrics["worst_segment"]["rate"]
        r.metrics["name"] = r.name
    routes = sorted(routes, key=lambda r: tuple(r.metrics[k] for k in RANK_KEYS[rank_by]))
    best = routes[0] if routes else None
    for rank, r in enumerate(routes, start=1):
        r.metrics["rank"] = rank
        r.metrics["shared_fraction"] = (
            round(shared_fraction(G, r.edges, best.edges), 4) if best else 0.0
        )
    return routes


# --------------------------------------------------------------------------------------
# chokepoints
# --------------------------------------------------------------------------------------


def chokepoints(
    G: nx.MultiDiGraph,
    origin: int,
    destination: int,
    routes: Sequence[Route] = (),
    *,
    avoid_roads: Collection[int] = (),
) -> dict[str, Any]:
    """Roads and places that every route between two nodes must pass.

    ``cut_roads`` are bridges (cut edges) of the undirected road network that
    separate `origin` from `destination`; ``cut_nodes`` are cut vertices that
    do. Both come from the block–cut tree of the network's biconnected
    components: they lie on the tree path between the two ends. A road with a
    parallel twin between the same two nodes is not a cut road. ``common_roads``
    are the roads all of the given `routes` share. Roads in `avoid_roads` are
    left out of the network first.

    Returns
    -------
    dict
        ``cut_roads`` and ``common_roads`` (lists of ``{road_id, name,
        length_km}``), ``cut_nodes`` (``{node, name}``).
    """
    validate_graph(G)
    compiled = compile_graph(G)
    avoid = np.fromiter((int(r) for r in avoid_roads), dtype=np.int64)
    keep = (compiled.eu != compiled.ev) & ~np.isin(compiled.road_id, avoid)
    index = {int(n): i for i, n in enumerate(compiled.node_ids.tolist())}
    ends = (index.get(int(origin)), index.get(int(destination)))
    cut_nodes, cut_edges = (
        cut_path(len(index), compiled.eu[keep], compiled.ev[keep], ends[0], ends[1])
        if ends[0] is not None and ends[1] is not None
        else ([], [])
    )
    ids = compiled.node_ids
    out: dict[str, Any] = {"cut_roads": [], "cut_nodes": [], "common_roads": []}
    out["cut_nodes"] = [
        {"node": int(ids[n]), "name": G.nodes[int(ids[n])].get("name", "")} for n in cut_nodes
    ]
    # a cut pair of nodes is a cut road when one road joins them (parallel twins are not)
    n_nodes = len(ids)
    pair = np.minimum(compiled.eu, compiled.ev) * n_nodes + np.maximum(compiled.eu, compiled.ev)
    wanted = np.array([min(a, b) * n_nodes + max(a, b) for a, b in cut_edges], dtype=np.int64)
    on = keep & np.isin(pair, wanted)
    roads = pd.DataFrame({"pair": pair[on], "road": compiled.road_id[on]}).groupby("pair")["road"]
    count, first = roads.nunique(), roads.min()
    out["cut_roads"] = [
        _road_record(G, compiled, int(first[w])) for w in wanted.tolist() if count[w] == 1
    ]
    if routes:
        common = set.intersection(*({int(G.edges[e]["road_id"]) for e in r.edges} for r in routes))
        order = [int(G.edges[e]["road_id"]) for e in routes[0].edges]
        out["common_roads"] = [
            _road_record(G, compiled, r) for r in dict.fromkeys(order) if r in common
        ]
    return out


def cut_path(
    n: int, eu: npt.NDArray[np.int64], ev: npt.NDArray[np.int64], origin: int, destination: int
) -> tuple[list[int], list[tuple[int, int]]]:
    """Cut vertices and bridges that separate two nodes of an undirected graph, in path order.

    The graph has nodes ``0 .. n-1`` and edges ``(eu[i], ev[i])`` (repeats are
    one edge). Take one path ``P`` from `origin` to `destination`; every
    separator lies on it. Each connected component of the graph without
    ``P``'s nodes, and each chord of ``P``, joins ``P`` at positions from
    ``lo`` to ``hi``: it bypasses the nodes strictly between and the path
    edges from ``lo`` to ``hi``. A node (an edge) of ``P`` that no bypass
    spans separates the two ends. Linear time, in scipy's compiled graph
    routines (networkx's biconnected components of a country's network took
    half a minute).

    Returns
    -------
    (nodes, edges)
        Separating nodes other than the two ends, and separating edges as node
        pairs, each in order from `origin` to `destination`; empty if there is
        no path.

    Examples
    --------
    >>> import numpy as np
    >>> # 0-1-2-3 with a loop 1-4-2 beside the edge 1-2: node 1 and 2 and edges 0-1, 2-3 cut
    >>> cut_path(5, np.array([0, 1, 2, 1, 4]), np.array([1, 2, 3, 4, 2]), 0, 3)
    ([1, 2], [(0, 1), (2, 3)])
    """
    if origin == destination:
        return [], []
    adj = coo_matrix((np.ones(len(eu)), (eu, ev)), shape=(n, n)).tocsr()
    _, pred = breadth_first_order(adj, origin, directed=False, return_predecessors=True)
    if pred[destination] < 0:
        return [], []
    path = [destination]
    while path[-1] != origin:
        path.append(int(pred[path[-1]]))
    path.reverse()
    k = len(path) - 1  # path edges; positions 0 .. k
    pos = np.full(n, -1, dtype=np.int64)
    pos[path] = np.arange(k + 1)
    pa, pb = pos[eu], pos[ev]
    # components of the graph without the path's nodes
    off = (pa < 0) & (pb < 0)
    _, comp = connected_components(
        coo_matrix((np.ones(int(off.sum())), (eu[off], ev[off])), shape=(n, n)), directed=False
    )
    # bypass intervals: chords (both ends on the path, not consecutive) ...
    chord = (pa >= 0) & (pb >= 0) & (np.abs(pa - pb) > 1)
    lo = [np.minimum(pa, pb)[chord]]
    hi = [np.maximum(pa, pb)[chord]]
    # ... and components touching the path at several positions
    touch = (pa >= 0) != (pb >= 0)
    at = np.where(pa >= 0, pa, pb)[touch]
    c = comp[np.where(pa >= 0, ev, eu)[touch]]
    if len(c):
        span = pd.DataFrame({"c": c, "at": at}).groupby("c")["at"].agg(["min", "max"])
        lo.append(span["min"].to_numpy(np.int64))
        hi.append(span["max"].to_numpy(np.int64))
    lo_a, hi_a = np.concatenate(lo), np.concatenate(hi)
    wide = hi_a > lo_a
    lo_a, hi_a = lo_a[wide], hi_a[wide]
    # nodes strictly inside an interval, edges lo .. hi-1 are bypassed
    node_cover = np.cumsum(
        np.bincount(lo_a + 1, minlength=k + 2) - np.bincount(hi_a, minlength=k + 2)
    )
    edge_cover = np.cumsum(np.bincount(lo_a, minlength=k + 1) - np.bincount(hi_a, minlength=k + 1))
    nodes = [path[i] for i in range(1, k) if node_cover[i] <= 0]
    edges = [(path[i], path[i + 1]) for i in range(k) if edge_cover[i] <= 0]
    return nodes, edges


def _road_record(G: nx.MultiDiGraph, compiled: CompiledGraph, rid: int) -> dict[str, Any]:
    """Road `rid` as ``{road_id, name, between, length_km}``, from its forward edge."""
    i = int(np.flatnonzero((compiled.road_id == rid) & compiled.forward)[0])
    u, v = int(compiled.u[i]), int(compiled.v[i])
    d = G.edges[u, v, int(compiled.key[i])]
    return {
        "road_id": rid,
        "name": str(d.get("name") or ""),
        "between": [str(G.nodes[n].get("name") or n) for n in (u, v)],
        "length_km": round(float(d["length"]) / 1000.0, 3),
    }


def route_geometry(G: nx.MultiDiGraph, route: Route) -> shapely.LineString:
    """The route as one LineString in travel order, in the graph's CRS."""
    parts = [np.asarray(G.edges[e]["geometry"].coords) for e in route.edges]
    coords = np.vstack([parts[0], *(p[1:] for p in parts[1:])])
    return shapely.LineString(coords)


def routes_gdf(G: nx.MultiDiGraph, routes: Sequence[Route]) -> gpd.GeoDataFrame:
    """Routes as a GeoDataFrame (one row per route, its flat metrics as columns)."""
    flat: list[dict[str, Any]] = []
    for r in routes:
        m = r.metrics
        flat.append(
            {
                k: (", ".join(v) if k == "via" else v)
                for k, v in m.items()
                if k not in {"profile", "worst_segments", "worst_segment"}
            }
        )
    geoms = [route_geometry(G, r) for r in routes]
    return gpd.GeoDataFrame(pd.DataFrame(flat), geometry=geoms, crs=G.graph["crs"])
