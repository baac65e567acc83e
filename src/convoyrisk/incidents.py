"""Reading incident tables (ACLED, UCDP GED, plain), checking every row, keeping count of each.

Three kinds of table are recognised from their header:

ACLED export CSV
    ``event_id_cnty``, ``event_date``, ``sub_event_type``, ``geo_precision``,
    ``fatalities``...: ``type`` is the ``sub_event_type`` (e.g. "Remote
    explosive/landmine/IED"), ``event_type`` is kept, ``killed`` is
    ``fatalities`` (ACLED has no injury counts: ``injured`` is 0), the
    uncertainty radius comes from ``geo_precision`` (:data:`PRECISION_RADIUS_M`),
    and ``geo_precision`` 3 (a larger region, placed at its capital) sets
    ``at_capital``.
UCDP GED CSV
    ``id``, ``where_prec``, ``date_start``, ``best``, ``type_of_violence``...:
    ``type`` is the type of violence ("state-based", "non-state",
    "one-sided"), ``killed`` is ``best`` with ``killed_low``/``killed_high``
    from ``low``/``high``, the radius comes from ``where_prec``
    (:data:`GED_PRECISION_RADIUS_M`); ``where_prec`` 5 to 7 (a linear feature
    or larger area, the country, international waters) are too coarse and
    excluded.
plain table
    ``latitude``, ``longitude`` and ``date`` (ISO ``YYYY-MM-DD``, or ``DD Month
    YYYY`` as ACLED writes it) and optionally ``type``, ``killed``,
    ``injured``, ``precision_m``, ``geo_precision`` (ACLED's codes),
    ``source``, ``notes``, ``location`` and ``event_id``; other names through
    `columns`. GeoJSON and GeoPackage point layers carry the same properties.

field report (KoBoToolbox, ODK Central)
    A plain table from a form export (``.csv`` or ``.xlsx``) whose position is a
    geopoint: the columns KoBo writes (``_<question>_latitude``,
    ``_<question>_longitude``, ``_<question>_precision``), the ones ODK Central
    writes (``<question>-Latitude``, ``-Longitude``, ``-Accuracy``), a
    ``_geolocation`` column (``[lat, lon]``), or the geopoint itself, ``"lat lon
    altitude accuracy"`` (a column named ``geopoint``, ``gps`` or ``location``,
    or any column mapped with ``columns={"geopoint": ...}``). The GPS accuracy
    (metres) becomes ``precision_m``. See
    :func:`convoyrisk.fieldreports.field_report_columns`.

Every input row ends up either in the incidents or in the rejects with its
1-based ``row`` number, a ``kind`` ("rejected": unusable; "excluded": left out
by a filter or as too coarse; "merged": a duplicate report, see
:func:`merge_duplicates`) and a ``reason``. CSV files are read in chunks.
"""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
from pyproj import Transformer
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from . import settings
from ._errors import InputError, MissingInputError
from .fieldreports import field_report_columns
from .utils import Progress

if TYPE_CHECKING:
    from .sources import MergeRules

PRECISION_RADIUS_M: dict[int, float] = {1: 2_000.0, 2: 15_000.0, 3: 50_000.0}
"""Default uncertainty radius for ACLED ``geo_precision`` codes when a row gives
no ``precision_m``: 1 = the named place itself (a town's extent), 2 = near it or
part of a region, 3 = somewhere in a larger region (placed at its capital)."""

GED_PRECISION_RADIUS_M: dict[int, float] = {1: 1_000.0, 2: 25_000.0, 3: 50_000.0, 4: 100_000.0}
"""Default uncertainty radius for UCDP GED ``where_prec`` codes: 1 = exact
location, 2 = within about 25 km, 3 = a second-order administrative division
(district), 4 = a first-order division (province, region)."""

GED_TOO_COARSE: dict[int, str] = {
    5: "a linear feature or larger area",
    6: "the country only",
    7: "international waters or airspace",
}
"""GED ``where_prec`` codes excluded by default: no road can be picked from them."""

GED_VIOLENCE: dict[str, str] = {"1": "state-based", "2": "non-state", "3": "one-sided"}
"""GED ``type_of_violence`` codes, as ``type``."""

ACLED_COLUMNS = (
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
)
"""Columns of an ACLED export CSV, in its order (ACLED's codebook; SCENARIO.md)."""

GED_COLUMNS = (
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
)
"""Columns of a UCDP GED CSV, in its order (UCDP GED codebook; SCENARIO.md)."""

ACLED_MARKERS = frozenset({"event_id_cnty", "event_date", "geo_precision", "sub_event_type"})
GED_MARKERS = frozenset({"where_prec", "date_start", "best", "type_of_violence"})

OPTIONAL_TEXT = ("event_id", "type", "event_type", "source", "notes", "location", "admin1")
OPTIONAL_COUNTS = ("killed", "injured")
KNOWN_COLUMNS = (
    "latitude",
    "longitude",
    "date",
    *OPTIONAL_TEXT,
    *OPTIONAL_COUNTS,
    "killed_low",
    "killed_high",
    "precision_m",
    "geo_precision",
    "where_prec",
    "date_precision",
    "geopoint",
)
"""Our column names: the keys that `columns` (``--column OURS=THEIRS``) may map
(``geopoint``: a KoBo/ODK "lat lon altitude accuracy" column)."""

CHUNK_ROWS = 100_000
"""Rows read at a time from a CSV file."""

EXCEL_SUFFIXES = frozenset({".xlsx", ".xlsm"})
"""Spreadsheets read with openpyxl (the first sheet: KoBo and ODK put the main table there)."""

