"""Network kernel density: the road graph as arrays, lixels, kernels, and the sum over sources.

The engine behind :func:`convoyrisk.risk.score_segments` and the dask engine
(:mod:`convoyrisk.engine`), with no knowledge of the risk model's parameters:
it needs the graph's arrays (:class:`Network`), its lixels (:class:`Lixels`),
the kernel sources (:class:`Sources`: where each incident is, its bandwidth
and weight) and a :class:`KernelSpec` (kernel, junction rule, mass
conservation, contributors kept). It returns each lixel's kernel mass, the
number of sources reaching it and its largest contributors (:class:`Density`).

Each source spreads along the network with a compact kernel of bandwidth
``h`` over shortest-path distance (Okabe's equal split at junctions, or
none); lixel masses are exact integrals of the kernel (Xie & Yan 2008;
Okabe, Satoh & Sugihara 2009). Two implementations of one batch step give
the same results: vectorised numpy, and compiled numba (:mod:`convoyrisk._nkde`).
Formulas in ``docs/risk-model.md``.
"""

from __future__ import annotations

import dataclasses
import math
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import networkx as nx
import numpy as np
import numpy.typing as npt
import pandas as pd
import shapely
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

from ._errors import InputError
from .compiled import CompiledGraph, compile_graph
from .utils import Progress

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

KERNELS = ("uniform", "triangular", "epanechnikov", "quartic", "triweight")
"""Kernels available, all with compact support ``[−h, h]``."""

JUNCTIONS = ("equal-split", "none")
"""How density passes a junction: Okabe's discontinuous equal split, or no split."""

KERNEL_ROUGHNESS = {
    "uniform": 1.0 / 2.0,
    "triangular": 2.0 / 3.0,
    "epanechnikov": 3.0 / 5.0,
    "quartic": 5.0 / 7.0,
    "triweight": 350.0 / 429.0,
}
"""``∫k²`` of each unit kernel (roughness): an estimate's effective window is ``h/∫k²``."""

_TIE_M = 1e-6  # distances closer than this are ties
DENSE_BUDGET = 6_000_000  # cells of the dense Dijkstra rows kept at once (48 MB)
_CHUNK_ENTRIES = 100_000  # incident × lixel pairs evaluated at once (cache-sized)
_MAX_WORKERS = 8  # threads of the numba engine by default, at most
_BATCH_ROWS = 512  # end nodes (Dijkstra sources) of one batch at most
MIN_SHARE = 0.005
"""Contributors with a smaller share of a lixel's mass are not kept or named."""


@dataclass(frozen=True)
class KernelSpec:
    """How sources spread: all the density engine needs besides the arrays.

    Attributes
    ----------
    kernel
        One of :data:`KERNELS`.
    junction
        One of :data:`JUNCTIONS`: Okabe's equal split at junctions, or none.
    conserve_mass
        Rescale each source's spread so it sums to its weight (mass lost at
        dead ends and network edges is given back).
    top_contributors
        Largest contributions kept per lixel (0: none).
    """

    kernel: str = "quartic"
    junction: str = "equal-split"
    conserve_mass: bool = True
    top_contributors: int = 3

    def __post_init__(self) -> None:
        """Reject an unknown kernel or junction rule, or a negative count."""
        if self.kernel not in KERNELS:
            msg = f"`kernel` must be one of {', '.join(KERNELS)}; got {self.kernel!r}."
            raise InputError(msg)
        if self.junction not in JUNCTIONS:
            msg = f"`junction` must be one of {', '.join(JUNCTIONS)}; got {self.junction!r}."
            raise InputError(msg)
        if not self.top_contributors >= 0:
            msg = f"`top_contributors` must be zero or more, got {self.top_contributors}."
            raise InputError(msg)


# ----------------------------------------------------------------------------------------
# the network as arrays
# ----------------------------------------------------------------------------------------


@dataclass
class Network:
    """Forward edges, the node graph and adjacency, as arrays (built once per graph)."""

    node_ids: IntArray
    eu: IntArray
    ev: IntArray
    u_ids: IntArray
    v_ids: IntArray
    keys: IntArray
    length: FloatArray  # the edges' `length` (network metres)
    glen: FloatArray  # geometry length (metres along the geometry)
    road: IntArray
    geoms: npt.NDArray[np.object_]
    csr: csr_matrix
    split: FloatArray  # max(degree − 1, 1) per node
    incidence: csr_matrix  # nodes × edges, nonzero where the node is an end of the edge
    xy: FloatArray  # node coordinates (graph CRS)
    stretch: float  # min edge length / straight-line distance of its ends (0: unknown)
    tree: shapely.STRtree | None = field(default=None, repr=False)  # of the nodes, when needed

    @property
    def n_nodes(self) -> int:
        """Number of nodes."""
        return len(self.node_ids)

    def nodes_near(self, nodes: IntArray, distance: float) -> IntArray:
        """Sorted node numbers that may lie within network `distance` of any of `nodes`.

        A path of network length ``d`` spans at most ``d / stretch`` in straight
        line, so the nodes in the bounding box of `nodes` grown by that much hold
        every shortest path up to `distance` (all nodes when the bound is useless).
        """
        if not self.stretch > 0:
            return np.arange(self.n_nodes, dtype=np.int64)
        margin = distance / self.stretch * (1.0 + 1e-9) + 1e-6
        lo = self.xy[nodes].min(axis=0) - margin
        hi = self.xy[nodes].max(axis=0) + margin
        if self.tree is None:
            self.tree = shapely.STRtree(np.asarray(shapely.points(self.xy), dtype=object))
        hits = self.tree.query(shapely.box(lo[0], lo[1], hi[0], hi[1]))
        return np.sort(np.asarray(hits, dtype=np.int64))


