"""Benchmark: a whole country, from an OSM PBF and an ACLED CSV to the briefing map.

Run from the worktree root::

    .venv/bin/python -m benchmarks.bench_country --quick          # ~3k edges, 250 incidents (CI)
    .venv/bin/python -m benchmarks.bench_country                  # ~1M edges, 60k incidents
    .venv/bin/python -m benchmarks.bench_country --edges 200000 --incidents 60000

The synthetic country (benchmarks/country.py, fixed seeds) is written to a
cache folder (``--folder``, a temp folder by default; never committed). Then,
in this process, each stage as a library call, timed, with the peak resident
memory of the process during it (RSS sampled every 20 ms):
``load_graph``, ``read_incident_sources``, ``snap_incidents`` (and the peer
``geopandas.sjoin_nearest``), ``score_segments``, ``alternative_routes`` and
``score_routes``, ``risk_map`` (and the peer ``GeoDataFrame.explore()`` on the
scored segments, or a subsample of them) and ``save_map``. Then, each in a
subprocess (its peak RSS sampled from /proc of the child): the whole
``convoyrisk map --roads country.osm.pbf ...`` run, ``convoyrisk network
build`` of the same PBF, and the ``map`` run again on the built ``.gpkg``.
``--profile STAGE`` runs that stage under cProfile and prints its top functions.
Writes a Markdown table to ``--doc`` if given.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import ctypes
import gc
import importlib.util
import io
import json
import os
import platform
import pstats
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import geopandas as gpd

import convoyrisk as cr
from benchmarks.country import Country, write_country
from benchmarks.memory import PeakRSS, rss_mb
from convoyrisk.maps import risk_map, save_map
from convoyrisk.pipeline import node_of, read_incident_sources
from convoyrisk.places import geocode, load_places
from convoyrisk.routing import alternative_routes, score_routes
from convoyrisk.utils import write_text_atomic

EXPLORE_MAX = 100_000
"""``GeoDataFrame.explore()`` gets at most this many segments (a random subsample)."""

SIZES = {"quick": (3_000, 250), "full": (1_120_000, 60_000)}
"""Grid edges asked (about 0.9 of them remain as graph edges once simplified) and incidents."""


def _child_peak_mb(proc: subprocess.Popen[bytes], peak: list[float]) -> None:
    """Sample the child's RSS (VmRSS of /proc/PID/status) every 20 ms until it ends."""
    status = Path(f"/proc/{proc.pid}/status")
    while proc.poll() is None:
        try:
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak[0] = max(peak[0], int(line.split()[1]) / 1024)
        except (FileNotFoundError, ProcessLookupError):
            break
        time.sleep(0.02)


def run_cli(args: list[str], timeout_s: float, cache: Path | None = None) -> dict[str, Any]:
    """Run ``convoyrisk ARGS`` in a subprocess: seconds, peak RSS MB, return code.

    `cache` is the subprocess's ``CONVOYRISK_CACHE_DIR`` (built networks).
    """
    cmd = [sys.executable, "-m", "convoyrisk", *args]
    print("running", " ".join(["convoyrisk", *args]), flush=True)
    peak = [0.0]
    env = {**os.environ, "CONVOYRISK_CACHE_DIR": str(cache)} if cache is not None else None
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    watcher = threading.Thread(target=_child_peak_mb, args=(proc, peak), daemon=True)
    watcher.start()
    try:
        out, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        return {"seconds": time.perf_counter() - t0, "peak_mb": peak[0], "rc": "timeout"}
    seconds = time.perf_counter() - t0
    watcher.join()
    text = out.decode(errors="replace")
    if proc.returncode != 0:
        print(text[-3000:])
    return {"seconds": seconds, "peak_mb": peak[0], "rc": proc.returncode, "out": text[-2000:]}


class Stages:
    """Timed stages of one process: name, seconds, peak RSS MB, note."""

    def __init__(self, profile: str | None) -> None:
        self.rows: list[dict[str, Any]] = []
        self.profile = profile
        self.profile_text = ""

    def __call__(self, name: str, fn: Callable[[], Any], note: str = "") -> Any:
        print(f"stage {name} ...", flush=True)
        prof = cProfile.Profile() if self.profile == name else None
        with PeakRSS() as mem, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0 = time.perf_counter()
            if prof is not None:
                prof.enable()
            out = fn()
            if prof is not None:
                prof.disable()
            seconds = time.perf_counter() - t0
        if prof is not None:
            buf = io.StringIO()
            pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(25)
            self.profile_text = buf.getvalue()
        row = {"stage": name, "seconds": seconds, "peak_mb": mem.peak, "note": note}
        print(f"  {seconds:.2f} s, peak {mem.peak:,.0f} MB", flush=True)
        self.rows.append(row)
        return out


