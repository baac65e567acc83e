"""Simulated worlds with known risk, independent of the risk model.

A yardstick for the estimator must not be built from the estimator's own
pieces, so nothing here uses the model's kernels, bandwidths or Empirical
Bayes. The world is:

- a **network** (:func:`desert_network`): towns scattered over a square,
  joined by long meandering tracks (a minimum spanning tree plus a few extra
  links, cut into disconnected pieces), like the roads of the Sahel;
- a **true rate** along every road (:func:`simulate_world`), piecewise
  constant on cells of ``cell_m`` (500 m): ``λ(x) = c·exp(Z(x))·M(x)``, where
  ``Z`` is a stationary Gaussian random field in the plane with exponential
  covariance ``sd²·exp(−d/range)`` (drawn on a grid by circulant embedding and
  read at each cell's midpoint), ``M`` is 1 except on a few hot corridors
  (every cell within a network distance of a random centre, a stretch of 10–40
  km along the road, ×5–20), and ``c`` scales the total so that the expected
  number of episodes over the period is ``n_episodes``. It is stationary in
  time;
- **episodes**, a Poisson process in space (by length) and time (uniform
  days). An IED episode has 1–3 devices, one row each, on the same day and
  within ``device_spread_m`` along the road; each row has casualties;
- **location error** like ACLED's ``geo_precision``: most episodes are exact
  (code 1, ``precision_m`` 0), some are known to within 5–25 km (code 2), a
  few to within 50–80 km (code 3). The reported point of an imprecise episode
  is its true point moved uniformly within a disc of radius ``precision_m``
  (the same move for all its devices: one report), which is the very meaning
  the estimator is told ``precision_m`` has.

Rates are episodes per km per 30 days, the unit of
:attr:`convoyrisk.risk.RiskResult.segments` ``rate``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import networkx as nx
import numpy as np
import numpy.typing as npt
import pandas as pd
import shapely
from scipy.fft import next_fast_len
from scipy.interpolate import RegularGridInterpolator
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components, dijkstra, minimum_spanning_tree
from scipy.spatial.distance import pdist, squareform

from . import settings
from ._errors import InputError
from .network import graph_from_gdf

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

SIM_CRS = "EPSG:32631"
"""Metric CRS of :func:`desert_network` (UTM zone 31N, the Kidal–Gao zone)."""

SIM_ORIGIN = (150_000.0, 1_650_000.0)
"""South-west corner of :func:`desert_network`'s square in :data:`SIM_CRS` (14.9°N, 0.2°W)."""

PRECISION_CODES = {1: (0.0, 0.0), 2: (5_000.0, 25_000.0), 3: (50_000.0, 80_000.0)}
"""ACLED-like ``geo_precision`` code → range (min, max) of the uncertainty radius in metres."""


# ----------------------------------------------------------------------------------------
# the network
# ----------------------------------------------------------------------------------------


def _towns(rng: np.random.Generator, n: int, extent_m: float) -> FloatArray:
    """`n` points uniform in the square, no two closer than a fair share of the area allows."""
    spacing = 0.5 * extent_m / np.sqrt(n)
    pts: list[FloatArray] = []
    while len(pts) < n:
        p = rng.uniform(0.0, extent_m, 2)
        if all(np.hypot(*(p - q)) >= spacing for q in pts):
            pts.append(p)
    return np.asarray(np.array(pts) + np.array(SIM_ORIGIN), dtype=float)


def _meander(
    rng: np.random.Generator, a: FloatArray, b: FloatArray, amplitude: float
) -> shapely.LineString:
    """A track from `a` to `b` that wanders sideways by a smooth sine series (0 at both ends)."""
    chord = b - a
    length = float(np.hypot(*chord))
    t = np.linspace(0.0, 1.0, max(int(length / 1_000.0), 2) + 1)
    coef = rng.normal(0.0, 1.0, 3) / np.arange(1, 4)
    side = sum(c * np.sin((j + 1) * np.pi * t) for j, c in enumerate(coef))
    normal = np.array([-chord[1], chord[0]]) / length
    xy = a + t[:, None] * chord + (amplitude * length * side)[:, None] * normal
    return shapely.LineString(xy)


