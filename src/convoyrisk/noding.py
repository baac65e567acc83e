"""Noding a GIS line layer: split lines where they cross or nearly touch, label their ends.

Road layers drawn in a GIS rarely share a vertex where two roads meet:
:func:`node_lines` finds every crossing, touch, collinear overlap and near miss
(a line end within a tolerance of another line) on all the lines' straight
segments at once (one STRtree query, then numpy), splits the lines there and
clusters the piece ends into nodes. :func:`convoyrisk.network.graph_from_gdf`
builds the graph from its pieces.
"""

from __future__ import annotations

import numpy as np
import shapely
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

EPS_M = 1e-6
"""Metres: two points closer than this along a line are the same point."""


def node_lines(geoms: np.ndarray, tol: float, *, crossings: bool) -> dict[str, np.ndarray]:
    """Split lines where they cross, touch or nearly touch; label their ends as nodes.

    Returns the pieces (``geoms``), the source line of each (``line``), node
    labels ``u``, ``v`` and node coordinates ``node_xy``.
    """
    n = len(geoms)
    coords, line = shapely.get_coordinates(geoms, return_index=True)
    step = np.r_[0.0, np.hypot(*np.diff(coords, axis=0).T)]
    first = np.r_[True, line[1:] != line[:-1]]
    step[first] = 0.0
    cum = np.cumsum(step)
    starts = np.flatnonzero(first)
    m = cum - np.repeat(cum[starts], np.diff(np.r_[starts, len(line)]))
    last = np.r_[line[1:] != line[:-1], True]
    lengths = m[last]

    s_line, s_m, s_xy = _split_points(coords, line, m, first, last, tol, crossings=crossings)
    inner = (s_m > EPS_M) & (s_m < lengths[s_line] - EPS_M)
    s_line, s_xy, s_m = s_line[inner], s_xy[inner], s_m[inner]

    # every vertex and split point along each line, in order
    kind = np.r_[np.zeros(len(line), np.int8), np.ones(len(s_line), np.int8)]
    is_end = np.r_[first | last, np.zeros(len(s_line), bool)]
    rec_line = np.r_[line, s_line]
    rec_m = np.r_[m, s_m]
    rec_xy = np.r_[coords, s_xy]
    order = np.lexsort((-kind, rec_m, rec_line))
    rec_line, rec_m, rec_xy, kind, is_end = (
        rec_line[order],
        rec_m[order],
        rec_xy[order],
        kind[order],
        is_end[order],
    )
    # records of one line closer than EPS_M along it are one point (a split wins)
    new = np.r_[True, (rec_line[1:] != rec_line[:-1]) | (np.diff(rec_m) > EPS_M)]
    g_start = np.flatnonzero(new)
    g_line = rec_line[g_start]
    g_split = np.maximum.reduceat(kind, g_start).astype(bool)
    g_end = np.maximum.reduceat(is_end.astype(np.int8), g_start).astype(bool)
    g_split &= ~g_end
    g_xy = rec_xy[g_start]  # sorted with splits first among equals
    # a split point closes one piece and opens the next
    rep = 1 + g_split.astype(np.int64)
    exp_g = np.repeat(np.arange(len(g_start)), rep)
    pos_last = np.cumsum(rep) - 1
    opens = np.zeros(len(exp_g), dtype=bool)
    opens[pos_last[g_split]] = True
    line_first = np.r_[True, g_line[1:] != g_line[:-1]]
    opens[(np.cumsum(rep) - rep)[line_first]] = True
    piece = np.cumsum(opens) - 1
    xy = g_xy[exp_g]
    p_start = np.flatnonzero(opens)
    p_end = np.r_[p_start[1:] - 1, len(exp_g) - 1]
    p_line = g_line[exp_g[p_start]]

    ends_xy = np.r_[xy[p_start], xy[p_end]]
    label = cluster_points(ends_xy, max(tol, EPS_M))
    n_nodes = int(label.max()) + 1
    counts = np.bincount(label, minlength=n_nodes)
    node_xy = np.c_[
        np.bincount(label, weights=ends_xy[:, 0], minlength=n_nodes) / counts,
        np.bincount(label, weights=ends_xy[:, 1], minlength=n_nodes) / counts,
    ]
    n_pieces = len(p_start)
    u, v = label[:n_pieces], label[n_pieces:]
    xy[p_start] = node_xy[u]
    xy[p_end] = node_xy[v]
    del n
    return {
        "geoms": shapely.linestrings(xy, indices=piece),
        "line": p_line,
        "u": u,
        "v": v,
        "node_xy": node_xy,
    }