OSMNX_MAX_EDGES = 120_000
"""OSMnx ``graph_from_xml`` runs as a peer up to this many grid edges (``--osmnx`` forces it)."""


def to_xml(pbf: Path, xml: Path) -> Path:
    """The PBF rewritten as OSM XML with pyosmium's writer (for OSMnx, which reads XML only)."""
    import osmium  # noqa: PLC0415 - optional dependency

    if not xml.exists():
        with osmium.SimpleWriter(str(xml)) as writer:
            for obj in osmium.FileProcessor(str(pbf)):
                if isinstance(obj, osmium.osm.Node):
                    writer.add_node(obj)
                elif isinstance(obj, osmium.osm.Way):
                    writer.add_way(obj)
    return xml


def osmnx_peer(country: Country, folder: Path, st: Stages) -> dict[str, Any]:
    """OSMnx ``graph_from_xml`` on the same extract as XML: its seconds, memory, edges and km."""
    import osmnx as ox  # noqa: PLC0415 - a peer, optional

    xml = to_xml(country.pbf, folder / "country.osm")
    H = st(
        "peer: osmnx.graph_from_xml",
        lambda: ox.graph_from_xml(xml, simplify=True, retain_all=True),
        f"same extract as OSM XML ({xml.stat().st_size / 2**20:.0f} MB, conversion untimed); "
        "simplified, all ways",
    )
    edges = ox.convert.to_undirected(H).number_of_edges()
    km = sum(d["length"] for *_, d in ox.convert.to_undirected(H).edges(data=True)) / 1000
    return {"osmnx_edges": edges, "osmnx_km": km}


def dask_stages(G: Any, incidents: Any, snapped: Any, risk: Any, st: Stages) -> dict[str, Any]:
    """Snapping and scoring through the dask engine on a local cluster, against in-process.

    The cluster (2 worker processes, 1 thread each) is started before the timed calls.
    """
    import numpy as np  # noqa: PLC0415
    from distributed import Client, LocalCluster  # noqa: PLC0415 - optional

    from convoyrisk.engine import score_segments_dask, snap_incidents_dask  # noqa: PLC0415

    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True) as cluster,
        Client(cluster) as client,
    ):
        snapped_d = st(
            "snap_incidents (dask engine, local cluster)",
            lambda: snap_incidents_dask(G, incidents, scheduler=client),
            "2 worker processes, 1 thread each",
        )
        risk_d = st(
            "score_segments (dask engine, local cluster)",
            lambda: score_segments_dask(G, snapped_d, scheduler=client),
            "2 worker processes, 1 thread each",
        )
    a, b = risk.segments, risk_d.segments
    same_snap = bool(
        (snapped["status"].astype(str) == snapped_d["status"].astype(str)).all()
        and np.allclose(
            snapped["offset_m"], snapped_d["offset_m"], rtol=0, atol=1e-9, equal_nan=True
        )
    )
    rel = float(np.max(np.abs(a["rate"].to_numpy() - b["rate"].to_numpy()) / a["rate"].to_numpy()))
    return {
        "dask_snap_same": same_snap,
        "dask_rate_rel": rel,
        "dask_classes_differ": int(
            (a["risk_class"].astype(str) != b["risk_class"].astype(str)).sum()
        ),
        "dask_top_differ": int((a["top_contributors"] != b["top_contributors"]).sum()),
    }


