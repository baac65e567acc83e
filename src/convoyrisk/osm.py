"""OpenStreetMap files (``.osm.pbf``, ``.osm``, ``.osm.bz2``) read as road segments.

:func:`read_osm` gives one row per pair of consecutive way nodes, in EPSG:4326,
with the OSM node ids at both ends; :func:`convoyrisk.network.graph_from_osm`
builds the graph from them. PBF files are read with pyrosm, XML with pyosmium
(``pip install 'convoyrisk[osm]'``).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from . import settings
from ._errors import InputError, MissingInputError
from .utils import first_line

DEFAULT_HIGHWAYS = (
    "motorway",
    "motorway_link",
    "trunk",
    "trunk_link",
    "primary",
    "primary_link",
    "secondary",
    "secondary_link",
    "tertiary",
    "tertiary_link",
    "unclassified",
    "residential",
    "living_street",
    "service",
    "road",
    "track",
)
"""OSM ``highway`` classes kept by default: everything a truck can use, tracks and
unclassified roads included (most roads of northern Mali are ``track``), unlike
OSMnx's "drive" filter. Footways, paths, cycleways and steps are left out."""

NOT_ROADS = frozenset(
    (
        "abandoned",
        "construction",
        "no",
        "planned",
        "platform",
        "proposed",
        "raceway",
        "razed",
        "rest_area",
        "services",
    )
)
"""``highway`` values that are not roads, left out even when every class is asked for
(``highways=None``), as pyrosm's and OSMnx's "all" networks do; so are ``area=yes`` ways."""

OSM_TAGS = ("name", "ref", "highway", "surface", "tracktype", "smoothness", "oneway", "junction")
"""OSM way tags read from OpenStreetMap files."""


def is_osm_file(path: str | Path) -> bool:
    """Whether `path` names an OpenStreetMap file (.osm, .osm.bz2, .osm.pbf, .pbf...)."""
    name = Path(path).name.lower()
    return name.endswith((".pbf", ".osm", ".osm.bz2", ".osm.gz", ".osc"))


def read_osm(
    path: str | Path,
    *,
    highways: Iterable[str] | None = DEFAULT_HIGHWAYS,
    region: shapely.Geometry | None = None,
    engine: Literal["auto", "pyrosm", "pyosmium"] = "auto",
) -> gpd.GeoDataFrame:
    """Road segments of an OpenStreetMap file, one row per pair of consecutive nodes.

    Parameters
    ----------
    path
        ``.osm.pbf`` (read with pyrosm), ``.osm`` or ``.osm.bz2`` (read with pyosmium).
    highways
        ``highway`` classes to keep; :data:`DEFAULT_HIGHWAYS` by default, every
        class but :data:`NOT_ROADS` (and ``area=yes``) if None.
    region
        Polygon in EPSG:4326: segments with both ends inside it are kept.
    engine
        Reader: pyrosm for PBF and pyosmium otherwise with "auto".

    Returns
    -------
    geopandas.GeoDataFrame
        In EPSG:4326 with ``u``, ``v`` (OSM node ids, in the way's direction),
        ``osmid`` (way id), the :data:`OSM_TAGS` columns and 2-point LineStrings.

    Raises
    ------
    InputError
        If the file is corrupt, truncated, empty or holds no road of the classes asked.
    """
    path = Path(path)
    if not path.exists():
        msg = f"OSM file {path} does not exist: pass an existing .osm.pbf, .osm or .osm.bz2."
        raise MissingInputError(msg)
    if path.stat().st_size == 0:
        msg = f"OSM file {path} is empty: download the extract again."
        raise InputError(msg)
    classes = None if highways is None else sorted({str(h) for h in highways})
    use_pyrosm = engine == "pyrosm" or (engine == "auto" and path.name.lower().endswith(".pbf"))
    try:
        if use_pyrosm:
            segs = _segments_pyrosm(path, classes, region)
        else:
            segs = _segments_pyosmium(path, classes)
    except ImportError as exc:
        msg = f"Reading {path} needs {exc.name}: `pip install 'convoyrisk[osm]'`."
        raise InputError(msg) from exc
    except InputError:
        raise
    except Exception as exc:  # the readers raise assorted errors on corrupt files
        msg = (
            f"Cannot read OSM file {path}: {type(exc).__name__}: {first_line(exc)}. "
            "The file is corrupt or truncated: download the extract again."
        )
        raise InputError(msg) from exc
    if region is not None and len(segs):
        xy = shapely.get_coordinates(segs.geometry.to_numpy()).reshape(-1, 2, 2)
        inside = shapely.contains_xy(region, xy[:, 0, 0], xy[:, 0, 1]) & shapely.contains_xy(
            region, xy[:, 1, 0], xy[:, 1, 1]
        )
        segs = segs[inside].reset_index(drop=True)
    if len(segs) == 0:
        what = "any highway" if classes is None else f"highway in {', '.join(classes)}"
        where = " inside the region" if region is not None else ""
        msg = f"OSM file {path} has no way with {what}{where}: choose other `--highway` classes."
        raise InputError(msg)
    return segs


