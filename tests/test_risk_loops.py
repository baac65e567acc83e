"""The Empirical Bayes step's fast paths agree with plain references.

The re-allocation of location-uncertain episodes and the ranking of their
contributions run compiled (numba) on large inputs and in numpy on small ones:
the two must give the same numbers to the bit. The ranking is checked against
a sort per segment, the naming of contributors against Python's own percent
formatting, and the re-allocation against its defining property (a fixed
point, reached from any start).
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
from convoyrisk import risk
from convoyrisk.density import MIN_SHARE, Density, TopK, network_density
from convoyrisk.risk import RiskParams

pytest.importorskip("numba")

PARAMS = RiskParams(segment_length_m=200.0, bandwidth_m=800.0, tune="off", overdispersion_k=1.5)


@pytest.fixture(scope="module")
def prep() -> risk.ScoringInput:
    """A 2 000-road grid and 600 incidents, a third known only to within 1.5 or 3 km."""
    roads = grid_roads(2_000, seed=31)
    G: nx.MultiDiGraph = graph_of(roads)
    n = 600
    x, y = clustered_points(roads, n, max_offset_m=100.0, seed=32)
    rng = np.random.default_rng(33)
    frame = pd.DataFrame(
        {
            "date": dated(n, start="2022-06-01", days=200, seed=34),
            "precision_m": np.where(rng.random(n) < 0.33, rng.choice([1_500.0, 3_000.0], n), 0.0),
            "event_id": [f"L{i}" for i in range(n)],
        }
    )
    raw = gpd.GeoDataFrame(frame, geometry=shapely.points(x, y), crs=roads.crs)
    snapped = cr.snap_incidents(G, raw, max_distance_m=500.0)
    return risk.prepare_scoring(G, snapped, PARAMS, "2023-01-01")


def _kernel_mass(prep: risk.ScoringInput) -> np.ndarray:
    return network_density(prep.net, prep.lix, prep.sources, PARAMS.kernel_spec).mass


def test_compiled_and_numpy_reallocation_agree_to_the_bit(prep, monkeypatch) -> None:
    """The same operations in the same order: every pass, hence the result, identical."""
    assert len(prep.spread_lixel) > 10_000  # many (segment, episode) pairs
    mass = _kernel_mass(prep)
    monkeypatch.setattr(risk, "COMPILED_MIN_PAIRS", 10**12)
    plain = risk.allocate_spread(prep, mass)
    monkeypatch.setattr(risk, "COMPILED_MIN_PAIRS", 0)
    fast = risk.allocate_spread(prep, mass)
    np.testing.assert_array_equal(fast, plain)
    assert not np.array_equal(plain, prep.spread_mass)  # it did move them


def test_reallocation_is_a_fixed_point_reached_from_any_start(prep) -> None:
    """From a random start the allocation settles where it does from the spread by length.

    At the fixed point each episode's mass is shared by length × the rate
    without its own share; one more pass moves nothing beyond the tolerance.
    """
    mass = _kernel_mass(prep)
    cold = risk.allocate_spread(prep, mass)
    owner = prep.spread_owner
    weight = prep.incidents["weight"].to_numpy(float)
    rng = np.random.default_rng(1)
    noise = rng.random(len(owner)) + 0.01
    start = noise / np.bincount(owner, noise, minlength=len(weight))[owner] * weight[owner]
    warm = risk.allocate_spread(prep, mass, start=start)
    np.testing.assert_allclose(warm, cold, rtol=0, atol=1e-10 * weight.max())
    # each episode keeps its weight
    np.testing.assert_allclose(
        np.bincount(owner, warm, minlength=len(weight))[np.unique(owner)],
        weight[np.unique(owner)],
        rtol=1e-12,
    )
    # and the fixed point holds: shares ∝ length × (posterior mean without the own share)
    fitter = risk._Fitter(prep, mass)
    fit = fitter.fit(cold)
    length = fitter.length_km[prep.spread_lixel]
    own = fitter.per_mass * cold / length
    score = length * (fit.post.shape[prep.spread_lixel] - own) / fit.post.rate[prep.spread_lixel]
    want = weight[owner] * score / np.bincount(owner, score, minlength=len(weight))[owner]
    np.testing.assert_allclose(cold, want, rtol=0, atol=1e-11 * weight.max())


def _sorted_top(lixel, owner, mass, n_lix, k):
    """The reference: per segment, contributions sorted by (−mass, owner), the first k."""
    by_seg: dict[int, list[tuple[float, int]]] = {}
    for s, o, v in zip(lixel.tolist(), owner.tolist(), mass.tolist(), strict=True):
        if v > 0:
            by_seg.setdefault(s, []).append((-v, o))
    top_id = np.full((n_lix, k), -1, dtype=np.int64)
    top_val = np.zeros((n_lix, k))
    for s, items in by_seg.items():
        for j, (v, o) in enumerate(sorted(items)[:k]):
            top_id[s, j], top_val[s, j] = o, -v
    return top_id, top_val


@pytest.mark.parametrize("k", [1, 3, 5])
@pytest.mark.parametrize("threshold", [0, 10**12])  # compiled, numpy
def test_top_contributions_per_segment_match_a_sort(k, threshold, monkeypatch) -> None:
    """Random pairs with many ties and zeros: as a sort per segment, and as TopK keeps them."""
    monkeypatch.setattr(risk, "COMPILED_MIN_PAIRS", threshold)
    rng = np.random.default_rng(k)
    n_lix, n_pairs = 300, 4_000
    pairs = rng.choice(n_lix * 400, n_pairs, replace=False)  # an owner once per segment
    lixel, owner = pairs % n_lix, pairs // n_lix
    mass = rng.choice([0.0, 0.25, 0.5, 1.0, 2.0], n_pairs) * rng.choice([1.0, 1.0, 3.0], n_pairs)
    got = risk.top_per_segment(lixel, owner, mass, n_lix, k)
    want = _sorted_top(lixel, owner, mass, n_lix, k)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    peer = TopK(n_lix, k)
    peer.add(lixel, owner, mass, np.zeros(n_lix))
    np.testing.assert_array_equal(got[0], peer.idx)
    np.testing.assert_array_equal(got[1], peer.val)


def test_contributors_are_named_as_python_formats_percentages() -> None:
    """Shares at rounding ties (12.5 % → 12 %, 0.5 % shown, below it not) as f"{p:.0%}"."""
    shares = np.array(
        [[0.125, 0.135, 0.005], [0.5, 0.0049, 0.0], [0.875, 0.115, 0.01], [0.0, 0.0, 0.0]]
    )
    top_id = np.array([[0, 1, 2], [2, 1, -1], [1, 0, 2], [-1, -1, -1]])
    mass = np.array([2.0, 4.0, 1.0, 0.0])
    incidents = pd.DataFrame(
        {
            "event_id": ["A1", None, "C3"],
            "row": [1, 2, 3],
            "date": pd.to_datetime(["2022-01-02", "2022-03-04", "2022-05-06"]),
        }
    )
    density = Density(mass, np.zeros(4, dtype=np.int64), top_id, shares * mass[:, None], np.ones(0))
    got = risk._top_text(incidents, density)
    label = ["A1 2022-01-02", "row 2 2022-03-04", "C3 2022-05-06"]
    want = []
    for ids, row in zip(top_id, shares, strict=True):
        parts = [
            f"{label[i]} ({p:.0%})"
            for i, p in zip(ids, row, strict=True)
            if i >= 0 and p >= MIN_SHARE
        ]
        want.append("; ".join(parts))
    assert got == want
    assert got[0] == "A1 2022-01-02 (12%); row 2 2022-03-04 (14%); C3 2022-05-06 (0%)"
    assert got[1] == "C3 2022-05-06 (50%)"


def test_named_shares_are_shares_of_what_each_segment_holds() -> None:
    """An uncertain report near a hot spot is named by the mass it holds after re-allocation.

    80 precise incidents in one spot and one report known to within 3 km of a
    point 1.5 km away: re-allocation moves most of the report onto the hot
    roads. On a road only it reaches it is all there is (100 %), and no
    segment names more than 100 % in all. Named by its first spread (by
    length), as before, the report read 153 % there (538 % on a test country).
    """
    roads = grid_roads(800, seed=41)
    G = graph_of(roads)
    x, y = clustered_points(roads, 400, max_offset_m=50.0, seed=42)
    hot = np.hypot(x - x[0], y - y[0]) < 400.0
    x, y = np.r_[x[hot][:80], x[0] + 1_500.0], np.r_[y[hot][:80], y[0]]
    n = len(x)
    frame = pd.DataFrame(
        {
            "date": dated(n, start="2022-06-01", days=200, seed=43),
            "precision_m": np.r_[np.zeros(n - 1), 3_000.0],
            "event_id": [f"H{i}" for i in range(n - 1)] + ["VAGUE"],
        }
    )
    raw = gpd.GeoDataFrame(frame, geometry=shapely.points(x, y), crs=roads.crs)
    snapped = cr.snap_incidents(G, raw, max_distance_m=500.0)
    params = PARAMS.replace(episode_m=0.0)
    result = cr.score_segments(G, snapped, params=params, as_of="2023-01-01")
    text = result.segments["top_contributors"]
    shares = text.str.findall(r"\((\d+)%\)").map(lambda found: [int(p) for p in found])
    assert shares.map(sum).max() <= 100 + params.top_contributors // 2 + 1
    alone = text.str.fullmatch(r"VAGUE \S+ \(\d+%\)")
    assert alone.sum() > 10
    assert (text[alone].str.endswith("(100%)")).all()
