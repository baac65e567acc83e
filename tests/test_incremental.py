"""Incremental scoring: an update equals a full re-score of the union, touching what it must.

The peer is the full path: ``score_segments`` on the old and new incidents
together, with the parameters the state holds (``k`` fixed, no tuning) and the
same as-of date. Episodes are checked by hand on constructed cases: a new
device next to an old one joins its episode, one between two old ones merges
them.
"""

from __future__ import annotations

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import pytest
import shapely
from benchmarks.synthetic import clustered_points, dated, graph_of, grid_roads

import convoyrisk as cr
from convoyrisk import incremental, risk
from convoyrisk._errors import ConvoyRiskWarning, InputError
from convoyrisk.incremental import ScoringState, add_incidents, score_with_state
from convoyrisk.risk import RiskParams

AS_OF = "2023-01-01"
PARAMS = RiskParams(segment_length_m=200.0, bandwidth_m=800.0, tune="off")


def _raw(roads: gpd.GeoDataFrame, n: int, seed: int) -> gpd.GeoDataFrame:
    x, y = clustered_points(roads, n, max_offset_m=100.0, seed=seed)
    rng = np.random.default_rng(seed + 1)
    frame = pd.DataFrame(
        {
            "row": np.arange(1, n + 1),
            "date": dated(n, start="2022-06-01", days=200, seed=seed + 2),
            "killed": rng.poisson(0.5, n).astype(float),
            "injured": rng.poisson(1.0, n).astype(float),
            # some imprecise: spread over the roads in their radius, not a kernel
            "precision_m": np.where(rng.random(n) < 0.1, 1_500.0, 0.0),
            "event_id": [f"S{seed}-{i}" for i in range(n)],
        }
    )
    return gpd.GeoDataFrame(frame, geometry=shapely.points(x, y), crs=roads.crs)


