from __future__ import annotations

import math

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest

import convoyrisk as cr
from convoyrisk.risk import RiskParams, classify, empirical_bayes, exposure_days, quartic_kernel

from .conftest import PLANE, lines_graph


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
    return gpd.GeoDataFrame(df, geometry=gpd.points_from_xy(xs, [y] * len(xs)), crs=PLANE)


@pytest.fixture(scope="module")
def straight() -> object:
    return lines_graph([[(500_000, 2_000_000), (600_000, 2_000_000)]])


def test_mass_equals_summed_weights(default_risk) -> None:
    used = default_risk.incidents[default_risk.incidents["used"] == "used"]
    total = used["weight"].sum() + used["near_repeat_weight"].sum()
    assert default_risk.segments["mass"].sum() == pytest.approx(total, rel=1e-9)


def test_half_life(straight) -> None:
    params = RiskParams(half_life_days=30.0, near_repeat_boost=0.0)
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
    with pytest.raises(cr.InputError, match="kernel"):
        RiskParams(kernel="gaussian")
    with pytest.raises(cr.InputError, match="junction"):
        RiskParams(junction="continuous")
    with pytest.raises(cr.InputError, match="class_thresholds"):
        RiskParams(class_thresholds=(0.1, 0.01, 0.2))
    with pytest.raises(cr.InputError, match="Unknown risk parameter"):
        RiskParams().replace(bandwith_m=3)


def test_quartic_integrates_to_one() -> None:
    x = np.linspace(-1, 1, 200_001)
    assert np.trapezoid(quartic_kernel(x, 1.0), x) == pytest.approx(1.0, abs=1e-8)


def test_empirical_bayes_is_hauers_weighted_mean() -> None:
    """Posterior mean = w·λ0 + (1−w)·N/W with w = 1/(1 + k·λ0·W) (Hauer et al. 2002)."""
    mass = np.array([0.0, 0.5, 3.0, 0.2])
    length = np.array([1000.0, 500.0, 1000.0, 2000.0])
    k, window = 0.7, 7.0
    rate, low, high, lam0 = empirical_bayes(mass, length, window_km=window, k=k, credible_level=0.9)
    lam0_hand = mass.sum() / (length.sum() / 1000)
    n_w = mass / (length / 1000) * window
    w = 1 / (1 + k * lam0_hand * window)
    assert lam0 == pytest.approx(lam0_hand)
    np.testing.assert_allclose(rate, w * lam0_hand + (1 - w) * n_w / window)
    # the interval is the posterior Gamma's 5th and 95th percentiles (scipy, independently)
    from scipy.stats import gamma

    shape, scale = 1 / k + n_w, 1 / (1 / (k * lam0_hand) + window)
    np.testing.assert_allclose(low, gamma(shape, scale=scale).ppf(0.05))
    np.testing.assert_allclose(high, gamma(shape, scale=scale).ppf(0.95))


def test_severity_type_and_precision_weights(straight) -> None:
    params = RiskParams(
        killed_weight=1.0,
        injured_weight=0.5,
        severity_max=4.0,
        type_weights={"IED": 1.0, "Armed clash": 0.5, "rumour": 0.0},
        other_type_weight=0.25,
        max_precision_m=30_000.0,
        near_repeat_boost=0.0,
    )
    snapped = cr.snap_incidents(
        straight,
        _incidents(
            [550_000.0] * 5,
            ["2023-01-01"] * 5,
            killed=[0.0, 1.0, 10.0, 0.0, 0.0],
            injured=[0.0, 2.0, 0.0, 0.0, 0.0],
            type=["ied", "Armed clash", "IED", "rumour", "other"],
            precision_m=[0.0, 0.0, 0.0, 0.0, 50_000.0],
        ),
    )
    inc = cr.score_segments(straight, snapped, params=params, as_of="2023-01-01").incidents
    assert inc["weight"].tolist() == pytest.approx([1.0, 0.5 * 3.0, 4.0, 0.0, 0.0])
    assert inc["used"].tolist() == [
        "used",
        "used",
        "used",
        "type weight 0",
        "location too imprecise",
    ]


def test_near_repeat_boost(straight) -> None:
    """An incident a day old adds boost·w within about 1 km; three days old, nothing."""
    params = RiskParams(near_repeat_boost=2.0, near_repeat_m=1000.0, half_life_days=1e9)
    for age, expected in ((1, 3.0), (3, 1.0)):
        date = str((pd.Timestamp("2023-06-10") - pd.Timedelta(days=age)).date())
        snapped = cr.snap_incidents(straight, _incidents([550_000.0], [date]))
        r = cr.score_segments(straight, snapped, params=params, as_of="2023-06-10")
        assert r.segments["mass"].sum() == pytest.approx(expected)
    # the boost sits within near_repeat_m of the incident
    s = r.segments
    snapped = cr.snap_incidents(straight, _incidents([550_000.0], ["2023-06-09"]))
    s = cr.score_segments(straight, snapped, params=params, as_of="2023-06-10").segments
    s0 = cr.score_segments(
        straight, snapped, params=params.replace(near_repeat_boost=0.0), as_of="2023-06-10"
    ).segments
    extra = s["mass"] - s0["mass"]
    mid = (s["start_m"] + s["end_m"]) / 2 - 50_000
    assert extra[np.abs(mid) > 1_500].abs().max() < 1e-12
    assert extra.sum() == pytest.approx(2.0)


def test_overrides_and_describe(straight) -> None:
    snapped = cr.snap_incidents(straight, _incidents([550_000.0], ["2023-01-01"]))
    r = cr.score_segments(straight, snapped, bandwidth_m=2_000.0, kernel="triangular")
    d = r.describe()
    assert d["params"]["bandwidth_m"] == 2_000.0
    assert d["params"]["kernel"] == "triangular"
    assert d["as_of"] == "2023-01-01"
    assert (r.segments["mass"] > 0).sum() == 4  # 2 km either side, 1 km segments