def desert_network(
    *,
    seed: int,
    n_towns: int = 12,
    extent_km: float = 400.0,
    pieces: int = 2,
    extra_links: int = 2,
    meander: float = 0.06,
) -> nx.MultiDiGraph:
    """A sparse network like the Sahel's: towns joined by long meandering tracks.

    Towns are uniform in a square of `extent_km` (at :data:`SIM_ORIGIN`, in
    :data:`SIM_CRS`); they are joined by their Euclidean minimum spanning tree
    less its ``pieces − 1`` longest links (so the network falls into `pieces`
    disconnected parts), plus the `extra_links` shortest other links within a
    part (loops). Each link is a track wandering sideways by up to about
    `meander` of its length. Tracks that cross meet at a junction
    (:func:`convoyrisk.network.graph_from_gdf` nodes the crossings).

    Parameters
    ----------
    seed
        Random seed.
    n_towns, extent_km
        Number of towns and side of the square they lie in.
    pieces
        Disconnected parts of the network (at least 1).
    extra_links
        Links added beyond the spanning tree, shortest first.
    meander
        Sideways wander of a track, as a share of its length.

    Returns
    -------
    networkx.MultiDiGraph
        Built by :func:`convoyrisk.network.graph_from_gdf` in :data:`SIM_CRS`;
        every road is two-way; ``G.graph["towns"]`` holds the towns' coordinates.
    """
    if n_towns < 2 or not extent_km > 0 or pieces < 1 or pieces > n_towns - 1:
        msg = (
            "`n_towns` must be 2 or more, `extent_km` positive and `pieces` between 1 and "
            f"n_towns − 1; got n_towns={n_towns}, extent_km={extent_km}, pieces={pieces}."
        )
        raise InputError(msg)
    rng = np.random.default_rng(seed)
    extent_m = extent_km * 1_000.0
    for _ in range(50):  # redraw the rare layout where tracks of two parts cross
        towns = _towns(rng, n_towns, extent_m)
        dist = squareform(pdist(towns))
        tree = minimum_spanning_tree(csr_matrix(dist)).tocoo()
        order = np.argsort(-tree.data)
        keep = order[pieces - 1 :]
        links = list(zip(tree.row[keep].tolist(), tree.col[keep].tolist(), strict=True))
        adj = csr_matrix((np.ones(len(links)), tuple(np.array(links).T)), shape=dist.shape)
        _, part = connected_components(adj, directed=False)
        taken = {frozenset(link) for link in links}
        iu, ju = np.triu_indices(n_towns, 1)
        added = 0
        for k in np.argsort(dist[iu, ju]):
            if added == extra_links:
                break
            i, j = int(iu[k]), int(ju[k])
            if part[i] == part[j] and frozenset((i, j)) not in taken:
                links.append((i, j))
                taken.add(frozenset((i, j)))
                added += 1
        lines = [_meander(rng, towns[i], towns[j], meander) for i, j in links]
        roads = gpd.GeoDataFrame(
            {
                "name": [f"track T{i}–T{j}" for i, j in links],
                "highway": "track",
                "oneway": "no",
            },
            geometry=lines,
            crs=SIM_CRS,
        )
        G = graph_from_gdf(roads, crs=SIM_CRS)
        if nx.number_weakly_connected_components(G) == pieces:
            G.graph["towns"] = towns
            return G
    msg = "Could not lay out a network with that many separate pieces: lower `pieces`."
    raise InputError(msg)


