"""The synthetic country of benchmarks/bench_country.py, at a tiny size, read back.

The PBF written with pyosmium's writer is read back by ``convoyrisk.load_graph``
and checked against what the writer wrote, counted independently: place nodes
and highway classes as the writer recorded them, and each class's road length
from the PBF's node locations with ``pyproj.Geod`` (not convoyrisk's code).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from benchmarks.country import ACLED_COLUMNS, HIGHWAY_MIX, Country, write_country
from pyproj import Geod

import convoyrisk as cr
from convoyrisk.pipeline import read_incident_sources

osmium = pytest.importorskip("osmium")


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
