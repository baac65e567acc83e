"""Offline base layers for the briefing map: raster tiles from a user's MBTiles file.

An MBTiles file (the SQLite format QGIS, GDAL and humanitarian tile exports
write) holds map tiles by zoom, column and row. :func:`read_mbtiles` takes the
PNG or JPEG tiles that cover a map's extent, from the file's lowest zoom up to
the highest that fits a size budget, so that :func:`convoyrisk.maps.risk_map`
can embed them in the page: a user's own imagery or OpenStreetMap tiles then
show under the risk with no network.
"""

from __future__ import annotations

import base64
import math
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

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
    >>> tile_range((0.0, 0.0, 1.0, 1.0), 1)
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
