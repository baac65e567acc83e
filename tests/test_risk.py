"""Risk model v2: closed forms for each piece, and end-to-end properties on small networks."""

from __future__ import annotations

import math

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import pytest
import shapely
from scipy import integrate, stats

import convoyrisk as cr
from convoyrisk._errors import InputError
from convoyrisk.bayes import (
    NO_DATA_CLASS,
    decay_moments,
    fit_overdispersion,
    nb_loglik,
    posterior,
)
from convoyrisk.episodes import group_episodes
from convoyrisk.exposure import Trip, dwell_hours, route_exposure
from convoyrisk.risk import RiskParams, parse_as_of, score_segments

CRS = "EPSG:32631"


def _roads(lines: list[shapely.LineString]) -> nx.MultiDiGraph:
    gdf = gpd.GeoDataFrame({"name": [f"r{i}" for i in range(len(lines))]}, geometry=lines, crs=CRS)
    return cr.graph_from_gdf(gdf)


def _incidents(
    G: nx.MultiDiGraph, xy: list[tuple[float, float]], dates: list[str], precision: float = 0.0
) -> gpd.GeoDataFrame:
    pts = gpd.GeoDataFrame(
        {
            "date": pd.to_datetime(dates),
            "precision_m": precision,
            "event_id": [f"e{i}" for i in range(len(xy))],
            "type": "IED",
            "killed": 0,
            "injured": 1,
        },
        geometry=shapely.points(xy),
        crs=CRS,
    )
    return cr.snap_incidents(G, pts, max_distance_m=60_000)


# -- closed forms ---------------------------------------------------------------------------


@pytest.mark.parametrize(("half_life", "window"), [(90.0, 730.0), (30.0, 60.0), (365.0, 100.0)])
def test_decay_moments_match_numerical_integrals(half_life: float, window: float) -> None:
    t1, t2 = decay_moments(half_life, window)
    assert t1 == pytest.approx(integrate.quad(lambda t: 0.5 ** (t / half_life), 0, window)[0])
    assert t2 == pytest.approx(integrate.quad(lambda t: 0.25 ** (t / half_life), 0, window)[0])


def test_decayed_count_has_the_variance_the_model_assumes() -> None:
    """A decayed Poisson count has mean λ·T₁ and variance λ·T₂ (simulated, seeded)."""
    rng = np.random.default_rng(3)
    lam, h, w = 0.05, 90.0, 730.0
    counts = rng.poisson(lam * w, 20_000)
    sums = np.array([np.sum(0.5 ** (rng.uniform(0, w, n) / h)) for n in counts])
    t1, t2 = decay_moments(h, w)
    assert sums.mean() == pytest.approx(lam * t1, rel=0.02)
    assert sums.var() == pytest.approx(lam * t2, rel=0.05)


def test_overdispersion_is_recovered_from_negative_binomial_counts() -> None:
    rng = np.random.default_rng(7)
    k = 2.0
    mu = rng.uniform(0.5, 5.0, 20_000)
    lam = rng.gamma(1 / k, k * mu)
    y = rng.poisson(lam).astype(float)
    assert fit_overdispersion(y, mu) == pytest.approx(k, rel=0.1)


def test_overdispersion_fit_maximises_nb_loglik() -> None:
    """The fit's objective is :func:`nb_loglik` (checked against scipy) plus the penalty.

    Counts mostly zero and fractional, as a country's bins: the optimum of the
    penalised NB log-likelihood found by brute force on a fine grid of log k.
    """
    rng = np.random.default_rng(5)
    mu = rng.uniform(0.01, 3.0, 4_000)
    y = np.where(rng.random(4_000) < 0.7, 0.0, rng.gamma(0.5, 2.0 * mu))
    grid = np.linspace(np.log(0.05), np.log(20.0), 4_001)
    objective = [nb_loglik(np.exp(g), y, mu) - 0.5 * (g / 1.5) ** 2 for g in grid]
    best = float(np.exp(grid[int(np.argmax(objective))]))
    assert fit_overdispersion(y, mu) == pytest.approx(best, rel=2e-3)


