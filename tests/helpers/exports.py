"""Synthetic rows with the real ACLED and UCDP GED export columns (their terms forbid
redistributing real rows), and a CSV writer for hostile variants."""

from __future__ import annotations

import csv
import io
from pathlib import Path

ACLED_HEADER = [
    "event_id_cnty",
    "event_date",
    "year",
    "time_precision",
    "disorder_type",
    "event_type",
    "sub_event_type",
    "actor1",
    "assoc_actor_1",
    "inter1",
    "actor2",
    "assoc_actor_2",
    "inter2",
    "interaction",
    "civilian_targeting",
    "iso",
    "region",
    "country",
    "admin1",
    "admin2",
    "admin3",
    "location",
    "latitude",
    "longitude",
    "geo_precision",
    "source",
    "source_scale",
    "notes",
    "fatalities",
    "tags",
    "timestamp",
]
GED_HEADER = [
    "id",
    "relid",
    "year",
    "active_year",
    "code_status",
    "type_of_violence",
    "conflict_dset_id",
    "conflict_new_id",
    "conflict_name",
    "dyad_dset_id",
    "dyad_new_id",
    "dyad_name",
    "side_a_dset_id",
    "side_a_new_id",
    "side_a",
    "side_b_dset_id",
    "side_b_new_id",
    "side_b",
    "number_of_sources",
    "source_article",
    "source_office",
    "source_date",
    "source_headline",
    "source_original",
    "where_prec",
    "where_coordinates",
    "where_description",
    "adm_1",
    "adm_2",
    "latitude",
    "longitude",
    "geom_wkt",
    "priogrid_gid",
    "country",
    "country_id",
    "region",
    "event_clarity",
    "date_prec",
    "date_start",
    "date_end",
    "deaths_a",
    "deaths_b",
    "deaths_civilians",
    "deaths_unknown",
    "best",
    "high",
    "low",
    "gwnoa",
    "gwnob",
]
IED = "Remote explosive/landmine/IED"


def acled_row(**values: str) -> dict[str, str]:
    row = dict.fromkeys(ACLED_HEADER, "")
    row.update(
        event_id_cnty="MLI1",
        event_date="2023-11-04",
        event_type="Explosions/Remote violence",
        sub_event_type=IED,
        country="Mali",
        admin1="Kidal",
        location="Anefis",
        latitude="18.04",
        longitude="0.601",
        geo_precision="1",
        source="Synthetic",
        notes="synthetic row",
        fatalities="0",
        time_precision="1",
    )
    row.update(values)
    return row


def ged_row(**values: str) -> dict[str, str]:
    row = dict.fromkeys(GED_HEADER, "")
    row.update(
        id="1",
        type_of_violence="3",
        where_prec="1",
        where_coordinates="Anefis town",
        latitude="18.04",
        longitude="0.601",
        date_start="2023-11-04 00:00:00.000",
        date_end="2023-11-04 00:00:00.000",
        date_prec="1",
        best="2",
        low="1",
        high="4",
        source_original="Synthetic wire",
        country_id="432",
    )
    row.update(values)
    return row


def write_csv(
    path: Path, header: list[str], rows: list[dict[str, str]], *, sep: str = ",", bom: bool = False
) -> Path:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=header, delimiter=sep, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    path.write_bytes((("\ufeff" if bom else "") + buf.getvalue()).encode())
    return path
