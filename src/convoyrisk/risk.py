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
   masses are exact integrals of the kernel (the engine: :mod:`convoyrisk.density`).
   An episode known only to within
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
import re
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import geopandas as gpd
import networkx as nx
import numpy as np
import numpy.typing as npt
import pandas as pd
import shapely
from scipy import stats
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from . import settings
from ._errors import ConvoyRiskWarning, InputError
from ._respread import respread_pass
from .bayes import (
    NO_DATA_CLASS,
    RISK_CLASSES,
    Posterior,
    Smoother,
    classify_posterior,
    decay_moments,
    fit_overdispersion,
    posterior,
    prior_means,
)
from .compiled import compile_graph
from .convert import validate_graph
from .density import (
    KERNEL_ROUGHNESS,
    MIN_SHARE,
    Density,
    KernelSpec,
    Lixels,
    Network,
    Sources,
    cut_lixels,
    edge_index,
    merge_top,
    network_arrays,
    network_density,
)
from .episodes import group_episodes
from .utils import Progress, atomic_paths

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


USED_STATUSES = ("snapped", "spread")
"""Snapping statuses of incidents the model uses."""


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
        One of :data:`convoyrisk.density.KERNELS`.
    junction
        ``"equal-split"`` (Okabe's discontinuous equal-split kernel) or ``"none"``.
    conserve_mass
        Rescale each incident's spread to sum to its weight.
    half_life_days
        Time decay: an episode this many days old weighs half a new one.
    window_days
        Incidents older than this (before the as-of date) are not used.
    observed_since
        When the incident record starts, for the rate's denominator:
        "auto" (from the data: the oldest dated incident given, moved back by
        the mean gap between incidents, :func:`observed_days`), "window" (the
        record covers the whole window) or a date YYYY-MM-DD. Rates are
        episodes over the time observed: a year of data is not two years
        without incidents.
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
    min_overdispersion
        Floor of the estimated ``k`` (1: the prior is at least as spread as an
        exponential about the regional rate, coefficient of variation 1).
        The likelihood estimate describes the bulk of the road and comes out
        low where a few hot corridors make the tail (and with few
        episodes); a ``k`` below 1 gives a corridor at five times its
        surroundings odds of under 1 in 1,000 and pulls it down, with
        intervals that miss it (docs/risk-model.md §8). Not applied to a
        ``k`` set with `overdispersion_k`.
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
    observed_since: str = "auto"
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
    min_overdispersion: float = 1.0
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
            "min_overdispersion",
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
            "min_overdispersion",
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
        if self.observed_since not in {"auto", "window"}:
            _record_start(self.observed_since)
        if self.tune not in {"auto", "on", "off"}:
            msg = f"`tune` must be auto, on or off; got {self.tune!r}."
            raise InputError(msg)
        _ = self.kernel_spec  # KernelSpec checks the kernel and the junction rule
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
    def kernel_spec(self) -> KernelSpec:
        """What the density engine (:mod:`convoyrisk.density`) needs of these parameters."""
        return KernelSpec(
            kernel=self.kernel,
            junction=self.junction,
            conserve_mass=self.conserve_mass,
            top_contributors=self.top_contributors,
        )

    @property
    def narrow_kernel_spec(self) -> KernelSpec:
        """The kernel of the interval's finer look (:func:`interval_bandwidth_m`): no names."""
        return dataclasses.replace(self.kernel_spec, top_contributors=0)

    @property
    def window_km(self) -> float:
        """Effective window ``h/∫k²`` of the kernel estimate, km (the EB exposure length)."""
        return self.bandwidth_m / KERNEL_ROUGHNESS[self.kernel] / 1000.0


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
        Decayed length of the record ``T₁ = ∫₀^W 2^(−t/H) dt`` in days
        (``W`` = `observed_days`).
    overdispersion
        The prior's ``k`` (estimated from the data unless set in ``params``).
    baseline_rate
        Length-weighted mean prior rate of the segments with an informed
        prior, episodes per km per 30 days (for reports: not used).
    episodes
        Number of episodes used.
    observed_days
        Length of the incident record the rates divide by, days
        (:func:`observed_days`).
    """

    segments: gpd.GeoDataFrame
    incidents: gpd.GeoDataFrame
    params: RiskParams
    as_of: pd.Timestamp
    exposure_days: float
    overdispersion: float = math.nan
    baseline_rate: float = 0.0
    episodes: int = 0
    observed_days: float = math.nan

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
            "observed_days": round(self.observed_days, 1),
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


def _record_start(value: str) -> pd.Timestamp:
    """`observed_since` as a date; one line saying what to write if it is not one."""
    msg = f"`observed_since` must be auto, window or a date YYYY-MM-DD; got {value!r}."
    if not _ISO_DATE.fullmatch(str(value)):
        raise InputError(msg)
    try:
        return pd.Timestamp(str(value))
    except ValueError as exc:
        raise InputError(msg) from exc


def observed_days(ages: npt.ArrayLike, params: RiskParams, as_of: pd.Timestamp) -> float:
    """Length of the incident record before the as-of date, days (at most ``window_days``).

    With ``observed_since="auto"`` the record is taken to start a mean gap
    before its oldest incident: for `n` incidents uniform over a period of
    `L` days the oldest is ``L·n/(n + 1)`` old on average, so
    ``L̂ = oldest·(n + 1)/n``. A date gives ``as_of − date`` (+ 1 day), and
    "window" the whole window. Rates divide by this time, not by the window.

    Parameters
    ----------
    ages
        Age in days of every dated incident given (NaN for none; negative
        ones, after the as-of date, are ignored).
    params
        Model parameters (``observed_since``, ``window_days``).
    as_of
        The as-of date.

    Examples
    --------
    Three incidents, the oldest 300 days old: the record is about 400 days long.

    >>> round(observed_days([0.0, 100.0, 300.0], RiskParams(), pd.Timestamp("2024-01-01")), 1)
    401.3
    """
    window = params.window_days
    if params.observed_since == "window":
        return window
    if params.observed_since != "auto":
        since = _record_start(params.observed_since)
        if since > as_of.normalize():
            msg = (
                f"`observed_since` {params.observed_since} is after the as-of date "
                f"{as_of.date().isoformat()}: give the date the incident record starts, "
                "on or before it."
            )
            raise InputError(msg)
        return float(min(window, (as_of.normalize() - since).days + 1.0))
    a = np.asarray(ages, dtype=float)
    a = a[np.isfinite(a) & (a >= 0)]
    if len(a) == 0:
        return window
    oldest = float(a.max()) + 1.0  # the as-of day itself is observed
    return float(min(window, oldest * (len(a) + 1) / len(a)))


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
        "auto" (numba from :data:`~convoyrisk.density.AUTO_NUMBA_SOURCES` incidents). Same results.
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
    density, narrow = scoring_densities(prep, engine=engine, workers=workers, progress=progress)
    return finish_scoring(
        prep, density.mass, density.count, density.top_id, density.top_val, narrow_mass=narrow.mass
    )


def scoring_densities(
    prep: ScoringInput,
    *,
    engine: str = "auto",
    workers: int | None = None,
    progress: Progress | None = None,
) -> tuple[Density, Density]:
    """The kernel density of `prep`'s sources, and that of its interval's finer look.

    What :func:`finish_scoring` takes besides `prep` (the second one's ``mass``
    as ``narrow_mass``); shared by :func:`score_segments` and
    :func:`convoyrisk.incremental.score_with_state`.
    """
    params = prep.params
    density = network_density(
        prep.net,
        prep.lix,
        prep.sources,
        params.kernel_spec,
        engine=engine,
        workers=workers,
        progress=progress,
    )
    narrow = network_density(
        prep.net,
        prep.lix,
        prep.narrow_sources,
        params.narrow_kernel_spec,
        engine=engine,
        workers=workers,
    )
    return density, narrow


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

TUNE_K_FACTORS = (1.0, 2.0, 4.0, 8.0)
"""Multiples of the estimate of ``k`` that :func:`tune_params` tries (never below its floor)."""


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
    compiled = compile_graph(G)
    road_km = float(compiled.length_m[compiled.forward_edges].sum()) / 1000.0
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
    observed_days: float
    smoother: Smoother
    component: IntArray  # connected component of each segment
    narrow_sources: Sources  # the same episodes at `interval_bandwidth_m` (the interval's check)
    midpoints: FloatArray  # each segment's midpoint (x, y), for the prior, spreading, near-repeat


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
        x = _column(inc, "snap_x", np.nan)[idx]
        y = _column(inc, "snap_y", np.nan)[idx]
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
        prec = np.maximum(_column(inc, "precision_m", 0.0)[idx], 0.0)
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
    segments, lix = cut_lixels(net, params.segment_length_m)
    segments = segments.set_crs(G.graph["crs"])
    midpoints = _midpoints(segments)
    return prepare_incidents(
        net,
        segments,
        lix,
        snapped,
        params=params,
        as_of=as_of,
        base_rate=_base_rate(segments, midpoints, params, base_rates),
        midpoints=midpoints,
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
    midpoints: FloatArray | None = None,
    reuse: ScoringInput | None = None,
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
    midpoints
        The segments' midpoints (x, y), if already computed.
    reuse
        A preparation of the same network, segments and ``prior_scale_m``: its
        midpoints, prior smoother and connected components are taken from it
        instead of computed again (they do not depend on the incidents), and
        so are the segments in the radius of each location-uncertain row it
        spread from the same point, radius and snapped position.

    Returns
    -------
    ScoringInput
        Everything scoring needs besides the kernel density.
    """
    if reuse is not None:
        midpoints = reuse.midpoints
    elif midpoints is None:
        midpoints = _midpoints(segments)
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
    offset = _column(inc, "offset_m", 0.0)[live]
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
    # the interval also looks at half the bandwidth (never finer than an episode's precision)
    narrow = dataclasses.replace(
        sources,
        h1=np.maximum(interval_bandwidth_m(params), precision[live]),
        h2=np.maximum(interval_bandwidth_m(params), precision[live]),
    )
    s_lix, s_own, s_mass = _spread(
        inc, segments, lix, net, midpoints, rows=np.flatnonzero(spread), edge=edge, reuse=reuse
    )
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
        observed_days=observed_days(inc["age_days"], params, as_of_ts),
        smoother=(
            reuse.smoother if reuse is not None else Smoother(midpoints, params.prior_scale_m)
        ),
        component=(
            reuse.component
            if reuse is not None
            else connected_components(net.csr, directed=False)[1][net.eu][lix.edge]
        ),
        narrow_sources=narrow,
        midpoints=midpoints,
    )