def test_posterior_intervals_cover_at_their_level_under_the_model() -> None:
    """Rates drawn from the prior, counts from Poisson: 90 % intervals cover 90 %."""
    rng = np.random.default_rng(11)
    k, m, e = 1.5, 0.2, 8.0
    lam = rng.gamma(1 / k, k * m, 40_000)
    n = rng.poisson(lam * e).astype(float)
    post = posterior(n, np.full(len(n), e), np.full(len(n), m), k)
    lo, hi = post.quantile(0.05), post.quantile(0.95)
    assert np.mean((lo <= lam) & (lam <= hi)) == pytest.approx(0.90, abs=0.01)
    # and the exceedance probability is the Gamma survival function
    p = post.p_exceed(0.3)
    ref = stats.gamma.sf(0.3, post.shape, scale=1 / post.rate)
    np.testing.assert_allclose(p, ref, rtol=1e-9)


def test_episodes_group_devices_of_one_attack_only() -> None:
    d = pd.Series(pd.to_datetime(["2023-11-04", "2023-11-04", "2023-11-05", "2023-11-04"]))
    ep = group_episodes(
        [0, 300, 300, 50_000], [0, 0, 0, 0], d, episode_m=1_000, episode_hours=12
    ).tolist()
    assert ep == [0, 0, 1, 2]  # same day and 300 m: one; next day or 50 km away: not
    assert group_episodes([0, 1], [0, 0], d[:2], episode_m=0, episode_hours=12).tolist() == [0, 1]


def test_dwell_hours_by_hand() -> None:
    length = np.array([100.0, 100.0, 100.0])
    chain = np.array([0.0, 100.0, 200.0])
    trip = Trip(speed_kph=50.0, driving_hours_per_day=10.0, halts={"x": 6.0}, halt_radius_m=0)
    hours, totals = dwell_hours(length, chain, trip, [("B", 150.0, 6.0)])
    # 6 h of driving: one day, no night; the 6 h halt on the middle segment
    assert totals == {"driving": 6.0, "halts": 6.0, "stopped_en_route": 0.0, "total": 12.0}
    assert hours.tolist() == [2.0, 8.0, 2.0]
    week = Trip(speed_kph=50.0, travel_days=7.0)
    hours, totals = dwell_hours(length, chain, week)
    assert totals["total"] == pytest.approx(168.0)
    assert hours.tolist() == pytest.approx([56.0, 56.0, 56.0])
    with pytest.raises(InputError, match="shorter than the driving time"):
        dwell_hours(length, chain, Trip(speed_kph=50.0, travel_days=0.1))


def _route_segments(n: int, rate: float, shape: float, weight: float) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "length_m": np.full(n, 1000.0),
            "chainage_m": np.arange(n) * 1000.0,
            "rate": np.full(n, rate),
            "rate_now": np.full(n, rate),
            "post_shape": np.full(n, shape),
            "post_rate": np.full(n, shape / rate),
            "data_weight": np.full(n, weight),
            "risk_class": "low",
        }
    )


def test_route_exposure_by_hand() -> None:
    """E = Σ λ·(L·lead + convoy length·dwell)/(24·30); P = 1 − exp(−E)."""
    segs = _route_segments(100, 0.01, 4.0, 1.0)
    trip = Trip(speed_kph=25.0, threat_lead_hours=24.0, convoy_length_m=2_000.0)
    out = route_exposure(segs, trip)  # 4 h of driving: 0.04 h on each km
    expected = 100 * 0.01 * (1.0 * 24.0 + 2.0 * 0.04) / 720.0
    assert out["expected_incidents"] == pytest.approx(expected)
    assert out["p_incident"] == pytest.approx(1 - math.exp(-expected))
    # a six-day halt at one place adds exposure only where the convoy sits, over its length
    halted = route_exposure(
        segs, Trip(speed_kph=25.0, halts={0: 144.0}), halt_chainage_km=[("A", 50.0, 144.0)]
    )
    extra = halted["expected_incidents"] - out["expected_incidents"]
    assert extra == pytest.approx(0.01 * 2.0 * 144.0 / 720.0, rel=1e-6)


