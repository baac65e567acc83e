"""The graph contract: validate_graph, foreign graphs made to follow it, true lengths anywhere."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import networkx as nx
import numpy as np
import pytest
import shapely
from click.testing import CliRunner
from pyproj import Geod, Transformer

import convoyrisk as cr
from convoyrisk.cli import main
from convoyrisk.convert import graph_problems

GEOD = Geod(ellps="WGS84")


def _osmnx_style(lonlat: list[tuple[float, float]]) -> nx.MultiDiGraph:
    """A graph as OSMnx makes it, unprojected: x, y in degrees, great-circle `length`."""
    ox = pytest.importorskip("osmnx")
    G = nx.MultiDiGraph(crs="epsg:4326")
    for i, (lon, lat) in enumerate(lonlat):
        G.add_node(100 + i, x=lon, y=lat)
    for i in range(len(lonlat) - 1):
        (x0, y0), (x1, y1) = lonlat[i], lonlat[i + 1]
        length = float(ox.distance.great_circle(y0, x0, y1, x1))
        for a, b, rev in ((i, i + 1, False), (i + 1, i, True)):
            G.add_edge(100 + a, 100 + b, osmid=7 + i, length=length, reversed=rev, highway="track")
    return G


def _problems(G: object) -> str:
    with pytest.raises(cr.InputError) as info:
        cr.validate_graph(G)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("The road graph does not follow convoyrisk's graph contract: (1)")
    assert "Fix: pass it through `convoyrisk.load_graph(G)`" in message
    return message


def test_built_graphs_pass(default_graph, tmp_path: Path) -> None:
    """Builders record their graphs as checked: the full check must find nothing."""
    assert graph_problems(default_graph) == []
    assert graph_problems(cr.load_graph(_osmnx_style([(0.0, 16.0), (0.4, 16.1)]))) == []
    cr.validate_graph(cr.load_graph(default_graph))
    for suffix in (".gpkg", ".graphml"):
        path = cr.save_graph(default_graph, tmp_path / f"g{suffix}")
        assert graph_problems(cr.load_graph(path)) == []


def test_a_saved_graph_edited_by_hand_is_checked(default_graph, tmp_path: Path) -> None:
    """A .gpkg is read back as is, then checked: lengths turned into feet are caught."""
    path = cr.save_graph(default_graph, tmp_path / "g.gpkg")
    edges = gpd.read_file(path, layer="edges")
    edges["length"] = edges["length"] / 0.3048
    edges.to_file(path, layer="edges")
    with pytest.raises(cr.InputError, match="is not the length of their geometry in metres"):
        cr.load_graph(path)


def test_every_problem_is_listed_at_once() -> None:
    G = nx.MultiDiGraph(crs="EPSG:32631")
    line = shapely.LineString([(500_000, 2_000_000), (501_000, 2_000_000)])
    G.add_node(0, x=500_000.0, y=2_000_000.0)
    G.add_node("b", x=501_000.0, y=2_000_000.0)  # a text id
    G.add_node(2)  # no coordinates
    G.add_edge(0, "b", geometry=line, length=1000.0 / 0.3048, road_id=0)  # feet, not metres
    G.add_edge("b", 0, geometry=line, length=1000.0, road_id=0)  # drawn v -> u
    G.add_edge(0, 2, length=5.0)  # no geometry, no road_id
    message = _problems(G)
    for part in (
        "1 node id(s) are not integers (e.g. 'b')",
        "1 node(s) have no numeric `x` and `y` (e.g. 2)",
        "1 edge(s) have no LineString `geometry` (e.g. (0, 2, 0))",
        "1 edge(s) have no integer `road_id` (e.g. (0, 2, 0))",
        "metres (e.g. (0, 'b', 0): length 3280.8 for a 1000.0 m line)",
        "1 edge geometries do not run from node u to node v (e.g. ('b', 0, 0))",
    ):
        assert part in message


@pytest.mark.parametrize(
    ("crs", "expected"),
    [
        (None, "it has no `crs` graph attribute"),
        ("EPSG:4326", "its `crs` EPSG:4326 is geographic: x and y are degrees, not metres"),
        ("EPSG:2263", "its `crs` EPSG:2263 measures in US survey foot, not metres"),
        ("EPSG:3857", "its `crs` EPSG:3857 stretches distances by up to 4.0% over the nodes"),
        ("EPSG:32630", "its `crs` EPSG:32630 stretches distances by up to 1.1% over the nodes"),
    ],
)
def test_crs_must_be_true_metres(crs, expected) -> None:
    """Nodes at 16°N, 12°W (UTM 28/29; zone 30 is two zones away)."""
    lon, lat = -12.0, 16.0
    G = nx.MultiDiGraph() if crs is None else nx.MultiDiGraph(crs=crs)
    to = Transformer.from_crs("EPSG:4326", crs or "EPSG:32629", always_xy=True)
    x0, y0 = to.transform(lon, lat)
    x1, y1 = to.transform(lon + 0.01, lat)
    G.add_node(0, x=x0, y=y0)
    G.add_node(1, x=x1, y=y1)
    length = GEOD.line_length([lon, lon + 0.01], [lat, lat])
    G.add_edge(0, 1, geometry=shapely.LineString([(x0, y0), (x1, y1)]), length=length, road_id=0)
    assert expected in _problems(G)


def test_undirected_and_not_a_graph() -> None:
    assert "it is a MultiGraph, not a directed networkx.MultiDiGraph" in _problems(nx.MultiGraph())
    assert "it is a dict, not a networkx graph" in _problems({})


def test_scoring_entries_check_the_graph(default_graph, default_risk) -> None:
    """score_segments, route_metrics and score_routes refuse a graph off the contract."""
    raw = _osmnx_style([(0.0, 16.0), (0.5, 16.2), (1.0, 16.5)])  # x, y in degrees
    empty = gpd.GeoDataFrame(geometry=[], crs="EPSG:4326")
    with pytest.raises(cr.InputError, match="EPSG:4326 is geographic"):
        cr.score_segments(raw, empty)
    u, v = next(iter(default_graph.edges()))  # two nodes a road joins
    route = cr.alternative_routes(default_graph, u, v, k=1)[0]
    with pytest.raises(cr.InputError, match="EPSG:4326 is geographic"):
        cr.route_metrics(raw, route, default_risk)
    with pytest.raises(cr.InputError, match="EPSG:4326 is geographic"):
        cr.score_routes(raw, [route], default_risk)


def test_osmnx_graph_in_degrees_is_refused_then_converted() -> None:
    """The issue's case: an OSMnx graph in EPSG:4326 must not be snapped in degrees."""
    road = [(0.0, 16.0), (0.5, 16.2), (1.0, 16.5)]
    raw = _osmnx_style(road)
    far = gpd.GeoDataFrame(geometry=[shapely.Point(0.5, 18.2)], crs="EPSG:4326")  # 222 km off
    with pytest.raises(cr.InputError, match="EPSG:4326 is geographic"):
        cr.snap_incidents(raw, far)
    with pytest.raises(cr.InputError, match="EPSG:4326 is geographic"):
        cr.alternative_routes(raw, 100, 102)
    G = cr.load_graph(raw)
    cr.validate_graph(G)
    # lengths: geodesic on WGS84 (pyproj.Geod), and OSMnx's great-circle within the
    # sphere-ellipsoid difference (at most 0.6 %)
    for u, v, d in G.edges(data=True):
        (lon0, lat0), (lon1, lat1) = road[u - 100], road[v - 100]
        assert d["length"] == pytest.approx(GEOD.line_length([lon0, lon1], [lat0, lat1]), rel=1e-9)
        assert d["length"] == pytest.approx(raw.edges[u, v, 0]["length"], rel=6e-3)
    out = cr.snap_incidents(G, far)
    assert out["status"].iloc[0] == "too_far"
    near = gpd.GeoDataFrame(geometry=[shapely.Point(0.0, 16.01)], crs="EPSG:4326")
    snapped = cr.snap_incidents(G, near)
    # the road leaves (0, 16) towards (0.5, 16.2): the nearest point is near the start;
    # its true distance, measured by Geod from the snapped point taken back to lon/lat
    back = Transformer.from_crs(G.graph["crs"], "EPSG:4326", always_xy=True)
    lon_s, lat_s = back.transform(snapped["snap_x"].iloc[0], snapped["snap_y"].iloc[0])
    _, _, true_m = GEOD.inv(0.0, 16.01, lon_s, lat_s)
    assert snapped["status"].iloc[0] == "snapped"
    assert 900 < snapped["snap_distance_m"].iloc[0] < 1_110  # metres, not degrees
    assert snapped["snap_distance_m"].iloc[0] == pytest.approx(true_m, rel=2e-3)