def _split_points(  # noqa: C901, PLR0915, PLR0917 - one vectorised case per kind of split
    coords: np.ndarray,
    line: np.ndarray,
    m: np.ndarray,
    first: np.ndarray,
    last: np.ndarray,
    tol: float,
    *,
    crossings: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where lines must be split: (line, distance along it, x/y) of each split point.

    Works on the straight segments of all lines at once: an STRtree on their
    envelopes (grown by `tol`) gives candidate pairs, and numpy finds where two
    segments cross or overlap (`crossings`) and where a line end lies within
    `tol` of another line's segment.
    """
    seg = np.flatnonzero(~last)  # segment k runs from vertex k to k + 1
    p, q = coords[seg], coords[seg + 1]
    r = q - p
    seg_len = np.hypot(r[:, 0], r[:, 1])
    seg_line = line[seg]
    # envelopes grown by tol/2 overlap when the segments may be within tol; a diagonal
    # line has the envelope of its box and is cheaper to make than the box
    grow = max(tol, EPS_M) / 2.0
    diagonals = np.asarray(
        shapely.linestrings(np.stack([np.minimum(p, q) - grow, np.maximum(p, q) + grow], axis=1)),
        dtype=object,
    )
    a, b = shapely.STRtree(diagonals).query(diagonals)
    keep = a < b
    a, b = a[keep], b[keep]
    # consecutive segments of one line meet at their shared vertex: not a crossing,
    # unless the line turns straight back on itself there (a spike)
    same = seg_line[a] == seg_line[b]
    nxt = same & (b - a == 1)
    ra, rb = r[a[nxt]], r[b[nxt]]
    cross = ra[:, 0] * rb[:, 1] - ra[:, 1] * rb[:, 0]
    dot = (ra * rb).sum(axis=1)
    spike = np.zeros(len(a), dtype=bool)
    spike[nxt] = (np.abs(cross) <= 1e-12 * seg_len[a[nxt]] * seg_len[b[nxt]]) & (dot < 0)
    keep = ~same | (b - a > 1) | spike
    spike = spike[keep]
    a, b = a[keep], b[keep]
    out_line: list[np.ndarray] = []
    out_m: list[np.ndarray] = []
    out_xy: list[np.ndarray] = []

    def emit(sg: np.ndarray, t: np.ndarray, xy: np.ndarray) -> None:
        out_line.append(seg_line[sg])
        out_m.append(m[seg[sg]] + t * seg_len[sg])
        out_xy.append(xy)

    if crossings and spike.any():
        turn = b[spike]
        out_line.append(seg_line[turn])
        out_m.append(m[seg[turn]])
        out_xy.append(p[turn])
    if crossings and len(a):
        ra, rb = r[a], r[b]
        d = p[b] - p[a]
        denom = ra[:, 0] * rb[:, 1] - ra[:, 1] * rb[:, 0]
        scale = seg_len[a] * seg_len[b]
        proper = np.abs(denom) > 1e-12 * np.maximum(scale, 1e-300)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (d[:, 0] * rb[:, 1] - d[:, 1] * rb[:, 0]) / denom
            u = (d[:, 0] * ra[:, 1] - d[:, 1] * ra[:, 0]) / denom
            ta = EPS_M / np.maximum(seg_len[a], EPS_M)
            tb = EPS_M / np.maximum(seg_len[b], EPS_M)
        hit = proper & (t >= -ta) & (t <= 1 + ta) & (u >= -tb) & (u <= 1 + tb)
        t, u = np.clip(t[hit], 0, 1), np.clip(u[hit], 0, 1)
        ah, bh = a[hit], b[hit]
        xy = p[ah] + t[:, None] * r[ah]
        emit(ah, t, xy)
        emit(bh, u, xy)
        # collinear overlaps: each segment's ends that lie on the other segment
        par = ~proper
        for one, two in ((a[par], b[par]), (b[par], a[par])):
            for end in (p[two], q[two]):
                t1, dist = _project(end, p[one], r[one], seg_len[one])
                on = dist <= EPS_M
                emit(one[on], t1[on], end[on])
            # and a shared stretch ends at a vertex of `one` lying on `two`
            for t_own, own in ((0.0, p[one]), (1.0, q[one])):
                _, dist = _project(own, p[two], r[two], seg_len[two])
                on = dist <= EPS_M
                emit(one[on], np.full(int(on.sum()), t_own), own[on])
    if tol > 0 and len(a):
        # a line end within `tol` of another line's segment splits it at the nearest point
        starts_seg = first[seg]
        ends_seg = last[seg + 1]
        for one, two in ((a, b), (b, a)):
            for is_end, pt in ((starts_seg[one], p[one]), (ends_seg[one], q[one])):
                cand = is_end & (seg_line[one] != seg_line[two])
                w = two[cand]
                t1, dist = _project(pt[cand], p[w], r[w], seg_len[w])
                near = dist <= tol
                emit(w[near], t1[near], p[w[near]] + t1[near, None] * r[w[near]])
    if not out_line:
        return np.zeros(0, np.int64), np.zeros(0), np.zeros((0, 2))
    return np.concatenate(out_line), np.concatenate(out_m), np.concatenate(out_xy)


def _project(
    pt: np.ndarray, start: np.ndarray, vec: np.ndarray, length: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Nearest position (0..1) of points on segments, and the distance to it."""
    with np.errstate(divide="ignore", invalid="ignore"):
        t = ((pt - start) * vec).sum(axis=1) / (length * length)
    t = np.clip(np.nan_to_num(t, nan=0.0), 0.0, 1.0)
    near = start + t[:, None] * vec
    return t, np.hypot(*(pt - near).T)


def cluster_points(points: np.ndarray, tolerance: float) -> np.ndarray:
    """Label points so that points within `tolerance` (transitively) share a label."""
    tree = cKDTree(points)
    pairs = tree.query_pairs(tolerance, output_type="ndarray")
    n = len(points)
    adjacency = coo_matrix(
        (np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1]) if len(pairs) else ([], [])), shape=(n, n)
    )
    _, labels = connected_components(adjacency, directed=False)
    return np.asarray(labels, dtype=np.int64)