def _spread(
    inc: gpd.GeoDataFrame,
    segments: gpd.GeoDataFrame,
    lix: Lixels,
    net: Network,
    midpoints: FloatArray,
    *,
    rows: IntArray,
    edge: IntArray,
    reuse: ScoringInput | None = None,
) -> tuple[IntArray, IntArray, FloatArray]:
    """Lixels, owners and masses of location-uncertain episodes spread by road length.

    Each episode's pairs are contiguous, in the order of `rows` (its segments
    in the order of a k-d tree query). With `reuse`, the segments of a row
    spread there with the same point, radius and snapped position are taken
    from it.
    """
    if len(rows) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    pts = shapely.get_coordinates(inc.geometry.to_numpy()[rows])
    radius = np.maximum(_column(inc, "precision_m", 0.0)[rows], 0.0)
    weight = inc["weight"].to_numpy(float)[rows]
    length = segments["length_m"].to_numpy(float)
    # rows already spread in `reuse`: where their pairs start there, and how many (else -1)
    from_first, n_hit = _spread_known(inc, rows, pts, radius, reuse)
    query = np.flatnonzero(from_first < 0)
    hits = (
        cKDTree(midpoints).query_ball_point(pts[query], radius[query], return_sorted=False)
        if len(query)
        else np.zeros(0, dtype=object)
    )
    n_hit[query] = np.fromiter((len(h) for h in hits), dtype=np.int64, count=len(query))
    empty = np.flatnonzero(n_hit[query] == 0)
    if len(empty):  # no segment midpoint in the disc: the snapped segment holds it
        at = rows[query[empty]]
        e = edge[at]
        off = _column(inc, "offset_m", 0.0)[at]
        held = _lixel_at(lix, e, off * net.length[e] / np.maximum(net.glen[e], 1e-9))
        for i, seg in zip(empty, held, strict=True):
            hits[i] = [int(seg)]
        n_hit[query[empty]] = 1
    blocks: list[npt.ArrayLike] = list(hits)
    if reuse is not None:  # the blocks known, in order, then the queried ones in place
        old = reuse.spread_lixel
        blocks = [old[f : f + n] for f, n in zip(from_first.tolist(), n_hit.tolist(), strict=True)]
        for q, row in enumerate(query.tolist()):
            blocks[row] = hits[q]
    lixel = np.concatenate([np.asarray(b, dtype=np.int64) for b in blocks])
    ends = np.cumsum(n_hit)
    seg_len = length[lixel]
    # each episode's road length summed as ndarray.sum does (pairwise): the same shares
    total = np.array(
        [seg_len[a:b].sum() for a, b in zip((ends - n_hit).tolist(), ends.tolist(), strict=True)]
    )
    mass = np.repeat(weight, n_hit) * (seg_len / np.repeat(total, n_hit))
    return lixel, np.repeat(rows.astype(np.int64), n_hit), mass


