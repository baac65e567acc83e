"""A simulated world with known risk: incidents drawn from a known intensity along a network.

The intensity (incidents per km per 30 days) is a background rate everywhere
plus hotspots: around each hotspot node it rises by ``hotspot_rate`` times a
quartic bump of network distance, ``(1 − (d/r)²)²`` for ``d < r``. It is
constant over time, so a model fitted on the past can be checked on the
future. Each segment's count over the period is Poisson with mean
``rate·length_km·days/30``; positions are uniform along the segment and dates
uniform over the period. Used by the tests and the benchmarks to show that
the backtest ranks the truly risky segments first.
"""

from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import shapely
from scipy.sparse.csgraph import dijkstra

from ._errors import InputError
from .risk import _cut, _network


@dataclass
class SimulatedWorld:
    """Segments with their true rate, and incidents drawn from it.

    Attributes
    ----------
    segments
        The segments (as :func:`convoyrisk.risk.split_segments`) with
        ``true_rate`` (incidents per km per 30 days).
    incidents
        Points in the graph's CRS with ``row``, ``date``, ``killed``,
        ``injured``, ``precision_m`` (0), ``type`` ("IED"), ``event_id``,
        ``source`` ("simulated") and the true ``segment_id``.
    hotspots
        Graph node ids of the hotspot centres.
    """

    segments: gpd.GeoDataFrame
    incidents: gpd.GeoDataFrame
    hotspots: list[object]


def simulate_incidents(
    G: nx.MultiDiGraph,
    *,
    start: str = "2020-01-01",
    days: int = 730,
    segment_length_m: float = 1_000.0,
    background_rate: float = 0.002,
    hotspots: int = 5,
    hotspot_rate: float = 0.05,
    hotspot_radius_m: float = 5_000.0,
    seed: int = 0,
) -> SimulatedWorld:
    """Draw incidents from a known intensity along the network of `G`.

    Parameters
    ----------
    G
        The road graph (projected CRS).
    start, days
        The period incidents are drawn over.
    segment_length_m
        Segment length the intensity is defined on.
    background_rate, hotspot_rate
        Rates in incidents per km per 30 days.
    hotspots, hotspot_radius_m
        Number of hotspot centres (random nodes) and their reach along the network.
    seed
        Random seed.
    """
    if days <= 0 or background_rate < 0 or hotspot_rate < 0 or hotspot_radius_m <= 0:
        msg = "`days` and `hotspot_radius_m` must be positive and the rates zero or more."
        raise InputError(msg)
    rng = np.random.default_rng(seed)
    net = _network(G)
    segments, lix = _cut(net, segment_length_m)
    segments = segments.set_crs(G.graph["crs"])
    centres = rng.choice(net.n_nodes, size=min(hotspots, net.n_nodes), replace=False)
    rate = np.full(len(segments), background_rate)
    if len(centres):
        dist = np.atleast_2d(
            dijkstra(net.csr, directed=False, indices=centres, limit=hotspot_radius_m)
        )
        mid = (lix.start + lix.end) / 2.0
        e = lix.edge
        d = np.minimum(
            dist[:, net.eu[e]] + mid[None, :],
            dist[:, net.ev[e]] + (net.length[e] - mid)[None, :],
        )
        bump = np.where(d < hotspot_radius_m, (1.0 - (d / hotspot_radius_m) ** 2) ** 2, 0.0)
        rate = rate + hotspot_rate * bump.sum(axis=0)
    segments["true_rate"] = rate
    length_km = segments["length_m"].to_numpy(float) / 1000.0
    counts = rng.poisson(rate * length_km * days / 30.0)
    seg = np.repeat(np.arange(len(segments)), counts)
    along = (
        segments["start_m"].to_numpy(float)[seg]
        + rng.uniform(0.0, 1.0, len(seg)) * (segments["length_m"].to_numpy(float)[seg])
    )
    points = shapely.line_interpolate_point(net.geoms[lix.edge[seg]], along)
    dates = pd.Timestamp(start) + pd.to_timedelta(rng.integers(0, days, len(seg)), unit="D")
    order = np.argsort(dates.to_numpy(), kind="stable")
    n = len(seg)
    incidents = gpd.GeoDataFrame(
        {
            "row": np.arange(1, n + 1),
            "date": dates[order],
            "killed": rng.poisson(0.2, n),
            "injured": rng.poisson(1.0, n),
            "precision_m": np.zeros(n),
            "type": "IED",
            "event_id": [f"SIM-{i}" for i in range(1, n + 1)],
            "source": "simulated",
            "segment_id": seg[order],
        },
        geometry=points[order],
        crs=G.graph["crs"],
    )
    return SimulatedWorld(
        segments=segments,
        incidents=incidents,
        hotspots=[net.node_ids[c] for c in centres],
    )
