"""`convoyrisk routes`: formats, given routes, tracks, avoid and the exit-2 errors."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import geopandas as gpd
import pytest
import shapely
from click.testing import CliRunner

import convoyrisk as cr
from convoyrisk.cli import main
from convoyrisk.routing import route_geometry

from .helpers.cli import assert_one_line_error, cli


def invoke(*args: str, quiet: bool = True) -> tuple[int, str, str]:
    res = CliRunner().invoke(
        main, ["routes", *(["-q"] if quiet else []), *args], catch_exceptions=False
    )
    return res.exit_code, res.stdout, res.stderr


def routes_json(*args: str) -> dict:
    code, out, err = invoke("--format", "json", *args)
    assert code == 0, err
    return json.loads(out)


def test_json_fields_and_chokepoints() -> None:
    doc = routes_json("--from", "Kidal", "--to", "Gao", "-k", "3")
    assert doc["method"] == "penalty" and doc["objective"] == "shortest"
    r1, r2 = doc["routes"]
    for key in (
        "rank", "length_km", "expected_incidents", "p_incident", "p_incident_low",
        "p_incident_high", "via", "shared_fraction", "worst_segments", "travel_days",
    ):  # fmt: skip
        assert key in r1
    assert r1["shared_fraction"] == 1.0 and r2["shared_fraction"] <= 0.6
    assert "Bourem" in r2["via"] and "Tabankort" in r1["via"]
    assert r1["p_incident"] == pytest.approx(1 - math.exp(-r1["expected_incidents"]))
    # the Kidal–Anéfis road and Anéfis itself lie on every route (the 2023 IEDs were there)
    ch = doc["chokepoints"]
    assert [c["between"] for c in ch["cut_roads"]] == [["Kidal", "Anéfis"]]
    assert [c["name"] for c in ch["cut_nodes"]] == ["Anéfis"]


def test_travel_days_scale_exposure() -> None:
    week = routes_json("--travel-days", "7")["routes"][0]
    day = routes_json("--travel-days", "1")["routes"][0]
    # more time on the road, more exposure; not seven times: the threat lead counts once
    assert day["expected_incidents"] < week["expected_incidents"] < 7 * day["expected_incidents"]
    slow = routes_json("--speed-kph", "10", "--hours-per-day", "5")["routes"][0]
    drive = slow["length_km"] / 10
    nights = math.ceil(drive / 5) - 1
    assert slow["travel_days"] == pytest.approx((drive + 19 * nights) / 24, abs=1e-3)


def test_csv_and_geojson(default_graph) -> None:
    code, out, err = invoke("--format", "csv")
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["rank"] for r in rows] == ["1", "2"] and "worst_segments" in rows[0]
    code, out, err = invoke("--format", "geojson")
    assert code == 0, err
    gdf = gpd.read_file(io.StringIO(out))
    assert list(gdf.geom_type) == ["LineString", "LineString"]
    # the first route starts at Kidal (18.441 N, 1.408 E) and ends at Gao (16.272 N, -0.045 E)
    (x0, y0), (x1, y1) = gdf.geometry.iloc[0].coords[0], gdf.geometry.iloc[0].coords[-1]
    assert abs(y0 - 18.441) < 0.02 and abs(x0 - 1.408) < 0.02
    assert abs(y1 - 16.272) < 0.02 and abs(x1 + 0.045) < 0.02
    # its length on the ground matches length_km
    utm = gdf.to_crs(default_graph.graph["crs"])
    assert utm.geometry.iloc[0].length / 1000 == pytest.approx(gdf["length_km"].iloc[0], rel=1e-3)


def test_given_routes_by_places() -> None:
    doc = routes_json("--route", "Kidal,Anéfis,Gao", "--route", "Kidal, Bourem, Gao")
    names = {r["name"]: r for r in doc["routes"]}
    assert set(names) == {"Kidal, Anéfis, Gao", "Kidal, Bourem, Gao"}
    main_road = routes_json()["routes"][0]
    assert names["Kidal, Anéfis, Gao"]["length_km"] == main_road["length_km"]
    # with --from/--to given too, alternatives are scored beside the given routes
    both = routes_json("--route", "Kidal,Bourem,Gao", "--from", "Kidal", "--to", "Gao")
    assert len(both["routes"]) == 3


def test_objectives_run() -> None:
    pareto = routes_json("--objective", "pareto")
    assert pareto["method"] == "dichotomic weighted sum" and len(pareto["routes"]) >= 1
    minimax = routes_json("--objective", "minimax")["routes"]
    assert minimax[0]["worst_segment"]["rate"] <= minimax[-1]["worst_segment"]["rate"]
    via = routes_json("--via", "Bourem", "-k", "1")["routes"]
    assert "Bourem" in via[0]["via"]


def _polygon_file(path: Path, lat: float, lon: float, radius_deg: float = 0.1) -> Path:
    gpd.GeoDataFrame(geometry=[shapely.Point(lon, lat).buffer(radius_deg)], crs=4326).to_file(path)
    return path


def test_avoid_area_and_segments(tmp_path) -> None:
    tabankort = _polygon_file(tmp_path / "tabankort.geojson", 17.848, 0.323, 0.03)
    doc = routes_json("--avoid", str(tabankort))
    assert all("Tabankort" not in r["via"] for r in doc["routes"])
    assert "Bourem" in doc["routes"][0]["via"] and doc["avoided_roads"]


def test_avoid_segments(default_risk) -> None:
    segs = default_risk.segments
    seg = int(segs.loc[segs["road_id"] == 2, "segment_id"].iloc[5])  # Tabankort–Tarkint
    doc = routes_json("--avoid-segments", f"{seg}")
    assert doc["avoided_roads"] == [2]
    assert all("Tarkint" not in r["via"] for r in doc["routes"])
    code, _, err = invoke("--avoid-segments", "1,x")
    assert code == 2 and "not a list of integers" in err


def test_route_file_scores_a_gpx_track(tmp_path, default_graph) -> None:
    """A GPX drawn along the main road (every vertex of it) scores like the main road."""
    best = cr.alternative_routes(
        default_graph,
        next(n for n, d in default_graph.nodes(data=True) if d.get("name") == "Kidal"),
        next(n for n, d in default_graph.nodes(data=True) if d.get("name") == "Gao"),
        k=1,
    )[0]
    line = gpd.GeoSeries([route_geometry(default_graph, best)], crs=default_graph.graph["crs"])
    lonlat = shapely.get_coordinates(line.to_crs(4326).iloc[0])
    pts = "".join(f'<trkpt lat="{lat}" lon="{lon}"/>' for lon, lat in lonlat)
    gpx = tmp_path / "main.gpx"
    gpx.write_text(f"<gpx><trk><name>main road</name><trkseg>{pts}</trkseg></trk></gpx>", "utf-8")
    doc = routes_json("--route-file", str(gpx))
    (r,) = doc["routes"]
    assert r["name"] == "main road"
    assert r["length_km"] == pytest.approx(routes_json()["routes"][0]["length_km"])


# the exit-2 errors


def test_gpx_far_from_the_network(tmp_path) -> None:
    gpx = tmp_path / "bamako.gpx"
    gpx.write_text(
        '<gpx><trk><trkseg><trkpt lat="12.64" lon="-8.00"/><trkpt lat="12.65" lon="-7.98"/>'
        "</trkseg></trk></gpx>",
        encoding="utf-8",
    )
    assert_one_line_error(cli("routes", "--route-file", str(gpx)), "off the road network")


def one_line_error(*args: str) -> str:
    """Exit code 2 and one line on stderr, progress messages on (in-process: quicker)."""
    code, out, err = invoke(*args, quiet=False)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and not out, err
    return lines[0]


def test_unknown_place_in_a_given_route() -> None:
    line = one_line_error("--route", "Kidal,Anefiss,Gao")
    assert "Unknown place 'Anefiss'" in line and "Did you mean Anéfis" in line


def test_unreachable_destination(tmp_path) -> None:
    anefis = _polygon_file(tmp_path / "anefis.geojson", 18.040, 0.601)
    line = one_line_error("--avoid", str(anefis))
    assert "No route joins Kidal (node 0) and Gao (node 5)" in line and "avoided" in line
    roads = tmp_path / "roads.geojson"
    gpd.GeoDataFrame(
        geometry=[
            shapely.LineString([(1.0, 18.0), (1.2, 18.0)]),
            shapely.LineString([(2.0, 18.0), (2.2, 18.0)]),
        ],
        crs=4326,
    ).to_file(roads)
    line = one_line_error("--roads", str(roads), "--from", "18.0,1.0", "--to", "18.0,2.2")
    assert "no road connects" in line


def test_halt_adds_the_convoy_s_hours_where_it_stops() -> None:
    route = "Kidal,Anéfis,Tabankort,Tarkint,Almoustarat,Gao"
    base = routes_json("--route", route, "--travel-days", "3")["routes"][0]
    halted = routes_json("--route", route, "--travel-days", "3", "--halt", "Anéfis=24")
    r = halted["routes"][0]
    assert r["exposure_hours"]["halts"] == pytest.approx(24.0)
    assert r["exposure_hours"]["total"] == pytest.approx(72.0)
    # the same 72 h: a day moved from the road's slow pace to the halt; the threat lead is
    # unchanged, so the totals differ only by where the convoy's 2 km sit for that day
    assert r["expected_incidents"] != pytest.approx(base["expected_incidents"], rel=1e-9)
    assert r["convoy_length_m"] == 2000.0 and r["threat_lead_hours"] == 24.0


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (("--halt", "Anéfis=abc"), ("--halt Anéfis=abc", "PLACE=HOURS")),
        (("--halt", "=5"), ("PLACE=HOURS",)),
        (("--halt", "Ménaka=5"), ("Ménaka", "does not pass there")),
        (("--travel-days", "0.2"), ("shorter than the driving time",)),
    ],
)
def test_bad_trip_options_are_one_line(args: tuple[str, ...], needles: tuple[str, ...]) -> None:
    proc = cli("routes", "-q", "--route", "Kidal,Anéfis,Gao", *args)
    assert_one_line_error(proc, *needles)