def _spread_known(
    inc: gpd.GeoDataFrame,
    rows: IntArray,
    pts: FloatArray,
    radius: FloatArray,
    reuse: ScoringInput | None,
) -> tuple[IntArray, IntArray]:
    """For each of `rows` spread in `reuse` from the same place: its first pair there, its count.

    -1 and 0 for the others. The same place is the same point, radius and
    snapped edge and offset (the segments in the radius, or the snapped one if
    none, depend on nothing else).
    """
    first = np.full(len(rows), -1, dtype=np.int64)
    size = np.zeros(len(rows), dtype=np.int64)
    if reuse is None or len(reuse.spread_owner) == 0:
        return first, size
    old, own = reuse.incidents, reuse.spread_owner
    starts = np.flatnonzero(np.r_[True, own[1:] != own[:-1]])
    sizes = np.diff(np.r_[starts, len(own)])
    block = np.full(len(old), -1, dtype=np.int64)
    block[own[starts]] = np.arange(len(starts))
    cand = np.flatnonzero(rows < len(old))
    cand = cand[block[rows[cand]] >= 0]
    if len(cand) == 0:
        return first, size
    r = rows[cand]
    same = (
        np.all(shapely.get_coordinates(old.geometry.to_numpy()[r]) == pts[cand], axis=1)
        & (np.maximum(_column(old, "precision_m", 0.0)[r], 0.0) == radius[cand])
        & (_column(old, "offset_m", 0.0)[r] == _column(inc, "offset_m", 0.0)[r])
    )
    for col in ("u", "v", "key"):
        same &= old[col].to_numpy()[r] == inc[col].to_numpy()[r]
    cand, r = cand[same], r[same]
    first[cand] = starts[block[r]]
    size[cand] = sizes[block[r]]
    return first, size


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
    midpoints: FloatArray,
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
    mids = shapely.points(midpoints)
    polygons = layer.geometry.to_numpy()
    seg_i, area_i = shapely.STRtree(polygons).query(mids, predicate="within")
    out = np.full(len(segments), np.nan)
    if len(seg_i):
        size = np.asarray(shapely.area(polygons), dtype=float)[area_i]
        order = np.lexsort((-size, seg_i))  # per segment, the smallest area last
        out[seg_i[order]] = layer["rate"].to_numpy(float)[area_i[order]]
    return out