def with_empty_roads(
    G: nx.MultiDiGraph, *, side_km: float = 400.0, north_km: float = 1_500.0
) -> nx.MultiDiGraph:
    """`G` plus a square of four empty tracks far to the north, joined to nothing.

    For extent-invariance checks: a model's rates on the roads of `G` should not
    change when unrelated road is loaded. The square (``4·side_km`` of road) has
    its south-west corner `north_km` north of `G`'s northernmost node, above its
    westernmost one (north, not east: a transverse Mercator CRS such as
    :data:`SIM_CRS` stays true to scale along its meridian, so the graph keeps
    the graph contract); its nodes are numbered after `G`'s (integer node ids).
    `G`'s nodes, edges, keys and attributes are kept as they are.
    """
    xs = [float(d["x"]) for _, d in G.nodes(data=True)]
    ys = [float(d["y"]) for _, d in G.nodes(data=True)]
    x0, y0, side = min(xs), max(ys) + north_km * 1_000.0, side_km * 1_000.0
    corners = [(x0, y0), (x0 + side, y0), (x0 + side, y0 + side), (x0, y0 + side)]
    sides = [shapely.LineString([corners[i], corners[(i + 1) % 4]]) for i in range(4)]
    roads = gpd.GeoDataFrame(
        {"highway": ["track"] * 4, "oneway": ["no"] * 4}, geometry=sides, crs=G.graph["crs"]
    )
    H = graph_from_gdf(roads, crs=G.graph["crs"])
    offset = max(int(n) for n in G.nodes) + 1
    H = nx.relabel_nodes(H, {n: int(n) + offset for n in H.nodes})
    out = nx.union(G, H)
    out.graph.update(G.graph)
    return out


# ----------------------------------------------------------------------------------------
# the true rate
# ----------------------------------------------------------------------------------------


def gaussian_field(
    rng: np.random.Generator,
    shape: tuple[int, int],
    step_m: float,
    range_m: float,
    sd: float = 1.0,
) -> tuple[FloatArray, float]:
    """A stationary Gaussian field on a grid, exponential covariance ``sd²·exp(−d/range_m)``.

    Circulant embedding (Dietrich & Newsam 1997; Wood & Chan 1994): the grid
    is padded to a torus at least ``shape + 2·range_m`` wide, the covariance's
    eigenvalues on it are the FFT of its first row; negative ones (if any) are
    set to 0 and their share returned, so the caller can see the error.

    Returns
    -------
    (field, negative_share)
        The field (``shape``), and the share of the eigenvalue mass that was negative.
    """
    pad = int(np.ceil(2.0 * range_m / step_m))
    m = [next_fast_len(2 * (s + pad)) for s in shape]
    lag = [np.minimum(np.arange(k), k - np.arange(k)) * step_m for k in m]
    d = np.hypot(lag[0][:, None], lag[1][None, :])
    cov = sd**2 * np.exp(-d / range_m)
    eig = np.real(np.fft.fft2(cov))
    mass = float(np.abs(eig).sum())
    negative = float(-eig[eig < 0].sum() / mass) if mass > 0 else 0.0
    eig = np.clip(eig, 0.0, None)
    noise = rng.normal(size=m) + 1j * rng.normal(size=m)
    z = np.fft.fft2(np.sqrt(eig / (m[0] * m[1])) * noise)
    return np.asarray(np.real(z)[: shape[0], : shape[1]], dtype=float), negative


@dataclass
class _Edges:
    """Forward edges of a graph, as arrays."""

    u: npt.NDArray[Any]
    v: npt.NDArray[Any]
    key: IntArray
    iu: IntArray  # node numbers
    iv: IntArray
    geoms: npt.NDArray[np.object_]
    length: FloatArray  # metres along the geometry
    nodes: list[Any]


def _edges(G: nx.MultiDiGraph) -> _Edges:
    rows = [
        (u, v, k, d) for u, v, k, d in G.edges(keys=True, data=True) if not d.get("reversed", False)
    ]
    if not rows:
        msg = "The graph has no edges: nothing to simulate on."
        raise InputError(msg)
    geoms = np.empty(len(rows), dtype=object)
    for i, (u, v, _, d) in enumerate(rows):
        g = d.get("geometry")
        if g is None:
            g = shapely.LineString(
                [(G.nodes[u]["x"], G.nodes[u]["y"]), (G.nodes[v]["x"], G.nodes[v]["y"])]
            )
        geoms[i] = g
    nodes = list(G.nodes)
    pos = {n: i for i, n in enumerate(nodes)}
    return _Edges(
        u=np.array([r[0] for r in rows]),
        v=np.array([r[1] for r in rows]),
        key=np.array([r[2] for r in rows], dtype=np.int64),
        iu=np.array([pos[r[0]] for r in rows], dtype=np.int64),
        iv=np.array([pos[r[1]] for r in rows], dtype=np.int64),
        geoms=geoms,
        length=shapely.length(geoms).astype(float),
        nodes=nodes,
    )


