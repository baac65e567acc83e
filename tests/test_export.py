"""GPX, KML/KMZ, GeoPackage and GeoParquet outputs, read back by other parsers (lxml, GDAL)."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path
from types import SimpleNamespace

import geopandas as gpd
import lxml.etree
import lxml.html
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely
from pyproj import Geod

import convoyrisk as cr
from convoyrisk import export
from convoyrisk.routing import route_geometry

from .helpers.outputs import (
    AS_OF,
    GPX_XSD,
    Run,
    classes_worst_first,
    default_run,
    expected_via,
    hot_spot_run,
    worst_on_route,
)

GPX = "{http://www.topografix.com/GPX/1/1}"
KML = "{http://www.opengis.net/kml/2.2}"


@pytest.fixture(scope="module")
def run() -> Run:
    return default_run()


@pytest.fixture(scope="module")
def hot() -> Run:
    """A run whose data make a hot spot at Anéfis: severe, high and elevated roads."""
    run = hot_spot_run()
    assert {"severe", "high", "elevated"} <= set(run.risk.segments["risk_class"])
    return run


def write(run: Run, path: Path, **kw: object) -> Path:
    return export.write_output(
        path,
        G=run.G,
        risk=run.risk,
        routes=run.routes,
        places=run.places,
        rejects=run.table.rejects,
        info=run.info,
        sources=["UN statements"],
        **kw,  # type: ignore[arg-type]
    )


def projected(gdf: gpd.GeoDataFrame, run: Run) -> gpd.GeoSeries:
    return gdf.set_crs("EPSG:4326", allow_override=True).geometry.to_crs(run.G.graph["crs"])


# --------------------------------------------------------------------------------------
# GPX
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gpx_path(run: Run, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write(run, tmp_path_factory.mktemp("gpx") / "routes.gpx", title="Kidal → Gao")


@pytest.fixture(scope="module")
def hot_gpx_path(hot: Run, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write(hot, tmp_path_factory.mktemp("gpx") / "hot.gpx", title="Kidal → Gao")


def test_gpx_is_valid_against_the_gpx_1_1_schema(gpx_path: Path) -> None:
    schema = lxml.etree.XMLSchema(lxml.etree.parse(GPX_XSD))
    doc = lxml.etree.parse(gpx_path)
    assert schema.validate(doc), schema.error_log
    assert doc.getroot().get("version") == "1.1"


def test_gpx_routes_and_tracks_follow_the_route_geometry(run: Run, gpx_path: Path) -> None:
    # GDAL's GPX driver reads the file, independently of our writer
    tracks = pyogrio.read_dataframe(gpx_path, layer="tracks")
    rtes = pyogrio.read_dataframe(gpx_path, layer="routes")
    rtepts = pyogrio.read_dataframe(gpx_path, layer="route_points")
    assert len(tracks) == len(rtes) == len(run.routes) == 2
    for i, r in enumerate(run.routes):
        truth = route_geometry(run.G, r)
        trk = projected(tracks.iloc[[i]], run).iloc[0]
        # every vertex kept: the track is the route within rounding (7 decimals ≈ 1 cm)
        assert trk.hausdorff_distance(truth) < 0.5
        assert trk.length == pytest.approx(truth.length, rel=1e-6)
        pts = projected(rtepts[rtepts["route_fid"] == i], run)
        assert 2 <= len(pts) <= export.MAX_ROUTE_POINTS
        assert float(pts.distance(truth).max()) < 0.5
        ends = shapely.get_coordinates(pts.iloc[[0, -1]].to_numpy())
        np.testing.assert_allclose(ends, np.asarray(truth.coords)[[0, -1]], atol=0.5)
        name = str(rtes["name"].iloc[i])
        # the places passed, found from the gazetteer and the route's nodes, in travel order
        via = expected_via(run, r)
        assert len(via) >= 2
        assert r.metrics["via"] == via
        assert name == f"Route {i + 1} via {', '.join(via)}"


def test_gpx_waypoints_mark_the_worst_segments_where_they_are(hot: Run, hot_gpx_path: Path) -> None:
    run = hot
    wpts = pyogrio.read_dataframe(hot_gpx_path, layer="waypoints")
    names = list(wpts["name"])
    pts = projected(wpts, run)
    # route 1's segment of highest rate, found along its geometry: the Anéfis hot spot
    worst = worst_on_route(run, run.routes[0])
    assert worst["risk_class"] == "severe"
    marks = [
        (int(m[1]), i)
        for i, n in enumerate(names)
        if (m := re.fullmatch(r"R1 km (\d+) SEVERE", n)) is not None
    ]
    km, at = min(marks, key=lambda m: abs(m[0] - worst["start_km"]))
    assert abs(km - worst["start_km"]) <= 0.55
    assert pts.iloc[at].distance(worst.geometry) < 0.5
    anefis = run.places.set_index("name").loc[["Anéfis"]].to_crs(run.G.graph["crs"]).geometry
    assert pts.iloc[at].distance(anefis.iloc[0]) < 15_000
    segs = run.risk.segments.set_index("segment_id")
    for r in run.routes:
        line = route_geometry(run.G, r)
        for w in r.metrics["worst_segments"]:
            name = f"R{r.metrics['rank']} km {w['chainage_km']:.0f} {w['risk_class'].upper()}"
            assert name in names
            pt = pts[wpts["name"] == name].iloc[0]
            seg = segs.loc[w["segment_id"]]
            assert segs.loc[w["segment_id"], "risk_class"] == w["risk_class"]
            # on the road, in the middle of that segment, at that chainage along the route
            assert pt.distance(seg.geometry) < 0.5
            assert pt.distance(line) < 0.5
            along_km = line.project(pt) / 1000.0
            # chainage is geodesic; distance along the line is planar in the graph's CRS,
            # whose scale error the graph contract records (0.04 % on the default)
            scale = run.G.graph["build"]["max_scale_error"] if "build" in run.G.graph else 0.0
            tolerance = 0.06 + scale * along_km
            want = w["chainage_km"] + seg["length_m"] / 2000.0
            assert along_km == pytest.approx(want, abs=tolerance)


def test_gpx_waypoints_name_the_chokepoints(run: Run, gpx_path: Path) -> None:
    wpts = pyogrio.read_dataframe(gpx_path, layer="waypoints")
    pts = projected(wpts, run)
    anefis = run.places.set_index("name").loc[["Anéfis"]].to_crs(run.G.graph["crs"]).geometry
    hit = wpts["name"] == "Anéfis: every route passes here"
    assert hit.sum() == 1
    # the junction node is digitised at the place (within 1 km)
    assert pts[hit].iloc[0].distance(anefis.iloc[0]) < 1000.0
    assert (wpts["name"] == "Kidal–Anéfis road: every route takes it").sum() == 1


def test_gpx_without_routes_or_unknown_extension_is_one_clear_error(
    run: Run, tmp_path: Path
) -> None:
    with pytest.raises(cr.InputError, match="GPX holds routes"):
        export.write_output(tmp_path / "x.gpx", G=run.G, risk=run.risk, routes=[])
    with pytest.raises(cr.InputError, match=r"\.gpx"):
        write(run, tmp_path / "x.shp")
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------
# KML / KMZ
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kml_path(run: Run, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write(run, tmp_path_factory.mktemp("kml") / "briefing.kml")


def test_kml_folders_are_the_layers(run: Run, hot: Run, kml_path: Path, tmp_path: Path) -> None:
    hot_kml = write(hot, tmp_path / "hot.kml")
    for r, path in ((run, kml_path), (hot, hot_kml)):
        layers = [str(n) for n, _ in pyogrio.list_layers(path)]
        assert layers[:2] == ["Routes", "Warnings"]
        # one folder per class the segments hold, worst first, then incidents and places
        risk = [f"Risk: {c}" for c in classes_worst_first(r)]
        assert layers[2:] == [*risk, "Incidents", "Places"]
    assert {"Risk: severe", "Risk: high", "Risk: elevated", "Risk: insufficient data"} <= set(
        layers
    )


def test_kml_routes_within_metres_of_the_route_geometry(run: Run, kml_path: Path) -> None:
    got = pyogrio.read_dataframe(kml_path, layer="Routes")
    assert len(got) == len(run.routes)
    for i, r in enumerate(run.routes):
        line = projected(got.iloc[[i]], run).iloc[0]
        assert line.hausdorff_distance(route_geometry(run.G, r)) < 0.5
        assert got["Name"].iloc[i] == export.route_label(r)


def test_kml_risk_folders_hold_every_segment_of_their_class(run: Run, kml_path: Path) -> None:
    segs = run.risk.segments
    for cls in segs["risk_class"].unique():
        got = pyogrio.read_dataframe(kml_path, layer=f"Risk: {cls}")
        km = projected(got, run).length.sum() / 1000
        want = segs.loc[segs["risk_class"] == cls].geometry.length.sum() / 1000
        assert km == pytest.approx(want, rel=1e-6, abs=0.001), cls
        # every segment of that class lies on a line of the folder
        lines = shapely.union_all(projected(got, run).to_numpy())
        mids = segs.loc[segs["risk_class"] == cls].geometry.interpolate(0.5, normalized=True)
        assert float(mids.distance(lines).max()) < 0.5


def test_kml_incidents_and_places(run: Run, kml_path: Path) -> None:
    inc = pyogrio.read_dataframe(kml_path, layer="Incidents")
    assert len(inc) == len(run.risk.incidents) == 6
    want = run.risk.incidents.geometry.reset_index(drop=True)
    assert float(projected(inc, run).distance(want).max()) < 0.5
    places = pyogrio.read_dataframe(kml_path, layer="Places")
    assert sorted(places["Name"]) == sorted(run.places["name"])


def test_kml_descriptions_are_escaped(run: Run, tmp_path: Path) -> None:
    evil = "<script>alert(1)</script> & <b>bold</b>"
    incidents = run.risk.incidents.copy()
    incidents["notes"] = evil
    risk = type(run.risk)(**{**run.risk.__dict__, "incidents": incidents})
    path = export.write_kml(tmp_path / "x.kml", run.G, risk, run.routes)
    doc = lxml.etree.parse(path)
    pms = doc.findall(f".//{KML}Folder[{KML}name='Incidents']/{KML}Placemark")
    assert len(pms) == 6
    for pm in pms:
        desc = pm.findtext(f"{KML}description")
        assert desc is not None
        page = lxml.html.fromstring(desc)
        assert page.xpath("//script") == []
        assert page.xpath("//b") == []
        assert evil in page.text_content()
        data = {d.get("name"): d.findtext(f"{KML}value") for d in pm.iter(f"{KML}Data")}
        assert data["notes"] == evil


def test_kmz_is_the_kml_zipped_as_doc_kml(run: Run, kml_path: Path, tmp_path: Path) -> None:
    path = write(run, tmp_path / "briefing.kmz")
    with zipfile.ZipFile(path) as z:
        assert z.namelist() == ["doc.kml"]
        assert z.read("doc.kml") == kml_path.read_bytes()
    assert [n for n, _ in pyogrio.list_layers(path)] == [
        n for n, _ in pyogrio.list_layers(kml_path)
    ]


def test_kml_colour_is_aabbggrr() -> None:
    assert export.kml_colour("#ff8000") == "ff0080ff"
    assert export.kml_colour("#ff8000", 0.0) == "000080ff"


# --------------------------------------------------------------------------------------
# GeoPackage and GeoParquet
# --------------------------------------------------------------------------------------


def test_geopackage_layers_read_back(run: Run, tmp_path: Path) -> None:
    path = write(run, tmp_path / "run.gpkg")
    assert {str(n) for n, _ in pyogrio.list_layers(path)} == set(export.LAYERS)
    crs = run.G.graph["crs"]

    segs = pyogrio.read_dataframe(path, layer="segments")
    assert segs.crs == crs
    assert len(segs) == len(run.risk.segments)
    np.testing.assert_allclose(segs["rate"], run.risk.segments["rate"])
    assert list(segs["risk_class"]) == list(run.risk.segments["risk_class"])
    assert segs.geometry.geom_equals_exact(run.risk.segments.geometry, 1e-6).all()

    routes = pyogrio.read_dataframe(path, layer="routes")
    assert list(routes["rank"]) == [1, 2]
    # length_km is geodesic: measure the lines read back on the ellipsoid (pyproj)
    geod = Geod(ellps="WGS84")
    true_km = [geod.geometry_length(g) / 1000 for g in routes.to_crs("EPSG:4326").geometry]
    np.testing.assert_allclose(true_km, [r.metrics["length_km"] for r in run.routes], atol=1e-3)
    np.testing.assert_allclose(routes["p_incident"], [r.metrics["p_incident"] for r in run.routes])

    incidents = pyogrio.read_dataframe(path, layer="incidents")
    assert list(incidents["event_id"]) == list(run.risk.incidents["event_id"])
    assert set(incidents["used"]) == {"used"}

    rejects = pyogrio.read_dataframe(path, layer="rejects")
    assert len(rejects) == 1
    assert "latitude" in rejects["reason"].iloc[0]

    places = pyogrio.read_dataframe(path, layer="places")
    assert places.crs == crs
    assert sorted(places["name"]) == sorted(run.places["name"])

    params = pyogrio.read_dataframe(path, layer="parameters").set_index("key")["value"]
    assert params["as_of"] == f'"{AS_OF}"'
    assert params["params.bandwidth_m"] == "5000.0"
    assert params["sources"] == '["UN statements"]'


def test_geopackage_write_is_all_or_nothing(
    run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    real = pyogrio.write_dataframe

    def failing(frame: pd.DataFrame, path: Path, **kw: object) -> None:
        calls.append(kw["layer"])
        if len(calls) == 3:
            msg = "disk full"
            raise OSError(msg)
        real(frame, path, **kw)

    monkeypatch.setattr(export.pyogrio, "write_dataframe", failing)
    with pytest.raises(OSError, match="disk full"):
        write(run, tmp_path / "run.gpkg")
    assert list(tmp_path.iterdir()) == []


def test_geoparquet_holds_one_layer(run: Run, tmp_path: Path) -> None:
    routes = gpd.read_parquet(write(run, tmp_path / "routes.parquet"))
    assert list(routes["rank"]) == [1, 2]
    assert routes.crs == run.G.graph["crs"]
    segs = gpd.read_parquet(write(run, tmp_path / "segs.parquet", layer="segments"))
    assert len(segs) == len(run.risk.segments)
    with pytest.raises(cr.InputError, match="choose one of segments, routes"):
        write(run, tmp_path / "x.parquet", layer="parameters")


def test_gpx_route_points_thinned_keep_the_bends(run: Run) -> None:
    r = run.routes[0]
    line = route_geometry(run.G, r)
    assert len(line.coords) > 30
    pts = export.route_points(run.G, r, max_points=30)
    assert 2 <= len(pts) <= 30
    xy = gpd.GeoSeries(shapely.points(pts), crs="EPSG:4326").to_crs(run.G.graph["crs"])
    # every point is a vertex of the route, the ends are kept, the order is the route's
    assert float(xy.distance(line).max()) < 0.5
    along = np.array([line.project(p) for p in xy])
    assert along[0] == pytest.approx(0.0, abs=0.5)
    assert along[-1] == pytest.approx(line.length, abs=0.5)
    assert (np.diff(along) > 0).all()
    # the thinned line stays near the road (Douglas–Peucker: within the last tolerance)
    thin = shapely.LineString(shapely.get_coordinates(xy.to_numpy()))
    assert line.hausdorff_distance(thin) < 10_000


def test_kml_and_gpkg_take_an_unknown_class(run: Run, tmp_path: Path) -> None:
    """The risk model may call a segment "insufficient data": it gets its own grey folder."""
    segs = run.risk.segments.copy()
    model_unknown = segs.loc[segs["risk_class"] == "insufficient data"].geometry
    ten = segs.index[segs["risk_class"] != "insufficient data"][:10]
    assert len(ten) == 10
    segs.loc[ten, "risk_class"] = "insufficient data"
    risk = type(run.risk)(**{**run.risk.__dict__, "segments": segs})
    path = export.write_kml(tmp_path / "x.kml", run.G, risk, run.routes)
    got = pyogrio.read_dataframe(path, layer="Risk: insufficient data")
    # the model's own "insufficient data" roads and the ten relabelled segments
    want = model_unknown.length.sum() + segs.loc[ten].geometry.length.sum()
    assert projected(got, run).length.sum() == pytest.approx(want, rel=1e-6)
    lines = shapely.union_all(projected(got, run).to_numpy())
    mids = segs.loc[ten].geometry.interpolate(0.5, normalized=True)
    assert float(mids.distance(lines).max()) < 0.5
    doc = lxml.etree.parse(path)
    colour = doc.findtext(f".//{KML}Style[@id='class_insufficient_data']/{KML}LineStyle/{KML}color")
    assert colour == export.kml_colour(export.NO_CLASS_COLOUR)


def test_outputs_without_routes_places_or_incidents(run: Run, tmp_path: Path) -> None:
    incidents = run.risk.incidents.iloc[:0]
    risk = type(run.risk)(**{**run.risk.__dict__, "incidents": incidents})
    kml = export.write_output(tmp_path / "x.kml", G=run.G, risk=risk)
    layers = [str(n) for n, _ in pyogrio.list_layers(kml)]
    assert layers == [f"Risk: {c}" for c in classes_worst_first(run)]
    gpkg = export.write_output(tmp_path / "x.gpkg", G=run.G, risk=risk)
    assert {str(n) for n, _ in pyogrio.list_layers(gpkg)} == {"segments", "incidents", "parameters"}


def test_write_run_reads_a_run_record(run: Run, tmp_path: Path) -> None:
    record = SimpleNamespace(
        G=run.G,
        places=run.places,
        table=run.table,
        risk=run.risk,
        routes=run.routes,
        origin="Kidal",
        destination="Gao",
        sources=["UN statements"],
        info=run.info,
    )
    kml = export.write_run(tmp_path / "x.kml", record)
    assert lxml.etree.parse(kml).findtext(f"{KML}Document/{KML}name") == "Kidal → Gao"
    gpkg = export.write_run(tmp_path / "x.gpkg", record)
    assert len(pyogrio.read_dataframe(gpkg, layer="rejects")) == len(run.table.rejects) == 1
    html = export.write_run(tmp_path / "x.html", record)
    assert "Kidal → Gao" in html.read_text(encoding="utf-8")
