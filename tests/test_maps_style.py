"""The map's palette, merged runs, what is left out, titles, size warnings and MBTiles bases."""

from __future__ import annotations

import itertools
import logging
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely
from colorspacious import cspace_convert

import convoyrisk as cr
from convoyrisk import maps
from convoyrisk._errors import InputError
from convoyrisk.basemap import read_mbtiles, tile_range
from convoyrisk.maps import (
    CLASS_COLOURS,
    CLASS_WEIGHTS,
    INSUFFICIENT,
    INSUFFICIENT_COLOUR,
    ROUTE_COLOURS,
    rate_words,
    segment_runs,
)
from convoyrisk.risk import RISK_CLASSES

from .helpers.graphs import lines_graph
from .helpers.mapdata import decode_lines, make_mbtiles, map_data

OLD_PALETTE = {"low": "#1a9850", "elevated": "#e6b400", "high": "#f46d43", "severe": "#a50026"}
CVD = ("protanomaly", "deuteranomaly", "tritanomaly")


def _rgb(colour: str) -> np.ndarray:
    return np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)]) / 255.0


def _luminance(rgb: np.ndarray) -> float:
    """WCAG relative luminance."""
    lin = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    return float(lin @ [0.2126, 0.7152, 0.0722])


def _contrast(a: str, b: str) -> float:
    la, lb = sorted([_luminance(_rgb(a)), _luminance(_rgb(b))])
    return (lb + 0.05) / (la + 0.05)


def _min_distance(palette: dict[str, str], cvd: str | None) -> float:
    """Smallest CAM02-UCS distance between two classes, as seen with full-severity `cvd`."""
    seen = []
    for c in RISK_CLASSES:
        rgb = _rgb(palette[c])
        if cvd is not None:
            space = {"name": "sRGB1+CVD", "cvd_type": cvd, "severity": 100}
            rgb = np.clip(cspace_convert(rgb, space, "sRGB1"), 0, 1)
        seen.append(cspace_convert(rgb, "sRGB1", "CAM02-UCS"))
    return min(float(np.linalg.norm(a - b)) for a, b in itertools.combinations(seen, 2))


def _lightness(palette: dict[str, str]) -> list[float]:
    return [float(cspace_convert(_rgb(palette[c]), "sRGB1", "CIELab")[0]) for c in RISK_CLASSES]


def test_palette_darkens_with_risk_by_clear_steps() -> None:
    lightness = _lightness(CLASS_COLOURS)
    # each class at least 10 L* darker than the one below: the order reads in grey
    assert all(a - b >= 10 for a, b in itertools.pairwise(lightness)), lightness
    # the old palette (L* 55/76/62/34, issue 16) fails this
    old = _lightness(OLD_PALETTE)
    assert not all(a - b >= 10 for a, b in itertools.pairwise(old))
    # and width rises with risk too (the second cue)
    weights = [CLASS_WEIGHTS[c] for c in (INSUFFICIENT, *RISK_CLASSES)]
    assert weights == sorted(weights) and len(set(weights)) == len(weights)


@pytest.mark.parametrize("cvd", [None, *CVD])
def test_palette_classes_stay_apart_for_colour_blind_readers(cvd: str | None) -> None:
    # CAM02-UCS distance 10 is well above a just-noticeable difference (about 1-2)
    assert _min_distance(CLASS_COLOURS, cvd) >= 10
    if cvd == "protanomaly":  # low and high looked the same to protanopes before
        assert _min_distance(OLD_PALETTE, cvd) < 5


def test_palette_has_contrast_on_the_background() -> None:
    contrast = {c: _contrast(CLASS_COLOURS[c], maps.BACKGROUND) for c in RISK_CLASSES}
    assert contrast["low"] >= 2.4
    assert all(contrast[c] >= 3.0 for c in ("elevated", "high", "severe")), contrast
    assert _contrast(OLD_PALETTE["elevated"], maps.BACKGROUND) < 2  # yellow on sand: 1.7:1


def test_purple_means_incidents_only() -> None:
    def purple(colour: str) -> bool:
        _, a, b = cspace_convert(_rgb(colour), "sRGB1", "CIELab")
        hue = np.degrees(np.arctan2(b, a)) % 360
        return bool(np.hypot(a, b) > 20 and 280 <= hue <= 345)

    assert purple(maps.INCIDENT_COLOUR)
    others = [*CLASS_COLOURS.values(), *ROUTE_COLOURS, INSUFFICIENT_COLOUR, maps.CASING_COLOUR]
    assert not any(purple(c) for c in others)


def test_rate_words_is_the_poisson_chance() -> None:
    # 0.003 per km per 30 days, 100 km in one day: 1 - exp(-0.01) = 0.995 %
    assert rate_words(0.003) == "about 1% chance of an incident per 100 km driven in a day"
    assert rate_words(0.3).startswith("about 63% chance")  # 1 - exp(-1)