def test_route_interval_from_one_segment_is_the_gamma_interval() -> None:
    segs = _route_segments(1, 0.02, 3.0, 1.0)
    trip = Trip(speed_kph=30.0, draws=20_000, threat_lead_hours=24.0)
    out = route_exposure(segs, trip)
    factor = (1.0 * 24.0 + 2.0 * (1 / 30)) / 720.0  # 1 km at 30 km/h, a 2 km convoy
    lo, hi = stats.gamma.ppf([0.05, 0.95], 3.0, scale=0.02 / 3.0) * factor
    assert out["expected_incidents_low"] == pytest.approx(lo, rel=0.03)
    assert out["expected_incidents_high"] == pytest.approx(hi, rel=0.03)


def test_route_interval_is_narrower_than_summed_quantiles_when_segments_are_independent() -> None:
    """Joint draws of a long route of weakly linked segments: far narrower than adding quantiles."""
    segs = _route_segments(300, 0.01, 2.0, 1.0)
    out = route_exposure(segs, Trip(draws=4_000), local_km=1.0, regional_km=1.0)
    factor = (1.0 * 24.0 + 2.0 * (1 / 30)) / 720.0
    summed_hi = 300 * stats.gamma.ppf(0.95, 2.0, scale=0.005) * factor
    summed_lo = 300 * stats.gamma.ppf(0.05, 2.0, scale=0.005) * factor
    assert out["expected_incidents_low"] <= out["expected_incidents"]
    assert out["expected_incidents"] <= out["expected_incidents_high"]
    width = out["expected_incidents_high"] - out["expected_incidents_low"]
    assert width < 0.5 * (summed_hi - summed_lo)


# -- the model end to end -------------------------------------------------------------------


def _line(x0: float, y0: float, km: float) -> shapely.LineString:
    return shapely.LineString([(x0, y0), (x0 + km * 1000.0, y0)])


def test_rate_counts_episodes_and_conserves_their_weight() -> None:
    G = _roads([_line(500_000, 1_500_000, 100)])
    inc = _incidents(
        G,
        [(550_000, 1_500_000), (550_200, 1_500_000), (520_000, 1_500_000)],
        ["2023-11-04", "2023-11-04", "2023-10-01"],
    )
    r = score_segments(G, inc, as_of="2023-11-04")
    assert r.episodes == 2
    assert r.incidents["devices"].tolist() == [2, 2, 1]
    decay = 0.5 ** (34 / r.params.half_life_days)
    # each episode's mass is conserved along the road: 1 + decay, the two IEDs counted once
    assert r.segments["mass"].sum() == pytest.approx(1.0 + decay, rel=1e-9)
    assert r.incidents["harm"].tolist() == [2.0, 0.0, 1.0]


def test_near_repeat_is_a_multiplier_apart_from_the_rate() -> None:
    G = _roads([_line(500_000, 1_500_000, 60)])
    inc = _incidents(G, [(530_000, 1_500_000)], ["2023-11-03"])
    with_nr = score_segments(G, inc, as_of="2023-11-04")
    without = score_segments(G, inc, as_of="2023-11-04", near_repeat_m=0.0)
    np.testing.assert_allclose(with_nr.segments["rate"], without.segments["rate"])
    s = with_nr.segments
    near = s["near_repeat"].to_numpy()
    assert 1 <= near.sum() <= 3  # the segments within 1 km of the point
    np.testing.assert_allclose(s["rate_now"][near], 2.0 * s["rate"][near])
    np.testing.assert_allclose(s["rate_now"][~near], s["rate"][~near])
    later = score_segments(G, inc, as_of="2023-11-10")
    assert not later.segments["near_repeat"].any()


def test_an_uncertain_incident_spreads_over_the_roads_in_its_radius() -> None:
    # two parallel roads 10 km apart, a third 80 km away; an incident known within 30 km
    G = _roads(
        [
            _line(500_000, 1_500_000, 100),
            _line(500_000, 1_510_000, 100),
            _line(500_000, 1_580_000, 100),
        ]
    )
    inc = _incidents(G, [(550_000, 1_505_000)], ["2023-11-04"], precision=30_000)
    r = score_segments(G, inc, as_of="2023-11-04", near_repeat_m=0.0)
    s = r.segments
    mass_by_road = s.groupby("road_id")["mass"].sum()
    assert mass_by_road.sum() == pytest.approx(1.0)
    # both near roads get about half (by their length inside the disc); the far one nothing
    assert mass_by_road.iloc[0] == pytest.approx(0.5, abs=0.05)
    assert mass_by_road.iloc[1] == pytest.approx(0.5, abs=0.05)
    assert mass_by_road.iloc[2] == 0.0
    mid = shapely.line_interpolate_point(s.geometry.to_numpy(), 0.5, normalized=True)
    inside = shapely.distance(mid, shapely.Point(550_000, 1_505_000)) <= 30_000
    assert (s["mass"][~inside] == 0).all()
    assert s["mass"][inside].min() > 0


