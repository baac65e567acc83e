"""The simulated world: its truth integrates to the expected counts, and draws follow it."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pandas as pd
import pytest
from pyproj import Geod, Transformer
from scipy import stats

import convoyrisk as cr
from convoyrisk.backtest import locate_segments
from convoyrisk.density import split_segments
from convoyrisk.simulate import (
    PRECISION_CODES,
    SIM_CRS,
    desert_network,
    gaussian_field,
    simulate_world,
    with_empty_roads,
)

from .helpers.graphs import lines_graph


@pytest.fixture(scope="module")
def desert() -> nx.MultiDiGraph:
    return desert_network(seed=4)


@pytest.fixture(scope="module")
def world(desert):
    return simulate_world(desert, n_episodes=4_000, days=730, seed=11)


def test_desert_network_is_sparse_two_way_and_in_pieces(desert) -> None:
    assert desert.graph["crs"] == SIM_CRS or str(desert.graph["crs"]).endswith("32631")
    assert nx.number_weakly_connected_components(desert) == 2
    fwd = [(u, v, k) for u, v, k, d in desert.edges(keys=True, data=True) if not d["reversed"]]
    assert 2 * len(fwd) == desert.number_of_edges()  # every track is two-way
    km = sum(d["length"] for *_, d in desert.edges(data=True) if not d["reversed"]) / 1000
    # 12 towns in a 400 km square: a spanning tree of long tracks, not a grid
    assert 600 < km < 2_500
    assert np.mean([d for _, d in desert.degree()]) / 2 < 3
    three = desert_network(seed=4, n_towns=20, pieces=3, extra_links=5)
    assert nx.number_weakly_connected_components(three) == 3


def test_truth_integrates_to_the_expected_count(desert, world) -> None:
    # Σ rate·km·days/30 over the roads is n_episodes, whatever the segments' cut
    for seg_m in (1_000.0, 333.0, 5_000.0):
        segs = split_segments(desert, seg_m)
        rate = world.true_rate(segs)
        # the world's rate is per km along the drawing (start_m..end_m); length_m is geodesic
        along_km = (segs["end_m"] - segs["start_m"]) / 1000
        total = float(np.sum(rate * along_km) * 730 / 30)
        assert total == pytest.approx(4_000, rel=1e-9)
    assert world.expected_episodes() == pytest.approx(4_000, rel=1e-12)


def test_true_rate_averages_the_cells_by_hand() -> None:
    G = lines_graph([[(0, 0), (2_000, 0)]])
    w = simulate_world(G, n_episodes=10, seed=1, cell_m=500.0, corridors=0)
    c = w.cells
    assert len(c) == 4
    r = c["rate"].to_numpy()
    u, v, k = c.loc[0, ["u", "v", "key"]]
    segs = {
        "u": [u] * 3,
        "v": [v] * 3,
        "key": [k] * 3,
        "start_m": [0.0, 250.0, 500.0],
        "length_m": [500.0, 500.0, 1_500.0],
    }
    got = w.true_rate(pd.DataFrame(segs))
    np.testing.assert_allclose(got, [r[0], (r[0] + r[1]) / 2, r[1:].mean()], rtol=1e-12)
    with pytest.raises(cr.InputError, match="not drawn on"):
        w.true_rate(pd.DataFrame({**segs, "u": [99, 99, 99]}))


def test_corridor_multiplies_a_stretch_of_the_road() -> None:
    # one straight 100 km road, flat field (sd 0): one corridor of 20 km at ×10
    G = lines_graph([[(0, 0), (100_000, 0)]])
    w = simulate_world(
        G,
        n_episodes=100,
        days=300,
        seed=3,
        sd=0.0,
        corridors=1,
        corridor_km=(20.0, 20.0),
        corridor_multiplier=(10.0, 10.0),
    )
    c = w.cells
    hot = c["corridor"].to_numpy() > 1
    mid = ((c["start_m"] + c["end_m"]) / 2).to_numpy()
    centre = w.corridors.loc[0, "offset_m"]
    # the hot cells are those whose midpoint lies within 10 km of the centre
    np.testing.assert_array_equal(hot, np.abs(mid - centre) <= 10_000.0)
    km = (c["end_m"] - c["start_m"]).to_numpy() / 1000
    # closed form: rate_rest·(km_rest + 10·km_hot)·days/30 = n_episodes
    rest = 100 / ((km[~hot].sum() + 10 * km[hot].sum()) * 300 / 30)
    np.testing.assert_allclose(c["rate"].to_numpy(), np.where(hot, 10 * rest, rest), rtol=1e-12)


def test_gaussian_field_has_the_exponential_covariance() -> None:
    rng = np.random.default_rng(0)
    draws = np.array([gaussian_field(rng, (40, 40), 1.0, 5.0, sd=1.5)[0] for _ in range(300)])
    var = draws.var(axis=0).mean()
    assert var == pytest.approx(1.5**2, rel=0.05)
    for lag in (1, 5, 10):
        c = np.mean(draws[:, :, :-lag] * draws[:, :, lag:]) / var
        assert c == pytest.approx(np.exp(-lag / 5.0), abs=0.04)
    _, negative = gaussian_field(rng, (40, 40), 1.0, 5.0)
    assert negative < 1e-3


def test_episodes_fall_where_the_truth_says(desert, world) -> None:
    eps = world.episodes
    n = len(eps)
    assert abs(n - 4_000) < 4 * np.sqrt(4_000)  # Poisson count around its mean
    segs = split_segments(desert, 1_000.0)
    rate = world.true_rate(segs)
    expected = rate * (segs["end_m"] - segs["start_m"]).to_numpy() / 1000 * 730 / 30
    seg = locate_segments(segs, eps)
    assert (seg >= 0).all()
    # chi-square over 20 groups of segments by true rate
    group = np.minimum((np.argsort(np.argsort(rate)) * 20) // len(rate), 19)
    obs = np.bincount(group[seg], minlength=20)
    exp = np.bincount(group, weights=expected, minlength=20) * n / expected.sum()
    assert stats.chisquare(obs, exp).pvalue > 1e-3
    # uniform in time over the period
    assert stats.kstest(eps["day"] / 730, "uniform").pvalue > 1e-3
    assert eps["day"].min() >= 0 and eps["day"].max() < 730


def test_devices_of_an_episode_form_one_attack(world) -> None:
    inc = world.incidents
    eps = world.episodes.set_index("episode_id")
    assert list(inc.columns) == [
        "row",
        "date",
        "event_id",
        "type",
        "killed",
        "injured",
        "precision_m",
        "geo_precision",
        "source",
        "episode_id",
        "geometry",
    ]
    assert str(inc.crs) == "EPSG:4326"
    by = inc.groupby("episode_id")
    size = by.size()
    np.testing.assert_array_equal(size.to_numpy(), eps.loc[size.index, "devices"].to_numpy())
    assert by["date"].nunique().max() == 1 and by["precision_m"].nunique().max() == 1
    assert (size[eps.loc[size.index, "type"] != "IED"] == 1).all()
    ied = eps[eps["type"] == "IED"]
    counts = np.bincount(ied["devices"], minlength=4)[1:]
    assert stats.chisquare(counts, np.array([0.6, 0.3, 0.1]) * len(ied)).pvalue > 1e-3
    # the devices' true points lie within 300 m (along the road) of the episode's point
    true = world.true_points
    ep_pt = eps.geometry.loc[inc["episode_id"]].reset_index(drop=True)
    assert float(true.distance(ep_pt).max()) <= 300.0 + 1e-6
    # one report per episode: every device moved by the same vector
    rep = inc.to_crs(world.crs).geometry
    dx = rep.x.to_numpy() - true.x.to_numpy()
    dy = rep.y.to_numpy() - true.y.to_numpy()
    spread = (
        inc.assign(dx=dx, dy=dy).groupby("episode_id")[["dx", "dy"]].agg(np.ptp).to_numpy().max()
    )
    assert spread < 1e-3


def test_location_error_follows_the_precision_codes(world) -> None:
    inc = world.incidents.drop_duplicates("episode_id")
    true = world.true_points.loc[inc.index]
    d = inc.to_crs(world.crs).geometry.distance(true).to_numpy()
    code = inc["geo_precision"].to_numpy()
    r = inc["precision_m"].to_numpy()
    assert d[code == 1].max() < 1e-3 and (r[code == 1] == 0).all()
    shares = np.bincount(code, minlength=4)[1:]
    assert stats.chisquare(shares, np.array([0.75, 0.2, 0.05]) * len(inc)).pvalue > 1e-3
    for c in (2, 3):
        lo, hi = PRECISION_CODES[c]
        m = code == c
        assert r[m].min() >= lo and r[m].max() <= hi
    # uniform in the disc: (distance / radius)² is uniform on [0, 1]
    m = code > 1
    assert stats.kstest((d[m] / r[m]) ** 2, "uniform").pvalue > 1e-3


def test_bad_parameters_are_one_line_errors(desert) -> None:
    with pytest.raises(cr.InputError, match="devices_p"):
        simulate_world(desert, n_episodes=10, seed=0, devices_p=(0.5, 0.5, 0.5))
    with pytest.raises(cr.InputError, match="pieces"):
        desert_network(seed=0, n_towns=3, pieces=5)


def test_empty_roads_are_added_apart_and_leave_the_graph_as_it_was(desert) -> None:
    big = with_empty_roads(desert)
    assert nx.number_weakly_connected_components(big) == 3
    added = sum(d["length"] for *_, d in big.edges(data=True) if not d["reversed"]) - sum(
        d["length"] for *_, d in desert.edges(data=True) if not d["reversed"]
    )
    # four sides of 400 km drawn in the UTM zone; their true lengths from pyproj's
    # geodesic between the corners (vertex to vertex, as the graph measures them)
    north = max(d["y"] for _, d in desert.nodes(data=True))
    x0, y0 = min(d["x"] for _, d in desert.nodes(data=True)), north + 1_500_000.0
    xs = [x0, x0 + 400_000.0, x0 + 400_000.0, x0, x0]
    ys = [y0, y0, y0 + 400_000.0, y0 + 400_000.0, y0]
    lon, lat = Transformer.from_crs(SIM_CRS, "EPSG:4326", always_xy=True).transform(xs, ys)
    _, _, sides = Geod(ellps="WGS84").inv(lon[:-1], lat[:-1], lon[1:], lat[1:])
    assert added == pytest.approx(float(np.sum(sides)), rel=1e-9)
    assert added == pytest.approx(1_600_000.0, rel=5e-3)  # UTM is near true scale there
    for u, v, k, d in desert.edges(keys=True, data=True):
        assert big.edges[u, v, k] == d
    assert big.graph["crs"] == desert.graph["crs"]
    new = [d["y"] for n, d in big.nodes(data=True) if n not in desert]
    assert min(new) == pytest.approx(north + 1_500_000.0)