def library_stages(
    country: Country, folder: Path, st: Stages, *, osmnx: bool = False, dask: bool = False
) -> dict[str, Any]:
    """Each stage of ``convoyrisk map`` as a library call, in this process."""
    G = st("load_graph", lambda: cr.load_graph(country.pbf))
    # as the command line does (pipeline.run(freeze=True)): the network's millions of
    # objects out of the garbage collector's full passes
    gc.freeze()
    n_edges = sum(1 for *_, r in G.edges(data="reversed") if not r)
    ours_km = sum(d["length"] for *_, d in G.edges(data=True) if not d["reversed"]) / 1000
    peer = osmnx_peer(country, folder, st) if osmnx else {}
    places = load_places(country.places)
    table = st("read_incident_sources", lambda: read_incident_sources(country.incidents))
    incidents = table.incidents
    snapped = st("snap_incidents", lambda: cr.snap_incidents(G, incidents))
    edges = cr.edges_gdf(G).reset_index()[["u", "v", "key", "geometry"]]
    pts = incidents.to_crs(G.graph["crs"])
    st(
        "peer: geopandas sjoin_nearest",
        lambda: gpd.sjoin_nearest(pts[["geometry"]], edges, max_distance=5_000.0, distance_col="d"),
        "nearest edge only (no chainage, statuses); edges GeoDataFrame built beforehand, untimed",
    )

    risk = st("score_segments", lambda: cr.score_segments(G, snapped))
    same = dask_stages(G, incidents, snapped, risk, st) if dask else {}
    a = node_of(G, geocode(country.origin, places))
    b = node_of(G, geocode(country.destination, places))
    found = st("alternative_routes (k=3)", lambda: alternative_routes(G, a, b, k=3, risk=risk))
    routes = st("score_routes", lambda: score_routes(G, found, risk))
    m = st("risk_map", lambda: risk_map(G, risk, routes=routes, places=places))
    html = folder / "library_map.html"
    st("save_map", lambda: save_map(m, html))

    seg = risk.segments
    note = "all segments"
    if len(seg) > EXPLORE_MAX:
        seg = seg.sample(EXPLORE_MAX, random_state=1)
        note = f"random {EXPLORE_MAX:,} of {len(risk.segments):,} segments"
    cols = seg[["rate", "risk_class", "geometry"]].copy()
    cols["risk_class"] = cols["risk_class"].astype(str)
    peer_html = folder / "explore.html"

    def explore() -> None:
        cols.explore(column="rate").save(str(peer_html))

    st("peer: GeoDataFrame.explore() + save", explore, note)
    return {
        **peer,
        **same,
        "km": ours_km,
        "edges": n_edges,
        "nodes": G.number_of_nodes(),
        "segments": len(risk.segments),
        "used": int((risk.incidents["used"] == "used").sum()),
        "routes": len(routes),
        "html_mb": html.stat().st_size / 2**20,
        "explore_mb": peer_html.stat().st_size / 2**20,
        "route_km": [round(float(r.metrics["length_km"]), 1) for r in routes],
    }


def cli_runs(country: Country, folder: Path, timeout_s: float) -> dict[str, dict[str, Any]]:
    """The whole run on the PBF, the network build, and the run on the built network."""
    common = ["--incidents", str(country.incidents), "--places", str(country.places)]
    common += ["--from", country.origin, "--to", country.destination]
    runs: dict[str, dict[str, Any]] = {}
    html = folder / "cli_map.html"
    html.unlink(missing_ok=True)
    cache = folder / "cache"
    shutil.rmtree(cache, ignore_errors=True)  # the first run builds the network
    runs["map on the PBF"] = run_cli(
        ["map", "--roads", str(country.pbf), *common, "--out", str(html)], timeout_s, cache
    )
    runs["map on the PBF"]["html_mb"] = html.stat().st_size / 2**20 if html.exists() else None
    html_again = folder / "cli_map_again.html"
    html_again.unlink(missing_ok=True)
    name = "map on the PBF again (network from the cache)"
    runs[name] = run_cli(
        ["map", "--roads", str(country.pbf), *common, "--out", str(html_again)], timeout_s, cache
    )
    runs[name]["html_mb"] = html_again.stat().st_size / 2**20 if html_again.exists() else None
    built = folder / "built.gpkg"
    built.unlink(missing_ok=True)
    runs["network build"] = run_cli(
        ["network", "build", str(country.pbf), "--out", str(built)], timeout_s
    )
    runs["network build"]["gpkg_mb"] = built.stat().st_size / 2**20 if built.exists() else None
    html2 = folder / "cli_map_built.html"
    html2.unlink(missing_ok=True)
    runs["map on built.gpkg"] = run_cli(
        ["map", "--roads", str(built), *common, "--out", str(html2)], timeout_s
    )
    runs["map on built.gpkg"]["html_mb"] = html2.stat().st_size / 2**20 if html2.exists() else None
    return runs