INTERVAL_BANDWIDTH_DIVISOR = 2.0
"""The interval also uses the density at the bandwidth divided by this (:func:`finish_scoring`)."""

INTERVAL_MAX_BANDWIDTH_M = 2_500.0
"""... and at most this bandwidth, metres (half the default bandwidth).

Tuning may widen the bandwidth to predict next year's counts best (10 km with thousands of
episodes); half of that still blurs a corridor's edges and flattens its peak, and the
interval missed the truth on a third of the riskiest road (docs/risk-model.md §6)."""


def interval_bandwidth_m(params: RiskParams) -> float:
    """Bandwidth of the interval's second look: half the bandwidth, at most the cap."""
    return min(params.bandwidth_m / INTERVAL_BANDWIDTH_DIVISOR, INTERVAL_MAX_BANDWIDTH_M)


SPREAD_ITERATIONS = 100
"""At most this many passes re-allocating location-uncertain episodes (:func:`finish_scoring`)."""

SPREAD_TOLERANCE = 1e-12
"""Re-allocation stops when no episode's share on any segment moves by more than this."""

COMPILED_MIN_PAIRS = 100_000
"""From this many (segment, episode) pairs of location-uncertain episodes, their largest
contributions per segment are ranked compiled (numba, if installed): the same results to the
bit, faster; below it numpy, which spares loading numba."""


