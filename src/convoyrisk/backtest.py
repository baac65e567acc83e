"""Judging a risk estimate: hit rate, PAI and calibration, against baselines and the truth.

Two yardsticks, both independent of how the rates were estimated:

- **held-out incidents** (:func:`backtest`): fit on the incidents before a
  split date, test on those after it. *Ranking*: the share of test incidents
  on the top-scored 1/5/10 % of road (hit rate) and that share over the share
  of road flagged (PAI, Chainey, Tompson & Uhlig 2008), for the model, raw
  counts per km and a planar KDE. *Calibration*: by decile of predicted rate,
  the predicted expected count against the observed count, and the share of
  observed counts inside their predictive interval (:func:`count_calibration`);
- **a known truth** (:func:`calibration_table`), on a simulated world
  (:mod:`convoyrisk.simulate`): by decile of predicted rate, predicted against
  true rate and the share of true rates inside the interval, and the same on
  the riskiest 10 % of road and on the rest.

Deciles are *length-weighted*: each holds about a tenth of the road length,
segments of equal predicted rate staying in one decile.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import networkx as nx
import numpy as np
import numpy.typing as npt
import pandas as pd
import shapely
from scipy import stats
from scipy.spatial import cKDTree

from ._errors import InputError
from .density import kernel_density
from .episodes import group_episodes
from .risk import USED_STATUSES, RiskParams, RiskResult, score_segments

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def _column(frame: pd.DataFrame, name: str, default: float) -> FloatArray:
    """`frame[name]` as floats, `default` where missing or not finite (or the column absent)."""
    if name not in frame:
        return np.full(len(frame), default)
    values = pd.to_numeric(frame[name], errors="coerce").to_numpy(float)
    return np.where(np.isfinite(values), values, default)


def _split_date(value: str | pd.Timestamp) -> pd.Timestamp:
    if isinstance(value, str) and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
        msg = f"`split` {value!r} is not a date: give it as YYYY-MM-DD."
        raise InputError(msg)
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        msg = f"`split` {value!r} is not a date: give it as YYYY-MM-DD."
        raise InputError(msg) from exc
    if pd.isna(ts):  # pd.Timestamp("") is NaT at run time
        msg = f"`split` {value!r} is not a date: give it as YYYY-MM-DD."  # type: ignore[unreachable]
        raise InputError(msg)
    return ts


def locate_segments(segments: pd.DataFrame, points: pd.DataFrame) -> IntArray:
    """Position (row number) in `segments` of the segment holding each snapped point, or −1.

    `points` needs ``u``, ``v``, ``key`` and ``offset_m`` (as from
    :func:`convoyrisk.snapping.snap_incidents`); `segments` is the output of
    :func:`~convoyrisk.density.split_segments` or :attr:`RiskResult.segments`.
    """
    seg_edges = pd.MultiIndex.from_arrays(
        [segments["u"].to_numpy(), segments["v"].to_numpy(), segments["key"].to_numpy()]
    )
    first = ~seg_edges.duplicated()
    edge_start = np.flatnonzero(first)
    edges = seg_edges[first]
    idx = edges.get_indexer(
        pd.MultiIndex.from_arrays(
            [points["u"].to_numpy(), points["v"].to_numpy(), points["key"].to_numpy()]
        )
    )
    out = np.full(len(points), -1, dtype=np.int64)
    ok = idx >= 0
    edge_end = np.r_[edge_start[1:], len(segments)]
    # one increasing key over all segments: start along the edge, shifted past earlier edges
    edge_len = segments["edge_length_m"].to_numpy(float)[edge_start]
    shift = np.r_[0.0, np.cumsum(edge_len + 1.0)[:-1]]
    seg_edge = np.repeat(np.arange(len(edge_start)), edge_end - edge_start)
    key = segments["start_m"].to_numpy(float) + shift[seg_edge]
    e = idx[ok]
    off = np.clip(_column(points, "offset_m", 0.0)[ok], 0.0, edge_len[e])
    pos = np.searchsorted(key, off + shift[e], side="right") - 1
    out[ok] = np.clip(pos, edge_start[e], edge_end[e] - 1)
    return out


def flagged_share(
    score: npt.ArrayLike,
    length: npt.ArrayLike,
    hits: npt.ArrayLike,
    coverage: float,
) -> tuple[float, float]:
    """Share of `hits` on the top-scored segments covering `coverage` of the length.

    Segments are taken by decreasing score until `coverage` of the total
    length is flagged; segments tied at the boundary are taken in proportion
    (the expectation over a random order of the ties), so flagged length is
    exactly ``coverage·total``.

    Returns
    -------
    (hit_rate, pai)
        Share of hits captured, and ``hit_rate / coverage``.

    Examples
    --------
    >>> flagged_share([3, 2, 1, 0], [1, 1, 1, 1], [2, 1, 1, 0], 0.25)
    (0.5, 2.0)
    >>> flagged_share([1, 1, 0, 0], [1, 1, 1, 1], [2, 0, 2, 0], 0.25)
    (0.25, 1.0)
    """
    s = np.asarray(score, dtype=float)
    ln = np.asarray(length, dtype=float)
    hv = np.asarray(hits, dtype=float)
    total_hits = float(hv.sum())
    if total_hits <= 0:
        return math.nan, math.nan
    order = np.argsort(-s, kind="stable")
    s, ln, hv = s[order], ln[order], hv[order]
    start = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    g_len = np.add.reduceat(ln, start)
    g_hit = np.add.reduceat(hv, start)
    target = coverage * float(ln.sum())
    before = np.r_[0.0, np.cumsum(g_len)[:-1]]
    frac = np.clip((target - before) / np.where(g_len > 0, g_len, 1.0), 0.0, 1.0)
    captured = float(np.sum(frac * g_hit))
    rate = captured / total_hits
    return rate, rate / coverage


def decile_of(score: npt.ArrayLike, length: npt.ArrayLike, n_bins: int = 10) -> IntArray:
    """Length-weighted bin (1 = lowest score … `n_bins`) of each segment, ties kept together.

    Segments are sorted by score; a group of equal scores goes to the bin
    holding the middle of its stretch of cumulative length.

    Examples
    --------
    >>> decile_of([0.1, 0.4, 0.2, 0.3], [1, 1, 1, 1], n_bins=2).tolist()
    [1, 2, 1, 2]
    >>> decile_of([0.0, 0.0, 0.0, 1.0], [1, 1, 1, 1], n_bins=4).tolist()
    [2, 2, 2, 4]
    """
    s = np.asarray(score, dtype=float)
    ln = np.asarray(length, dtype=float)
    if len(s) == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(s, kind="stable")
    start = np.flatnonzero(np.r_[True, s[order][1:] != s[order][:-1]])
    g_len = np.add.reduceat(ln[order], start)
    total = float(ln.sum())
    middle = (np.cumsum(g_len) - g_len / 2.0) / (total if total > 0 else 1.0)
    g_bin = np.minimum(np.floor(middle * n_bins).astype(np.int64), n_bins - 1) + 1
    out = np.empty(len(s), dtype=np.int64)
    out[order] = np.repeat(g_bin, np.diff(np.r_[start, len(s)]))
    return out


def top_share(
    value: npt.ArrayLike, length: npt.ArrayLike, share: float = 0.1
) -> npt.NDArray[np.bool_]:
    """Segments of highest `value` holding the first `share` of the road length.

    A segment is in if the length of the higher-valued segments before it is
    below ``share·total`` (so the one crossing the boundary is in).

    Examples
    --------
    >>> top_share([5.0, 1.0, 3.0, 2.0], [1, 1, 1, 1], 0.5).tolist()
    [True, False, True, False]
    """
    v = np.asarray(value, dtype=float)
    ln = np.asarray(length, dtype=float)
    order = np.argsort(-v, kind="stable")
    before = np.cumsum(ln[order]) - ln[order]
    out = np.zeros(len(v), dtype=bool)
    out[order] = before < share * float(ln.sum())
    return out


def _weighted(values: FloatArray, weights: FloatArray) -> float:
    total = float(weights.sum())
    return float(np.sum(values * weights) / total) if total > 0 else math.nan


def calibration_table(
    pred: npt.ArrayLike,
    low: npt.ArrayLike,
    high: npt.ArrayLike,
    truth: npt.ArrayLike,
    length_m: npt.ArrayLike,
    *,
    n_bins: int = 10,
    top: float = 0.1,
) -> pd.DataFrame:
    """Predicted against true rates, by decile of predicted rate, and on the riskiest road.

    Parameters
    ----------
    pred, low, high
        Predicted rate and its interval per segment.
    truth
        True rate per segment (same unit), e.g. :meth:`SimulatedWorld.true_rate
        <convoyrisk.simulate.SimulatedWorld.true_rate>`.
    length_m
        Segment lengths: every mean and share is weighted by length.
    n_bins
        Bins of predicted rate (:func:`decile_of`).
    top
        Share of road length in the "top" summary row (by *true* rate, :func:`top_share`).

    Returns
    -------
    pandas.DataFrame
        One row per bin (``group`` "1" … "10", lowest predicted first), then
        ``"top 10% of true rate"``, ``"rest"`` and ``"all"``: ``length_share``,
        ``segments``, ``predicted`` and ``true`` (length-weighted mean
        rates), ``ratio`` (predicted / true) and ``coverage`` (length share
        of segments with ``low ≤ truth ≤ high``).
    """
    p, lo, hi, t, ln = (np.asarray(a, dtype=float) for a in (pred, low, high, truth, length_m))
    if not len(p) == len(lo) == len(hi) == len(t) == len(ln):
        msg = "`pred`, `low`, `high`, `truth` and `length_m` must have the same length."
        raise InputError(msg)
    inside = ((lo <= t) & (t <= hi)).astype(float)
    total = float(ln.sum())
    bins = decile_of(p, ln, n_bins)
    hot = top_share(t, ln, top)
    groups = [(str(b), bins == b) for b in range(1, n_bins + 1)]
    groups += [(f"top {top:.0%} of true rate", hot), ("rest", ~hot), ("all", np.ones_like(hot))]
    rows = []
    for name, m in groups:
        if not m.any():
            continue
        mean_p = _weighted(p[m], ln[m])
        mean_t = _weighted(t[m], ln[m])
        rows.append(
            {
                "group": name,
                "length_share": float(ln[m].sum()) / total if total > 0 else math.nan,
                "segments": int(m.sum()),
                "predicted": mean_p,
                "true": mean_t,
                "ratio": mean_p / mean_t if mean_t > 0 else math.nan,
                "coverage": _weighted(inside[m], ln[m]),
            }
        )
    return pd.DataFrame(rows)


def count_calibration(
    expected: npt.ArrayLike,
    expected_low: npt.ArrayLike,
    expected_high: npt.ArrayLike,
    observed: npt.ArrayLike,
    length_m: npt.ArrayLike,
    *,
    n_bins: int = 10,
    level: float = 0.9,
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Predicted expected counts against observed counts on held-out data.

    The predictive interval of a count whose mean lies in ``[E_low, E_high]``
    is taken as ``[F⁻¹(α/2; E_low), F⁻¹(1 − α/2; E_high)]``, ``F`` the Poisson
    distribution function and ``α = 1 − level``: it holds the central `level`
    of every Poisson count with a mean in the interval, so it is at least as
    wide as the posterior predictive interval of a model whose interval is
    right (a conservative check: a miss is a real miss). A bin's interval is
    built the same way from the sums of its segments' ``E_low`` and ``E_high``
    (wide: the sum of lower bounds is far below any joint lower bound), so a
    bin is also checked against the Poisson interval at its expected count.

    Parameters
    ----------
    expected, expected_low, expected_high
        Predicted expected count per segment over the test period, and its interval.
    observed
        Observed count per segment over the test period.
    length_m
        Segment lengths (for the length-weighted bins and shares).
    n_bins
        Bins of predicted expected count per km (:func:`decile_of`).
    level
        Level of the predictive intervals.

    Returns
    -------
    (table, coverage)
        Per bin (lowest first): ``group``, ``length_share``, ``expected``,
        ``expected_low``, ``expected_high``, ``observed``, ``ratio``
        (observed / expected), ``interval_low``, ``interval_high`` (the bin's
        predictive interval) and ``inside``; ``poisson_low``,
        ``poisson_high`` and ``inside_poisson``: the same for a Poisson count
        whose mean is exactly ``expected`` (no rate uncertainty: the sharp
        check of the point prediction). `coverage`: length share of segments
        whose own count lies in its predictive interval, ``"all"`` and
        ``"top_decile"``; ``"bins"`` and ``"bins_poisson"``, the share of bins
        whose count lies in the bin's interval and in its Poisson interval.
    """
    e, el, eh, o, ln = (
        np.asarray(a, dtype=float)
        for a in (expected, expected_low, expected_high, observed, length_m)
    )
    alpha = 1.0 - level
    lo_q = stats.poisson.ppf(alpha / 2.0, el)
    hi_q = stats.poisson.ppf(1.0 - alpha / 2.0, eh)
    inside = ((lo_q <= o) & (o <= hi_q)).astype(float)
    per_km = np.divide(e, ln, out=np.zeros_like(e), where=ln > 0)
    bins = decile_of(per_km, ln, n_bins)
    total = float(ln.sum())
    rows = []
    for b in range(1, n_bins + 1):
        m = bins == b
        if not m.any():
            continue
        s_e, s_lo, s_hi, s_o = (float(a[m].sum()) for a in (e, el, eh, o))
        i_lo = float(stats.poisson.ppf(alpha / 2.0, s_lo))
        i_hi = float(stats.poisson.ppf(1.0 - alpha / 2.0, s_hi))
        p_lo = float(stats.poisson.ppf(alpha / 2.0, s_e))
        p_hi = float(stats.poisson.ppf(1.0 - alpha / 2.0, s_e))
        rows.append(
            {
                "group": str(b),
                "length_share": float(ln[m].sum()) / total if total > 0 else math.nan,
                "expected": s_e,
                "expected_low": s_lo,
                "expected_high": s_hi,
                "observed": s_o,
                "ratio": s_o / s_e if s_e > 0 else math.nan,
                "interval_low": i_lo,
                "interval_high": i_hi,
                "inside": bool(i_lo <= s_o <= i_hi),
                "poisson_low": p_lo,
                "poisson_high": p_hi,
                "inside_poisson": bool(p_lo <= s_o <= p_hi),
            }
        )
    table = pd.DataFrame(rows)
    top = bins == bins.max() if len(bins) else np.zeros(0, dtype=bool)
    coverage = {
        "all": _weighted(inside, ln),
        "top_decile": _weighted(inside[top], ln[top]),
        "bins": float(table["inside"].mean()) if len(table) else math.nan,
        "bins_poisson": float(table["inside_poisson"].mean()) if len(table) else math.nan,
    }
    return table, coverage


