"""Read a saved map's data block back, independently of convoyrisk.maps (for tests)."""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np
import shapely

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
