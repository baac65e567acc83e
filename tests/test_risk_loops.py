"""Naming contributors: the fast paths agree with plain references.

The ranking of location-uncertain episodes' contributions per segment runs
compiled (numba) on large inputs and in numpy on small ones: both are checked
against a sort per segment and against :class:`convoyrisk.density.TopK`. The
names are checked against Python's own percent formatting, and the shares
against what each segment holds.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from benchmarks.synthetic import clustered_points, dated, graph_of, grid_roads

import convoyrisk as cr
from convoyrisk import risk
from convoyrisk.density import MIN_SHARE, Density, TopK
from convoyrisk.risk import RiskParams

pytest.importorskip("numba")

PARAMS = RiskParams(segment_length_m=200.0, bandwidth_m=800.0, tune="off", overdispersion_k=1.5)


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