def network_arrays(G: nx.MultiDiGraph) -> Network:
    """The graph's forward edges, node graph and adjacency as arrays.

    Built from the graph's compiled form (:func:`convoyrisk.compiled.compile_graph`)
    and kept with it: a second call on the same, unchanged graph costs nothing.
    """
    compiled = compile_graph(G)
    net = compiled.memo.get("density.network")
    if not isinstance(net, Network):
        net = network_of(compiled)
        compiled.memo["density.network"] = net
    return net


def network_of(compiled: CompiledGraph) -> Network:
    """The :class:`Network` of a compiled graph: its forward edges and their node graph."""
    fwd = compiled.forward_edges
    if len(fwd) == 0:
        msg = "The graph has no edges: the road layer gave no usable lines."
        raise InputError(msg)
    geoms = compiled.geoms[fwd]
    eu, ev = compiled.eu[fwd], compiled.ev[fwd]
    glen = np.asarray(shapely.length(geoms), dtype=float)
    length = np.maximum(compiled.length_m[fwd], 1e-6)
    n = compiled.n_nodes

    # node graph for Dijkstra: one undirected entry per node pair, the shortest edge
    a, b = np.minimum(eu, ev), np.maximum(eu, ev)
    proper = a != b
    order = np.lexsort((length[proper], b[proper], a[proper]))
    pa, pb, pl = a[proper][order], b[proper][order], length[proper][order]
    first = np.r_[True, (pa[1:] != pa[:-1]) | (pb[1:] != pb[:-1])] if len(pa) else np.array([])
    first = first.astype(bool)
    csr = csr_matrix((pl[first], (pa[first], pb[first])), shape=(n, n))

    degree = np.bincount(eu, minlength=n) + np.bincount(ev, minlength=n)
    split = np.maximum(degree - 1, 1).astype(float)

    e_idx = np.arange(len(fwd), dtype=np.int64)
    incidence = csr_matrix(
        (np.ones(2 * len(fwd)), (np.r_[eu, ev], np.r_[e_idx, e_idx])), shape=(n, len(fwd))
    )

    xy = compiled.node_xy
    chord = np.hypot(*(xy[eu] - xy[ev]).T)
    moved = chord > 0
    stretch = float(np.min(length[moved] / chord[moved])) if moved.any() else 0.0
    return Network(
        node_ids=compiled.node_ids,
        eu=eu,
        ev=ev,
        u_ids=compiled.u[fwd],
        v_ids=compiled.v[fwd],
        keys=compiled.key[fwd],
        length=length,
        glen=glen,
        road=compiled.road_id[fwd],
        geoms=geoms,
        csr=csr,
        split=split,
        incidence=incidence,
        xy=xy,
        stretch=stretch if math.isfinite(stretch) else 0.0,
    )


def _expand(starts: IntArray, counts: IntArray) -> IntArray:
    """Concatenated ``arange(s, s + c)`` for each start and count, without a Python loop."""
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.cumsum(counts) - counts
    return np.repeat(np.asarray(starts, dtype=np.int64) - offsets, counts) + np.arange(total)


# ----------------------------------------------------------------------------------------
# lixels
# ----------------------------------------------------------------------------------------


@dataclass
class Lixels:
    """Segments (lixels) of the forward edges: edge, start and end in network metres."""

    edge: IntArray
    start: FloatArray  # network metres from the edge's u
    end: FloatArray
    ptr: IntArray  # lixels of edge e are ptr[e]:ptr[e+1]


def cut_lixels(net: Network, segment_length_m: float) -> tuple[gpd.GeoDataFrame, Lixels]:
    """Segments of at most `segment_length_m` of each forward edge, as a table and as lixels.

    Returns
    -------
    tuple
        The segments (as :func:`split_segments`, without a CRS) and their
        :class:`Lixels`, whose ``start``/``end`` are in the edges' network
        metres (``length``), while the table's ``start_m``/``end_m`` measure
        along the geometry.
    """
    n_edges = len(net.eu)
    glen = net.glen
    count = np.maximum(np.ceil(glen / segment_length_m - 1e-9), 1).astype(np.int64)
    edge_of = np.repeat(np.arange(n_edges, dtype=np.int64), count)
    first = np.cumsum(count) - count
    j = np.arange(len(edge_of)) - np.repeat(first, count)
    step = glen[edge_of] / count[edge_of]
    start = j * step
    end = np.where(j == count[edge_of] - 1, glen[edge_of], (j + 1) * step)
    geoms = _pieces(net.geoms, glen=glen, edge_of=edge_of, start=start, end=end, count=count)
    # start_m/end_m measure along the geometry (as snapping's offset_m); length_m is the
    # segment's share of the edge's `length` (geodesic metres), so segments sum to it
    scale = net.length[edge_of] / np.where(glen[edge_of] > 0, glen[edge_of], 1.0)
    segs = gpd.GeoDataFrame(
        {
            "segment_id": np.arange(len(edge_of), dtype=np.int64),
            "u": net.u_ids[edge_of],
            "v": net.v_ids[edge_of],
            "key": net.keys[edge_of],
            "road_id": net.road[edge_of],
            "start_m": start,
            "end_m": end,
            "length_m": (end - start) * scale,
            "edge_length_m": glen[edge_of],
        },
        geometry=geoms,
        crs=None,
    )
    lix = Lixels(
        edge=edge_of,
        start=start * scale,
        end=end * scale,
        ptr=np.r_[0, np.cumsum(count)].astype(np.int64),
    )
    return segs, lix


