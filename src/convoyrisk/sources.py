"""Several incident sources in one run: each read and checked, then one event, one incident.

An analyst's picture of a road comes from several sources at once: an ACLED
export, UCDP GED, the organisation's own incident log (often a KoBo or ODK
form exported to Excel). :func:`read_sources` reads each with
:func:`convoyrisk.incidents.read_incidents`, labels its rows with the input
they came from (``input``) and their provenance (``sources``: ``input:id``),
and merges the reports of one event across them with
:func:`convoyrisk.incidents.merge_duplicates` under :class:`MergeRules`.

Every row of every input is accounted for: used, merged into another (named
in the rejects and in the dedup report, :func:`write_merge_report`), or
rejected or excluded with its reason (:func:`counts_by_input`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import pandas as pd

from . import settings
from ._errors import InputError
from .incidents import (
    ANY_TYPE,
    CHUNK_ROWS,
    MERGE_REPORT_COLUMNS,
    TYPE_GROUPS,
    Filters,
    IncidentSource,
    IncidentTable,
    header_names,
    merge_duplicates,
    read_incidents,
    validate_incidents,
)
from .utils import Progress, atomic_path


@dataclass(frozen=True)
class MergeRules:
    """When two reports are one event (see :func:`convoyrisk.incidents.merge_duplicates`).

    Attributes
    ----------
    distance_m
        Largest distance between two reports of one event, metres (2 km: a
        village's extent; ACLED's precision-1 events sit at the village).
    days
        Largest difference between their dates, days (1: a report dated the
        next day, or an event late at night in one source's time zone).
    type_groups
        Event type (lower case) to its group: types of one group are
        compatible (:data:`convoyrisk.incidents.TYPE_GROUPS` by default).
    any_type
        Types compatible with every type: no type, and UCDP GED's types of
        violence (:data:`convoyrisk.incidents.ANY_TYPE`).
    merge
        False to keep every report as its own incident.
    """

    distance_m: float = 2_000.0
    days: float = 1.0
    type_groups: Mapping[str, str] = field(default_factory=lambda: dict(TYPE_GROUPS))
    any_type: frozenset[str] = ANY_TYPE
    merge: bool = True


def read_sources(
    sources: IncidentSource | Sequence[IncidentSource] | None,
    *,
    names: Sequence[str] | None = None,
    columns: Mapping[str, str] | None = None,
    filters: Filters | None = None,
    rules: MergeRules | None = None,
    chunk_rows: int = CHUNK_ROWS,
    progress: Progress | None = None,
) -> IncidentTable:
    """Read several incident files or tables as one, merging reports of one event.

    Parameters
    ----------
    sources
        Files (ACLED, GED, plain or field-report CSV, ``.xlsx``, GeoJSON,
        GeoPackage), tables as read, or checked :class:`IncidentTable` s; one
        of them alone, or None for the embedded incidents.
    names
        A label per input, used in ``input`` and ``sources``. By default
        "acled" or "ged" for those exports, else the file's stem ("table1"...
        for tables); a repeated label gets "-2", "-3".
    columns
        Our column name to the file's: each entry applies to the inputs that
        have that column (``{"date": "incident_date"}`` renames a field log's
        column and leaves the ACLED export alone).
    filters
        Rows to leave out of every input (counted as "excluded").
    rules
        When reports are one event; :class:`MergeRules` () if None.
    chunk_rows
        CSV rows read at a time.
    progress
        Passed to each read (``progress("reading incidents", done, total)``).

    Returns
    -------
    IncidentTable
        Incidents with ``input`` (the label of the input they came from) and
        ``sources`` (``input:id`` of every report of the event, "; "-joined;
        the id is the event id, else ``#row``); rejects with ``input`` (and
        ``merged_into_input`` for merged rows); ``merges`` (the dedup report)
        and ``inputs`` (rows read per input).

    Raises
    ------
    InputError
        If an input cannot be read, a `columns` entry names a column no input
        has, or `names` does not match the inputs.
    """
    items: list[IncidentSource | None] = (
        [sources]
        if sources is None or isinstance(sources, (str, Path, pd.DataFrame, IncidentTable))
        else list(sources)
    )
    if not items:
        msg = "`sources` is empty: pass at least one incident file or table."
        raise InputError(msg)
    if names is not None and len(names) != len(items):
        msg = f"`names` has {len(names)} labels for {len(items)} inputs: give one per input."
        raise InputError(msg)
    rules = rules or MergeRules()
    wanted = {str(k).strip().lower(): str(v).strip().lower() for k, v in (columns or {}).items()}
    used: set[str] = set()
    tables: list[IncidentTable] = []
    labels: list[str] = []
    for k, item in enumerate(items):
        have = _column_names(item)
        mine = {ours: theirs for ours, theirs in wanted.items() if theirs in have}
        used.update(mine)
        table = _read_one(item, mine, filters, chunk_rows, progress)
        label = names[k] if names is not None else _default_label(item, table, k)
        labels.append(_unique(label, labels))
        tables.append(table)
    unused = [f"{k}={v}" for k, v in wanted.items() if k not in used]
    if unused:
        msg = (
            f"`columns` entry {', '.join(unused)} names a column that no input has: check the "
            "spelling against the files' headers."
        )
        raise InputError(msg)
    combined = _combine(tables, labels)
    del tables  # the inputs' own tables are copied into `combined`: free them before merging
    if not rules.merge:
        return combined
    return merge_duplicates(
        combined,
        distance_m=rules.distance_m,
        days=rules.days,
        type_groups=rules.type_groups,
        any_type=rules.any_type,
    )


def _column_names(item: IncidentSource | None) -> set[str]:
    if item is None or isinstance(item, IncidentTable):
        return set()
    if isinstance(item, pd.DataFrame):
        return {str(c).strip().lower() for c in item.columns}
    return set(header_names(item))


def _read_one(
    item: IncidentSource | None,
    columns: Mapping[str, str],
    filters: Filters | None,
    chunk_rows: int,
    progress: Progress | None,
) -> IncidentTable:
    if isinstance(item, IncidentTable):
        return item
    if isinstance(item, pd.DataFrame):
        return validate_incidents(item, columns=columns, filters=filters)
    return read_incidents(
        item, columns=columns, filters=filters, chunk_rows=chunk_rows, progress=progress
    )


def _default_label(item: IncidentSource | None, table: IncidentTable, k: int) -> str:
    if table.dataset in {"acled", "ged"}:
        return table.dataset
    if item is None:
        return settings.default_incidents().stem
    if isinstance(item, (str, Path)):
        return Path(item).stem
    return f"table{k + 1}"


def _unique(label: str, taken: list[str]) -> str:
    label = label.strip() or "input"
    out, n = label, 1
    while out in taken:
        n += 1
        out = f"{label}-{n}"
    return out


def _combine(tables: list[IncidentTable], labels: list[str]) -> IncidentTable:
    """One table of every input's rows, labelled with their input and provenance."""
    incidents = []
    rejects = []
    for table, label in zip(tables, labels, strict=True):
        inc = table.incidents.copy(deep=False)  # copy-on-write: the input is not changed
        inc["input"] = label
        ids = inc["event_id"].astype(str).str.strip() if "event_id" in inc.columns else None
        row_id = "#" + inc["row"].astype(str)
        if "sources" not in inc.columns:
            inc["sources"] = label + ":" + (row_id if ids is None else ids.where(ids != "", row_id))
        incidents.append(inc)
        rej = table.rejects.copy(deep=False)
        rej.insert(0, "input", label)
        if "merged_into_input" not in rej.columns:
            rej["merged_into_input"] = pd.Series(
                [label if pd.notna(m) else "" for m in rej["merged_into"]],
                index=rej.index,
                dtype=object,
            )
        rejects.append(rej)
    kinds = {t.dataset for t in tables}
    merged = pd.concat(incidents, ignore_index=True) if len(incidents) > 1 else incidents[0]
    return IncidentTable(
        incidents=gpd.GeoDataFrame(merged, geometry="geometry", crs=settings.default_crs),
        rejects=pd.concat(rejects, ignore_index=True),
        n_input=sum(t.n_input for t in tables),
        dataset=kinds.pop() if len(kinds) == 1 else "mixed",
        inputs={label: t.n_input for t, label in zip(tables, labels, strict=True)},
    )


