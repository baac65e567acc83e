"""Per-segment risk: network kernel density of episodes, a regional prior, and the posterior.

The model, step by step (defaults in :class:`RiskParams`, formulas and
references in ``docs/risk-model.md``). ``rate`` is a frequency: incident
*episodes* per km per 30 days.

1. Each road (forward edge) is cut into equal lixels no longer than
   ``segment_length_m`` (Xie & Yan 2008).
2. Incidents after the as-of date, older than ``window_days``, off the
   network, coarser than ``max_precision_m`` or of a type weighted 0 are left
   out, each with a reason. The rest are grouped into episodes
   (:mod:`~convoyrisk.episodes`): the devices of one attack count once.
   An episode weighs ``τ·2^(−age/half_life)`` (``τ`` its type weight, 1 by
   default); casualties are kept apart as ``harm``.
3. A located episode (``precision_m ≤ bandwidth_m``) spreads along the
   network from its snapped point with a kernel of bandwidth ``h`` over
   shortest-path distance (Okabe's equal split at junctions, or none); lixel
   masses are exact integrals of the kernel. An episode known only to within
   ``R > h`` is spread over the segments within ``R`` of its reported point,
   by length.
4. The smoothed, decayed mass becomes a Poisson-equivalent count over an
   exposure with the same mean and variance (:mod:`~convoyrisk.bayes`).
5. The prior is regional: the ratio of Gaussian-smoothed episodes to road
   exposure (scale ``prior_scale_m``), pooled with a user's base rates, with
   the overdispersion ``k`` estimated by negative-binomial likelihood. The
   posterior is Gamma; ``rate`` is its mean, ``rate_low``/``rate_high`` its
   central ``credible_level`` interval.
6. Classes come from the posterior probability of exceeding each threshold
   (``class_confidence``), or "insufficient data".
7. Near-repeat is a multiplier in ``rate_now``, never part of ``rate``.

With ``k`` fixed and one episode per incident, adding an incident never
lowers a rate or its bounds (see the tests); with ``k`` estimated, the prior
may tighten as evidence accumulates.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
import re
import threading
import warnings
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import networkx as nx
import numpy as np
import numpy.typing as npt
import pandas as pd
import shapely
from scipy import stats
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components, dijkstra
from scipy.spatial import cKDTree

from . import settings
from ._errors import ConvoyRiskWarning, InputError
from .bayes import (
    NO_DATA_CLASS,
    RISK_CLASSES,
    Smoother,
    classify_posterior,
    decay_moments,
    fit_overdispersion,
    posterior,
    prior_means,
)
from .convert import validate_graph
from .episodes import group_episodes
from .utils import Progress, atomic_paths

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

KERNELS = ("uniform", "triangular", "epanechnikov", "quartic", "triweight")
"""Kernels available, all with compact support ``[−h, h]``."""

JUNCTIONS = ("equal-split", "none")
"""How density passes a junction: Okabe's discontinuous equal split, or no split."""

USED_STATUSES = ("snapped", "spread")
"""Snapping statuses of incidents the model uses."""

# ∫k² of each unit kernel (roughness); the effective window of a kernel estimate is h/∫k²
_ROUGHNESS = {
    "uniform": 1.0 / 2.0,
    "triangular": 2.0 / 3.0,
    "epanechnikov": 3.0 / 5.0,
    "quartic": 5.0 / 7.0,
    "triweight": 350.0 / 429.0,
}

_TIE_M = 1e-6  # distances closer than this are ties
DENSE_BUDGET = 6_000_000  # cells of the dense Dijkstra rows kept at once (48 MB)
_CHUNK_ENTRIES = 100_000  # incident × lixel pairs evaluated at once (cache-sized)
_MAX_WORKERS = 8  # threads of the numba engine by default, at most
_BATCH_ROWS = 512  # end nodes (Dijkstra sources) of one batch at most
_MIN_SHARE = 0.005  # contributors with a smaller share of a segment's mass are not named


