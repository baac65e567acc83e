"""Read a saved map's data block back, independently of convoyrisk.maps (for tests)."""

from __future__ import annotations

import io
import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from PIL import Image

from convoyrisk.basemap import tile_range

_BLOCK = re.compile(r'<script type="application/json" id="[^"]+">(.*?)</script>', re.DOTALL)


def map_data(page: str) -> dict[str, Any]:
    """The JSON data block of a saved map (exactly one)."""
    blocks = _BLOCK.findall(page)
    assert len(blocks) == 1, f"expected one data block, found {len(blocks)}"
    return dict(json.loads(blocks[0]))


def decode_parts(parts: list[list[int]], decimals: int) -> list[np.ndarray]:
    """Delta-encoded integer parts to arrays of (lon, lat)."""
    return [
        np.cumsum(np.asarray(p, dtype=np.int64).reshape(-1, 2), axis=0) / 10.0**decimals
        for p in parts
    ]


def decode_lines(items: list[list[list[int]]], decimals: int) -> list[shapely.Geometry]:
    """Each item's parts as a (Multi)LineString in lon/lat."""
    out = []
    for parts in items:
        lines = [shapely.LineString(a) for a in decode_parts(parts, decimals)]
        out.append(lines[0] if len(lines) == 1 else shapely.MultiLineString(lines))
    return out


def make_mbtiles(path: Path, bounds: tuple[float, float, float, float], zooms: range) -> Path:
    """An MBTiles file of solid teal-blue PNG tiles covering `bounds` (TMS rows, as the spec)."""
    buf = io.BytesIO()
    Image.new("RGB", (256, 256), (40, 90, 200)).save(buf, format="PNG")
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE metadata (name text, value text)")
    con.execute(
        "CREATE TABLE tiles (zoom_level integer, tile_column integer, tile_row integer, "
        "tile_data blob)"
    )
    con.executemany(
        "INSERT INTO metadata VALUES (?, ?)",
        [("name", "test tiles"), ("format", "png"), ("attribution", "made in the test")],
    )
    for z in zooms:
        x0, y0, x1, y1 = tile_range(bounds, z)
        for x in range(x0, x1 + 1):
            for y in range(y0, y1 + 1):
                con.execute(
                    "INSERT INTO tiles VALUES (?, ?, ?, ?)", (z, x, 2**z - 1 - y, buf.getvalue())
                )
    con.commit()
    con.close()
    return path


def decode_varints(text: str) -> list[int]:
    """Five-bit varints (characters from ``?``, 32 added to all but a value's last chunk)."""
    out, value, shift = [], 0, 0
    for ch in text:
        c = ord(ch) - 63
        value |= (c & 31) << shift
        shift += 5
        if c < 32:
            out.append(value)
            value, shift = 0, 0
    assert shift == 0, "text ends inside a value"
    return out


def unzigzag(values: list[int]) -> list[int]:
    """0, 1, 2, 3, ... back to 0, -1, 1, -2, ..."""
    return [(v >> 1) if v % 2 == 0 else -((v + 1) >> 1) for v in values]


def decode_deltas(text: str) -> np.ndarray:
    """Values written as the zigzag varints of their differences."""
    return np.cumsum(np.asarray(unzigzag(decode_varints(text)), dtype=np.int64))


def decode_chain(text: str, decimals: int) -> list[list[np.ndarray]]:
    """A chained geometry text to arrays: commas between geometries, spaces between parts,
    a semicolon for a new geometry that starts at the vertex before."""
    out: list[list[np.ndarray]] = []
    at = np.zeros(2, dtype=np.int64)
    for chunk in text.split(","):
        for k, geom in enumerate(chunk.split(";")):
            parts = []
            for j, part in enumerate(geom.split(" ") if geom else []):
                d = np.asarray(unzigzag(decode_varints(part)), dtype=np.int64).reshape(-1, 2)
                xy = at + np.cumsum(d, axis=0)
                if k > 0 and j == 0:  # starts at the vertex before
                    xy = np.vstack([at, xy])
                at = xy[-1]
                parts.append(xy / 10.0**decimals)
            out.append(parts)
    return out