def test_momepy_graph_works_end_to_end(default_graph, places) -> None:
    """momepy's primal graph: undirected, (x, y) tuples as node ids; numbered and paired."""
    momepy = pytest.importorskip("momepy")
    roads = gpd.read_file(cr.settings.default_roads()).to_crs("EPSG:32631")
    raw = momepy.gdf_to_nx(roads, approach="primal")
    assert "node id(s) are not integers" in _problems(raw)
    G = cr.name_nodes(cr.load_graph(raw), places)
    assert all(isinstance(n, int) for n in G.nodes)
    assert G.number_of_edges() == default_graph.number_of_edges()
    # the same roads as the embedded graph: the same geodesic lengths
    ours = sorted(round(d["length"], 3) for *_, d in G.edges(data=True))
    embedded = sorted(round(d["length"], 3) for *_, d in default_graph.edges(data=True))
    assert ours == pytest.approx(embedded, abs=1e-3)
    names = {d["name"]: n for n, d in G.nodes(data=True) if "name" in d}
    table = cr.read_incidents()
    snapped = cr.snap_incidents(G, table.incidents)
    risk = cr.score_segments(G, snapped, as_of="2023-11-04")
    alternatives = cr.alternative_routes(G, names["Kidal"], names["Gao"], k=2)
    # ranked by length (the risk ranking is the model's business): the direct road first
    routes = cr.score_routes(G, alternatives, risk, rank_by="length")
    main_road = sum(
        d["length"] for *_, d in default_graph.edges(data=True)
        if d["name"] == "Kidal–Gao road" and not d["reversed"]
    )  # fmt: skip
    assert routes[0].metrics["length_km"] == pytest.approx(main_road / 1000.0, abs=1e-3)


