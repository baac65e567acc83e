"""Benchmark: snapping points onto the nearest road edge, ours against the peers.

Run from the worktree root::

    .venv/bin/python -m benchmarks.bench_snapping           # 1M points onto 100k edges
    .venv/bin/python -m benchmarks.bench_snapping --quick   # a small smoke size

Times, in the same process and on the same data (benchmarks/synthetic.py, fixed
seeds): convoyrisk's :class:`~convoyrisk.snapping.LineIndex` (index build plus
nearest edge, distance, offset and snapped point; numba engine, then the numpy
engine), :func:`~convoyrisk.snapping.snap_incidents` end to end,
``geopandas.sjoin_nearest`` and ``osmnx.distance.nearest_edges``. Input
preparation (the graph, the edge GeoDataFrame, the point GeoDataFrame) is not
timed for anyone. Each case is timed once without tracing, then run again under
tracemalloc for its peak of Python/numpy allocations (GEOS's and numba's own
buffers are not traced; the process's peak RSS is given at the end).

The answers are checked inside the benchmark: the nearest edge equals the peers'
except on exact ties (then our distance to the peer's edge equals ours), the
distances agree to 1e-6 m, and our offsets agree with shapely's
``line_locate_point`` to 1e-6 m. The table goes to docs/benchmarks/snapping.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time
import tracemalloc
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import geopandas as gpd
import numba
import numpy as np
import osmnx
import pandas as pd
import scipy
import shapely

import convoyrisk as cr
from benchmarks.synthetic import CRS, clustered_points, graph_of, grid_roads
from convoyrisk.incidents import ACLED_COLUMNS
from convoyrisk.snapping import LineIndex
from convoyrisk.utils import write_text_atomic

OUT = Path(__file__).resolve().parents[1] / "docs" / "benchmarks" / "snapping.md"
TOL = 1e-6


def timed(fn: Callable[[], Any], *, memory: bool) -> tuple[float, float, Any]:
    """Seconds of one run, and the tracemalloc peak (MB) of a second, traced run."""
    t0 = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - t0
    peak = float("nan")
    if memory:
        del result
        tracemalloc.start()
        result = fn()
        peak = tracemalloc.get_traced_memory()[1] / 1e6
        tracemalloc.stop()
    return seconds, peak, result


def versions() -> str:

    geos = ".".join(map(str, shapely.geos_version))
    return (
        f"Python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}, "
        f"numba {numba.__version__}, shapely {shapely.__version__} (GEOS {geos}), "
        f"geopandas {gpd.__version__}, pandas {pd.__version__}, osmnx {osmnx.__version__}, "
        f"convoyrisk {cr.__version__}"
    )


def check(name: str, ok: bool, detail: str) -> str:
    line = f"{'OK  ' if ok else 'FAIL'} {name}: {detail}"
    print(line)
    if not ok:
        sys.exit(f"answers differ: {line}")
    return line


def main() -> None:  # noqa: PLR0915 - a linear script
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke size")
    parser.add_argument("--no-memory", action="store_true", help="skip the traced reruns")
    parser.add_argument(
        "--read-rows",
        type=int,
        default=0,
        help="instead: time reading an N-row synthetic ACLED export, and its peak RSS",
    )
    args = parser.parse_args()
    if args.read_rows:
        read_benchmark(args.read_rows)
        return
    n_edges, n_points = (2_000, 20_000) if args.quick else (100_000, 1_000_000)
    memory = not args.no_memory

    load_before = os.getloadavg()[0]
    print(f"building {n_edges} edges, {n_points} points ...", flush=True)
    roads = grid_roads(n_edges)
    G = graph_of(roads)
    x, y = clustered_points(roads, n_points)
    index_probe, keys = LineIndex.from_graph(G)
    del index_probe
    edges = cr.edges_gdf(G).reset_index()
    edge_of = {k: i for i, k in enumerate(keys)}
    lines = np.array([G.edges[k]["geometry"] for k in keys], dtype=object)
    points = gpd.GeoDataFrame(geometry=gpd.points_from_xy(x, y), crs=CRS)
    pts = points.geometry.to_numpy()
    road_of_edge = {(u, v, k): d["road_id"] for u, v, k, d in G.edges(keys=True, data=True)}
    roads_id = np.array([road_of_edge[k] for k in keys])

    rows: list[tuple[str, float, float]] = []
    checks: list[str] = []

    def ours(engine: str) -> Any:
        index = LineIndex(lines, engine=engine)
        return index.nearest(x, y)

    LineIndex(lines[:10], engine="numba").nearest(x[:10], y[:10])  # compile (cached on disk)

    for name, fn in [
        ("convoyrisk LineIndex, numba engine", lambda: ours("numba")),
        ("convoyrisk LineIndex, numpy engine", lambda: ours("numpy")),
        (
            "convoyrisk snap_incidents (GeoDataFrame, all columns)",
            lambda: cr.snap_incidents(G, points, max_distance_m=5_000.0),
        ),
        (
            "geopandas sjoin_nearest",
            lambda: gpd.sjoin_nearest(
                points, edges[["u", "v", "key", "geometry"]], distance_col="d"
            ),
        ),
        (
            "osmnx nearest_edges",
            lambda: osmnx.distance.nearest_edges(G, x, y, return_dist=True),
        ),
    ]:
        print(f"timing {name} ...", flush=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            seconds, peak, result = timed(fn, memory=memory)
        rows.append((name, seconds, peak))
        print(f"  {seconds:.2f} s, traced peak {peak:.0f} MB", flush=True)
        if name.endswith("numba engine"):
            mine = result
        elif name.endswith("numpy engine"):
            same = (result.line == mine.line).all()
            checks.append(
                check(
                    "numpy engine = numba engine",
                    bool(same and np.allclose(result.distance, mine.distance, atol=TOL, rtol=0)),
                    f"{n_points} points, same edge and distance",
                )
            )
        elif name.startswith("convoyrisk snap"):
            line = np.array(
                [edge_of[k] for k in zip(result["u"], result["v"], result["key"], strict=True)]
            )
            checks.append(
                check(
                    "snap_incidents = LineIndex",
                    bool((line == mine.line).all() and (result["status"] == "snapped").all()),
                    "same edges, every point snapped",
                )
            )
        elif name.startswith("geopandas"):
            peer = result.groupby(level=0).first()  # equidistant ties give extra rows
            peer_line = np.array(
                [edge_of[k] for k in zip(peer["u"], peer["v"], peer["key"], strict=True)]
            )
            checks += compare("sjoin_nearest", mine, peer_line, peer["d"].to_numpy(), pts, lines)
        else:
            peer_keys, peer_d = result
            peer_road = np.array([road_of_edge[tuple(k)] for k in peer_keys])
            # osmnx may return the reverse direction of the same road: compare roads
            by_road = {int(r): i for i, r in enumerate(roads_id)}
            peer_line = np.array([by_road[int(r)] for r in peer_road])
            checks += compare("osmnx nearest_edges", mine, peer_line, peer_d, pts, lines)

    off = shapely.line_locate_point(lines[mine.line], pts)
    err = float(np.max(np.abs(off - mine.offset)))
    checks.append(
        check("offsets", err <= TOL, f"max |ours - shapely line_locate_point| = {err:.2e} m")
    )
    snapped = shapely.points(mine.x, mine.y)
    on = float(shapely.distance(lines[mine.line], snapped).max())
    checks.append(check("snapped points", on <= TOL, f"max distance to their edge {on:.2e} m"))

    peers = {n: s for n, s, _ in rows if not n.startswith("convoyrisk")}
    fastest_peer = min(peers, key=peers.__getitem__)
    table = [
        "| case | seconds | points/s | speed-up vs fastest peer | traced peak MB |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, seconds, peak in rows:
        ratio = peers[fastest_peer] / seconds
        table.append(
            f"| {name} | {seconds:.2f} | {n_points / seconds:,.0f} | {ratio:.1f}x | {peak:,.0f} |"
        )
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    load = f"{load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end"
    text = "\n".join(
        [
            "# Snapping benchmark",
            "",
            (
                f"{n_points:,} points onto {len(keys):,} edges (benchmarks/synthetic.py: "
                f"grid_roads({n_edges}), clustered_points(roads, {n_points}), points up to 2 km "
                "off the roads; EPSG:32631), every case in the same process."
            ),
            "",
            (
                "Command: `.venv/bin/python -m benchmarks.bench_snapping"
                + (" --quick`" if args.quick else "`")
            ),
            "",
            *table,
            "",
            (
                f"Fastest peer: {fastest_peer}. Ours includes building the index and the offsets "
                "along the edge and the snapped points; the peers give the edge and the distance "
                "only. The snap_incidents row also computes road chainage, statuses and copies "
                f"the GeoDataFrame. Process peak RSS {rss:,.0f} MB. The numba engine runs on "
                f"{os.cpu_count()} threads (GEOS in the peers is single-threaded); numba "
                "compiles once and caches the machine code on disk (not timed)."
            ),
            "",
            "Answers, checked in the same run:",
            "",
            *[f"- {c}" for c in checks],
            "",
            (
                f"Machine: {platform.machine()}, {os.cpu_count()} cores, {platform.system()} "
                f"{platform.release()}, shared with other sessions (1-minute load average "
                f"{load}): absolute seconds drift, the ratios less. {versions()}."
            ),
            "",
        ]
    )
    print(text)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    if args.quick:
        print("(--quick: docs/benchmarks/snapping.md left as it is)")
    else:
        write_text_atomic(OUT, text)
        print(f"written {OUT}")


def read_benchmark(n: int) -> None:
    """Write an n-row CSV with ACLED's columns (synthetic rows), read it in a child process."""
    import subprocess  # noqa: PLC0415 - only this mode
    import tempfile  # noqa: PLC0415

    rng = np.random.default_rng(5)
    header = list(ACLED_COLUMNS)
    days = pd.Timestamp("2015-01-01") + pd.to_timedelta(rng.integers(0, 3650, n), unit="D")
    frame = pd.DataFrame(dict.fromkeys(header, ""), index=range(n))
    frame["event_id_cnty"] = [f"MLI{i}" for i in range(n)]
    frame["event_date"] = days.strftime("%d %B %Y")
    frame["event_type"] = "Explosions/Remote violence"
    frame["sub_event_type"] = "Remote explosive/landmine/IED"
    frame["country"] = "Mali"
    frame["latitude"] = np.round(rng.uniform(15, 20, n), 4)
    frame["longitude"] = np.round(rng.uniform(-1, 3, n), 4)
    frame["geo_precision"] = rng.integers(1, 4, n)
    frame["source"] = "Synthetic wire; Synthetic radio"
    frame["notes"] = "On this date, a synthetic IED struck a synthetic convoy; " * 4
    frame["fatalities"] = rng.integers(0, 5, n)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "acled.csv"
        frame.to_csv(path, index=False)
        size = path.stat().st_size / 1e6
        del frame
        code = (
            "import resource, time, convoyrisk as cr\n"
            "t = time.perf_counter()\n"
            f"table = cr.read_incidents({str(path)!r})\n"
            "s = time.perf_counter() - t\n"
            "rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
            "print(f'{table.n_input} rows, {len(table.incidents)} incidents, "
            "{s:.1f} s, peak RSS {rss:.0f} MB')\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], check=True, capture_output=True, text=True
        )
        print(f"{size:.0f} MB CSV, read_incidents: {out.stdout.strip()}")


def compare(  # noqa: PLR0917 - a local helper
    name: str,
    mine: Any,
    peer_line: np.ndarray,
    peer_d: np.ndarray,
    pts: np.ndarray,
    lines: np.ndarray,
) -> list[str]:
    d_err = float(np.max(np.abs(peer_d - mine.distance)))
    differ = np.flatnonzero(peer_line != mine.line)
    # where the edges differ, it must be a tie: our distance to the peer's edge equals ours
    tie_err = (
        float(
            np.max(
                np.abs(
                    shapely.distance(lines[peer_line[differ]], pts[differ]) - mine.distance[differ]
                )
            )
        )
        if len(differ)
        else 0.0
    )
    return [
        check(f"{name} distance", d_err <= TOL, f"max |ours - peer| = {d_err:.2e} m"),
        check(
            f"{name} edge",
            tie_err <= TOL,
            f"{len(pts) - len(differ):,} same edge, {len(differ):,} exact ties "
            f"(other edge at the same distance, max difference {tie_err:.1e} m)",
        ),
    ]


if __name__ == "__main__":
    main()
