"""Incident episodes: the devices of one attack counted once.

Two IEDs that hit one convoy within minutes are one attack: counting them as
two independent incidents overstates the frequency of attacks (and the chance
of at least one). Incidents closer than ``episode_m`` in space and
``episode_hours`` in time (transitively) form one *episode*; the episode keeps
its device count and its casualties, and it is the episode that the rate
counts.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

IntArray = npt.NDArray[np.int64]


def group_episodes(
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    dates: pd.Series,
    *,
    episode_m: float,
    episode_hours: float,
) -> IntArray:
    """Episode number of each incident (0, 1, … in order of first appearance).

    Parameters
    ----------
    x, y
        Positions in a metric CRS (metres).
    dates
        Incident dates (or date-times).
    episode_m, episode_hours
        Incidents within both distances of each other (directly or through a
        chain of others) are one episode; ``episode_m = 0`` turns grouping off.

    Examples
    --------
    >>> d = pd.Series(pd.to_datetime(["2023-11-04", "2023-11-04", "2023-11-06"]))
    >>> group_episodes([0, 500, 600], [0, 0, 0], d, episode_m=2000, episode_hours=24).tolist()
    [0, 0, 1]
    """
    xy = np.column_stack([np.asarray(x, dtype=float), np.asarray(y, dtype=float)])
    n = len(xy)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if episode_m <= 0:
        return np.arange(n, dtype=np.int64)
    ok = np.isfinite(xy).all(axis=1)
    idx = np.flatnonzero(ok)
    pairs = cKDTree(xy[idx]).query_pairs(episode_m, output_type="ndarray")
    t = pd.to_datetime(dates).to_numpy("datetime64[s]").astype("int64").astype(float) / 3600.0
    if len(pairs):
        a, b = idx[pairs[:, 0]], idx[pairs[:, 1]]
        close = np.abs(t[a] - t[b]) <= episode_hours
        a, b = a[close], b[close]
    else:
        a = b = np.zeros(0, dtype=np.int64)
    graph = coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    # renumber in order of first appearance, for stable, readable ids
    _, first = np.unique(labels, return_index=True)
    order = np.argsort(first)
    renumber = np.empty(len(order), dtype=np.int64)
    renumber[order] = np.arange(len(order))
    return np.asarray(renumber[labels], dtype=np.int64)