def test_null_geometries_are_counted_and_reported(tmp_path: Path) -> None:
    doc = {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "properties": {"name": "a"}, "geometry": None},
            {
                "type": "Feature",
                "properties": {"name": "b"},
                "geometry": {"type": "LineString", "coordinates": [[0.5, 17.0], [0.6, 17.1]]},
            },
            {"type": "Feature", "properties": {"name": "c"}, "geometry": None},
            {
                "type": "Feature",
                "properties": {"name": "d"},
                "geometry": {"type": "Point", "coordinates": [0.5, 17.0]},
            },
        ],
    }
    path = tmp_path / "gaps.geojson"
    path.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.warns(cr.ConvoyRiskWarning, match=r"3 row\(s\) left out") as record:
        G = cr.load_graph(path)
    assert len(record) == 1  # said once, though the layer is checked twice
    assert "2 missing geometry (rows 0, 2); 1 not a line (Point) (rows 3)" in str(record[0].message)
    build = G.graph["build"]
    assert build["skipped_rows"] == 3
    assert build["skipped"] == "2 missing geometry (rows 0, 2); 1 not a line (Point) (rows 3)"
    assert cr.graph_info(G)["build"]["skipped_rows"] == 3
    # the command line: one warning line, and `network info` shows the count
    out = tmp_path / "g.gpkg"
    result = CliRunner().invoke(main, ["network", "build", str(path), "--out", str(out), "-q"])
    assert result.exit_code == 0, result.stderr
    assert result.stderr.splitlines() == [
        "convoyrisk: warning: Road layer " + str(path) + ": 3 row(s) left out, no road in "
        "them: 2 missing geometry (rows 0, 2); 1 not a line (Point) (rows 3)."
    ]
    info = CliRunner().invoke(main, ["network", "info", str(out), "--format", "json"])
    assert json.loads(info.stdout)["build"]["skipped_rows"] == 3


