"""Per-segment risk: network kernel density, time decay and Empirical Bayes.

The model, step by step (defaults in :class:`RiskParams`):

1. Each road is cut into equal segments no longer than ``segment_length_m``.
2. Each incident gets a weight ``w = s · 2^(−age/half_life)``: ``s`` is its
   severity ``1 + killed_weight·killed + injured_weight·injured`` divided by the
   mean severity of the incidents used (so weights still count incidents), and
   ``age`` is days before the as-of date. Incidents after the as-of date or
   older than ``window_days`` are left out and counted.
3. The weight spreads along the network (shortest-path distance from the point
   where the incident was snapped, not straight-line distance) with a quartic
   kernel of bandwidth ``h = max(bandwidth_m, precision_m)``, so an imprecise
   incident spreads over the road its uncertainty radius allows. Each
   incident's spread is normalised to sum to ``w``: mass is conserved, also
   near junctions and network ends.
4. Summed mass per segment is an effective count ``N`` over the effective
   exposure time ``T = ∫₀^W 2^(−t/H) dt`` (the decayed length of the window).
5. Empirical Bayes (Hauer et al. 2002), Gamma–Poisson: the network baseline
   rate is ``λ₀ = N_total / L_total``; a segment's relative risk θ has the
   prior Gamma(1/k, 1/k), with the overdispersion ``k`` estimated by moments
   between roads (Hauer's sites; floored at ``k_min``). A segment's evidence is
   its smoothed count over the kernel window ``W = 2·bandwidth``:
   ``N_w = N·W/L`` against ``μ_w = λ₀·W``; the posterior is
   Gamma(1/k + N_w, 1/k + μ_w), whose mean is ``w·1 + (1−w)·N_w/μ_w`` with
   ``w = 1/(1 + k·μ_w)``. The rate is ``θ·λ₀`` per km per 30 days of ``T``; the
   interval is the posterior's central ``credible_level`` interval.
6. Risk classes cut the rate at ``class_thresholds`` (incidents per km per 30
   days).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
from scipy import stats
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra
from shapely.ops import substring

from ._errors import InputError
from .network import edges_gdf

RISK_CLASSES = ("low", "elevated", "high", "severe")
"""Names of the risk classes, lowest first."""


@dataclass(frozen=True)
class RiskParams:
    """Parameters of the risk model, with their defaults.

    Attributes
    ----------
    segment_length_m
        Longest segment (lixel) length, metres.
    bandwidth_m
        Kernel bandwidth along the network, metres (raised per incident to its
        ``precision_m``).
    half_life_days
        Time decay: an incident this many days old weighs half a new one.
    window_days
        Incidents older than this (before the as-of date) are not used.
    killed_weight, injured_weight
        Severity ``1 + killed_weight·killed + injured_weight·injured``.
    k_min
        Floor of the Empirical Bayes overdispersion parameter.
    credible_level
        Width of the rate interval (0.9: the 5th to the 95th percentile).
    class_thresholds
        Rates (incidents per km per 30 days) at which "elevated", "high" and
        "severe" start. For 100 km driven in one day they mean a chance of at
        least one incident of 0.3 %, 1.7 % and 6.5 %.
    """

    segment_length_m: float = 1_000.0
    bandwidth_m: float = 5_000.0
    half_life_days: float = 90.0
    window_days: float = 730.0
    killed_weight: float = 0.5
    injured_weight: float = 0.1
    k_min: float = 0.05
    credible_level: float = 0.9
    class_thresholds: tuple[float, float, float] = field(default=(0.001, 0.005, 0.02))

    def __post_init__(self) -> None:
        """Reject values that make no sense."""
        positive = ("segment_length_m", "bandwidth_m", "half_life_days", "window_days", "k_min")
        for name in positive:
            if not getattr(self, name) > 0:
                msg = f"`{name}` must be positive, got {getattr(self, name)}."
                raise InputError(msg)
        if not 0 < self.credible_level < 1:
            msg = f"`credible_level` must be in (0, 1), got {self.credible_level}."
            raise InputError(msg)
        if list(self.class_thresholds) != sorted(self.class_thresholds):
            msg = f"`class_thresholds` must increase, got {self.class_thresholds}."
            raise InputError(msg)


@dataclass
class RiskResult:
    """Scored segments and how they were scored.

    Attributes
    ----------
    segments
        One row per segment (see :func:`score_segments`).
    incidents
        The snapped incidents with ``weight`` and ``used`` (why not, if not).
    params
        The parameters used.
    as_of
        The as-of date.
    exposure_days
        Effective exposure time ``T`` in days.
    """

    segments: gpd.GeoDataFrame
    incidents: gpd.GeoDataFrame
    params: RiskParams
    as_of: pd.Timestamp
    exposure_days: float
    overdispersion: float = math.nan

    def describe(self) -> dict[str, Any]:
        """Parameters, as-of date and totals, for reports and map footers."""
        return {
            "as_of": self.as_of.date().isoformat(),
            "exposure_days": round(self.exposure_days, 2),
            "incidents_used": int((self.incidents["used"] == "used").sum()),
            "overdispersion_k": round(self.overdispersion, 4),
            "params": asdict(self.params),
        }


def split_segments(G: nx.MultiDiGraph, segment_length_m: float) -> gpd.GeoDataFrame:
    """Cut each road (forward edge) into equal segments of at most `segment_length_m`.

    Returns
    -------
    geopandas.GeoDataFrame
        ``segment_id``, ``u``, ``v``, ``key``, ``road_id``, ``start_m``,
        ``end_m``, ``length_m``, ``edge_length_m`` and the segment geometry.
    """
    edges = edges_gdf(G)
    rows: list[dict[str, Any]] = []
    for (u, v, k), edge in edges.iterrows():
        line = edge.geometry
        length = float(line.length)
        n = max(math.ceil(length / segment_length_m - 1e-9), 1)
        bounds = np.linspace(0.0, length, n + 1)
        for a, b in itertools.pairwise(bounds):
            rows.append(
                {
                    "u": u,
                    "v": v,
                    "key": k,
                    "road_id": edge["road_id"],
                    "start_m": float(a),
                    "end_m": float(b),
                    "length_m": float(b - a),
                    "edge_length_m": length,
                    "geometry": substring(line, a, b),
                }
            )
    segs = gpd.GeoDataFrame(rows, geometry="geometry", crs=G.graph["crs"])
    segs.insert(0, "segment_id", np.arange(len(segs)))
    return segs


def decay_weights(
    dates: pd.Series, as_of: pd.Timestamp, params: RiskParams
) -> tuple[np.ndarray, np.ndarray]:
    """Time-decay factors, and a reason string per incident ("" when used)."""
    age = (as_of - pd.to_datetime(dates)).dt.total_seconds().to_numpy() / 86_400.0
    reason = np.where(age < 0, "after the as-of date", "")
    reason = np.where((reason == "") & (age > params.window_days), "older than the window", reason)
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


def _node_graph(G: nx.MultiDiGraph) -> tuple[csr_matrix, dict[int, int]]:
    nodes = list(G.nodes)
    pos = {n: i for i, n in enumerate(nodes)}
    best: dict[tuple[int, int], float] = {}
    for u, v, data in G.edges(data=True):
        a, b = sorted((pos[u], pos[v]))
        best[(a, b)] = min(best.get((a, b), math.inf), float(data["length"]))
    if best:
        w = list(best.values())
        ia, ib = zip(*best.keys(), strict=True)
        mat = csr_matrix((w, (ia, ib)), shape=(len(nodes), len(nodes)))
    else:
        mat = csr_matrix((len(nodes), len(nodes)))
    return mat, pos


def network_distances(
    G: nx.MultiDiGraph, segments: gpd.GeoDataFrame, snapped: gpd.GeoDataFrame, cutoff_m: float
) -> np.ndarray:
    """Shortest-path distance (m) from each snapped incident to each segment midpoint.

    Distances beyond `cutoff_m` are ``inf``. Uses scipy's Dijkstra from the
    end nodes of the incidents' edges, limited to `cutoff_m`.
    """
    mat, pos = _node_graph(G)
    iu = snapped["u"].map(pos).to_numpy()
    iv = snapped["v"].map(pos).to_numpy()
    sources = np.unique(np.concatenate([iu, iv]))
    dist = dijkstra(mat, directed=False, indices=sources, limit=cutoff_m)
    row = {int(s): i for i, s in enumerate(sources)}
    edge_len = np.array(
        [
            G.edges[u, v, k]["length"]
            for u, v, k in snapped[["u", "v", "key"]].itertuples(index=False)
        ]
    )
    off = snapped["offset_m"].to_numpy()
    # distance from each incident to every node, via either end of its edge
    to_node = np.minimum(
        off[:, None] + dist[[row[i] for i in iu]],
        (edge_len - off)[:, None] + dist[[row[i] for i in iv]],
    )
    su = segments["u"].map(pos).to_numpy()
    sv = segments["v"].map(pos).to_numpy()
    mid = ((segments["start_m"] + segments["end_m"]) / 2).to_numpy()
    slen = segments["edge_length_m"].to_numpy()
    d = np.minimum(to_node[:, su] + mid[None, :], to_node[:, sv] + (slen - mid)[None, :])
    same = (
        (snapped["u"].to_numpy()[:, None] == segments["u"].to_numpy()[None, :])
        & (snapped["v"].to_numpy()[:, None] == segments["v"].to_numpy()[None, :])
        & (snapped["key"].to_numpy()[:, None] == segments["key"].to_numpy()[None, :])
    )
    direct = np.abs(off[:, None] - mid[None, :])
    d = np.where(same, np.minimum(d, direct), d)
    return np.where(d <= cutoff_m, d, np.inf)


def quartic_kernel(d: np.ndarray, h: np.ndarray | float) -> np.ndarray:
    """Quartic (biweight) kernel ``15/16·(1−(d/h)²)²/h`` for ``|d| < h``, else 0.

    Examples
    --------
    >>> float(quartic_kernel(np.array([0.0]), 1.0)[0])
    0.9375
    """
    u = np.asarray(d, dtype=float) / h
    return np.where(np.abs(u) < 1.0, 15.0 / 16.0 * (1.0 - u**2) ** 2 / h, 0.0)


def score_segments(
    G: nx.MultiDiGraph,
    snapped: gpd.GeoDataFrame,
    *,
    params: RiskParams | None = None,
    as_of: str | pd.Timestamp | None = None,
) -> RiskResult:
    """Score every road segment; see the module docstring for the model.

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

    Returns
    -------
    RiskResult
        Segments with ``mass`` (effective incidents), ``incidents`` (number of
        incidents contributing), ``rate``, ``rate_low``, ``rate_high`` (per km
        per 30 days), ``risk_class`` and ``top_contributors``.
    """
    params = params or RiskParams()
    segments = split_segments(G, params.segment_length_m)
    inc = snapped.copy()
    if as_of is None:
        dates = pd.to_datetime(inc["date"])
        as_of_ts = dates.max().normalize() if len(inc) else pd.Timestamp.today().normalize()
    else:
        try:
            as_of_ts = pd.Timestamp(as_of)
        except ValueError as exc:
            msg = f"`as_of` {as_of!r} is not a date: give it as YYYY-MM-DD."
            raise InputError(msg) from exc
    factor, reason = decay_weights(inc["date"], as_of_ts, params)
    on_network = np.isin(inc["status"].to_numpy(), ["snapped", "spread"])
    reason = np.where(~on_network, "not on the network", reason)
    severity = (
        1.0
        + params.killed_weight * inc["killed"].to_numpy(float)
        + (params.injured_weight * inc["injured"].to_numpy(float))
    )
    used = reason == ""
    mean_sev = float(severity[used].mean()) if used.any() else 1.0
    inc["weight"] = np.where(used, severity / mean_sev * factor, 0.0)
    inc["used"] = np.where(used, "used", reason)

    t_days = exposure_days(params)
    t30 = t_days / 30.0
    segments["length_m"].to_numpy() / 1000.0
    n_seg = len(segments)
    mass = np.zeros(n_seg)
    contrib = np.zeros((0, n_seg))
    live = inc[used]
    if len(live):
        h = np.maximum(params.bandwidth_m, live["precision_m"].to_numpy(float))
        d = network_distances(G, segments, live, cutoff_m=float(h.max()))
        k = quartic_kernel(d, h[:, None]) * segments["length_m"].to_numpy()[None, :]
        total = k.sum(axis=1, keepdims=True)
        k = np.divide(k, total, out=np.zeros_like(k), where=total > 0)
        contrib = k * live["weight"].to_numpy()[:, None]
        mass = contrib.sum(axis=0)

    segments["mass"] = mass
    segments["incidents"] = (contrib > 1e-12).sum(axis=0) if len(live) else 0
    rate, low, high, k = _empirical_bayes(segments, params)
    segments["rate"] = rate / t30
    segments["rate_low"] = low / t30
    segments["rate_high"] = high / t30
    segments["risk_class"] = classify(segments["rate"].to_numpy(), params.class_thresholds)
    segments["top_contributors"] = _top_contributors(contrib, live, n_seg)
    return RiskResult(
        segments=segments,
        incidents=inc,
        params=params,
        as_of=as_of_ts,
        exposure_days=t_days,
        overdispersion=k,
    )


def overdispersion(
    mass: np.ndarray, length_m: np.ndarray, road_id: np.ndarray, k_min: float
) -> float:
    """Method-of-moments overdispersion ``k`` of counts between roads (Hauer's sites).

    With road counts ``N_j`` and baseline ``μ_j = N·L_j/L``,
    ``k = Σ[(N_j − μ_j)² − N_j] / Σ μ_j²``, floored at `k_min`.
    """
    roads, inverse = np.unique(road_id, return_inverse=True)
    n_j = np.bincount(inverse, weights=mass, minlength=len(roads))
    l_j = np.bincount(inverse, weights=length_m, minlength=len(roads))
    mu_j = n_j.sum() * l_j / l_j.sum()
    denom = float(np.sum(mu_j**2))
    if denom <= 0:
        return k_min
    return max(float(np.sum((n_j - mu_j) ** 2 - n_j)) / denom, k_min)


def _empirical_bayes(
    segments: gpd.GeoDataFrame, params: RiskParams
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Posterior mean and interval of each segment's rate per km over ``T``, and ``k``.

    The relative risk θ of a segment has the prior Gamma(1/k, 1/k) (mean 1,
    variance k). Its data are the kernel-smoothed counts over the kernel's
    window ``W = 2·bandwidth``: ``N_w = mass·W/L`` against the baseline
    ``μ_w = λ₀·W`` (λ₀ = all mass over all length). The posterior is
    Gamma(1/k + N_w, 1/k + μ_w); the rate is θ·λ₀.
    """
    mass = segments["mass"].to_numpy(float)
    length_m = segments["length_m"].to_numpy(float)
    lo_q = (1.0 - params.credible_level) / 2.0
    hi_q = 1.0 - lo_q
    total = float(mass.sum())
    length_km = length_m / 1000.0
    window_km = 2.0 * params.bandwidth_m / 1000.0
    if total <= 0.0:
        # nothing observed: rate 0, with the upper bound of a Poisson count of 0 over the network
        upper = float(stats.gamma.ppf(hi_q, 1.0)) / float(length_km.sum())
        zeros = np.zeros_like(mass)
        return zeros, zeros, np.full_like(mass, upper), math.nan
    lam0 = total / float(length_km.sum())
    k = overdispersion(mass, length_m, segments["road_id"].to_numpy(), params.k_min)
    n_w = mass / length_km * window_km
    shape = 1.0 / k + n_w
    rate_param = 1.0 / k + lam0 * window_km
    theta = shape / rate_param
    low = stats.gamma.ppf(lo_q, shape, scale=1.0 / rate_param)
    high = stats.gamma.ppf(hi_q, shape, scale=1.0 / rate_param)
    return theta * lam0, low * lam0, high * lam0, k


def classify(rate: np.ndarray, thresholds: tuple[float, float, float]) -> np.ndarray:
    """Risk class names for rates, cut at `thresholds`.

    Examples
    --------
    >>> classify(np.array([0.0, 0.01, 0.05, 1.0]), (0.003, 0.015, 0.06)).tolist()
    ['low', 'elevated', 'high', 'severe']
    """
    idx = np.searchsorted(np.asarray(thresholds), rate, side="right")
    return np.asarray(RISK_CLASSES, dtype=object)[idx]


def _top_contributors(
    contrib: np.ndarray, live: gpd.GeoDataFrame, n_seg: int, top: int = 3
) -> list[str]:
    if contrib.size == 0:
        return [""] * n_seg
    labels = _labels(live)
    total = contrib.sum(axis=0)
    order = np.argsort(-contrib, axis=0)[:top]
    out = []
    for s in range(n_seg):
        if total[s] <= 0:
            out.append("")
            continue
        parts = [
            f"{labels[i]} ({contrib[i, s] / total[s]:.0%})"
            for i in order[:, s]
            if contrib[i, s] >= 0.005 * total[s]
        ]
        out.append("; ".join(parts))
    return out


def _labels(incidents: gpd.GeoDataFrame) -> list[str]:
    ids = incidents["event_id"].astype(str) if "event_id" in incidents else None
    dates = pd.to_datetime(incidents["date"]).dt.date.astype(str)
    rows = incidents["row"].astype(str)
    return [
        (eid if ids is not None and eid else f"row {r}") + f" {d}"
        for eid, r, d in zip(ids if ids is not None else [""] * len(rows), rows, dates, strict=True)
    ]
