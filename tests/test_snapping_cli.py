"""`convoyrisk snap` through the real entry point: outputs, rejects, counts that add up."""

from __future__ import annotations

import re
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyogrio
import pytest
from click.testing import CliRunner

from convoyrisk.cli import main

from .helpers.exports import ACLED_HEADER, IED, acled_row, write_csv


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["snap", *args])
    return result.exit_code, result.output


def counts(output: str) -> dict[str, int]:
    line = output.splitlines()[0]
    total = int(line.split(" rows")[0])
    parts = {
        m[1]: int(m[0])
        for m in re.findall(r"(\d+) (snapped|spread|too far|excluded|rejected|merged)", line)
    }
    return {"total": total, **parts}


@pytest.fixture
def acled(tmp_path: Path) -> Path:
    rows = [
        acled_row(),  # 1 Anéfis, exact: on the Kidal–Gao road
        acled_row(geo_precision="2", latitude="18.10", longitude="0.70"),  # 2 near it: spread
        acled_row(latitude="16.0", longitude="-5.0"),  # 3 far from every road
        acled_row(event_type="Battles", sub_event_type="Armed clash"),  # 4 filtered out
        acled_row(event_date="someday"),  # 5 rejected
        acled_row(latitude="95", longitude="0.6"),  # 6 rejected, swapped
    ]
    return write_csv(tmp_path / "acled.csv", ACLED_HEADER, rows, sep=";", bom=True)


def test_snap_csv_counts_add_up(acled: Path, tmp_path: Path) -> None:
    out = tmp_path / "out" / "placed.csv"
    code, output = run("--incidents", str(acled), "--out", str(out), "--event-type", IED)
    assert code == 0, output
    c = counts(output)
    assert c == {
        "total": 6,
        "snapped": 1,
        "spread": 1,
        "too far": 1,
        "excluded": 1,
        "rejected": 2,
        "merged": 0,
    }
    placed = pd.read_csv(out)
    rejects = pd.read_csv(tmp_path / "out" / "placed_rejects.csv")
    assert placed["row"].tolist() == [1, 2, 3]
    assert placed["status"].tolist() == ["snapped", "spread", "too_far"]
    assert {"row", "status", "u", "v", "key", "snap_distance_m", "offset_m"} <= set(placed)
    assert rejects["row"].tolist() == [4, 5, 6]
    assert rejects["kind"].tolist() == ["excluded", "rejected", "rejected"]
    assert sorted([*placed["row"], *rejects["row"]]) == list(range(1, 7))
    # Anéfis is a vertex of the embedded road: snapped within a metre, about 112 km from Kidal
    first = placed.iloc[0]
    assert first["snap_distance_m"] < 1.0
    assert first["chainage_m"] == pytest.approx(112_000, abs=1_000)
    assert first["road"] == "Kidal–Gao road"
    assert placed["u"].iloc[2] == -1


def test_snap_geopackage(acled: Path, tmp_path: Path) -> None:
    out = tmp_path / "placed.gpkg"
    code, output = run("--incidents", str(acled), "--out", str(out), "-q")
    assert code == 0, output
    assert output == ""
    placed = gpd.read_file(out)
    assert placed.crs.to_epsg() == 4326
    assert len(placed) == 4
    rejects = pyogrio.read_dataframe(tmp_path / "placed_rejects.gpkg")
    assert rejects["row"].tolist() == [5, 6]