def _node_distances(edges: _Edges, sources: IntArray) -> FloatArray:
    """Shortest road distances (metres along the geometry) from node numbers `sources`."""
    n = len(edges.nodes)
    graph = csr_matrix((edges.length, (edges.iu, edges.iv)), shape=(n, n))
    return np.atleast_2d(dijkstra(graph, directed=False, indices=sources))


@dataclass
class SimulatedWorld:
    """A simulated world: the true rate along the roads, and incidents drawn from it.

    Attributes
    ----------
    incidents
        One row per device, like :attr:`convoyrisk.incidents.IncidentTable.incidents`
        (EPSG:4326): ``row``, ``date``, ``event_id``, ``type``, ``killed``,
        ``injured``, ``precision_m``, ``geo_precision``, ``source``
        ("simulated"), ``episode_id`` and the reported point.
    episodes
        One row per episode (graph CRS): ``episode_id``, ``date``, ``day``,
        ``devices``, ``type``, ``geo_precision``, ``precision_m``, the edge
        ``u``, ``v``, ``key``, ``offset_m`` along it and the true point.
    true_points
        The true point of each incident row (graph CRS), aligned with `incidents`.
    cells
        The truth: ``edge`` (number), ``u``, ``v``, ``key``, ``start_m``,
        ``end_m`` along the edge's geometry, ``field`` (``Z``), ``corridor``
        (the multiplier ``M``) and ``rate`` (episodes per km per 30 days).
    corridors
        One row per hot corridor: ``u``, ``v``, ``key``, ``offset_m`` of its
        centre, ``half_length_m`` (network distance) and ``multiplier``.
    days, start, n_episodes
        The period and the expected number of episodes over it.
    crs
        The graph's CRS.
    field_negative_share
        Share of the circulant embedding's eigenvalue mass set to 0 (the field's error).
    """

    incidents: gpd.GeoDataFrame
    episodes: gpd.GeoDataFrame
    true_points: gpd.GeoSeries
    cells: pd.DataFrame
    corridors: pd.DataFrame
    days: int
    start: pd.Timestamp
    n_episodes: float
    crs: Any
    field_negative_share: float = 0.0

    def expected_episodes(self) -> float:
        """Expected episodes over the whole network and period: ``Σ rate·km·days/30``."""
        km = (self.cells["end_m"] - self.cells["start_m"]).to_numpy(float) / 1_000.0
        return float(np.sum(self.cells["rate"].to_numpy(float) * km) * self.days / 30.0)

    def true_rate(self, segments: pd.DataFrame) -> FloatArray:
        """True rate averaged over each segment (episodes per km per 30 days).

        Parameters
        ----------
        segments
            With ``u``, ``v``, ``key``, ``start_m`` and ``end_m`` (metres along
            the geometry; ``length_m`` stands for the extent when ``end_m`` is
            missing), as :func:`convoyrisk.density.split_segments` or
            ``RiskResult.segments`` give them, on the graph the world was drawn on.

        Raises
        ------
        InputError
            If a segment's edge is not one of the world's roads.
        """
        cells = self.cells
        first = np.flatnonzero(np.r_[True, np.diff(cells["edge"].to_numpy()) != 0])
        edge_len = cells["end_m"].to_numpy(float)[np.r_[first[1:], len(cells)] - 1]
        edge_ids = pd.MultiIndex.from_arrays(
            [
                cells["u"].to_numpy()[first],
                cells["v"].to_numpy()[first],
                cells["key"].to_numpy()[first],
            ]
        )
        idx = edge_ids.get_indexer(
            pd.MultiIndex.from_arrays(
                [segments["u"].to_numpy(), segments["v"].to_numpy(), segments["key"].to_numpy()]
            )
        )
        if (idx < 0).any():
            bad = int((idx < 0).sum())
            msg = (
                f"{bad} segment(s) lie on roads this world was not drawn on: "
                "give segments of the same graph (u, v, key)."
            )
            raise InputError(msg)
        # one increasing axis over all edges: cell ends shifted past the earlier edges,
        # and the integral of the rate along it (piecewise linear, exact for the truth)
        shift = np.r_[0.0, np.cumsum(edge_len + 1.0)[:-1]]
        cell_edge = np.repeat(np.arange(len(first)), np.diff(np.r_[first, len(cells)]))
        ends = cells["end_m"].to_numpy(float) + shift[cell_edge]
        mass = np.cumsum(
            cells["rate"].to_numpy(float) * (cells["end_m"] - cells["start_m"]).to_numpy(float)
        )
        axis = np.r_[shift, ends]
        integral = np.r_[np.r_[0.0, mass[first[1:] - 1]], mass]
        order = np.argsort(axis, kind="stable")
        axis, integral = axis[order], integral[order]
        start = np.clip(segments["start_m"].to_numpy(float), 0.0, edge_len[idx])
        # the world is drawn along the geometry: a segment ends at its `end_m` when
        # given (`length_m` is its share of the edge's geodesic `length`)
        along = (
            segments["end_m"].to_numpy(float)
            if "end_m" in segments
            else start + segments["length_m"].to_numpy(float)
        )
        end = np.clip(along, 0.0, edge_len[idx])
        lo = np.interp(start + shift[idx], axis, integral)
        hi = np.interp(end + shift[idx], axis, integral)
        width = end - start
        out = np.zeros(len(segments))
        np.divide(hi - lo, width, out=out, where=width > 0)
        return out