def _compiled(n_pairs: int) -> ModuleType | None:
    """The compiled loops (:mod:`convoyrisk._nrisk`) for `n_pairs` pairs, or None for numpy."""
    if n_pairs < COMPILED_MIN_PAIRS:
        return None
    try:
        from . import _nrisk  # noqa: PLC0415 - numba is slow to import: only when worth it
    except ImportError:  # pragma: no cover - numba is a dependency
        return None
    return _nrisk


@dataclass
class _Fit:
    """One Empirical Bayes fit: the posterior and what it rests on."""

    mass: FloatArray
    raw: FloatArray
    post: Posterior
    m: FloatArray
    regional: FloatArray
    informed: BoolArray
    k: float
    e_eff: FloatArray
    per_mass: float  # Poisson-equivalent count per unit of mass per km, ``c_t·window_km``


@dataclass
class _FitBase:
    """What every fit of one scoring shares: what the re-allocation of episodes leaves alone."""

    length_km: FloatArray
    src_lixel: IntArray  # the lixel of each kernel source
    src_raw: FloatArray  # the kernel sources' decayed counts per lixel
    bins: IntArray  # bins of about the kernel's window along each road (for ``k``)
    t1: float
    t2: float

    @classmethod
    def of(cls, prep: ScoringInput) -> _FitBase:
        """The invariants of `prep`."""
        segments, lix, params = prep.segments, prep.lix, prep.params
        start_km = segments["start_m"].to_numpy(float) / 1000.0
        bins = np.unique(
            np.column_stack([lix.edge, np.floor(start_km / params.window_km).astype(np.int64)]),
            axis=0,
            return_inverse=True,
        )[1].ravel()
        t1, t2 = decay_moments(params.half_life_days, prep.observed_days)
        src_lixel = _lixel_at(lix, prep.sources.edge, prep.sources.offset)
        return cls(
            length_km=segments["length_m"].to_numpy(float) / 1000.0,
            src_lixel=src_lixel,
            src_raw=np.bincount(src_lixel, prep.sources.w1, minlength=len(segments)).astype(float),
            bins=bins,
            t1=t1,
            t2=t2,
        )


