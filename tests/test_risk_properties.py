"""Monotonicity (Hypothesis): more incidents never lower a rate; older never weighs more."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

import convoyrisk as cr
from convoyrisk._respread import respread_pass
from convoyrisk.risk import RiskParams

from .helpers.graphs import PLANE, lines_graph

X0, Y0 = 500_000.0, 2_000_000.0
AS_OF = pd.Timestamp("2023-06-01")


@pytest.fixture(scope="module")
def network():
    """A junction, a loop and dead ends."""
    return lines_graph(
        [
            [(X0, Y0), (X0 + 8_000, Y0)],
            [(X0 + 8_000, Y0), (X0 + 16_000, Y0 + 3_000)],
            [(X0 + 8_000, Y0), (X0 + 12_000, Y0 - 6_000)],
            [(X0 + 12_000, Y0 - 6_000), (X0 + 16_000, Y0 + 3_000)],
            [(X0 + 16_000, Y0 + 3_000), (X0 + 25_000, Y0 + 4_000)],
        ]
    )


def _frame(G, rows: list[tuple[int, float, int, float, float]]) -> gpd.GeoDataFrame:
    """Incidents at (road, fraction along it, age in days, killed, precision_m)."""
    lines = {d["road_id"]: d["geometry"] for *_, d in G.edges(data=True) if not d["reversed"]}
    pts = [shapely.line_interpolate_point(lines[r], f, normalized=True) for r, f, *_ in rows]
    return gpd.GeoDataFrame(
        {
            "row": range(1, len(rows) + 1),
            "date": [AS_OF - pd.Timedelta(days=a) for _, _, a, _, _ in rows],
            "killed": [k for *_, k, _ in rows],
            "injured": 0.0,
            "precision_m": [p for *_, p in rows],
            "event_id": [f"E{i}" for i in range(len(rows))],
        },
        geometry=pts,
        crs=PLANE,
    )


incident = st.tuples(
    st.integers(0, 4),
    st.floats(0.0, 1.0),
    st.integers(0, 800),
    st.sampled_from([0.0, 1.0, 30.0]),
    st.sampled_from([0.0, 1_000.0, 2_000.0]),
)
params = st.builds(
    RiskParams,
    segment_length_m=st.sampled_from([700.0, 2_000.0]),
    bandwidth_m=st.sampled_from([2_000.0, 5_000.0]),
    junction=st.sampled_from(["equal-split", "none"]),
    conserve_mass=st.booleans(),
    kernel=st.sampled_from(["quartic", "uniform", "triangular"]),
)

BASE = [(0, 0.3, 40, 0.0, 0.0), (2, 0.5, 200, 1.0, 0.0), (4, 0.9, 1, 0.0, 2_000.0)]


def _score(G, rows, p: RiskParams) -> pd.DataFrame:
    """Scores with the overdispersion and the record's length fixed, every row its own episode.

    Only then is the model monotone: an estimated ``k`` may tighten the prior
    when an incident is added, an older incident lengthens the record the
    rates divide by, an incident that joins an episode can move the
    episode's located point, and a new incident draws a location-uncertain
    episode towards it (away from other roads): the rows here are located
    to within the bandwidth.
    """
    snapped = cr.snap_incidents(G, _frame(G, rows), max_distance_m=100.0)
    fixed = p.replace(overdispersion_k=1.0, episode_m=0.0, tune="off", observed_since="window")
    return cr.score_segments(G, snapped, params=fixed, as_of=AS_OF).segments


@settings(max_examples=40, deadline=None)
@given(extra=incident, p=params, base=st.lists(incident, max_size=3))
def test_adding_an_incident_never_lowers_a_rate(network, extra, p, base) -> None:
    before = _score(network, BASE + base, p)
    after = _score(network, [*BASE, *base, extra], p)
    for col in ("mass", "rate", "rate_low", "rate_high"):
        b, a = before[col].to_numpy(), after[col].to_numpy()
        assert (a >= b * (1 - 1e-9) - 1e-15).all(), col
    if extra[2] <= p.window_days:
        assert after["mass"].sum() > before["mass"].sum()


@settings(max_examples=40, deadline=None)
@given(where=incident, younger=st.integers(0, 800), older_by=st.integers(1, 400), p=params)
def test_an_older_incident_never_weighs_more(network, where, younger, older_by, p) -> None:
    road, frac, _, killed, precision = where
    new = _score(network, [*BASE, (road, frac, younger, killed, precision)], p)
    old = _score(network, [*BASE, (road, frac, younger + older_by, killed, precision)], p)
    for col in ("mass", "rate", "rate_low", "rate_high"):
        assert (new[col].to_numpy() >= old[col].to_numpy() * (1 - 1e-9) - 1e-15).all(), col
    w_new = cr.risk.incident_weights(
        _frame(network, [(road, frac, younger, killed, precision)]).assign(status="snapped"),
        AS_OF,
        p,
    )
    w_old = cr.risk.incident_weights(
        _frame(network, [(road, frac, younger + older_by, killed, precision)]).assign(
            status="snapped"
        ),
        AS_OF,
        p,
    )
    total_new = float(w_new["weight"].iloc[0])
    total_old = float(w_old["weight"].iloc[0])
    assert total_new >= total_old
    assert np.isfinite(total_new)


def test_respread_pass_is_the_vectorised_reallocation() -> None:
    """The compiled pass gives, bitwise, the numpy formula of the re-allocation.

    Each episode's weight is shared over its pairs in proportion to length × the
    segment's posterior mean without the pair's own share (docs/risk-model.md §2).
    """

    rng = np.random.default_rng(7)
    n_seg, n_inc, n_pairs = 50, 8, 120
    lixel = rng.integers(0, n_seg, n_pairs)
    owner = np.sort(rng.integers(0, n_inc, n_pairs))
    seg_km, inc_weight = rng.uniform(0.1, 1.0, n_seg), rng.uniform(0.5, 1.0, n_inc)
    length_km, weight = seg_km[lixel], inc_weight[owner]
    spread = rng.uniform(0.0, 0.2, n_pairs)
    shape, rate = rng.uniform(0.5, 3.0, n_seg), rng.uniform(1.0, 5.0, n_seg)
    per_mass = 2.5
    own = per_mass * spread / np.maximum(length_km, 1e-12)
    score = length_km * (np.maximum(shape[lixel] - own, 1e-300) / rate[lixel])
    total = np.bincount(owner, weights=score, minlength=n_inc)[owner]
    expected = np.where(total > 0, weight * score / np.maximum(total, 1e-300), 0.0)
    new, by_lixel, raw = np.empty(n_pairs), np.zeros(n_seg), np.full(n_seg, 0.5)
    moved = respread_pass(
        lixel, owner, seg_km, inc_weight, spread, shape, rate, per_mass, new, by_lixel, raw
    )
    assert np.array_equal(new, expected)
    assert np.array_equal(by_lixel, np.bincount(lixel, weights=expected, minlength=n_seg))
    assert np.array_equal(
        raw, np.bincount(np.r_[np.arange(n_seg), lixel], np.r_[np.full(n_seg, 0.5), expected])
    )
    assert moved == np.max(np.abs(expected - spread) / weight)
    # each episode's shares sum to its weight
    sums = np.bincount(owner, weights=new, minlength=n_inc)
    present = np.bincount(owner, minlength=n_inc) > 0
    assert np.allclose(
        sums[present], np.bincount(owner, weights=weight)[present] / np.bincount(owner)[present]
    )