def _cells(edges: _Edges, cell_m: float) -> pd.DataFrame:
    count = np.maximum(np.ceil(edges.length / cell_m - 1e-9), 1).astype(np.int64)
    edge = np.repeat(np.arange(len(count)), count)
    j = np.arange(len(edge)) - np.repeat(np.cumsum(count) - count, count)
    step = edges.length[edge] / count[edge]
    start = j * step
    end = np.where(j == count[edge] - 1, edges.length[edge], (j + 1) * step)
    mid = shapely.get_coordinates(
        shapely.line_interpolate_point(edges.geoms[edge], (start + end) / 2)
    )
    return pd.DataFrame(
        {
            "edge": edge,
            "u": edges.u[edge],
            "v": edges.v[edge],
            "key": edges.key[edge],
            "start_m": start,
            "end_m": end,
            "x": mid[:, 0],
            "y": mid[:, 1],
        }
    )


def _field_at(
    rng: np.random.Generator, xy: FloatArray, step_m: float, range_m: float, sd: float
) -> tuple[FloatArray, float]:
    lo = xy.min(axis=0) - step_m
    shape = (
        int(np.ceil((xy[:, 0].max() - lo[0]) / step_m)) + 2,
        int(np.ceil((xy[:, 1].max() - lo[1]) / step_m)) + 2,
    )
    grid, negative = gaussian_field(rng, shape, step_m, range_m, sd)
    axes = (lo[0] + step_m * np.arange(shape[0]), lo[1] + step_m * np.arange(shape[1]))
    return RegularGridInterpolator(axes, grid)(xy), negative


def _corridors(
    rng: np.random.Generator,
    edges: _Edges,
    cells: pd.DataFrame,
    *,
    n: int,
    length_km: tuple[float, float],
    multiplier: tuple[float, float],
) -> tuple[FloatArray, pd.DataFrame]:
    """Multiplier per cell (max over corridors), and the corridors drawn."""
    mult = np.ones(len(cells))
    rows = []
    mid = ((cells["start_m"] + cells["end_m"]) / 2.0).to_numpy(float)
    e = cells["edge"].to_numpy()
    for _ in range(n):
        c = int(rng.choice(len(edges.length), p=edges.length / edges.length.sum()))
        at = float(rng.uniform(0.0, edges.length[c]))
        half = float(rng.uniform(*length_km)) * 500.0
        m = float(np.exp(rng.uniform(np.log(multiplier[0]), np.log(multiplier[1]))))
        du, dv = _node_distances(edges, np.array([edges.iu[c], edges.iv[c]]))
        to_node = np.minimum(du + at, dv + edges.length[c] - at)  # centre → each node
        d = np.minimum(to_node[edges.iu[e]] + mid, to_node[edges.iv[e]] + edges.length[e] - mid)
        d = np.where(e == c, np.minimum(d, np.abs(mid - at)), d)
        mult = np.where(d <= half, np.maximum(mult, m), mult)
        rows.append(
            {
                "u": edges.u[c],
                "v": edges.v[c],
                "key": edges.key[c],
                "offset_m": at,
                "half_length_m": half,
                "multiplier": m,
            }
        )
    return mult, pd.DataFrame(
        rows, columns=["u", "v", "key", "offset_m", "half_length_m", "multiplier"]
    )


