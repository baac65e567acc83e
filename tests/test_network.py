from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import networkx as nx
import numpy as np
import pytest
from pyproj import CRS, Geod, Proj
from shapely.geometry import LineString, Point

import convoyrisk as cr
from convoyrisk import settings

from .helpers.graphs import lines_graph, node_at

MAIN = "Kidal–Gao road"


def _geodesic_km(coords: list[list[float]]) -> float:
    lons, lats = zip(*coords, strict=True)
    return Geod(ellps="WGS84").line_length(lons, lats) / 1000.0


def test_main_road_about_350_km(default_graph) -> None:
    """Graph lengths are the geodesic lengths of the source lines; the main road is ~350 km."""
    doc = json.loads(settings.default_roads().read_text(encoding="utf-8"))
    geodesic = sum(
        _geodesic_km(f["geometry"]["coordinates"])
        for f in doc["features"]
        if f["properties"]["name"] == MAIN
    )
    graph = (
        sum(
            d["length"]
            for *_, d in default_graph.edges(data=True)
            if d["name"] == MAIN and not d["reversed"]
        )
        / 1000.0
    )
    assert geodesic == pytest.approx(350.0, abs=5.0)
    assert graph == pytest.approx(geodesic, rel=1e-9)


def test_every_source_line_is_an_edge_pair(default_graph) -> None:
    doc = json.loads(settings.default_roads().read_text(encoding="utf-8"))
    forward = [d for *_, d in default_graph.edges(data=True) if not d["reversed"]]
    assert len(forward) == len(doc["features"])
    assert default_graph.number_of_edges() == 2 * len(doc["features"])
    assert all(d["geometry_source"] == "approximate" for d in forward)


def test_junction_degrees(default_graph) -> None:
    names = {d.get("name"): n for n, d in default_graph.nodes(data=True)}
    # Anéfis joins Kidal, Tabankort and Bourem; Gao joins Almoustarat, Bourem and Ansongo
    assert default_graph.out_degree(names["Anéfis"]) == 3
    assert default_graph.out_degree(names["Gao"]) == 3
    assert default_graph.out_degree(names["Tessalit"]) == 1
    # the scenario spans UTM zones 30 and 31: its CRS is built for it, true to 0.1 %
    crs = CRS.from_user_input(default_graph.graph["crs"])
    assert crs.is_projected
    assert crs.axis_info[0].unit_name == "metre"
    lon = [d["lon"] for _, d in default_graph.nodes(data=True)]
    lat = [d["lat"] for _, d in default_graph.nodes(data=True)]
    factors = Proj(crs).get_factors(lon, lat)
    assert np.all(np.abs(np.asarray(factors.tissot_semimajor) - 1) < 1e-3)
    assert np.all(np.abs(np.asarray(factors.tissot_semiminor) - 1) < 1e-3)


def test_two_routes_kidal_gao(default_graph) -> None:
    names = {d.get("name"): n for n, d in default_graph.nodes(data=True)}
    simple = nx.Graph(default_graph.to_undirected())
    paths = list(nx.all_simple_paths(simple, names["Kidal"], names["Gao"]))
    assert len(paths) >= 2


def test_endpoints_within_tolerance_merge() -> None:
    G = lines_graph([[(0, 0), (1000, 0)], [(1000.5, 0), (2000, 0)]])
    assert G.number_of_nodes() == 3
    assert nx.shortest_path_length(
        G, node_at(G, 0, 0), node_at(G, 2000, 0), weight="length"
    ) == pytest.approx(2000.0, abs=1.0)


def test_oneway() -> None:
    gdf = gpd.GeoDataFrame(
        {"oneway": ["yes", "no"]},
        geometry=gpd.GeoSeries.from_wkt(
            ["LINESTRING (0 0, 1000 0)", "LINESTRING (1000 0, 2000 0)"]
        ),
        crs="EPSG:32631",
    )
    G = cr.graph_from_gdf(gdf)
    assert G.number_of_edges() == 3


def test_empty_layer(tmp_path: Path) -> None:
    path = tmp_path / "empty.geojson"
    path.write_text('{"type": "FeatureCollection", "features": []}', encoding="utf-8")
    with pytest.raises(cr.InputError, match="empty"):
        cr.read_roads(path)


def test_points_layer_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "points.geojson"
    gpd.GeoDataFrame(geometry=[Point(0, 0)], crs="EPSG:4326").to_file(path)
    with pytest.raises(cr.InputError, match="holds no lines"):
        cr.read_roads(path)


def test_missing_crs() -> None:
    gdf = gpd.GeoDataFrame(geometry=gpd.GeoSeries.from_wkt(["LINESTRING (0 0, 1 1)"]))
    with pytest.raises(cr.InputError, match="no CRS: set one"):
        cr.graph_from_gdf(gdf)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        cr.read_roads(tmp_path / "nope.gpkg")


def test_equal_text_attributes_share_one_object() -> None:
    """A table's repeated strings become one object per value in the graph (memory), unchanged."""
    lines = [LineString([(i * 1_000.0, 0.0), ((i + 1) * 1_000.0, 0.0)]) for i in range(6)]
    kinds = ["track", "primary", "track", "track", None, "primary"]
    gdf = gpd.GeoDataFrame(
        {"highway": ["".join(k) if k else k for k in kinds]},  # a new object per row
        geometry=lines,
        crs="EPSG:32631",
    )
    G = cr.graph_from_gdf(gdf, simplify=False)
    values = [d["highway"] for *_, d in G.edges(data=True)]
    assert sorted(values) == sorted([k or "" for k in kinds] * 2)  # two-way; missing: ""
    tracks = [v for v in values if v == "track"]
    assert len(tracks) == 6 and len({id(v) for v in tracks}) == 1