TYPE_GROUPS: dict[str, str] = {
    "remote explosive/landmine/ied": "explosive device",
    "ied": "explosive device",
    "landmine": "explosive device",
    "mine": "explosive device",
    "explosive device": "explosive device",
    "remote explosive": "explosive device",
    "armed clash": "armed clash",
    "clash": "armed clash",
    "ambush": "armed clash",
    "attack": "attack",
    "shelling/artillery/missile attack": "shelling",
    "shelling": "shelling",
    "artillery": "shelling",
    "mortar": "shelling",
    "air/drone strike": "air or drone strike",
    "airstrike": "air or drone strike",
    "drone strike": "air or drone strike",
    "suicide bomb": "suicide bomb",
    "abduction/forced disappearance": "abduction",
    "abduction": "abduction",
    "kidnapping": "abduction",
}
"""Event types (case aside) that name the same kind of event, for :func:`merge_duplicates`:
ACLED's sub-event types and the words field logs use. A type not listed is its own kind."""

ANY_TYPE = frozenset({"", "state-based", "non-state", "one-sided"})
"""Types compatible with any other in :func:`merge_duplicates`: no type, and UCDP GED's
types of violence (GED codes who fought, not how, so any event type may be one of them)."""

_ACLED_RENAME = {
    "event_id_cnty": "event_id",
    "event_date": "date",
    "sub_event_type": "type",
    "fatalities": "killed",
    "time_precision": "date_precision",
}
_GED_RENAME = {
    "id": "event_id",
    "date_start": "date",
    "best": "killed",
    "low": "killed_low",
    "high": "killed_high",
    "where_prec": "where_prec",
    "where_coordinates": "location",
    "where_description": "notes",
    "adm_1": "admin1",
    "date_prec": "date_precision",
}


@dataclass
class IncidentTable:
    """Incidents that passed the checks, and the rows that did not.

    Attributes
    ----------
    incidents
        Points in EPSG:4326 with ``row``, ``date``, ``killed``, ``injured``,
        ``precision_m``, ``at_capital``, ``dataset`` and the optional text
        columns.
    rejects
        ``row``, ``kind`` ("rejected", "excluded" or "merged"), ``reason`` and
        ``merged_into`` (the row a merged duplicate went into) for every row
        that was not used.
    n_input
        Number of data rows read; ``len(incidents) + len(rejects) == n_input``.
    dataset
        "acled", "ged" or "plain": the kind of table, from its header ("mixed"
        for several inputs of different kinds).
    merges
        One row per report merged into another (see :func:`merge_duplicates`),
        or None if no merging was done.
    inputs
        Rows read per input (its label to the count), for tables read from
        several inputs (:func:`convoyrisk.sources.read_sources`); empty otherwise.
    """

    incidents: gpd.GeoDataFrame
    rejects: pd.DataFrame
    n_input: int
    dataset: str = "plain"
    merges: pd.DataFrame | None = None
    inputs: dict[str, int] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        """Rows per outcome: "incidents" and each rejects ``kind`` (they add up to n_input)."""
        kinds = self.rejects["kind"].value_counts() if len(self.rejects) else pd.Series()
        out = {"incidents": len(self.incidents)}
        for kind in ("rejected", "excluded", "merged"):
            out[kind] = int(kinds.get(kind, 0))
        return out


@dataclass(frozen=True)
class Filters:
    """What to leave out of an incident table (rows left out are "excluded", with a reason).

    Attributes
    ----------
    event_types
        Keep only rows whose ``type`` or ``event_type`` is one of these (case
        does not matter), e.g. ACLED's "Remote explosive/landmine/IED".
    date_from, date_to
        Keep only rows dated within these days (inclusive).
    max_precision_m
        Leave out rows whose uncertainty radius is larger than this.
    """

    event_types: tuple[str, ...] = ()
    date_from: pd.Timestamp | None = None
    date_to: pd.Timestamp | None = None
    max_precision_m: float | None = None

    @classmethod
    def make(
        cls,
        *,
        event_types: Iterable[str] | None = None,
        date_from: str | pd.Timestamp | None = None,
        date_to: str | pd.Timestamp | None = None,
        max_precision_m: float | None = None,
    ) -> Filters:
        """Build filters from user values, checking the dates."""

        def day(value: str | pd.Timestamp | None, name: str) -> pd.Timestamp | None:
            if value is None or value == "":
                return None
            parsed = parse_dates(pd.Series([str(value)])).iloc[0]
            if pd.isna(parsed):
                msg = f"`{name}` {value!r} is not a date: give it as YYYY-MM-DD."
                raise InputError(msg)
            return pd.Timestamp(parsed)

        return cls(
            event_types=tuple(t.strip() for t in (event_types or ()) if t.strip()),
            date_from=day(date_from, "date_from"),
            date_to=day(date_to, "date_to"),
            max_precision_m=max_precision_m,
        )


IncidentSource = str | Path | pd.DataFrame | IncidentTable
"""One input of incidents: a file, a table as read (raw columns), or a checked table."""


