"""The gazetteer: place names (any spelling, case or accents) to points.

Examples
--------
>>> normalise_name("Anéfis")
'anefis'
>>> normalise_name("  Aguel-Hoc ")
'aguel hoc'
>>> parse_latlon("18.04, 0.601")
(18.04, 0.601)
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

from . import settings
from ._errors import InputError, MissingInputError, PlaceNotFoundError

_LATLON = re.compile(r"^\s*([+-]?\d+(?:\.\d+)?)\s*,\s*([+-]?\d+(?:\.\d+)?)\s*$")


@dataclass(frozen=True)
class Place:
    """A resolved place: its gazetteer name (or the coordinates given) and position."""

    name: str
    lat: float
    lon: float


def normalise_name(name: str) -> str:
    """Fold case and accents and treat hyphens, apostrophes and spaces alike."""
    text = unicodedata.normalize("NFKD", name)
    text = "".join(c for c in text if not unicodedata.combining(c)).casefold()
    text = re.sub(r"[-'’_.\s]+", " ", text)
    return text.strip()


def parse_latlon(text: str) -> tuple[float, float] | None:
    """Parse ``"lat,lon"``; None if `text` is not of that form.

    Raises
    ------
    InputError
        If the numbers are out of range (|lat| > 90 or |lon| > 180).
    """
    m = _LATLON.match(text)
    if m is None:
        return None
    lat, lon = float(m.group(1)), float(m.group(2))
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        msg = (
            f"Coordinates {text!r} are out of range: give them as 'lat,lon' with latitude "
            "in [-90, 90] and longitude in [-180, 180]."
        )
        raise InputError(msg)
    return lat, lon


def load_places(path: str | Path | None = None) -> gpd.GeoDataFrame:
    """Read a gazetteer CSV (``name``, ``latitude``, ``longitude``, optional ``aliases``).

    Parameters
    ----------
    path
        CSV file; the embedded Kidal–Gao gazetteer if None. ``aliases`` holds
        other spellings separated by ``|``.

    Returns
    -------
    geopandas.GeoDataFrame
        One row per place, in EPSG:4326.
    """
    path = Path(path) if path is not None else settings.default_places()
    if not path.exists():
        msg = f"Gazetteer {path} does not exist: pass an existing CSV with `--places`."
        raise MissingInputError(msg)
    if not path.is_file():
        msg = f"Gazetteer {path} is not a file: pass a CSV file with `--places`."
        raise InputError(msg)
    df = _read_csv(path)
    missing = {"name", "latitude", "longitude"} - set(df.columns)
    if missing:
        msg = (
            f"Gazetteer {path} lacks columns {sorted(missing)}: it needs a header with name, "
            "latitude, longitude."
        )
        raise InputError(msg)
    for col, top in (("latitude", 90.0), ("longitude", 180.0)):
        values = pd.to_numeric(df[col], errors="coerce")
        bad = values.isna() | (values.abs() > top)
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            msg = (
                f"Gazetteer {path} row {i + 1} ({df['name'].iloc[i]!r}): {col} "
                f"{df[col].iloc[i]!r} is not a number in [-{top:g}, {top:g}]: fix that row."
            )
            raise InputError(msg)
        df[col] = values.astype(float)
    if "aliases" not in df.columns:
        df["aliases"] = ""
    geometry = gpd.points_from_xy(df["longitude"], df["latitude"], crs=settings.default_crs)
    return gpd.GeoDataFrame(df, geometry=geometry)


def _read_csv(path: Path) -> pd.DataFrame:
    """The gazetteer file as a table, or one clear error."""
    if _looks_like_geonames(path):
        msg = (
            f"Gazetteer {path} looks like a GeoNames dump (tab-separated, no header): make a "
            "CSV with the header name,latitude,longitude,aliases from its 2nd, 5th, 6th and "
            "4th columns (aliases separated by |) and pass that."
        )
        raise InputError(msg)
    try:
        df = pd.read_csv(path, dtype={"aliases": str}, keep_default_na=False)
    except pd.errors.EmptyDataError as exc:
        msg = f"Gazetteer {path} is empty: it needs a header name,latitude,longitude and rows."
        raise InputError(msg) from exc
    except UnicodeDecodeError as exc:
        msg = f"Gazetteer {path} is not UTF-8 text: save it as CSV (UTF-8)."
        raise InputError(msg) from exc
    except pd.errors.ParserError as exc:
        detail = str(exc).strip().splitlines()[-1]
        msg = f"Gazetteer {path} is not a well-formed CSV ({detail}): check its quoting."
        raise InputError(msg) from exc
    return df


def _looks_like_geonames(path: Path) -> bool:
    """A GeoNames dump: tab-separated lines of 19 fields, the first a number, no header."""
    with path.open("rb") as f:
        first = f.readline(100_000).decode("utf-8", errors="replace").rstrip("\r\n")
    fields = first.split("\t")
    return len(fields) >= 15 and fields[0].strip().isdigit()


def extend_places(first: gpd.GeoDataFrame, more: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """`first`, then the places of `more` none of whose spellings `first` already knows.

    A name known to both resolves to `first`'s place (:func:`geocode` takes the
    first place holding a spelling); `more`'s other spellings of it are dropped
    with it.
    """
    known = set(_index(first))
    spellings = [
        {normalise_name(s) for s in [name, *str(aliases).split("|")]} - {""}
        for name, aliases in zip(more["name"], more["aliases"], strict=True)
    ]
    new = np.array([not (names & known) for names in spellings], dtype=bool)
    extra = more.loc[new].to_crs(first.crs)
    out = pd.concat([first, extra], ignore_index=True)
    return gpd.GeoDataFrame(out, geometry=first.geometry.name, crs=first.crs)


def _index(places: gpd.GeoDataFrame) -> dict[str, int]:
    index: dict[str, int] = {}
    for i, (name, aliases) in enumerate(zip(places["name"], places["aliases"], strict=True)):
        for spelling in [name, *str(aliases).split("|")]:
            key = normalise_name(spelling)
            if key:
                index.setdefault(key, i)
    return index


def geocode(query: str, places: gpd.GeoDataFrame | None = None) -> Place:
    """Resolve a place name (any known spelling) or ``"lat,lon"`` to a :class:`Place`.

    Parameters
    ----------
    query
        A name such as ``"Anefis"`` or ``"anéfis"``, or coordinates ``"18.04,0.601"``.
    places
        Gazetteer from :func:`load_places`; the embedded one if None.

    Raises
    ------
    PlaceNotFoundError
        With the closest known names, if the name is unknown.
    """
    latlon = parse_latlon(query)
    if latlon is not None:
        return Place(name=query.strip(), lat=latlon[0], lon=latlon[1])
    places = load_places() if places is None else places
    index = _index(places)
    key = normalise_name(query)
    if key in index:
        row = places.iloc[index[key]]
        return Place(name=str(row["name"]), lat=float(row["latitude"]), lon=float(row["longitude"]))
    close = difflib.get_close_matches(key, list(index), n=3, cutoff=0.5)
    names = list(dict.fromkeys(str(places.iloc[index[c]]["name"]) for c in close))
    hint = f" Did you mean {', '.join(names)}?" if names else ""
    msg = (
        f"Unknown place {query!r}.{hint} Give a name from the gazetteer "
        "(`--places` for another) or coordinates as 'lat,lon'."
    )
    raise PlaceNotFoundError(msg)