def _segments_pyrosm(
    path: Path, classes: list[str] | None, region: shapely.Geometry | None
) -> gpd.GeoDataFrame:
    import pyrosm  # type: ignore[import-untyped]  # noqa: PLC0415 - optional dependency

    bbox = list(shapely.bounds(region)) if region is not None else None
    tags = list(OSM_TAGS)
    with warnings.catch_warnings():
        # pyrosm warns "Could not find any edges" where we raise a clearer error
        warnings.simplefilter("ignore", UserWarning)
        osm = pyrosm.OSM(str(path), bounding_box=bbox)
        if classes is None:
            got = osm.get_network("all", nodes=True, extra_attributes=tags)
        else:
            got = osm.get_network(
                "all",
                nodes=True,
                extra_attributes=tags,
                custom_filter={"highway": classes},
                filter_type="keep",
            )
    edges = got[1] if isinstance(got, tuple) else None
    if edges is None or len(edges) == 0:
        return gpd.GeoDataFrame({"u": [], "v": []}, geometry=[], crs=settings.default_crs)
    out = pd.DataFrame({"u": edges["u"].to_numpy(np.int64), "v": edges["v"].to_numpy(np.int64)})
    out["osmid"] = edges["id"].to_numpy(np.int64)
    for tag in OSM_TAGS:
        out[tag] = edges[tag].to_numpy() if tag in edges.columns else None
    return gpd.GeoDataFrame(out, geometry=edges.geometry.to_numpy(), crs=settings.default_crs)


def _segments_pyosmium(path: Path, classes: list[str] | None) -> gpd.GeoDataFrame:
    import osmium  # noqa: PLC0415 - optional dependency

    keep = None if classes is None else frozenset(classes)
    refs: list[int] = []
    lons: list[float] = []
    lats: list[float] = []
    part: list[int] = []
    part_way: list[int] = []
    way_rows: list[tuple[Any, ...]] = []
    fp = osmium.FileProcessor(str(path)).with_locations()
    for obj in fp.with_filter(osmium.filter.KeyFilter("highway")):
        if not isinstance(obj, osmium.osm.Way):
            continue
        tags = obj.tags
        if keep is None:
            if tags.get("highway") in NOT_ROADS or tags.get("area") == "yes":
                continue
        elif tags.get("highway") not in keep:
            continue
        w = len(way_rows)
        way_rows.append((obj.id, *(tags.get(t) for t in OSM_TAGS)))
        open_part = False
        for nd in obj.nodes:
            loc = nd.location
            if not loc.valid():  # node outside the extract: the way breaks here
                open_part = False
                continue
            if not open_part:
                part_way.append(w)
                open_part = True
            refs.append(nd.ref)
            lons.append(loc.lon)
            lats.append(loc.lat)
            part.append(len(part_way) - 1)
    ref = np.asarray(refs, dtype=np.int64)
    xy = np.c_[np.asarray(lons, dtype=float), np.asarray(lats, dtype=float)]
    p = np.asarray(part, dtype=np.int64)
    ways = pd.DataFrame(way_rows, columns=["osmid", *OSM_TAGS])
    i = np.flatnonzero(p[1:] == p[:-1])
    coords = np.stack([xy[i], xy[i + 1]], axis=1).reshape(-1, 2)
    geoms = shapely.linestrings(coords, indices=np.repeat(np.arange(len(i)), 2))
    way = np.asarray(part_way, dtype=np.int64)[p[i]] if len(i) else np.zeros(0, dtype=np.int64)
    out = ways.iloc[way].reset_index(drop=True)
    out.insert(0, "v", ref[i + 1])
    out.insert(0, "u", ref[i])
    return gpd.GeoDataFrame(out, geometry=geoms, crs=settings.default_crs)