def _pieces(
    lines: npt.NDArray[np.object_],
    *,
    glen: FloatArray,
    edge_of: IntArray,
    start: FloatArray,
    end: FloatArray,
    count: IntArray,
) -> npt.NDArray[np.object_]:
    """Sub-lines ``[start, end]`` of ``lines[edge_of]``, built in bulk from coordinates."""
    if (count == 1).all():
        return lines.copy()
    coords, line_of = shapely.get_coordinates(lines, return_index=True)
    step = np.r_[0.0, np.hypot(*np.diff(coords, axis=0).T)]
    step[np.r_[True, line_of[1:] != line_of[:-1]]] = 0.0
    measure = np.cumsum(step)
    base = measure[np.searchsorted(line_of, np.arange(len(lines)))]
    measure -= np.repeat(base, np.bincount(line_of, minlength=len(lines)))
    # one increasing key over all lines: each line's measures, shifted past the previous lines
    shift = np.r_[0.0, np.cumsum(glen + 1.0)[:-1]]
    key = measure + shift[line_of]
    lo = np.searchsorted(key, start + shift[edge_of] + _TIE_M, side="right")
    hi = np.searchsorted(key, end + shift[edge_of] - _TIE_M, side="left")
    inner = np.maximum(hi - lo, 0)
    a = shapely.get_coordinates(shapely.line_interpolate_point(lines[edge_of], start))
    b = shapely.get_coordinates(shapely.line_interpolate_point(lines[edge_of], end))
    n_pts = inner + 2
    first = np.cumsum(n_pts) - n_pts
    out = np.empty((int(n_pts.sum()), 2))
    out[first] = a
    out[first + n_pts - 1] = b
    mid_pos = _expand(first + 1, inner)
    out[mid_pos] = coords[_expand(lo, inner)]
    piece = np.repeat(np.arange(len(edge_of)), n_pts)
    return np.asarray(shapely.linestrings(out, indices=piece), dtype=object)


def split_segments(G: nx.MultiDiGraph, segment_length_m: float) -> gpd.GeoDataFrame:
    """Cut each road (forward edge) into equal segments of at most `segment_length_m`.

    Returns
    -------
    geopandas.GeoDataFrame
        ``segment_id``, ``u``, ``v``, ``key``, ``road_id``, ``start_m``,
        ``end_m``, ``length_m``, ``edge_length_m`` and the segment geometry,
        in the graph's CRS.
    """
    if not segment_length_m > 0:
        msg = f"`segment_length_m` must be positive, got {segment_length_m}."
        raise InputError(msg)
    segs, _ = cut_lixels(network_arrays(G), segment_length_m)
    return segs.set_crs(G.graph["crs"])


# ----------------------------------------------------------------------------------------
# kernels
# ----------------------------------------------------------------------------------------


def _unit_cdf(kernel: str, x: FloatArray) -> FloatArray:
    """``∫₀^x k(z) dz`` of the unit kernel on ``[−1, 1]``, for ``0 ≤ x ≤ 1`` (½ at 1)."""
    x2 = x * x
    if kernel == "uniform":
        return x / 2.0
    if kernel == "triangular":
        return x - x2 / 2.0
    if kernel == "epanechnikov":
        return 0.75 * x * (1.0 - x2 / 3.0)
    if kernel == "quartic":
        return 15.0 / 16.0 * x * (1.0 - x2 * (2.0 / 3.0 - x2 / 5.0))
    return 35.0 / 32.0 * x * (1.0 - x2 * (1.0 - x2 * (3.0 / 5.0 - x2 / 7.0)))  # triweight


def kernel_density(d: npt.ArrayLike, h: npt.ArrayLike, kernel: str = "quartic") -> FloatArray:
    """The kernel ``k(d/h)/h`` at distances `d` (zero beyond the bandwidth `h`).

    Examples
    --------
    >>> float(kernel_density(np.array([0.0]), 1.0)[0])
    0.9375
    >>> float(kernel_density(np.array([0.5]), 1.0, "uniform")[0])
    0.5
    """
    u = np.abs(np.asarray(d, dtype=float)) / np.asarray(h, dtype=float)
    inside = u < 1.0
    u = np.where(inside, u, 1.0)
    profile = {
        "uniform": 0.5 + 0.0 * u,
        "triangular": 1.0 - u,
        "epanechnikov": 0.75 * (1.0 - u**2),
        "quartic": 15.0 / 16.0 * (1.0 - u**2) ** 2,
        "triweight": 35.0 / 32.0 * (1.0 - u**2) ** 3,
    }[kernel]
    return np.asarray(np.where(inside, profile, 0.0) / np.asarray(h, dtype=float), dtype=float)


def quartic_kernel(d: npt.ArrayLike, h: npt.ArrayLike) -> FloatArray:
    """Quartic (biweight) kernel ``15/16·(1−(d/h)²)²/h`` for ``|d| < h``, else 0.

    Examples
    --------
    >>> float(quartic_kernel(np.array([0.0]), 1.0)[0])
    0.9375
    """
    return kernel_density(d, h, "quartic")


def kernel_cdf(x: npt.ArrayLike, h: npt.ArrayLike, kernel: str = "quartic") -> FloatArray:
    """``∫₀^x K(t) dt`` for the kernel of bandwidth `h`; odd in `x`, ±½ beyond ±h.

    Examples
    --------
    >>> kernel_cdf(np.array([-2.0, 0.0, 1.0, 5.0]), 1.0, "uniform").tolist()
    [-0.5, 0.0, 0.5, 0.5]
    """
    x = np.asarray(x, dtype=float)
    u = np.minimum(np.abs(x) / np.asarray(h, dtype=float), 1.0)
    return np.asarray(np.sign(x) * _unit_cdf(kernel, u), dtype=float)


def _one_sided(
    kernel: str, d: FloatArray, a: FloatArray, b: FloatArray, h: FloatArray
) -> FloatArray:
    """``∫_a^b K(d + t) dt`` for ``d ≥ 0`` (``inf`` gives 0), ``0 ≤ a ≤ b``."""
    hi = _unit_cdf(kernel, np.minimum((d + b) / h, 1.0))
    lo = _unit_cdf(kernel, np.minimum((d + a) / h, 1.0))
    return hi - lo


# ----------------------------------------------------------------------------------------
# network kernel density
# ----------------------------------------------------------------------------------------


