"""KoBoToolbox and ODK Central form exports: geopoints to latitude, longitude and accuracy.

An organisation's own incident log is often a form exported to Excel or CSV whose
position is a geopoint, ``"lat lon altitude accuracy"``, or the columns the form
servers split it into. :func:`field_report_columns` gives such a table the
``latitude``, ``longitude`` and ``precision_m`` columns that
:func:`convoyrisk.incidents.validate_incidents` checks.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

GEOPOINT_NAMES = ("geopoint", "gps", "location", "coordinates")
"""Columns looked at for a ``"lat lon altitude accuracy"`` geopoint when a table has no
latitude/longitude (``location`` only when its values are geopoints)."""


def parse_geopoints(values: pd.Series) -> pd.DataFrame:
    """Split ODK/KoBo geopoints ``"lat lon altitude accuracy"`` into numbers.

    Altitude and accuracy may be missing; ``"[lat, lon]"`` (KoBo's
    ``_geolocation``) and ``"lat,lon"`` are read too. Rows that do not fit
    get NaN everywhere and ``bad`` True (an empty value is missing, not bad).

    Examples
    --------
    >>> parse_geopoints(pd.Series(["18.04 0.601 312 4.5", "[18.1, 0.7]", "x", ""])).to_dict("list")
    ... # doctest: +NORMALIZE_WHITESPACE
    {'latitude': [18.04, 18.1, nan, nan], 'longitude': [0.601, 0.7, nan, nan],
     'altitude': [312.0, nan, nan, nan], 'accuracy': [4.5, nan, nan, nan],
     'bad': [False, False, True, False]}
    """
    text = values.astype(str).str.strip()
    # "[lat, lon]" and "lat,lon" become "lat lon"; then at most four numbers split by blanks
    plain = text.str.replace(r"^\[|\]$", "", regex=True).str.replace(r"\s*[,;]\s*", " ", regex=True)
    parts = plain.str.split(n=4, expand=True).reindex(columns=range(5))
    names = ("latitude", "longitude", "altitude", "accuracy")
    out = pd.DataFrame(
        {name: pd.to_numeric(parts[i], errors="coerce") for i, name in enumerate(names)}
    )
    given = parts[[0, 1, 2, 3]].notna() & (parts[[0, 1, 2, 3]] != "")
    unread = (given.to_numpy() & out[list(names)].isna().to_numpy()).any(axis=1)
    out["bad"] = (text != "") & (
        out["latitude"].isna() | out["longitude"].isna() | unread | parts[4].notna()
    )
    out.loc[out["bad"], list(names)] = np.nan
    return out


def _as_text(values: pd.Series) -> pd.Series:
    """Numbers as text, "" where missing (as the CSV reader gives them)."""
    return values.astype(str).astype(object).where(values.notna(), "")


def field_report_columns(frame: pd.DataFrame) -> pd.DataFrame:  # noqa: C901 - format by format
    """Give a KoBo or ODK form export ``latitude``, ``longitude`` and ``precision_m`` columns.

    Does nothing to a table that has ``latitude`` and ``longitude``. Otherwise,
    in this order, the first that the table has: a ``geopoint`` column (the
    name our ``columns`` mapping gives); KoBo's ``_<q>_latitude`` /
    ``_<q>_longitude`` / ``_<q>_precision``; ODK Central's ``<q>-latitude`` /
    ``<q>-longitude`` / ``<q>-accuracy``; ``_geolocation``; a column named
    ``gps``, ``location`` or ``coordinates`` whose first value is a geopoint.
    The accuracy (metres) becomes ``precision_m`` unless the table has one. A
    geopoint that cannot be read sets ``_geopoint_bad`` (the row is rejected).

    Parameters
    ----------
    frame
        The table with lower-case column names.
    """
    cols = list(frame.columns)
    if "latitude" in cols and "longitude" in cols:
        return frame
    frame = frame.copy(deep=False)  # copy-on-write: only new columns are made
    accuracy: pd.Series | None = None

    def from_points(name: str) -> pd.Series:
        points = parse_geopoints(frame[name])
        frame["latitude"] = _as_text(points["latitude"])
        frame["longitude"] = _as_text(points["longitude"])
        frame["_geopoint_bad"] = points["bad"]
        return points["accuracy"]

    # KoBo: _gps_latitude, _gps_longitude; ODK Central: gps-latitude, gps-longitude
    pair = next(
        (
            (c, c[: -len("latitude")])
            for c in cols
            if c.endswith(("_latitude", "-latitude"))
            and c[: -len("latitude")] + "longitude" in cols
        ),
        None,
    )
    if "geopoint" in cols:
        accuracy = from_points("geopoint")
    elif pair is not None:
        lat_name, stem = pair
        frame["latitude"] = frame[lat_name]
        frame["longitude"] = frame[stem + "longitude"]
        for acc in (stem + "precision", stem + "accuracy"):
            if acc in cols:
                accuracy = pd.to_numeric(frame[acc].astype(str).str.strip(), errors="coerce")
                break
    elif "_geolocation" in cols:
        from_points("_geolocation")
    else:
        for name in GEOPOINT_NAMES[1:]:
            if name in cols:
                first = frame[name].astype(str).str.strip()
                first = first[first != ""]
                if len(first) and not parse_geopoints(first.iloc[:1])["bad"].iloc[0]:
                    accuracy = from_points(name)
                    if name == "location":
                        frame = frame.drop(columns="location")
                    break
    if accuracy is not None and "precision_m" not in cols:
        frame["precision_m"] = _as_text(accuracy)
    return frame