PLACE_ALIAS_TAGS = (
    "alt_name",
    "official_name",
    "short_name",
    "old_name",
    "loc_name",
    "name:fr",
    "name:en",
)
"""Tags of a place node read as other spellings of its name (``;``-separated lists split)."""

PLACE_RANK = ("city", "town", "village", "hamlet", "suburb", "quarter", "neighbourhood", "locality")
"""``place`` values in the order a name shared by several place nodes resolves to (the
first: a city before a town of the same name); other values come after these."""


def read_osm_places(path: str | Path) -> gpd.GeoDataFrame:
    """The named ``place=*`` nodes of an OSM file, as a gazetteer.

    The columns of :func:`convoyrisk.places.load_places`, read with pyosmium
    (its C++ filter: a fraction of a second for a country).

    Parameters
    ----------
    path
        An ``.osm.pbf``, ``.osm`` or ``.osm.bz2`` file.

    Returns
    -------
    geopandas.GeoDataFrame
        ``name``, ``latitude``, ``longitude``, ``aliases`` (other spellings from
        :data:`PLACE_ALIAS_TAGS`, ``|``-separated), ``place`` and ``osmid``, in
        EPSG:4326, ordered by :data:`PLACE_RANK` then by id. Nodes without a
        ``name`` or a location are left out; ways and relations tagged ``place``
        (areas) too.

    Raises
    ------
    MissingInputError
        If the file does not exist.
    InputError
        If pyosmium is missing or cannot read the file.
    """
    path = Path(path)
    if not path.is_file():
        msg = f"OSM file {path} does not exist: pass an existing .osm.pbf/.osm file."
        raise MissingInputError(msg)
    try:
        import osmium  # noqa: PLC0415 - optional dependency
    except ImportError as exc:
        msg = "Reading place nodes from OSM files needs pyosmium: pip install 'convoyrisk[osm]'."
        raise InputError(msg) from exc
    rows: list[tuple[Any, ...]] = []
    try:
        nodes = osmium.FileProcessor(str(path), osmium.osm.NODE).with_filter(
            osmium.filter.KeyFilter("place")
        )
        for obj in nodes:
            if not isinstance(obj, osmium.osm.Node):
                continue
            tags = obj.tags
            name = (tags.get("name") or "").strip()
            loc = obj.location
            if not name or not loc.valid():
                continue
            aliases = [
                a.strip()
                for t in PLACE_ALIAS_TAGS
                for a in (tags.get(t) or "").split(";")
                if a.strip() and a.strip() != name
            ]
            rows.append(
                (
                    name,
                    loc.lat,
                    loc.lon,
                    "|".join(dict.fromkeys(aliases)),
                    tags.get("place"),
                    obj.id,
                )
            )
    except RuntimeError as exc:
        msg = f"Cannot read place nodes from {path} ({first_line(exc)}): is it an OSM file?"
        raise InputError(msg) from exc
    frame = pd.DataFrame(
        rows, columns=["name", "latitude", "longitude", "aliases", "place", "osmid"]
    )
    rank = {p: i for i, p in enumerate(PLACE_RANK)}
    order = np.lexsort((frame["osmid"].to_numpy(), frame["place"].map(rank).fillna(len(rank))))
    frame = frame.iloc[order].reset_index(drop=True)
    geometry = gpd.points_from_xy(frame["longitude"], frame["latitude"], crs=settings.default_crs)
    return gpd.GeoDataFrame(frame, geometry=geometry)