@dataclass
class Sources:
    """Kernel sources: incident ``owner`` on ``edge`` at ``offset`` (network m), two kernels."""

    owner: IntArray
    edge: IntArray
    offset: FloatArray
    h1: FloatArray
    w1: FloatArray
    h2: FloatArray
    w2: FloatArray

    @property
    def reach(self) -> FloatArray:
        """Largest distance each source's kernels reach, network metres."""
        return np.where(self.w2 > 0, np.maximum(self.h1, self.h2), self.h1)

    def take(self, ids: IntArray) -> Sources:
        """The sources `ids`, in that order."""
        return Sources(**{f.name: getattr(self, f.name)[ids] for f in dataclasses.fields(self)})


@dataclass
class Density:
    """Summed kernel mass per lixel, sources reaching it, and the largest contributions."""

    mass: FloatArray
    count: IntArray
    top_id: IntArray
    top_val: FloatArray
    raw: FloatArray  # each source's spread before rescaling (1 = nothing lost), first kernel


class TopK:
    """The `k` largest contributions per lixel, merged chunk by chunk."""

    def __init__(self, n: int, k: int) -> None:
        self.k = k
        self.val = np.zeros((n, max(k, 1)))
        self.idx = np.full((n, max(k, 1)), -1, dtype=np.int64)

    def add(self, lix: IntArray, owner: IntArray, val: FloatArray, floor: FloatArray) -> None:
        """Merge contributions `val` of `owner` to `lix`; those below `floor[lix]` are skipped."""
        if self.k == 0 or len(lix) == 0:
            return
        keep = (val > self.val[lix, -1]) & (val >= floor[lix])
        lix, owner, val = lix[keep], owner[keep], val[keep]
        if len(lix) == 0:
            return
        seg = np.unique(lix)
        old_v = self.val[seg].ravel()
        old_i = self.idx[seg].ravel()
        old_s = np.repeat(seg, self.k)
        has = old_i >= 0
        s = np.r_[lix, old_s[has]]
        v = np.r_[val, old_v[has]]
        i = np.r_[owner, old_i[has]]
        order = np.lexsort((i, -v, s))
        s, v, i = s[order], v[order], i[order]
        start = np.r_[True, s[1:] != s[:-1]]
        first = np.maximum.accumulate(np.where(start, np.arange(len(s)), 0))
        rank = np.arange(len(s)) - first
        top = rank < self.k
        self.val[seg] = 0.0
        self.idx[seg] = -1
        self.val[s[top], rank[top]] = v[top]
        self.idx[s[top], rank[top]] = i[top]


AUTO_NUMBA_SOURCES = 1_000
"""With ``engine="auto"``, scoring this many kernel sources or more uses numba (below it,
numpy is as fast and skips loading and compiling numba: a few seconds on first use)."""


def density_engine(engine: str = "auto", n_sources: int = AUTO_NUMBA_SOURCES) -> str:
    """The kernel density engine to use for `n_sources`: "numba" (compiled) or "numpy".

    ``"auto"`` picks numba for :data:`AUTO_NUMBA_SOURCES` sources or more, when
    it can be imported (a dependency). Both give the same densities (to
    rounding) and the same named contributors.
    """
    if engine not in {"auto", "numba", "numpy"}:
        msg = f"`engine` must be 'auto', 'numba' or 'numpy', got {engine!r}."
        raise InputError(msg)
    if engine == "numpy" or (engine == "auto" and n_sources < AUTO_NUMBA_SOURCES):
        return "numpy"
    try:
        import numba  # noqa: F401, PLC0415 - optional, slow to import
    except ImportError:
        if engine == "numba":
            msg = "The numba engine needs numba: pip install numba."
            raise InputError(msg) from None
        return "numpy"
    return "numba"


