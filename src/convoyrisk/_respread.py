"""One compiled pass re-allocating location-uncertain episodes (numba), used by :mod:`.risk`.

It does, in one pass over the (episode, segment) pairs, what the vectorised
steps of the re-allocation did (each a full array over tens of millions of
pairs at a country's size), with the same floating-point operations in the
same order, so the results are bitwise the same.
"""

from __future__ import annotations

import numba
import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@numba.njit(cache=True, nogil=True)
def respread_pass(  # noqa: PLR0917 - parallel arrays of one compiled loop
    lixel: IntArray,
    owner: IntArray,
    length_km: FloatArray,
    weight: FloatArray,
    spread_mass: FloatArray,
    shape: FloatArray,
    rate: FloatArray,
    per_mass: float,
    new: FloatArray,
    by_lixel: FloatArray,
    raw: FloatArray,
) -> float:
    """Write each pair's new share into `new`; return the largest move relative to weight.

    For pair ``i`` (episode ``owner[i]``, weighing ``weight[owner[i]]``, on
    segment ``lixel[i]`` of ``length_km[lixel[i]]``): the score is length × the
    segment's posterior mean without the pair's own share, and the episode's
    weight is shared in proportion to its pairs' scores.

    The new shares are also added, pair by pair in order (as ``np.bincount``
    adds them), to `by_lixel` (zeros on entry) and to `raw` (the other
    sources' counts on entry).
    """
    n = len(lixel)
    total = np.zeros(len(weight))
    for i in range(n):  # `new` holds the scores until the second loop
        j = lixel[i]
        lk = length_km[j]
        own = per_mass * spread_mass[i] / max(lk, 1e-12)
        s = lk * (max(shape[j] - own, 1e-300) / rate[j])
        new[i] = s
        total[owner[i]] += s
    moved = 0.0
    for i in range(n):
        t = total[owner[i]]
        w = weight[owner[i]]
        value = w * new[i] / max(t, 1e-300) if t > 0 else 0.0
        moved = max(moved, abs(value - spread_mass[i]) / max(w, 1e-300))
        new[i] = value
        by_lixel[lixel[i]] += value
        raw[lixel[i]] += value
    return moved