def test_segment_runs_merge_consecutive_same_class_segments() -> None:
    seg = gpd.GeoDataFrame(
        {
            "segment_id": range(6),
            "road_id": [0, 0, 0, 0, 1, 1],
            "start_m": [0.0, 10.0, 20.0, 30.0, 0.0, 10.0],
            "end_m": [10.0, 20.0, 30.0, 40.0, 10.0, 20.0],
            "risk_class": ["low", "low", "high", "low", "low", "low"],
        },
        geometry=[shapely.LineString([(0, 0), (1, 1)])] * 6,
    )
    # shuffled rows: runs follow the road order, not the row order
    order = [3, 0, 5, 2, 4, 1]
    runs = segment_runs(seg.iloc[order])
    assert runs.tolist() == [2, 0, 3, 1, 3, 0]


@pytest.fixture(scope="module")
def split_road() -> tuple:
    """One 10 km road in 1 km segments: 4 low, 3 severe, 3 low; an incident off the network."""
    G = lines_graph([[(500_000.0, 2_000_000.0), (510_000.0, 2_000_000.0)]])
    places = gpd.GeoDataFrame(
        {"name": ["West", "East"], "kind": ["town", "town"]},
        geometry=shapely.points([(500_000, 2_000_000), (510_000, 2_000_000)]),
        crs=G.graph["crs"],
    )
    G = cr.name_nodes(G, places)
    inc = gpd.GeoDataFrame(
        {"event_id": ["on", "off"], "date": ["2023-11-01", "2023-11-01"]},
        geometry=shapely.points([(505_500, 2_000_000), (505_500, 2_050_000)]),
        crs=G.graph["crs"],
    )
    risk = cr.score_segments(G, cr.snap_incidents(G, inc, max_distance_m=1000))
    rates = np.r_[[0.0001] * 4, [0.05] * 3, [0.0001] * 3]
    segs = risk.segments.sort_values("start_m").reset_index(drop=True)
    segs["rate"], segs["rate_low"], segs["rate_high"] = rates, rates / 2, rates * 2
    segs["risk_class"] = cr.bayes.classify(rates, risk.params.class_thresholds)
    risk = cr.RiskResult(
        segments=segs,
        incidents=risk.incidents,
        params=risk.params,
        as_of=risk.as_of,
        exposure_days=risk.exposure_days,
    )
    return G, risk


def test_merged_runs_cover_the_same_road(split_road: tuple) -> None:
    G, risk = split_road
    page = maps.risk_map(G, risk, merge=True, minimap=False).get_root().render()
    roads = map_data(page)["roads"]
    assert roads["count"] == [4, 3, 3] or sorted(roads["count"]) == [3, 3, 4]
    assert len(roads["parts"]) == 3
    names = [map_data(page)["classes"][c]["name"] for c in roads["cls"]]
    assert names == ["low", "low", "severe"]  # drawn lowest first, severe on top
    drawn = gpd.GeoSeries(decode_lines(roads["parts"], 5), crs="EPSG:4326").to_crs(
        risk.segments.crs
    )
    assert drawn.length.sum() == pytest.approx(10_000.0, abs=5.0)
    severe = drawn.iloc[2]
    assert severe.length == pytest.approx(3_000.0, abs=3.0)
    assert severe.distance(shapely.Point(505_500, 2_000_000)) < 2.0
    assert roads["names"] == [] or all(isinstance(n, str) for n in roads["names"])


def test_off_network_incidents_left_out_and_counted(split_road: tuple) -> None:
    G, risk = split_road
    assert (risk.incidents["used"] == maps.OFF_NETWORK).sum() == 1
    page = maps.risk_map(G, risk, minimap=False).get_root().render()
    data = map_data(page)
    assert [r["id"] for r in data["incidents"]["rows"]] == ["on"]
    assert "1 incident(s) off the road network are not drawn" in data["footer"]


def test_insufficient_data_class_is_drawn_grey_and_dashed(split_road: tuple) -> None:
    G, risk = split_road
    segs = risk.segments.copy()
    segs.loc[:1, "risk_class"] = INSUFFICIENT
    thin = cr.RiskResult(
        segments=segs,
        incidents=risk.incidents,
        params=risk.params,
        as_of=risk.as_of,
        exposure_days=risk.exposure_days,
    )
    data = map_data(maps.risk_map(G, thin, minimap=False).get_root().render())
    cls = data["classes"][0]
    assert cls["name"] == INSUFFICIENT and cls["dash"] and cls["colour"] == INSUFFICIENT_COLOUR
    assert data["roads"]["cls"][:2] == [0, 0]  # drawn first, under every risk class
    panel = data["panels"][0][0]
    assert "insufficient data" in panel and 'stroke-dasharray="3 4"' in panel
    bad = segs.assign(risk_class="dreadful")
    with pytest.raises(InputError, match="risk_class"):
        maps.risk_map(G, cr.RiskResult(bad, risk.incidents, risk.params, risk.as_of, 1.0))


