"""Output size: simplified, rounded, delta-encoded geometry keeps big maps small."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
from benchmarks.bench_maps import synthetic_case

import convoyrisk as cr

from .helpers.mapdata import decode_lines, map_data


def test_a_2000_segment_map_is_small_enough_for_100k_under_30_mb(tmp_path: Path) -> None:
    G, risk = synthetic_case(2_000)
    n = len(risk.segments)
    page = cr.save_map(cr.risk_map(G, risk), tmp_path / "big.html").read_text(encoding="utf-8")
    data = map_data(page)
    assert len(data["roads"]["id"]) == n
    assert data["roads"]["canvas"] is False  # below the SVG limit
    # the data of a segment (6 curved vertices, tooltip, class) takes under 250 bytes,
    # so 100k segments stay under 30 MB with the embedded assets (< 1 MB)
    assets = len(page.encode()) - len(page.split('type="application/json"')[1].encode())
    per_segment = (len(page.encode()) - assets) / n
    assert per_segment < 250, per_segment
    assert 100_000 * per_segment + assets < 30e6
    # and the drawn lines are still the roads, to the 10 m simplification and the rounding
    drawn = gpd.GeoSeries(
        decode_lines(data["roads"]["parts"], data["decimals"]), crs="EPSG:4326"
    ).to_crs(risk.segments.crs)
    original = risk.segments.set_index("segment_id").geometry.loc[data["roads"]["id"]]
    d = drawn.hausdorff_distance(original.reset_index(drop=True), align=False)
    assert float(np.max(d)) <= 12.0


def test_canvas_above_the_svg_limit(default_graph, default_risk) -> None:
    m = cr.risk_map(default_graph, default_risk, renderer="canvas")
    page = m.get_root().render()
    assert map_data(page)["roads"]["canvas"] is True