@dataclass(frozen=True)
class RiskParams:
    """Parameters of the risk model, with their defaults.

    Attributes
    ----------
    segment_length_m
        Longest segment (lixel) length, metres.
    bandwidth_m
        Kernel bandwidth along the network, metres. Incidents whose location
        is known only to within a radius larger than this are spread over the
        roads inside that radius instead (by road length).
    kernel
        One of :data:`KERNELS`.
    junction
        ``"equal-split"`` (Okabe's discontinuous equal-split kernel) or ``"none"``.
    conserve_mass
        Rescale each incident's spread to sum to its weight.
    half_life_days
        Time decay: an episode this many days old weighs half a new one.
    window_days
        Incidents older than this (before the as-of date) are not used.
    episode_m, episode_hours
        Incidents closer than both (directly or through others) are one
        episode (one attack, several devices): the rate counts episodes.
        ``episode_m = 0`` counts every row.
    near_repeat_m, near_repeat_days, near_repeat_boost
        Near-repeat: for ``near_repeat_days`` after an episode, segments within
        ``near_repeat_m`` of it have ``rate_now = rate·(1 + near_repeat_boost)``
        (Townsley, Johnson & Ratcliffe 2008: about 1 km, 2 days). Never part of
        ``rate``. ``near_repeat_m = 0`` turns it off.
    type_weights, other_type_weight
        Weight per event type (matched case-insensitively on the ``type``
        column), and for types not listed; 0 leaves a type out. Weights other
        than 0 and 1 make ``rate`` a weighted frequency.
    max_precision_m
        Incidents whose ``precision_m`` exceeds this are not used.
    prior_scale_m
        Standard deviation of the Gaussian over which the regional (prior)
        rate is pooled, metres: pooling fades with distance.
    base_rates
        A layer of areas (GeoJSON, GeoPackage...) with a ``rate`` column
        (episodes per km per 30 days): a regional base rate pooled into the
        prior ("" for none).
    base_rate_weight
        Weight of the base rate against the regional data (1: equal).
    overdispersion_k
        Gamma prior overdispersion ``k`` (variance ``k·m²`` about the prior
        mean ``m``); 0 estimates it from the data (negative-binomial
        likelihood of the raw counts about the prior means).
    credible_level
        Width of the rate interval (0.9: the 5th to the 95th percentile).
    class_confidence
        A segment is put in a class when the posterior probability of its rate
        lying in it or above (or below the first threshold, for "low") is at
        least this; otherwise it is "insufficient data".
    class_thresholds
        Rates (episodes per km per 30 days) at which "elevated", "high" and
        "severe" start. For 100 km driven in one day they mean a chance of at
        least one incident of 0.3 %, 1.7 % and 6.5 %.
    top_contributors
        Number of incidents named per segment.
    tune
        Choose ``bandwidth_m`` and ``half_life_days`` by held-out likelihood
        (:func:`tune_params`): "on", "off", or "auto" (on with
        :data:`TUNE_MIN_EPISODES` to :data:`TUNE_MAX_EPISODES` episodes on at
        most about :data:`TUNE_MAX_SEGMENTS` segments).
    """

    segment_length_m: float = 1_000.0
    bandwidth_m: float = 5_000.0
    kernel: str = "quartic"
    junction: str = "equal-split"
    conserve_mass: bool = True
    half_life_days: float = 180.0
    window_days: float = 730.0
    episode_m: float = 1_000.0
    episode_hours: float = 12.0
    near_repeat_m: float = 1_000.0
    near_repeat_days: float = 2.0
    near_repeat_boost: float = 1.0
    type_weights: Mapping[str, float] = field(default_factory=dict)
    other_type_weight: float = 1.0
    max_precision_m: float = math.inf
    prior_scale_m: float = 25_000.0
    base_rates: str = ""
    base_rate_weight: float = 1.0
    overdispersion_k: float = 0.0
    credible_level: float = 0.9
    class_confidence: float = 0.8
    class_thresholds: tuple[float, float, float] = (0.001, 0.005, 0.02)
    top_contributors: int = 3
    tune: str = "auto"

    def __post_init__(self) -> None:  # noqa: C901, PLR0912 - one check per parameter
        """Reject values that make no sense."""
        positive = (
            "segment_length_m",
            "bandwidth_m",
            "half_life_days",
            "window_days",
            "max_precision_m",
            "prior_scale_m",
        )
        finite = (
            "segment_length_m",
            "bandwidth_m",
            "half_life_days",
            "window_days",
            "episode_m",
            "episode_hours",
            "near_repeat_m",
            "near_repeat_days",
            "near_repeat_boost",
            "other_type_weight",
            "prior_scale_m",
            "base_rate_weight",
            "overdispersion_k",
        )
        for name in finite:
            value = getattr(self, name)
            if isinstance(value, float | int) and not math.isfinite(value):
                msg = f"`{name}` must be a finite number, got {value}."
                raise InputError(msg)
        for name in positive:
            if not getattr(self, name) > 0:
                msg = f"`{name}` must be positive, got {getattr(self, name)}."
                raise InputError(msg)
        non_negative = (
            "episode_m",
            "episode_hours",
            "near_repeat_m",
            "near_repeat_days",
            "near_repeat_boost",
            "other_type_weight",
            "base_rate_weight",
            "overdispersion_k",
            "top_contributors",
        )
        for name in non_negative:
            if not getattr(self, name) >= 0:
                msg = f"`{name}` must be zero or more, got {getattr(self, name)}."
                raise InputError(msg)
        for name, weight in self.type_weights.items():
            if not (weight >= 0 and math.isfinite(weight)):
                msg = f"`type_weights` of {name!r} must be zero or more, got {weight}."
                raise InputError(msg)
        if self.tune not in {"auto", "on", "off"}:
            msg = f"`tune` must be auto, on or off; got {self.tune!r}."
            raise InputError(msg)
        if self.kernel not in KERNELS:
            msg = f"`kernel` must be one of {', '.join(KERNELS)}; got {self.kernel!r}."
            raise InputError(msg)
        if self.junction not in JUNCTIONS:
            msg = f"`junction` must be one of {', '.join(JUNCTIONS)}; got {self.junction!r}."
            raise InputError(msg)
        for name in ("credible_level", "class_confidence"):
            if not 0 < getattr(self, name) < 1:
                msg = f"`{name}` must be in (0, 1), got {getattr(self, name)}."
                raise InputError(msg)
        t = tuple(float(x) for x in self.class_thresholds)
        if (
            len(t) != len(RISK_CLASSES) - 1
            or list(t) != sorted(t)
            or not all(0 < x < math.inf for x in t)
        ):
            msg = (
                "`class_thresholds` must be three increasing positive rates, "
                f"got {self.class_thresholds}."
            )
            raise InputError(msg)
        object.__setattr__(self, "class_thresholds", t)
        object.__setattr__(self, "type_weights", dict(self.type_weights))

    def replace(self, **overrides: Any) -> RiskParams:  # noqa: ANN401 - any parameter's type
        """A copy with some parameters changed; unknown names raise :class:`InputError`."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            msg = (
                f"Unknown risk parameter(s) {', '.join(unknown)}: "
                f"valid names are {', '.join(sorted(names))}."
            )
            raise InputError(msg)
        return dataclasses.replace(self, **overrides)

    @property
    def window_km(self) -> float:
        """Effective window ``h/∫k²`` of the kernel estimate, km (the EB exposure length)."""
        return self.bandwidth_m / _ROUGHNESS[self.kernel] / 1000.0


@dataclass
class RiskResult:
    """Scored segments and how they were scored.

    Attributes
    ----------
    segments
        One row per segment (see :func:`score_segments`).
    incidents
        The snapped incidents with ``weight``, ``harm``, ``episode``,
        ``devices``, ``episode_lead``, ``spread_m`` and ``used`` (why not, if not).
    params
        The parameters used.
    as_of
        The as-of date.
    exposure_days
        Decayed length of the window ``T₁ = ∫₀^W 2^(−t/H) dt`` in days.
    overdispersion
        The prior's ``k`` (estimated from the data unless set in ``params``).
    baseline_rate
        Length-weighted mean prior rate of the segments with an informed
        prior, episodes per km per 30 days (for reports: not used).
    episodes
        Number of episodes used.
    """

    segments: gpd.GeoDataFrame
    incidents: gpd.GeoDataFrame
    params: RiskParams
    as_of: pd.Timestamp
    exposure_days: float
    overdispersion: float = math.nan
    baseline_rate: float = 0.0
    episodes: int = 0

    def describe(self) -> dict[str, Any]:
        """Parameters, as-of date and totals, for reports and map footers."""
        params = asdict(self.params)
        params["class_thresholds"] = list(self.params.class_thresholds)
        if math.isinf(self.params.max_precision_m):
            params["max_precision_m"] = None  # no limit (JSON has no infinity)
        classes = self.segments["risk_class"].astype(str)
        length = self.segments["length_m"].to_numpy(float)
        return {
            "as_of": self.as_of.date().isoformat(),
            "exposure_days": round(self.exposure_days, 2),
            "incidents_used": int((self.incidents["used"] == "used").sum()),
            "episodes_used": self.episodes,
            "baseline_rate_per_km_30d": self.baseline_rate,
            "overdispersion_k": round(self.overdispersion, 4),
            "km_by_class": {
                c: round(float(length[(classes == c).to_numpy()].sum()) / 1000.0, 1)
                for c in (*RISK_CLASSES, NO_DATA_CLASS)
            },
            "params": params,
        }


# ----------------------------------------------------------------------------------------
# the network as arrays
# ----------------------------------------------------------------------------------------


@dataclass
class Network:
    """Forward edges, the node graph and adjacency, as arrays (built once per graph)."""

    node_ids: list[Any]
    eu: IntArray
    ev: IntArray
    u_ids: npt.NDArray[Any]
    v_ids: npt.NDArray[Any]
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
    """The graph's forward edges, node graph and adjacency as arrays (built once per scoring)."""
    node_ids = list(G.nodes)
    pos = {n: i for i, n in enumerate(node_ids)}
    rows = [
        (u, v, k, d) for u, v, k, d in G.edges(keys=True, data=True) if not d.get("reversed", False)
    ]
    if not rows:
        msg = "The graph has no edges: the road layer gave no usable lines."
        raise InputError(msg)
    geoms = np.empty(len(rows), dtype=object)
    for i, (u, v, _, d) in enumerate(rows):
        geom = d.get("geometry")
        if geom is None:  # OSMnx leaves straight edges without geometry
            nu, nv = G.nodes[u], G.nodes[v]
            geom = shapely.LineString([(nu["x"], nu["y"]), (nv["x"], nv["y"])])
        geoms[i] = geom
    eu = np.array([pos[r[0]] for r in rows], dtype=np.int64)
    ev = np.array([pos[r[1]] for r in rows], dtype=np.int64)
    glen = shapely.length(geoms).astype(float)
    length = np.array([float(r[3].get("length", glen[i])) for i, r in enumerate(rows)])
    length = np.maximum(length, 1e-6)
    road = np.array([int(r[3].get("road_id", i)) for i, r in enumerate(rows)], dtype=np.int64)
    n = len(node_ids)

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

    e_idx = np.arange(len(rows), dtype=np.int64)
    incidence = csr_matrix(
        (np.ones(2 * len(rows)), (np.r_[eu, ev], np.r_[e_idx, e_idx])), shape=(n, len(rows))
    )

    xy = _node_xy(G, node_ids, geoms, eu, ev)
    chord = np.hypot(*(xy[eu] - xy[ev]).T)
    moved = chord > 0
    stretch = float(np.min(length[moved] / chord[moved])) if moved.any() else 0.0
    return Network(
        node_ids=node_ids,
        eu=eu,
        ev=ev,
        u_ids=np.array([r[0] for r in rows]),
        v_ids=np.array([r[1] for r in rows]),
        keys=np.array([r[2] for r in rows], dtype=np.int64),
        length=length,
        glen=glen,
        road=road,
        geoms=geoms,
        csr=csr,
        split=split,
        incidence=incidence,
        xy=xy,
        stretch=stretch if math.isfinite(stretch) else 0.0,
    )