def markdown(
    command: str, country: Country, sizes: dict[str, Any], st: Stages, runs: dict[str, Any]
) -> str:
    """The results as a Markdown section."""
    pbf_mb = country.pbf.stat().st_size / 2**20
    csv_mb = country.incidents.stat().st_size / 2**20
    lines = [
        (
            f"Command: `{command}` on {platform.machine()}, {os.cpu_count()} cores, shared with "
            f"other jobs; Python {platform.python_version()}."
        ),
        "",
        f"Data: {sizes['edges']:,} graph edges ({country.grid_edges:,} grid edges written, "
        f"{sum(country.ways_by_class.values()):,} ways: "
        + ", ".join(f"{k} {v:,}" for k, v in sorted(country.ways_by_class.items()))
        + f"), {len(country.towns)} place nodes, {country.n_nodes:,} OSM nodes; PBF "
        f"{pbf_mb:.1f} MB; {country.n_incidents:,} ACLED rows ({csv_mb:.1f} MB), "
        f"{sizes['used']:,} used; {sizes['segments']:,} scored segments; route "
        f"{country.origin} → {country.destination}, {sizes['routes']} routes "
        f"({', '.join(map(str, sizes['route_km']))} km).",
        "",
        "| stage (library call, one process) | seconds | process peak RSS MB | note |",
        "|---|---:|---:|---|",
    ]
    lines += [
        f"| {r['stage']} | {r['seconds']:.2f} | {r['peak_mb']:,.0f} | {r['note']} |"
        for r in st.rows
    ]
    total = sum(r["seconds"] for r in st.rows if not r["stage"].startswith("peer"))
    lines.append(f"| **sum of the convoyrisk stages** | **{total:.1f}** | | |")
    if "osmnx_edges" in sizes:
        lines += [
            "",
            (
                f"Network: convoyrisk {sizes['edges']:,} edges, {sizes['km']:,.0f} km; OSMnx "
                f"(undirected) {sizes['osmnx_edges']:,} edges, {sizes['osmnx_km']:,.0f} km."
            ),
        ]
    if "dask_rate_rel" in sizes:
        lines += [
            "",
            (
                "Dask engine against in-process: snapping "
                + ("identical" if sizes["dask_snap_same"] else "DIFFERENT")
                + f"; rates max rel. diff {sizes['dask_rate_rel']:.1e}, "
                f"{sizes['dask_classes_differ']} classes and {sizes['dask_top_differ']} "
                "top-contributor texts differ."
            ),
        ]
    lines += [
        "",
        (
            f"HTML written by save_map: {sizes['html_mb']:.1f} MB; by explore(): "
            f"{sizes['explore_mb']:.1f} MB."
        ),
        "",
        "| whole run (subprocess) | seconds | peak RSS MB | output MB |",
        "|---|---:|---:|---:|",
    ]
    for name, r in runs.items():
        size = r.get("html_mb") or r.get("gpkg_mb")
        size_text = f"{size:.1f}" if size is not None else "-"
        rc = "" if r["rc"] == 0 else f" (exit {r['rc']})"
        lines.append(f"| {name}{rc} | {r['seconds']:.1f} | {r['peak_mb']:,.0f} | {size_text} |")
    if st.profile_text:
        lines += ["", f"cProfile of `{st.profile}` (top by cumulative time):", "", "```"]
        lines += [ln for ln in st.profile_text.splitlines() if ln.strip()][:40]
        lines.append("```")
    return "\n".join(lines) + "\n"


def main() -> None:
    """Command line."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--quick", action="store_true", help="about 3k edges, 250 incidents (CI, under a minute)"
    )
    ap.add_argument("--edges", type=int, help="grid edges (default: 1.12M full, 3k quick)")
    ap.add_argument("--incidents", type=int, help="ACLED rows (default: 60k full, 250 quick)")
    ap.add_argument("--folder", type=Path, help="cache folder for the data (a temp one if not)")
    ap.add_argument("--profile", help="stage name to run under cProfile")
    ap.add_argument("--timeout", type=float, default=900.0, help="per subprocess, seconds")
    ap.add_argument("--no-cli", action="store_true", help="skip the subprocess runs")
    ap.add_argument("--doc", type=Path, help="write the Markdown here")
    ap.add_argument(
        "--dask",
        action="store_true",
        help="also snap and score through the dask engine on a local cluster, and compare",
    )
    ap.add_argument(
        "--osmnx",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=f"OSMnx graph_from_xml as a peer (default: up to {OSMNX_MAX_EDGES:,} edges, "
        "if OSMnx is installed)",
    )
    args = ap.parse_args()
    edges, n_inc = SIZES["quick" if args.quick else "full"]
    edges = args.edges or edges
    n_inc = args.incidents or n_inc
    folder = args.folder or Path(tempfile.mkdtemp(prefix="bench_country_"))
    full_bbox = not args.quick and args.edges is None
    t0 = time.perf_counter()
    country = write_country(folder, edges, n_inc, full_bbox=full_bbox)
    print(f"wrote {folder} in {time.perf_counter() - t0:.1f} s", flush=True)
    st = Stages(args.profile)
    osmnx = args.osmnx
    if osmnx is None:
        osmnx = edges <= OSMNX_MAX_EDGES and importlib.util.find_spec("osmnx") is not None
    sizes = library_stages(country, folder, st, osmnx=osmnx, dask=args.dask)
    # hand the library stages' memory back before the subprocesses run (on a country this
    # process would otherwise hold ~7 GB beside them)
    gc.unfreeze()
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    print(f"this process holds {rss_mb():,.0f} MB before the subprocess runs", flush=True)
    runs = {} if args.no_cli else cli_runs(country, folder, args.timeout)
    command = "python -m benchmarks.bench_country " + " ".join(sys.argv[1:])
    text = markdown(command.strip(), country, sizes, st, runs)
    print(text)
    print(json.dumps({"rows": st.rows, "runs": {k: {**v, "out": ""} for k, v in runs.items()}}))
    if args.doc:
        write_text_atomic(args.doc, text)


if __name__ == "__main__":
    main()