def test_empty_disconnected_roads_leave_rates_unchanged() -> None:
    rng = np.random.default_rng(5)
    base = [_line(500_000, 1_500_000 + 20_000 * i, 150) for i in range(4)]
    G = _roads(base)
    xy = [
        (500_000 + rng.uniform(0, 150_000), 1_500_000 + 20_000 * int(rng.integers(4)))
        for _ in range(80)
    ]
    dates = [
        str(pd.Timestamp("2023-01-01") + pd.Timedelta(days=int(d)))
        for d in rng.integers(0, 300, 80)
    ]
    inc = _incidents(G, xy, dates)
    r1 = score_segments(G, inc, as_of="2023-11-01")
    # 1,600 km of empty road, disconnected, 300 km away
    far = [_line(500_000, 1_900_000 + 20_000 * i, 200) for i in range(8)]
    G2 = _roads(base + far)
    inc2 = _incidents(G2, xy, dates)
    r2 = score_segments(G2, inc2, as_of="2023-11-01")
    s1 = r1.segments
    s2 = r2.segments[r2.segments["road_id"].isin(s1["road_id"].unique())]
    assert len(s2) == len(s1)
    np.testing.assert_allclose(s2["rate"].to_numpy(), s1["rate"].to_numpy(), rtol=0.05)
    # and the empty roads are not painted by a prior mean: nothing is known there
    empty = r2.segments[~r2.segments["road_id"].isin(s1["road_id"].unique())]
    assert (empty["risk_class"] == NO_DATA_CLASS).all()


def test_a_base_rate_informs_roads_without_data() -> None:
    G = _roads([_line(500_000, 1_500_000, 100)])
    inc = _incidents(G, [(550_000, 1_500_000)], ["2023-11-04"])
    area = gpd.GeoDataFrame(
        {"rate": [1e-4]}, geometry=[shapely.box(400_000, 1_400_000, 700_000, 1_600_000)], crs=CRS
    )
    r = score_segments(G, inc.iloc[0:0], as_of="2023-11-04", base_rates=area)
    s = r.segments
    np.testing.assert_allclose(s["prior_rate"], 1e-4)
    assert (s["risk_class"] == "low").all()  # far below 0.001 with the data's weight
    none = score_segments(G, inc.iloc[0:0], as_of="2023-11-04")
    assert (none.segments["risk_class"] == NO_DATA_CLASS).all()


# -- inputs ---------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["04/11/2023", "2023-11-04T10:00", "Nov 4 2023", "2023-13-01"])
def test_as_of_takes_only_iso_dates(text: str) -> None:
    with pytest.raises(InputError, match="YYYY-MM-DD"):
        parse_as_of(text, pd.Series([], dtype="datetime64[ns]"))


def test_a_time_of_day_neither_moves_the_as_of_date_nor_drops_the_newest() -> None:
    dates = pd.Series(pd.to_datetime(["2023-11-01 08:00", "2023-11-04 17:45"]))
    assert parse_as_of(None, dates) == pd.Timestamp("2023-11-04")
    G = _roads([_line(500_000, 1_500_000, 60)])
    inc = _incidents(G, [(510_000, 1_500_000), (540_000, 1_500_000)], ["2023-11-01", "2023-11-04"])
    inc["date"] = dates.to_numpy()
    r = score_segments(G, inc)
    assert (r.incidents["used"] == "used").all()


@pytest.mark.parametrize(
    ("name", "value"),
    [("bandwidth_m", math.inf), ("half_life_days", math.nan), ("near_repeat_boost", math.inf)],
)
def test_non_finite_parameters_are_refused(name: str, value: float) -> None:
    with pytest.raises(InputError, match=name):
        RiskParams(**{name: value})