def _node_xy(
    G: nx.MultiDiGraph,
    node_ids: list[Any],
    geoms: npt.NDArray[np.object_],
    eu: IntArray,
    ev: IntArray,
) -> FloatArray:
    """Node coordinates: the nodes' ``x`` and ``y``, else the ends of their edges' geometry."""
    xy = np.array(
        [(d.get("x", np.nan), d.get("y", np.nan)) for _, d in G.nodes(data=True)], dtype=float
    ).reshape(len(node_ids), 2)
    if np.isnan(xy).any():
        first = shapely.get_coordinates(shapely.get_point(geoms, 0))
        last = shapely.get_coordinates(shapely.get_point(geoms, -1))
        for ends, at in ((eu, first), (ev, last)):
            missing = np.isnan(xy[ends, 0])
            xy[ends[missing]] = at[missing]
    return np.asarray(np.nan_to_num(xy), dtype=float)


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


def _cut(net: Network, segment_length_m: float) -> tuple[gpd.GeoDataFrame, Lixels]:
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
    segs, _ = _cut(network_arrays(G), segment_length_m)
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
# weights
# ----------------------------------------------------------------------------------------


def decay_weights(
    dates: pd.Series, as_of: pd.Timestamp, params: RiskParams
) -> tuple[FloatArray, npt.NDArray[np.str_]]:
    """Time-decay factors ``2^(−age/half_life)``, and a reason per incident ("" when used).

    Ages are counted in whole days between calendar dates: an incident on the
    as-of date (whatever its time of day) is used, with age 0.
    """
    age = _age_days(dates, as_of)
    reason = np.where(age < 0, "after the as-of date", "")
    reason = np.where((reason == "") & (age > params.window_days), "older than the window", reason)
    reason = np.where((reason == "") & np.isnan(age), "no date", reason)
    factor = np.where(reason == "", 0.5 ** (np.clip(age, 0, None) / params.half_life_days), 0.0)
    return factor, reason


def exposure_days(params: RiskParams) -> float:
    """Decayed length of the window, ``∫₀^W 2^(−t/H) dt``, in days.

    Examples
    --------
    >>> round(exposure_days(RiskParams(half_life_days=90, window_days=1e9)), 3)
    129.843
    """
    h, w = params.half_life_days, params.window_days
    return float(h / math.log(2) * (1.0 - 0.5 ** (w / h)))


def _column(frame: pd.DataFrame, name: str, default: float) -> FloatArray:
    if name not in frame:
        return np.full(len(frame), default)
    values = pd.to_numeric(frame[name], errors="coerce").to_numpy(float)
    return np.where(np.isfinite(values), values, default)


def incident_weights(
    incidents: pd.DataFrame, as_of: pd.Timestamp, params: RiskParams
) -> pd.DataFrame:
    """Each incident's weight, harm, and whether it is used (and why not).

    Parameters
    ----------
    incidents
        Snapped incidents (``status``, ``date``, optional ``killed``,
        ``injured``, ``type``, ``precision_m``).
    as_of
        The date ages are counted from.
    params
        Model parameters.

    Returns
    -------
    pandas.DataFrame
        Aligned on `incidents`: ``type_weight``, ``decay``, ``weight``
        (``type_weight·decay``: what an episode counts for in the rate),
        ``harm`` (killed + injured, kept apart from the rate), ``age_days``
        and ``used`` ("used" or the reason).
    """
    factor, reason = decay_weights(incidents["date"], as_of, params)
    status = (
        incidents["status"].astype(str).to_numpy()
        if "status" in incidents
        else np.full(len(incidents), "snapped")
    )
    reason = np.where(~np.isin(status, USED_STATUSES), "not on the network", reason)
    precision = np.maximum(_column(incidents, "precision_m", 0.0), 0.0)
    reason = np.where(
        (reason == "") & (precision > params.max_precision_m), "location too imprecise", reason
    )
    killed = np.maximum(_column(incidents, "killed", 0.0), 0.0)
    injured = np.maximum(_column(incidents, "injured", 0.0), 0.0)
    lookup = {str(k).strip().casefold(): float(v) for k, v in params.type_weights.items()}
    types = (
        incidents["type"].fillna("").astype(str).str.strip().str.casefold()
        if "type" in incidents
        else pd.Series([""] * len(incidents), index=incidents.index)
    )
    type_weight = types.map(lambda t: lookup.get(t, params.other_type_weight)).to_numpy(float)
    reason = np.where((reason == "") & (type_weight <= 0), "type weight 0", reason)
    used = reason == ""
    age = _age_days(incidents["date"], as_of)
    return pd.DataFrame(
        {
            "type_weight": type_weight,
            "decay": factor,
            "weight": np.where(used, type_weight * factor, 0.0),
            "harm": killed + injured,
            "age_days": age,
            "used": np.where(used, "used", reason),
        },
        index=incidents.index,
    )


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


