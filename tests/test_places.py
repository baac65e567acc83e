from __future__ import annotations

import csv
import math

import pytest

import convoyrisk as cr
from convoyrisk.places import normalise_name, parse_latlon

from .helpers.graphs import realdata


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("Anéfis", "Anéfis"),
        ("anefis", "Anéfis"),
        ("ANEFIF", "Anéfis"),
        ("Anéfif", "Anéfis"),
        ("Aguelhok", "Aguelhok"),
        ("aguel-hoc", "Aguelhok"),
        ("Aguel Hoc", "Aguelhok"),
        ("Menaka", "Ménaka"),
        ("MÉNAKA", "Ménaka"),
        ("tombouctou", "Timbuktu"),
        (" Kidal ", "Kidal"),
        ("tin essako", "Tin-Essako"),
    ],
)
def test_geocode_spellings(query: str, name: str, places) -> None:
    assert cr.geocode(query, places).name == name


def test_geocode_latlon() -> None:
    p = cr.geocode("18.04, 0.601")
    assert (p.lat, p.lon) == (18.04, 0.601)


@pytest.mark.parametrize("text", ["95,0", "0,181", "-91.5,2"])
def test_latlon_out_of_range(text: str) -> None:
    with pytest.raises(cr.InputError, match="out of range"):
        parse_latlon(text)


def test_unknown_place_suggests(places) -> None:
    with pytest.raises(cr.PlaceNotFoundError, match="Did you mean Anéfis"):
        cr.geocode("Anefiss", places)
    with pytest.raises(cr.PlaceNotFoundError, match="Unknown place 'Xyzzy'"):
        cr.geocode("Xyzzy", places)


def test_normalise(places) -> None:
    assert normalise_name("I-n-Tabourak") == normalise_name("i n  TABOURAK") == "i n tabourak"
    assert cr.geocode("In Tabourak", places).name == "I-n-Tabourak"  # an alias


def _haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    h = (
        math.sin((p2 - p1) / 2) ** 2
        + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    )
    return 2 * 6371.0 * math.asin(math.sqrt(h))


@pytest.mark.parametrize(
    ("name", "geonameid"),
    [
        ("Anéfis", "2461022"),
        ("Almoustarat", "2596476"),
        ("Kidal", None),
        ("Gao", None),
        ("Bourem", None),
        ("Tessalit", None),
        ("Ménaka", None),
        ("Ansongo", None),
    ],
)
def test_gazetteer_agrees_with_geonames(name: str, geonameid: str | None, places) -> None:
    """Our digitised positions lie within 3 km of GeoNames' (an independent source)."""
    path = realdata("geonames_ML.txt")
    ours = cr.geocode(name, places)
    best = math.inf
    with path.open(encoding="utf-8") as f:
        for row in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
            if geonameid is not None and row[0] != geonameid:
                continue
            if geonameid is None and (
                row[6] != "P" or normalise_name(row[2]) != normalise_name(name)
            ):
                continue
            best = min(best, _haversine_km(ours.lat, ours.lon, float(row[4]), float(row[5])))
    assert best < 3.0
