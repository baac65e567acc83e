"""The backtest on a simulated world with known risk, and the hit-rate/PAI arithmetic."""

from __future__ import annotations

import numpy as np
import pytest
from benchmarks.synthetic import grid_roads
from scipy.stats import spearmanr

import convoyrisk as cr
from convoyrisk.risk import RiskParams, backtest, flagged_share
from convoyrisk.simulate import simulate_incidents


@pytest.fixture(scope="module")
def grid():
    roads = grid_roads(2000, cell_m=1000.0, seed=5)
    return cr.graph_from_gdf(roads, crs=roads.crs)


def test_flagged_share_by_hand() -> None:
    # 4 segments of 1 km: flagging 50 % takes the two best, holding 3 of 4 hits
    assert flagged_share([0.9, 0.5, 0.1, 0.0], [1, 1, 1, 1], [2, 1, 1, 0], 0.5) == (0.75, 1.5)
    # lengths count, not segments: the best segment is 2 of 4 km
    assert flagged_share([0.9, 0.5, 0.1], [2, 1, 1], [1, 3, 0], 0.5) == (0.25, 0.5)
    # ties at the boundary are taken in proportion (expected value over their order)
    hit, pai = flagged_share([1, 1, 1, 1], [1, 1, 1, 1], [4, 0, 0, 0], 0.25)
    assert (hit, pai) == (0.25, 1.0)


def test_simulator_draws_from_the_known_intensity(grid) -> None:
    world = simulate_incidents(grid, days=3000, background_rate=0.01, hotspots=0, seed=3)
    km = world.segments["length_m"].sum() / 1000
    expected = 0.01 * km * 3000 / 30
    # Poisson count: within 4 standard deviations of its mean
    assert abs(len(world.incidents) - expected) < 4 * np.sqrt(expected)
    on = world.incidents.geometry.distance(
        world.segments.geometry.iloc[world.incidents["segment_id"]].reset_index(drop=True)
    )
    assert on.max() < 1e-6


def test_backtest_ranks_the_truly_risky_segments_first(grid) -> None:
    params = RiskParams(bandwidth_m=5_000.0, near_repeat_boost=0.0)
    ours, raw, ours_true, raw_true = [], [], [], []
    for seed in range(3):
        world = simulate_incidents(
            grid,
            days=1095,
            background_rate=0.002,
            hotspots=4,
            hotspot_rate=0.06,
            hotspot_radius_m=4_000.0,
            seed=seed,
        )
        snapped = cr.snap_incidents(grid, world.incidents)
        bt = backtest(grid, snapped, "2022-01-01", params=params, horizon_days=365)
        assert set(bt.table["method"]) == {"network_kde", "raw_counts", "planar_kde"}
        assert bt.n_test > 50 and bt.n_train > 150
        t = bt.table.set_index(["method", "coverage"])
        ours.append(t.loc[("network_kde", 0.05), "pai"])
        raw.append(t.loc[("raw_counts", 0.05), "pai"])
        truth = world.segments["true_rate"].to_numpy()
        length = world.segments["length_m"].to_numpy()
        # against the known intensity: the share of true risk in the flagged 5 %
        ours_true.append(flagged_share(bt.scores["network_kde"], length, truth * length, 0.05)[1])
        raw_true.append(flagged_share(bt.scores["raw_counts"], length, truth * length, 0.05)[1])
        rho_ours = spearmanr(bt.scores["network_kde"], truth).statistic
        rho_raw = spearmanr(bt.scores["raw_counts"], truth).statistic
        assert rho_ours > rho_raw
    # on later incidents, PAI at 5 % of the network flagged beats raw counts in each world
    assert all(o > r for o, r in zip(ours, raw, strict=True)), (ours, raw)
    assert np.mean(ours) > 1.1 * np.mean(raw)
    # the flagged segments hold several times their share of the true intensity
    assert min(ours_true) > 3.0
    assert np.mean(ours_true) > np.mean(raw_true)


def test_backtest_needs_data_on_both_sides(grid) -> None:
    world = simulate_incidents(grid, days=100, background_rate=0.01, hotspots=0, seed=1)
    snapped = cr.snap_incidents(grid, world.incidents)
    with pytest.raises(cr.InputError, match="later"):
        backtest(grid, snapped, "2000-01-01")
    with pytest.raises(cr.InputError, match="earlier"):
        backtest(grid, snapped, "2030-01-01")
