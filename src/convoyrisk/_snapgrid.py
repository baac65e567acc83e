"""Compiled nearest-segment search over a uniform grid (numba), used by :mod:`.snapping`.

Imported only when numba is installed. Each point looks at the grid cells in
rings around its own cell; after each ring it knows every segment within the
distance from the point to the edge of the rings' block, so it stops as soon as
its best distance is within that (exact answer), or that distance passes the
maximum distance (nothing within reach).
"""

from __future__ import annotations

import math

import numba
import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@numba.njit(cache=True, nogil=True, inline="always")
def _point_segment(  # noqa: PLR0917 - compiled: positional arguments only
    px: float, py: float, ax: float, ay: float, bx: float, by: float
) -> tuple[float, float]:  # pragma: no cover - compiled
    # as GEOS's Distance::pointToSegment, so distances match shapely's
    dx = bx - ax
    dy = by - ay
    len2 = dx * dx + dy * dy
    if len2 == 0.0:
        return math.sqrt((px - ax) ** 2 + (py - ay) ** 2), 0.0
    r = ((px - ax) * dx + (py - ay) * dy) / len2
    if r <= 0.0:
        return math.sqrt((px - ax) ** 2 + (py - ay) ** 2), 0.0
    if r >= 1.0:
        return math.sqrt((px - bx) ** 2 + (py - by) ** 2), 1.0
    s = ((ay - py) * dx - (ax - px) * dy) / len2
    return abs(s) * math.sqrt(len2), r


@numba.njit(cache=True, nogil=True, inline="always")
def _scan_cell(  # noqa: PLR0917 - compiled: positional arguments only
    cell: int,
    x: float,
    y: float,
    a: FloatArray,
    b: FloatArray,
    seg_line: IntArray,
    cell_ptr: IntArray,
    cell_seg: IntArray,
    best: tuple[float, int, int, float],
) -> tuple[float, int, int, float]:  # pragma: no cover - compiled
    d_best, s_best, l_best, r_best = best
    for q in range(cell_ptr[cell], cell_ptr[cell + 1]):
        s = cell_seg[q]
        d, t = _point_segment(x, y, a[s, 0], a[s, 1], b[s, 0], b[s, 1])
        line = seg_line[s]
        if d < d_best or (d == d_best and (line < l_best or (line == l_best and s < s_best))):
            d_best, s_best, l_best, r_best = d, s, line, t
    return d_best, s_best, l_best, r_best


@numba.njit(cache=True, nogil=True, parallel=True)
def nearest_segments(  # noqa: PLR0917 - compiled: positional arguments only
    px: FloatArray,
    py: FloatArray,
    a: FloatArray,
    b: FloatArray,
    seg_line: IntArray,
    cell_ptr: IntArray,
    cell_seg: IntArray,
    x0: float,
    y0: float,
    size: float,
    nx: int,
    ny: int,
    max_distance: float,
    seg_out: IntArray,
    dist_out: FloatArray,
    frac_out: FloatArray,
) -> None:  # pragma: no cover - compiled
    """Nearest segment of each point (ties: lowest line, then lowest segment)."""
    big = 2**52
    for p in numba.prange(len(px)):
        x = px[p]
        y = py[p]
        best = (np.inf, big, big, 0.0)
        if math.isfinite(x) and math.isfinite(y):
            ci = math.floor(min(max((x - x0) / size, -1e12), 1e12))
            cj = math.floor(min(max((y - y0) / size, -1e12), 1e12))
            # rings closer than r never touch the grid
            r = max(0, -ci, ci - (nx - 1), -cj, cj - (ny - 1))
            while True:
                for i in range(max(ci - r, 0), min(ci + r, nx - 1) + 1):
                    if abs(i - ci) == r:
                        for j in range(max(cj - r, 0), min(cj + r, ny - 1) + 1):
                            best = _scan_cell(
                                i * ny + j, x, y, a, b, seg_line, cell_ptr, cell_seg, best
                            )
                    else:
                        j = cj - r
                        if 0 <= j < ny:
                            best = _scan_cell(
                                i * ny + j, x, y, a, b, seg_line, cell_ptr, cell_seg, best
                            )
                        j = cj + r
                        if r > 0 and 0 <= j < ny:
                            best = _scan_cell(
                                i * ny + j, x, y, a, b, seg_line, cell_ptr, cell_seg, best
                            )
                # every segment within `safe` of the point has been seen
                safe = min(
                    x - (x0 + (ci - r) * size),
                    x0 + (ci + r + 1) * size - x,
                    y - (y0 + (cj - r) * size),
                    y0 + (cj + r + 1) * size - y,
                )
                whole = ci - r <= 0 and ci + r >= nx - 1 and cj - r <= 0 and cj + r >= ny - 1
                if best[0] <= safe or safe > max_distance or whole:
                    break
                r += 1
        seg_out[p] = best[1] if best[1] < big else -1
        dist_out[p] = best[0]
        frac_out[p] = best[3]


