"""Shared fixtures: the embedded scenario. Helpers to import live in tests/helpers/."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import geopandas as gpd
import networkx as nx
import pytest

import convoyrisk as cr

from .helpers.cdp import Browser, chromium_path
from .helpers.hotspot import write_hotspot_csv


@pytest.fixture(scope="session", autouse=True)
def _cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Keep the cache of built networks (and downloads) out of the user's home in tests."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CONVOYRISK_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture(scope="session")
def places() -> gpd.GeoDataFrame:
    return cr.load_places()


@pytest.fixture(scope="session")
def default_graph(places: gpd.GeoDataFrame) -> nx.MultiDiGraph:
    return cr.name_nodes(cr.load_graph(), places)


@pytest.fixture(scope="session")
def default_risk(default_graph: nx.MultiDiGraph) -> cr.RiskResult:
    """The embedded scenario scored as `convoyrisk map` scores it (with its base rates)."""
    table = cr.read_incidents()
    snapped = cr.snap_incidents(default_graph, table.incidents)
    return cr.score_segments(default_graph, snapped, base_rates=cr.settings.default_base_rates())


@pytest.fixture(scope="session")
def hotspot_csv(tmp_path_factory: pytest.TempPathFactory, default_graph, places) -> Path:
    """The embedded incidents plus 40 precise IEDs at Anéfis over the year before."""
    return write_hotspot_csv(default_graph, places, tmp_path_factory.mktemp("hot") / "hot.csv")


@pytest.fixture(scope="session")
def hotspot(hotspot_csv: Path) -> cr.Briefing:
    """What `convoyrisk map --incidents hot.csv` scores, for checking its map against."""
    b = cr.run(incidents=hotspot_csv, request=cr.RouteRequest("Kidal", "Gao"))
    segs = b.risk.segments
    # the data really make Anéfis a hot spot: severe segments, all within 10 km of it
    severe = segs[segs["risk_class"] == "severe"]
    assert len(severe) >= 3
    anefis = b.places[b.places["name"] == "Anéfis"].to_crs(segs.crs).geometry.iloc[0]
    assert float(severe.geometry.distance(anefis).min()) <= 2_000
    assert segs.loc[segs["rate"].idxmax(), "risk_class"] == "severe"
    # and every route's worst segment is severe
    assert all(r.metrics["worst_segments"][0]["risk_class"] == "severe" for r in b.routes)
    return b


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    """Headless Chromium for the browser tests of one module (a failure in CI if missing)."""
    if chromium_path() is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing in CI: `make test` should have installed it.")
        pytest.skip("Chromium is not installed (`make browser` installs it as root).")
    with Browser(tmp_path_factory.mktemp("chromium-profile")) as b:
        yield b
