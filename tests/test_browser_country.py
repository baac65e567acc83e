"""A country map in a real browser: roads drawn where the view goes, minor ones from a zoom.

A synthetic grid country (200 km square, a line every 8 km, every tenth a primary
road, the rest tracks; incidents in one corner) drawn as a country map
(``country=True``), in headless Chromium.
"""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from PIL import Image

import convoyrisk as cr
from convoyrisk.maps import DETAIL_ZOOM, risk_map, save_map
from convoyrisk.panels import CLASS_COLOURS, INSUFFICIENT_COLOUR

from .helpers.cdp import Browser
from .helpers.mapdata import decode_deltas, decode_varints, map_data

pytestmark = pytest.mark.browser

CRS = "EPSG:32631"
X0, Y0, SIDE, STEP = 400_000.0, 1_600_000.0, 200_000.0, 8_000.0
MAP = "window.convoyriskLayers.layers._map"


@pytest.fixture(scope="module")
def grid_map(tmp_path_factory: pytest.TempPathFactory) -> Path:
    n = int(SIDE / STEP) + 1
    lines, kinds = [], []
    for i in range(n):
        at = i * STEP
        lines.append(shapely.LineString([(X0, Y0 + at), (X0 + SIDE, Y0 + at)]))
        lines.append(shapely.LineString([(X0 + at, Y0), (X0 + at, Y0 + SIDE)]))
        kinds += ["primary" if i % 10 == 0 else "track"] * 2
    roads = gpd.GeoDataFrame({"highway": kinds}, geometry=lines, crs=CRS)
    G = cr.graph_from_gdf(roads)
    rng = np.random.default_rng(3)
    xy = np.c_[X0 + STEP + rng.normal(0, 500, 60), Y0 + STEP * 2 + rng.uniform(0, 20_000, 60)]
    pts = gpd.GeoDataFrame(
        {
            "date": pd.Timestamp("2025-06-01") + pd.to_timedelta(rng.integers(0, 180, 60), "D"),
            "event_id": [f"g{i}" for i in range(60)],
            "type": "IED",
            "killed": 0,
            "injured": 1,
        },
        geometry=shapely.points(xy),
        crs=CRS,
    )
    risk = cr.score_segments(G, cr.snap_incidents(G, pts), as_of="2025-12-31")
    out = tmp_path_factory.mktemp("country-map") / "grid.html"
    save_map(risk_map(G, risk, country=True, title="Grid country"), out)
    return out


def _settle(b: Browser) -> None:
    """Wait until no road tile is waiting to be drawn."""
    for _ in range(100):
        b.drain(0.1)
        if b.eval("window.convoyriskRoads.pending()") == 0:
            break
    b.drain(0.3)


def _pixels_near(b: Browser, tmp: Path, colour: str, at: dict[str, float], r: int = 8) -> int:
    img = np.asarray(Image.open(b.screenshot(tmp / "shot.png")).convert("RGB")).astype(int)
    rgb = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)])
    x, y = round(at["x"]), round(at["y"])
    part = img[max(y - r, 0) : y + r + 1, max(x - r, 0) : x + r + 1]
    return int((np.abs(part - rgb).sum(axis=2) <= 12).sum())


def _point(b: Browser, lat: float, lon: float) -> dict[str, float]:
    return dict(
        b.eval(
            f"(() => {{ const p = {MAP}.latLngToContainerPoint([{lat}, {lon}]);"
            " return {x: p.x, y: p.y}; })()"
        )
    )


def _far_track(b: Browser) -> tuple[int, dict]:
    """A detail feature (a calm track) in the south-west, far from every overview feature."""
    info = b.eval(
        "(() => { const R = window.convoyriskRoads, out = [];"
        " for (let i = R.overview; i < R.size; i++) { const f = R.feature(i);"
        "   out.push([i, f.cls, f.mid.lat, f.mid.lng]); } return out; })()"
    )
    lat0 = min(r[2] for r in info)
    lon0 = min(r[3] for r in info)
    # the south-west quarter, away from the primary roads (every 80 km) and the incidents
    # (in the south-west corner, west of the second line)
    for i, cls, lat, lon in info:
        if 0.25 < lat - lat0 < 0.6 and 0.3 < lon - lon0 < 0.6:
            return i, {"cls": cls, "lat": lat, "lon": lon}
    pytest.fail("no track in the south-west quarter")