def test_route_map_is_titled_by_its_places(default_graph, default_risk, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from convoyrisk.cli import main

    out = tmp_path / "r.html"
    res = CliRunner().invoke(main, ["map", "-q", "--route", "Gao,Bourem", "--out", str(out)])
    assert res.exit_code == 0, res.output
    page = out.read_text(encoding="utf-8")
    assert "<title>convoyrisk: Gao → Bourem</title>" in page
    data = map_data(page)
    # the view is fitted to the route, not the network
    (s, _), (n, _) = data["fit"]
    (ns, _), (nn, _) = data["bounds"]
    assert (n - s) < 0.6 * (nn - ns)


def test_a_large_page_logs_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path, split_road
) -> None:
    G, risk = split_road
    monkeypatch.setattr(maps, "WARN_BYTES", 1000)
    with caplog.at_level(logging.WARNING, logger="convoyrisk"):
        maps.save_map(maps.risk_map(G, risk), tmp_path / "m.html")
    assert any("MB" in r.getMessage() and "browsers" in r.getMessage() for r in caplog.records)


def test_read_mbtiles_takes_the_extent_and_flips_rows(tmp_path: Path) -> None:
    bounds = (0.0, 16.0, 1.5, 18.5)
    path = make_mbtiles(tmp_path / "t.mbtiles", (-2.0, 14.0, 4.0, 20.0), range(4, 8))
    got = read_mbtiles(path, bounds)
    assert (got.format, got.minzoom, got.maxzoom, got.name) == ("png", 4, 7, "test tiles")
    # every tile of the extent, in XYZ numbering, and none outside
    want = set()
    for z in range(4, 8):
        x0, y0, x1, y1 = tile_range(bounds, z)
        want |= {f"{z}/{x}/{y}" for x in range(x0, x1 + 1) for y in range(y0, y1 + 1)}
    assert set(got.tiles) == want
    # at zoom 4 the extent is one tile: x = floor((0 + 180) / 360 * 16) = 8, y = 7
    assert "4/8/7" in got.tiles
    small = read_mbtiles(path, bounds, max_tiles=3)
    assert small.maxzoom < 7 and small.left_out


def test_read_mbtiles_bad_files_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        read_mbtiles(tmp_path / "none.mbtiles", (0, 0, 1, 1))
    (tmp_path / "x.mbtiles").write_bytes(b"not a database at all" * 10)
    with pytest.raises(InputError, match="not an MBTiles"):
        read_mbtiles(tmp_path / "x.mbtiles", (0, 0, 1, 1))
    path = make_mbtiles(tmp_path / "far.mbtiles", (100.0, 10.0, 101.0, 11.0), range(5, 6))
    with pytest.raises(InputError, match="no tile inside"):
        read_mbtiles(path, (0.0, 16.0, 1.5, 18.5))


def test_context_layer_borders_rivers_and_names_from_natural_earth(
    default_graph, default_risk
) -> None:
    data = map_data(cr.risk_map(default_graph, default_risk).get_root().render())
    ctx = data["context"]
    names = {n for n, *_ in ctx["names"]}
    assert {"Mali", "Niger"} <= names  # the roads lie in Mali, Niger is 100 km east
    mali = next(p for p in ctx["names"] if p[0] == "Mali")
    # Gao (16.27 N, 0.04 W) and Kidal (18.44 N, 1.41 E) are in Mali: its label point is
    # inside Mali's part of the box, so west of the Niger border (about 3.5-4.2 E there)
    assert mali[2] < 3.5
    borders = decode_lines(ctx["borders"], 3)
    # the Mali-Niger border passes through Labbezanga (14.95 N, 0.69 E), on the Niger
    # river, within the 1:50m generalisation (~5 km)
    assert min(b.distance(shapely.Point(0.69, 14.95)) for b in borders) < 0.08
    # the Niger (through Gao, 16.27 N 0.04 W) and the regions the roads cross
    rivers = decode_lines(ctx["rivers"], 3)
    assert min(r.distance(shapely.Point(-0.04, 16.27)) for r in rivers) < 0.05
    regions = {n for n, *_ in ctx["regions"]}
    assert {"Kidal region", "Gao region", "Timbuktu region"} <= regions
    assert decode_lines(ctx["region_lines"], 3)
    footer = data["footer"]
    assert "Natural Earth" in footer and "rivers" in footer and "region names" in footer
    plain = cr.risk_map(default_graph, default_risk, context=False).get_root().render()
    assert map_data(plain)["context"] is None


def test_cli_basemap_and_marking(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from convoyrisk.cli import main

    out = tmp_path / "m.html"
    res = CliRunner().invoke(
        main, ["map", "-q", "--no-routes", "--out", str(out), "--basemap", str(tmp_path / "no")]
    )
    assert res.exit_code == 2
    assert res.output.count("\n") == 1 and "--basemap" in res.output
    assert not out.exists()
    mb = make_mbtiles(tmp_path / "t.mbtiles", (-2.0, 14.0, 4.0, 21.0), range(4, 6))
    res = CliRunner().invoke(
        main,
        ["map", "-q", "--no-routes", "--out", str(out), "--basemap", str(mb),
         "--marking", "Restricted"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    data = map_data(out.read_text(encoding="utf-8"))
    assert data["marking"] == "Restricted"
    assert data["basemap"]["minzoom"] == 4 and data["basemap"]["maxzoom"] == 5
