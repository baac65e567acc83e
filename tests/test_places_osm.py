"""Place nodes of an OSM file as a gazetteer: `--from`/`--to` resolve without `--places`.

Checked against what the test writes (a tiny PBF with pyosmium's writer), against
the real 2019 OSM place nodes of Mali (written to a PBF here) located
independently by GeoNames, and through the command line on a synthetic country.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pandas as pd
import pytest
from benchmarks.country import Country, write_country
from pyproj import Geod

from convoyrisk import places as places_mod
from convoyrisk._errors import InputError, MissingInputError
from convoyrisk.osm import read_osm_places
from convoyrisk.places import extend_places, geocode, load_places

from .helpers.cli import assert_one_line_error, cli
from .helpers.graphs import realdata

osmium = pytest.importorskip("osmium")
GEOD = Geod(ellps="WGS84")


def _write(path: Path, nodes: list[tuple[int, float, float, dict[str, str]]]) -> Path:
    with osmium.SimpleWriter(str(path)) as writer:
        for node_id, lat, lon, tags in nodes:
            writer.add_node(osmium.osm.mutable.Node(id=node_id, location=(lon, lat), tags=tags))
        # a way tagged `place` (an area) is not a place node
        writer.add_way(
            osmium.osm.mutable.Way(id=1, nodes=[1, 2], tags={"place": "town", "name": "Area"})
        )
    return path


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    return _write(
        tmp_path / "tiny.osm.pbf",
        [
            (1, 16.27, -0.04, {"place": "village", "name": "Twin"}),
            (2, 18.44, 1.41, {"place": "city", "name": "Twin", "alt_name": "Twin City;Big Twin"}),
            (3, 17.48, 0.12, {"place": "town", "name": "Tarkint", "name:fr": "Tarkint"}),
            (4, 17.00, 0.00, {"place": "hamlet"}),  # no name: left out
            (5, 17.10, 0.10, {"amenity": "school", "name": "École"}),  # not a place
            (6, 17.90, 0.30, {"place": "locality", "name": "Wadi", "official_name": "Oued"}),
        ],
    )


def test_named_place_nodes_as_written(tiny: Path) -> None:
    got = read_osm_places(tiny)
    assert got["name"].tolist() == ["Twin", "Tarkint", "Twin", "Wadi"]  # city, town, village...
    assert got["place"].tolist() == ["city", "town", "village", "locality"]
    assert got["osmid"].tolist() == [2, 3, 1, 6]
    assert got["aliases"].tolist() == ["Twin City|Big Twin", "", "", "Oued"]
    # OSM stores 1e-7 degrees
    assert got["latitude"].tolist() == pytest.approx([18.44, 17.48, 16.27, 17.90], abs=1e-7)
    assert got["longitude"].tolist() == pytest.approx([1.41, 0.12, -0.04, 0.30], abs=1e-7)
    assert got.crs == "EPSG:4326"
    assert got.geometry.x.tolist() == pytest.approx(got["longitude"].tolist())
    # a shared name resolves to the higher place; aliases resolve too
    assert geocode("twin", got).lat == pytest.approx(18.44)
    assert geocode("Big Twin", got).name == "Twin"
    assert geocode("oued", got).name == "Wadi"


def test_the_gazetteer_wins_where_both_know_a_name(tiny: Path) -> None:
    embedded = load_places()
    both = extend_places(embedded, read_osm_places(tiny))
    assert len(both) == len(embedded) + 3  # not Tarkint (the gazetteer has it): 2 Twins, Wadi
    assert both["name"].iloc[: len(embedded)].tolist() == embedded["name"].tolist()
    tarkint = geocode("Tarkint", both)
    want = geocode("Tarkint", embedded)
    assert (tarkint.lat, tarkint.lon) == (want.lat, want.lon)
    assert geocode("Oued", both).name == "Wadi"


def test_bad_files_are_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(MissingInputError, match="does not exist"):
        read_osm_places(tmp_path / "none.osm.pbf")
    bad = tmp_path / "bad.osm.pbf"
    bad.write_bytes(b"not a pbf at all")
    with pytest.raises(InputError, match="Cannot read place nodes"):
        read_osm_places(bad)


def test_real_osm_files_without_place_nodes_give_an_empty_gazetteer() -> None:
    """The real XML extracts in shared/realdata hold no place nodes (grep agrees)."""
    for name in ("osm/planet_10.068_48.135_10.071_48.137.osm", "osm/West-Oakland.osm.bz2"):
        path = realdata(name)
        got = read_osm_places(path)
        assert got.empty
        assert list(got.columns[:4]) == ["name", "latitude", "longitude", "aliases"]


def test_mali_place_nodes_against_geonames(tmp_path: Path) -> None:
    """OSM's 2019 place nodes of Mali, written to a PBF, read back; towns where GeoNames has them.

    GeoNames is an independent gazetteer: its Kidal, Bourem and Gao lie within
    1.5 km of the OSM nodes that `--from`/`--to` now resolve to.
    """
    db = realdata("osm_mali_place_nodes_2019.sqlite")
    geonames = realdata("geonames_ML.txt")
    with sqlite3.connect(db) as con:
        rows = con.execute(
            "SELECT ID, LAT, LON, NAME, NAME_EN, VALUE FROM NODE WHERE TAG = 'place'"
        ).fetchall()
    nodes = []
    for node_id, lat, lon, name, name_en, value in rows:
        tags = {"place": value}
        if name:
            tags["name"] = name
        if name_en:
            tags["name:en"] = name_en
        nodes.append((node_id, lat, lon, tags))
    pbf = tmp_path / "mali_places.osm.pbf"
    with osmium.SimpleWriter(str(pbf)) as writer:
        for node_id, lat, lon, tags in sorted(nodes):
            writer.add_node(osmium.osm.mutable.Node(id=node_id, location=(lon, lat), tags=tags))
    got = read_osm_places(pbf)
    assert len(got) == sum(1 for *_, tags in nodes if tags.get("name", "").strip())
    gn = pd.read_csv(geonames, sep="\t", header=None, usecols=[0, 1, 4, 5], quoting=3)
    gn.columns = ["id", "name", "lat", "lon"]
    for town, geonames_id in (("Kidal", 2455290), ("Bourem", 2459657), ("Gao", 2457163)):
        place = geocode(town, got)
        ref = gn.loc[gn["id"] == geonames_id].iloc[0]
        _, _, dist = GEOD.inv(place.lon, place.lat, ref["lon"], ref["lat"])
        assert dist < 1_500.0, (town, dist)


@pytest.fixture(scope="module")
def country(tmp_path_factory: pytest.TempPathFactory) -> Country:
    return write_country(tmp_path_factory.mktemp("country"), 400, 60, n_towns=6)


def test_cli_routes_resolve_from_the_osm_file_alone(country: Country) -> None:
    """The towns exist only as place nodes of the PBF: without `--places` they resolve."""
    embedded = places_mod.load_places()
    assert country.origin not in set(embedded["name"])
    args = ["--roads", str(country.pbf), "--incidents", str(country.incidents)]
    args += ["--from", country.origin, "--to", country.destination, "--no-cache"]
    proc = cli("routes", *args, "-k", "1", "--format", "json", "-q")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["routes"][0]["length_km"] > 0
    # a name in neither is still one clear line
    bad = [*args[:4], "--from", "Nowhere At All", "--to", country.destination]
    assert_one_line_error(cli("routes", *bad, "-q"), "Unknown place 'Nowhere At All'")