def _morton(xy: FloatArray, bits: int = 16) -> IntArray:
    """Z-order (Morton) keys of points on a ``2^bits`` grid over their bounding box."""
    lo = xy.min(axis=0)
    span = max(float((xy.max(axis=0) - lo).max()), 1e-12)
    top = float(2**bits - 1)
    cells = np.clip((xy - lo) / span * top, 0.0, top).astype(np.uint64)

    def spread(v: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
        # a zero bit between each two bits of a 16-bit value
        v = (v | (v << np.uint64(8))) & np.uint64(0x00FF00FF)
        v = (v | (v << np.uint64(4))) & np.uint64(0x0F0F0F0F)
        v = (v | (v << np.uint64(2))) & np.uint64(0x33333333)
        return (v | (v << np.uint64(1))) & np.uint64(0x55555555)

    return (spread(cells[:, 0]) | (spread(cells[:, 1]) << np.uint64(1))).astype(np.int64)


def source_order(net: Network, src: Sources) -> tuple[IntArray, IntArray]:
    """Sources by reach class, then along a Z-order curve of their edges; where each edge starts.

    Neighbouring source edges then fall in the same batch, whose Dijkstra
    runs on a small part of the network and shares most end nodes.
    """
    bucket = np.floor(np.log2(src.reach) * 4.0).astype(np.int64)
    key = _morton((net.xy[net.eu] + net.xy[net.ev]) / 2.0)[src.edge]
    order = np.lexsort((src.edge, key, bucket))
    b, e = bucket[order], src.edge[order]
    new_group = np.r_[True, (b[1:] != b[:-1]) | (e[1:] != e[:-1])]
    return order, np.flatnonzero(new_group)


def network_density(
    net: Network,
    lix: Lixels,
    src: Sources,
    spec: KernelSpec,
    *,
    engine: str = "auto",
    workers: int | None = None,
    progress: Progress | None = None,
) -> Density:
    """Mass per lixel from every source, with counts and top contributors.

    With the numba engine, `workers` threads (default: one per core, at most
    ``_MAX_WORKERS``) share the batches, each with its own sums; the sums are
    added in a fixed order, so results do not depend on thread timing.
    """
    n_lix = len(lix.edge)
    k = spec.top_contributors
    if len(src.edge) == 0:
        top = TopK(n_lix, k)
        return Density(
            np.zeros(n_lix), np.zeros(n_lix, dtype=np.int64), top.idx[:, :k], top.val, np.ones(0)
        )
    compiled = density_engine(engine, len(src.edge)) == "numba"
    order, g_start = source_order(net, src)
    g_end = np.r_[g_start[1:], len(order)]
    group_edge = src.edge[order[g_start]]
    group_reach = np.maximum.reduceat(src.reach[order], g_start)
    group_bucket = np.floor(np.log2(src.reach[order[g_start]]) * 4.0).astype(np.int64)
    batches = list(_batches(net, group_edge, group_bucket, group_reach))
    n_threads = min(_workers(workers), len(batches)) if compiled else 1
    raw_all = np.ones(len(src.edge))
    sums = [
        (np.zeros(n_lix), np.zeros(n_lix, dtype=np.int64), TopK(n_lix, k), raw_all)
        for _ in range(n_threads)
    ]
    lock = threading.Lock()
    done = [0]

    def run(thread: int) -> None:
        scratch = _Scratch(net, compiled=compiled)
        for g_lo, g_hi, sub in batches[thread::n_threads]:
            sizes = g_end[g_lo:g_hi] - g_start[g_lo:g_hi]
            _batch(
                net,
                lix,
                src,
                spec,
                members=order[g_start[g_lo] : g_end[g_hi - 1]],
                group_of=np.repeat(np.arange(g_hi - g_lo), sizes),
                group_edge=group_edge[g_lo:g_hi],
                sub=sub,
                acc=sums[thread],
                scratch=scratch,
            )
            if progress is not None:
                with lock:
                    done[0] += int(sizes.sum())
                    progress("scoring", done[0], len(order))

    if n_threads == 1:
        run(0)
    else:
        with ThreadPoolExecutor(n_threads, thread_name_prefix="convoyrisk-nkde") as pool:
            list(pool.map(run, range(n_threads)))
    mass = np.sum([m for m, *_ in sums], axis=0)
    count = np.sum([c for _, c, *_ in sums], axis=0)
    top_id, top_val = merge_top([t.idx for *_, t, _ in sums], [t.val for *_, t, _ in sums], k)
    return Density(mass, count, top_id, top_val, raw_all)


def _workers(workers: int | None) -> int:
    if workers is None:
        return max(1, min(os.cpu_count() or 1, _MAX_WORKERS))
    if not workers >= 1:
        msg = f"`workers` must be 1 or more, got {workers}."
        raise InputError(msg)
    return int(workers)


def merge_top(ids: list[IntArray], vals: list[FloatArray], k: int) -> tuple[IntArray, FloatArray]:
    """The `k` largest contributions per lixel over several partial sums (ties: lowest incident)."""
    n = ids[0].shape[0]
    if k == 0:
        return np.full((n, 0), -1, dtype=np.int64), np.zeros((n, 1))
    if len(ids) == 1:
        return ids[0][:, :k], vals[0]
    i = np.concatenate([a[:, :k] for a in ids], axis=1)
    v = np.concatenate([a[:, :k] for a in vals], axis=1)
    v = np.where(i >= 0, v, -np.inf)
    big = np.iinfo(np.int64).max
    order = np.lexsort((np.where(i >= 0, i, big), -v), axis=-1)[:, :k]
    top_i = np.take_along_axis(i, order, axis=1)
    top_v = np.take_along_axis(v, order, axis=1)
    top_v = np.where(top_i >= 0, top_v, 0.0)
    return top_i, top_v


def _batches(
    net: Network, group_edge: IntArray, group_bucket: IntArray, group_reach: FloatArray
) -> Iterator[tuple[int, int, IntArray]]:
    """Runs of groups that share one Dijkstra, with the nodes their shortest paths stay in.

    A run has one reach class, at most ``_BATCH_ROWS`` end nodes, and spans
    at most its reach in a straight line (so its subnetwork stays small); it is
    halved until its dense rows (end nodes × subnetwork nodes) fit
    ``DENSE_BUDGET``.
    """
    eu, ev = net.eu[group_edge], net.ev[group_edge]
    span = group_reach / net.stretch if net.stretch > 0 else np.full(len(group_edge), np.inf)
    x_lo = np.minimum(net.xy[eu], net.xy[ev])
    x_hi = np.maximum(net.xy[eu], net.xy[ev])
    runs: list[tuple[int, int]] = []
    lo = 0
    nodes: set[int] = set()
    box_lo, box_hi = x_lo[0].copy(), x_hi[0].copy()
    eu_l, ev_l, bucket_l = eu.tolist(), ev.tolist(), group_bucket.tolist()
    for g in range(len(group_edge)):
        ends = {eu_l[g], ev_l[g]}
        new_lo, new_hi = np.minimum(box_lo, x_lo[g]), np.maximum(box_hi, x_hi[g])
        if g > lo and (
            bucket_l[g] != bucket_l[lo]
            or len(nodes | ends) > _BATCH_ROWS
            or float((new_hi - new_lo).max()) > span[lo]
        ):
            runs.append((lo, g))
            lo, nodes = g, set()
            new_lo, new_hi = x_lo[g].copy(), x_hi[g].copy()
        nodes |= ends
        box_lo, box_hi = new_lo, new_hi
    runs.append((lo, len(group_edge)))
    for run in runs:
        stack = [run]
        while stack:
            a, b = stack.pop()
            ends_ab = np.unique(np.r_[eu[a:b], ev[a:b]])
            sub = net.nodes_near(ends_ab, float(group_reach[a:b].max()))
            if len(ends_ab) * len(sub) > DENSE_BUDGET and b - a > 1:
                mid = (a + b) // 2
                stack += [(mid, b), (a, mid)]
                continue
            yield a, b, sub


def reachable_part(
    net: Network, lix: Lixels, src: Sources
) -> tuple[Network, Lixels, Sources, IntArray]:
    """The part of the network that the kernels of `src` can reach, to score them on alone.

    The nodes are those of every batch's subnetwork (see :func:`_batches`), the
    edges every edge with an end among them. Scoring `src` on the part gives
    what it gives on the whole network: each batch finds the same nodes in its
    box, and a node's equal-split factor is its degree in the whole network.

    Returns
    -------
    tuple
        The part, its lixels, `src` on it, and each of its lixels' number in `lix`.
    """
    order, g_start = source_order(net, src)
    group_edge = src.edge[order[g_start]]
    group_reach = np.maximum.reduceat(src.reach[order], g_start)
    group_bucket = np.floor(np.log2(src.reach[order[g_start]]) * 4.0).astype(np.int64)
    inside = np.zeros(net.n_nodes, dtype=bool)
    for _, _, sub in _batches(net, group_edge, group_bucket, group_reach):
        inside[sub] = True
    edges = np.flatnonzero(inside[net.eu] | inside[net.ev])
    nodes = np.unique(np.r_[net.eu[edges], net.ev[edges]])
    new_node = np.full(net.n_nodes, -1, dtype=np.int64)
    new_node[nodes] = np.arange(len(nodes))
    eu, ev = new_node[net.eu[edges]], new_node[net.ev[edges]]
    coo = net.csr[nodes][:, nodes].tocoo()
    e_idx = np.arange(len(edges), dtype=np.int64)
    part = Network(
        node_ids=net.node_ids[nodes],
        eu=eu,
        ev=ev,
        u_ids=net.u_ids[edges],
        v_ids=net.v_ids[edges],
        keys=net.keys[edges],
        length=net.length[edges],
        glen=net.glen[edges],
        road=net.road[edges],
        geoms=net.geoms[edges] if len(net.geoms) else net.geoms,
        csr=csr_matrix((coo.data, (coo.row, coo.col)), shape=(len(nodes), len(nodes))),
        split=net.split[nodes],  # degrees in the whole network
        incidence=csr_matrix(
            (np.ones(2 * len(edges)), (np.r_[eu, ev], np.r_[e_idx, e_idx])),
            shape=(len(nodes), len(edges)),
        ),
        xy=net.xy[nodes],
        stretch=net.stretch,
    )
    count = lix.ptr[edges + 1] - lix.ptr[edges]
    lix_of = _expand(lix.ptr[edges], count)
    part_lix = Lixels(
        edge=np.repeat(e_idx, count),
        start=lix.start[lix_of],
        end=lix.end[lix_of],
        ptr=np.r_[0, np.cumsum(count)].astype(np.int64),
    )
    new_edge = np.full(len(net.eu), -1, dtype=np.int64)
    new_edge[edges] = e_idx
    part_src = dataclasses.replace(src, edge=new_edge[src.edge])
    return part, part_lix, part_src, lix_of


class _Scratch:
    """Arrays reused by every batch of one scoring run."""

    def __init__(self, net: Network, *, compiled: bool) -> None:
        self.compiled = compiled
        self.local = np.full(net.n_nodes, -1, dtype=np.int64)  # node → subnetwork column
        # numba engine: split products (zero outside a batch), and per edge the last
        # group that listed it (groups numbered across batches)
        self.prod = np.zeros(0)
        self.stamp = np.full(len(net.eu) if compiled else 0, -1, dtype=np.int64)
        self.groups_done = 0

    def products(self, rows: int, cols: int) -> FloatArray:
        """A zeroed ``rows × cols`` view of the split-product scratch."""
        if self.prod.size < rows * cols:
            self.prod = np.zeros(max(rows * cols, min(DENSE_BUDGET, 4 * rows * cols)))
        return self.prod[: rows * cols].reshape(rows, cols)


def _subnetwork(net: Network, sub: IntArray, local: IntArray) -> csr_matrix:
    """The node graph restricted to `sub` (`local` maps node numbers to its columns)."""
    if len(sub) == net.n_nodes:
        return net.csr
    rows = net.csr[sub].tocoo()
    col = local[rows.col]
    keep = col >= 0
    return csr_matrix((rows.data[keep], (rows.row[keep], col[keep])), shape=(len(sub), len(sub)))


def _batch(
    net: Network,
    lix: Lixels,
    src: Sources,
    spec: KernelSpec,
    *,
    members: IntArray,
    group_of: IntArray,
    group_edge: IntArray,
    sub: IntArray,
    acc: tuple[FloatArray, IntArray, TopK, FloatArray],
    scratch: _Scratch,
) -> None:
    """Dijkstra from the ends of a batch of source edges, then every source's lixel masses."""
    local = scratch.local
    local[sub] = np.arange(len(sub))
    try:
        ends = np.unique(np.r_[net.eu[group_edge], net.ev[group_edge]])
        limit = float(src.reach[members].max())
        graph = _subnetwork(net, sub, local)
        if spec.junction == "equal-split":
            dist, pred = dijkstra(
                graph, directed=False, indices=local[ends], limit=limit, return_predecessors=True
            )
            pred = np.atleast_2d(pred)
        else:
            dist, pred = dijkstra(graph, directed=False, indices=local[ends], limit=limit), None
        rows = (np.atleast_2d(dist), pred, ends, sub)
        # two implementations of the same step, same arguments, same results
        evaluate = _batch_compiled if scratch.compiled else _batch_numpy
        evaluate(
            net,
            lix,
            src,
            spec,
            rows=rows,
            members=members,
            group_of=group_of,
            group_edge=group_edge,
            acc=acc,
            scratch=scratch,
        )
    finally:
        local[sub] = -1


_Rows = tuple[FloatArray, npt.NDArray[np.int32] | None, IntArray, IntArray]
"""A batch's Dijkstra: distances and predecessors (rows: end nodes, columns: the
subnetwork), the end nodes and the subnetwork's nodes."""


def _batch_compiled(
    net: Network,
    lix: Lixels,
    src: Sources,
    spec: KernelSpec,
    *,
    rows: _Rows,
    members: IntArray,
    group_of: IntArray,
    group_edge: IntArray,
    acc: tuple[FloatArray, IntArray, TopK, FloatArray],
    scratch: _Scratch,
) -> None:
    """The numba path of :func:`_batch`: the same formulas in one compiled pass (``_nkde``)."""
    from . import _nkde  # noqa: PLC0415 - numba is optional, slow to import

    dist, pred, ends, sub = rows
    mass, count, top, raw_all = acc
    rr, nn = np.nonzero(np.isfinite(dist))
    row_ptr = np.searchsorted(rr, np.arange(len(ends) + 1)).astype(np.int64)
    row_node = nn.astype(np.int64)
    prod = scratch.products(*dist.shape)
    if pred is not None:
        _nkde.split_products(pred, row_ptr, row_node, net.split[sub], prod)
    n_groups = len(group_edge)
    k = spec.top_contributors
    _nkde.batch_density(
        (dist, prod, row_ptr, row_node, sub, scratch.local),
        (net.incidence.indptr, net.incidence.indices, net.eu, net.ev, net.length),
        (lix.ptr, lix.start, lix.end),
        (
            group_edge,
            np.searchsorted(ends, net.eu[group_edge]),
            np.searchsorted(ends, net.ev[group_edge]),
            np.r_[0, np.cumsum(np.bincount(group_of, minlength=n_groups))],
            members,
        ),
        (src.offset, src.h1, src.w1, src.h2, src.w2, src.owner),
        (_nkde.KERNEL_CODES[spec.kernel], pred is not None, spec.conserve_mass, MIN_SHARE),
        (mass, count, top.val[:, :k], top.idx[:, :k], raw_all),
        scratch.stamp,
        scratch.groups_done,
    )
    scratch.groups_done += n_groups
    if pred is not None:
        prod[rr, nn] = 0.0


def _batch_numpy(  # noqa: PLR0915 - one pass of the pipeline, clearer in one place
    net: Network,
    lix: Lixels,
    src: Sources,
    spec: KernelSpec,
    *,
    rows: _Rows,
    members: IntArray,
    group_of: IntArray,
    group_edge: IntArray,
    acc: tuple[FloatArray, IntArray, TopK, FloatArray],
    scratch: _Scratch,
) -> None:
    """The numpy path of :func:`_batch`, vectorised over pairs of sources and lixels."""
    dist, pred, ends, sub = rows
    n, m = net.n_nodes, len(sub)
    local = scratch.local
    flat = dist.ravel()
    rr, nn = np.nonzero(np.isfinite(dist))
    pflat = np.ones(0)
    if pred is not None:
        # product of (degree − 1) along each shortest path, by pointer jumping (Wyllie)
        parent = pred[rr, nn].astype(np.int64)
        has = parent >= 0
        keys = rr.astype(np.int64) * m + nn
        ptr = np.full(len(rr), -1, dtype=np.int64)
        ptr[has] = np.searchsorted(keys, rr[has].astype(np.int64) * m + parent[has])
        prod = net.split[sub[nn]]
        live = np.flatnonzero(ptr >= 0)
        while len(live):
            prod[live] = prod[live] * prod[ptr[live]]
            ptr[live] = ptr[ptr[live]]
            live = live[ptr[live] >= 0]
        pflat = np.ones(dist.size)
        pflat[keys] = prod

    def at(values: FloatArray, row: IntArray, node: IntArray, outside: float) -> FloatArray:
        col = local[node]
        inside = col >= 0
        out = np.full(len(node), outside)
        out[inside] = values[row[inside] * m + col[inside]]
        return out

    def p_at(row: IntArray, node: IntArray, d: FloatArray) -> FloatArray:
        if pred is None:
            return np.ones(len(node))
        return np.where(np.isfinite(d), at(pflat, row, node, 1.0), 1.0)

    ra = np.searchsorted(ends, net.eu[group_edge])
    rb = np.searchsorted(ends, net.ev[group_edge])
    # edges with an end reached from either end of each source edge, once each (sparse
    # products in C: reached nodes per source edge, times the node-edge incidence)
    n_groups = len(group_edge)
    reached = csr_matrix((np.ones(len(rr)), (rr, sub[nn])), shape=(len(ends), n))
    pick = csr_matrix(
        (np.ones(2 * n_groups), (np.r_[np.arange(n_groups), np.arange(n_groups)], np.r_[ra, rb])),
        shape=(n_groups, len(ends)),
    )
    pairs = ((pick @ reached) @ net.incidence).tocsr()
    jk = np.repeat(np.arange(n_groups), np.diff(pairs.indptr))
    f = pairs.indices.astype(np.int64)
    keep = f != group_edge[jk]
    jk, f = jk[keep], f[keep]
    order = np.argsort(jk, kind="stable")
    jk, f = jk[order], f[order]
    uf, vf = net.eu[f], net.ev[f]
    u_a, u_b = at(flat, ra[jk], uf, np.inf), at(flat, rb[jk], uf, np.inf)
    v_a, v_b = at(flat, ra[jk], vf, np.inf), at(flat, rb[jk], vf, np.inf)
    ends_u = (u_a, u_b, p_at(ra[jk], uf, u_a), p_at(rb[jk], uf, u_b))
    ends_v = (v_a, v_b, p_at(ra[jk], vf, v_a), p_at(rb[jk], vf, v_b))
    # ... and their lixels
    lcnt = lix.ptr[f + 1] - lix.ptr[f]
    li = _expand(lix.ptr[f], lcnt)
    pi = np.repeat(np.arange(len(f)), lcnt)
    pair = {
        "lix": li,
        "len": net.length[f][pi],
        "s": lix.start[li],
        "e": lix.end[li],
        "ua": ends_u[0][pi],
        "ub": ends_u[1][pi],
        "upa": ends_u[2][pi],
        "upb": ends_u[3][pi],
        "va": ends_v[0][pi],
        "vb": ends_v[1][pi],
        "vpa": ends_v[2][pi],
        "vpb": ends_v[3][pi],
    }
    pair_j = jk[pi]
    pair_ptr = np.r_[0, np.cumsum(np.bincount(pair_j, minlength=len(group_edge)))]

    # sources, chunk by chunk
    per_source = pair_ptr[group_of + 1] - pair_ptr[group_of]
    own_cnt = lix.ptr[group_edge + 1] - lix.ptr[group_edge]
    load = np.cumsum(per_source + own_cnt[group_of])
    lo = 0
    while lo < len(members):
        done = float(load[lo - 1]) if lo else 0.0
        hi = int(np.searchsorted(load, done + _CHUNK_ENTRIES, side="right"))
        hi = max(hi, lo + 1)
        _chunk(
            net,
            lix,
            src,
            spec,
            ids=members[lo:hi],
            groups=group_of[lo:hi],
            pair=pair,
            pair_ptr=pair_ptr,
            acc=acc,
        )
        lo = hi


def _chunk(  # noqa: PLR0915 - one pass of the pipeline, clearer in one place
    net: Network,
    lix: Lixels,
    src: Sources,
    spec: KernelSpec,
    *,
    ids: IntArray,
    groups: IntArray,
    pair: dict[str, Any],
    pair_ptr: IntArray,
    acc: tuple[FloatArray, IntArray, TopK, FloatArray],
) -> None:
    mass_acc, count_acc, top, raw_all = acc
    kernel = spec.kernel
    cnt = pair_ptr[groups + 1] - pair_ptr[groups]
    q = _expand(pair_ptr[groups], cnt)
    loc = np.repeat(np.arange(len(ids)), cnt)
    off = src.offset[ids][loc]
    length = net.length[src.edge[ids]][loc]
    reach = src.reach[ids][loc]

    def side(
        da: FloatArray, db: FloatArray, pa: FloatArray, pb: FloatArray
    ) -> tuple[FloatArray, FloatArray]:
        via_a = off + da
        via_b = (length - off) + db
        with np.errstate(invalid="ignore"):
            gap = via_a - via_b
        choose_a = (gap < -_TIE_M) | ((np.abs(gap) <= _TIE_M) & (off > length / 2.0))
        return np.where(choose_a, via_a, via_b), np.where(choose_a, pa, pb)

    du, pu = side(pair["ua"][q], pair["ub"][q], pair["upa"][q], pair["upb"][q])
    dvv, pv = side(pair["va"][q], pair["vb"][q], pair["vpa"][q], pair["vpb"][q])
    near = np.minimum(du, dvv) < reach
    q, loc, du, pu, dvv, pv = q[near], loc[near], du[near], pu[near], dvv[near], pv[near]
    lf = pair["len"][q]
    s, e = pair["s"][q], pair["e"][q]
    with np.errstate(invalid="ignore"):
        t_star = np.clip((dvv + lf - du) / 2.0, 0.0, lf)
    t_star = np.where(np.isnan(t_star), lf, t_star)

    def spread(
        h: FloatArray, dist_u: FloatArray, dist_v: FloatArray, sel: BoolArray | slice
    ) -> FloatArray:
        # from u over [s, clip(t*)], from v over [clip(t*), e]; empty pieces give G − G = 0
        mid = np.clip(t_star[sel], s[sel], e[sel])
        from_u = _one_sided(kernel, dist_u, s[sel], mid, h)
        from_v = _one_sided(kernel, dist_v, lf[sel] - e[sel], lf[sel] - mid, h)
        return np.asarray(from_u / pu[sel] + from_v / pv[sel], dtype=float)

    # the source's own edge: direct distance, no junction
    own_edge = src.edge[ids]
    ocnt = lix.ptr[own_edge + 1] - lix.ptr[own_edge]
    ol = _expand(lix.ptr[own_edge], ocnt)
    oloc = np.repeat(np.arange(len(ids)), ocnt)
    o_off = src.offset[ids][oloc]

    def own(h: FloatArray) -> FloatArray:
        return np.asarray(
            kernel_cdf(lix.end[ol] - o_off, h, kernel)
            - kernel_cdf(lix.start[ol] - o_off, h, kernel),
            dtype=float,
        )

    all_lix = np.r_[pair["lix"][q], ol]
    all_loc = np.r_[loc, oloc]
    total = np.zeros(len(all_lix))
    counted = np.zeros(len(all_lix), dtype=bool)
    for h_all, w_all, first in ((src.h1, src.w1, True), (src.h2, src.w2, False)):
        w = w_all[ids]
        if not (w > 0).any():
            continue
        h = h_all[ids]
        sel = w[loc] > 0
        osel = w[oloc] > 0
        m = np.zeros(len(all_lix))
        m[: len(loc)][sel] = spread(h[loc][sel], du[sel], dvv[sel], sel)
        m[len(loc) :][osel] = own(h[oloc])[osel]
        raw = np.bincount(all_loc, weights=m, minlength=len(ids))
        if first:
            raw_all[ids] = raw
        scale = (
            np.where(raw > 0, 1.0 / np.where(raw > 0, raw, 1.0), 0.0)
            if spec.conserve_mass
            else np.ones(len(ids))
        )
        total += m * (w * scale)[all_loc]
        if first:
            counted = m > 1e-12
    mass_acc += np.bincount(all_lix, weights=total, minlength=len(mass_acc))
    count_acc += np.bincount(all_lix[counted], minlength=len(count_acc))
    # a contribution below 0.5 % of the mass so far is below 0.5 % of the final mass: never shown
    top.add(all_lix, src.owner[ids][all_loc], total, MIN_SHARE * mass_acc)


def edge_index(net: Network, frame: pd.DataFrame) -> IntArray:
    """Position of each row's forward edge ``(u, v, key)`` among the network's (−1 if none)."""
    edges = pd.MultiIndex.from_arrays([net.u_ids, net.v_ids, net.keys])
    rows = pd.MultiIndex.from_arrays(
        [frame["u"].to_numpy(), frame["v"].to_numpy(), frame["key"].to_numpy()]
    )
    return np.asarray(edges.get_indexer(rows), dtype=np.int64)
