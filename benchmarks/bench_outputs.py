"""Benchmark: time and size of each field output (GPX, KML, KMZ, GeoPackage, GeoParquet, PDF).

Run from the worktree root::

    .venv/bin/python -m benchmarks.bench_outputs            # 10k and 100k roads
    .venv/bin/python -m benchmarks.bench_outputs --quick    # 1k roads

A synthetic grid network (`benchmarks.synthetic.grid_roads`, one segment per
200 m road), incidents drawn by `convoyrisk.simulate_incidents` (fixed seed),
scored, and three alternatives corner to corner; then each format written once
by `convoyrisk.export.write_output`. There is no peer: no other library writes
these files from a scored network. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import convoyrisk as cr
from benchmarks.synthetic import graph_of, grid_roads
from convoyrisk import export

FORMATS = ("gpx", "kml", "kmz", "gpkg", "parquet", "pdf")


def case(n: int):
    G = graph_of(grid_roads(n))
    world = cr.simulate_incidents(G, background_rate=0.0005, hotspot_rate=0.02, seed=1)
    risk = cr.score_segments(G, cr.snap_incidents(G, world.incidents))
    ends = sorted(G.nodes, key=lambda k: G.nodes[k]["x"] + G.nodes[k]["y"])
    routes = cr.score_routes(G, cr.alternative_routes(G, ends[0], ends[-1], k=3), risk)
    return G, risk, routes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1k roads only")
    args = parser.parse_args()
    sizes = [1_000] if args.quick else [10_000, 100_000]
    print("| roads | segments | " + " | ".join(FORMATS) + " |")
    print("|---" * (len(FORMATS) + 2) + "|")
    for n in sizes:
        G, risk, routes = case(n)
        cells = []
        with tempfile.TemporaryDirectory() as tmp:
            for ext in FORMATS:
                t = time.perf_counter()
                path = export.write_output(Path(tmp) / f"x.{ext}", G=G, risk=risk, routes=routes)
                secs = time.perf_counter() - t
                cells.append(f"{secs:.2f} s, {path.stat().st_size / 1e6:.2f} MB")
        print(f"| {n:,} | {len(risk.segments):,} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
