from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

import convoyrisk as cr

from .helpers.graphs import PLANE, lines_graph


def _points(xy: list[tuple[float, float]], crs: str = PLANE) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(geometry=gpd.points_from_xy(*zip(*xy, strict=True)), crs=crs)


def test_point_1km_from_straight_edge() -> None:
    G = lines_graph([[(500_000, 2_000_000), (510_000, 2_000_000)]])
    out = cr.snap_incidents(G, _points([(503_000, 2_001_000)]))
    row = out.iloc[0]
    assert row["status"] == "snapped"
    assert row["snap_distance_m"] == pytest.approx(1000.0, abs=1.0)
    assert row["offset_m"] == pytest.approx(3000.0, abs=1.0)
    assert (row["snap_x"], row["snap_y"]) == pytest.approx((503_000, 2_000_000), abs=1e-6)


def test_too_far_is_kept_and_marked() -> None:
    G = lines_graph([[(500_000, 2_000_000), (510_000, 2_000_000)]])
    out = cr.snap_incidents(
        G, _points([(503_000, 2_006_000), (503_000, 2_000_010)]), max_distance_m=5000
    )
    assert out["status"].tolist() == ["too_far", "snapped"]
    assert np.isnan(out["snap_distance_m"].iloc[0])


def test_agrees_with_sjoin_nearest(default_graph, places) -> None:
    """Nearest edge and distance equal geopandas' sjoin_nearest (the peer)."""
    edges = cr.edges_gdf(default_graph).reset_index()
    pts = places.to_crs(default_graph.graph["crs"])
    ours = cr.snap_incidents(default_graph, pts, max_distance_m=1e7)
    peer = gpd.sjoin_nearest(pts, edges, distance_col="d").groupby(level=0).first()
    assert np.allclose(ours["snap_distance_m"], peer["d"], atol=1e-6)
    # the same edge, or an exact tie (places at junctions are as near to every road there)
    geom = edges.set_index(["u", "v", "key"]).geometry
    for i in range(len(pts)):
        mine = (ours["u"].iat[i], ours["v"].iat[i], ours["key"].iat[i])
        theirs = (peer["u"].iat[i], peer["v"].iat[i], peer["key"].iat[i])
        if mine != theirs:
            p = pts.geometry.iat[i]
            assert geom.loc[theirs].distance(p) == pytest.approx(
                geom.loc[mine].distance(p), abs=1e-6
            )


coords = st.floats(min_value=-5000, max_value=5000, allow_nan=False)


@settings(max_examples=50, deadline=None)
@given(
    px=coords,
    py=coords,
    lines=st.lists(st.tuples(coords, coords, coords, coords), min_size=1, max_size=6),
)
def test_snapped_point_is_on_its_edge_at_the_minimum_distance(px, py, lines) -> None:
    base = (500_000.0, 2_000_000.0)
    segs = [
        [(base[0] + a, base[1] + b), (base[0] + c, base[1] + d)]
        for a, b, c, d in lines
        if abs(a - c) + abs(b - d) > 1.0
    ]
    if not segs:
        return
    G = lines_graph(segs)
    p = shapely.Point(base[0] + px, base[1] + py)
    out = cr.snap_incidents(G, _points([(p.x, p.y)]), max_distance_m=1e6).iloc[0]
    edge = G.edges[int(out["u"]), int(out["v"]), int(out["key"])]["geometry"]
    snapped = shapely.Point(out["snap_x"], out["snap_y"])
    assert edge.distance(snapped) < 1e-6
    true_min = min(d["geometry"].distance(p) for *_, d in G.edges(data=True))
    assert out["snap_distance_m"] == pytest.approx(true_min, abs=1e-6)
    assert 0.0 <= out["offset_m"] <= edge.length + 1e-9
