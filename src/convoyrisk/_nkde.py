"""Compiled network kernel density for one batch of source edges (numba), used by :mod:`.density`.

Imported only when numba is installed. It does, in one compiled pass, what the
numpy path of :func:`convoyrisk.density._batch` does in vectorised steps, with the
same formulas and tie rules:

- the product of ``max(degree − 1, 1)`` along each shortest path (Okabe's equal
  split), from scipy's predecessor rows;
- for each source edge, the edges with an end reached from either of its ends;
- for each incident on that edge, the exact kernel integral over every lixel
  within reach (from the nearer end of the lixel's edge, the split at the
  midpoint ``t*`` where the two ends' distances meet), rescaled so that the
  incident's spread sums to its weight;
- the running mass and count per lixel, and its exact top contributors, ordered
  by contribution, then incident.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

KERNEL_CODES = {"uniform": 0, "triangular": 1, "epanechnikov": 2, "quartic": 3, "triweight": 4}
"""Kernel names to the codes the compiled code takes."""

_TIE_M = 1e-6  # as density._TIE_M
_COUNTED = 1e-12  # a lixel counts an incident when its first kernel's share is above this


@numba.njit(cache=True, nogil=True, inline="always")
def _unit_cdf(kernel: int, x: float) -> float:  # pragma: no cover - compiled
    """``∫₀^x k(z) dz`` of the unit kernel, for ``0 ≤ x ≤ 1``, as density._unit_cdf."""
    x2 = x * x
    if kernel == 0:
        return x / 2.0
    if kernel == 1:
        return x - x2 / 2.0
    if kernel == 2:
        return 0.75 * x * (1.0 - x2 / 3.0)
    if kernel == 3:
        return 15.0 / 16.0 * x * (1.0 - x2 * (2.0 / 3.0 - x2 / 5.0))
    return 35.0 / 32.0 * x * (1.0 - x2 * (1.0 - x2 * (3.0 / 5.0 - x2 / 7.0)))


@numba.njit(cache=True, nogil=True, inline="always")
def _cdf(kernel: int, x: float, h: float) -> float:  # pragma: no cover - compiled
    """Signed ``∫₀^x K(t) dt`` for bandwidth `h`, as density.kernel_cdf."""
    u = min(abs(x) / h, 1.0)
    v = _unit_cdf(kernel, u)
    if x < 0:
        return -v
    if x > 0:
        return v
    return 0.0


@numba.njit(cache=True, nogil=True, inline="always")
def _one_sided(kernel: int, d: float, a: float, b: float, h: float) -> float:  # pragma: no cover
    """``∫_a^b K(d + t) dt`` for ``d ≥ 0`` (``inf`` gives 0), as density._one_sided."""
    return _unit_cdf(kernel, min((d + b) / h, 1.0)) - _unit_cdf(kernel, min((d + a) / h, 1.0))


@numba.njit(cache=True, nogil=True)
def split_products(  # pragma: no cover - compiled
    pred: npt.NDArray[np.int32],
    row_ptr: IntArray,
    row_node: IntArray,
    split: FloatArray,
    prod: FloatArray,
) -> None:
    """``prod[r, x]``: product of ``split`` over the shortest path from row r's source to x.

    Both ends included. `prod` must be zero on entry wherever it is written
    (zero marks "not yet known"); entries outside the reached sets are left alone.
    """
    stack = np.empty(pred.shape[1], dtype=np.int64)
    for r in range(pred.shape[0]):
        for q in range(row_ptr[r], row_ptr[r + 1]):
            x = row_node[q]
            top = 0
            while x >= 0 and prod[r, x] == 0.0:
                stack[top] = x
                top += 1
                x = pred[r, x]
            above = 1.0 if x < 0 else prod[r, x]
            while top > 0:
                top -= 1
                y = stack[top]
                above *= split[y]
                prod[r, y] = above


@numba.njit(cache=True, nogil=True)
def _insert_top(
    top_val: FloatArray, top_idx: IntArray, lix: int, owner: int, val: float
) -> None:  # pragma: no cover - compiled
    k = top_val.shape[1]
    last = top_idx[lix, k - 1]
    if last >= 0 and (val < top_val[lix, k - 1] or (val == top_val[lix, k - 1] and owner > last)):
        return
    p = k
    for slot in range(k):
        cur = top_idx[lix, slot]
        if cur < 0 or val > top_val[lix, slot] or (val == top_val[lix, slot] and owner < cur):
            p = slot
            break
    if p == k:
        return
    for slot in range(k - 1, p, -1):
        top_val[lix, slot] = top_val[lix, slot - 1]
        top_idx[lix, slot] = top_idx[lix, slot - 1]
    top_val[lix, p] = val
    top_idx[lix, p] = owner


@numba.njit(cache=True, nogil=True)
def batch_density(  # noqa: C901, PLR0912, PLR0915, PLR0917 - one compiled pass
    rows: tuple[FloatArray, FloatArray, IntArray, IntArray, IntArray, IntArray],
    network: tuple[IntArray, npt.NDArray[np.int32], IntArray, IntArray, FloatArray],
    lixels: tuple[IntArray, FloatArray, FloatArray],
    groups: tuple[IntArray, IntArray, IntArray, IntArray, IntArray],
    sources: tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray, IntArray],
    options: tuple[int, bool, bool, float],
    acc: tuple[FloatArray, IntArray, FloatArray, IntArray, FloatArray],
    stamp: IntArray,
    stamp_base: int,
) -> None:  # pragma: no cover - compiled
    """Add the kernel mass of every source in the batch to the per-lixel accumulators.

    Parameters (tuples, in order)
    -----------------------------
    rows
        ``dist`` and split products ``prod`` (end node × subnetwork node),
        ``row_ptr`` and ``row_node`` (row r reached the subnetwork nodes
        ``row_node[row_ptr[r]:row_ptr[r+1]]``), ``sub`` (subnetwork node →
        node) and ``local`` (node → subnetwork node, −1 outside).
    network
        Node-edge incidence (CSR ``indptr``, ``indices``), edge ends ``eu``,
        ``ev`` and ``length``.
    lixels
        ``ptr`` (lixels of edge e are ``ptr[e]:ptr[e+1]``), ``start``, ``end``.
    groups
        Per source edge of the batch: the edge, the rows of its ends, and
        ``group_ptr`` into ``members`` (its sources).
    sources
        ``offset``, ``h1``, ``w1``, ``h2``, ``w2``, ``owner`` per source.
    options
        Kernel code, equal split, conserve mass, and the smallest share of a
        lixel's mass worth ranking among its top contributors.
    acc
        ``mass``, ``count``, ``top_val``, ``top_idx`` per lixel, ``raw`` per source.
    stamp, stamp_base
        One mark per edge, below `stamp_base` on entry (groups are numbered
        from `stamp_base`).
    """
    dist, prod, row_ptr, row_node, sub, local = rows
    adj_ptr, adj_edge, eu, ev, length = network
    lix_ptr, lix_start, lix_end = lixels
    group_edge, group_ra, group_rb, group_ptr, members = groups
    offset, h1, w1, h2, w2, owner = sources
    kernel, split, conserve, min_share = options
    mass, count, top_val, top_idx, raw_all = acc
    n_edges = len(eu)
    edges = np.empty(n_edges, dtype=np.int64)
    n_lix = len(lix_start)
    buf_lix = np.empty(n_lix, dtype=np.int64)
    buf_m1 = np.empty(n_lix)
    buf_m2 = np.empty(n_lix)
    # per listed edge: distances to its ends from both ends of the source edge, and one
    # over the split products along those paths
    near = np.empty((n_edges, 8))
    for j in range(len(group_edge)):
        g = group_edge[j]
        ra = group_ra[j]
        rb = group_rb[j]
        mark = stamp_base + j
        # edges with an end reached from either end of g, once each
        n_f = 0
        for r in (ra, rb):
            for q in range(row_ptr[r], row_ptr[r + 1]):
                x = sub[row_node[q]]
                for t in range(adj_ptr[x], adj_ptr[x + 1]):
                    f = adj_edge[t]
                    if f != g and stamp[f] != mark:
                        stamp[f] = mark
                        edges[n_f] = f
                        n_f += 1
        for i in range(n_f):
            f = edges[i]
            for c, (r, node) in enumerate(((ra, eu[f]), (rb, eu[f]), (ra, ev[f]), (rb, ev[f]))):
                col = local[node]
                d = dist[r, col] if col >= 0 else np.inf
                near[i, c] = d
                near[i, 4 + c] = 1.0 / prod[r, col] if split and math.isfinite(d) else 1.0
        len_g = length[g]
        for m_i in range(group_ptr[j], group_ptr[j + 1]):
            s_id = members[m_i]
            off = offset[s_id]
            a1 = h1[s_id]
            a2 = h2[s_id]
            use1 = w1[s_id] > 0
            use2 = w2[s_id] > 0
            reach = max(a1, a2) if use2 else a1
            # the nearer end of g, on the side that wins a tie
            a_wins_tie = off > len_g / 2.0
            n_b = 0
            # the source's own edge: direct distance, no junction
            for lx in range(lix_ptr[g], lix_ptr[g + 1]):
                buf_lix[n_b] = lx
                s0 = lix_start[lx] - off
                s1 = lix_end[lx] - off
                buf_m1[n_b] = _cdf(kernel, s1, a1) - _cdf(kernel, s0, a1) if use1 else 0.0
                buf_m2[n_b] = _cdf(kernel, s1, a2) - _cdf(kernel, s0, a2) if use2 else 0.0
                n_b += 1
            for i in range(n_f):
                # distance to each end of f: via g's u (row a) or g's v (row b)
                du, pu = _nearer(
                    off + near[i, 0], len_g - off + near[i, 1], near[i, 4], near[i, 5], a_wins_tie
                )
                dv, pv = _nearer(
                    off + near[i, 2], len_g - off + near[i, 3], near[i, 6], near[i, 7], a_wins_tie
                )
                if not min(du, dv) < reach:
                    continue
                f = edges[i]
                lf = length[f]
                t_star = (dv + lf - du) / 2.0
                if math.isnan(t_star):
                    t_star = lf
                t_star = min(max(t_star, 0.0), lf)
                for lx in range(lix_ptr[f], lix_ptr[f + 1]):
                    s = lix_start[lx]
                    e = lix_end[lx]
                    mid = min(max(t_star, s), e)
                    buf_lix[n_b] = lx
                    buf_m1[n_b] = (
                        _one_sided(kernel, du, s, mid, a1) * pu
                        + _one_sided(kernel, dv, lf - e, lf - mid, a1) * pv
                        if use1
                        else 0.0
                    )
                    buf_m2[n_b] = (
                        _one_sided(kernel, du, s, mid, a2) * pu
                        + _one_sided(kernel, dv, lf - e, lf - mid, a2) * pv
                        if use2
                        else 0.0
                    )
                    n_b += 1
            raw1 = 0.0
            raw2 = 0.0
            for b in range(n_b):
                raw1 += buf_m1[b]
                raw2 += buf_m2[b]
            if use1:
                raw_all[s_id] = raw1
            scale1 = w1[s_id]
            scale2 = w2[s_id]
            if conserve:
                scale1 = scale1 / raw1 if raw1 > 0 else 0.0
                scale2 = scale2 / raw2 if raw2 > 0 else 0.0
            who = owner[s_id]
            for b in range(n_b):
                val = buf_m1[b] * scale1 + buf_m2[b] * scale2
                lx = buf_lix[b]
                mass[lx] += val
                if buf_m1[b] > _COUNTED:
                    count[lx] += 1
                # a contribution below `min_share` of the mass so far is below it of the
                # final mass too: it is never named, so it need not be ranked
                if val > 0 and top_val.shape[1] > 0 and val >= min_share * mass[lx]:
                    _insert_top(top_val, top_idx, lx, who, val)


@numba.njit(cache=True, nogil=True, inline="always")
def _nearer(
    via_a: float, via_b: float, p_a: float, p_b: float, a_wins_tie: bool
) -> tuple[float, float]:  # pragma: no cover - compiled
    """The shorter way and its factor; ties (within _TIE_M) as density._chunk breaks them."""
    gap = via_a - via_b
    if gap < -_TIE_M or (abs(gap) <= _TIE_M and a_wins_tie):
        return via_a, p_a
    return via_b, p_b
