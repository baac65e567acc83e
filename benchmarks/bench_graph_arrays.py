"""What reading the graph into arrays costs snapping, the density and routing.

Run from the worktree root::

    .venv/bin/python -m benchmarks.bench_graph_arrays             # 100k roads (200k edges)
    .venv/bin/python -m benchmarks.bench_graph_arrays --quick     # 5k roads, a smoke run

CPU seconds of this process (``time.process_time``: the machine is shared, wall
time drifts with the other sessions' load), best of three after a first call.
The graph is benchmarks/synthetic.py ``grid_roads(n)`` through ``graph_from_gdf``.
Where ``convoyrisk.compiled`` exists, its one compile is timed first; run the
same file against an older checkout (``PYTHONPATH=<checkout>/src:<checkout>``)
for the figures before it. Nothing is written.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import geopandas as gpd
import shapely

import convoyrisk as cr
from benchmarks.synthetic import clustered_points, graph_of, grid_roads
from convoyrisk import density, routing, snapping


def _cpu(f: Callable[[], object], k: int = 3) -> tuple[float, float]:
    times = []
    for _ in range(k):
        t = time.process_time()
        f()
        times.append(time.process_time() - t)
    return min(times), max(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="5k roads")
    ap.add_argument("--roads", type=int, default=100_000)
    args = ap.parse_args()
    roads = grid_roads(5_000 if args.quick else args.roads, seed=1)
    G = graph_of(roads)
    x, y = clustered_points(roads, 2_000, max_offset_m=100.0, seed=2)
    pts = gpd.GeoDataFrame(
        {"date": ["2023-01-01"] * len(x)}, geometry=shapely.points(x, y), crs=roads.crs
    )
    print(f"graph: {G.number_of_nodes()} nodes, {G.number_of_edges()} edges; CPU seconds")
    try:
        from convoyrisk.compiled import compile_graph  # noqa: PLC0415 - absent before it existed
    except ImportError:
        print("(no convoyrisk.compiled: each module reads the graph itself)")
    else:
        t = time.process_time()
        compile_graph(G)
        print(f"{'compile_graph(G), once':44s} {time.process_time() - t:7.3f}")
    t = time.process_time()
    index, _ = snapping.LineIndex.from_graph(G)
    print(f"{'LineIndex.from_graph, first call':44s} {time.process_time() - t:7.3f}")
    cases: list[tuple[str, Callable[[], object]]] = [
        ("LineIndex.from_graph", lambda: snapping.LineIndex.from_graph(G)),
        (
            "snap_incidents, 2,000 points, index given",
            lambda: cr.snap_incidents(G, pts, index=index),
        ),
        ("road_chainage", lambda: snapping.road_chainage(G)),
        ("RoutingIndex(G)", lambda: routing.RoutingIndex(G)),
        ("network_arrays(G)", lambda: density.network_arrays(G)),
        ("split_segments(G, 1000)", lambda: density.split_segments(G, 1000.0)),
    ]
    print(f"{'':44s} {'best':>7s} {'worst':>7s}")
    for name, f in cases:
        lo, hi = _cpu(f)
        print(f"{name:44s} {lo:7.3f} {hi:7.3f}")


if __name__ == "__main__":
    main()
