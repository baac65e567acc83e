"""Incidents onto road edges: nearest edge, distance, offset and chainage, honest about precision.

The search is exact and vectorised. Every edge is exploded into its straight
two-point pieces; a :class:`scipy.spatial.cKDTree` over the pieces' midpoints
gives the ``k`` nearest pieces of each point, and numpy computes the exact
point-to-segment distance and projection for all of them at once. The answer is
certified: any piece not among the candidates is at least ``d_k - h`` away
(``d_k`` the ``k``-th midpoint distance, ``h`` the largest half-length of a
piece), so a point whose best distance is within that bound is done; the few
others are queried again with a larger ``k``. Long pieces are cut for the index
so that ``h`` stays small. No shapely geometry is created per point.

Statuses (see :func:`snap_incidents`):

``snapped``
    an exact event (``precision_m`` at most `exact_m`) within `max_distance_m`
    of a road.
``spread``
    an imprecise event whose uncertainty disc reaches a road (nearest road
    within ``max(max_distance_m, precision_m)``): it keeps the nearest road
    point as an anchor; the risk model spreads its weight along the network over
    a bandwidth of at least ``precision_m``.
``too_far``
    no road within that distance.
"""

from __future__ import annotations

import importlib.util
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import networkx as nx
import numpy as np
import numpy.typing as npt
import pandas as pd
import shapely
from scipy.sparse import coo_matrix, csr_matrix
from scipy.sparse.csgraph import connected_components, dijkstra
from scipy.spatial import cKDTree

from ._errors import InputError
from .compiled import CompiledGraph, compile_graph
from .utils import Progress

SNAPPED = "snapped"
SPREAD = "spread"
TOO_FAR = "too_far"
STATUSES = (SNAPPED, SPREAD, TOO_FAR)
"""The values of ``status`` in :func:`snap_incidents`'s output."""

ON_NETWORK = (SNAPPED, SPREAD)
"""Statuses whose incidents are on the network (they have an edge and an offset)."""

EXACT_M = 2_000.0
"""Default largest ``precision_m`` of an exact event (ACLED ``geo_precision`` 1's radius)."""

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

AUTO_NUMBA_POINTS = 50_000
"""With ``engine="auto"``, queries of at least this many points use numba (if installed):
its compiled search is about 7x the numpy engine's, but loading it costs about 2 s
(and compiling it, once per installation, 10-30 s)."""

_FIRST_K = 8
_CHUNK = 131_072
_PAIRS_PER_CHUNK = 2_000_000  # (point, piece) pairs of length_within at once, about
_MAX_PAIRS = 4_000_000


@dataclass(frozen=True)
class NearestLines:
    """The nearest line of each query point (arrays aligned with the points).

    Attributes
    ----------
    line
        Position of the nearest line in the indexed array; -1 where none is
        within the maximum distance.
    distance
        Distance to it, metres (NaN where none).
    offset
        Distance along the line from its first vertex to the nearest point.
    x, y
        The nearest point on the line.
    """

    line: IntArray
    distance: FloatArray
    offset: FloatArray
    x: FloatArray
    y: FloatArray