class _TopK:
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
    params: RiskParams,
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
    k = params.top_contributors
    if len(src.edge) == 0:
        top = _TopK(n_lix, k)
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
        (np.zeros(n_lix), np.zeros(n_lix, dtype=np.int64), _TopK(n_lix, k), raw_all)
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
                params,
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
        node_ids=[net.node_ids[i] for i in nodes],
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
    params: RiskParams,
    *,
    members: IntArray,
    group_of: IntArray,
    group_edge: IntArray,
    sub: IntArray,
    acc: tuple[FloatArray, IntArray, _TopK, FloatArray],
    scratch: _Scratch,
) -> None:
    """Dijkstra from the ends of a batch of source edges, then every source's lixel masses."""
    local = scratch.local
    local[sub] = np.arange(len(sub))
    try:
        ends = np.unique(np.r_[net.eu[group_edge], net.ev[group_edge]])
        limit = float(src.reach[members].max())
        graph = _subnetwork(net, sub, local)
        if params.junction == "equal-split":
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
            params,
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
    params: RiskParams,
    *,
    rows: _Rows,
    members: IntArray,
    group_of: IntArray,
    group_edge: IntArray,
    acc: tuple[FloatArray, IntArray, _TopK, FloatArray],
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
    k = params.top_contributors
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
        (_nkde.KERNEL_CODES[params.kernel], pred is not None, params.conserve_mass, _MIN_SHARE),
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
    params: RiskParams,
    *,
    rows: _Rows,
    members: IntArray,
    group_of: IntArray,
    group_edge: IntArray,
    acc: tuple[FloatArray, IntArray, _TopK, FloatArray],
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
            params,
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
    params: RiskParams,
    *,
    ids: IntArray,
    groups: IntArray,
    pair: dict[str, Any],
    pair_ptr: IntArray,
    acc: tuple[FloatArray, IntArray, _TopK, FloatArray],
) -> None:
    mass_acc, count_acc, top, raw_all = acc
    kernel = params.kernel
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
            if params.conserve_mass
            else np.ones(len(ids))
        )
        total += m * (w * scale)[all_loc]
        if first:
            counted = m > 1e-12
    mass_acc += np.bincount(all_lix, weights=total, minlength=len(mass_acc))
    count_acc += np.bincount(all_lix[counted], minlength=len(count_acc))
    # a contribution below 0.5 % of the mass so far is below 0.5 % of the final mass: never shown
    top.add(all_lix, src.owner[ids][all_loc], total, _MIN_SHARE * mass_acc)


# ----------------------------------------------------------------------------------------
# scoring
# ----------------------------------------------------------------------------------------


_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _day(dates: pd.Series) -> pd.Series:
    """Calendar day of each date (time of day and time zone dropped, UTC for aware ones)."""
    parsed = pd.to_datetime(dates, utc=False)
    if isinstance(parsed.dtype, pd.DatetimeTZDtype):
        parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    return parsed.dt.normalize()


def _age_days(dates: pd.Series, as_of: pd.Timestamp) -> FloatArray:
    """Whole days from each date's calendar day to the as-of date."""
    age = (as_of.normalize() - _day(pd.Series(dates))).dt.total_seconds()
    return np.asarray(age.to_numpy(float) / 86_400.0, dtype=float)


def parse_as_of(value: str | pd.Timestamp | None, dates: pd.Series) -> pd.Timestamp:
    """The as-of date: `value` (a ``YYYY-MM-DD`` string or a timestamp), else the latest date.

    Only ISO dates are accepted as text: ``04/11/2023`` is 4 November to some
    and 11 April to others, so it is refused rather than guessed.

    Raises
    ------
    InputError
        If `value` is not a ``YYYY-MM-DD`` date, or is None and there are no dates.
    """
    if value is None:
        days = _day(pd.Series(dates)).dropna()
        if days.empty:
            msg = "No incident has a date to take the as-of date from: give `as_of` (YYYY-MM-DD)."
            raise InputError(msg)
        return pd.Timestamp(days.max())
    if isinstance(value, str):
        text = value.strip()
        if not _ISO_DATE.match(text):
            msg = f"`as_of` {value!r} is not a date written YYYY-MM-DD (e.g. 2023-11-04)."
            raise InputError(msg)
        try:
            return pd.Timestamp(text)
        except ValueError as exc:
            msg = f"`as_of` {value!r} is not a calendar date: give it as YYYY-MM-DD."
            raise InputError(msg) from exc
    ts = pd.Timestamp(value)
    if pd.isna(ts):  # pd.Timestamp(NaT) at run time
        msg = f"`as_of` {value!r} is not a date: give it as YYYY-MM-DD."  # type: ignore[unreachable]
        raise InputError(msg)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts.normalize()


def edge_index(net: Network, frame: pd.DataFrame) -> IntArray:
    """Position of each row's forward edge ``(u, v, key)`` among the network's (−1 if none)."""
    edges = pd.MultiIndex.from_arrays([net.u_ids, net.v_ids, net.keys])
    rows = pd.MultiIndex.from_arrays(
        [frame["u"].to_numpy(), frame["v"].to_numpy(), frame["key"].to_numpy()]
    )
    return np.asarray(edges.get_indexer(rows), dtype=np.int64)


def score_segments(
    G: nx.MultiDiGraph,
    snapped: gpd.GeoDataFrame,
    *,
    params: RiskParams | None = None,
    as_of: str | pd.Timestamp | None = None,
    engine: str = "auto",
    workers: int | None = None,
    progress: Progress | None = None,
    base_rates: gpd.GeoDataFrame | str | Path | None = None,
    **overrides: Any,  # noqa: ANN401 - any parameter's type
) -> RiskResult:
    """Score every road segment; see the module docstring and docs/risk-model.md.

    Parameters
    ----------
    G
        The road graph.
    snapped
        Incidents from :func:`convoyrisk.snapping.snap_incidents`.
    params
        Model parameters; defaults if None.
    as_of
        Date the risk is estimated for; the latest incident date if None.
    engine
        Kernel density engine: "numba" (compiled, multi-threaded), "numpy", or
        "auto" (numba from :data:`AUTO_NUMBA_SOURCES` incidents). Same results.
    workers
        Threads of the numba engine; default one per core (at most 8).
    progress
        Called as ``progress("scoring", incidents_done, incidents)``.
    base_rates
        Areas with a regional base ``rate`` (see :func:`read_base_rates`);
        overrides ``params.base_rates``.
    **overrides
        Parameters to change in `params`, e.g. ``bandwidth_m=2000``.

    Returns
    -------
    RiskResult
        Segments with ``rate`` (posterior mean of the long-run rate, episodes
        per km per 30 days), ``rate_low`` and ``rate_high`` (central
        ``credible_level`` interval), ``risk_class`` (from the posterior
        probabilities ``p_elevated``, ``p_high``, ``p_severe`` of exceeding
        each threshold, or "insufficient data"), ``rate_now`` (with the
        near-repeat multiplier, valid for ``near_repeat_days`` after the
        as-of date) and ``near_repeat``, ``prior_rate``, ``data_weight``
        (share of the posterior from the segment's own data),
        ``regional_episodes``, ``harm_per_episode`` (killed + injured per
        episode around it, not part of the rate), ``mass`` (decayed
        episodes, smoothed), ``incidents`` (episodes whose kernel reaches
        it) and ``top_contributors``.
    """
    validate_graph(G)
    params = (params or RiskParams()).replace(**overrides)
    if params.tune != "off":
        params = tune_params(G, snapped, params, as_of, base_rates=base_rates)
    prep = prepare_scoring(G, snapped, params, as_of, base_rates=base_rates)
    density = network_density(
        prep.net, prep.lix, prep.sources, params, engine=engine, workers=workers, progress=progress
    )
    return finish_scoring(prep, density.mass, density.count, density.top_id, density.top_val)


