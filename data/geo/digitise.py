"""Rebuild the embedded Kidal–Gao data in this folder from the facts in SCENARIO.md.

Run ``python data/geo/digitise.py`` from the repository root to regenerate
``places.csv``, ``roads.geojson``, ``incidents.csv`` and ``base_rates.geojson``.
Everything written here
comes from the scenario brief (public sources: GeoNames, OpenStreetMap, OCHA,
the UN Secretary-General's spokesman's statements of 1 and 6 November 2023).

Road geometry is APPROXIMATE. No public road line geometry for this corridor
could be had offline, so each road leg runs from one named place to the next
and is bent by a gentle, deterministic meander whose amplitude is solved so
that the leg's geodesic length matches the road length:

* main road Kidal–Gao: about 350 km by road in all (straight legs 314 km);
  Kidal–Anéfis about 112 km by road, the other four legs share the rest in
  proportion to their straight-line lengths;
* every other road: no road length was published, so its length is the
  straight-line length times an assumed detour factor of 1.10.

The meander fades out over the first and last 15 % of a leg, so that legs meeting
at a town do not cross one another there. Between towns, the Bourem–Anéfis track
still crosses the main road near Tarkint (with these place positions the straight
lines cross too) and the river road crosses the main road's last leg near Gao;
whether the real roads meet there is not known. These crossings are NOT
junctions: the embedded network joins roads only at named places
(``convoyrisk.load_graph()`` builds it with ``node_crossings=False``). The
meander is a stand-in for a real alignment: it reproduces lengths, not the
road's shape. Real work loads OpenStreetMap.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
from pathlib import Path

from pyproj import Geod

HERE = Path(__file__).resolve().parent
GEOD = Geod(ellps="WGS84")

# Columns: name, aliases, lat, lon, kind, note. Source: SCENARIO.md, section Places.
PLACES: list[tuple[str, str, float, float, str, str]] = [
    ("Kidal", "", 18.441, 1.408, "town", "start of the 2023 MINUSMA convoy"),
    (
        "Anéfis",
        "Anefis|Anefif|Anéfif|Anefis i-n-Darane",
        18.040,
        0.601,
        "town",
        "about 112 km south of Kidal by road; two IEDs on 4 Nov 2023",
    ),
    (
        "Tabankort",
        "",
        17.848,
        0.323,
        "village",
        "the one on the Gao road; namesakes at 17.98,-0.10 and near Ménaka and Tessalit",
    ),
    ("Tarkint", "", 17.480, 0.117, "village", ""),
    ("Almoustarat", "Almoustarast|Al Moustarat", 17.367, 0.087, "village", ""),
    ("Gao", "", 16.272, -0.045, "town", "MINUSMA base, end of the 2023 convoy"),
    ("Bourem", "", 16.955, -0.349, "town", "on the Niger river, north-west of Gao"),
    ("Aguelhok", "Aguel-Hoc|Aguelhoc|Aguel'hoc", 19.461, 0.859, "town", "north of Kidal"),
    ("Tessalit", "", 20.201, 1.012, "town", ""),
    ("Tin-Essako", "Tin Essako|Tinessako", 18.451, 2.488, "town", "east of Kidal"),
    ("Ber", "", 16.839, -2.527, "village", "between Bourem and Timbuktu"),
    ("Timbuktu", "Tombouctou|Tomboctou", 16.773, -3.007, "town", ""),
    ("Ansongo", "", 15.660, 0.502, "town", "south-east of Gao on the Niger"),
    ("Ménaka", "Menaka", 15.918, 2.402, "town", ""),
    ("Takerben", "", 17.929, 0.447, "well", "well near Anéfis"),
    ("I-n-Tabourak", "In Tabourak|I-n-Tabourak well", 17.906, 0.382, "well", "well near Anéfis"),
    ("I-n-Ghar", "In Ghar", 18.267, 0.367, "well", "well near Anéfis"),
    ("Tabankort well", "", 17.820, 0.314, "well", "well near Tabankort"),
    ("Ibelbel", "", 17.648, 0.702, "well", "well south-east of Anéfis"),
]

MAIN_ROAD_KM = 350.0
KIDAL_ANEFIS_KM = 112.0
DETOUR_FACTOR = 1.10

MAIN = "Kidal–Gao road"
# road legs: from, to, road name, surface, highway class, target length rule
LEGS: list[tuple[str, str, str, str, str]] = [
    ("Kidal", "Anéfis", MAIN, "unpaved", "primary"),
    ("Anéfis", "Tabankort", MAIN, "unpaved", "primary"),
    ("Tabankort", "Tarkint", MAIN, "unpaved", "primary"),
    ("Tarkint", "Almoustarat", MAIN, "unpaved", "primary"),
    ("Almoustarat", "Gao", MAIN, "unpaved", "primary"),
    ("Gao", "Bourem", "Gao–Bourem road (along the Niger)", "paved", "primary"),
    ("Bourem", "Anéfis", "Bourem–Anéfis desert track", "track", "track"),
    ("Kidal", "Aguelhok", "Kidal–Aguelhok road", "unpaved", "secondary"),
    ("Aguelhok", "Tessalit", "Aguelhok–Tessalit road", "unpaved", "secondary"),
    ("Kidal", "Tin-Essako", "Kidal–Tin-Essako track", "track", "track"),
    ("Bourem", "Ber", "Bourem–Ber road", "unpaved", "secondary"),
    ("Ber", "Timbuktu", "Ber–Timbuktu road", "unpaved", "secondary"),
    ("Gao", "Ansongo", "Gao–Ansongo road", "paved", "primary"),
    ("Ansongo", "Ménaka", "Ansongo–Ménaka road", "unpaved", "secondary"),
]


def _place(name: str) -> tuple[float, float]:
    for p in PLACES:
        if p[0] == name:
            return p[2], p[3]
    raise KeyError(name)


def _straight_km(a: str, b: str) -> float:
    (la1, lo1), (la2, lo2) = _place(a), _place(b)
    return float(GEOD.inv(lo1, la1, lo2, la2)[2]) / 1000.0


def _meander(
    a: str, b: str, amplitude_km: float, step_km: float = 2.0
) -> list[tuple[float, float]]:
    """Points (lon, lat) from a to b, offset sideways by a sine meander."""
    (la1, lo1), (la2, lo2) = _place(a), _place(b)
    az, _, dist_m = GEOD.inv(lo1, la1, lo2, la2)
    n = max(int(dist_m / 1000.0 / step_km), 4)
    half_waves = max(round(dist_m / 1000.0 / 25.0), 2)  # one bend every ~25 km
    pts = []
    for i in range(n + 1):
        t = i / n
        lon, lat, _ = GEOD.fwd(lo1, la1, az, t * dist_m)
        # the meander fades out near both ends, so legs that meet at a town do not cross
        taper = min(1.0, t / 0.15, (1.0 - t) / 0.15)
        off = amplitude_km * 1000.0 * math.sin(math.pi * half_waves * t) * taper
        if off != 0.0:
            lon, lat, _ = GEOD.fwd(lon, lat, az + 90.0, off)
        pts.append((round(lon, 5), round(lat, 5)))
    pts[0] = (lo1, la1)
    pts[-1] = (lo2, la2)
    return pts


def _length_km(pts: list[tuple[float, float]]) -> float:
    lons, lats = zip(*pts, strict=True)
    return float(GEOD.line_length(lons, lats)) / 1000.0


def _fit(a: str, b: str, target_km: float) -> list[tuple[float, float]]:
    lo, hi = 0.0, 30.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if _length_km(_meander(a, b, mid)) < target_km:
            lo = mid
        else:
            hi = mid
    return _meander(a, b, (lo + hi) / 2)


def _targets() -> dict[tuple[str, str], tuple[float, str]]:
    main_rest = list(LEGS[1:5])
    rest_straight = sum(_straight_km(a, b) for a, b, *_ in main_rest)
    factor = (MAIN_ROAD_KM - KIDAL_ANEFIS_KM) / rest_straight
    out: dict[tuple[str, str], tuple[float, str]] = {
        ("Kidal", "Anéfis"): (KIDAL_ANEFIS_KM, "road length 112 km (SCENARIO.md: Anéfis)"),
    }
    for a, b, *_ in main_rest:
        out[(a, b)] = (
            _straight_km(a, b) * factor,
            f"share of the 350 km main road: straight line x {factor:.3f}",
        )
    for a, b, *_ in LEGS[5:]:
        out[(a, b)] = (
            _straight_km(a, b) * DETOUR_FACTOR,
            f"no published road length: straight line x assumed detour {DETOUR_FACTOR}",
        )
    return out


def main() -> None:
    """Write places.csv, roads.geojson and incidents.csv beside this script."""
    with (HERE / "places.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["name", "aliases", "latitude", "longitude", "kind", "note", "source"])
        for name, aliases, lat, lon, kind, note in PLACES:
            w.writerow(
                [
                    name,
                    aliases,
                    lat,
                    lon,
                    kind,
                    note,
                    "SCENARIO.md (GeoNames/OSM/OCHA agree to about 1 km)",
                ]
            )

    targets = _targets()
    features = []
    for a, b, name, surface, highway in LEGS:
        target, rule = targets[(a, b)]
        pts = _fit(a, b, target)
        features.append(
            {
                "type": "Feature",
                "properties": {
                    "name": name,
                    "from": a,
                    "to": b,
                    "surface": surface,
                    "highway": highway,
                    "ref": "",
                    "ref_note": "national road number unverified (RN18 and RN19 both seen)"
                    if name == MAIN
                    else "",
                    "surface_source": "assumed",
                    "geometry_source": "approximate",
                    "length_rule": rule,
                    "target_km": round(target, 1),
                    "straight_km": round(_straight_km(a, b), 1),
                },
                "geometry": {"type": "LineString", "coordinates": [list(p) for p in pts]},
            }
        )
    roads = {
        "type": "FeatureCollection",
        "name": "kidal_gao_roads",
        "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:OGC:1.3:CRS84"}},
        "description": (
            "APPROXIMATE road legs digitised from SCENARIO.md by data/geo/digitise.py: "
            "each leg joins two named places and meanders so its length matches the road "
            "length (main road 350 km); not the real alignment."
        ),
        "features": features,
    }
    (HERE / "roads.geojson").write_text(
        json.dumps(roads, ensure_ascii=False, indent=None) + "\n", encoding="utf-8"
    )

    # Incidents: no coordinates were published. Each one sits on the main road
    # where the reports put it, with a precision code (ACLED geo_precision
    # meaning) and an uncertainty radius covering the stretch the report allows.
    kidal_anefis = _fit("Kidal", "Anéfis", KIDAL_ANEFIS_KM)

    def along(frac: float) -> tuple[float, float]:
        lons, lats = zip(*kidal_anefis, strict=True)
        total = GEOD.line_length(lons, lats)
        acc = 0.0
        for (x0, y0), (x1, y1) in itertools.pairwise(kidal_anefis):
            seg = GEOD.line_length([x0, x1], [y0, y1])
            if acc + seg >= frac * total:
                t = (frac * total - acc) / seg
                return round(y0 + t * (y1 - y0), 4), round(x0 + t * (x1 - x0), 4)
            acc += seg
        return kidal_anefis[-1][1], kidal_anefis[-1][0]

    src = "UN Secretary-General's spokesman, statements of 1 and 6 Nov 2023; press agencies"
    after_kidal = along(0.15)  # "after leaving Kidal": first ~17 km of road
    between = along(0.5)  # "between Kidal and Anéfis": middle of the leg
    anefis = _place("Anéfis")
    rows = [
        (
            "2023-10-31",
            *after_kidal,
            2,
            20000,
            1,
            (
                "two IEDs hit the convoy after leaving Kidal; 2 minor injuries reported for the "
                "pair, split 1/1 here"
            ),
            "after leaving Kidal",
        ),
        (
            "2023-10-31",
            *after_kidal,
            2,
            20000,
            1,
            "second of the two IEDs of 31 Oct (JNIM claimed the first two attacks)",
            "after leaving Kidal",
        ),
        (
            "2023-11-01",
            *between,
            3,
            56000,
            8,
            "one IED; 8 injured evacuated to Gao",
            "between Kidal and Anéfis",
        ),
        ("2023-11-03", *between, 3, 56000, 7, "one IED; 7 injured", "between Kidal and Anéfis"),
        (
            "2023-11-04",
            *anefis,
            2,
            10000,
            11,
            (
                "two IEDs near Anéfis; 22 injured reported for the pair (evacuated by air to "
                "Gao), split 11/11 here"
            ),
            "near Anéfis",
        ),
        ("2023-11-04", *anefis, 2, 10000, 11, "second of the two IEDs near Anéfis", "near Anéfis"),
    ]
    with (HERE / "incidents.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "event_id",
                "date",
                "latitude",
                "longitude",
                "geo_precision",
                "precision_m",
                "killed",
                "injured",
                "type",
                "location",
                "notes",
                "source",
                "geometry_source",
            ]
        )
        for i, (date, lat, lon, prec, radius, inj, notes, loc) in enumerate(rows, start=1):
            w.writerow(
                [
                    f"MINUSMA-2023-{i}",
                    date,
                    lat,
                    lon,
                    prec,
                    radius,
                    0,
                    inj,
                    "IED",
                    loc,
                    notes,
                    src,
                    "approximate: no coordinates published",
                ]
            )

    _write_base_rates()


# Historical IEDs around the corridor, 1997–2020 (ACLED, as summarised in public
# research; SCENARIO.md): 109 in all, of which 6 at Anéfis, 4 at Tarkint, 3 at
# Almoustarat and 2 at Tabankort. ACLED's rows are not redistributed: only these
# published aggregates are used.
HISTORY_YEARS = (1997, 2020)
HISTORY_TOTAL = 109
HISTORY_AT = {"Anéfis": 6, "Tarkint": 4, "Almoustarat": 3, "Tabankort": 2}
HOTSPOT_RADIUS_KM = 15.0  # "at" a place: the roads within this distance of it
CORRIDOR_RADIUS_KM = 30.0  # "around the corridor": the roads within this of the main road


def _write_base_rates() -> None:
    """Regional base rates (episodes per km per 30 days) from the 1997–2020 aggregates.

    Each count is divided by the embedded road length inside its area and by
    the number of 30-day periods in 1997–2020 (292.2). The corridor area holds
    the 109 − 15 IEDs not located at the four places, over its road length
    outside their circles. Counts are of IED events, taken as episodes. If the
    IEDs concentrate in the years after 2012, as reporting suggests, these
    rates understate the recent rate by up to about three times: the model
    pools them with recent data and estimates how far segments depart from them.
    """
    import geopandas as gpd  # noqa: PLC0415 - only this part needs geopandas
    import shapely  # noqa: PLC0415

    roads = gpd.read_file(HERE / "roads.geojson").to_crs("EPSG:32631")
    lines = shapely.union_all(roads.geometry.to_numpy())
    main_road = shapely.union_all(roads.geometry[roads["name"] == MAIN].to_numpy())
    periods = 365.25 * (HISTORY_YEARS[1] + 1 - HISTORY_YEARS[0]) / 30.0
    places = {
        n: gpd.GeoSeries(shapely.points([_place(n)[::-1]]), crs="EPSG:4326").to_crs("EPSG:32631")
        for n in HISTORY_AT
    }
    circles = {n: p.iloc[0].buffer(HOTSPOT_RADIUS_KM * 1000.0, 64) for n, p in places.items()}
    corridor = main_road.buffer(CORRIDOR_RADIUS_KM * 1000.0, 32)
    rows = []
    for name, count in HISTORY_AT.items():
        km = shapely.length(shapely.intersection(lines, circles[name])) / 1000.0
        rows.append((f"{name} ({HOTSPOT_RADIUS_KM:g} km)", count, km, circles[name]))
    rest_area = corridor.difference(shapely.union_all(list(circles.values())))
    rest_km = shapely.length(shapely.intersection(lines, rest_area)) / 1000.0
    rows.append(
        (f"Kidal–Gao corridor ({CORRIDOR_RADIUS_KM:g} km)", HISTORY_TOTAL - 15, rest_km, corridor)
    )
    areas = gpd.GeoDataFrame(
        {
            "name": [r[0] for r in rows],
            "episodes": [r[1] for r in rows],
            "road_km": [round(r[2], 1) for r in rows],
            "periods_30d": round(periods, 1),
            "rate": [r[1] / r[2] / periods for r in rows],
            "source": (
                "ACLED 1997–2020 IED counts as summarised in public research (SCENARIO.md); "
                "rate = episodes / embedded road km in the area / 30-day periods"
            ),
        },
        geometry=[r[3] for r in rows],
        crs="EPSG:32631",
    ).to_crs("EPSG:4326")
    areas["geometry"] = shapely.set_precision(areas.geometry.to_numpy(), 1e-4)
    areas.to_file(HERE / "base_rates.geojson", driver="GeoJSON")


if __name__ == "__main__":
    main()