class LineIndex:
    """The straight pieces of a set of lines, indexed for exact nearest-line queries.

    Build it once and query it many times (it holds a k-d tree).

    Parameters
    ----------
    lines
        LineStrings in a projected CRS (metres).
    piece_m
        Longest piece in the k-d tree (numpy engine); longer segments are cut
        (for the index only: distances are computed on the original segments).
        Default: twice the median segment length.
    engine
        "numba" (a compiled grid search; numba is a dependency),
        "numpy" (a k-d tree and vectorised numpy), or "auto": numba, when it
        is installed, for queries of :data:`AUTO_NUMBA_POINTS` points or more.
        Both give the same answers.
    cell_m
        Grid cell size of the numba engine. Default: 1.5 median segment
        lengths (larger if the grid would have more than 4 cells per segment).

    Examples
    --------
    >>> import shapely
    >>> index = LineIndex([shapely.LineString([(0, 0), (10, 0), (10, 10)])])
    >>> hit = index.nearest(np.array([12.0]), np.array([4.0]))
    >>> int(hit.line[0]), float(hit.distance[0]), float(hit.offset[0])
    (0, 2.0, 14.0)
    """

    def __init__(
        self,
        lines: Sequence[Any] | npt.NDArray[Any],
        *,
        piece_m: float | None = None,
        engine: str = "auto",
        cell_m: float | None = None,
    ) -> None:
        if engine not in {"auto", "numba", "numpy"}:
            msg = f"`engine` must be 'auto', 'numba' or 'numpy', got {engine!r}."
            raise InputError(msg)

        geoms = np.asarray(lines, dtype=object)
        if geoms.size == 0:
            msg = "`lines` is empty: there is no road to snap onto."
            raise InputError(msg)
        coords, which = shapely.get_coordinates(geoms, return_index=True)
        same = which[:-1] == which[1:]
        self.a: FloatArray = np.ascontiguousarray(coords[:-1][same])
        self.b: FloatArray = np.ascontiguousarray(coords[1:][same])
        self.seg_line: IntArray = which[:-1][same].astype(np.int64)
        if len(self.a) == 0:
            msg = "`lines` have no segment: each needs at least two vertices."
            raise InputError(msg)
        d = self.b - self.a
        self.seg_length: FloatArray = np.sqrt(d[:, 0] * d[:, 0] + d[:, 1] * d[:, 1])
        self.seg_start: FloatArray = _start_measures(self.seg_line, self.seg_length)
        self.n_lines = len(geoms)
        if piece_m is None:
            piece_m = 2.0 * float(np.median(self.seg_length))
        piece_m = max(piece_m, 1e-3)
        parts = np.maximum(1, np.ceil(self.seg_length / piece_m)).astype(np.int64)
        self.piece_seg: IntArray = np.repeat(np.arange(len(self.a), dtype=np.int64), parts)
        j = np.arange(len(self.piece_seg)) - np.repeat(np.cumsum(parts) - parts, parts)
        mid = (j + 0.5) / parts[self.piece_seg]
        mids = self.a[self.piece_seg] + mid[:, None] * d[self.piece_seg]
        self.half: float = float(np.max(self.seg_length / parts)) / 2.0
        self._mids = mids
        self._tree: cKDTree | None = None
        self.n_pieces = len(mids)
        self.engine = _resolve_engine(engine)
        self._cell_m = cell_m
        self.cell_m = 0.0
        self.grid: tuple[Any, ...] | None = None
        if self.engine == "numba":
            self._build_grid()

    def _build_grid(self) -> None:
        from ._snapgrid import build_grid  # noqa: PLC0415 - numba is optional, slow to import

        span = np.ptp(np.r_[self.a, self.b], axis=0)
        area = float(max(span[0], 1.0) * max(span[1], 1.0))
        size = self._cell_m or 1.5 * float(np.median(self.seg_length))
        size = max(size, float(np.sqrt(area / (4.0 * len(self.a) + 1024.0))), 1e-3)
        self.grid = build_grid(self.a, self.b, size)
        self.cell_m = size

    @property
    def tree(self) -> cKDTree:
        """k-d tree over the pieces' midpoints (built on first use)."""
        if self._tree is None:
            self._tree = cKDTree(self._mids)
        return self._tree

    @classmethod
    def from_graph(cls, G: nx.MultiDiGraph) -> tuple[LineIndex, pd.MultiIndex]:
        """Index the forward edges (``reversed`` False) of a graph.

        Returns
        -------
        (index, edges)
            The index, and the ``(u, v, key)`` of each indexed line.
        """
        compiled = compile_graph(G)
        edges = _forward_edges(compiled)
        return cls(compiled.geoms[compiled.forward_edges]), pd.MultiIndex.from_arrays(
            list(edges.uvk.T), names=["u", "v", "key"]
        )

    def nearest(
        self,
        x: npt.ArrayLike,
        y: npt.ArrayLike,
        *,
        max_distance: float = np.inf,
        workers: int = -1,
        progress: Progress | None = None,
    ) -> NearestLines:
        """The nearest line to each point, exactly, with the distance and offset.

        Ties (equal distances) go to the line that comes first.

        Parameters
        ----------
        x, y
            Coordinates in the lines' CRS.
        max_distance
            Points farther than this from every line get ``line = -1``.
        workers
            Threads for the k-d tree queries (-1: all cores).
        progress
            Called as ``progress("snapping", points_done, points)``.
        """
        px = np.asarray(x, dtype=np.float64).ravel()
        py = np.asarray(y, dtype=np.float64).ravel()
        n = len(px)
        seg = np.full(n, -1, dtype=np.int64)
        dist = np.full(n, np.inf)
        frac = np.zeros(n)
        if self.engine == "auto" and n >= AUTO_NUMBA_POINTS and self.grid is None:
            self._build_grid()
        if self.grid is not None:
            from ._snapgrid import nearest_segments  # noqa: PLC0415 - as above

            ptr, cell_seg, x0, y0, nx, ny = self.grid
            # points in spatial order find their cells' segments in cache (4x faster)
            order = _spatial_order(px, py, self.cell_m * 8.0)
            sx, sy = px[order], py[order]
            s_seg, s_dist, s_frac = np.empty(n, np.int64), np.empty(n), np.empty(n)
            step = n if progress is None else 8 * _CHUNK
            for lo in range(0, n, max(step, 1)):
                part = slice(lo, lo + step)
                nearest_segments(
                    sx[part], sy[part], self.a, self.b, self.seg_line, ptr, cell_seg,
                    x0, y0, self.cell_m, nx, ny, float(max_distance),
                    s_seg[part], s_dist[part], s_frac[part],
                )  # fmt: skip
                if progress is not None:
                    progress("snapping", min(lo + step, n), n)
            seg[order], dist[order], frac[order] = s_seg, s_dist, s_frac
            return self._result(seg, dist, frac, max_distance)
        finite = np.isfinite(px) & np.isfinite(py)
        todo = np.flatnonzero(finite)
        if len(todo):
            # queries in spatial order find the tree's nodes in cache
            cell = max(self.half * 16.0, 1.0)
            gx = np.floor((px[todo] - px[todo].min()) / cell).astype(np.int64)
            gy = np.floor((py[todo] - py[todo].min()) / cell).astype(np.int64)
            todo = todo[np.lexsort((gy, gx))]
        for start in range(0, len(todo), _CHUNK):
            chunk = todo[start : start + _CHUNK]
            self._nearest_chunk(
                px, py, chunk, max_distance=max_distance, workers=workers, out=(seg, dist, frac)
            )
            if progress is not None:
                progress("snapping", start + len(chunk), len(todo))
        return self._result(seg, dist, frac, max_distance)

    def _result(
        self, seg: IntArray, dist: FloatArray, frac: FloatArray, max_distance: float
    ) -> NearestLines:
        found = seg >= 0
        found &= dist <= max_distance
        seg_ok = np.where(found, seg, 0)
        a, b = self.a[seg_ok], self.b[seg_ok]
        t = np.where(found, frac, np.nan)
        sx = a[:, 0] + t * (b[:, 0] - a[:, 0])
        sy = a[:, 1] + t * (b[:, 1] - a[:, 1])
        offset = self.seg_start[seg_ok] + t * self.seg_length[seg_ok]
        return NearestLines(
            line=np.where(found, self.seg_line[seg_ok], -1),
            distance=np.where(found, dist, np.nan),
            offset=offset,
            x=sx,
            y=sy,
        )

    def _nearest_chunk(
        self,
        px: FloatArray,
        py: FloatArray,
        todo: IntArray,
        *,
        max_distance: float,
        workers: int,
        out: tuple[IntArray, FloatArray, FloatArray],
    ) -> None:
        """Fill `seg`, `dist`, `frac` for the points `todo`, growing k until certified."""
        seg, dist, frac = out
        k = _FIRST_K
        bound_cap = max_distance + self.half
        while len(todo):
            k = min(k, self.n_pieces)
            step = max(1, _MAX_PAIRS // k)
            left = []
            for s in range(0, len(todo), step):
                part = todo[s : s + step]
                q = np.c_[px[part], py[part]]
                dmid, pid = self.tree.query(q, k=k, distance_upper_bound=bound_cap, workers=workers)
                dmid = dmid.reshape(len(part), k)
                pid = pid.reshape(len(part), k)
                valid = pid < self.n_pieces
                cand = self.piece_seg[np.where(valid, pid, 0)]
                d, r = _point_segment(q[:, 0:1], q[:, 1:2], self.a[cand], self.b[cand])
                d = np.where(valid, d, np.inf)
                best = d.min(axis=1)
                # ties: the lowest line (then segment) wins
                tied = np.where(d == best[:, None], cand, np.iinfo(np.int64).max)
                j = np.argmin(tied, axis=1)
                rows = np.arange(len(part))
                chosen = cand[rows, j]
                take = (best < dist[part]) | ((best == dist[part]) & (chosen < seg[part]))
                seg[part] = np.where(take, chosen, seg[part])
                frac[part] = np.where(take, r[rows, j], frac[part])
                dist[part] = np.minimum(best, dist[part])
                lower = dmid[:, -1] - self.half  # every other piece is at least this far
                done = (dist[part] <= lower) | (lower > max_distance) | ~np.isfinite(dmid[:, -1])
                left.append(part[~done])
            todo = np.concatenate(left) if left else todo[:0]
            if k >= self.n_pieces:
                break
            k *= 8

    def length_within(
        self, x: npt.ArrayLike, y: npt.ArrayLike, radius: npt.ArrayLike
    ) -> FloatArray:
        """Length of line (metres) inside the disc of `radius` around each point.

        Parameters
        ----------
        x, y
            Disc centres in the lines' CRS.
        radius
            Disc radii, metres (a scalar or one per point).

        Examples
        --------
        >>> import shapely
        >>> index = LineIndex([shapely.LineString([(-100, 0), (100, 0)])])
        >>> index.length_within([0.0], [30.0], [50.0]).tolist()
        [80.0]
        """
        px = np.asarray(x, dtype=np.float64).ravel()
        py = np.asarray(y, dtype=np.float64).ravel()
        r = np.broadcast_to(np.asarray(radius, dtype=np.float64), px.shape)
        out = np.zeros(len(px))
        ok = np.flatnonzero(np.isfinite(px) & np.isfinite(py) & (r > 0))
        if len(ok) == 0:
            return out
        if self.grid is not None:
            from ._snapgrid import length_within  # noqa: PLC0415 - numba is slow to import

            within = np.zeros(len(ok))
            length_within(
                np.ascontiguousarray(px[ok]),
                np.ascontiguousarray(py[ok]),
                np.ascontiguousarray(r[ok]),
                self.a,
                self.b,
                self.seg_length,
                self.grid,
                self.cell_m,
                within,
            )
            out[ok] = within
            return out
        # points in chunks of about _PAIRS_PER_CHUNK (point, piece) pairs: a country's
        # imprecise incidents reach millions of pieces, held as Python lists by the tree
        per_point = np.pi * (r[ok] + self.half) ** 2 * self.n_pieces / self._area
        cuts = np.searchsorted(
            np.cumsum(per_point),
            np.arange(1, int(per_point.sum() // _PAIRS_PER_CHUNK) + 1) * float(_PAIRS_PER_CHUNK),
        )
        for part in np.split(ok, np.unique(cuts[(cuts > 0) & (cuts < len(ok))])):
            self._add_within(out, part, px, py, r)
        return out

    @property
    def _area(self) -> float:
        span = np.ptp(np.r_[self.a, self.b], axis=0)
        return float(max(span[0], 1.0) * max(span[1], 1.0))

    def _add_within(
        self, out: FloatArray, ok: IntArray, px: FloatArray, py: FloatArray, r: FloatArray
    ) -> None:
        """Add to ``out[ok]`` the length of line inside the discs of the points `ok`."""
        hits = self.tree.query_ball_point(
            np.c_[px[ok], py[ok]], r[ok] + self.half, return_sorted=True
        )
        counts = np.fromiter((len(h) for h in hits), dtype=np.int64, count=len(ok))
        if counts.sum() == 0:
            return
        owner = np.repeat(ok, counts)
        pieces = np.fromiter(
            itertools.chain.from_iterable(hits), dtype=np.int64, count=int(counts.sum())
        )
        del hits
        # a segment cut into several pieces appears once per point (each point's pieces
        # are sorted, and a segment's pieces are consecutive)
        segs = self.piece_seg[pieces]
        first = np.r_[True, (owner[1:] != owner[:-1]) | (segs[1:] != segs[:-1])]
        owner, segs = owner[first], segs[first]
        a, b = self.a[segs], self.b[segs]
        dx, dy = b[:, 0] - a[:, 0], b[:, 1] - a[:, 1]
        fx, fy = a[:, 0] - px[owner], a[:, 1] - py[owner]
        qa = dx * dx + dy * dy
        qb = 2.0 * (fx * dx + fy * dy)
        qc = fx * fx + fy * fy - r[owner] ** 2
        disc = qb * qb - 4.0 * qa * qc
        good = (disc > 0) & (qa > 0)
        root = np.sqrt(np.where(good, disc, 0.0))
        den = np.where(good, 2.0 * qa, 1.0)
        t0 = np.clip((-qb - root) / den, 0.0, 1.0)
        t1 = np.clip((-qb + root) / den, 0.0, 1.0)
        inside = np.where(good, (t1 - t0) * self.seg_length[segs], 0.0)
        np.add.at(out, owner, inside)


def _spatial_order(x: FloatArray, y: FloatArray, cell: float) -> IntArray:
    """An order of the points that visits them cell by cell (cells of `cell` metres)."""
    ok = np.isfinite(x) & np.isfinite(y)
    if not ok.any():
        return np.arange(len(x))
    gx = np.floor((np.where(ok, x, 0.0) - x[ok].min()) / cell)
    gy = np.floor((np.where(ok, y, 0.0) - y[ok].min()) / cell)
    key = np.clip(gx, 0, 2**31 - 1).astype(np.int64) * 2**31 + np.clip(gy, 0, 2**31 - 1).astype(
        np.int64
    )
    return np.argsort(key, kind="stable")


def _resolve_engine(engine: str) -> str:
    """The engine to use: numpy, numba, or auto (numba if installed, for large queries)."""
    if engine == "numpy":
        return engine
    if importlib.util.find_spec("numba") is None:
        if engine == "numba":
            msg = "`engine='numba'` needs numba: `pip install numba` (or use engine='numpy')."
            raise InputError(msg)
        return "numpy"
    return engine


def _start_measures(seg_line: IntArray, length: FloatArray) -> FloatArray:
    """Distance along its line from the line's start to each segment's start.

    Summed block by block (not as one running total over the network) so that
    offsets keep their precision on large networks.
    """
    n = len(length)
    start = np.zeros(n)
    line_first = np.flatnonzero(np.r_[True, seg_line[1:] != seg_line[:-1]])
    bounds = np.unique(np.r_[line_first[np.searchsorted(line_first, np.arange(0, n, 4096))], n])
    for lo, hi in itertools.pairwise(bounds):
        total = np.cumsum(length[lo:hi])
        firsts = line_first[(line_first >= lo) & (line_first < hi)] - lo
        counts = np.diff(np.r_[firsts, hi - lo])
        before = np.r_[0.0, total][firsts]  # running total where each line starts
        start[lo:hi] = np.r_[0.0, total[:-1]] - np.repeat(before, counts)
    return start


def _point_segment(
    px: FloatArray, py: FloatArray, a: FloatArray, b: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Distance from points to segments and the projection factor in [0, 1].

    Follows GEOS's ``Distance::pointToSegment`` so the distances agree with
    shapely's to the last few bits.
    """
    ax, ay = a[..., 0], a[..., 1]
    bx, by = b[..., 0], b[..., 1]
    dx, dy = bx - ax, by - ay
    len2 = dx * dx + dy * dy
    degenerate = len2 == 0.0
    safe = np.where(degenerate, 1.0, len2)
    r = np.where(degenerate, 0.0, ((px - ax) * dx + (py - ay) * dy) / safe)
    to_a = np.sqrt((px - ax) ** 2 + (py - ay) ** 2)
    to_b = np.sqrt((px - bx) ** 2 + (py - by) ** 2)
    perp = np.abs(((ay - py) * dx - (ax - px) * dy) / safe) * np.sqrt(len2)
    d = np.where(r <= 0.0, to_a, np.where(r >= 1.0, to_b, perp))
    return d, np.clip(r, 0.0, 1.0)


def road_chainage(G: nx.MultiDiGraph) -> pd.DataFrame:
    """Where each forward edge lies along the named road it belongs to.

    Forward edges (``reversed`` False) that share a ``name`` (or, without a
    name, a ``ref``) and join end to end into one unbranched chain form a road;
    its chainage starts at the free end of the chain's first-digitised line.
    An edge without a name is a road of its own. Where same-named edges branch
    or loop, the chainage is undefined (NaN).

    Returns
    -------
    pandas.DataFrame
        Indexed by ``(u, v, key)``: ``road`` (the name, "" when none),
        ``chain_start_m`` (chainage at ``u``) and ``chain_sign`` (+1 when
        chainage grows from ``u`` to ``v``, -1 when it shrinks, NaN when
        undefined), so ``chainage = chain_start_m + chain_sign * offset_m``.
    """
    edges = _forward_edges(compile_graph(G))
    start, sign = edges.chain_start, edges.chain_sign
    index = pd.MultiIndex.from_arrays(list(edges.uvk.T), names=["u", "v", "key"])
    return pd.DataFrame(
        {"road": edges.road, "chain_start_m": start, "chain_sign": sign}, index=index
    )


@dataclass(frozen=True)
class _Edges:
    """The forward edges of a graph as snapping reads them, with their chainage."""

    uvk: IntArray
    road: npt.NDArray[Any]
    length: FloatArray
    road_id: IntArray
    chain_start: FloatArray
    chain_sign: FloatArray


def snap_arrays(compiled: CompiledGraph) -> None:
    """Compute and keep in ``compiled.memo`` what snapping reads of a graph.

    The forward edges and their chainage; a later :func:`snap_incidents` on
    `compiled` (or a copy carrying its ``memo``) starts from them.
    """
    _forward_edges(compiled)


def _forward_edges(compiled: CompiledGraph) -> _Edges:
    """The forward edges' arrays and chainage, computed once per compiled graph."""
    edges = compiled.memo.get("snapping.edges")
    if isinstance(edges, _Edges):
        return edges
    fwd = compiled.forward_edges
    if len(fwd) == 0:
        msg = "The graph has no edges: the road layer gave no usable lines."
        raise InputError(msg)
    uvk = np.column_stack([compiled.u[fwd], compiled.v[fwd], compiled.key[fwd]])
    road = compiled.road_name[fwd]
    length = compiled.length_m[fwd]
    road_id = compiled.road_id[fwd]
    start, sign = _chainage(uvk, road, length, road_id)
    edges = _Edges(uvk, road, length, road_id, start, sign)
    compiled.memo["snapping.edges"] = edges
    return edges


def _chainage(
    uvk: IntArray, road: npt.NDArray[Any], length: FloatArray, road_id: IntArray
) -> tuple[FloatArray, FloatArray]:
    """Chainage at ``u`` and its direction along the edge, per forward edge.

    The edges sharing a name form a graph whose nodes are (name, node) pairs;
    each of its components that is a simple path (edges = nodes − 1, no node
    of degree over 2) is a road, measured from one of its two ends: the end on
    the road's first-digitised edge (lowest ``road_id``), else the lower node
    id. The chainage of a node is its shortest-path distance from that end
    (one Dijkstra for every road at once; along a path, the same sums as
    walking it).
    """
    n = len(length)
    start = np.zeros(n)
    sign = np.ones(n)
    names = pd.Series(road)
    rows = np.flatnonzero(((names != "") & names.duplicated(keep=False)).to_numpy())
    if len(rows) == 0:  # a lone edge is its own road
        return start, sign
    m = len(rows)
    name = pd.factorize(pd.Series(road[rows]))[0]
    ends = pd.MultiIndex.from_arrays([np.r_[name, name], np.r_[uvk[rows, 0], uvk[rows, 1]]])
    code, nodes = pd.factorize(ends)
    a, b = code[:m], code[m:]
    n_nodes = len(nodes)
    node_id = nodes.get_level_values(1).to_numpy()
    _, comp = connected_components(
        coo_matrix((np.ones(m), (a, b)), shape=(n_nodes, n_nodes)), directed=False
    )
    n_comp = int(comp.max()) + 1
    degree = np.bincount(a, minlength=n_nodes) + np.bincount(b, minlength=n_nodes)
    max_degree = np.zeros(n_comp, dtype=np.int64)
    np.maximum.at(max_degree, comp, degree)
    chain = (
        (np.bincount(comp[a], minlength=n_comp) == np.bincount(comp, minlength=n_comp) - 1)
        & (max_degree <= 2)
        & (np.bincount(comp, weights=degree == 1, minlength=n_comp) == 2)
    )
    bad = ~chain[comp[a]]
    start[rows[bad]] = np.nan
    sign[rows[bad]] = np.nan
    # each road's first-digitised edge (lowest road_id), and the end to measure from
    e_comp = comp[a]
    order = np.lexsort((np.arange(m), road_id[rows], e_comp))
    lowest = np.r_[True, e_comp[order][1:] != e_comp[order][:-1]]
    first = np.full(n_comp, -1, dtype=np.int64)
    first[e_comp[order][lowest]] = order[lowest]
    tip = np.flatnonzero((degree == 1) & chain[comp])
    f = first[comp[tip]]
    on_first = (tip == a[f]) | (tip == b[f])
    tip = tip[np.lexsort((node_id[tip], ~on_first, comp[tip]))]
    origin = tip[np.r_[True, comp[tip][1:] != comp[tip][:-1]]]
    ok = ~bad
    graph = csr_matrix((length[rows[ok]], (a[ok], b[ok])), shape=(n_nodes, n_nodes))
    dist = np.asarray(dijkstra(graph, directed=False, indices=origin, min_only=True), dtype=float)
    start[rows[ok]] = dist[a[ok]]
    sign[rows[ok]] = np.where(dist[b[ok]] > dist[a[ok]], 1.0, -1.0)
    return start, sign


def snap_incidents(  # noqa: PLR0915 - one output column after another
    G: nx.MultiDiGraph | CompiledGraph,
    incidents: gpd.GeoDataFrame,
    *,
    max_distance_m: float = 5_000.0,
    exact_m: float = EXACT_M,
    index: LineIndex | None = None,
    progress: Progress | None = None,
) -> gpd.GeoDataFrame:
    """Put each incident on the road network, honestly about its precision.

    Parameters
    ----------
    G
        Graph from :func:`convoyrisk.network.graph_from_gdf`, or its compiled
        form (:func:`convoyrisk.compiled.compile_graph`).
    incidents
        Points with a CRS (e.g. :attr:`IncidentTable.incidents`); an optional
        ``precision_m`` column gives each one's uncertainty radius (0 if absent).
    max_distance_m
        Exact incidents farther than this from every road are ``too_far``;
        imprecise ones are ``too_far`` when no road lies within
        ``max(max_distance_m, precision_m)``.
    exact_m
        Incidents with ``precision_m`` at most this are exact (``snapped``);
        the others are ``spread``.
    index
        A :class:`LineIndex` of the graph's forward edges, to reuse between
        calls (it must come from ``LineIndex.from_graph(G)``).
    progress
        Called as ``progress("snapping", points_done, points)``.

    Returns
    -------
    geopandas.GeoDataFrame
        The incidents, aligned on the input's index, in the graph's CRS, with
        ``status`` (``snapped``, ``spread`` or ``too_far``), ``u``, ``v``,
        ``key`` (the forward edge), ``snap_distance_m``, ``offset_m`` (metres
        from ``u`` along the edge geometry), ``snap_x``, ``snap_y`` (the point
        on the edge), ``road`` and ``chainage_m`` (along the named road, see
        :func:`road_chainage`), and for ``spread`` incidents
        ``road_in_radius_m`` (road length inside the uncertainty disc).
        Rows not on the network have ``u = v = key = -1`` and NaN distances.
    """
    compiled = G if isinstance(G, CompiledGraph) else compile_graph(G)
    if incidents.crs is None:
        msg = "`incidents` has no CRS: set one (e.g. `gdf.set_crs('EPSG:4326')`)."
        raise InputError(msg)
    if not max_distance_m > 0:
        msg = f"`max_distance_m` must be positive, got {max_distance_m}."
        raise InputError(msg)
    points = incidents.to_crs(compiled.crs)
    geoms = points.geometry.to_numpy()
    if len(geoms) and not (shapely.get_type_id(geoms) == 0).all():
        msg = "`incidents` must be points: convert other geometries first (e.g. `.centroid`)."
        raise InputError(msg)
    x, y = shapely.get_x(geoms), shapely.get_y(geoms)
    if "precision_m" in points.columns:
        precision = pd.to_numeric(points["precision_m"], errors="coerce").fillna(0.0).to_numpy()
    else:
        precision = np.zeros(len(points))
    exact = precision <= exact_m
    reach = np.where(exact, max_distance_m, np.maximum(max_distance_m, precision))
    edges = _forward_edges(compiled)
    if index is None:
        index = LineIndex(compiled.geoms[compiled.forward_edges])
    elif index.n_lines != len(edges.uvk):
        msg = "`index` does not match the graph: build it with `LineIndex.from_graph(G)`."
        raise InputError(msg)
    hit = index.nearest(
        x, y, max_distance=float(reach.max()) if len(reach) else 1.0, progress=progress
    )
    on = (hit.line >= 0) & (hit.distance <= reach)
    line = np.where(on, hit.line, 0)
    n = len(points)
    uvk = np.where(on[:, None], edges.uvk[line], -1)
    chain_start, chain_sign = edges.chain_start, edges.chain_sign
    roads = pd.Categorical(edges.road)
    names = list(roads.categories)
    if "" not in names:
        names.append("")
    road_code = np.where(on, roads.codes[line], names.index("")).astype(np.int64)
    road = pd.Categorical.from_codes(road_code, categories=pd.Index(names, dtype=str))
    chainage = chain_start[line] + chain_sign[line] * np.where(on, hit.offset, np.nan)
    code = np.where(on, np.where(exact, 0, 1), 2)
    out = points.copy()
    out["status"] = pd.Categorical.from_codes(
        code.astype(np.int64), categories=pd.Index(list(STATUSES), dtype=str)
    )
    out["u"], out["v"], out["key"] = uvk[:, 0], uvk[:, 1], uvk[:, 2]
    out["snap_distance_m"] = np.where(on, hit.distance, np.nan)
    out["offset_m"] = np.where(on, hit.offset, np.nan)
    out["snap_x"] = np.where(on, hit.x, np.nan)
    out["snap_y"] = np.where(on, hit.y, np.nan)
    out["road"] = road
    out["chainage_m"] = np.where(on, chainage, np.nan)
    in_radius = np.full(n, np.nan)
    spread = np.flatnonzero(code == 1)
    if len(spread):
        in_radius[spread] = index.length_within(x[spread], y[spread], precision[spread])
    out["road_in_radius_m"] = in_radius
    return out


def status_counts(snapped: pd.DataFrame) -> dict[str, int]:
    """Number of incidents per status, every status listed (0 when none)."""
    counts = snapped["status"].value_counts()
    return {s: int(counts.get(s, 0)) for s in STATUSES}