# --------------------------------------------------------------------------------------
# acceptance: `network info` and `routes` give geodesic lengths in any input CRS
# --------------------------------------------------------------------------------------


def _chain(west: float, east: float, lat0: float, n: int) -> list[tuple[float, float]]:
    lon = np.linspace(west, east, n)
    lat = lat0 + 0.15 * (east - west) / 10 * np.sin(np.linspace(0.0, 3.0, n))
    return list(zip(lon.tolist(), lat.tolist(), strict=True))


CASES = {
    # name: (points lon/lat, CRS the file is written in)
    "4326": (_chain(0.2, 1.4, 16.3, 12), "EPSG:4326"),
    "3857": (_chain(0.2, 1.4, 16.3, 12), "EPSG:3857"),
    "feet": (_chain(-74.02, -73.88, 40.68, 9), "EPSG:2263"),  # New York state plane, US feet
    "four_zones": (_chain(-13.0, 4.0, 15.0, 35), "EPSG:4326"),  # UTM 28 to 31
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_network_info_and_routes_give_geodesic_lengths(tmp_path: Path, case: str) -> None:
    pts, crs = CASES[case]
    lines = [shapely.LineString(pts[i : i + 2]) for i in range(len(pts) - 1)]
    layer = gpd.GeoDataFrame({"name": ["Trans"] * len(lines)}, geometry=lines, crs="EPSG:4326")
    path = tmp_path / f"{case}.gpkg"
    layer.to_crs(crs).to_file(path)
    lon, lat = np.array(pts).T
    truth_km = GEOD.line_length(lon, lat) / 1000.0  # independent: the source's own lon/lat

    info = CliRunner().invoke(main, ["network", "info", str(path), "--format", "json"])
    assert info.exit_code == 0, info.stderr
    doc = json.loads(info.stdout)
    assert doc["total_km"] == pytest.approx(truth_km, abs=5e-4)  # printed to the metre
    assert doc["max_scale_error"] < 0.005

    start, end = f"{lat[0]},{lon[0]}", f"{lat[-1]},{lon[-1]}"
    # --allow-empty: the embedded incidents lie off these roads
    args = ["routes", "--roads", str(path), "--from", start, "--to", end, "--format", "json"]
    result = CliRunner().invoke(main, [*args, "--allow-empty"])
    assert result.exit_code == 0, result.stderr
    route = json.loads(result.stdout)["routes"][0]
    assert route["length_km"] == pytest.approx(truth_km, abs=5e-4)


@pytest.mark.parametrize(("crs", "what"), [("EPSG:3857", "stretches"), ("EPSG:2263", "foot")])
def test_forced_crs_that_is_not_true_metres_is_refused(tmp_path: Path, crs: str, what: str) -> None:
    pts, _ = CASES["4326"]
    layer = gpd.GeoDataFrame(geometry=[shapely.LineString(pts)], crs="EPSG:4326")
    path = tmp_path / "roads.geojson"
    layer.to_file(path)
    out = tmp_path / "g.gpkg"
    result = CliRunner().invoke(
        main, ["network", "build", str(path), "--out", str(out), "--crs", crs]
    )
    assert result.exit_code == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"convoyrisk: error: `crs` {crs} ")
    assert what in line
    assert "Leave `crs` unset (`--crs` off) to use EPSG:32631" in line
    assert not out.exists()
