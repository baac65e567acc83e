"""Exact nearest-edge search: peers on real data, invariants, statuses."""

from __future__ import annotations

import importlib.util

import geopandas as gpd
import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

import convoyrisk as cr
from convoyrisk.snapping import LineIndex, road_chainage, status_counts

from .helpers.graphs import PLANE, lines_graph

# the numba engine is optional (the `fast` extra)
ENGINES = ["numpy"] + (["numba"] if importlib.util.find_spec("numba") else [])


@pytest.fixture(scope="module")
def geodanet() -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    examples = pytest.importorskip("libpysal.examples")
    # US survey feet in the files; graphs are in true metres, so both go to UTM 12N first
    streets = gpd.read_file(examples.get_path("streets.shp")).to_crs("EPSG:32612")
    crimes = gpd.read_file(examples.get_path("crimes.shp")).to_crs("EPSG:32612")
    return streets, crimes


# spaghetti builds libpysal Chain objects, which libpysal has deprecated (not our code)
@pytest.mark.filterwarnings("ignore:Objects based on the `Geometry` class:FutureWarning")
@pytest.mark.parametrize("engine", ENGINES)
def test_geodanet_crimes_agree_with_spaghetti_and_sjoin_nearest(geodanet, engine) -> None:
    """Real data: libpysal's geodanet crimes onto its streets (in UTM 12N metres)."""
    spaghetti = pytest.importorskip("spaghetti")

    streets, crimes = geodanet
    # a tiny node tolerance keeps every street's geometry exactly as read
    G = cr.graph_from_gdf(streets, crs=streets.crs, node_tolerance_m=1e-9)
    index, keys = LineIndex.from_graph(G)
    index = LineIndex([G.edges[k]["geometry"] for k in keys], engine=engine)
    ours = cr.snap_incidents(G, crimes, max_distance_m=1e9, index=index)
    assert (ours["status"] == "snapped").all()

    ntw = spaghetti.Network(in_data=streets)
    ntw.snapobservations(crimes, "crimes")
    pp = ntw.pointpatterns["crimes"]
    ids = sorted(pp.dist_snapped)
    assert len(ids) == len(crimes)
    peer_d = np.array([pp.dist_snapped[i] for i in ids])
    peer_xy = np.array([pp.snapped_coordinates[i] for i in ids])
    # brute force with GEOS over every raw street: the exact answer
    truth = np.array(
        [shapely.distance(streets.geometry.to_numpy(), p).min() for p in crimes.geometry]
    )
    assert np.abs(ours["snap_distance_m"].to_numpy() - truth).max() <= 1e-9
    # spaghetti's own arithmetic strays from GEOS's by up to 5e-5 m here (UTM coordinates
    # of 3.7e6 m): agreement to 1e-4 m, and its error is its own (see `truth`)
    assert np.abs(ours["snap_distance_m"].to_numpy() - peer_d).max() <= 1e-4
    ours_xy = ours[["snap_x", "snap_y"]].to_numpy()
    moved = np.hypot(*(ours_xy - peer_xy).T)
    # the same point on the network, except where two streets are equally near
    edges = cr.edges_gdf(G)
    for i in np.flatnonzero(moved > 1e-4):
        p = crimes.geometry.iat[i]
        q = shapely.Point(peer_xy[i])
        assert shapely.distance(edges.geometry, q).min() < 1e-4  # spaghetti's point is on a road
        assert p.distance(q) == pytest.approx(ours["snap_distance_m"].iat[i], abs=1e-4)

    peer = (
        gpd.sjoin_nearest(
            crimes, edges.reset_index()[["u", "v", "key", "geometry"]], distance_col="d"
        )
        .groupby(level=0)
        .first()
    )
    assert np.abs(ours["snap_distance_m"].to_numpy() - peer["d"].to_numpy()).max() <= 1e-9
    same = (ours[["u", "v", "key"]].to_numpy() == peer[["u", "v", "key"]].to_numpy()).all(axis=1)
    for i in np.flatnonzero(~same):  # ties only
        theirs = tuple(int(c) for c in peer[["u", "v", "key"]].iloc[i])
        d = edges.geometry.loc[theirs].distance(crimes.geometry.iat[i])
        assert d == pytest.approx(ours["snap_distance_m"].iat[i], abs=1e-6)
    assert same.mean() > 0.9
    # offsets equal shapely's line_locate_point on the chosen edge
    geoms = edges.geometry.loc[list(zip(ours["u"], ours["v"], ours["key"], strict=True))]
    located = shapely.line_locate_point(geoms.to_numpy(), crimes.geometry.to_numpy())
    assert np.abs(located - ours["offset_m"].to_numpy()).max() <= 1e-6