@dataclass
class BacktestResult:
    """Hit rate and PAI of the model and two baselines on a time split.

    Attributes
    ----------
    table
        One row per method and coverage: ``method`` ("network_kde",
        "raw_counts", "planar_kde"), ``coverage``, ``hit_rate``, ``pai``,
        ``n_test``.
    scores
        Per segment: ``network_kde``, ``raw_counts``, ``planar_kde`` scores and
        ``test_incidents``.
        ``test_incidents``, and ``expected``, ``expected_low``,
        ``expected_high`` (the model's expected count over the test period).
    risk
        The model fitted on the incidents before the split.
    split
        The split date.
    n_train, n_test
        Incidents used for fitting and for testing.
    test_days
        Length of the test period (`horizon_days`, else up to the last test incident).
    calibration
        The model's expected against observed counts by decile of predicted
        rate (:func:`count_calibration`).
    interval_coverage
        Shares of observed counts inside their predictive interval
        (:func:`count_calibration`): ``"all"``, ``"top_decile"``, ``"bins"``.
    level
        Level of the predictive intervals (the model's ``credible_level``).
    """

    table: pd.DataFrame
    scores: pd.DataFrame
    risk: RiskResult
    split: pd.Timestamp
    n_train: int
    n_test: int
    test_days: float = math.nan
    calibration: pd.DataFrame = field(default_factory=pd.DataFrame)
    interval_coverage: dict[str, float] = field(default_factory=dict)
    level: float = 0.9