TUNE_MIN_EPISODES = 300
"""With ``tune="auto"``, tuning starts at this many episodes (fewer cannot tell choices apart)."""

TUNE_MAX_EPISODES = 20_000
"""With ``tune="auto"``, tuning stops above this many episodes (each candidate is a full fit)."""

TUNE_MAX_SEGMENTS = 20_000
"""With ``tune="auto"``, tuning stops above this many segments (a country: ask with "on")."""

TUNE_BANDWIDTHS_M = (1_000.0, 2_000.0, 5_000.0, 10_000.0)
"""Candidate bandwidths of :func:`tune_params`, metres."""

TUNE_HALF_LIVES_DAYS = (90.0, 180.0, 365.0)
"""Candidate half-lives of :func:`tune_params`, days."""

TUNE_PRIOR_SCALES_M = (10_000.0, 25_000.0)
"""Candidate prior scales of :func:`tune_params`, metres."""

TUNE_K_FACTORS = (0.5, 1.0, 2.0, 4.0, 8.0)
"""Multiples of the likelihood estimate of ``k`` that :func:`tune_params` tries."""


def tune_params(
    G: nx.MultiDiGraph,
    snapped: gpd.GeoDataFrame,
    params: RiskParams,
    as_of: str | pd.Timestamp | None = None,
    *,
    holdout_days: float = 180.0,
    base_rates: gpd.GeoDataFrame | str | Path | None = None,
) -> RiskParams:
    """Bandwidth and half-life that best predict the last `holdout_days` from the rest.

    Each candidate of :data:`TUNE_BANDWIDTHS_M` × :data:`TUNE_HALF_LIVES_DAYS`
    is fitted on the episodes before ``as_of − holdout_days`` and scored by
    the posterior-predictive (negative-binomial) log-likelihood of the
    episodes of the held-out period on each segment. The winner is returned
    (with ``tune="off"``); with ``tune="auto"`` and too few or too many
    episodes, `params` unchanged.
    """
    as_of_ts = parse_as_of(as_of, snapped["date"])
    base = params.replace(tune="off")
    w = incident_weights(snapped, as_of_ts, base)
    n = int((w["used"] == "used").sum())
    road_km = sum(float(d.get("length", 0.0)) for *_, d in G.edges(data=True)) / 2000.0
    too_big = road_km / (base.segment_length_m / 1000.0) > TUNE_MAX_SEGMENTS
    if params.tune == "off" or (
        params.tune == "auto" and (too_big or not TUNE_MIN_EPISODES <= n <= TUNE_MAX_EPISODES)
    ):
        return base
    split = as_of_ts - pd.Timedelta(days=holdout_days)
    day = _day(snapped["date"])
    train = snapped[(day < split).to_numpy()]
    on_net = (
        snapped["status"].astype(str).isin(USED_STATUSES).to_numpy()
        & ((day >= split) & (day <= as_of_ts)).to_numpy()
    )
    test = snapped[on_net]
    if len(train) == 0 or len(test) == 0:
        if params.tune == "on":
            msg = (
                f"`tune` on: no incident {'before' if len(train) == 0 else 'in'} the "
                f"{holdout_days:g} days held out before {as_of_ts.date()}, so the default "
                "bandwidth and half-life are used."
            )
            warnings.warn(msg, ConvoyRiskWarning, stacklevel=3)
        return base
    test_day = _day(test["date"])
    xy = test[["snap_x", "snap_y"]].to_numpy(float)
    episode = group_episodes(
        xy[:, 0], xy[:, 1], test_day, episode_m=base.episode_m, episode_hours=base.episode_hours
    )
    test = test[~pd.Series(episode).duplicated().to_numpy()]  # held-out episodes, not rows
    best: tuple[float, RiskParams] | None = None
    for h, hl, scale in itertools.product(
        TUNE_BANDWIDTHS_M, TUNE_HALF_LIVES_DAYS, TUNE_PRIOR_SCALES_M
    ):
        cand = base.replace(bandwidth_m=h, half_life_days=hl, prior_scale_m=scale)
        fit = score_segments(
            G,
            train,
            params=cand.replace(top_contributors=0),
            as_of=split - pd.Timedelta(days=1),
            base_rates=base_rates,
        )
        segs = fit.segments
        lixel = _lixel_of_points(segs, test)
        y = np.bincount(lixel[lixel >= 0], minlength=len(segs)).astype(float)
        exposure = segs["length_m"].to_numpy(float) / 1000.0 * holdout_days / 30.0
        m = segs["prior_rate"].to_numpy(float)
        # judged where the data speak (roads with episodes around them, or held-out ones):
        # empty, disconnected road must not sway the choice
        near = (segs["regional_episodes"].to_numpy(float) > 1e-9) | (y > 0)
        k0 = fit.overdispersion
        # the evidence behind each posterior, to try other prior spreads without refitting
        n = segs["post_shape"].to_numpy(float) - 1.0 / k0
        e = segs["post_rate"].to_numpy(float) - 1.0 / (k0 * m)
        for factor in TUNE_K_FACTORS if base.overdispersion_k == 0 else (1.0,):
            k = k0 * factor
            a = 1.0 / k + n
            b = 1.0 / (k * m) + e
            ll = float(stats.nbinom.logpmf(y[near], a[near], (b / (b + exposure))[near]).sum())
            if best is None or ll > best[0]:
                best = (ll, cand.replace(overdispersion_k=k if factor != 1.0 else k0))
    return best[1] if best is not None else base


def _lixel_of_points(segments: gpd.GeoDataFrame, points: pd.DataFrame) -> IntArray:
    """Row of the segment holding each snapped point (by its edge and offset), or −1."""
    seg_edges = pd.MultiIndex.from_arrays(
        [segments["u"].to_numpy(), segments["v"].to_numpy(), segments["key"].to_numpy()]
    )
    first = ~seg_edges.duplicated()
    edge_start = np.flatnonzero(first)
    idx = seg_edges[first].get_indexer(
        pd.MultiIndex.from_arrays(
            [points["u"].to_numpy(), points["v"].to_numpy(), points["key"].to_numpy()]
        )
    )
    out = np.full(len(points), -1, dtype=np.int64)
    ok = idx >= 0
    edge_end = np.r_[edge_start[1:], len(segments)]
    e = idx[ok]
    start = segments["start_m"].to_numpy(float)
    off = _column(points, "offset_m", 0.0)[ok]
    pos = np.array(
        [
            lo + max(int(np.searchsorted(start[lo:hi], o, side="right")) - 1, 0)
            for lo, hi, o in zip(edge_start[e], edge_end[e], off, strict=True)
        ],
        dtype=np.int64,
    )
    out[ok] = pos
    return out


