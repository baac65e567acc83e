"""Alternatives for one far pair: ours (penalty method on scipy csgraph) vs Yen (OSMnx).

Run from the worktree root::

    .venv/bin/python -m benchmarks.bench_routing            # 10k and 100k edges
    .venv/bin/python -m benchmarks.bench_routing --quick    # 2k edges, a smoke run

Each case runs in its own forked process (so peak memory is its own, and Yen can
be stopped at `--yen-timeout`), on the same graph built once in the parent:
benchmarks/synthetic.py grid_roads(n) -> convoyrisk.graph_from_gdf. The pair is
the two nodes farthest apart along the grid's diagonal. For each method: time
for k = 3, the routes' lengths (stretch over the shortest) and the largest share
of a route's length on roads a better route also uses (convoyrisk.routing.
shared_fraction).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import resource
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np

from convoyrisk.routing import (
    RoutingIndex,
    alternative_routes,
    path_edges,
    route_length_m,
    shared_fraction,
)

from .synthetic import graph_of, grid_roads

OUT = Path("docs/benchmarks/routing.md")


def build(n_edges: int) -> nx.MultiDiGraph:
    return graph_of(grid_roads(n_edges))


def far_pair(G: nx.MultiDiGraph) -> tuple[int, int]:
    ids = np.fromiter(G.nodes, dtype=np.int64)
    s = np.array([G.nodes[n]["x"] + G.nodes[n]["y"] for n in ids])
    return int(ids[np.argmin(s)]), int(ids[np.argmax(s)])


def _child(fn: Callable[[], list[list[tuple[int, int, int]]]], conn: Any) -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    routes = fn()
    seconds = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    conn.send((seconds, (after - before) / 1024.0, routes))
    conn.close()


def measure(
    fn: Callable[[], list[list[tuple[int, int, int]]]], timeout: float
) -> tuple[float, float, list[list[tuple[int, int, int]]]] | None:
    """Run `fn` in a forked child: (seconds, extra peak RSS MB, routes), or None on timeout."""
    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(fn, child))
    proc.start()
    if parent.poll(timeout):
        result = parent.recv()
        proc.join()
        return result  # type: ignore[no-any-return]
    proc.terminate()
    proc.join()
    return None


def overlap(G: nx.MultiDiGraph, routes: list[list[tuple[int, int, int]]]) -> tuple[float, float]:
    """Largest share of a route on roads of a better one, and the largest stretch."""
    lengths = [route_length_m(G, r) for r in routes]
    share = max(
        (shared_fraction(G, r, better) for i, r in enumerate(routes) for better in routes[:i]),
        default=0.0,
    )
    return share, max(lengths) / min(lengths)


def case(n_edges: int, k: int, yen_timeout: float) -> list[dict[str, Any]]:
    t0 = time.perf_counter()
    G = build(n_edges)
    o, d = far_pair(G)
    print(
        f"{n_edges} edges asked: graph {G.number_of_nodes()} nodes, {G.number_of_edges()} "
        f"directed edges, built in {time.perf_counter() - t0:.1f} s",
        flush=True,
    )

    def ours() -> list[list[tuple[int, int, int]]]:
        ix = RoutingIndex(G)  # the index build is part of the timed work
        return [r.edges for r in alternative_routes(G, o, d, k=k, index=ix)]

    t1 = time.perf_counter()
    prebuilt = RoutingIndex(G)
    print(f"  RoutingIndex (CSR) built in {time.perf_counter() - t1:.2f} s", flush=True)

    def ours_search() -> list[list[tuple[int, int, int]]]:
        return [r.edges for r in alternative_routes(G, o, d, k=k, index=prebuilt)]

    def yen() -> list[list[tuple[int, int, int]]]:
        import osmnx as ox  # noqa: PLC0415 - optional peer

        paths = ox.routing.k_shortest_paths(G, o, d, k, weight="length")
        return [path_edges(G, p) for p in paths]

    rows = []
    for name, fn, limit in (
        ("convoyrisk penalty (scipy csgraph)", ours, 600.0),
        ("convoyrisk penalty, search only (index prebuilt)", ours_search, 600.0),
        ("osmnx k_shortest_paths (Yen)", yen, yen_timeout),
    ):
        res = measure(fn, limit)
        if res is None:
            print(f"  {name}: stopped after {limit:.0f} s", flush=True)
            rows.append({"n": n_edges, "method": name, "seconds": None, "timeout": limit})
            continue
        seconds, mb, routes = res
        share, stretch = overlap(G, routes)
        print(
            f"  {name}: {seconds:.2f} s, +{mb:.0f} MB, {len(routes)} routes, "
            f"max shared {share:.1%}, max stretch {stretch:.4f}",
            flush=True,
        )
        rows.append(
            {
                "n": n_edges,
                "edges": G.number_of_edges(),
                "method": name,
                "seconds": seconds,
                "mb": mb,
                "routes": len(routes),
                "share": share,
                "stretch": stretch,
                "km": [round(route_length_m(G, r) / 1000, 3) for r in routes],
            }
        )
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| edges (directed) | method | k=3 time (s) | ratio to ours | extra peak RSS (MB) "
        "| routes | lengths (km) | max shared with a better route | max stretch |\n"
        "|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = []
    ours: dict[int, float] = {}
    for r in rows:
        if r["method"] == "convoyrisk penalty (scipy csgraph)" and r["seconds"] is not None:
            ours[r["n"]] = r["seconds"]
    for r in rows:
        if r["seconds"] is None:
            lines.append(
                f"| {r['n']} (asked) | {r['method']} | > {r['timeout']:.0f} (stopped) "
                "| - | - | - | - | - | - |"
            )
            continue
        ratio = r["seconds"] / ours[r["n"]] if r["n"] in ours else float("nan")
        lines.append(
            f"| {r['edges']} | {r['method']} | {r['seconds']:.2f} | {ratio:.1f}x | {r['mb']:.0f} "
            f"| {r['routes']} | {', '.join(f'{x:g}' for x in r['km'])} | {r['share']:.1%} "
            f"| {r['stretch']:.4f} |"
        )
    return head + "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one small graph (2k edges)")
    ap.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000])
    ap.add_argument("-k", type=int, default=3)
    ap.add_argument("--yen-timeout", type=float, default=2400.0, help="seconds before Yen stops")
    ap.add_argument("--no-write", action="store_true", help="print only")
    args = ap.parse_args()
    sizes = [2_000] if args.quick else args.sizes
    rows = [row for n in sizes for row in case(n, args.k, args.yen_timeout)]
    text = table(rows)
    print(text)
    if args.quick or args.no_write:
        return
    libs = ", ".join(
        f"{p} {version(p)}" for p in ("convoyrisk", "osmnx", "networkx", "scipy", "numpy")
    )
    doc = (
        "# Routing benchmark: alternatives for one far pair, k = 3\n\n"
        "Produced by `.venv/bin/python -m benchmarks.bench_routing` "
        f"on {time.strftime('%Y-%m-%d')}; machine: {platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}; {libs}.\n"
        "Other jobs shared the 2 cores during the run: absolute seconds are noisy, the ratio "
        "is what matters.\n\n"
        "Graph: `benchmarks/synthetic.py` `grid_roads(n)` → `convoyrisk.graph_from_gdf` "
        "(a perturbed 200 m grid; each road is two directed edges). Pair: the two nodes at the "
        "ends of the grid's diagonal. Both methods get the same graph in the same run, each in "
        "its own forked process (extra peak RSS is measured there). Ours includes building the "
        "`RoutingIndex` (CSR matrix). `max shared` is the largest share of a route's length on "
        "roads that a better route also uses; `max stretch` is longest/shortest.\n\n" + text
    )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(doc, encoding="utf-8")
    print(f"written to {OUT}")


if __name__ == "__main__":
    main()