def read_incidents(  # noqa: C901 - one branch per kind of input
    path: IncidentSource | Sequence[IncidentSource] | None = None,
    *,
    columns: Mapping[str, str] | None = None,
    filters: Filters | None = None,
    chunk_rows: int = CHUNK_ROWS,
    require_dates: bool = True,
    progress: Progress | None = None,
    rules: MergeRules | None = None,
) -> IncidentTable:
    """Read incidents from an ACLED or UCDP GED export, a plain CSV, spreadsheet or GIS layer.

    Parameters
    ----------
    path
        The file (CSV, ``.xlsx``, GeoJSON, GeoPackage); the embedded November
        2023 incidents if None. A list of files or tables reads them all as
        one run and merges the reports of one event across them: see
        :func:`convoyrisk.sources.read_sources`, which this then calls.
    columns
        Our column name to the file's, for names that differ, e.g.
        ``{"latitude": "lat", "longitude": "lon", "date": "day"}``.
    filters
        Rows to leave out (counted as "excluded").
    chunk_rows
        CSV rows read at a time (memory stays bounded for large exports).
    require_dates
        Refuse a file without a date column (see :func:`validate_incidents`).
    progress
        Called as ``progress("reading incidents", bytes_read, file_bytes)`` after
        each CSV chunk.
    rules
        How reports of one event are merged, for a list of inputs (the
        defaults of :class:`convoyrisk.sources.MergeRules` if None).

    Raises
    ------
    MissingInputError
        If the file does not exist.
    InputError
        If it cannot be parsed or lacks the required columns.
    """
    if isinstance(path, Sequence) and not isinstance(path, str):
        from .sources import read_sources  # noqa: PLC0415 - sources builds on this module

        return read_sources(
            path,
            columns=columns,
            filters=filters,
            rules=rules,
            chunk_rows=chunk_rows,
            progress=progress,
        )
    if isinstance(path, IncidentTable):
        return path
    if isinstance(path, pd.DataFrame):
        return validate_incidents(path, columns=columns, filters=filters)
    path = Path(path) if path is not None else settings.default_incidents()
    if not path.exists():
        msg = f"Incident file {path} does not exist: pass an existing file with `--incidents`."
        raise MissingInputError(msg)
    if path.is_dir():
        msg = (
            f"Incident path {path} is a directory: pass a file (CSV, GeoJSON or GeoPackage) "
            "with `--incidents`, once per file."
        )
        raise InputError(msg)
    if path.suffix.lower() in {".xls", ".ods"}:
        msg = (
            f"Incident file {path} is an old or OpenDocument spreadsheet, which is not "
            "supported: save the sheet as .xlsx or CSV (UTF-8) and pass that."
        )
        raise InputError(msg)
    if path.suffix.lower() in {".csv", ".txt", ".tsv"}:
        chunks = _read_csv_chunks(path, chunk_rows, progress)
    elif path.suffix.lower() in EXCEL_SUFFIXES:
        chunks = iter([_read_excel(path)])
    else:
        chunks = iter([_read_points(path)])
    parts: list[IncidentTable] = []
    offset = 0
    for chunk in chunks:
        part = validate_incidents(
            chunk,
            source=str(path),
            columns=columns,
            filters=filters,
            first_row=offset + 1,
            require_dates=require_dates,
        )
        offset += part.n_input
        parts.append(part)
    if not parts:
        msg = f"Incident file {path} is empty: it needs a header with latitude, longitude, date."
        raise InputError(msg)
    return concat_tables(parts)


def concat_tables(parts: Sequence[IncidentTable]) -> IncidentTable:
    """One table from several (incidents and rejects one after the other; counts added).

    ``row`` numbers are kept as they are; the dataset is the first part's.
    """
    if len(parts) == 1:
        return parts[0]
    incidents = pd.concat([p.incidents for p in parts], ignore_index=True)
    rejects = pd.concat([p.rejects for p in parts], ignore_index=True)
    return IncidentTable(
        incidents=gpd.GeoDataFrame(incidents, geometry="geometry", crs=settings.default_crs),
        rejects=rejects,
        n_input=sum(p.n_input for p in parts),
        dataset=parts[0].dataset,
    )


def _delimiter(header: str) -> str:
    """The separator that splits the header line into the most fields."""
    counts = {}
    for sep in (",", ";", "\t", "|"):
        counts[sep] = len(next(csv.reader(io.StringIO(header), delimiter=sep), []))
    return max(counts, key=lambda s: (counts[s], s == ","))


def _read_csv_chunks(
    path: Path, chunk_rows: int, progress: Progress | None = None
) -> Iterator[pd.DataFrame]:
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            header = f.readline()
    except UnicodeDecodeError as exc:
        msg = f"Incident file {path} is not UTF-8 text: save it as UTF-8 CSV."
        raise InputError(msg) from exc
    if not header.strip():
        msg = f"Incident file {path} is empty: it needs a header with latitude, longitude, date."
        raise InputError(msg)
    sep = _delimiter(header)
    size = path.stat().st_size
    try:
        with (
            path.open("rb") as raw,
            pd.read_csv(
                raw,
                sep=sep,
                dtype=str,
                keep_default_na=False,
                encoding="utf-8-sig",
                chunksize=chunk_rows,
            ) as reader,
        ):
            empty = True
            for chunk in reader:
                empty = False
                if progress is not None:
                    # the parser reads ahead in blocks: the position is a close estimate
                    progress("reading incidents", min(raw.tell(), size), size)
                yield chunk
            if progress is not None:
                progress("reading incidents", size, size)
            if empty:
                names = next(csv.reader(io.StringIO(header), delimiter=sep))
                yield pd.DataFrame(columns=[c.strip() for c in names])
    except UnicodeDecodeError as exc:
        msg = f"Incident file {path} is not UTF-8 text: save it as UTF-8 CSV."
        raise InputError(msg) from exc
    except pd.errors.EmptyDataError as exc:
        msg = f"Incident file {path} is empty: it needs a header with latitude, longitude, date."
        raise InputError(msg) from exc
    except pd.errors.ParserError as exc:
        detail = str(exc).strip().splitlines()[-1]
        msg = f"Incident file {path} is not a well-formed CSV ({detail}): check quoting."
        raise InputError(msg) from exc


def _read_excel(path: Path, *, rows: int | None = None) -> pd.DataFrame:
    """The first sheet of a spreadsheet, every cell as text ("" when empty)."""
    try:
        frame = pd.read_excel(
            path, sheet_name=0, dtype=str, keep_default_na=False, nrows=rows, engine="openpyxl"
        )
    except ImportError as exc:  # pragma: no cover - openpyxl is a dependency
        msg = f"Reading {path} needs openpyxl: `pip install openpyxl`."
        raise InputError(msg) from exc
    except Exception as exc:  # openpyxl raises many kinds (zipfile, KeyError, ValueError...)
        msg = (
            f"Cannot read incident spreadsheet {path} ({type(exc).__name__}): save it as .xlsx "
            "from Excel or LibreOffice, or export the form as CSV."
        )
        raise InputError(msg) from exc
    return frame.fillna("")


