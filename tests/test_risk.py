from __future__ import annotations

import math

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convoyrisk as cr
from convoyrisk.risk import RiskParams, classify, exposure_days, quartic_kernel

from .conftest import UTM31, lines_graph


def _incidents(
    xs: list[float], dates: list[str], y: float = 2_000_000.0, **cols
) -> gpd.GeoDataFrame:
    df = pd.DataFrame(
        {
            "row": range(1, len(xs) + 1),
            "date": pd.to_datetime(dates),
            "killed": 0.0,
            "injured": 0.0,
            "precision_m": 0.0,
            "event_id": "",
            **cols,
        }
    )
    return gpd.GeoDataFrame(df, geometry=gpd.points_from_xy(xs, [y] * len(xs)), crs=UTM31)


@pytest.fixture(scope="module")
def straight() -> object:
    return lines_graph([[(500_000, 2_000_000), (600_000, 2_000_000)]])


def test_kernel_profile_on_a_long_straight_road(straight) -> None:
    """One incident far from the ends: segment mass is the quartic kernel's integral over it."""
    params = RiskParams(segment_length_m=100.0, bandwidth_m=5000.0)
    snapped = cr.snap_incidents(straight, _incidents([550_000.0], ["2023-01-01"]))
    segs = cr.score_segments(straight, snapped, params=params).segments
    h = 5000.0

    def cdf(d: np.ndarray) -> np.ndarray:  # integral of the quartic kernel from -h to d
        u = np.clip(d / h, -1, 1)
        return 0.5 + 15 / 16 * (u - 2 * u**3 / 3 + u**5 / 5)

    a = segs["start_m"].to_numpy() - 50_000.0
    b = segs["end_m"].to_numpy() - 50_000.0
    exact = cdf(b) - cdf(a)
    assert segs["mass"].sum() == pytest.approx(1.0, abs=1e-12)
    assert np.abs(segs["mass"].to_numpy() - exact).max() < 2e-4
    # symmetric around the incident, zero beyond the bandwidth
    assert segs.loc[np.abs(segs["start_m"] - 50_000) > h + 100, "mass"].sum() == 0.0


def test_mass_equals_summed_weights(default_risk) -> None:
    used = default_risk.incidents[default_risk.incidents["used"] == "used"]
    assert default_risk.segments["mass"].sum() == pytest.approx(used["weight"].sum(), rel=1e-9)


def test_half_life(straight) -> None:
    params = RiskParams(half_life_days=30.0)
    snapped = cr.snap_incidents(
        straight, _incidents([550_000.0, 520_000.0], ["2023-01-31", "2023-01-01"])
    )
    inc = cr.score_segments(straight, snapped, params=params, as_of="2023-01-31").incidents
    assert inc["weight"].iloc[1] / inc["weight"].iloc[0] == pytest.approx(0.5)


def test_future_and_old_incidents_are_counted_not_used(straight) -> None:
    params = RiskParams(window_days=100.0)
    snapped = cr.snap_incidents(
        straight, _incidents([550_000.0] * 3, ["2023-06-01", "2024-01-01", "2020-01-01"])
    )
    inc = cr.score_segments(straight, snapped, params=params, as_of="2023-06-30").incidents
    assert inc["used"].tolist() == ["used", "after the as-of date", "older than the window"]


def test_exposure_days_closed_form() -> None:
    p = RiskParams(half_life_days=90.0, window_days=180.0)
    # ∫0^180 2^(-t/90) dt = 90/ln2 · (1 − 1/4)
    assert exposure_days(p) == pytest.approx(90 / math.log(2) * 0.75)


def test_no_incidents_gives_zero_rate_with_an_upper_bound(straight) -> None:
    snapped = cr.snap_incidents(straight, _incidents([550_000.0], ["2030-01-01"]))
    segs = cr.score_segments(straight, snapped, as_of="2023-01-01").segments
    assert (segs["rate"] == 0).all() and (segs["rate_high"] > 0).all()


def test_rates_and_intervals(default_risk) -> None:
    s = default_risk.segments
    assert (s["rate_low"] <= s["rate"]).all() and (s["rate"] <= s["rate_high"]).all()
    # Kidal–Anéfis (all six incidents) scores above roads with none
    names = s["risk_class"].unique().tolist()
    assert set(names) <= {"low", "elevated", "high", "severe"}
    by_road = s.groupby("road_id")["rate"].max()
    assert by_road.idxmax() in {0, 1, 6}  # the three roads meeting at Anéfis
    assert s["top_contributors"].str.contains("MINUSMA-2023-5").any()


def test_classify_thresholds() -> None:
    got = classify(np.array([0.0, 0.001, 0.0049, 0.005, 0.02, 3.0]), (0.001, 0.005, 0.02))
    assert got.tolist() == ["low", "elevated", "elevated", "high", "severe", "severe"]


def test_bad_params() -> None:
    with pytest.raises(cr.InputError, match="segment_length_m"):
        RiskParams(segment_length_m=0)


def test_quartic_integrates_to_one() -> None:
    x = np.linspace(-1, 1, 200_001)
    assert np.trapezoid(quartic_kernel(x, 1.0), x) == pytest.approx(1.0, abs=1e-8)


@settings(max_examples=25, deadline=None)
@given(extra=st.floats(min_value=500_000, max_value=600_000), age=st.integers(0, 300))
def test_adding_an_incident_never_lowers_a_segment_mass(straight, extra, age) -> None:
    base = _incidents([530_000.0, 570_000.0], ["2023-01-01", "2023-03-01"])
    more = _incidents(
        [530_000.0, 570_000.0, extra],
        [
            "2023-01-01",
            "2023-03-01",
            str((pd.Timestamp("2023-06-01") - pd.Timedelta(days=age)).date()),
        ],
    )
    params = RiskParams(k_min=1.0)
    r1 = cr.score_segments(
        straight, cr.snap_incidents(straight, base), params=params, as_of="2023-06-01"
    )
    r2 = cr.score_segments(
        straight, cr.snap_incidents(straight, more), params=params, as_of="2023-06-01"
    )
    assert r2.segments["mass"].sum() > r1.segments["mass"].sum()
    assert (r2.segments["mass"].to_numpy() >= r1.segments["mass"].to_numpy() - 1e-12).all()