def test_country_map_draws_what_comes_into_view_and_tracks_from_the_detail_zoom(
    browser: Browser, grid_map: Path, tmp_path: Path
) -> None:
    b = browser
    b.open(grid_map)
    _settle(b)
    assert b.errors() == []
    start = b.eval(f"{MAP}.getZoom()")
    assert start < DETAIL_ZOOM  # the whole country opens in the overview
    assert b.eval("window.convoyriskRoads.detailZoom") == DETAIL_ZOOM
    note = b.eval("document.querySelector('.cr-lod-note').textContent")
    assert f"from zoom {DETAIL_ZOOM}" in note
    assert b.eval("getComputedStyle(document.querySelector('.cr-lod-note')).display") != "none"

    i, track = _far_track(b)
    colour = CLASS_COLOURS.get(track["cls"], INSUFFICIENT_COLOUR)
    # zoomed in on the north-east corner: the track is far out of view
    b.eval(
        f"{MAP}.setView([{track['lat'] + 1.0}, {track['lon'] + 1.0}], 12, {{animate: false}}) && 1"
    )
    _settle(b)
    size = b.eval(f"(() => {{ const s = {MAP}.getSize(); return [s.x, s.y]; }})()")
    p = _point(b, track["lat"], track["lon"])
    assert not (0 <= p["x"] <= size[0] and 0 <= p["y"] <= size[1])
    # panned to it (same zoom): drawn, in its class's colour
    b.eval(f"{MAP}.panTo([{track['lat']}, {track['lon']}], {{animate: false}}) && 1")
    _settle(b)
    assert b.eval(f"{MAP}.getZoom()") == 12
    p = _point(b, track["lat"], track["lon"])
    assert 0 <= p["x"] <= size[0] and 0 <= p["y"] <= size[1]
    assert _pixels_near(b, tmp_path, colour, p) >= 4
    # its tooltip, from the hit test, on a real mouse move
    b.send("Input.dispatchMouseEvent", type="mouseMoved", x=p["x"], y=p["y"])
    b.drain(0.5)
    tip = b.eval("(document.querySelector('.cr-road-tip') || {}).textContent || ''")
    assert track["cls"] in tip
    assert b.eval(f"window.convoyriskRoads.hit({track['lat']}, {track['lon']})") == i

    # one zoom under the detail zoom: not drawn; at it: drawn
    below = DETAIL_ZOOM - 1
    b.eval(f"{MAP}.setView([{track['lat']}, {track['lon']}], {below}, {{animate: false}}) && 1")
    _settle(b)
    p = _point(b, track["lat"], track["lon"])
    assert _pixels_near(b, tmp_path, colour, p) == 0
    assert b.eval(f"window.convoyriskRoads.hit({track['lat']}, {track['lon']})") == -1
    b.eval(f"{MAP}.setZoom({DETAIL_ZOOM}, {{animate: false}}) && 1")
    _settle(b)
    p = _point(b, track["lat"], track["lon"])
    assert _pixels_near(b, tmp_path, colour, p) >= 4
    assert b.eval("getComputedStyle(document.querySelector('.cr-lod-note')).display") == "none"
    # printing: the whole country in view, every tile drawn before the page prints
    drawn = b.eval(
        "(() => { const before = window.convoyriskRoads.drawn.tiles;"
        " window.dispatchEvent(new Event('beforeprint'));"
        " const R = window.convoyriskRoads;"
        " const out = [R.pending(), R.drawn.tiles - before, window.convoyriskPrint.contains];"
        " window.dispatchEvent(new Event('afterprint')); return out; })()"
    )
    assert drawn[0] == 0 and drawn[1] > 0 and drawn[2] is True
    assert b.errors() == [], json.dumps(b.errors())[:500]


def test_country_map_incidents_open_their_popup_from_the_detail_zoom(
    browser: Browser, grid_map: Path
) -> None:
    b = browser
    b.open(grid_map)
    _settle(b)
    cols = map_data(grid_map.read_text(encoding="utf-8"))["incidents"]["columns"]
    lat = decode_deltas(cols["lat"]["deltas"])[0] / 10 ** cols["lat"]["fixed"]
    lon = decode_deltas(cols["lon"]["deltas"])[0] / 10 ** cols["lon"]["fixed"]
    event = cols["id"]["values"][decode_varints(cols["id"]["codes"])[0]]
    b.eval(f"{MAP}.setView([{lat}, {lon}], {DETAIL_ZOOM - 1}, {{animate: false}}) && 1")
    _settle(b)
    p = _point(b, lat, lon)
    b.send(
        "Input.dispatchMouseEvent",
        type="mousePressed",
        x=p["x"],
        y=p["y"],
        button="left",
        clickCount=1,
    )
    b.send(
        "Input.dispatchMouseEvent",
        type="mouseReleased",
        x=p["x"],
        y=p["y"],
        button="left",
        clickCount=1,
    )
    b.drain(0.5)
    assert b.eval("document.querySelectorAll('.leaflet-popup .cr-popup').length") == 0
    b.eval(f"{MAP}.setView([{lat}, {lon}], {DETAIL_ZOOM + 2}, {{animate: false}}) && 1")
    _settle(b)
    p = _point(b, lat, lon)
    b.send(
        "Input.dispatchMouseEvent",
        type="mousePressed",
        x=p["x"],
        y=p["y"],
        button="left",
        clickCount=1,
    )
    b.send(
        "Input.dispatchMouseEvent",
        type="mouseReleased",
        x=p["x"],
        y=p["y"],
        button="left",
        clickCount=1,
    )
    b.drain(0.5)
    text = b.eval("(document.querySelector('.leaflet-popup .cr-popup') || {}).textContent || ''")
    assert "IED" in text
    assert event.startswith("g")
    assert event in text
