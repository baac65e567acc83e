"""Reading incident tables, checking every row, and keeping count of each.

A plain CSV needs ``latitude``, ``longitude`` and ``date`` (ISO ``YYYY-MM-DD``,
or ``DD Month YYYY`` as ACLED writes it) and may have ``type``, ``killed``,
``injured``, ``precision_m``, ``geo_precision``, ``source``, ``notes``,
``location`` and ``event_id``. GeoJSON and GeoPackage point layers carry the
same properties. Every input row ends up either in the incidents or in the
rejects, with its 1-based ``row`` number and a reason.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio

from . import settings
from ._errors import InputError, MissingInputError

PRECISION_RADIUS_M: dict[int, float] = {1: 2_000.0, 2: 15_000.0, 3: 50_000.0}
"""Default uncertainty radius for ACLED-style ``geo_precision`` codes when a row
gives no ``precision_m``: 1 = the named place itself (a town's extent), 2 = near
it, 3 = somewhere in a larger region."""

OPTIONAL_TEXT = ("event_id", "type", "source", "notes", "location")
OPTIONAL_COUNTS = ("killed", "injured")


@dataclass
class IncidentTable:
    """Incidents that passed the checks, and the rows that did not.

    Attributes
    ----------
    incidents
        Points in EPSG:4326 with ``row``, ``date``, ``killed``, ``injured``,
        ``precision_m`` and the optional text columns.
    rejects
        ``row`` and ``reason`` for every row that was not used.
    n_input
        Number of data rows read; ``len(incidents) + len(rejects) == n_input``.
    """

    incidents: gpd.GeoDataFrame
    rejects: pd.DataFrame
    n_input: int


def read_incidents(path: str | Path | None = None) -> IncidentTable:
    """Read incidents from a CSV, GeoJSON or GeoPackage file.

    Parameters
    ----------
    path
        The file; the embedded November 2023 incidents if None.

    Raises
    ------
    MissingInputError
        If the file does not exist.
    InputError
        If it cannot be parsed or lacks the required columns.
    """
    path = Path(path) if path is not None else settings.default_incidents()
    if not path.exists():
        msg = f"Incident file {path} does not exist: pass an existing file with `--incidents`."
        raise MissingInputError(msg)
    if path.suffix.lower() in {".csv", ".txt", ".tsv"}:
        frame = _read_csv(path)
    else:
        frame = _read_points(path)
    return validate_incidents(frame, source=str(path))


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            sample = f.read(64_000)
        delimiter = csv.Sniffer().sniff(sample, delimiters=",;\t").delimiter if sample else ","
    except csv.Error:
        delimiter = ","
    except UnicodeDecodeError as exc:
        msg = f"Incident file {path} is not UTF-8 text: save it as UTF-8 CSV."
        raise InputError(msg) from exc
    try:
        return pd.read_csv(
            path, sep=delimiter, dtype=str, keep_default_na=False, encoding="utf-8-sig"
        )
    except pd.errors.EmptyDataError as exc:
        msg = f"Incident file {path} is empty: it needs a header with latitude, longitude, date."
        raise InputError(msg) from exc
    except pd.errors.ParserError as exc:
        detail = str(exc).strip().splitlines()[-1]
        msg = f"Incident file {path} is not a well-formed CSV ({detail}): check quoting."
        raise InputError(msg) from exc


def _read_points(path: Path) -> pd.DataFrame:
    try:
        gdf = gpd.read_file(path, engine="pyogrio")
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError, ValueError) as exc:
        msg = f"Cannot read incident file {path}: pass a CSV, GeoJSON or GeoPackage of points."
        raise InputError(msg) from exc
    if gdf.crs is None:
        msg = f"Incident layer {path} has no CRS: set one (e.g. EPSG:4326) and try again."
        raise InputError(msg)
    gdf = gdf.to_crs(settings.default_crs)
    frame = pd.DataFrame(gdf.drop(columns="geometry")).astype(object)
    is_point = (gdf.geom_type == "Point").to_numpy()
    frame["longitude"] = np.where(is_point, gdf.geometry.x.where(is_point), np.nan)
    frame["latitude"] = np.where(is_point, gdf.geometry.y.where(is_point), np.nan)
    return frame.astype(str).replace({"nan": "", "None": "", "NaT": ""})


def parse_dates(values: pd.Series) -> pd.Series:
    """Parse ISO 8601 (``YYYY-MM-DD``, with a time or not) or ``DD Month YYYY`` dates.

    NaT where neither fits.

    Examples
    --------
    >>> parse_dates(pd.Series(["2023-11-04", "04 November 2023", "soon"])).dt.day.tolist()
    [4.0, 4.0, nan]
    """
    text = values.astype(str).str.strip()
    iso = pd.to_datetime(text, format="ISO8601", errors="coerce")
    long = pd.to_datetime(text, format="%d %B %Y", errors="coerce")
    return iso.fillna(long)


def validate_incidents(frame: pd.DataFrame, *, source: str = "`incidents`") -> IncidentTable:
    """Check each row of a table of incidents; split it into incidents and rejects.

    Raises
    ------
    InputError
        If a required column (latitude, longitude, date) is missing.
    """
    frame = frame.rename(columns=lambda c: str(c).strip().lower())
    missing = [c for c in ("latitude", "longitude", "date") if c not in frame.columns]
    if missing:
        msg = (
            f"Incident file {source} lacks column(s) {', '.join(missing)}: a plain table needs "
            "latitude, longitude and date (YYYY-MM-DD)."
        )
        raise InputError(msg)
    n = len(frame)
    reason = pd.Series("", index=frame.index, dtype=object)

    def flag(mask: pd.Series, text: str) -> None:
        reason.loc[mask & (reason == "")] = text

    lat = pd.to_numeric(frame["latitude"], errors="coerce")
    lon = pd.to_numeric(frame["longitude"], errors="coerce")
    flag(lat.isna() | lon.isna(), "latitude or longitude missing or not a number")
    flag(
        (lat.abs() > 90) & (lon.abs() <= 90),
        "latitude out of range (latitude and longitude swapped?)",
    )
    flag((lat.abs() > 90) | (lon.abs() > 180), "coordinates out of range")
    date = parse_dates(frame["date"])
    flag(date.isna(), "date missing or not YYYY-MM-DD / DD Month YYYY")

    counts = {}
    for col in OPTIONAL_COUNTS:
        raw = (
            frame[col].astype(str).str.strip()
            if col in frame.columns
            else pd.Series("", index=frame.index)
        )
        value = pd.to_numeric(raw.replace("", "0"), errors="coerce")
        flag(value.isna(), f"{col} is not a number")
        flag(value < 0, f"{col} is negative")
        counts[col] = value.fillna(0).clip(lower=0)

    precision = _precision_radius(frame)
    flag(precision.isna(), "precision_m is not a number")
    flag(precision < 0, "precision_m is negative")

    ok = reason == ""
    rows = pd.Series(np.arange(1, n + 1), index=frame.index)
    out = pd.DataFrame({"row": rows[ok], "date": date[ok]})
    for col in OPTIONAL_TEXT:
        out[col] = frame.loc[ok, col].astype(str) if col in frame.columns else ""
    for col in OPTIONAL_COUNTS:
        out[col] = counts[col][ok].astype(float)
    out["precision_m"] = precision[ok].astype(float)
    if "geo_precision" in frame.columns:
        out["geo_precision"] = pd.to_numeric(frame.loc[ok, "geo_precision"], errors="coerce")
    incidents = gpd.GeoDataFrame(
        out.reset_index(drop=True),
        geometry=gpd.points_from_xy(lon[ok], lat[ok]),
        crs=settings.default_crs,
    )
    rejects = pd.DataFrame({"row": rows[~ok], "reason": reason[~ok]}).reset_index(drop=True)
    return IncidentTable(incidents=incidents, rejects=rejects, n_input=n)


def _precision_radius(frame: pd.DataFrame) -> pd.Series:
    """``precision_m`` where given, else the radius for ``geo_precision``, else 0."""
    radius = pd.Series(0.0, index=frame.index)
    if "geo_precision" in frame.columns:
        code = pd.to_numeric(frame["geo_precision"], errors="coerce")
        radius = code.map(PRECISION_RADIUS_M).fillna(0.0).astype(float)
    if "precision_m" in frame.columns:
        raw = frame["precision_m"].astype(str).str.strip()
        given = pd.to_numeric(raw, errors="coerce")
        radius = given.where(raw != "", radius)
    return radius