def counts_by_input(table: IncidentTable) -> pd.DataFrame:
    """Rows per input and outcome: ``rows``, ``incidents``, ``rejected``, ``excluded``, ``merged``.

    ``rows == incidents + rejected + excluded + merged`` on every line.

    Parameters
    ----------
    table
        A table from :func:`read_sources` (with ``input`` columns).
    """
    labels = list(table.inputs) or ["input"]
    inc_col = table.incidents.get("input", pd.Series(labels[0], index=table.incidents.index))
    rej_col = table.rejects.get("input", pd.Series(labels[0], index=table.rejects.index))
    out = pd.DataFrame(index=pd.Index(labels, name="input"))
    out["rows"] = [table.inputs.get(lab, table.n_input) for lab in labels]
    out["incidents"] = inc_col.value_counts().reindex(labels, fill_value=0)
    for kind in ("rejected", "excluded", "merged"):
        hit = rej_col[table.rejects["kind"] == kind] if len(table.rejects) else rej_col
        out[kind] = hit.value_counts().reindex(labels, fill_value=0)
    return out.astype(int)


def merge_report(table: IncidentTable) -> pd.DataFrame:
    """The dedup report: each merged report and the one it went into.

    Columns are :data:`convoyrisk.incidents.MERGE_REPORT_COLUMNS` (empty if
    nothing was merged).
    """
    if table.merges is None:
        return pd.DataFrame({c: [] for c in MERGE_REPORT_COLUMNS})
    return table.merges


def write_merge_report(table: IncidentTable, path: str | Path) -> Path:
    """Write the dedup report as CSV (opens in a spreadsheet), atomically.

    Parameters
    ----------
    table
        A table whose duplicates were merged.
    path
        The CSV file to write.
    """
    report = merge_report(table).copy()
    if "date" in report.columns and len(report):
        report["date"] = pd.to_datetime(report["date"]).dt.strftime("%Y-%m-%d")
    with atomic_path(path) as tmp:
        report.to_csv(tmp, index=False, encoding="utf-8")
    return Path(path)