def build_grid(
    a: FloatArray, b: FloatArray, size: float
) -> tuple[IntArray, IntArray, float, float, int, int]:
    """Bucket segments into square cells of `size` metres (CSR: pointer, segment ids).

    A segment is listed in every cell that its pieces' bounding boxes touch (each
    piece no longer than the cell).
    """
    x0 = float(min(a[:, 0].min(), b[:, 0].min()))
    y0 = float(min(a[:, 1].min(), b[:, 1].min()))
    x1 = float(max(a[:, 0].max(), b[:, 0].max()))
    y1 = float(max(a[:, 1].max(), b[:, 1].max()))
    nx = int((x1 - x0) // size) + 1
    ny = int((y1 - y0) // size) + 1
    d = b - a
    length = np.hypot(d[:, 0], d[:, 1])
    parts = np.maximum(1, np.ceil(length / size)).astype(np.int64)
    seg = np.repeat(np.arange(len(a), dtype=np.int64), parts)
    j = np.arange(len(seg)) - np.repeat(np.cumsum(parts) - parts, parts)
    t0 = (j / parts[seg])[:, None]
    t1 = ((j + 1) / parts[seg])[:, None]
    p0 = a[seg] + t0 * d[seg]
    p1 = a[seg] + t1 * d[seg]
    lo = np.floor((np.minimum(p0, p1) - (x0, y0)) / size).astype(np.int64)
    hi = np.floor((np.maximum(p0, p1) - (x0, y0)) / size).astype(np.int64)
    lo = np.clip(lo, 0, [nx - 1, ny - 1])
    hi = np.clip(hi, 0, [nx - 1, ny - 1])
    cells_list = []
    segs_list = []
    for di in (0, 1):
        for dj in (0, 1):
            i = lo[:, 0] + di
            jj = lo[:, 1] + dj
            keep = (i <= hi[:, 0]) & (jj <= hi[:, 1])
            cells_list.append(i[keep] * ny + jj[keep])
            segs_list.append(seg[keep])
    cells = np.concatenate(cells_list)
    segs = np.concatenate(segs_list)
    pairs = np.sort(cells * len(a) + segs)
    pairs = pairs[np.r_[True, pairs[1:] != pairs[:-1]]]
    cells, segs = pairs // len(a), pairs % len(a)
    ptr = np.zeros(nx * ny + 1, dtype=np.int64)
    np.add.at(ptr, cells + 1, 1)
    return np.cumsum(ptr), segs.astype(np.int64), x0, y0, nx, ny


@numba.njit(cache=True, nogil=True)
def length_within(  # noqa: PLR0917 - compiled: positional arguments only
    px: FloatArray,
    py: FloatArray,
    radius: FloatArray,
    a: FloatArray,
    b: FloatArray,
    seg_length: FloatArray,
    grid: tuple[IntArray, IntArray, float, float, int, int],
    size: float,
    out: FloatArray,
) -> None:  # pragma: no cover - compiled
    """Add to ``out[i]`` the length of segments inside the disc of ``radius[i]`` around point i.

    Each segment listed in a cell that the disc's bounding box touches is
    clipped to the disc once per point (a stamp per segment skips its other
    cells): the chord of the segment's line through the circle, clipped to the
    segment.
    """
    cell_ptr, cell_seg, x0, y0, nx, ny = grid
    stamp = np.full(len(a), -1, dtype=np.int64)
    for i in range(len(px)):
        x, y, r = px[i], py[i], radius[i]
        i0 = max(math.floor((x - r - x0) / size), 0)
        i1 = min(math.floor((x + r - x0) / size), nx - 1)
        j0 = max(math.floor((y - r - y0) / size), 0)
        j1 = min(math.floor((y + r - y0) / size), ny - 1)
        total = 0.0
        for ci in range(i0, i1 + 1):
            for cj in range(j0, j1 + 1):
                cell = ci * ny + cj
                for q in range(cell_ptr[cell], cell_ptr[cell + 1]):
                    s = cell_seg[q]
                    if stamp[s] == i:
                        continue
                    stamp[s] = i
                    dx = b[s, 0] - a[s, 0]
                    dy = b[s, 1] - a[s, 1]
                    fx = a[s, 0] - x
                    fy = a[s, 1] - y
                    qa = dx * dx + dy * dy
                    qb = 2.0 * (fx * dx + fy * dy)
                    qc = fx * fx + fy * fy - r * r
                    disc = qb * qb - 4.0 * qa * qc
                    if disc > 0.0 and qa > 0.0:
                        root = math.sqrt(disc)
                        t0 = min(max((-qb - root) / (2.0 * qa), 0.0), 1.0)
                        t1 = min(max((-qb + root) / (2.0 * qa), 0.0), 1.0)
                        total += (t1 - t0) * seg_length[s]
        out[i] += total
