"""User-drawn routes: GPX and GeoJSON tracks snapped onto the network."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import networkx as nx
import numpy as np
import pytest
import shapely
from pyproj import Transformer

import convoyrisk as cr
from convoyrisk.routing import route_length_m
from convoyrisk.tracks import read_tracks, snap_track

from .helpers.graphs import PLANE, lines_graph, node_at
from .helpers.routing import X0, Y0, shift

TO_LONLAT = Transformer.from_crs(PLANE, "EPSG:4326", always_xy=True)


@pytest.fixture(scope="module")
def ladder() -> nx.MultiDiGraph:
    """A to B direct (10 km), via north N (5, 3 km) and via south S (5, −4 km)."""
    return lines_graph(
        shift(
            [
                [(0, 0), (10_000, 0)],
                [(0, 0), (5_000, 3_000)],
                [(5_000, 3_000), (10_000, 0)],
                [(0, 0), (5_000, -4_000)],
                [(5_000, -4_000), (10_000, 0)],
            ]
        )
    )


def lonlat_track(xy: list[tuple[float, float]], noise_m: float = 0.0, seed: int = 0) -> np.ndarray:
    """A track through the given local points (km-scale), every 50 m, with GPS noise."""
    line = shapely.LineString([(X0 + x, Y0 + y) for x, y in xy])
    d = np.arange(0.0, line.length, 50.0)
    pts = shapely.get_coordinates(shapely.line_interpolate_point(line, d))
    pts += np.random.default_rng(seed).normal(0.0, noise_m, pts.shape) if noise_m else 0.0
    lon, lat = TO_LONLAT.transform(pts[:, 0], pts[:, 1])
    return np.c_[lon, lat]


def write_gpx(path: Path, segments: list[np.ndarray], name: str = "convoy track") -> Path:
    segs = "".join(
        "<trkseg>"
        + "".join(
            f'<trkpt lat="{lat:.7f}" lon="{lon:.7f}"><ele>300</ele></trkpt>' for lon, lat in s
        )
        + "</trkseg>"
        for s in segments
    )
    path.write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<gpx version="1.1" creator="test" xmlns="http://www.topografix.com/GPX/1/1">'
        f"<trk><name>{name}</name>{segs}</trk></gpx>",
        encoding="utf-8",
    )
    return path


def names(G: nx.MultiDiGraph, nodes: list[int]) -> list[tuple[int, int]]:
    return [(round(G.nodes[n]["x"] - X0), round(G.nodes[n]["y"] - Y0)) for n in nodes]


def test_gpx_track_along_the_north_road(ladder, tmp_path) -> None:
    pts = lonlat_track([(0, 0), (5_000, 3_000), (10_000, 0)], noise_m=15.0)
    half = len(pts) // 2
    path = write_gpx(tmp_path / "t.gpx", [pts[:half], pts[half:]])  # two segments, one track
    ((name, line),) = read_tracks(path)
    assert name == "convoy track" and len(line.coords) == len(pts)
    r = snap_track(ladder, line, name=name)
    assert names(ladder, r.nodes) == [(0, 0), (5_000, 3_000), (10_000, 0)]
    expected = nx.shortest_path_length(
        ladder, node_at(ladder, X0, Y0), node_at(ladder, X0 + 5_000, Y0 + 3_000), weight="length"
    )
    assert route_length_m(ladder, r.edges) == pytest.approx(2 * expected)
    # the same track driven the other way
    back = snap_track(ladder, shapely.LineString(pts[::-1]))
    assert names(ladder, back.nodes) == [(10_000, 0), (5_000, 3_000), (0, 0)]


def test_geojson_track_and_junction_touches(ladder, tmp_path) -> None:
    """A track down the direct road: at A and B it touches the side roads; they are dropped."""
    pts = lonlat_track([(0, 0), (10_000, 0)])
    path = tmp_path / "t.geojson"
    gpd.GeoDataFrame({"name": ["direct"]}, geometry=[shapely.LineString(pts)], crs=4326).to_file(
        path
    )
    ((name, line),) = read_tracks(path)
    r = snap_track(ladder, line, name=name)
    assert names(ladder, r.nodes) == [(0, 0), (10_000, 0)]
    assert route_length_m(ladder, r.edges) == pytest.approx(10_000.0)


def test_track_with_a_gap_is_joined_by_the_shortest_path() -> None:
    """A–M1–M2–B in 2 km steps, and a bypass M1–X–M2; the track skips the middle road."""
    G = lines_graph(
        shift(
            [
                [(0, 0), (2_000, 0)],
                [(2_000, 0), (4_000, 0)],
                [(4_000, 0), (6_000, 0)],
                [(2_000, 0), (3_000, 1_500)],
                [(3_000, 1_500), (4_000, 0)],
            ]
        )
    )
    a = lonlat_track([(0, 0), (1_800, 0)])
    b = lonlat_track([(4_200, 0), (6_000, 0)])
    r = snap_track(G, shapely.LineString(np.vstack([a, b])))
    assert names(G, r.nodes) == [(0, 0), (2_000, 0), (4_000, 0), (6_000, 0)]


def test_track_far_from_the_network(ladder) -> None:
    far = lonlat_track([(0, 8_000), (10_000, 8_000)])
    with pytest.raises(cr.InputError, match=r"off the road network.*more than 2000 m") as exc:
        snap_track(ladder, shapely.LineString(far), name="far")
    # the farthest points are the ends: (0, 8 km) lies 8·5/hypot(5, 3) = 6.86 km from A–N
    assert "up to 6.9 km" in str(exc.value)
    # within a larger allowance it snaps (onto the north road, the nearest)
    r = snap_track(ladder, shapely.LineString(far), max_offset_m=10_000.0)
    assert r.edges


def test_bad_track_files(tmp_path) -> None:
    bad = tmp_path / "bad.gpx"
    bad.write_text("<gpx><trk><trkseg><trkpt lat='1'", encoding="utf-8")
    with pytest.raises(cr.InputError, match="Cannot parse GPX"):
        read_tracks(bad)
    empty = tmp_path / "empty.gpx"
    empty.write_text("<gpx><wpt lat='18' lon='1'/></gpx>", encoding="utf-8")
    with pytest.raises(cr.InputError, match="no track"):
        read_tracks(empty)
    with pytest.raises(cr.ConvoyRiskError, match="does not exist"):
        read_tracks(tmp_path / "none.gpx")
    pts = tmp_path / "pts.geojson"
    gpd.GeoDataFrame(geometry=[shapely.Point(1, 18)], crs=4326).to_file(pts)
    with pytest.raises(cr.InputError, match="no track"):
        read_tracks(pts)