@dataclass
class ScoringInput:
    """Everything scoring needs besides the kernel density (built by :func:`prepare_scoring`).

    Shared by :func:`score_segments` and the dask engine, which computes the
    density of ``sources`` in partitions and then calls :func:`finish_scoring`.
    """

    net: Network
    segments: gpd.GeoDataFrame
    lix: Lixels
    incidents: gpd.GeoDataFrame
    sources: Sources
    as_of: pd.Timestamp
    params: RiskParams
    spread_lixel: IntArray  # location-uncertain episodes: (lixel, episode owner, mass)
    spread_owner: IntArray
    spread_mass: FloatArray
    base_rate: FloatArray | None


def _lixel_at(lix: Lixels, edge: IntArray, offset: FloatArray) -> IntArray:
    """The lixel of each (forward edge, network metres from ``u``) position."""
    first, last = lix.ptr[edge], lix.ptr[edge + 1]
    count = last - first
    edge_len = lix.end[last - 1]
    step = edge_len / np.maximum(count, 1)
    j = np.floor(offset / np.where(step > 0, step, 1.0)).astype(np.int64)
    return np.asarray(first + np.clip(j, 0, count - 1), dtype=np.int64)


def _midpoints(segments: gpd.GeoDataFrame) -> FloatArray:
    geoms = segments.geometry.to_numpy()
    return np.asarray(
        shapely.get_coordinates(shapely.line_interpolate_point(geoms, 0.5, normalized=True)),
        dtype=float,
    )


def _episodes(inc: gpd.GeoDataFrame, params: RiskParams) -> None:
    """Group used incidents into episodes in place: ``episode``, ``devices``, ``episode_lead``.

    The lead row of an episode (the most precise, then the earliest) carries
    its weight; the other rows are used through it and weigh 0.
    """
    used = inc["used"].to_numpy() == "used"
    idx = np.flatnonzero(used)
    episode = np.full(len(inc), -1, dtype=np.int64)
    lead = np.zeros(len(inc), dtype=bool)
    devices = np.zeros(len(inc), dtype=np.int64)
    if len(idx):
        geoms = inc.geometry.to_numpy()[idx]
        x = _column(inc.iloc[idx], "snap_x", np.nan)
        y = _column(inc.iloc[idx], "snap_y", np.nan)
        x = np.where(np.isfinite(x), x, shapely.get_x(geoms))
        y = np.where(np.isfinite(y), y, shapely.get_y(geoms))
        ep = group_episodes(
            x,
            y,
            inc["date"].iloc[idx],
            episode_m=params.episode_m,
            episode_hours=params.episode_hours,
        )
        episode[idx] = ep
        size = np.bincount(ep)
        devices[idx] = size[ep]
        prec = np.maximum(_column(inc.iloc[idx], "precision_m", 0.0), 0.0)
        age = inc["age_days"].to_numpy(float)[idx]
        order = np.lexsort((np.arange(len(idx)), -age, prec, ep))
        first = np.r_[True, ep[order][1:] != ep[order][:-1]]
        lead[idx[order[first]]] = True
        # an episode's harm is the sum over its devices, held by its lead row
        harm = np.bincount(ep, weights=inc["harm"].to_numpy(float)[idx])
        inc.loc[inc.index[idx], "harm"] = np.where(lead[idx], harm[ep], 0.0)
    inc["episode"] = episode
    inc["devices"] = devices
    inc["episode_lead"] = lead
    inc["weight"] = np.where(lead, inc["weight"].to_numpy(float), 0.0)


def prepare_scoring(
    G: nx.MultiDiGraph,
    snapped: gpd.GeoDataFrame,
    params: RiskParams,
    as_of: str | pd.Timestamp | None,
    *,
    base_rates: gpd.GeoDataFrame | str | Path | None = None,
) -> ScoringInput:
    """Network arrays, segments, episodes and kernel sources: all but the density.

    Location-precise episodes (``precision_m`` at most ``bandwidth_m``)
    become kernel sources at their snapped point; the others are spread over
    the segments whose midpoints lie within their radius, by length.
    """
    net = network_arrays(G)
    segments, lix = _cut(net, params.segment_length_m)
    segments = segments.set_crs(G.graph["crs"])
    return prepare_incidents(
        net,
        segments,
        lix,
        snapped,
        params=params,
        as_of=as_of,
        base_rate=_base_rate(segments, params, base_rates),
    )


def prepare_incidents(
    net: Network,
    segments: gpd.GeoDataFrame,
    lix: Lixels,
    snapped: gpd.GeoDataFrame,
    *,
    params: RiskParams,
    as_of: str | pd.Timestamp | None,
    base_rate: FloatArray | None = None,
) -> ScoringInput:
    """The incident part of :func:`prepare_scoring`, on a network already cut into segments.

    Weights, episodes, kernel sources and spread masses of `snapped`, for
    :func:`network_density` and :func:`finish_scoring`. Used by
    :mod:`convoyrisk.incremental` to re-prepare the incidents of a scored
    network without building its arrays and segments again.

    Parameters
    ----------
    net, segments, lix
        The network arrays, its segments (unscored columns; :func:`finish_scoring`
        adds the scores to this frame in place) and lixels, from a previous
        :func:`prepare_scoring` on the same graph and ``segment_length_m``.
    snapped
        Incidents snapped onto that graph.
    params
        Model parameters.
    as_of
        Date the risk is estimated for; the latest incident date if None.
    base_rate
        Base rate per segment (NaN where none), or None.

    Returns
    -------
    ScoringInput
        Everything scoring needs besides the kernel density.
    """
    inc = snapped.copy()
    as_of_ts = parse_as_of(as_of, inc["date"])
    w = incident_weights(inc, as_of_ts, params)
    for col in w.columns:
        inc[col] = w[col].to_numpy()
    used = inc["used"].to_numpy() == "used"
    edge = np.full(len(inc), -1, dtype=np.int64)
    if used.any():
        edge[used] = edge_index(net, inc.loc[used])
    lost = used & (edge < 0)
    if lost.any():
        msg = (
            f"{int(lost.sum())} snapped incident(s) name an edge (u, v, key) that is not a "
            "forward edge of the graph: snap them onto this graph with `snap_incidents`."
        )
        raise InputError(msg)
    _episodes(inc, params)
    precision = np.maximum(_column(inc, "precision_m", 0.0), 0.0)
    lead = inc["episode_lead"].to_numpy(bool)
    kernel = lead & (precision <= params.bandwidth_m)
    spread = lead & ~kernel
    inc["spread_m"] = np.where(spread, precision, 0.0)
    live = np.flatnonzero(kernel)
    ge = edge[live]
    offset = _column(inc.iloc[live], "offset_m", 0.0)
    offset = np.clip(
        offset * net.length[ge] / np.where(net.glen[ge] > 0, net.glen[ge], 1.0), 0.0, net.length[ge]
    )
    h = np.full(len(live), params.bandwidth_m)
    sources = Sources(
        owner=live.astype(np.int64),
        edge=ge,
        offset=offset,
        h1=h,
        w1=inc["weight"].to_numpy(float)[live],
        h2=h,
        w2=np.zeros(len(live)),
    )
    s_lix, s_own, s_mass = _spread(inc, segments, lix, net, rows=np.flatnonzero(spread), edge=edge)
    return ScoringInput(
        net=net,
        segments=segments,
        lix=lix,
        incidents=inc,
        sources=sources,
        as_of=as_of_ts,
        params=params,
        spread_lixel=s_lix,
        spread_owner=s_own,
        spread_mass=s_mass,
        base_rate=base_rate,
    )