def _in_disc(rng: np.random.Generator, radius: FloatArray) -> FloatArray:
    """Moves uniform in discs of the given radii (distance ``R·√U``, uniform direction)."""
    r = radius * np.sqrt(rng.uniform(0.0, 1.0, len(radius)))
    a = rng.uniform(0.0, 2.0 * np.pi, len(radius))
    return np.column_stack([r * np.cos(a), r * np.sin(a)])


def simulate_world(
    G: nx.MultiDiGraph,
    *,
    n_episodes: float,
    days: int = 730,
    seed: int,
    start: str = "2020-01-01",
    cell_m: float = 500.0,
    range_km: float = 40.0,
    sd: float = 1.0,
    corridors: int = 3,
    corridor_km: tuple[float, float] = (10.0, 40.0),
    corridor_multiplier: tuple[float, float] = (5.0, 20.0),
    ied_share: float = 0.75,
    devices_p: tuple[float, float, float] = (0.6, 0.3, 0.1),
    device_spread_m: float = 300.0,
    precision_p: tuple[float, float, float] = (0.75, 0.2, 0.05),
    killed_mean: float = 0.3,
    injured_mean: float = 1.2,
) -> SimulatedWorld:
    """Draw a world's true rate along the roads of `G`, and episodes from it.

    Parameters
    ----------
    G
        Road graph in a metric CRS (e.g. :func:`desert_network`).
    n_episodes
        Expected number of episodes over the period (the rate is scaled to it).
    days, start
        The period: `days` days from `start` (YYYY-MM-DD).
    seed
        Random seed.
    cell_m
        The true rate is constant on cells of at most this length along each road.
    range_km, sd
        The log-rate field: exponential covariance ``sd²·exp(−d/range)`` over
        straight-line distance.
    corridors, corridor_km, corridor_multiplier
        Number of hot corridors, their length along the road (centre ± half,
        every branch at a junction) and rate multiplier (log-uniform), drawn
        uniformly from the ranges.
    ied_share, devices_p, device_spread_m
        Share of episodes that are IED attacks ("IED"; the rest "ambush"), the
        probabilities of an IED attack having 1, 2 or 3 devices, and how far
        along the road from the episode's point a device may lie.
    precision_p
        Probabilities of ``geo_precision`` 1, 2 and 3 (:data:`PRECISION_CODES`).
    killed_mean, injured_mean
        Poisson means of the casualties of each row.
    """
    checks = {
        "n_episodes": n_episodes >= 0,
        "days": days >= 1,
        "cell_m": cell_m > 0,
        "range_km": range_km > 0,
        "sd": sd >= 0,
        "devices_p": np.isclose(sum(devices_p), 1.0) and min(devices_p) >= 0,
        "precision_p": np.isclose(sum(precision_p), 1.0) and min(precision_p) >= 0,
    }
    bad = [k for k, ok in checks.items() if not ok]
    if bad:
        msg = f"Invalid simulation parameter(s) {', '.join(bad)}: see `simulate_world`'s help."
        raise InputError(msg)
    rng = np.random.default_rng(seed)
    edges = _edges(G)
    cells = _cells(edges, cell_m)
    xy = cells[["x", "y"]].to_numpy(float)
    step = max(cell_m, range_km * 1_000.0 / 40.0)  # grid neighbours correlate at ≥ 0.975
    field, negative = _field_at(rng, xy, step, range_km * 1_000.0, sd)
    mult, hot = _corridors(
        rng, edges, cells, n=corridors, length_km=corridor_km, multiplier=corridor_multiplier
    )
    shape = np.exp(field) * mult
    km = (cells["end_m"] - cells["start_m"]).to_numpy(float) / 1_000.0
    scale = n_episodes / (np.sum(shape * km) * days / 30.0)
    cells["field"] = field
    cells["corridor"] = mult
    cells["rate"] = scale * shape

    # episodes: a Poisson process by length and time
    n = int(rng.poisson(n_episodes))
    p = shape * km
    cell = rng.choice(len(cells), size=n, p=p / p.sum())
    offset = rng.uniform(cells["start_m"].to_numpy()[cell], cells["end_m"].to_numpy()[cell])
    day = np.sort(rng.integers(0, days, n))
    edge = cells["edge"].to_numpy()[cell]
    ied = rng.uniform(size=n) < ied_share
    devices = np.where(ied, rng.choice([1, 2, 3], size=n, p=list(devices_p)), 1)
    code = rng.choice([1, 2, 3], size=n, p=list(precision_p))
    lo = np.array([PRECISION_CODES[c][0] for c in (1, 2, 3)])[code - 1]
    hi = np.array([PRECISION_CODES[c][1] for c in (1, 2, 3)])[code - 1]
    radius = rng.uniform(lo, hi)
    move = _in_disc(rng, radius)
    crs = G.graph["crs"]
    t0 = pd.Timestamp(start)
    dates = t0 + pd.to_timedelta(day, unit="D")
    ep_points = shapely.line_interpolate_point(edges.geoms[edge], offset)
    episodes = gpd.GeoDataFrame(
        {
            "episode_id": np.arange(n, dtype=np.int64),
            "date": dates,
            "day": day,
            "devices": devices,
            "type": np.where(ied, "IED", "ambush"),
            "geo_precision": code,
            "precision_m": radius,
            "u": edges.u[edge],
            "v": edges.v[edge],
            "key": edges.key[edge],
            "offset_m": offset,
        },
        geometry=ep_points,
        crs=crs,
    )

    # rows: one per device, the first at the episode's point, the others along the road
    ep = np.repeat(np.arange(n), devices)
    first = np.r_[True, ep[1:] != ep[:-1]] if len(ep) else np.zeros(0, dtype=bool)
    along = np.where(first, 0.0, rng.uniform(-device_spread_m, device_spread_m, len(ep)))
    dev_off = np.clip(offset[ep] + along, 0.0, edges.length[edge[ep]])
    true_pts = shapely.line_interpolate_point(edges.geoms[edge[ep]], dev_off)
    reported = shapely.points(shapely.get_coordinates(true_pts) + move[ep])
    m = len(ep)
    incidents = gpd.GeoDataFrame(
        {
            "row": np.arange(1, m + 1, dtype=np.int64),
            "date": dates[ep],
            "event_id": [f"SIM{e}-{k}" for e, k in zip(ep, _rank_within(ep), strict=True)],
            "type": episodes["type"].to_numpy()[ep],
            "killed": rng.poisson(killed_mean, m).astype(float),
            "injured": rng.poisson(injured_mean, m).astype(float),
            "precision_m": radius[ep],
            "geo_precision": code[ep],
            "source": "simulated",
            "episode_id": ep.astype(np.int64),
        },
        geometry=reported,
        crs=crs,
    ).to_crs(settings.display_crs)
    return SimulatedWorld(
        incidents=incidents,
        episodes=episodes,
        true_points=gpd.GeoSeries(true_pts, crs=crs),
        cells=cells,
        corridors=hot,
        days=int(days),
        start=t0,
        n_episodes=float(n_episodes),
        crs=crs,
        field_negative_share=negative,
    )


def _rank_within(groups: IntArray) -> IntArray:
    """0, 1, 2… within each run of equal values of sorted `groups`."""
    if len(groups) == 0:
        return np.zeros(0, dtype=np.int64)
    start = np.r_[True, groups[1:] != groups[:-1]]
    idx = np.arange(len(groups))
    return np.asarray(idx - np.maximum.accumulate(np.where(start, idx, 0)), dtype=np.int64)
