"""What the briefing map holds: every segment, incident and route, checked against the inputs."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

import convoyrisk as cr
from convoyrisk.maps import CLASS_COLOURS, INSUFFICIENT_COLOUR, encode_lines, profile_svg

from .helpers.mapdata import decode_lines, decode_parts, map_data


def _node(G, name: str) -> int:
    return next(n for n, d in G.nodes(data=True) if d.get("name") == name)


@pytest.fixture(scope="module")
def routes(default_graph, default_risk) -> list:
    G = default_graph
    found = cr.alternative_routes(G, _node(G, "Kidal"), _node(G, "Gao"))
    return cr.score_routes(G, found, default_risk)


@pytest.fixture(scope="module")
def page(tmp_path_factory, default_graph, default_risk, routes, places) -> str:
    m = cr.risk_map(
        default_graph, default_risk, routes=routes, places=places, sources=["UN spokesman"]
    )
    path = cr.save_map(m, tmp_path_factory.mktemp("map") / "map.html")
    return path.read_text(encoding="utf-8")


def test_every_segment_once_with_its_class_and_colour(page: str, default_risk) -> None:
    data = map_data(page)
    roads = data["roads"]
    segs = default_risk.segments
    assert sorted(roads["id"]) == sorted(segs["segment_id"].tolist())  # each exactly once
    by_id = segs.set_index("segment_id")
    names = [data["classes"][c]["name"] for c in roads["cls"]]
    assert names == by_id.loc[roads["id"], "risk_class"].tolist()
    # the colour drawn is its class's (classes come from posterior probabilities); an
    # "insufficient data" segment is grey
    colours = {**CLASS_COLOURS, "insufficient data": INSUFFICIENT_COLOUR}
    for sid, c in zip(roads["id"], roads["cls"], strict=True):
        assert data["classes"][c]["colour"] == colours[by_id.loc[sid, "risk_class"]]
    # rates to 3 significant digits, intervals around them
    np.testing.assert_allclose(roads["rate"], by_id.loc[roads["id"], "rate"], rtol=5e-3)
    assert all(
        lo <= r <= hi for lo, r, hi in zip(roads["low"], roads["rate"], roads["high"], strict=True)
    )
    assert roads["n"] == by_id.loc[roads["id"], "incidents"].astype(int).tolist()


def test_segment_geometry_is_within_the_simplification_tolerance(page: str, default_risk) -> None:
    data = map_data(page)
    segs = default_risk.segments.set_index("segment_id")
    drawn = gpd.GeoSeries(
        decode_lines(data["roads"]["parts"], data["decimals"]),
        index=data["roads"]["id"],
        crs="EPSG:4326",
    ).to_crs(segs.crs)
    original = segs.geometry.loc[drawn.index]
    # 10 m simplification plus 1e-5° rounding (about 1.1 m, both axes)
    dist = drawn.hausdorff_distance(original, align=False)
    assert float(dist.max()) <= 10.0 + 2.0
    # end points stay (to the rounding) so the roads stay connected
    ends = shapely.distance(
        shapely.get_point(drawn.to_numpy(), -1), shapely.get_point(original.to_numpy(), -1)
    )
    assert float(np.max(ends)) <= 2.0


def test_incidents_all_drawn_with_their_radius_and_dates(page: str, default_risk) -> None:
    rows = map_data(page)["incidents"]["rows"]
    inc = default_risk.incidents
    assert len(rows) == len(inc)
    assert sorted(r["id"] for r in rows) == sorted(inc["event_id"])
    assert sorted(r["radius"] for r in rows) == sorted(inc["precision_m"].astype(int))
    assert sorted(r["date"] for r in rows) == sorted(
        pd.to_datetime(inc["date"]).dt.strftime("%Y-%m-%d")
    )
    assert sum(r["injured"] for r in rows) == 39  # SCENARIO.md: 39 injured in all
    # positions are the incidents' own (not the snapped points), to 1e-5°
    pts = inc.to_crs("EPSG:4326")
    got = sorted((r["lon"], r["lat"]) for r in rows)
    want = sorted(zip(pts.geometry.x.round(5), pts.geometry.y.round(5), strict=True))
    np.testing.assert_allclose(got, want, atol=1e-9)
    # markers sharing a position are fanned out on screen, not moved
    same = [r for r in rows if (r["lat"], r["lon"]) == (rows[0]["lat"], rows[0]["lon"])]
    assert len({(r["dx"], r["dy"]) for r in same}) == len(same)


def test_routes_as_layers_with_metrics(page: str, routes, default_graph) -> None:
    data = map_data(page)
    assert [r["label"].split(":")[0] for r in data["routes"]] == [
        f"Route {i}" for i in range(1, len(routes) + 1)
    ]
    for drawn, route in zip(data["routes"], routes, strict=True):
        line = gpd.GeoSeries(decode_lines([drawn["parts"]], data["decimals"]), crs="EPSG:4326")
        length_km = float(line.to_crs(default_graph.graph["crs"]).length.iloc[0]) / 1000
        assert length_km == pytest.approx(route.metrics["length_km"], rel=0.01)
        assert dict(drawn["lines"])["length"] == f"{route.metrics['length_km']:.1f} km"
    # comparison panel: one row per route
    panel = next(p[0] for p in data["panels"] if p[2] == "cr-briefing")
    comparison = panel.split('class="cr-comparison"')[1].split("</details>")[0]
    assert comparison.count("<tr>") == len(routes) + 1
    # the rank goes along each route, twice
    assert [len(r["marks"]) for r in data["routes"]] == [2] * len(routes)
    # route 1 is not "shared with route 1"
    assert "shared with route 1" not in dict(data["routes"][0]["lines"])


def test_panels_legend_and_footer(page: str, default_risk) -> None:
    data = map_data(page)
    panel = next(p[0] for p in data["panels"] if p[2] == "cr-briefing")
    footer = next(p[0] for p in data["panels"] if p[2] == "cr-footer")
    t = default_risk.params.class_thresholds
    for name, colour in CLASS_COLOURS.items():
        assert f'stroke="{colour}"' in panel  # a line swatch as drawn
        assert f"<b>{name}</b>" in panel
    assert f"{t[0]:g} – {t[1]:g}" in panel
    # 0.02 per km per 30 days, 100 km in a day: 1 - exp(-2/30) = 6.4 %
    assert f"≥ {t[2]:g}: ≈6.4%+" in panel
    assert "Road geometry approximate" in footer
    assert "As of 2023-11-04" in footer
    assert "UN spokesman" in footer
    assert f"bandwidth {default_risk.params.bandwidth_m:g} m" in footer
    # the six embedded IEDs span 31 Oct - 4 Nov: 5 days, plus a mean gap (5·7/6 ≈ 6 days)
    assert "rates over a record of 6 days (from the incidents' dates)" in footer
    assert "<svg" in panel  # the profile chart


def _route_segment_ids(G, route, risk) -> list[int]:
    """The route's segments in travel order, from its edges and the segments' start_m."""
    segs = risk.segments
    out: list[int] = []
    for e in route.edges:
        d = G.edges[e]
        part = segs[segs["road_id"] == d["road_id"]].sort_values(
            "start_m", ascending=not d["reversed"]
        )
        out += part["segment_id"].astype(int).tolist()
    return out


def test_profile_bars_follow_the_rates_on_a_log_axis(default_graph, default_risk, routes) -> None:
    best = routes[0]
    svg = profile_svg(default_graph, best, default_risk)
    bars = [
        (float(y), colour)
        for y, colour in re.findall(
            r'<rect x="[\d.]+" y="([\d.]+)" width="[\d.]+" height="[\d.]+" fill="(#\w+)"/>', svg
        )
    ]
    profile = best.metrics["profile"]
    assert len(bars) == len(profile)
    # the threshold lines are always drawn; bar tops sit on the log axis they define
    t = default_risk.params.class_thresholds
    ys = {
        float(r): float(y) for r, y in re.findall(r'data-rate="([\d.e-]+)"[^>]*y1="([\d.]+)"', svg)
    }
    assert sorted(ys) == sorted(t)
    per_decade = (ys[t[0]] - ys[t[2]]) / np.log10(t[2] / t[0])
    rates = np.array([r for _, r in profile])
    # the axis starts a tenth of the first threshold (the docstring's fixed floor): a
    # lower rate stands on the floor, as a 1 px bar at the axis
    floor = t[0] / 10
    want = ys[t[0]] - per_decade * np.log10(np.maximum(rates, floor) / t[0])
    np.testing.assert_allclose([y for y, _ in bars], want, atol=0.3)
    axis = float(re.search(r'<line x1="40" x2="40" y1="[\d.]+" y2="([\d.]+)"', svg)[1])
    assert ys[t[0]] + per_decade == pytest.approx(axis, abs=0.3)  # the floor is the axis
    # each bar in its segment's class as the map draws it (grey: insufficient data)
    segs = default_risk.segments.set_index("segment_id")
    on_route = [segs.loc[sid] for sid in _route_segment_ids(default_graph, best, default_risk)]
    np.testing.assert_allclose([s["rate"] for s in on_route], rates)  # the same segments
    colours = {**CLASS_COLOURS, "insufficient data": INSUFFICIENT_COLOUR}
    assert [c for _, c in bars] == [colours[str(s["risk_class"])] for s in on_route]
    # both ends named (never clipped: anchored inwards), the peak named by its place
    assert 'text-anchor="start">Kidal</text>' in svg
    assert 'text-anchor="end">Gao</text>' in svg
    assert "peak: km" in svg


def test_profile_names_the_peak_by_its_place(hotspot: cr.Briefing) -> None:
    # 40 precise IEDs at Anéfis over a year: the peak is there, severe
    best = hotspot.routes[0]
    svg = profile_svg(hotspot.G, best, hotspot.risk)
    peak = re.search(r'class="cr-peak"[^>]*>([^<]*)<', svg)[1]
    assert "near Anéfis" in peak and "(severe)" in peak, peak


def test_profile_of_an_even_route_names_no_peak(default_graph, default_risk, routes) -> None:
    flat = copy.deepcopy(routes[0])
    flat.metrics["profile"] = [[km, 0.003] for km, _ in flat.metrics["profile"]]
    svg = profile_svg(default_graph, flat, default_risk)
    assert "no peak" in svg and "peak: km" not in svg
    # the same axis: the thresholds at the same heights as on the real route
    real = profile_svg(default_graph, routes[0], default_risk)
    pattern = r'data-rate="[\d.e-]+"[^>]*y1="([\d.]+)"'
    assert re.findall(pattern, svg) == re.findall(pattern, real)


def test_hostile_text_never_becomes_markup(
    tmp_path: Path, default_graph, default_risk, places
) -> None:
    evil = "<script>alert(1)</script><img src=x onerror=alert(2)>\"'&"
    inc = default_risk.incidents.copy()
    for col in ("notes", "event_id", "type", "location", "source"):
        inc[col] = evil
    hostile = cr.RiskResult(
        segments=default_risk.segments.assign(top_contributors=evil),
        incidents=inc,
        params=default_risk.params,
        as_of=default_risk.as_of,
        exposure_days=default_risk.exposure_days,
    )
    bad_places = places.assign(name=evil)
    m = cr.risk_map(default_graph, hostile, places=bad_places, sources=[evil], title=evil)
    page = cr.save_map(m, tmp_path / "map.html").read_text(encoding="utf-8")
    assert "<img src=x" not in page
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # footer and title, escaped
    data = map_data(page)  # the JSON still carries the text, to be shown as text
    assert data["incidents"]["rows"][0]["notes"] == evil
    assert data["places"][0]["name"] == evil


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.lists(st.tuples(st.floats(-180, 180), st.floats(-85, 85)), min_size=2, max_size=8),
        min_size=1,
        max_size=5,
    ),
    st.integers(3, 6),
)
def test_encoding_round_trips_to_the_rounding(lines, decimals: int) -> None:
    geoms = [shapely.LineString(c) for c in lines]
    encoded = encode_lines(geoms, decimals)
    for g, parts in zip(geoms, encoded, strict=True):
        (xy,) = decode_parts(parts, decimals)
        coords = np.round(np.asarray(g.coords) * 10.0**decimals) / 10.0**decimals
        # repeated vertices (after rounding) are dropped, nothing else
        keep = np.r_[True, np.any(np.diff(coords, axis=0) != 0, axis=1)]
        keep[-1] = True
        np.testing.assert_allclose(xy, coords[keep], atol=0.51 / 10.0**decimals)