def _spread(
    inc: gpd.GeoDataFrame,
    segments: gpd.GeoDataFrame,
    lix: Lixels,
    net: Network,
    *,
    rows: IntArray,
    edge: IntArray,
) -> tuple[IntArray, IntArray, FloatArray]:
    """Lixels, owners and masses of location-uncertain episodes spread by road length."""
    if len(rows) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    tree = cKDTree(_midpoints(segments))
    pts = shapely.get_coordinates(inc.geometry.to_numpy()[rows])
    radius = np.maximum(_column(inc.iloc[rows], "precision_m", 0.0), 0.0)
    weight = inc["weight"].to_numpy(float)[rows]
    length = segments["length_m"].to_numpy(float)
    out_l, out_o, out_m = [], [], []
    for i, (pt, r) in enumerate(zip(pts, radius, strict=True)):
        hit = np.asarray(tree.query_ball_point(pt, r), dtype=np.int64)
        if len(hit) == 0:  # no segment midpoint in the disc: the snapped segment holds it
            e = edge[rows[i : i + 1]]
            off = _column(inc.iloc[rows[i : i + 1]], "offset_m", 0.0)
            hit = _lixel_at(lix, e, off * net.length[e] / np.maximum(net.glen[e], 1e-9))
        share = length[hit] / length[hit].sum()
        out_l.append(hit)
        out_o.append(np.full(len(hit), rows[i], dtype=np.int64))
        out_m.append(weight[i] * share)
    return np.concatenate(out_l), np.concatenate(out_o), np.concatenate(out_m)


def read_base_rates(path: str | Path) -> gpd.GeoDataFrame:
    """A layer of areas with a ``rate`` column (episodes per km per 30 days).

    Raises
    ------
    InputError
        If the file cannot be read, or has no CRS, polygons or ``rate``.
    """
    try:
        areas = gpd.read_file(path)
    except Exception as exc:
        msg = f"Cannot read base rates from {path}: {str(exc).splitlines()[0]}"
        raise InputError(msg) from exc
    if "rate" not in areas.columns or areas.crs is None or areas.empty:
        msg = (
            f"Base rates in {path} need areas (polygons) with a CRS and a `rate` column "
            "(episodes per km per 30 days)."
        )
        raise InputError(msg)
    rate = pd.to_numeric(areas["rate"], errors="coerce")
    if not (np.isfinite(rate) & (rate >= 0)).all():
        msg = f"`rate` in {path} must be zero or more on every area."
        raise InputError(msg)
    areas["rate"] = rate.astype(float)
    return areas


def _base_rate(
    segments: gpd.GeoDataFrame,
    params: RiskParams,
    areas: gpd.GeoDataFrame | str | Path | None,
) -> FloatArray | None:
    """Base rate per segment from the smallest area holding its midpoint (NaN outside)."""
    if areas is None and params.base_rates:
        areas = params.base_rates
    if areas is None:
        return None
    layer: gpd.GeoDataFrame = (
        read_base_rates(areas) if isinstance(areas, str | Path) else areas
    ).to_crs(segments.crs)
    mids = shapely.points(_midpoints(segments))
    polygons = layer.geometry.to_numpy()
    seg_i, area_i = shapely.STRtree(polygons).query(mids, predicate="within")
    out = np.full(len(segments), np.nan)
    if len(seg_i):
        size = np.asarray(shapely.area(polygons), dtype=float)[area_i]
        order = np.lexsort((-size, seg_i))  # per segment, the smallest area last
        out[seg_i[order]] = layer["rate"].to_numpy(float)[area_i[order]]
    return out


def finish_scoring(
    prep: ScoringInput,
    kernel_mass: FloatArray,
    count: IntArray,
    top_id: IntArray,
    top_val: FloatArray,
) -> RiskResult:
    """Prior, posterior, intervals, classes, near-repeat and contributors from the density.

    Shared by :func:`score_segments` and the dask engine, which sums partitions' densities.
    """
    params, segments, inc, lix = prep.params, prep.segments, prep.incidents, prep.lix
    n_lix = len(segments)
    mass = kernel_mass + np.bincount(prep.spread_lixel, prep.spread_mass, minlength=n_lix)
    t1, t2 = decay_moments(params.half_life_days, params.window_days)
    t_eff = t1 * t1 / t2
    c_t = t1 / t2
    length_km = segments["length_m"].to_numpy(float) / 1000.0
    window_km = params.window_km
    # raw decayed episode counts per segment (where each episode is, not smoothed)
    src = prep.sources
    raw = np.bincount(
        np.r_[_lixel_at(lix, src.edge, src.offset), prep.spread_lixel],
        weights=np.r_[src.w1, prep.spread_mass],
        minlength=n_lix,
    ).astype(float)
    harm = inc["harm"].to_numpy(float)
    harm_raw = np.bincount(
        np.r_[_lixel_at(lix, src.edge, src.offset), prep.spread_lixel],
        weights=np.r_[src.w1 * harm[src.owner], prep.spread_mass * harm[prep.spread_owner]],
        minlength=n_lix,
    )
    _, node_comp = connected_components(prep.net.csr, directed=False)
    component = node_comp[prep.net.eu][lix.edge]
    smoother = Smoother(_midpoints(segments), params.prior_scale_m)
    m, regional, informed = prior_means(
        raw,
        length_km * t1 / 30.0,
        smoother,
        component,
        base_rate=prep.base_rate,
        base_weight=params.base_rate_weight,
    )
    # overdispersion on bins of about the kernel's window along each road, where counts
    # are large enough to show it (single segments hold mostly zeros)
    start_km = segments["start_m"].to_numpy(float) / 1000.0
    bins = np.unique(
        np.column_stack([lix.edge, np.floor(start_km / window_km).astype(np.int64)]),
        axis=0,
        return_inverse=True,
    )[1].ravel()
    # only roads connected to some episode: empty, disconnected road says nothing about k
    live = np.bincount(component, weights=raw)[component] > 0
    k = params.overdispersion_k or fit_overdispersion(
        np.bincount(bins[live], (c_t * raw)[live]).astype(float),
        np.bincount(bins[live], (m * length_km * t_eff / 30.0)[live]).astype(float),
    )
    n_eff = c_t * mass / np.maximum(length_km, 1e-12) * window_km
    e_eff = np.full(n_lix, window_km * t_eff / 30.0)
    post = posterior(n_eff, e_eff, m, k)
    lo_q = (1.0 - params.credible_level) / 2.0
    data_weight = post.data_weight(e_eff)
    decided = informed | (data_weight >= 0.5)
    classes, p = classify_posterior(
        post, params.class_thresholds, confidence=params.class_confidence, decided=decided
    )
    segments["mass"] = mass
    segments["rate"] = post.mean
    segments["rate_low"] = post.quantile(lo_q)
    segments["rate_high"] = post.quantile(1.0 - lo_q)
    segments["risk_class"] = classes
    segments["post_shape"] = post.shape
    segments["post_rate"] = post.rate
    for name, col in zip(RISK_CLASSES[1:], p.T, strict=True):
        segments[f"p_{name}"] = col
    segments["prior_rate"] = m
    segments["data_weight"] = data_weight
    segments["regional_episodes"] = regional
    factor = _near_repeat(prep, segments)
    segments["rate_now"] = post.mean * factor
    segments["near_repeat"] = factor > 1.0
    s_harm = smoother.smooth(harm_raw)
    s_mass = smoother.smooth(raw)
    segments["harm_per_episode"] = np.where(s_mass > 1e-12, s_harm / np.maximum(s_mass, 1e-12), 0.0)
    segments["incidents"], segments["top_contributors"] = _contributors(
        prep, Density(mass, count, top_id, top_val, np.ones(0))
    )
    informed_len = float(length_km[informed].sum())
    return RiskResult(
        segments=segments,
        incidents=inc,
        params=params,
        as_of=prep.as_of,
        exposure_days=t1,
        overdispersion=k,
        baseline_rate=(
            float(np.sum(m[informed] * length_km[informed]) / informed_len)
            if informed_len > 0
            else 0.0
        ),
        episodes=int(inc["episode_lead"].sum()),
    )


