"""Network kernel density against closed forms and an independent networkx computation."""

from __future__ import annotations

import math

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import pytest
import shapely
from shapely.ops import substring

import convoyrisk as cr
from convoyrisk.density import kernel_cdf, kernel_density, split_segments
from convoyrisk.risk import RiskParams

from .helpers.graphs import PLANE, lines_graph

X0, Y0 = 500_000.0, 2_000_000.0


def incidents_at(
    xy: list[tuple[float, float]], dates: list[str] | None = None, **cols
) -> gpd.GeoDataFrame:
    dates = dates or ["2023-01-01"] * len(xy)
    df = pd.DataFrame(
        {
            "row": range(1, len(xy) + 1),
            "date": pd.to_datetime(dates),
            "killed": 0.0,
            "injured": 0.0,
            "precision_m": 0.0,
            "event_id": [f"E{i}" for i in range(1, len(xy) + 1)],
            **cols,
        }
    )
    pts = gpd.points_from_xy([p[0] for p in xy], [p[1] for p in xy])
    return gpd.GeoDataFrame(df, geometry=pts, crs=PLANE)


def score(G, xy, *, as_of="2023-01-01", **params) -> cr.RiskResult:
    base = {"near_repeat_boost": 0.0, "half_life_days": 1e9}
    base.update(params)
    snapped = cr.snap_incidents(G, incidents_at(xy))
    return cr.score_segments(G, snapped, as_of=as_of, params=RiskParams(**base))


def cdf(x, h, kernel="quartic"):
    return kernel_cdf(np.asarray(x, dtype=float), h, kernel)


@pytest.mark.parametrize(
    "kernel", ["uniform", "triangular", "epanechnikov", "quartic", "triweight"]
)
def test_kernels_integrate_to_one_and_match_their_cdf(kernel) -> None:
    x = np.linspace(-1, 1, 400_001)
    assert np.trapezoid(kernel_density(x, 1.0, kernel), x) == pytest.approx(1.0, abs=1e-5)
    # the CDF is the integral of the density (checked numerically, independently)
    part = np.linspace(0, 0.3, 100_001)
    assert np.trapezoid(kernel_density(part, 1.0, kernel), part) == pytest.approx(
        float(cdf(0.3, 1.0, kernel)), abs=1e-8
    )


@pytest.mark.parametrize("kernel", ["quartic", "triangular", "uniform"])
def test_one_incident_on_a_long_straight_road_gives_the_kernel_profile(kernel) -> None:
    G = lines_graph([[(X0, Y0), (X0 + 100_000, Y0)]])
    h = 5_000.0
    r = score(G, [(X0 + 50_000, Y0)], segment_length_m=100.0, bandwidth_m=h, kernel=kernel)
    segs = r.segments
    a = segs["start_m"].to_numpy() - 50_000.0
    b = segs["end_m"].to_numpy() - 50_000.0
    exact = cdf(b, h, kernel) - cdf(a, h, kernel)
    np.testing.assert_allclose(segs["mass"].to_numpy(), exact, atol=1e-12)
    assert segs["mass"].sum() == pytest.approx(1.0, abs=1e-12)
    far = np.minimum(np.abs(a), np.abs(b)) >= h
    assert (segs.loc[far, "mass"] == 0).all()
    assert (segs.loc[~far, "incidents"] == 1).all()


def _star(arms: int, arm_m: float = 30_000.0, stem_m: float = 30_000.0) -> nx.MultiDiGraph:
    """A stem from the west into a junction at (X0, Y0), and `arms − 1` branches leaving it."""
    lines = [[(X0 - stem_m, Y0), (X0, Y0)]]
    for i in range(arms - 1):
        angle = math.pi / 2 - (i + 1) * math.pi / arms
        lines.append([(X0, Y0), (X0 + arm_m * math.cos(angle), Y0 + arm_m * math.sin(angle))])
    return lines_graph(lines)