@pytest.fixture(scope="module")
def world() -> tuple[nx.MultiDiGraph, gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """A 1 500-road grid (200 m cells), 400 scored incidents and 100 new ones."""
    roads = grid_roads(1_500, seed=21)
    G = graph_of(roads)
    old = cr.snap_incidents(G, _raw(roads, 400, 30), max_distance_m=500.0)
    new = cr.snap_incidents(G, _raw(roads, 100, 40), max_distance_m=500.0)
    return G, old, new


@pytest.fixture(scope="module")
def state(world) -> ScoringState:
    G, old, _ = world
    return score_with_state(G, old, params=PARAMS, as_of=AS_OF)


def _full(G: nx.MultiDiGraph, state: ScoringState, *parts: gpd.GeoDataFrame, as_of: str = AS_OF):
    union = pd.concat(parts, ignore_index=True)
    return cr.score_segments(G, union, params=state.params, as_of=as_of)


def _assert_same(got: cr.RiskResult, want: cr.RiskResult) -> None:
    a, b = got.segments, want.segments
    for col in ("rate", "rate_low", "rate_high", "rate_now", "prior_rate", "mass"):
        np.testing.assert_allclose(a[col], b[col], rtol=1e-9, atol=1e-300, err_msg=col)
    assert (a["risk_class"].astype(str) == b["risk_class"].astype(str)).all()
    assert (a["incidents"] == b["incidents"]).all()
    assert (a["top_contributors"] == b["top_contributors"]).all()
    assert got.episodes == want.episodes
    assert got.as_of == want.as_of
    pd.testing.assert_series_equal(got.incidents["used"], want.incidents["used"])
    pd.testing.assert_series_equal(got.incidents["episode"], want.incidents["episode"])


def test_state_holds_the_fitted_k_and_no_tuning(state) -> None:
    """Updates keep the hyperparameters: k as estimated by the first scoring, tuning off."""
    assert state.result.overdispersion > 0
    assert state.params.overdispersion_k == state.result.overdispersion
    assert state.params.tune == "off"
    assert state.params.bandwidth_m == PARAMS.bandwidth_m


def test_adding_incidents_equals_a_full_rescore(world, state) -> None:
    """100 new incidents: every rate, class, count and named contributor as the full path."""
    G, old, new = world
    before = state.result.segments["rate"].to_numpy().copy()
    updated = add_incidents(state, G, new)
    want = _full(G, state, old, new)
    assert want.episodes > state.result.episodes
    _assert_same(updated.result, want)
    # the stored result is left as it was
    np.testing.assert_array_equal(state.result.segments["rate"].to_numpy(), before)


def test_two_updates_in_a_row_equal_one_full_rescore(world, state) -> None:
    G, old, new = world
    once = add_incidents(state, G, new.iloc[:40])
    twice = add_incidents(once, G, new.iloc[40:])
    _assert_same(twice.result, _full(G, state, old, new.iloc[:40], new.iloc[40:]))


def test_only_the_new_sources_are_spread(world, state, monkeypatch) -> None:
    """With no episode changed, the density is computed for the new kernel sources alone."""
    G, _, new = world
    seen: list[int] = []
    real = incremental.network_density

    def counting(net, lix, src, params, **kw):
        seen.append(len(src.edge))
        return real(net, lix, src, params, **kw)

    monkeypatch.setattr(incremental, "network_density", counting)
    updated = add_incidents(state, G, new)
    n_new_sources = len(updated.prep.sources.edge) - len(state.prep.sources.edge)
    assert seen == [n_new_sources, n_new_sources]  # the kernel, and the interval's narrow one
    assert 0 < n_new_sources <= len(new)


def _near(snapped: gpd.GeoDataFrame, row: int, dx: float, **values: object) -> gpd.GeoDataFrame:
    """A raw incident `dx` metres east of the snapped point of `row`, with `values` changed."""
    src = snapped.iloc[[row]]
    frame = pd.DataFrame(
        {
            "row": [9_000 + row],
            "date": [src["date"].iloc[0]],
            "killed": [2.0],
            "injured": [0.0],
            "precision_m": [0.0],
            "event_id": [f"NEW-{row}"],
        }
    )
    for key, value in values.items():
        frame[key] = [value]
    x = float(src["snap_x"].iloc[0]) + dx
    y = float(src["snap_y"].iloc[0])
    return gpd.GeoDataFrame(frame, geometry=shapely.points([x], [y]), crs=snapped.crs)


def _lone_precise_lead(state: ScoringState) -> int:
    """Row of an old, precise, single-device episode lead (a kernel source)."""
    inc = state.result.incidents
    ok = (
        inc["episode_lead"].to_numpy(bool)
        & (inc["devices"].to_numpy() == 1)
        & (inc["spread_m"].to_numpy(float) == 0.0)
    )
    return int(np.flatnonzero(ok)[0])


def test_a_new_device_joins_an_episode_and_takes_its_lead(world, state, monkeypatch) -> None:
    """A more precise device 50 m from an old one, same day: one episode of 2, the new lead.

    The old lead's kernel is taken out: the segments it reached are summed again.
    """
    G, old, _ = world
    row = _lone_precise_lead(state)
    # make the old device imprecise (still a kernel), so that the new one leads
    old = old.copy()
    old.loc[old.index[row], "precision_m"] = 300.0
    base = score_with_state(G, old, params=state.params, as_of=AS_OF)
    new = cr.snap_incidents(G, _near(old, row, 50.0), max_distance_m=500.0)
    seen: list[int] = []
    real = incremental.network_density

    def counting(net, lix, src, params, **kw):
        seen.append(len(src.edge))
        return real(net, lix, src, params, **kw)

    monkeypatch.setattr(incremental, "network_density", counting)
    updated = add_incidents(base, G, new)
    inc = updated.result.incidents
    assert updated.result.episodes == base.result.episodes  # joined, no new episode
    assert inc["episode"].iloc[-1] == inc["episode"].iloc[row]
    assert inc["devices"].iloc[-1] == 2
    assert bool(inc["episode_lead"].iloc[-1])
    assert not bool(inc["episode_lead"].iloc[row])
    # the episode's harm is both devices' casualties, on the lead row
    want_harm = old["killed"].iloc[row] + old["injured"].iloc[row] + 2.0
    assert inc["harm"].iloc[-1] == pytest.approx(want_harm)
    # for the kernel and for the interval's narrow one: the added source, the removed one's
    # footprint, the sources reaching it (all local)
    assert len(seen) == 6
    assert seen[0] == seen[1] == seen[3] == seen[4] == 1
    assert seen[2] < len(updated.prep.sources.edge)
    assert seen[5] <= seen[2]  # the narrow kernel reaches less far
    _assert_same(updated.result, _full(G, base, old, new))


def test_a_new_device_between_two_episodes_merges_them(world, state) -> None:
    """Two old devices 1.6 km apart on one day are two episodes; one between them makes one."""
    G, old, _ = world
    row = _lone_precise_lead(state)
    day = pd.Timestamp("2022-12-30")  # after every other incident: these three alone that day
    first = cr.snap_incidents(G, _near(old, row, 0.0, event_id="A", date=day), max_distance_m=500.0)
    second = cr.snap_incidents(
        G, _near(old, row, 1_600.0, event_id="B", date=day), max_distance_m=500.0
    )
    both = pd.concat([old, first, second], ignore_index=True)
    dx = float(second["snap_x"].iloc[0] - first["snap_x"].iloc[0])
    dy = float(second["snap_y"].iloc[0] - first["snap_y"].iloc[0])
    assert np.hypot(dx, dy) > PARAMS.episode_m  # apart: two episodes
    base = score_with_state(G, both, params=state.params, as_of=AS_OF)
    n_a, n_b = len(both) - 2, len(both) - 1
    inc0 = base.result.incidents
    assert inc0["episode"].iloc[n_a] != inc0["episode"].iloc[n_b]
    mid = _near(both, n_a, 0.0, event_id="C", date=day)
    mid = mid.set_geometry(
        shapely.points(
            [float(first["snap_x"].iloc[0]) + dx / 2], [float(first["snap_y"].iloc[0]) + dy / 2]
        ),
        crs=old.crs,
    )
    new = cr.snap_incidents(G, mid, max_distance_m=500.0)
    updated = add_incidents(base, G, new)
    inc = updated.result.incidents
    for other in (first, second):  # the middle one, snapped, is within 1 km of both
        gap = np.hypot(
            *(new[["snap_x", "snap_y"]].to_numpy() - other[["snap_x", "snap_y"]].to_numpy())[0]
        )
        assert gap < PARAMS.episode_m
    ep = inc["episode"].to_numpy()
    assert ep[n_a] == ep[n_b] == ep[-1]
    assert updated.result.episodes == base.result.episodes - 1
    assert (inc["devices"].iloc[[n_a, n_b, -1]] == 3).all()
    # the earliest of equally precise devices on one day leads: the first row, A
    assert bool(inc["episode_lead"].iloc[n_a])
    assert not inc["episode_lead"].iloc[[n_b, -1]].any()
    _assert_same(updated.result, _full(G, base, both, new))


def test_moving_the_as_of_date_rescales_and_drops_what_leaves_the_window(world, state) -> None:
    """As of 2023-03-01 with a 240-day window: older stored incidents drop out; same as full."""
    G, old, new = world
    short = score_with_state(G, old, params=state.params.replace(window_days=240.0), as_of=AS_OF)
    updated = add_incidents(short, G, new, as_of="2023-03-01")
    inc = updated.result.incidents
    assert (inc["used"] == "older than the window").any()
    assert updated.as_of == pd.Timestamp("2023-03-01")
    _assert_same(updated.result, _full(G, short, old, new, as_of="2023-03-01"))


def test_incidents_after_the_as_of_date_warn_and_change_nothing(world, state) -> None:
    G, _, new = world
    late = new.iloc[:5].copy()
    late["date"] = pd.Timestamp("2023-02-01")
    with pytest.warns(ConvoyRiskWarning, match="after the as-of date 2023-01-01"):
        updated = add_incidents(state, G, late)
    assert (updated.result.incidents["used"].iloc[-5:] == "after the as-of date").all()
    assert updated.result.episodes == state.result.episodes
    _assert_same(updated.result, _full(G, state, world[1], late))


def test_another_graph_or_crs_is_refused(world, state) -> None:
    G, _, new = world
    other = graph_of(grid_roads(200, seed=5))
    with pytest.raises(InputError, match="not the one scored"):
        add_incidents(state, other, new)
    with pytest.raises(InputError, match="EPSG:4326"):
        add_incidents(state, G, new.to_crs("EPSG:4326"))
    with pytest.raises(InputError, match="snap_incidents first"):
        add_incidents(state, G, new.drop(columns=["u"]))


def test_an_update_reuses_spreads_that_equal_fresh_ones(world, state) -> None:
    """Uncertain episodes' segments, taken from the state where unchanged, as computed afresh.

    One stored row is moved 3 km: its segments must be looked up again, not reused.
    """
    _, old, new = world
    prep = state.prep
    moved = old.copy()
    row = int(np.flatnonzero(prep.incidents["spread_m"].to_numpy(float) > 0)[0])
    geom = moved.geometry.iloc[row]
    moved.loc[moved.index[row], moved.geometry.name] = shapely.Point(geom.x + 3_000.0, geom.y)
    union = pd.concat([moved, new], ignore_index=True)
    kw = {"params": state.params, "as_of": state.as_of, "base_rate": prep.base_rate}
    fresh = risk.prepare_incidents(prep.net, state.segments.copy(), prep.lix, union, **kw)
    reused = risk.prepare_incidents(
        prep.net, state.segments.copy(), prep.lix, union, reuse=prep, **kw
    )
    assert (fresh.spread_owner == row).any()
    for name in ("spread_lixel", "spread_owner", "spread_mass"):
        np.testing.assert_array_equal(getattr(reused, name), getattr(fresh, name), err_msg=name)
    mine = fresh.spread_owner == row
    assert not np.array_equal(fresh.spread_lixel[mine], prep.spread_lixel[prep.spread_owner == row])


def test_an_update_on_the_compiled_path_equals_a_full_rescore(world, state, monkeypatch) -> None:
    """With the compiled ranking of contributors (large inputs), the same as the full path."""
    monkeypatch.setattr(risk, "COMPILED_MIN_PAIRS", 0)
    G, old, new = world
    updated = add_incidents(state, G, new)
    _assert_same(updated.result, _full(G, state, old, new))