def test_tuning_asked_for_without_held_out_data_says_so() -> None:
    G = _roads([_line(500_000, 1_500_000, 60)])
    inc = _incidents(G, [(510_000, 1_500_000), (540_000, 1_500_000)], ["2023-11-01", "2023-11-04"])
    with pytest.warns(cr.ConvoyRiskWarning, match="held out"):
        r = score_segments(G, inc, as_of="2023-11-04", tune="on")
    assert r.params.bandwidth_m == RiskParams().bandwidth_m
    # "auto" with two episodes does not try, and says nothing
    score_segments(G, inc, as_of="2023-11-04", tune="auto")


def test_a_year_of_data_is_read_as_a_year() -> None:
    """One episode a day for a year on 100 km of road is 0.3 per km per 30 days (by hand).

    With the record's length taken from the data the rate is right; taken as
    the whole two-year window, it would be half. No decay (half-life 10⁶ days).
    """
    G = _roads([shapely.LineString([(500_000, 2_000_000), (600_000, 2_000_000)])])
    rng = np.random.default_rng(3)
    days = pd.date_range("2023-01-01", "2023-12-31", freq="D")  # 365 days, one a day
    xy = [(500_000 + float(x), 2_000_000.0) for x in rng.uniform(0, 100_000, len(days))]
    snapped = _incidents(G, xy, [d.strftime("%Y-%m-%d") for d in days])
    p = RiskParams(half_life_days=1e6, tune="off", episode_m=0.0)
    seg = score_segments(G, snapped, params=p, as_of="2023-12-31").segments
    mean = float(np.average(seg["rate"], weights=seg["length_m"]))
    expected = 365 / 100.0 / (365 * 366 / 365 / 30.0)  # episodes / km / (days observed / 30)
    # the oldest is 364 days old: the record is 365·366/365 days long
    assert mean == pytest.approx(expected, rel=0.03)
    whole = score_segments(
        G, snapped, params=p.replace(observed_since="window"), as_of="2023-12-31"
    )
    assert float(np.average(whole.segments["rate"], weights=seg["length_m"])) == pytest.approx(
        expected * 366 / 730, rel=0.03
    )
    since = score_segments(
        G, snapped, params=p.replace(observed_since="2023-01-01"), as_of="2023-12-31"
    )
    assert since.observed_days == 365.0


@pytest.mark.parametrize("value", ["01/01/2023", "2023-02-30", "soon"])
def test_observed_since_is_checked(value: str) -> None:
    with pytest.raises(InputError, match="observed_since"):
        RiskParams(observed_since=value)


def test_uncertain_episode_goes_where_the_rate_is() -> None:
    """A report known to 15 km, between a road with 60 attacks and an empty one.

    Both roads have the same length inside its radius, so sharing by length alone
    would put half of it on the empty road; by length × the rate the other
    evidence gives (the roads 20 km apart, beyond the kernel and, with a 5 km
    prior scale, the prior), almost none.
    """
    hot = shapely.LineString([(500_000, 2_000_000), (600_000, 2_000_000)])
    empty = shapely.LineString([(500_000, 2_020_000), (600_000, 2_020_000)])
    link = shapely.LineString([(600_000, 2_000_000), (600_000, 2_020_000)])
    G = _roads([hot, empty, link])
    rng = np.random.default_rng(5)
    xy = [(500_000 + float(x), 2_000_000.0) for x in rng.uniform(0, 100_000, 60)]
    days = [d.strftime("%Y-%m-%d") for d in pd.date_range("2023-01-01", periods=60, freq="6D")]
    precise = _incidents(G, xy, days)
    report = _incidents(G, [(550_000.0, 2_010_000.0)], ["2023-06-01"], precision=15_000.0)
    snapped = pd.concat([precise, report.assign(event_id="R")], ignore_index=True)
    p = RiskParams(tune="off", prior_scale_m=5_000.0, episode_m=0.0)
    seg = score_segments(G, snapped, params=p, as_of="2023-12-31").segments
    mids = shapely.get_y(seg.geometry.interpolate(0.5, normalized=True).to_numpy())
    on_empty = np.isclose(mids, 2_020_000.0)
    decay = 0.5 ** ((pd.Timestamp("2023-12-31") - pd.Timestamp("2023-06-01")).days / 180.0)
    share = float(seg.loc[on_empty, "mass"].sum()) / decay
    assert share < 0.05, share