def _contributors(prep: ScoringInput, density: Density) -> tuple[IntArray, list[str]]:
    """Episodes reaching each segment, and the largest contributions named (spread ones too)."""
    n_lix = len(density.mass)
    k_top = prep.params.top_contributors
    count, top_id, top_val = density.count, density.top_id, density.top_val
    if len(prep.spread_lixel):  # location-uncertain episodes contribute too
        count = count + np.bincount(prep.spread_lixel, minlength=n_lix)
        if k_top:
            spread = _TopK(n_lix, k_top)
            spread.add(prep.spread_lixel, prep.spread_owner, prep.spread_mass, np.zeros(n_lix))
            top_id, top_val = merge_top([top_id, spread.idx], [top_val, spread.val], k_top)
    text = _top_text(prep.incidents, Density(density.mass, count, top_id, top_val, np.ones(0)))
    return count, text


def _near_repeat(prep: ScoringInput, segments: gpd.GeoDataFrame) -> FloatArray:
    """``1 + near_repeat_boost`` on segments within ``near_repeat_m`` of a recent episode."""
    params, inc = prep.params, prep.incidents
    factor = np.ones(len(segments))
    if params.near_repeat_m <= 0 or params.near_repeat_boost <= 0:
        return factor
    age = inc["age_days"].to_numpy(float)
    recent = inc["episode_lead"].to_numpy(bool) & (age >= 0) & (age <= params.near_repeat_days)
    if not recent.any():
        return factor
    x = _column(inc, "snap_x", np.nan)[recent]
    y = _column(inc, "snap_y", np.nan)[recent]
    pts = np.column_stack([x, y])
    pts = pts[np.isfinite(pts).all(axis=1)]
    if len(pts) == 0:
        return factor
    hits = cKDTree(_midpoints(segments)).query_ball_point(pts, params.near_repeat_m)
    near = np.unique(np.concatenate([np.asarray(h, dtype=np.int64) for h in hits]))
    factor[near] = 1.0 + params.near_repeat_boost
    return factor


def _labels(incidents: pd.DataFrame) -> npt.NDArray[np.object_]:
    ids = (
        incidents["event_id"].fillna("").astype(str).to_numpy()
        if "event_id" in incidents
        else np.full(len(incidents), "")
    )
    rows = (
        incidents["row"].astype(str).to_numpy()
        if "row" in incidents
        else np.arange(1, len(incidents) + 1).astype(str)
    )
    dates = pd.to_datetime(incidents["date"]).dt.strftime("%Y-%m-%d").fillna("").to_numpy()
    labels = [(str(e) or f"row {r}") + f" {d}" for e, r, d in zip(ids, rows, dates, strict=True)]
    return np.asarray(labels, dtype=np.object_)


def _top_text(incidents: pd.DataFrame, density: Density) -> list[str]:
    labels = _labels(incidents)
    total = density.mass
    out = [""] * len(total)
    if density.top_id.shape[1] == 0:
        return out
    share = np.divide(
        density.top_val[:, : density.top_id.shape[1]],
        total[:, None],
        out=np.zeros(density.top_id.shape),
        where=total[:, None] > 0,
    )
    show = (density.top_id >= 0) & (share >= _MIN_SHARE)
    for s in np.flatnonzero(show.any(axis=1)):
        parts = [
            f"{labels[i]} ({p:.0%})"
            for i, p, ok in zip(density.top_id[s], share[s], show[s], strict=True)
            if ok
        ]
        out[s] = "; ".join(parts)
    return out


# ----------------------------------------------------------------------------------------
# output
# ----------------------------------------------------------------------------------------

SEGMENT_FORMATS = {
    ".gpkg": "GeoPackage",
    ".parquet": "GeoParquet",
    ".geoparquet": "GeoParquet",
    ".geojson": "GeoJSON",
    ".json": "GeoJSON",
    ".csv": "CSV",
}
"""File extensions :func:`write_segments` understands, and the format each means."""


def write_segments(risk: RiskResult, path: str | Path) -> Path:
    """Write the scored segments, in the format the extension names, atomically.

    GeoPackage and GeoParquet keep the graph's CRS; GeoJSON is written in
    EPSG:4326 (RFC 7946); CSV has no geometry. A ``<stem>.params.json`` beside
    the file records the parameters and the as-of date; the two are written as a
    unit (both or neither).

    Raises
    ------
    InputError
        If the extension is not one of :data:`SEGMENT_FORMATS`.
    """
    path = Path(path)
    fmt = SEGMENT_FORMATS.get(path.suffix.lower())
    if fmt is None:
        msg = (
            f"Cannot write segments to {path}: use one of the extensions "
            f"{', '.join(SEGMENT_FORMATS)}."
        )
        raise InputError(msg)
    segs = risk.segments
    with atomic_paths(path, params_path(path)) as (tmp, tmp_params):
        if fmt == "GeoPackage":
            segs.to_file(tmp, driver="GPKG", layer="segments")
        elif fmt == "GeoParquet":
            try:
                segs.to_parquet(tmp)
            except ImportError as exc:
                msg = (
                    f"Writing {path} needs pyarrow: `pip install pyarrow`, "
                    "or choose .gpkg, .geojson or .csv."
                )
                raise InputError(msg) from exc
        elif fmt == "GeoJSON":
            segs.to_crs(settings.display_crs).to_file(tmp, driver="GeoJSON")
        else:
            pd.DataFrame(segs.drop(columns=segs.geometry.name)).to_csv(tmp, index=False)
        tmp_params.write_text(json.dumps(risk.describe(), indent=2) + "\n", encoding="utf-8")
    return path


def params_path(path: str | Path) -> Path:
    """The ``<stem>.params.json`` that :func:`write_segments` writes beside `path`."""
    path = Path(path)
    return path.with_name(path.stem + ".params.json")
