"""The cache of built networks: a second load reads the built graph back instead of building.

"Not built" is checked by making the builder fail: the second load must not call it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import geopandas as gpd
import networkx as nx
import pytest
from benchmarks.synthetic import grid_roads

import convoyrisk as cr
from convoyrisk import graphcache, network, settings
from convoyrisk._errors import ConvoyRiskWarning
from convoyrisk.graphcache import cached_path, load_graph_cached

from .helpers.cli import cli


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("CONVOYRISK_CACHE_DIR", str(folder))
    return folder


@pytest.fixture
def roads(tmp_path: Path) -> Path:
    path = tmp_path / "roads.geojson"
    grid_roads(300, seed=2).to_file(path, driver="GeoJSON")
    return path


def _builds(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the builds from a GIS layer (network.graph_from_gdf calls)."""
    calls: list[int] = []
    real = network.graph_from_gdf

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(network, "graph_from_gdf", counting)
    return calls


def _edges(G: nx.MultiDiGraph) -> dict:
    return {
        (u, v, k): (round(d["length"], 6), d["geometry"].wkb_hex, bool(d.get("reversed")))
        for u, v, k, d in G.edges(keys=True, data=True)
    }


def test_second_load_reads_the_built_graph_back(cache, roads, monkeypatch) -> None:
    builds = _builds(monkeypatch)
    first = load_graph_cached(roads)
    assert builds == [1]
    entries = list((cache / graphcache.CACHE_SUBDIR).glob("*.gpkg"))
    assert entries == [cached_path(roads, {})]
    second = load_graph_cached(roads)
    assert builds == [1]  # not built again
    assert _edges(second) == _edges(first)
    assert dict(second.nodes(data=True)) == dict(first.nodes(data=True))
    assert second.graph["crs"] == first.graph["crs"]


def test_a_changed_file_or_options_build_again(cache, roads, monkeypatch) -> None:
    builds = _builds(monkeypatch)
    load_graph_cached(roads)
    load_graph_cached(roads, node_tolerance_m=5.0)  # other options: another key
    assert builds == [1, 1]
    stat = roads.stat()
    os.utime(roads, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # the file was touched
    load_graph_cached(roads)
    assert builds == [1, 1, 1]
    # one entry per input file is kept
    assert len(list((cache / graphcache.CACHE_SUBDIR).glob("*.gpkg"))) == 1


def test_no_cache_builds_and_keeps_nothing(cache, roads, monkeypatch) -> None:
    builds = _builds(monkeypatch)
    load_graph_cached(roads, cache=False)
    load_graph_cached(roads, cache=False)
    assert builds == [1, 1]
    assert not cache.exists()


def test_built_files_are_not_cached(cache, roads, tmp_path) -> None:
    built = tmp_path / "built.gpkg"
    cr.save_graph(cr.load_graph(roads), built)
    assert not graphcache.cacheable(built)
    assert not graphcache.cacheable(None)
    load_graph_cached(built)
    assert not cache.exists()


def test_a_damaged_entry_is_built_again(cache, roads, monkeypatch) -> None:
    load_graph_cached(roads)
    cached_path(roads, {}).write_bytes(b"not a geopackage")
    builds = _builds(monkeypatch)
    with pytest.warns(ConvoyRiskWarning, match="could not be read"):
        G = load_graph_cached(roads)
    assert builds == [1]
    assert G.number_of_edges() > 0
    assert load_graph_cached(roads).number_of_edges() == G.number_of_edges()  # kept again
    assert builds == [1]


def test_an_unwritable_cache_warns_and_goes_on(tmp_path, roads, monkeypatch) -> None:
    blocker = tmp_path / "a file"
    blocker.write_text("")
    monkeypatch.setenv("CONVOYRISK_CACHE_DIR", str(blocker))  # a file, not a folder
    assert settings.cache_dir() == blocker
    with pytest.warns(ConvoyRiskWarning, match="Could not keep the built network"):
        G = load_graph_cached(roads)
    assert G.number_of_edges() > 0


def test_cli_second_run_uses_the_cache_and_no_cache_builds(cache, tmp_path, monkeypatch) -> None:
    """`convoyrisk score --roads layer` twice: the second run does not build; --no-cache does."""
    roads = tmp_path / "roads.geojson"
    shutil.copy(settings.default_roads(), roads)
    outs = [tmp_path / f"s{i}.csv" for i in range(3)]
    assert cli("score", "--roads", str(roads), "--out", str(outs[0]), "-q").returncode == 0
    assert cached_path(roads, {}).is_file()

    def fail(*_args, **_kwargs):
        msg = "built again"
        raise AssertionError(msg)

    monkeypatch.setattr(network, "graph_from_gdf", fail)
    assert cli("score", "--roads", str(roads), "--out", str(outs[1]), "-q").returncode == 0
    a, b = gpd.read_file(outs[0]), gpd.read_file(outs[1])
    assert a["rate"].tolist() == b["rate"].tolist()
    with pytest.raises(AssertionError, match="built again"):
        cli("score", "--roads", str(roads), "--out", str(outs[2]), "-q", "--no-cache")