def planar_kde(
    segments: gpd.GeoDataFrame,
    points: gpd.GeoSeries,
    weights: npt.ArrayLike,
    *,
    bandwidth_m: float,
    kernel: str = "quartic",
) -> FloatArray:
    """Euclidean (planar) kernel density of weighted points at each segment's midpoint.

    The baseline the network estimate is compared with: the same kernel and
    bandwidth, over straight-line distance.
    """
    mid = shapely.get_coordinates(
        shapely.line_interpolate_point(segments.geometry.to_numpy(), 0.5, normalized=True)
    )
    pts = shapely.get_coordinates(points.to_numpy())
    w = np.asarray(weights, dtype=float)
    out = np.zeros(len(mid))
    if len(pts) == 0:
        return out
    tree = cKDTree(mid)
    step = 2_000
    for lo in range(0, len(pts), step):
        other = cKDTree(pts[lo : lo + step])
        sdm = tree.sparse_distance_matrix(other, bandwidth_m, output_type="coo_matrix")
        k = kernel_density(sdm.data, bandwidth_m, kernel) * w[lo : lo + step][sdm.col]
        out += np.bincount(sdm.row, weights=k, minlength=len(mid))
    return out


def backtest(
    G: nx.MultiDiGraph,
    snapped: gpd.GeoDataFrame,
    split: str | pd.Timestamp,
    *,
    params: RiskParams | None = None,
    horizon_days: float | None = None,
    coverages: tuple[float, ...] = (0.01, 0.05, 0.10),
    group_column: str | None = None,
    **overrides: Any,  # noqa: ANN401 - any parameter's type
) -> BacktestResult:
    """Fit on incidents before `split`, test on those after: ranking and calibration.

    The network estimate (posterior rates) is compared in the same run with
    raw counts per segment (per km) and a planar KDE (same kernel, bandwidth
    and weights, straight-line distance). Test incidents are those on the
    network (snapped or spread) dated from `split` to `split + horizon_days`
    (all later ones if None), counted on the segment holding their snapped
    point. The model's expected count over the test period, ``rate·km·T/30``
    (and the same from ``rate_low`` and ``rate_high``), is set against the
    observed counts by decile (:func:`count_calibration`).

    Parameters
    ----------
    G, snapped
        The graph and the snapped incidents (train and test).
    split
        Fit before this date (YYYY-MM-DD), test from it.
    params, overrides
        Model parameters.
    horizon_days
        Days of test data after `split`; None: up to the last incident.
    coverages
        Shares of road flagged for hit rate and PAI.
    group_column
        Test rows sharing a value of this column (e.g. ``episode_id``) count
        as one, on the segment of their first row.
    """
    params = (params or RiskParams()).replace(**overrides)
    split_ts = _split_date(split)
    dates = pd.to_datetime(snapped["date"])
    train = snapped[(dates < split_ts).to_numpy()]
    end = split_ts + pd.Timedelta(days=horizon_days) if horizon_days is not None else None
    on_net = snapped["status"].astype(str).isin(USED_STATUSES).to_numpy()
    test_mask = on_net & (dates >= split_ts).to_numpy()
    if end is not None:
        test_mask &= (dates < end).to_numpy()
    test = snapped[test_mask]
    if group_column is not None and len(test):
        test = test[~test[group_column].duplicated().to_numpy()]
    elif len(test):  # count test episodes as the model counts them (devices of one attack once)
        xy = test[["snap_x", "snap_y"]].to_numpy(float)
        ep = group_episodes(
            xy[:, 0],
            xy[:, 1],
            test["date"],
            episode_m=params.episode_m,
            episode_hours=params.episode_hours,
        )
        test = test[~pd.Series(ep).duplicated().to_numpy()]
    if len(test) == 0:
        msg = (
            f"No incident on the network on or after the split date {split_ts.date()}: "
            "choose an earlier `--split`."
        )
        raise InputError(msg)
    if len(train) == 0:
        msg = f"No incident before the split date {split_ts.date()}: choose a later `--split`."
        raise InputError(msg)
    risk = score_segments(G, train, params=params, as_of=split_ts)
    segs = risk.segments
    length = segs["length_m"].to_numpy(float)
    test_seg = locate_segments(segs, test)
    test_counts = np.bincount(test_seg[test_seg >= 0], minlength=len(segs)).astype(float)
    inc = risk.incidents
    used = inc[inc["used"] == "used"]
    if "episode_lead" in used:
        used = used[used["episode_lead"].to_numpy(bool)]
    train_seg = locate_segments(segs, used)
    raw = np.bincount(train_seg[train_seg >= 0], minlength=len(segs)) / (length / 1000.0)
    planar = planar_kde(
        segs,
        used.geometry,
        used["weight"].to_numpy(float),
        bandwidth_m=risk.params.bandwidth_m,
        kernel=risk.params.kernel,
    )
    scores = pd.DataFrame(
        {
            "segment_id": segs["segment_id"].to_numpy(),
            "network_kde": segs["rate"].to_numpy(float),
            "raw_counts": raw,
            "planar_kde": planar,
            "test_incidents": test_counts,
        }
    )
    test_days = (
        float(horizon_days)
        if horizon_days is not None
        else float((pd.to_datetime(test["date"]).max() - split_ts).days + 1)
    )
    exposure = length / 1000.0 * test_days / 30.0
    for col, name in (
        ("rate", "expected"),
        ("rate_low", "expected_low"),
        ("rate_high", "expected_high"),
    ):
        scores[name] = segs[col].to_numpy(float) * exposure
    level = float(getattr(params, "credible_level", 0.9))
    calibration, interval_coverage = count_calibration(
        scores["expected"],
        scores["expected_low"],
        scores["expected_high"],
        test_counts,
        length,
        level=level,
    )
    rows = []
    for method in ("network_kde", "raw_counts", "planar_kde"):
        for c in coverages:
            hit, pai = flagged_share(scores[method], length, test_counts, c)
            rows.append(
                {
                    "method": method,
                    "coverage": c,
                    "hit_rate": hit,
                    "pai": pai,
                    "n_test": int(test_counts.sum()),
                }
            )
    return BacktestResult(
        table=pd.DataFrame(rows),
        scores=scores,
        risk=risk,
        split=split_ts,
        n_train=len(used),
        n_test=int(test_counts.sum()),
        test_days=test_days,
        calibration=calibration,
        interval_coverage=interval_coverage,
        level=level,
    )
