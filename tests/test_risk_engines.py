"""The kernel density engines agree: numba and numpy, threads, the subnetwork bound."""

from __future__ import annotations

import dataclasses
import io

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import pytest
import shapely
from benchmarks.synthetic import clustered_points, dated, graph_of, grid_roads
from rich.console import Console
from scipy.sparse.csgraph import dijkstra

import convoyrisk as cr
from convoyrisk import cli, density, risk
from convoyrisk.risk import RiskParams

pytest.importorskip("numba")


@pytest.fixture(scope="module")
def world() -> tuple[nx.MultiDiGraph, gpd.GeoDataFrame]:
    """A 3 000-road curved grid, 1 500 clustered incidents (some recent, some imprecise)."""
    roads = grid_roads(3_000, seed=11)
    G = graph_of(roads)
    n = 1_500
    x, y = clustered_points(roads, n, max_offset_m=150.0, seed=12)
    rng = np.random.default_rng(13)
    frame = pd.DataFrame(
        {
            "row": np.arange(1, n + 1),
            "date": dated(n, start="2022-06-01", days=214, seed=14),
            "killed": rng.poisson(0.5, n).astype(float),
            "injured": rng.poisson(1.0, n).astype(float),
            # a tenth are imprecise: a wider kernel, another reach class
            "precision_m": np.where(rng.random(n) < 0.1, 2_500.0, 0.0),
            "event_id": [f"E{i}" for i in range(n)],
        }
    )
    incidents = gpd.GeoDataFrame(frame, geometry=shapely.points(x, y), crs=roads.crs)
    return G, cr.snap_incidents(G, incidents, max_distance_m=1_000.0)


def _density(G, snapped, params: RiskParams, **kw) -> tuple[density.Density, pd.DataFrame]:
    prep = risk.prepare_scoring(G, snapped, params, "2023-01-01")
    net, lix, inc, sources = prep.net, prep.lix, prep.incidents, prep.sources
    return density.network_density(net, lix, sources, params.kernel_spec, **kw), inc


def _same(a: density.Density, b: density.Density, inc: pd.DataFrame, *, rel: float) -> None:
    np.testing.assert_allclose(a.mass, b.mass, rtol=rel, atol=rel * a.mass.max())
    np.testing.assert_array_equal(a.count, b.count)
    np.testing.assert_allclose(a.raw, b.raw, rtol=1e-12)
    assert risk._top_text(inc, a) == risk._top_text(inc, b)


@pytest.mark.parametrize("junction", ["equal-split", "none"])
@pytest.mark.parametrize("kernel", ["quartic", "uniform", "triangular"])
def test_numba_and_numpy_engines_agree(world, junction, kernel) -> None:
    """Same formulas, two implementations: masses to 1e-12, the same counts and names."""
    G, snapped = world
    params = RiskParams(
        segment_length_m=120.0,  # several lixels per edge
        bandwidth_m=1_200.0,
        kernel=kernel,
        junction=junction,
        near_repeat_days=30.0,  # a second kernel for the most recent incidents
    )
    fast, inc = _density(G, snapped, params, engine="numba", workers=1)
    slow, _ = _density(G, snapped, params, engine="numpy")
    assert fast.count.sum() > 100_000  # a real workload, not a few pairs
    _same(fast, slow, inc, rel=1e-12)


def test_threads_give_the_same_result_every_time(world) -> None:
    """Per-thread sums added in a fixed order: two runs on 3 threads are bitwise equal."""
    G, snapped = world
    params = RiskParams(segment_length_m=200.0, bandwidth_m=1_500.0)
    one, inc = _density(G, snapped, params, engine="numba", workers=1)
    three, _ = _density(G, snapped, params, engine="numba", workers=3)
    again, _ = _density(G, snapped, params, engine="numba", workers=3)
    _same(one, three, inc, rel=1e-12)
    np.testing.assert_array_equal(three.mass, again.mass)
    np.testing.assert_array_equal(three.top_id, again.top_id)


def test_the_subnetwork_bound_changes_nothing(world) -> None:
    """Dijkstra on the nodes within reach/stretch gives what it gives on the whole network."""
    G, snapped = world
    params = RiskParams(segment_length_m=200.0, bandwidth_m=1_500.0)
    prep = risk.prepare_scoring(G, snapped, params, "2023-01-01")
    net, lix, inc, sources = prep.net, prep.lix, prep.incidents, prep.sources
    assert net.stretch >= 1.0  # lengths run along curved geometries: never below the chord
    bounded = density.network_density(net, lix, sources, params.kernel_spec, workers=1)
    whole_net = dataclasses.replace(net, stretch=0.0)  # 0: no bound, every node
    whole = density.network_density(whole_net, lix, sources, params.kernel_spec, workers=1)
    _same(bounded, whole, inc, rel=1e-12)


