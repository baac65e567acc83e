"""GIS road layers in: read, check, clip to a region.

:func:`read_roads` reads any line layer GDAL reads (and GeoParquet);
:func:`validate_roads` keeps its lines and reports every row it leaves out
(:func:`skipped_rows`); :func:`clip_roads`, :func:`region_from_bbox` and
:func:`region_around` cut out a region. :mod:`convoyrisk.network` builds the
graph from the result.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import shapely

from . import settings
from ._errors import ConvoyRiskWarning, InputError, MissingInputError
from .utils import first_line


def read_roads(
    path: str | Path | None = None,
    *,
    region: shapely.Geometry | None = None,
    layer: str | None = None,
    drop_invalid: bool = False,
) -> gpd.GeoDataFrame:
    """Read a GIS line layer (GeoPackage, GeoJSON, Shapefile, GeoParquet...).

    Parameters
    ----------
    path
        The layer; the embedded Kidal–Gao roads if None.
    region
        Polygon in EPSG:4326 (see :func:`region_from_bbox` and
        :func:`region_around`); lines are clipped to it.
    layer
        Layer name in a multi-layer file (GeoPackage); the first one if None.
    drop_invalid
        Drop invalid line geometries instead of raising.

    Raises
    ------
    MissingInputError
        If the file does not exist.
    InputError
        If it cannot be read, is empty, has no CRS or holds no lines.
    """
    path = Path(path) if path is not None else settings.default_roads()
    if not path.exists():
        msg = f"Road layer {path} does not exist: pass an existing file with `--roads`."
        raise MissingInputError(msg)
    if path.is_file() and path.stat().st_size == 0:
        msg = f"Road layer {path} is an empty file: pass a layer of LineStrings."
        raise InputError(msg)
    try:
        if path.suffix.lower() in {".parquet", ".geoparquet"}:
            roads = gpd.read_parquet(path)
        else:
            roads = gpd.read_file(path, engine="pyogrio", layer=layer)
    except (
        pyogrio.errors.DataSourceError,
        pyogrio.errors.DataLayerError,
        ValueError,
        OSError,
    ) as exc:
        msg = (
            f"Cannot read road layer {path}: {first_line(exc)}. Pass a GeoPackage, GeoJSON, "
            "Shapefile or GeoParquet line layer, or an OSM file (.osm.pbf, .osm, .osm.bz2)."
        )
        raise InputError(msg) from exc
    roads = validate_roads(roads, source=str(path), drop_invalid=drop_invalid)
    if region is not None:
        roads = clip_roads(roads, region)
    return roads


SKIPPED = "skipped_rows"
"""Key of ``GeoDataFrame.attrs`` where :func:`validate_roads` lists the rows it left out."""


def skipped_rows(roads: gpd.GeoDataFrame) -> dict[str, list[int]]:
    """Rows of a road layer that hold no line, by reason: input row numbers (from 0).

    Reasons: ``"missing geometry"`` (null), ``"empty geometry"`` and
    ``"not a line (Point)"`` (or Polygon...). Rows left out by an earlier
    :func:`validate_roads` (kept in ``roads.attrs``) are included.

    Examples
    --------
    >>> roads = gpd.GeoDataFrame(
    ...     geometry=[shapely.LineString([(0, 0), (1, 0)]), None, shapely.Point(0, 0)],
    ...     crs="EPSG:32631",
    ... )
    >>> skipped_rows(roads)
    {'missing geometry': [1], 'not a line (Point)': [2]}
    """
    out: dict[str, list[int]] = {
        str(k): list(v) for k, v in dict(roads.attrs.get(SKIPPED, {})).items()
    }
    geoms = roads.geometry.to_numpy()
    rows = (
        roads["source_row"].to_numpy() if "source_row" in roads.columns else np.arange(len(roads))
    )
    missing = shapely.is_missing(geoms)
    empty = ~missing & shapely.is_empty(geoms)
    types = roads.geom_type.to_numpy()
    other = ~missing & ~empty & ~np.isin(types, ["LineString", "MultiLineString"])
    for reason, mask in (("missing geometry", missing), ("empty geometry", empty)):
        if mask.any():
            out.setdefault(reason, []).extend(int(r) for r in rows[mask])
    for kind in sorted({str(t) for t in types[other]}):
        out.setdefault(f"not a line ({kind})", []).extend(
            int(r) for r in rows[other & (types == kind)]
        )
    return out


def count_skipped(skipped: dict[str, list[int]]) -> int:
    """Number of rows in a :func:`skipped_rows` listing."""
    return sum(len(v) for v in skipped.values())


def describe_skipped(skipped: dict[str, list[int]]) -> str:
    """A :func:`skipped_rows` listing as text: ``"2 missing geometry (rows 0, 2); ..."``."""
    parts = []
    for reason, rows in skipped.items():
        shown = ", ".join(str(r) for r in rows[:5]) + (", ..." if len(rows) > 5 else "")
        parts.append(f"{len(rows)} {reason} (rows {shown})")
    return "; ".join(parts)


def validate_roads(
    roads: gpd.GeoDataFrame, *, source: str = "`roads`", drop_invalid: bool = False
) -> gpd.GeoDataFrame:
    """Check a road layer and keep its line geometries, exploded to single lines.

    The result has a ``source_row`` column (the row of the input each line
    came from). Rows that are not lines (points, polygons, empty or missing
    geometries) and, with `drop_invalid`, invalid lines are left out, never
    silently: a :class:`~convoyrisk.ConvoyRiskWarning` says how many and which,
    and ``result.attrs["skipped_rows"]`` lists them by reason (see
    :func:`skipped_rows`); the graph builders copy the counts into
    ``G.graph["build"]``. Invalid lines (fewer than two distinct points, NaN
    coordinates) raise unless `drop_invalid`.

    Raises
    ------
    InputError
        If the layer is empty, has no CRS, has no (Multi)LineString geometry or
        has invalid lines.
    """
    if len(roads) == 0:
        msg = f"Road layer {source} is empty: it needs at least one LineString."
        raise InputError(msg)
    if roads.crs is None:
        msg = (
            f"Road layer {source} has no CRS: set one (e.g. `gdf.set_crs('EPSG:4326')`, or "
            "`ogr2ogr -a_srs EPSG:4326 out.gpkg in.shp`) and try again."
        )
        raise InputError(msg)
    before = dict(roads.attrs.get(SKIPPED, {}))
    skipped = skipped_rows(roads)
    types = roads.geom_type
    is_line = types.isin(["LineString", "MultiLineString"]).to_numpy()
    is_line = is_line & ~roads.geometry.is_empty.to_numpy()
    lines = roads[is_line]
    if len(lines) == 0:
        found = ", ".join(sorted({str(t) for t in types.unique()}))
        msg = f"Road layer {source} holds no lines (found {found}): pass a layer of LineStrings."
        raise InputError(msg)
    if "source_row" not in lines.columns:
        lines = lines.assign(source_row=np.flatnonzero(is_line))
    lines = lines.explode(index_parts=False, ignore_index=True)
    lines = lines[~lines.geometry.is_empty.to_numpy()]
    geoms = lines.geometry.to_numpy()
    bad = ~shapely.is_valid(geoms) | (shapely.get_num_coordinates(geoms) < 2)
    if bad.any():
        rows = lines["source_row"].to_numpy()[bad]
        if not drop_invalid:
            reason = shapely.is_valid_reason(geoms[bad][0])
            shown = ", ".join(str(r) for r in rows[:5]) + (", ..." if len(rows) > 5 else "")
            msg = (
                f"Road layer {source} has {int(bad.sum())} invalid line(s) (rows {shown}; "
                f"first: {reason}): fix them (e.g. QGIS 'Fix geometries') or drop them with "
                "`drop_invalid=True` / `--drop-invalid`."
            )
            raise InputError(msg)
        skipped.setdefault("invalid line", []).extend(int(r) for r in rows)
        lines = lines[~bad]
    if len(lines) == 0:
        msg = f"Road layer {source} has no valid line left: pass a layer of LineStrings."
        raise InputError(msg)
    new = {k: v[len(before.get(k, [])) :] for k, v in skipped.items()}
    new = {k: v for k, v in new.items() if v}
    if new:
        msg = (
            f"Road layer {source}: {count_skipped(new)} row(s) left out, no road in them: "
            f"{describe_skipped(new)}."
        )
        warnings.warn(msg, ConvoyRiskWarning, stacklevel=2)
    lines = lines.reset_index(drop=True)
    lines.attrs[SKIPPED] = skipped
    return lines


def clip_roads(roads: gpd.GeoDataFrame, region: shapely.Geometry) -> gpd.GeoDataFrame:
    """Clip a line layer to a polygon given in EPSG:4326 (lines are cut at its edge)."""
    shape = gpd.GeoSeries([region], crs=settings.default_crs).to_crs(roads.crs).iloc[0]
    clipped = roads.clip(shape)
    clipped = clipped[clipped.geom_type.isin(["LineString", "MultiLineString"]).to_numpy()]
    if len(clipped) == 0:
        msg = "No road is left inside the region: widen `--bbox` / `--buffer-km` or check it."
        raise InputError(msg)
    out = clipped.explode(index_parts=False, ignore_index=True)
    out.attrs = dict(roads.attrs)
    return out


def region_from_bbox(bbox: Sequence[float]) -> shapely.Polygon:
    """A polygon from ``(min_lon, min_lat, max_lon, max_lat)`` in degrees.

    Examples
    --------
    >>> region_from_bbox((0.0, 16.0, 1.5, 18.5)).bounds
    (0.0, 16.0, 1.5, 18.5)
    """
    if len(bbox) != 4:
        msg = f"`bbox` needs four numbers min_lon,min_lat,max_lon,max_lat; got {list(bbox)}."
        raise InputError(msg)
    west, south, east, north = (float(b) for b in bbox)
    if not (-180 <= west < east <= 180 and -90 <= south < north <= 90):
        msg = (
            f"`bbox` {list(bbox)} is not min_lon,min_lat,max_lon,max_lat in degrees "
            "(west < east, south < north)."
        )
        raise InputError(msg)
    return shapely.box(west, south, east, north)


def region_around(
    names: Iterable[str], *, buffer_m: float, places: gpd.GeoDataFrame | None = None
) -> shapely.Polygon:
    """The convex hull of `buffer_m` circles around named places, in EPSG:4326.

    With two places or more this is a corridor that holds every road between
    them that does not stray more than `buffer_m` outside their hull.

    Parameters
    ----------
    names
        Place names from the gazetteer (or ``"lat,lon"``).
    buffer_m
        Radius around each place, metres.
    places
        Gazetteer (:func:`convoyrisk.places.load_places`); the embedded one if None.
    """
    from .places import geocode  # noqa: PLC0415 - places imports nothing from here

    found = [geocode(n, places) for n in names]
    if not found:
        msg = "`around` needs at least one place name."
        raise InputError(msg)
    pts = gpd.GeoSeries(
        gpd.points_from_xy([p.lon for p in found], [p.lat for p in found]),
        crs=settings.default_crs,
    )
    metric = pts.estimate_utm_crs()
    hull = shapely.convex_hull(shapely.union_all(pts.to_crs(metric).buffer(buffer_m).to_numpy()))
    out = gpd.GeoSeries([hull], crs=metric).to_crs(settings.default_crs).iloc[0]
    return shapely.Polygon(out.exterior)
