"""Compiled ranking of contributions per segment (numba), used by :mod:`.risk` on large inputs.

Imported only when numba is installed. It does, in one compiled pass over the
location-uncertain episodes' (segment, episode) pairs, what
:func:`convoyrisk.risk.top_per_segment` does in vectorised steps, with the same
comparisons: the results are the same to the bit (the tests check it), so the
choice is only one of speed.
"""

from __future__ import annotations

import numba
import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


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