def _fit(
    prep: ScoringInput,
    kernel_mass: FloatArray,
    spread_mass: FloatArray,
    base: _FitBase,
    sums: tuple[FloatArray, FloatArray] | None = None,
) -> _Fit:
    """The fit, given the shares of the uncertain episodes.

    `sums`: the shares per segment and the raw counts, if :class:`_Respread`
    summed them already.
    """
    params, segments = prep.params, prep.segments
    n_lix = len(segments)
    if sums is None:
        by_lixel = np.bincount(prep.spread_lixel, spread_mass, minlength=n_lix).astype(float)
        # raw decayed episode counts per segment (where each episode is, not smoothed)
        raw = np.bincount(
            np.r_[base.src_lixel, prep.spread_lixel],
            weights=np.r_[prep.sources.w1, spread_mass],
            minlength=n_lix,
        ).astype(float)
    else:
        by_lixel, raw = sums
    mass = kernel_mass + by_lixel
    t1, t2 = base.t1, base.t2
    t_eff = t1 * t1 / t2
    c_t = t1 / t2
    length_km = base.length_km
    window_km = params.window_km
    # each segment's prior leaves out the evidence its posterior adds: the episodes
    # and exposure of the kernel's window around it
    m, regional, informed = prior_means(
        raw,
        length_km * t1 / 30.0,
        prep.smoother,
        prep.component,
        base_rate=prep.base_rate,
        base_weight=params.base_rate_weight,
    )
    # overdispersion on bins of about the kernel's window along each road, where counts
    # are large enough to show it (single segments hold mostly zeros)
    bins = base.bins
    # only roads connected to some episode: empty, disconnected road says nothing about k
    live = np.bincount(prep.component, weights=raw)[prep.component] > 0
    k = params.overdispersion_k or max(
        params.min_overdispersion,
        fit_overdispersion(
            np.bincount(bins[live], (c_t * raw)[live]).astype(float),
            np.bincount(bins[live], (m * length_km * t_eff / 30.0)[live]).astype(float),
        ),
    )
    n_eff = c_t * mass / np.maximum(length_km, 1e-12) * window_km
    e_eff = np.full(n_lix, window_km * t_eff / 30.0)
    return _Fit(
        mass=mass,
        raw=raw,
        post=posterior(n_eff, e_eff, m, k),
        m=m,
        regional=regional,
        informed=informed,
        k=k,
        e_eff=e_eff,
        per_mass=c_t * window_km,
    )


class _Respread:
    """Re-sharing of each uncertain episode's mass by length × the rate the others give.

    Where an episode reported to within ``R`` happened is, given the report,
    distributed over the roads inside ``R`` in proportion to length × rate
    (a Poisson process seen through a uniform location error). The rate is
    each segment's posterior mean without that episode's own share: the
    episode is placed by the other evidence, not by itself. One compiled pass
    over the (episode, segment) pairs (:func:`convoyrisk._respread.respread_pass`).
    """

    def __init__(self, prep: ScoringInput, base: _FitBase) -> None:
        self.lixel = np.ascontiguousarray(prep.spread_lixel, dtype=np.int64)
        self.owner = np.ascontiguousarray(prep.spread_owner, dtype=np.int64)
        self.length_km = np.ascontiguousarray(base.length_km)
        self.weight = np.ascontiguousarray(prep.incidents["weight"].to_numpy(float))
        self.src_raw = base.src_raw

    def step(
        self, fit: _Fit, spread_mass: FloatArray
    ) -> tuple[FloatArray, float, tuple[FloatArray, FloatArray]]:
        """The new shares, and the largest move of one relative to its episode's weight.

        Also the shares per segment and the raw counts per segment, for :func:`_fit`.
        """
        new = np.empty(len(self.lixel))
        by_lixel = np.zeros(len(self.src_raw))
        raw = self.src_raw.copy()
        moved = respread_pass(
            self.lixel,
            self.owner,
            self.length_km,
            self.weight,
            np.ascontiguousarray(spread_mass, dtype=float),
            np.ascontiguousarray(fit.post.shape, dtype=float),
            np.ascontiguousarray(fit.post.rate, dtype=float),
            float(fit.per_mass),
            new,
            by_lixel,
            raw,
        )
        return new, float(moved), (by_lixel, raw)


