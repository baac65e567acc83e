"""Compiled loops of the Empirical Bayes step (numba), used by :mod:`.risk` on large inputs.

Imported only when numba is installed. Each function does, in one compiled
pass over the location-uncertain episodes' (segment, episode) pairs, what a
numpy function of :mod:`.risk` does in vectorised steps, with the same
operations in the same order: the results are the same to the bit (the tests
check it), so the choice is only one of speed.
"""

from __future__ import annotations

import numba
import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@numba.njit(cache=True, nogil=True)
def respread_pass(  # noqa: PLR0917 - the arrays of one pass
    lixel: IntArray,
    owner: IntArray,
    starts: IntArray,
    mass: FloatArray,
    shape: FloatArray,
    rate: FloatArray,
    length_km: FloatArray,
    per_mass: float,
    weight: FloatArray,
    out: FloatArray,
    lixel_sum: FloatArray,
) -> float:  # pragma: no cover - compiled
    """One re-allocation pass, as ``risk._respread_pass``; returns the largest move.

    The pairs of one episode are contiguous: ``starts[b]`` to ``starts[b + 1]``
    (each episode once). Each episode's scores are summed, then its pairs
    normalised while still in cache. Writes the new masses into `out` and
    their sum per segment into `lixel_sum`.
    """
    lixel_sum[:] = 0.0
    moved = 0.0
    for b in range(len(starts) - 1):
        lo, hi = starts[b], starts[b + 1]
        total = 0.0
        for i in range(lo, hi):
            s = lixel[i]
            length = length_km[s]
            own = per_mass / max(length, 1e-12)
            score = shape[s] - own * mass[i]
            score = max(score, 1e-300)
            score = score / rate[s]
            score = score * length
            out[i] = score
            total += score
        w = weight[owner[lo]]
        for i in range(lo, hi):
            v = w * out[i] / max(total, 1e-300) if total > 0 else 0.0
            moved = max(moved, abs(v - mass[i]) / max(w, 1e-300))
            out[i] = v
            lixel_sum[lixel[i]] += v
    return moved


@numba.njit(cache=True, nogil=True)
def top_per_segment(
    lixel: IntArray, owner: IntArray, mass: FloatArray, n_lix: int, k: int
) -> tuple[IntArray, FloatArray]:  # pragma: no cover - compiled
    """The `k` largest positive contributions per segment, as ``risk.top_per_segment``."""
    top_id = np.full((n_lix, k), -1, dtype=np.int64)
    top_val = np.zeros((n_lix, k))
    for i in range(len(lixel)):
        v = mass[i]
        if not v > 0.0:
            continue
        s, o = lixel[i], owner[i]
        j = 0
        while (
            j < k
            and top_id[s, j] >= 0
            and (top_val[s, j] > v or (top_val[s, j] == v and top_id[s, j] < o))
        ):
            j += 1
        if j == k:
            continue
        for m in range(k - 1, j, -1):
            top_id[s, m] = top_id[s, m - 1]
            top_val[s, m] = top_val[s, m - 1]
        top_id[s, j] = o
        top_val[s, j] = v
    return top_id, top_val