def test_nodes_near_holds_every_node_within_the_distance() -> None:
    """Against scipy on the whole network, with lengths shorter than the chords (stretch < 1)."""
    G = graph_of(grid_roads(3_000, seed=3))  # 40 x 40 nodes, 200 m apart
    for _, _, d in G.edges(data=True):
        d["length"] *= 0.4  # a path may now reach farther than its length in straight line
    net = density.network_arrays(G)
    assert 0.3 < net.stretch < 0.5
    rng = np.random.default_rng(0)
    for _ in range(20):
        first = int(rng.integers(net.n_nodes))
        nodes = np.unique([first, *net.csr[first].indices[:1]])  # a node and a neighbour
        dist = dijkstra(net.csr, directed=False, indices=nodes, limit=600.0)
        within = np.flatnonzero(np.isfinite(dist).any(axis=0))
        assert len(within) > 20
        near = net.nodes_near(nodes, 600.0)
        assert np.isin(within, near).all()
        assert len(near) < net.n_nodes  # and the bound does cut the network


def test_engine_argument_is_checked(world) -> None:
    # auto: numpy for a few incidents (no compiling), numba for many
    assert density.density_engine("auto", 6) == "numpy"
    assert density.density_engine("auto", density.AUTO_NUMBA_SOURCES) == "numba"
    assert density.density_engine("numba", 6) == "numba"
    G, snapped = world
    with pytest.raises(cr.InputError, match="`engine` must be"):
        cr.score_segments(G, snapped, engine="gpu")
    with pytest.raises(cr.InputError, match="`workers` must be 1 or more"):
        cr.score_segments(G, snapped, workers=0)


def test_progress_reaches_the_total_in_every_stage(tmp_path, world) -> None:
    """Library progress callbacks: non-decreasing, and each stage ends at its total."""
    G, snapped = world
    calls: list[tuple[str, int, int]] = []

    def record(stage: str, done: int, total: int) -> None:
        calls.append((stage, done, total))

    csv = tmp_path / "incidents.csv"
    frame = pd.DataFrame(
        {
            "latitude": np.linspace(15.0, 16.0, 5_000),
            "longitude": np.linspace(0.5, 1.5, 5_000),
            "date": "2023-11-01",
        }
    )
    frame.to_csv(csv, index=False)
    cr.read_incidents(csv, chunk_rows=1_000, progress=record)
    cr.load_graph(progress=record)
    cr.snap_incidents(G, snapped[["date", "geometry"]], progress=record)
    cr.score_segments(G, snapped, bandwidth_m=1_000.0, progress=record)
    stages = {}
    for stage, done, total in calls:
        assert 0 <= done <= total
        assert done >= stages.get(stage, (0, 0))[0]
        stages[stage] = (done, total)
    assert set(stages) == {"reading incidents", "building network", "snapping", "scoring"}
    assert stages["reading incidents"] == (csv.stat().st_size,) * 2
    assert stages["building network"] == (5, 5)
    assert stages["snapping"] == (len(snapped),) * 2
    used = int(snapped["status"].isin(["snapped", "spread"]).sum())
    assert 0 < stages["scoring"][1] <= used  # one kernel source per located episode
    assert stages["scoring"][0] == stages["scoring"][1]


def test_cli_draws_bars_only_on_a_terminal(monkeypatch) -> None:
    out = io.StringIO()
    monkeypatch.setattr(cli, "err", Console(file=out, force_terminal=True, width=100))
    with cli._progress_bar(quiet=False) as progress:
        assert progress is not None
        progress("scoring", 50, 100)
        progress("scoring", 100, 100)
    assert "scoring" in out.getvalue()
    with cli._progress_bar(quiet=True) as progress:
        assert progress is None
    monkeypatch.setattr(cli, "err", Console(file=io.StringIO(), force_terminal=False))
    with cli._progress_bar(quiet=False) as progress:
        assert progress is None


def test_a_partition_scores_the_same_on_the_part_it_can_reach(world) -> None:
    """What the dask engine sends a worker: the reachable part gives the whole network's sums."""
    G, snapped = world
    params = RiskParams(segment_length_m=200.0, bandwidth_m=1_500.0)
    prep = risk.prepare_scoring(G, snapped, params, "2023-01-01")
    net, lix, inc, sources = prep.net, prep.lix, prep.incidents, prep.sources
    order, _starts = density.source_order(net, sources)
    ids = np.sort(order[: len(order) // 4])  # a quarter of the incidents, neighbours in Z-order
    some = sources.take(ids)
    whole = density.network_density(net, lix, some, params.kernel_spec, workers=1)
    part_net, part_lix, part_src, lix_of = density.reachable_part(net, lix, some)
    assert len(part_net.eu) < 0.8 * len(net.eu)  # it is a part
    part = density.network_density(part_net, part_lix, part_src, params.kernel_spec, workers=1)
    mass = np.zeros_like(whole.mass)
    mass[lix_of] = part.mass
    np.testing.assert_allclose(mass, whole.mass, rtol=1e-12, atol=1e-12 * whole.mass.max())
    count = np.zeros_like(whole.count)
    count[lix_of] = part.count
    np.testing.assert_array_equal(count, whole.count)
    # the same named contributors (the part visits edges in another order, so which
    # contributions below the naming threshold were ranked on the way may differ)
    top_id, top_val = np.full_like(whole.top_id, -1), np.zeros_like(whole.top_val)
    top_id[lix_of], top_val[lix_of] = part.top_id, part.top_val
    mapped = density.Density(mass, count, top_id, top_val, part.raw)
    assert risk._top_text(inc, mapped) == risk._top_text(inc, whole)