def finish_scoring(
    prep: ScoringInput,
    kernel_mass: FloatArray,
    count: IntArray,
    top_id: IntArray,
    top_val: FloatArray,
    *,
    narrow_mass: FloatArray | None = None,
) -> RiskResult:
    """Prior, posterior, intervals, classes, near-repeat and contributors from the density.

    With `narrow_mass` (the density of :attr:`ScoringInput.narrow_sources`, at
    half the bandwidth, at most :data:`INTERVAL_MAX_BANDWIDTH_M`), the interval
    is the union of the two posteriors' intervals: a kernel estimate is biased
    where the rate changes within its window (the peak of a hot corridor is
    flattened, its edges blurred), and the finer estimate, less biased and more
    variable, widens the interval where the two disagree (undersmoothing for
    inference: Hall 1992). ``rate`` and the class stay those of the chosen bandwidth.

    Location-uncertain episodes start spread over their radius by length and
    are then re-allocated by length × rate (:func:`_respread`) until the
    allocation settles (:data:`SPREAD_TOLERANCE`, at most
    :data:`SPREAD_ITERATIONS` passes). Shared by :func:`score_segments` and
    the dask engine, which sums partitions' densities.
    """
    params, segments, inc = prep.params, prep.segments, prep.incidents
    n_lix = len(segments)
    spread_mass = prep.spread_mass
    base = _FitBase.of(prep)
    fit = _fit(prep, kernel_mass, spread_mass, base)
    if len(spread_mass):
        respread = _Respread(prep, base)
        for _ in range(SPREAD_ITERATIONS):
            spread_mass, moved, sums = respread.step(fit, spread_mass)
            fit = _fit(prep, kernel_mass, spread_mass, base, sums)
            if moved < SPREAD_TOLERANCE:
                break
    post, m, informed, k = fit.post, fit.m, fit.informed, fit.k
    length_km = segments["length_m"].to_numpy(float) / 1000.0
    harm = inc["harm"].to_numpy(float)
    src = prep.sources
    harm_raw = np.bincount(
        np.r_[base.src_lixel, prep.spread_lixel],
        weights=np.r_[src.w1 * harm[src.owner], spread_mass * harm[prep.spread_owner]],
        minlength=n_lix,
    )
    lo_q = (1.0 - params.credible_level) / 2.0
    data_weight = post.data_weight(fit.e_eff)
    decided = informed | (data_weight >= 0.5)
    classes, p = classify_posterior(
        post, params.class_thresholds, confidence=params.class_confidence, decided=decided
    )
    segments["mass"] = fit.mass
    segments["rate"] = post.mean
    low, high = post.quantile(lo_q), post.quantile(1.0 - lo_q)
    if narrow_mass is not None:
        t1, t2 = decay_moments(params.half_life_days, prep.observed_days)
        n_window = params.window_km * interval_bandwidth_m(params) / params.bandwidth_m
        fine_mass = narrow_mass + np.bincount(prep.spread_lixel, spread_mass, minlength=n_lix)
        fine = posterior(
            t1 / t2 * fine_mass / np.maximum(length_km, 1e-12) * n_window,
            np.full(n_lix, n_window * (t1 * t1 / t2) / 30.0),
            m,
            k,
        )
        low = np.minimum(low, fine.quantile(lo_q))
        high = np.maximum(high, fine.quantile(1.0 - lo_q))
    segments["rate_low"] = low
    segments["rate_high"] = high
    segments["risk_class"] = classes
    segments["post_shape"] = post.shape
    segments["post_rate"] = post.rate
    for name, col in zip(RISK_CLASSES[1:], p.T, strict=True):
        segments[f"p_{name}"] = col
    segments["prior_rate"] = m
    segments["data_weight"] = data_weight
    segments["regional_episodes"] = fit.regional
    factor = _near_repeat(prep, segments)
    segments["rate_now"] = post.mean * factor
    segments["near_repeat"] = factor > 1.0
    s_harm = prep.smoother.smooth(harm_raw)
    s_mass = prep.smoother.smooth(fit.raw)
    segments["harm_per_episode"] = np.where(s_mass > 1e-12, s_harm / np.maximum(s_mass, 1e-12), 0.0)
    segments["incidents"], segments["top_contributors"] = _contributors(
        prep, Density(fit.mass, count, top_id, top_val, np.ones(0)), spread_mass
    )
    informed_len = float(length_km[informed].sum())
    t1, _ = decay_moments(params.half_life_days, prep.observed_days)
    return RiskResult(
        segments=segments,
        incidents=inc,
        params=params,
        as_of=prep.as_of,
        exposure_days=t1,
        observed_days=prep.observed_days,
        overdispersion=k,
        baseline_rate=(
            float(np.sum(m[informed] * length_km[informed]) / informed_len)
            if informed_len > 0
            else 0.0
        ),
        episodes=int(inc["episode_lead"].sum()),
    )