def test_snap_with_other_roads_and_columns(tmp_path: Path) -> None:
    roads = tmp_path / "roads.geojson"
    gpd.GeoDataFrame(
        {"name": ["track"]},
        geometry=gpd.GeoSeries.from_wkt(["LINESTRING (0.5 18.0, 0.7 18.0)"]),
        crs="EPSG:4326",
    ).to_file(roads)
    inc = tmp_path / "mine.csv"
    inc.write_text("y,x,when\n18.001,0.6,2023-11-04\n19.0,0.6,2023-11-04\n", encoding="utf-8")
    out = tmp_path / "placed.csv"
    code, output = run(
        "--incidents", str(inc), "--roads", str(roads), "--out", str(out),
        "--column", "latitude=y", "--column", "longitude=x", "--column", "date=when",
    )  # fmt: skip
    assert code == 0, output
    placed = pd.read_csv(out)
    assert placed["status"].tolist() == ["snapped", "too_far"]
    # 0.001° of latitude is 110.6 m at 18°N, less the 2.8 m by which the straight line
    # (straight in UTM, 21 km long) bows off the parallel: computed with pyproj + shapely
    from pyproj import Transformer
    from shapely import LineString, Point

    crs = placed["snap_crs"].iloc[0]
    to = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    line = LineString([to.transform(0.5, 18.0), to.transform(0.7, 18.0)])
    expected = line.distance(Point(to.transform(0.6, 18.001)))
    assert expected == pytest.approx(110.6 - 2.8, abs=0.2)
    assert placed["snap_distance_m"].iloc[0] == pytest.approx(expected, abs=1e-6)


def test_snap_merges_duplicates(tmp_path: Path) -> None:
    inc = tmp_path / "reports.csv"
    inc.write_text(
        "latitude,longitude,date,type,source\n"
        "18.04,0.601,2023-11-04,IED,UN\n18.041,0.601,2023-11-04,IED,press\n",
        encoding="utf-8",
    )
    out = tmp_path / "placed.csv"
    code, output = run("--incidents", str(inc), "--out", str(out))
    assert code == 0, output
    assert counts(output)["merged"] == 1
    rejects = pd.read_csv(tmp_path / "placed_rejects.csv")
    assert rejects["merged_into"].tolist() == [1]
    assert pd.read_csv(out)["source"].tolist() == ["UN; press"]
    code, output = run("--incidents", str(inc), "--out", str(out), "--no-merge")
    assert counts(output)["merged"] == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--out", "x.txt"], "must end in .csv or .gpkg"),
        (["--out", "x.csv", "--column", "latitude"], "OURS=THEIRS"),
        (["--out", "x.csv", "--date-from", "soon"], "`--date-from`"),
        (["--out", "x.csv", "--incidents", "nowhere.csv"], "does not exist"),
    ],
)
def test_snap_usage_errors(tmp_path: Path, args: list[str], message: str) -> None:
    code, output = run(*[str(tmp_path / a) if a.endswith((".txt", ".csv")) else a for a in args])
    assert code == 2
    assert message in output


def test_two_sources_give_one_incident_and_a_merge_report(tmp_path: Path) -> None:
    """One event in two files (150 m and the same day apart): one placed row, one report row."""
    a = tmp_path / "un.csv"
    a.write_text(
        "latitude,longitude,date,source,type,event_id\n"
        "18.04,0.601,2023-11-04,UN,IED,u1\n"
        "17.5,0.12,2023-10-01,UN,IED,u2\n",
        encoding="utf-8",
    )
    b = tmp_path / "press.csv"
    b.write_text(
        "latitude,longitude,date,source,type,event_id\n18.041,0.602,2023-11-04,press,IED,p1\n",
        encoding="utf-8",
    )
    out, report = tmp_path / "placed.csv", tmp_path / "merges.csv"
    code, output = run(
        "--incidents", str(a), "--incidents", str(b), "--out", str(out),
        "--merge-report", str(report), "-q",
    )  # fmt: skip
    assert code == 0, output
    placed = pd.read_csv(out)
    assert len(placed) == 2
    assert placed.loc[placed["event_id"] == "u1", "source"].item() == "UN; press"
    merges = pd.read_csv(report)
    assert len(merges) == 1
    row = merges.iloc[0]
    assert (row["input"], row["row"], row["merged_into_input"], row["merged_into_row"]) == (
        "press",
        1,
        "un",
        1,
    )
    # the distance it reports is the one between the two points (pyproj's geodesic)
    from pyproj import Geod

    _, _, d = Geod(ellps="WGS84").inv(0.601, 18.04, 0.602, 18.041)
    assert row["distance_m"] == pytest.approx(d, abs=1.0)
