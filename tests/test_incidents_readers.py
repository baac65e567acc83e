"""ACLED and UCDP GED readers, filters, duplicates: every row accounted for.

The fixtures are synthetic rows with the real exports' columns (ACLED's terms
forbid redistributing its rows), written inline with hostile content.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convoyrisk as cr
from convoyrisk.incidents import Filters, detect_dataset, merge_duplicates, parse_dates

from .helpers.exports import ACLED_HEADER, GED_HEADER, IED, acled_row, ged_row, write_csv


def accounted(t: cr.IncidentTable) -> None:
    """Each input row is exactly once in the incidents or the rejects."""
    rows = sorted([*t.incidents["row"].tolist(), *t.rejects["row"].tolist()])
    assert rows == list(range(1, t.n_input + 1))
    assert sum(t.counts().values()) == t.n_input


@pytest.mark.parametrize(("sep", "bom"), [(",", False), (";", True)])
def test_hostile_acled_export(tmp_path: Path, sep: str, bom: bool) -> None:
    rows = [
        acled_row(),  # 1 fine
        acled_row(event_date="04 November 2023", fatalities="3"),  # 2 the long date format
        acled_row(latitude=""),  # 3 empty latitude
        acled_row(fatalities="several"),  # 4 text in a number
        acled_row(fatalities="-2"),  # 5 negative
        acled_row(event_date="Nov 2023"),  # 6 not a day
        acled_row(notes='He said "boom";\nthen, a second one', geo_precision="2"),  # 7
        acled_row(geo_precision="9"),  # 8 unknown code
        acled_row(geo_precision="3", latitude="18.441", longitude="1.408"),  # 9 at the capital
        acled_row(latitude="0.601", longitude="95.0"),  # 10 out of range
        acled_row(latitude="95.0", longitude="0.601"),  # 11 swapped
        acled_row(geo_precision=""),  # 12 ACLED always gives a code
    ]
    path = write_csv(tmp_path / "acled.csv", ACLED_HEADER, rows, sep=sep, bom=bom)
    t = cr.read_incidents(path)
    assert t.dataset == "acled"
    assert t.n_input == 12
    accounted(t)
    assert t.incidents["row"].tolist() == [1, 2, 7, 9, 10]
    reasons = dict(zip(t.rejects["row"], t.rejects["reason"], strict=True))
    assert reasons[3] == "latitude or longitude missing or not a number"
    assert reasons[4] == "killed is not a number"
    assert reasons[5] == "killed is negative"
    assert reasons[6] == "date missing or not YYYY-MM-DD / DD Month YYYY"
    assert reasons[8] == "geo_precision is not one of 1, 2, 3"
    assert reasons[11] == "latitude out of range (latitude and longitude swapped?)"
    assert reasons[12] == "geo_precision is not one of 1, 2, 3"
    inc = t.incidents.set_index("row")
    assert inc.loc[2, "date"] == pd.Timestamp("2023-11-04")
    assert inc.loc[2, "killed"] == 3.0
    assert inc.loc[2, "type"] == IED
    assert inc.loc[2, "event_type"] == "Explosions/Remote violence"
    assert inc.loc[7, "notes"] == 'He said "boom";\nthen, a second one'
    assert inc.loc[7, "precision_m"] == 15_000.0
    assert inc.loc[1, "precision_m"] == 2_000.0
    assert bool(inc.loc[9, "at_capital"]) and not inc.loc[[1, 2, 7], "at_capital"].any()
    assert inc.loc[1, "event_id"] == "MLI1"


def test_row_10_longitude_out_of_range_is_rejected_not_swapped(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "a.csv", ACLED_HEADER, [acled_row(latitude="0.6", longitude="195")])
    t = cr.read_incidents(path)
    assert t.rejects["reason"].tolist() == ["coordinates out of range"]


def test_hostile_ged_export(tmp_path: Path) -> None:
    rows = [
        ged_row(),  # 1 exact
        ged_row(where_prec="2"),  # 2 within 25 km
        ged_row(where_prec="4", adm_1="Kidal region"),  # 3 province
        ged_row(where_prec="6"),  # 4 country only: too coarse
        ged_row(where_prec="7"),  # 5 too coarse
        ged_row(best="n/a"),  # 6 text
        ged_row(date_start=""),  # 7 empty date
        ged_row(where_description='line one\nline two, with "quotes"'),  # 8
        ged_row(type_of_violence="1", low="-1"),  # 9 negative low
    ]
    path = write_csv(tmp_path / "ged.csv", GED_HEADER, rows, bom=True)
    t = cr.read_incidents(path)
    assert t.dataset == "ged"
    accounted(t)
    assert t.incidents["row"].tolist() == [1, 2, 3, 8]
    kinds = dict(zip(t.rejects["row"], t.rejects["kind"], strict=True))
    assert kinds == {4: "excluded", 5: "excluded", 6: "rejected", 7: "rejected", 9: "rejected"}
    reasons = dict(zip(t.rejects["row"], t.rejects["reason"], strict=True))
    assert reasons[4] == "excluded: where_prec 6 too coarse (the country only)"
    assert reasons[6] == "killed is not a number"
    assert reasons[9] == "killed_low is negative"
    inc = t.incidents.set_index("row")
    assert inc["precision_m"].tolist() == [1_000.0, 25_000.0, 100_000.0, 1_000.0]
    assert inc.loc[1, ["killed", "killed_low", "killed_high"]].tolist() == [2.0, 1.0, 4.0]
    assert inc.loc[1, "type"] == "one-sided"
    assert inc.loc[1, "date"] == pd.Timestamp("2023-11-04")
    assert inc.loc[1, "source"] == "Synthetic wire"
    assert inc.loc[8, "notes"] == 'line one\nline two, with "quotes"'


def test_filters_exclude_with_reasons(tmp_path: Path) -> None:
    rows = [
        acled_row(),
        acled_row(event_type="Battles", sub_event_type="Armed clash"),
        acled_row(event_date="2022-12-31"),
        acled_row(event_date="2024-01-01"),
        acled_row(geo_precision="3"),
        acled_row(event_date="bad"),  # a reject stays a reject, whatever the filters
    ]
    path = write_csv(tmp_path / "acled.csv", ACLED_HEADER, rows)
    filters = Filters.make(
        event_types=[IED.upper()],
        date_from="2023-01-01",
        date_to="2023-12-31",
        max_precision_m=20_000,
    )
    t = cr.read_incidents(path, filters=filters)
    accounted(t)
    assert t.incidents["row"].tolist() == [1]
    reasons = dict(zip(t.rejects["row"], t.rejects["reason"], strict=True))
    assert reasons == {
        2: "excluded: type Armed clash not selected",
        3: "excluded: before 2023-01-01",
        4: "excluded: after 2023-12-31",
        5: "excluded: uncertainty radius 50000 m above the 20000 m allowed",
        6: "date missing or not YYYY-MM-DD / DD Month YYYY",
    }
    assert t.counts() == {"incidents": 1, "rejected": 1, "excluded": 4, "merged": 0}


def test_event_type_matches_the_broad_type_too(tmp_path: Path) -> None:
    rows = [acled_row(), acled_row(sub_event_type="Grenade")]
    path = write_csv(tmp_path / "acled.csv", ACLED_HEADER, rows)
    t = cr.read_incidents(path, filters=Filters.make(event_types=["explosions/remote violence"]))
    assert len(t.incidents) == 2


def test_bad_filter_date() -> None:
    with pytest.raises(cr.InputError, match="date_from"):
        Filters.make(date_from="last week")


def test_column_overrides(tmp_path: Path) -> None:
    path = tmp_path / "mine.csv"
    path.write_text("lat,lon,day,what\n18.04,0.601,2023-11-04,IED\n", encoding="utf-8")
    t = cr.read_incidents(
        path, columns={"latitude": "lat", "longitude": "lon", "date": "day", "type": "what"}
    )
    assert len(t.incidents) == 1
    assert t.incidents["type"].iloc[0] == "IED"
    with pytest.raises(cr.InputError, match="no column"):
        cr.read_incidents(path, columns={"latitude": "y"})


def test_reading_in_chunks_numbers_rows_across_chunks(tmp_path: Path) -> None:
    rows = [acled_row(event_id_cnty=f"MLI{i}") for i in range(25)]
    rows[13]["latitude"] = "north"
    path = write_csv(tmp_path / "acled.csv", ACLED_HEADER, rows)
    t = cr.read_incidents(path, chunk_rows=4)
    accounted(t)
    assert t.rejects["row"].tolist() == [14]
    assert t.incidents["event_id"].tolist() == [f"MLI{i}" for i in range(25) if i != 13]


def test_header_only_file(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "acled.csv", ACLED_HEADER, [])
    t = cr.read_incidents(path)
    assert t.n_input == 0 and len(t.incidents) == 0


def test_detect_dataset() -> None:
    assert detect_dataset(ACLED_HEADER) == "acled"
    assert detect_dataset([c.upper() for c in GED_HEADER]) == "ged"
    assert detect_dataset(["latitude", "longitude", "date"]) == "plain"


def test_dates_in_the_formats_the_exports_use() -> None:
    got = parse_dates(
        pd.Series(
            [
                "2023-11-04",
                "04 November 2023",
                "4 Nov 2023",
                "04-Nov-2023",
                "2023-11-04 00:00:00.000",
                "2023",
                "2023-11",
                "",
            ]
        )
    )
    assert got.iloc[:5].tolist() == [pd.Timestamp("2023-11-04")] * 5
    assert got.iloc[5:].isna().all()


def plain(tmp_path: Path, body: str) -> cr.IncidentTable:
    path = tmp_path / "inc.csv"
    path.write_text("latitude,longitude,date,type,source,killed,precision_m\n" + body, "utf-8")
    return cr.read_incidents(path)


def test_duplicate_reports_merge_keeping_every_source(tmp_path: Path) -> None:
    # Anéfis: 0.01° of latitude is about 1.1 km
    t = plain(
        tmp_path,
        "18.040,0.601,2023-11-04,IED,UN spokesman,0,10000\n"  # 1
        "18.045,0.601,2023-11-04,IED,press agency,2,500\n"  # 2 same event, more precise
        "18.040,0.601,2023-11-05,IED,local radio,1,20000\n"  # 3 next day, same place
        "18.040,0.601,2023-11-04,IED,UN spokesman,0,10000\n"  # 4 same source: a second IED
        "18.040,0.601,2023-11-04,ambush,press agency,0,\n"  # 5 another type
        "18.300,0.601,2023-11-04,IED,press agency,0,\n"  # 6 29 km away
        "18.040,0.601,2023-11-09,IED,other paper,0,\n",  # 7 five days later
    )
    m = merge_duplicates(t, distance_m=2_000, days=1)
    accounted(m)
    kept = m.incidents.set_index("row")
    assert sorted(kept.index) == [2, 4, 5, 6, 7]
    # the most precise report is kept and carries the others' sources
    assert kept.loc[2, "source"] == "press agency; UN spokesman; local radio"
    assert kept.loc[2, "merged_rows"] == "1;3"
    assert kept.loc[2, "killed"] == 2.0
    merged = m.rejects.set_index("row")
    assert merged.loc[[1, 3], "kind"].tolist() == ["merged", "merged"]
    assert merged.loc[[1, 3], "merged_into"].tolist() == [2, 2]


def test_acled_rows_are_never_merged(tmp_path: Path) -> None:
    rows = [acled_row(source="A"), acled_row(event_id_cnty="MLI2", source="B")]
    t = cr.read_incidents(write_csv(tmp_path / "a.csv", ACLED_HEADER, rows))
    assert len(merge_duplicates(t).incidents) == 2


VALUES = [
    ["18.04", "", "x", "95", "-91", "18.05"],
    ["0.6", "0.61", "", "200", "nan"],
    ["2023-11-04", "4 November 2023", "", "2023-02-30", "2023-11-05"],
    ["0", "", "-1", "two", "3"],
    ["0", "", "1"],
    ["", "100", "50000", "-5", "far"],
    ["IED", "ied", "ambush", ""],
    ["A", "B", ""],
]


@settings(max_examples=40, deadline=None)
@given(rows=st.lists(st.tuples(*[st.sampled_from(v) for v in VALUES]), max_size=12))
def test_every_row_is_accounted_for(tmp_path_factory: pytest.TempPathFactory, rows) -> None:
    path = tmp_path_factory.mktemp("h") / "inc.csv"
    path.write_text(
        "latitude,longitude,date,killed,injured,precision_m,type,source\n"
        + "".join(",".join(r) + "\n" for r in rows),
        encoding="utf-8",
    )
    t = cr.read_incidents(path, filters=Filters.make(event_types=["IED"], max_precision_m=30_000))
    accounted(t)
    accounted(merge_duplicates(t))