def _contributors(
    prep: ScoringInput, density: Density, spread_mass: FloatArray
) -> tuple[IntArray, list[str]]:
    """Episodes reaching each segment, and the largest contributions named (spread ones too).

    A location-uncertain episode contributes the mass it holds on the segment
    after re-allocation (`spread_mass`), the share of the segment's mass it is.
    """
    n_lix = len(density.mass)
    k_top = prep.params.top_contributors
    count, top_id, top_val = density.count, density.top_id, density.top_val
    if len(prep.spread_lixel):  # location-uncertain episodes contribute too
        count = count + np.bincount(prep.spread_lixel, minlength=n_lix)
        if k_top:
            s_id, s_val = top_per_segment(
                prep.spread_lixel, prep.spread_owner, spread_mass, n_lix, k_top
            )
            top_id, top_val = merge_top([top_id, s_id], [top_val, s_val], k_top)
    text = _top_text(prep.incidents, Density(density.mass, count, top_id, top_val, np.ones(0)))
    return count, text


def top_per_segment(
    lixel: IntArray, owner: IntArray, mass: FloatArray, n_lix: int, k: int
) -> tuple[IntArray, FloatArray]:
    """The `k` largest positive contributions to each segment (ties: the lowest owner first).

    Parameters
    ----------
    lixel, owner, mass
        One contribution per row: its segment, its incident row, its mass. An
        owner contributes at most once to a segment.
    n_lix
        Number of segments.
    k
        Contributions kept per segment (at least 1).

    Returns
    -------
    (top_id, top_val)
        ``(n_lix, k)`` arrays, largest first; −1 and 0 where fewer contribute.
        As :class:`convoyrisk.density.TopK` keeps them.
    """
    compiled = _compiled(len(lixel))
    if compiled is not None:
        top: tuple[IntArray, FloatArray] = compiled.top_per_segment(lixel, owner, mass, n_lix, k)
        return top
    # numpy: a few passes over the contributions sorted by segment
    top_id = np.full((n_lix, k), -1, dtype=np.int64)
    top_val = np.zeros((n_lix, k))
    keep = mass > 0
    order = np.argsort(lixel[keep], kind="stable")
    seg = lixel[keep][order]
    own = owner[keep][order]
    val = mass[keep][order]
    if len(seg) == 0:
        return top_id, top_val
    new_seg = np.r_[True, seg[1:] != seg[:-1]]
    starts = np.flatnonzero(new_seg)
    group = np.cumsum(new_seg) - 1
    segs = seg[starts]
    big = np.iinfo(np.int64).max
    for j in range(k):
        best = np.maximum.reduceat(val, starts)
        live = best > -np.inf
        if not live.any():
            break
        cand = (val == best[group]) & (val > -np.inf)
        first = np.minimum.reduceat(np.where(cand, own, big), starts)
        top_id[segs[live], j] = first[live]
        top_val[segs[live], j] = best[live]
        val = np.where(cand & (own == first[group]), -np.inf, val)
    return top_id, top_val


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
    hits = cKDTree(prep.midpoints).query_ball_point(pts, params.near_repeat_m)
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
    """``"label (share%); ..."`` of each segment's largest contributions (share ≥ MIN_SHARE)."""
    total = density.mass
    out = np.full(len(total), "", dtype=object)
    k = density.top_id.shape[1]
    if k == 0:
        return list(out)
    labels = _labels(incidents)
    share = np.divide(
        density.top_val[:, :k],
        total[:, None],
        out=np.zeros(density.top_id.shape),
        where=total[:, None] > 0,
    )
    show = (density.top_id >= 0) & (share >= MIN_SHARE)
    # as f"{p:.0%}": p·100 rounded half to even; each " (n%)" written once
    pct = np.rint(np.where(show, share, 0.0) * 100.0).astype(np.int64)
    suffix = np.array([f" ({n}%)" for n in range(int(pct.max(initial=0)) + 1)], dtype=object)
    for j in range(k):
        rows = np.flatnonzero(show[:, j])
        part = labels[density.top_id[rows, j]] + suffix[pct[rows, j]]
        head = out[rows]
        out[rows] = np.where(head == "", part, head + "; " + part)
    return list(out)


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
