"""Field reports (KoBo/ODK, .xlsx), time zones, and several sources merged into one picture.

Expectations are hand-computed (coordinates, UTC dates) or come from a simulation
whose truth is known (which reports describe which event).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyproj import Geod

import convoyrisk as cr
from convoyrisk.incidents import Filters
from convoyrisk.sources import (
    MergeRules,
    counts_by_input,
    merge_report,
    read_sources,
    write_merge_report,
)

from .helpers.exports import ACLED_HEADER, GED_HEADER, acled_row, ged_row

GEOD = Geod(ellps="WGS84")


def write_csv(path: Path, header: list[str], rows: list[dict[str, str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=header)
        w.writeheader()
        w.writerows(rows)
    return path


def accounted(table: cr.IncidentTable) -> None:
    per = counts_by_input(table)
    assert (per["rows"] == per[["incidents", "rejected", "excluded", "merged"]].sum(axis=1)).all()
    assert per["rows"].sum() == table.n_input == len(table.incidents) + len(table.rejects)


# --- field reports --------------------------------------------------------------------------


def test_kobo_xlsx_export_with_geopoint_columns_and_zoned_times(tmp_path: Path) -> None:
    form = pd.DataFrame(
        {
            "start": ["2023-11-04T23:30:00.000-05:00", "2023-11-04T08:00:00.000+01:00"],
            "incident_type": ["IED", "ambush"],
            "gps": ["18.04 0.601 312 4.5", "17.9 0.5 300 25"],
            "_gps_latitude": [18.04, 17.9],
            "_gps_longitude": [0.601, 0.5],
            "_gps_altitude": [312, 300],
            "_gps_precision": [4.5, 25],
            "injured": [3, 0],
            "_submission_time": ["2023-11-05T10:00:00", "2023-11-04T09:00:00"],
        }
    )
    path = tmp_path / "kobo.xlsx"
    form.to_excel(path, index=False, sheet_name="incident_log")
    t = cr.read_incidents(path, columns={"date": "start", "type": "incident_type"})
    inc = t.incidents
    assert t.n_input == 2
    assert len(inc) == 2
    assert inc.geometry.y.tolist() == [18.04, 17.9]
    assert inc.geometry.x.tolist() == [0.601, 0.5]
    assert inc["precision_m"].tolist() == [4.5, 25.0]  # GPS accuracy, metres
    # 23:30 at UTC-5 is 04:30 UTC the next day; 08:00 at UTC+1 is 07:00 UTC: UTC days
    assert inc["date"].tolist() == [pd.Timestamp("2023-11-05"), pd.Timestamp("2023-11-04")]
    assert inc["injured"].tolist() == [3.0, 0.0]


def test_odk_central_csv_columns(tmp_path: Path) -> None:
    path = tmp_path / "odk.csv"
    path.write_text(
        "SubmissionDate,today,location-Latitude,location-Longitude,location-Altitude,"
        "location-Accuracy,what\n"
        "2023-11-05T10:00:00.000Z,2023-11-04,18.04,0.601,312,8.0,IED\n",
        encoding="utf-8",
    )
    t = cr.read_incidents(path, columns={"date": "today", "type": "what"})
    row = t.incidents.iloc[0]
    assert (row.geometry.y, row.geometry.x, row["precision_m"]) == (18.04, 0.601, 8.0)
    assert row["date"] == pd.Timestamp("2023-11-04")


def test_a_bad_geopoint_rejects_only_its_row(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text(
        "date,location,type\n"
        "2023-11-04,18.04 0.601 312 4.5,IED\n"
        "2023-11-04,near the well,IED\n"
        "2023-11-04,,IED\n"
        "2023-11-05,17.5 0.5,IED\n",
        encoding="utf-8",
    )
    t = cr.read_incidents(path)
    assert t.incidents["row"].tolist() == [1, 4]
    assert t.incidents["precision_m"].tolist() == [4.5, 0.0]  # the second gave no accuracy
    reasons = t.rejects.set_index("row")["reason"]
    assert reasons[2] == "geopoint is not 'lat lon altitude accuracy'"
    assert reasons[3] == "latitude or longitude missing or not a number"


def test_geolocation_column_and_explicit_geopoint_mapping(tmp_path: Path) -> None:
    path = tmp_path / "kobo.csv"
    path.write_text(
        'date,_geolocation,where\n2023-11-04,"[18.04, 0.601]","17.5 0.5 0 12"\n', encoding="utf-8"
    )
    t = cr.read_incidents(path)
    assert (t.incidents.geometry.y[0], t.incidents.geometry.x[0]) == (18.04, 0.601)
    mapped = cr.read_incidents(path, columns={"geopoint": "where"})
    assert (mapped.incidents.geometry.y[0], mapped.incidents["precision_m"][0]) == (17.5, 12.0)


def test_dates_with_zones_each_row_alone(tmp_path: Path) -> None:
    path = tmp_path / "z.csv"
    path.write_text(
        "latitude,longitude,date\n"
        "18,0.6,2023-11-04T23:30:00-05:00\n"
        "18,0.6,2023-11-04T00:30:00+01:00\n"
        "18,0.6,2023-11-04T10:00:00+99:00\n"  # no such offset
        "18,0.6,2023-11-04\n"
        "18,0.6,2023-11-04T10:00:00Z\n",
        encoding="utf-8",
    )
    t = cr.read_incidents(path)
    # UTC days: 04:30 the next day, 23:30 the day before, the plain day, 10:00
    assert t.incidents["date"].dt.strftime("%Y-%m-%d").tolist() == [
        "2023-11-05",
        "2023-11-03",
        "2023-11-04",
        "2023-11-04",
    ]
    assert t.rejects["row"].tolist() == [3]


def test_corrupt_spreadsheet_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "log.xlsx"
    path.write_bytes(b"PK\x03\x04 not really a workbook")
    with pytest.raises(cr.InputError, match=r"Cannot read incident spreadsheet .*log\.xlsx"):
        cr.read_incidents(path)


# --- several sources ------------------------------------------------------------------------


def offset(lat: float, lon: float, east_m: float, north_m: float) -> tuple[float, float]:
    lon2, lat2, _ = GEOD.fwd(lon, lat, 90, east_m)
    lon3, lat3, _ = GEOD.fwd(lon2, lat2, 0, north_m)
    return lat3, lon3


def three_sources(tmp_path: Path, n_events: int = 60, seed: int = 3) -> tuple[list[Path], dict]:
    """Events with known truth, reported by ACLED, GED and a field log with jitter and gaps."""
    rng = np.random.default_rng(seed)
    # events on a 10 km grid, so two events are never within the 2 km merge distance
    cells = rng.choice(400, size=n_events, replace=False)
    truth = {}
    acled, ged, field = [], [], []
    for k, cell in enumerate(cells):
        lat, lon = offset(16.0, 0.0, 10_000 * (cell % 20), 10_000 * (cell // 20))
        day = pd.Timestamp("2023-01-01") + pd.Timedelta(days=int(rng.integers(0, 300)))
        who = [s for s in ("acled", "ged", "field") if rng.random() < 0.7] or ["field"]
        truth[k] = who
        for s in who:
            la, lo = offset(lat, lon, *rng.uniform(-600, 600, 2))  # at most 850 m off
            late = pd.Timedelta(days=int(rng.integers(0, 2)))  # reported up to a day late
            date = (day + late).strftime("%Y-%m-%d")
            if s == "acled":
                acled.append(
                    acled_row(
                        event_id_cnty=f"MLI{k}",
                        event_date=date,
                        latitude=f"{la:.6f}",
                        longitude=f"{lo:.6f}",
                    )
                )
            elif s == "ged":
                ged.append(
                    ged_row(id=str(k), date_start=date, latitude=f"{la:.6f}", longitude=f"{lo:.6f}")
                )
            else:
                field.append({"date": date, "gps": f"{la:.6f} {lo:.6f} 300 10", "what": "IED"})
    paths = [
        write_csv(tmp_path / "acled.csv", ACLED_HEADER, acled),
        write_csv(tmp_path / "ged.csv", GED_HEADER, ged),
        write_csv(tmp_path / "field_log.csv", ["date", "gps", "what"], field),
    ]
    return paths, truth


def test_reports_of_one_event_become_one_incident_listing_every_source(tmp_path: Path) -> None:
    paths, truth = three_sources(tmp_path)
    t = read_sources(paths, columns={"type": "what"})
    accounted(t)
    assert len(t.incidents) == len(truth)  # one incident per true event
    ids = {"acled": lambda k: f"acled:MLI{k}", "ged": lambda k: f"ged:{k}"}
    got = {frozenset(s.split("; ")) for s in t.incidents["sources"]}
    field_rows = iter(range(1, 10_000))
    want = set()
    for k, who in truth.items():
        want.add(
            frozenset(ids[s](k) if s in ids else f"field_log:#{next(field_rows)}" for s in who)
        )
    assert got == want
    per = counts_by_input(t)
    assert per.loc["field_log", "merged"] == 0  # the field log is the most precise (10 m)
    assert per["merged"].sum() == sum(len(w) - 1 for w in truth.values())


def test_the_kept_report_has_the_most_precise_location_and_date(tmp_path: Path) -> None:
    # GED locates it to 1 km but dates it to a week (date_prec 3); ACLED to 15 km, exact day
    paths = [
        write_csv(
            tmp_path / "a.csv",
            ACLED_HEADER,
            [acled_row(event_date="2023-11-05", geo_precision="2", latitude="18.045")],
        ),
        write_csv(
            tmp_path / "g.csv",
            GED_HEADER,
            [ged_row(id="7", date_start="2023-11-04", date_prec="3", where_prec="1")],
        ),
    ]
    t = read_sources(paths)
    assert len(t.incidents) == 1
    kept = t.incidents.iloc[0]
    assert (kept["input"], kept["precision_m"]) == ("ged", 1_000.0)
    assert kept["date"] == pd.Timestamp("2023-11-05")  # ACLED's exact day
    assert kept["sources"] == "ged:7; acled:MLI1"
    rej = t.rejects.iloc[0]
    assert (rej["input"], rej["kind"], rej["merged_into_input"], rej["merged_into"]) == (
        "acled",
        "merged",
        "ged",
        1,
    )


def test_types_must_be_compatible(tmp_path: Path) -> None:
    acled = write_csv(tmp_path / "a.csv", ACLED_HEADER, [acled_row()])
    log = tmp_path / "log.csv"
    log.write_text("latitude,longitude,date,type\n18.04,0.601,2023-11-04,IED\n", encoding="utf-8")
    ambush = tmp_path / "ambush.csv"
    ambush.write_text(
        "latitude,longitude,date,type\n18.04,0.601,2023-11-04,ambush\n", encoding="utf-8"
    )
    assert len(read_sources([acled, log]).incidents) == 1  # ACLED's IED sub-event type
    assert len(read_sources([acled, ambush]).incidents) == 2
    rules = MergeRules(type_groups={"ambush": "x", "remote explosive/landmine/ied": "x"})
    assert len(read_sources([acled, ambush], rules=rules).incidents) == 1
    assert len(read_sources([acled, log], rules=MergeRules(merge=False)).incidents) == 2


def test_distance_and_days_are_the_thresholds(tmp_path: Path) -> None:
    # 1 900 m apart (north), one day apart: merged at 2 km / 1 day, not at 1.5 km or 0 days
    lat2, _ = offset(18.04, 0.601, 0, 1_900)
    a = write_csv(tmp_path / "a.csv", ACLED_HEADER, [acled_row()])
    b = tmp_path / "b.csv"
    b.write_text(f"latitude,longitude,date,type\n{lat2},0.601,2023-11-05,IED\n", encoding="utf-8")
    assert len(read_sources([a, b]).incidents) == 1
    assert len(read_sources([a, b], rules=MergeRules(distance_m=1_500)).incidents) == 2
    assert len(read_sources([a, b], rules=MergeRules(days=0)).incidents) == 2
    report = merge_report(read_sources([a, b]))
    assert report["distance_m"].iloc[0] == pytest.approx(1_900, abs=1)
    assert report["days_apart"].iloc[0] == 1.0


def test_dedup_report_names_the_row_each_went_into(tmp_path: Path) -> None:
    paths, truth = three_sources(tmp_path, n_events=25, seed=11)
    t = read_sources(paths, columns={"type": "what"})
    out = write_merge_report(t, tmp_path / "out" / "dedup.csv")
    report = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert len(report) == sum(len(w) - 1 for w in truth.values())
    kept = set(zip(t.incidents["input"], t.incidents["row"].astype(str), strict=True))
    assert set(zip(report["merged_into_input"], report["merged_into_row"], strict=True)) <= kept
    merged = t.rejects[t.rejects["kind"] == "merged"]
    assert set(zip(report["input"], report["row"], strict=True)) == set(
        zip(merged["input"], merged["row"].astype(str), strict=True)
    )
    # every incident lists its sources, and the merged ones are among them
    by_kept = dict(
        zip(
            zip(t.incidents["input"], t.incidents["row"].astype(str), strict=True),
            t.incidents["sources"],
            strict=True,
        )
    )
    for r in report.itertuples():
        assert r.id in by_kept[(r.merged_into_input, r.merged_into_row)].split("; ")


def test_column_mapping_applies_to_the_inputs_that_have_the_column(tmp_path: Path) -> None:
    paths, _ = three_sources(tmp_path, n_events=5)
    with pytest.raises(cr.InputError, match="type=wat"):
        read_sources(paths, columns={"type": "wat"})
    # the list form of read_incidents is read_sources
    a = cr.read_incidents(paths, columns={"type": "what"})
    b = read_sources(paths, columns={"type": "what"})
    assert a.incidents["sources"].tolist() == b.incidents["sources"].tolist()


def test_filters_and_rejects_are_counted_per_input(tmp_path: Path) -> None:
    a = write_csv(
        tmp_path / "a.csv",
        ACLED_HEADER,
        [
            acled_row(),
            acled_row(event_id_cnty="MLI2", event_date="2020-01-01"),
            acled_row(event_id_cnty="MLI3", latitude="x"),
        ],
    )
    b = tmp_path / "b.csv"
    b.write_text(
        "latitude,longitude,date,type\n18.04,0.601,2023-11-04,IED\n1,2,soon,IED\n",
        encoding="utf-8",
    )
    t = read_sources([a, b], names=["ours", "theirs"], filters=Filters.make(date_from="2023-01-01"))
    accounted(t)
    per = counts_by_input(t)
    assert per.loc["ours"].to_dict() == {
        "rows": 3,
        "incidents": 0,
        "rejected": 1,
        "excluded": 1,
        "merged": 1,
    }
    assert per.loc["theirs"].to_dict() == {
        "rows": 2,
        "incidents": 1,
        "rejected": 1,
        "excluded": 0,
        "merged": 0,
    }
    assert t.dataset == "mixed"


CELLS = [
    ["18.04", "18.041", "", "x", "95"],
    ["0.6", "0.601", ""],
    ["2023-11-04", "2023-11-05T23:30:00-05:00", "2023-11-04T10:00+99:00", ""],
    ["IED", "ambush", ""],
    ["A", "B", ""],
]


@settings(max_examples=30, deadline=None)
@given(
    a=st.lists(st.tuples(*[st.sampled_from(v) for v in CELLS]), max_size=8),
    b=st.lists(st.tuples(*[st.sampled_from(v) for v in CELLS]), max_size=8),
)
def test_every_row_of_every_input_is_accounted_for(
    tmp_path_factory: pytest.TempPathFactory, a, b
) -> None:
    folder = tmp_path_factory.mktemp("s")
    paths = []
    for name, rows in (("one", a), ("two", b)):
        path = folder / f"{name}.csv"
        path.write_text(
            "latitude,longitude,date,type,source\n" + "".join(",".join(r) + "\n" for r in rows),
            encoding="utf-8",
        )
        paths.append(path)
    t = read_sources(paths)
    accounted(t)
    per = counts_by_input(t)
    assert per["rows"].tolist() == [len(a), len(b)]
    merged = t.rejects[t.rejects["kind"] == "merged"]
    kept = set(zip(t.incidents["input"], t.incidents["row"], strict=True))
    assert set(zip(merged["merged_into_input"], merged["merged_into"], strict=True)) <= kept


def test_tables_and_checked_tables_are_inputs_too(tmp_path: Path) -> None:
    raw = pd.DataFrame(
        {"lat": ["18.04"], "lon": ["0.601"], "date": ["2023-11-04"], "type": ["IED"]}
    )
    checked = cr.read_incidents(write_csv(tmp_path / "a.csv", ACLED_HEADER, [acled_row()]))
    t = read_sources([raw, checked], columns={"latitude": "lat", "longitude": "lon"})
    assert list(t.inputs) == ["table1", "acled"]
    assert t.incidents["sources"].tolist() == ["table1:#1; acled:MLI1"]
    assert "input" not in checked.incidents.columns  # the caller's table is left as it was