@pytest.mark.parametrize("degree", [3, 4])
def test_junction_splits_mass_equally(degree) -> None:
    """Okabe's equal split: past a junction of degree n each of the n−1 branches gets 1/(n−1)."""
    G = _star(degree)
    h, d = 5_000.0, 2_000.0
    r = score(G, [(X0 - d, Y0)], segment_length_m=250.0, bandwidth_m=h, conserve_mass=False)
    segs = r.segments
    stem = segs["u"] == segs["u"].iloc[0]  # the stem is the first road
    by_road = segs.groupby("road_id")["mass"].sum()
    beyond = 0.5 - float(cdf(d, h))  # the kernel mass that reaches the junction
    branches = by_road.drop(index=segs.loc[stem, "road_id"].iloc[0])
    assert len(branches) == degree - 1
    np.testing.assert_allclose(branches.to_numpy(), beyond / (degree - 1), atol=1e-12)
    # the density on a branch at distance t past the junction is K(d + t)/(n − 1)
    road = segs[segs["road_id"] == branches.index[0]]
    # start_m/end_m measure along the drawing; the kernel runs on the edge's geodesic
    # `length`, which differs from the drawn length by PLANE's scale off its equator (~1e-5)
    edge = G.edges[int(road["u"].iloc[0]), int(road["v"].iloc[0]), int(road["key"].iloc[0])]
    to_net = edge["length"] / edge["geometry"].length
    exact = (cdf(d + road["end_m"] * to_net, h) - cdf(d + road["start_m"] * to_net, h)) / (
        degree - 1
    )
    np.testing.assert_allclose(road["mass"].to_numpy(), exact, atol=1e-12)
    # nothing is lost away from network ends
    assert segs["mass"].sum() == pytest.approx(1.0, abs=1e-12)


def test_without_split_each_branch_gets_the_full_kernel() -> None:
    G = _star(3)
    h, d = 5_000.0, 2_000.0
    r = score(G, [(X0 - d, Y0)], bandwidth_m=h, junction="none", conserve_mass=False)
    by_road = r.segments.groupby("road_id")["mass"].sum()
    beyond = 0.5 - float(cdf(d, h))
    assert sorted(by_road.round(12).tolist()) == pytest.approx(
        sorted([beyond, beyond, 1.0 - beyond])
    )
    # with conservation, rescaled to the weight
    r2 = score(G, [(X0 - d, Y0)], bandwidth_m=h, junction="none")
    assert r2.segments["mass"].sum() == pytest.approx(1.0, abs=1e-12)


def test_two_junctions_multiply_the_split() -> None:
    """Degree-3 junctions at 1 km and 3 km along the path: a side road past both gets 1/4."""
    lines = [
        [(X0 - 20_000, Y0), (X0, Y0)],  # stem, incident on it
        [(X0, Y0), (X0 + 2_000, Y0)],  # between the junctions
        [(X0, Y0), (X0, Y0 + 20_000)],  # first side road
        [(X0 + 2_000, Y0), (X0 + 22_000, Y0)],  # straight on
        [(X0 + 2_000, Y0), (X0 + 2_000, Y0 - 20_000)],  # second side road
    ]
    G = lines_graph(lines)
    h, d = 5_000.0, 1_000.0
    r = score(G, [(X0 - d, Y0)], bandwidth_m=h, conserve_mass=False)
    by_road = r.segments.groupby("road_id")["mass"].sum()
    past_first = float(cdf(h, h) - cdf(d, h))
    past_second = float(cdf(h, h) - cdf(d + 2_000, h))
    assert by_road[2] == pytest.approx(past_first / 2, abs=1e-12)
    assert by_road[1] == pytest.approx((float(cdf(d + 2_000, h)) - float(cdf(d, h))) / 2, abs=1e-12)
    assert by_road[3] == pytest.approx(past_second / 4, abs=1e-12)
    assert by_road[4] == pytest.approx(past_second / 4, abs=1e-12)
    assert r.segments["mass"].sum() == pytest.approx(1.0, abs=1e-12)


def test_mass_lost_at_a_dead_end_and_given_back_when_conserved() -> None:
    G = lines_graph([[(X0, Y0), (X0 + 50_000, Y0)]])
    h, d = 5_000.0, 1_500.0
    raw = score(G, [(X0 + d, Y0)], bandwidth_m=h, conserve_mass=False)
    lost = 0.5 - float(cdf(d, h))
    assert raw.segments["mass"].sum() == pytest.approx(1.0 - lost, abs=1e-12)
    kept = score(G, [(X0 + d, Y0)], bandwidth_m=h)
    assert kept.segments["mass"].sum() == pytest.approx(1.0, abs=1e-12)
    ratio = kept.segments["mass"].to_numpy() / np.where(
        raw.segments["mass"] > 0, raw.segments["mass"], 1
    )
    assert np.allclose(ratio[raw.segments["mass"].to_numpy() > 0], 1.0 / (1.0 - lost))


