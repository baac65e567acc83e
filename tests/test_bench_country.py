"""The synthetic country of benchmarks/bench_country.py, at a tiny size, read back.

The PBF written with pyosmium's writer is read back by ``convoyrisk.load_graph``
and checked against what the writer wrote, counted independently: place nodes
and highway classes as the writer recorded them, and each class's road length
from the PBF's node locations with ``pyproj.Geod`` (not convoyrisk's code).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from benchmarks.country import ACLED_COLUMNS, HIGHWAY_MIX, Country, write_country
from pyproj import Geod

import convoyrisk as cr
from convoyrisk.pipeline import read_incident_sources

osmium = pytest.importorskip("osmium")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def country(tmp_path_factory: pytest.TempPathFactory) -> Country:
    return write_country(tmp_path_factory.mktemp("country"), 400, 60, n_towns=6)


def test_place_nodes_as_written(country: Country) -> None:
    places = [
        (n.tags["name"], n.tags["place"])
        for n in osmium.FileProcessor(str(country.pbf), osmium.osm.NODE)
        if "place" in n.tags
    ]
    assert len(places) == 6
    assert sorted(places) == sorted((name, kind) for name, kind, _, _ in country.towns)
    assert {kind for _, kind in places} == {"town", "village"}


def test_load_graph_reads_every_way_and_class(country: Country) -> None:
    G = cr.load_graph(country.pbf)
    forward = [d for *_, d in G.edges(data=True) if not d["reversed"]]
    ways: dict[str, set[int]] = {}
    length: Counter[str] = Counter()
    for d in forward:
        ways.setdefault(d["highway"], set()).add(int(d["osmid"]))
        length[d["highway"]] += d["length"]
    written = country.ways_by_class
    assert set(ways) == set(written) <= set(HIGHWAY_MIX)
    # simplification may merge ways that meet end to end, so no way has more than one class
    # but a class may hold fewer way ids than written; the lengths below count every edge
    assert all(len(v) <= written[k] for k, v in ways.items())
    # every class's length against the node locations in the file (geodesic, WGS84)
    geod = Geod(ellps="WGS84")
    expected: Counter[str] = Counter()
    fp = osmium.FileProcessor(str(country.pbf)).with_locations()
    for obj in fp:
        if isinstance(obj, osmium.osm.Way):
            lon = [n.location.lon for n in obj.nodes]
            lat = [n.location.lat for n in obj.nodes]
            expected[obj.tags["highway"]] += geod.line_length(lon, lat)
    for cls, metres in expected.items():
        assert length[cls] == pytest.approx(metres, rel=1e-6)


def test_acled_csv_reads_whole(country: Country) -> None:
    path: Path = country.incidents
    assert path.read_text(encoding="utf-8").splitlines()[0].split(",") == list(ACLED_COLUMNS)
    table = read_incident_sources(path, merge=False)
    assert table.n_input == 60
    assert len(table.rejects) == 0
    lat = table.incidents.geometry.y.to_numpy()
    towns = np.array([t[2] for t in country.towns])
    assert lat.min() >= towns.min() - 0.1
    assert lat.max() <= towns.max() + 0.1


def test_quick_benchmark_runs_every_stage_and_the_whole_job(tmp_path: Path) -> None:
    """``bench_country --quick`` (the CI size): every stage timed, the whole CLI job succeeds.

    The whole ``convoyrisk map`` run on the PBF, again from the cache of built
    networks, and on a built GeoPackage must each exit 0 and write the same map.
    """
    doc = tmp_path / "quick.md"
    cmd = [sys.executable, "-m", "benchmarks.bench_country", "--quick", "--no-osmnx"]
    cmd += ["--folder", str(tmp_path / "data"), "--doc", str(doc), "--timeout", "300"]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=900, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    stages = {row["stage"] for row in result["rows"]}
    for stage in ("load_graph", "snap_incidents", "score_segments", "score_routes", "risk_map"):
        assert stage in stages
    assert all(row["seconds"] > 0 and row["peak_mb"] > 0 for row in result["rows"])
    runs = result["runs"]
    assert {r["rc"] for r in runs.values()} == {0}
    sizes = {round(r["html_mb"], 6) for r in runs.values() if "html_mb" in r}
    assert len(sizes) == 1 and sizes.pop() > 0  # the same map from the PBF, the cache, the .gpkg
    assert "| whole run (subprocess) |" in doc.read_text(encoding="utf-8")
