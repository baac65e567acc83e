"""Route exposure: the time a convoy spends near each segment, and what it risks there.

A segment's rate ``λ`` counts incident episodes per km per 30 days. Two ways
an episode on segment ``i`` (``Lᵢ`` km) meets the convoy:

- it happens on the road ahead up to ``τ`` hours (the *threat lead*) before
  the convoy passes (a device laid in its path): exposure ``Lᵢ · τ``;
- it happens where the convoy is while it is there: the convoy, ``ℓ`` km long,
  spends ``dwellᵢ`` hours on segment ``i`` (driving, halts, nights), an
  exposure ``ℓ · dwellᵢ``.

So::

    Eᵢ = λᵢ · (Lᵢ · τ + ℓ · dwellᵢ) / (24 · 30)      expected episodes on its path
    P(≥1) = 1 − exp(−Σ Eᵢ)

Intervals come from joint posterior draws: each segment's rate is drawn from
its Gamma posterior through a Gaussian copula whose correlation follows the
kernel along the route (neighbouring segments share their data) and, for the
part that rests on the prior, the prior's regional scale. Adding up
per-segment quantiles instead would give far too wide an interval.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import ndimage, special

from ._errors import InputError

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Trip:
    """How a convoy moves: pace, halts, total time, and how long a threat waits for it.

    Attributes
    ----------
    speed_kph
        Driving speed, km/h.
    driving_hours_per_day
        Hours of driving a day; the rest of each day is spent stopped on the
        route (where is not known: spread along it by length).
    travel_days
        Total time from departure to arrival, days. Time not taken by driving
        and halts is spread along the route by length (a slower pace). None:
        driving time plus the nights it needs, plus halts.
    halts
        Hours stopped at places on the route: graph node id → hours. The
        hours are spent on the route within ``halt_radius_m`` of the place.
    halt_radius_m
        Stretch of road either side of a halt that shares its exposure, metres.
    threat_lead_hours
        An incident on a segment up to this long before the convoy passes
        still threatens it (a device laid in its path). 0 counts only what
        happens while the convoy is there.
    convoy_length_m
        Length of road the convoy occupies, metres (about 50 m per vehicle):
        while it drives or halts, an episode anywhere along it counts.
    draws
        Joint posterior draws for the route's interval.
    seed
        Seed of the draws (results are reproducible).
    """

    speed_kph: float = 30.0
    driving_hours_per_day: float = 10.0
    travel_days: float | None = None
    halts: Mapping[Any, float] = field(default_factory=dict)
    halt_radius_m: float = 2_000.0
    threat_lead_hours: float = 24.0
    convoy_length_m: float = 2_000.0
    draws: int = 2_000
    seed: int = 0

    def __post_init__(self) -> None:
        """Reject values that make no sense."""
        for name in ("speed_kph", "driving_hours_per_day"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                msg = f"`{name}` must be a positive finite number, got {value}."
                raise InputError(msg)
        if not 0 < self.driving_hours_per_day <= 24:
            msg = f"`driving_hours_per_day` must be at most 24, got {self.driving_hours_per_day}."
            raise InputError(msg)
        if self.travel_days is not None and not (
            math.isfinite(self.travel_days) and self.travel_days > 0
        ):
            msg = f"`travel_days` must be a positive finite number, got {self.travel_days}."
            raise InputError(msg)
        for name in ("halt_radius_m", "threat_lead_hours", "convoy_length_m"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                msg = f"`{name}` must be zero or more and finite, got {value}."
                raise InputError(msg)
        for place, hours in self.halts.items():
            if not (math.isfinite(hours) and hours >= 0):
                msg = f"Halt at {place}: hours must be zero or more, got {hours}."
                raise InputError(msg)
        if self.draws < 10:
            msg = f"`draws` must be at least 10, got {self.draws}."
            raise InputError(msg)


def dwell_hours(
    length_km: FloatArray,
    chainage_km: FloatArray,
    trip: Trip,
    halt_chainage_km: Sequence[tuple[str, float, float]] = (),
) -> tuple[FloatArray, dict[str, float]]:
    """Hours the convoy spends on each segment, and the totals by kind.

    Parameters
    ----------
    length_km, chainage_km
        Each segment's length and the chainage of its start along the route.
    trip
        Pace, halts and total time.
    halt_chainage_km
        ``(name, chainage_km, hours)`` of each halt on the route.

    Returns
    -------
    (hours, totals)
        ``totals`` has ``driving``, ``halts``, ``stopped_en_route`` and ``total``.

    Examples
    --------
    100 km at 50 km/h, 10 h a day: 2 h of driving, no night.

    >>> h, t = dwell_hours(np.array([50.0, 50.0]), np.array([0.0, 50.0]), Trip(speed_kph=50))
    >>> h.tolist(), t["total"]
    ([1.0, 1.0], 2.0)
    """
    total_km = float(length_km.sum())
    driving: FloatArray = np.asarray(length_km / trip.speed_kph, dtype=float)
    halt = np.zeros(len(length_km))
    mid = chainage_km + length_km / 2.0
    radius_km = trip.halt_radius_m / 1000.0
    for name, at_km, stop_h in halt_chainage_km:
        near = np.abs(mid - at_km) <= max(radius_km, 0.0)
        if not near.any():
            near = np.zeros(len(mid), dtype=bool)
            near[int(np.argmin(np.abs(mid - at_km)))] = True
        share = length_km * near
        if share.sum() <= 0:  # pragma: no cover - segments have positive length
            msg = f"Halt at {name}: no road segment near it on the route."
            raise InputError(msg)
        halt += stop_h * share / share.sum()
    drive_h = float(driving.sum())
    halt_h = float(halt.sum())
    if trip.travel_days is None:
        nights = max(math.ceil(drive_h / trip.driving_hours_per_day - 1e-9) - 1, 0)
        stopped = nights * (24.0 - trip.driving_hours_per_day)
    else:
        stopped = trip.travel_days * 24.0 - drive_h - halt_h
        if stopped < -1e-9:
            msg = (
                f"`travel_days` {trip.travel_days:g} is shorter than the driving time "
                f"({drive_h:.1f} h at {trip.speed_kph:g} km/h) plus halts ({halt_h:.1f} h): "
                "give more days, a higher speed or shorter halts."
            )
            raise InputError(msg)
        stopped = max(stopped, 0.0)
    other: FloatArray = stopped * length_km / total_km if total_km > 0 else np.zeros(len(length_km))
    hours: FloatArray = np.asarray(driving + halt + other, dtype=float)
    return hours, {
        "driving": drive_h,
        "halts": halt_h,
        "stopped_en_route": stopped,
        "total": drive_h + halt_h + stopped,
    }


def _smooth_noise(
    rng: np.random.Generator, n_draws: int, grid_km: float, n_grid: int, sd_km: float
) -> FloatArray:
    """Standard normal draws on a regular grid, correlated by a Gaussian of `sd_km`."""
    sigma = max(sd_km / grid_km, 1e-9)
    pad = math.ceil(4.0 * sigma) + 1  # white noise beyond the ends, so every point is stationary
    white = rng.standard_normal((n_draws, n_grid + 2 * pad))
    smooth = ndimage.gaussian_filter1d(white, sigma, axis=1, mode="constant", truncate=4.0)
    impulse = np.zeros(2 * pad + 1)
    impulse[pad] = 1.0
    weights = ndimage.gaussian_filter1d(impulse, sigma, mode="constant", truncate=4.0)
    return np.asarray(smooth[:, pad:-pad] / math.sqrt(float(np.sum(weights**2))), dtype=float)


def joint_draws(
    segs: pd.DataFrame,
    chainage_km: FloatArray,
    *,
    local_km: float,
    regional_km: float,
    draws: int,
    seed: int,
) -> FloatArray:
    """Joint posterior draws (``draws × segments``) of the rates of a route's segments.

    Each segment's marginal is its Gamma posterior (``post_shape``,
    ``post_rate``); the copula mixes noise correlated at the kernel's scale
    (weight ``data_weight``) with noise correlated at the prior's scale.
    """
    if "post_shape" not in segs:  # rates given without a posterior: no uncertainty to draw
        return np.broadcast_to(segs["rate"].to_numpy(float), (draws, len(segs))).copy()
    shape = segs["post_shape"].to_numpy(float)
    rate = segs["post_rate"].to_numpy(float)
    weight = np.clip(segs.get("data_weight", pd.Series(1.0, index=segs.index)), 0.0, 1.0)
    weight = np.asarray(weight, dtype=float)
    mid = chainage_km + segs["length_m"].to_numpy(float) / 2000.0
    rng = np.random.default_rng(seed)
    step = max(min(local_km / 4.0, 0.5), 0.05)
    n_grid = math.ceil((float(mid.max()) if len(mid) else 0.0) / step) + 1
    at = np.minimum((mid / step).astype(np.int64), n_grid - 1)
    z_local = _smooth_noise(rng, draws, step, n_grid, local_km)[:, at]
    z_region = _smooth_noise(rng, draws, step, n_grid, regional_km)[:, at]
    z = np.sqrt(weight) * z_local + np.sqrt(1.0 - weight) * z_region
    u = np.clip(special.ndtr(z), 1e-12, 1.0 - 1e-12)
    return np.asarray(special.gammaincinv(shape, u) / rate, dtype=float)


def route_exposure(
    segs: pd.DataFrame,
    trip: Trip,
    *,
    halt_chainage_km: Sequence[tuple[str, float, float]] = (),
    credible_level: float = 0.9,
    local_km: float = 5.0,
    regional_km: float = 25.0,
) -> dict[str, Any]:
    """Expected incidents and the chance of at least one on a route, with an interval.

    Parameters
    ----------
    segs
        The route's segments in travel order with ``length_m``, ``chainage_m``,
        ``rate``, ``rate_now``, ``post_shape``, ``post_rate``, ``data_weight``.
    trip
        Pace, halts, total time and threat lead.
    halt_chainage_km
        ``(name, chainage_km, hours)`` of each halt.
    credible_level
        Width of the interval from the joint draws.
    local_km, regional_km
        Correlation scales of the draws (the kernel's bandwidth and the
        prior's scale).

    Returns
    -------
    dict
        ``expected_incidents`` (long-run rates), ``p_incident`` and its
        interval ``p_incident_low``/``p_incident_high`` (joint draws),
        ``expected_incidents_now``/``p_incident_now`` (with the near-repeat
        multiplier, for a departure within its horizon), ``exposure_hours``
        (time on the route by kind), ``threat_lead_hours`` and per-segment
        ``segment_expected`` (aligned on `segs`).
    """
    length_km = segs["length_m"].to_numpy(float) / 1000.0
    chain_km = segs["chainage_m"].to_numpy(float) / 1000.0
    hours, totals = dwell_hours(length_km, chain_km, trip, halt_chainage_km)
    convoy_km = trip.convoy_length_m / 1000.0
    factor = (length_km * trip.threat_lead_hours + convoy_km * hours) / (24.0 * 30.0)
    rate = segs["rate"].to_numpy(float)
    per_segment = rate * factor
    expected = float(per_segment.sum())
    rate_now = segs["rate_now"] if "rate_now" in segs else segs["rate"]
    expected_now = float(np.sum(rate_now.to_numpy(float) * factor))
    lam = joint_draws(
        segs,
        chain_km,
        local_km=local_km,
        regional_km=regional_km,
        draws=trip.draws,
        seed=trip.seed,
    )
    totals_draw = lam @ factor
    lo_q = (1.0 - credible_level) / 2.0
    e_lo, e_hi = np.quantile(totals_draw, [lo_q, 1.0 - lo_q])
    return {
        "expected_incidents": expected,
        "expected_incidents_low": float(e_lo),
        "expected_incidents_high": float(e_hi),
        "p_incident": 1.0 - math.exp(-expected),
        "p_incident_low": 1.0 - math.exp(-float(e_lo)),
        "p_incident_high": 1.0 - math.exp(-float(e_hi)),
        "expected_incidents_now": expected_now,
        "p_incident_now": 1.0 - math.exp(-expected_now),
        "exposure_hours": {k: round(v, 2) for k, v in totals.items()},
        "threat_lead_hours": trip.threat_lead_hours,
        "convoy_length_m": trip.convoy_length_m,
        "segment_expected": per_segment,
    }