def header_names(path: str | Path) -> list[str]:
    """Column names of an incident file as the readers see them (stripped, lower case).

    Parameters
    ----------
    path
        A CSV, spreadsheet, GeoJSON or GeoPackage file.

    Raises
    ------
    MissingInputError
        If the file does not exist.
    InputError
        If it cannot be read.
    """
    path = Path(path)
    if not path.exists():
        msg = f"Incident file {path} does not exist: pass an existing file with `--incidents`."
        raise MissingInputError(msg)
    suffix = path.suffix.lower()
    if suffix in {".csv", ".txt", ".tsv"}:
        try:
            with path.open(encoding="utf-8-sig", newline="") as f:
                header = f.readline()
        except UnicodeDecodeError as exc:
            msg = f"Incident file {path} is not UTF-8 text: save it as UTF-8 CSV."
            raise InputError(msg) from exc
        names = next(csv.reader(io.StringIO(header), delimiter=_delimiter(header)), [])
    elif suffix in EXCEL_SUFFIXES:
        names = [str(c) for c in _read_excel(path, rows=0).columns]
    else:
        try:
            names = [str(c) for c in pyogrio.read_info(path)["fields"]] + ["latitude", "longitude"]
        except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as exc:
            msg = f"Cannot read incident file {path}: pass a CSV, GeoJSON or GeoPackage of points."
            raise InputError(msg) from exc
    return [n.strip().lower().lstrip("\ufeff") for n in names]


def _read_points(path: Path) -> pd.DataFrame:
    try:
        gdf = gpd.read_file(path, engine="pyogrio")
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError, ValueError) as exc:
        msg = f"Cannot read incident file {path}: pass a CSV, GeoJSON or GeoPackage of points."
        raise InputError(msg) from exc
    if len(gdf) == 0:
        msg = f"Incident layer {path} has no features: it needs one point per incident."
        raise InputError(msg)
    if gdf.crs is None:
        msg = f"Incident layer {path} has no CRS: set one (e.g. EPSG:4326) and try again."
        raise InputError(msg)
    kinds = set(gdf.geom_type.dropna())
    if kinds and not kinds & {"Point"}:
        msg = (
            f"Incident layer {path} holds {', '.join(sorted(kinds))} features, not points: "
            "incidents must be points (e.g. take each feature's centroid in a GIS)."
        )
        raise InputError(msg)
    gdf = gdf.to_crs(settings.default_crs)
    frame = pd.DataFrame(gdf.drop(columns="geometry")).astype(object)
    frame = frame.drop(
        columns=[c for c in frame.columns if str(c).lower() in {"latitude", "longitude"}]
    )
    is_point = (gdf.geom_type == "Point").to_numpy()
    lon, lat = np.full(len(gdf), np.nan), np.full(len(gdf), np.nan)
    lon[is_point] = gdf.geometry[is_point].x.to_numpy()
    lat[is_point] = gdf.geometry[is_point].y.to_numpy()
    frame["longitude"], frame["latitude"] = lon, lat
    return frame.astype(str).replace({"nan": "", "None": "", "NaT": "", "<NA>": ""})


_ISO_DAY = r"^\d{4}-\d{2}-\d{2}([T ].*)?$"
_DAY_FORMATS = ("%d %B %Y", "%d %b %Y", "%d-%B-%Y", "%d-%b-%Y", "%B %d, %Y", "%b %d, %Y")


def parse_dates(values: pd.Series) -> pd.Series:
    """Parse ISO 8601 (``YYYY-MM-DD``, with a time or not) or ``DD Month YYYY`` dates.

    Also ``DD-Mon-YYYY`` and ``Month DD, YYYY``; NaT where none fits (a bare
    year or month is not a day: NaT). A time with a zone or offset (as KoBo
    and ODK write ``start`` and ``end``) is converted to UTC; values without
    one are taken as UTC. The result is the UTC day (the time is dropped), so
    that reports of one event compare day with day.

    Examples
    --------
    >>> parse_dates(pd.Series(["2023-11-04", "04 November 2023", "soon"])).dt.day.tolist()
    [4.0, 4.0, nan]
    >>> parse_dates(pd.Series(["2023-11-04T23:30:00-05:00"])).dt.strftime("%Y-%m-%d %H:%M")[0]
    '2023-11-05 00:00'
    """
    text = values.astype(str).str.strip()
    iso_like = text.str.match(_ISO_DAY)
    # utc=True: offsets (a form's "2023-11-04T23:30:00-05:00") become UTC, several offsets in
    # one column are fine, naive values are taken as UTC; a bad one is NaT, not an error
    out = pd.to_datetime(
        text.where(iso_like), format="ISO8601", errors="coerce", utc=True
    ).dt.tz_convert(None)
    for fmt in _DAY_FORMATS:
        todo = out.isna() & ~iso_like
        if not todo.any():
            break
        out = out.fillna(pd.to_datetime(text.where(todo), format=fmt, errors="coerce"))
    return out.astype("datetime64[ns]").dt.floor("D")


def detect_dataset(columns: Iterable[str]) -> str:
    """The kind of table ("acled", "ged" or "plain"), from its column names.

    Examples
    --------
    >>> detect_dataset(["event_id_cnty", "event_date", "geo_precision", "sub_event_type"])
    'acled'
    >>> detect_dataset(["latitude", "longitude", "date"])
    'plain'
    """
    names = {str(c).strip().lower() for c in columns}
    if names >= ACLED_MARKERS:
        return "acled"
    if names >= GED_MARKERS:
        return "ged"
    return "plain"


