"""The backtest's arithmetic (hit rate, PAI, deciles, calibration) by hand, and its bookkeeping."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import convoyrisk as cr
from convoyrisk.backtest import (
    backtest,
    calibration_table,
    count_calibration,
    decile_of,
    flagged_share,
    top_share,
)
from convoyrisk.risk import RiskParams
from convoyrisk.simulate import desert_network, simulate_world


@pytest.fixture(scope="module")
def desert():
    return desert_network(seed=2)


def test_flagged_share_by_hand() -> None:
    # 4 segments of 1 km: flagging 50 % takes the two best, holding 3 of 4 hits
    assert flagged_share([0.9, 0.5, 0.1, 0.0], [1, 1, 1, 1], [2, 1, 1, 0], 0.5) == (0.75, 1.5)
    # lengths count, not segments: the best segment is 2 of 4 km
    assert flagged_share([0.9, 0.5, 0.1], [2, 1, 1], [1, 3, 0], 0.5) == (0.25, 0.5)
    # ties at the boundary are taken in proportion (expected value over their order)
    hit, pai = flagged_share([1, 1, 1, 1], [1, 1, 1, 1], [4, 0, 0, 0], 0.25)
    assert (hit, pai) == (0.25, 1.0)
    # the boundary segment is taken in part: 1.5 of 3 km flagged, half its 2 hits
    assert flagged_share([3, 2, 1], [1, 1, 1], [0, 2, 2], 0.5) == pytest.approx((0.25, 0.5))
    # no hits: undefined, not zero
    assert all(np.isnan(flagged_share([1, 0], [1, 1], [0, 0], 0.5)))


def test_deciles_by_length_keep_ties_together() -> None:
    # one long segment takes most bins' length: it sits in the bin of its middle
    # middles at 5 %, 45 %, 90 % of the length: deciles 1, 5, 10
    assert decile_of([1, 2, 3], [1, 7, 2], n_bins=10).tolist() == [1, 5, 10]
    # four tied zeros span 0–80 %, their middle (40 %) is in quarter 2
    assert decile_of([0, 0, 0, 0, 5], [1, 1, 1, 1, 1], n_bins=4).tolist() == [2, 2, 2, 2, 4]
    assert top_share([1, 9, 5, 7], [1, 1, 1, 1], 0.25).tolist() == [False, True, False, False]
    # the segment crossing the boundary is in
    assert top_share([1, 9, 5, 7], [1, 1, 1, 1], 0.3).tolist() == [False, True, False, True]


def test_calibration_table_by_hand() -> None:
    t = calibration_table(
        pred=[1, 2, 3, 4],
        low=[0.5, 1, 2, 3],
        high=[1.5, 3, 4, 5],
        truth=[1, 4, 3, 2],
        length_m=[1000, 1000, 1000, 1000],
        n_bins=2,
        top=0.25,
    ).set_index("group")
    assert list(t.index) == ["1", "2", "top 25% of true rate", "rest", "all"]
    assert t.loc["all", ["predicted", "true", "ratio", "coverage"]].tolist() == [2.5, 2.5, 1, 0.5]
    # bin 1 holds segments 0, 1; bin 2 holds 2, 3
    assert t.loc["1", ["predicted", "true", "ratio", "coverage"]].tolist() == pytest.approx(
        [1.5, 2.5, 0.6, 0.5]
    )
    assert t.loc["2", ["predicted", "true", "ratio", "coverage"]].tolist() == pytest.approx(
        [3.5, 2.5, 1.4, 0.5]
    )
    # the top quarter by true rate is segment 1 (truth 4, interval 1–3: missed)
    top = t.loc["top 25% of true rate"]
    assert [top["predicted"], top["true"], top["ratio"], top["coverage"]] == [2, 4, 0.5, 0]
    rest = t.loc["rest"]
    assert [rest["ratio"], rest["coverage"], rest["length_share"]] == pytest.approx(
        [(8 / 3) / 2, 2 / 3, 0.75]
    )


def test_calibration_table_weights_by_length() -> None:
    t = calibration_table(
        pred=[1, 1], low=[0, 2], high=[2, 3], truth=[1, 4], length_m=[3000, 1000], n_bins=1
    ).set_index("group")
    # mean predicted 1, mean true (3·1 + 1·4)/4 = 1.75; covered on 3 km of 4
    assert t.loc["1", ["predicted", "true", "coverage"]].tolist() == pytest.approx(
        [1.0, 1.75, 0.75]
    )
    with pytest.raises(cr.InputError, match="same length"):
        calibration_table([1], [1], [1], [1, 2], [1])


def test_count_calibration_by_hand() -> None:
    table, cov = count_calibration(
        expected=[0.1, 2.0],
        expected_low=[0.05, 1.0],
        expected_high=[0.2, 4.0],
        observed=[0, 9],
        length_m=[1000, 1000],
        n_bins=2,
        level=0.9,
    )
    # Poisson(0.2): P(X ≤ 0) = 0.819, P(X ≤ 1) = 0.982, so the 95 % point is 1;
    # Poisson(4): P(X ≤ 7) = 0.949, P(X ≤ 8) = 0.979, so it is 8 and 9 lies outside
    assert table["interval_high"].tolist() == [1, 8]
    assert table["interval_low"].tolist() == [0, 0]
    assert table["inside"].tolist() == [True, False]
    assert table["ratio"].tolist() == pytest.approx([0.0, 4.5])
    # at the point expectations: Poisson(0.1) 95 % point 1 (P(0) = 0.905), Poisson(2) 5
    # (P(X ≤ 4) = 0.947, P(X ≤ 5) = 0.983)
    assert table["poisson_high"].tolist() == [1, 5]
    assert table["inside_poisson"].tolist() == [True, False]
    assert cov == {"all": 0.5, "top_decile": 0.0, "bins": 0.5, "bins_poisson": 0.5}


def test_backtest_bookkeeping_on_a_simulated_world(desert) -> None:
    world = simulate_world(desert, n_episodes=400, days=730, seed=5)
    snapped = cr.snap_incidents(desert, world.incidents)
    params = RiskParams(bandwidth_m=5_000.0)
    bt = backtest(
        desert, snapped, "2021-01-01", params=params, horizon_days=365, group_column="episode_id"
    )
    assert set(bt.table["method"]) == {"network_kde", "raw_counts", "planar_kde"}
    on_net = snapped["status"].isin(["snapped", "spread"]).to_numpy()
    dates = pd.to_datetime(snapped["date"])
    later = on_net & (dates >= "2021-01-01").to_numpy() & (dates < "2021-12-31").to_numpy()
    # each test episode counted once
    assert bt.n_test == snapped.loc[later, "episode_id"].nunique()
    assert bt.calibration["observed"].sum() == bt.n_test
    segs = bt.risk.segments
    expected = np.sum(segs["rate"] * segs["length_m"] / 1000) * 365 / 30
    assert bt.calibration["expected"].sum() == pytest.approx(expected, rel=1e-9)
    assert bt.calibration["length_share"].sum() == pytest.approx(1.0)
    assert set(bt.interval_coverage) == {"all", "top_decile", "bins", "bins_poisson"}
    assert bt.test_days == 365


def test_backtest_needs_data_on_both_sides(desert) -> None:
    world = simulate_world(desert, n_episodes=100, days=100, seed=1)
    snapped = cr.snap_incidents(desert, world.incidents)
    with pytest.raises(cr.InputError, match="later"):
        backtest(desert, snapped, "2000-01-01")
    with pytest.raises(cr.InputError, match="earlier"):
        backtest(desert, snapped, "2030-01-01")
    with pytest.raises(cr.InputError, match="YYYY-MM-DD"):
        backtest(desert, snapped, "04/11/2023")
