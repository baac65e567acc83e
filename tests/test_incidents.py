from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import convoyrisk as cr


def test_default_incidents_are_the_six_of_2023() -> None:
    t = cr.read_incidents()
    assert t.n_input == 6 and len(t.incidents) == 6 and len(t.rejects) == 0
    assert t.incidents["injured"].sum() == 39  # SCENARIO.md: 39 injured in all
    assert t.incidents["date"].dt.strftime("%Y-%m-%d").tolist() == [
        "2023-10-31",
        "2023-10-31",
        "2023-11-01",
        "2023-11-03",
        "2023-11-04",
        "2023-11-04",
    ]
    assert (t.incidents["precision_m"] > 0).all()  # no coordinates were published


def test_hostile_rows_are_all_accounted_for(tmp_path: Path) -> None:
    path = tmp_path / "inc.csv"
    path.write_text(
        "latitude,longitude,date,killed,injured,notes\n"
        "18.0,0.6,2023-11-04,0,3,fine\n"
        "95.0,0.6,2023-11-04,0,0,lat out of range\n"
        "0.6,200,2023-11-04,0,0,lon out of range\n"
        "18.0,0.6,yesterday,0,0,bad date\n"
        "18.0,0.6,04 November 2023,x,0,text in killed\n"
        "18.0,0.6,04 November 2023,-1,0,negative\n"
        ",0.6,2023-11-04,0,0,empty latitude\n"
        '18.1,0.7,04 November 2023,,,"quoted, with comma\nand newline"\n',
        encoding="utf-8",
    )
    t = cr.read_incidents(path)
    assert t.n_input == 8
    assert len(t.incidents) + len(t.rejects) == t.n_input
    assert t.incidents["row"].tolist() == [1, 8]
    reasons = dict(zip(t.rejects["row"], t.rejects["reason"], strict=True))
    assert reasons == {
        2: "latitude out of range (latitude and longitude swapped?)",
        3: "coordinates out of range",
        4: "date missing or not YYYY-MM-DD / DD Month YYYY",
        5: "killed is not a number",
        6: "killed is negative",
        7: "latitude or longitude missing or not a number",
    }
    assert t.incidents["notes"].iloc[1] == "quoted, with comma\nand newline"


def test_semicolon_and_bom(tmp_path: Path) -> None:
    path = tmp_path / "inc.csv"
    path.write_bytes("\ufefflatitude;longitude;date\n18.0;0.6;2023-11-04\n".encode())
    t = cr.read_incidents(path)
    assert len(t.incidents) == 1


def test_missing_columns(tmp_path: Path) -> None:
    path = tmp_path / "inc.csv"
    path.write_text("lat,lon,when\n1,2,2020-01-01\n", encoding="utf-8")
    with pytest.raises(cr.InputError, match="lacks column"):
        cr.read_incidents(path)


def test_geo_precision_radius(tmp_path: Path) -> None:
    path = tmp_path / "inc.csv"
    path.write_text(
        "latitude,longitude,date,geo_precision,precision_m\n"
        "18,0.6,2023-01-01,3,\n18,0.6,2023-01-01,3,1234\n",
        encoding="utf-8",
    )
    t = cr.read_incidents(path)
    assert t.incidents["precision_m"].tolist() == [50_000.0, 1234.0]


def test_geojson_points(tmp_path: Path) -> None:
    import geopandas as gpd

    path = tmp_path / "inc.geojson"
    gpd.GeoDataFrame(
        {"date": ["2023-11-04"], "injured": [2]},
        geometry=gpd.points_from_xy([0.6], [18.04]),
        crs="EPSG:4326",
    ).to_file(path)
    t = cr.read_incidents(path)
    assert len(t.incidents) == 1
    assert t.incidents.geometry.iloc[0].y == pytest.approx(18.04)


def test_parse_dates_two_formats() -> None:
    from convoyrisk.incidents import parse_dates

    got = parse_dates(pd.Series(["2023-11-04", "4 November 2023", "2023-13-01"]))
    assert got.iloc[0] == got.iloc[1] == pd.Timestamp("2023-11-04")
    assert pd.isna(got.iloc[2])
