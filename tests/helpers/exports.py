"""Synthetic rows with the real ACLED and UCDP GED export columns (their terms forbid
redistributing real rows), and a CSV writer for hostile variants."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from convoyrisk.incidents import ACLED_COLUMNS, GED_COLUMNS

ACLED_HEADER = list(ACLED_COLUMNS)
GED_HEADER = list(GED_COLUMNS)
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