coord = st.floats(min_value=-3000, max_value=3000, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(
    points=st.lists(st.tuples(coord, coord), min_size=1, max_size=8),
    lines=st.lists(
        st.lists(st.tuples(coord, coord), min_size=2, max_size=5), min_size=1, max_size=6
    ),
    engine=st.sampled_from(ENGINES),
)
def test_nearest_is_exact_and_on_the_line(points, lines, engine) -> None:
    geoms = [shapely.LineString(c) for c in lines]
    if any(g.length == 0 for g in geoms):
        return
    index = LineIndex(geoms, engine=engine)
    x, y = np.array(points).T
    hit = index.nearest(x, y)
    pts = shapely.points(x, y)
    for i, p in enumerate(pts):
        true = min(g.distance(p) for g in geoms)
        assert hit.distance[i] == pytest.approx(true, abs=1e-6)
        line = geoms[hit.line[i]]
        assert line.distance(p) == pytest.approx(true, abs=1e-6)
        on = shapely.Point(hit.x[i], hit.y[i])
        assert line.distance(on) < 1e-6
        assert p.distance(on) == pytest.approx(true, abs=1e-6)
        # the offset locates the snapped point along its line (a line that passes a place
        # twice has two offsets there: either will do)
        assert line.interpolate(hit.offset[i]).distance(on) < 1e-6


@settings(max_examples=30, deadline=None)
@given(
    points=st.lists(st.tuples(coord, coord, st.sampled_from([0.0, 500.0, 4000.0])), max_size=10),
    max_distance=st.sampled_from([10.0, 300.0, 2000.0]),
)
def test_statuses_add_up_and_follow_the_rules(points, max_distance) -> None:
    base = (500_000.0, 2_000_000.0)
    G = lines_graph([[(base[0] - 1000, base[1]), (base[0] + 1000, base[1])]])
    xy = [(base[0] + a, base[1] + b) for a, b, _ in points]
    gdf = gpd.GeoDataFrame(
        {"precision_m": [p for *_, p in points]},
        geometry=gpd.points_from_xy([p[0] for p in xy], [p[1] for p in xy]),
        crs=PLANE,
    )
    out = cr.snap_incidents(G, gdf, max_distance_m=max_distance, exact_m=2000.0)
    assert sum(status_counts(out).values()) == len(gdf)
    road = G.edges[next(iter(G.edges))]["geometry"]
    for (px, py), prec, status in zip(xy, gdf["precision_m"], out["status"], strict=True):
        d = road.distance(shapely.Point(px, py))
        reach = max_distance if prec <= 2000 else max(max_distance, prec)
        expected = "too_far" if d > reach else ("snapped" if prec <= 2000 else "spread")
        if abs(d - reach) < 1e-6:  # exactly at the limit: rounding may put it either side
            assert status in {expected, "too_far"}
        else:
            assert status == expected


def test_ties_go_to_the_first_line() -> None:
    # a point on the bisector of two lines meeting at a node: equally near to both
    geoms = [shapely.LineString([(0, 0), (10, 0)]), shapely.LineString([(0, 0), (0, 10)])]
    for engine in ENGINES:
        hit = LineIndex(geoms[::-1], engine=engine).nearest(np.array([-1.0]), np.array([-1.0]))
        assert hit.line[0] == 0
        assert hit.distance[0] == pytest.approx(np.sqrt(2))


def test_engines_agree_on_long_straight_pieces_and_far_points() -> None:
    rng = np.random.default_rng(3)
    # a 50 km desert track beside short town streets: long pieces are cut for the index
    track = shapely.LineString([(0, 0), (50_000, 0), (50_000, 30_000)])
    streets = [
        shapely.LineString([(x, 100), (x + 20, 140), (x + 35, 100)]) for x in range(0, 2000, 40)
    ]
    geoms = [track, *streets]
    x = rng.uniform(-20_000, 70_000, 3000)
    y = rng.uniform(-20_000, 50_000, 3000)
    truth = np.array(
        [min(g.distance(shapely.Point(a, b)) for g in geoms) for a, b in zip(x, y, strict=True)]
    )
    for engine in ENGINES:
        hit = LineIndex(geoms, engine=engine).nearest(x, y)
        assert np.abs(hit.distance - truth).max() <= 1e-6
        limited = LineIndex(geoms, engine=engine).nearest(x, y, max_distance=5_000.0)
        far = truth > 5_000.0
        assert (limited.line[far] == -1).all() and np.isnan(limited.distance[far]).all()
        assert np.abs(limited.distance[~far] - truth[~far]).max() <= 1e-6


@pytest.mark.parametrize("engine", ENGINES)
def test_points_without_coordinates_find_nothing(engine) -> None:
    index = LineIndex([shapely.LineString([(0, 0), (10, 0)])], engine=engine)
    hit = index.nearest([np.nan, 5.0], [1.0, np.inf])
    assert hit.line.tolist() == [-1, -1]
    assert np.isnan(hit.distance).all()


def test_road_length_within_the_radius() -> None:
    # the disc of 5 km around a point 3 km off a straight road holds 2*sqrt(5^2-3^2) = 8 km of it
    G = lines_graph([[(500_000, 2_000_000), (520_000, 2_000_000)]])
    gdf = gpd.GeoDataFrame(
        {"precision_m": [5_000.0]}, geometry=[shapely.Point(510_000, 2_003_000)], crs=PLANE
    )
    out = cr.snap_incidents(G, gdf, max_distance_m=1_000.0).iloc[0]
    assert out["status"] == "spread"
    assert out["road_in_radius_m"] == pytest.approx(8_000.0, abs=1e-6)
    assert out["snap_distance_m"] == pytest.approx(3_000.0)
    ring = shapely.Point(510_000, 2_003_000).buffer(5_000, quad_segs=256)
    geom = G.edges[next(iter(G.edges))]["geometry"]
    assert out["road_in_radius_m"] == pytest.approx(geom.intersection(ring).length, rel=1e-4)


def test_road_length_within_many_discs_in_chunks(monkeypatch) -> None:
    """Many discs over many curved lines, a few pairs per chunk: shapely's intersection lengths."""
    from benchmarks.synthetic import grid_roads

    from convoyrisk import snapping

    roads = grid_roads(400, seed=3)
    lines = roads.geometry.to_numpy()
    index = LineIndex(lines, engine="numpy")  # the k-d tree path, in chunks
    rng = np.random.default_rng(4)
    lo, hi = np.array(roads.total_bounds[:2]), np.array(roads.total_bounds[2:])
    xy = rng.uniform(lo - 500.0, hi + 500.0, (60, 2))  # some discs reach past the roads
    radius = rng.uniform(50.0, 900.0, 60)
    whole = index.length_within(xy[:, 0], xy[:, 1], radius)
    monkeypatch.setattr(snapping, "_PAIRS_PER_CHUNK", 40)
    chunked = index.length_within(xy[:, 0], xy[:, 1], radius)
    np.testing.assert_array_equal(chunked, whole)
    # the compiled grid path (the default with numba), with small cells: many per disc
    grid = LineIndex(lines, engine="numba", cell_m=150.0)
    np.testing.assert_allclose(grid.length_within(xy[:, 0], xy[:, 1], radius), whole, rtol=1e-12)
    union = shapely.union_all(lines)
    for (x, y), r, got in zip(xy, radius, whole, strict=True):
        disc = shapely.Point(x, y).buffer(r, quad_segs=512)
        assert got == pytest.approx(union.intersection(disc).length, rel=1e-4, abs=1e-6)


def test_chainage_along_a_named_road() -> None:
    # two lines of one named road, the second digitised backwards
    import networkx as nx

    roads = gpd.GeoDataFrame(
        {"name": ["N1", "N1", "side"]},
        geometry=[
            shapely.LineString([(500_000, 2_000_000), (503_000, 2_000_000)]),
            shapely.LineString([(507_000, 2_000_000), (503_000, 2_000_000)]),
            shapely.LineString([(503_000, 2_000_000), (503_000, 2_002_000)]),
        ],
        crs=PLANE,
    )
    G = cr.graph_from_gdf(roads, crs=PLANE)
    assert isinstance(G, nx.MultiDiGraph)
    pts = gpd.GeoDataFrame(
        geometry=[
            shapely.Point(501_000, 2_000_010),
            shapely.Point(506_000, 1_999_990),
            shapely.Point(503_010, 2_001_500),
        ],
        crs=PLANE,
    )
    out = cr.snap_incidents(G, pts)
    assert out["road"].tolist() == ["N1", "N1", "side"]
    assert out["chainage_m"].tolist() == pytest.approx([1_000.0, 6_000.0, 1_500.0])
    chain = road_chainage(G)
    assert set(chain["road"]) == {"N1", "side"}


def _walked_chainage(G) -> dict:
    """Chainage by walking each named road with networkx (the definition, edge by edge)."""
    import networkx as nx

    fwd = [(u, v, k, d) for u, v, k, d in G.edges(keys=True, data=True) if not d["reversed"]]
    name = [str(d.get("name") or d.get("ref") or "").strip() for *_, d in fwd]
    out = {(u, v, k): (0.0, 1.0) for u, v, k, _ in fwd}
    for road in {n for n in name if n and name.count(n) > 1}:
        H = nx.MultiGraph()
        for i in (i for i, n in enumerate(name) if n == road):
            H.add_edge(fwd[i][0], fwd[i][1], row=i)
        for nodes in nx.connected_components(H):
            sub = H.subgraph(nodes)
            rows = [d["row"] for *_, d in sub.edges(data=True)]
            tips = [n for n, deg in sub.degree() if deg == 1]
            if sub.number_of_edges() != len(nodes) - 1 or max(dict(sub.degree()).values()) > 2:
                tips = []
            if len(tips) != 2:
                for i in rows:
                    out[fwd[i][:3]] = (np.nan, np.nan)
                continue
            first = min(rows, key=lambda i: (fwd[i][3]["road_id"], i))
            node = min(tips, key=lambda n: (0 if n in fwd[first][:2] else 1, n))
            at, previous = 0.0, -1
            for _ in rows:
                nxt, i = next(
                    (w, d["row"]) for _, w, d in sub.edges(node, data=True) if d["row"] != previous
                )
                u, _v, _k, d = fwd[i]
                out[fwd[i][:3]] = (at, 1.0) if u == node else (at + d["length"], -1.0)
                at += d["length"]
                node, previous = nxt, i
    return out


@pytest.mark.parametrize("seed", range(4))
def test_chainage_equals_walking_each_named_road(seed: int) -> None:
    """Random names on a grid: chains, branches, loops and lone edges, as a walk gives them."""
    from benchmarks.synthetic import grid_roads

    roads = grid_roads(300, seed=seed)
    rng = np.random.default_rng(seed)
    roads["name"] = rng.choice(["", "A", "B", "C", "D", "E"], len(roads), p=[0.3] + [0.14] * 5)
    G = cr.graph_from_gdf(roads)
    got = road_chainage(G)
    want = _walked_chainage(G)
    assert set(got.index) == set(want)
    start = np.array([want[i][0] for i in got.index])
    sign = np.array([want[i][1] for i in got.index])
    assert np.isnan(start).any()  # some named roads branch
    assert (np.nan_to_num(start) > 0).sum() > 10  # and some are chains of several edges
    np.testing.assert_array_equal(got["chain_start_m"].to_numpy(), start)
    np.testing.assert_array_equal(got["chain_sign"].to_numpy(), sign)


def test_default_scenario_anefis_is_112_km_from_kidal(default_graph) -> None:
    table = cr.read_incidents()
    out = cr.snap_incidents(default_graph, table.incidents)
    assert (out["status"] == "spread").all()  # no coordinates were published
    near_anefis = out[out["location"] == "near Anéfis"]
    # SCENARIO.md: Anéfis is about 112 km south of Kidal by road
    assert near_anefis["chainage_m"].iloc[0] == pytest.approx(112_000, abs=1_000)
    assert (out["road"] == "Kidal–Gao road").all()