def _canonical(frame: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """The table with our column names (the dataset's own columns renamed)."""
    if dataset == "acled":
        frame = frame.rename(columns=_ACLED_RENAME)
    elif dataset == "ged":
        frame = frame.rename(columns=_GED_RENAME)
        violence = frame.get("type_of_violence", pd.Series("", index=frame.index))
        frame["type"] = violence.astype(str).str.strip().map(GED_VIOLENCE).fillna(violence)
        original = frame.get("source_original", pd.Series("", index=frame.index)).astype(str)
        article = frame.get("source_article", pd.Series("", index=frame.index)).astype(str)
        frame["source"] = original.where(original.str.strip() != "", article)
    return frame


def validate_incidents(  # noqa: C901, PLR0912, PLR0915 - one check after another
    frame: pd.DataFrame,
    *,
    source: str = "`incidents`",
    columns: Mapping[str, str] | None = None,
    filters: Filters | None = None,
    first_row: int = 1,
    require_dates: bool = True,
) -> IncidentTable:
    """Check each row of a table of incidents; split it into incidents and rejects.

    Parameters
    ----------
    frame
        The table as read (text or numbers); ACLED and GED columns are
        recognised (see the module docstring).
    source
        Where it came from, for messages.
    columns
        Our column name to the table's, for names that differ.
    filters
        Rows to leave out (counted as "excluded").
    first_row
        ``row`` number of the first row (for tables read in chunks).
    require_dates
        Refuse a table without a ``date`` column. With False such a table is
        read with no dates (``date`` NaT), enough for snapping; rows of a table
        that has the column still need a valid date.

    Raises
    ------
    InputError
        If a required column (latitude, longitude, date) is missing.
    """
    frame = frame.rename(columns=lambda c: str(c).strip().lower().lstrip("\ufeff"))
    unknown = [k for k in (columns or {}) if str(k).strip().lower() not in KNOWN_COLUMNS]
    if unknown:
        msg = (
            f"`columns` (--column) names unknown column(s) {', '.join(map(str, unknown))}: "
            f"ours are {', '.join(KNOWN_COLUMNS)} (give OURS=THEIRS, e.g. latitude=lat)."
        )
        raise InputError(msg)
    if columns:
        wanted = {str(v).strip().lower(): str(k).strip().lower() for k, v in columns.items()}
        missing_map = [v for v in wanted if v not in frame.columns]
        if missing_map:
            msg = (
                f"Incident file {source} has no column(s) {', '.join(missing_map)} named in "
                f"`columns`: its columns are {', '.join(map(str, frame.columns))}."
            )
            raise InputError(msg)
        frame = frame.drop(columns=[c for c in wanted.values() if c in frame.columns]).rename(
            columns=wanted
        )
    dataset = detect_dataset(frame.columns)
    frame = _canonical(frame, dataset)
    if dataset == "plain":
        frame = field_report_columns(frame)
    required = ("latitude", "longitude", "date") if require_dates else ("latitude", "longitude")
    missing = [c for c in required if c not in frame.columns]
    if missing:
        msg = (
            f"Incident file {source} lacks column(s) {', '.join(missing)}: a plain table needs "
            "latitude, longitude (or a geopoint) and date (YYYY-MM-DD); map other names with "
            "`columns` (`--column latitude=lat`, `--column geopoint=gps`, `--column date=today`)."
        )
        raise InputError(msg)
    frame = frame.reset_index(drop=True)
    n = len(frame)
    reason = pd.Series("", index=frame.index, dtype=object)
    kind = pd.Series("rejected", index=frame.index, dtype=object)

    def flag(mask: pd.Series, text: str | pd.Series, what: str = "rejected") -> None:
        hit = mask & (reason == "")
        reason.loc[hit] = text
        kind.loc[hit] = what

    def text_col(name: str) -> pd.Series:
        if name in frame.columns:
            return frame[name].astype(str).str.strip()
        return pd.Series("", index=frame.index, dtype=object)

    if "_geopoint_bad" in frame.columns:
        flag(frame["_geopoint_bad"].astype(bool), "geopoint is not 'lat lon altitude accuracy'")
    lat = pd.to_numeric(text_col("latitude"), errors="coerce")
    lon = pd.to_numeric(text_col("longitude"), errors="coerce")
    flag(lat.isna() | lon.isna(), "latitude or longitude missing or not a number")
    flag(
        (lat.abs() > 90) & (lon.abs() <= 90),
        "latitude out of range (latitude and longitude swapped?)",
    )
    flag((lat.abs() > 90) | (lon.abs() > 180), "coordinates out of range")
    date = parse_dates(text_col("date"))
    if "date" in frame.columns:
        flag(date.isna(), "date missing or not YYYY-MM-DD / DD Month YYYY")

    counts = {}
    count_cols = (
        (*OPTIONAL_COUNTS, "killed_low", "killed_high") if dataset == "ged" else OPTIONAL_COUNTS
    )
    for col in count_cols:
        raw = text_col(col)
        value = pd.to_numeric(raw.replace("", "0"), errors="coerce")
        flag(value.isna(), f"{col} is not a number")
        flag(value < 0, f"{col} is negative")
        counts[col] = value.fillna(0).clip(lower=0)

    precision, code, code_name = _precision(frame, dataset, flag)
    # ACLED geo_precision 3: "a larger region, placed at its capital"
    # ACLED's geo_precision 3 means "a larger region, placed at its capital"; a plain
    # table's codes are only a radius (the embedded data uses 3 for "between two towns")
    at_capital = (code == 3) if dataset == "acled" else pd.Series(data=False, index=frame.index)

    filters = filters or Filters()
    if filters.event_types:
        wanted_types = {t.lower() for t in filters.event_types}
        kinds = text_col("type").str.lower()
        broad = text_col("event_type").str.lower()
        chosen = kinds.isin(wanted_types) | broad.isin(wanted_types)
        shown = text_col("type").where(text_col("type") != "", "(none)")
        flag(~chosen, "excluded: type " + shown + " not selected", "excluded")
    if filters.date_from is not None:
        flag(date < filters.date_from, f"excluded: before {filters.date_from.date()}", "excluded")
    if filters.date_to is not None:
        end = filters.date_to + pd.Timedelta(days=1)
        flag(date >= end, f"excluded: after {filters.date_to.date()}", "excluded")
    if filters.max_precision_m is not None:
        coarse = precision > filters.max_precision_m
        flag(
            coarse,
            "excluded: uncertainty radius "
            + precision.round().astype("Int64").astype(str)
            + f" m above the {filters.max_precision_m:g} m allowed",
            "excluded",
        )

    ok = reason == ""
    rows = pd.Series(np.arange(first_row, first_row + n), index=frame.index)
    out = pd.DataFrame({"row": rows[ok], "date": date[ok]})
    for col in OPTIONAL_TEXT:
        out[col] = text_col(col)[ok]
    for col, value in counts.items():
        out[col] = value[ok].astype(float)
    out["precision_m"] = precision[ok].astype(float)
    out[code_name] = code[ok].astype("Int64")
    out["at_capital"] = at_capital[ok].fillna(value=False).astype(bool)
    if "date_precision" in frame.columns:
        out["date_precision"] = pd.to_numeric(frame.loc[ok, "date_precision"], errors="coerce")
    out["dataset"] = dataset
    incidents = gpd.GeoDataFrame(
        out.reset_index(drop=True),
        geometry=gpd.points_from_xy(lon[ok], lat[ok]),
        crs=settings.default_crs,
    )
    rejects = pd.DataFrame(
        {
            "row": rows[~ok],
            "kind": kind[~ok],
            "reason": reason[~ok],
            "merged_into": pd.array([pd.NA] * int((~ok).sum()), dtype="Int64"),
        }
    ).reset_index(drop=True)
    return IncidentTable(incidents=incidents, rejects=rejects, n_input=n, dataset=dataset)


def _precision(
    frame: pd.DataFrame, dataset: str, flag: Callable[..., None]
) -> tuple[pd.Series, pd.Series, str]:
    """Uncertainty radius per row (``precision_m`` if given, else from the code), the code."""
    code_name = "where_prec" if dataset == "ged" else "geo_precision"
    radii = GED_PRECISION_RADIUS_M if dataset == "ged" else PRECISION_RADIUS_M
    radius = pd.Series(0.0, index=frame.index)
    code = pd.Series(np.nan, index=frame.index)
    if code_name in frame.columns:
        raw = frame[code_name].astype(str).str.strip()
        code = pd.to_numeric(raw, errors="coerce")
        known = code.isin(list(radii)) | (
            code.isin(list(GED_TOO_COARSE)) if dataset == "ged" else False
        )
        allowed = ", ".join(map(str, sorted(radii | (GED_TOO_COARSE if dataset == "ged" else {}))))
        required = dataset in {"acled", "ged"}
        bad = ~known & ((raw != "") | required)
        flag(bad, f"{code_name} is not one of {allowed}")
        if dataset == "ged":
            for value, meaning in GED_TOO_COARSE.items():
                flag(
                    code == value,
                    f"excluded: where_prec {value} too coarse ({meaning})",
                    "excluded",
                )
        radius = code.map(radii).fillna(0.0).astype(float)
    if "precision_m" in frame.columns:
        raw = frame["precision_m"].astype(str).str.strip()
        given = pd.to_numeric(raw, errors="coerce")
        flag((raw != "") & given.isna(), "precision_m is not a number")
        flag(given < 0, "precision_m is negative")
        radius = given.where(raw != "", radius).fillna(0.0)
    return radius, code, code_name


def merge_duplicates(  # noqa: C901, PLR0915 - pairs, passes, then the groups' columns
    table: IncidentTable,
    *,
    distance_m: float = 2_000.0,
    days: float = 1.0,
    type_groups: Mapping[str, str] | None = None,
    any_type: Iterable[str] = ANY_TYPE,
) -> IncidentTable:
    """Merge reports of one event from several sources into one incident.

    Two incidents are reports of the same event when their types are
    compatible, they lie within `distance_m` of each other, are dated within
    `days`, and come from different reporters. Types are compatible when they
    are the same (case aside), belong to one group of `type_groups`
    (:data:`TYPE_GROUPS`: ACLED's "Remote explosive/landmine/IED" and a field
    log's "IED"), or one of them is in `any_type` (no type, or a UCDP GED
    type of violence). The reporter of a row is its input (the ``input``
    column that :func:`convoyrisk.sources.read_sources` sets) and, in a plain
    table, its ``source``: two rows of one reporter are two events it
    reported, so two rows of one ACLED or GED export (those datasets already
    de-duplicate) never merge, nor do two rows of one plain table when either
    has no ``source``. Reports join through chains of such pairs, but each must
    be within the window of the report kept and compatible with it, and a
    group takes at most one report per reporter.

    The report kept has the most precise location (smallest ``precision_m``,
    then the earlier input, then the first row). It takes the date of the
    report with the most precise date (smallest ``date_precision``, ACLED's
    ``time_precision`` or GED's ``date_prec``; a row without one counts as an
    exact day), every report's source in ``source`` ("; "-joined), every
    report's ``sources`` entry (if the column exists), the others' rows in
    ``merged_rows`` (``input:row`` for several inputs) and the largest
    ``killed`` and ``injured``. The others move to the rejects as kind
    "merged" with ``merged_into`` (and ``merged_into_input``) naming the row
    kept; :attr:`IncidentTable.merges` lists each with its distance and days
    from the row kept.

    Parameters
    ----------
    table
        Checked incidents (one input, or several with an ``input`` column).
    distance_m
        Largest distance between two reports of one event, metres.
    days
        Largest difference between their dates, days.
    type_groups
        Type (lower case) to the name of its group; :data:`TYPE_GROUPS` if None.
    any_type
        Types (lower case) compatible with every type.
    """
    inc = table.incidents.reset_index(drop=True)
    n = len(inc)
    several = "input" in inc.columns
    if n < 2 or (not several and table.dataset in {"acled", "ged"}):
        out = inc.copy(deep=False)
        out["merged_rows"] = ""
        return replace(table, incidents=out, merges=_merges_frame([]))
    groups = TYPE_GROUPS if type_groups is None else type_groups
    wild_types = {t.strip().lower() for t in any_type}

    lon, lat = inc.geometry.x.to_numpy(), inc.geometry.y.to_numpy()
    to_metres = Transformer.from_crs(inc.crs, inc.estimate_utm_crs(), always_xy=True)
    xy = np.c_[to_metres.transform(lon, lat)]
    dated = inc["date"].notna().to_numpy()
    when = inc["date"].to_numpy("datetime64[ns]").astype("int64") / 86_400e9
    # types, labels and sources: the work on their few distinct values, then integer codes
    kind_ids, kind_names = pd.factorize(inc["type"].astype(str).str.strip().str.lower())
    kind_code = pd.factorize(np.array([groups.get(k, k) for k in kind_names], dtype=object))[0]
    kind_code = np.append(kind_code, -1)[kind_ids]
    wild = np.append(np.isin(np.asarray(kind_names, dtype=object), list(wild_types)), False)[
        kind_ids
    ]
    label = inc["input"].astype(str).to_numpy() if several else np.full(n, "", dtype=object)
    label_code, label_names = pd.factorize(label)
    plain = (inc["dataset"].astype(str) == "plain").to_numpy()
    src_ids, src_names = pd.factorize(inc["source"].astype(str).str.strip().str.lower())
    src_code = np.where(plain, src_ids, -1)
    reporter = label_code.astype(np.int64) * (len(src_names) + 2) + src_code + 1
    unknown = plain & np.append(np.asarray(src_names, dtype=object) == "", False)[src_ids]

    def compatible(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        ok: np.ndarray = wild[a] | wild[b] | (kind_code[a] == kind_code[b])
        return ok

    # candidates: a box of ±distance_m and ±days (time scaled to metres, Chebyshev distance),
    # so the pairs found are already close in time; then the disc, types and reporters
    scale = distance_m / days if days > 0 else distance_m * 1e3
    pairs = cKDTree(np.c_[xy, when * scale]).query_pairs(
        distance_m, p=np.inf, output_type="ndarray"
    )
    i, j = pairs[:, 0], pairs[:, 1]
    del pairs
    disc = np.hypot(*(xy[i] - xy[j]).T) <= distance_m
    i, j = i[disc], j[disc]
    same = (
        compatible(i, j)
        & dated[i]
        & dated[j]
        & (reporter[i] != reporter[j])
        & ~((label_code[i] == label_code[j]) & (unknown[i] | unknown[j]))
    )
    i, j = i[same], j[same]
    precision = inc["precision_m"].to_numpy(float)
    rows = inc["row"].to_numpy()
    parts: list[pd.DataFrame] = []
    active = np.ones(n, dtype=bool)
    for _ in range(_MERGE_PASSES):
        # each pass groups every component around its most precise report; reports a group
        # could not take (a second report of one reporter) try again among themselves
        live = active[i] & active[j]
        found = _merge_pass(
            i[live],
            j[live],
            n,
            sort_keys=(rows, label_code, precision),
            gaps=lambda a, b: (np.abs(when[a] - when[b]), np.hypot(*(xy[a] - xy[b]).T)),
            near=lambda a, b: (
                (np.hypot(*(xy[a] - xy[b]).T) <= distance_m)
                & (np.abs(when[a] - when[b]) <= days)
                & compatible(a, b)
            ),
            reporter=reporter,
        )
        if not len(found):
            break
        parts.append(found)
        active[found["member"].to_numpy()] = False
    if not parts:
        out = inc.copy(deep=False)
        out["merged_rows"] = ""
        return replace(table, incidents=out, merges=_merges_frame([]))

    grp = pd.concat(parts, ignore_index=True)
    gone_rows = grp[grp["member"] != grp["head"]]
    gone_idx = gone_rows["member"].to_numpy()
    into = gone_rows["head"].to_numpy()
    out = inc.copy(deep=False)  # copy-on-write: the columns written are copied
    out["merged_rows"] = ""

    def row_name(idx: np.ndarray) -> list[str]:
        if several:
            return [
                f"{label_names[c]}:{r}" for c, r in zip(label_code[idx], rows[idx], strict=True)
            ]
        return [str(r) for r in rows[idx]]

    # each group's head comes first, then its members in order (a stable sort keeps it)
    grp = grp.sort_values("head", kind="stable")
    h = grp["head"].to_numpy()
    m = grp["member"].to_numpy()
    cuts = np.flatnonzero(np.r_[True, h[1:] != h[:-1]])
    heads = h[cuts]
    texts = np.asarray(inc["source"].astype(str).str.strip(), dtype=object)
    entries = (
        np.asarray(inc["sources"].astype(str), dtype=object) if "sources" in inc.columns else None
    )
    joined: dict[str, list[str]] = {"source": [], "merged_rows": [], "sources": []}
    for a, b in itertools.pairwise(np.r_[cuts, len(h)]):
        members = m[a:b]
        joined["source"].append("; ".join(dict.fromkeys(t for t in texts[members] if t)))
        joined["merged_rows"].append(";".join(row_name(members[1:])))
        if entries is not None:
            joined["sources"].append("; ".join(entries[members]))
    for col, values in joined.items():
        if values:
            out.loc[heads, col] = values
    for col in ("killed", "injured"):
        if col in inc.columns:
            values = inc[col].to_numpy(float)
            out.loc[heads, col] = (
                (pd.Series(values[grp["member"]]).groupby(grp["head"].to_numpy()).max())
                .reindex(heads)
                .to_numpy()
            )
    date_prec = (
        pd.to_numeric(inc["date_precision"], errors="coerce").fillna(1).to_numpy(float)
        if "date_precision" in inc.columns
        else np.ones(n)
    )
    best_date = (
        grp.assign(p=date_prec[grp["member"]])
        .sort_values("p", kind="stable")
        .drop_duplicates("head")
        .set_index("head")["member"]
        .reindex(heads)
        .to_numpy()
    )
    out.loc[heads, "date"] = inc["date"].to_numpy()[best_date]
    if "date_precision" in inc.columns:
        out.loc[heads, "date_precision"] = inc["date_precision"].to_numpy()[best_date]

    far = np.hypot(*(xy[gone_idx] - xy[into]).T)
    apart = np.abs(when[gone_idx] - when[into])
    into_label = label_names[label_code[into]]
    gone_label = label_names[label_code[gone_idx]]
    reasons = [
        (
            f"duplicate report of {lab + ' ' if several else ''}row {r} ({far_m:.0f} m, "
            f"{d:g} days apart, compatible type; source {s!r})"
        )
        for lab, r, far_m, d, s in zip(
            into_label, rows[into], far, apart, texts[gone_idx], strict=True
        )
    ]
    extra = pd.DataFrame(
        {
            "row": rows[gone_idx],
            "kind": "merged",
            "reason": reasons,
            "merged_into": pd.array(rows[into], dtype="Int64"),
        }
    )
    if several:
        extra.insert(0, "input", gone_label)
        extra["merged_into_input"] = into_label
    rejects = pd.concat([table.rejects, extra], ignore_index=True)
    merges = _merges_frame(
        [
            {
                "input": gone_label,
                "row": rows[gone_idx],
                "id": _entry(inc, gone_idx),
                "type": inc["type"].astype(str).to_numpy()[gone_idx],
                "date": inc["date"].to_numpy()[gone_idx],
                "precision_m": precision[gone_idx],
                "merged_into_input": into_label,
                "merged_into_row": rows[into],
                "merged_into_id": _entry(inc, into),
                "merged_into_type": inc["type"].astype(str).to_numpy()[into],
                "distance_m": far.round(1),
                "days_apart": apart,
            }
        ]
    )
    keep = np.ones(n, dtype=bool)
    keep[gone_idx] = False
    kept = gpd.GeoDataFrame(out.loc[keep].reset_index(drop=True), geometry="geometry", crs=inc.crs)
    return replace(table, incidents=kept, rejects=rejects, merges=merges)


_MERGE_PASSES = 20
"""Most grouping passes in :func:`merge_duplicates` (each takes reports left over by the last)."""


def _merge_pass(
    i: np.ndarray,
    j: np.ndarray,
    n: int,
    *,
    sort_keys: tuple[np.ndarray, ...],
    near: Callable[[np.ndarray, np.ndarray], np.ndarray],
    gaps: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]],
    reporter: np.ndarray,
) -> pd.DataFrame:
    """Groups of one pass: ``head`` and ``member`` rows (head first), at least two per group.

    The head of a component is its first row by `sort_keys` (the most precise);
    each other reporter joins with its report closest to the head (fewest days
    apart, then fewest metres) among those `near` it.
    """
    if not len(i):
        return pd.DataFrame({"head": [], "member": []}, dtype=np.int64)
    graph = coo_matrix((np.ones(len(i)), (i, j)), shape=(n, n))
    _, comp = connected_components(graph, directed=False)
    involved = np.zeros(n, dtype=bool)
    involved[i] = involved[j] = True
    idx = np.flatnonzero(involved)
    order = idx[np.lexsort((*(k[idx] for k in sort_keys), comp[idx]))]
    comp_sorted = comp[order]
    m = len(order)
    starts = np.r_[True, comp_sorted[1:] != comp_sorted[:-1]]
    head = order[np.maximum.accumulate(np.where(starts, np.arange(m), 0))]
    close = near(order, head)
    days_off, metres_off = gaps(order, head)
    # one report per reporter: among those close to the head, the closest (the head itself first)
    cand = np.flatnonzero(close)
    rank = cand[np.lexsort((metres_off[cand], days_off[cand], order[cand] != head[cand]))]
    rank = rank[np.lexsort((np.arange(len(rank)), comp_sorted[rank]))]  # by component, stable
    first = ~pd.DataFrame({"c": comp_sorted[rank], "r": reporter[order[rank]]}).duplicated()
    picked = np.zeros(m, dtype=bool)
    picked[rank[first.to_numpy()]] = True
    size = np.bincount(comp_sorted[picked], minlength=n)
    keep = picked & (size[comp_sorted] >= 2)
    return pd.DataFrame({"head": head[keep], "member": order[keep]})


MERGE_REPORT_COLUMNS = (
    "input",
    "row",
    "id",
    "type",
    "date",
    "precision_m",
    "merged_into_input",
    "merged_into_row",
    "merged_into_id",
    "merged_into_type",
    "distance_m",
    "days_apart",
)
"""Columns of :attr:`IncidentTable.merges`, the dedup report: each merged report (its input,
row, ``sources`` entry or event id, type, date, radius) and the one it went into, with the
distance (m) and days between the two."""


def _entry(inc: pd.DataFrame, idx: np.ndarray) -> np.ndarray:
    """The ``sources`` entry of rows (else the event id, else "")."""
    for col in ("sources", "event_id"):
        if col in inc.columns:
            found: np.ndarray = inc[col].astype(str).to_numpy()[idx]
            return found
    return np.full(len(idx), "", dtype=object)


def _merges_frame(parts: list[dict[str, object]]) -> pd.DataFrame:
    if not parts:
        return pd.DataFrame({c: [] for c in MERGE_REPORT_COLUMNS})
    return pd.DataFrame(parts[0], columns=list(MERGE_REPORT_COLUMNS))