def _independent_esd(
    G: nx.MultiDiGraph, edge, offset: float, h: float, step: float
) -> dict[int, float]:
    """Mass per road of the equal-split kernel on the shortest-path tree, computed with networkx.

    The incident's point becomes a node; each road is sampled at `step` and the
    density at a sample is K(D)/∏(deg−1) along its shortest path (midpoint rule).
    """
    u0, v0, k0 = edge
    roads = [(u, v, k, d) for u, v, k, d in G.edges(keys=True, data=True) if not d["reversed"]]
    H = nx.Graph()
    for u, v, _k, d in roads:
        if (u, v, _k) != (u0, v0, k0):
            H.add_edge(u, v, weight=d["length"]) if not H.has_edge(u, v) else None
    length0 = G.edges[u0, v0, k0]["length"]
    H.add_edge("p", u0, weight=offset)
    H.add_edge("p", v0, weight=length0 - offset)
    dist, paths = nx.single_source_dijkstra(H, "p")
    degree = dict.fromkeys(G.nodes, 0)
    for u, v, _, _ in roads:
        degree[u] += 1
        degree[v] += 1
    split = {
        n: math.prod(max(degree[m] - 1, 1) for m in path[1:])
        for n, path in paths.items()
        if n != "p"
    }
    out: dict[int, float] = {}
    for u, v, k, d in roads:
        n = math.ceil(d["length"] / step)
        t = (np.arange(n) + 0.5) * d["length"] / n
        if (u, v, k) == (u0, v0, k0):
            dens = kernel_density(np.abs(t - offset), h)
        else:
            from_u = dist[u] + t
            from_v = dist[v] + d["length"] - t
            dens = np.where(
                from_u <= from_v,
                kernel_density(from_u, h) / split[u],
                kernel_density(from_v, h) / split[v],
            )
        out[d["road_id"]] = float(dens.sum() * d["length"] / n)
    return out


@pytest.mark.parametrize("engine", ["numba", "numpy"])
def test_equal_split_matches_an_independent_networkx_computation(engine: str) -> None:
    """A small network with loops and dead ends, lengths chosen to avoid ties."""
    if engine == "numba":
        pytest.importorskip("numba")
    pts = {
        "a": (X0, Y0),
        "b": (X0 + 1_130, Y0 + 70),
        "c": (X0 + 2_310, Y0 - 40),
        "d": (X0 + 1_170, Y0 + 1_490),
        "e": (X0 - 60, Y0 + 1_370),
        "f": (X0 + 3_120, Y0 + 1_610),
        "g": (X0 + 2_270, Y0 - 1_730),
        "i": (X0 - 1_410, Y0 + 20),
    }
    pairs = ["ab", "bc", "bd", "ad", "ae", "ed", "df", "cf", "cg", "ai"]
    G = lines_graph([[pts[p[0]], pts[p[1]]] for p in pairs])
    h = 2_600.0
    target = (X0 + 1_700, Y0 + 5)
    snapped = cr.snap_incidents(G, incidents_at([target]))
    row = snapped.iloc[0]
    expected = _independent_esd(G, (row["u"], row["v"], row["key"]), row["offset_m"], h, step=0.5)
    params = RiskParams(
        bandwidth_m=h, segment_length_m=50.0, conserve_mass=False, near_repeat_boost=0.0
    )
    segs = cr.score_segments(G, snapped, params=params, as_of="2023-01-01", engine=engine).segments
    got = segs.groupby("road_id")["mass"].sum()
    for road, value in expected.items():
        assert got[road] == pytest.approx(value, abs=2e-6), road
    # loops cut by the shortest-path tree lose mass: the total is below 1
    assert 0.5 < got.sum() < 1.0


def test_split_segments_match_shapely_substring() -> None:
    """Bulk-built pieces equal shapely.ops.substring of each edge (a peer implementation)."""
    lines = [
        [(X0, Y0), (X0 + 1_000, Y0 + 300), (X0 + 1_400, Y0 + 2_000), (X0 + 3_300, Y0 + 2_100)],
        [(X0 + 3_300, Y0 + 2_100), (X0 + 3_500, Y0 + 2_150)],
        [(X0, Y0), (X0 - 700, Y0 - 900), (X0 - 2_000, Y0 - 950)],
    ]
    G = lines_graph(lines)
    segs = split_segments(G, 600.0)
    for row in segs.itertuples():
        line = G.edges[row.u, row.v, row.key]["geometry"]
        expected = substring(line, row.start_m, row.end_m)
        assert shapely.equals_exact(row.geometry, expected, tolerance=1e-6)
        assert row.length_m <= 600.0 + 1e-9
    total = segs.groupby("road_id")["length_m"].sum()
    for road, length in total.items():
        edge = next(d for *_, d in G.edges(data=True) if d["road_id"] == road)
        assert length == pytest.approx(edge["geometry"].length)
